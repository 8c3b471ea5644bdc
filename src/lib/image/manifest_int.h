/*
 * Inside the parsers of manifest.h: what manifest.c, platform.c,
 * image_config.c and docker_archive_manifest.c share. document.c loads a
 * hostile JSON document within the limits of manifest.h and reads its
 * fields type-checked and bounded; platform.c reads a platform object.
 * Every function that fails writes @why (of @wl bytes; control characters
 * replaced) and returns the negative errno manifest.h lists.
 */
#ifndef MSB_IMAGE_MANIFEST_INT_H
#define MSB_IMAGE_MANIFEST_INT_H

#include "manifest.h"

#include <jansson.h>
#include <stddef.h>

static inline void json_put(json_t **j)
{
	json_decref(*j);
}
#define cleanup_json __attribute__((cleanup(json_put)))

static inline int digit(char c)
{
	return c >= '0' && c <= '9';
}

static inline int lower_alnum(char c)
{
	return digit(c) || (c >= 'a' && c <= 'z');
}

/* Formats into @why (NULL or @len 0: nothing), control characters
 * replaced, and returns @err. */
int doc_fail(char *why, size_t len, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Parses @len bytes at @body into *@out (json_decref() it); @what names
 * the document in messages. */
int doc_load(const void *body, size_t len, const char *what, json_t **out, char *why, size_t wl);

/* The string @obj[@key], at most @max bytes, borrowed from @obj. */
int doc_get_str(json_t *obj, const char *key, size_t max, int null_ok, const char **out,
                const char *ctx, char *why, size_t wl);

/* A malloc'd copy of @s (NULL stays NULL) into *@out. */
int doc_dup_str(const char *s, char **out, char *why, size_t wl);

/* 0 when @d is "sha256:<64 lowercase hex>"; -ENOTSUP for another
 * algorithm, -EINVAL for anything else. */
int doc_digest_check(const char *d, const char *what, char *why, size_t wl);

/* Checks one string of an array; @what names it. */
typedef int (*doc_str_check)(const char *s, const char *what, char *why, size_t wl);

/* A NULL-terminated array of malloc'd copies (doc_strv_free() it). */
int doc_strv_get(json_t *obj, const char *key, size_t max, doc_str_check check, char ***out,
                 size_t *count, const char *ctx, char *why, size_t wl);
void doc_strv_free(char **v);

/* platform.c: a platform object of a document into @p. */
int platform_from(json_t *o, const char *ctx, struct platform *p, char *why, size_t wl);

#endif
