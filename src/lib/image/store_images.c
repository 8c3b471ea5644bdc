/* The image records of msb.db: references and images (see store.h). */
#include "store.h"

#include "store_int.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
		return store_sql_error(s->db, "cannot record the image", why, why_len);
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
	e = store_sql_error(s->db, "cannot record the image", why, why_len);
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
