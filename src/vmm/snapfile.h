/*
 * The snapshot state file: a versioned container of checksummed sections
 * (vCPU state, irqchip, clock, devices), written atomically and refused
 * whole when anything in it is off. Guest memory lives in a separate sparse
 * file that a restore maps copy-on-write; the state file names its size.
 *
 * On disk (little-endian):
 *   header  magic "MSBSNAP1", version u32, nsections u32, shape[32],
 *           mem_bytes u64, reserved u32 (0), crc32 u32 of the bytes before it
 *   section type u32, id u32, len u32, crc32 u32 of those three and the
 *           payload, payload
 * and nothing after the last section. The shape is a hash the caller makes
 * of everything a snapshot depends on (kernel, agent, memory size, vCPUs,
 * device layout): a file of another shape is refused, never half-used.
 */
#ifndef MSB_VMM_SNAPFILE_H
#define MSB_VMM_SNAPFILE_H

#include <stddef.h>
#include <stdint.h>

#define SNAP_VERSION    1
#define SNAP_SHAPE_SIZE 32
#define SNAP_HDR_SIZE   64
#define SNAP_SEC_SIZE   16
#define SNAP_MAX_FILE   (16u << 20) /* far above a few vCPUs' state */

uint32_t snap_crc32(const void *p, size_t len);

/* Building a state file in memory. */
struct snap_writer {
	uint8_t *buf; /* owned */
	size_t len, cap;
	uint32_t nsections;
	int err; /* the first failure; later calls do nothing */
};

/* Starts a file for @shape and @mem_bytes of guest memory. Returns 0 or
 * -ENOMEM. */
int snapw_init(struct snap_writer *w, const uint8_t shape[SNAP_SHAPE_SIZE], uint64_t mem_bytes);

/* Appends a section. Errors are kept in w->err and returned by commit. */
void snapw_add(struct snap_writer *w, uint32_t type, uint32_t id, const void *p, uint32_t len);

/* Finishes the header; *buf and *len then hold the whole state file (owned
 * by @w). Returns 0 or w->err. */
int snapw_finish(struct snap_writer *w, uint8_t **buf, size_t *len);

/* Finishes the header and writes the file to @path the safe way: a
 * temporary name in the same directory, fsync, rename, fsync of the
 * directory. Returns 0 or a negative errno (a full disk leaves no file). */
int snapw_commit(struct snap_writer *w, const char *path);

void snapw_free(struct snap_writer *w);

/* A state file read and checked. */
struct snap_file {
	uint8_t *buf; /* owned: the whole file */
	size_t len;
	uint64_t mem_bytes;
	uint32_t nsections;
};

/*
 * Reads @path and checks all of it: size limit, magic, version, header
 * checksum, @shape, every section's bounds and checksum, the section count,
 * and no byte after the last section. Returns 0, or -ENOENT, -EFBIG,
 * -EPROTO (not a snapshot, or damaged), -EPROTONOSUPPORT (another version),
 * -ESTALE (another shape), with @why saying which.
 */
int snap_load(const char *path, const uint8_t shape[SNAP_SHAPE_SIZE], struct snap_file *f,
              char *why, size_t why_len);

/* Checks a file already in memory the same way (for tests and fuzzing);
 * @f borrows @buf. */
int snap_parse(const uint8_t *buf, size_t len, const uint8_t shape[SNAP_SHAPE_SIZE],
               struct snap_file *f, char *why, size_t why_len);

/* The payload of section (@type, @id) and its length, or NULL. */
const uint8_t *snap_find(const struct snap_file *f, uint32_t type, uint32_t id, uint32_t *len);

void snap_free(struct snap_file *f);

#endif
