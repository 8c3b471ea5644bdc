/*
 * hostile: a guest program that attacks msb-vmm's virtio-mmio device the way
 * a guest root with its own kernel could. It maps the device's register
 * window through /dev/mem, resets the device out from under the guest's
 * driver and drives it with bad register sequences, queues and descriptor
 * chains placed in its own (pinned) memory. Each attack is announced on the
 * console (so the VM's log shows which one the VMM answered); at the end the
 * guest resets, which a surviving VMM takes as a clean end (exit 0).
 *
 *   hostile [--no-reset]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <unistd.h>

#define MMIO_BASE 0xd0000000UL

/* virtio-mmio v2 registers */
enum {
	R_MAGIC = 0x000,
	R_DEVICE_ID = 0x008,
	R_DRV_FEAT = 0x020,
	R_DRV_FEAT_SEL = 0x024,
	R_QUEUE_SEL = 0x030,
	R_QUEUE_NUM = 0x038,
	R_QUEUE_READY = 0x044,
	R_QUEUE_NOTIFY = 0x050,
	R_STATUS = 0x070,
	R_DESC_LO = 0x080,
	R_DESC_HI = 0x084,
	R_AVAIL_LO = 0x090,
	R_AVAIL_HI = 0x094,
	R_USED_LO = 0x0a0,
	R_USED_HI = 0x0a4,
};

enum { S_ACK = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8 };

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static volatile uint32_t *regs;
static uint8_t *mem; /* 4 pinned pages: desc table, avail, used, data */
static uint64_t gpa[4];
static FILE *con;

static void w(unsigned off, uint32_t v)
{
	regs[off / 4] = v;
}

static uint32_t r(unsigned off)
{
	return regs[off / 4];
}

static void say(const char *what)
{
	fprintf(con, "hostile: %s\n", what);
	fflush(con);
}

static uint64_t phys(void *p)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	uint64_t e = 0;
	if (fd < 0 || pread(fd, &e, 8, (off_t)((uintptr_t)p / 4096 * 8)) != 8 || !(e >> 63)) {
		fprintf(con, "hostile: cannot find my physical pages\n");
		exit(2);
	}
	close(fd);
	return (e & ((1ULL << 55) - 1)) * 4096;
}

