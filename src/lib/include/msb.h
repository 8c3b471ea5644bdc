/*
 * libmsb: the library under the msb CLI and server; the C SDK is this header.
 *
 * Conventions: functions return 0 (or a count) on success and a negative
 * errno on failure; where a message helps, they also fill a caller-owned
 * struct msb_err, and the caller adds context once before showing it.
 * Nothing here calls exit() or prints, except where a function says so.
 * Option structs start with `size`, set to sizeof(struct) by the caller, so
 * they can grow.
 */
#ifndef MSB_H
#define MSB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MSB_VERSION "0.1.0"

/* An error: a negative errno and a message for people. */
struct msb_err {
	int code;
	char msg[1024];
};

/* ---- Host selection -------------------------------------------------- */

enum msb_host_mode {
	MSB_HOST_NATIVE = 1,   /* msb-vmm uses this machine's /dev/kvm */
	MSB_HOST_PORTABLE = 2, /* msb-vmm runs inside a QEMU TCG VM with SVM */
};

struct msb_host_choice {
	enum msb_host_mode mode;
	int forced;     /* MSB_HOST chose the mode */
	int from_cache; /* the self-test result came from the cache */
	char why[768];  /* one sentence: which mode and why */
};

/*
 * Decides how this machine runs sandboxes. MSB_HOST=native|portable|auto
 * (default auto) overrides; auto runs the KVM self-test (a tiny guest whose
 * user-mode SYSCALL must land at CPL0), cached per boot in the cache dir.
 * Returns 0 and fills @out, or a negative errno with @err set: -EINVAL for a
 * bad MSB_HOST, -ENODEV when MSB_HOST=native and /dev/kvm cannot run a
 * standard guest. Thread-safe; two processes deciding at once may both run
 * the self-test (the cache file is replaced atomically).
 */
int msb_host_select(struct msb_host_choice *out, struct msb_err *err);

/* Runs the KVM self-test on @kvm_path now, uncached. Returns 0 when it can
 * run standard guests; otherwise a negative errno and @detail explains. */
int msb_kvm_selftest(const char *kvm_path, char *detail, size_t detail_len);

/* ---- Running a VMM-side program in the chosen host -------------------- */

/* A host file the program reads; in the portable host it arrives read-only
 * as a virtio-blk disk, its size rounded up to 512 bytes with zeros. */
struct msb_vm_file {
	const char *name; /* [A-Za-z0-9_.-]{1,20} (a virtio-blk serial), no leading dot */
	const char *path; /* host path */
	int writable;     /* the program may write it (in place: its size is fixed) */
	/* A file that differs from one start to the next (a sandbox's own
	 * disk). With a portable host snapshot, its slot is in the snapshot
	 * and the file is bound at each start (its identity is not in the
	 * snapshot's key). */
	int per_start;
};

struct msb_vmproc_opts {
	size_t size; /* sizeof(struct msb_vmproc_opts) */
	enum msb_host_mode mode;
	const char *name; /* run-dir name prefix, e.g. "doctor" */
	/* Program and arguments. Natively argv[0] is a host path; in the
	 * portable host it is a path inside it (e.g. "/bin/msb-kvm-smoke").
	 * Use msb_vm_file_path() for arguments naming files. */
	const char *const *argv;
	const struct msb_vm_file *files;
	size_t nfiles;    /* at most 16 */
	unsigned mem_mib; /* portable host memory; 0 = default */
	/* 0: the stream is the program's stdin/stdout. N: the program is
	 * msb-vmm; libmsb appends "--vsock PATH" to argv and the stream is a
	 * connection to the guest's vsock port N (made once the guest listens,
	 * within two minutes), natively or relayed by the portable host. */
	uint32_t stream_vsock_port;
	/* Portable host only: start it from a snapshot of itself, kept as
	 * PREFIX.phost-<key>.{ram,state} (made on first use; the key covers
	 * QEMU, the host image, memory and the identity of every file),
	 * instead of booting it. For files that stay the same across starts,
	 * e.g. a warm-start snapshot's. NULL: boot. MSB_PHOST_SNAPSHOTS=0 in
	 * the environment turns it off. */
	const char *phost_snapshot;
	/* As in struct msb_vm_opts: told when a portable host snapshot is
	 * made (seconds, once). NULL: silent. */
	void (*progress)(void *arg, const char *msg);
	void *progress_arg;
};

