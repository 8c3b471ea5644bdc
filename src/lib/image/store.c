/* The image store: blobs by digest, erofs images, msb.db (see store.h). */
#include "store.h"

#include "fsutil.h"
#include "sha256.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct store {
	char home[PATH_MAX];
	sqlite3 *db;
	unsigned tmp_counter; /* names temporary files */
};

/*
 * Schema migrations, in order: migration i takes the database from
 * user_version i to i + 1. Never edit one that has shipped; add another.
 */
static const char *const migrations[] = {
    "CREATE TABLE images ("
    "  manifest_digest TEXT PRIMARY KEY,"
    "  index_digest TEXT,"
    "  config_digest TEXT NOT NULL,"
    "  platform TEXT NOT NULL,"
    "  created TEXT,"
    "  size INTEGER NOT NULL,"
    "  erofs_size INTEGER NOT NULL,"
    "  pulled_at INTEGER NOT NULL);"
    "CREATE TABLE image_blobs ("
    "  manifest_digest TEXT NOT NULL REFERENCES images ON DELETE CASCADE,"
    "  digest TEXT NOT NULL,"
    "  PRIMARY KEY (manifest_digest, digest));"
    "CREATE INDEX image_blobs_digest ON image_blobs (digest);"
    "CREATE TABLE refs ("
    "  ref TEXT PRIMARY KEY,"
    "  manifest_digest TEXT NOT NULL REFERENCES images,"
    "  updated_at INTEGER NOT NULL);",
};

#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))
_Static_assert(NMIGRATIONS == STORE_SCHEMA_VERSION, "one migration per schema version");

static int digest_hex(const char *digest, const char **hex)
{
	if (!digest || strncmp(digest, "sha256:", 7) || strlen(digest) != 7 + 64)
		return -EINVAL;
	for (const char *p = digest + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return -EINVAL;
	*hex = digest + 7;
	return 0;
}

int store_blob_path(const struct store *s, const char *digest, char *buf, size_t len)
{
	const char *hex;
	int e = digest_hex(digest, &hex);
	return e ? e : fs_path(buf, len, "%s/blobs/sha256/%s", s->home, hex);
}

int store_partial_path(const struct store *s, const char *digest, char *buf, size_t len)
{
	const char *hex;
	int e = digest_hex(digest, &hex);
	return e ? e : fs_path(buf, len, "%s/blobs/partial/%s", s->home, hex);
}

int store_erofs_path(const struct store *s, const char *digest, char *buf, size_t len)
{
	const char *hex;
	int e = digest_hex(digest, &hex);
	return e ? e : fs_path(buf, len, "%s/images/%s.erofs", s->home, hex);
}

const char *store_home(const struct store *s)
{
	return s->home;
}

static int sql_error(sqlite3 *db, const char *what, char *why, size_t why_len)
{
	snprintf(why, why_len, "%s: %s", what, sqlite3_errmsg(db));
	int rc = sqlite3_errcode(db);
	if (rc == SQLITE_FULL)
		return -ENOSPC;
	if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
		return -EBUSY;
	return -EIO;
}

static int migrate(struct store *s, char *why, size_t why_len)
{
	/* IMMEDIATE: two processes opening a new store migrate one at a time. */
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return sql_error(s->db, "cannot lock the database", why, why_len);
	sqlite3_stmt *st;
	int version = 0;
	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			version = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	if (version > (int)NMIGRATIONS) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		snprintf(why, why_len,
		         "the database has schema version %d, newer than this msb knows (%d); "
		         "use a newer msb",
		         version, (int)NMIGRATIONS);
		return -EPROTO;
	}
	for (int v = version; v < (int)NMIGRATIONS; v++) {
		char sql[64];
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if (sqlite3_exec(s->db, migrations[v], NULL, NULL, NULL) != SQLITE_OK ||
		    sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
			int e = sql_error(s->db, "cannot migrate the database", why, why_len);
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return e;
		}
	}
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		int e = sql_error(s->db, "cannot migrate the database", why, why_len);
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return e;
	}
	return 0;
}

static int lock_file(const struct store *s, const char *name, int how);
static int open_db(struct store *s, const char *path, char *why, size_t why_len);

