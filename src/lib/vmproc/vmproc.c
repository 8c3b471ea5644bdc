/*
 * Starting the VMM-side program natively or inside a portable host, with one
 * byte stream to it, and telling the caller plainly how it ended.
 */
#include "msb.h"
#include "argbuf.h"
#include "err.h"
#include "fsutil.h"
#include "clock.h"
#include "phost_cmd.h"
#include "rundir.h"
#include "vmproc_int.h"
#include "vsock_uds.h"
#include "../../phost/status.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STOP_GRACE_MS    2000
#define VSOCK_CONNECT_MS 120000 /* a cold boot in the portable host takes seconds */

const char *msb_vm_file_path(enum msb_host_mode mode, const struct msb_vm_file *f, char *buf,
                             size_t len)
{
	int e = mode == MSB_HOST_PORTABLE ? fs_path(buf, len, "/files/%s", f->name)
	                                  : fs_path(buf, len, "%s", f->path);
	return e ? NULL : buf;
}

int msb_vmproc_stream(const struct msb_vmproc *p)
{
	return p->stream_fd;
}

const char *msb_vmproc_log(const struct msb_vmproc *p)
{
	return p->rd.log;
}

pid_t msb_vmproc_pid(const struct msb_vmproc *p)
{
	return p->pid;
}

/* In the child, before exec: die with the parent, put @stream at @fds and
 * @extra where it says, diagnostics into @log, close everything else. Never
 * returns on failure. */
static void child_setup(pid_t parent, int stream, const int *fds, int nfds,
                        const struct fdmap *extra, int nextra, const char *log, int fail)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(fail);
	int logfd = open(log, O_WRONLY | O_APPEND | O_CLOEXEC);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (logfd < 0 || null < 0)
		_exit(fail);
	/* Move the sources above every target so dup2 order cannot clobber. */
	int s = fcntl(stream, F_DUPFD_CLOEXEC, 16), l = fcntl(logfd, F_DUPFD_CLOEXEC, 16),
	    n = fcntl(null, F_DUPFD_CLOEXEC, 16);
	if (s < 0 || l < 0 || n < 0)
		_exit(fail);
	int moved[8];
	if (nextra > 8)
		_exit(fail);
	for (int i = 0; i < nextra; i++)
		if ((moved[i] = fcntl(extra[i].src, F_DUPFD_CLOEXEC, 16)) < 0)
			_exit(fail);
	if (dup2(n, STDIN_FILENO) < 0 || dup2(l, STDOUT_FILENO) < 0 || dup2(l, STDERR_FILENO) < 0)
		_exit(fail);
	for (int i = 0; i < nfds; i++)
		if (dup2(s, fds[i]) < 0)
			_exit(fail);
	for (int i = 0; i < nextra; i++)
		if (dup2(moved[i], extra[i].dst) < 0)
			_exit(fail);
	signal(SIGPIPE, SIG_DFL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* every other fd of ours is O_CLOEXEC */
}

/* @fail: the exit status when the program cannot be started. Natively the
 * shell's 127; for QEMU the 1 of its own start-up failures, which
 * decode_portable() reads as "did not start". */
int vmproc_spawn(struct msb_vmproc *p, char *const *argv, const int *fds, int nfds,
                 const struct fdmap *extra, int nextra, int fail, struct msb_err *err)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return err_set(err, -errno, "socketpair: %s", strerror(errno));
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int e = -errno;
		close(sv[0]);
		close(sv[1]);
		return err_set(err, e, "fork: %s", strerror(-e));
	}
	if (pid == 0) {
		close(sv[0]);
		child_setup(parent, sv[1], fds, nfds, extra, nextra, p->rd.log, fail);
		if (strchr(argv[0], '/'))
			execv(argv[0], argv);
		else
			execvp(argv[0], argv);
		dprintf(STDERR_FILENO, "msb: error: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(fail);
	}
	close(sv[1]);
	p->pid = pid;
	p->stream_fd = sv[0];
	return 0;
}

static int child_alive(void *arg)
{
	struct msb_vmproc *p = arg;
	return vmproc_reap(p, 0, 0) == -ETIMEDOUT;
}

