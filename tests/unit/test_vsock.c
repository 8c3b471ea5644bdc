/*
 * virtio-vsock against a hostile guest: packets are laid out in fake guest
 * RAM and handed to the device the way the driver would, and what the
 * device answers on the rx queue is read back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/evloop.h"
#include "vmm/virtio/vsock.h"

#define RAM       (16ULL << 20)
#define RING(q)   (0x10000ULL + (uint64_t)(q)*0x10000ULL)
#define DESC(q)   RING(q)
#define AVAIL(q)  (RING(q) + 0x4000)
#define USED(q)   (RING(q) + 0x8000)
#define BUF(q, i) (0x200000ULL + (uint64_t)(q)*0x100000ULL + (uint64_t)(i)*0x1000)
#define QSIZE     16

struct hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));

struct rig {
	struct gm gm;
	struct evloop loop;
	struct vsock *vs;
	struct virtio_dev *d;
	uint16_t avail[3];
	char path[108];
};

static void put_desc(struct rig *r, int q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags)
{
	uint8_t *d = gm_ptr(&r->gm, DESC(q) + (uint64_t)i * 16, 16);
	uint16_t next = 0;
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void make_avail(struct rig *r, int q, uint16_t head)
{
	uint16_t *ring = gm_ptr(&r->gm, AVAIL(q) + 4 + (uint64_t)(r->avail[q] % QSIZE) * 2, 2);
	*ring = head;
	r->avail[q]++;
	memcpy(gm_ptr(&r->gm, AVAIL(q) + 2, 2), &r->avail[q], 2);
}

static void setup(struct rig *r)
{
	memset(r, 0, sizeof(*r));
	assert_int_equal(gm_init(&r->gm, RAM), 0);
	assert_int_equal(evloop_init(&r->loop), 0);
	snprintf(r->path, sizeof(r->path), "/tmp/msb-test-vsock-%d.sock", (int)getpid());
	char why[200];
	r->vs = vsock_create(&r->gm, &r->loop, r->path, 0xd0000000, 5, why, sizeof(why));
	assert_non_null(r->vs);
	r->d = vsock_dev(r->vs);
	for (int q = 0; q < 3; q++) {
		struct vq *v = &r->d->vq[q];
		v->size = QSIZE;
		v->desc_gpa = DESC(q);
		v->avail_gpa = AVAIL(q);
		v->used_gpa = USED(q);
		assert_int_equal(vq_activate(&r->gm, v), 0);
	}
	r->d->active = 1;
	/* rx buffers for the device's answers */
	for (uint16_t i = 0; i < 8; i++) {
		put_desc(r, 0, i, BUF(0, i), 4096, VQ_DESC_WRITE);
		make_avail(r, 0, i);
	}
}

static void teardown(struct rig *r)
{
	vsock_destroy(r->vs);
	evloop_destroy(&r->loop);
	gm_destroy(&r->gm);
}

/* The guest sends one packet: header (maybe cut short) and payload. */
static void guest_send(struct rig *r, uint16_t slot, const struct hdr *h, uint32_t hdr_len,
                       const void *data, uint32_t len)
{
	uint8_t *p = gm_ptr(&r->gm, BUF(1, slot), 4096);
	memcpy(p, h, hdr_len);
	if (len)
		memcpy(p + hdr_len, data, len);
	put_desc(r, 1, slot, BUF(1, slot), hdr_len + len, 0);
	make_avail(r, 1, slot);
	virtio_queue_kick(r->d, 1);
}

static uint16_t used_idx(struct rig *r, int q)
{
	uint16_t v;
	memcpy(&v, gm_ptr(&r->gm, USED(q) + 2, 2), 2);
	return v;
}

/* The device's answer number @n on the rx queue. */
static struct hdr answer(struct rig *r, uint16_t n)
{
	uint32_t id;
	memcpy(&id, gm_ptr(&r->gm, USED(0) + 4 + (uint64_t)n * 8, 4), 4);
	struct hdr h;
	memcpy(&h, gm_ptr(&r->gm, BUF(0, id), sizeof(h)), sizeof(h));
	return h;
}

