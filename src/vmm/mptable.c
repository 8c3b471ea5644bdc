#include "mptable.h"
#include "boot.h"

#include <errno.h>
#include <string.h>

#define MP_PROCESSOR 0
#define MP_BUS       1
#define MP_IOAPIC    2
#define MP_INTSRC    3
#define MP_LINTSRC   4
#define MP_INT       0
#define MP_NMI       1
#define MP_EXTINT    3
#define APIC_VERSION 0x14

/* Appends @n bytes at *off in @buf of @cap bytes. */
static void put(uint8_t *buf, size_t cap, size_t *off, const void *p, size_t n)
{
	if (*off + n <= cap)
		memcpy(buf + *off, p, n);
	*off += n;
}

static uint8_t checksum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return (uint8_t)(0 - s);
}

int mptable_write(struct gm *gm, int ncpus)
{
	if (ncpus < 1 || ncpus > MPTABLE_MAX_CPUS)
		return -EINVAL;
	const size_t cap = BOOT_HIGH_MEM - BOOT_EBDA_GPA;
	uint8_t *base = gm_ptr(gm, BOOT_EBDA_GPA, cap);
	if (!base)
		return -EINVAL;
	memset(base, 0, cap);
	const uint32_t table_gpa = (uint32_t)BOOT_EBDA_GPA + 16;
	uint8_t *t = base + 16;
	size_t tcap = cap - 16, off = 44; /* entries follow the header */

	for (int i = 0; i < ncpus; i++) {
		uint8_t e[20] = {MP_PROCESSOR, (uint8_t)i, APIC_VERSION,
		                 (uint8_t)(1 | (i == 0 ? 2 : 0))}; /* enabled, BSP */
		uint32_t sig = 0x600, feat = 0x201;                /* family 6; FPU, APIC */
		memcpy(e + 4, &sig, 4);
		memcpy(e + 8, &feat, 4);
		put(t, tcap, &off, e, sizeof(e));
	}
	uint8_t bus[8] = {MP_BUS, 0, 'I', 'S', 'A', ' ', ' ', ' '};
	put(t, tcap, &off, bus, sizeof(bus));
	const uint8_t ioapic_id = (uint8_t)ncpus;
	uint8_t io[8] = {MP_IOAPIC, ioapic_id, 0x11, 1};
	uint32_t io_addr = MPTABLE_IOAPIC_GPA;
	memcpy(io + 4, &io_addr, 4);
	put(t, tcap, &off, io, sizeof(io));
	for (int irq = 0; irq < MPTABLE_IRQS; irq++) {
		uint8_t e[8] = {MP_INTSRC, MP_INT, 0, 0, 0, (uint8_t)irq, ioapic_id, (uint8_t)irq};
		put(t, tcap, &off, e, sizeof(e));
	}
	/* LINT0 is the PIC's ExtINT, LINT1 the NMI, on every CPU (0xff). */
	uint8_t l0[8] = {MP_LINTSRC, MP_EXTINT, 0, 0, 0, 0, 0xff, 0};
	uint8_t l1[8] = {MP_LINTSRC, MP_NMI, 0, 0, 0, 0, 0xff, 1};
	put(t, tcap, &off, l0, sizeof(l0));
	put(t, tcap, &off, l1, sizeof(l1));
	if (off > tcap)
		return -EINVAL;

	uint16_t len = (uint16_t)off, count = (uint16_t)(ncpus + 1 + 1 + MPTABLE_IRQS + 2);
	uint32_t lapic = MPTABLE_LAPIC_GPA;
	memcpy(t, "PCMP", 4);
	memcpy(t + 4, &len, 2);
	t[6] = 4; /* spec 1.4 */
	memcpy(t + 8, "MSB     ", 8);
	memcpy(t + 16, "MSB-VMM     ", 12);
	memcpy(t + 34, &count, 2);
	memcpy(t + 36, &lapic, 4);
	t[7] = checksum(t, off);

	uint8_t *fp = base;
	memcpy(fp, "_MP_", 4);
	memcpy(fp + 4, &table_gpa, 4);
	fp[8] = 1; /* length in 16-byte units */
	fp[9] = 4;
	fp[10] = checksum(fp, 16);
	return 0;
}
