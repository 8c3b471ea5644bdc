/* Small file-system helpers. All return 0 or a negative errno. */
#ifndef MSB_UTIL_FSUTIL_H
#define MSB_UTIL_FSUTIL_H

#include <stddef.h>

/* mkdir -p with mode 0700 for created directories. */
int fs_mkdir_p(const char *path);

/* Writes @len bytes to @path atomically: a temporary name in the same
 * directory, fsync, rename. */
int fs_write_atomic(const char *path, const void *data, size_t len);

/* Reads at most @size - 1 bytes of @path into @buf, NUL-terminated; returns
 * the length. */
int fs_read_small(const char *path, char *buf, size_t size);

/* rm -r of a directory holding only files (no subdirectories). */
int fs_remove_flat_dir(const char *path);

/* snprintf that fails with -ENAMETOOLONG instead of truncating. */
int fs_path(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* fsyncs the directory holding @path (after a rename into it), so the
 * new name survives a crash. Best effort: returns 0 or a negative errno. */
int fs_fsync_parent(const char *path);

/* After a failed write to @path: " (the disk holding it is full: N MiB
 * free)" into @out when that disk has less than 64 MiB left, else "". A
 * full disk reaches programs in the portable host as an I/O error, so this
 * says what it was. */
void fs_full_note(const char *path, char *out, size_t len);

#endif
