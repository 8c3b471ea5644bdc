/*
 * libFuzzer harness for the agent protocol: the bytes are a stream from a
 * hostile peer. They go through the frame reader in chunk sizes the input
 * chooses, every frame it returns goes to its type's decoder, and every
 * decoder also sees the raw input as a payload. Whatever a decoder accepts
 * must encode back to the same bytes (the format has one encoding per
 * message), which checks the encoders and that no rule is one-sided.
 *
 * Build with clang -fsanitize=fuzzer,address,undefined -Isrc, linking
 * src/proto/proto.c and src/proto/messages.c; with -DFUZZ_REPLAY (any
 * compiler) main() runs each file named on the command line instead.
 */
#include "fuzz_harness.h"
#include "proto/proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Re-encodes an accepted message and compares with what was decoded. */
#define SAME(enc, p, len)                                                                          \
	do {                                                                                       \
		int n_ = (enc);                                                                    \
		CHECK(n_ >= 0 && (uint32_t)n_ == (len) && memcmp(out, (p), (len)) == 0);           \
	} while (0)

static uint8_t out[PROTO_MAX_PAYLOAD];

static void decode_payload(uint8_t type, const uint8_t *p, uint32_t len)
{
	union {
		struct proto_hello hello;
		struct proto_exec exec;
		struct proto_credit_msg credit;
		struct proto_signal signal;
		struct proto_resize resize;
		struct proto_exit exit;
		struct proto_error error;
		struct proto_set_time set_time;
		struct proto_hostname hostname;
		struct proto_mount_root mount_root;
		struct proto_ready ready;
	} m;

	switch (type) {
	case PROTO_HELLO:
		if (proto_hello_decode(p, len, &m.hello) == 0) {
			CHECK(strlen(m.hello.name) <= PROTO_MAX_NAME);
			SAME(proto_hello_encode(&m.hello, out, sizeof(out)), p, len);
			(void)proto_hello_pick(&m.hello);
		}
		break;
	case PROTO_EXEC:
		if (proto_exec_decode(p, len, &m.exec) == 0) {
			CHECK(m.exec.argc >= 1 && m.exec.argc <= PROTO_MAX_ARGS);
			CHECK(m.exec.envc <= PROTO_MAX_ENV);
			CHECK(m.exec.cwd[0] == '/');
			CHECK(m.exec.argv[m.exec.argc] == NULL && m.exec.envp[m.exec.envc] == NULL);
			/* the user is there exactly with its flag, in the payload */
			CHECK(!(m.exec.flags & PROTO_EXEC_USER) == !m.exec.user);
			CHECK(!m.exec.user ||
			      (m.exec.user[0] && (const uint8_t *)m.exec.user > p &&
			       (const uint8_t *)m.exec.user + strlen(m.exec.user) < p + len &&
			       m.exec.uid == 0 && m.exec.gid == 0));
			SAME(proto_exec_encode(&m.exec, out, sizeof(out)), p, len);
			proto_exec_free(&m.exec);
		} else {
			CHECK(m.exec.argv == NULL);
		}
		break;
	case PROTO_CREDIT:
		if (proto_credit_decode(p, len, &m.credit) == 0)
			SAME(proto_credit_encode(&m.credit, out, sizeof(out)), p, len);
		break;
	case PROTO_SIGNAL:
		if (proto_signal_decode(p, len, &m.signal) == 0)
			SAME(proto_signal_encode(&m.signal, out, sizeof(out)), p, len);
		break;
	case PROTO_RESIZE:
		if (proto_resize_decode(p, len, &m.resize) == 0)
			SAME(proto_resize_encode(&m.resize, out, sizeof(out)), p, len);
		break;
	case PROTO_EXIT:
		if (proto_exit_decode(p, len, &m.exit) == 0)
			SAME(proto_exit_encode(&m.exit, out, sizeof(out)), p, len);
		break;
	case PROTO_ERROR:
		if (proto_error_decode(p, len, &m.error) == 0) {
			CHECK(strlen(m.error.msg) <= PROTO_MAX_ERROR_MSG);
			SAME(proto_error_encode(&m.error, out, sizeof(out)), p, len);
		}
		break;
	case PROTO_SET_TIME:
		if (proto_set_time_decode(p, len, &m.set_time) == 0)
			SAME(proto_set_time_encode(&m.set_time, out, sizeof(out)), p, len);
		break;
	case PROTO_MOUNT_ROOT:
		if (proto_mount_root_decode(p, len, &m.mount_root) == 0)
			SAME(proto_mount_root_encode(&m.mount_root, out, sizeof(out)), p, len);
		break;
	case PROTO_SET_HOSTNAME:
		if (proto_hostname_decode(p, len, &m.hostname) == 0) {
			CHECK(proto_hostname_valid(m.hostname.name));
			SAME(proto_hostname_encode(&m.hostname, out, sizeof(out)), p, len);
		}
		break;
	case PROTO_READY:
		if (proto_ready_decode(p, len, &m.ready) == 0)
			SAME(proto_ready_encode(&m.ready, out, sizeof(out)), p, len);
		break;
	default:
		break;
	}
}

/* The stream through a reader; the first byte picks the chunk size. */
static void read_stream(const uint8_t *data, size_t size)
{
	struct proto_reader r;
	if (size == 0 || proto_reader_init(&r))
		return;
	size_t chunk = (size_t)data[0] + 1, off = 1;
	int failed = 0;
	while (off < size && !failed) {
		size_t n = size - off < chunk ? size - off : chunk, coff = 0, used;
		while (coff < n) {
			int e = proto_reader_feed(&r, data + off + coff, n - coff, &used);
			CHECK(used <= n - coff);
			coff += used;
			if (e < 0) {
				failed = e;
				break;
			}
			struct proto_hdr h;
			const uint8_t *p;
			e = proto_reader_next(&r, &h, &p);
			if (e < 0) {
				failed = e;
				break;
			}
			if (e == 1) {
				CHECK(h.len <= PROTO_MAX_PAYLOAD);
				uint8_t hb[PROTO_HDR_SIZE];
				CHECK(proto_hdr_encode(&h, hb) == 0);
				decode_payload(h.type, p, h.len);
			} else {
				/* no frame and no error: every byte was taken */
				CHECK(coff == n);
			}
		}
		off += n;
	}
	if (failed) {
		/* a failed reader stays failed */
		size_t used;
		struct proto_hdr h;
		const uint8_t *p;
		CHECK(proto_reader_feed(&r, data, size, &used) == failed && used == 0);
		CHECK(proto_reader_next(&r, &h, &p) == failed);
	}
	proto_reader_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	read_stream(data, size);
	/* every decoder on the raw bytes, so payload fuzzing needs no valid
	 * header in front */
	uint32_t len = size > PROTO_MAX_PAYLOAD ? PROTO_MAX_PAYLOAD : (uint32_t)size;
	for (unsigned t = 1; t <= PROTO_TYPE_MAX; t++)
		decode_payload((uint8_t)t, data, len);
	if (size >= PROTO_HDR_SIZE) {
		struct proto_hdr h;
		uint8_t hb[PROTO_HDR_SIZE];
		if (proto_hdr_decode(data, &h) == 0) {
			CHECK(proto_hdr_encode(&h, hb) == 0 && memcmp(hb, data, sizeof(hb)) == 0);
			CHECK(proto_type_name(h.type)[0] != '?');
		}
	}
	return 0;
}
