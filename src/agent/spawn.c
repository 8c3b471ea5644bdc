/* Starting an exec's process: see spawn.h. */
#include "spawn.h"
#include "user.h"

#include <errno.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* What the child reports through the status pipe when it cannot exec: one
 * write below PIPE_BUF, so it arrives whole. */
struct child_fail {
	int err;
	char what[32];
	char msg[PROTO_MAX_ERROR_MSG + 1]; /* when set, the whole message */
};
_Static_assert(sizeof(struct child_fail) <= PIPE_BUF, "one atomic write");

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

static void child_fail_msg(int st, int err, const char *what, const char *msg)
{
	struct child_fail f = {.err = err};
	snprintf(f.what, sizeof(f.what), "%s", what);
	snprintf(f.msg, sizeof(f.msg), "%s", msg);
	if (write(st, &f, sizeof(f)) < 0) {
		/* nobody to tell: the parent sees a short read and reports EPIPE */
	}
	_exit(127);
}

static void child_fail(int st, const char *what)
{
	child_fail_msg(st, errno, what, "");
}

/* In the child, in the root: the user's ids, groups and HOME, from the
 * image's /etc/passwd and /etc/group. */
static void child_user(const struct proto_exec *m, int st, char ***envp)
{
	struct user_ids ids;
	char msg[PROTO_MAX_ERROR_MSG + 1];
	int e = user_lookup(m->user, &ids, msg, sizeof(msg));
	if (e < 0)
		child_fail_msg(st, -e, "find the user", msg);
	/* EPERM: the agent runs unprivileged (tests on the host) and has none */
	if (setgroups(ids.ngroups, ids.groups) < 0 && errno != EPERM)
		child_fail(st, "setgroups");
	if (setresgid(ids.gid, ids.gid, ids.gid) < 0)
		child_fail(st, "setgid");
	if (setresuid(ids.uid, ids.uid, ids.uid) < 0)
		child_fail(st, "setuid");
	if (!(*envp = user_env(*envp, ids.home))) {
		errno = ENOMEM;
		child_fail(st, "set HOME");
	}
}

/* In the child: make the fds 0..2, credentials, cwd, then exec. */

/* mkdir -p @path (absolute, at most PATH_MAX), 0755: 0 or -1 with errno. */
static int make_dirs(const char *path)
{
	char p[4096];
	size_t n = strlen(path);
	if (n >= sizeof(p)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(p, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != 0)
			continue;
		char c = p[i];
		p[i] = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -1;
		p[i] = c;
	}
	return 0;
}

static void child_run(const struct proto_exec *m, const char *root, int in, int out, int err,
                      const char *pts, int st)
{
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	if (setsid() < 0)
		child_fail(st, "setsid");
	if (pts) {
		int t = open(pts, O_RDWR);
		if (t < 0)
			child_fail(st, "open the terminal");
		if (ioctl(t, TIOCSCTTY, 0) < 0)
			child_fail(st, "take the terminal");
		in = out = err = t;
	}
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		child_fail(st, "set up stdio");
	/* the terminal is open already: it lives in the agent's /dev/pts */
	if (root && (chroot(root) < 0 || chdir("/") < 0))
		child_fail(st, "chroot");
	/* As Docker (runc) does: a working directory the image lacks is made,
	 * by root, before the command's user takes over. */
	if (root && make_dirs(m->cwd) < 0)
		child_fail(st, "chdir");
	char **envp = (char **)m->envp;
	if (m->user) {
		child_user(m, st, &envp);
	} else {
		/* EPERM: the agent runs unprivileged (tests on the host) and has none */
		if (setgroups(0, NULL) < 0 && errno != EPERM)
			child_fail(st, "setgroups");
		if (setresgid(m->gid, m->gid, m->gid) < 0)
			child_fail(st, "setgid");
		if (setresuid(m->uid, m->uid, m->uid) < 0)
			child_fail(st, "setuid");
	}
	if (chdir(m->cwd) < 0)
		child_fail(st, "chdir");
	/* execvp searches the PATH of the environment the process gets */
	extern char **environ;
	environ = envp;
	execvp(m->argv[0], (char *const *)m->argv);
	child_fail(st, "run");
}

