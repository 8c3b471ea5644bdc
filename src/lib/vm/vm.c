/* Booting a sandbox VM and talking to its agent: msb_vm_* in msb.h. */
#include "vm_int.h"
#include "clock.h"
#include "err.h"
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MEM_MIB    1024
#define MAX_CPUS           8 /* the guest kernel's NR_CPUS */
#define DEFAULT_BOOT_MS    180000
#define PHOST_OVERHEAD_MIB 512 /* the portable host's own kernel and msb-vmm */
#define SEED_BYTES         64
#define MOUNT_MS           60000 /* for the agent's mounts, after its wait */
/* a snapshot file holds guest RAM and at most this much more (msb-vmm's
 * src/vmm/snapshot.c: a header page, 1 MiB of state, 2 MiB alignment) */
#define SNAPSHOT_EXTRA (8u << 20)

const char *msb_vm_hostname(const struct msb_vm *vm)
{
	return vm->hostname;
}

const char *msb_vm_agent(const struct msb_vm *vm)
{
	return vm->agent_name;
}

const char *msb_vm_log(const struct msb_vm *vm)
{
	return msb_vmproc_log(vm->proc);
}

pid_t msb_vm_pid(const struct msb_vm *vm)
{
	return msb_vmproc_pid(vm->proc);
}

int msb_vm_poll_fd(const struct msb_vm *vm)
{
	return vm->fd;
}

int msb_vm_pump(struct msb_vm *vm, struct msb_err *err)
{
	int e = conn_pump(vm, 0, err);
	return e == -ETIMEDOUT || e == -EINTR ? 0 : e;
}

/* The clock and the random pool: a guest must never share either with
 * another (a restored snapshot would otherwise replay both). */
static int seed_guest(struct msb_vm *vm, struct msb_err *err)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct proto_set_time t = {.sec = now.tv_sec, .nsec = (uint32_t)now.tv_nsec};
	uint8_t b[PROTO_SET_TIME_SIZE];
	proto_set_time_encode(&t, b, sizeof(b));
	int e = conn_send(vm, PROTO_SET_TIME, 0, b, sizeof(b), err);
	if (e)
		return e;
	uint8_t seed[SEED_BYTES];
	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		return err_set(err, -EIO, "getrandom: %s", strerror(errno));
	if ((e = conn_send(vm, PROTO_ADD_ENTROPY, 0, seed, sizeof(seed), err)))
		return e;
	struct proto_hostname hn;
	snprintf(hn.name, sizeof(hn.name), "%s", vm->hostname);
	uint8_t hb[PROTO_MAX_HOSTNAME];
	int n = proto_hostname_encode(&hn, hb, sizeof(hb));
	if (n < 0)
		return err_set(err, n, "bad hostname \"%s\"", vm->hostname);
	return conn_send(vm, PROTO_SET_HOSTNAME, 0, hb, (uint32_t)n, err);
}

/* @o's hostname, or "msb-" and 8 random hex digits. */
static int pick_hostname(const struct msb_vm_opts *o, char *out, size_t len, struct msb_err *err)
{
	if (o->hostname) { /* checked by msb_vm_start() */
		snprintf(out, len, "%s", o->hostname);
		return 0;
	}
	uint32_t r;
	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return err_set(err, -EIO, "getrandom: %s", strerror(errno));
	snprintf(out, len, "msb-%08x", r);
	return 0;
}

static int say_hello(struct msb_vm *vm, struct msb_err *err)
{
	struct proto_hello hi = {.version_min = PROTO_VERSION, .version_max = PROTO_VERSION};
	snprintf(hi.name, sizeof(hi.name), "libmsb %s", MSB_VERSION);
	uint8_t b[PROTO_HELLO_FIXED + PROTO_MAX_NAME];
	int n = proto_hello_encode(&hi, b, sizeof(b));
	if (n < 0)
		return err_set(err, n, "cannot encode HELLO");
	return conn_send(vm, PROTO_HELLO, 0, b, (uint32_t)n, err);
}

/* Where msb-vmm and the files it reads are, on this host and as the chosen
 * host sees them (inside the portable host: /files/NAME). */
#define MAX_FILES (3 + MSB_VM_DISK_SLOTS)

