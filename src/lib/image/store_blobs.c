/* Blob files of the image store (see store.h). */
#include "store.h"

#include "fsutil.h"
#include "sha256.h"
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int store_has_blob(const struct store *s, const char *digest, uint64_t size)
{
	char path[PATH_MAX];
	struct stat st;
	if (store_blob_path(s, digest, path, sizeof(path)) || stat(path, &st) < 0 ||
	    !S_ISREG(st.st_mode))
		return 0;
	return size == (uint64_t)-1 || (uint64_t)st.st_size == size;
}

int store_put_blob(struct store *s, const char *digest, const void *data, size_t len)
{
	char path[PATH_MAX], got[SHA256_DIGEST_STR];
	int e = store_blob_path(s, digest, path, sizeof(path));
	if (e)
		return e;
	sha256_digest_of(data, len, got);
	if (strcmp(got, digest))
		return -EBADMSG;
	if (store_has_blob(s, digest, len))
		return 0;
	e = fs_write_atomic(path, data, len);
	return e ? e : fs_fsync_parent(path);
}

int store_put_stream(struct store *s, ssize_t (*read)(void *arg, void *buf, size_t len), void *arg,
                     char digest[72], uint64_t *size, char *why, size_t why_len)
{
	char tmp[PATH_MAX], final[PATH_MAX];
	int e = fs_path(tmp, sizeof(tmp), "%s/blobs/partial/tmp-%d-%u", s->home, (int)getpid(),
	                s->tmp_counter++);
	if (e)
		return e;
	enum { BUF = 1 << 16 };
	char *buf = malloc(BUF);
	if (!buf)
		return -ENOMEM;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = -errno;
		snprintf(why, why_len, "cannot create %s: %s", tmp, strerror(-e));
		free(buf);
		return e;
	}
	struct sha256 h;
	sha256_init(&h);
	*size = 0;
	for (;;) {
		ssize_t n = read(arg, buf, BUF);
		if (n < 0) {
			e = -EIO;
			snprintf(why, why_len, "cannot read the input");
			break;
		}
		if (n == 0)
			break;
		sha256_update(&h, buf, (size_t)n);
		*size += (uint64_t)n;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				e = w < 0 ? -errno : -EIO;
				break;
			}
			off += w;
		}
		if (e) {
			char note[200];
			fs_full_note(tmp, note, sizeof(note));
			snprintf(why, why_len, "cannot write %s: %s%s", tmp, strerror(-e), note);
			break;
		}
	}
	if (!e && fsync(fd) < 0) {
		e = -errno;
		snprintf(why, why_len, "cannot write %s: %s", tmp, strerror(-e));
	}
	close(fd);
	free(buf);
	uint8_t d[32];
	sha256_final(&h, d);
	sha256_digest_str(d, digest);
	if (!e)
		e = store_blob_path(s, digest, final, sizeof(final));
	if (!e && rename(tmp, final) < 0) {
		e = -errno;
		snprintf(why, why_len, "cannot store %s: %s", final, strerror(-e));
	}
	if (e)
		unlink(tmp);
	else
		fs_fsync_parent(final);
	return e;
}

int store_read_blob(const struct store *s, const char *digest, size_t max, char **out, size_t *len)
{
	char path[PATH_MAX];
	int e = store_blob_path(s, digest, path, sizeof(path));
	if (e)
		return e;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size > max) {
		e = fstat(fd, &st) < 0 ? -errno : -EFBIG;
		close(fd);
		return e;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (buf && got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			e = n < 0 ? -errno : -EIO;
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	if (!buf)
		return -ENOMEM;
	if (e) {
		free(buf);
		return e;
	}
	buf[got] = 0;
	*out = buf;
	*len = got;
	return 0;
}
