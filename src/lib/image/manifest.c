#include "manifest.h"
#include "why.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>

#define SCHEMA1_WHY                                                                                \
	"schema 1 manifests are not supported (the image is too old); push it again with a "       \
	"current Docker, or convert it with `skopeo copy`"

#define ARCHIVE_PATH_MAX 4096

static const char *const layer_types[] = {
    MT_OCI_LAYER_TAR,     MT_OCI_LAYER_GZIP,    MT_OCI_LAYER_ZSTD,    MT_OCI_LAYER_ND_TAR,
    MT_OCI_LAYER_ND_GZIP, MT_OCI_LAYER_ND_ZSTD, MT_DOCKER_LAYER_GZIP, NULL};
static const char *const config_types[] = {MT_OCI_CONFIG, MT_DOCKER_CONFIG, NULL};
static const char *const entry_types[] = {MT_OCI_MANIFEST, MT_DOCKER_MANIFEST, MT_OCI_INDEX,
                                          MT_DOCKER_LIST, NULL};

static int failf(char *why, size_t len, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Messages quote the document: why_sanitize() keeps its escapes off the
 * user's terminal. */
static int failf(char *why, size_t len, int err, const char *fmt, ...)
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

static void json_put(json_t **j)
{
	json_decref(*j);
}
#define cleanup_json __attribute__((cleanup(json_put)))

static int in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (!strcmp(*list, s))
			return 1;
	return 0;
}

static int digit(char c)
{
	return c >= '0' && c <= '9';
}

