/* Base64 (RFC 4648 §4): the RFC's vectors both ways, missing padding,
 * buffer sizes, and what is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "lib/util/base64.h"

/* RFC 4648 §10 */
static const struct {
	const char *plain, *enc, *unpadded;
} vectors[] = {
    {"", "", ""},
    {"f", "Zg==", "Zg"},
    {"fo", "Zm8=", "Zm8"},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg==", "Zm9vYg"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

static void test_rfc_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		char enc[16], dec[16];
		size_t n = strlen(vectors[i].plain), en = strlen(vectors[i].enc);
		assert_int_equal(base64_encode(vectors[i].plain, n, enc, sizeof(enc)), en);
		assert_string_equal(enc, vectors[i].enc);
		assert_int_equal(base64_decode(vectors[i].enc, en, dec, sizeof(dec)), n);
		assert_memory_equal(dec, vectors[i].plain, n);
		assert_int_equal(base64_decode(vectors[i].unpadded, strlen(vectors[i].unpadded),
		                               dec, sizeof(dec)),
		                 n);
		assert_memory_equal(dec, vectors[i].plain, n);
	}
}

static void test_every_byte_round_trips(void **state)
{
	(void)state;
	uint8_t in[256], out[256];
	char enc[BASE64_ENCODED_LEN(256) + 1];
	for (int i = 0; i < 256; i++)
		in[i] = (uint8_t)i;
	for (size_t n = 0; n <= sizeof(in); n += 37) {
		ssize_t en = base64_encode(in, n, enc, sizeof(enc));
		assert_int_equal(en, BASE64_ENCODED_LEN(n));
		assert_int_equal(base64_decode(enc, (size_t)en, out, sizeof(out)), n);
		assert_memory_equal(in, out, n);
	}
	assert_int_equal(base64_encode(in, 256, enc, sizeof(enc)), 344);
	assert_string_equal(enc + 336, "/P3+/w==");
}

static void test_buffer_sizes(void **state)
{
	(void)state;
	char enc[9];
	uint8_t dec[6];
	/* 8 characters need 9 bytes with the NUL */
	assert_int_equal(base64_encode("foobar", 6, enc, 8), -ENAMETOOLONG);
	assert_string_equal(enc, "");
	assert_int_equal(base64_encode("foobar", 6, enc, 9), 8);
	assert_int_equal(base64_encode("", 0, enc, 0), -ENAMETOOLONG);
	assert_int_equal(base64_encode("", 0, enc, 1), 0);
	assert_int_equal(base64_decode("Zm9vYmFy", 8, dec, 5), -ENAMETOOLONG);
	assert_int_equal(base64_decode("Zm9vYmFy", 8, dec, 6), 6);
	assert_int_equal(base64_decode("Zm9vYg==", 8, dec, 3), -ENAMETOOLONG);
	assert_int_equal(base64_decode("Zm9vYg==", 8, dec, 4), 4);
	/* @n bounds the input: what follows is not read */
	assert_int_equal(base64_decode("Zm9v!!!!", 4, dec, sizeof(dec)), 3);
}

static void test_bad_input(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "Zm9v!",     /* outside the alphabet */
	    "Zm9v Zm9v", /* spaces */
	    "Zm9v\n",    /* line breaks */
	    "Zm9-",      /* the URL-safe alphabet */
	    "Zm9_",      /* the URL-safe alphabet */
	    "Z",         /* 6 bits cannot make a byte */
	    "Zm9vY",     /* same, after a quantum */
	    "Zg=",       /* padding that does not complete the quantum */
	    "Zg===",     /* too much padding */
	    "Zm9v=",     /* padding after a whole quantum */
	    "Zm9v====",  /* padding after a whole quantum */
	    "=",         /* padding alone */
	    "====",      /* padding alone */
	    "Zm=v",      /* padding in the middle */
	    "Zg==Zg==",  /* padding, then more */
	    "Zh==",      /* non-zero leftover bits */
	    "Zm9=",      /* non-zero leftover bits */
	};
	uint8_t out[16];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (base64_decode(bad[i], strlen(bad[i]), out, sizeof(out)) != -EINVAL)
			fail_msg("\"%s\" was accepted", bad[i]);
	assert_int_equal(base64_decode("Zm8", 3, out, sizeof(out)), 2);
	assert_int_equal(base64_decode("Zm8=", 4, out, sizeof(out)), 2);
	assert_int_equal(base64_decode("a\0==", 4, out, sizeof(out)), -EINVAL);
	assert_int_equal(base64_decode("", 0, NULL, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc_vectors),
	    cmocka_unit_test(test_every_byte_round_trips),
	    cmocka_unit_test(test_buffer_sizes),
	    cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
