/*
 * virtio-blk against a hostile guest: requests laid out in fake guest RAM
 * as chains (header, data, status), handed to the device, and the file and
 * status checked. Every bad request must end with IOERR or UNSUPP in its
 * status byte and nothing outside the disk touched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/virtio/blk.h"

#define RAM      (16ULL << 20)
#define DESC     0x10000ULL
#define AVAIL    0x14000ULL
#define USED     0x18000ULL
#define HDR      0x100000ULL
#define DATA     0x200000ULL
#define STATUS   0x300000ULL
#define QSIZE    16
#define DISK_LEN (64 * 1024)

struct rig {
	struct gm gm;
	struct blk *b;
	struct virtio_dev *d;
	uint16_t avail;
	char path[64];
	int fd;
};

static void put_desc(struct rig *r, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
	uint8_t *d = gm_ptr(&r->gm, DESC + (uint64_t)i * 16, 16);
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void setup(struct rig *r, int writable)
{
	memset(r, 0, sizeof(*r));
	assert_int_equal(gm_init(&r->gm, RAM), 0);
	snprintf(r->path, sizeof(r->path), "/tmp/msb-test-blk-%d", (int)getpid());
	r->fd = open(r->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(r->fd >= 0);
	uint8_t content[DISK_LEN];
	for (int i = 0; i < DISK_LEN; i++)
		content[i] = (uint8_t)(i / 512);
	assert_int_equal(write(r->fd, content, DISK_LEN), DISK_LEN);
	r->b = blk_create(&r->gm, 0xd0000000, 5, "disk0");
	assert_non_null(r->b);
	r->d = blk_dev(r->b);
	struct vq *v = &r->d->vq[0];
	v->size = QSIZE;
	v->desc_gpa = DESC;
	v->avail_gpa = AVAIL;
	v->used_gpa = USED;
	assert_int_equal(vq_activate(&r->gm, v), 0);
	r->d->active = 1;
	int fd = dup(r->fd);
	assert_int_equal(blk_attach(r->b, fd, DISK_LEN, writable), 0);
	assert_int_equal(blk_attach(r->b, fd, DISK_LEN, writable), -EBUSY);
}

static void teardown(struct rig *r)
{
	blk_destroy(r->b);
	close(r->fd);
	unlink(r->path);
	gm_destroy(&r->gm);
}

/* One request: header, @len data bytes at DATA (device-writable when
 * @data_in), status; returns the status byte and the used length. */
static uint8_t request(struct rig *r, uint32_t type, uint64_t sector, uint32_t len, int data_in,
                       uint32_t *used_len)
{
	uint8_t h[16] = {0};
	memcpy(h, &type, 4);
	memcpy(h + 8, &sector, 8);
	memcpy(gm_ptr(&r->gm, HDR, 16), h, 16);
	*(uint8_t *)gm_ptr(&r->gm, STATUS, 1) = 0xee;
	uint16_t n = 0;
	put_desc(r, n, HDR, 16, VQ_DESC_NEXT, (uint16_t)(n + 1));
	n++;
	if (len) {
		put_desc(r, n, DATA, len, (uint16_t)(VQ_DESC_NEXT | (data_in ? VQ_DESC_WRITE : 0)),
		         (uint16_t)(n + 1));
		n++;
	}
	put_desc(r, n, STATUS, 1, VQ_DESC_WRITE, 0);
	uint16_t *ring = gm_ptr(&r->gm, AVAIL + 4 + (uint64_t)(r->avail % QSIZE) * 2, 2);
	*ring = 0;
	r->avail++;
	memcpy(gm_ptr(&r->gm, AVAIL + 2, 2), &r->avail, 2);
	virtio_queue_kick(r->d, 0);
	uint16_t idx;
	memcpy(&idx, gm_ptr(&r->gm, USED + 2, 2), 2);
	assert_int_equal(idx, r->avail); /* every request comes back */
	memcpy(used_len, gm_ptr(&r->gm, USED + 4 + (uint64_t)((idx - 1) % QSIZE) * 8 + 4, 4), 4);
	return *(uint8_t *)gm_ptr(&r->gm, STATUS, 1);
}

static void test_read_write_flush_id(void **state)
{
	(void)state;
	struct rig r;
	setup(&r, 1);
	uint32_t used;
	uint8_t *data = gm_ptr(&r.gm, DATA, 4096);
	assert_int_equal(request(&r, 0, 3, 1024, 1, &used), 0);
	assert_int_equal(used, 1025);
	assert_int_equal(data[0], 3);
	assert_int_equal(data[1023], 4);

	memset(data, 0xab, 512);
	assert_int_equal(request(&r, 1, 7, 512, 0, &used), 0);
	uint8_t back[512];
	assert_int_equal(pread(r.fd, back, 512, 7 * 512), 512);
	assert_int_equal(back[0], 0xab);
	assert_int_equal(back[511], 0xab);

	assert_int_equal(request(&r, 4, 0, 0, 0, &used), 0);  /* flush */
	assert_int_equal(request(&r, 8, 0, 20, 1, &used), 0); /* get id */
	assert_memory_equal(data, "disk0\0\0\0", 8);
	teardown(&r);
}

