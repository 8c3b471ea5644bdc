#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

/* ---- Builders: hostile shapes are one call each ------------------------ */

/* A header laid out byte by byte, without the encoder's checks. */
static void raw_hdr(uint8_t out[PROTO_HDR_SIZE], uint8_t version, uint8_t type, uint16_t flags,
                    uint32_t id, uint32_t len, uint32_t reserved)
{
	out[0] = version;
	out[1] = type;
	proto_put16(out + 2, flags);
	proto_put32(out + 4, id);
	proto_put32(out + 8, len);
	proto_put32(out + 12, reserved);
}

/* An EXEC payload from its fixed fields and a raw string area. */
static uint32_t exec_raw(uint8_t *out, uint32_t flags, uint32_t argc, uint32_t envc,
                         const char *area, size_t area_len)
{
	proto_put32(out, flags);
	proto_put32(out + 4, 1000); /* uid */
	proto_put32(out + 8, 1000); /* gid */
	proto_put16(out + 12, 0);
	proto_put16(out + 14, 0);
	proto_put32(out + 16, argc);
	proto_put32(out + 20, envc);
	memcpy(out + PROTO_EXEC_FIXED, area, area_len);
	return (uint32_t)(PROTO_EXEC_FIXED + area_len);
}

/* Decodes a raw EXEC area (sizeof a string literal counts its final NUL,
 * so pass sizeof(s) - 1 to leave it out). */
static int exec_try(uint32_t flags, uint32_t argc, uint32_t envc, const char *area, size_t n)
{
	uint8_t buf[512];
	struct proto_exec m;
	assert_true(n <= sizeof(buf) - PROTO_EXEC_FIXED);
	uint32_t len = exec_raw(buf, flags, argc, envc, area, n);
	int e = proto_exec_decode(buf, len, &m);
	if (e == 0)
		proto_exec_free(&m);
	else
		assert_null(m.argv);
	return e;
}

#define AREA(s) s, sizeof(s) - 1

/* ---- Headers ------------------------------------------------------------- */

static void test_hdr_layout(void **state)
{
	(void)state;
	struct proto_hdr h = {PROTO_VERSION, PROTO_EXIT, 0, 0x01020304, PROTO_EXIT_SIZE, 0}, d;
	uint8_t b[PROTO_HDR_SIZE];
	static const uint8_t want[PROTO_HDR_SIZE] = {1,  9, 0, 0, 4, 3, 2, 1,
	                                             12, 0, 0, 0, 0, 0, 0, 0};
	assert_int_equal(proto_hdr_encode(&h, b), 0);
	assert_memory_equal(b, want, sizeof(want));
	assert_int_equal(proto_hdr_decode(b, &d), 0);
	assert_memory_equal(&d, &h, sizeof(h));
	/* every type has a name; unknown ones do not crash */
	assert_string_equal(proto_type_name(PROTO_READY), "READY");
	assert_string_equal(proto_type_name(0), "?");
	assert_string_equal(proto_type_name(PROTO_TYPE_MAX + 1), "?");
}

static void test_hdr_rejects(void **state)
{
	(void)state;
	static const struct {
		uint8_t version, type;
		uint16_t flags;
		uint32_t id, len, reserved;
		int want;
	} rows[] = {
	    {1, PROTO_STDOUT, 0, 1, PROTO_MAX_PAYLOAD, 0, 0},
	    {0, PROTO_STDOUT, 0, 1, 0, 0, -EPROTONOSUPPORT},
	    {2, PROTO_STDOUT, 0, 1, 0, 0, -EPROTONOSUPPORT},
	    {1, PROTO_STDOUT, 0, 1, PROTO_MAX_PAYLOAD + 1, 0, -EMSGSIZE},
	    {1, PROTO_STDOUT, 0, 1, UINT32_MAX, 0, -EMSGSIZE},
	    {1, PROTO_STDOUT, 0, 1, 0, 1, -EPROTO},
	    {1, PROTO_STDOUT, 0, 1, 0, 0x80000000u, -EPROTO},
	    {1, 0, 0, 1, 0, 0, -EPROTO},
	    {1, PROTO_TYPE_MAX + 1, 0, 1, 0, 0, -EPROTO},
	    {1, 255, 0, 1, 0, 0, -EPROTO},
	    {1, PROTO_STDOUT, 1, 1, 0, 0, -EPROTO},
	    {1, PROTO_EXEC, 0x8000, 1, 100, 0, -EPROTO},
	    {1, PROTO_SIGNAL, 0, 1, 4, 0, 0},
	    {1, PROTO_SIGNAL, 0, 1, 3, 0, -EPROTO},
	    {1, PROTO_SIGNAL, 0, 1, 5, 0, -EPROTO},
	    {1, PROTO_SIGNAL, 0, 1, 0, 0, -EPROTO},
	    {1, PROTO_EXIT, 0, 1, 11, 0, -EPROTO},
	    {1, PROTO_CREDIT, 0, 1, 9, 0, -EPROTO},
	    {1, PROTO_READY, 0, 1, 8, 0, -EPROTO},
	    {1, PROTO_SET_TIME, 0, 0, 12, 0, -EPROTO},
	    {1, PROTO_SHUTDOWN, 0, 0, 0, 0, 0},
	    {1, PROTO_SHUTDOWN, 0, 0, 1, 0, -EPROTO},
	    {1, PROTO_PING, 0, 0, PROTO_MAX_PING, 0, 0},
	    {1, PROTO_PONG, 0, 0, PROTO_MAX_PING + 1, 0, -EPROTO},
	    {1, PROTO_ADD_ENTROPY, 0, 0, 0, 0, -EPROTO},
	    {1, PROTO_ADD_ENTROPY, 0, 0, PROTO_MAX_ENTROPY, 0, 0},
	    {1, PROTO_ADD_ENTROPY, 0, 0, PROTO_MAX_ENTROPY + 1, 0, -EPROTO},
	    {1, PROTO_ERROR, 0, 0, PROTO_ERROR_FIXED + PROTO_MAX_ERROR_MSG, 0, 0},
	    {1, PROTO_ERROR, 0, 7, PROTO_ERROR_FIXED, 0, 0},
	    {1, PROTO_ERROR, 0, 7, PROTO_ERROR_FIXED + PROTO_MAX_ERROR_MSG + 1, 0, -EPROTO},
	    {1, PROTO_ERROR, 0, 7, 3, 0, -EPROTO},
	    {1, PROTO_HELLO, 0, 0, PROTO_HELLO_FIXED + PROTO_MAX_NAME, 0, 0},
	    {1, PROTO_HELLO, 0, 0, PROTO_HELLO_FIXED + PROTO_MAX_NAME + 1, 0, -EPROTO},
	    {1, PROTO_EXEC, 0, 1, PROTO_EXEC_FIXED + 3, 0, -EPROTO},
	    {1, PROTO_EXEC, 0, 1, PROTO_EXEC_FIXED + 4, 0, 0},
	    /* connection-level types carry id 0, per-exec types a real id */
	    {1, PROTO_HELLO, 0, 1, PROTO_HELLO_FIXED, 0, -EPROTO},
	    {1, PROTO_PING, 0, 5, 0, 0, -EPROTO},
	    {1, PROTO_STDIN, 0, 0, 0, 0, -EPROTO},
	    {1, PROTO_EXIT, 0, 0, PROTO_EXIT_SIZE, 0, -EPROTO},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint8_t b[PROTO_HDR_SIZE];
		struct proto_hdr h, sentinel;
		memset(&h, 0xa5, sizeof(h));
		sentinel = h;
		raw_hdr(b, rows[i].version, rows[i].type, rows[i].flags, rows[i].id, rows[i].len,
		        rows[i].reserved);
		int e = proto_hdr_decode(b, &h);
		if (e != rows[i].want)
			fail_msg("row %zu: got %d, want %d", i, e, rows[i].want);
		if (e) {
			/* @h is filled only on success */
			assert_memory_equal(&h, &sentinel, sizeof(h));
			/* and the encoder refuses what the decoder refuses */
			struct proto_hdr enc = {rows[i].version, rows[i].type, rows[i].flags,
			                        rows[i].id,      rows[i].len,  rows[i].reserved};
			assert_int_equal(proto_hdr_encode(&enc, b), -EINVAL);
		}
	}
}