static int lower_alnum(char c)
{
	return digit(c) || (c >= 'a' && c <= 'z');
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
static int load(const void *body, size_t len, const char *what, json_t **out, char *why, size_t wl)
{
	*out = NULL;
	if (!body && len)
		return failf(why, wl, -EINVAL, "%s: no data", what);
	if (len > MANIFEST_MAX_BYTES)
		return failf(why, wl, -E2BIG, "%s is larger than %u MiB", what,
		             MANIFEST_MAX_BYTES >> 20);
	if (!depth_ok(body, len))
		return failf(why, wl, -E2BIG, "%s nests deeper than %d levels", what,
		             MANIFEST_MAX_DEPTH);
	json_error_t e;
	*out = json_loadb(len ? body : "", len, JSON_REJECT_DUPLICATES, &e);
	if (!*out)
		return failf(why, wl, -EINVAL, "%s is not valid JSON: %s (line %d, column %d)",
		             what, e.text, e.line, e.column);
	return 0;
}

static int str_val(json_t *v, size_t max, const char **out, const char *what, char *why, size_t wl)
{
	if (!json_is_string(v))
		return failf(why, wl, -EINVAL, "%s is not a string", what);
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	/* jansson refuses \u0000 without JSON_ALLOW_NUL; check anyway, as a
	 * C string cut at a NUL would mean something else */
	if (strlen(s) != n)
		return failf(why, wl, -EINVAL, "%s has a NUL character", what);
	if (n > max)
		return failf(why, wl, -E2BIG, "%s is longer than %zu bytes", what, max);
	*out = s;
	return 0;
}

/* @obj[@key] (obj may be NULL): *@out NULL when absent, or null and @null_ok. */
static int get_str(json_t *obj, const char *key, size_t max, int null_ok, const char **out,
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

static int dup_str(const char *s, char **out, char *why, size_t wl)
{
	*out = NULL;
	if (s && !(*out = strdup(s)))
		return failf(why, wl, -ENOMEM, "out of memory");
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
static int digest_check(const char *d, const char *what, char *why, size_t wl)
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
		return failf(why, wl, -ENOTSUP,
		             "%s: digest algorithm \"%.*s\" is not supported (only sha256)", what,
		             (int)(colon - d > 32 ? 32 : colon - d), d);
	return failf(why, wl, -EINVAL,
	             "%s: digest \"%.100s\" is not sha256 followed by 64 hex digits", what, d);
}

/* A descriptor: mediaType (from @types, NULL for any), digest, size. */
static int desc_parse(json_t *d, const char *ctx, const char *const *types, const char *kind,
                      struct image_desc *out, char *why, size_t wl)
{
	const char *mt, *dg;
	int r;
	if (!json_is_object(d))
		return failf(why, wl, -EINVAL, "%s is not an object", ctx);
	if ((r = get_str(d, "mediaType", 256, 0, &mt, ctx, why, wl)) ||
	    (r = get_str(d, "digest", 256, 0, &dg, ctx, why, wl)))
		return r;
	if (!mt)
		return failf(why, wl, -EINVAL, "%s has no \"mediaType\"", ctx);
	if (types && !in_list(types, mt))
		return failf(why, wl, -ENOTSUP, "%s: media type \"%.100s\" is not %s", ctx, mt,
		             kind);
	if (strlen(mt) >= sizeof(out->media_type))
		return failf(why, wl, -EINVAL, "%s: media type \"%.100s...\" is too long", ctx, mt);
	if (!dg)
		return failf(why, wl, -EINVAL, "%s has no \"digest\"", ctx);
	if ((r = digest_check(dg, ctx, why, wl)))
		return r;
	json_t *sz = json_object_get(d, "size");
	if (!sz)
		return failf(why, wl, -EINVAL, "%s has no \"size\"", ctx);
	if (!json_is_integer(sz))
		return failf(why, wl, -EINVAL, "%s: \"size\" is not an integer", ctx);
	json_int_t v = json_integer_value(sz);
	if (v < 0)
		return failf(why, wl, -EINVAL, "%s: size %lld is negative", ctx, (long long)v);
	if ((uint64_t)v > DESC_MAX_SIZE)
		return failf(why, wl, -E2BIG, "%s: size %lld is larger than 1 PiB", ctx,
		             (long long)v);
	snprintf(out->media_type, sizeof(out->media_type), "%s", mt);
	snprintf(out->digest, sizeof(out->digest), "%s", dg);
	out->size = (uint64_t)v;
	return 0;
}

/* schemaVersion 2; 1 is Docker's old signed format. */
static int schema_check(json_t *j, const char *ctx, char *why, size_t wl)
{
	json_t *v = json_object_get(j, "schemaVersion");
	if (!v)
		return failf(why, wl, -EINVAL, "%s has no \"schemaVersion\"", ctx);
	if (!json_is_integer(v))
		return failf(why, wl, -EINVAL, "%s: \"schemaVersion\" is not an integer", ctx);
	if (json_integer_value(v) == 1)
		return failf(why, wl, -ENOTSUP, SCHEMA1_WHY);
	if (json_integer_value(v) != 2)
		return failf(why, wl, -EINVAL, "%s: schemaVersion %lld is not 2", ctx,
		             (long long)json_integer_value(v));
	return 0;
}

/* "os", "architecture" (both required) and "variant" of @o. */
static int platform_from(json_t *o, const char *ctx, struct platform *p, char *why, size_t wl)
{
	const char *os, *arch, *variant;
	int r;
	if ((r = get_str(o, "os", sizeof(p->os) - 1, 0, &os, ctx, why, wl)) ||
	    (r = get_str(o, "architecture", sizeof(p->arch) - 1, 0, &arch, ctx, why, wl)) ||
	    (r = get_str(o, "variant", sizeof(p->variant) - 1, 0, &variant, ctx, why, wl)))
		return r;
	if (!os || !arch)
		return failf(why, wl, -EINVAL, "%s has no \"%s\"", ctx, os ? "architecture" : "os");
	snprintf(p->os, sizeof(p->os), "%.31s", os);
	snprintf(p->arch, sizeof(p->arch), "%.31s", arch);
	snprintf(p->variant, sizeof(p->variant), "%.31s", variant ? variant : "");
	return 0;
}

int platform_parse(const char *s, struct platform *p, char *why, size_t why_len)
{
	static const char *const arch_alias[][2] = {{"x86_64", "amd64"},  {"x86-64", "amd64"},
	                                            {"aarch64", "arm64"}, {"i386", "386"},
	                                            {"i686", "386"},      {NULL, NULL}};
	char part[3][32];
	size_t np = 0;
	memset(p, 0, sizeof(*p));
	if (!s || !*s)
		return failf(why, why_len, -EINVAL, "platform is empty");
	for (const char *c = s;; c++) {
		size_t l = strcspn(c, "/");
		if (np == 3 || l == 0 || l >= sizeof(part[0]))
			goto bad;
		for (size_t k = 0; k < l; k++) {
			char ch = c[k] >= 'A' && c[k] <= 'Z' ? (char)(c[k] - 'A' + 'a') : c[k];
			if (!lower_alnum(ch) && ch != '.' && ch != '_' && ch != '-')
				goto bad;
			part[np][k] = ch;
		}
		part[np++][l] = 0;
		c += l;
		if (!*c)
			break;
	}
	if (np == 1 && (!strcmp(part[0], "linux") || !strcmp(part[0], "windows") ||
	                !strcmp(part[0], "darwin")))
		return failf(why, why_len, -EINVAL,
		             "platform \"%s\" names only an OS; give os/arch, like linux/amd64",
		             part[0]);
	snprintf(p->os, sizeof(p->os), "%.31s", np == 1 ? "linux" : part[0]);
	snprintf(p->arch, sizeof(p->arch), "%.31s", part[np == 1 ? 0 : 1]);
	if (np == 3)
		snprintf(p->variant, sizeof(p->variant), "%.31s", part[2]);
	for (size_t i = 0; arch_alias[i][0]; i++)
		if (!strcmp(p->arch, arch_alias[i][0]))
			snprintf(p->arch, sizeof(p->arch), "%.31s", arch_alias[i][1]);
	return 0;
bad:
	memset(p, 0, sizeof(*p));
	return failf(why, why_len, -EINVAL,
	             "platform \"%.64s\" is not os/arch[/variant], like linux/amd64 or "
	             "linux/arm64/v8",
	             s);
}

void platform_host(struct platform *p)
{
	static const char *const machines[][3] = {
	    {"x86_64", "amd64", ""},  {"amd64", "amd64", ""},  {"aarch64", "arm64", "v8"},
	    {"arm64", "arm64", "v8"}, {"i386", "386", ""},     {"i686", "386", ""},
	    {"armv7l", "arm", "v7"},  {"armv6l", "arm", "v6"}, {"loongarch64", "loong64", ""},
	    {NULL, NULL, NULL}};
	struct utsname u;
	const char *m =
#if defined(__x86_64__)
	    "x86_64";
#elif defined(__aarch64__)
	    "aarch64";
#else
	    "unknown";
#endif
	if (uname(&u) == 0)
		m = u.machine;
	memset(p, 0, sizeof(*p));
	snprintf(p->os, sizeof(p->os), "linux");
	snprintf(p->arch, sizeof(p->arch), "%.31s", m); /* ppc64le, s390x, riscv64: same names */
	for (size_t i = 0; machines[i][0]; i++)
		if (!strcmp(m, machines[i][0])) {
			snprintf(p->arch, sizeof(p->arch), "%.31s", machines[i][1]);
			snprintf(p->variant, sizeof(p->variant), "%.31s", machines[i][2]);
		}
}

void platform_format(const struct platform *p, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s%s%s", p->os, p->arch, p->variant[0] ? "/" : "", p->variant);
}

/* Media types that name what a manifest endpoint returns. */
static const struct {
	const char *type;
	enum manifest_kind kind;
} known_types[] = {{MT_OCI_INDEX, MANIFEST_INDEX},
                   {MT_DOCKER_LIST, MANIFEST_INDEX},
                   {MT_OCI_MANIFEST, MANIFEST_IMAGE},
                   {MT_DOCKER_MANIFEST, MANIFEST_IMAGE}};
enum { T_GENERIC = -1, T_SCHEMA1 = -2, T_OTHER = -3 };

/* Index into known_types, or T_*; case-insensitive as media types are. */
static int classify(const char *t, size_t n)
{
	static const char *const generic[] = {"application/json", "text/plain",
	                                      "application/octet-stream", NULL};
	static const char *const schema1[] = {
	    "application/vnd.docker.distribution.manifest.v1+json",
	    "application/vnd.docker.distribution.manifest.v1+prettyjws", NULL};
	for (size_t i = 0; i < sizeof(known_types) / sizeof(known_types[0]); i++)
		if (strlen(known_types[i].type) == n && !strncasecmp(t, known_types[i].type, n))
			return (int)i;
	for (size_t i = 0; generic[i]; i++)
		if (strlen(generic[i]) == n && !strncasecmp(t, generic[i], n))
			return T_GENERIC;
	for (size_t i = 0; schema1[i]; i++)
		if (strlen(schema1[i]) == n && !strncasecmp(t, schema1[i], n))
			return T_SCHEMA1;
	return n ? T_OTHER : T_GENERIC;
}

static const char *kind_name(enum manifest_kind k)
{
	return k == MANIFEST_INDEX ? "an index" : "an image manifest";
}

int manifest_kind(const char *content_type, const void *body, size_t len, enum manifest_kind *kind,
                  char *why, size_t why_len)
{
	int ct = T_GENERIC, r;
	*kind = 0;
	if (content_type) {
		const char *t = content_type + strspn(content_type, " \t");
		size_t n = strcspn(t, ";");
		while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
			n--;
		ct = classify(t, n);
		if (ct == T_SCHEMA1)
			return failf(why, why_len, -ENOTSUP, SCHEMA1_WHY);
		if (ct == T_OTHER)
			return failf(
			    why, why_len, -ENOTSUP,
			    "the registry sent \"%.*s\", which is not an image manifest or index",
			    (int)(n > 100 ? 100 : n), t);
	}
	if (!len) {
		if (ct < 0)
			return failf(why, why_len, -EINVAL,
			             "no content type and no body tell what the manifest is");
		*kind = known_types[ct].kind;
		return 0;
	}
	cleanup_json json_t *j = NULL;
	if ((r = load(body, len, "manifest", &j, why, why_len)))
		return r;
	if (!json_is_object(j))
		return failf(why, why_len, -EINVAL, "manifest is not a JSON object");
	if ((r = schema_check(j, "manifest", why, why_len)))
		return r;
	const char *mt;
	if ((r = get_str(j, "mediaType", 256, 0, &mt, "manifest", why, why_len)))
		return r;
	int bt = mt ? classify(mt, strlen(mt)) : T_GENERIC;
	if (bt == T_SCHEMA1)
		return failf(why, why_len, -ENOTSUP, SCHEMA1_WHY);
	if (mt && bt < 0)
		return failf(why, why_len, -ENOTSUP,
		             "manifest media type \"%.100s\" is not an image manifest or index",
		             mt);
	if (ct >= 0 && bt >= 0 && ct != bt)
		return failf(why, why_len, -EINVAL,
		             "the registry says it sent %s but the manifest says it is %s",
		             known_types[ct].type, known_types[bt].type);
	enum manifest_kind k = bt >= 0 ? known_types[bt].kind : 0;
	if (!k) {
		int idx = json_object_get(j, "manifests") != NULL;
		int img = json_object_get(j, "layers") != NULL;
		if (idx && img)
			return failf(why, why_len, -EINVAL,
			             "manifest has both \"manifests\" and \"layers\" and no "
			             "\"mediaType\" to tell which it is");
		if (!idx && !img)
			return failf(why, why_len, -EINVAL,
			             "this is neither an image manifest nor an index (it has no "
			             "\"layers\" or \"manifests\")");
		k = idx ? MANIFEST_INDEX : MANIFEST_IMAGE;
	}
	if (ct >= 0 && known_types[ct].kind != k)
		return failf(why, why_len, -EINVAL, "the registry says it sent %s but this is %s",
		             kind_name(known_types[ct].kind), kind_name(k));
	*kind = k;
	return 0;
}

/* "a, b, c" without repeats, ", ..." once full. */
struct plist {
	char buf[320];
	size_t len;
	int full;
};

static void plist_add(struct plist *l, const char *item)
{
	size_t il = strlen(item);
	for (const char *c = l->buf; *c;) {
		size_t tl = strcspn(c, ",");
		if (tl == il && !memcmp(c, item, il))
			return;
		c += tl + (c[tl] ? 2 : 0);
	}
	if (l->full)
		return;
	if (l->len + il + 2 + 5 >= sizeof(l->buf)) {
		l->full = 1;
		l->len += (size_t)snprintf(l->buf + l->len, sizeof(l->buf) - l->len, ", ...");
		return;
	}
	l->len += (size_t)snprintf(l->buf + l->len, sizeof(l->buf) - l->len, "%s%s",
	                           l->len ? ", " : "", item);
}

/* How well @have serves @want: 0 not at all, 2 exactly, 1 by leaving the
 * variant open. An arm64 entry without a variant is v8. */
static int platform_score(const struct platform *want, const struct platform *have)
{
	if (strcmp(want->os, have->os) || strcmp(want->arch, have->arch))
		return 0;
	const char *hv = have->variant;
	if (!hv[0] && !strcmp(have->arch, "arm64"))
		hv = "v8";
	if (!want->variant[0] || !hv[0])
		return 1;
	return strcmp(want->variant, hv) ? 0 : 2;
}

/* Type-checks index entry @e; *@usable when it has a platform and is no
 * attestation. The chosen entry is checked in full later. */
static int entry_scan(json_t *e, const char *ctx, const char **mt, struct platform *ep, int *usable,
                      char *why, size_t wl)
{
	const char *dg, *ref;
	int r;
	*usable = 0;
	if (!json_is_object(e))
		return failf(why, wl, -EINVAL, "%s is not an object", ctx);
	if ((r = get_str(e, "mediaType", 256, 0, mt, ctx, why, wl)) ||
	    (r = get_str(e, "digest", 256, 0, &dg, ctx, why, wl)))
		return r;
	if (!*mt || !dg)
		return failf(why, wl, -EINVAL, "%s has no \"%s\"", ctx,
		             *mt ? "digest" : "mediaType");
	if (!json_is_integer(json_object_get(e, "size")))
		return failf(why, wl, -EINVAL, "%s: \"size\" is missing or not an integer", ctx);
	json_t *an = json_object_get(e, "annotations");
	if (an && !json_is_object(an))
		return failf(why, wl, -EINVAL, "%s: \"annotations\" is not an object", ctx);
	if ((r = get_str(an, "vnd.docker.reference.type", 256, 0, &ref, ctx, why, wl)))
		return r;
	json_t *pl = json_object_get(e, "platform");
	if (!pl)
		return 0;
	if (!json_is_object(pl))
		return failf(why, wl, -EINVAL, "%s: \"platform\" is not an object", ctx);
	if ((r = platform_from(pl, ctx, ep, why, wl)))
		return r;
	if (ref && !strcmp(ref, "attestation-manifest"))
		return 0;
	*usable = strcmp(ep->os, "unknown") || strcmp(ep->arch, "unknown");
	return 0;
}

int index_select(const void *body, size_t len, const struct platform *p, struct image_desc *out,
                 char *why, size_t why_len)
{
	cleanup_json json_t *j = NULL;
	const char *mt;
	int r;
	memset(out, 0, sizeof(*out));
	if ((r = load(body, len, "index", &j, why, why_len)))
		return r;
	if (!json_is_object(j))
		return failf(why, why_len, -EINVAL, "index is not a JSON object");
	if ((r = schema_check(j, "index", why, why_len)) ||
	    (r = get_str(j, "mediaType", 256, 0, &mt, "index", why, why_len)))
		return r;
	if (mt && strcmp(mt, MT_OCI_INDEX) && strcmp(mt, MT_DOCKER_LIST))
		return failf(why, why_len, -EINVAL, "index: media type \"%.100s\" is not an index",
		             mt);
	json_t *m = json_object_get(j, "manifests");
	if (!json_is_array(m))
		return failf(why, why_len, -EINVAL,
		             m ? "index: \"manifests\" is not an array"
		               : "index has no \"manifests\"");
	size_t n = json_array_size(m);
	if (n > INDEX_MAX_MANIFESTS)
		return failf(why, why_len, -E2BIG, "index has %zu entries; msb takes at most %d", n,
		             INDEX_MAX_MANIFESTS);

	struct plist have = {.len = 0};
	size_t best = 0, odd = 0; /* 1-based: the chosen entry, a match of another type */
	int best_score = 0;
	const char *odd_type = NULL;
	char ctx[48], name[100];
	for (size_t i = 0; i < n; i++) {
		struct platform ep;
		int usable;
		snprintf(ctx, sizeof(ctx), "index entry %zu", i + 1);
		if ((r = entry_scan(json_array_get(m, i), ctx, &mt, &ep, &usable, why, why_len)))
			return r;
		if (!usable)
			continue;
		platform_format(&ep, name, sizeof(name));
		plist_add(&have, name);
		int score = platform_score(p, &ep);
		if (score && !in_list(entry_types, mt)) {
			if (!odd) {
				odd = i + 1;
				odd_type = mt;
			}
		} else if (score > best_score) {
			best = i + 1;
			best_score = score;
		}
	}
	platform_format(p, name, sizeof(name));
	if (best) {
		snprintf(ctx, sizeof(ctx), "index entry %zu", best);
		return desc_parse(json_array_get(m, best - 1), ctx, entry_types,
		                  "an image manifest or index", out, why, why_len);
	}
	if (odd)
		return failf(why, why_len, -ENOTSUP,
		             "index entry %zu for %s is \"%.100s\", not an image manifest or index",
		             odd, name, odd_type);
	return failf(why, why_len, -ENOENT, "index has no %s image (it has %s)", name,
	             have.len ? have.buf : "no images for any platform");
}

int manifest_parse(const void *body, size_t len, struct image_manifest *out, char *why,
                   size_t why_len)
{
	cleanup_json json_t *j = NULL;
	const char *mt;
	int r;
	memset(out, 0, sizeof(*out));
	if ((r = load(body, len, "manifest", &j, why, why_len)))
		return r;
	if (!json_is_object(j))
		return failf(why, why_len, -EINVAL, "manifest is not a JSON object");
	if ((r = schema_check(j, "manifest", why, why_len)) ||
	    (r = get_str(j, "mediaType", 256, 0, &mt, "manifest", why, why_len)))
		return r;
	if (mt && strcmp(mt, MT_OCI_MANIFEST) && strcmp(mt, MT_DOCKER_MANIFEST)) {
		if (!strcmp(mt, MT_OCI_INDEX) || !strcmp(mt, MT_DOCKER_LIST))
			return failf(why, why_len, -EINVAL,
			             "this is an index, not an image manifest (select a platform "
			             "first)");
		return failf(why, why_len, -ENOTSUP,
		             "manifest media type \"%.100s\" is not an image manifest", mt);
	}
	json_t *config = json_object_get(j, "config");
	if (!config)
		return failf(why, why_len, -EINVAL, "manifest has no \"config\"");
	if ((r = desc_parse(config, "config", config_types,
	                    "an image config (is this an artifact rather than a container image?)",
	                    &out->config, why, why_len)))
		return r;
	json_t *layers = json_object_get(j, "layers");
	if (!json_is_array(layers))
		return failf(why, why_len, -EINVAL,
		             layers ? "manifest: \"layers\" is not an array"
		                    : "manifest has no \"layers\"");
	size_t n = json_array_size(layers);
	if (n > MANIFEST_MAX_LAYERS)
		return failf(why, why_len, -E2BIG, "manifest has %zu layers; msb takes at most %d",
		             n, MANIFEST_MAX_LAYERS);
	if (n && !(out->layers = calloc(n, sizeof(*out->layers))))
		return failf(why, why_len, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		char ctx[32];
		snprintf(ctx, sizeof(ctx), "layer %zu", i + 1);
		r = desc_parse(json_array_get(layers, i), ctx, layer_types,
		               "a layer type msb can unpack (tar, tar+gzip or tar+zstd)",
		               &out->layers[i], why, why_len);
		if (r) {
			manifest_free(out);
			return r;
		}
	}
	out->nlayers = n;
	return 0;
}

void manifest_free(struct image_manifest *m)
{
	free(m->layers);
	memset(m, 0, sizeof(*m));
}

static void strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

typedef int (*str_check)(const char *s, const char *what, char *why, size_t wl);

/* A copy of the string array @obj[@key], NULL-terminated; absent or null
 * gives an empty one. Each string passes @check when there is one. */
static int strv_get(json_t *obj, const char *key, size_t max, str_check check, char ***out,
                    size_t *count, const char *ctx, char *why, size_t wl)
{
	json_t *a = json_object_get(obj, key);
	size_t n = 0;
	int r;
	*out = NULL;
	if (a && !json_is_null(a)) {
		if (!json_is_array(a))
			return failf(why, wl, -EINVAL, "%s: \"%s\" is not an array of strings", ctx,
			             key);
		if ((n = json_array_size(a)) > max)
			return failf(why, wl, -E2BIG,
			             "%s: \"%s\" has %zu entries; msb takes at most %zu", ctx, key,
			             n, max);
	}
	char **v = calloc(n + 1, sizeof(*v));
	if (!v)
		return failf(why, wl, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const char *s;
		char what[160];
		snprintf(what, sizeof(what), "%s: \"%s\" entry %zu", ctx, key, i + 1);
		if ((r = str_val(json_array_get(a, i), MANIFEST_MAX_STRING, &s, what, why, wl)) ||
		    (check && (r = check(s, what, why, wl))) || (r = dup_str(s, &v[i], why, wl))) {
			strv_free(v);
			return r;
		}
	}
	*out = v;
	if (count)
		*count = n;
	return 0;
}

static int env_check(const char *s, const char *what, char *why, size_t wl)
{
	const char *eq = strchr(s, '=');
	if (!eq)
		return failf(why, wl, -EINVAL, "%s (\"%.100s\") has no '='", what, s);
	if (eq == s)
		return failf(why, wl, -EINVAL, "%s (\"%.100s\") has no name before '='", what, s);
	return 0;
}

/* YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM), as Go's RFC3339Nano writes it */
static int rfc3339_ok(const char *s)
{
	const char *shape = "dddd-dd-ddTdd:dd:dd";
	for (size_t i = 0; shape[i]; i++, s++)
		if (shape[i] == 'd'   ? !digit(*s)
		    : shape[i] == 'T' ? !strchr("Tt ", *s) || !*s
		                      : *s != shape[i])
			return 0;
	if (*s == '.') {
		size_t k = 0;
		while (digit(*++s))
			k++;
		if (k == 0 || k > 9)
			return 0;
	}
	if (*s == 'Z' || *s == 'z')
		return s[1] == 0;
	if (*s != '+' && *s != '-')
		return 0;
	return digit(s[1]) && digit(s[2]) && s[3] == ':' && digit(s[4]) && digit(s[5]) && !s[6];
}

int image_config_parse(const void *body, size_t len, struct image_config *out, char *why,
                       size_t why_len)
{
	static const char ctx[] = "image config";
	cleanup_json json_t *j = NULL;
	const char *created, *type, *workdir, *user;
	int r;
	memset(out, 0, sizeof(*out));
	if ((r = load(body, len, ctx, &j, why, why_len)))
		return r;
	if (!json_is_object(j))
		return failf(why, why_len, -EINVAL, "image config is not a JSON object");
	if ((r = platform_from(j, ctx, &out->platform, why, why_len)) ||
	    (r = get_str(j, "created", MANIFEST_MAX_STRING, 1, &created, ctx, why, why_len)))
		goto fail;
	if (created && !rfc3339_ok(created)) {
		r = failf(why, why_len, -EINVAL,
		          "image config: \"created\" (\"%.64s\") is not an RFC 3339 time", created);
		goto fail;
	}
	json_t *rootfs = json_object_get(j, "rootfs");
	if (!json_is_object(rootfs)) {
		r = failf(why, why_len, -EINVAL,
		          rootfs ? "image config: \"rootfs\" is not an object"
		                 : "image config has no \"rootfs\"");
		goto fail;
	}
	if ((r = get_str(rootfs, "type", 64, 0, &type, "image config: rootfs", why, why_len)))
		goto fail;
	if (!type || strcmp(type, "layers")) {
		r = failf(why, why_len, -EINVAL,
		          "image config: rootfs type is \"%s\", not \"layers\"", type ? type : "");
		goto fail;
	}
	if (!json_is_array(json_object_get(rootfs, "diff_ids"))) {
		r = failf(why, why_len, -EINVAL,
		          "image config: \"rootfs\" has no \"diff_ids\" array");
		goto fail;
	}
	if ((r = strv_get(rootfs, "diff_ids", MANIFEST_MAX_LAYERS, digest_check, &out->diff_ids,
	                  &out->ndiff_ids, "image config: rootfs", why, why_len)))
		goto fail;

	/* Docker writes "config": null (and null fields) for what is unset */
	json_t *c = json_object_get(j, "config");
	if (json_is_null(c))
		c = NULL;
	if (c && !json_is_object(c)) {
		r = failf(why, why_len, -EINVAL, "image config: \"config\" is not an object");
		goto fail;
	}
	if ((r = strv_get(c, "Env", CONFIG_MAX_ENV, env_check, &out->env, NULL, ctx, why,
	                  why_len)) ||
	    (r = strv_get(c, "Entrypoint", CONFIG_MAX_ARGV, NULL, &out->entrypoint, NULL, ctx, why,
	                  why_len)) ||
	    (r = strv_get(c, "Cmd", CONFIG_MAX_ARGV, NULL, &out->cmd, NULL, ctx, why, why_len)) ||
	    (r = get_str(c, "WorkingDir", MANIFEST_MAX_STRING, 1, &workdir, ctx, why, why_len)) ||
	    (r = get_str(c, "User", MANIFEST_MAX_STRING, 1, &user, ctx, why, why_len)) ||
	    (r = dup_str(workdir, &out->workdir, why, why_len)) ||
	    (r = dup_str(user, &out->user, why, why_len)) ||
	    (r = dup_str(created, &out->created, why, why_len)))
		goto fail;
	return 0;
fail:
	image_config_free(out);
	return r;
}

void image_config_free(struct image_config *c)
{
	strv_free(c->env);
	strv_free(c->entrypoint);
	strv_free(c->cmd);
	strv_free(c->diff_ids);
	free(c->workdir);
	free(c->user);
	free(c->created);
	memset(c, 0, sizeof(*c));
}

/* An archive member name we may open: relative, no "..", so it cannot
 * leave the archive's directory however the caller resolves it. */
static int path_check(const char *s, const char *what, char *why, size_t wl)
{
	if (!*s)
		return failf(why, wl, -EINVAL, "%s is empty", what);
	if (*s == '/')
		return failf(why, wl, -EINVAL, "%s (\"%.100s\") is an absolute path", what, s);
	if (strlen(s) > ARCHIVE_PATH_MAX)
		return failf(why, wl, -E2BIG, "%s is longer than %d bytes", what, ARCHIVE_PATH_MAX);
	for (const char *c = s; *c;) {
		size_t l = strcspn(c, "/");
		if (l == 2 && c[0] == '.' && c[1] == '.')
			return failf(why, wl, -EINVAL, "%s (\"%.100s\") has a \"..\" component",
			             what, s);
		c += l + (c[l] ? 1 : 0);
	}
	return 0;
}

static int archive_entry(json_t *o, const char *ctx, struct docker_archive_entry *e, char *why,
                         size_t wl)
{
	const char *config;
	int r;
	if (!json_is_object(o))
		return failf(why, wl, -EINVAL, "%s is not an object", ctx);
	if ((r = get_str(o, "Config", ARCHIVE_PATH_MAX, 0, &config, ctx, why, wl)))
		return r;
	if (!config)
		return failf(why, wl, -EINVAL, "%s has no \"Config\"", ctx);
	char what[96];
	snprintf(what, sizeof(what), "%s: \"Config\"", ctx);
	if ((r = path_check(config, what, why, wl)) || (r = dup_str(config, &e->config, why, wl)) ||
	    (r = strv_get(o, "RepoTags", ARCHIVE_MAX_IMAGES, NULL, &e->repo_tags, NULL, ctx, why,
	                  wl)))
		return r;
	if (!json_is_array(json_object_get(o, "Layers")))
		return failf(why, wl, -EINVAL, "%s has no \"Layers\" array", ctx);
	return strv_get(o, "Layers", MANIFEST_MAX_LAYERS, path_check, &e->layers, &e->nlayers, ctx,
	                why, wl);
}

int docker_archive_manifest_parse(const void *body, size_t len, struct docker_archive_entry **out,
                                  size_t *n, char *why, size_t why_len)
{
	cleanup_json json_t *j = NULL;
	int r;
	*out = NULL;
	*n = 0;
	if ((r = load(body, len, "manifest.json", &j, why, why_len)))
		return r;
	if (!json_is_array(j))
		return failf(why, why_len, -EINVAL, "manifest.json is not a JSON array");
	size_t cnt = json_array_size(j);
	if (cnt == 0)
		return failf(why, why_len, -EINVAL, "manifest.json lists no images");
	if (cnt > ARCHIVE_MAX_IMAGES)
		return failf(why, why_len, -E2BIG,
		             "manifest.json lists %zu images; msb takes at most %d", cnt,
		             ARCHIVE_MAX_IMAGES);
	struct docker_archive_entry *e = calloc(cnt, sizeof(*e));
	if (!e)
		return failf(why, why_len, -ENOMEM, "out of memory");
	for (size_t i = 0; i < cnt; i++) {
		char ctx[48];
		snprintf(ctx, sizeof(ctx), "manifest.json image %zu", i + 1);
		if ((r = archive_entry(json_array_get(j, i), ctx, &e[i], why, why_len))) {
			docker_archive_manifest_free(e, cnt);
			return r;
		}
	}
	*out = e;
	*n = cnt;
	return 0;
}

void docker_archive_manifest_free(struct docker_archive_entry *e, size_t n)
{
	for (size_t i = 0; e && i < n; i++) {
		free(e[i].config);
		strv_free(e[i].repo_tags);
		strv_free(e[i].layers);
	}
	free(e);
}
