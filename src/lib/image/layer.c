#include "layer.h"
#include "gunzip.h"
#include "fsutil.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WH        ".wh."
#define WH_OPAQUE ".wh..wh..opq"

struct data_src {
	struct archive *a;
};

static ssize_t read_data(void *arg, void *buf, size_t len)
{
	struct data_src *s = arg;
	la_ssize_t n = archive_read_data(s->a, buf, len);
	return n < 0 ? -1 : (ssize_t)n;
}

/* Splits @path into its directory (in @dir) and last name. */
static const char *split(const char *path, char *dir, size_t len)
{
	const char *slash = strrchr(path, '/');
	if (!slash) {
		snprintf(dir, len, "/");
		return path;
	}
	snprintf(dir, len, "%.*s", (int)(slash - path), path);
	return slash + 1;
}

static int whiteout(struct erofs_writer *w, const char *path, struct layer_stats *st, int *handled,
                    char *why, size_t why_len)
{
	char dir[4096];
	const char *name = split(path, dir, sizeof(dir));
	*handled = 0;
	if (strncmp(name, WH, strlen(WH)))
		return 0;
	*handled = 1;
	st->whiteouts++;
	if (!strcmp(name, WH_OPAQUE))
		return erofs_clear_dir(w, dir, why, why_len);
	char target[4400];
	snprintf(target, sizeof(target), "%s/%s", dir, name + strlen(WH));
	return erofs_remove(w, target, why, why_len);
}

static int xattrs(struct erofs_writer *w, struct archive_entry *e, const char *path, char *why,
                  size_t why_len)
{
	const char *name;
	const void *value;
	size_t size;
	archive_entry_xattr_reset(e);
	while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
		int r = erofs_set_xattr(w, path, name, value, size, why, why_len);
		if (r && r != -EOPNOTSUPP) /* other namespaces (ACLs) are dropped */
			return r;
	}
	return 0;
}

static int entry(struct erofs_writer *w, struct archive *a, struct archive_entry *e,
                 struct layer_stats *st, char *why, size_t why_len)
{
	const char *path = archive_entry_pathname(e);
	if (!path || !*path)
		return 0; /* nothing to place */
	int handled, r = whiteout(w, path, st, &handled, why, why_len);
	if (r || handled)
		return r;
	struct erofs_meta m = {.mode = archive_entry_mode(e),
	                       .uid = (uint32_t)archive_entry_uid(e),
	                       .gid = (uint32_t)archive_entry_gid(e),
	                       .mtime = archive_entry_mtime(e),
	                       .mtime_nsec = (uint32_t)archive_entry_mtime_nsec(e),
	                       .rdev_major = (uint32_t)archive_entry_rdevmajor(e),
	                       .rdev_minor = (uint32_t)archive_entry_rdevminor(e)};
	const char *link = archive_entry_hardlink(e);
	if (link)
		return erofs_add_hardlink(w, path, link, why, why_len);
	switch (archive_entry_filetype(e)) {
	case AE_IFDIR:
		r = erofs_add_dir(w, path, &m, why, why_len);
		break;
	case AE_IFLNK: {
		const char *t = archive_entry_symlink(e);
		r = erofs_add_symlink(w, path, &m, t ? t : "", why, why_len);
		break;
	}
	case AE_IFREG: {
		int64_t size = archive_entry_size(e);
		if (size < 0 || (uint64_t)size > LAYER_MAX_BYTES - st->bytes) {
			snprintf(why, why_len, "the layer holds more than %llu GiB of data",
			         (unsigned long long)(LAYER_MAX_BYTES >> 30));
			return -EFBIG;
		}
		struct data_src src = {a};
		r = erofs_add_file(w, path, &m, (uint64_t)size, read_data, &src, why, why_len);
		st->bytes += (uint64_t)size;
		break;
	}
	case AE_IFCHR:
	case AE_IFBLK:
	case AE_IFIFO:
	case AE_IFSOCK:
		r = erofs_add_special(w, path, &m, why, why_len);
		break;
	default:
		snprintf(why, why_len, "an entry of an unknown type: %.300s", path);
		return -EINVAL;
	}
	return r ? r : xattrs(w, e, path, why, why_len);
}

struct layer_image {
	char path[4096], tmp[4200];
	int fd;
	struct erofs_writer *w;
	unsigned next; /* the next layer's index */
};

