/* The image store: opening it, its paths and locks (see store.h). */
#include "store.h"

#include "fsutil.h"
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

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
    /* 1 -> 2: the sandboxes msb processes keep running (sandbox_records.h). */
    "CREATE TABLE sandboxes ("
    "  project TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  keeper INTEGER NOT NULL,"
    "  keeper_start INTEGER NOT NULL,"
    "  vmm INTEGER NOT NULL DEFAULT 0,"
    "  socket TEXT NOT NULL DEFAULT '',"
    "  log TEXT NOT NULL DEFAULT '',"
    "  started INTEGER NOT NULL,"
    "  detached INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (project, name));",
};

#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))
_Static_assert(NMIGRATIONS == STORE_SCHEMA_VERSION, "one migration per schema version");

int store_digest_hex(const char *digest, const char **hex)
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
	int e = store_digest_hex(digest, &hex);
	return e ? e : fs_path(buf, len, "%s/blobs/sha256/%s", s->home, hex);
}

int store_partial_path(const struct store *s, const char *digest, char *buf, size_t len)
{
	const char *hex;
	int e = store_digest_hex(digest, &hex);
	return e ? e : fs_path(buf, len, "%s/blobs/partial/%s", s->home, hex);
}

int store_erofs_path(const struct store *s, const char *digest, char *buf, size_t len)
{
	const char *hex;
	int e = store_digest_hex(digest, &hex);
	return e ? e : fs_path(buf, len, "%s/images/%s.erofs", s->home, hex);
}

const char *store_home(const struct store *s)
{
	return s->home;
}

int store_sql_error(sqlite3 *db, const char *what, char *why, size_t why_len)
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
		return store_sql_error(s->db, "cannot lock the database", why, why_len);
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
			int e = store_sql_error(s->db, "cannot migrate the database", why, why_len);
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return e;
		}
	}
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		int e = store_sql_error(s->db, "cannot migrate the database", why, why_len);
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return e;
	}
	return 0;
}

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
	int open_lock = store_lock_file(s, "open", LOCK_EX);
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
		return store_sql_error(s->db, path, why, why_len);
	}
	/* WAL: readers (msb exe) never wait for a pull's write. A long busy
	 * timeout: another msb may hold the write lock for a whole commit. */
	sqlite3_busy_timeout(s->db, 30000);
	if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON", NULL, NULL,
	                 NULL) != SQLITE_OK)
		return store_sql_error(s->db, path, why, why_len);
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

int store_lock_file(const struct store *s, const char *name, int how)
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
	int e = store_digest_hex(digest, &hex);
	return e ? e : store_lock_file(s, hex, LOCK_EX);
}

int store_guard(const struct store *s)
{
	return store_lock_file(s, "store", LOCK_SH);
}

void store_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}
