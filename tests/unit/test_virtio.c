/*
 * The split virtqueue and the virtio-mmio transport against a hostile
 * driver. A small builder lays out rings in fake guest RAM, so each bad
 * shape is one row of a table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "vmm/memory.h"
#include "vmm/virtio/mmio.h"
#include "vmm/virtio/queue.h"

#define RAM       (16ULL << 20)
#define DESC_GPA  0x10000ULL
#define AVAIL_GPA 0x20000ULL
#define USED_GPA  0x30000ULL
#define DATA_GPA  0x100000ULL

struct vqb {
	struct gm gm;
	struct vq q;
	uint16_t avail_idx;
};

static void vqb_init(struct vqb *b, uint16_t size)
{
	memset(b, 0, sizeof(*b));
	assert_int_equal(gm_init(&b->gm, RAM), 0);
	b->q.max_size = 256;
	b->q.size = size;
	b->q.desc_gpa = DESC_GPA;
	b->q.avail_gpa = AVAIL_GPA;
	b->q.used_gpa = USED_GPA;
	assert_int_equal(vq_activate(&b->gm, &b->q), 0);
}

static void vqb_desc(struct vqb *b, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
	uint8_t *d = gm_ptr(&b->gm, DESC_GPA + (uint64_t)i * 16, 16);
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void vqb_avail(struct vqb *b, uint16_t head)
{
	uint16_t *ring =
	    gm_ptr(&b->gm, AVAIL_GPA + 4 + (uint64_t)(b->avail_idx % b->q.size) * 2, 2);
	*ring = head;
	b->avail_idx++;
	memcpy(gm_ptr(&b->gm, AVAIL_GPA + 2, 2), &b->avail_idx, 2);
}

static void used_elem(struct vqb *b, uint16_t slot, uint32_t *id, uint32_t *len)
{
	uint8_t *e = gm_ptr(&b->gm, USED_GPA + 4 + (uint64_t)slot * 8, 8);
	memcpy(id, e, 4);
	memcpy(len, e + 4, 4);
}

static void test_good_chain(void **state)
{
	(void)state;
	struct vqb b;
	vqb_init(&b, 16);
	memcpy(gm_ptr(&b.gm, DATA_GPA, 5), "hello", 5);
	vqb_desc(&b, 3, DATA_GPA, 5, VQ_DESC_NEXT, 7);
	vqb_desc(&b, 7, DATA_GPA + 0x1000, 0, VQ_DESC_NEXT | VQ_DESC_WRITE, 9); /* empty: skipped */
	vqb_desc(&b, 9, DATA_GPA + 0x2000, 100, VQ_DESC_WRITE, 0);
	vqb_avail(&b, 3);
	struct vq_chain c;
	assert_int_equal(vq_pop(&b.gm, &b.q, &c), 1);
	assert_false(c.bad);
	assert_int_equal(c.head, 3);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.rlen, 5);
	assert_int_equal(c.wlen, 100);
	char buf[8] = "";
	assert_int_equal(vq_chain_read(&b.gm, &c, 1, buf, 8), 4);
	assert_memory_equal(buf, "ello", 4);
	assert_int_equal(vq_chain_write(&b.gm, &c, 0, "xyz", 3), 3);
	assert_memory_equal(gm_ptr(&b.gm, DATA_GPA + 0x2000, 3), "xyz", 3);
	vq_push(&b.gm, &b.q, c.head, 3);
	uint32_t id, len;
	used_elem(&b, 0, &id, &len);
	assert_int_equal(id, 3);
	assert_int_equal(len, 3);
	uint16_t used_idx;
	memcpy(&used_idx, gm_ptr(&b.gm, USED_GPA + 2, 2), 2);
	assert_int_equal(used_idx, 1);
	assert_int_equal(vq_pop(&b.gm, &b.q, &c), 0); /* nothing more */
	gm_destroy(&b.gm);
}

/* Chains the device must refuse but return (length 0), then go on. */
struct bad_chain {
	const char *what;
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
	int extra; /* 1: desc 1 points back at 0 (a loop); 2: readable after writable */
};

static const struct bad_chain bad_chains[] = {
    {"next out of range", DATA_GPA, 8, VQ_DESC_NEXT, 16, 0},
    {"next far out of range", DATA_GPA, 8, VQ_DESC_NEXT, 0xffff, 0},
    {"a loop", DATA_GPA, 8, VQ_DESC_NEXT, 1, 1},
    {"buffer outside RAM", RAM, 8, 0, 0, 0},
    {"buffer across the end of RAM", RAM - 4, 8, 0, 0, 0},
    {"address that wraps", UINT64_MAX - 3, 8, 0, 0, 0},
    {"huge length", DATA_GPA, 0xffffffff, 0, 0, 0},
    {"indirect (not negotiated)", DATA_GPA, 16, VQ_DESC_INDIRECT, 0, 0},
    {"readable after writable", DATA_GPA, 8, VQ_DESC_NEXT | VQ_DESC_WRITE, 1, 2},
};

