/*
 * SHA-256 for digests: every downloaded layer and config is hashed while
 * it streams, so speed matters. OpenSSL's libcrypto does it with the CPU's
 * SHA extensions where there are any (5x our own C on this machine, which
 * made hashing the bottleneck of a pull); it is linked directly, so this
 * does not depend on which TLS library libcurl uses.
 *
 *   struct sha256 s;
 *   sha256_init(&s);
 *   sha256_update(&s, chunk, n);     (any number of times, any sizes)
 *   sha256_final(&s, digest);
 *
 * A struct sha256 is plain data: no allocation, nothing to free, copyable
 * (to hash a common prefix once). Not shared between threads.
 */
#ifndef MSB_UTIL_SHA256_H
#define MSB_UTIL_SHA256_H

/* SHA256_Init() and friends: deprecated by OpenSSL 3 for EVP, which
 * allocates; these keep the context plain data. */
#define OPENSSL_API_COMPAT 0x10100000L
#include <openssl/sha.h>
#include <stddef.h>
#include <stdint.h>

struct sha256 {
	SHA256_CTX c;
};

void sha256_init(struct sha256 *s);

/* Adds @n bytes at @p (@p may be NULL when @n is 0). */
void sha256_update(struct sha256 *s, const void *p, size_t n);

/* Writes the digest to @out. @s must be initialised again before reuse. */
void sha256_final(struct sha256 *s, uint8_t out[32]);

/* "sha256:" followed by 64 lowercase hex digits and a NUL: 72 bytes */
#define SHA256_DIGEST_STR 72

/* Formats @d as an OCI digest, "sha256:<64 lowercase hex>". */
void sha256_digest_str(const uint8_t d[32], char out[SHA256_DIGEST_STR]);

/* The OCI digest of @n bytes at @p, in one call. */
void sha256_digest_of(const void *p, size_t n, char out[SHA256_DIGEST_STR]);

#endif
