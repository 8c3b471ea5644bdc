/* A Sandboxfile's tree read into struct sandboxfile, key by key (see
 * sandboxfile.h); what spans sandboxes is sf_check.c's. */
#include "sandboxfile.h"
#include "sf_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OOM(c) sf_fail((c), (struct sf_pos){0, 0}, NULL, -ENOMEM, "out of memory")

static const char *const top_keys[] = {"meta", "sandboxes", "builds"};
static const char *const meta_keys[] = {"description", "authors"};
enum {
	SB_IMAGE,
	SB_MEMORY,
	SB_CPUS,
	SB_ENVS,
	SB_ENV_FILE,
	SB_WORKDIR,
	SB_SHELL,
	SB_SCRIPTS,
	SB_COMMAND,
	SB_DEPENDS_ON,
	SB_VOLUMES,
	SB_PORTS,
	SB_SCOPE,
	SB_IMPORTS
};
static const char *const sandbox_keys[] = {"image",   "memory", "cpus",    "envs",    "env_file",
                                           "workdir", "shell",  "scripts", "command", "depends_on",
                                           "volumes", "ports",  "scope",   "imports"};
enum { BU_IMAGE, BU_MEMORY, BU_CPUS, BU_ENVS, BU_WORKDIR, BU_STEPS, BU_EXPORTS };
static const char *const build_keys[] = {"image",   "memory", "cpus",   "envs",
                                         "workdir", "steps",  "exports"};
static const char *const scopes[] = {"none", "local", "public", "any"};
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The index of @k in @keys, or an unknown-key error naming what @what
 * takes, or the near miss. */
static int key_index(struct sf_ctx *c, const struct yn *k, const char *const *keys, size_t n,
                     const char *what)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(k->str, keys[i]))
			return (int)i;
	const char *near = sf_nearest(k->str, keys, n);
	if (near)
		return yn_fail(c, k, -EINVAL, "unknown key, did you mean `%s`?", near);
	char list[256] = "";
	for (size_t i = 0, l = 0; i < n && l < sizeof(list); i++)
		l += (size_t)snprintf(list + l, sizeof(list) - l, "%s%s", i ? ", " : "", keys[i]);
	return yn_fail(c, k, -EINVAL, "unknown key (%s takes %s)", what, list);
}

static int expected(struct sf_ctx *c, const struct yn *v, const char *what)
{
	char buf[80];
	return yn_fail(c, v, -EINVAL, "expected %s, got %s", what, yn_what(v, buf, sizeof(buf)));
}

static void place(struct sf_pos *key, struct sf_pos *pos, const struct yn *k, const struct yn *v)
{
	if (key)
		*key = k ? k->pos : (struct sf_pos){0, 0};
	*pos = v->pos;
}

/* A string scalar (not null; not empty when @nonempty) into @out. */
static int str_of(struct sf_ctx *c, const struct yn *k, const struct yn *v, const char *what,
                  int nonempty, struct sf_str *out)
{
	if (v->type != YN_SCALAR || yn_is_null(v) || (nonempty && !v->len))
		return expected(c, v, what);
	free(out->s);
	if (!(out->s = strdup(v->str)))
		return OOM(c);
	place(&out->key, &out->pos, k, v);
	return 0;
}

static int abs_path_of(struct sf_ctx *c, const struct yn *k, const struct yn *v, struct sf_str *out)
{
	if (v->type == YN_SCALAR && !yn_is_null(v) && v->str[0] != '/')
		return expected(c, v, "an absolute path");
	return str_of(c, k, v, "an absolute path", 1, out);
}

/* Digits only (no sign, no leading zero, no YAML 1.1 octal or hex). */
static int num_of(struct sf_ctx *c, const struct yn *k, const struct yn *v, const char *what,
                  uint32_t lo, uint32_t hi, struct sf_num *out)
{
	uint64_t x = 0;
	if (v->type != YN_SCALAR || !v->len || v->len > 10 || (v->str[0] == '0' && v->len > 1))
		goto bad;
	for (size_t i = 0; i < v->len; i++) {
		if (v->str[i] < '0' || v->str[i] > '9')
			goto bad;
		x = x * 10 + (uint64_t)(v->str[i] - '0');
	}
	if (x < lo || x > hi)
		return yn_fail(c, v, -EINVAL, "expected %s from %u to %u, got %s", what, lo, hi,
		               v->str);
	out->v = (uint32_t)x;
	place(&out->key, &out->pos, k, v);
	return 0;
bad:
	return expected(c, v, what);
}

