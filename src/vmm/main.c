/*
 * msb-vmm: one KVM virtual machine per process.
 *
 *   msb-vmm --kernel VMLINUX [--initrd FILE] [--memory MIB] [--cpus N]
 *           [--cmdline ARGS] [--serial-log PATH]
 *
 * Boots the ELF vmlinux at its PVH entry and runs until the guest shuts down
 * (exit 0), crashes (exit 1) or the VMM is told to stop (SIGTERM/SIGINT,
 * exit 0). Usage and set-up errors exit 2. What went wrong is one line on
 * stderr, prefixed "msb-vmm: error:".
 */
#include "boot.h"
#include "timing.h"
#include "snapshot.h"
#include "virtio/blk.h"
#include "virtio/vsock.h"
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define BASE_CMDLINE "console=ttyS0 reboot=k panic=-1 quiet"
#define MAX_KERNEL   (256u << 20)
#define MAX_INITRD   (1024u << 20)
#define MAX_DISKS    8

struct opts {
	const char *kernel, *initrd, *serial_log, *vsock;
	char cmdline[BOOT_CMDLINE_MAX]; /* every --cmdline, joined by spaces */
	unsigned long mem_mib;
	int cpus;
	int timing;
	const char *snapshot_to, *restore;
	int disk_slots;
	struct {
		const char *path; /* NULL: the slot is empty */
		int writable;
	} disks[MAX_DISKS];
};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: msb-vmm --kernel VMLINUX [--initrd FILE] [--memory MIB] [--cpus N]\n"
	        "               [--cmdline ARGS] [--serial-log PATH] [--vsock PATH] [--timing]\n"
	        "               [--snapshot-to PATH | --restore PATH]\n"
	        "               [--disk-slots N] [--disk SLOT=PATH] [--disk-ro SLOT=PATH]\n\n"
	        "Runs one KVM virtual machine: boots VMLINUX (an uncompressed ELF kernel\n"
	        "with a PVH entry) and runs until the guest shuts down (exit 0), crashes\n"
	        "(exit 1) or SIGTERM/SIGINT stops it (exit 0).\n\n"
	        "  --memory MIB       guest RAM (default 256, a multiple of 2)\n"
	        "  --cpus N           vCPUs (default 1, at most %d)\n"
	        "  --cmdline ARGS     appended to \"%s\" (may be repeated)\n"
	        "  --serial-log PATH  the guest console, \"-\" for stdout (default: stderr)\n"
	        "  --timing           log start-up marks and memory use (for benchmarks)\n"
	        "  --snapshot-to PATH when the guest asks (port 0x5b0), write a snapshot to\n"
	        "                     PATH (a file or block device large enough) and exit\n"
	        "  --restore PATH     start from the snapshot at PATH instead of booting\n"
	        "  --disk-slots N     N virtio-blk disks (at most %d), empty unless given:\n"
	        "  --disk SLOT=PATH   slot SLOT (0..N-1) is the file or block device PATH;\n"
	        "  --disk-ro SLOT=PATH   read-only. On a restore the guest learns the\n"
	        "                     capacity through a config-change interrupt\n",
	        VM_MAX_CPUS, BASE_CMDLINE, MAX_DISKS);
}

