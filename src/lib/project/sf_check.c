/* What spans a Sandboxfile's sandboxes and builds: names used twice,
 * depends_on and its cycles, imports; and the questions asked of a parsed
 * file (see sandboxfile.h). */
#include "sandboxfile.h"
#include "sf_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OOM(c) sf_fail((c), (struct sf_pos){0, 0}, NULL, -ENOMEM, "out of memory")
#define NONE   ((size_t)-1)

static size_t sandbox_index(const struct sandboxfile *sf, const char *name)
{
	for (size_t i = 0; i < sf->nsandboxes; i++)
		if (!strcmp(sf->sandboxes[i].name.s, name))
			return i;
	return NONE;
}

static size_t build_index(const struct sandboxfile *sf, const char *name)
{
	for (size_t i = 0; i < sf->nbuilds; i++)
		if (!strcmp(sf->builds[i].name.s, name))
			return i;
	return NONE;
}

/* ", did you mean `X`?" when one of @names (@n of them, @stride bytes
 * apart, each a struct sf_str) is near @s, else "". */
static const char *did_you_mean(const char *s, const struct sf_str *first, size_t n, size_t stride,
                                char *buf, size_t len)
{
	const char **names = calloc(n ? n : 1, sizeof(*names));
	const char *near = NULL;
	if (names) {
		for (size_t i = 0; i < n; i++)
			names[i] = ((const struct sf_str *)((const char *)first + i * stride))->s;
		near = sf_nearest(s, names, n);
	}
	if (near)
		snprintf(buf, len, ", did you mean `%s`?", near);
	else if (len)
		buf[0] = 0;
	free(names);
	return buf;
}

static int names_unique(const struct sandboxfile *sf, struct sf_ctx *c)
{
	for (size_t i = 0; i < sf->nbuilds; i++) {
		const struct sf_build *b = &sf->builds[i];
		size_t s = sandbox_index(sf, b->name.s);
		if (s != NONE) {
			char path[128];
			snprintf(path, sizeof(path), "builds.%s", b->name.s);
			return sf_fail(c, b->name.pos, path, -EINVAL,
			               "the name is already a sandbox's (line %d): sandboxes and "
			               "builds share one set of names",
			               sf->sandboxes[s].name.pos.line);
		}
	}
	return 0;
}

static int deps_resolve(struct sandboxfile *sf, struct sf_ctx *c)
{
	for (size_t i = 0; i < sf->nsandboxes; i++) {
		struct sf_sandbox *s = &sf->sandboxes[i];
		char path[128], buf[96];
		snprintf(path, sizeof(path), "sandboxes.%s.depends_on", s->name.s);
		if (s->depends_on.n && !(s->deps = calloc(s->depends_on.n, sizeof(*s->deps))))
			return OOM(c);
		for (size_t j = 0; j < s->depends_on.n; j++) {
			const struct sf_str *d = &s->depends_on.v[j];
			size_t k = sandbox_index(sf, d->s);
			if (k == NONE && build_index(sf, d->s) != NONE)
				return sf_fail(
				    c, d->pos, path, -EINVAL,
				    "\"%.64s\" is a build, not a sandbox (a sandbox uses a "
				    "build through imports)",
				    d->s);
			if (k == NONE)
				return sf_fail(
				    c, d->pos, path, -EINVAL, "no sandbox named \"%.64s\"%s", d->s,
				    did_you_mean(d->s, &sf->sandboxes[0].name, sf->nsandboxes,
				                 sizeof(sf->sandboxes[0]), buf, sizeof(buf)));
			for (size_t m = 0; m < j; m++)
				if (s->deps[m] == k)
					return sf_fail(c, d->pos, path, -EINVAL,
					               "\"%.64s\" is listed twice", d->s);
			s->deps[j] = k;
		}
	}
	return 0;
}

/* Depth-first from each sandbox in file order; meeting a sandbox still on
 * the stack closes a cycle, reported from that sandbox round to itself. */
enum { WHITE, GREY, BLACK };
struct dfs {
	const struct sandboxfile *sf;
	unsigned char *color;
	size_t *stack, depth;
};

