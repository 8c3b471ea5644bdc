/* Benchmark marks: see timing.h. */
#include "timing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

long timing_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

void timing_mark(struct vmm_timing *t, const char *event)
{
	if (t && t->on)
		fprintf(stderr, "msb-vmm: timing: %s at %ld us\n", event,
		        timing_now_us() - t->t0_us);
}

/* A "Key:   N kB" line of smaps_rollup, which walks the page tables: VmRSS
 * in status lags by up to 64 pages per thread (split RSS counters), more
 * than the VMM's own size we want to see. */
static long rollup_kib(const char *key)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	size_t klen = strlen(key);
	long v = -1;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			v = strtol(line + klen + 1, NULL, 10);
			break;
		}
	if (f)
		fclose(f);
	return v;
}

/* Resident pages of guest RAM, counted a chunk at a time. */
static long guest_resident_kib(const struct gm *gm)
{
	static unsigned char vec[4096];
	long pages = 0, psz = sysconf(_SC_PAGESIZE);
	for (int i = 0; i < gm->n; i++)
		for (uint64_t off = 0; off < gm->r[i].size; off += sizeof(vec) * (uint64_t)psz) {
			uint64_t len = gm->r[i].size - off;
			if (len > sizeof(vec) * (uint64_t)psz)
				len = sizeof(vec) * (uint64_t)psz;
			if (mincore(gm->r[i].host + off, len, vec) < 0)
				return -1;
			for (uint64_t p = 0; p < (len + (uint64_t)psz - 1) / (uint64_t)psz; p++)
				pages += vec[p] & 1;
		}
	return pages * (psz / 1024);
}

void timing_memory(struct vmm_timing *t, const struct gm *gm, const char *when)
{
	if (!t || !t->on)
		return;
	long rss = rollup_kib("Rss"), guest = guest_resident_kib(gm);
	/* private: what this process alone holds; for a restored VM, the
	 * snapshot's pages it has not written stay shared and are not in it */
	long priv = rollup_kib("Private_Clean") + rollup_kib("Private_Dirty");
	fprintf(stderr,
	        "msb-vmm: timing: memory %s: rss_kib=%ld guest_kib=%ld vmm_kib=%ld "
	        "private_kib=%ld\n",
	        when, rss, guest, rss - guest, priv);
}
