/*
 * The virtio-mmio transport (version 2), shared by every device, which only
 * supplies a struct virtio_ops. Register accesses come from vCPU threads
 * (KVM_EXIT_MMIO); queue notifications arrive on the VMM's event loop
 * through ioeventfds. Both take the device's lock, so a device's own code
 * never runs on two threads at once.
 *
 * The driver is untrusted: accesses must be 4 bytes wide (config space
 * excepted), QUEUE_SEL is checked at every use, the status follows the
 * spec's order, queue registers change only between FEATURES_OK and
 * DRIVER_OK, and a queue is checked when it is made ready. A driver that
 * breaks the rules gets DEVICE_NEEDS_RESET for that device; the VM goes on.
 */
#ifndef MSB_VMM_VIRTIO_MMIO_H
#define MSB_VMM_VIRTIO_MMIO_H

#include "queue.h"

#include <pthread.h>
#include <stdint.h>

#define VIRTIO_MMIO_SIZE   0x1000
#define VIRTIO_MAX_QUEUES  4
#define VIRTIO_F_VERSION_1 (1ULL << 32)

#define VIRTIO_STATUS_ACK         1
#define VIRTIO_STATUS_DRIVER      2
#define VIRTIO_STATUS_DRIVER_OK   4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED      128

struct virtio_dev;

struct virtio_ops {
	const char *name;
	uint32_t device_id;
	uint64_t features; /* offered; VIRTIO_F_VERSION_1 is required */
	int nqueues;
	uint16_t queue_max;
	uint32_t config_len;
	/* Config space, bounds already checked against config_len. */
	void (*config_read)(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len);
	void (*config_write)(struct virtio_dev *d, uint32_t off, const uint8_t *data, uint32_t len);
	/* DRIVER_OK: queues are ready to use. Returns 0 or a negative errno,
	 * which fails the device. */
	int (*activate)(struct virtio_dev *d);
	/* The driver kicked queue @q. */
	void (*notify)(struct virtio_dev *d, int q);
	/* The driver reset the device (status 0): drop all device state. */
	void (*reset)(struct virtio_dev *d);
};

struct virtio_dev {
	const struct virtio_ops *ops;
	void *priv;
	const struct gm *gm;
	uint64_t base; /* guest-physical MMIO window */
	uint32_t irq;  /* IOAPIC pin */
	int irqfd;     /* eventfd bound to irq (KVM_IRQFD); -1 in unit tests */
	pthread_mutex_t lock;

	uint32_t status;
	uint32_t dev_features_sel, drv_features_sel;
	uint64_t driver_features;
	uint32_t queue_sel;
	uint32_t isr;
	uint32_t config_generation;
	int active; /* DRIVER_OK seen and activate() succeeded */
	struct vq vq[VIRTIO_MAX_QUEUES];
};

/* The transport's and queues' state, for snapshots. Plain data. */
struct virtio_queue_state {
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t size, last_avail, used_idx, ready;
	uint32_t broken, pad;
};

struct virtio_dev_state {
	uint32_t device_id, nqueues;
	uint32_t status, dev_features_sel, drv_features_sel, queue_sel;
	uint64_t driver_features;
	uint32_t isr, config_generation, active, pad;
	struct virtio_queue_state q[VIRTIO_MAX_QUEUES];
};

/* Copies @d's state out (under its lock). */
void virtio_dev_save(struct virtio_dev *d, struct virtio_dev_state *s);

/* Sets @d's state from @s, checked as the driver's own writes would be
 * (device id, queue count, status bits, each ready queue's size and rings
 * in guest RAM). Returns 0, or -EINVAL and @d reset. */
int virtio_dev_restore(struct virtio_dev *d, const struct virtio_dev_state *s);

/* Sets @d up for @ops at @base/@irq; the caller wires irqfd and ioeventfds. */
void virtio_dev_init(struct virtio_dev *d, const struct virtio_ops *ops, void *priv,
                     const struct gm *gm, uint64_t base, uint32_t irq);

/* A guest access to [base + off, +len) (off < VIRTIO_MMIO_SIZE). Reads
 * fill @data. Takes the device lock. */
void virtio_mmio_access(struct virtio_dev *d, uint64_t off, uint8_t *data, uint32_t len,
                        int is_write);

/* Queue @q was kicked (from its ioeventfd). Takes the device lock. */
void virtio_queue_kick(struct virtio_dev *d, int q);

/* With the lock held: tell the driver that queue @q has used buffers. */
void virtio_signal_used(struct virtio_dev *d, int q);

/* With the lock held: the config space changed (e.g. a disk's capacity);
 * tells a driver that is running. */
void virtio_config_changed(struct virtio_dev *d);

/* With the lock held: the device cannot go on (the driver broke a rule);
 * sets DEVICE_NEEDS_RESET and raises a config interrupt. */
void virtio_fail(struct virtio_dev *d, const char *why);

/* The kernel command line's description of the device. */
int virtio_mmio_cmdline(const struct virtio_dev *d, char *buf, size_t len);

#endif
