/*
 * Cache keys: FNV-1a hashes of what a cached artefact depends on, with
 * files counted by identity (path, size, mtime, inode, device) rather than
 * content, so checking a key reads no megabytes. A file rewritten in place
 * within one mtime tick would be missed; our inputs are replaced by rename.
 */
#ifndef MSB_UTIL_IDENTITY_H
#define MSB_UTIL_IDENTITY_H

#include "msb.h"

#include <stddef.h>
#include <stdint.h>

#define FNV1A_INIT 0xcbf29ce484222325ull

static inline uint64_t fnv1a(uint64_t h, const void *p, size_t len)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

/* Folds the identity of @path into *@h; -errno with @err set if it cannot
 * be stat()ed. */
int identity_add(uint64_t *h, const char *path, struct msb_err *err);

#endif