static struct hdr from_guest(uint16_t op, uint32_t port, uint32_t len)
{
	struct hdr h = {.src_cid = VSOCK_GUEST_CID,
	                .dst_cid = 2,
	                .src_port = 5000,
	                .dst_port = port,
	                .len = len,
	                .type = 1,
	                .op = op,
	                .buf_alloc = 65536};
	return h;
}

static void test_connect_to_nothing_is_reset(void **state)
{
	(void)state;
	struct rig r;
	setup(&r);
	struct hdr h = from_guest(1, 7777, 0);
	guest_send(&r, 0, &h, sizeof(h), NULL, 0);
	assert_int_equal(used_idx(&r, 1), 1); /* the tx buffer came back */
	assert_int_equal(used_idx(&r, 0), 1);
	struct hdr a = answer(&r, 0);
	assert_int_equal(a.op, 3); /* RST */
	assert_int_equal(a.dst_port, 5000);
	teardown(&r);
}

static void test_guest_connect_and_data(void **state)
{
	(void)state;
	struct rig r;
	setup(&r);
	char lpath[120];
	snprintf(lpath, sizeof(lpath), "%s_9000", r.path);
	unlink(lpath);
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	assert_true(snprintf(a.sun_path, sizeof(a.sun_path), "%s", lpath) <
	            (int)sizeof(a.sun_path));
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 1), 0);

	struct hdr h = from_guest(1, 9000, 0);
	guest_send(&r, 0, &h, sizeof(h), NULL, 0);
	assert_int_equal(answer(&r, 0).op, 2); /* RESPONSE */
	int c = accept(l, NULL, NULL);
	assert_true(c >= 0);

	h = from_guest(5, 9000, 5);
	guest_send(&r, 1, &h, sizeof(h), "hello", 5);
	char buf[16] = "";
	assert_int_equal(read(c, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);

	/* a length past the buffer that carries it: dropped, not read beyond */
	h = from_guest(5, 9000, 300000);
	guest_send(&r, 2, &h, sizeof(h), NULL, 0);
	uint16_t before = used_idx(&r, 0);
	assert_int_equal(used_idx(&r, 1), 3);
	assert_int_equal(before, 1); /* nothing answered to a packet that lies */
	close(c);
	close(l);
	unlink(lpath);
	teardown(&r);
}

static void test_hostile_headers(void **state)
{
	(void)state;
	struct rig r;
	setup(&r);
	struct hdr h = from_guest(1, 7777, 0);
	guest_send(&r, 0, &h, 20, NULL, 0); /* cut short */
	h = from_guest(1, 7777, 0);
	h.src_cid = 99; /* pretends to be someone else */
	guest_send(&r, 1, &h, sizeof(h), NULL, 0);
	h = from_guest(1, 7777, 0);
	h.dst_cid = 7; /* not for the host */
	guest_send(&r, 2, &h, sizeof(h), NULL, 0);
	h = from_guest(5, 7777, 16); /* data for no connection */
	guest_send(&r, 3, &h, sizeof(h), "0123456789abcdef", 16);
	h = from_guest(99, 7777, 0); /* unknown op, no connection */
	guest_send(&r, 4, &h, sizeof(h), NULL, 0);
	/* every tx buffer returned, nothing answered, the device still works */
	assert_int_equal(used_idx(&r, 1), 5);
	assert_int_equal(used_idx(&r, 0), 0);
	h = from_guest(1, 7777, 0);
	guest_send(&r, 5, &h, sizeof(h), NULL, 0);
	assert_int_equal(answer(&r, 0).op, 3);
	teardown(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_connect_to_nothing_is_reset),
	    cmocka_unit_test(test_guest_connect_and_data),
	    cmocka_unit_test(test_hostile_headers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
