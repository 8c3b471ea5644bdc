/*
 * Inside the Sandboxfile parser (see sandboxfile.h). sf_yaml.c turns
 * libyaml's events into a small tree of nodes that keeps every position,
 * refusing aliases, tags, duplicate keys and what is over the limits;
 * sandboxfile.c reads the tree into a struct sandboxfile; sf_check.c checks
 * what spans sandboxes (names, depends_on, cycles, imports) and answers the
 * questions callers ask of a parsed file. Every function that fails writes
 * the one-line error of sandboxfile.h and returns a negative errno.
 */
#ifndef MSB_PROJECT_SF_INT_H
#define MSB_PROJECT_SF_INT_H

#include "sandboxfile.h"

#include <stddef.h>

enum yn_type { YN_SCALAR, YN_SEQ, YN_MAP };

/* A node; a map's kids are key, value, key, value... (keys are scalars). */
struct yn {
	enum yn_type type;
	struct sf_pos pos;
	char *str; /* scalars: NUL-terminated, no NUL inside */
	size_t len;
	int plain; /* an unquoted scalar: the only kind that can be null */
	struct yn **kids;
	size_t n, cap;
	struct yn *parent;
	size_t idx; /* in parent->kids */
};

/* Where errors go. */
struct sf_ctx {
	const char *name;
	char *why;
	size_t wl;
};

/* Parses @len bytes of YAML into *@root (yn_free() it). An empty file is
 * an error. */
int yn_load(const char *text, size_t len, struct sf_ctx *c, struct yn **root);
void yn_free(struct yn *n);

/* A plain "", "~" or "null": YAML's null. */
int yn_is_null(const struct yn *n);

/* What a node is, for "got ...": a quoted scalar (cut short), "nothing",
 * "a list" or "a map". */
const char *yn_what(const struct yn *n, char *buf, size_t len);

/* The key path of @n: "sandboxes.api.memory" for the key memory or its
 * value; a list's items have their list's path. */
void yn_path(const struct yn *n, char *buf, size_t len);

/* Writes "NAME:LINE:COL: PATH: MESSAGE" (no PATH: when @path is empty or
 * NULL, no LINE:COL: when @pos.line is 0) and returns @err. */
int sf_fail(struct sf_ctx *c, struct sf_pos pos, const char *path, int err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* sf_fail at @n with its path. */
int yn_fail(struct sf_ctx *c, const struct yn *n, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The word of @known (@n of them) nearest @s when near enough for a "did
 * you mean" (edit distance at most 2, or 1 for words of 4 letters or
 * fewer), else NULL. */
const char *sf_nearest(const char *s, const char *const *known, size_t n);

/* [A-Za-z0-9][A-Za-z0-9_-]{0,62} */
int sf_name_ok(const char *s);

/* sf_check.c: what spans the whole file, once every sandbox and build is
 * read. */
int sf_resolve(struct sandboxfile *sf, struct sf_ctx *c);

#endif
