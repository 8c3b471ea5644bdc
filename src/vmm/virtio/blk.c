#include "blk.h"
#include "../../lib/util/le.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define VIRTIO_ID_BLOCK 2

#define F_SEG_MAX      (1ULL << 2)
#define F_FLUSH        (1ULL << 9)
#define F_DISCARD      (1ULL << 13)
#define F_WRITE_ZEROES (1ULL << 14)

#define T_IN           0
#define T_OUT          1
#define T_FLUSH        4
#define T_GET_ID       8
#define T_DISCARD      11
#define T_WRITE_ZEROES 13

#define S_OK     0
#define S_IOERR  1
#define S_UNSUPP 2

#define SECTOR    512u
#define HDR_LEN   16u
#define SEG_LEN   16u        /* discard / write zeroes: sector u64, sectors u32, flags u32 */
#define MAX_SEGS  1u         /* what we announce as max_discard_seg / max_write_zeroes_seg */
#define MAX_RANGE (1u << 22) /* sectors per discard or write-zeroes: 2 GiB */
/* Data bytes in one read or write. Linux sends at most 1 MiB by default; a
 * bound keeps one request's time on the event loop short and its length in
 * the used ring's 32 bits. */
#define MAX_IO     (16u << 20)
#define CONFIG_LEN 60u
#define QUEUE_SIZE 256
#define ZERO_CHUNK 65536u

struct blk {
	struct virtio_dev dev;
	int fd; /* -1: empty slot */
	uint64_t sectors;
	int writable;
	char serial[BLK_SERIAL_LEN];
};

static void config_read(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len)
{
	struct blk *b = d->priv;
	uint8_t cfg[CONFIG_LEN] = {0};
	put_le(cfg + 0, b->sectors, 8);
	put_le(cfg + 12, VQ_MAX_CHAIN - 2, 4); /* seg_max: header and status take two */
	put_le(cfg + 36, MAX_RANGE, 4);        /* max_discard_sectors */
	put_le(cfg + 40, MAX_SEGS, 4);         /* max_discard_seg */
	put_le(cfg + 44, 8, 4);                /* discard_sector_alignment: 4 KiB */
	put_le(cfg + 48, MAX_RANGE, 4);        /* max_write_zeroes_sectors */
	put_le(cfg + 52, MAX_SEGS, 4);         /* max_write_zeroes_seg */
	cfg[56] = 1;                           /* write_zeroes_may_unmap */
	memcpy(data, cfg + off, len);
}

static void config_write(struct virtio_dev *d, uint32_t off, const uint8_t *data, uint32_t len)
{
	(void)d, (void)off, (void)data, (void)len; /* nothing is writable */
}

/*
 * Moves @len bytes between the file at @pos and the chain's device-writable
 * (@to_guest) or device-readable bytes starting @off bytes into them.
 * Returns 0, or -EIO / -EFAULT.
 */
static int chain_io(struct blk *b, const struct vq_chain *c, int to_guest, uint64_t off,
                    uint64_t len, uint64_t pos)
{
	for (int i = 0; i < c->n && len; i++) {
		const struct vq_buf *vb = &c->buf[i];
		if (!vb->write != !to_guest)
			continue;
		if (off >= vb->len) {
			off -= vb->len;
			continue;
		}
		uint64_t n = vb->len - off < len ? vb->len - off : len;
		uint8_t *p = gm_ptr(b->dev.gm, vb->gpa + off, (size_t)n);
		if (!p)
			return -EFAULT;
		for (uint64_t done = 0; done < n;) {
			ssize_t r =
			    to_guest
			        ? pread(b->fd, p + done, (size_t)(n - done), (off_t)(pos + done))
			        : pwrite(b->fd, p + done, (size_t)(n - done), (off_t)(pos + done));
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return -EIO;
			if (r == 0) {
				if (!to_guest)
					return -EIO;
				memset(p + done, 0,
				       (size_t)(n - done)); /* a file shorter than we were told */
				break;
			}
			done += (uint64_t)r;
		}
		pos += n;
		len -= n;
		off = 0;
	}
	return len ? -EFAULT : 0;
}

/* [sector, sector + count) lies within the disk. */
static int in_range(const struct blk *b, uint64_t sector, uint64_t count)
{
	return sector <= b->sectors && count <= b->sectors - sector;
}

static int zero_range(struct blk *b, uint64_t pos, uint64_t len)
{
	if (fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)pos, (off_t)len) ==
	    0)
		return 0;
	static const uint8_t zeros[ZERO_CHUNK];
	while (len) {
		size_t n = len < ZERO_CHUNK ? (size_t)len : ZERO_CHUNK;
		ssize_t w = pwrite(b->fd, zeros, n, (off_t)pos);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -EIO;
		pos += (uint64_t)w;
		len -= (uint64_t)w;
	}
	return 0;
}

static uint8_t do_segments(struct blk *b, const struct vq_chain *c, uint32_t type)
{
	if (!b->writable)
		return S_IOERR;
	uint64_t n = c->rlen - HDR_LEN;
	if (n == 0 || n % SEG_LEN || n / SEG_LEN > MAX_SEGS)
		return S_IOERR;
	for (uint64_t off = HDR_LEN; off < c->rlen; off += SEG_LEN) {
		uint8_t seg[SEG_LEN];
		if (vq_chain_read(b->dev.gm, c, off, seg, SEG_LEN) != SEG_LEN)
			return S_IOERR;
		uint64_t sector = get_le(seg, 8);
		uint32_t count = (uint32_t)get_le(seg + 8, 4),
		         flags = (uint32_t)get_le(seg + 12, 4);
		/* only write zeroes' "unmap" flag is defined */
		if (count > MAX_RANGE || !in_range(b, sector, count) ||
		    (flags & ~(type == T_WRITE_ZEROES ? 1u : 0u)))
			return S_IOERR;
		/* discarding is advisory, but must not leave old data readable
		 * where the guest may then expect zeroes: both punch */
		if (zero_range(b, sector * SECTOR, (uint64_t)count * SECTOR) < 0)
			return S_IOERR;
	}
	return S_OK;
}

