/* The keeper's socket protocol (src/cli/keeper_proto.h): an EXEC request
 * round trip, frames split anywhere, and what is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/keeper_proto.h"

static uint8_t *encode(const char *cwd, const char *user, const char **argv, size_t argc,
                       const char **env, size_t envc, size_t *len)
{
	struct kp_exec x = {.tty = 1,
	                    .with_stdin = 1,
	                    .rows = 24,
	                    .cols = 80,
	                    .cwd = cwd,
	                    .user = user,
	                    .argv = argv,
	                    .env = env,
	                    .argc = argc,
	                    .envc = envc};
	uint8_t *b;
	assert_int_equal(kp_exec_encode(&x, &b, len), 0);
	return b;
}

static void test_exec_round_trip_in_pieces(void **state)
{
	(void)state;
	const char *argv[] = {"sh", "-c", "echo \"$1\"", "app", "a b"};
	const char *env[] = {"PATH=/bin", "EMPTY="};
	size_t len;
	uint8_t *b = encode("/work", "app:1000", argv, 5, env, 2, &len);
	/* the bytes come in one at a time: no frame until the last */
	struct kp_buf rx = {0};
	uint8_t type;
	const uint8_t *p;
	uint32_t plen;
	size_t total;
	for (size_t i = 0; i < len; i++) {
		assert_int_equal(kp_next(&rx, KP_MAX_FRAME, &type, &p, &plen, &total), 0);
		assert_int_equal(kp_buf_add(&rx, b + i, 1), 0);
	}
	assert_int_equal(kp_next(&rx, KP_MAX_FRAME, &type, &p, &plen, &total), 1);
	assert_int_equal(type, KP_EXEC);
	assert_int_equal(total, len);
	struct kp_exec d;
	assert_int_equal(kp_exec_decode(p, plen, &d), 0);
	assert_true(d.tty && d.with_stdin);
	assert_int_equal(d.rows, 24);
	assert_int_equal(d.cols, 80);
	assert_string_equal(d.cwd, "/work");
	assert_string_equal(d.user, "app:1000");
	assert_int_equal(d.argc, 5);
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(d.argv[i], argv[i]);
	assert_null(d.argv[5]);
	assert_int_equal(d.envc, 2);
	assert_string_equal(d.env[1], "EMPTY=");
	assert_null(d.env[2]);
	kp_exec_free(&d);
	kp_buf_drop(&rx, total);
	assert_int_equal(rx.len, 0);
	kp_buf_free(&rx);
	free(b);
}

static void test_exec_refused(void **state)
{
	(void)state;
	const char *argv[] = {"true"};
	size_t len;
	uint8_t *b = encode("/", "", argv, 1, NULL, 0, &len);
	uint8_t *p = b + KP_HDR;
	size_t n = len - KP_HDR;
	struct kp_exec d;
	assert_int_equal(kp_exec_decode(p, n, &d), 0);
	kp_exec_free(&d);
	/* every shorter payload lacks a string's end */
	for (size_t cut = 0; cut < n; cut++)
		assert_int_equal(kp_exec_decode(p, cut, &d), -EPROTO);
	/* unknown flags; no argv; more strings than there are */
	uint8_t *c = malloc(n + 1);
	memcpy(c, p, n);
	kp_put32(c, 4);
	assert_int_equal(kp_exec_decode(c, n, &d), -EPROTO);
	memcpy(c, p, n);
	kp_put32(c + 12, 0);
	assert_int_equal(kp_exec_decode(c, n, &d), -EPROTO);
	memcpy(c, p, n);
	kp_put32(c + 16, 1);
	assert_int_equal(kp_exec_decode(c, n, &d), -EPROTO);
	memcpy(c, p, n);
	kp_put32(c + 16, UINT32_MAX); /* no overflow in argc + envc */
	assert_int_equal(kp_exec_decode(c, n, &d), -EPROTO);
	/* bytes after the last string */
	memcpy(c, p, n);
	c[n] = 'x';
	assert_int_equal(kp_exec_decode(c, n + 1, &d), -EPROTO);
	free(c);
	free(b);
	/* a relative working directory, an empty program */
	b = encode("work", "", argv, 1, NULL, 0, &len);
	assert_int_equal(kp_exec_decode(b + KP_HDR, len - KP_HDR, &d), -EPROTO);
	free(b);
	const char *empty[] = {""};
	b = encode("/", "", empty, 1, NULL, 0, &len);
	assert_int_equal(kp_exec_decode(b + KP_HDR, len - KP_HDR, &d), -EPROTO);
	free(b);
}

static void test_frames_refused(void **state)
{
	(void)state;
	struct kp_buf rx = {0};
	uint8_t type;
	const uint8_t *p;
	uint32_t len;
	size_t total;
	/* longer than the kind allows: refused from the header alone */
	uint8_t hdr[KP_HDR];
	kp_header(hdr, KP_STDIN, KP_MAX_DATA + 1);
	assert_int_equal(kp_buf_add(&rx, hdr, sizeof(hdr)), 0);
	assert_int_equal(kp_next(&rx, KP_MAX_DATA, &type, &p, &len, &total), -EPROTO);
	kp_buf_drop(&rx, rx.len);
	/* the padding must be zero */
	kp_header(hdr, KP_EOF, 0);
	hdr[2] = 1;
	assert_int_equal(kp_buf_add(&rx, hdr, sizeof(hdr)), 0);
	assert_int_equal(kp_next(&rx, KP_MAX_DATA, &type, &p, &len, &total), -EPROTO);
	kp_buf_drop(&rx, rx.len);
	/* two frames in one read come out one after the other */
	assert_int_equal(kp_buf_frame(&rx, KP_STDIN, "ab", 2), 0);
	assert_int_equal(kp_buf_frame(&rx, KP_EOF, NULL, 0), 0);
	assert_int_equal(kp_next(&rx, KP_MAX_DATA, &type, &p, &len, &total), 1);
	assert_int_equal(type, KP_STDIN);
	assert_memory_equal(p, "ab", 2);
	kp_buf_drop(&rx, total);
	assert_int_equal(kp_next(&rx, KP_MAX_DATA, &type, &p, &len, &total), 1);
	assert_int_equal(type, KP_EOF);
	assert_int_equal(len, 0);
	kp_buf_free(&rx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exec_round_trip_in_pieces),
	    cmocka_unit_test(test_exec_refused),
	    cmocka_unit_test(test_frames_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