static void test_frame(void **state)
{
	(void)state;
	uint8_t out[64], before[64];
	struct proto_hdr h;
	memset(out, 0xee, sizeof(out));
	memcpy(before, out, sizeof(out));
	/* exactly fits, and one byte short */
	assert_int_equal(proto_frame(out, PROTO_HDR_SIZE + 4, PROTO_PING, 0, "abcd", 4), 20);
	assert_int_equal(proto_hdr_decode(out, &h), 0);
	assert_int_equal(h.type, PROTO_PING);
	assert_int_equal(h.len, 4);
	assert_memory_equal(out + PROTO_HDR_SIZE, "abcd", 4);
	memcpy(out, before, sizeof(out));
	assert_int_equal(proto_frame(out, PROTO_HDR_SIZE + 3, PROTO_PING, 0, "abcd", 4), 0);
	assert_int_equal(proto_frame(out, sizeof(out), PROTO_STDOUT, 1, out, PROTO_MAX_PAYLOAD + 1),
	                 0);
	assert_int_equal(proto_frame(out, sizeof(out), PROTO_SIGNAL, 1, "abcde", 5), 0);
	assert_int_equal(proto_frame(out, sizeof(out), PROTO_STDOUT, 0, "a", 1), 0);
	assert_int_equal(proto_frame(out, sizeof(out), 0, 1, "a", 1), 0);
	assert_int_equal(proto_frame(out, sizeof(out), PROTO_STDOUT, 1, NULL, 1), 0);
	assert_int_equal(proto_frame(out, 3, PROTO_SHUTDOWN, 0, NULL, 0), 0);
	assert_memory_equal(out, before, sizeof(out)); /* failures write nothing */
	/* EOF: an empty data frame */
	assert_int_equal(proto_frame(out, sizeof(out), PROTO_STDIN, 3, NULL, 0), PROTO_HDR_SIZE);
	/* a payload encoded in place */
	struct proto_signal sig = {15};
	int n = proto_signal_encode(&sig, out + PROTO_HDR_SIZE, sizeof(out) - PROTO_HDR_SIZE);
	assert_int_equal(n, PROTO_SIGNAL_SIZE);
	assert_int_equal(
	    proto_frame(out, sizeof(out), PROTO_SIGNAL, 9, out + PROTO_HDR_SIZE, (uint32_t)n), 20);
	struct proto_signal got;
	assert_int_equal(proto_hdr_decode(out, &h), 0);
	assert_int_equal(h.id, 9);
	assert_int_equal(proto_signal_decode(out + PROTO_HDR_SIZE, h.len, &got), 0);
	assert_int_equal(got.signo, 15);
}

/* ---- Reader ---------------------------------------------------------- */

struct seen {
	uint8_t type;
	uint32_t id, len;
	uint64_t hash;
};