/* Serves one request; the status byte is the chain's last writable byte.
 * *@written: data bytes written into the guest. */
static uint8_t handle(struct blk *b, const struct vq_chain *c, uint32_t *written)
{
	*written = 0;
	uint8_t hdr[HDR_LEN];
	if (c->rlen < HDR_LEN || vq_chain_read(b->dev.gm, c, 0, hdr, HDR_LEN) != HDR_LEN)
		return S_IOERR;
	uint32_t type = (uint32_t)get_le(hdr, 4);
	uint64_t sector = get_le(hdr + 8, 8);
	uint64_t data = c->wlen - 1; /* writable bytes before the status */
	switch (type) {
	case T_IN:
		if (b->fd < 0 || data > MAX_IO || data % SECTOR ||
		    !in_range(b, sector, data / SECTOR))
			return S_IOERR;
		if (chain_io(b, c, 1, 0, data, sector * SECTOR) < 0)
			return S_IOERR;
		*written = (uint32_t)data;
		return S_OK;
	case T_OUT: {
		uint64_t n = c->rlen - HDR_LEN;
		if (b->fd < 0 || !b->writable || n > MAX_IO || n % SECTOR ||
		    !in_range(b, sector, n / SECTOR))
			return S_IOERR;
		return chain_io(b, c, 0, HDR_LEN, n, sector * SECTOR) < 0 ? S_IOERR : S_OK;
	}
	case T_FLUSH:
		if (b->fd >= 0 && b->writable && fdatasync(b->fd) < 0)
			return S_IOERR;
		return S_OK;
	case T_GET_ID: {
		uint64_t n = data < BLK_SERIAL_LEN ? data : BLK_SERIAL_LEN;
		if (vq_chain_write(b->dev.gm, c, 0, b->serial, n) != n)
			return S_IOERR;
		*written = (uint32_t)n;
		return S_OK;
	}
	case T_DISCARD:
	case T_WRITE_ZEROES:
		return b->fd < 0 ? S_IOERR : do_segments(b, c, type);
	default:
		return S_UNSUPP;
	}
}

static void notify(struct virtio_dev *d, int q)
{
	struct blk *b = d->priv;
	struct vq *vq = &d->vq[q];
	struct vq_chain c;
	int served = 0;
	for (;;) {
		int r = vq_pop(d->gm, vq, &c);
		if (r < 0) {
			virtio_fail(d, "the request queue is broken");
			return;
		}
		if (r == 0)
			break;
		uint32_t written = 0;
		if (!c.bad && c.wlen >= 1) {
			uint8_t st = handle(b, &c, &written);
			vq_chain_write(d->gm, &c, c.wlen - 1, &st, 1);
			written += 1;
		}
		vq_push(d->gm, vq, c.head, written);
		served++;
	}
	if (served)
		virtio_signal_used(d, q);
}

static const struct virtio_ops blk_ops = {
    .name = "blk",
    .device_id = VIRTIO_ID_BLOCK,
    .features = VIRTIO_F_VERSION_1 | F_SEG_MAX | F_FLUSH | F_DISCARD | F_WRITE_ZEROES,
    .nqueues = 1,
    .queue_max = QUEUE_SIZE,
    .config_len = CONFIG_LEN,
    .config_read = config_read,
    .config_write = config_write,
    .notify = notify,
};

struct blk *blk_create(const struct gm *gm, uint64_t base, uint32_t irq, const char *serial)
{
	struct blk *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->fd = -1;
	/* zero-padded, unterminated when 20 long, as the spec has it */
	memcpy(b->serial, serial, strnlen(serial, sizeof(b->serial)));
	virtio_dev_init(&b->dev, &blk_ops, b, gm, base, irq);
	return b;
}

struct virtio_dev *blk_dev(struct blk *b)
{
	return &b->dev;
}

int blk_attach(struct blk *b, int fd, uint64_t size, int writable)
{
	pthread_mutex_lock(&b->dev.lock);
	int e = 0;
	if (b->fd >= 0) {
		e = -EBUSY;
	} else {
		b->fd = fd;
		b->sectors = size / SECTOR;
		b->writable = writable;
		virtio_config_changed(&b->dev);
	}
	pthread_mutex_unlock(&b->dev.lock);
	return e;
}

int blk_attach_path(struct blk *b, const char *path, int writable, char *why, size_t why_len)
{
	int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	struct stat st;
	uint64_t size = 0;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(why, why_len, "cannot open %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
			int e = -errno;
			snprintf(why, why_len, "cannot get the size of %s: %s", path, strerror(-e));
			close(fd);
			return e;
		}
	} else if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else {
		snprintf(why, why_len, "%s is not a file or a block device", path);
		close(fd);
		return -EINVAL;
	}
	int e = blk_attach(b, fd, size, writable);
	if (e) {
		snprintf(why, why_len, "the disk slot for %s is in use", path);
		close(fd);
	}
	return e;
}

void blk_destroy(struct blk *b)
{
	if (!b)
		return;
	if (b->fd >= 0)
		close(b->fd);
	pthread_mutex_destroy(&b->dev.lock);
	free(b);
}
