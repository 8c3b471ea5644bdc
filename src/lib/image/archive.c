/* Images from archives and root file system tars (see archive.h). */
#include "archive.h"

#include "fsutil.h"
#include "ref.h"
#include "sha256.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MEMBERS_MAX  100000
#define NAME_MAX_LEN 4096
#define REF_NAME     "org.opencontainers.image.ref.name"

struct member {
	char *name;
	char digest[SHA256_DIGEST_STR];
	uint64_t size;
};

struct members {
	struct member *v;
	size_t n;
};

static void members_free(struct members *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].name);
	free(m->v);
}

/* "./a//b" and "a/b" are one member. */
static void normalise(const char *in, char *out, size_t len)
{
	size_t o = 0;
	while (in[0] == '.' && in[1] == '/')
		in += 2;
	for (; *in && o + 1 < len; in++) {
		if (*in == '/' && (o == 0 || out[o - 1] == '/'))
			continue;
		out[o++] = *in;
	}
	while (o && out[o - 1] == '/')
		o--;
	out[o] = 0;
}

static const struct member *member(const struct members *m, const char *name)
{
	char want[NAME_MAX_LEN];
	normalise(name, want, sizeof(want));
	for (size_t i = m->n; i-- > 0;) /* a later member replaces an earlier one */
		if (!strcmp(m->v[i].name, want))
			return &m->v[i];
	return NULL;
}

static ssize_t read_entry(void *arg, void *buf, size_t len)
{
	la_ssize_t n = archive_read_data(arg, buf, len);
	return n < 0 ? -1 : (ssize_t)n;
}

/* Every regular member into the store, remembered by name. */
static int read_members(struct store *s, const char *path, struct members *out, char *why,
                        size_t why_len)
{
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : dup(STDIN_FILENO);
	if (fd < 0) {
		int e = -errno;
		snprintf(why, why_len, "cannot open %s: %s", path, strerror(-e));
		return e;
	}
	struct archive *a = archive_read_new();
	if (!a) {
		close(fd);
		return -ENOMEM;
	}
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_none(a);
	archive_read_support_format_tar(a);
	int e = 0;
	size_t cap = 0;
	if (archive_read_open_fd(a, fd, 64 * 1024) != ARCHIVE_OK) {
		snprintf(why, why_len, "%s is not a tar archive: %s", path,
		         archive_error_string(a));
		e = -EINVAL;
	}
	struct archive_entry *ent;
	while (!e) {
		int rc = archive_read_next_header(a, &ent);
		if (rc == ARCHIVE_EOF)
			break;
		if (rc < ARCHIVE_WARN) {
			snprintf(why, why_len, "%s is damaged: %s", path, archive_error_string(a));
			e = -EINVAL;
			break;
		}
		if (archive_entry_filetype(ent) != AE_IFREG)
			continue;
		const char *name = archive_entry_pathname(ent);
		if (!name || strlen(name) >= NAME_MAX_LEN)
			continue;
		if (out->n == MEMBERS_MAX) {
			snprintf(why, why_len, "%s has more than %d files", path, MEMBERS_MAX);
			e = -E2BIG;
			break;
		}
		if (out->n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct member *nv = realloc(out->v, ncap * sizeof(*nv));
			if (!nv) {
				e = -ENOMEM;
				break;
			}
			out->v = nv;
			cap = ncap;
		}
		char norm[NAME_MAX_LEN];
		normalise(name, norm, sizeof(norm));
		struct member *m = &out->v[out->n];
		memset(m, 0, sizeof(*m));
		char w[700];
		e = store_put_stream(s, read_entry, a, m->digest, &m->size, w, sizeof(w));
		if (e) {
			snprintf(why, why_len, "%s: %s: %s", path, norm, w);
			break;
		}
		if (!(m->name = strdup(norm))) {
			e = -ENOMEM;
			break;
		}
		out->n++;
	}
	archive_read_free(a);
	close(fd);
	return e;
}