static uint64_t fnv(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static int seen_equal(const struct seen *x, const struct seen *y)
{
	return x->type == y->type && x->id == y->id && x->len == y->len && x->hash == y->hash;
}

/* Reads @s through a reader in chunks: 0 = all at once, 1 = byte by byte,
 * 2 = pseudo-random sizes. Returns the number of frames, or the error. */
static int read_stream(const uint8_t *s, size_t n, int mode, struct seen *out, size_t max)
{
	struct proto_reader r;
	assert_int_equal(proto_reader_init(&r), 0);
	uint32_t rnd = 12345;
	size_t off = 0, count = 0;
	int e = 0;
	while (off < n) {
		size_t chunk = n - off;
		if (mode == 1)
			chunk = 1;
		if (mode == 2) {
			rnd = rnd * 1103515245u + 12345u;
			size_t c = (rnd >> 16) % 7000 + 1;
			chunk = c < chunk ? c : chunk;
		}
		/* the caller's loop from proto.h, over one chunk */
		size_t coff = 0, used;
		while (coff < chunk) {
			if ((e = proto_reader_feed(&r, s + off + coff, chunk - coff, &used)) < 0)
				goto out;
			coff += used;
			struct proto_hdr h;
			const uint8_t *p;
			if ((e = proto_reader_next(&r, &h, &p)) < 0)
				goto out;
			if (e == 1) {
				assert_true(count < max);
				out[count++] = (struct seen){h.type, h.id, h.len, fnv(p, h.len)};
			}
		}
		off += chunk;
	}
	assert_false(proto_reader_partial(&r));
	e = (int)count;
out:
	proto_reader_free(&r);
	return e;
}

/* Appends a frame to a growing stream. */
static void put_frame(uint8_t *s, size_t *n, size_t cap, uint8_t type, uint32_t id,
                      const void *payload, uint32_t len)
{
	size_t f = proto_frame(s + *n, cap - *n, type, id, payload, len);
	assert_int_not_equal(f, 0);
	*n += f;
}

static void test_reader_chunking(void **state)
{
	(void)state;
	size_t cap = 3 << 20, n = 0;
	uint8_t *s = malloc(cap), *big = malloc(PROTO_MAX_PAYLOAD + 5), pl[256];
	assert_non_null(s);
	assert_non_null(big);
	for (size_t i = 0; i < PROTO_MAX_PAYLOAD + 5; i++)
		big[i] = (uint8_t)(i * 7 + (i >> 9));
	struct proto_hello hello = {1, 1, 0, "msb-agent 0.1"};
	int len = proto_hello_encode(&hello, pl, sizeof(pl));
	assert_true(len > 0);
	put_frame(s, &n, cap, PROTO_HELLO, 0, pl, (uint32_t)len);
	const char *argv[] = {"sh", "-c", "echo hi", NULL}, *envp[] = {"PATH=/bin", NULL};
	struct proto_exec ex = {PROTO_EXEC_STDIN, 0, 0, 0, 0, 3, 1, "/root", argv, envp, NULL};
	len = proto_exec_encode(&ex, pl, sizeof(pl));
	assert_true(len > 0);
	put_frame(s, &n, cap, PROTO_EXEC, 1, pl, (uint32_t)len);
	put_frame(s, &n, cap, PROTO_STDIN, 1, "input", 5);
	put_frame(s, &n, cap, PROTO_STDIN, 1, NULL, 0);
	put_frame(s, &n, cap, PROTO_STDOUT, 1, big, 300000);
	put_frame(s, &n, cap, PROTO_STDERR, 1, big + 5, PROTO_MAX_PAYLOAD);
	put_frame(s, &n, cap, PROTO_PING, 0, NULL, 0);
	put_frame(s, &n, cap, PROTO_SHUTDOWN, 0, NULL, 0);
	free(big);

	struct seen a[16], b[16], c[16];
	assert_int_equal(read_stream(s, n, 0, a, 16), 8);
	assert_int_equal(read_stream(s, n, 1, b, 16), 8);
	assert_int_equal(read_stream(s, n, 2, c, 16), 8);
	for (int i = 0; i < 8; i++) {
		assert_true(seen_equal(&a[i], &b[i]));
		assert_true(seen_equal(&a[i], &c[i]));
	}
	assert_int_equal(a[0].type, PROTO_HELLO);
	assert_int_equal(a[3].type, PROTO_STDIN);
	assert_int_equal(a[3].len, 0);
	assert_int_equal(a[5].len, PROTO_MAX_PAYLOAD);
	assert_int_equal(a[7].type, PROTO_SHUTDOWN);
	free(s);
}

static void test_reader_back_to_back(void **state)
{
	(void)state;
	uint8_t s[64];
	size_t n = 0, used;
	put_frame(s, &n, sizeof(s), PROTO_STDOUT, 4, "first", 5);
	size_t first = n;
	put_frame(s, &n, sizeof(s), PROTO_STDERR, 4, "second!", 7);
	struct proto_reader r;
	struct proto_hdr h;
	const uint8_t *p;
	assert_int_equal(proto_reader_init(&r), 0);
	/* one feed holding both frames stops at the end of the first */
	assert_int_equal(proto_reader_feed(&r, s, n, &used), 1);
	assert_int_equal(used, first);
	/* an untaken frame is never overwritten */
	assert_int_equal(proto_reader_feed(&r, s + used, n - used, &used), 1);
	assert_int_equal(used, 0);
	assert_int_equal(proto_reader_next(&r, &h, &p), 1);
	assert_int_equal(h.type, PROTO_STDOUT);
	assert_int_equal(h.len, 5);
	assert_memory_equal(p, "first", 5);
	assert_int_equal(proto_reader_next(&r, &h, &p), 0); /* handed out once */
	assert_int_equal(proto_reader_feed(&r, s + first, n - first, &used), 1);
	assert_int_equal(used, n - first);
	assert_int_equal(proto_reader_next(&r, &h, &p), 1);
	assert_int_equal(h.type, PROTO_STDERR);
	assert_int_equal(h.id, 4);
	assert_memory_equal(p, "second!", 7);
	assert_false(proto_reader_partial(&r));
	proto_reader_free(&r);
	proto_reader_free(&r); /* twice is harmless */
}

static void test_reader_truncated(void **state)
{
	(void)state;
	uint8_t s[64];
	size_t n = 0, used;
	put_frame(s, &n, sizeof(s), PROTO_STDOUT, 2, "payload", 7);
	struct proto_reader r;
	struct proto_hdr h;
	const uint8_t *p;
	assert_int_equal(proto_reader_init(&r), 0);
	assert_false(proto_reader_partial(&r));
	/* a header one byte short */
	assert_int_equal(proto_reader_feed(&r, s, PROTO_HDR_SIZE - 1, &used), 0);
	assert_int_equal(used, PROTO_HDR_SIZE - 1);
	assert_int_equal(proto_reader_next(&r, &h, &p), 0);
	assert_true(proto_reader_partial(&r));
	/* the header's last byte and all but one of the payload */
	assert_int_equal(proto_reader_feed(&r, s + PROTO_HDR_SIZE - 1, n - PROTO_HDR_SIZE, &used),
	                 0);
	assert_int_equal(used, n - PROTO_HDR_SIZE);
	assert_int_equal(proto_reader_next(&r, &h, &p), 0);
	assert_true(proto_reader_partial(&r));
	/* nothing fed is nothing done */
	assert_int_equal(proto_reader_feed(&r, NULL, 0, &used), 0);
	assert_int_equal(used, 0);
	assert_int_equal(proto_reader_feed(&r, s + n - 1, 1, &used), 1);
	assert_int_equal(proto_reader_next(&r, &h, &p), 1);
	assert_memory_equal(p, "payload", 7);
	assert_false(proto_reader_partial(&r));
	proto_reader_free(&r);
	/* an uninitialised (freed) reader refuses */
	assert_int_equal(proto_reader_feed(&r, s, n, &used), -EINVAL);
}

/* Feeds @hdr and @extra junk bytes; the reader must fail at the header
 * with @want, having taken nothing past it, and stay failed. */
static void reader_fails(const uint8_t hdr[PROTO_HDR_SIZE], int want)
{
	uint8_t s[PROTO_HDR_SIZE + 100], good[PROTO_HDR_SIZE];
	memcpy(s, hdr, PROTO_HDR_SIZE);
	memset(s + PROTO_HDR_SIZE, 'x', 100);
	struct proto_reader r;
	struct proto_hdr h;
	const uint8_t *p;
	size_t used;
	assert_int_equal(proto_reader_init(&r), 0);
	assert_int_equal(proto_reader_feed(&r, s, sizeof(s), &used), want);
	assert_int_equal(used, PROTO_HDR_SIZE);
	assert_int_equal(proto_reader_next(&r, &h, &p), want);
	/* a valid frame afterwards changes nothing */
	assert_int_equal(proto_frame(good, sizeof(good), PROTO_PING, 0, NULL, 0), PROTO_HDR_SIZE);
	assert_int_equal(proto_reader_feed(&r, good, sizeof(good), &used), want);
	assert_int_equal(used, 0);
	assert_int_equal(proto_reader_next(&r, &h, &p), want);
	assert_int_equal(proto_reader_feed(&r, good, 0, &used), want);
	proto_reader_free(&r);
}

static void test_reader_bad_headers(void **state)
{
	(void)state;
	uint8_t b[PROTO_HDR_SIZE];
	/* oversized len is refused from the header alone: no payload follows */
	raw_hdr(b, 1, PROTO_STDOUT, 0, 1, PROTO_MAX_PAYLOAD + 1, 0);
	reader_fails(b, -EMSGSIZE);
	raw_hdr(b, 1, PROTO_STDOUT, 0, 1, UINT32_MAX, 0);
	reader_fails(b, -EMSGSIZE);
	raw_hdr(b, 2, PROTO_STDOUT, 0, 1, 4, 0);
	reader_fails(b, -EPROTONOSUPPORT);
	raw_hdr(b, 1, PROTO_STDOUT, 0, 1, 4, 1);
	reader_fails(b, -EPROTO);
	raw_hdr(b, 1, 77, 0, 1, 4, 0);
	reader_fails(b, -EPROTO);
	raw_hdr(b, 1, PROTO_STDOUT, 0x4, 1, 4, 0);
	reader_fails(b, -EPROTO);
	raw_hdr(b, 1, PROTO_SIGNAL, 0, 1, 8, 0);
	reader_fails(b, -EPROTO);
}

/* A bad frame after good ones: the good ones come out, then the error. */
static void test_reader_fails_mid_stream(void **state)
{
	(void)state;
	uint8_t s[128];
	size_t n = 0;
	put_frame(s, &n, sizeof(s), PROTO_PING, 0, "x", 1);
	raw_hdr(s + n, 1, PROTO_RESIZE, 0, 1, 5, 0);
	n += PROTO_HDR_SIZE + 5;
	struct seen got[4];
	assert_int_equal(read_stream(s, n, 1, got, 4), -EPROTO);
	assert_int_equal(read_stream(s, n, 0, got, 4), -EPROTO);
}

/* ---- Payloads ------------------------------------------------------------ */

static void test_hello(void **state)
{
	(void)state;
	uint8_t b[128];
	struct proto_hello m = {1, 3, 0xf0, "msb-agent \xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80"}, d;
	int n = proto_hello_encode(&m, b, sizeof(b));
	assert_int_equal(n, PROTO_HELLO_FIXED + strlen(m.name));
	assert_int_equal(proto_hello_decode(b, (uint32_t)n, &d), 0);
	assert_int_equal(d.version_min, 1);
	assert_int_equal(d.version_max, 3);
	assert_int_equal(d.features, 0xf0); /* unknown features pass through */
	assert_string_equal(d.name, m.name);
	assert_int_equal(proto_hello_pick(&d), 1);
	/* no name */
	struct proto_hello bare = {1, 1, 0, ""};
	assert_int_equal(proto_hello_encode(&bare, b, sizeof(b)), PROTO_HELLO_FIXED);
	memset(d.name, 'z', sizeof(d.name));
	assert_int_equal(proto_hello_decode(b, PROTO_HELLO_FIXED, &d), 0);
	assert_string_equal(d.name, "");
	assert_int_equal(proto_hello_encode(&bare, b, PROTO_HELLO_FIXED - 1), -ENOSPC);
	/* versions */
	struct proto_hello newer = {2, 5, 0, ""}, zero = {0, 1, 0, ""}, back = {2, 1, 0, ""};
	assert_int_equal(proto_hello_pick(&newer), -EPROTONOSUPPORT);
	assert_int_equal(proto_hello_encode(&zero, b, sizeof(b)), -EINVAL);
	assert_int_equal(proto_hello_encode(&back, b, sizeof(b)), -EINVAL);
	proto_put32(b, 0);
	assert_int_equal(proto_hello_decode(b, PROTO_HELLO_FIXED, &d), -EPROTO);
	proto_put32(b, 2);
	proto_put32(b + 4, 1);
	assert_int_equal(proto_hello_decode(b, PROTO_HELLO_FIXED, &d), -EPROTO);
	/* names: too long, bad UTF-8, control characters */
	static const struct {
		const char *name;
		size_t len;
		int want;
	} names[] = {
	    {"abc", 3, 0},
	    {"x\xff", 2, -EPROTO},
	    {"\xc0\x80", 2, -EPROTO},     /* overlong NUL */
	    {"\xe0\x80\xaf", 3, -EPROTO}, /* overlong '/' */
	    {"\xed\xa0\x80", 3, -EPROTO}, /* a surrogate */
	    {"\xf4\x90\x80\x80", 4, -EPROTO},
	    {"\xe2\x82", 2, -EPROTO}, /* cut short */
	    {"a\0b", 3, -EPROTO},
	    {"\x1b[2J", 4, -EPROTO},
	    {"\x7f", 1, -EPROTO},
	    {"\xc2\x9b", 2, -EPROTO}, /* C1 CSI */
	    {"\xc2\xa0", 2, 0},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		proto_put32(b, 1);
		proto_put32(b + 4, 1);
		proto_put32(b + 8, 0);
		memcpy(b + PROTO_HELLO_FIXED, names[i].name, names[i].len);
		uint32_t len = (uint32_t)(PROTO_HELLO_FIXED + names[i].len);
		if (proto_hello_decode(b, len, &d) != names[i].want)
			fail_msg("name %zu", i);
	}
	memset(b + PROTO_HELLO_FIXED, 'a', PROTO_MAX_NAME + 1);
	assert_int_equal(proto_hello_decode(b, PROTO_HELLO_FIXED + PROTO_MAX_NAME, &d), 0);
	assert_int_equal(strlen(d.name), PROTO_MAX_NAME);
	assert_int_equal(proto_hello_decode(b, PROTO_HELLO_FIXED + PROTO_MAX_NAME + 1, &d),
	                 -EPROTO);
	struct proto_hello bad = {1, 1, 0, "tab\there"};
	assert_int_equal(proto_hello_encode(&bad, b, sizeof(b)), -EINVAL);
	memset(bad.name, 'a', sizeof(bad.name)); /* no NUL within name[] */
	assert_int_equal(proto_hello_encode(&bad, b, sizeof(b)), -EINVAL);
}

static void test_exec_roundtrip(void **state)
{
	(void)state;
	uint8_t b[512];
	const char *argv[] = {"/bin/sh", "-c", "", "echo \xff", NULL};
	const char *envp[] = {"PATH=/usr/bin:/bin", "EMPTY=", "A==b", NULL};
	struct proto_exec m = {PROTO_EXEC_TTY | PROTO_EXEC_STDIN,
	                       1000,
	                       100,
	                       24,
	                       80,
	                       4,
	                       3,
	                       "/home/u",
	                       argv,
	                       envp,
	                       NULL},
	                  d;
	int n = proto_exec_encode(&m, b, sizeof(b));
	assert_true(n > 0);
	assert_int_equal(proto_exec_encode(&m, b, (size_t)n - 1), -ENOSPC);
	assert_int_equal(proto_exec_encode(&m, b, (size_t)n), n);
	assert_int_equal(proto_exec_decode(b, (uint32_t)n, &d), 0);
	assert_int_equal(d.flags, m.flags);
	assert_int_equal(d.uid, 1000);
	assert_int_equal(d.gid, 100);
	assert_int_equal(d.rows, 24);
	assert_int_equal(d.cols, 80);
	assert_int_equal(d.argc, 4);
	assert_int_equal(d.envc, 3);
	assert_string_equal(d.cwd, "/home/u");
	for (int i = 0; i < 4; i++)
		assert_string_equal(d.argv[i], argv[i]);
	for (int i = 0; i < 3; i++)
		assert_string_equal(d.envp[i], envp[i]);
	assert_null(d.argv[4]);
	assert_null(d.envp[3]);
	/* the strings are not copies: they lie in the payload */
	assert_ptr_equal(d.cwd, (const char *)b + PROTO_EXEC_FIXED);
	assert_true((const uint8_t *)d.envp[2] > b && (const uint8_t *)d.envp[2] < b + n);
	proto_exec_free(&d);
	assert_null(d.argv);
	proto_exec_free(&d);

	/* no environment, no tty */
	struct proto_exec bare = {0, 0, 0, 0, 0, 1, 0, "/", argv, NULL, NULL};
	n = proto_exec_encode(&bare, b, sizeof(b));
	assert_int_equal(n, PROTO_EXEC_FIXED + 2 + 8);
	assert_int_equal(proto_exec_decode(b, (uint32_t)n, &d), 0);
	assert_int_equal(d.envc, 0);
	assert_null(d.envp[0]);
	assert_null(d.argv[1]);
	assert_null(d.user);
	proto_exec_free(&d);

	/* a user: after env, flagged, and it alone decides the ids */
	struct proto_exec u = {PROTO_EXEC_USER, 0, 0, 0, 0, 1, 1, "/", argv, envp, "app:wheel"};
	n = proto_exec_encode(&u, b, sizeof(b));
	assert_int_equal(n, PROTO_EXEC_FIXED + 2 + 8 + 19 + 10);
	assert_memory_equal(b + n - 10, "app:wheel", 10);
	assert_int_equal(proto_exec_decode(b, (uint32_t)n, &d), 0);
	assert_int_equal(d.flags, PROTO_EXEC_USER);
	assert_int_equal(d.envc, 1);
	assert_string_equal(d.envp[0], envp[0]);
	assert_null(d.envp[1]);
	assert_string_equal(d.user, "app:wheel");
	assert_ptr_equal(d.user, (const char *)b + n - 10);
	proto_exec_free(&d);
	/* and without env */
	u.envc = 0;
	n = proto_exec_encode(&u, b, sizeof(b));
	assert_int_equal(proto_exec_decode(b, (uint32_t)n, &d), 0);
	assert_string_equal(d.user, "app:wheel");
	assert_null(d.envp[0]);
	proto_exec_free(&d);
}

static void test_exec_rejects(void **state)
{
	(void)state;
	assert_int_equal(exec_try(0, 2, 1, AREA("/\0sh\0-c\0PATH=/bin\0")), 0);
	assert_int_equal(exec_try(0, 0, 0, AREA("/\0sh\0")), -EPROTO);
	/* argc larger than the strings present */
	assert_int_equal(exec_try(0, 5, 0, AREA("/\0sh\0a\0b\0")), -EPROTO);
	assert_int_equal(exec_try(0, 2, 1, AREA("/\0sh\0-c\0")), -EPROTO);
	/* a string missing its NUL */
	assert_int_equal(exec_try(0, 1, 0, AREA("/\0sh")), -EPROTO);
	assert_int_equal(exec_try(0, 1, 1, AREA("/\0sh\0A=b")), -EPROTO);
	/* bytes after the last string */
	assert_int_equal(exec_try(0, 1, 0, AREA("/\0sh\0x")), -EPROTO);
	assert_int_equal(exec_try(0, 1, 0, AREA("/\0sh\0\0")), -EPROTO);
	/* cwd relative or empty; argv[0] empty */
	assert_int_equal(exec_try(0, 1, 0, AREA("tmp\0sh\0")), -EPROTO);
	assert_int_equal(exec_try(0, 1, 0, AREA("\0sh\0")), -EPROTO);
	assert_int_equal(exec_try(0, 1, 0, AREA("/\0\0")), -EPROTO);
	assert_int_equal(exec_try(0, 2, 0, AREA("/\0sh\0\0")), 0); /* later args may be empty */
	/* env without '=', or with it first */
	assert_int_equal(exec_try(0, 1, 1, AREA("/\0sh\0PATH\0")), -EPROTO);
	assert_int_equal(exec_try(0, 1, 1, AREA("/\0sh\0=x\0")), -EPROTO);
	assert_int_equal(exec_try(0, 1, 1, AREA("/\0sh\0\0")), -EPROTO);
	/* counts over the limits, before any string is looked at */
	assert_int_equal(exec_try(0, PROTO_MAX_ARGS + 1, 0, AREA("/\0sh\0")), -E2BIG);
	assert_int_equal(exec_try(0, UINT32_MAX, 0, AREA("/\0sh\0")), -E2BIG);
	assert_int_equal(exec_try(0, 1, PROTO_MAX_ENV + 1, AREA("/\0sh\0")), -E2BIG);
	assert_int_equal(exec_try(0, 1, UINT32_MAX, AREA("/\0sh\0")), -E2BIG);
	/* flags, ids and terminal size */
	assert_int_equal(exec_try(1u << 3, 1, 0, AREA("/\0sh\0")), -EPROTO);
	assert_int_equal(exec_try(1u << 31, 1, 0, AREA("/\0sh\0")), -EPROTO);
	assert_int_equal(exec_try(PROTO_EXEC_TTY, 1, 0, AREA("/\0sh\0")), 0); /* size unknown */
	uint8_t b[64];
	struct proto_exec d;
	uint32_t len = exec_raw(b, 0, 1, 0, AREA("/\0sh\0"));
	proto_put16(b + 12, 24);
	proto_put16(b + 14, 80);
	assert_int_equal(proto_exec_decode(b, len, &d), -EPROTO); /* size without a tty */
	proto_put32(b, PROTO_EXEC_TTY);
	assert_int_equal(proto_exec_decode(b, len, &d), 0);
	proto_exec_free(&d);
	proto_put16(b + 12, 0);
	assert_int_equal(proto_exec_decode(b, len, &d), -EPROTO); /* rows 0, cols 80 */
	len = exec_raw(b, 0, 1, 0, AREA("/\0sh\0"));
	proto_put32(b + 4, UINT32_MAX);
	assert_int_equal(proto_exec_decode(b, len, &d), -EPROTO);
	/* the user string: present exactly with its flag, not empty, alone
	 * deciding the ids */
	uint8_t ub[128];
	len = exec_raw(ub, PROTO_EXEC_USER, 1, 1, AREA("/\0sh\0A=b\0app\0"));
	proto_put32(ub + 4, 0);
	proto_put32(ub + 8, 0);
	assert_int_equal(proto_exec_decode(ub, len, &d), 0);
	assert_string_equal(d.user, "app");
	assert_string_equal(d.envp[0], "A=b");
	proto_exec_free(&d);
	proto_put32(ub + 4, 1000); /* a uid besides the user */
	assert_int_equal(proto_exec_decode(ub, len, &d), -EPROTO);
	proto_put32(ub + 4, 0);
	proto_put32(ub + 8, 1000); /* a gid besides the user */
	assert_int_equal(proto_exec_decode(ub, len, &d), -EPROTO);
	assert_null(d.argv);
	/* exec_raw puts uid and gid 1000: refused with the flag */
	assert_int_equal(exec_try(PROTO_EXEC_USER, 1, 0, AREA("/\0sh\0app\0")), -EPROTO);
	const struct {
		const char *area;
		size_t n;
		uint32_t envc;
		int want;
	} users[] = {
	    {AREA("/\0sh\0app\0"), 0, 0},
	    {AREA("/\0sh\0A=b\0"), 1, -EPROTO}, /* the flag, no user */
	    {AREA("/\0sh\0"), 0, -EPROTO},
	    {AREA("/\0sh\0\0"), 0, -EPROTO},      /* empty user */
	    {AREA("/\0sh\0app"), 0, -EPROTO},     /* no NUL */
	    {AREA("/\0sh\0app\0x"), 0, -EPROTO},  /* bytes after it */
	    {AREA("/\0sh\0app\0\0"), 0, -EPROTO}, /* a second, empty string */
	    {AREA("/\0sh\0A=b\0app\0"), 1, 0},
	};
	for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
		len = exec_raw(ub, PROTO_EXEC_USER, 1, users[i].envc, users[i].area, users[i].n);
		proto_put32(ub + 4, 0);
		proto_put32(ub + 8, 0);
		int e = proto_exec_decode(ub, len, &d);
		if (e != users[i].want)
			fail_msg("user case %zu: %d", i, e);
		proto_exec_free(&d);
	}
	/* without the flag a string after env is trailing bytes */
	len = exec_raw(ub, 0, 1, 1, AREA("/\0sh\0A=b\0app\0"));
	assert_int_equal(proto_exec_decode(ub, len, &d), -EPROTO);
	/* short payloads */
	assert_int_equal(proto_exec_decode(b, PROTO_EXEC_FIXED - 1, &d), -EPROTO);
	assert_int_equal(proto_exec_decode(b, PROTO_EXEC_FIXED, &d), -EPROTO);
	assert_null(d.argv);
}

