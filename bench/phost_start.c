/*
 * bench/phost_start: how long the portable host takes to give a usable
 * /dev/kvm, and what it costs in host memory.
 *
 * Each run starts a portable host through libmsb (exactly as msb does) with
 * msb-kvm-smoke inside and measures the time until the smoke guest's
 * greeting arrives through the byte stream: by then the host's kernel has
 * booted, kvm_amd is loaded, /dev/kvm opened and a KVM guest has run, so this
 * is "time to a usable /dev/kvm" plus one tiny guest. At that moment it
 * reads QEMU's RSS and PSS. Later start-up figures can subtract these.
 *
 *   build/bench/phost_start [RUNS]   (default 5)
 *
 * The figures are for the portable host mode (software emulation), always.
 */
#include "msb.h"
#include "bench_util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int wait_line(int fd, double deadline)
{
	char c;
	while (now_s() < deadline) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 200) <= 0)
			continue;
		ssize_t n = read(fd, &c, 1);
		if (n <= 0)
			return -EPIPE;
		if (c == '\n')
			return 0;
	}
	return -ETIMEDOUT;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 5;
	if (runs < 1 || runs > 100) {
		fprintf(stderr, "usage: phost_start [RUNS (1..100)]\n");
		return 2;
	}
	char share[4096], guest[4200];
	if (msb_share_dir(share, sizeof(share)))
		return 1;
	snprintf(guest, sizeof(guest), "%s/kvm-smoke-guest.bin", share);
	const struct msb_vm_file files[] = {{.name = "guest", .path = guest}};
	const char *vm_argv[] = {"/bin/msb-kvm-smoke", "--guest", "/files/guest", NULL};

	double *t = calloc((size_t)runs, sizeof(*t));
	long *rss = calloc((size_t)runs, sizeof(*rss)), *pss = calloc((size_t)runs, sizeof(*pss));
	if (!t || !rss || !pss)
		return 1;
	printf("portable host start (host mode: portable, QEMU TCG + emulated SVM), %d runs\n",
	       runs);
	for (int i = 0; i < runs; i++) {
		struct msb_vmproc_opts o = {
		    .size = sizeof(o),
		    .mode = MSB_HOST_PORTABLE,
		    .name = "bench",
		    .argv = vm_argv,
		    .files = files,
		    .nfiles = 1,
		};
		struct msb_vmproc *vm;
		struct msb_err err = {0};
		double t0 = now_s();
		if (msb_vmproc_start(&o, &vm, &err) < 0) {
			fprintf(stderr, "phost_start: %s\n", err.msg);
			return 1;
		}
		int e = wait_line(msb_vmproc_stream(vm), t0 + 300);
		t[i] = now_s() - t0;
		/* The guest now waits for its input line: QEMU is idle-ish. */
		rss[i] = proc_kib(msb_vmproc_pid(vm), "status", "VmRSS");
		pss[i] = proc_kib(msb_vmproc_pid(vm), "smaps_rollup", "Pss");
		if (e < 0) {
			fprintf(stderr, "phost_start: no greeting (%s); see %s\n", strerror(-e),
			        msb_vmproc_log(vm));
			msb_vmproc_destroy(vm, 1);
			return 1;
		}
		ssize_t w = write(msb_vmproc_stream(vm), "x\n", 2);
		(void)w;
		int st = msb_vmproc_wait(vm, 60000, &err);
		msb_vmproc_destroy(vm, st != 0);
		if (st != 0) {
			fprintf(stderr, "phost_start: run %d ended badly: %s\n", i,
			        st < 0 ? err.msg : "non-zero status");
			return 1;
		}
		printf("  run %d: usable /dev/kvm + first guest output %.2f s, QEMU RSS %ld MiB, "
		       "PSS %ld MiB\n",
		       i + 1, t[i], rss[i] / 1024, pss[i] / 1024);
		fflush(stdout);
	}
	qsort(t, (size_t)runs, sizeof(*t), cmp_double);
	qsort(rss, (size_t)runs, sizeof(*rss), cmp_long);
	qsort(pss, (size_t)runs, sizeof(*pss), cmp_long);
	printf("median: %.2f s to a usable /dev/kvm (min %.2f, max %.2f); QEMU RSS %ld MiB, "
	       "PSS %ld MiB\n",
	       t[runs / 2], t[0], t[runs - 1], rss[runs / 2] / 1024, pss[runs / 2] / 1024);
	free(t);
	free(rss);
	free(pss);
	return 0;
}