int store_open(const char *home, struct store **out, char *why, size_t why_len)
{
	struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	static const char *const dirs[] = {"", "/blobs/sha256", "/blobs/partial", "/images",
	                                   "/locks"};
	char path[PATH_MAX];
	int e = fs_path(s->home, sizeof(s->home), "%s", home);
	for (size_t i = 0; !e && i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		e = fs_path(path, sizeof(path), "%s%s", home, dirs[i]);
		if (!e)
			e = fs_mkdir_p(path);
		if (e)
			snprintf(why, why_len, "cannot create %s: %s", path, strerror(-e));
	}
	if (!e)
		e = fs_path(path, sizeof(path), "%s/msb.db", home);
	if (e) {
		free(s);
		return e;
	}
	/* Two msb processes creating the store at once: SQLite answers one
	 * of them BUSY at once (not after the busy timeout) when both switch a
	 * new database to WAL, so opening and migrating take turns. */
	int open_lock = lock_file(s, "open", LOCK_EX);
	if (open_lock < 0) {
		snprintf(why, why_len, "cannot lock %s/locks: %s", home, strerror(-open_lock));
		free(s);
		return open_lock;
	}
	e = open_db(s, path, why, why_len);
	store_unlock(open_lock);
	if (e) {
		store_close(s);
		return e;
	}
	*out = s;
	return 0;
}

static int open_db(struct store *s, const char *path, char *why, size_t why_len)
{
	int e;
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		return sql_error(s->db, path, why, why_len);
	}
	/* WAL: readers (msb exe) never wait for a pull's write. A long busy
	 * timeout: another msb may hold the write lock for a whole commit. */
	sqlite3_busy_timeout(s->db, 30000);
	if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON", NULL, NULL,
	                 NULL) != SQLITE_OK)
		return sql_error(s->db, path, why, why_len);
	e = migrate(s, why, why_len);
	return e;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	sqlite3_close(s->db);
	free(s);
}

int store_has_blob(const struct store *s, const char *digest, uint64_t size)
{
	char path[PATH_MAX];
	struct stat st;
	if (store_blob_path(s, digest, path, sizeof(path)) || stat(path, &st) < 0 ||
	    !S_ISREG(st.st_mode))
		return 0;
	return size == (uint64_t)-1 || (uint64_t)st.st_size == size;
}

int store_put_blob(struct store *s, const char *digest, const void *data, size_t len)
{
	char path[PATH_MAX], got[SHA256_DIGEST_STR];
	uint8_t d[32];
	int e = store_blob_path(s, digest, path, sizeof(path));
	if (e)
		return e;
	struct sha256 h;
	sha256_init(&h);
	sha256_update(&h, data, len);
	sha256_final(&h, d);
	sha256_digest_str(d, got);
	if (strcmp(got, digest))
		return -EBADMSG;
	if (store_has_blob(s, digest, len))
		return 0;
	e = fs_write_atomic(path, data, len);
	return e ? e : fs_fsync_parent(path);
}

int store_put_stream(struct store *s, ssize_t (*read)(void *arg, void *buf, size_t len), void *arg,
                     char digest[72], uint64_t *size, char *why, size_t why_len)
{
	char tmp[PATH_MAX], final[PATH_MAX];
	int e = fs_path(tmp, sizeof(tmp), "%s/blobs/partial/tmp-%d-%u", s->home, (int)getpid(),
	                s->tmp_counter++);
	if (e)
		return e;
	enum { BUF = 1 << 16 };
	char *buf = malloc(BUF);
	if (!buf)
		return -ENOMEM;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = -errno;
		snprintf(why, why_len, "cannot create %s: %s", tmp, strerror(-e));
		free(buf);
		return e;
	}
	struct sha256 h;
	sha256_init(&h);
	*size = 0;
	for (;;) {
		ssize_t n = read(arg, buf, BUF);
		if (n < 0) {
			e = -EIO;
			snprintf(why, why_len, "cannot read the input");
			break;
		}
		if (n == 0)
			break;
		sha256_update(&h, buf, (size_t)n);
		*size += (uint64_t)n;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				e = w < 0 ? -errno : -EIO;
				break;
			}
			off += w;
		}
		if (e) {
			char note[200];
			fs_full_note(tmp, note, sizeof(note));
			snprintf(why, why_len, "cannot write %s: %s%s", tmp, strerror(-e), note);
			break;
		}
	}
	if (!e && fsync(fd) < 0) {
		e = -errno;
		snprintf(why, why_len, "cannot write %s: %s", tmp, strerror(-e));
	}
	close(fd);
	free(buf);
	uint8_t d[32];
	sha256_final(&h, d);
	sha256_digest_str(d, digest);
	if (!e)
		e = store_blob_path(s, digest, final, sizeof(final));
	if (!e && rename(tmp, final) < 0) {
		e = -errno;
		snprintf(why, why_len, "cannot store %s: %s", final, strerror(-e));
	}
	if (e)
		unlink(tmp);
	else
		fs_fsync_parent(final);
	return e;
}

