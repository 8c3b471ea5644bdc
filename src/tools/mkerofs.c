/*
 * mkerofs [--xattr PATH NAME=HEX]... SRC_DIR OUT: an erofs image of a
 * directory tree (with the user., trusted. and security. xattrs it has, and
 * those given, PATH inside the image), written by msb's
 * own erofs writer (src/lib/image/erofs.c). For tests and for images made
 * from a directory; images from registries go from tar streams to the same
 * writer without touching the host's file system.
 */
#define _XOPEN_SOURCE 700
#include "../lib/image/erofs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

/* A file with more than one name: its later names become hard links. */
struct seen {
	dev_t dev;
	ino_t ino;
	char *rel;
};

struct walk {
	struct erofs_writer *w;
	size_t base_len;
	char why[512];
	int e;
	struct seen *seen;
	size_t nseen;
};

static const char *first_name(struct walk *k, const struct stat *st, const char *rel)
{
	for (size_t i = 0; i < k->nseen; i++)
		if (k->seen[i].dev == st->st_dev && k->seen[i].ino == st->st_ino)
			return k->seen[i].rel;
	struct seen *v = realloc(k->seen, (k->nseen + 1) * sizeof(*v));
	if (v) {
		k->seen = v;
		v[k->nseen] = (struct seen){st->st_dev, st->st_ino, strdup(rel)};
		if (v[k->nseen].rel)
			k->nseen++;
	}
	return NULL;
}

/* nftw gives no context pointer: the one walk in progress */
static struct walk *walking;

static ssize_t read_fd(void *arg, void *buf, size_t len)
{
	int fd = *(int *)arg;
	ssize_t n;
	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n;
}

/* The source's xattrs in the namespaces erofs images carry. */
static int copy_xattrs(struct walk *k, const char *path, const char *rel)
{
	char names[8192];
	ssize_t n = llistxattr(path, names, sizeof(names));
	if (n <= 0)
		return 0; /* none, or a file system without them */
	for (char *p = names; p < names + n; p += strlen(p) + 1) {
		if (strncmp(p, "user.", 5) && strncmp(p, "trusted.", 8) &&
		    strncmp(p, "security.", 9))
			continue;
		char v[EROFS_XATTR_MAX];
		ssize_t l = lgetxattr(path, p, v, sizeof(v));
		if (l < 0)
			continue;
		int e = erofs_set_xattr(k->w, rel, p, v, (size_t)l, k->why, sizeof(k->why));
		if (e)
			return e;
	}
	return 0;
}

static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	struct walk *k = walking;
	const char *rel = path + k->base_len;
	if (!*rel)
		rel = "/";
	struct erofs_meta m = {.mode = st->st_mode,
	                       .uid = st->st_uid,
	                       .gid = st->st_gid,
	                       .mtime = st->st_mtim.tv_sec,
	                       .mtime_nsec = (uint32_t)st->st_mtim.tv_nsec,
	                       .rdev_major = major(st->st_rdev),
	                       .rdev_minor = minor(st->st_rdev)};
	if (type == FTW_D || type == FTW_DP) {
		k->e = erofs_add_dir(k->w, rel, &m, k->why, sizeof(k->why));
	} else if (S_ISLNK(st->st_mode)) {
		char target[4096];
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (n < 0) {
			snprintf(k->why, sizeof(k->why), "readlink %s: %s", path, strerror(errno));
			return k->e = -errno;
		}
		target[n] = 0;
		k->e = erofs_add_symlink(k->w, rel, &m, target, k->why, sizeof(k->why));
	} else if (S_ISREG(st->st_mode) && st->st_nlink > 1 && first_name(k, st, rel)) {
		k->e =
		    erofs_add_hardlink(k->w, rel, first_name(k, st, rel), k->why, sizeof(k->why));
		return k->e; /* the inode's xattrs came with its first name */
	} else if (S_ISREG(st->st_mode)) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			snprintf(k->why, sizeof(k->why), "open %s: %s", path, strerror(errno));
			return k->e = -errno;
		}
		k->e = erofs_add_file(k->w, rel, &m, (uint64_t)st->st_size, read_fd, &fd, k->why,
		                      sizeof(k->why));
		close(fd);
	} else {
		k->e = erofs_add_special(k->w, rel, &m, k->why, sizeof(k->why));
	}
	if (!k->e)
		k->e = copy_xattrs(k, path, rel);
	return k->e;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int main(int argc, char **argv)
{
	int a = 1;
	while (a + 2 < argc && !strcmp(argv[a], "--xattr"))
		a += 3;
	if (argc - a != 2) {
		fprintf(stderr, "usage: mkerofs [--xattr PATH NAME=HEX]... SRC_DIR OUT\n");
		return 2;
	}
	char **extra = argv + 1;
	int nextra = (a - 1) / 3;
	argv += a - 1;
	int fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "mkerofs: cannot create %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	struct walk k = {.w = erofs_writer_new(fd), .base_len = strlen(argv[1])};
	while (k.base_len > 1 && argv[1][k.base_len - 1] == '/')
		k.base_len--;
	walking = &k;
	int bad = !k.w || nftw(argv[1], visit, 64, FTW_PHYS) != 0;
	for (int i = 0; !bad && i < nextra; i++) {
		const char *path = extra[3 * i + 1], *spec = extra[3 * i + 2];
		const char *eq = strchr(spec, '=');
		char name[256];
		unsigned char val[EROFS_XATTR_MAX];
		size_t hl = eq ? strlen(eq + 1) : 1, vl = hl / 2;
		bad = !eq || (size_t)(eq - spec) >= sizeof(name) || hl % 2 || vl > sizeof(val);
		for (size_t j = 0; !bad && j < vl; j++) {
			int hi = hexval(eq[1 + 2 * j]), lo = hexval(eq[2 + 2 * j]);
			bad = hi < 0 || lo < 0;
			val[j] = (unsigned char)(hi * 16 + lo);
		}
		if (bad) {
			snprintf(k.why, sizeof(k.why), "bad --xattr %s %s", path, spec);
			break;
		}
		snprintf(name, sizeof(name), "%.*s", (int)(eq - spec), spec);
		bad = erofs_set_xattr(k.w, path, name, val, vl, k.why, sizeof(k.why)) < 0;
	}
	if (bad || erofs_writer_finish(k.w, k.why, sizeof(k.why)) < 0 || fsync(fd) < 0) {
		fprintf(stderr, "mkerofs: %s\n", k.why[0] ? k.why : strerror(errno));
		unlink(argv[2]);
		return 1;
	}
	erofs_writer_free(k.w);
	for (size_t i = 0; i < k.nseen; i++)
		free(k.seen[i].rel);
	free(k.seen);
	close(fd);
	return 0;
}
