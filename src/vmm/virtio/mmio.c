#include "mmio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define REG_MAGIC             0x000
#define REG_VERSION           0x004
#define REG_DEVICE_ID         0x008
#define REG_VENDOR_ID         0x00c
#define REG_DEVICE_FEATURES   0x010
#define REG_DEVICE_FEAT_SEL   0x014
#define REG_DRIVER_FEATURES   0x020
#define REG_DRIVER_FEAT_SEL   0x024
#define REG_QUEUE_SEL         0x030
#define REG_QUEUE_NUM_MAX     0x034
#define REG_QUEUE_NUM         0x038
#define REG_QUEUE_READY       0x044
#define REG_QUEUE_NOTIFY      0x050
#define REG_INTERRUPT_STATUS  0x060
#define REG_INTERRUPT_ACK     0x064
#define REG_STATUS            0x070
#define REG_QUEUE_DESC_LOW    0x080
#define REG_QUEUE_DESC_HIGH   0x084
#define REG_QUEUE_DRIVER_LOW  0x090
#define REG_QUEUE_DRIVER_HIGH 0x094
#define REG_QUEUE_DEVICE_LOW  0x0a0
#define REG_QUEUE_DEVICE_HIGH 0x0a4
#define REG_CONFIG_GEN        0x0fc
#define REG_CONFIG            0x100

#define MAGIC      0x74726976 /* "virt" */
#define VENDOR_ID  0x4253534d /* "MSSB" */
#define ISR_USED   1
#define ISR_CONFIG 2

