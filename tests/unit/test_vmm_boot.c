/* Guest memory bounds, the ELF/PVH loader on good and malformed kernels,
 * the MP table, and the UART. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/boot.h"
#include "vmm/memory.h"
#include "vmm/mptable.h"
#include "vmm/serial.h"

#define MIB (1ULL << 20)

static void test_gm_ptr_bounds(void **state)
{
	(void)state;
	struct gm gm;
	assert_int_equal(gm_init(&gm, 64 * MIB), 0);
	assert_non_null(gm_ptr(&gm, 0, 1));
	assert_non_null(gm_ptr(&gm, 64 * MIB - 1, 1));
	assert_non_null(gm_ptr(&gm, 0, 64 * MIB));
	assert_null(gm_ptr(&gm, 64 * MIB - 1, 2)); /* runs past the end */
	assert_null(gm_ptr(&gm, 64 * MIB, 1));
	assert_null(gm_ptr(&gm, 0, 0));          /* empty ranges are refused */
	assert_null(gm_ptr(&gm, UINT64_MAX, 2)); /* wraps */
	assert_null(gm_ptr(&gm, UINT64_MAX - 4096, 8192));
	assert_null(gm_ptr(&gm, GM_HOLE_START, 4));
	gm_destroy(&gm);
	assert_int_equal(gm_init(&gm, 3 * MIB), -EINVAL);
	assert_int_equal(gm_init(&gm, 65 * MIB), -EINVAL);
}

static void test_gm_split_around_hole(void **state)
{
	(void)state;
	struct gm gm;
	assert_int_equal(gm_init(&gm, GM_HOLE_START + 64 * MIB), 0);
	assert_int_equal(gm.n, 2);
	assert_int_equal(gm_low_end(&gm), GM_HOLE_START);
	assert_non_null(gm_ptr(&gm, GM_HOLE_END, 64 * MIB));
	assert_null(gm_ptr(&gm, GM_HOLE_START - 4, 8)); /* across the hole */
	assert_null(gm_ptr(&gm, GM_HOLE_END + 64 * MIB, 1));
	gm_destroy(&gm);
}

/* A minimal vmlinux: one PT_LOAD at 16 MiB and a PT_NOTE with the PVH
 * entry. Offsets are fixed so tests can break one thing at a time. */
struct fake_elf {
	uint8_t b[8192];
	size_t len;
};

#define PH_OFF   64
#define NOTE_OFF 512
#define CODE_OFF 1024

static void make_elf(struct fake_elf *f)
{
	memset(f, 0, sizeof(*f));
	Elf64_Ehdr *eh = (Elf64_Ehdr *)f->b;
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_phoff = PH_OFF;
	eh->e_phentsize = sizeof(Elf64_Phdr);
	eh->e_phnum = 2;
	Elf64_Phdr *ph = (Elf64_Phdr *)(f->b + PH_OFF);
	ph[0].p_type = PT_LOAD;
	ph[0].p_offset = CODE_OFF;
	ph[0].p_paddr = 16 * MIB;
	ph[0].p_filesz = 16;
	ph[0].p_memsz = 4096; /* with bss */
	ph[1].p_type = PT_NOTE;
	ph[1].p_offset = NOTE_OFF;
	ph[1].p_filesz = sizeof(Elf64_Nhdr) + 4 + 8;
	Elf64_Nhdr *n = (Elf64_Nhdr *)(f->b + NOTE_OFF);
	n->n_namesz = 4;
	n->n_descsz = 8;
	n->n_type = 18;
	memcpy(f->b + NOTE_OFF + sizeof(*n), "Xen", 4);
	uint64_t entry = 16 * MIB + 4;
	memcpy(f->b + NOTE_OFF + sizeof(*n) + 4, &entry, 8);
	memcpy(f->b + CODE_OFF, "KERNELCODE......", 16);
	f->len = CODE_OFF + 16;
}

static int load(struct gm *gm, struct fake_elf *f, const char *initrd, struct boot_entry *be)
{
	char why[256];
	struct boot_image img = {.kernel = f->b,
	                         .kernel_len = f->len,
	                         .initrd = (const uint8_t *)initrd,
	                         .initrd_len = initrd ? strlen(initrd) : 0,
	                         .cmdline = "console=ttyS0"};
	return boot_load(gm, &img, be, why, sizeof(why));
}

static void test_boot_loads_pvh_kernel(void **state)
{
	(void)state;
	struct gm gm;
	assert_int_equal(gm_init(&gm, 64 * MIB), 0);
	uint8_t *bss = gm_ptr(&gm, 16 * MIB + 16, 8);
	memset(bss, 0xaa, 8);
	struct fake_elf f;
	make_elf(&f);
	struct boot_entry be;
	assert_int_equal(load(&gm, &f, "INITRD", &be), 0);
	assert_int_equal(be.entry, 16 * MIB + 4);
	assert_memory_equal(gm_ptr(&gm, 16 * MIB, 10), "KERNELCODE", 10);
	assert_int_equal(bss[0], 0); /* bss cleared */
	assert_int_equal(be.start_info, BOOT_START_INFO_GPA);
	uint32_t *si = gm_ptr(&gm, BOOT_START_INFO_GPA, 56);
	assert_int_equal(si[0], 0x336ec578); /* magic */
	assert_int_equal(si[3], 1);          /* one module: the initramfs */
	assert_true(be.initrd_gpa >= be.kernel_end);
	assert_memory_equal(gm_ptr(&gm, be.initrd_gpa, 6), "INITRD", 6);
	assert_string_equal(gm_ptr(&gm, BOOT_CMDLINE_GPA, 14), "console=ttyS0");
	gm_destroy(&gm);
}