static int read_json(struct store *s, const struct member *m, json_t **out, char *why,
                     size_t why_len)
{
	char *data;
	size_t len;
	int e = store_read_blob(s, m->digest, MANIFEST_MAX_BYTES, &data, &len);
	if (e) {
		snprintf(why, why_len, "%s: %s", m->name, e == -EFBIG ? "too large" : strerror(-e));
		return e;
	}
	json_error_t je;
	*out = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	free(data);
	if (!*out) {
		snprintf(why, why_len, "%s: not JSON: %s (line %d)", m->name, je.text, je.line);
		return -EINVAL;
	}
	return 0;
}

/* The name an image gets: @name (with @tag when it has none), or @own. */
static int image_name(const char *name, const char *own, char *out, size_t len, char *why,
                      size_t why_len)
{
	struct image_ref r;
	char w[300], buf[600];
	if (name) {
		if (image_ref_parse(name, &r, w, sizeof(w)) < 0) {
			snprintf(why, why_len, "invalid image name \"%s\": %s", name, w);
			return -EINVAL;
		}
		/* An OCI ref.name that is only a tag ("v1") tags the given name. */
		const char *last = strrchr(name, '/');
		if (own && !strchr(own, '/') && !strchr(own, ':') &&
		    !strchr(last ? last : name, ':') && !r.digest[0]) {
			snprintf(buf, sizeof(buf), "%s:%s", name, own);
			if (image_ref_parse(buf, &r, w, sizeof(w)) < 0) {
				snprintf(why, why_len, "invalid image name \"%s\": %s", buf, w);
				return -EINVAL;
			}
		}
	} else if (!own || image_ref_parse(own, &r, w, sizeof(w)) < 0 ||
	           (!strchr(own, '/') && !strchr(own, ':'))) {
		snprintf(why, why_len,
		         "the archive does not name its image%s%s%s: give it one "
		         "(msb load -n NAME FILE)",
		         own ? " (only \"" : "", own ? own : "", own ? "\")" : "");
		return -EINVAL;
	}
	return image_ref_format(&r, out, len);
}

/* One image whose manifest (or index) blob is @digest: install it as @ref. */
static int install_manifest(struct store *s, const char *digest, const char *ref,
                            struct store_image *out, char *why, size_t why_len)
{
	char *data = NULL, w[1024], index_digest[sizeof(((struct image_desc *)0)->digest)] = "";
	char cur[sizeof(((struct image_desc *)0)->digest)];
	size_t len;
	snprintf(cur, sizeof(cur), "%s", digest);
	struct image_manifest m;
	int e;
	for (int depth = 0;; depth++) {
		if ((e = store_read_blob(s, cur, MANIFEST_MAX_BYTES, &data, &len)) < 0) {
			snprintf(why, why_len, "%s: manifest %s is not in the archive", ref, cur);
			return e;
		}
		enum manifest_kind kind;
		if ((e = manifest_kind(NULL, data, len, &kind, w, sizeof(w))) < 0)
			goto bad;
		if (kind == MANIFEST_IMAGE)
			break;
		struct platform host;
		struct image_desc d;
		platform_host(&host);
		if (depth == 2) {
			snprintf(w, sizeof(w), "image indexes nest too deep");
			e = -EINVAL;
			goto bad;
		}
		if ((e = index_select(data, len, &host, &d, w, sizeof(w))) < 0)
			goto bad;
		if (!index_digest[0])
			snprintf(index_digest, sizeof(index_digest), "%s", cur);
		snprintf(cur, sizeof(cur), "%s", d.digest);
		free(data);
		data = NULL;
	}
	if ((e = manifest_parse(data, len, &m, w, sizeof(w))) < 0)
		goto bad;
	free(data);
	data = NULL;
	for (size_t i = 0; i < m.nlayers && !e; i++)
		if (!store_has_blob(s, m.layers[i].digest, m.layers[i].size)) {
			snprintf(why, why_len, "%s: layer %zu (%s) is not in the archive", ref,
			         i + 1, m.layers[i].digest);
			e = -ENOENT;
		}
	struct image_config cfg;
	if (!e && (e = store_read_blob(s, m.config.digest, MANIFEST_MAX_BYTES, &data, &len)) < 0)
		snprintf(why, why_len, "%s: its config %s is not in the archive", ref,
		         m.config.digest);
	if (!e && (e = image_config_parse(data, len, &cfg, w, sizeof(w))) < 0)
		snprintf(why, why_len, "%s: bad image config: %s", ref, w);
	free(data);
	data = NULL;
	if (!e) {
		int built;
		e = image_install(s, ref, cur, index_digest[0] ? index_digest : NULL, &m, &cfg,
		                  NULL, NULL, out, &built, w, sizeof(w));
		if (e)
			snprintf(why, why_len, "%s: %s", ref, w);
		image_config_free(&cfg);
	}
	manifest_free(&m);
	return e;
bad:
	free(data);
	snprintf(why, why_len, "%s: %s", ref, w);
	return e;
}

