/*
 * What registries and image archives hand us, parsed and checked: OCI
 * image indexes and Docker manifest lists (picking the entry for a
 * platform), OCI and Docker schema 2 image manifests, image configs
 * (OCI image-spec config.json, Docker's container.image.v1+json), and the
 * manifest.json of `docker save` archives.
 *
 * Every document is hostile: bodies are capped at MANIFEST_MAX_BYTES and
 * JSON nesting at MANIFEST_MAX_DEPTH, duplicate keys are refused, every
 * field used is type-checked, every count and string length is bounded.
 * Errors are a negative errno with @why (a buffer of @why_len bytes, always
 * written on failure, control characters replaced) saying what is wrong:
 *   -EINVAL   the document is malformed or breaks the spec
 *   -ENOTSUP  valid but not something msb can use (schema 1, sha512,
 *             an unknown layer type, ...)
 *   -E2BIG    a limit below is exceeded
 *   -ENOMEM   out of memory
 *
 * No function keeps a pointer to its input or has global state: all may be
 * called from any thread.
 */
#ifndef MSB_IMAGE_MANIFEST_H
#define MSB_IMAGE_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#define MT_OCI_INDEX       "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST    "application/vnd.oci.image.manifest.v1+json"
#define MT_DOCKER_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"

/* Layers: OCI tar, tar+gzip, tar+zstd, their nondistributable variants,
 * and Docker's gzip layers. */
#define MT_OCI_LAYER_TAR     "application/vnd.oci.image.layer.v1.tar"
#define MT_OCI_LAYER_GZIP    "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_OCI_LAYER_ZSTD    "application/vnd.oci.image.layer.v1.tar+zstd"
#define MT_OCI_LAYER_ND_TAR  "application/vnd.oci.image.layer.nondistributable.v1.tar"
#define MT_OCI_LAYER_ND_GZIP "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
#define MT_OCI_LAYER_ND_ZSTD "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
#define MT_DOCKER_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"
/* Configs */
#define MT_OCI_CONFIG    "application/vnd.oci.image.config.v1+json"
#define MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"

#define MANIFEST_MAX_BYTES  (4u << 20)   /* any document parsed here */
#define MANIFEST_MAX_DEPTH  64           /* JSON nesting; real documents need < 10 */
#define MANIFEST_MAX_LAYERS 256          /* layers, diff_ids, archive layers */
#define INDEX_MAX_MANIFESTS 1024         /* entries of an index */
#define ARCHIVE_MAX_IMAGES  1024         /* entries of a docker-save manifest.json */
#define CONFIG_MAX_ENV      4096         /* Env entries */
#define CONFIG_MAX_ARGV     4096         /* Entrypoint or Cmd entries */
#define MANIFEST_MAX_STRING (64u << 10)  /* any string we keep */
#define DESC_MAX_SIZE       (1ULL << 50) /* a blob's declared size */

/* A content descriptor. @digest is always "sha256:<64 lowercase hex>"
 * (others are refused: sha512 with -ENOTSUP). */
struct image_desc {
	char media_type[128];
	char digest[136];
	uint64_t size;
};

/* GOARCH-style names; "" when absent. */
struct platform {
	char os[32], arch[32], variant[32];
};

/*
 * Parses a user's platform: "linux/amd64", "linux/arm64/v8", or "amd64"
 * (the OS defaults to linux). Letters are lowercased and uname's spellings
 * mapped to GOARCH's (x86_64 -> amd64, aarch64 -> arm64, i686 -> 386).
 * Returns 0, or -EINVAL with @why set.
 */
int platform_parse(const char *s, struct platform *p, char *why, size_t why_len);

/* The machine msb runs on: linux and uname's machine as GOARCH names
 * (x86_64 -> amd64, aarch64 -> arm64 with variant v8). */
void platform_host(struct platform *p);

/* "os/arch" or "os/arch/variant" into @buf (truncated to @len). */
void platform_format(const struct platform *p, char *buf, size_t len);

enum manifest_kind { MANIFEST_IMAGE = 1, MANIFEST_INDEX = 2 };

/*
 * What a registry's answer is: from @content_type (may be NULL or carry
 * "; charset=..." parameters) and the body's "mediaType", which must agree
 * when both are specific; from the body's shape ("manifests" -> index,
 * "layers" -> image) when the type is missing or generic (application/json,
 * text/plain, application/octet-stream). @len may be 0 (@body NULL) when
 * only the header is known (a HEAD request). Returns 0 with @kind set;
 * -ENOTSUP for Docker schema 1 and for other documents (artifacts, ...);
 * -EINVAL, -E2BIG.
 */
