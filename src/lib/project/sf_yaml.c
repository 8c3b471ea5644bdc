/* YAML events to a tree of positioned nodes, and the error line (see
 * sf_int.h). libyaml's event API rather than its document API: aliases are
 * refused as they come instead of being resolved into a graph that a walk
 * would expand, and depth and sizes are checked before anything grows. */
#include "sf_int.h"
#include "why.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static int vfail(struct sf_ctx *c, struct sf_pos pos, const char *path, int err, const char *fmt,
                 va_list ap)
{
	if (!c->why || !c->wl)
		return err;
	int k;
	if (pos.line)
		k = snprintf(c->why, c->wl, "%s:%d:%d: ", c->name, pos.line, pos.col);
	else
		k = snprintf(c->why, c->wl, "%s: ", c->name);
	if (k >= 0 && (size_t)k < c->wl && path && *path) {
		int p = snprintf(c->why + k, c->wl - k, "%s: ", path);
		k = p < 0 ? -1 : k + p;
	}
	if (k >= 0 && (size_t)k < c->wl)
		vsnprintf(c->why + k, c->wl - k, fmt, ap);
	why_sanitize(c->why);
	return err;
}

int sf_fail(struct sf_ctx *c, struct sf_pos pos, const char *path, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(c, pos, path, err, fmt, ap);
	va_end(ap);
	return err;
}

int yn_fail(struct sf_ctx *c, const struct yn *n, int err, const char *fmt, ...)
{
	char path[512];
	yn_path(n, path, sizeof(path));
	va_list ap;
	va_start(ap, fmt);
	vfail(c, n->pos, path, err, fmt, ap);
	va_end(ap);
	return err;
}

/* Components are cut at 64 bytes so one silly key cannot hide the rest. */
void yn_path(const struct yn *n, char *buf, size_t len)
{
	const struct yn *chain[SANDBOXFILE_MAX_DEPTH + 2];
	size_t depth = 0;
	buf[0] = 0;
	for (; n && n->parent && depth < sizeof(chain) / sizeof(chain[0]); n = n->parent)
		if (n->parent->type == YN_MAP)
			chain[depth++] = n->parent->kids[n->idx & ~(size_t)1];
	size_t k = 0;
	while (depth-- && k < len) {
		int w = snprintf(buf + k, len - k, "%s%.64s", k ? "." : "", chain[depth]->str);
		if (w < 0)
			break;
		k += (size_t)w;
	}
}

int yn_is_null(const struct yn *n)
{
	return n->type == YN_SCALAR && n->plain &&
	       (!n->len || !strcmp(n->str, "~") || !strcmp(n->str, "null") ||
	        !strcmp(n->str, "Null") || !strcmp(n->str, "NULL"));
}

const char *yn_what(const struct yn *n, char *buf, size_t len)
{
	if (n->type == YN_SEQ)
		return "a list";
	if (n->type == YN_MAP)
		return "a map";
	if (yn_is_null(n))
		return "nothing";
	snprintf(buf, len, "\"%.60s%s\"", n->str, n->len > 60 ? "..." : "");
	return buf;
}

void yn_free(struct yn *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++)
		yn_free(n->kids[i]);
	free(n->kids);
	free(n->str);
	free(n);
}

static struct sf_pos pos_of(yaml_mark_t m)
{
	return (struct sf_pos){(int)m.line + 1, (int)m.column + 1};
}

/* libyaml's reader reports a byte offset, not a mark. */
static struct sf_pos pos_at(const char *text, size_t len, size_t off)
{
	struct sf_pos p = {1, 1};
	for (size_t i = 0; i < off && i < len; i++) {
		if (text[i] == '\n') {
			p.line++;
			p.col = 1;
		} else if (((unsigned char)text[i] & 0xc0) != 0x80) {
			p.col++;
		}
	}
	return p;
}

static int syntax_fail(struct sf_ctx *c, yaml_parser_t *p, const char *text, size_t len)
{
	if (p->error == YAML_MEMORY_ERROR)
		return sf_fail(c, (struct sf_pos){0, 0}, NULL, -ENOMEM, "out of memory");
	struct sf_pos pos = p->error == YAML_READER_ERROR ? pos_at(text, len, p->problem_offset)
	                                                  : pos_of(p->problem_mark);
	const char *problem = p->problem ? p->problem : "unknown problem";
	/* The usual way to break YAML by hand, and libyaml does not say so. */
	const char *hint = p->error != YAML_READER_ERROR && p->problem_mark.index < len &&
	                           text[p->problem_mark.index] == '\t'
	                       ? "; YAML indents with spaces, not tabs"
	                       : "";
	if (p->context && p->error != YAML_READER_ERROR)
		return sf_fail(c, pos, NULL, -EINVAL, "YAML syntax error: %s (%s at %d:%d)%s",
		               problem, p->context, (int)p->context_mark.line + 1,
		               (int)p->context_mark.column + 1, hint);
	return sf_fail(c, pos, NULL, -EINVAL, "YAML syntax error: %s%s", problem, hint);
}

struct builder {
	struct sf_ctx *c;
	struct yn *root, *cur;
	int depth, docs;
};

static int no_tag(struct builder *b, const yaml_char_t *tag, struct sf_pos pos)
{
	if (!tag)
		return 0;
	return sf_fail(b->c, pos, NULL, -EINVAL,
	               "YAML tags (here \"%.60s\") are not allowed in a Sandboxfile",
	               (const char *)tag);
}

/* Attaches @n to the container being read; the checks that need its place
 * (entry count, keys are strings, duplicate keys) are made here. */
