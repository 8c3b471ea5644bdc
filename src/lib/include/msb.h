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
