/*
 * bench/warm_start: cold boot against restore from a snapshot, side by side
 * in one run, through libmsb as msb starts sandboxes.
 *
 * Shape: 1 GiB, 1 vCPU, msb's kernel and the test guest (agent + busybox).
 * The snapshot is made first (timed apart: first run only); then RUNS
 * pairs alternate a cold boot and a restore. msb-vmm runs with --timing, so
 * its log gives, from its main():
 *   cold:    boot to agent ready (the agent accepting the host)
 *   restore: VMM set-up + state load ("state restored"), then agent ready
 * and here: msb_vm_start() in all, the first exec round trip after it (the
 * first guest response), and the private RSS of msb-vmm per idle VM (for a
 * restore, the snapshot's pages it has not written stay shared and are not
 * counted). In the portable host a restore restores that host too (from
 * its own snapshot); a third column restores the VM in a booted host
 * (MSB_PHOST_SNAPSHOTS=0), as before that existed, and "host process
 * private RSS" is QEMU's there (the process msb starts), msb-vmm's natively.
 *
 *   build/bench/warm_start [RUNS]   (default 20)
 *
 * Prints a table and writes bench/results/warm_start-<host mode>-<time>.json.
 */
#include "msb.h"
#include "bench_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS 50

struct sample {
	double start, restored, ready, first_exec;
	long private_kib, host_private_kib;
};

/* The --timing marks of one VM's log. */
static int read_marks(const char *log, struct sample *s)
{
	FILE *f = fopen(log, "r");
	if (!f)
		return -errno;
	char line[512];
	long us, rss, guest, vmm, priv;
	s->restored = s->ready = -1;
	s->private_kib = -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "msb-vmm: timing: state restored at %ld us", &us) == 1)
			s->restored = (double)us / 1e3;
		else if (sscanf(line,
		                "msb-vmm: timing: the guest accepted a host connection at %ld us",
		                &us) == 1 &&
		         s->ready < 0)
			s->ready = (double)us / 1e3;
		else if (sscanf(line,
		                "msb-vmm: timing: memory when the guest accepted: rss_kib=%ld "
		                "guest_kib=%ld vmm_kib=%ld private_kib=%ld",
		                &rss, &guest, &vmm, &priv) == 4)
			s->private_kib = priv;
	}
	fclose(f);
	return s->ready >= 0 ? 0 : -ENODATA;
}

