/*
 * virtio-blk (device 2): one disk backed by a host file or block device.
 *
 * A disk slot exists in the device layout whether or not it has a backend,
 * so one snapshot serves every sandbox: at snapshot time the slots are
 * empty (capacity 0); a restored VM binds each slot to its own file and
 * announces the capacity with a config-change interrupt
 * (docs/design/snapshot.md, "Devices across a restore").
 *
 * Requests are served synchronously on the event loop thread, straight
 * between the file and guest memory. Every header, sector, length and
 * segment comes from the guest and is checked against the backend's size;
 * a bad request gets IOERR (or UNSUPP), never a VMM failure.
 */
#ifndef MSB_VMM_VIRTIO_BLK_H
#define MSB_VMM_VIRTIO_BLK_H

#include "mmio.h"

#include <stdint.h>

#define BLK_SERIAL_LEN 20 /* VIRTIO_BLK_ID_BYTES */

struct blk;

/* An empty disk slot at @base/@irq whose GET_ID answers @serial (at most
 * 20 bytes are used). Returns NULL on allocation failure. */
struct blk *blk_create(const struct gm *gm, uint64_t base, uint32_t irq, const char *serial);
struct virtio_dev *blk_dev(struct blk *b);

/*
 * Binds the slot to @fd (the device owns it from then on), @size bytes
 * (rounded down to 512-byte sectors), read-only unless @writable. A driver
 * already running is told through a config-change interrupt. Returns 0, or
 * -EBUSY when the slot has a backend.
 */
int blk_attach(struct blk *b, int fd, uint64_t size, int writable);

/* Opens @path (a file or a block device) and attaches it; @why on error. */
int blk_attach_path(struct blk *b, const char *path, int writable, char *why, size_t why_len);

void blk_destroy(struct blk *b);

#endif