struct vm_paths {
	char vmm[4096];
	char host[MAX_FILES][4096];
	char in[MAX_FILES][4096];
	struct msb_vm_file files[MAX_FILES];
	size_t nfiles;
	char disk_arg[MSB_VM_DISK_SLOTS][4200]; /* "N=PATH" for msb-vmm */
};

/* Adds a file msb-vmm reads (or writes); returns its path as msb-vmm sees it. */
static const char *add_file(struct vm_paths *p, enum msb_host_mode mode, const char *name,
                            const char *path, int writable)
{
	size_t i = p->nfiles++;
	snprintf(p->host[i], sizeof(p->host[i]), "%s", path);
	p->files[i] = (struct msb_vm_file){.name = name, .path = p->host[i], .writable = writable};
	msb_vm_file_path(mode, &p->files[i], p->in[i], sizeof(p->in[i]));
	return p->in[i];
}

static int find_vmm(enum msb_host_mode mode, struct vm_paths *p, struct msb_err *err)
{
	if (mode == MSB_HOST_PORTABLE)
		return fs_path(p->vmm, sizeof(p->vmm), "/bin/msb-vmm");
	char libexec[4000];
	int e = msb_libexec_dir(libexec, sizeof(libexec));
	if (e || fs_path(p->vmm, sizeof(p->vmm), "%s/msb-vmm", libexec))
		return err_set(err, e ? e : -ENAMETOOLONG, "cannot find msb's helper programs");
	if (access(p->vmm, X_OK) < 0)
		return err_set(err, -errno, "cannot run %s: %s", p->vmm, strerror(errno));
	return 0;
}

/* The kernel and initramfs: the caller's, or msb's own. */
static int find_boot_files(const struct msb_vm_opts *o, char kernel[4096], char initrd[4096],
                           struct msb_err *err)
{
	char share[4096];
	int e = msb_share_dir(share, sizeof(share));
	if (e)
		return err_set(err, e, "cannot find msb's share directory");
	if ((o->kernel ? fs_path(kernel, 4096, "%s", o->kernel)
	               : fs_path(kernel, 4096, "%s/vmlinux", share)) ||
	    (o->initrd ? fs_path(initrd, 4096, "%s", o->initrd)
	               : fs_path(initrd, 4096, "%s/agent.cpio", share)))
		return err_set(err, -ENAMETOOLONG, "the kernel or initramfs path is too long");
	const char *need[] = {kernel, initrd};
	for (int i = 0; i < 2; i++)
		if (access(need[i], R_OK) < 0)
			return err_set(err, -errno, "cannot read %s: %s%s", need[i],
			               strerror(errno),
			               errno == ENOENT && !(i ? o->initrd : o->kernel)
			                   ? " (build it with ./setup or make)"
			                   : "");
	return 0;
}

/* A file for msb-vmm to write the snapshot into, sized for @mem_mib (the
 * portable host shares it as a disk, whose size is fixed). */
