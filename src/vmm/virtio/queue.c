#include "queue.h"

#include <errno.h>
#include <string.h>

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

#define AVAIL_F_NO_INTERRUPT 1

void vq_reset(struct vq *q)
{
	uint16_t max = q->max_size;
	memset(q, 0, sizeof(*q));
	q->max_size = max;
}

int vq_activate(const struct gm *gm, struct vq *q)
{
	uint16_t n = q->size;
	if (n == 0 || n > q->max_size || (n & (n - 1)))
		return -EINVAL;
	if (q->desc_gpa % 16 || q->avail_gpa % 2 || q->used_gpa % 4)
		return -EINVAL;
	/* descriptors; avail: flags, idx, ring, used_event; used: flags, idx,
	 * ring of {id, len}, avail_event */
	if (!gm_ptr(gm, q->desc_gpa, (size_t)n * 16) ||
	    !gm_ptr(gm, q->avail_gpa, 6 + (size_t)n * 2) ||
	    !gm_ptr(gm, q->used_gpa, 6 + (size_t)n * 8))
		return -EINVAL;
	q->last_avail = 0;
	q->used_idx = 0;
	q->broken = 0;
	q->ready = 1;
	return 0;
}

static uint16_t load16(const struct gm *gm, uint64_t gpa)
{
	uint16_t *p = gm_ptr(gm, gpa, 2);
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

int vq_pop(const struct gm *gm, struct vq *q, struct vq_chain *c)
{
	if (!q->ready || q->broken)
		return q->broken ? -EIO : 0;
	uint16_t avail_idx = load16(gm, q->avail_gpa + 2);
	uint16_t pending = (uint16_t)(avail_idx - q->last_avail);
	if (pending == 0)
		return 0;
	if (pending > q->size) {
		q->broken = 1; /* the driver claims more buffers than the ring holds */
		return -EIO;
	}
	uint16_t head;
	memcpy(&head, gm_ptr(gm, q->avail_gpa + 4 + (uint64_t)(q->last_avail % q->size) * 2, 2), 2);
	if (head >= q->size) {
		q->broken = 1; /* nothing to return to the used ring */
		return -EIO;
	}
	q->last_avail++;

	memset(c, 0, sizeof(*c));
	c->head = head;
	uint16_t idx = head;
	int seen_write = 0;
	for (int hops = 0;; hops++) {
		if (hops >= q->size || c->n >= VQ_MAX_CHAIN) {
			c->bad = 1; /* a loop, or longer than we take */
			break;
		}
		struct vq_desc d;
		memcpy(&d, gm_ptr(gm, q->desc_gpa + (uint64_t)idx * 16, 16), 16);
		int write = (d.flags & VQ_DESC_WRITE) != 0;
		if ((d.flags & VQ_DESC_INDIRECT) || (seen_write && !write) ||
		    (d.len && !gm_ptr(gm, d.addr, d.len))) {
			c->bad = 1; /* not negotiated; readable after writable; outside RAM */
			break;
		}
		if (d.len) {
			c->buf[c->n].gpa = d.addr;
			c->buf[c->n].len = d.len;
			c->buf[c->n].write = write;
			c->n++;
			if (write)
				c->wlen += d.len;
			else
				c->rlen += d.len;
		}
		seen_write |= write;
		if (!(d.flags & VQ_DESC_NEXT))
			break;
		if (d.next >= q->size) {
			c->bad = 1;
			break;
		}
		idx = d.next;
	}
	return 1;
}

void vq_push(const struct gm *gm, struct vq *q, uint16_t head, uint32_t len)
{
	if (!q->ready || q->broken)
		return;
	uint8_t *elem = gm_ptr(gm, q->used_gpa + 4 + (uint64_t)(q->used_idx % q->size) * 8, 8);
	uint32_t id = head;
	memcpy(elem, &id, 4);
	memcpy(elem + 4, &len, 4);
	q->used_idx++;
	uint16_t *idx = gm_ptr(gm, q->used_gpa + 2, 2);
	/* the element must be visible before the index that publishes it */
	__atomic_store_n(idx, q->used_idx, __ATOMIC_RELEASE);
}

int vq_should_notify(const struct gm *gm, const struct vq *q)
{
	if (!q->ready)
		return 0;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return !(load16(gm, q->avail_gpa) & AVAIL_F_NO_INTERRUPT);
}

static uint64_t copy(const struct gm *gm, const struct vq_chain *c, int write, uint64_t off,
                     uint8_t *buf, const uint8_t *src, uint64_t len)
{
	uint64_t done = 0;
	for (int i = 0; i < c->n && done < len; i++) {
		const struct vq_buf *b = &c->buf[i];
		if (b->write != write)
			continue;
		if (off >= b->len) {
			off -= b->len;
			continue;
		}
		uint64_t n = b->len - off;
		if (n > len - done)
			n = len - done;
		uint8_t *p = gm_ptr(gm, b->gpa + off, (size_t)n);
		if (!p)
			break;
		if (write)
			memcpy(p, src + done, (size_t)n);
		else
			memcpy(buf + done, p, (size_t)n);
		done += n;
		off = 0;
	}
	return done;
}

uint64_t vq_chain_read(const struct gm *gm, const struct vq_chain *c, uint64_t off, void *buf,
                       uint64_t len)
{
	return copy(gm, c, 0, off, buf, NULL, len);
}

uint64_t vq_chain_write(const struct gm *gm, const struct vq_chain *c, uint64_t off,
                        const void *buf, uint64_t len)
{
	return copy(gm, c, 1, off, NULL, buf, len);
}
