/*
 * The warm-start cache: one snapshot per VM shape under
 * $MSB_HOME/snapshots/<key>/vm.snap, made on first use and shared by every
 * later VM of that shape (docs/design/snapshot.md).
 *
 * The key is a hash of what the snapshot depends on: memory, vCPUs, and the
 * identity (path, size, mtime, inode) of the kernel, the initramfs and the
 * VMM, so a rebuilt kernel or agent gets a new snapshot without reading
 * megabytes on every start. A flock on the shape's directory makes two
 * processes that need the same snapshot build it once.
 */
#include "vm_int.h"
#include "err.h"
#include "identity.h"
#include "fsutil.h"
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* What stands for the VMM: msb-vmm itself, or the portable host's image
 * that carries it. */
static int vmm_identity(enum msb_host_mode mode, char *out, size_t len, struct msb_err *err)
{
	char dir[4000];
	int e = mode == MSB_HOST_PORTABLE ? msb_share_dir(dir, sizeof(dir))
	                                  : msb_libexec_dir(dir, sizeof(dir));
	if (e || fs_path(out, len,
	                 mode == MSB_HOST_PORTABLE ? "%s/phost/initramfs.cpio" : "%s/msb-vmm", dir))
		return err_set(err, e ? e : -ENAMETOOLONG, "cannot find msb's files");
	return 0;
}

int snapcache_path(enum msb_host_mode mode, const char *kernel, const char *initrd, unsigned mem,
                   unsigned cpus, char *path, size_t len, struct msb_err *err)
{
	char vmm[4096], shape[64], home[4000];
	int e = vmm_identity(mode, vmm, sizeof(vmm), err);
	if (e)
		return e;
	int n = snprintf(shape, sizeof(shape), "snapshot 1|mem %u|cpus %u|mode %d|disks %d;", mem,
	                 cpus, (int)mode, MSB_VM_DISK_SLOTS);
	uint64_t h = fnv1a(FNV1A_INIT, shape, (size_t)n);
	if ((e = identity_add(&h, kernel, err)) || (e = identity_add(&h, initrd, err)) ||
	    (e = identity_add(&h, vmm, err)))
		return e;
	if ((e = msb_home(home, sizeof(home))) ||
	    fs_path(path, len, "%s/snapshots/%016llx-%umib-%ucpu/vm.snap", home,
	            (unsigned long long)h, mem, cpus))
		return err_set(err, e ? e : -ENAMETOOLONG, "the snapshot cache path is too long");
	return 0;
}

int snapcache_ensure(const struct msb_vm_opts *o, const char *path, struct msb_err *err)
{
	if (access(path, R_OK) == 0)
		return 0;
	char dir[4096], lock[4200];
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = 0;
	if (fs_mkdir_p(dir) < 0 || fs_path(lock, sizeof(lock), "%s/lock", dir))
		return err_set(err, -errno, "cannot create %s: %s", dir, strerror(errno));
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(err, -errno, "cannot create %s: %s", lock, strerror(errno));
	while (flock(fd, LOCK_EX) < 0)
		if (errno != EINTR) {
			int e = -errno;
			close(fd);
			return err_set(err, e, "cannot lock %s: %s", lock, strerror(-e));
		}
	int e = 0;
	if (access(path, R_OK) < 0) { /* nobody built it while we waited */
		char msg[160];
		long t0 = mono_ms();
		snprintf(msg, sizeof(msg),
		         "preparing a VM image for %u MiB / %u vCPU (first run only)", o->mem_mib,
		         o->cpus);
		if (o->progress)
			o->progress(o->progress_arg, msg);
		struct msb_vm_opts b = *o;
		b.cold = 1;
		b.restore_from = NULL;
		b.snapshot_to = path;
		b.name = "snapshot";
		b.disks = NULL; /* a snapshot holds empty disk slots */
		b.ndisks = 0;
		struct msb_vm *vm;
		if ((e = msb_vm_start(&b, &vm, err)) == 0) {
			e = msb_vm_snapshot(vm, 300000, err);
			msb_vm_destroy(vm);
		}
		if (e)
			err_wrap(err, "preparing the VM snapshot for %u MiB / %u vCPU", b.mem_mib,
			         b.cpus);
		else if (o->progress) {
			snprintf(msg, sizeof(msg), "VM image ready in %.1f s",
			         (double)(mono_ms() - t0) / 1000);
			o->progress(o->progress_arg, msg);
		}
	}
	close(fd); /* releases the lock */
	return e;
}
