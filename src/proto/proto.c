/*
 * Frame headers, the incremental frame reader and credit accounting. The
 * payloads' own encoders and decoders are in messages.c.
 */
#include "proto.h"

#include <errno.h>
#include <stdlib.h>

enum { ID_ZERO, ID_NONZERO, ID_ANY };

/* What a header may say, per type. len limits let the reader refuse a bad
 * size before it buffers a byte of payload. */
struct type_rule {
	const char *name;
	uint32_t min_len;
	uint32_t max_len;
	uint16_t flags; /* flag bits defined for the type */
	uint8_t id;
};

static const struct type_rule rules[PROTO_TYPE_MAX + 1] = {
    [PROTO_HELLO] = {"HELLO", PROTO_HELLO_FIXED, PROTO_HELLO_FIXED + PROTO_MAX_NAME, 0, ID_ZERO},
    /* the smallest EXEC: "/" and a one-byte argv[0], each with its NUL */
    [PROTO_EXEC] = {"EXEC", PROTO_EXEC_FIXED + 4, PROTO_MAX_PAYLOAD, 0, ID_NONZERO},
    [PROTO_STDIN] = {"STDIN", 0, PROTO_MAX_PAYLOAD, 0, ID_NONZERO},
    [PROTO_STDOUT] = {"STDOUT", 0, PROTO_MAX_PAYLOAD, 0, ID_NONZERO},
    [PROTO_STDERR] = {"STDERR", 0, PROTO_MAX_PAYLOAD, 0, ID_NONZERO},
    [PROTO_CREDIT] = {"CREDIT", PROTO_CREDIT_SIZE, PROTO_CREDIT_SIZE, 0, ID_NONZERO},
    [PROTO_SIGNAL] = {"SIGNAL", PROTO_SIGNAL_SIZE, PROTO_SIGNAL_SIZE, 0, ID_NONZERO},
    [PROTO_RESIZE] = {"RESIZE", PROTO_RESIZE_SIZE, PROTO_RESIZE_SIZE, 0, ID_NONZERO},
    [PROTO_EXIT] = {"EXIT", PROTO_EXIT_SIZE, PROTO_EXIT_SIZE, 0, ID_NONZERO},
    [PROTO_ERROR] = {"ERROR", PROTO_ERROR_FIXED, PROTO_ERROR_FIXED + PROTO_MAX_ERROR_MSG, 0,
                     ID_ANY},
    [PROTO_SET_TIME] = {"SET_TIME", PROTO_SET_TIME_SIZE, PROTO_SET_TIME_SIZE, 0, ID_ZERO},
    [PROTO_ADD_ENTROPY] = {"ADD_ENTROPY", 1, PROTO_MAX_ENTROPY, 0, ID_ZERO},
    [PROTO_SHUTDOWN] = {"SHUTDOWN", 0, 0, 0, ID_ZERO},
    [PROTO_PING] = {"PING", 0, PROTO_MAX_PING, 0, ID_ZERO},
    [PROTO_PONG] = {"PONG", 0, PROTO_MAX_PING, 0, ID_ZERO},
    [PROTO_READY] = {"READY", PROTO_READY_SIZE, PROTO_READY_SIZE, 0, ID_NONZERO},
    [PROTO_SNAPSHOT] = {"SNAPSHOT", 0, 0, 0, ID_ZERO},
    [PROTO_SET_HOSTNAME] = {"SET_HOSTNAME", 1, PROTO_MAX_HOSTNAME, 0, ID_ZERO},
    [PROTO_MOUNT_ROOT] = {"MOUNT_ROOT", PROTO_MOUNT_ROOT_SIZE, PROTO_MOUNT_ROOT_SIZE, 0,
                          ID_NONZERO},
    [PROTO_DONE] = {"DONE", 0, 0, 0, ID_NONZERO},
};

const char *proto_type_name(unsigned type)
{
	if (type == 0 || type > PROTO_TYPE_MAX)
		return "?";
	return rules[type].name;
}