static void test_boot_rejects_malformed(void **state)
{
	(void)state;
	struct gm gm;
	assert_int_equal(gm_init(&gm, 64 * MIB), 0);
	struct fake_elf f;
	struct boot_entry be;
	Elf64_Phdr *ph = (Elf64_Phdr *)(f.b + PH_OFF);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)f.b;

	make_elf(&f);
	f.len = 10; /* truncated */
	assert_int_equal(load(&gm, &f, NULL, &be), -ENOEXEC);

	make_elf(&f);
	f.b[0] = 0x1f; /* a bzImage or gzip, not ELF */
	assert_int_equal(load(&gm, &f, NULL, &be), -ENOEXEC);

	make_elf(&f);
	eh->e_phnum = 1000;
	assert_int_equal(load(&gm, &f, NULL, &be), -ENOEXEC);

	make_elf(&f);
	eh->e_phoff = f.len; /* headers past the end */
	assert_int_equal(load(&gm, &f, NULL, &be), -ENOEXEC);

	make_elf(&f);
	ph[0].p_offset = UINT64_MAX - 8; /* offset + size wraps */
	assert_int_equal(load(&gm, &f, NULL, &be), -EINVAL);

	make_elf(&f);
	ph[0].p_filesz = 5000; /* larger than memsz */
	assert_int_equal(load(&gm, &f, NULL, &be), -EINVAL);

	make_elf(&f);
	ph[0].p_paddr = 60 * MIB; /* runs past RAM */
	ph[0].p_memsz = 8 * MIB;
	assert_int_equal(load(&gm, &f, NULL, &be), -EINVAL);

	make_elf(&f);
	ph[0].p_paddr = 0x6000; /* over the boot structures */
	assert_int_equal(load(&gm, &f, NULL, &be), -EINVAL);

	make_elf(&f);
	ph[0].p_paddr = UINT64_MAX - 100; /* wraps */
	assert_int_equal(load(&gm, &f, NULL, &be), -EINVAL);

	make_elf(&f);
	ph[1].p_type = PT_NULL; /* no PVH note */
	assert_int_equal(load(&gm, &f, NULL, &be), -ENOEXEC);

	make_elf(&f);
	((Elf64_Nhdr *)(f.b + NOTE_OFF))->n_descsz = 0xfffffff0; /* note past its segment */
	assert_int_equal(load(&gm, &f, NULL, &be), -ENOEXEC);

	make_elf(&f);
	uint64_t high = 1ULL << 40; /* entry above 4 GiB */
	memcpy(f.b + NOTE_OFF + sizeof(Elf64_Nhdr) + 4, &high, 8);
	assert_int_equal(load(&gm, &f, NULL, &be), -ENOEXEC);

	/* an initramfs that does not fit */
	make_elf(&f);
	static char big[64 * MIB];
	memset(big, 'x', sizeof(big) - 1);
	assert_int_equal(load(&gm, &f, big, &be), -ENOSPC);
	gm_destroy(&gm);
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

static void test_mptable(void **state)
{
	(void)state;
	struct gm gm;
	assert_int_equal(gm_init(&gm, 64 * MIB), 0);
	assert_int_equal(mptable_write(&gm, 2), 0);
	uint8_t *fp = gm_ptr(&gm, BOOT_EBDA_GPA, 16);
	assert_memory_equal(fp, "_MP_", 4);
	assert_int_equal(sum(fp, 16), 0);
	uint32_t tab;
	memcpy(&tab, fp + 4, 4);
	uint8_t *t = gm_ptr(&gm, tab, 44);
	assert_memory_equal(t, "PCMP", 4);
	uint16_t len;
	memcpy(&len, t + 4, 2);
	assert_int_equal(sum(gm_ptr(&gm, tab, len), len), 0);
	/* two processor entries, the first the boot CPU */
	assert_int_equal(t[44], 0);
	assert_int_equal(t[44 + 3], 3);
	assert_int_equal(t[64], 0);
	assert_int_equal(t[64 + 1], 1);
	assert_int_equal(mptable_write(&gm, 0), -EINVAL);
	assert_int_equal(mptable_write(&gm, MPTABLE_MAX_CPUS + 1), -EINVAL);
	gm_destroy(&gm);
}

static void test_serial(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct serial s;
	serial_init(&s, p[1]);
	assert_int_equal(serial_in(&s, 5) & 0x60, 0x60); /* always ready */
	serial_out(&s, 3, 0x80);                         /* DLAB: divisor, not data */
	serial_out(&s, 0, 12);
	serial_out(&s, 3, 0x03);
	for (const char *c = "Kernel panic - x\n"; *c; c++)
		serial_out(&s, 0, (uint8_t)*c);
	char buf[64] = "";
	assert_int_equal(read(p[0], buf, sizeof(buf)), 17);
	assert_memory_equal(buf, "Kernel panic - x\n", 17);
	assert_int_equal(s.saw_panic, 1);
	/* a line longer than the buffer is written in pieces, not dropped */
	for (int i = 0; i < 300; i++)
		serial_out(&s, 0, 'a');
	serial_flush(&s);
	assert_int_equal(read(p[0], buf, sizeof(buf)), 64);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_gm_ptr_bounds),
	    cmocka_unit_test(test_gm_split_around_hole),
	    cmocka_unit_test(test_boot_loads_pvh_kernel),
	    cmocka_unit_test(test_boot_rejects_malformed),
	    cmocka_unit_test(test_mptable),
	    cmocka_unit_test(test_serial),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
