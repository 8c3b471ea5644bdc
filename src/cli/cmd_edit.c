/*
 * msb add / msb remove: edit the project's Sandboxfile as text, so the
 * user's comments, key order and formatting stay everywhere the edit does
 * not touch. A new sandbox goes at the end of the `sandboxes:` block, in
 * that block's indentation; a removed one takes its lines (and the
 * comments indented inside it) with it. The result must parse before it
 * replaces the file (temporary name, fsync, rename): an edit that would
 * break the project, such as removing a sandbox another depends on, is
 * refused with the parser's message and changes nothing.
 */
#include "cli.h"

#include "fsutil.h"
#include "lib/project/sandboxfile.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ITEMS 64

struct text {
	char *s;
	size_t len, cap;
};

static int put(struct text *t, const char *p, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		size_t cap = (t->len + n + 1) * 2;
		char *s = realloc(t->s, cap);
		if (!s)
			return -ENOMEM;
		t->s = s;
		t->cap = cap;
	}
	memcpy(t->s + t->len, p, n);
	t->len += n;
	t->s[t->len] = 0;
	return 0;
}

static int putf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int putf(struct text *t, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -E2BIG;
	return put(t, buf, (size_t)n);
}

/* A YAML double-quoted scalar of @s. */
static int put_quoted(struct text *t, const char *s)
{
	int e = put(t, "\"", 1);
	for (; !e && *s; s++) {
		if (*s == '"' || *s == '\\')
			e = putf(t, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			e = putf(t, "\\x%02x", (unsigned char)*s);
		else
			e = put(t, s, 1);
	}
	return e ? e : put(t, "\"", 1);
}

/* Line @n (1-based) of @s: its start, and its length without the newline. */
static const char *line_at(const char *s, int n, size_t *len)
{
	for (int i = 1; i < n && s; i++) {
		s = strchr(s, '\n');
		if (s)
			s++;
	}
	if (!s || !*s)
		return NULL;
	const char *nl = strchr(s, '\n');
	*len = nl ? (size_t)(nl - s) : strlen(s);
	return s;
}

static size_t indent_of(const char *l, size_t len)
{
	size_t i = 0;
	while (i < len && l[i] == ' ')
		i++;
	return i;
}

/* A line that belongs to whatever block it is in: blank or a comment. */
static int is_filler(const char *l, size_t len)
{
	size_t i = indent_of(l, len);
	return i == len || l[i] == '#';
}

/* The last line (1-based) of the block that starts at line @first with
 * indentation @ind: the lines after it indented deeper, or blank or
 * comments between such lines. */
static int block_end(const char *s, int first, size_t ind)
{
	int last = first;
	size_t len;
	const char *l;
	for (int n = first + 1; (l = line_at(s, n, &len)); n++) {
		size_t i = indent_of(l, len);
		if (is_filler(l, len)) {
			/* a comment indented inside the block is the block's, even
			 * after its last key; a blank line or a shallower comment
			 * may be the next one's */
			if (i < len && i > ind && last == n - 1)
				last = n;
			continue;
		}
		if (i <= ind)
			break;
		last = n;
	}
	return last;
}

static int write_back(const char *path, const struct text *t, char *why, size_t why_len)
{
	int e = fs_write_atomic(path, t->s, t->len);
	if (!e)
		e = fs_fsync_parent(path);
	if (e)
		snprintf(why, why_len, "cannot write %s: %s", path, strerror(-e));
	return e;
}

/*
 * The project's Sandboxfile (@file as -f gave it, or found), read once:
 * its text into @t (ending in a newline) and parsed into *@sf. Returns 0,
 * or 1 after printing why.
 */
static int open_project(const char *file, char *path, size_t path_len, struct text *t,
                        struct sandboxfile **sf)
{
	if (cli_find_sandboxfile(file, path, path_len))
		return 1;
	char why[1024];
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "msb: error: %s: %s\n", path, strerror(errno));
		return 1;
	}
	char buf[65536];
	size_t n;
	int e = 0;
	/* one byte over the limit is enough for the parser to refuse it */
	while (!e && t->len <= SANDBOXFILE_MAX_BYTES && (n = fread(buf, 1, sizeof(buf), f)) > 0)
		e = put(t, buf, n);
	fclose(f);
	if (!e && t->len && t->s[t->len - 1] != '\n')
		e = put(t, "\n", 1);
	if (!e && !t->s)
		e = put(t, "", 0);
	if (e) {
		fprintf(stderr, "msb: error: out of memory\n");
		return 1;
	}
	if (sandboxfile_parse(t->s, t->len, path, sf, why, sizeof(why)) < 0) {
		fprintf(stderr, "msb: error: %s\n", why);
		free(t->s);
		return 1;
	}
	return 0;
}