static int start_native(struct msb_vmproc *p, const struct msb_vmproc_opts *o, struct msb_err *err)
{
	static const int fds[] = {STDIN_FILENO, STDOUT_FILENO};
	struct argbuf a;
	argbuf_init(&a);
	for (const char *const *s = o->argv; *s; s++)
		argbuf_push(&a, "%s", *s);
	if (a.overflow)
		return err_set(err, -E2BIG, "too many arguments for %s", o->argv[0]);
	if (!o->stream_vsock_port)
		return vmproc_spawn(p, a.argv, fds, 2, NULL, 0, 127,
		                    err); /* stdout is the stream */
	char uds[4200];
	if (fs_path(uds, sizeof(uds), "%s/vsock.sock", p->rd.path))
		return err_set(err, -ENAMETOOLONG, "the run dir path is too long");
	argbuf_push(&a, "--vsock");
	argbuf_push(&a, "%s", uds);
	if (a.overflow)
		return err_set(err, -E2BIG, "too many arguments for %s", o->argv[0]);
	int e = vmproc_spawn(p, a.argv, fds, 0, NULL, 0, 127, err);
	if (e)
		return e;
	close(p->stream_fd); /* the program's stdio is not the stream here */
	p->stream_fd = -1;
	char why[300];
	int fd = vsock_uds_connect(uds, o->stream_vsock_port, VSOCK_CONNECT_MS, child_alive, p, why,
	                           sizeof(why));
	if (fd < 0) {
		kill(p->pid, SIGKILL);
		vmproc_reap(p, -1, 0);
		return err_set(err, fd, "%s; see %s", why, p->rd.log);
	}
	p->stream_fd = fd;
	return 0;
}

/* MSB_PHOST_SNAPSHOTS=0 boots every portable host (for comparisons). */
static int phost_snapshots_off(void)
{
	const char *v = getenv("MSB_PHOST_SNAPSHOTS");
	return v && !strcmp(v, "0");
}

static int start_portable(struct msb_vmproc *p, const struct msb_vmproc_opts *o,
                          struct msb_err *err)
{
	static const int fds[] = {PHOST_STREAM_FD};
	char dir[4096], kernel[4096], initrd[4096];
	/* MSB_PHOST_DIR picks another image, e.g. the benchmarks' one with QEMU
	 * inside (phost/build-bench-image) */
	const char *env = getenv("MSB_PHOST_DIR");
	int e = 0;
	if (env && *env) {
		if (fs_path(dir, sizeof(dir), "%s", env))
			return err_set(err, -ENAMETOOLONG, "MSB_PHOST_DIR is too long");
	} else if ((e = msb_share_dir(dir, sizeof(dir))) ||
	           fs_path(dir + strlen(dir), sizeof(dir) - strlen(dir), "/phost"))
		return err_set(err, e ? e : -ENAMETOOLONG, "cannot find msb's share directory");
	if (fs_path(kernel, sizeof(kernel), "%s/vmlinuz", dir) ||
	    fs_path(initrd, sizeof(initrd), "%s/initramfs.cpio", dir))
		return err_set(err, -ENAMETOOLONG, "the portable host image path is too long");
	if (access(kernel, R_OK) < 0 || access(initrd, R_OK) < 0)
		return err_set(err, -ENOENT,
		               env && *env ? "no portable host image (vmlinuz, initramfs.cpio) in "
		                             "%s, which MSB_PHOST_DIR names"
		                           : "the portable host image is not installed (no %s/): "
		                             "build it with ./setup or make",
		               dir);
	for (size_t i = 0; i < o->nfiles; i++)
		if (access(o->files[i].path, R_OK) < 0)
			return err_set(err, -errno, "cannot read %s: %s", o->files[i].path,
			               strerror(errno));
	const char *qemu = getenv("MSB_QEMU");
	struct phost_cmd c = {
	    .qemu = qemu && *qemu ? qemu : "qemu-system-x86_64",
	    .kernel = kernel,
	    .initramfs = initrd,
	    .log = p->rd.log,
	    .mem_mib = o->mem_mib,
	    .argv = o->argv,
	    .files = o->files,
	    .nfiles = o->nfiles,
	    .vsock_port = o->stream_vsock_port,
	};
	if (o->phost_snapshot && !phost_snapshots_off())
		return phost_snap_start(p, &c, o->phost_snapshot, o->progress, o->progress_arg,
		                        err);
	struct argbuf a;
	e = phost_cmd_build(&c, &a, err);
	if (e)
		return e;
	return vmproc_spawn(p, a.argv, fds, 1, NULL, 0, 1, err);
}

int msb_vmproc_start(const struct msb_vmproc_opts *o, struct msb_vmproc **out, struct msb_err *err)
{
	*out = NULL;
	if (!o || o->size < sizeof(*o) || !o->argv || !o->argv[0])
		return err_set(err, -EINVAL, "msb_vmproc_start: bad options");
	if (o->mode != MSB_HOST_NATIVE && o->mode != MSB_HOST_PORTABLE)
		return err_set(err, -EINVAL, "msb_vmproc_start: unknown host mode %d", o->mode);
	if (o->nfiles > PHOST_MAX_FILES)
		return err_set(err, -EINVAL, "at most %d files", PHOST_MAX_FILES);
	struct msb_vmproc *p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(err, -ENOMEM, "out of memory");
	p->mode = o->mode;
	p->pid = -1;
	p->stream_fd = -1;
	snprintf(p->prog, sizeof(p->prog), "%s", o->argv[0]);
	int e = rundir_create(&p->rd, o->name ? o->name : "vm", err);
	if (e) {
		free(p);
		return e;
	}
	e = o->mode == MSB_HOST_NATIVE ? start_native(p, o, err) : start_portable(p, o, err);
	if (e) {
		rundir_remove(&p->rd, 0);
		free(p);
		return e;
	}
	*out = p;
	return 0;
}

