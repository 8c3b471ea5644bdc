/*
 * gzip layers decompressed with isa-l's inflate, which does it about 4x as
 * fast as zlib here (gzip inflate was most of the time a pull spends
 * writing the root file system), and handed to libarchive as a plain tar.
 */
#ifndef MSB_IMAGE_GUNZIP_H
#define MSB_IMAGE_GUNZIP_H

#include <archive.h>
#include <stddef.h>

struct gunzip;

/* 1 when the file at @fd (read from offset 0, left unchanged) starts like
 * gzip, 0 when not, or a negative errno. */
int gunzip_detect(int fd);

/*
 * Opens @a (format set, no filter) on the gzip stream in @fd (owned by the
 * caller), read from its current offset. Returns 0 and *out, to pass to
 * gunzip_finish() after the archive is read and to gunzip_free() after
 * archive_read_free(); or a negative errno with @why set.
 */
int gunzip_open(struct archive *a, int fd, struct gunzip **out, char *why, size_t why_len);

/* Reads what the tar reader left of the stream (the end of the last
 * member), which checks its CRC and length. Returns 0, or -EIO with @why
 * set when the stream is damaged. */
int gunzip_finish(struct gunzip *g, char *why, size_t why_len);

void gunzip_free(struct gunzip *g);

#endif
