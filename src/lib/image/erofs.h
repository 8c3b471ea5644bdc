/*
 * Our erofs writer: an uncompressed erofs image built from entries added one
 * at a time (a tar stream's, later), never from files unpacked on the host.
 *
 * Layout, chosen so file data can be written as it arrives: the superblock
 * in block 0, then each regular file's data (block-aligned, FLAT_PLAIN),
 * then at the end the directories' blocks and the inodes (extended, 64 bytes
 * each, from meta_blkaddr). The superblock is written last.
 *
 * Paths are normalised inside the image root: repeated and trailing
 * slashes and "." go, ".." never climbs above the root; a later entry
 * replaces an earlier one of the same path (as a later layer does); missing
 * parents are made as root-owned 0755 directories.
 */
#ifndef MSB_IMAGE_EROFS_H
#define MSB_IMAGE_EROFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define EROFS_NAME_MAX  255
#define EROFS_DEPTH_MAX 128

struct erofs_writer;

struct erofs_meta {
	uint32_t mode; /* type and permission bits, as st_mode */
	uint32_t uid, gid;
	int64_t mtime;
	uint32_t mtime_nsec;
	uint32_t rdev_major, rdev_minor; /* character and block devices */
};

/* Starts an image in @fd (a new, empty file; owned by the caller). NULL on
 * allocation failure. */
struct erofs_writer *erofs_writer_new(int fd);

/* Adds a directory, a symlink (@target), a device/fifo/socket (by @m->mode),
 * or a regular file whose @size bytes are read from @read(@arg, buf, len)
 * until done (a short read of 0 before @size is -EIO). Each returns 0 or a
 * negative errno with @why set (a bad path, a name over 255 bytes, a path
 * deeper than 128, an entry under something not a directory, a write error).
 */
int erofs_add_dir(struct erofs_writer *w, const char *path, const struct erofs_meta *m, char *why,
                  size_t why_len);
int erofs_add_symlink(struct erofs_writer *w, const char *path, const struct erofs_meta *m,
                      const char *target, char *why, size_t why_len);
int erofs_add_special(struct erofs_writer *w, const char *path, const struct erofs_meta *m,
                      char *why, size_t why_len);
int erofs_add_file(struct erofs_writer *w, const char *path, const struct erofs_meta *m,
                   uint64_t size, ssize_t (*read)(void *arg, void *buf, size_t len), void *arg,
                   char *why, size_t why_len);

/*
 * A hard link at @path to the regular file or symlink at @target (added
 * earlier). Stored as its own inode sharing the target's data blocks: the
 * contents are the same and cost nothing more, and removing the target
 * later (a layer's whiteout) cannot leave the link dangling; st_ino and
 * st_nlink differ from a real hard link's. -ENOENT when @target is missing.
 */
int erofs_add_hardlink(struct erofs_writer *w, const char *path, const char *target, char *why,
                       size_t why_len);

/*
 * Sets extended attribute @name ("user.", "trusted." or "security."
 * prefixed; "security.capability" is what images need most) to @len bytes
 * of @value on the entry at @path, replacing an earlier value. Stored
 * inline after the inode; at most EROFS_XATTR_MAX bytes of them per entry.
 * -ENOENT (no entry), -EOPNOTSUPP (another namespace), -E2BIG.
 */
#define EROFS_XATTR_MAX 2048
int erofs_set_xattr(struct erofs_writer *w, const char *path, const char *name, const void *value,
                    size_t len, char *why, size_t why_len);

/*
 * Layers, for OCI whiteouts: entries record the layer that added them
 * (erofs_set_layer(), from 0). erofs_remove() drops @path and everything
 * under it (".wh.NAME"); erofs_clear_dir() drops the children of @path
 * that earlier layers added (".wh..wh..opq": an opaque directory hides the
 * lower layers, not its own layer's entries, whatever their order in the
 * tar). Both are no-ops when nothing is there.
 */
void erofs_set_layer(struct erofs_writer *w, unsigned layer);
int erofs_remove(struct erofs_writer *w, const char *path, char *why, size_t why_len);
int erofs_clear_dir(struct erofs_writer *w, const char *path, char *why, size_t why_len);

/* Writes directories, inodes and the superblock. Returns 0 or a negative
 * errno with @why set. The writer is done either way: free it. */
int erofs_writer_finish(struct erofs_writer *w, char *why, size_t why_len);

void erofs_writer_free(struct erofs_writer *w);

#endif
