#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "kvmcheck/tinyvm.h"

/* The header is checked before any KVM call, so these need no /dev/kvm. */
static void test_header_checked(void **state)
{
	(void)state;
	struct tvm_result r;
	uint8_t code[64] = {0};
	assert_int_equal(tvm_run(-1, code, 8, NULL, &r), -EINVAL);
	uint64_t off = 64; /* past the end */
	memcpy(code + 8, &off, 8);
	assert_int_equal(tvm_run(-1, code, sizeof(code), NULL, &r), -EINVAL);
	off = 4; /* inside the header */
	memcpy(code + 8, &off, 8);
	assert_int_equal(tvm_run(-1, code, sizeof(code), NULL, &r), -EINVAL);
	off = UINT64_MAX;
	memcpy(code + 8, &off, 8);
	assert_int_equal(tvm_run(-1, code, sizeof(code), NULL, &r), -EINVAL);
	assert_non_null(strstr(r.detail, "header"));
}

static void test_builtin_guest_header(void **state)
{
	(void)state;
	size_t len;
	const uint8_t *g = tvm_builtin_guest(&len);
	assert_true(len > 16 && len <= TVM_MAX_GUEST);
	uint64_t off;
	memcpy(&off, g + 8, 8);
	assert_true(off >= 16 && off < len);
	/* the greeting msb doctor waits for is in the blob */
	assert_non_null(memmem(g, len, "reached CPL0\n", 13));
}

/* A bad fd fails the first KVM call with a message, not a crash. */
static void test_bad_fd(void **state)
{
	(void)state;
	size_t len;
	const void *g = tvm_builtin_guest(&len);
	struct tvm_result r;
	assert_int_equal(tvm_run(-1, g, len, NULL, &r), -EBADF);
	assert_non_null(strstr(r.detail, "KVM_CREATE_VM"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_checked),
	    cmocka_unit_test(test_builtin_guest_header),
	    cmocka_unit_test(test_bad_fd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