struct msb_vmproc;

/*
 * Starts the program: natively as a child process, or inside a new portable
 * host (QEMU). Either way its stdin/stdout are one byte stream, returned by
 * msb_vmproc_stream(), and its diagnostics go to a log file. The program
 * dies with the calling process (PR_SET_PDEATHSIG), so killing msb leaves no
 * process behind; the run dir it leaves is removed by the next start.
 * Returns 0 and *out (owned by the caller; free with msb_vmproc_destroy), or
 * a negative errno with @err set.
 * The calling thread must outlive the program (the parent-death signal is
 * tied to it).
 */
int msb_vmproc_start(const struct msb_vmproc_opts *opts, struct msb_vmproc **out,
                     struct msb_err *err);

/* The stream's file descriptor, owned by @p (valid until destroy). */
int msb_vmproc_stream(const struct msb_vmproc *p);

/* The log file path, owned by @p. */
const char *msb_vmproc_log(const struct msb_vmproc *p);

/* The pid of the process msb started (QEMU in the portable host). */
pid_t msb_vmproc_pid(const struct msb_vmproc *p);

/* Where the program sees host file @f: its path natively, /files/NAME in the
 * portable host. Returns @buf, or NULL if it does not fit. */
const char *msb_vm_file_path(enum msb_host_mode mode, const struct msb_vm_file *f, char *buf,
                             size_t len);

/*
 * Waits for the program to end, at most @timeout_ms (-1: no limit). Returns
 * its exit status (0..255) when it exited, or a negative errno with @err
 * set: -ETIMEDOUT; -EINTR when a signal handler of the caller's ran (the
 * caller decides whether to wait again); or -ECHILD when it (or the portable
 * host) died another way, with the reason and the log's path in the message.
 */
int msb_vmproc_wait(struct msb_vmproc *p, int timeout_ms, struct msb_err *err);

/*
 * Stops the program if it still runs (SIGTERM, then SIGKILL after a grace
 * period), closes the stream and frees @p. The run dir goes with it; its log
 * is kept under $MSB_HOME/log/ when @keep_log is set (after a failure, so a
 * message can point at it), and removed otherwise.
 */
void msb_vmproc_destroy(struct msb_vmproc *p, int keep_log);

/* ---- Sandbox VMs: boot, run commands, stop -------------------------------
 *
 * A struct msb_vm is one microVM (msb-vmm, natively or inside the portable
 * host) with msb-agent as its PID 1, reached over one connection. Execs run
 * commands in it, several at once, each with its own stdin/stdout/stderr.
 *
 * Threads: a VM and its execs are used by one thread at a time (the caller
 * locks if it shares them); different VMs are independent. Every blocking
 * call takes a timeout in milliseconds (-1: none) and returns -ETIMEDOUT
 * when it passes, or -EINTR when a signal handler of the caller's ran; both
 * leave the VM usable. Everything the guest sends is checked: a guest that
 * breaks the protocol ends its connection (-EPROTO), and from then on every
 * call on that VM fails with the same error, naming the VM's log.
 */

/* A disk for a VM: a file (or block device) the guest sees as virtio-blk. */
struct msb_vm_disk {
	const char *path;
	int writable; /* else read-only: the guest's writes fail */
};

#define MSB_VM_DISK_SLOTS 4 /* every VM has these; a disk fills one */

/* A writable layer's size: the file is sparse, so this is a limit on what
 * the sandbox may keep, not space taken. */
#define MSB_DISK_MIN_SIZE     (64ull << 20)
#define MSB_DISK_MAX_SIZE     (1024ull << 30)
#define MSB_DISK_DEFAULT_SIZE (16ull << 30)

/*
 * Makes a writable layer at @path for msb_vm_mount_root(): a sparse file of
 * @size bytes formatted as ext4 by mke2fs (no root needed), owned by the
 * guest's root, written under a temporary name and renamed, so @path is
 * either whole or absent. Returns 0 or a negative errno with @err set.
 */
int msb_disk_make(const char *path, uint64_t size, struct msb_err *err);

/* The space @path takes on the host's disk (its allocated blocks). */
int msb_disk_usage(const char *path, uint64_t *bytes, struct msb_err *err);

