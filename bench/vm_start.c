/*
 * bench/vm_start: what a sandbox VM costs to start and to use, through
 * libmsb exactly as msb starts one (cold boot; warm start comes with
 * snapshots).
 *
 * Each run boots a 1 GiB, 1 vCPU VM with msb's kernel and the test guest
 * (msb-agent + busybox), runs `true` 100 times one after another, idles a
 * second and shuts down. msb-vmm runs with --timing, so its log has the marks
 * read here:
 *   VMM set-up      msb-vmm's main() to vCPU 0's first KVM_RUN
 *   boot to ready   msb-vmm's main() to the guest agent accepting the host's
 *                   connection (kernel boot + agent start)
 *   VMM RSS         msb-vmm's resident memory minus the guest RAM the guest
 *                   touched, with the guest idle after boot
 * and measured here: msb_vm_start() in all, and the exec round trip.
 * In the portable host (where our machines run VMs) the whole start includes
 * the portable host's own boot, reported apart.
 *
 * Then the same kernel and initramfs under QEMU microvm on the same KVM, in
 * one run with msb-vmm again (bench/qemu_compare.c): boot to the agent's
 * HELLO and the VMM's RSS, with the ratios.
 *
 *   build/bench/vm_start [RUNS] [--compare-only]   (default 3 runs)
 *
 * Prints a table and writes bench/results/vm_start-<host mode>-<time>.json
 * (not with --compare-only).
 */
#include "msb.h"
#include "bench_util.h"
#include "qemu_compare.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXECS    100
#define MAX_RUNS 20

struct marks {
	double setup_ms, ready_ms;
	long vmm_kib, guest_kib, rss_kib;
};

/* Reads the --timing marks (and the portable host's start of msb-vmm). */
static int read_marks(const char *log, struct marks *m)
{
	FILE *f = fopen(log, "r");
	if (!f)
		return -errno;
	char line[512];
	long us;
	*m = (struct marks){-1, -1, -1, -1, -1};
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "msb-vmm: timing: first guest instruction at %ld us", &us) == 1)
			m->setup_ms = (double)us / 1e3;
		else if (sscanf(line,
		                "msb-vmm: timing: the guest accepted a host connection at %ld us",
		                &us) == 1 &&
		         m->ready_ms < 0)
			m->ready_ms = (double)us / 1e3;
		else
			sscanf(line,
			       "msb-vmm: timing: memory when the guest accepted: rss_kib=%ld "
			       "guest_kib=%ld vmm_kib=%ld",
			       &m->rss_kib, &m->guest_kib, &m->vmm_kib);
	}
	fclose(f);
	return m->setup_ms >= 0 && m->ready_ms >= 0 ? 0 : -ENODATA;
}

static int exec_true(struct msb_vm *vm, struct msb_err *err)
{
	static const char *const argv[] = {"true", NULL};
	struct msb_exec_opts o = {.size = sizeof(o), .argv = argv};
	struct msb_exec *x;
	struct msb_exit st;
	int e = msb_exec_start(vm, &o, &x, err);
	if (e)
		return e;
	e = msb_exec_wait(x, 60000, &st, err);
	msb_exec_free(x);
	return e ? e : st.code;
}

/* msb-vmm against QEMU microvm; 0 and @c filled, or -1 after saying why. */
static int compare(enum msb_host_mode mode, int runs, const char *initrd, struct qemu_compare *c)
{
	char share[4000], kernel[4096];
	struct msb_err err = {0};
	if (msb_share_dir(share, sizeof(share)) < 0 ||
	    snprintf(kernel, sizeof(kernel), "%s/vmlinux", share) >= (int)sizeof(kernel)) {
		fprintf(stderr, "vm_start: cannot find msb's share directory\n");
		return -1;
	}
	const char *where = mode == MSB_HOST_PORTABLE
	                        ? "on the nested KVM inside the portable host, host mode portable"
	                        : "on this machine's KVM, host mode native";
	printf("\nmsb-vmm vs QEMU microvm, same kernel and initramfs, %s, %d alternating runs:\n",
	       where, runs);
	fflush(stdout); /* before the helper's lines and any error */
	if (qemu_compare_run(mode, runs, kernel, initrd, c, &err) < 0) {
		fprintf(stderr, "vm_start: QEMU microvm comparison: %s\n", err.msg);
		return -1;
	}
	printf("  %-36s %12s %14s %10s\n", "medians", "msb-vmm", "QEMU microvm", "QEMU/msb");
	printf("  %-36s %9.1f ms %11.1f ms %10.2f\n", "VMM start to the agent's HELLO",
	       c->msb_boot_ms, c->qemu_boot_ms, c->boot_ratio);
	printf("  %-36s %8.0f KiB %10.0f KiB %10.2f\n", "VMM RSS, idle guest (incl. its RAM)",
	       c->msb_rss_kib, c->qemu_rss_kib, c->rss_ratio);
	printf("  QEMU: %s\n", QEMU_COMPARE_CMD);
	return 0;
}