static int one(const char *initrd, int cold, struct sample *s, struct msb_err *err)
{
	static const char *const vmm_args[] = {"--timing", NULL};
	static const char *const argv[] = {"true", NULL};
	struct msb_vm_opts o = {.size = sizeof(o),
	                        .initrd = initrd,
	                        .mem_mib = 1024,
	                        .cpus = 1,
	                        .name = "bench",
	                        .vmm_args = vmm_args,
	                        .cold = cold};
	struct msb_vm *vm;
	double t0 = now_ms();
	int e = msb_vm_start(&o, &vm, err);
	if (e)
		return e;
	s->start = now_ms() - t0;
	/* idle, before the exec: what the process msb started keeps for
	 * itself (Private_Clean + Private_Dirty) */
	pid_t pid = msb_vm_pid(vm);
	s->host_private_kib = proc_kib(pid, "smaps_rollup", "Private_Clean") +
	                      proc_kib(pid, "smaps_rollup", "Private_Dirty");
	struct msb_exec_opts xo = {.size = sizeof(xo), .argv = argv};
	struct msb_exec *x;
	struct msb_exit st;
	t0 = now_ms();
	if ((e = msb_exec_start(vm, &xo, &x, err)) == 0) {
		e = msb_exec_wait(x, 60000, &st, err);
		msb_exec_free(x);
	}
	s->first_exec = now_ms() - t0;
	if (!e && read_marks(msb_vm_log(vm), s) < 0)
		e = -ENODATA;
	msb_vm_stop(vm, 60000, err);
	msb_vm_destroy(vm);
	return e;
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 20;
	if (runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "usage: warm_start [RUNS]   (1..%d)\n", MAX_RUNS);
		return 2;
	}
	const char *initrd = getenv("MSB_BENCH_INITRD");
	if (!initrd)
		initrd = "build/tests/guest/agent-test.cpio";
	struct msb_host_choice hc;
	struct msb_err err = {0};
	if (msb_host_select(&hc, &err) < 0) {
		fprintf(stderr, "warm_start: %s\n", err.msg);
		return 1;
	}
	const char *mode = hc.mode == MSB_HOST_PORTABLE ? "portable" : "native";
	printf("host mode: %s (%s)\n", mode, hc.why);
	struct sample first;
	double t0 = now_ms();
	if (one(initrd, 0, &first, &err)) { /* makes the snapshot unless cached */
		fprintf(stderr, "warm_start: %s\n", err.msg);
		return 1;
	}
	double prepare = now_ms() - t0;
	double c_start[MAX_RUNS], c_ready[MAX_RUNS], c_first[MAX_RUNS], c_priv[MAX_RUNS];
	double w_start[MAX_RUNS], w_restored[MAX_RUNS], w_ready[MAX_RUNS], w_first[MAX_RUNS],
	    w_priv[MAX_RUNS];
	double c_host[MAX_RUNS], w_host[MAX_RUNS], b_start[MAX_RUNS], b_host[MAX_RUNS];
	int portable = hc.mode == MSB_HOST_PORTABLE;
	for (int r = 0; r < runs; r++) {
		struct sample c, w, b = {0};
		if (one(initrd, 1, &c, &err) || one(initrd, 0, &w, &err)) {
			fprintf(stderr, "warm_start: %s\n", err.msg);
			return 1;
		}
		if (portable) {
			setenv("MSB_PHOST_SNAPSHOTS", "0", 1);
			int e = one(initrd, 0, &b, &err);
			unsetenv("MSB_PHOST_SNAPSHOTS");
			if (e) {
				fprintf(stderr, "warm_start: %s\n", err.msg);
				return 1;
			}
		}
		c_start[r] = c.start, c_ready[r] = c.ready, c_first[r] = c.first_exec;
		c_priv[r] = (double)c.private_kib, c_host[r] = (double)c.host_private_kib;
		w_start[r] = w.start, w_restored[r] = w.restored, w_ready[r] = w.ready;
		w_first[r] = w.first_exec, w_priv[r] = (double)w.private_kib;
		w_host[r] = (double)w.host_private_kib;
		b_start[r] = b.start, b_host[r] = (double)b.host_private_kib;
		printf("run %d: cold %.0f ms (ready %.0f), restore %.0f ms (ready %.1f)", r + 1,
		       c.start, c.ready, w.start, w.ready);
		if (portable)
			printf(", restore in a booted host %.0f ms", b.start);
		printf("\n");
	}
	printf("\n1 GiB / 1 vCPU, %d runs each, host mode %s (median / p90)\n", runs, mode);
	printf("  %-46s %9s %9s\n", "", "cold", "restore");
	printf("  %-46s %9.1f %9.1f\n", "msb_vm_start() in all, median", pctl(c_start, runs, 50),
	       pctl(w_start, runs, 50));
	printf("  %-46s %9.1f %9.1f\n", "VMM main to agent ready, median", pctl(c_ready, runs, 50),
	       pctl(w_ready, runs, 50));
	printf("  %-46s %9.1f %9.1f\n", "VMM main to agent ready, p90", pctl(c_ready, runs, 90),
	       pctl(w_ready, runs, 90));
	printf("  %-46s %9s %9.1f\n", "  VMM set-up + state load (restore)", "-",
	       pctl(w_restored, runs, 50));
	printf("  %-46s %9.2f %9.2f\n", "first exec round trip (ms)", pctl(c_first, runs, 50),
	       pctl(w_first, runs, 50));
	printf("  %-46s %9.0f %9.0f\n", "msb-vmm private RSS per idle VM (KiB)",
	       pctl(c_priv, runs, 50), pctl(w_priv, runs, 50));
	printf("  %-46s %9.0f %9.0f\n", "host process private RSS, idle VM (KiB)",
	       pctl(c_host, runs, 50), pctl(w_host, runs, 50));
	if (portable) {
		printf("  restore in a booted portable host (MSB_PHOST_SNAPSHOTS=0):\n");
		printf("  %-46s %9s %9.1f\n", "msb_vm_start() in all, median", "",
		       pctl(b_start, runs, 50));
		printf("  %-46s %9s %9.0f\n", "host process private RSS, idle VM (KiB)", "",
		       pctl(b_host, runs, 50));
	}
	printf("  snapshots made on first use in %.0f ms (once per shape)\n", prepare);

	char booted[128] = "null";
	if (portable)
		snprintf(booted, sizeof(booted), "{\"start_ms\": %.1f, \"host_private_kib\": %.0f}",
		         pctl(b_start, runs, 50), pctl(b_host, runs, 50));
	mkdir("bench/results", 0755);
	char path[256], stamp[32];
	time_t t = time(NULL);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", gmtime(&t));
	snprintf(path, sizeof(path), "bench/results/warm_start-%s-%s.json", mode, stamp);
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "warm_start: cannot write %s: %s\n", path, strerror(errno));
		return 1;
	}
	fprintf(
	    f,
	    "{\n  \"bench\": \"warm_start\",\n  \"host_mode\": \"%s\",\n  \"time\": \"%s\",\n"
	    "  \"runs\": %d,\n  \"guest\": {\"mem_mib\": 1024, \"cpus\": 1},\n"
	    "  \"first_use_ms\": %.0f,\n"
	    "  \"cold\": {\"start_ms\": %.1f, \"ready_ms\": {\"median\": %.1f, \"p90\": %.1f}, "
	    "\"first_exec_ms\": %.2f, \"private_kib\": %.0f, \"host_private_kib\": %.0f},\n"
	    "  \"restore\": {\"start_ms\": %.1f, \"ready_ms\": {\"median\": %.1f, \"p90\": %.1f}, "
	    "\"setup_and_load_ms\": %.1f, \"first_exec_ms\": %.2f, \"private_kib\": %.0f, "
	    "\"host_private_kib\": %.0f},\n"
	    "  \"restore_in_booted_host\": %s\n}\n",
	    mode, stamp, runs, prepare, pctl(c_start, runs, 50), pctl(c_ready, runs, 50),
	    pctl(c_ready, runs, 90), pctl(c_first, runs, 50), pctl(c_priv, runs, 50),
	    pctl(c_host, runs, 50), pctl(w_start, runs, 50), pctl(w_ready, runs, 50),
	    pctl(w_ready, runs, 90), pctl(w_restored, runs, 50), pctl(w_first, runs, 50),
	    pctl(w_priv, runs, 50), pctl(w_host, runs, 50), booted);
	fclose(f);
	printf("wrote %s\n", path);
	return 0;
}