struct msb_vm_opts {
	size_t size;         /* sizeof(struct msb_vm_opts) */
	const char *kernel;  /* the guest kernel (ELF vmlinux); NULL: msb's own */
	const char *initrd;  /* the initramfs with msb-agent as /init; NULL: msb's own */
	unsigned mem_mib;    /* guest memory; 0: 1024 */
	unsigned cpus;       /* vCPUs, 1..8; 0: 1 */
	int boot_timeout_ms; /* until the agent answers; 0: 180000 (a cold boot in
	                        the portable host takes seconds) */
	const char *name;    /* a run-dir name prefix ("vm" when NULL) */
	/* More msb-vmm flags (NULL-terminated; NULL for none), for debugging
	 * and benchmarks: e.g. "--timing" logs start-up marks. */
	const char *const *vmm_args;
	/* Warm start (docs/design/snapshot.md). restore_from: start from the
	 * snapshot file at this path instead of booting (kernel and initrd are
	 * then unused; mem_mib and cpus must be the snapshot's). snapshot_to:
	 * this VM may be snapshotted with msb_vm_snapshot() into this path. */
	const char *restore_from;
	const char *snapshot_to;
	/* 0 (default): start from the cached snapshot of this shape (kernel,
	 * initramfs, VMM, memory, vCPUs), made on first use (seconds, once) in
	 * $MSB_HOME/snapshots/ and rebuilt when damaged or when an input
	 * changes. 1: boot the kernel instead. */
	int cold;
	/* The guest's hostname: letters, digits, '-' and '.', at most 64, not
	 * starting or ending with '-' or '.'. NULL: "msb-" and 8 random hex
	 * digits, so no two sandboxes share one (a restored VM would otherwise
	 * keep its snapshot's). */
	const char *hostname;
	/* Called with a line for a person during long work, e.g. the first
	 * start of a shape, which prepares its snapshot (seconds, once).
	 * NULL: silent. */
	void (*progress)(void *arg, const char *msg);
	void *progress_arg;
	/* Disks, in slot order (the guest sees slot N as the virtio-blk disk
	 * whose serial is "diskN"), at most MSB_VM_DISK_SLOTS. A restored VM
	 * gets them after the restore, announced by a config-change
	 * interrupt: wait until the disk's size is not 0 before using it. */
	const struct msb_vm_disk *disks;
	size_t ndisks;
};

struct msb_vm;

/*
 * Starts a VM, from its shape's snapshot unless opts->cold (see there), and
 * waits until its agent is ready: connected, protocol agreed,
 * clock set from the host's and the guest's random pool seeded with host
 * entropy. Returns 0 and *out (free with msb_vm_destroy()), or a negative
 * errno with @err set: -EINVAL for bad options, -ENOENT for a missing kernel
 * or initramfs, -ETIMEDOUT when the agent did not answer in time, or the
 * error that ended the VM, with its log's path.
 * The calling thread must outlive the VM (see msb_vmproc_start()).
 */
int msb_vm_start(const struct msb_vm_opts *opts, struct msb_vm **out, struct msb_err *err);

/*
 * Makes the warm-start snapshot of @opts's shape now, unless it is cached
 * (in the portable host, that host's snapshot too), by starting a VM of that
 * shape and stopping it: the first msb_vm_start() of the shape is then
 * already warm. @opts names a shape only: no cold, restore_from,
 * snapshot_to or disks. Returns 0, or a negative errno with @err set.
 */
int msb_vm_prepare(const struct msb_vm_opts *opts, struct msb_err *err);

/*
 * Mounts the erofs image on disk slot @disk (msb_vm_opts.disks) as the
 * sandbox's root: read-only under an overlay whose upper layer is memory
 * (@upper -1) or the ext4 file system on writable disk slot @upper, which
 * keeps the sandbox's changes between runs (msb_disk_make() makes one);
 * with /proc, /sys, /dev, /dev/pts, /dev/shm and /tmp. Later execs run in
 * it. The agent waits up to @wait_ms for the disks to have a capacity (a
 * restored VM learns it from a config-change interrupt). Returns 0 or a
 * negative errno with @err set (-ENODEV: no disk in that slot).
 */
int msb_vm_mount_root(struct msb_vm *vm, unsigned disk, int upper, int wait_ms,
                      struct msb_err *err);