static void test_hostile_requests(void **state)
{
	(void)state;
	struct rig r;
	setup(&r, 1);
	uint32_t used;
	const uint64_t sectors = DISK_LEN / 512;
	/* past the end, across the end, wrapping */
	assert_int_equal(request(&r, 0, sectors, 512, 1, &used), 1);
	assert_int_equal(request(&r, 0, sectors - 1, 1024, 1, &used), 1);
	assert_int_equal(request(&r, 1, UINT64_MAX, 512, 0, &used), 1);
	assert_int_equal(request(&r, 1, UINT64_MAX / 512 + 1, 512, 0, &used), 1);
	/* not whole sectors */
	assert_int_equal(request(&r, 0, 0, 100, 1, &used), 1);
	assert_int_equal(request(&r, 1, 0, 513, 0, &used), 1);
	/* an unknown type */
	assert_int_equal(request(&r, 99, 0, 512, 1, &used), 2);
	/* discard: a bad segment count, a range past the end, bad flags */
	uint8_t seg[32] = {0};
	uint64_t s = 2;
	uint32_t cnt = 2, flags = 0;
	memcpy(seg, &s, 8);
	memcpy(seg + 8, &cnt, 4);
	memcpy(seg + 12, &flags, 4);
	memcpy(gm_ptr(&r.gm, DATA, 32), seg, 32);
	assert_int_equal(request(&r, 11, 0, 16, 0, &used), 0);
	uint8_t z[1024];
	assert_int_equal(pread(r.fd, z, 1024, 2 * 512), 1024);
	for (int i = 0; i < 1024; i++)
		assert_int_equal(z[i], 0);                     /* discarded reads as zeroes */
	assert_int_equal(request(&r, 11, 0, 32, 0, &used), 1); /* two segments */
	cnt = (uint32_t)sectors;
	memcpy(gm_ptr(&r.gm, DATA + 8, 4), &cnt, 4);
	assert_int_equal(request(&r, 11, 0, 16, 0, &used), 1);
	cnt = 1;
	flags = 1; /* unmap: only for write zeroes */
	memcpy(gm_ptr(&r.gm, DATA + 8, 4), &cnt, 4);
	memcpy(gm_ptr(&r.gm, DATA + 12, 4), &flags, 4);
	assert_int_equal(request(&r, 11, 0, 16, 0, &used), 1);
	assert_int_equal(request(&r, 13, 0, 16, 0, &used), 0);

	/* a data buffer outside guest RAM: the chain comes back unserved */
	uint32_t in = 0;
	memcpy(gm_ptr(&r.gm, HDR, 4), &in, 4);
	memset(gm_ptr(&r.gm, HDR + 8, 8), 0, 8);
	*(uint8_t *)gm_ptr(&r.gm, STATUS, 1) = 0xee;
	put_desc(&r, 0, HDR, 16, VQ_DESC_NEXT, 1);
	put_desc(&r, 1, RAM + 0x1000, 512, VQ_DESC_NEXT | VQ_DESC_WRITE, 2);
	put_desc(&r, 2, STATUS, 1, VQ_DESC_WRITE, 0);
	r.avail++;
	memcpy(gm_ptr(&r.gm, AVAIL + 2, 2), &r.avail, 2);
	virtio_queue_kick(r.d, 0);
	uint16_t idx;
	memcpy(&idx, gm_ptr(&r.gm, USED + 2, 2), 2);
	assert_int_equal(idx, r.avail);
	assert_int_not_equal(*(uint8_t *)gm_ptr(&r.gm, STATUS, 1), 0);
	teardown(&r);
}

static void test_read_only_and_empty(void **state)
{
	(void)state;
	struct rig r;
	setup(&r, 0);
	uint32_t used;
	assert_int_equal(request(&r, 0, 0, 512, 1, &used), 0);
	assert_int_equal(request(&r, 1, 0, 512, 0, &used), 1); /* write */
	assert_int_equal(request(&r, 11, 0, 16, 0, &used), 1); /* discard */
	assert_int_equal(request(&r, 4, 0, 0, 0, &used), 0);   /* flush: nothing to do */
	teardown(&r);

	/* an empty slot: capacity 0, reads fail */
	struct gm gm;
	assert_int_equal(gm_init(&gm, RAM), 0);
	struct blk *b = blk_create(&gm, 0xd0000000, 5, "a-serial-longer-than-20-bytes");
	uint8_t cap[8];
	blk_dev(b)->ops->config_read(blk_dev(b), 0, cap, 8);
	uint64_t c;
	memcpy(&c, cap, 8);
	assert_int_equal(c, 0);
	char why[100];
	assert_int_equal(blk_attach_path(b, "/nonexistent/x", 0, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "/nonexistent/x"));
	blk_destroy(b);
	gm_destroy(&gm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_read_write_flush_id),
	    cmocka_unit_test(test_hostile_requests),
	    cmocka_unit_test(test_read_only_and_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
