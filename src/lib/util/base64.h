/*
 * Base64 with the standard alphabet and '=' padding (RFC 4648 §4), as
 * HTTP Basic credentials and Docker's config.json "auth" fields use it.
 * No line breaks are written or accepted.
 */
#ifndef MSB_UTIL_BASE64_H
#define MSB_UTIL_BASE64_H

#include <stddef.h>
#include <sys/types.h>

/* The encoded length of @n bytes, without the NUL. */
#define BASE64_ENCODED_LEN(n) (((n) + 2) / 3 * 4)

/* Encodes @n bytes at @in into @out and NUL-terminates it. Returns the
 * encoded length (without NUL) or -ENAMETOOLONG if out (len incl. NUL) is
 * too small; @out is then left empty when @out_len > 0. */
ssize_t base64_encode(const void *in, size_t n, char *out, size_t out_len);

/* Decodes @n chars at @in into @out (not NUL-terminated). Accepts missing
 * padding; rejects other characters, padding anywhere but at the end, a
 * lone trailing character and non-zero leftover bits (-EINVAL). Returns
 * bytes written, or -ENAMETOOLONG when @out_len is too small, or -EINVAL. */
ssize_t base64_decode(const char *in, size_t n, void *out, size_t out_len);

#endif
