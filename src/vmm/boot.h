/*
 * PVH boot: load an uncompressed ELF vmlinux into guest memory, find its
 * PVH entry (the Xen PHYS32_ENTRY ELF note), and lay out hvm_start_info,
 * the memory map, the command line and the initramfs for it.
 * Everything read from the kernel and initramfs files is checked: they are
 * inputs, not trusted code, until the guest runs them.
 */
#ifndef MSB_VMM_BOOT_H
#define MSB_VMM_BOOT_H

#include "memory.h"

#include <stddef.h>
#include <stdint.h>

/* Fixed guest-physical layout of the boot structures, all below 1 MiB. */
#define BOOT_GDT_GPA        0x500ULL
#define BOOT_START_INFO_GPA 0x6000ULL
#define BOOT_MODLIST_GPA    0x6040ULL
#define BOOT_MEMMAP_GPA     0x7000ULL
#define BOOT_CMDLINE_GPA    0x20000ULL
#define BOOT_EBDA_GPA       0x9fc00ULL /* mptable lives here, reserved in the map */
#define BOOT_HIGH_MEM       0x100000ULL
#define BOOT_CMDLINE_MAX    2048 /* x86 COMMAND_LINE_SIZE, with its NUL */

struct boot_image {
	const uint8_t *kernel; /* the vmlinux ELF file */
	size_t kernel_len;
	const uint8_t *initrd; /* may be NULL */
	size_t initrd_len;
	const char *cmdline;
};

struct boot_entry {
	uint32_t entry;      /* 32-bit PVH entry point */
	uint64_t start_info; /* guest address of hvm_start_info, for EBX */
	uint64_t kernel_end; /* end of the highest loaded segment */
	uint64_t initrd_gpa; /* 0 without an initramfs */
};

/*
 * Loads @img into @gm. Returns 0, or -ENOEXEC (not a loadable x86-64 ELF,
 * or no PVH note), -EINVAL (a segment or note outside the file or outside
 * RAM, a command line too long), -ENOSPC (the initramfs does not fit below
 * the 32-bit hole after the kernel); @why (may be NULL) gets a sentence.
 */
int boot_load(struct gm *gm, const struct boot_image *img, struct boot_entry *out, char *why,
              size_t why_len);

#endif