/* A list of strings; @check (may be NULL) vets each. */
typedef int (*item_check)(struct sf_ctx *c, const struct yn *item);

static int list_of(struct sf_ctx *c, const struct yn *k, const struct yn *v, const char *what,
                   const char *item_what, item_check check, struct sf_list *out)
{
	if (v->type != YN_SEQ)
		return expected(c, v, what);
	if (v->n && !(out->v = calloc(v->n, sizeof(*out->v))))
		return OOM(c);
	place(&out->key, &out->pos, k, v);
	for (size_t i = 0; i < v->n; i++) {
		int r = str_of(c, NULL, v->kids[i], item_what, 0, &out->v[i]);
		out->n = i + (r == 0);
		if (r || (check && (r = check(c, v->kids[i]))))
			return r;
	}
	return 0;
}

static int name_check(struct sf_ctx *c, const struct yn *name)
{
	if (sf_name_ok(name->str))
		return 0;
	return yn_fail(c, name, -EINVAL,
	               "invalid name: use 1 to %d letters, digits, _ and -, starting with a "
	               "letter or digit",
	               SANDBOXFILE_NAME_MAX);
}

/* A map NAME -> string; @abs: the values are absolute paths. */
static int map_of(struct sf_ctx *c, const struct yn *k, const struct yn *v, const char *what,
                  const char *value_what, int abs, struct sf_map *out)
{
	if (v->type != YN_MAP)
		return expected(c, v, what);
	if (v->n && !(out->v = calloc(v->n / 2, sizeof(*out->v))))
		return OOM(c);
	place(&out->key, &out->pos, k, v);
	for (size_t i = 0; i < v->n; i += 2) {
		const struct yn *ek = v->kids[i], *ev = v->kids[i + 1];
		struct sf_entry *e = &out->v[out->n++];
		int r;
		if ((r = name_check(c, ek)) || (r = str_of(c, NULL, ek, "a name", 1, &e->name)) ||
		    (r = abs ? abs_path_of(c, NULL, ev, &e->value)
		             : str_of(c, NULL, ev, value_what, 1, &e->value)))
			return r;
	}
	return 0;
}

static int env_check(struct sf_ctx *c, const struct yn *item)
{
	size_t kl = strcspn(item->str, "=");
	int ok = kl > 0 && item->str[kl] == '=';
	for (size_t i = 0; ok && i < kl; i++)
		ok = item->str[i] != ' ' && item->str[i] != '\t';
	return ok ? 0 : expected(c, item, "\"KEY=VALUE\"");
}

/* 1..65535, digits only. */
static int port_num(const char *s, size_t n, uint16_t *out)
{
	uint32_t x = 0;
	if (!n || n > 5 || s[0] == '0')
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		x = x * 10 + (uint32_t)(s[i] - '0');
	}
	*out = (uint16_t)x;
	return x <= 65535;
}

static int ports_of(struct sf_ctx *c, const struct yn *k, const struct yn *v, struct sf_ports *out)
{
	static const char what[] = "\"HOST:GUEST[/tcp|udp]\" with ports from 1 to 65535";
	if (v->type != YN_SEQ)
		return expected(c, v, "a list of \"HOST:GUEST[/tcp|udp]\"");
	if (v->n && !(out->v = calloc(v->n, sizeof(*out->v))))
		return OOM(c);
	place(&out->key, &out->pos, k, v);
	for (size_t i = 0; i < v->n; i++) {
		const struct yn *it = v->kids[i];
		struct sf_port *p = &out->v[out->n++];
		if (it->type != YN_SCALAR)
			return expected(c, it, what);
		const char *s = it->str, *colon = strchr(s, ':');
		const char *g = colon ? colon + 1 : NULL;
		size_t gl = g ? strcspn(g, "/") : 0;
		const char *proto = g && g[gl] ? g + gl + 1 : NULL;
		if (!colon || !port_num(s, (size_t)(colon - s), &p->host) ||
		    !port_num(g, gl, &p->guest) ||
		    (proto && strcmp(proto, "tcp") && strcmp(proto, "udp")))
			return expected(c, it, what);
		p->udp = proto && !strcmp(proto, "udp");
		p->pos = it->pos;
	}
	return 0;
}

