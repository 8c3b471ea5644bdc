/*
 * The agent's session and libmsb's connection, against each other and
 * against hostile peers, over a socketpair on the host (no VM): the agent
 * runs in a forked child exactly as PID 1 runs it, with the host's /bin/sh.
 * Under ASan/UBSan like every unit test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/root.h"
#include "agent/session.h"
#include "lib/vm/vm_int.h"
#include "proto/proto.h"

#define T_MS 20000

struct agent {
	pid_t pid;
	struct msb_vm *vm;
};

/* Forks an agent serving one end of a socketpair, with @root as its image
 * root when it is set; attaches libmsb to the other end. */
static void agent_start_root(struct agent *a, const char *root)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	a->pid = fork();
	assert_true(a->pid >= 0);
	if (a->pid == 0) {
		close(sv[0]);
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGCHLD);
		sigprocmask(SIG_BLOCK, &set, NULL);
		signal(SIGPIPE, SIG_IGN);
		int sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
		struct agent_root r_ = {0};
		if (root) {
			/* a SET_HOSTNAME must not rename the machine the test runs on */
			if (unshare(CLONE_NEWUTS) < 0 && getuid() == 0)
				_exit(5);
			r_.mounted = 1;
			snprintf(r_.path, sizeof(r_.path), "%s", root);
		}
		int r = session_run(sv[1], sigfd, &r_);
		_exit(r == 1 ? 0 : r == 0 ? 3 : 4);
	}
	close(sv[1]);
	struct msb_err err = {0};
	int e = vm_attach_fd(sv[0], T_MS, &a->vm, &err);
	if (e)
		fail_msg("attach: %s", err.msg);
}

static void agent_start(struct agent *a)
{
	agent_start_root(a, NULL);
}