static int cycle_fail(struct dfs *d, size_t from, struct sf_ctx *c)
{
	size_t at = 0;
	while (d->stack[at] != from)
		at++;
	char msg[1024];
	size_t k = 0;
	for (size_t i = at; i < d->depth && k < sizeof(msg); i++)
		k += (size_t)snprintf(msg + k, sizeof(msg) - k, "%s -> ",
		                      d->sf->sandboxes[d->stack[i]].name.s);
	if (k < sizeof(msg))
		snprintf(msg + k, sizeof(msg) - k, "%s", d->sf->sandboxes[from].name.s);
	/* At the entry of the cycle's first sandbox that leads round. */
	const struct sf_sandbox *s = &d->sf->sandboxes[from];
	size_t next = at + 1 < d->depth ? d->stack[at + 1] : from;
	struct sf_pos pos = s->depends_on.pos;
	for (size_t j = 0; j < s->depends_on.n; j++)
		if (s->deps[j] == next) {
			pos = s->depends_on.v[j].pos;
			break;
		}
	char path[128];
	snprintf(path, sizeof(path), "sandboxes.%s.depends_on", s->name.s);
	return sf_fail(c, pos, path, -EINVAL, "dependency cycle: %s", msg);
}

static int dfs_visit(struct dfs *d, size_t i, struct sf_ctx *c)
{
	const struct sf_sandbox *s = &d->sf->sandboxes[i];
	d->color[i] = GREY;
	d->stack[d->depth++] = i;
	for (size_t j = 0; j < s->depends_on.n; j++) {
		size_t k = s->deps[j];
		int r;
		if (d->color[k] == GREY)
			return cycle_fail(d, k, c);
		if (d->color[k] == WHITE && (r = dfs_visit(d, k, c)))
			return r;
	}
	d->depth--;
	d->color[i] = BLACK;
	return 0;
}

static int no_cycles(const struct sandboxfile *sf, struct sf_ctx *c)
{
	struct dfs d = {sf, calloc(sf->nsandboxes + 1, 1),
	                calloc(sf->nsandboxes + 1, sizeof(size_t)), 0};
	int r = d.color && d.stack ? 0 : OOM(c);
	for (size_t i = 0; !r && i < sf->nsandboxes; i++)
		if (d.color[i] == WHITE)
			r = dfs_visit(&d, i, c);
	free(d.color);
	free(d.stack);
	return r;
}

static int imports_resolve(struct sandboxfile *sf, struct sf_ctx *c)
{
	for (size_t i = 0; i < sf->nsandboxes; i++) {
		struct sf_sandbox *s = &sf->sandboxes[i];
		for (size_t j = 0; j < s->imports.n; j++) {
			struct sf_import *im = &s->imports.v[j];
			char path[256], buf[96];
			snprintf(path, sizeof(path), "sandboxes.%s.imports.%s", s->name.s,
			         im->build.s);
			size_t b = build_index(sf, im->build.s);
			if (b == NONE)
				return sf_fail(
				    c, im->build.pos, path, -EINVAL, "no build named \"%s\"%s",
				    im->build.s,
				    did_you_mean(
				        im->build.s, sf->nbuilds ? &sf->builds[0].name : NULL,
				        sf->nbuilds, sizeof(sf->builds[0]), buf, sizeof(buf)));
			im->build_index = b;
			const struct sf_map *ex = &sf->builds[b].exports;
			for (size_t k = 0; k < im->paths.n; k++) {
				const struct sf_str *e = &im->paths.v[k].name;
				size_t m = 0;
				while (m < ex->n && strcmp(ex->v[m].name.s, e->s))
					m++;
				if (m == ex->n)
					return sf_fail(
					    c, e->pos, path, -EINVAL,
					    "build %s exports no \"%s\"%s", im->build.s, e->s,
					    did_you_mean(e->s, ex->n ? &ex->v[0].name : NULL, ex->n,
					                 sizeof(ex->v[0]), buf, sizeof(buf)));
			}
		}
	}
	return 0;
}

int sf_resolve(struct sandboxfile *sf, struct sf_ctx *c)
{
	int r;
	if ((r = names_unique(sf, c)) || (r = deps_resolve(sf, c)) || (r = no_cycles(sf, c)) ||
	    (r = imports_resolve(sf, c)))
		return r;
	return 0;
}

const struct sf_sandbox *sandboxfile_find(const struct sandboxfile *sf, const char *name)
{
	size_t i = sf && name ? sandbox_index(sf, name) : NONE;
	return i == NONE ? NULL : &sf->sandboxes[i];
}