static void test_bad_chains(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_chains) / sizeof(bad_chains[0]); i++) {
		const struct bad_chain *t = &bad_chains[i];
		struct vqb b;
		vqb_init(&b, 16);
		vqb_desc(&b, 0, t->addr, t->len, t->flags, t->next);
		if (t->extra == 1)
			vqb_desc(&b, 1, DATA_GPA, 8, VQ_DESC_NEXT, 0);
		if (t->extra == 2)
			vqb_desc(&b, 1, DATA_GPA, 8, 0, 0);
		vqb_avail(&b, 0);
		struct vq_chain c;
		assert_int_equal(vq_pop(&b.gm, &b.q, &c), 1);
		if (!c.bad)
			fail_msg("accepted: %s", t->what);
		vq_push(&b.gm, &b.q, c.head, 0);
		uint32_t id, len;
		used_elem(&b, 0, &id, &len);
		assert_int_equal(id, 0);
		assert_int_equal(len, 0);
		/* the queue goes on */
		vqb_desc(&b, 2, DATA_GPA, 8, 0, 0);
		vqb_avail(&b, 2);
		assert_int_equal(vq_pop(&b.gm, &b.q, &c), 1);
		assert_false(c.bad);
		gm_destroy(&b.gm);
	}
}

static void test_too_long_chain(void **state)
{
	(void)state;
	struct vqb b;
	vqb_init(&b, 128);
	for (uint16_t i = 0; i < VQ_MAX_CHAIN + 1; i++)
		vqb_desc(&b, i, DATA_GPA, 8, VQ_DESC_NEXT, (uint16_t)(i + 1));
	vqb_desc(&b, VQ_MAX_CHAIN + 1, DATA_GPA, 8, 0, 0);
	vqb_avail(&b, 0);
	struct vq_chain c;
	assert_int_equal(vq_pop(&b.gm, &b.q, &c), 1);
	assert_true(c.bad);
	gm_destroy(&b.gm);
}

static void test_broken_rings(void **state)
{
	(void)state;
	struct vqb b;
	struct vq_chain c;
	/* a head out of range cannot be returned: the queue breaks */
	vqb_init(&b, 16);
	vqb_avail(&b, 16);
	assert_int_equal(vq_pop(&b.gm, &b.q, &c), -EIO);
	assert_int_equal(vq_pop(&b.gm, &b.q, &c), -EIO); /* and stays broken */
	gm_destroy(&b.gm);
	/* the avail index runs further ahead than the ring holds */
	vqb_init(&b, 16);
	uint16_t idx = 17;
	memcpy(gm_ptr(&b.gm, AVAIL_GPA + 2, 2), &idx, 2);
	assert_int_equal(vq_pop(&b.gm, &b.q, &c), -EIO);
	gm_destroy(&b.gm);
}

static void test_activation_checks(void **state)
{
	(void)state;
	struct gm gm;
	assert_int_equal(gm_init(&gm, RAM), 0);
	struct {
		uint16_t size;
		uint64_t desc, avail, used;
	} rows[] = {
	    {0, DESC_GPA, AVAIL_GPA, USED_GPA},        /* size 0 */
	    {12, DESC_GPA, AVAIL_GPA, USED_GPA},       /* not a power of two */
	    {512, DESC_GPA, AVAIL_GPA, USED_GPA},      /* above max */
	    {16, DESC_GPA + 8, AVAIL_GPA, USED_GPA},   /* descriptors misaligned */
	    {16, DESC_GPA, AVAIL_GPA + 1, USED_GPA},   /* avail misaligned */
	    {16, DESC_GPA, AVAIL_GPA, USED_GPA + 2},   /* used misaligned */
	    {16, RAM - 16 * 8, AVAIL_GPA, USED_GPA},   /* descriptors past RAM */
	    {16, DESC_GPA, AVAIL_GPA, RAM - 8},        /* used ring past RAM */
	    {16, DESC_GPA, UINT64_MAX - 15, USED_GPA}, /* wraps */
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct vq q = {.max_size = 256};
		q.size = rows[i].size;
		q.desc_gpa = rows[i].desc;
		q.avail_gpa = rows[i].avail;
		q.used_gpa = rows[i].used;
		if (vq_activate(&gm, &q) != -EINVAL)
			fail_msg("row %zu accepted", i);
		assert_false(q.ready);
	}
	gm_destroy(&gm);
}

/* ---- the MMIO transport ---------------------------------------------- */