/* Installs manifest @digest as the image @name or @own (image_name()). */
static int install_named(struct store *s, const char *digest, const char *name, const char *own,
                         void (*loaded)(const struct store_image *, void *), void *arg, char *why,
                         size_t why_len)
{
	char ref[600];
	struct store_image im;
	int e = image_name(name, own, ref, sizeof(ref), why, why_len);
	if (!e)
		e = install_manifest(s, digest, ref, &im, why, why_len);
	if (e)
		return e;
	if (loaded)
		loaded(&im, arg);
	store_image_free(&im);
	return 0;
}

static int load_oci(struct store *s, const struct members *mem, const char *name,
                    void (*loaded)(const struct store_image *, void *), void *arg, char *why,
                    size_t why_len)
{
	json_t *idx;
	int e = read_json(s, member(mem, "index.json"), &idx, why, why_len);
	if (e)
		return e;
	json_t *list = json_object_get(idx, "manifests");
	size_t n = json_is_array(list) ? json_array_size(list) : 0;
	if (!n) {
		snprintf(why, why_len, "index.json lists no images");
		json_decref(idx);
		return -EINVAL;
	}
	if (name && n > 1) {
		snprintf(why, why_len, "the archive holds %zu images: -n names only one", n);
		json_decref(idx);
		return -EINVAL;
	}
	for (size_t i = 0; i < n && !e; i++) {
		json_t *ent = json_array_get(list, i);
		const char *digest = json_string_value(json_object_get(ent, "digest"));
		json_t *ann = json_object_get(ent, "annotations");
		const char *own = json_string_value(json_object_get(ann, REF_NAME));
		if (!digest) {
			snprintf(why, why_len, "index.json: entry %zu has no digest", i + 1);
			e = -EINVAL;
			break;
		}
		e = install_named(s, digest, name, own, loaded, arg, why, why_len);
	}
	json_decref(idx);
	return e;
}

/* @j as compact JSON, stored as a blob: its digest and size. */
static int put_json(struct store *s, json_t *j, char digest[SHA256_DIGEST_STR], size_t *size)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (!text)
		return -ENOMEM;
	*size = strlen(text);
	sha256_digest_of(text, *size, digest);
	int e = store_put_blob(s, digest, text, *size);
	free(text);
	return e;
}

/* A docker-save image as an OCI manifest: its layers are plain tars. */
static int docker_manifest(struct store *s, const struct members *mem,
                           const struct docker_archive_entry *d, char digest[SHA256_DIGEST_STR],
                           char *why, size_t why_len)
{
	const struct member *cfg = member(mem, d->config);
	if (!cfg) {
		snprintf(why, why_len, "manifest.json names %s, which is not in the archive",
		         d->config);
		return -EINVAL;
	}
	json_t *layers = json_array();
	for (size_t i = 0; i < d->nlayers; i++) {
		const struct member *l = member(mem, d->layers[i]);
		if (!l) {
			snprintf(why, why_len,
			         "manifest.json names %s, which is not in the archive",
			         d->layers[i]);
			json_decref(layers);
			return -EINVAL;
		}
		json_array_append_new(layers,
		                      json_pack("{s:s, s:s, s:I}", "mediaType", MT_OCI_LAYER_TAR,
		                                "digest", l->digest, "size", (json_int_t)l->size));
	}
	json_t *m = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:o}", "schemaVersion", 2, "mediaType",
	                      MT_OCI_MANIFEST, "config", "mediaType", MT_OCI_CONFIG, "digest",
	                      cfg->digest, "size", (json_int_t)cfg->size, "layers", layers);
	size_t size;
	int e = put_json(s, m, digest, &size);
	json_decref(m);
	if (e)
		snprintf(why, why_len, "cannot store a manifest: %s", strerror(-e));
	return e;
}

