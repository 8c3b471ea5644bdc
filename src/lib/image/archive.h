/*
 * Images from files, for hosts with no registry:
 *
 *  - image_load(): an `oci-archive` (an OCI image layout in a tar, as
 *    `skopeo copy ... oci-archive:` writes) or a `docker-archive` (what
 *    `docker save` writes), told apart by their index.json / manifest.json;
 *  - image_import(): a root file system tar (plain, gzip or zstd), as
 *    `docker import` takes it, made a one-layer image.
 *
 * The archive is read once, as a stream (stdin works): every regular member
 * goes into the store as a blob under its own sha256, so nothing in it is
 * unpacked on the host, and a digest the archive claims is checked by the
 * name it is found under. Images land in the store like pulled ones.
 */
#ifndef MSB_IMAGE_ARCHIVE_H
#define MSB_IMAGE_ARCHIVE_H

#include "pull.h"

/*
 * Loads every image of the archive at @path ("-": stdin) and names each by
 * the archive's own names (docker: RepoTags; OCI: a full reference in
 * org.opencontainers.image.ref.name), or by @name when given (then the
 * archive must hold one image; an OCI ref.name that is only a tag becomes
 * @name's tag unless @name has one). Calls @loaded for each image stored.
 * Returns 0 or a negative errno with @why set.
 */
int image_load(struct store *s, const char *path, const char *name,
               void (*loaded)(const struct store_image *im, void *arg), void *arg, char *why,
               size_t why_len);

/*
 * Makes the root file system tar at @path ("-": stdin) an image named
 * @name for this machine's platform, with PATH set and /bin/sh as its Cmd.
 * Returns 0 and the image in *out (store_image_free()) or a negative errno
 * with @why set.
 */
int image_import(struct store *s, const char *path, const char *name, struct store_image *out,
                 char *why, size_t why_len);

#endif