/* The last line of the log that says "error", else its last line. */
static void log_reason(const char *log, char *buf, size_t len)
{
	enum { LOG_TAIL = 65536 };
	buf[0] = 0;
	char *text = malloc(LOG_TAIL);
	if (!text)
		return;
	if (fs_read_small(log, text, LOG_TAIL) <= 0) {
		free(text);
		return;
	}
	char *best = NULL, *last = NULL, *save = NULL;
	for (char *line = strtok_r(text, "\r\n", &save); line;
	     line = strtok_r(NULL, "\r\n", &save)) {
		while (*line == ' ')
			line++;
		if (!*line)
			continue;
		last = line;
		if (strstr(line, "error"))
			best = line;
	}
	if (best || last)
		snprintf(buf, len, "%s", best ? best : last);
	free(text);
}

int vmproc_reap(struct msb_vmproc *p, int timeout_ms, int interruptible)
{
	long deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
	for (;;) {
		int st;
		pid_t r = waitpid(p->pid, &st, WNOHANG);
		if (r == p->pid) {
			p->exited = 1;
			p->wait_status = st;
			return 0;
		}
		if (r < 0 && errno != EINTR)
			return -errno;
		if (deadline >= 0 && mono_ms() >= deadline)
			return -ETIMEDOUT;
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000000L};
		if (nanosleep(&ts, NULL) < 0 && errno == EINTR && interruptible)
			return -EINTR;
	}
}

static int decode_portable(struct msb_vmproc *p, struct msb_err *err)
{
	int st = p->wait_status;
	char why[300];
	log_reason(p->rd.log, why, sizeof(why));
	if (WIFSIGNALED(st))
		return err_set(err, -ECHILD,
		               "the portable host stopped unexpectedly (QEMU was killed by signal "
		               "%d); see %s",
		               WTERMSIG(st), p->rd.log);
	int c = WEXITSTATUS(st);
	if (c == 0)
		return err_set(
		    err, -ECHILD,
		    "the portable host shut down without reporting a result (%s); see %s",
		    why[0] ? why : "no message", p->rd.log);
	if (!(c & 1) || c < 3)
		return err_set(err, -ECHILD, "the portable host did not start: %s; see %s",
		               why[0] ? why : "QEMU failed", p->rd.log);
	int v = c >> 1;
	if (v >= PHOST_V_EXITED && v <= PHOST_V_EXITED + PHOST_MAX_STATUS)
		return v - PHOST_V_EXITED;
	if (v == PHOST_V_HIGH)
		return 255;
	if (v == PHOST_V_SIGNALED)
		return err_set(err, -ECHILD,
		               "%s was killed by a signal in the portable host; see %s", p->prog,
		               p->rd.log);
	return err_set(err, -ECHILD, "the portable host did not start %s: %s; see %s", p->prog,
	               why[0] ? why : "unknown error", p->rd.log);
}

int msb_vmproc_wait(struct msb_vmproc *p, int timeout_ms, struct msb_err *err)
{
	if (!p->exited) {
		int e = vmproc_reap(p, timeout_ms, 1);
		if (e == -ETIMEDOUT)
			return err_set(err, e, "%s did not finish within %d s; see %s",
			               p->mode == MSB_HOST_PORTABLE ? "the portable host" : p->prog,
			               timeout_ms / 1000, p->rd.log);
		if (e == -EINTR)
			return err_set(err, e, "interrupted");
		if (e)
			return err_set(err, e, "waitpid: %s", strerror(-e));
	}
	if (p->mode == MSB_HOST_PORTABLE)
		return decode_portable(p, err);
	if (WIFEXITED(p->wait_status))
		return WEXITSTATUS(p->wait_status);
	return err_set(err, -ECHILD, "%s was killed by signal %d; see %s", p->prog,
	               WTERMSIG(p->wait_status), p->rd.log);
}

void vmproc_kill(struct msb_vmproc *p)
{
	if (p->stream_fd >= 0)
		close(p->stream_fd);
	p->stream_fd = -1;
	if (p->pid > 0 && !p->exited) {
		kill(p->pid, SIGTERM);
		if (vmproc_reap(p, STOP_GRACE_MS, 0) < 0) {
			kill(p->pid, SIGKILL);
			vmproc_reap(p, -1, 0);
		}
	}
}

void msb_vmproc_destroy(struct msb_vmproc *p, int keep_log)
{
	if (!p)
		return;
	vmproc_kill(p);
	rundir_remove(&p->rd, keep_log);
	free(p);
}