static int load_docker(struct store *s, const struct members *mem, const char *name,
                       void (*loaded)(const struct store_image *, void *), void *arg, char *why,
                       size_t why_len)
{
	const struct member *mj = member(mem, "manifest.json");
	char *data;
	size_t len;
	int e = store_read_blob(s, mj->digest, MANIFEST_MAX_BYTES, &data, &len);
	if (e) {
		snprintf(why, why_len, "manifest.json: %s", strerror(-e));
		return e;
	}
	struct docker_archive_entry *v;
	size_t n;
	char w[1024];
	e = docker_archive_manifest_parse(data, len, &v, &n, w, sizeof(w));
	free(data);
	if (e) {
		snprintf(why, why_len, "manifest.json: %s", w);
		return e;
	}
	if (name && n > 1) {
		snprintf(why, why_len, "the archive holds %zu images: -n names only one", n);
		docker_archive_manifest_free(v, n);
		return -EINVAL;
	}
	for (size_t i = 0; i < n && !e; i++) {
		char digest[SHA256_DIGEST_STR];
		if ((e = docker_manifest(s, mem, &v[i], digest, why, why_len)) < 0)
			break;
		/* Every tag it was saved with, or the name given. */
		for (size_t t = 0; !e && (name ? t == 0 : v[i].repo_tags[t] != NULL); t++)
			e = install_named(s, digest, name ? name : v[i].repo_tags[t], NULL, loaded,
			                  arg, why, why_len);
		if (!e && !name && !v[i].repo_tags[0]) {
			snprintf(why, why_len,
			         "the archive's image %zu has no name: give it one (msb load -n "
			         "NAME FILE)",
			         i + 1);
			e = -EINVAL;
		}
	}
	docker_archive_manifest_free(v, n);
	return e;
}

int image_load(struct store *s, const char *path, const char *name,
               void (*loaded)(const struct store_image *im, void *arg), void *arg, char *why,
               size_t why_len)
{
	int guard = store_guard(s);
	if (guard < 0) {
		snprintf(why, why_len, "cannot lock the image store: %s", strerror(-guard));
		return guard;
	}
	struct members mem = {0};
	int e = read_members(s, path, &mem, why, why_len);
	if (!e) {
		if (member(&mem, "index.json"))
			e = load_oci(s, &mem, name, loaded, arg, why, why_len);
		else if (member(&mem, "manifest.json"))
			e = load_docker(s, &mem, name, loaded, arg, why, why_len);
		else {
			snprintf(why, why_len,
			         "%s is neither an OCI archive (index.json) nor a docker archive "
			         "(manifest.json)",
			         path);
			e = -EINVAL;
		}
	}
	members_free(&mem);
	store_unlock(guard);
	return e;
}

/* ---- import -------------------------------------------------------------- */

struct fd_src {
	int fd;
};