static void test_exec_limits(void **state)
{
	(void)state;
	size_t cap = PROTO_MAX_PAYLOAD;
	uint8_t *b = malloc(cap);
	char *s = malloc(PROTO_MAX_STRING + 2);
	const char **argv = calloc(PROTO_MAX_ARGS + 2, sizeof(*argv));
	assert_non_null(b);
	assert_non_null(s);
	assert_non_null(argv);
	struct proto_exec d;

	/* 4096 arguments pass, 4097 do not */
	for (int i = 0; i < PROTO_MAX_ARGS + 1; i++)
		argv[i] = "a";
	struct proto_exec m = {0, 0, 0, 0, 0, PROTO_MAX_ARGS, 0, "/", argv, NULL, NULL};
	int n = proto_exec_encode(&m, b, cap);
	assert_int_equal(n, PROTO_EXEC_FIXED + 2 + 2 * PROTO_MAX_ARGS);
	assert_int_equal(proto_exec_decode(b, (uint32_t)n, &d), 0);
	assert_int_equal(d.argc, PROTO_MAX_ARGS);
	assert_string_equal(d.argv[PROTO_MAX_ARGS - 1], "a");
	assert_null(d.argv[PROTO_MAX_ARGS]);
	proto_exec_free(&d);
	m.argc = PROTO_MAX_ARGS + 1;
	assert_int_equal(proto_exec_encode(&m, b, cap), -E2BIG);
	/* the same on the wire: 4097 strings present, argc says 4097 */
	memcpy(b + n, "a", 2);
	proto_put32(b + 16, PROTO_MAX_ARGS + 1);
	assert_int_equal(proto_exec_decode(b, (uint32_t)n + 2, &d), -E2BIG);

	/* a string of exactly PROTO_MAX_STRING bytes passes, one more does not */
	memset(s, 'x', PROTO_MAX_STRING + 1);
	s[PROTO_MAX_STRING] = '\0';
	argv[0] = "sh";
	argv[1] = s;
	m.argc = 2;
	n = proto_exec_encode(&m, b, cap);
	assert_int_equal(n, PROTO_EXEC_FIXED + 2 + 3 + PROTO_MAX_STRING + 1);
	assert_int_equal(proto_exec_decode(b, (uint32_t)n, &d), 0);
	assert_int_equal(strlen(d.argv[1]), PROTO_MAX_STRING);
	proto_exec_free(&d);
	s[PROTO_MAX_STRING] = 'x';
	s[PROTO_MAX_STRING + 1] = '\0';
	assert_int_equal(proto_exec_encode(&m, b, cap), -E2BIG);
	/* on the wire: grow the last string by one byte */
	b[n - 1] = 'x';
	b[n] = '\0';
	assert_int_equal(proto_exec_decode(b, (uint32_t)n + 1, &d), -E2BIG);

	/* 20 strings of 64 KiB are over PROTO_MAX_PAYLOAD */
	s[PROTO_MAX_STRING] = '\0';
	for (int i = 1; i < 20; i++)
		argv[i] = s;
	m.argc = 20;
	assert_int_equal(proto_exec_encode(&m, b, cap), -EMSGSIZE);

	/* the encoder checks what the decoder checks */
	const char *av[] = {"sh", NULL}, *bad_env[] = {"NOEQUALS", NULL}, *null_arg[] = {NULL};
	struct proto_exec e1 = {0, 0, 0, 0, 0, 1, 0, "relative", av, NULL, NULL};
	struct proto_exec e2 = {0, 0, 0, 0, 0, 1, 1, "/", av, bad_env, NULL};
	struct proto_exec e3 = {0, 0, 0, 0, 0, 1, 0, "/", null_arg, NULL, NULL};
	struct proto_exec e4 = {0, 0, 0, 0, 0, 0, 0, "/", av, NULL, NULL};
	struct proto_exec e5 = {0, 0, 0, 0, 0, 1, 0, NULL, av, NULL, NULL};
	struct proto_exec e6 = {1u << 5, 0, 0, 0, 0, 1, 0, "/", av, NULL, NULL};
	struct proto_exec e7 = {0, 0, 0, 0, 0, 1, PROTO_MAX_ENV + 1, "/", av, NULL, NULL};
	struct proto_exec e8 = {0, 0, 0, 0, 0, 1, 1, "/", av, NULL, NULL};
	assert_int_equal(proto_exec_encode(&e1, b, cap), -EINVAL);
	assert_int_equal(proto_exec_encode(&e2, b, cap), -EINVAL);
	assert_int_equal(proto_exec_encode(&e3, b, cap), -EINVAL);
	assert_int_equal(proto_exec_encode(&e4, b, cap), -EINVAL);
	assert_int_equal(proto_exec_encode(&e5, b, cap), -EINVAL);
	assert_int_equal(proto_exec_encode(&e6, b, cap), -EINVAL);
	assert_int_equal(proto_exec_encode(&e7, b, cap), -E2BIG);
	assert_int_equal(proto_exec_encode(&e8, b, cap), -EINVAL);
	/* the user and its flag go together; it is not empty, decides the ids
	 * and has the strings' limit */
	struct proto_exec u1 = {0, 0, 0, 0, 0, 1, 0, "/", av, NULL, "app"};
	struct proto_exec u2 = {PROTO_EXEC_USER, 0, 0, 0, 0, 1, 0, "/", av, NULL, NULL};
	struct proto_exec u3 = {PROTO_EXEC_USER, 0, 0, 0, 0, 1, 0, "/", av, NULL, ""};
	struct proto_exec u4 = {PROTO_EXEC_USER, 1000, 0, 0, 0, 1, 0, "/", av, NULL, "app"};
	struct proto_exec u5 = {PROTO_EXEC_USER, 0, 0, 0, 0, 1, 0, "/", av, NULL, s};
	assert_int_equal(proto_exec_encode(&u1, b, cap), -EINVAL);
	assert_int_equal(proto_exec_encode(&u2, b, cap), -EINVAL);
	assert_int_equal(proto_exec_encode(&u3, b, cap), -EINVAL);
	assert_int_equal(proto_exec_encode(&u4, b, cap), -EINVAL);
	s[PROTO_MAX_STRING] = '\0';
	n = proto_exec_encode(&u5, b, cap);
	assert_int_equal(n, PROTO_EXEC_FIXED + 2 + 3 + PROTO_MAX_STRING + 1);
	assert_int_equal(proto_exec_decode(b, (uint32_t)n, &d), 0);
	assert_int_equal(strlen(d.user), PROTO_MAX_STRING);
	proto_exec_free(&d);
	s[PROTO_MAX_STRING] = 'x';
	assert_int_equal(proto_exec_encode(&u5, b, cap), -E2BIG);
	b[n - 1] = 'x';
	b[n] = '\0';
	assert_int_equal(proto_exec_decode(b, (uint32_t)n + 1, &d), -E2BIG);
	free(argv);
	free(s);
	free(b);
}