/* Shuts the agent down; returns its exit status (0 after a SHUTDOWN). */
static int agent_stop(struct agent *a)
{
	struct msb_err err = {0};
	int r = msb_vm_stop(a->vm, T_MS, &err);
	if (r)
		fail_msg("stop: %s", err.msg);
	msb_vm_destroy(a->vm);
	int st;
	assert_int_equal(waitpid(a->pid, &st, 0), a->pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void opts_init(struct msb_exec_opts *o, const char *const *argv)
{
	*o = (struct msb_exec_opts){
	    .size = sizeof(*o), .argv = argv, .uid = getuid(), .gid = getgid()};
}

/* Runs to the end; collects stdout and stderr into @out and @err_out. */
static struct msb_exit run(struct msb_vm *vm, const char *const *argv, const void *in, size_t inlen,
                           char *out, size_t outcap, char *errout, size_t errcap)
{
	struct msb_exec_opts o;
	opts_init(&o, argv);
	o.with_stdin = in != NULL;
	struct msb_exec *x;
	struct msb_err err = {0};
	if (msb_exec_start(vm, &o, &x, &err))
		fail_msg("exec: %s", err.msg);
	if (in) {
		assert_int_equal(msb_exec_write(x, in, inlen, T_MS, &err), 0);
		assert_int_equal(msb_exec_close_stdin(x, &err), 0);
	}
	size_t no = 0, ne = 0;
	char buf[65536];
	for (;;) {
		int st;
		ssize_t n = msb_exec_read(x, &st, buf, sizeof(buf), T_MS, &err);
		if (n < 0)
			fail_msg("read: %s", err.msg);
		if (n == 0)
			break;
		char *dst = st == MSB_STDOUT ? out : errout;
		size_t *used = st == MSB_STDOUT ? &no : &ne;
		size_t cap = st == MSB_STDOUT ? outcap : errcap;
		size_t k = (size_t)n < cap - 1 - *used ? (size_t)n : cap - 1 - *used;
		memcpy(dst + *used, buf, k);
		*used += k;
	}
	out[no] = errout[ne] = 0;
	struct msb_exit ex;
	assert_int_equal(msb_exec_wait(x, T_MS, &ex, &err), 0);
	msb_exec_free(x);
	return ex;
}

static void test_streams_and_exit_codes(void **state)
{
	(void)state;
	struct agent a;
	agent_start(&a);
	char out[256], err[256];
	const char *const sh[] = {"/bin/sh", "-c", "echo out; echo err >&2; exit 3", NULL};
	struct msb_exit ex = run(a.vm, sh, NULL, 0, out, sizeof(out), err, sizeof(err));
	assert_int_equal(ex.signaled, 0);
	assert_int_equal(ex.code, 3);
	assert_string_equal(out, "out\n");
	assert_string_equal(err, "err\n");
	const char *const kill_self[] = {"/bin/sh", "-c", "kill -9 $$", NULL};
	ex = run(a.vm, kill_self, NULL, 0, out, sizeof(out), err, sizeof(err));
	assert_int_equal(ex.signaled, 1);
	assert_int_equal(ex.signo, 9);
	assert_int_equal(agent_stop(&a), 0);
}

static void test_stdin_beyond_the_initial_credit(void **state)
{
	(void)state;
	struct agent a;
	agent_start(&a);
	size_t len = 3 * PROTO_INITIAL_CREDIT + 17;
	char *in = malloc(len);
	assert_non_null(in);
	for (size_t i = 0; i < len; i++)
		in[i] = (char)('a' + i % 26);
	char out[64], err[64];
	const char *const wc[] = {"/bin/sh", "-c", "wc -c", NULL};
	struct msb_exit ex = run(a.vm, wc, in, len, out, sizeof(out), err, sizeof(err));
	assert_int_equal(ex.code, 0);
	assert_int_equal(strtoul(out, NULL, 10), len);
	free(in);
	assert_int_equal(agent_stop(&a), 0);
}

static void test_missing_program_and_signal(void **state)
{
	(void)state;
	struct agent a;
	agent_start(&a);
	struct msb_exec_opts o;
	const char *const nope[] = {"/no/such/program", NULL};
	opts_init(&o, nope);
	struct msb_exec *x;
	struct msb_err err = {0};
	assert_int_equal(msb_exec_start(a.vm, &o, &x, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "/no/such/program"));
	const char *const sleep_[] = {"/bin/sleep", "600", NULL};
	opts_init(&o, sleep_);
	assert_int_equal(msb_exec_start(a.vm, &o, &x, &err), 0);
	assert_true(msb_exec_pid(x) > 0);
	assert_int_equal(msb_exec_signal(x, 15, &err), 0);
	struct msb_exit ex;
	assert_int_equal(msb_exec_wait(x, T_MS, &ex, &err), 0);
	assert_int_equal(ex.signo, 15);
	assert_int_equal(msb_exec_signal(x, 15, &err), -ESRCH);
	msb_exec_free(x);
	/* freed while running: killed, and the connection goes on */
	opts_init(&o, sleep_);
	assert_int_equal(msb_exec_start(a.vm, &o, &x, &err), 0);
	msb_exec_free(x);
	assert_int_equal(msb_vm_ping(a.vm, T_MS, &err), 0);
	assert_int_equal(agent_stop(&a), 0);
}

/* Runs @argv as @user with @env to the end; its stdout in @out. */
static struct msb_exit run_as(struct msb_vm *vm, size_t size, const char *user,
                              const char *const *env, const char *const *argv, char *out,
                              size_t cap)
{
	struct msb_exec_opts o;
	opts_init(&o, argv);
	o.size = size;
	o.user = user;
	o.env = env;
	struct msb_exec *x;
	struct msb_err err = {0};
	if (msb_exec_start(vm, &o, &x, &err))
		fail_msg("exec: %s", err.msg);
	size_t used = 0;
	char buf[4096];
	int st;
	ssize_t n;
	while ((n = msb_exec_read(x, &st, buf, sizeof(buf), T_MS, &err)) > 0)
		if (st == MSB_STDOUT) {
			size_t k = (size_t)n < cap - 1 - used ? (size_t)n : cap - 1 - used;
			memcpy(out + used, buf, k);
			used += k;
		}
	assert_int_equal(n, 0);
	out[used] = 0;
	struct msb_exit ex;
	assert_int_equal(msb_exec_wait(x, T_MS, &ex, &err), 0);
	msb_exec_free(x);
	return ex;
}

/* A user resolved by the agent (here in the host's /etc/passwd: no root is
 * mounted): its ids, HOME, and the start error for one that is missing. */
static void test_exec_user(void **state)
{
	(void)state;
	struct agent a;
	agent_start(&a);
	struct msb_exec_opts o;
	const char *const sh[] = {"/bin/sh", "-c", "echo \"$HOME\" $(id -u) $(id -g)", NULL};
	const char *const path[] = {"PATH=/usr/bin:/bin", NULL};
	const char *const home[] = {"PATH=/usr/bin:/bin", "HOME=/given", NULL};
	opts_init(&o, sh);
	o.user = "nosuch-msb-user";
	struct msb_exec *x;
	struct msb_err err = {0};
	assert_int_equal(msb_exec_start(a.vm, &o, &x, &err), -ENOENT);
	assert_string_equal(
	    err.msg, "unable to find user nosuch-msb-user: no matching entries in passwd file");
	o.user = "0:nosuch-msb-group";
	assert_int_equal(msb_exec_start(a.vm, &o, &x, &err), -ENOENT);
	assert_string_equal(
	    err.msg, "unable to find group nosuch-msb-group: no matching entries in group file");
	o.user = "99999999999";
	assert_int_equal(msb_exec_start(a.vm, &o, &x, &err), -ERANGE);

	/* ourselves by number: who we are, HOME from passwd unless given */
	char user[64], want[4200], out[4200];
	snprintf(user, sizeof(user), "%u:%u", (unsigned)getuid(), (unsigned)getgid());
	struct passwd *pw = getpwuid(getuid());
	snprintf(want, sizeof(want), "%s %u %u\n", pw && pw->pw_dir[0] ? pw->pw_dir : "/",
	         (unsigned)getuid(), (unsigned)getgid());
	struct msb_exit ex = run_as(a.vm, sizeof(o), user, path, sh, out, sizeof(out));
	assert_int_equal(ex.code, 0);
	assert_string_equal(out, want);
	snprintf(want, sizeof(want), "/given %u %u\n", (unsigned)getuid(), (unsigned)getgid());
	run_as(a.vm, sizeof(o), user, home, sh, out, sizeof(out));
	assert_string_equal(out, want);
	/* "" is no user; an older caller's opts end before `user` */
	run_as(a.vm, sizeof(o), "", home, sh, out, sizeof(out));
	assert_string_equal(out, want);
	run_as(a.vm, offsetof(struct msb_exec_opts, user), "nosuch-msb-user", home, sh, out,
	       sizeof(out));
	assert_string_equal(out, want);
	/* too small for even the older opts */
	opts_init(&o, sh);
	o.size = offsetof(struct msb_exec_opts, start_timeout_ms);
	assert_int_equal(msb_exec_start(a.vm, &o, &x, &err), -EINVAL);
	assert_int_equal(agent_stop(&a), 0);
}

static int read_text(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, cap - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = 0;
	return n < 0 ? -1 : 0;
}

static void assert_etc_file(const char *root, const char *name, const char *text)
{
	char path[256], buf[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s/etc/%s", root, name);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(read_text(path, buf, sizeof(buf)), 0);
	assert_string_equal(buf, text);
}

static void assert_etc(const char *root, const char *host)
{
	char hosts[256], name[80];
	snprintf(name, sizeof(name), "%s\n", host);
	snprintf(hosts, sizeof(hosts),
	         "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	         "127.0.1.1\t%s\n",
	         host);
	assert_etc_file(root, "hostname", name);
	assert_etc_file(root, "hosts", hosts);
	assert_etc_file(root, "resolv.conf", ROOT_RESOLV_CONF);
}

/* /etc/hostname, hosts and resolv.conf in a root: made, replaced, never
 * written through a link. */
static void test_root_etc_files(void **state)
{
	(void)state;
	char dir[] = "/tmp/msb-test-etc-XXXXXX", root[64], p[256], q[256], msg[256];
	assert_non_null(mkdtemp(dir));
	snprintf(root, sizeof(root), "%s/root", dir);
	assert_int_equal(mkdir(root, 0755), 0);
	/* no /etc: made, 0755 */
	assert_int_equal(root_write_etc(root, "box-1", msg, sizeof(msg)), 0);
	struct stat st;
	snprintf(p, sizeof(p), "%s/etc", root);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_etc(root, "box-1");
	/* a symlink out of the root, a FIFO and a dangling link are replaced;
	 * the file outside is untouched */
	snprintf(q, sizeof(q), "%s/outside", dir);
	int fd = open(q, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "keep\n", 5), 5);
	close(fd);
	snprintf(p, sizeof(p), "%s/etc/resolv.conf", root);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(symlink(q, p), 0);
	snprintf(p, sizeof(p), "%s/etc/hosts", root);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(mkfifo(p, 0644), 0);
	snprintf(p, sizeof(p), "%s/etc/hostname", root);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(symlink("../../run/nowhere", p), 0);
	assert_int_equal(root_write_etc(root, "box-2", msg, sizeof(msg)), 0);
	assert_etc(root, "box-2");
	char buf[64];
	assert_int_equal(read_text(q, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "keep\n");
	/* an /etc that is a symlink resolves inside the root */
	snprintf(p, sizeof(p), "%s/etc", root);
	snprintf(q, sizeof(q), "%s/real-etc", root);
	assert_int_equal(rename(p, q), 0);
	assert_int_equal(symlink("/../real-etc", p), 0);
	assert_int_equal(root_write_etc(root, "box-3", msg, sizeof(msg)), 0);
	snprintf(p, sizeof(p), "%s/real-etc/hostname", root);
	assert_int_equal(read_text(p, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "box-3\n");
	/* one pointing out of the root is read inside it: there is no such
	 * directory, and nothing is written outside */
	snprintf(p, sizeof(p), "%s/etc", root);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(symlink(dir, p), 0);
	assert_int_equal(root_write_etc(root, "box-4", msg, sizeof(msg)), -ENOENT);
	assert_non_null(strstr(msg, "/etc"));
	snprintf(q, sizeof(q), "%s/hostname", dir);
	assert_int_equal(access(q, F_OK), -1);
	/* a directory in the way is an error, and leaves no temporary file */
	assert_int_equal(unlink(p), 0);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(q, sizeof(q), "%s/etc/hosts", root);
	assert_int_equal(mkdir(q, 0755), 0);
	assert_true(root_write_etc(root, "box-5", msg, sizeof(msg)) < 0);
	assert_non_null(strstr(msg, "/etc/hosts"));
	snprintf(q, sizeof(q), "%s/etc/.hosts.msb-new", root);
	assert_int_equal(access(q, F_OK), -1);

	/* a SET_HOSTNAME after the root is mounted rewrites the files */
	snprintf(q, sizeof(q), "%s/etc/hosts", root);
	assert_int_equal(rmdir(q), 0);
	struct agent a;
	agent_start_root(&a, root);
	struct msb_err err = {0};
	assert_int_equal(conn_send(a.vm, PROTO_SET_HOSTNAME, 0, "late-name", 9, &err), 0);
	assert_int_equal(msb_vm_ping(a.vm, T_MS, &err), 0);
	assert_etc(root, "late-name");
	assert_int_equal(agent_stop(&a), 0);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* ---- libmsb against a hostile agent ----------------------------------- */

/* A fake agent: the test writes its frames by hand. */
struct fake {
	int fd; /* the agent's end */
	struct msb_vm *vm;
};

static void send_frame(int fd, uint8_t type, uint32_t id, const void *p, uint32_t len)
{
	uint8_t b[PROTO_HDR_SIZE + 256];
	size_t n = proto_frame(b, sizeof(b), type, id, p, len);
	assert_true(n > 0);
	assert_int_equal(write(fd, b, n), (ssize_t)n);
}

static void send_hello(int fd)
{
	struct proto_hello h = {.version_min = 1, .version_max = 1};
	uint8_t b[PROTO_HELLO_FIXED + PROTO_MAX_NAME];
	int n = proto_hello_encode(&h, b, sizeof(b));
	send_frame(fd, PROTO_HELLO, 0, b, (uint32_t)n);
}

static void fake_start(struct fake *f)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->fd = sv[1];
	send_hello(f->fd);
	struct msb_err err = {0};
	assert_int_equal(vm_attach_fd(sv[0], T_MS, &f->vm, &err), 0);
}

static void fake_stop(struct fake *f)
{
	msb_vm_destroy(f->vm);
	close(f->fd);
}

/* The frame libmsb sent for exec 1 is on the wire; the fake answers READY. */
static struct msb_exec *fake_exec(struct fake *f)
{
	uint8_t b[PROTO_READY_SIZE];
	struct proto_ready r = {.pid = 42};
	proto_ready_encode(&r, b, sizeof(b));
	send_frame(f->fd, PROTO_READY, f->vm->next_id, b, sizeof(b));
	const char *const argv[] = {"x", NULL};
	struct msb_exec_opts o;
	opts_init(&o, argv);
	struct msb_exec *x;
	struct msb_err err = {0};
	assert_int_equal(msb_exec_start(f->vm, &o, &x, &err), 0);
	return x;
}

static int read_err(struct msb_exec *x, struct msb_err *err)
{
	char buf[16];
	int st;
	return (int)msb_exec_read(x, &st, buf, sizeof(buf), T_MS, err);
}

static void test_host_refuses_output_for_unknown_exec(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f);
	struct msb_exec *x = fake_exec(&f);
	send_frame(f.fd, PROTO_STDOUT, 99, "boo", 3);
	struct msb_err err = {0};
	assert_int_equal(read_err(x, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "broke the protocol"));
	/* every later call fails the same way */
	assert_int_equal(msb_vm_ping(f.vm, T_MS, &err), -EPROTO);
	fake_stop(&f);
}

static void test_host_refuses_output_beyond_credit(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f);
	struct msb_exec *x = fake_exec(&f);
	/* the whole initial credit, nothing read (so nothing granted again),
	 * then one byte more */
	/* more than a socket buffer holds: a child writes it */
	pid_t w = fork();
	assert_true(w >= 0);
	if (w == 0) {
		static uint8_t big[PROTO_HDR_SIZE + 65536];
		for (uint32_t sent = 0; sent < PROTO_INITIAL_CREDIT; sent += 65536) {
			size_t n = proto_frame(big, sizeof(big), PROTO_STDOUT, x->id,
			                       big + PROTO_HDR_SIZE, 65536);
			if (n != sizeof(big) || write(f.fd, big, n) != (ssize_t)n)
				_exit(1);
		}
		uint8_t one[PROTO_HDR_SIZE + 1];
		size_t n = proto_frame(one, sizeof(one), PROTO_STDOUT, x->id, "!", 1);
		_exit(write(f.fd, one, n) == (ssize_t)n ? 0 : 1);
	}
	/* the fake never answers the PING: only the violation ends the wait */
	struct msb_err err = {0};
	assert_int_equal(msb_vm_ping(f.vm, T_MS, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "credit"));
	fake_stop(&f);
	int st;
	assert_int_equal(waitpid(w, &st, 0), w);
}

static void test_host_refuses_exit_before_eof(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f);
	struct msb_exec *x = fake_exec(&f);
	uint8_t b[PROTO_EXIT_SIZE];
	struct proto_exit m = {0};
	proto_exit_encode(&m, b, sizeof(b));
	send_frame(f.fd, PROTO_EXIT, x->id, b, sizeof(b));
	struct msb_exit ex;
	struct msb_err err = {0};
	assert_int_equal(msb_exec_wait(x, T_MS, &ex, &err), -EPROTO);
	fake_stop(&f);
}

static void test_host_refuses_garbage_header(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f);
	struct msb_exec *x = fake_exec(&f);
	uint8_t junk[PROTO_HDR_SIZE] = {1, PROTO_STDOUT, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f};
	assert_int_equal(write(f.fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	struct msb_err err = {0};
	assert_int_equal(read_err(x, &err), -EPROTO);
	fake_stop(&f);
}

static void test_host_reports_a_closed_connection(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f);
	struct msb_exec *x = fake_exec(&f);
	shutdown(f.fd, SHUT_RDWR);
	struct msb_err err = {0};
	assert_int_equal(read_err(x, &err), -ECONNRESET);
	fake_stop(&f);
}

/* Reads what libmsb sent the fake so far; returns whether a frame of @type
 * for exec @id was among it. */
static int fake_saw(struct fake *f, uint8_t type, uint32_t id)
{
	struct proto_reader r;
	assert_int_equal(proto_reader_init(&r), 0);
	uint8_t buf[4096];
	ssize_t n;
	int seen = 0;
	while ((n = recv(f->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		size_t off = 0, used;
		while (off < (size_t)n) {
			assert_true(proto_reader_feed(&r, buf + off, (size_t)n - off, &used) >= 0);
			off += used;
			struct proto_hdr h;
			const uint8_t *p;
			if (proto_reader_next(&r, &h, &p) == 1 && h.type == type && h.id == id)
				seen = 1;
		}
	}
	proto_reader_free(&r);
	return seen;
}

static void test_exec_start_timeout_kills_a_late_start(void **state)
{
	(void)state;
	struct fake f;
	fake_start(&f);
	const char *const argv[] = {"slow", NULL};
	struct msb_exec_opts o;
	opts_init(&o, argv);
	o.start_timeout_ms = 50;
	struct msb_exec *x;
	struct msb_err err = {0};
	assert_int_equal(msb_exec_start(f.vm, &o, &x, &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "did not start in time"));
	/* it starts after all: libmsb kills it, and the connection goes on */
	uint8_t b[PROTO_READY_SIZE];
	struct proto_ready r = {.pid = 7};
	proto_ready_encode(&r, b, sizeof(b));
	send_frame(f.fd, PROTO_READY, 1, b, sizeof(b));
	assert_int_equal(msb_vm_ping(f.vm, 100, &err), -ETIMEDOUT); /* pumps */
	assert_true(fake_saw(&f, PROTO_SIGNAL, 1));
	fake_stop(&f);
}

/* ---- the agent against a hostile host --------------------------------- */

static pid_t raw_agent(int *fd)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGCHLD);
		sigprocmask(SIG_BLOCK, &set, NULL);
		int sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
		struct agent_root no_root = {0};
		_exit(session_run(sv[1], sigfd, &no_root) == 0 ? 0 : 5);
	}
	close(sv[1]);
	*fd = sv[0];
	return pid;
}

