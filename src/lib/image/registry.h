/*
 * An OCI distribution client for one repository of one registry (libcurl):
 * manifests by tag or digest, blobs streamed to a file while their size and
 * sha256 are checked. Authentication as registries ask for it: a 401's
 * WWW-Authenticate says Bearer (fetch a token from its realm, anonymously
 * or with the user's credentials) or Basic. Credentials come from the
 * caller or from Docker's ~/.docker/config.json. A redirect (blob storage)
 * to another host never carries them. Dropped connections are retried with
 * backoff and resumed with Range where the registry allows it.
 *
 * Everything a registry sends is untrusted: bodies are bounded, digests are
 * checked, and errors say what the registry said.
 */
#ifndef MSB_IMAGE_REGISTRY_H
#define MSB_IMAGE_REGISTRY_H

#include "ref.h"

#include <stddef.h>
#include <stdint.h>

struct registry;

struct registry_opts {
	int insecure;     /* plain HTTP (always for loopback registries) */
	const char *user; /* NULL: from Docker's config.json, else anonymous */
	const char *pass;
	/* Polled while waiting; nonzero stops the transfer with -EINTR. */
	int (*cancelled)(void *arg);
	void *cancel_arg;
	int max_attempts; /* per request; 0: 5 */
};

/* A session with @ref's registry and repository. Returns 0 and *out
 * (registry_close() it) or a negative errno with @why set. */
int registry_open(const struct image_ref *ref, const struct registry_opts *o, struct registry **out,
                  char *why, size_t why_len);
void registry_close(struct registry *r);

/* "http" or "https" followed by "://" and the registry: what errors name. */
const char *registry_base(const struct registry *r);

struct registry_body {
	char *data; /* malloc'd, NUL appended (not counted) */
	size_t len;
	char content_type[160];
	char digest[72]; /* "sha256:..." of data */
};
void registry_body_free(struct registry_body *b);

/*
 * GETs the manifest @reference (a tag or a digest) with every manifest
 * media type we read in Accept. When @reference is a digest the body must
 * hash to it (-EBADMSG otherwise). -ENOENT when the registry does not know
 * the repository or the manifest; -EACCES when it refuses our credentials
 * (or wants some we lack).
 */
int registry_get_manifest(struct registry *r, const char *reference, size_t max,
                          struct registry_body *out, char *why, size_t why_len);

/* GETs /v2/ with the credentials, authenticating as asked: 0 when the
 * registry takes them (what `msb login` checks), -EACCES when not. */
int registry_ping(struct registry *r, char *why, size_t why_len);

/* GETs a small blob (a config) of @size bytes into memory, checked against
 * @digest. */
int registry_get_blob_mem(struct registry *r, const char *digest, uint64_t size,
                          struct registry_body *out, char *why, size_t why_len);

/*
 * Downloads blob @digest of @size bytes to @final_path through
 * @partial_path: appends to a partial file left by an earlier attempt
 * (Range) or restarts it, hashes as it goes, and renames it into place
 * (fsynced) only when size and digest match; a mismatch removes the partial
 * file and returns -EBADMSG. @progress (may be NULL) gets the bytes done so
 * far. Safe to call from several threads at once on one registry, each for
 * a different blob. The caller holds the blob's store lock.
 */
int registry_fetch_blob(struct registry *r, const char *digest, uint64_t size,
                        const char *partial_path, const char *final_path,
                        void (*progress)(void *arg, uint64_t done), void *arg, char *why,
                        size_t why_len);

#endif