static void test_fixed_messages(void **state)
{
	(void)state;
	uint8_t b[32];

	struct proto_credit_msg c = {PROTO_STREAM_STDERR, 65536}, cd;
	assert_int_equal(proto_credit_encode(&c, b, sizeof(b)), PROTO_CREDIT_SIZE);
	assert_int_equal(proto_credit_decode(b, PROTO_CREDIT_SIZE, &cd), 0);
	assert_int_equal(cd.stream, PROTO_STREAM_STDERR);
	assert_int_equal(cd.bytes, 65536);
	assert_int_equal(proto_credit_decode(b, PROTO_CREDIT_SIZE - 1, &cd), -EPROTO);
	proto_put32(b, 3);
	assert_int_equal(proto_credit_decode(b, PROTO_CREDIT_SIZE, &cd), -EPROTO);
	proto_put32(b, 0);
	proto_put32(b + 4, 0);
	assert_int_equal(proto_credit_decode(b, PROTO_CREDIT_SIZE, &cd), -EPROTO);
	c.bytes = 0;
	assert_int_equal(proto_credit_encode(&c, b, sizeof(b)), -EINVAL);
	c = (struct proto_credit_msg){3, 1};
	assert_int_equal(proto_credit_encode(&c, b, sizeof(b)), -EINVAL);
	c = (struct proto_credit_msg){0, 1};
	assert_int_equal(proto_credit_encode(&c, b, PROTO_CREDIT_SIZE - 1), -ENOSPC);

	struct proto_signal s = {PROTO_MAX_SIGNAL}, sd;
	assert_int_equal(proto_signal_encode(&s, b, sizeof(b)), PROTO_SIGNAL_SIZE);
	assert_int_equal(proto_signal_decode(b, PROTO_SIGNAL_SIZE, &sd), 0);
	assert_int_equal(sd.signo, PROTO_MAX_SIGNAL);
	assert_int_equal(proto_signal_decode(b, 5, &sd), -EPROTO);
	assert_int_equal(proto_signal_decode(b, 3, &sd), -EPROTO);
	proto_put32(b, 0);
	assert_int_equal(proto_signal_decode(b, PROTO_SIGNAL_SIZE, &sd), -EPROTO);
	proto_put32(b, PROTO_MAX_SIGNAL + 1);
	assert_int_equal(proto_signal_decode(b, PROTO_SIGNAL_SIZE, &sd), -EPROTO);
	s.signo = 0;
	assert_int_equal(proto_signal_encode(&s, b, sizeof(b)), -EINVAL);

	struct proto_resize r = {50, 132}, rd;
	assert_int_equal(proto_resize_encode(&r, b, sizeof(b)), PROTO_RESIZE_SIZE);
	assert_int_equal(proto_resize_decode(b, PROTO_RESIZE_SIZE, &rd), 0);
	assert_int_equal(rd.rows, 50);
	assert_int_equal(rd.cols, 132);
	proto_put16(b + 2, 0);
	assert_int_equal(proto_resize_decode(b, PROTO_RESIZE_SIZE, &rd), -EPROTO);
	r.rows = 0;
	assert_int_equal(proto_resize_encode(&r, b, sizeof(b)), -EINVAL);

	struct proto_ready y = {4242}, yd;
	assert_int_equal(proto_ready_encode(&y, b, sizeof(b)), PROTO_READY_SIZE);
	assert_int_equal(proto_ready_decode(b, PROTO_READY_SIZE, &yd), 0);
	assert_int_equal(yd.pid, 4242);
	proto_put32(b, 0);
	assert_int_equal(proto_ready_decode(b, PROTO_READY_SIZE, &yd), -EPROTO);
	proto_put32(b, 0x80000000u);
	assert_int_equal(proto_ready_decode(b, PROTO_READY_SIZE, &yd), -EPROTO);
	y.pid = 0;
	assert_int_equal(proto_ready_encode(&y, b, sizeof(b)), -EINVAL);

	struct proto_mount_root mr = {3, 0, 5000, 0}, mrd;
	assert_int_equal(proto_mount_root_encode(&mr, b, sizeof(b)), PROTO_MOUNT_ROOT_SIZE);
	assert_int_equal(proto_mount_root_decode(b, PROTO_MOUNT_ROOT_SIZE, &mrd), 0);
	assert_int_equal(mrd.disk, 3);
	assert_int_equal(mrd.wait_ms, 5000);
	proto_put32(b, PROTO_MAX_DISK + 1);
	assert_int_equal(proto_mount_root_decode(b, PROTO_MOUNT_ROOT_SIZE, &mrd), -EPROTO);
	proto_put32(b, 0);
	proto_put32(b + 4, 1);
	assert_int_equal(proto_mount_root_decode(b, PROTO_MOUNT_ROOT_SIZE, &mrd), -EPROTO);
	proto_put32(b + 4, 0);
	proto_put32(b + 8, PROTO_MAX_WAIT_MS + 1);
	assert_int_equal(proto_mount_root_decode(b, PROTO_MOUNT_ROOT_SIZE, &mrd), -EPROTO);
	proto_put32(b + 8, 0);
	proto_put32(b + 12, 1); /* an upper slot without the flag */
	assert_int_equal(proto_mount_root_decode(b, PROTO_MOUNT_ROOT_SIZE, &mrd), -EPROTO);

	/* the writable layer on its own disk: another slot, in range */
	struct proto_mount_root up = {0, PROTO_ROOT_UPPER_DISK, 100, 1};
	assert_int_equal(proto_mount_root_encode(&up, b, sizeof(b)), PROTO_MOUNT_ROOT_SIZE);
	assert_int_equal(proto_mount_root_decode(b, PROTO_MOUNT_ROOT_SIZE, &mrd), 0);
	assert_int_equal(mrd.flags, PROTO_ROOT_UPPER_DISK);
	assert_int_equal(mrd.upper, 1);
	proto_put32(b + 12, 0); /* the root's own disk */
	assert_int_equal(proto_mount_root_decode(b, PROTO_MOUNT_ROOT_SIZE, &mrd), -EPROTO);
	proto_put32(b + 12, PROTO_MAX_DISK + 1);
	assert_int_equal(proto_mount_root_decode(b, PROTO_MOUNT_ROOT_SIZE, &mrd), -EPROTO);
	up.upper = 0;
	assert_int_equal(proto_mount_root_encode(&up, b, sizeof(b)), -EINVAL);

	uint8_t hb[PROTO_MAX_HOSTNAME + 8];
	struct proto_hostname hn = {"msb-1a2b.example"}, hnd;
	int hl = proto_hostname_encode(&hn, hb, sizeof(hb));
	assert_int_equal(hl, 16);
	assert_int_equal(proto_hostname_decode(hb, (uint32_t)hl, &hnd), 0);
	assert_string_equal(hnd.name, "msb-1a2b.example");
	const char *bad_names[] = {"-a", "a-", ".a", "a.", "a b", "a\nb", "a/b", "", "a\x80"};
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		assert_false(proto_hostname_valid(bad_names[i]));
		size_t n = strlen(bad_names[i]);
		memcpy(hb, bad_names[i], n);
		assert_int_equal(proto_hostname_decode(hb, (uint32_t)n, &hnd), -EPROTO);
	}
	memset(hb, 'a', PROTO_MAX_HOSTNAME + 1);
	assert_int_equal(proto_hostname_decode(hb, PROTO_MAX_HOSTNAME, &hnd), 0);
	assert_int_equal(proto_hostname_decode(hb, PROTO_MAX_HOSTNAME + 1, &hnd), -EPROTO);
	hb[3] = 0; /* a NUL inside */
	assert_int_equal(proto_hostname_decode(hb, 8, &hnd), -EPROTO);

	struct proto_set_time t = {1700000000, 999999999}, td;
	assert_int_equal(proto_set_time_encode(&t, b, sizeof(b)), PROTO_SET_TIME_SIZE);
	assert_int_equal(proto_set_time_decode(b, PROTO_SET_TIME_SIZE, &td), 0);
	assert_int_equal(td.sec, 1700000000);
	assert_int_equal(td.nsec, 999999999);
	proto_put32(b + 12, 1);
	assert_int_equal(proto_set_time_decode(b, PROTO_SET_TIME_SIZE, &td), -EPROTO);
	proto_put32(b + 12, 0);
	proto_put32(b + 8, 1000000000u);
	assert_int_equal(proto_set_time_decode(b, PROTO_SET_TIME_SIZE, &td), -EPROTO);
	proto_put32(b + 8, 0);
	proto_put64(b, (uint64_t)-1);
	assert_int_equal(proto_set_time_decode(b, PROTO_SET_TIME_SIZE, &td), -EPROTO);
	t.nsec = 1000000000u;
	assert_int_equal(proto_set_time_encode(&t, b, sizeof(b)), -EINVAL);
	t = (struct proto_set_time){-1, 0};
	assert_int_equal(proto_set_time_encode(&t, b, sizeof(b)), -EINVAL);
}