int layer_image_begin(const char *path, struct layer_image **out, char *why, size_t why_len)
{
	struct layer_image *li = calloc(1, sizeof(*li));
	if (!li) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	if (snprintf(li->path, sizeof(li->path), "%s", path) >= (int)sizeof(li->path) ||
	    snprintf(li->tmp, sizeof(li->tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(li->tmp)) {
		snprintf(why, why_len, "path too long: %.300s", path);
		free(li);
		return -ENAMETOOLONG;
	}
	li->fd = mkostemp(li->tmp, O_CLOEXEC);
	if (li->fd < 0) {
		int e = -errno;
		snprintf(why, why_len, "cannot create %.300s: %s", li->tmp, strerror(-e));
		free(li);
		return e;
	}
	fchmod(li->fd, 0644);
	if (!(li->w = erofs_writer_new(li->fd))) {
		snprintf(why, why_len, "out of memory");
		layer_image_abort(li);
		return -ENOMEM;
	}
	*out = li;
	return 0;
}

int layer_image_add(struct layer_image *li, int fd, char *why, size_t why_len)
{
	struct layer_stats st;
	char lwhy[400];
	int e = layer_apply(li->w, fd, li->next, &st, lwhy, sizeof(lwhy));
	if (e)
		snprintf(why, why_len, "layer %u: %s", li->next + 1, lwhy);
	li->next++;
	return e;
}

int layer_image_commit(struct layer_image *li, char *why, size_t why_len)
{
	int e = erofs_writer_finish(li->w, why, why_len);
	if (!e && fsync(li->fd) < 0) {
		e = -errno;
		snprintf(why, why_len, "cannot write %.300s: %s", li->tmp, strerror(-e));
	}
	if (!e && rename(li->tmp, li->path) < 0) {
		e = -errno;
		snprintf(why, why_len, "cannot rename into %.300s: %s", li->path, strerror(-e));
	}
	if (e) {
		layer_image_abort(li);
		return e;
	}
	fs_fsync_parent(li->path);
	erofs_writer_free(li->w);
	close(li->fd);
	free(li);
	return 0;
}

void layer_image_abort(struct layer_image *li)
{
	if (!li)
		return;
	erofs_writer_free(li->w);
	close(li->fd);
	unlink(li->tmp);
	free(li);
}

int layer_build_image(const int *fds, size_t n, const char *path, char *why, size_t why_len)
{
	struct layer_image *li;
	int e = layer_image_begin(path, &li, why, why_len);
	for (size_t i = 0; !e && i < n; i++)
		if ((e = layer_image_add(li, fds[i], why, why_len)) < 0)
			layer_image_abort(li);
	return e ? e : layer_image_commit(li, why, why_len);
}

int layer_apply(struct erofs_writer *w, int fd, unsigned index, struct layer_stats *st, char *why,
                size_t why_len)
{
	memset(st, 0, sizeof(*st));
	erofs_set_layer(w, index);
	struct archive *a = archive_read_new();
	if (!a) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_none(a);
	archive_read_support_format_tar(a);
	int r = 0;
	struct gunzip *gz = NULL;
	int is_gzip = gunzip_detect(fd);
	if (is_gzip == 1) {
		r = gunzip_open(a, fd, &gz, why, why_len);
	} else if (archive_read_open_fd(a, fd, 64 * 1024) != ARCHIVE_OK) {
		snprintf(why, why_len, "the layer is damaged or not a tar: %s",
		         archive_error_string(a));
		r = -EINVAL;
	}
	struct archive_entry *e;
	while (!r) {
		int h = archive_read_next_header(a, &e);
		if (h == ARCHIVE_EOF)
			break;
		if (h != ARCHIVE_OK && h != ARCHIVE_WARN) {
			snprintf(why, why_len, "the layer is damaged: %s", archive_error_string(a));
			r = -EIO;
			break;
		}
		if (++st->entries > LAYER_MAX_ENTRIES) {
			snprintf(why, why_len, "the layer has more than %d entries",
			         LAYER_MAX_ENTRIES);
			r = -E2BIG;
			break;
		}
		r = entry(w, a, e, st, why, why_len);
		if (r == -EIO && archive_errno(a))
			snprintf(why, why_len, "the layer is damaged: %s", archive_error_string(a));
	}
	if (!r && gz)
		r = gunzip_finish(gz, why, why_len);
	archive_read_free(a);
	gunzip_free(gz);
	return r;
}
