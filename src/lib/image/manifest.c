/* Manifest kinds, index selection and image manifests (see manifest.h). */
#include "manifest.h"
#include "manifest_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SCHEMA1_WHY                                                                                \
	"schema 1 manifests are not supported (the image is too old); push it again with a "       \
	"current Docker, or convert it with `skopeo copy`"

static const char *const layer_types[] = {
    MT_OCI_LAYER_TAR,     MT_OCI_LAYER_GZIP,    MT_OCI_LAYER_ZSTD,    MT_OCI_LAYER_ND_TAR,
    MT_OCI_LAYER_ND_GZIP, MT_OCI_LAYER_ND_ZSTD, MT_DOCKER_LAYER_GZIP, NULL};
static const char *const config_types[] = {MT_OCI_CONFIG, MT_DOCKER_CONFIG, NULL};
static const char *const entry_types[] = {MT_OCI_MANIFEST, MT_DOCKER_MANIFEST, MT_OCI_INDEX,
                                          MT_DOCKER_LIST, NULL};

static int in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (!strcmp(*list, s))
			return 1;
	return 0;
}

/* A descriptor: mediaType (from @types, NULL for any), digest, size. */
static int desc_parse(json_t *d, const char *ctx, const char *const *types, const char *kind,
                      struct image_desc *out, char *why, size_t wl)
{
	const char *mt, *dg;
	int r;
	if (!json_is_object(d))
		return doc_fail(why, wl, -EINVAL, "%s is not an object", ctx);
	if ((r = doc_get_str(d, "mediaType", 256, 0, &mt, ctx, why, wl)) ||
	    (r = doc_get_str(d, "digest", 256, 0, &dg, ctx, why, wl)))
		return r;
	if (!mt)
		return doc_fail(why, wl, -EINVAL, "%s has no \"mediaType\"", ctx);
	if (types && !in_list(types, mt))
		return doc_fail(why, wl, -ENOTSUP, "%s: media type \"%.100s\" is not %s", ctx, mt,
		                kind);
	if (strlen(mt) >= sizeof(out->media_type))
		return doc_fail(why, wl, -EINVAL, "%s: media type \"%.100s...\" is too long", ctx,
		                mt);
	if (!dg)
		return doc_fail(why, wl, -EINVAL, "%s has no \"digest\"", ctx);
	if ((r = doc_digest_check(dg, ctx, why, wl)))
		return r;
	json_t *sz = json_object_get(d, "size");
	if (!sz)
		return doc_fail(why, wl, -EINVAL, "%s has no \"size\"", ctx);
	if (!json_is_integer(sz))
		return doc_fail(why, wl, -EINVAL, "%s: \"size\" is not an integer", ctx);
	json_int_t v = json_integer_value(sz);
	if (v < 0)
		return doc_fail(why, wl, -EINVAL, "%s: size %lld is negative", ctx, (long long)v);
	if ((uint64_t)v > DESC_MAX_SIZE)
		return doc_fail(why, wl, -E2BIG, "%s: size %lld is larger than 1 PiB", ctx,
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
		return doc_fail(why, wl, -EINVAL, "%s has no \"schemaVersion\"", ctx);
	if (!json_is_integer(v))
		return doc_fail(why, wl, -EINVAL, "%s: \"schemaVersion\" is not an integer", ctx);
	if (json_integer_value(v) == 1)
		return doc_fail(why, wl, -ENOTSUP, SCHEMA1_WHY);
	if (json_integer_value(v) != 2)
		return doc_fail(why, wl, -EINVAL, "%s: schemaVersion %lld is not 2", ctx,
		                (long long)json_integer_value(v));
	return 0;
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
			return doc_fail(why, why_len, -ENOTSUP, SCHEMA1_WHY);
		if (ct == T_OTHER)
			return doc_fail(
			    why, why_len, -ENOTSUP,
			    "the registry sent \"%.*s\", which is not an image manifest or index",
			    (int)(n > 100 ? 100 : n), t);
	}
	if (!len) {
		if (ct < 0)
			return doc_fail(why, why_len, -EINVAL,
			                "no content type and no body tell what the manifest is");
		*kind = known_types[ct].kind;
		return 0;
	}
	cleanup_json json_t *j = NULL;
	if ((r = doc_load(body, len, "manifest", &j, why, why_len)))
		return r;
	if (!json_is_object(j))
		return doc_fail(why, why_len, -EINVAL, "manifest is not a JSON object");
	if ((r = schema_check(j, "manifest", why, why_len)))
		return r;
	const char *mt;
	if ((r = doc_get_str(j, "mediaType", 256, 0, &mt, "manifest", why, why_len)))
		return r;
	int bt = mt ? classify(mt, strlen(mt)) : T_GENERIC;
	if (bt == T_SCHEMA1)
		return doc_fail(why, why_len, -ENOTSUP, SCHEMA1_WHY);
	if (mt && bt < 0)
		return doc_fail(why, why_len, -ENOTSUP,
		                "manifest media type \"%.100s\" is not an image manifest or index",
		                mt);
	if (ct >= 0 && bt >= 0 && ct != bt)
		return doc_fail(why, why_len, -EINVAL,
		                "the registry says it sent %s but the manifest says it is %s",
		                known_types[ct].type, known_types[bt].type);
	enum manifest_kind k = bt >= 0 ? known_types[bt].kind : 0;
	if (!k) {
		int idx = json_object_get(j, "manifests") != NULL;
		int img = json_object_get(j, "layers") != NULL;
		if (idx && img)
			return doc_fail(why, why_len, -EINVAL,
			                "manifest has both \"manifests\" and \"layers\" and no "
			                "\"mediaType\" to tell which it is");
		if (!idx && !img)
			return doc_fail(why, why_len, -EINVAL,
			                "this is neither an image manifest nor an index (it has no "
			                "\"layers\" or \"manifests\")");
		k = idx ? MANIFEST_INDEX : MANIFEST_IMAGE;
	}
	if (ct >= 0 && known_types[ct].kind != k)
		return doc_fail(why, why_len, -EINVAL,
		                "the registry says it sent %s but this is %s",
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
		return doc_fail(why, wl, -EINVAL, "%s is not an object", ctx);
	if ((r = doc_get_str(e, "mediaType", 256, 0, mt, ctx, why, wl)) ||
	    (r = doc_get_str(e, "digest", 256, 0, &dg, ctx, why, wl)))
		return r;
	if (!*mt || !dg)
		return doc_fail(why, wl, -EINVAL, "%s has no \"%s\"", ctx,
		                *mt ? "digest" : "mediaType");
	if (!json_is_integer(json_object_get(e, "size")))
		return doc_fail(why, wl, -EINVAL, "%s: \"size\" is missing or not an integer", ctx);
	json_t *an = json_object_get(e, "annotations");
	if (an && !json_is_object(an))
		return doc_fail(why, wl, -EINVAL, "%s: \"annotations\" is not an object", ctx);
	if ((r = doc_get_str(an, "vnd.docker.reference.type", 256, 0, &ref, ctx, why, wl)))
		return r;
	json_t *pl = json_object_get(e, "platform");
	if (!pl)
		return 0;
	if (!json_is_object(pl))
		return doc_fail(why, wl, -EINVAL, "%s: \"platform\" is not an object", ctx);
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
	if ((r = doc_load(body, len, "index", &j, why, why_len)))
		return r;
	if (!json_is_object(j))
		return doc_fail(why, why_len, -EINVAL, "index is not a JSON object");
	if ((r = schema_check(j, "index", why, why_len)) ||
	    (r = doc_get_str(j, "mediaType", 256, 0, &mt, "index", why, why_len)))
		return r;
	if (mt && strcmp(mt, MT_OCI_INDEX) && strcmp(mt, MT_DOCKER_LIST))
		return doc_fail(why, why_len, -EINVAL,
		                "index: media type \"%.100s\" is not an index", mt);
	json_t *m = json_object_get(j, "manifests");
	if (!json_is_array(m))
		return doc_fail(why, why_len, -EINVAL,
		                m ? "index: \"manifests\" is not an array"
		                  : "index has no \"manifests\"");
	size_t n = json_array_size(m);
	if (n > INDEX_MAX_MANIFESTS)
		return doc_fail(why, why_len, -E2BIG, "index has %zu entries; msb takes at most %d",
		                n, INDEX_MAX_MANIFESTS);

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
		return doc_fail(
		    why, why_len, -ENOTSUP,
		    "index entry %zu for %s is \"%.100s\", not an image manifest or index", odd,
		    name, odd_type);
	return doc_fail(why, why_len, -ENOENT, "index has no %s image (it has %s)", name,
	                have.len ? have.buf : "no images for any platform");
}

int manifest_parse(const void *body, size_t len, struct image_manifest *out, char *why,
                   size_t why_len)
{
	cleanup_json json_t *j = NULL;
	const char *mt;
	int r;
	memset(out, 0, sizeof(*out));
	if ((r = doc_load(body, len, "manifest", &j, why, why_len)))
		return r;
	if (!json_is_object(j))
		return doc_fail(why, why_len, -EINVAL, "manifest is not a JSON object");
	if ((r = schema_check(j, "manifest", why, why_len)) ||
	    (r = doc_get_str(j, "mediaType", 256, 0, &mt, "manifest", why, why_len)))
		return r;
	if (mt && strcmp(mt, MT_OCI_MANIFEST) && strcmp(mt, MT_DOCKER_MANIFEST)) {
		if (!strcmp(mt, MT_OCI_INDEX) || !strcmp(mt, MT_DOCKER_LIST))
			return doc_fail(
			    why, why_len, -EINVAL,
			    "this is an index, not an image manifest (select a platform "
			    "first)");
		return doc_fail(why, why_len, -ENOTSUP,
		                "manifest media type \"%.100s\" is not an image manifest", mt);
	}
	json_t *config = json_object_get(j, "config");
	if (!config)
		return doc_fail(why, why_len, -EINVAL, "manifest has no \"config\"");
	if ((r = desc_parse(config, "config", config_types,
	                    "an image config (is this an artifact rather than a container image?)",
	                    &out->config, why, why_len)))
		return r;
	json_t *layers = json_object_get(j, "layers");
	if (!json_is_array(layers))
		return doc_fail(why, why_len, -EINVAL,
		                layers ? "manifest: \"layers\" is not an array"
		                       : "manifest has no \"layers\"");
	size_t n = json_array_size(layers);
	if (n > MANIFEST_MAX_LAYERS)
		return doc_fail(why, why_len, -E2BIG,
		                "manifest has %zu layers; msb takes at most %d", n,
		                MANIFEST_MAX_LAYERS);
	if (n && !(out->layers = calloc(n, sizeof(*out->layers))))
		return doc_fail(why, why_len, -ENOMEM, "out of memory");
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
