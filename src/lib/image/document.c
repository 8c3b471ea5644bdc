/* Reading a hostile JSON document (see manifest_int.h). */
#include "manifest_int.h"
#include "why.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Messages quote the document: why_sanitize() keeps its escapes off the
 * user's terminal. */
int doc_fail(char *why, size_t len, int err, const char *fmt, ...)
{
	if (!why || !len)
		return err;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	why_sanitize(why);
	return err;
}

/* jansson recurses once per level up to 2048 deep; stop far sooner. Exact
 * for valid JSON; invalid JSON is refused by the parser anyway. */
static int depth_ok(const char *p, size_t n)
{
	int depth = 0, in_str = 0;
	for (size_t i = 0; i < n; i++) {
		if (in_str) {
			if (p[i] == '\\')
				i++;
			else if (p[i] == '"')
				in_str = 0;
		} else if (p[i] == '"') {
			in_str = 1;
		} else if (p[i] == '[' || p[i] == '{') {
			if (++depth > MANIFEST_MAX_DEPTH)
				return 0;
		} else if (p[i] == ']' || p[i] == '}') {
			depth--;
		}
	}
	return 1;
}

/* The top level is an object or an array (jansson without JSON_DECODE_ANY). */
int doc_load(const void *body, size_t len, const char *what, json_t **out, char *why, size_t wl)
{
	*out = NULL;
	if (!body && len)
		return doc_fail(why, wl, -EINVAL, "%s: no data", what);
	if (len > MANIFEST_MAX_BYTES)
		return doc_fail(why, wl, -E2BIG, "%s is larger than %u MiB", what,
		                MANIFEST_MAX_BYTES >> 20);
	if (!depth_ok(body, len))
		return doc_fail(why, wl, -E2BIG, "%s nests deeper than %d levels", what,
		                MANIFEST_MAX_DEPTH);
	json_error_t e;
	*out = json_loadb(len ? body : "", len, JSON_REJECT_DUPLICATES, &e);
	if (!*out)
		return doc_fail(why, wl, -EINVAL, "%s is not valid JSON: %s (line %d, column %d)",
		                what, e.text, e.line, e.column);
	return 0;
}

static int str_val(json_t *v, size_t max, const char **out, const char *what, char *why, size_t wl)
{
	if (!json_is_string(v))
		return doc_fail(why, wl, -EINVAL, "%s is not a string", what);
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	/* jansson refuses \u0000 without JSON_ALLOW_NUL; check anyway, as a
	 * C string cut at a NUL would mean something else */
	if (strlen(s) != n)
		return doc_fail(why, wl, -EINVAL, "%s has a NUL character", what);
	if (n > max)
		return doc_fail(why, wl, -E2BIG, "%s is longer than %zu bytes", what, max);
	*out = s;
	return 0;
}

/* @obj[@key] (obj may be NULL): *@out NULL when absent, or null and @null_ok. */
int doc_get_str(json_t *obj, const char *key, size_t max, int null_ok, const char **out,
                const char *ctx, char *why, size_t wl)
{
	json_t *v = json_object_get(obj, key);
	*out = NULL;
	if (!v || (null_ok && json_is_null(v)))
		return 0;
	char what[160];
	snprintf(what, sizeof(what), "%s: \"%s\"", ctx, key);
	return str_val(v, max, out, what, why, wl);
}

int doc_dup_str(const char *s, char **out, char *why, size_t wl)
{
	*out = NULL;
	if (s && !(*out = strdup(s)))
		return doc_fail(why, wl, -ENOMEM, "out of memory");
	return 0;
}

static int lower_hex(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!digit(p[i]) && !(p[i] >= 'a' && p[i] <= 'f'))
			return 0;
	return 1;
}

/* The image-spec's algorithm: [a-z0-9]+ ([+._-][a-z0-9]+)* */
static int algorithm_ok(const char *p, size_t n)
{
	if (n == 0 || !lower_alnum(p[0]) || !lower_alnum(p[n - 1]))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!lower_alnum(p[i]) && (!strchr("+._-", p[i]) || !lower_alnum(p[i - 1])))
			return 0;
	return 1;
}

/* sha256 only: a well-formed digest of another algorithm is valid but
 * one we could not verify. */
int doc_digest_check(const char *d, const char *what, char *why, size_t wl)
{
	size_t n = strlen(d);
	if (n == 7 + 64 && !strncmp(d, "sha256:", 7) && lower_hex(d + 7, 64))
		return 0;
	const char *colon = strchr(d, ':');
	int sha256 = colon && colon - d == 6 && !strncmp(d, "sha256", 6);
	if (colon && !sha256 && algorithm_ok(d, (size_t)(colon - d)) && colon[1] &&
	    strspn(colon + 1,
	           "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789=_-") ==
	        strlen(colon + 1) &&
	    (strncmp(d, "sha512:", 7) || (n == 7 + 128 && lower_hex(d + 7, 128))))
		return doc_fail(why, wl, -ENOTSUP,
		                "%s: digest algorithm \"%.*s\" is not supported (only sha256)",
		                what, (int)(colon - d > 32 ? 32 : colon - d), d);
	return doc_fail(why, wl, -EINVAL,
	                "%s: digest \"%.100s\" is not sha256 followed by 64 hex digits", what, d);
}

void doc_strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

/* A copy of the string array @obj[@key], NULL-terminated; absent or null
 * gives an empty one. Each string passes @check when there is one. */
int doc_strv_get(json_t *obj, const char *key, size_t max, doc_str_check check, char ***out,
                 size_t *count, const char *ctx, char *why, size_t wl)
{
	json_t *a = json_object_get(obj, key);
	size_t n = 0;
	int r;
	*out = NULL;
	if (a && !json_is_null(a)) {
		if (!json_is_array(a))
			return doc_fail(why, wl, -EINVAL, "%s: \"%s\" is not an array of strings",
			                ctx, key);
		if ((n = json_array_size(a)) > max)
			return doc_fail(why, wl, -E2BIG,
			                "%s: \"%s\" has %zu entries; msb takes at most %zu", ctx,
			                key, n, max);
	}
	char **v = calloc(n + 1, sizeof(*v));
	if (!v)
		return doc_fail(why, wl, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const char *s;
		char what[160];
		snprintf(what, sizeof(what), "%s: \"%s\" entry %zu", ctx, key, i + 1);
		if ((r = str_val(json_array_get(a, i), MANIFEST_MAX_STRING, &s, what, why, wl)) ||
		    (check && (r = check(s, what, why, wl))) ||
		    (r = doc_dup_str(s, &v[i], why, wl))) {
			doc_strv_free(v);
			return r;
		}
	}
	*out = v;
	if (count)
		*count = n;
	return 0;
}