static void test_exit(void **state)
{
	(void)state;
	uint8_t b[16];
	struct proto_exit x = {PROTO_EXIT_SIGNALED, 11, 1}, d;
	assert_int_equal(proto_exit_encode(&x, b, sizeof(b)), PROTO_EXIT_SIZE);
	assert_int_equal(proto_exit_decode(b, PROTO_EXIT_SIZE, &d), 0);
	assert_int_equal(d.kind, PROTO_EXIT_SIGNALED);
	assert_int_equal(d.value, 11);
	assert_int_equal(d.core_dumped, 1);
	x = (struct proto_exit){PROTO_EXIT_EXITED, 255, 0};
	assert_int_equal(proto_exit_encode(&x, b, sizeof(b)), PROTO_EXIT_SIZE);
	assert_int_equal(proto_exit_decode(b, PROTO_EXIT_SIZE, &d), 0);
	assert_int_equal(d.value, 255);

	static const struct {
		uint32_t kind, value;
		uint8_t core, pad;
	} bad[] = {
	    {2, 0, 0, 0},
	    {PROTO_EXIT_EXITED, 256, 0, 0},
	    {PROTO_EXIT_EXITED, 0, 1, 0},
	    {1, 0, 0, 0},
	    {1, PROTO_MAX_SIGNAL + 1, 0, 0},
	    {1, 9, 2, 0},
	    {0, 0, 0, 1},
	    {1, 9, 1, 0x80},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		proto_put32(b, bad[i].kind);
		proto_put32(b + 4, bad[i].value);
		b[8] = bad[i].core;
		b[9] = b[10] = b[11] = 0;
		b[8 + 1 + i % 3] = bad[i].pad;
		if (proto_exit_decode(b, PROTO_EXIT_SIZE, &d) != -EPROTO)
			fail_msg("row %zu", i);
		struct proto_exit e = {bad[i].kind, bad[i].value, bad[i].core};
		if (!bad[i].pad && proto_exit_encode(&e, b, sizeof(b)) != -EINVAL)
			fail_msg("encode row %zu", i);
	}
	assert_int_equal(proto_exit_decode(b, PROTO_EXIT_SIZE + 1, &d), -EPROTO);
}

