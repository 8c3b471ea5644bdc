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
	/* With a disk (qemu_compare_exec_run()), medians from the VMM's
	 * fork/exec: MOUNT_ROOT's DONE, and the EXIT of `true` run in the root
	 * (with its p90); exec_ratio is QEMU / msb. Zero without a disk. */
	double msb_mount_ms, qemu_mount_ms;
	double msb_exec_ms, msb_exec_p90_ms, qemu_exec_ms, qemu_exec_p90_ms, exec_ratio;
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

/* QEMU's extra options with a disk, for the report. */
#define QEMU_COMPARE_DISK                                                                          \
	"-drive if=none,id=d0,file=IMAGE.erofs,format=raw,readonly=on "                            \
	"-device virtio-blk-device,drive=d0,serial=disk0"

/*
 * As qemu_compare_run(), and each VMM also gets @disk (an image's erofs) as a
 * read-only virtio-blk disk 0; after the HELLO the helper mounts it as the
 * root (MOUNT_ROOT) and runs `true` in it (EXEC), as libmsb does for `msb
 * exe IMAGE -- true`, and measures up to the EXIT. Fills the exec fields of
 * @out too.
 */
int qemu_compare_exec_run(enum msb_host_mode mode, int runs, const char *kernel, const char *initrd,
                          const char *disk, struct qemu_compare *out, struct msb_err *err);

#endif