static int attach(struct builder *b, struct yn *n)
{
	struct yn *p = b->cur;
	if (!p) {
		b->root = n;
		return 0;
	}
	int is_key = p->type == YN_MAP && !(p->n & 1);
	size_t entries = p->type == YN_MAP ? p->n / 2 : p->n;
	if ((p->type == YN_SEQ || is_key) && entries >= SANDBOXFILE_MAX_ENTRIES) {
		char path[512];
		struct sf_pos at = n->pos;
		yn_free(n);
		yn_path(p, path, sizeof(path));
		return sf_fail(b->c, at, path, -E2BIG, "more than %d entries",
		               SANDBOXFILE_MAX_ENTRIES);
	}
	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 8;
		struct yn **k = realloc(p->kids, cap * sizeof(*k));
		if (!k) {
			yn_free(n);
			return sf_fail(b->c, n->pos, NULL, -ENOMEM, "out of memory");
		}
		p->kids = k;
		p->cap = cap;
	}
	n->parent = p;
	n->idx = p->n;
	p->kids[p->n++] = n;
	if (!is_key)
		return 0;
	if (n->type != YN_SCALAR) {
		char path[512];
		yn_path(p, path, sizeof(path));
		return sf_fail(b->c, n->pos, path, -EINVAL, "a key must be a string, not %s",
		               n->type == YN_SEQ ? "a list" : "a map");
	}
	for (size_t i = 0; i + 1 < p->n; i += 2)
		if (!strcmp(p->kids[i]->str, n->str))
			return yn_fail(b->c, n, -EINVAL, "duplicate key (the first is at line %d)",
			               p->kids[i]->pos.line);
	return 0;
}

static int on_event(struct builder *b, yaml_event_t *ev)
{
	struct sf_pos pos = pos_of(ev->start_mark);
	struct yn *n;
	int r;
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (b->docs++)
			return sf_fail(b->c, pos, NULL, -EINVAL,
			               "a second YAML document: a Sandboxfile is one document");
		return 0;
	case YAML_ALIAS_EVENT:
		return sf_fail(b->c, pos, NULL, -EINVAL,
		               "YAML aliases (here *%.60s) are not allowed in a Sandboxfile",
		               (const char *)ev->data.alias.anchor);
	case YAML_SCALAR_EVENT:
		if ((r = no_tag(b, ev->data.scalar.tag, pos)))
			return r;
		if (memchr(ev->data.scalar.value, 0, ev->data.scalar.length))
			return sf_fail(b->c, pos, NULL, -EINVAL, "a string holds a NUL character");
		if (!(n = calloc(1, sizeof(*n))) ||
		    !(n->str =
		          strndup((const char *)ev->data.scalar.value, ev->data.scalar.length))) {
			free(n);
			return sf_fail(b->c, pos, NULL, -ENOMEM, "out of memory");
		}
		n->type = YN_SCALAR;
		n->pos = pos;
		n->len = ev->data.scalar.length;
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		return attach(b, n);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if ((r = no_tag(b,
		                ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.tag
		                                                      : ev->data.mapping_start.tag,
		                pos)))
			return r;
		if (++b->depth > SANDBOXFILE_MAX_DEPTH)
			return sf_fail(b->c, pos, NULL, -E2BIG,
			               "maps and lists nest deeper than %d levels",
			               SANDBOXFILE_MAX_DEPTH);
		if (!(n = calloc(1, sizeof(*n))))
			return sf_fail(b->c, pos, NULL, -ENOMEM, "out of memory");
		n->type = ev->type == YAML_SEQUENCE_START_EVENT ? YN_SEQ : YN_MAP;
		n->pos = pos;
		if ((r = attach(b, n)))
			return r;
		b->cur = n;
		return 0;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		b->depth--;
		b->cur = b->cur->parent;
		return 0;
	default:
		return 0;
	}
}

int yn_load(const char *text, size_t len, struct sf_ctx *c, struct yn **root)
{
	yaml_parser_t p;
	yaml_event_t ev;
	struct builder b = {.c = c};
	int r = 0, done = 0;
	*root = NULL;
	if (!yaml_parser_initialize(&p))
		return sf_fail(c, (struct sf_pos){0, 0}, NULL, -ENOMEM, "out of memory");
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	while (!r && !done) {
		if (!yaml_parser_parse(&p, &ev)) {
			r = syntax_fail(c, &p, text, len);
			break;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		r = on_event(&b, &ev);
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	if (!r && (!b.root || yn_is_null(b.root)))
		r = sf_fail(c, (struct sf_pos){1, 1}, NULL, -EINVAL,
		            "the file is empty: expected a map of meta, sandboxes and builds");
	if (r) {
		yn_free(b.root);
		return r;
	}
	*root = b.root;
	return 0;
}

/* Levenshtein distance, two rows; keys are short. */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return (size_t)-1;
	size_t row[65], prev[65];
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = prev[j] + 1, ins = row[j - 1] + 1;
			row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, row, (lb + 1) * sizeof(row[0]));
	}
	return prev[lb];
}

const char *sf_nearest(const char *s, const char *const *known, size_t n)
{
	const char *best = NULL;
	size_t bd = (size_t)-1;
	for (size_t i = 0; i < n; i++) {
		size_t d = distance(s, known[i]);
		size_t max = strlen(known[i]) <= 4 ? 1 : 2;
		if (d <= max && d < bd) {
			best = known[i];
			bd = d;
		}
	}
	return best;
}

static int alnum(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

int sf_name_ok(const char *s)
{
	if (!alnum(s[0]))
		return 0;
	size_t i = 1;
	for (; s[i]; i++)
		if (!alnum(s[i]) && s[i] != '_' && s[i] != '-')
			return 0;
	return i <= SANDBOXFILE_NAME_MAX;
}