static int hdr_check(const struct proto_hdr *h)
{
	if (h->version != PROTO_VERSION)
		return -EPROTONOSUPPORT;
	if (h->len > PROTO_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (h->reserved != 0 || h->type == 0 || h->type > PROTO_TYPE_MAX)
		return -EPROTO;
	const struct type_rule *t = &rules[h->type];
	if (h->flags & ~t->flags)
		return -EPROTO;
	if ((t->id == ID_ZERO && h->id != 0) || (t->id == ID_NONZERO && h->id == 0))
		return -EPROTO;
	if (h->len < t->min_len || h->len > t->max_len)
		return -EPROTO;
	return 0;
}

int proto_hdr_decode(const uint8_t in[PROTO_HDR_SIZE], struct proto_hdr *h)
{
	struct proto_hdr t = {
	    .version = in[0],
	    .type = in[1],
	    .flags = proto_get16(in + 2),
	    .id = proto_get32(in + 4),
	    .len = proto_get32(in + 8),
	    .reserved = proto_get32(in + 12),
	};
	int e = hdr_check(&t);
	if (e)
		return e;
	*h = t;
	return 0;
}

int proto_hdr_encode(const struct proto_hdr *h, uint8_t out[PROTO_HDR_SIZE])
{
	if (hdr_check(h))
		return -EINVAL;
	out[0] = h->version;
	out[1] = h->type;
	proto_put16(out + 2, h->flags);
	proto_put32(out + 4, h->id);
	proto_put32(out + 8, h->len);
	proto_put32(out + 12, 0);
	return 0;
}

size_t proto_frame(uint8_t *out, size_t cap, uint8_t type, uint32_t id, const void *payload,
                   uint32_t len)
{
	struct proto_hdr h = {.version = PROTO_VERSION, .type = type, .id = id, .len = len};
	uint8_t hdr[PROTO_HDR_SIZE];
	if (cap < PROTO_HDR_SIZE || cap - PROTO_HDR_SIZE < len || (len && !payload))
		return 0;
	if (proto_hdr_encode(&h, hdr))
		return 0;
	/* memmove: the payload may already sit at out + PROTO_HDR_SIZE */
	if (len)
		memmove(out + PROTO_HDR_SIZE, payload, len);
	memcpy(out, hdr, PROTO_HDR_SIZE);
	return PROTO_HDR_SIZE + (size_t)len;
}

/* ---- Reader ------------------------------------------------------------ */

enum {
	R_FILL,  /* collecting a frame */
	R_READY, /* a frame is complete and not yet taken */
	R_TAKEN, /* the frame was handed out; the next feed starts another */
};

int proto_reader_init(struct proto_reader *r)
{
	memset(r, 0, sizeof(*r));
	/* Once, at the largest size a valid frame can have: the peer's len
	 * never drives an allocation. */
	r->buf = malloc(PROTO_HDR_SIZE + PROTO_MAX_PAYLOAD);
	if (!r->buf)
		return -ENOMEM;
	r->state = R_FILL;
	return 0;
}

void proto_reader_free(struct proto_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

int proto_reader_feed(struct proto_reader *r, const uint8_t *data, size_t len, size_t *consumed)
{
	*consumed = 0;
	if (r->err)
		return r->err;
	if (!r->buf)
		return -EINVAL;
	if (r->state == R_READY)
		return 1;
	if (r->state == R_TAKEN) {
		r->have = 0;
		r->state = R_FILL;
	}
	size_t off = 0;
	if (r->have < PROTO_HDR_SIZE) {
		size_t n = min_size(PROTO_HDR_SIZE - r->have, len);
		if (n)
			memcpy(r->buf + r->have, data, n);
		r->have += n;
		off += n;
		*consumed = off;
		if (r->have < PROTO_HDR_SIZE)
			return 0;
		int e = proto_hdr_decode(r->buf, &r->hdr);
		if (e) {
			r->err = e;
			return e;
		}
	}
	/* have <= PROTO_HDR_SIZE + hdr.len <= the buffer's size */
	size_t total = PROTO_HDR_SIZE + (size_t)r->hdr.len;
	size_t n = min_size(total - r->have, len - off);
	if (n)
		memcpy(r->buf + r->have, data + off, n);
	r->have += n;
	*consumed = off + n;
	if (r->have < total)
		return 0;
	r->state = R_READY;
	return 1;
}

int proto_reader_next(struct proto_reader *r, struct proto_hdr *h, const uint8_t **payload)
{
	if (r->err)
		return r->err;
	if (r->state != R_READY)
		return 0;
	*h = r->hdr;
	*payload = r->buf + PROTO_HDR_SIZE;
	r->state = R_TAKEN;
	return 1;
}

int proto_reader_partial(const struct proto_reader *r)
{
	return r->state == R_FILL && r->have > 0;
}

/* ---- Credit -------------------------------------------------------------- */

void proto_credit_init(struct proto_credit *c)
{
	c->granted = PROTO_INITIAL_CREDIT;
	c->used = 0;
}

uint64_t proto_credit_avail(const struct proto_credit *c)
{
	/* used > granted cannot happen through these functions; read it as
	 * "nothing left" rather than wrapping to a huge credit */
	return c->used < c->granted ? c->granted - c->used : 0;
}

int proto_credit_take(struct proto_credit *c, uint64_t n)
{
	if (n > proto_credit_avail(c))
		return -EAGAIN;
	c->used += n;
	return 0;
}

int proto_credit_grant(struct proto_credit *c, uint64_t n)
{
	uint64_t out = proto_credit_avail(c);
	if (out > PROTO_MAX_CREDIT || n > PROTO_MAX_CREDIT - out || n > UINT64_MAX - c->granted)
		return -EOVERFLOW;
	c->granted += n;
	return 0;
}