/* The guest's hostname, owned by @vm. */
const char *msb_vm_hostname(const struct msb_vm *vm);

/* The agent's name and version ("msb-agent 0.1.0"), owned by @vm. */
const char *msb_vm_agent(const struct msb_vm *vm);

/* The VM's log (the VMM's messages and the guest's console), owned by @vm. */
const char *msb_vm_log(const struct msb_vm *vm);

/* The pid of the process that holds the VM: msb-vmm, or QEMU in the
 * portable host. */
pid_t msb_vm_pid(const struct msb_vm *vm);

/* The VM connection's fd, for poll() (owned by @vm: never read or close
 * it): when it is readable, msb_exec_read() with a timeout of 0 may return
 * output; call it until -ETIMEDOUT before polling again, since one read
 * can take in output of several execs. */
int msb_vm_poll_fd(const struct msb_vm *vm);

/* Takes in what arrived on the VM connection without waiting (for a
 * caller that polls msb_vm_poll_fd() with no exec to read from): 0, or a
 * negative errno with @err set once the VM is gone (its VMM killed, the
 * guest crashed). */
int msb_vm_pump(struct msb_vm *vm, struct msb_err *err);

/* Round trip to the agent: sends a PING and waits for its PONG. Returns 0 or
 * a negative errno with @err set. */
int msb_vm_ping(struct msb_vm *vm, int timeout_ms, struct msb_err *err);

/*
 * Asks the guest to sync and power off, and waits for the VM to end. Running
 * execs are killed. Returns the VMM's exit status (0 when the guest powered
 * off cleanly, 1 when it crashed, 2 for a VMM error) or a negative errno
 * with @err set. The VM is unusable afterwards; free it with msb_vm_destroy().
 */
int msb_vm_stop(struct msb_vm *vm, int timeout_ms, struct msb_err *err);

/*
 * Snapshots the VM (started with opts.snapshot_to; no command may be
 * running): the agent closes the connection, msb-vmm saves the VM and ends,
 * and the file appears at snapshot_to, complete or not at all (written
 * under a temporary name, synced, renamed). The VM is over afterwards; free
 * it with msb_vm_destroy(). Returns 0 or a negative errno with @err set.
 */
int msb_vm_snapshot(struct msb_vm *vm, int timeout_ms, struct msb_err *err);

/* Kills the VM if it still runs, frees @vm and every exec on it (their
 * pointers become invalid). The log is kept (under $MSB_HOME/log/) when the
 * VM failed, and removed otherwise. NULL is a no-op. */
void msb_vm_destroy(struct msb_vm *vm);

struct msb_exec_opts {
	size_t size;             /* sizeof(struct msb_exec_opts); callers built before
	                            `user` existed pass a size without it */
	const char *const *argv; /* NULL-terminated, argv[0] non-empty; searched in
	                            the env's PATH when it has no '/' */
	const char *const *env;  /* NULL-terminated "K=V"; NULL: PATH and HOME defaults
	                            (without HOME when `user` is set: it gives one) */
	const char *cwd;         /* absolute; NULL: "/" */
	uint32_t uid, gid;       /* in the guest; 0: root. Ignored when `user` is set */
	int tty;                 /* run on a pseudo-terminal: one output stream (stdout) */
	unsigned rows, cols;     /* the terminal's size with tty; 0: unknown */
	int with_stdin;          /* 1: the caller writes stdin (msb_exec_write);
	                            0: stdin is empty */
	int start_timeout_ms;    /* until the command runs; 0: 60000 */
	/* As Docker's --user and an image's User: "NAME", "UID", "NAME:GROUP",
	 * "UID:GID", "NAME:GID" or "UID:GROUP", resolved by the agent in the
	 * sandbox's root (the image's /etc/passwd and /etc/group, with runc's
	 * rules). A name must exist (else msb_exec_start() fails with -ENOENT,
	 * "unable to find user NAME: no matching entries in passwd file"); a
	 * number need not (then gid 0 unless a group is given); numbers are
	 * 0..2^31-1. Supplementary groups: without a group, the primary gid and
	 * every group listing the user's name; with one, that group alone. HOME
	 * is the user's passwd home ("/" when unknown) unless the env has one.
	 * NULL or "": uid and gid as given. At most 64 KiB. */
	const char *user;
};

