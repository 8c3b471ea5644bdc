#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

int fs_path(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	return (size_t)n < len ? 0 : -ENAMETOOLONG;
}

int fs_mkdir_p(const char *path)
{
	char tmp[4096];
	int e = fs_path(tmp, sizeof(tmp), "%s", path);
	if (e)
		return e;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int fs_write_atomic(const char *path, const void *data, size_t len)
{
	char tmp[4096];
	int e = fs_path(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	if (e)
		return e;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	const char *p = data;
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, p + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			e = n < 0 ? -errno : -EIO;
			goto fail;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0) {
		e = -errno;
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		e = -errno;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		e = -errno;
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return e;
}

int fs_read_small(const char *path, char *buf, size_t size)
{
	if (size == 0)
		return -EINVAL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t got = 0;
	while (got + 1 < size) {
		ssize_t n = read(fd, buf + got, size - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = -errno;
			close(fd);
			return e;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = 0;
	return (int)got;
}

int fs_remove_flat_dir(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	struct dirent *ent;
	char p[4096];
	while ((ent = readdir(d))) {
		if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, ".."))
			continue;
		if (fs_path(p, sizeof(p), "%s/%s", path, ent->d_name) == 0)
			unlink(p);
	}
	closedir(d);
	return rmdir(path) < 0 && errno != ENOENT ? -errno : 0;
}

void fs_full_note(const char *path, char *out, size_t len)
{
	enum { FULL_MIB = 64 };
	char dir[4096];
	out[0] = 0;
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = 0;
	struct statvfs sv;
	if (statvfs(slash ? dir : ".", &sv) < 0)
		return;
	unsigned long long free_mib = (unsigned long long)sv.f_bavail * sv.f_frsize >> 20;
	if (free_mib < FULL_MIB)
		snprintf(out, len, " (the disk holding it is full: %llu MiB free)", free_mib);
}

int fs_fsync_parent(const char *path)
{
	char dir[4096];
	if (fs_path(dir, sizeof(dir), "%s", path))
		return -ENAMETOOLONG;
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		dir[1] = 0;
	else if (slash)
		*slash = 0;
	else
		snprintf(dir, sizeof(dir), ".");
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int e = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return e;
}
