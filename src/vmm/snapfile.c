/* The snapshot state file: see snapfile.h. */
#include "snapfile.h"
#include "../lib/util/crc32.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const uint8_t magic[8] = {'M', 'S', 'B', 'S', 'N', 'A', 'P', '1'};

uint32_t snap_crc32(const void *p, size_t len)
{
	return crc32_update(0, p, len);
}

/* A section's checksum covers its type, id and length too. */
static uint32_t section_crc(const uint8_t *sec, const uint8_t *payload, uint32_t len)
{
	return crc32_update(crc32_update(0, sec, 12), payload, len);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get64(const uint8_t *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* Header layout offsets. */
enum { H_MAGIC = 0, H_VERSION = 8, H_NSEC = 12, H_SHAPE = 16, H_MEM = 48, H_RSVD = 56, H_CRC = 60 };

int snapw_init(struct snap_writer *w, const uint8_t shape[SNAP_SHAPE_SIZE], uint64_t mem_bytes)
{
	*w = (struct snap_writer){0};
	w->cap = 4096;
	if (!(w->buf = calloc(1, w->cap)))
		return w->err = -ENOMEM;
	memcpy(w->buf + H_MAGIC, magic, sizeof(magic));
	put32(w->buf + H_VERSION, SNAP_VERSION);
	memcpy(w->buf + H_SHAPE, shape, SNAP_SHAPE_SIZE);
	put64(w->buf + H_MEM, mem_bytes);
	w->len = SNAP_HDR_SIZE;
	return 0;
}

void snapw_add(struct snap_writer *w, uint32_t type, uint32_t id, const void *p, uint32_t len)
{
	if (w->err)
		return;
	size_t need = SNAP_SEC_SIZE + (size_t)len;
	if (len > SNAP_MAX_FILE || w->len + need > SNAP_MAX_FILE) {
		w->err = -EFBIG;
		return;
	}
	if (w->cap - w->len < need) {
		size_t cap = w->cap;
		while (cap - w->len < need)
			cap *= 2;
		uint8_t *b = realloc(w->buf, cap);
		if (!b) {
			w->err = -ENOMEM;
			return;
		}
		w->buf = b;
		w->cap = cap;
	}
	uint8_t *s = w->buf + w->len;
	put32(s, type);
	put32(s + 4, id);
	put32(s + 8, len);
	if (len)
		memcpy(s + SNAP_SEC_SIZE, p, len);
	put32(s + 12, section_crc(s, s + SNAP_SEC_SIZE, len));
	w->len += need;
	w->nsections++;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int snapw_finish(struct snap_writer *w, uint8_t **buf, size_t *len)
{
	if (w->err)
		return w->err;
	put32(w->buf + H_NSEC, w->nsections);
	put32(w->buf + H_CRC, snap_crc32(w->buf, H_CRC));
	*buf = w->buf;
	*len = w->len;
	return 0;
}

int snapw_commit(struct snap_writer *w, const char *path)
{
	uint8_t *buf;
	size_t blen;
	if (snapw_finish(w, &buf, &blen))
		return w->err;
	char tmp[4096], dir[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp) ||
	    snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	char *slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = 0;
	else
		snprintf(dir, sizeof(dir), ".");
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int e = write_all(fd, w->buf, w->len);
	if (!e && fsync(fd) < 0)
		e = -errno;
	if (close(fd) < 0 && !e)
		e = -errno;
	if (!e && rename(tmp, path) < 0)
		e = -errno;
	if (e) {
		unlink(tmp);
		return e;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

void snapw_free(struct snap_writer *w)
{
	free(w->buf);
	*w = (struct snap_writer){0};
}

static int refuse(int e, char *why, size_t wl, const char *msg)
{
	snprintf(why, wl, "%s", msg);
	return e;
}

int snap_parse(const uint8_t *buf, size_t len, const uint8_t shape[SNAP_SHAPE_SIZE],
               struct snap_file *f, char *why, size_t wl)
{
	*f = (struct snap_file){0};
	if (len > SNAP_MAX_FILE)
		return refuse(-EFBIG, why, wl, "the state file is too large");
	if (len < SNAP_HDR_SIZE || memcmp(buf + H_MAGIC, magic, sizeof(magic)))
		return refuse(-EPROTO, why, wl, "not an msb snapshot (bad magic or too short)");
	if (get32(buf + H_VERSION) != SNAP_VERSION)
		return refuse(-EPROTONOSUPPORT, why, wl, "a snapshot of another format version");
	if (get32(buf + H_CRC) != snap_crc32(buf, H_CRC) || get32(buf + H_RSVD) != 0)
		return refuse(-EPROTO, why, wl, "the snapshot header is damaged (checksum)");
	if (memcmp(buf + H_SHAPE, shape, SNAP_SHAPE_SIZE))
		return refuse(-ESTALE, why, wl,
		              "the snapshot is of another kernel, agent or VM shape");
	uint32_t nsec = get32(buf + H_NSEC);
	size_t off = SNAP_HDR_SIZE;
	for (uint32_t i = 0; i < nsec; i++) {
		if (len - off < SNAP_SEC_SIZE)
			return refuse(-EPROTO, why, wl,
			              "the snapshot is truncated (section header)");
		uint32_t slen = get32(buf + off + 8);
		if (slen > len - off - SNAP_SEC_SIZE)
			return refuse(-EPROTO, why, wl, "the snapshot is truncated (section)");
		if (section_crc(buf + off, buf + off + SNAP_SEC_SIZE, slen) !=
		    get32(buf + off + 12))
			return refuse(-EPROTO, why, wl, "a snapshot section is damaged (checksum)");
		off += SNAP_SEC_SIZE + (size_t)slen;
	}
	if (off != len)
		return refuse(-EPROTO, why, wl, "bytes after the snapshot's last section");
	f->buf = (uint8_t *)buf;
	f->len = len;
	f->mem_bytes = get64(buf + H_MEM);
	f->nsections = nsec;
	return 0;
}

int snap_load(const char *path, const uint8_t shape[SNAP_SHAPE_SIZE], struct snap_file *f,
              char *why, size_t wl)
{
	*f = (struct snap_file){0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = -errno;
		snprintf(why, wl, "cannot open %s: %s", path, strerror(-e));
		return e;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size > SNAP_MAX_FILE) {
		close(fd);
		return refuse(-EFBIG, why, wl, "the state file is too large");
	}
	size_t len = (size_t)st.st_size;
	uint8_t *buf = malloc(len ? len : 1);
	size_t got = 0;
	while (buf && got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (!buf || got != len) {
		free(buf);
		return refuse(buf ? -EIO : -ENOMEM, why, wl, "cannot read the state file");
	}
	int e = snap_parse(buf, len, shape, f, why, wl);
	if (e)
		free(buf);
	return e;
}

const uint8_t *snap_find(const struct snap_file *f, uint32_t type, uint32_t id, uint32_t *len)
{
	size_t off = SNAP_HDR_SIZE;
	for (uint32_t i = 0; i < f->nsections; i++) {
		uint32_t slen = get32(f->buf + off + 8);
		if (get32(f->buf + off) == type && get32(f->buf + off + 4) == id) {
			*len = slen;
			return f->buf + off + SNAP_SEC_SIZE;
		}
		off += SNAP_SEC_SIZE + (size_t)slen;
	}
	return NULL;
}

void snap_free(struct snap_file *f)
{
	free(f->buf);
	*f = (struct snap_file){0};
}