/* Checks the edited text parses, then writes it over @path. */
static int commit(const char *path, const struct text *t, char *why, size_t why_len)
{
	struct sandboxfile *sf;
	int e = sandboxfile_parse(t->s, t->len, path, &sf, why, why_len);
	if (e)
		return e;
	sandboxfile_free(sf);
	return write_back(path, t, why, why_len);
}

static void add_usage(FILE *f)
{
	fprintf(f, "usage: msb add NAME... -i IMAGE [OPTIONS] [-f PATH]\n\n"
	           "Adds sandboxes to the project's Sandboxfile (comments and formatting stay).\n\n"
	           "  -i, --image IMAGE     the image (required)\n"
	           "  --memory MIB          guest memory\n"
	           "  --cpus N              vCPUs\n"
	           "  --env K=V             an environment variable (repeatable)\n"
	           "  --env-file PATH       KEY=VALUE lines\n"
	           "  --workdir DIR         working directory\n"
	           "  --shell PATH          the shell for scripts\n"
	           "  --script NAME=CMD     a script (repeatable)\n"
	           "  --start CMD           the start script\n"
	           "  --depends-on NAME     a sandbox to start first (repeatable)\n"
	           "  -f, --file PATH       the Sandboxfile or its directory\n");
}

struct add_opts {
	const char *names[MAX_ITEMS], *envs[MAX_ITEMS], *scripts[MAX_ITEMS], *deps[MAX_ITEMS];
	size_t nnames, nenvs, nscripts, ndeps;
	const char *image, *memory, *cpus, *env_file, *workdir, *shell, *start, *file;
};

static int push(const char **v, size_t *n, const char *s)
{
	if (*n == MAX_ITEMS)
		return -1;
	v[(*n)++] = s;
	return 0;
}

/* `KEY:` and its @n quoted items, the key at @ind, the items @step deeper;
 * nothing when @n is 0. */
static int put_list(struct text *t, const char *key, const char *const *v, size_t n, size_t ind,
                    size_t step)
{
	int e = n ? putf(t, "%*s%s:\n", (int)ind, "", key) : 0;
	for (size_t i = 0; !e && i < n; i++) {
		e = putf(t, "%*s- ", (int)(ind + step), "");
		e = e ? e : put_quoted(t, v[i]);
		e = e ? e : put(t, "\n", 1);
	}
	return e;
}

/* One sandbox's lines, indented @ind under `sandboxes:`, each level
 * @step deeper. */
static int put_sandbox(struct text *t, const struct add_opts *o, const char *name, size_t ind,
                       size_t step)
{
	size_t in2 = ind + step;
	int e = putf(t, "%*s%s:\n%*simage: ", (int)ind, "", name, (int)in2, "");
	e = e ? e : put_quoted(t, o->image);
	e = e ? e : put(t, "\n", 1);
	if (!e && o->memory)
		e = putf(t, "%*smemory: %s\n", (int)in2, "", o->memory);
	if (!e && o->cpus)
		e = putf(t, "%*scpus: %s\n", (int)in2, "", o->cpus);
	const struct {
		const char *key, *val;
	} strs[] = {{"env_file", o->env_file}, {"workdir", o->workdir}, {"shell", o->shell}};
	for (size_t i = 0; !e && i < 3; i++)
		if (strs[i].val) {
			e = putf(t, "%*s%s: ", (int)in2, "", strs[i].key);
			e = e ? e : put_quoted(t, strs[i].val);
			e = e ? e : put(t, "\n", 1);
		}
	if (!e)
		e = put_list(t, "envs", o->envs, o->nenvs, in2, step);
	if (!e && (o->nscripts || o->start)) {
		e = putf(t, "%*sscripts:\n", (int)in2, "");
		if (!e && o->start) {
			e = putf(t, "%*sstart: ", (int)(in2 + step), "");
			e = e ? e : put_quoted(t, o->start);
			e = e ? e : put(t, "\n", 1);
		}
		for (size_t i = 0; !e && i < o->nscripts; i++) {
			const char *eq = strchr(o->scripts[i], '=');
			e = putf(t, "%*s%.*s: ", (int)(in2 + step), "", (int)(eq - o->scripts[i]),
			         o->scripts[i]);
			e = e ? e : put_quoted(t, eq + 1);
			e = e ? e : put(t, "\n", 1);
		}
	}
	if (!e)
		e = put_list(t, "depends_on", o->deps, o->ndeps, in2, step);
	return e;
}

