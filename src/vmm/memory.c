#include "memory.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#define MIN_RAM (16ULL << 20)
#define MAX_RAM (64ULL << 30)

int gm_init(struct gm *gm, uint64_t ram_size)
{
	return gm_init_file(gm, ram_size, -1, 0);
}

int gm_init_file(struct gm *gm, uint64_t ram_size, int fd, uint64_t off)
{
	memset(gm, 0, sizeof(*gm));
	if (ram_size < MIN_RAM || ram_size > MAX_RAM || ram_size % (2ULL << 20))
		return -EINVAL;
	uint64_t low = ram_size < GM_HOLE_START ? ram_size : GM_HOLE_START;
	uint64_t sizes[2] = {low, ram_size - low};
	uint64_t gpas[2] = {0, GM_HOLE_END};
	for (int i = 0; i < 2 && sizes[i]; i++) {
		/* from a snapshot: private, so pages stay shared with every other
		 * sandbox of it until this guest writes them */
		void *p = fd < 0 ? mmap(NULL, sizes[i], PROT_READ | PROT_WRITE,
		                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
		                 : mmap(NULL, sizes[i], PROT_READ | PROT_WRITE,
		                        MAP_PRIVATE | MAP_NORESERVE, fd,
		                        (off_t)(off + (i ? sizes[0] : 0)));
		if (p == MAP_FAILED) {
			int e = -errno;
			gm_destroy(gm);
			return e;
		}
		/* the guest's pages are no business of a core dump or a fork */
		madvise(p, sizes[i], MADV_DONTDUMP);
		madvise(p, sizes[i], MADV_DONTFORK);
		gm->r[gm->n].gpa = gpas[i];
		gm->r[gm->n].size = sizes[i];
		gm->r[gm->n].host = p;
		gm->n++;
	}
	gm->ram_size = ram_size;
	return 0;
}

void gm_destroy(struct gm *gm)
{
	for (int i = 0; i < gm->n; i++)
		munmap(gm->r[i].host, gm->r[i].size);
	gm->n = 0;
}

void *gm_ptr(const struct gm *gm, uint64_t gpa, size_t len)
{
	if (len == 0 || gpa + len < gpa)
		return NULL;
	for (int i = 0; i < gm->n; i++) {
		const struct gm_region *r = &gm->r[i];
		if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
			return r->host + (gpa - r->gpa);
	}
	return NULL;
}

uint64_t gm_low_end(const struct gm *gm)
{
	return gm->n ? gm->r[0].size : 0;
}
