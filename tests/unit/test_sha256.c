/* SHA-256: the FIPS 180-4 example vectors, padding at every block
 * boundary, and chunked updates agreeing with one-shot ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "lib/util/sha256.h"

static void hex(const uint8_t d[32], char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void check(const void *p, size_t n, const char *want)
{
	struct sha256 s;
	uint8_t d[32];
	char got[65];
	sha256_init(&s);
	sha256_update(&s, p, n);
	sha256_final(&s, d);
	hex(d, got);
	assert_string_equal(got, want);
}

static void test_fips_vectors(void **state)
{
	(void)state;
	check("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	check(NULL, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	check("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	check(m448, strlen(m448),
	      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
	                   "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
	check(m896, strlen(m896),
	      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

/* One million 'a' in chunks of odd sizes, so partial blocks are filled,
 * emptied and bypassed in every order. */
static void test_million_a_in_chunks(void **state)
{
	(void)state;
	static char a[1000];
	memset(a, 'a', sizeof(a));
	static const size_t sizes[] = {1, 3, 63, 64, 65, 127, 997, 0, 55, 56, 129};
	struct sha256 s;
	uint8_t d[32];
	char got[65];
	sha256_init(&s);
	size_t left = 1000000;
	for (size_t i = 0; left; i++) {
		size_t n = sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];
		n = n < left ? n : left;
		sha256_update(&s, a, n);
		left -= n;
	}
	sha256_final(&s, d);
	hex(d, got);
	assert_string_equal(got,
	                    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Lengths around the padding boundaries (55/56 bytes fit the length in
 * the last block, 57+ need another), checked against Python's hashlib. */
static void test_padding_boundaries(void **state)
{
	(void)state;
	static const struct {
		size_t n;
		const char *want;
	} v[] = {
	    {55, "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac70b"},
	    {56, "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6c27"},
	    {57, "35df609437dcfea3279283ab79fd554e2bf78f8f7ae2de532d8ee300b09e8f73"},
	    {63, "81c80242132f230c3bd41b3e63bbcff16107339549214a99614ff26664625055"},
	    {64, "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882241"},
	    {65, "aacca6ff74fdbb296d165a45cecfa04e5127bc008770fbbdd48006f2d2fae95e"},
	    {119, "9ce7368e4daf32341631b492e80359dc9f594b48453cd0dd5bf0b19279cc177e"},
	    {120, "7836b787757e95e58b3ca5aec90b1b004e8deba1e50e9675af9cabf1a13a04b5"},
	    {127, "a8d23e75d936f303d248888d9b165ee543f4cbafcad3c9dd2a79bd84faa11d07"},
	    {128, "d2742f1f4ac6bb7ca2b239ee18402ba8b3f9f8e652d2a72973c2b9ba11c08cf6"},
	    {1000, "1e9bc38cbf860b9ec31918b065f9b52476c549a782e0e7990bed8ce3868d2371"},
	};
	uint8_t data[1000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 3);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		check(data, v[i].n, v[i].want);
}

/* Every split of 200 bytes into two updates gives the one-shot digest. */
static void test_split_updates_agree(void **state)
{
	(void)state;
	uint8_t data[200], whole[32], parts[32];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 31 + 1);
	struct sha256 s;
	sha256_init(&s);
	sha256_update(&s, data, sizeof(data));
	sha256_final(&s, whole);
	for (size_t cut = 0; cut <= sizeof(data); cut++) {
		sha256_init(&s);
		sha256_update(&s, data, cut);
		sha256_update(&s, data + cut, sizeof(data) - cut);
		sha256_final(&s, parts);
		assert_memory_equal(whole, parts, 32);
	}
}

static void test_digest_str(void **state)
{
	(void)state;
	struct sha256 s;
	uint8_t d[32];
	char str[SHA256_DIGEST_STR];
	memset(str, 'x', sizeof(str));
	sha256_init(&s);
	sha256_update(&s, "abc", 3);
	sha256_final(&s, d);
	sha256_digest_str(d, str);
	assert_string_equal(
	    str, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(strlen(str) + 1, SHA256_DIGEST_STR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fips_vectors),       cmocka_unit_test(test_million_a_in_chunks),
	    cmocka_unit_test(test_padding_boundaries), cmocka_unit_test(test_split_updates_agree),
	    cmocka_unit_test(test_digest_str),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
