/*
 * The image store under $MSB_HOME: what `msb pull` writes and `msb exe`
 * reads.
 *
 *   blobs/sha256/<hex>      content-addressed blobs (manifests, configs,
 *                           layers), complete and verified or absent
 *   blobs/partial/<hex>     a blob being downloaded (kept for a resume)
 *   images/<hex>.erofs      one root file system per manifest digest
 *   locks/<hex>.lock        flock()s: one downloader per blob, one builder
 *                           per image, across processes
 *   msb.db                  SQLite: references -> manifest digests, images,
 *                           the blobs each image uses, the sandboxes
 *                           running (sandbox_records.h)
 *
 * Files appear under their final name only complete (temporary name,
 * fsync, rename, directory fsync), so a killed pull leaves a store that is
 * consistent: at most partial blobs, which the next pull resumes, and no
 * database row pointing at a missing file. SQLite serialises writers; a
 * store handle is for one thread.
 */
#ifndef MSB_IMAGE_STORE_H
#define MSB_IMAGE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STORE_SCHEMA_VERSION 2

struct store;

/* Opens (creating as needed) the store at @home (normally msb_home()),
 * migrating its database to STORE_SCHEMA_VERSION. Returns 0 and *out
 * (store_close() it) or a negative errno with @why set. */
int store_open(const char *home, struct store **out, char *why, size_t why_len);
void store_close(struct store *s);
const char *store_home(const struct store *s);

/* Paths of a blob / a partial download / an image's erofs / a lock, from a
 * digest "sha256:<64 hex>" (checked: -EINVAL otherwise). */
int store_blob_path(const struct store *s, const char *digest, char *buf, size_t len);
int store_partial_path(const struct store *s, const char *digest, char *buf, size_t len);
int store_erofs_path(const struct store *s, const char *digest, char *buf, size_t len);

/* 1 when the blob is in the store with @size bytes (size (uint64_t)-1:
 * any), 0 when not. */
int store_has_blob(const struct store *s, const char *digest, uint64_t size);

/* Stores @len bytes as the blob @digest, after checking they hash to it.
 * Returns 0, -EBADMSG when they do not, or another negative errno. */
int store_put_blob(struct store *s, const char *digest, const void *data, size_t len);

/* Stores the bytes @read yields (until it returns 0; < 0 is an error) as a
 * blob under their sha256, through a temporary file: returns 0 with
 * @digest ("sha256:...") and *size set, or a negative errno with @why set. */
int store_put_stream(struct store *s, ssize_t (*read)(void *arg, void *buf, size_t len), void *arg,
                     char digest[72], uint64_t *size, char *why, size_t why_len);

/* Reads a whole blob of at most @max bytes into a malloc'd buffer (NUL
 * appended, not counted). */
int store_read_blob(const struct store *s, const char *digest, size_t max, char **out, size_t *len);

/*
 * Takes the exclusive cross-process lock named @digest (a blob being
 * downloaded or an image being built), waiting for another holder. Returns
 * an fd to pass to store_unlock(), or a negative errno (-EINTR when a
 * signal interrupted the wait).
 */
int store_lock(const struct store *s, const char *digest);
void store_unlock(int fd);

/* Held (shared) by every pull and by a sandbox start until its image is
 * open, and exclusively by store_prune(), so prune never deletes what a
 * pull has fetched but not yet recorded. Returns an fd for store_unlock()
 * or a negative errno. */
int store_guard(const struct store *s);

/* One pulled image, as `msb image ls` shows it. Strings are owned by the
 * struct (store_image_free()). */
struct store_image {
	char *ref;             /* "docker.io/library/python:3.11"; NULL for
	                          an image no reference names */
	char *manifest_digest; /* the platform's image manifest */
	char *index_digest;    /* the index it was chosen from, or NULL */
	char *config_digest;
	char *platform; /* "linux/amd64" */
	char *created;  /* the config's, or NULL */
	uint64_t size;  /* the layers' compressed bytes */
	uint64_t erofs_size;
	int64_t pulled_at; /* seconds since the epoch */
};
void store_image_free(struct store_image *im);

/* Records the image (its manifest, config and layers must be in the store,
 * and its erofs image built) and points @ref at it, in one transaction. */
int store_add_image(struct store *s, const char *ref, const struct store_image *im,
                    const char *const *layer_digests, size_t nlayers, char *why, size_t why_len);

/* The image @ref names (a full reference from image_ref_format()), or
 * -ENOENT. */
int store_find_ref(struct store *s, const char *ref, struct store_image *out);

/* Every reference with its image, then every image no reference names.
 * Returns 0 and a malloc'd array of *n entries (store_image_list_free()). */
int store_list(struct store *s, struct store_image **out, size_t *n);
void store_image_list_free(struct store_image *v, size_t n);

/* Removes the reference @ref (-ENOENT when there is none); the image stays
 * until pruned. */
int store_remove_ref(struct store *s, const char *ref);

/* Deletes every image no reference names, then every blob and erofs image
 * no remaining image uses, and stale partial downloads; reports what went
 * and the bytes freed. An image locked by a pull in progress is kept. */
int store_prune(struct store *s, unsigned *images, unsigned *files, uint64_t *bytes, char *why,
                size_t why_len);

#endif