int main(int argc, char **argv)
{
	int runs = 3, only_compare = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--compare-only"))
			only_compare = 1;
		else
			runs = atoi(argv[i]);
	}
	if (runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "usage: vm_start [RUNS] [--compare-only]   (1..%d runs)\n",
		        MAX_RUNS);
		return 2;
	}
	const char *initrd = getenv("MSB_BENCH_INITRD");
	if (!initrd)
		initrd = "build/tests/guest/agent-test.cpio";
	struct msb_host_choice hc;
	struct msb_err err = {0};
	if (msb_host_select(&hc, &err) < 0) {
		fprintf(stderr, "vm_start: %s\n", err.msg);
		return 1;
	}
	const char *mode = hc.mode == MSB_HOST_PORTABLE ? "portable" : "native";
	printf("host mode: %s (%s)\n", mode, hc.why);
	struct qemu_compare qc;
	if (only_compare)
		return compare(hc.mode, runs, initrd, &qc) < 0 ? 1 : 0;
	static const char *const vmm_args[] = {"--timing", NULL};
	double start[MAX_RUNS], setup[MAX_RUNS], ready[MAX_RUNS], phost[MAX_RUNS];
	double vmm_kib[MAX_RUNS], guest_kib[MAX_RUNS], host_kib[MAX_RUNS];
	static double rtt[MAX_RUNS * EXECS];
	int nrtt = 0;
	for (int r = 0; r < runs; r++) {
		struct msb_vm_opts o = {.size = sizeof(o),
		                        .cold = 1,
		                        .initrd = initrd,
		                        .mem_mib = 1024,
		                        .cpus = 1,
		                        .name = "bench",
		                        .vmm_args = vmm_args};
		struct msb_vm *vm;
		double t0 = now_ms();
		if (msb_vm_start(&o, &vm, &err) < 0) {
			fprintf(stderr, "vm_start: %s\n", err.msg);
			return 1;
		}
		start[r] = now_ms() - t0;
		for (int i = 0; i < EXECS; i++) {
			double t = now_ms();
			int e = exec_true(vm, &err);
			if (e) {
				fprintf(stderr, "vm_start: exec true: %s\n",
				        e < 0 ? err.msg : "failed");
				return 1;
			}
			rtt[nrtt++] = now_ms() - t;
		}
		sleep(1);
		host_kib[r] = (double)proc_kib(msb_vm_pid(vm), "status", "VmRSS");
		struct marks m;
		int e = read_marks(msb_vm_log(vm), &m);
		if (e < 0) {
			fprintf(stderr, "vm_start: no timing marks in %s\n", msb_vm_log(vm));
			return 1;
		}
		if (msb_vm_stop(vm, 60000, &err) != 0)
			fprintf(stderr, "vm_start: stop: %s\n", err.msg);
		msb_vm_destroy(vm);
		setup[r] = m.setup_ms;
		ready[r] = m.ready_ms;
		/* what msb_vm_start() spent outside msb-vmm's own boot: in the
		 * portable host, mostly that host's boot (the clocks of the two
		 * levels cannot be compared, so this is a difference) */
		phost[r] = start[r] - m.ready_ms;
		vmm_kib[r] = (double)m.vmm_kib;
		guest_kib[r] = (double)m.guest_kib;
		printf("run %d: start %.0f ms, VMM set-up %.1f ms, boot to ready %.0f ms\n", r + 1,
		       start[r], setup[r], ready[r]);
	}
	double med_start = pctl(start, runs, 50), med_setup = pctl(setup, runs, 50);
	double med_ready = pctl(ready, runs, 50), med_vmm = pctl(vmm_kib, runs, 50);
	double med_guest = pctl(guest_kib, runs, 50), med_host = pctl(host_kib, runs, 50);
	double med_phost = pctl(phost, runs, 50);
	double rtt50 = pctl(rtt, nrtt, 50), rtt90 = pctl(rtt, nrtt, 90);

	printf("\nmsb-vmm, 1 GiB / 1 vCPU, cold boot, %d runs (medians), host mode %s\n", runs,
	       mode);
	printf("  %-44s %10.1f ms\n", "msb_vm_start() in all", med_start);
	if (hc.mode == MSB_HOST_PORTABLE)
		printf("  %-44s %10.1f ms\n", "  of which outside msb-vmm (portable host boot)",
		       med_phost);
	printf("  %-44s %10.2f ms\n", "VMM set-up (main to first guest instruction)", med_setup);
	printf("  %-44s %10.1f ms\n", "boot to agent ready (from VMM main)", med_ready);
	printf("  %-44s %10.2f ms / %.2f ms\n", "exec round trip `true` (median / p90)", rtt50,
	       rtt90);
	printf("  %-44s %10.0f KiB\n", "VMM RSS without guest RAM (idle guest)", med_vmm);
	printf("  %-44s %10.0f KiB\n", "guest RAM resident after boot", med_guest);
	printf("  %-44s %10.0f KiB\n",
	       hc.mode == MSB_HOST_PORTABLE ? "host RSS of the portable host (QEMU)"
	                                    : "host RSS of msb-vmm",
	       med_host);
	int qc_ok = compare(hc.mode, runs, initrd, &qc) == 0;
	char qc_json[2048];
	if (!qc_ok ||
	    snprintf(qc_json, sizeof(qc_json),
	             "{\"where\": \"%s\", \"runs\": %d, \"guest\": {\"mem_mib\": 1024, "
	             "\"cpus\": 1},\n    \"measure\": \"VMM fork/exec to the agent's HELLO "
	             "over vsock; VMM VmRSS after 1 s idle\",\n    \"qemu\": \"%s\",\n"
	             "    \"msb_boot_ms\": %.1f, \"qemu_boot_ms\": %.1f, \"boot_ratio\": %.2f,\n"
	             "    \"msb_rss_kib\": %.0f, \"qemu_rss_kib\": %.0f, \"rss_ratio\": %.2f}",
	             hc.mode == MSB_HOST_PORTABLE ? "nested KVM in the portable host"
	                                          : "native KVM",
	             qc.runs, QEMU_COMPARE_CMD, qc.msb_boot_ms, qc.qemu_boot_ms, qc.boot_ratio,
	             qc.msb_rss_kib, qc.qemu_rss_kib, qc.rss_ratio) >= (int)sizeof(qc_json))
		snprintf(qc_json, sizeof(qc_json), "null");

	mkdir("bench/results", 0755);
	char path[256], stamp[32];
	time_t t = time(NULL);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", gmtime(&t));
	snprintf(path, sizeof(path), "bench/results/vm_start-%s-%s.json", mode, stamp);
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "vm_start: cannot write %s: %s\n", path, strerror(errno));
		return 1;
	}
	fprintf(
	    f,
	    "{\n  \"bench\": \"vm_start\",\n  \"host_mode\": \"%s\",\n  \"time\": \"%s\",\n"
	    "  \"runs\": %d,\n  \"guest\": {\"mem_mib\": 1024, \"cpus\": 1, \"boot\": \"cold\"},\n"
	    "  \"start_ms\": %.1f,\n  \"outside_vmm_ms\": %.1f,\n  \"vmm_setup_ms\": %.2f,\n"
	    "  \"boot_to_ready_ms\": %.1f,\n  \"exec_rtt_ms\": {\"median\": %.2f, \"p90\": %.2f, "
	    "\"n\": %d},\n  \"vmm_rss_kib\": %.0f,\n  \"guest_resident_kib\": %.0f,\n"
	    "  \"host_rss_kib\": %.0f,\n  \"qemu_microvm\": %s\n}\n",
	    mode, stamp, runs, med_start, med_phost, med_setup, med_ready, rtt50, rtt90, nrtt,
	    med_vmm, med_guest, med_host, qc_json);
	fclose(f);
	printf("wrote %s\n", path);
	return qc_ok ? 0 : 1;
}