static int parse(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->mem_mib = 256;
	o->cpus = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		}
		if (!strcmp(a, "--timing")) {
			o->timing = 1;
			continue;
		}
		if (i + 1 >= argc)
			return -1;
		const char *v = argv[++i];
		char *end;
		if (!strcmp(a, "--kernel"))
			o->kernel = v;
		else if (!strcmp(a, "--initrd"))
			o->initrd = v;
		else if (!strcmp(a, "--cmdline")) {
			size_t used = strlen(o->cmdline);
			if (snprintf(o->cmdline + used, sizeof(o->cmdline) - used, "%s%s",
			             used ? " " : "", v) >= (int)(sizeof(o->cmdline) - used))
				return -1;
		} else if (!strcmp(a, "--serial-log"))
			o->serial_log = v;
		else if (!strcmp(a, "--vsock"))
			o->vsock = v;
		else if (!strcmp(a, "--snapshot-to"))
			o->snapshot_to = v;
		else if (!strcmp(a, "--restore"))
			o->restore = v;
		else if (!strcmp(a, "--disk-slots")) {
			long n = strtol(v, &end, 10);
			if (*end || n < 0 || n > MAX_DISKS)
				return -1;
			o->disk_slots = (int)n;
		} else if (!strcmp(a, "--disk") || !strcmp(a, "--disk-ro")) {
			long n = strtol(v, &end, 10);
			if (end == v || *end != '=' || !end[1] || n < 0 || n >= MAX_DISKS ||
			    o->disks[n].path)
				return -1;
			o->disks[n].path = end + 1;
			o->disks[n].writable = !strcmp(a, "--disk");
		} else if (!strcmp(a, "--memory")) {
			o->mem_mib = strtoul(v, &end, 10);
			if (*end || o->mem_mib == 0)
				return -1;
		} else if (!strcmp(a, "--cpus")) {
			long n = strtol(v, &end, 10);
			if (*end || n < 1 || n > VM_MAX_CPUS)
				return -1;
			o->cpus = (int)n;
		} else
			return -1;
	}
	for (int i = o->disk_slots; i < MAX_DISKS; i++)
		if (o->disks[i].path)
			return -1; /* beyond --disk-slots */
	/* a restore needs no kernel; a snapshot is never of a restored VM */
	return (o->kernel || o->restore) && !(o->restore && o->snapshot_to) ? 0 : -1;
}

/* What a snapshot must match in the VMM that restores it: memory, vCPUs and
 * the device layout (vsock or not, disk slots), and the file format. libmsb
 * keys its cache by the kernel and agent on top of this. */
static void vm_shape(const struct opts *o, uint8_t shape[SNAP_SHAPE_SIZE])
{
	char desc[128];
	int n = snprintf(desc, sizeof(desc),
	                 "msb-vmm snapshot 1; mem %lu MiB; cpus %d; vsock %d; disks %d", o->mem_mib,
	                 o->cpus, o->vsock != NULL, o->disk_slots);
	memset(shape, 0, SNAP_SHAPE_SIZE);
	uint32_t crc = snap_crc32(desc, (size_t)n);
	memcpy(shape, &crc, sizeof(crc));
	memcpy(shape + 4, desc, (size_t)n < SNAP_SHAPE_SIZE - 4 ? (size_t)n : SNAP_SHAPE_SIZE - 4);
}

/* Reads a whole file or block device (the portable host shares files as
 * disks), at most @max bytes. */