static int parse_add(int argc, char **argv, struct add_opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int bad = 0;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			add_usage(stdout);
			return 1;
		} else if (a[0] != '-') {
			bad = push(o->names, &o->nnames, a);
		} else if (!v) {
			bad = 1;
		} else if (!strcmp(a, "-i") || !strcmp(a, "--image")) {
			o->image = v;
		} else if (!strcmp(a, "--memory")) {
			o->memory = v;
		} else if (!strcmp(a, "--cpus")) {
			o->cpus = v;
		} else if (!strcmp(a, "--env")) {
			bad = push(o->envs, &o->nenvs, v);
		} else if (!strcmp(a, "--env-file")) {
			o->env_file = v;
		} else if (!strcmp(a, "--workdir")) {
			o->workdir = v;
		} else if (!strcmp(a, "--shell")) {
			o->shell = v;
		} else if (!strcmp(a, "--script")) {
			bad = !strchr(v, '=') || v[0] == '=' || push(o->scripts, &o->nscripts, v);
		} else if (!strcmp(a, "--start")) {
			o->start = v;
		} else if (!strcmp(a, "--depends-on")) {
			bad = push(o->deps, &o->ndeps, v);
		} else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
			o->file = v;
		} else {
			bad = 1;
		}
		if (bad) {
			fprintf(stderr, "msb add: bad argument %s%s%s\n", a, v ? " " : "",
			        v ? v : "");
			add_usage(stderr);
			return 2;
		}
		if (a[0] == '-')
			i++;
	}
	/* Numbers go in as the user wrote them: the parser checks them. */
	if (!o->nnames || !o->image) {
		fprintf(stderr, "msb add: %s\n",
		        !o->nnames ? "which sandbox? (msb add NAME -i IMAGE)"
		                   : "-i IMAGE is required");
		return 2;
	}
	return 0;
}

