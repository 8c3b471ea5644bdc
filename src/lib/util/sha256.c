#include "sha256.h"

#include <string.h>

void sha256_init(struct sha256 *s)
{
	SHA256_Init(&s->c);
}

void sha256_update(struct sha256 *s, const void *p, size_t n)
{
	if (n)
		SHA256_Update(&s->c, p, n);
}

void sha256_final(struct sha256 *s, uint8_t out[32])
{
	SHA256_Final(out, &s->c);
}

void sha256_digest_str(const uint8_t d[32], char out[SHA256_DIGEST_STR])
{
	static const char hex[] = "0123456789abcdef";
	memcpy(out, "sha256:", 7);
	for (int i = 0; i < 32; i++) {
		out[7 + 2 * i] = hex[d[i] >> 4];
		out[8 + 2 * i] = hex[d[i] & 15];
	}
	out[7 + 64] = 0;
}

void sha256_digest_of(const void *p, size_t n, char out[SHA256_DIGEST_STR])
{
	struct sha256 h;
	uint8_t d[32];
	sha256_init(&h);
	sha256_update(&h, p, n);
	sha256_final(&h, d);
	sha256_digest_str(d, out);
}