static int volumes_of(struct sf_ctx *c, const struct yn *k, const struct yn *v,
                      struct sf_volumes *out)
{
	static const char what[] = "\"HOST:GUEST[:ro|rw]\" with GUEST an absolute path";
	if (v->type != YN_SEQ)
		return expected(c, v, "a list of \"HOST:GUEST[:ro|rw]\"");
	if (v->n && !(out->v = calloc(v->n, sizeof(*out->v))))
		return OOM(c);
	place(&out->key, &out->pos, k, v);
	for (size_t i = 0; i < v->n; i++) {
		const struct yn *it = v->kids[i];
		struct sf_volume *vol = &out->v[out->n++];
		if (it->type != YN_SCALAR)
			return expected(c, it, what);
		const char *s = it->str, *c1 = strchr(s, ':');
		const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		const char *mode = c2 ? c2 + 1 : NULL;
		size_t gl = c1 ? (c2 ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1)) : 0;
		if (!c1 || c1 == s || !gl || c1[1] != '/' ||
		    (mode && strcmp(mode, "ro") && strcmp(mode, "rw")))
			return expected(c, it, what);
		if (!(vol->host = strndup(s, (size_t)(c1 - s))) ||
		    !(vol->guest = strndup(c1 + 1, gl)))
			return OOM(c);
		vol->read_only = mode && !strcmp(mode, "ro");
		vol->pos = it->pos;
	}
	return 0;
}

static int imports_of(struct sf_ctx *c, const struct yn *k, const struct yn *v,
                      struct sf_imports *out)
{
	if (v->type != YN_MAP)
		return expected(c, v, "a map of BUILD: {EXPORT: PATH}");
	if (v->n && !(out->v = calloc(v->n / 2, sizeof(*out->v))))
		return OOM(c);
	place(&out->key, &out->pos, k, v);
	for (size_t i = 0; i < v->n; i += 2) {
		struct sf_import *im = &out->v[out->n++];
		int r;
		if ((r = name_check(c, v->kids[i])) ||
		    (r = str_of(c, NULL, v->kids[i], "a build name", 1, &im->build)) ||
		    (r = map_of(c, v->kids[i], v->kids[i + 1], "a map of EXPORT: PATH", NULL, 1,
		                &im->paths)))
			return r;
	}
	return 0;
}

static int command_of(struct sf_ctx *c, const struct yn *k, const struct yn *v,
                      struct sf_sandbox *s)
{
	static const char what[] = "a list of strings or a string";
	if (v->type == YN_SEQ && !v->n)
		return yn_fail(c, v, -EINVAL, "expected %s, got an empty list", what);
	if (v->type == YN_SEQ)
		return list_of(c, k, v, what, "a string", NULL, &s->command);
	if (!(s->command.v = calloc(1, sizeof(*s->command.v))))
		return OOM(c);
	int r = str_of(c, k, v, what, 1, &s->command.v[0]);
	if (r)
		return r;
	s->command.n = 1;
	s->command_is_string = 1;
	place(&s->command.key, &s->command.pos, k, v);
	return 0;
}

static int scope_of(struct sf_ctx *c, const struct yn *k, const struct yn *v,
                    struct sf_scope_field *out)
{
	for (size_t i = 0; v->type == YN_SCALAR && i < N(scopes); i++)
		if (!strcmp(v->str, scopes[i])) {
			out->v = (enum sf_scope)i;
			place(&out->key, &out->pos, k, v);
			return 0;
		}
	const char *near = v->type == YN_SCALAR ? sf_nearest(v->str, scopes, N(scopes)) : NULL;
	char buf[80];
	if (near)
		return yn_fail(c, v, -EINVAL,
		               "expected none, local, public or any, got %s, did "
		               "you mean `%s`?",
		               yn_what(v, buf, sizeof(buf)), near);
	return expected(c, v, "none, local, public or any");
}

/* The settings both sandboxes and builds take. */
static int common_of(struct sf_ctx *c, const struct yn *k, const struct yn *v, const char *key,
                     struct sf_str *image, struct sf_num *mem, struct sf_num *cpus,
                     struct sf_list *envs, struct sf_str *workdir)
{
	if (!strcmp(key, "image"))
		return str_of(c, k, v, "an image reference", 1, image);
	if (!strcmp(key, "memory"))
		return num_of(c, k, v, "a whole number of MiB", SF_MEMORY_MIN, SF_MEMORY_MAX, mem);
	if (!strcmp(key, "cpus"))
		return num_of(c, k, v, "a whole number of CPUs", 1, SF_CPUS_MAX, cpus);
	if (!strcmp(key, "envs"))
		return list_of(c, k, v, "a list of \"KEY=VALUE\"", "\"KEY=VALUE\"", env_check,
		               envs);
	return abs_path_of(c, k, v, workdir);
}