static int read_all(const char *path, size_t max, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	off_t end = lseek(fd, 0, SEEK_END);
	if (end < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	if ((uint64_t)end > max) {
		close(fd);
		return -EFBIG;
	}
	uint8_t *buf = malloc(end ? (size_t)end : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	size_t got = 0;
	while (got < (size_t)end) {
		ssize_t n = read(fd, buf + got, (size_t)end - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? -errno : -EIO;
			free(buf);
			close(fd);
			return e;
		}
		got += (size_t)n;
	}
	close(fd);
	*out = buf;
	*len = got;
	return 0;
}

/* Maps a kernel or initramfs read-only instead of reading it: the ELF
 * loader touches only the loadable segments, so the symbol tables (a third
 * of our vmlinux) are never read, and nothing is copied twice. Falls back to
 * reading where the file cannot be mapped. Sets *mapped to say how to free. */
static int load_file(const char *path, size_t max, uint8_t **out, size_t *len, int *mapped)
{
	*mapped = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	off_t end = lseek(fd, 0, SEEK_END);
	if (end > 0 && (uint64_t)end <= max) {
		void *p = mmap(NULL, (size_t)end, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p != MAP_FAILED) {
			close(fd);
			*out = p;
			*len = (size_t)end;
			*mapped = 1;
			return 0;
		}
	}
	close(fd);
	return read_all(path, max, out, len);
}

static void unload_file(uint8_t *p, size_t len, int mapped)
{
	if (mapped)
		munmap(p, len);
	else
		free(p);
}

static int error(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "msb-vmm: error: ");
	fprintf(stderr, fmt, a, b);
	fputc('\n', stderr);
	return 2;
}

/* A cold boot: devices on the command line, the kernel and initramfs in
 * guest memory, vCPU 0 at the PVH entry. */
static int boot(struct vm *vm, const struct opts *o, char *cmdline, size_t cap,
                const uint8_t *kernel, size_t klen, const uint8_t *initrd, size_t ilen, char *why,
                size_t wl)
{
	for (int i = 0; i < vm->ndevs; i++) {
		size_t used = strlen(cmdline);
		if (used + 1 >= cap ||
		    virtio_mmio_cmdline(vm->devs[i], cmdline + used + 1, cap - used - 1)) {
			snprintf(why, wl, "the kernel command line is too long");
			return -E2BIG;
		}
		cmdline[used] = ' ';
	}
	struct boot_image img = {.kernel = kernel,
	                         .kernel_len = klen,
	                         .initrd = initrd,
	                         .initrd_len = ilen,
	                         .cmdline = cmdline};
	struct boot_entry be;
	char what[200];
	if (boot_load(&vm->gm, &img, &be, what, sizeof(what)) < 0) {
		snprintf(why, wl, "loading %s: %s", o->kernel, what);
		return -EINVAL;
	}
	timing_mark(vm->timing, "kernel loaded");
	if (vm_set_pvh_entry(vm, be.entry, be.start_info, what, sizeof(what)) < 0) {
		snprintf(why, wl, "setting up the boot vCPU: %s", what);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct vmm_timing timing = {.t0_us = timing_now_us()};
	struct opts o;
	if (parse(argc, argv, &o) < 0) {
		usage(stderr);
		return 2;
	}
	timing.on = o.timing;
	uint8_t *kernel = NULL, *initrd = NULL;
	size_t klen = 0, ilen = 0;
	int kmapped = 0, imapped = 0, e = 0;
	uint8_t shape[SNAP_SHAPE_SIZE];
	vm_shape(&o, shape);
	struct snapshot_in snap = {.fd = -1};
	char why[256] = "";
	if (o.restore && snapshot_open(o.restore, shape, &snap, why, sizeof(why)) < 0)
		return error("cannot restore: %s%s", why, "");
	if (!o.restore && (e = load_file(o.kernel, MAX_KERNEL, &kernel, &klen, &kmapped)))
		return error("cannot read the kernel %s: %s", o.kernel, strerror(-e));
	if (!o.restore && o.initrd &&
	    (e = load_file(o.initrd, MAX_INITRD, &initrd, &ilen, &imapped)))
		return error("cannot read the initramfs %s: %s", o.initrd, strerror(-e));
	char cmdline[BOOT_CMDLINE_MAX + 1];
	if (snprintf(cmdline, sizeof(cmdline), "%s%s%s", BASE_CMDLINE, o.cmdline[0] ? " " : "",
	             o.cmdline) >= BOOT_CMDLINE_MAX)
		return error("the kernel command line is too long%s%s", "", "");
	int serial_fd = STDERR_FILENO;
	if (o.serial_log && !strcmp(o.serial_log, "-")) {
		serial_fd = STDOUT_FILENO;
	} else if (o.serial_log) {
		serial_fd = open(o.serial_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (serial_fd < 0)
			return error("cannot open %s: %s", o.serial_log, strerror(errno));
	}

	/* Stop signals arrive through a signalfd in this thread only; vCPU
	 * threads inherit the mask. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	sigset_t blocked = stop;
	sigaddset(&blocked, SIGUSR1);
	sigaddset(&blocked, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &blocked, NULL);
	int sfd = signalfd(-1, &stop, SFD_CLOEXEC);
	if (sfd < 0)
		return error("signalfd: %s%s", strerror(errno), "");

	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return error("cannot open /dev/kvm: %s%s", strerror(errno), "");
	int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION)
		return error("/dev/kvm speaks API %s, not 12%s", api < 0 ? "?" : "another", "");

	static struct vm vm;
	struct vm_config c = {.mem_bytes = (uint64_t)o.mem_mib << 20,
	                      .ncpus = o.cpus,
	                      .serial_fd = serial_fd,
	                      .restore_fd = snap.fd,
	                      .restore_off = snap.mem_off};
	if (vm_create(&vm, kvm, &c, why, sizeof(why)) < 0)
		return error("creating the VM: %s%s", why, "");
	vm.timing = timing.on ? &timing : NULL;
	vm.snapshot_to = o.snapshot_to;
	timing_mark(vm.timing, "VM created");
	struct vsock *vs = NULL;
	if (o.vsock) {
		uint64_t base;
		uint32_t irq;
		vm_next_device_slot(&vm, &base, &irq);
		vs = vsock_create(&vm.gm, &vm.loop, o.vsock, base, irq, why, sizeof(why));
		if (!vs || vm_add_device(&vm, vsock_dev(vs), why, sizeof(why)) < 0)
			return error("virtio-vsock: %s%s", why, "");
		vsock_set_timing(vs, vm.timing);
	}
	static struct blk *disks[MAX_DISKS];
	for (int i = 0; i < o.disk_slots; i++) {
		uint64_t base;
		uint32_t irq;
		char serial[16];
		snprintf(serial, sizeof(serial), "disk%d", i);
		vm_next_device_slot(&vm, &base, &irq);
		disks[i] = blk_create(&vm.gm, base, irq, serial);
		if (!disks[i] || vm_add_device(&vm, blk_dev(disks[i]), why, sizeof(why)) < 0)
			return error("virtio-blk: %s%s", disks[i] ? why : "out of memory", "");
		/* booting, the driver finds the disk at probe; restoring, the
		 * attach after the state tells a running driver */
		if (!o.restore && o.disks[i].path &&
		    blk_attach_path(disks[i], o.disks[i].path, o.disks[i].writable, why,
		                    sizeof(why)) < 0)
			return error("virtio-blk: %s%s", why, "");
	}
	if (o.restore) {
		for (int i = 0; i < vm.ncpus; i++)
			if (snapshot_vcpu_restore(&vm.vcpus[i], &snap, why, sizeof(why)) < 0)
				return error("cannot restore: %s%s", why, "");
		if (snapshot_vm_restore(&vm, &snap, why, sizeof(why)) < 0)
			return error("cannot restore: %s%s", why, "");
		snapshot_close(&snap);
		for (int i = 0; i < o.disk_slots; i++)
			if (o.disks[i].path &&
			    blk_attach_path(disks[i], o.disks[i].path, o.disks[i].writable, why,
			                    sizeof(why)) < 0)
				return error("virtio-blk: %s%s", why, "");
		timing_mark(vm.timing, "state restored");
	} else if ((e = boot(&vm, &o, cmdline, sizeof(cmdline), kernel, klen, initrd, ilen, why,
	                     sizeof(why))) < 0) {
		return error("%s%s", why, "");
	}
	if (kernel)
		unload_file(kernel, klen, kmapped);
	if (initrd)
		unload_file(initrd, ilen, imapped);
	if (vm_start(&vm) < 0)
		return error("%s%s", vm.stop_why, "");

	timing_memory(vm.timing, &vm.gm, "at the start");
	while (atomic_load(&vm.stop) == VM_RUNNING) {
		struct pollfd p[3] = {{.fd = sfd, .events = POLLIN},
		                      {.fd = vm.stop_efd, .events = POLLIN},
		                      {.fd = vm.snap_efd, .events = POLLIN}};
		if (poll(p, 3, -1) < 0 && errno != EINTR)
			break;
		if (p[2].revents & POLLIN) {
			/* every vCPU is parked with its state saved */
			if (vs)
				vsock_snapshot_prepare(vs);
			if (vm.park_error)
				vm_request_stop(&vm, VM_STOP_VMM_ERROR,
				                "snapshot: a vCPU's state is missing");
			else if (snapshot_write(&vm, shape, o.snapshot_to, why, sizeof(why)) < 0)
				vm_request_stop(&vm, VM_STOP_VMM_ERROR, "snapshot: %s", why);
			else
				vm_request_stop(&vm, VM_STOP_REQUESTED, "snapshot written to %s",
				                o.snapshot_to);
		}
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si))
				vm_request_stop(&vm, VM_STOP_REQUESTED, "stopped by %s",
				                strsignal((int)si.ssi_signo));
		}
	}
	timing_memory(vm.timing, &vm.gm, "at the end");
	vm_destroy(&vm);
	vsock_destroy(vs);
	for (int i = 0; i < o.disk_slots; i++)
		blk_destroy(disks[i]);
	int reason = atomic_load(&vm.stop);
	switch (reason) {
	case VM_STOP_GUEST_RESET:
	case VM_STOP_REQUESTED:
		fprintf(stderr, "msb-vmm: %s\n", vm.stop_why);
		return 0;
	case VM_STOP_GUEST_CRASHED:
		fprintf(stderr, "msb-vmm: error: %s\n", vm.stop_why);
		return 1;
	default:
		fprintf(stderr, "msb-vmm: error: %s\n", vm.stop_why);
		return 2;
	}
}
