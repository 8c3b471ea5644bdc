#include "cpio.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define NAME_MAX_LEN 4096

void cpio_init(struct cpio *c, FILE *out)
{
	c->out = out;
	c->ino = 0;
	c->written = 0;
}

static int put(struct cpio *c, const void *p, size_t n)
{
	if (n && fwrite(p, 1, n, c->out) != n)
		return -EIO;
	c->written += n;
	return 0;
}

static int pad4(struct cpio *c)
{
	static const char zeros[4];
	return put(c, zeros, (4 - c->written % 4) % 4);
}

static int entry(struct cpio *c, const char *name, uint32_t mode, uint32_t rmaj, uint32_t rmin,
                 const void *data, size_t len)
{
	size_t nlen = strlen(name);
	if (nlen == 0 || nlen >= NAME_MAX_LEN || name[0] == '/' || len > UINT32_MAX)
		return -EINVAL;
	char hdr[111];
	/* newc: magic and 13 fields of 8 hex digits; namesize counts the NUL */
	int n =
	    snprintf(hdr, sizeof(hdr), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
	             ++c->ino, mode, 0u, 0u, 1u, 0u, (unsigned)len, 0u, 0u, rmaj, rmin,
	             (unsigned)(nlen + 1), 0u);
	if (n != 110)
		return -EINVAL;
	int e;
	if ((e = put(c, hdr, 110)) || (e = put(c, name, nlen + 1)) || (e = pad4(c)) ||
	    (e = put(c, data, len)) || (e = pad4(c)))
		return e;
	return 0;
}

int cpio_add_dir(struct cpio *c, const char *name, uint32_t perm)
{
	if (perm & ~07777u)
		return -EINVAL;
	return entry(c, name, S_IFDIR | perm, 0, 0, NULL, 0);
}

int cpio_add_file(struct cpio *c, const char *name, uint32_t perm, const void *data, size_t len)
{
	if (perm & ~07777u)
		return -EINVAL;
	return entry(c, name, S_IFREG | perm, 0, 0, data, len);
}

int cpio_add_symlink(struct cpio *c, const char *name, const char *target)
{
	size_t tlen = strlen(target);
	if (tlen == 0 || tlen >= NAME_MAX_LEN)
		return -EINVAL;
	return entry(c, name, S_IFLNK | 0777, 0, 0, target, tlen);
}

int cpio_add_chardev(struct cpio *c, const char *name, uint32_t perm, uint32_t major,
                     uint32_t minor)
{
	if (perm & ~07777u)
		return -EINVAL;
	return entry(c, name, S_IFCHR | perm, major, minor, NULL, 0);
}

int cpio_finish(struct cpio *c)
{
	int e = entry(c, "TRAILER!!!", 0, 0, 0, NULL, 0);
	if (e)
		return e;
	return fflush(c->out) ? -EIO : 0;
}