static int open_pty(const struct proto_exec *m, int *master, char *pts, size_t ptslen)
{
	int fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (grantpt(fd) < 0 || unlockpt(fd) < 0 || ptsname_r(fd, pts, ptslen) != 0) {
		int e = -errno;
		close(fd);
		return e ? e : -EIO;
	}
	if (m->rows && m->cols) {
		struct winsize ws = {.ws_row = m->rows, .ws_col = m->cols};
		ioctl(fd, TIOCSWINSZ, &ws);
	}
	*master = fd;
	return 0;
}

int spawn_exec(const struct proto_exec *m, const char *root, struct spawned *s, char *msg,
               size_t msglen)
{
	/* parent-side ends [0], child-side ends [1] */
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, st[2] = {-1, -1};
	int master = -1, e = 0;
	char pts[64] = "";
	const char *what = "create pipes";
	if (pipe2(st, O_CLOEXEC) < 0)
		goto fail_errno;
	if (m->flags & PROTO_EXEC_TTY) {
		what = "open a pseudo-terminal";
		if ((e = open_pty(m, &master, pts, sizeof(pts))) < 0)
			goto fail;
		in[0] = (m->flags & PROTO_EXEC_STDIN) ? fcntl(master, F_DUPFD_CLOEXEC, 3) : -1;
		out[0] = master;
		master = -1;
		if ((m->flags & PROTO_EXEC_STDIN) && in[0] < 0)
			goto fail_errno;
	} else {
		int p[2];
		if (m->flags & PROTO_EXEC_STDIN) {
			if (pipe2(p, O_CLOEXEC) < 0)
				goto fail_errno;
			in[0] = p[1], in[1] = p[0];
		} else if ((in[1] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
			what = "open /dev/null";
			goto fail_errno;
		}
		if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
			goto fail_errno;
		/* pipe2 gave [0]=read (ours), [1]=write (the child's): as wanted */
	}
	int ours[] = {in[0], out[0], err[0]};
	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
		if (ours[i] >= 0 && set_nonblock(ours[i]) < 0) {
			what = "set up the streams";
			goto fail_errno;
		}
	pid_t pid = fork();
	if (pid < 0) {
		what = "fork";
		goto fail_errno;
	}
	if (pid == 0)
		child_run(m, root, in[1], out[1], err[1], pts[0] ? pts : NULL, st[1]);
	close_fd(&st[1]);
	close_fd(&in[1]);
	close_fd(&out[1]);
	close_fd(&err[1]);
	struct child_fail f;
	ssize_t n;
	do
		n = read(st[0], &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	close_fd(&st[0]);
	if (n != 0) {
		/* the child failed before or in execve and exits 127; reap it */
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		if (n == (ssize_t)sizeof(f) && f.msg[0]) {
			f.msg[sizeof(f.msg) - 1] = 0;
			snprintf(msg, msglen, "%s", f.msg);
			e = f.err > 0 && f.err <= PROTO_MAX_ERRNO ? -f.err : -EIO;
		} else if (n == (ssize_t)sizeof(f)) {
			f.what[sizeof(f.what) - 1] = 0;
			const char *obj = !strcmp(f.what, "run")     ? m->argv[0]
			                  : !strcmp(f.what, "chdir") ? m->cwd
			                                             : NULL;
			snprintf(msg, msglen, "cannot %s%s%s: %s",
			         !strcmp(f.what, "chdir") ? "change to" : f.what, obj ? " " : "",
			         obj ? obj : "", strerror(f.err));
			e = f.err > 0 && f.err <= PROTO_MAX_ERRNO ? -f.err : -EIO;
		} else {
			snprintf(msg, msglen, "the process failed before it started");
			e = -EIO;
		}
		goto out_close;
	}
	s->pid = pid;
	s->in = in[0];
	s->out = out[0];
	s->err = err[0];
	return 0;

fail_errno:
	e = -errno;
fail:
	snprintf(msg, msglen, "cannot %s: %s", what, strerror(-e));
out_close:
	close_fd(&master);
	for (int i = 0; i < 2; i++) {
		close_fd(&in[i]);
		close_fd(&out[i]);
		close_fd(&err[i]);
		close_fd(&st[i]);
	}
	return e;
}