static int activated, notified, resets;

static int t_activate(struct virtio_dev *d)
{
	(void)d;
	activated++;
	return 0;
}

static void t_notify(struct virtio_dev *d, int q)
{
	(void)d;
	notified += q + 1;
}

static void t_reset(struct virtio_dev *d)
{
	(void)d;
	resets++;
}

static const struct virtio_ops t_ops = {
    .name = "test",
    .device_id = 19,
    .features = VIRTIO_F_VERSION_1,
    .nqueues = 2,
    .queue_max = 64,
    .config_len = 8,
    .activate = t_activate,
    .notify = t_notify,
    .reset = t_reset,
};

static void wr(struct virtio_dev *d, uint64_t off, uint32_t v)
{
	virtio_mmio_access(d, off, (uint8_t *)&v, 4, 1);
}

static uint32_t rd(struct virtio_dev *d, uint64_t off)
{
	uint32_t v;
	virtio_mmio_access(d, off, (uint8_t *)&v, 4, 0);
	return v;
}

static void setup_dev(struct virtio_dev *d, struct gm *gm)
{
	assert_int_equal(gm_init(gm, RAM), 0);
	virtio_dev_init(d, &t_ops, NULL, gm, 0xd0000000, 5);
	activated = notified = resets = 0;
}

static void set_queue(struct virtio_dev *d, uint32_t sel, uint32_t num)
{
	wr(d, 0x030, sel);
	wr(d, 0x038, num);
	wr(d, 0x080, (uint32_t)DESC_GPA);
	wr(d, 0x084, 0);
	wr(d, 0x090, (uint32_t)AVAIL_GPA);
	wr(d, 0x094, 0);
	wr(d, 0x0a0, (uint32_t)USED_GPA);
	wr(d, 0x0a4, 0);
	wr(d, 0x044, 1);
}