static int settings_map(struct sf_ctx *c, const struct yn *name, const struct yn *v,
                        const char *what)
{
	int r = name_check(c, name);
	if (!r && v->type != YN_MAP)
		return expected(c, v, what);
	return r;
}

static int missing_image(struct sf_ctx *c, const struct yn *name)
{
	return yn_fail(c, name, -EINVAL, "missing `image` (required)");
}

static int sandbox_of(struct sf_ctx *c, const struct yn *name, const struct yn *v,
                      struct sf_sandbox *s)
{
	int r;
	s->memory.v = SF_MEMORY_DEFAULT;
	s->cpus.v = SF_CPUS_DEFAULT;
	s->scope.v = SF_SCOPE_LOCAL;
	if ((r = str_of(c, NULL, name, "a name", 1, &s->name)) ||
	    (r = settings_map(c, name, v, "a map of sandbox settings")))
		return r;
	for (size_t i = 0; i < v->n; i += 2) {
		const struct yn *k = v->kids[i], *val = v->kids[i + 1];
		int key = key_index(c, k, sandbox_keys, N(sandbox_keys), "a sandbox");
		switch (key) {
		case SB_IMAGE:
		case SB_MEMORY:
		case SB_CPUS:
		case SB_ENVS:
		case SB_WORKDIR:
			r = common_of(c, k, val, k->str, &s->image, &s->memory, &s->cpus, &s->envs,
			              &s->workdir);
			break;
		case SB_ENV_FILE:
			r = str_of(c, k, val, "a file path", 1, &s->env_file);
			break;
		case SB_SHELL:
			r = str_of(c, k, val, "a shell's path", 1, &s->shell);
			break;
		case SB_SCRIPTS:
			r = map_of(c, k, val, "a map of NAME: COMMAND", "a command", 0,
			           &s->scripts);
			break;
		case SB_COMMAND:
			r = command_of(c, k, val, s);
			break;
		case SB_DEPENDS_ON:
			r = list_of(c, k, val, "a list of sandbox names", "a sandbox name", NULL,
			            &s->depends_on);
			break;
		case SB_VOLUMES:
			r = volumes_of(c, k, val, &s->volumes);
			break;
		case SB_PORTS:
			r = ports_of(c, k, val, &s->ports);
			break;
		case SB_SCOPE:
			r = scope_of(c, k, val, &s->scope);
			break;
		case SB_IMPORTS:
			r = imports_of(c, k, val, &s->imports);
			break;
		default:
			r = key;
		}
		if (r)
			return r;
	}
	if (!s->shell.s && !(s->shell.s = strdup(SF_SHELL_DEFAULT)))
		return OOM(c);
	return s->image.s ? 0 : missing_image(c, name);
}

static int build_of(struct sf_ctx *c, const struct yn *name, const struct yn *v, struct sf_build *b)
{
	int r;
	b->memory.v = SF_MEMORY_DEFAULT;
	b->cpus.v = SF_CPUS_DEFAULT;
	if ((r = str_of(c, NULL, name, "a name", 1, &b->name)) ||
	    (r = settings_map(c, name, v, "a map of build settings")))
		return r;
	for (size_t i = 0; i < v->n; i += 2) {
		const struct yn *k = v->kids[i], *val = v->kids[i + 1];
		int key = key_index(c, k, build_keys, N(build_keys), "a build");
		if (key == BU_STEPS)
			r = map_of(c, k, val, "a map of NAME: COMMAND", "a command", 0, &b->steps);
		else if (key == BU_EXPORTS)
			r = map_of(c, k, val, "a map of NAME: PATH", NULL, 1, &b->exports);
		else if (key >= 0)
			r = common_of(c, k, val, k->str, &b->image, &b->memory, &b->cpus, &b->envs,
			              &b->workdir);
		else
			r = key;
		if (r)
			return r;
	}
	return b->image.s ? 0 : missing_image(c, name);
}

static int meta_of(struct sf_ctx *c, const struct yn *v, struct sandboxfile *sf)
{
	if (yn_is_null(v))
		return 0;
	if (v->type != YN_MAP)
		return expected(c, v, "a map of description and authors");
	for (size_t i = 0; i < v->n; i += 2) {
		const struct yn *k = v->kids[i], *val = v->kids[i + 1];
		int key = key_index(c, k, meta_keys, N(meta_keys), "meta"), r;
		if (key < 0)
			return key;
		r = key == 0
		        ? str_of(c, k, val, "a string", 0, &sf->description)
		        : list_of(c, k, val, "a list of strings", "a string", NULL, &sf->authors);
		if (r)
			return r;
	}
	return 0;
}

