/*
 * A writer for the "newc" cpio format that Linux unpacks as an initramfs.
 * Used at build time only, so msb needs no cpio tool. Output is
 * deterministic: every entry has uid/gid 0 and mtime 0, inode numbers count
 * from 1.
 */
#ifndef MSB_CPIO_H
#define MSB_CPIO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct cpio {
	FILE *out; /* borrowed; the caller opens and closes it */
	uint32_t ino;
	uint64_t written;
};

void cpio_init(struct cpio *c, FILE *out);

/* Each returns 0 or a negative errno (-EINVAL for a name or mode that cannot
 * be stored, -EIO when writing failed). @name is the path inside the archive,
 * without a leading '/'. */
int cpio_add_dir(struct cpio *c, const char *name, uint32_t perm);
int cpio_add_file(struct cpio *c, const char *name, uint32_t perm, const void *data, size_t len);
int cpio_add_symlink(struct cpio *c, const char *name, const char *target);
int cpio_add_chardev(struct cpio *c, const char *name, uint32_t perm, uint32_t major,
                     uint32_t minor);
/* Writes the trailer. */
int cpio_finish(struct cpio *c);

#endif
