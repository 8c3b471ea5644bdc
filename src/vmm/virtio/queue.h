/*
 * The virtio split virtqueue, device side, with every value the driver
 * hands us treated as hostile (STYLE.md, "Guest memory and virtqueues").
 *
 * Descriptors are copied out of guest memory once and checked on the copy.
 * A malformed chain is still returned to the used ring (length 0), so no
 * slot leaks; a driver that breaks the ring itself (an avail index running
 * ahead, a head out of range) marks the queue broken, and the device stops
 * using it until the driver resets the device.
 */
#ifndef MSB_VMM_VIRTIO_QUEUE_H
#define MSB_VMM_VIRTIO_QUEUE_H

#include "../memory.h"

#include <stdint.h>

#define VQ_MAX_SIZE      1024
#define VQ_MAX_CHAIN     64 /* descriptors in one chain; longer chains are refused */
#define VQ_DESC_NEXT     1
#define VQ_DESC_WRITE    2
#define VQ_DESC_INDIRECT 4

struct vq {
	uint16_t max_size; /* what the device offers */
	uint16_t size;     /* what the driver chose */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	int ready;
	int broken;
	uint16_t last_avail; /* next avail ring slot to take */
	uint16_t used_idx;   /* next used ring slot to fill */
};

struct vq_buf {
	uint64_t gpa;
	uint32_t len;
	int write; /* device-writable */
};

struct vq_chain {
	uint16_t head;
	int bad;       /* malformed: return it with length 0 and go on */
	int n;         /* valid entries in buf */
	uint64_t rlen; /* bytes the device may read */
	uint64_t wlen; /* bytes the device may write */
	struct vq_buf buf[VQ_MAX_CHAIN];
};

/* Resets @q to not ready, keeping max_size. */
void vq_reset(struct vq *q);

/* Checks the queue the driver set up when it writes QueueReady = 1: size a
 * power of two ≤ max_size, rings aligned (16/2/4) and wholly in RAM.
 * Returns 0 or -EINVAL. */
int vq_activate(const struct gm *gm, struct vq *q);

/*
 * Takes the next available chain. Returns 1 with @c filled (c->bad set when
 * the chain is malformed), 0 when none is available, -EIO when the queue is
 * (or just became) broken.
 */
int vq_pop(const struct gm *gm, struct vq *q, struct vq_chain *c);

/* Returns chain @head to the driver with @len bytes written. */
void vq_push(const struct gm *gm, struct vq *q, uint16_t head, uint32_t len);

/* Whether the driver wants an interrupt now (it may suppress them). */
int vq_should_notify(const struct gm *gm, const struct vq *q);

/* Copy between a chain's readable (resp. writable) buffers, starting @off
 * bytes in, and @buf. Return the bytes copied (less at the chain's end). */
uint64_t vq_chain_read(const struct gm *gm, const struct vq_chain *c, uint64_t off, void *buf,
                       uint64_t len);
uint64_t vq_chain_write(const struct gm *gm, const struct vq_chain *c, uint64_t off,
                        const void *buf, uint64_t len);

#endif