int cmd_add(int argc, char **argv)
{
	struct add_opts o = {0};
	int r = parse_add(argc, argv, &o);
	if (r)
		return r == 1 ? 0 : r;
	long num;
	if ((o.memory && cli_number(o.memory, SF_MEMORY_MIN, SF_MEMORY_MAX, &num)) ||
	    (o.cpus && cli_number(o.cpus, 1, SF_CPUS_MAX, &num))) {
		fprintf(stderr, "msb add: --memory takes MiB from %d, --cpus 1 to %d\n",
		        SF_MEMORY_MIN, SF_CPUS_MAX);
		return 2;
	}
	char path[PATH_MAX], why[1024];
	struct text t = {0};
	struct sandboxfile *sf;
	if (open_project(o.file, path, sizeof(path), &t, &sf))
		return 1;
	int e = 0;
	for (size_t i = 0; i < o.nnames && !e; i++)
		if (sandboxfile_find(sf, o.names[i])) {
			fprintf(stderr, "msb: error: %s: a sandbox %s exists already\n", path,
			        o.names[i]);
			e = -EEXIST;
		}
	/* Where `sandboxes:` is, and how its entries are indented. */
	int line = 0;
	size_t len, ind = 2;
	const char *l;
	for (int n = 1; !e && (l = line_at(t.s, n, &len)); n++)
		if (len >= 10 && !strncmp(l, "sandboxes:", 10)) {
			size_t k = 10;
			while (k < len && l[k] == ' ')
				k++;
			if (k < len && l[k] != '#') {
				fprintf(stderr,
				        "msb: error: %s:%d: `sandboxes:` is written inline; msb "
				        "add edits "
				        "only the block form\n",
				        path, n);
				e = -ENOTSUP;
			}
			line = n;
			break;
		}
	size_t step = 2; /* the file's own indentation where it has one */
	if (!e && sf->nsandboxes) {
		const struct sf_sandbox *s0 = &sf->sandboxes[0];
		ind = (size_t)(s0->name.pos.col - 1);
		if (s0->image.key.line > s0->name.pos.line && s0->image.key.col > s0->name.pos.col)
			step = (size_t)(s0->image.key.col - s0->name.pos.col);
	}
	struct text out = {0};
	if (!e && line) {
		/* the new lines go after the block's last line */
		int last = block_end(t.s, line, 0);
		const char *after = line_at(t.s, last + 1, &len);
		size_t cut = after ? (size_t)(after - t.s) : t.len;
		e = put(&out, t.s, cut);
		for (size_t i = 0; !e && i < o.nnames; i++)
			e = put_sandbox(&out, &o, o.names[i], ind, step);
		if (!e)
			e = put(&out, t.s + cut, t.len - cut);
	} else if (!e) {
		e = put(&out, t.s, t.len);
		e = e ? e : putf(&out, "%ssandboxes:\n", t.len ? "\n" : "");
		for (size_t i = 0; !e && i < o.nnames; i++)
			e = put_sandbox(&out, &o, o.names[i], ind, step);
	}
	sandboxfile_free(sf);
	free(t.s);
	if (!e && (e = commit(path, &out, why, sizeof(why))) < 0)
		fprintf(stderr, "msb: error: %s (the Sandboxfile is unchanged)\n", why);
	free(out.s);
	if (e)
		return 1;
	for (size_t i = 0; i < o.nnames; i++)
		fprintf(stderr, "msb: added %s to %s\n", o.names[i], path);
	return 0;
}

int cmd_remove(int argc, char **argv)
{
	const char *file = NULL, *names[MAX_ITEMS];
	size_t n = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf(
			    "usage: msb remove NAME... [-f PATH]   (or msb rm)\n\n"
			    "Removes sandboxes from the project's Sandboxfile, with the lines and\n"
			    "comments inside them; the rest of the file stays as it is.\n");
			return 0;
		}
		if ((!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) && i + 1 < argc)
			file = argv[++i];
		else if (argv[i][0] != '-' && n < MAX_ITEMS)
			names[n++] = argv[i];
		else {
			fprintf(stderr, "msb remove: bad argument %s\n", argv[i]);
			return 2;
		}
	}
	if (!n) {
		fprintf(stderr, "msb remove: which sandbox? (msb remove NAME)\n");
		return 2;
	}
	char path[PATH_MAX], why[1024];
	struct text t = {0};
	struct sandboxfile *sf;
	if (open_project(file, path, sizeof(path), &t, &sf))
		return 1;
	/* Lines to drop, marked per line of the file. */
	int nlines = 1;
	for (size_t i = 0; i < t.len; i++)
		nlines += t.s[i] == '\n';
	char *drop = calloc((size_t)nlines + 2, 1);
	int e = drop ? 0 : -ENOMEM;
	for (size_t i = 0; i < n && !e; i++) {
		const struct sf_sandbox *s = sandboxfile_find(sf, names[i]);
		if (!s) {
			fprintf(stderr, "msb: error: %s: no sandbox %s\n", path, names[i]);
			e = -ENOENT;
			break;
		}
		int first = s->name.pos.line;
		int last = block_end(t.s, first, (size_t)(s->name.pos.col - 1));
		for (int k = first; k <= last && k <= nlines; k++)
			drop[k] = 1;
	}
	struct text out = {0};
	size_t len;
	const char *l;
	for (int k = 1; !e && (l = line_at(t.s, k, &len)); k++)
		if (!drop[k])
			e = put(&out, l, len + 1 <= t.len - (size_t)(l - t.s) ? len + 1 : len);
	if (!e && !out.s)
		e = put(&out, "", 0);
	sandboxfile_free(sf);
	free(t.s);
	free(drop);
	if (!e && (e = commit(path, &out, why, sizeof(why))) < 0)
		fprintf(stderr, "msb: error: %s (the Sandboxfile is unchanged)\n", why);
	free(out.s);
	if (e)
		return 1;
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "msb: removed %s from %s\n", names[i], path);
	return 0;
}