static int make_snapshot_file(struct msb_vm *vm, const char *path, unsigned mem_mib,
                              struct msb_err *err)
{
	size_t n = strlen(path) + 32;
	vm->snap_path = strdup(path);
	vm->snap_tmp = malloc(n);
	if (!vm->snap_path || !vm->snap_tmp)
		return err_set(err, -ENOMEM, "out of memory");
	snprintf(vm->snap_tmp, n, "%s.tmp.%d", path, (int)getpid());
	int fd = open(vm->snap_tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(err, -errno, "cannot create %s: %s", vm->snap_tmp, strerror(errno));
	/* sparse: only what the guest touched is ever written */
	int e = ftruncate(fd, (off_t)(((uint64_t)mem_mib << 20) + SNAPSHOT_EXTRA)) < 0 ? -errno : 0;
	close(fd);
	return e ? err_set(err, e, "cannot size %s: %s", vm->snap_tmp, strerror(-e)) : 0;
}

/* The default start: restore this shape's cached snapshot, made first if
 * needed. A snapshot that fails to restore (damaged, or from a VMM that
 * changed in place) is dropped and made again, once. */
static int start_warm(const struct msb_vm_opts *o, enum msb_host_mode mode, unsigned mem,
                      unsigned cpus, struct msb_vm **out, struct msb_err *err)
{
	char kernel[4096], initrd[4096], path[4096];
	int e = find_boot_files(o, kernel, initrd, err);
	if (e || (e = snapcache_path(mode, kernel, initrd, mem, cpus, path, sizeof(path), err)))
		return e;
	struct msb_vm_opts r = *o;
	r.mem_mib = mem;
	r.cpus = cpus;
	for (int attempt = 0;; attempt++) {
		if ((e = snapcache_ensure(&r, path, err)))
			return e;
		r.restore_from = path;
		if ((e = msb_vm_start(&r, out, err)) == 0 || attempt || e == -ETIMEDOUT ||
		    e == -EINTR)
			return e;
		unlink(path);
		r.restore_from = NULL;
	}
}

int msb_vm_start(const struct msb_vm_opts *o, struct msb_vm **out, struct msb_err *err)
{
	*out = NULL;
	if (!o || o->size < sizeof(*o))
		return err_set(err, -EINVAL,
		               "msb_vm_start: opts->size must be sizeof(struct "
		               "msb_vm_opts)");
	unsigned mem = o->mem_mib ? o->mem_mib : DEFAULT_MEM_MIB, cpus = o->cpus ? o->cpus : 1;
	if (cpus > MAX_CPUS)
		return err_set(err, -EINVAL, "%u vCPUs asked for; a sandbox has at most %d", cpus,
		               MAX_CPUS);
	if (mem < 64 || mem > (1u << 20))
		return err_set(err, -EINVAL,
		               "%u MiB of memory asked for; a sandbox has 64 MiB to 1 TiB", mem);
	if (o->ndisks > MSB_VM_DISK_SLOTS || (o->ndisks && !o->disks))
		return err_set(err, -EINVAL, "%zu disks asked for; a sandbox has at most %d",
		               o->ndisks, MSB_VM_DISK_SLOTS);
	for (size_t i = 0; i < o->ndisks; i++)
		if (!o->disks[i].path ||
		    access(o->disks[i].path, o->disks[i].writable ? R_OK | W_OK : R_OK) < 0)
			return err_set(err, o->disks[i].path ? -errno : -EINVAL,
			               "cannot use %s as a disk: %s",
			               o->disks[i].path ? o->disks[i].path : "(null)",
			               o->disks[i].path ? strerror(errno) : "no path");
	if (o->hostname && !proto_hostname_valid(o->hostname))
		return err_set(err, -EINVAL,
		               "bad hostname \"%s\": letters, digits, '-' and '.', at most %d, not "
		               "starting or ending with '-' or '.'",
		               o->hostname, PROTO_MAX_HOSTNAME);
	if (o->snapshot_to && o->ndisks)
		return err_set(err, -EINVAL,
		               "a VM to be snapshotted has no disks (its disk slots stay empty, "
		               "so every restore can bind its own)");
	if (o->restore_from && o->snapshot_to)
		return err_set(err, -EINVAL, "a restored VM cannot be snapshotted again");
	struct msb_host_choice hc;
	int e = msb_host_select(&hc, err);
	if (e)
		return e;
	if (!o->cold && !o->restore_from && !o->snapshot_to)
		return start_warm(o, hc.mode, mem, cpus, out, err);
	struct vm_paths *p = calloc(1, sizeof(*p));
	struct msb_vm *vm = calloc(1, sizeof(*vm));
	if (!p || !vm) {
		e = err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	vm->fd = -1;
	vm->next_id = 1;
	if ((e = pick_hostname(o, vm->hostname, sizeof(vm->hostname), err)) < 0)
		goto fail;
	if ((e = find_vmm(hc.mode, p, err)) < 0)
		goto fail;
	char memstr[16], cpustr[16];
	snprintf(memstr, sizeof(memstr), "%u", mem);
	snprintf(cpustr, sizeof(cpustr), "%u", cpus);
	char slots[16];
	snprintf(slots, sizeof(slots), "%d", MSB_VM_DISK_SLOTS);
	const char *argv[48] = {p->vmm,         "--cpus", cpustr,         "--memory", memstr,
	                        "--serial-log", "-",      "--disk-slots", slots};
	size_t argc = 9;
	static const char *const disk_names[MSB_VM_DISK_SLOTS] = {"disk0", "disk1", "disk2",
	                                                          "disk3"};
	for (size_t i = 0; i < o->ndisks; i++) {
		const char *in =
		    add_file(p, hc.mode, disk_names[i], o->disks[i].path, o->disks[i].writable);
		p->files[p->nfiles - 1].per_start = 1;
		if (fs_path(p->disk_arg[i], sizeof(p->disk_arg[i]), "%zu=%s", i, in)) {
			e = err_set(err, -ENAMETOOLONG, "disk path too long: %s", o->disks[i].path);
			goto fail;
		}
		argv[argc++] = o->disks[i].writable ? "--disk" : "--disk-ro";
		argv[argc++] = p->disk_arg[i];
	}
	if (o->restore_from) {
		if (access(o->restore_from, R_OK) < 0) {
			e = err_set(err, -errno, "cannot read the snapshot %s: %s", o->restore_from,
			            strerror(errno));
			goto fail;
		}
		argv[argc++] = "--restore";
		argv[argc++] = add_file(p, hc.mode, "snapshot", o->restore_from, 0);
	} else {
		char kernel[4096], initrd[4096];
		if ((e = find_boot_files(o, kernel, initrd, err)) < 0)
			goto fail;
		argv[argc++] = "--kernel";
		argv[argc++] = add_file(p, hc.mode, "kernel", kernel, 0);
		argv[argc++] = "--initrd";
		argv[argc++] = add_file(p, hc.mode, "initrd", initrd, 0);
	}
	if (o->snapshot_to) {
		if ((e = make_snapshot_file(vm, o->snapshot_to, mem, err)) < 0)
			goto fail;
		argv[argc++] = "--snapshot-to";
		argv[argc++] = add_file(p, hc.mode, "snapshot", vm->snap_tmp, 1);
	}
	for (const char *const *a = o->vmm_args; a && *a; a++) {
		if (argc + 1 >= sizeof(argv) / sizeof(argv[0])) {
			e = err_set(err, -E2BIG, "too many msb-vmm flags");
			goto fail;
		}
		argv[argc++] = *a;
	}
	struct msb_vmproc_opts po = {
	    .size = sizeof(po),
	    .mode = hc.mode,
	    .name = o->name ? o->name : "vm",
	    .argv = argv,
	    .files = p->files,
	    .nfiles = p->nfiles,
	    /* untouched guest memory costs nothing at either level */
	    .mem_mib = mem + PHOST_OVERHEAD_MIB,
	    .stream_vsock_port = PROTO_AGENT_PORT,
	    /* a restore's files are the same every time: start its portable
	     * host from a snapshot too, kept beside the VM's */
	    .phost_snapshot = o->restore_from,
	    .progress = o->progress,
	    .progress_arg = o->progress_arg,
	};
	if ((e = proto_reader_init(&vm->rd)) < 0) {
		err_set(err, e, "out of memory");
		goto fail;
	}
	if ((e = msb_vmproc_start(&po, &vm->proc, err)) < 0)
		goto fail;
	vm->fd = msb_vmproc_stream(vm->proc);
	int fl = fcntl(vm->fd, F_GETFL);
	if (fl < 0 || fcntl(vm->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		e = err_set(err, -errno, "fcntl: %s", strerror(errno));
		goto fail;
	}
	long deadline = deadline_in(o->boot_timeout_ms > 0 ? o->boot_timeout_ms : DEFAULT_BOOT_MS);
	if ((e = say_hello(vm, err)) < 0)
		goto fail;
	while (!vm->hello)
		if ((e = conn_pump(vm, deadline, err)) < 0) {
			if (e == -ETIMEDOUT)
				err_set(err, e,
				        "the sandbox's agent did not answer in time; the VM's "
				        "log: %s",
				        msb_vmproc_log(vm->proc));
			goto fail;
		}
	if ((e = seed_guest(vm, err)) < 0)
		goto fail;
	free(p);
	*out = vm;
	return 0;
fail:
	if (vm)
		vm->failed = 1; /* keeps the log */
	msb_vm_destroy(vm);
	free(p);
	return e;
}

int msb_vm_mount_root(struct msb_vm *vm, unsigned disk, int upper, int wait_ms, struct msb_err *err)
{
	if (disk >= MSB_VM_DISK_SLOTS)
		return err_set(err, -EINVAL, "disk %u: a sandbox has disks 0..%d", disk,
		               MSB_VM_DISK_SLOTS - 1);
	if (upper >= MSB_VM_DISK_SLOTS || upper < -1 || upper == (int)disk)
		return err_set(err, -EINVAL, "writable layer disk %d: another of 0..%d, or -1",
		               upper, MSB_VM_DISK_SLOTS - 1);
	if (vm->dead)
		return conn_dead(vm, err);
	if (vm->next_id == 0)
		return err_set(err, -EMFILE, "this VM has run all the requests it can");
	struct proto_mount_root m = {.disk = disk,
	                             .flags = upper >= 0 ? PROTO_ROOT_UPPER_DISK : 0,
	                             .upper = upper >= 0 ? (uint32_t)upper : 0,
	                             .wait_ms = wait_ms < 0 ? 0
	                                        : (unsigned)wait_ms > PROTO_MAX_WAIT_MS
	                                            ? PROTO_MAX_WAIT_MS
	                                            : (uint32_t)wait_ms};
	uint8_t b[PROTO_MOUNT_ROOT_SIZE];
	proto_mount_root_encode(&m, b, sizeof(b));
	vm->req_id = vm->next_id++;
	vm->req_state = REQ_WAITING;
	int e = conn_send(vm, PROTO_MOUNT_ROOT, vm->req_id, b, sizeof(b), err);
	/* the agent waits up to wait_ms for the disk, then mounts */
	long deadline = deadline_in((int)m.wait_ms + MOUNT_MS);
	while (!e && vm->req_state == REQ_WAITING)
		e = conn_pump(vm, deadline, err);
	vm->req_id = 0;
	if (e == -ETIMEDOUT)
		return err_set(err, e, "the agent did not mount the root in time");
	if (e)
		return e;
	if (vm->req_state == REQ_FAILED)
		return err_set(err, -(int)vm->req_err.err, "cannot mount the sandbox's root: %s",
		               vm->req_err.msg);
	return 0;
}

int msb_vm_prepare(const struct msb_vm_opts *o, struct msb_err *err)
{
	if (!o || o->size < sizeof(*o))
		return err_set(err, -EINVAL,
		               "msb_vm_prepare: opts->size must be sizeof(struct msb_vm_opts)");
	if (o->cold || o->restore_from || o->snapshot_to || o->ndisks)
		return err_set(err, -EINVAL,
		               "msb_vm_prepare takes a shape only (no cold, restore_from, "
		               "snapshot_to or disks)");
	struct msb_vm *vm;
	int e = msb_vm_start(o, &vm, err);
	if (e)
		return e;
	int st = msb_vm_stop(vm, 60000, err);
	msb_vm_destroy(vm);
	if (st < 0)
		return st;
	return st ? err_set(err, -EIO, "the prepared VM did not stop cleanly (status %d)", st) : 0;
}

int msb_vm_snapshot(struct msb_vm *vm, int timeout_ms, struct msb_err *err)
{
	if (!vm->snap_tmp)
		return err_set(err, -EINVAL, "this VM was not started with snapshot_to");
	if (vm->execs)
		return err_set(err, -EBUSY, "commands still run in the VM");
	long deadline = deadline_in(timeout_ms);
	vm->stopping = 1;
	int e = conn_send(vm, PROTO_SNAPSHOT, 0, NULL, 0, err);
	while (!e)
		e = conn_pump(vm, deadline, err);
	if (e == -ETIMEDOUT || e == -EINTR) {
		vm->failed = 1;
		return e == -ETIMEDOUT ? err_set(err, e, "the snapshot did not finish in time") : e;
	}
	struct msb_err we = {0};
	int left = deadline < 0 ? 60000 : (int)(deadline - mono_ms());
	int st = msb_vmproc_wait(vm->proc, left > 0 ? left : 0, &we);
	if (st != 0) {
		vm->failed = 1;
		if (st < 0)
			return err ? (*err = we, st) : st;
		char why[300], full[200] = "";
		conn_vmm_error(vm, why, sizeof(why));
		fs_full_note(vm->snap_tmp, full, sizeof(full));
		return err_set(err, full[0] ? -ENOSPC : -EIO,
		               "msb-vmm could not write the snapshot %s%s%s%s; its log: %s",
		               vm->snap_path, why[0] ? ": " : "", why, full,
		               msb_vmproc_log(vm->proc));
	}
	int fd = open(vm->snap_tmp, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0 || rename(vm->snap_tmp, vm->snap_path) < 0) {
		e = err_set(err, -errno, "cannot store the snapshot at %s: %s", vm->snap_path,
		            strerror(errno));
		if (fd >= 0)
			close(fd);
		return e;
	}
	close(fd);
	free(vm->snap_tmp);
	vm->snap_tmp = NULL; /* nothing to clean up any more */
	return 0;
}

int vm_attach_fd(int fd, int timeout_ms, struct msb_vm **out, struct msb_err *err)
{
	*out = NULL;
	struct msb_vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return err_set(err, -ENOMEM, "out of memory");
	vm->fd = fd;
	vm->next_id = 1;
	int e = proto_reader_init(&vm->rd);
	int fl = fcntl(fd, F_GETFL);
	if (e < 0 || fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		msb_vm_destroy(vm);
		return err_set(err, e < 0 ? e : -errno, "cannot set up the connection");
	}
	long deadline = deadline_in(timeout_ms);
	if ((e = say_hello(vm, err)) == 0)
		while (!vm->hello && (e = conn_pump(vm, deadline, err)) == 0)
			;
	if (e < 0) {
		msb_vm_destroy(vm);
		return e;
	}
	*out = vm;
	return 0;
}

int msb_vm_ping(struct msb_vm *vm, int timeout_ms, struct msb_err *err)
{
	/* PONGs carry no id; the agent answers in order, so the next PONG after
	 * those already counted is ours */
	static const uint8_t token[8] = {'m', 's', 'b', 'p', 'i', 'n', 'g', '1'};
	int e = conn_send(vm, PROTO_PING, 0, token, sizeof(token), err);
	if (e)
		return e;
	long deadline = deadline_in(timeout_ms);
	unsigned pongs = vm->pongs;
	while (vm->pongs == pongs)
		if ((e = conn_pump(vm, deadline, err)) < 0)
			return e == -ETIMEDOUT
			           ? err_set(err, e, "no answer from the sandbox's agent")
			           : e;
	return 0;
}

int msb_vm_stop(struct msb_vm *vm, int timeout_ms, struct msb_err *err)
{
	long deadline = deadline_in(timeout_ms);
	int e = 0;
	if (!vm->dead) {
		vm->stopping = 1;
		if ((e = conn_send(vm, PROTO_SHUTDOWN, 0, NULL, 0, err)) == 0)
			while ((e = conn_pump(vm, deadline, err)) == 0)
				;
	}
	if (e == -ETIMEDOUT || e == -EINTR)
		return e == -ETIMEDOUT ? err_set(err, e, "the sandbox did not shut down in time")
		                       : e;
	if (!vm->proc) /* attached: no process to wait for */
		return vm->dead_err.code == -ESHUTDOWN ? 0 : conn_dead(vm, err);
	struct msb_err we = {0};
	int left = deadline < 0 ? 10000 : (int)(deadline - mono_ms());
	int st = msb_vmproc_wait(vm->proc, left > 0 ? left : 0, &we);
	if (st < 0) {
		if (err)
			*err = we;
		return st;
	}
	if (st != 0) /* keep the log of a crash */
		vm->failed = 1;
	return st;
}

void msb_vm_destroy(struct msb_vm *vm)
{
	if (!vm)
		return;
	while (vm->execs)
		exec_destroy(vm->execs);
	if (vm->proc)
		msb_vmproc_destroy(vm->proc, vm->failed);
	else if (vm->fd >= 0)
		close(vm->fd); /* attached: the fd was handed to us */
	if (vm->snap_tmp)      /* a snapshot never taken, or cut short */
		unlink(vm->snap_tmp);
	free(vm->snap_tmp);
	free(vm->snap_path);
	proto_reader_free(&vm->rd);
	wbuf_free(&vm->wb);
	free(vm);
}