void virtio_dev_init(struct virtio_dev *d, const struct virtio_ops *ops, void *priv,
                     const struct gm *gm, uint64_t base, uint32_t irq)
{
	memset(d, 0, sizeof(*d));
	d->ops = ops;
	d->priv = priv;
	d->gm = gm;
	d->base = base;
	d->irq = irq;
	d->irqfd = -1;
	pthread_mutex_init(&d->lock, NULL);
	for (int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		d->vq[i].max_size = i < ops->nqueues ? ops->queue_max : 0;
}

int virtio_mmio_cmdline(const struct virtio_dev *d, char *buf, size_t len)
{
	int n = snprintf(buf, len, "virtio_mmio.device=4K@%#llx:%u", (unsigned long long)d->base,
	                 d->irq);
	return n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

static void interrupt(struct virtio_dev *d, uint32_t bits)
{
	__atomic_or_fetch(&d->isr, bits, __ATOMIC_SEQ_CST);
	if (d->irqfd >= 0) {
		uint64_t one = 1;
		ssize_t w = write(d->irqfd, &one, sizeof(one));
		(void)w;
	}
}

void virtio_signal_used(struct virtio_dev *d, int q)
{
	if (q < 0 || q >= d->ops->nqueues || !vq_should_notify(d->gm, &d->vq[q]))
		return;
	interrupt(d, ISR_USED);
}

void virtio_config_changed(struct virtio_dev *d)
{
	d->config_generation++;
	if (d->status & VIRTIO_STATUS_DRIVER_OK)
		interrupt(d, ISR_CONFIG);
}

void virtio_fail(struct virtio_dev *d, const char *why)
{
	if (d->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	fprintf(stderr, "msb-vmm: virtio-%s: %s; the device stops until the guest resets it\n",
	        d->ops->name, why);
	d->status |= VIRTIO_STATUS_NEEDS_RESET;
	d->active = 0;
	d->config_generation++;
	interrupt(d, ISR_CONFIG);
}

static void reset(struct virtio_dev *d)
{
	if (d->ops->reset)
		d->ops->reset(d);
	d->status = 0;
	d->dev_features_sel = d->drv_features_sel = 0;
	d->driver_features = 0;
	d->queue_sel = 0;
	__atomic_store_n(&d->isr, 0, __ATOMIC_SEQ_CST);
	d->active = 0;
	for (int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		vq_reset(&d->vq[i]);
}

/* The selected queue, or NULL when QUEUE_SEL names none. */
static struct vq *sel_queue(struct virtio_dev *d)
{
	return d->queue_sel < (uint32_t)d->ops->nqueues ? &d->vq[d->queue_sel] : NULL;
}

static void set_status(struct virtio_dev *d, uint32_t v)
{
	if (v == 0) {
		reset(d);
		return;
	}
	uint32_t old = d->status;
	/* Bits are only ever added, in the spec's order. */
	if ((v & old) != (old & ~VIRTIO_STATUS_NEEDS_RESET) || (v & VIRTIO_STATUS_NEEDS_RESET)) {
		virtio_fail(d, "status bits cleared or set out of order");
		return;
	}
	uint32_t added = v & ~old;
	if ((added & VIRTIO_STATUS_DRIVER) && !(v & VIRTIO_STATUS_ACK)) {
		virtio_fail(d, "DRIVER before ACKNOWLEDGE");
		return;
	}
	if (added & VIRTIO_STATUS_FEATURES_OK) {
		if (!(v & VIRTIO_STATUS_DRIVER) || (d->driver_features & ~d->ops->features) ||
		    !(d->driver_features & VIRTIO_F_VERSION_1))
			added &= ~VIRTIO_STATUS_FEATURES_OK; /* refused: the driver sees it unset */
	}
	if ((added & VIRTIO_STATUS_DRIVER_OK) && !(v & VIRTIO_STATUS_FEATURES_OK)) {
		virtio_fail(d, "DRIVER_OK before FEATURES_OK");
		return;
	}
	d->status = old | added;
	if ((added & VIRTIO_STATUS_DRIVER_OK) && !(d->status & VIRTIO_STATUS_NEEDS_RESET)) {
		int e = d->ops->activate ? d->ops->activate(d) : 0;
		if (e)
			virtio_fail(d, "the device could not start");
		else
			d->active = 1;
	}
}

/* Queue registers may change only while the driver sets queues up. */
static int queue_setup_allowed(const struct virtio_dev *d)
{
	return (d->status & VIRTIO_STATUS_FEATURES_OK) && !(d->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(d->status & VIRTIO_STATUS_NEEDS_RESET);
}

static void set_addr(uint64_t *a, uint32_t v, int high)
{
	*a = high ? (*a & 0xffffffffULL) | ((uint64_t)v << 32) : (*a & ~0xffffffffULL) | v;
}

static void reg_write(struct virtio_dev *d, uint64_t off, uint32_t v)
{
	struct vq *q = sel_queue(d);
	switch (off) {
	case REG_DEVICE_FEAT_SEL:
		d->dev_features_sel = v;
		return;
	case REG_DRIVER_FEATURES:
		if (!(d->status & VIRTIO_STATUS_DRIVER) ||
		    (d->status & VIRTIO_STATUS_FEATURES_OK) || d->drv_features_sel > 1)
			return;
		set_addr(&d->driver_features, v, d->drv_features_sel == 1);
		return;
	case REG_DRIVER_FEAT_SEL:
		d->drv_features_sel = v;
		return;
	case REG_QUEUE_SEL:
		d->queue_sel = v; /* checked at every use */
		return;
	case REG_QUEUE_NUM:
		if (q && queue_setup_allowed(d) && !q->ready)
			q->size = v > 0xffff ? 0 : (uint16_t)v;
		return;
	case REG_QUEUE_READY:
		if (!q || !queue_setup_allowed(d))
			return;
		if (v == 1 && !q->ready) {
			if (vq_activate(d->gm, q) < 0)
				virtio_fail(d, "the driver set up a queue outside its rules");
		} else if (v == 0) {
			q->ready = 0;
		}
		return;
	case REG_QUEUE_NOTIFY:
		/* without an ioeventfd (unit tests), notifications come here */
		if (d->active && v < (uint32_t)d->ops->nqueues && d->ops->notify)
			d->ops->notify(d, (int)v);
		return;
	case REG_INTERRUPT_ACK:
		__atomic_and_fetch(&d->isr, ~v, __ATOMIC_SEQ_CST);
		return;
	case REG_STATUS:
		set_status(d, v);
		return;
	case REG_QUEUE_DESC_LOW:
	case REG_QUEUE_DESC_HIGH:
	case REG_QUEUE_DRIVER_LOW:
	case REG_QUEUE_DRIVER_HIGH:
	case REG_QUEUE_DEVICE_LOW:
	case REG_QUEUE_DEVICE_HIGH:
		if (!q || !queue_setup_allowed(d) || q->ready)
			return;
		if (off < REG_QUEUE_DRIVER_LOW)
			set_addr(&q->desc_gpa, v, off == REG_QUEUE_DESC_HIGH);
		else if (off < REG_QUEUE_DEVICE_LOW)
			set_addr(&q->avail_gpa, v, off == REG_QUEUE_DRIVER_HIGH);
		else
			set_addr(&q->used_gpa, v, off == REG_QUEUE_DEVICE_HIGH);
		return;
	default:
		return; /* read-only or unknown registers: ignored */
	}
}

static uint32_t reg_read(struct virtio_dev *d, uint64_t off)
{
	struct vq *q = sel_queue(d);
	switch (off) {
	case REG_MAGIC:
		return MAGIC;
	case REG_VERSION:
		return 2;
	case REG_DEVICE_ID:
		return d->ops->device_id;
	case REG_VENDOR_ID:
		return VENDOR_ID;
	case REG_DEVICE_FEATURES:
		return d->dev_features_sel > 1
		           ? 0
		           : (uint32_t)(d->ops->features >> (32 * d->dev_features_sel));
	case REG_QUEUE_NUM_MAX:
		return q ? q->max_size : 0;
	case REG_QUEUE_READY:
		return q ? (uint32_t)q->ready : 0;
	case REG_INTERRUPT_STATUS:
		return __atomic_load_n(&d->isr, __ATOMIC_SEQ_CST);
	case REG_STATUS:
		return d->status;
	case REG_CONFIG_GEN:
		return d->config_generation;
	default:
		return 0;
	}
}

void virtio_mmio_access(struct virtio_dev *d, uint64_t off, uint8_t *data, uint32_t len,
                        int is_write)
{
	pthread_mutex_lock(&d->lock);
	if (off >= REG_CONFIG) {
		uint64_t c = off - REG_CONFIG;
		int ok =
		    len >= 1 && len <= 8 && c < d->ops->config_len && len <= d->ops->config_len - c;
		if (!is_write)
			memset(data, 0, len);
		if (ok && !is_write && d->ops->config_read)
			d->ops->config_read(d, (uint32_t)c, data, len);
		else if (ok && is_write && d->ops->config_write)
			d->ops->config_write(d, (uint32_t)c, data, len);
	} else if (len != 4 || off % 4) {
		if (!is_write)
			memset(data, 0xff, len); /* registers are 32 bits wide */
	} else if (is_write) {
		uint32_t v;
		memcpy(&v, data, 4);
		reg_write(d, off, v);
	} else {
		uint32_t v = reg_read(d, off);
		memcpy(data, &v, 4);
	}
	pthread_mutex_unlock(&d->lock);
}

void virtio_queue_kick(struct virtio_dev *d, int q)
{
	pthread_mutex_lock(&d->lock);
	if (d->active && q >= 0 && q < d->ops->nqueues && d->ops->notify)
		d->ops->notify(d, q);
	pthread_mutex_unlock(&d->lock);
}

void virtio_dev_save(struct virtio_dev *d, struct virtio_dev_state *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&d->lock);
	s->device_id = d->ops->device_id;
	s->nqueues = (uint32_t)d->ops->nqueues;
	s->status = d->status;
	s->dev_features_sel = d->dev_features_sel;
	s->drv_features_sel = d->drv_features_sel;
	s->queue_sel = d->queue_sel;
	s->driver_features = d->driver_features;
	s->isr = __atomic_load_n(&d->isr, __ATOMIC_SEQ_CST);
	s->config_generation = d->config_generation;
	s->active = (uint32_t)d->active;
	for (int i = 0; i < d->ops->nqueues; i++) {
		const struct vq *q = &d->vq[i];
		s->q[i] = (struct virtio_queue_state){.desc_gpa = q->desc_gpa,
		                                      .avail_gpa = q->avail_gpa,
		                                      .used_gpa = q->used_gpa,
		                                      .size = q->size,
		                                      .last_avail = q->last_avail,
		                                      .used_idx = q->used_idx,
		                                      .ready = (uint16_t)q->ready,
		                                      .broken = (uint32_t)q->broken};
	}
	pthread_mutex_unlock(&d->lock);
}

int virtio_dev_restore(struct virtio_dev *d, const struct virtio_dev_state *s)
{
	int e = 0;
	pthread_mutex_lock(&d->lock);
	reset(d);
	if (s->device_id != d->ops->device_id || s->nqueues != (uint32_t)d->ops->nqueues ||
	    (s->driver_features & ~d->ops->features) || s->active > 1)
		e = -EINVAL;
	for (int i = 0; !e && i < d->ops->nqueues; i++) {
		struct vq *q = &d->vq[i];
		const struct virtio_queue_state *qs = &s->q[i];
		q->size = qs->size;
		q->desc_gpa = qs->desc_gpa;
		q->avail_gpa = qs->avail_gpa;
		q->used_gpa = qs->used_gpa;
		if (qs->ready && vq_activate(d->gm, q) < 0)
			e = -EINVAL;
		q->last_avail = qs->last_avail;
		q->used_idx = qs->used_idx;
		q->broken = qs->broken != 0;
	}
	if (!e) {
		d->status = s->status;
		d->dev_features_sel = s->dev_features_sel;
		d->drv_features_sel = s->drv_features_sel;
		d->queue_sel = s->queue_sel;
		d->driver_features = s->driver_features;
		d->isr = s->isr;
		d->config_generation = s->config_generation;
		d->active = (int)s->active;
	} else {
		reset(d);
	}
	pthread_mutex_unlock(&d->lock);
	return e;
}
