/*
 * Inside the image store (store.h): store.c opens it (directories, msb.db
 * and its migrations), names its files and takes its locks; store_blobs.c
 * writes and reads blobs; store_images.c keeps the image records;
 * store_prune.c deletes what no image uses.
 */
#ifndef MSB_IMAGE_STORE_INT_H
#define MSB_IMAGE_STORE_INT_H

#include "store.h"

#include <limits.h>
#include <sqlite3.h>
#include <stddef.h>

struct store {
	char home[PATH_MAX];
	sqlite3 *db;
	unsigned tmp_counter; /* names temporary files */
};

/* The hex of a digest "sha256:<64 lowercase hex>" into *@hex; -EINVAL for
 * anything else. */
int store_digest_hex(const char *digest, const char **hex);

/* @why says what failed and SQLite's message; returns -ENOSPC, -EBUSY or
 * -EIO. */
int store_sql_error(sqlite3 *db, const char *what, char *why, size_t why_len);

/* flock(@how) on locks/@name.lock: an fd for store_unlock(), or a negative
 * errno. */
int store_lock_file(const struct store *s, const char *name, int how);

#endif
