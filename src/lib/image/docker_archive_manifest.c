/* The manifest.json of `docker save` archives (see manifest.h). */
#include "manifest.h"
#include "manifest_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARCHIVE_PATH_MAX 4096

/* An archive member name we may open: relative, no "..", so it cannot
 * leave the archive's directory however the caller resolves it. */
static int path_check(const char *s, const char *what, char *why, size_t wl)
{
	if (!*s)
		return doc_fail(why, wl, -EINVAL, "%s is empty", what);
	if (*s == '/')
		return doc_fail(why, wl, -EINVAL, "%s (\"%.100s\") is an absolute path", what, s);
	if (strlen(s) > ARCHIVE_PATH_MAX)
		return doc_fail(why, wl, -E2BIG, "%s is longer than %d bytes", what,
		                ARCHIVE_PATH_MAX);
	for (const char *c = s; *c;) {
		size_t l = strcspn(c, "/");
		if (l == 2 && c[0] == '.' && c[1] == '.')
			return doc_fail(why, wl, -EINVAL, "%s (\"%.100s\") has a \"..\" component",
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
		return doc_fail(why, wl, -EINVAL, "%s is not an object", ctx);
	if ((r = doc_get_str(o, "Config", ARCHIVE_PATH_MAX, 0, &config, ctx, why, wl)))
		return r;
	if (!config)
		return doc_fail(why, wl, -EINVAL, "%s has no \"Config\"", ctx);
	char what[96];
	snprintf(what, sizeof(what), "%s: \"Config\"", ctx);
	if ((r = path_check(config, what, why, wl)) ||
	    (r = doc_dup_str(config, &e->config, why, wl)) ||
	    (r = doc_strv_get(o, "RepoTags", ARCHIVE_MAX_IMAGES, NULL, &e->repo_tags, NULL, ctx,
	                      why, wl)))
		return r;
	if (!json_is_array(json_object_get(o, "Layers")))
		return doc_fail(why, wl, -EINVAL, "%s has no \"Layers\" array", ctx);
	return doc_strv_get(o, "Layers", MANIFEST_MAX_LAYERS, path_check, &e->layers, &e->nlayers,
	                    ctx, why, wl);
}

int docker_archive_manifest_parse(const void *body, size_t len, struct docker_archive_entry **out,
                                  size_t *n, char *why, size_t why_len)
{
	cleanup_json json_t *j = NULL;
	int r;
	*out = NULL;
	*n = 0;
	if ((r = doc_load(body, len, "manifest.json", &j, why, why_len)))
		return r;
	if (!json_is_array(j))
		return doc_fail(why, why_len, -EINVAL, "manifest.json is not a JSON array");
	size_t cnt = json_array_size(j);
	if (cnt == 0)
		return doc_fail(why, why_len, -EINVAL, "manifest.json lists no images");
	if (cnt > ARCHIVE_MAX_IMAGES)
		return doc_fail(why, why_len, -E2BIG,
		                "manifest.json lists %zu images; msb takes at most %d", cnt,
		                ARCHIVE_MAX_IMAGES);
	struct docker_archive_entry *e = calloc(cnt, sizeof(*e));
	if (!e)
		return doc_fail(why, why_len, -ENOMEM, "out of memory");
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
		doc_strv_free(e[i].repo_tags);
		doc_strv_free(e[i].layers);
	}
	free(e);
}
