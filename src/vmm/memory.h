/*
 * Guest memory: RAM regions mapped into the VMM, and the only way to reach
 * guest memory from the VMM: gm_ptr(), which checks the whole range.
 */
#ifndef MSB_VMM_MEMORY_H
#define MSB_VMM_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#define GM_MAX_REGIONS 2
/* The 32-bit hole below 4 GiB: MMIO devices and the LAPIC/IOAPIC live here. */
#define GM_HOLE_START 0xc0000000ULL
#define GM_HOLE_END   0x100000000ULL

struct gm_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
};

struct gm {
	struct gm_region r[GM_MAX_REGIONS];
	int n;
	uint64_t ram_size; /* total bytes of RAM */
};

/*
 * Maps @ram_size bytes of anonymous MAP_NORESERVE memory (untouched pages
 * cost nothing) as guest RAM: [0, min(size, hole)) and the rest from 4 GiB.
 * Returns 0 or a negative errno (-EINVAL for a size below 16 MiB or not a
 * multiple of 2 MiB, or above 64 GiB).
 */
int gm_init(struct gm *gm, uint64_t ram_size);
/* The same layout with RAM mapped MAP_PRIVATE from @fd at @off (page
 * aligned; RAM in guest-physical order), for a restore. */
int gm_init_file(struct gm *gm, uint64_t ram_size, int fd, uint64_t off);

void gm_destroy(struct gm *gm);

/*
 * Host pointer to guest range [gpa, gpa + len), or NULL unless len > 0, the
 * range does not wrap and lies wholly in one RAM region. The only way guest
 * addresses become host pointers.
 */
void *gm_ptr(const struct gm *gm, uint64_t gpa, size_t len);

/* Highest RAM address below the 32-bit hole, plus one. */
uint64_t gm_low_end(const struct gm *gm);

#endif