static void test_mmio_good_sequence(void **state)
{
	(void)state;
	struct gm gm;
	struct virtio_dev d;
	setup_dev(&d, &gm);
	assert_int_equal(rd(&d, 0x000), 0x74726976);
	assert_int_equal(rd(&d, 0x004), 2);
	assert_int_equal(rd(&d, 0x008), 19);
	wr(&d, 0x070, VIRTIO_STATUS_ACK);
	wr(&d, 0x070, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);
	wr(&d, 0x014, 1);
	assert_int_equal(rd(&d, 0x010), 1); /* VERSION_1 is bit 32 */
	wr(&d, 0x024, 1);
	wr(&d, 0x020, 1);
	wr(&d, 0x070, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	assert_true(rd(&d, 0x070) & VIRTIO_STATUS_FEATURES_OK);
	set_queue(&d, 0, 16);
	assert_int_equal(rd(&d, 0x044), 1);
	wr(&d, 0x070, 0x0f);
	assert_int_equal(activated, 1);
	wr(&d, 0x050, 1);
	assert_int_equal(notified, 2);
	wr(&d, 0x050, 7); /* no such queue: ignored */
	assert_int_equal(notified, 2);
	/* queue registers are frozen after DRIVER_OK */
	wr(&d, 0x030, 0);
	wr(&d, 0x080, 0x1234);
	assert_int_equal(d.vq[0].desc_gpa, DESC_GPA);
	wr(&d, 0x070, 0);
	assert_int_equal(resets, 1);
	assert_int_equal(rd(&d, 0x070), 0);
	assert_false(d.vq[0].ready);
	gm_destroy(&gm);
}

static void test_mmio_hostile_driver(void **state)
{
	(void)state;
	struct gm gm;
	struct virtio_dev d;
	setup_dev(&d, &gm);
	/* narrow accesses to registers do nothing and read all ones */
	uint8_t b = 0;
	virtio_mmio_access(&d, 0x000, &b, 1, 0);
	assert_int_equal(b, 0xff);
	uint16_t h = 1;
	virtio_mmio_access(&d, 0x070, (uint8_t *)&h, 2, 1);
	assert_int_equal(rd(&d, 0x070), 0);
	/* queue set-up before FEATURES_OK is ignored */
	wr(&d, 0x070, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);
	set_queue(&d, 0, 16);
	assert_false(d.vq[0].ready);
	/* FEATURES_OK without VERSION_1 is refused, not accepted */
	wr(&d, 0x070, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	assert_false(rd(&d, 0x070) & VIRTIO_STATUS_FEATURES_OK);
	/* features the device does not offer are refused too */
	wr(&d, 0x024, 0);
	wr(&d, 0x020, 0x10);
	wr(&d, 0x024, 1);
	wr(&d, 0x020, 1);
	wr(&d, 0x070, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	assert_false(rd(&d, 0x070) & VIRTIO_STATUS_FEATURES_OK);
	/* a queue selector out of range names nothing */
	wr(&d, 0x030, 1000000);
	assert_int_equal(rd(&d, 0x034), 0);
	wr(&d, 0x038, 16);
	/* DRIVER_OK before FEATURES_OK: the device needs a reset */
	wr(&d, 0x070, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
	assert_true(rd(&d, 0x070) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(activated, 0);
	/* only a reset brings it back */
	wr(&d, 0x070, 0);
	assert_int_equal(rd(&d, 0x070), 0);
	gm_destroy(&gm);
}

static void test_mmio_bad_queue_fails_device(void **state)
{
	(void)state;
	struct gm gm;
	struct virtio_dev d;
	setup_dev(&d, &gm);
	wr(&d, 0x070, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);
	wr(&d, 0x024, 1);
	wr(&d, 0x020, 1);
	wr(&d, 0x070, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	set_queue(&d, 1, 100); /* not a power of two */
	assert_true(rd(&d, 0x070) & VIRTIO_STATUS_NEEDS_RESET);
	assert_true(rd(&d, 0x060) & 2); /* config interrupt raised */
	wr(&d, 0x070, 0x0f);
	assert_int_equal(activated, 0);
	/* status bits cannot be taken away without a reset */
	setup_dev(&d, &gm);
	wr(&d, 0x070, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);
	wr(&d, 0x070, VIRTIO_STATUS_ACK);
	assert_true(rd(&d, 0x070) & VIRTIO_STATUS_NEEDS_RESET);
	/* config space: bounded, any width up to 8 */
	uint64_t big = 0;
	virtio_mmio_access(&d, 0x100 + 4, (uint8_t *)&big, 8, 0); /* past config_len */
	assert_int_equal(big, 0);
	gm_destroy(&gm);
}

/* A device brought to DRIVER_OK with queue 0 set up, as a snapshot sees it. */
static void bring_up(struct virtio_dev *d)
{
	wr(d, 0x070, VIRTIO_STATUS_ACK);
	wr(d, 0x070, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);
	wr(d, 0x024, 1);
	wr(d, 0x020, 1);
	wr(d, 0x070, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	set_queue(d, 0, 16);
	wr(d, 0x070, 0x0f);
}

static void test_state_save_restore(void **state)
{
	(void)state;
	struct gm gm;
	struct virtio_dev d, r;
	setup_dev(&d, &gm);
	bring_up(&d);
	d.vq[0].last_avail = 5;
	d.vq[0].used_idx = 4;
	struct virtio_dev_state s;
	virtio_dev_save(&d, &s);
	virtio_dev_init(&r, &t_ops, NULL, &gm, 0xd0000000, 5);
	assert_int_equal(virtio_dev_restore(&r, &s), 0);
	assert_int_equal(r.status, 0x0f);
	assert_int_equal(r.active, 1);
	assert_true(r.vq[0].ready);
	assert_int_equal(r.vq[0].size, 16);
	assert_int_equal(r.vq[0].last_avail, 5);
	assert_int_equal(r.vq[0].used_idx, 4);
	assert_int_equal(r.vq[0].desc_gpa, DESC_GPA);

	/* a saved state is checked like a driver's writes */
	struct virtio_dev_state bad;
	bad = s, bad.device_id = 2;
	assert_int_equal(virtio_dev_restore(&r, &bad), -EINVAL);
	assert_int_equal(r.status, 0); /* left reset */
	bad = s, bad.nqueues = 3;
	assert_int_equal(virtio_dev_restore(&r, &bad), -EINVAL);
	bad = s, bad.q[0].size = 12; /* not a power of two */
	assert_int_equal(virtio_dev_restore(&r, &bad), -EINVAL);
	bad = s, bad.q[0].size = 128; /* above the device's maximum */
	assert_int_equal(virtio_dev_restore(&r, &bad), -EINVAL);
	bad = s, bad.q[0].desc_gpa = RAM - 8; /* ring runs out of RAM */
	assert_int_equal(virtio_dev_restore(&r, &bad), -EINVAL);
	bad = s, bad.driver_features = 1ull << 40; /* a feature never offered */
	assert_int_equal(virtio_dev_restore(&r, &bad), -EINVAL);
	gm_destroy(&gm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_chain),
	    cmocka_unit_test(test_bad_chains),
	    cmocka_unit_test(test_too_long_chain),
	    cmocka_unit_test(test_broken_rings),
	    cmocka_unit_test(test_activation_checks),
	    cmocka_unit_test(test_mmio_good_sequence),
	    cmocka_unit_test(test_mmio_hostile_driver),
	    cmocka_unit_test(test_mmio_bad_queue_fails_device),
	    cmocka_unit_test(test_state_save_restore),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