static void test_error(void **state)
{
	(void)state;
	uint8_t b[PROTO_ERROR_FIXED + PROTO_MAX_ERROR_MSG + 8];
	struct proto_error m = {ENOENT, "exec /bin/nope: No such file or directory"}, *d;
	d = malloc(sizeof(*d));
	assert_non_null(d);
	int n = proto_error_encode(&m, b, sizeof(b));
	assert_int_equal(n, PROTO_ERROR_FIXED + strlen(m.msg));
	assert_int_equal(proto_error_decode(b, (uint32_t)n, d), 0);
	assert_int_equal(d->err, ENOENT);
	assert_string_equal(d->msg, m.msg);
	assert_int_equal(proto_error_encode(&m, b, (size_t)n - 1), -ENOSPC);

	/* a message of exactly the limit, and one byte over */
	proto_put32(b, EIO);
	memset(b + PROTO_ERROR_FIXED, 'm', PROTO_MAX_ERROR_MSG + 1);
	assert_int_equal(proto_error_decode(b, PROTO_ERROR_FIXED + PROTO_MAX_ERROR_MSG, d), 0);
	assert_int_equal(strlen(d->msg), PROTO_MAX_ERROR_MSG);
	assert_int_equal(proto_error_decode(b, PROTO_ERROR_FIXED + PROTO_MAX_ERROR_MSG + 1, d),
	                 -EPROTO);
	/* errno 0, negative, past 4095 */
	proto_put32(b, 0);
	assert_int_equal(proto_error_decode(b, PROTO_ERROR_FIXED, d), -EPROTO);
	proto_put32(b, (uint32_t)-EIO);
	assert_int_equal(proto_error_decode(b, PROTO_ERROR_FIXED, d), -EPROTO);
	proto_put32(b, PROTO_MAX_ERRNO + 1);
	assert_int_equal(proto_error_decode(b, PROTO_ERROR_FIXED, d), -EPROTO);
	proto_put32(b, PROTO_MAX_ERRNO);
	assert_int_equal(proto_error_decode(b, PROTO_ERROR_FIXED, d), 0);
	assert_string_equal(d->msg, "");
	assert_int_equal(proto_error_decode(b, PROTO_ERROR_FIXED - 1, d), -EPROTO);
	/* a NUL inside the message */
	memcpy(b + PROTO_ERROR_FIXED, "ab\0cd", 5);
	assert_int_equal(proto_error_decode(b, PROTO_ERROR_FIXED + 5, d), -EPROTO);

	m.err = 0;
	assert_int_equal(proto_error_encode(&m, b, sizeof(b)), -EINVAL);
	m.err = -EIO;
	assert_int_equal(proto_error_encode(&m, b, sizeof(b)), -EINVAL);
	m.err = EIO;
	memset(m.msg, 'x', sizeof(m.msg)); /* not terminated */
	assert_int_equal(proto_error_encode(&m, b, sizeof(b)), -EINVAL);
	free(d);
}