static ssize_t read_fd(void *arg, void *buf, size_t len)
{
	struct fd_src *f = arg;
	for (;;) {
		ssize_t n = read(f->fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		return n;
	}
}

/* The sha256 of the layer's tar once decompressed (its diff_id), and
 * what compression it has. */
static int diff_id(const char *path, char out[SHA256_DIGEST_STR], const char **media_type,
                   char *why, size_t why_len)
{
	struct archive *a = archive_read_new();
	if (!a)
		return -ENOMEM;
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_none(a);
	archive_read_support_format_raw(a);
	struct archive_entry *ent;
	int e = 0;
	if (archive_read_open_filename(a, path, 64 * 1024) != ARCHIVE_OK ||
	    archive_read_next_header(a, &ent) != ARCHIVE_OK) {
		snprintf(why, why_len, "cannot read the layer: %s", archive_error_string(a));
		archive_read_free(a);
		return -EINVAL;
	}
	switch (archive_filter_code(a, 0)) {
	case ARCHIVE_FILTER_GZIP:
		*media_type = MT_OCI_LAYER_GZIP;
		break;
	case ARCHIVE_FILTER_ZSTD:
		*media_type = MT_OCI_LAYER_ZSTD;
		break;
	default:
		*media_type = MT_OCI_LAYER_TAR;
	}
	struct sha256 h;
	sha256_init(&h);
	char buf[65536];
	for (;;) {
		la_ssize_t n = archive_read_data(a, buf, sizeof(buf));
		if (n < 0) {
			snprintf(why, why_len, "the layer is damaged: %s", archive_error_string(a));
			e = -EINVAL;
			break;
		}
		if (n == 0)
			break;
		sha256_update(&h, buf, (size_t)n);
	}
	archive_read_free(a);
	uint8_t d[32];
	sha256_final(&h, d);
	sha256_digest_str(d, out);
	return e;
}

int image_import(struct store *s, const char *path, const char *name, struct store_image *out,
                 char *why, size_t why_len)
{
	char ref[600], layer[SHA256_DIGEST_STR], diff[SHA256_DIGEST_STR], blob[PATH_MAX];
	char cfg_digest[SHA256_DIGEST_STR], man_digest[SHA256_DIGEST_STR], w[1024];
	int e = image_name(name, NULL, ref, sizeof(ref), why, why_len);
	if (e)
		return e;
	int guard = store_guard(s);
	if (guard < 0) {
		snprintf(why, why_len, "cannot lock the image store: %s", strerror(-guard));
		return guard;
	}
	struct fd_src src = {.fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC)
	                                             : dup(STDIN_FILENO)};
	uint64_t size = 0;
	const char *mt = MT_OCI_LAYER_TAR;
	json_t *cfg = NULL, *man = NULL;
	if (src.fd < 0) {
		e = -errno;
		snprintf(why, why_len, "cannot open %s: %s", path, strerror(-e));
		goto out;
	}
	e = store_put_stream(s, read_fd, &src, layer, &size, w, sizeof(w));
	close(src.fd);
	if (!e)
		e = store_blob_path(s, layer, blob, sizeof(blob));
	if (!e)
		e = diff_id(blob, diff, &mt, w, sizeof(w));
	if (e) {
		snprintf(why, why_len, "%s: %s", path, w);
		goto out;
	}
	struct platform p;
	char created[40];
	time_t now = time(NULL);
	struct tm tm;
	platform_host(&p);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
	cfg = json_pack("{s:s, s:s, s:s, s:{s:[s], s:[s]}, s:{s:s, s:[s]}}", "architecture", p.arch,
	                "os", p.os, "created", created, "config", "Env",
	                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "Cmd",
	                "/bin/sh", "rootfs", "type", "layers", "diff_ids", diff);
	size_t cfg_size, man_size;
	if ((e = put_json(s, cfg, cfg_digest, &cfg_size)) < 0)
		goto store_fail;
	man = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:[{s:s, s:s, s:I}]}", "schemaVersion", 2,
	                "mediaType", MT_OCI_MANIFEST, "config", "mediaType", MT_OCI_CONFIG,
	                "digest", cfg_digest, "size", (json_int_t)cfg_size, "layers", "mediaType",
	                mt, "digest", layer, "size", (json_int_t)size);
	if ((e = put_json(s, man, man_digest, &man_size)) < 0)
		goto store_fail;
	e = install_manifest(s, man_digest, ref, out, why, why_len);
	goto out;
store_fail:
	snprintf(why, why_len, "cannot store the image: %s", strerror(-e));
out:
	json_decref(cfg);
	json_decref(man);
	store_unlock(guard);
	return e;
}