static int top_of(struct sf_ctx *c, const struct yn *root, struct sandboxfile *sf)
{
	char buf[80];
	if (root->type != YN_MAP)
		return sf_fail(
		    c, root->pos, NULL, -EINVAL,
		    "expected a map of meta, sandboxes and builds at the top level, got %s",
		    yn_what(root, buf, sizeof(buf)));
	for (size_t i = 0; i < root->n; i += 2) {
		const struct yn *k = root->kids[i], *v = root->kids[i + 1];
		int key = key_index(c, k, top_keys, N(top_keys), "the top level"), r;
		if (key < 0)
			return key;
		if (key == 0) {
			if ((r = meta_of(c, v, sf)))
				return r;
			continue;
		}
		if (yn_is_null(v))
			continue;
		if (v->type != YN_MAP)
			return expected(
			    c, v, key == 1 ? "a map of NAME: SANDBOX" : "a map of NAME: BUILD");
		size_t n = v->n / 2;
		if (!n)
			continue;
		if (key == 1 && !(sf->sandboxes = calloc(n, sizeof(*sf->sandboxes))))
			return OOM(c);
		if (key == 2 && !(sf->builds = calloc(n, sizeof(*sf->builds))))
			return OOM(c);
		for (size_t j = 0; j < n; j++) {
			if (key == 1)
				r = sandbox_of(c, v->kids[2 * j], v->kids[2 * j + 1],
				               &sf->sandboxes[sf->nsandboxes++]);
			else
				r = build_of(c, v->kids[2 * j], v->kids[2 * j + 1],
				             &sf->builds[sf->nbuilds++]);
			if (r)
				return r;
		}
	}
	return 0;
}

int sandboxfile_parse(const char *text, size_t len, const char *display_name,
                      struct sandboxfile **out, char *why, size_t why_len)
{
	struct sf_ctx c = {display_name ? display_name : "Sandboxfile", why, why_len};
	struct yn *root = NULL;
	int r;
	*out = NULL;
	if (len > SANDBOXFILE_MAX_BYTES)
		return sf_fail(&c, (struct sf_pos){0, 0}, NULL, -E2BIG,
		               "the file is %zu bytes; a Sandboxfile is at most %u MiB", len,
		               SANDBOXFILE_MAX_BYTES >> 20);
	if (!text && len)
		return sf_fail(&c, (struct sf_pos){0, 0}, NULL, -EINVAL, "no text");
	if ((r = yn_load(text ? text : "", len, &c, &root)))
		return r;
	struct sandboxfile *sf = calloc(1, sizeof(*sf));
	if (!sf || !(sf->display_name = strdup(c.name)))
		r = OOM(&c);
	if (!r)
		r = top_of(&c, root, sf);
	yn_free(root);
	if (!r)
		r = sf_resolve(sf, &c);
	if (r) {
		sandboxfile_free(sf);
		return r;
	}
	*out = sf;
	return 0;
}

int sandboxfile_load(const char *path, struct sandboxfile **out, char *why, size_t why_len)
{
	struct sf_ctx c = {path, why, why_len};
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sf_fail(&c, (struct sf_pos){0, 0}, NULL, -errno, "%s", strerror(errno));
	/* One byte more than allowed tells a file at the limit from a larger one. */
	size_t cap = SANDBOXFILE_MAX_BYTES + 1, len = 0;
	char *buf = malloc(cap);
	int r = buf ? 0 : OOM(&c);
	while (!r && len < cap) {
		ssize_t k = read(fd, buf + len, cap - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			r = sf_fail(&c, (struct sf_pos){0, 0}, NULL, -errno, "%s", strerror(errno));
		else if (k == 0)
			break;
		else
			len += (size_t)k;
	}
	close(fd);
	if (!r && len == cap)
		r = sf_fail(&c, (struct sf_pos){0, 0}, NULL, -E2BIG,
		            "the file is larger than %u MiB, the most a Sandboxfile may be",
		            SANDBOXFILE_MAX_BYTES >> 20);
	if (!r)
		r = sandboxfile_parse(buf, len, path, out, why, why_len);
	free(buf);
	return r;
}