/* ---- Credit -------------------------------------------------------------- */

static void test_credit(void **state)
{
	(void)state;
	struct proto_credit c, saved;
	proto_credit_init(&c);
	assert_int_equal(proto_credit_avail(&c), PROTO_INITIAL_CREDIT);
	assert_int_equal(proto_credit_take(&c, 0), 0);
	assert_int_equal(proto_credit_take(&c, PROTO_INITIAL_CREDIT - 10), 0);
	saved = c;
	assert_int_equal(proto_credit_take(&c, 11), -EAGAIN);
	assert_memory_equal(&c, &saved, sizeof(c)); /* failures change nothing */
	assert_int_equal(proto_credit_take(&c, UINT64_MAX), -EAGAIN);
	assert_int_equal(proto_credit_take(&c, 10), 0);
	assert_int_equal(proto_credit_avail(&c), 0);
	assert_int_equal(proto_credit_take(&c, 1), -EAGAIN);

	/* grants add up to PROTO_MAX_CREDIT outstanding, not one byte more */
	assert_int_equal(proto_credit_grant(&c, PROTO_MAX_CREDIT - 1), 0);
	assert_int_equal(proto_credit_grant(&c, 1), 0);
	assert_int_equal(proto_credit_avail(&c), PROTO_MAX_CREDIT);
	saved = c;
	assert_int_equal(proto_credit_grant(&c, 1), -EOVERFLOW);
	assert_int_equal(proto_credit_grant(&c, UINT64_MAX), -EOVERFLOW);
	assert_memory_equal(&c, &saved, sizeof(c));
	/* using credit makes room for more */
	assert_int_equal(proto_credit_take(&c, 4096), 0);
	assert_int_equal(proto_credit_grant(&c, 4097), -EOVERFLOW);
	assert_int_equal(proto_credit_grant(&c, 4096), 0);
	/* a grant that alone is over the limit, from nothing outstanding */
	c = (struct proto_credit){0, 0};
	assert_int_equal(proto_credit_grant(&c, (uint64_t)PROTO_MAX_CREDIT + 1), -EOVERFLOW);
	assert_int_equal(proto_credit_grant(&c, UINT64_MAX), -EOVERFLOW);

	/* near the top of 64 bits the totals must not wrap */
	c = (struct proto_credit){UINT64_MAX - 5, UINT64_MAX - 5};
	assert_int_equal(proto_credit_grant(&c, 5), 0);
	assert_int_equal(c.granted, UINT64_MAX);
	saved = c;
	assert_int_equal(proto_credit_grant(&c, 1), -EOVERFLOW);
	assert_memory_equal(&c, &saved, sizeof(c));
	assert_int_equal(proto_credit_take(&c, 6), -EAGAIN);
	assert_int_equal(proto_credit_take(&c, 5), 0);
	assert_int_equal(c.used, UINT64_MAX);
	assert_int_equal(proto_credit_take(&c, 1), -EAGAIN);
	/* a corrupt state (used > granted) grants nothing instead of wrapping */
	c = (struct proto_credit){10, 20};
	assert_int_equal(proto_credit_avail(&c), 0);
	assert_int_equal(proto_credit_take(&c, 1), -EAGAIN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hdr_layout),
	    cmocka_unit_test(test_hdr_rejects),
	    cmocka_unit_test(test_frame),
	    cmocka_unit_test(test_reader_chunking),
	    cmocka_unit_test(test_reader_back_to_back),
	    cmocka_unit_test(test_reader_truncated),
	    cmocka_unit_test(test_reader_bad_headers),
	    cmocka_unit_test(test_reader_fails_mid_stream),
	    cmocka_unit_test(test_hello),
	    cmocka_unit_test(test_exec_roundtrip),
	    cmocka_unit_test(test_exec_rejects),
	    cmocka_unit_test(test_exec_limits),
	    cmocka_unit_test(test_fixed_messages),
	    cmocka_unit_test(test_exit),
	    cmocka_unit_test(test_error),
	    cmocka_unit_test(test_credit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
