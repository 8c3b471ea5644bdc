/*
 * mkerofs SRC_DIR OUT: an erofs image of a directory tree, written by msb's
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
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

struct walk {
	struct erofs_writer *w;
	size_t base_len;
	char why[512];
	int e;
};

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
	return k->e;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: mkerofs SRC_DIR OUT\n");
		return 2;
	}
	int fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "mkerofs: cannot create %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	struct walk k = {.w = erofs_writer_new(fd), .base_len = strlen(argv[1])};
	while (k.base_len > 1 && argv[1][k.base_len - 1] == '/')
		k.base_len--;
	walking = &k;
	if (!k.w || nftw(argv[1], visit, 64, FTW_PHYS) != 0 ||
	    erofs_writer_finish(k.w, k.why, sizeof(k.why)) < 0 || fsync(fd) < 0) {
		fprintf(stderr, "mkerofs: %s\n", k.why[0] ? k.why : strerror(errno));
		unlink(argv[2]);
		return 1;
	}
	erofs_writer_free(k.w);
	close(fd);
	return 0;
}
