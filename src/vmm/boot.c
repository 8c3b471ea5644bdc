#include "boot.h"

#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC          0x336ec578
#define E820_RAM                 1
#define E820_RESERVED            2
#define PAGE                     4096ULL

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

static int fail(char *why, size_t len, int code, const char *fmt, ...)
{
	if (why && len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* [off, off + len) lies in a file of @size bytes. */
static int in_file(uint64_t off, uint64_t len, size_t size)
{
	return off <= size && len <= size - off;
}

/* Walks one PT_NOTE segment for the PVH entry; 1 when found. */
static int find_pvh_note(const uint8_t *p, uint64_t len, uint32_t *entry)
{
	uint64_t off = 0;
	while (len - off >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr n;
		memcpy(&n, p + off, sizeof(n));
		uint64_t name_off = off + sizeof(n);
		uint64_t name_len = ((uint64_t)n.n_namesz + 3) & ~3ULL;
		uint64_t desc_off = name_off + name_len;
		uint64_t desc_len = ((uint64_t)n.n_descsz + 3) & ~3ULL;
		if (name_len > len - name_off || desc_len > len - desc_off)
			return 0;
		if (n.n_type == XEN_ELFNOTE_PHYS32_ENTRY && n.n_namesz == 4 &&
		    !memcmp(p + name_off, "Xen", 4) && (n.n_descsz == 4 || n.n_descsz == 8)) {
			uint64_t v = 0;
			memcpy(&v, p + desc_off, n.n_descsz);
			if (v >= (1ULL << 32))
				return 0;
			*entry = (uint32_t)v;
			return 1;
		}
		off = desc_off + desc_len;
	}
	return 0;
}

static int load_elf(struct gm *gm, const uint8_t *f, size_t size, struct boot_entry *out, char *why,
                    size_t wl)
{
	Elf64_Ehdr eh;
	if (size < sizeof(eh))
		return fail(why, wl, -ENOEXEC, "the kernel is not an ELF file (too short)");
	memcpy(&eh, f, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64 || eh.e_type != ET_EXEC)
		return fail(
		    why, wl, -ENOEXEC,
		    "the kernel is not an x86-64 ELF executable (a vmlinux, not a bzImage)");
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 64 ||
	    !in_file(eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr), size))
		return fail(why, wl, -ENOEXEC, "the kernel's program headers are malformed");

	int have_entry = 0;
	uint64_t end = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, f + eh.e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
		if (!in_file(ph.p_offset, ph.p_filesz, size))
			return fail(why, wl, -EINVAL, "kernel segment %u lies outside the file", i);
		if (ph.p_type == PT_NOTE && !have_entry)
			have_entry = find_pvh_note(f + ph.p_offset, ph.p_filesz, &out->entry);
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		if (ph.p_filesz > ph.p_memsz)
			return fail(why, wl, -EINVAL,
			            "kernel segment %u is larger on file than in "
			            "memory",
			            i);
		/* Low memory holds the boot structures. */
		uint8_t *dst =
		    ph.p_paddr >= BOOT_HIGH_MEM ? gm_ptr(gm, ph.p_paddr, ph.p_memsz) : NULL;
		if (!dst)
			return fail(why, wl, -EINVAL,
			            "kernel segment %u [%#llx, +%#llx) is not in guest RAM above "
			            "1 MiB (too little memory?)",
			            i, (unsigned long long)ph.p_paddr,
			            (unsigned long long)ph.p_memsz);
		memcpy(dst, f + ph.p_offset, ph.p_filesz);
		memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
		if (ph.p_paddr + ph.p_memsz > end)
			end = ph.p_paddr + ph.p_memsz;
	}
	if (!have_entry)
		return fail(why, wl, -ENOEXEC,
		            "the kernel has no PVH entry note (build it with CONFIG_PVH=y)");
	out->kernel_end = end;
	return 0;
}

static int add_map(struct hvm_memmap_entry *m, int n, uint64_t addr, uint64_t size, uint32_t type)
{
	m[n].addr = addr;
	m[n].size = size;
	m[n].type = type;
	m[n].reserved = 0;
	return n + 1;
}

int boot_load(struct gm *gm, const struct boot_image *img, struct boot_entry *out, char *why,
              size_t wl)
{
	memset(out, 0, sizeof(*out));
	size_t clen = strlen(img->cmdline);
	if (clen + 1 > BOOT_CMDLINE_MAX)
		return fail(why, wl, -EINVAL, "the kernel command line is longer than %d bytes",
		            BOOT_CMDLINE_MAX - 1);
	int e = load_elf(gm, img->kernel, img->kernel_len, out, why, wl);
	if (e)
		return e;

	uint64_t low_end = gm_low_end(gm);
	if (img->initrd && img->initrd_len) {
		/* at the top of low RAM, page-aligned, clear of the kernel */
		uint64_t len = img->initrd_len;
		if (len > low_end)
			return fail(why, wl, -ENOSPC, "the initramfs is larger than guest RAM");
		uint64_t gpa = (low_end - len) & ~(PAGE - 1);
		uint8_t *dst = gm_ptr(gm, gpa, len);
		if (gpa < out->kernel_end || !dst)
			return fail(
			    why, wl, -ENOSPC,
			    "the initramfs (%llu bytes) does not fit in guest RAM after the "
			    "kernel",
			    (unsigned long long)len);
		memcpy(dst, img->initrd, len);
		out->initrd_gpa = gpa;
	}

	char *cmd = gm_ptr(gm, BOOT_CMDLINE_GPA, clen + 1);
	struct hvm_start_info *si = gm_ptr(gm, BOOT_START_INFO_GPA, sizeof(*si));
	struct hvm_modlist_entry *mod = gm_ptr(gm, BOOT_MODLIST_GPA, sizeof(*mod));
	struct hvm_memmap_entry *map = gm_ptr(gm, BOOT_MEMMAP_GPA, 4 * sizeof(*map));
	if (!cmd || !si || !mod || !map)
		return fail(why, wl, -EINVAL, "guest RAM is too small for the boot structures");
	memcpy(cmd, img->cmdline, clen + 1);

	int n = 0;
	n = add_map(map, n, 0, BOOT_EBDA_GPA, E820_RAM);
	n = add_map(map, n, BOOT_EBDA_GPA, BOOT_HIGH_MEM - BOOT_EBDA_GPA, E820_RESERVED);
	n = add_map(map, n, BOOT_HIGH_MEM, low_end - BOOT_HIGH_MEM, E820_RAM);
	if (gm->n > 1)
		n = add_map(map, n, gm->r[1].gpa, gm->r[1].size, E820_RAM);

	memset(si, 0, sizeof(*si));
	si->magic = HVM_START_MAGIC;
	si->version = 1;
	si->cmdline_paddr = BOOT_CMDLINE_GPA;
	si->memmap_paddr = BOOT_MEMMAP_GPA;
	si->memmap_entries = (uint32_t)n;
	if (out->initrd_gpa) {
		memset(mod, 0, sizeof(*mod));
		mod->paddr = out->initrd_gpa;
		mod->size = img->initrd_len;
		si->nr_modules = 1;
		si->modlist_paddr = BOOT_MODLIST_GPA;
	}
	out->start_info = BOOT_START_INFO_GPA;
	return 0;
}
