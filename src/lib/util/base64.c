#include "base64.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>

static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

ssize_t base64_encode(const void *in, size_t n, char *out, size_t out_len)
{
	const uint8_t *p = in;
	if (out_len)
		out[0] = 0;
	/* (n + 2) / 3 * 4 must neither wrap nor pass SSIZE_MAX. */
	if (n > ((size_t)SSIZE_MAX / 4 - 1) * 3)
		return -ENAMETOOLONG;
	size_t need = BASE64_ENCODED_LEN(n);
	if (need >= out_len)
		return -ENAMETOOLONG;
	char *o = out;
	for (; n >= 3; p += 3, n -= 3) {
		uint32_t v = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
		*o++ = ALPHABET[v >> 18];
		*o++ = ALPHABET[(v >> 12) & 63];
		*o++ = ALPHABET[(v >> 6) & 63];
		*o++ = ALPHABET[v & 63];
	}
	if (n) {
		uint32_t v = (uint32_t)p[0] << 16 | (n == 2 ? (uint32_t)p[1] << 8 : 0);
		*o++ = ALPHABET[v >> 18];
		*o++ = ALPHABET[(v >> 12) & 63];
		*o++ = n == 2 ? ALPHABET[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = 0;
	return (ssize_t)need;
}

/* The 6-bit value of @c, or -1 for anything outside the alphabet. */
static int value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

ssize_t base64_decode(const char *in, size_t n, void *out, size_t out_len)
{
	/* Padding may be left off, but when present it must complete the last
	 * quantum and end the input: "QQ==" and "QQ" are "A"; "QQ=", "Q===",
	 * "QQ==QQ==" are refused. */
	size_t pad = 0;
	while (pad < n && pad < 2 && in[n - 1 - pad] == '=')
		pad++;
	size_t len = n - pad, rem = len % 4;
	if (rem == 1)
		return -EINVAL; /* 6 bits cannot make a byte */
	if (pad && rem + pad != 4)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (value(in[i]) < 0)
			return -EINVAL;
	size_t need = len / 4 * 3 + (rem ? rem - 1 : 0);
	if (need > out_len)
		return -ENAMETOOLONG;

	uint8_t *o = out;
	uint32_t acc = 0;
	unsigned bits = 0;
	for (size_t i = 0; i < len; i++) {
		acc = acc << 6 | (uint32_t)value(in[i]);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			*o++ = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* The bits left over must be zero, so an encoding has one meaning
	 * (RFC 4648 §3.5 lets a decoder refuse the others). */
	if (acc != 0)
		return -EINVAL;
	return (ssize_t)need;
}