/* Kahn's order, always taking the earliest ready sandbox of the file:
 * O(n^2) over at most SANDBOXFILE_MAX_ENTRIES sandboxes. */
int sandboxfile_start_order(const struct sandboxfile *sf, const char *const *names, size_t n,
                            const struct sf_sandbox ***order, size_t *norder)
{
	size_t ns = sf->nsandboxes, count = 0, out = 0;
	*order = NULL;
	*norder = 0;
	unsigned char *want = calloc(ns + 1, 1), *done = calloc(ns + 1, 1);
	size_t *todo = calloc(ns + 1, sizeof(*todo));
	const struct sf_sandbox **o = calloc(ns + 1, sizeof(*o));
	int r = want && done && todo && o ? 0 : -ENOMEM;
	/* What was asked for and, transitively, what it depends on. */
	for (size_t i = 0; !r && i < (n ? n : ns); i++) {
		size_t k = n ? sandbox_index(sf, names[i]) : i;
		if (k == NONE)
			r = -ENOENT;
		else if (!want[k])
			want[todo[count++] = k] = 1;
	}
	for (size_t t = 0; !r && t < count; t++) {
		const struct sf_sandbox *s = &sf->sandboxes[todo[t]];
		for (size_t j = 0; j < s->depends_on.n; j++)
			if (!want[s->deps[j]])
				want[todo[count++] = s->deps[j]] = 1;
	}
	while (!r && out < count) {
		size_t i = 0;
		for (; i < ns; i++) {
			const struct sf_sandbox *s = &sf->sandboxes[i];
			size_t j = 0;
			if (!want[i] || done[i])
				continue;
			while (j < s->depends_on.n && done[s->deps[j]])
				j++;
			if (j == s->depends_on.n)
				break;
		}
		if (i == ns) { /* a cycle: the parser refuses those */
			r = -EINVAL;
			break;
		}
		done[i] = 1;
		o[out++] = &sf->sandboxes[i];
	}
	free(want);
	free(done);
	free(todo);
	if (r) {
		free(o);
		return r;
	}
	*order = o;
	*norder = out;
	return 0;
}

static int before(struct sf_pos a, struct sf_pos b)
{
	return !b.line || a.line < b.line || (a.line == b.line && a.col < b.col);
}

int sandboxfile_check_supported(const struct sandboxfile *sf, char *why, size_t why_len)
{
	struct sf_ctx c = {sf->display_name, why, why_len};
	struct sf_pos first = {0, 0};
	char path[256] = "", msg[160] = "";
#define CONSIDER(cond, at, ...)                                                                    \
	do {                                                                                       \
		if ((cond) && before((at), first)) {                                               \
			first = (at);                                                              \
			snprintf(path, sizeof(path), __VA_ARGS__);                                 \
			snprintf(msg, sizeof(msg), "%s", why_msg);                                 \
		}                                                                                  \
	} while (0)
	const char *why_msg;
	for (size_t i = 0; i < sf->nsandboxes; i++) {
		const struct sf_sandbox *s = &sf->sandboxes[i];
		const char *n = s->name.s;
		why_msg = "not supported yet (needs virtio-fs, a later issue)";
		CONSIDER(s->volumes.n, s->volumes.key, "sandboxes.%s.volumes", n);
		CONSIDER(s->imports.n, s->imports.key, "sandboxes.%s.imports", n);
		why_msg = "not supported yet (needs networking, a later issue)";
		CONSIDER(s->ports.n, s->ports.key, "sandboxes.%s.ports", n);
		char scope_msg[128];
		static const char *const scopes[] = {"none", "local", "public", "any"};
		snprintf(scope_msg, sizeof(scope_msg),
		         "\"%s\" is not supported yet (needs networking, a later issue; "
		         "only \"local\" works)",
		         scopes[s->scope.v]);
		why_msg = scope_msg;
		CONSIDER(s->scope.v != SF_SCOPE_LOCAL, s->scope.pos, "sandboxes.%s.scope", n);
	}
	why_msg = "not supported yet (needs virtio-fs, a later issue)";
	for (size_t i = 0; i < sf->nbuilds; i++)
		CONSIDER(1, sf->builds[i].name.pos, "builds.%s", sf->builds[i].name.s);
#undef CONSIDER
	if (!first.line)
		return 0;
	return sf_fail(&c, first, path, -ENOTSUP, "%s", msg);
}
