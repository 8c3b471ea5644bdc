/*
 * Applying an OCI layer (a tar stream, plain, gzip or zstd) to an erofs
 * image being written, entry by entry, never touching the host's file
 * system: files stream into the image, ".wh.NAME" removes NAME from the
 * layers below, ".wh..wh..opq" hides a directory's lower content, hard
 * links, symlinks, devices, owners, modes, mtimes and xattrs are kept.
 * Every name comes from the layer's author: the writer normalises paths
 * inside the image root, and the limits below bound what a layer may ask.
 */
#ifndef MSB_IMAGE_LAYER_H
#define MSB_IMAGE_LAYER_H

#include "erofs.h"

#include <stdint.h>

#define LAYER_MAX_ENTRIES 1000000
#define LAYER_MAX_BYTES   (64ULL << 30) /* of file data in one layer */

struct layer_stats {
	uint64_t entries, bytes, whiteouts;
};

/*
 * Reads the layer from @fd (owned by the caller) into @w as layer @index
 * (0 for the bottom one; layers must be applied in order). Returns 0 or a
 * negative errno with @why set: a damaged or truncated archive, a limit, or
 * the writer's own refusal.
 */
int layer_apply(struct erofs_writer *w, int fd, unsigned index, struct layer_stats *st, char *why,
                size_t why_len);

/*
 * An image's root file system: the @n layers (bottom first, open fds owned
 * by the caller) applied in order into a new erofs image at @path, written
 * under a temporary name in the same directory, fsynced and renamed, the
 * directory fsynced: a failure (a bad layer, a full disk) leaves no file at
 * @path and no temporary one. Returns 0 or a negative errno with @why set
 * (naming the layer that failed).
 */
int layer_build_image(const int *fds, size_t n, const char *path, char *why, size_t why_len);

/*
 * The same, a layer at a time, so a pull can write each layer while later
 * ones still download: begin (a temporary file beside @path), add each
 * layer bottom first (@fd owned by the caller), then commit (finish, fsync,
 * rename; frees) or abort (removes the temporary file; frees). A failed
 * add leaves the image to abort; a failed commit has aborted it.
 */
struct layer_image;
int layer_image_begin(const char *path, struct layer_image **out, char *why, size_t why_len);
int layer_image_add(struct layer_image *li, int fd, char *why, size_t why_len);
int layer_image_commit(struct layer_image *li, char *why, size_t why_len);
void layer_image_abort(struct layer_image *li);

#endif
