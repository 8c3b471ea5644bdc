/* The frame write queue: see wbuf.h. */
#include "wbuf.h"
#include "proto.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* Makes room for @need more bytes, compacting written bytes away first. */
static int wbuf_room(struct wbuf *w, size_t need)
{
	if (w->off > 0 && (w->off == w->len || w->cap - w->len < need)) {
		memmove(w->buf, w->buf + w->off, w->len - w->off);
		w->len -= w->off;
		w->off = 0;
	}
	if (w->cap - w->len >= need)
		return 0;
	if (need > SIZE_MAX / 2 - w->len)
		return -ENOMEM;
	size_t cap = w->cap ? w->cap : 4096;
	while (cap - w->len < need)
		cap *= 2;
	uint8_t *b = realloc(w->buf, cap);
	if (!b)
		return -ENOMEM;
	w->buf = b;
	w->cap = cap;
	return 0;
}

int wbuf_frame(struct wbuf *w, uint8_t type, uint32_t id, const void *payload, uint32_t len)
{
	if (len > PROTO_MAX_PAYLOAD)
		return -EINVAL;
	int e = wbuf_room(w, PROTO_HDR_SIZE + (size_t)len);
	if (e)
		return e;
	size_t n = proto_frame(w->buf + w->len, w->cap - w->len, type, id, payload, len);
	if (!n)
		return -EINVAL;
	w->len += n;
	return 0;
}

uint8_t *wbuf_reserve(struct wbuf *w, uint32_t max)
{
	if (max > PROTO_MAX_PAYLOAD || wbuf_room(w, PROTO_HDR_SIZE + (size_t)max))
		return NULL;
	return w->buf + w->len + PROTO_HDR_SIZE;
}

int wbuf_commit(struct wbuf *w, uint8_t type, uint32_t id, uint32_t len)
{
	uint8_t *p = w->buf + w->len;
	size_t n = proto_frame(p, w->cap - w->len, type, id, p + PROTO_HDR_SIZE, len);
	if (!n)
		return -EINVAL;
	w->len += n;
	return 0;
}

int wbuf_flush(struct wbuf *w, int fd)
{
	while (w->off < w->len) {
		/* send() on sockets for MSG_NOSIGNAL; write() on anything else */
		ssize_t n = send(fd, w->buf + w->off, w->len - w->off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, w->buf + w->off, w->len - w->off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		w->off += (size_t)n;
	}
	w->off = w->len = 0;
	return 0;
}

void wbuf_free(struct wbuf *w)
{
	free(w->buf);
	*w = (struct wbuf){0};
}
