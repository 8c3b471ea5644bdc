/*
 * A queue of encoded frames waiting to be written to a non-blocking stream.
 * Both the agent and the host session keep one per connection: a frame is
 * appended whole (so frames never interleave) and written out as the stream
 * accepts it. The queue itself has no size limit; each user bounds what it
 * appends (data only against credit, and only while wbuf_len() is below its
 * mark) and stops reading the peer while the queue is long.
 */
#ifndef MSB_PROTO_WBUF_H
#define MSB_PROTO_WBUF_H

#include <stddef.h>
#include <stdint.h>

struct wbuf {
	uint8_t *buf; /* owned */
	size_t off;   /* first byte not yet written */
	size_t len;   /* bytes in buf, written or not */
	size_t cap;
};

/* Bytes waiting to be written. */
static inline size_t wbuf_len(const struct wbuf *w)
{
	return w->len - w->off;
}

/* Appends one frame; returns 0, -EINVAL when proto_frame() refuses it (a
 * payload over the type's limits, a wrong id), or -ENOMEM. */
int wbuf_frame(struct wbuf *w, uint8_t type, uint32_t id, const void *payload, uint32_t len);

/* Reserves room for a frame of up to @max payload bytes and returns where its
 * payload goes (so a read() can fill it in place), or NULL on -ENOMEM. Finish
 * it with wbuf_commit(); nothing is queued until then. */
uint8_t *wbuf_reserve(struct wbuf *w, uint32_t max);

/* Queues the frame reserved last with @len (<= max) payload bytes. Returns 0
 * or -EINVAL as wbuf_frame(). */
int wbuf_commit(struct wbuf *w, uint8_t type, uint32_t id, uint32_t len);

/* Writes as much as @fd takes now. Returns 0 (possibly with bytes left:
 * wait for POLLOUT), or a negative errno from write() (-EPIPE when the peer
 * went away; SIGPIPE is never raised). */
int wbuf_flush(struct wbuf *w, int fd);

/* Frees the buffer; @w may be used again. */
void wbuf_free(struct wbuf *w);

#endif
