/*
 * `msb-vmm --timing`: marks on stderr (the VM's log) for benchmarks, with
 * microseconds since main() began, and what the VMM costs in memory. Off
 * unless asked for: nothing on the hot path when off.
 */
#ifndef MSB_VMM_TIMING_H
#define MSB_VMM_TIMING_H

#include "memory.h"

struct vmm_timing {
	int on;
	long t0_us;
};

/* CLOCK_MONOTONIC in microseconds. */
long timing_now_us(void);

/* "msb-vmm: timing: EVENT at N us". No-op when off or @t is NULL. */
void timing_mark(struct vmm_timing *t, const char *event);

/* "msb-vmm: timing: memory WHEN: rss_kib=R guest_kib=G vmm_kib=R-G
 * private_kib=P": the process's resident memory, the part of it that is
 * guest RAM the guest touched (mincore), the rest (what the VMM itself
 * costs), and what of it is private to this process (not shared with a
 * snapshot's page cache or another VMM). */
void timing_memory(struct vmm_timing *t, const struct gm *gm, const char *when);

#endif