/* Reads frames until the agent closes; returns the last ERROR's errno. */
static int agent_answer(int fd)
{
	struct proto_reader r;
	assert_int_equal(proto_reader_init(&r), 0);
	int last = 0;
	uint8_t buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		size_t off = 0, used;
		while (off < (size_t)n) {
			assert_true(proto_reader_feed(&r, buf + off, (size_t)n - off, &used) >= 0);
			off += used;
			struct proto_hdr h;
			const uint8_t *p;
			if (proto_reader_next(&r, &h, &p) == 1 && h.type == PROTO_ERROR) {
				struct proto_error e;
				assert_int_equal(proto_error_decode(p, h.len, &e), 0);
				last = e.err;
			}
		}
	}
	proto_reader_free(&r);
	return last;
}

static void agent_refuses(const uint8_t *frames, size_t len)
{
	int fd;
	pid_t pid = raw_agent(&fd);
	assert_int_equal(write(fd, frames, len), (ssize_t)len);
	assert_true(agent_answer(fd) > 0); /* an ERROR, then the connection closes */
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(fd);
}

static void test_agent_wants_hello_first(void **state)
{
	(void)state;
	uint8_t f[PROTO_HDR_SIZE + 8];
	size_t n = proto_frame(f, sizeof(f), PROTO_PING, 0, "x", 1);
	agent_refuses(f, n);
}