int manifest_kind(const char *content_type, const void *body, size_t len, enum manifest_kind *kind,
                  char *why, size_t why_len);

/*
 * Picks the entry of an index (OCI index or Docker manifest list) for @p:
 * os and arch equal; when @p has a variant and the entry has one, they are
 * equal too (an arm64 entry without one is v8). An entry whose variant
 * equals @p's wins over one without a variant; otherwise the first match
 * wins. Entries without a platform and attestations (annotation
 * "vnd.docker.reference.type": "attestation-manifest", or unknown/unknown)
 * are skipped. The chosen entry may be a nested index (its media type says
 * so): the caller fetches it and selects again. Every entry is
 * type-checked; the chosen one is checked as a descriptor into @out.
 * Returns 0; -ENOENT with @why listing the platforms the index has;
 * -ENOTSUP when the only match is not an image manifest or index;
 * -EINVAL, -E2BIG.
 */
int index_select(const void *body, size_t len, const struct platform *p, struct image_desc *out,
                 char *why, size_t why_len);

/* An image manifest. @layers (bottom first) is owned by the struct. */
struct image_manifest {
	struct image_desc config;
	struct image_desc *layers; /* NULL when nlayers == 0 */
	size_t nlayers;
};

/*
 * Parses an OCI or Docker schema 2 image manifest: schemaVersion 2, the
 * config and every layer a descriptor with a media type from the lists
 * above, a sha256 digest and 0 <= size <= DESC_MAX_SIZE. Zero layers is
 * accepted; more than MANIFEST_MAX_LAYERS is -E2BIG. Messages name layers
 * from 1 ("layer 3: ..."). On success the caller frees @out with
 * manifest_free(); on failure @out holds nothing to free.
 */
int manifest_parse(const void *body, size_t len, struct image_manifest *out, char *why,
                   size_t why_len);
void manifest_free(struct image_manifest *m);

/*
 * The parts of an image config a sandbox uses. Every string is owned by the
 * struct. @env, @entrypoint, @cmd and @diff_ids are NULL-terminated arrays,
 * never NULL after a successful parse (an absent or null field gives an
 * empty array).
 */
struct image_config {
	char **env; /* "K=V", K not empty */
	char **entrypoint;
	char **cmd;
	char *workdir;            /* may be NULL */
	char *user;               /* may be NULL or "" */
	char *created;            /* RFC 3339, may be NULL */
	struct platform platform; /* "os", "architecture", "variant" */
	size_t ndiff_ids;
	char **diff_ids; /* rootfs.diff_ids, sha256 digests, bottom first */
};

/*
 * Parses an image config: "os", "architecture" and "rootfs" (type "layers")
 * are required as the image-spec says; a missing or null "config" object
 * is fine (all empty), as are null Env/Entrypoint/Cmd (Docker writes them).
 * Limits: CONFIG_MAX_ENV, CONFIG_MAX_ARGV, MANIFEST_MAX_LAYERS diff_ids,
 * MANIFEST_MAX_STRING per string (-E2BIG). On success the caller frees
 * @out with image_config_free(); on failure @out holds nothing to free.
 */
int image_config_parse(const void *body, size_t len, struct image_config *out, char *why,
                       size_t why_len);
void image_config_free(struct image_config *c);

/* One image of a `docker save` archive. Paths are archive member names,
 * relative, without ".." components. Strings and arrays are owned by the
 * entry; @repo_tags and @layers are NULL-terminated, never NULL. */
struct docker_archive_entry {
	char *config;
	char **repo_tags; /* empty when saved by ID */
	char **layers;    /* bottom first */
	size_t nlayers;
};

/*
 * Parses the archive's manifest.json: a non-empty array (at most
 * ARCHIVE_MAX_IMAGES) of {"Config": path, "RepoTags": [...] or null,
 * "Layers": [path, ...]}. Absolute paths and ".." components are refused.
 * On success *@out (owned by the caller, free with
 * docker_archive_manifest_free(*out, *n)) holds *@n entries; on failure
 * *@out is NULL and *@n 0.
 */
int docker_archive_manifest_parse(const void *body, size_t len, struct docker_archive_entry **out,
                                  size_t *n, char *why, size_t why_len);
void docker_archive_manifest_free(struct docker_archive_entry *e, size_t n);

#endif
