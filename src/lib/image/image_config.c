/* Image configs (see manifest.h). */
#include "manifest.h"
#include "manifest_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static int env_check(const char *s, const char *what, char *why, size_t wl)
{
	const char *eq = strchr(s, '=');
	if (!eq)
		return doc_fail(why, wl, -EINVAL, "%s (\"%.100s\") has no '='", what, s);
	if (eq == s)
		return doc_fail(why, wl, -EINVAL, "%s (\"%.100s\") has no name before '='", what,
		                s);
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
	if ((r = doc_load(body, len, ctx, &j, why, why_len)))
		return r;
	if (!json_is_object(j))
		return doc_fail(why, why_len, -EINVAL, "image config is not a JSON object");
	if ((r = platform_from(j, ctx, &out->platform, why, why_len)) ||
	    (r = doc_get_str(j, "created", MANIFEST_MAX_STRING, 1, &created, ctx, why, why_len)))
		goto fail;
	if (created && !rfc3339_ok(created)) {
		r = doc_fail(why, why_len, -EINVAL,
		             "image config: \"created\" (\"%.64s\") is not an RFC 3339 time",
		             created);
		goto fail;
	}
	json_t *rootfs = json_object_get(j, "rootfs");
	if (!json_is_object(rootfs)) {
		r = doc_fail(why, why_len, -EINVAL,
		             rootfs ? "image config: \"rootfs\" is not an object"
		                    : "image config has no \"rootfs\"");
		goto fail;
	}
	if ((r = doc_get_str(rootfs, "type", 64, 0, &type, "image config: rootfs", why, why_len)))
		goto fail;
	if (!type || strcmp(type, "layers")) {
		r = doc_fail(why, why_len, -EINVAL,
		             "image config: rootfs type is \"%s\", not \"layers\"",
		             type ? type : "");
		goto fail;
	}
	if (!json_is_array(json_object_get(rootfs, "diff_ids"))) {
		r = doc_fail(why, why_len, -EINVAL,
		             "image config: \"rootfs\" has no \"diff_ids\" array");
		goto fail;
	}
	if ((r = doc_strv_get(rootfs, "diff_ids", MANIFEST_MAX_LAYERS, doc_digest_check,
	                      &out->diff_ids, &out->ndiff_ids, "image config: rootfs", why,
	                      why_len)))
		goto fail;

	/* Docker writes "config": null (and null fields) for what is unset */
	json_t *c = json_object_get(j, "config");
	if (json_is_null(c))
		c = NULL;
	if (c && !json_is_object(c)) {
		r = doc_fail(why, why_len, -EINVAL, "image config: \"config\" is not an object");
		goto fail;
	}
	if ((r = doc_strv_get(c, "Env", CONFIG_MAX_ENV, env_check, &out->env, NULL, ctx, why,
	                      why_len)) ||
	    (r = doc_strv_get(c, "Entrypoint", CONFIG_MAX_ARGV, NULL, &out->entrypoint, NULL, ctx,
	                      why, why_len)) ||
	    (r = doc_strv_get(c, "Cmd", CONFIG_MAX_ARGV, NULL, &out->cmd, NULL, ctx, why,
	                      why_len)) ||
	    (r = doc_get_str(c, "WorkingDir", MANIFEST_MAX_STRING, 1, &workdir, ctx, why,
	                     why_len)) ||
	    (r = doc_get_str(c, "User", MANIFEST_MAX_STRING, 1, &user, ctx, why, why_len)) ||
	    (r = doc_dup_str(workdir, &out->workdir, why, why_len)) ||
	    (r = doc_dup_str(user, &out->user, why, why_len)) ||
	    (r = doc_dup_str(created, &out->created, why, why_len)))
		goto fail;
	return 0;
fail:
	image_config_free(out);
	return r;
}

void image_config_free(struct image_config *c)
{
	doc_strv_free(c->env);
	doc_strv_free(c->entrypoint);
	doc_strv_free(c->cmd);
	doc_strv_free(c->diff_ids);
	free(c->workdir);
	free(c->user);
	free(c->created);
	memset(c, 0, sizeof(*c));
}