static void test_agent_refuses_bad_frames(void **state)
{
	(void)state;
	struct proto_hello h = {.version_min = 1, .version_max = 1};
	uint8_t hb[PROTO_HELLO_FIXED + PROTO_MAX_NAME];
	int hn = proto_hello_encode(&h, hb, sizeof(hb));
	uint8_t f[256];
	size_t n = proto_frame(f, sizeof(f), PROTO_HELLO, 0, hb, (uint32_t)hn);
	/* stdin for an exec that never started */
	uint8_t g[256];
	memcpy(g, f, n);
	size_t m = n + proto_frame(g + n, sizeof(g) - n, PROTO_STDIN, 7, "x", 1);
	agent_refuses(g, m);
	/* a header with a reserved field set */
	memcpy(g, f, n);
	uint8_t junk[PROTO_HDR_SIZE] = {1, PROTO_PING, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	memcpy(g + n, junk, sizeof(junk));
	agent_refuses(g, n + sizeof(junk));
	/* a frame only the agent sends */
	memcpy(g, f, n);
	m = n + proto_frame(g + n, sizeof(g) - n, PROTO_STDOUT, 1, "x", 1);
	agent_refuses(g, m);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_streams_and_exit_codes),
	    cmocka_unit_test(test_stdin_beyond_the_initial_credit),
	    cmocka_unit_test(test_missing_program_and_signal),
	    cmocka_unit_test(test_exec_user),
	    cmocka_unit_test(test_root_etc_files),
	    cmocka_unit_test(test_host_refuses_output_for_unknown_exec),
	    cmocka_unit_test(test_host_refuses_output_beyond_credit),
	    cmocka_unit_test(test_host_refuses_exit_before_eof),
	    cmocka_unit_test(test_host_refuses_garbage_header),
	    cmocka_unit_test(test_host_reports_a_closed_connection),
	    cmocka_unit_test(test_exec_start_timeout_kills_a_late_start),
	    cmocka_unit_test(test_agent_wants_hello_first),
	    cmocka_unit_test(test_agent_refuses_bad_frames),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
