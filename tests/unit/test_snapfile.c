/* The snapshot state file: round trip, and every damage refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/snapfile.h"

static const uint8_t shape[SNAP_SHAPE_SIZE] = {1, 2, 3, 4, 5};

/* A file with three sections, in memory. */
static uint8_t *build(size_t *len)
{
	struct snap_writer w;
	assert_int_equal(snapw_init(&w, shape, 1ull << 30), 0);
	uint8_t big[3000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	snapw_add(&w, 1, 0, "vcpu0", 5);
	snapw_add(&w, 1, 1, big, sizeof(big));
	snapw_add(&w, 2, 0, NULL, 0);
	assert_int_equal(w.err, 0);
	char path[] = "/tmp/msb-snapfile-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(snapw_commit(&w, path), 0);
	snapw_free(&w);
	struct snap_file f;
	char why[256];
	assert_int_equal(snap_load(path, shape, &f, why, sizeof(why)), 0);
	unlink(path);
	*len = f.len;
	return f.buf; /* owned by the caller now */
}

static void test_round_trip(void **state)
{
	(void)state;
	size_t len;
	uint8_t *buf = build(&len);
	struct snap_file f;
	char why[256];
	assert_int_equal(snap_parse(buf, len, shape, &f, why, sizeof(why)), 0);
	assert_int_equal(f.mem_bytes, 1ull << 30);
	assert_int_equal(f.nsections, 3);
	uint32_t n;
	const uint8_t *p = snap_find(&f, 1, 0, &n);
	assert_non_null(p);
	assert_int_equal(n, 5);
	assert_memory_equal(p, "vcpu0", 5);
	p = snap_find(&f, 1, 1, &n);
	assert_int_equal(n, 3000);
	assert_int_equal(p[2999], (uint8_t)(2999 * 7));
	assert_non_null(snap_find(&f, 2, 0, &n));
	assert_int_equal(n, 0);
	assert_null(snap_find(&f, 3, 0, &n));
	free(buf);
}

static void test_every_truncation_refused(void **state)
{
	(void)state;
	size_t len;
	uint8_t *buf = build(&len);
	struct snap_file f;
	char why[256];
	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(snap_parse(buf, cut, shape, &f, why, sizeof(why)), -EPROTO);
	free(buf);
}

static void test_every_flipped_byte_refused(void **state)
{
	(void)state;
	size_t len;
	uint8_t *buf = build(&len);
	struct snap_file f;
	char why[256];
	for (size_t i = 0; i < len; i++) {
		buf[i] ^= 0x40;
		int e = snap_parse(buf, len, shape, &f, why, sizeof(why));
		assert_true(e < 0);
		buf[i] ^= 0x40;
	}
	assert_int_equal(snap_parse(buf, len, shape, &f, why, sizeof(why)), 0);
	free(buf);
}

static void test_foreign_and_trailing(void **state)
{
	(void)state;
	size_t len;
	uint8_t *buf = build(&len);
	struct snap_file f;
	char why[256];
	uint8_t other[SNAP_SHAPE_SIZE] = {9};
	assert_int_equal(snap_parse(buf, len, other, &f, why, sizeof(why)), -ESTALE);
	assert_non_null(strstr(why, "shape"));
	uint8_t *more = realloc(buf, len + 1);
	assert_non_null(more);
	more[len] = 0;
	assert_int_equal(snap_parse(more, len + 1, shape, &f, why, sizeof(why)), -EPROTO);
	free(more);
	assert_int_equal(snap_load("/nonexistent/state", shape, &f, why, sizeof(why)), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_every_truncation_refused),
	    cmocka_unit_test(test_every_flipped_byte_refused),
	    cmocka_unit_test(test_foreign_and_trailing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