/* Reset, ACK, DRIVER, VERSION_1, FEATURES_OK: queues may be set up now. */
static void start_over(void)
{
	w(R_STATUS, 0);
	w(R_STATUS, S_ACK);
	w(R_STATUS, S_ACK | S_DRIVER);
	w(R_DRV_FEAT_SEL, 1);
	w(R_DRV_FEAT, 1); /* VIRTIO_F_VERSION_1 */
	w(R_DRV_FEAT_SEL, 0);
	w(R_DRV_FEAT, 0);
	w(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
}

static void queue(unsigned q, uint32_t num, uint64_t desc, uint64_t avail, uint64_t used)
{
	w(R_QUEUE_SEL, q);
	w(R_QUEUE_NUM, num);
	w(R_DESC_LO, (uint32_t)desc);
	w(R_DESC_HI, (uint32_t)(desc >> 32));
	w(R_AVAIL_LO, (uint32_t)avail);
	w(R_AVAIL_HI, (uint32_t)(avail >> 32));
	w(R_USED_LO, (uint32_t)used);
	w(R_USED_HI, (uint32_t)(used >> 32));
	w(R_QUEUE_READY, 1);
}

/* A chain in our own pages on the transmit queue (1), then a kick. */
static void kick_chain(const struct desc *d, int n, uint16_t avail_idx)
{
	start_over();
	memset(mem, 0, 3 * 4096);
	memcpy(mem, d, (size_t)n * sizeof(*d));
	uint16_t *avail = (uint16_t *)(mem + 4096);
	avail[1] = avail_idx; /* idx */
	avail[2] = 0;         /* ring[0]: head 0 */
	for (unsigned q = 0; q < 3; q++)
		queue(q, 16, gpa[0], gpa[1], gpa[2]);
	w(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	w(R_QUEUE_NOTIFY, 1);
	usleep(200000);
}

int main(int argc, char **argv)
{
	con = fopen("/dev/console", "w");
	if (!con)
		con = stderr;
	int fd = open("/dev/mem", O_RDWR | O_SYNC);
	if (fd < 0) {
		fprintf(con, "hostile: /dev/mem: %s\n", strerror(errno));
		return 2;
	}
	regs = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, MMIO_BASE);
	mem = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE,
	           MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_LOCKED, -1, 0);
	if (regs == MAP_FAILED || mem == MAP_FAILED) {
		fprintf(con, "hostile: mmap: %s\n", strerror(errno));
		return 2;
	}
	if (r(R_MAGIC) != 0x74726976 || r(R_DEVICE_ID) != 19) {
		fprintf(con, "hostile: no virtio-vsock at %#lx\n", MMIO_BASE);
		return 2;
	}
	for (int i = 0; i < 4; i++)
		gpa[i] = phys(mem + i * 4096);

	say("status bits out of order");
	w(R_STATUS, 0);
	w(R_STATUS, S_DRIVER_OK);
	w(R_STATUS, S_ACK | S_DRIVER_OK);

	say("queue size not a power of two, queue select out of range");
	start_over();
	queue(0, 3, gpa[0], gpa[1], gpa[2]);
	queue(1000, 16, gpa[0], gpa[1], gpa[2]);
	w(R_QUEUE_NOTIFY, 1000);

	say("rings outside RAM, wrapping, misaligned");
	start_over();
	queue(0, 16, 0xfffffffffffff000ULL, gpa[1], gpa[2]);
	start_over();
	queue(0, 16, 0xfffffff0000ULL, gpa[1], gpa[2]);
	start_over();
	queue(0, 16, gpa[0] + 1, gpa[1] + 1, gpa[2] + 2);
	start_over();
	queue(0, 32768, gpa[0], gpa[1], gpa[2]);

	say("queue registers after DRIVER_OK");
	kick_chain((struct desc[]){{gpa[3], 64, 0, 0}}, 1, 0);
	queue(1, 4096, 0, 0, 0);
	w(R_QUEUE_NOTIFY, 1);

	say("descriptor loop");
	kick_chain((struct desc[]){{gpa[3], 16, 1, 1}, {gpa[3], 16, 1, 0}}, 2, 1);

	say("descriptor next out of range");
	kick_chain((struct desc[]){{gpa[3], 16, 1, 200}}, 1, 1);

	say("descriptor outside RAM with a huge length");
	kick_chain((struct desc[]){{0xfffffffffffff000ULL, 0xffffffff, 0, 0}}, 1, 1);

	say("zero-length descriptor");
	kick_chain((struct desc[]){{gpa[3], 0, 0, 0}}, 1, 1);

	say("avail index running ahead");
	kick_chain((struct desc[]){{gpa[3], 64, 0, 0}}, 1, 1000);

	say("vsock header with a huge length, a bad type and op");
	struct {
		uint64_t src_cid, dst_cid;
		uint32_t src_port, dst_port, len;
		uint16_t type, op;
		uint32_t flags, buf_alloc, fwd_cnt;
	} __attribute__((packed)) hdr = {3, 2, 1234, 5678, 0xffffffff, 7, 99, 0, 0, 0};
	memcpy(mem + 3 * 4096, &hdr, sizeof(hdr));
	kick_chain((struct desc[]){{gpa[3], sizeof(hdr), 0, 0}}, 1, 1);
	hdr.len = 0, hdr.type = 1, hdr.op = 1; /* REQUEST to a port nobody listens on */
	memcpy(mem + 3 * 4096, &hdr, sizeof(hdr));
	kick_chain((struct desc[]){{gpa[3], sizeof(hdr), 0, 0}}, 1, 1);

	say("done");
	if (argc > 1 && !strcmp(argv[1], "--no-reset"))
		return 0;
	sync();
	reboot(RB_AUTOBOOT);
	return 1;
}
