/*
 * Pulling an image into the store: reference -> manifest (an index picks
 * the platform) -> config -> layers (downloaded in parallel, each once
 * across processes) -> one erofs root file system per manifest digest ->
 * the reference recorded. Also: finding a pulled image for a sandbox.
 */
#ifndef MSB_IMAGE_PULL_H
#define MSB_IMAGE_PULL_H

#include "manifest.h"
#include "store.h"

#include <stdint.h>

enum pull_step {
	PULL_RESOLVED, /* digest: the image manifest; count: its layers */
	PULL_LAYER,    /* index/count, digest, done/total, state */
	PULL_BUILDING, /* the erofs image is being written */
	PULL_BUILT,    /* total: its size; secs */
	PULL_DONE,     /* digest; up_to_date: nothing was fetched or built */
};

enum pull_layer_state { LAYER_WAITING, LAYER_DOWNLOADING, LAYER_DONE, LAYER_CACHED };

struct pull_event {
	enum pull_step step;
	const char *ref; /* the full reference */
	const char *digest;
	unsigned index, count;
	uint64_t done, total;
	enum pull_layer_state state;
	int up_to_date;
	double secs; /* of the step that ended */
};

struct pull_opts {
	const char *platform; /* "linux/arm64"; NULL: this machine's, and a
	                         single-platform image of another is refused */
	int insecure;         /* plain HTTP to this registry */
	const char *user, *pass;
	unsigned jobs; /* layers at once; 0: 3 */
	/* Called from the pulling threads one at a time (serialised). */
	void (*progress)(const struct pull_event *ev, void *arg);
	void *progress_arg;
	int (*cancelled)(void *arg); /* nonzero stops the pull with -EINTR */
	void *cancel_arg;
};

/*
 * Pulls @name (a reference as a user writes it) into @s. Returns 0 and the
 * image in *out (store_image_free() it) or a negative errno with @why set
 * to one message that names the image: -ENOENT unknown image or tag,
 * -EACCES refused, -EHOSTUNREACH registry down, -EBADMSG a blob that does
 * not match its digest, -EINVAL a malformed manifest, -ENOTSUP a missing
 * platform, -ENOSPC a full disk, -EINTR cancelled. Whatever fails, the
 * store keeps only complete blobs (and partial downloads to resume).
 */
int image_pull(struct store *s, const char *name, const struct pull_opts *o,
               struct store_image *out, char *why, size_t why_len);

/*
 * Builds the erofs image of a manifest whose blobs are all in the store
 * (unless it is built already), then records the image and points @ref at
 * it. *built says whether it was written now. Shared by pull and load.
 */
int image_install(struct store *s, const char *ref, const char *manifest_digest,
                  const char *index_digest, const struct image_manifest *m,
                  const struct image_config *cfg,
                  void (*progress)(const struct pull_event *, void *), void *arg,
                  struct store_image *out, int *built, char *why, size_t why_len);

/*
 * A pulled image for a sandbox: @name's record, its erofs path and its
 * parsed config (image_config_free() it). -ENOENT when @name was never
 * pulled (why says so); other errors for a damaged store.
 */
int image_find(struct store *s, const char *name, struct store_image *out, char *erofs,
               size_t erofs_len, struct image_config *cfg, char *why, size_t why_len);

#endif