int store_read_blob(const struct store *s, const char *digest, size_t max, char **out, size_t *len)
{
	char path[PATH_MAX];
	int e = store_blob_path(s, digest, path, sizeof(path));
	if (e)
		return e;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size > max) {
		e = fstat(fd, &st) < 0 ? -errno : -EFBIG;
		close(fd);
		return e;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (buf && got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			e = n < 0 ? -errno : -EIO;
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	if (!buf)
		return -ENOMEM;
	if (e) {
		free(buf);
		return e;
	}
	buf[got] = 0;
	*out = buf;
	*len = got;
	return 0;
}

static int lock_file(const struct store *s, const char *name, int how)
{
	char path[PATH_MAX];
	int e = fs_path(path, sizeof(path), "%s/locks/%s.lock", s->home, name);
	if (e)
		return e;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, how) < 0) {
		e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

int store_lock(const struct store *s, const char *digest)
{
	const char *hex;
	int e = digest_hex(digest, &hex);
	return e ? e : lock_file(s, hex, LOCK_EX);
}

int store_guard(const struct store *s)
{
	return lock_file(s, "store", LOCK_SH);
}

void store_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? strdup((const char *)t) : NULL;
}

void store_image_free(struct store_image *im)
{
	free(im->ref);
	free(im->manifest_digest);
	free(im->index_digest);
	free(im->config_digest);
	free(im->platform);
	free(im->created);
	memset(im, 0, sizeof(*im));
}

void store_image_list_free(struct store_image *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_image_free(&v[i]);
	free(v);
}

#define IMAGE_COLS                                                                                 \
	"i.manifest_digest, i.index_digest, i.config_digest, i.platform, i.created, i.size, "      \
	"i.erofs_size, i.pulled_at"

static int row_image(sqlite3_stmt *st, int first, struct store_image *im)
{
	im->manifest_digest = col_dup(st, first);
	im->index_digest = col_dup(st, first + 1);
	im->config_digest = col_dup(st, first + 2);
	im->platform = col_dup(st, first + 3);
	im->created = col_dup(st, first + 4);
	im->size = (uint64_t)sqlite3_column_int64(st, first + 5);
	im->erofs_size = (uint64_t)sqlite3_column_int64(st, first + 6);
	im->pulled_at = sqlite3_column_int64(st, first + 7);
	if (!im->manifest_digest || !im->config_digest || !im->platform) {
		store_image_free(im);
		return -ENOMEM;
	}
	return 0;
}

