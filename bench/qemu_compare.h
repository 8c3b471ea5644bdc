/*
 * msb-vmm against QEMU microvm: the same kernel, initramfs and KVM, in one
 * run. Starts msb-bench-compare (bench/phost_compare.c) where msb-vmm runs:
 * inside the benchmark portable host (share/phost-bench, through libmsb with
 * MSB_PHOST_DIR), or natively with the system's QEMU.
 */
#ifndef MSB_BENCH_QEMU_COMPARE_H
#define MSB_BENCH_QEMU_COMPARE_H

#include "msb.h"

struct qemu_compare {
	int runs;
	double msb_boot_ms, qemu_boot_ms; /* medians: VMM fork/exec to the agent's HELLO */
	double msb_rss_kib, qemu_rss_kib; /* medians: the VMM's VmRSS, guest idle */
	double boot_ratio, rss_ratio;     /* QEMU / msb */
};

/* The QEMU command line's shape, for the report; bench/phost_compare.c
 * builds the real one. acpi=off: our kernel has no ACPI, and only without it
 * does microvm put its virtio_mmio.device= on the command line. */
#define QEMU_COMPARE_CMD                                                                           \
	"qemu-system-x86_64 -M microvm,acpi=off -accel kvm -cpu host -m 1024 -smp 1 "              \
	"-nodefaults -no-user-config -nographic -serial file:LOG -kernel K -initrd I "             \
	"-append 'console=ttyS0 reboot=k panic=-1 quiet' -device "                                 \
	"vhost-vsock-device,guest-cid=N"

/*
 * Runs @runs alternating pairs of boots (1 GiB, 1 vCPU) of @kernel and
 * @initrd in host mode @mode, printing each run's line as it arrives.
 * Returns 0 and fills @out, or a negative errno with @err set.
 */
int qemu_compare_run(enum msb_host_mode mode, int runs, const char *kernel, const char *initrd,
                     struct qemu_compare *out, struct msb_err *err);

#endif
