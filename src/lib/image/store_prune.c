/* Pruning the image store (see store.h). */
#include "store.h"

#include "fsutil.h"
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Removes @dir/@name when @keep says no; counts what went. */
static void prune_file(const char *dir, const char *name, unsigned *files, uint64_t *bytes)
{
	char path[PATH_MAX];
	struct stat st;
	if (fs_path(path, sizeof(path), "%s/%s", dir, name) || lstat(path, &st) < 0)
		return;
	if (unlink(path) == 0) {
		(*files)++;
		*bytes += (uint64_t)st.st_blocks * 512;
	}
}

/* 1 when a blob (by hex) is used by a recorded image. */
static int blob_used(sqlite3_stmt *q, const char *digest)
{
	sqlite3_reset(q);
	sqlite3_bind_text(q, 1, digest, -1, SQLITE_TRANSIENT);
	return sqlite3_step(q) == SQLITE_ROW;
}

static int prune_dir(struct store *s, const char *sub, const char *suffix, sqlite3_stmt *q,
                     unsigned *files, uint64_t *bytes)
{
	char dir[PATH_MAX];
	int e = fs_path(dir, sizeof(dir), "%s/%s", s->home, sub);
	if (e)
		return e;
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	struct dirent *de;
	size_t sl = strlen(suffix);
	while ((de = readdir(d))) {
		size_t nl = strlen(de->d_name);
		if (de->d_name[0] == '.')
			continue;
		char digest[80];
		/* Anything that is not <64 hex><suffix> is a leftover temporary
		 * file of a killed writer: nothing is writing it now. */
		int ours = nl == 64 + sl && !strcmp(de->d_name + 64, suffix);
		if (ours) {
			snprintf(digest, sizeof(digest), "sha256:%.64s", de->d_name);
			const char *hex;
			ours = !store_digest_hex(digest, &hex);
		}
		if (!ours || !q || !blob_used(q, digest))
			prune_file(dir, de->d_name, files, bytes);
	}
	closedir(d);
	return 0;
}

int store_prune(struct store *s, unsigned *images, unsigned *files, uint64_t *bytes, char *why,
                size_t why_len)
{
	*images = *files = 0;
	*bytes = 0;
	int guard = store_lock_file(s, "store", LOCK_EX); /* waits for pulls to finish */
	if (guard < 0) {
		snprintf(why, why_len, "cannot lock the store: %s", strerror(-guard));
		return guard;
	}
	int e = 0;
	if (sqlite3_exec(s->db,
	                 "DELETE FROM images WHERE manifest_digest NOT IN "
	                 "(SELECT manifest_digest FROM refs)",
	                 NULL, NULL, NULL) != SQLITE_OK) {
		e = store_sql_error(s->db, "cannot prune the database", why, why_len);
		goto out;
	}
	*images = (unsigned)sqlite3_changes(s->db);
	sqlite3_stmt *blobs = NULL, *erofs = NULL;
	if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM image_blobs WHERE digest = ?", -1, &blobs,
	                       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db, "SELECT 1 FROM images WHERE manifest_digest = ?", -1, &erofs,
	                       NULL) != SQLITE_OK) {
		e = store_sql_error(s->db, "cannot prune", why, why_len);
	} else {
		e = prune_dir(s, "blobs/sha256", "", blobs, files, bytes);
		if (!e)
			e = prune_dir(s, "images", ".erofs", erofs, files, bytes);
		if (!e) /* no pull runs: nothing resumes these */
			e = prune_dir(s, "blobs/partial", "", NULL, files, bytes);
		if (e)
			snprintf(why, why_len, "cannot prune the store: %s", strerror(-e));
	}
	sqlite3_finalize(blobs);
	sqlite3_finalize(erofs);
out:
	store_unlock(guard);
	return e;
}