int store_add_image(struct store *s, const char *ref, const struct store_image *im,
                    const char *const *layer_digests, size_t nlayers, char *why, size_t why_len)
{
	sqlite3_stmt *st = NULL;
	int e = 0;
	int64_t now = (int64_t)time(NULL);
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return sql_error(s->db, "cannot record the image", why, why_len);
	if (sqlite3_prepare_v2(s->db,
	                       "INSERT OR REPLACE INTO images (manifest_digest, index_digest, "
	                       "config_digest, platform, created, size, erofs_size, pulled_at) "
	                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
	                       -1, &st, NULL) != SQLITE_OK)
		goto sqlfail;
	sqlite3_bind_text(st, 1, im->manifest_digest, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, im->index_digest, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, im->config_digest, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, im->platform, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, im->created, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, (int64_t)im->size);
	sqlite3_bind_int64(st, 7, (int64_t)im->erofs_size);
	sqlite3_bind_int64(st, 8, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto sqlfail;
	sqlite3_finalize(st);
	st = NULL;
	/* The image's blobs: its manifest, its index, its config, its layers. */
	const char *own[] = {im->manifest_digest, im->index_digest, im->config_digest};
	for (size_t i = 0; i < 3 + nlayers; i++) {
		const char *d = i < 3 ? own[i] : layer_digests[i - 3];
		if (!d)
			continue;
		if (sqlite3_prepare_v2(
		        s->db,
		        "INSERT OR IGNORE INTO image_blobs (manifest_digest, digest) "
		        "VALUES (?, ?)",
		        -1, &st, NULL) != SQLITE_OK)
			goto sqlfail;
		sqlite3_bind_text(st, 1, im->manifest_digest, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, d, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto sqlfail;
		sqlite3_finalize(st);
		st = NULL;
	}
	if (ref) {
		if (sqlite3_prepare_v2(
		        s->db,
		        "INSERT OR REPLACE INTO refs (ref, manifest_digest, updated_at) "
		        "VALUES (?, ?, ?)",
		        -1, &st, NULL) != SQLITE_OK)
			goto sqlfail;
		sqlite3_bind_text(st, 1, ref, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, im->manifest_digest, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, now);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto sqlfail;
		sqlite3_finalize(st);
		st = NULL;
	}
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto sqlfail;
	return 0;
sqlfail:
	e = sql_error(s->db, "cannot record the image", why, why_len);
	sqlite3_finalize(st);
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return e;
}

int store_find_ref(struct store *s, const char *ref, struct store_image *out)
{
	sqlite3_stmt *st;
	memset(out, 0, sizeof(*out));
	if (sqlite3_prepare_v2(s->db,
	                       "SELECT r.ref, " IMAGE_COLS " FROM refs r JOIN images i "
	                       "ON i.manifest_digest = r.manifest_digest WHERE r.ref = ?",
	                       -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, ref, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st), e = -ENOENT;
	if (rc == SQLITE_ROW) {
		out->ref = col_dup(st, 0);
		e = row_image(st, 1, out);
	} else if (rc != SQLITE_DONE) {
		e = -EIO;
	}
	sqlite3_finalize(st);
	return e;
}

int store_list(struct store *s, struct store_image **out, size_t *n)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
	                       "SELECT r.ref, " IMAGE_COLS " FROM images i LEFT JOIN refs r "
	                       "ON i.manifest_digest = r.manifest_digest "
	                       "ORDER BY r.ref IS NULL, r.ref, i.pulled_at",
	                       -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	struct store_image *v = NULL;
	size_t cnt = 0, cap = 0;
	int rc, e = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct store_image *nv = realloc(v, ncap * sizeof(*v));
			if (!nv) {
				e = -ENOMEM;
				break;
			}
			v = nv;
			cap = ncap;
		}
		memset(&v[cnt], 0, sizeof(v[cnt]));
		v[cnt].ref = col_dup(st, 0);
		if ((e = row_image(st, 1, &v[cnt])) < 0)
			break;
		cnt++;
	}
	if (!e && rc != SQLITE_DONE)
		e = -EIO;
	sqlite3_finalize(st);
	if (e) {
		store_image_list_free(v, cnt);
		return e;
	}
	*out = v;
	*n = cnt;
	return 0;
}

int store_remove_ref(struct store *s, const char *ref)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "DELETE FROM refs WHERE ref = ?", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, ref, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return -EIO;
	return sqlite3_changes(s->db) ? 0 : -ENOENT;
}

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
			ours = !digest_hex(digest, &hex);
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
	int guard = lock_file(s, "store", LOCK_EX); /* waits for pulls to finish */
	if (guard < 0) {
		snprintf(why, why_len, "cannot lock the store: %s", strerror(-guard));
		return guard;
	}
	int e = 0;
	if (sqlite3_exec(s->db,
	                 "DELETE FROM images WHERE manifest_digest NOT IN "
	                 "(SELECT manifest_digest FROM refs)",
	                 NULL, NULL, NULL) != SQLITE_OK) {
		e = sql_error(s->db, "cannot prune the database", why, why_len);
		goto out;
	}
	*images = (unsigned)sqlite3_changes(s->db);
	sqlite3_stmt *blobs = NULL, *erofs = NULL;
	if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM image_blobs WHERE digest = ?", -1, &blobs,
	                       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db, "SELECT 1 FROM images WHERE manifest_digest = ?", -1, &erofs,
	                       NULL) != SQLITE_OK) {
		e = sql_error(s->db, "cannot prune", why, why_len);
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