enum msb_stream {
	MSB_STDOUT = 1,
	MSB_STDERR = 2,
};

/* How an exec ended. */
struct msb_exit {
	int signaled; /* 0: exited with `code`; 1: killed by signal `signo` */
	int code;     /* 0..255 */
	int signo;    /* 1..64 */
	int core_dumped;
};

struct msb_exec;

/*
 * Starts a command in @vm and waits until it runs. Returns 0 and *out (free
 * with msb_exec_free(); it also goes with msb_vm_destroy()), or a negative
 * errno with @err set: -ENOENT when the program or the user does not exist,
 * -EACCES, etc. as the guest reported them ("cannot run nope: No such file
 * or directory"), -EINVAL for bad options, -ETIMEDOUT or -EINTR while
 * waiting (the command is then killed if it starts later), or the VM's
 * error.
 */
int msb_exec_start(struct msb_vm *vm, const struct msb_exec_opts *opts, struct msb_exec **out,
                   struct msb_err *err);

/* The command's pid in the guest. */
uint32_t msb_exec_pid(const struct msb_exec *x);

/*
 * Writes all @len bytes of @buf to the command's stdin, waiting for flow
 * control as needed. Returns 0 or a negative errno with @err set: -EPIPE
 * when stdin was not requested or already closed, -ETIMEDOUT, or the VM's
 * error. Bytes written after the command stopped reading are dropped.
 */
int msb_exec_write(struct msb_exec *x, const void *buf, size_t len, int timeout_ms,
                   struct msb_err *err);

/*
 * Like msb_exec_write() without waiting: sends as much of @buf as flow
 * control allows now and returns how many bytes that was (0: none yet; try
 * again when msb_vm_poll_fd() is readable), or a negative errno with @err
 * set. For callers that serve several commands from one loop.
 */
ssize_t msb_exec_write_some(struct msb_exec *x, const void *buf, size_t len, struct msb_err *err);

/* Ends the command's stdin (it reads end of file). Returns 0 or a negative
 * errno with @err set. */
int msb_exec_close_stdin(struct msb_exec *x, struct msb_err *err);

/*
 * Reads the command's output: waits until either stream has bytes, then
 * copies up to @len of them into @buf and sets *stream (MSB_STDOUT or
 * MSB_STDERR). Returns the count (> 0), 0 once both streams ended and all
 * was read, or a negative errno with @err set (-ETIMEDOUT, -EINTR, the VM's
 * error). Output not read holds the command back (flow control) but never
 * other commands.
 */
ssize_t msb_exec_read(struct msb_exec *x, int *stream, void *buf, size_t len, int timeout_ms,
                      struct msb_err *err);

/* Sends signal @signo (1..64, Linux numbering) to the command. Returns 0,
 * -ESRCH when it already ended, or a negative errno with @err set. */
int msb_exec_signal(struct msb_exec *x, int signo, struct msb_err *err);

/* Tells a tty command its terminal's new size. Returns 0 or a negative
 * errno with @err set (-ENOTTY without a tty). */
int msb_exec_resize(struct msb_exec *x, unsigned rows, unsigned cols, struct msb_err *err);

/*
 * Waits for the command to end and fills @st. Output not read by then is
 * discarded (read to end of stream first to keep it). Returns 0 or a negative
 * errno with @err set.
 */
int msb_exec_wait(struct msb_exec *x, int timeout_ms, struct msb_exit *st, struct msb_err *err);

/* Frees @x. A command still running is killed (SIGKILL). NULL is a no-op. */
void msb_exec_free(struct msb_exec *x);

/* ---- Paths ------------------------------------------------------------ */

/* $MSB_HOME, default $XDG_DATA_HOME/msb (~/.local/share/msb). */
int msb_home(char *buf, size_t len);
/* $XDG_CACHE_HOME/msb, default ~/.cache/msb. */
int msb_cache_dir(char *buf, size_t len);
/* The directory of msb's own files (phost image, test guest): $MSB_SHARE_DIR
 * or <dir of the running executable>/../share/msb. */
int msb_share_dir(char *buf, size_t len);

/* Helper programs (msb-kvm-smoke; later msb-vmm): $MSB_LIBEXEC_DIR or
 * <dir of the running executable>/../libexec/msb. */
int msb_libexec_dir(char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
