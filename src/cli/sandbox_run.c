/* Running a project sandbox: sandbox_run.h. */
#include "sandbox_run.h"
#include "attach.h"
#include "cli.h"
#include "exec_io.h"
#include "keeper.h"

#include "fsutil.h"
#include "lib/image/store.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STOP_GRACE_MS  10000  /* a stopped sandbox's main command gets this long */
#define POWEROFF_MS    30000  /* the guest syncs its writable layer and powers off */
#define START_WAIT_MS  600000 /* a first start may prepare snapshots (seconds) */
#define LOG_CAP        (8u << 20)
#define ATTACH_WAIT_MS 120000 /* a keeper still starting its VM */

void sandbox_hostname(const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s", name);
	for (char *c = buf; *c; c++)
		if (*c == '_')
			*c = '-';
	size_t n = strlen(buf);
	if (n && buf[n - 1] == '-' && n + 1 < len) /* may not end with '-' */
		snprintf(buf + n, len - n, "0");
}

int sandbox_running(const struct project *p, const char *name, struct sandbox_record *out)
{
	struct store *s;
	if (cli_open_store(&s))
		return -1;
	char why[1024];
	int e = sandbox_record_get(s, p->dir, name, out, why, sizeof(why));
	store_close(s);
	if (e == -ENOENT)
		return 0;
	if (e < 0) {
		fprintf(stderr, "msb: error: cannot read the running sandboxes: %s\n", why);
		return -1;
	}
	return 1;
}

int sandbox_records_of(const struct project *p, struct sandbox_record *by_index)
{
	size_t ns = p->sf->nsandboxes;
	memset(by_index, 0, ns * sizeof(*by_index));
	struct store *s;
	if (cli_open_store(&s))
		return -1;
	struct sandbox_record *recs = NULL;
	size_t n = 0;
	char why[1024];
	int e = sandbox_record_list(s, p->dir, &recs, &n, why, sizeof(why));
	store_close(s);
	if (e < 0) {
		fprintf(stderr, "msb: error: cannot read the running sandboxes: %s\n", why);
		return -1;
	}
	for (size_t r = 0; r < n; r++)
		for (size_t i = 0; i < ns; i++)
			if (!strcmp(recs[r].name, p->sf->sandboxes[i].name.s)) {
				by_index[i] = recs[r]; /* its strings move along */
				memset(&recs[r], 0, sizeof(recs[r]));
				break;
			}
	sandbox_records_free(recs, n);
	return 0;
}

/* ---- the keeper ---------------------------------------------------------- */

struct keep {
	const struct project *p;
	const struct sf_sandbox *sb;
	const struct run_what *w;
	int detached;
	int ready_fd; /* detached: a byte here says the sandbox is up (-1: none) */
	char sock_dir[PATH_MAX], log[PATH_MAX];
};

/* Claims the sandbox's record for this process. 0, 1 after printing why,
 * or -EBUSY when another keeper has it. */
static int claim(struct keep *k)
{
	struct store *s;
	if (cli_open_store(&s))
		return 1;
	char sock[PATH_MAX + 16], why[1024];
	snprintf(sock, sizeof(sock), "%s/ctl.sock", k->sock_dir);
	struct sandbox_record r = {.project = (char *)k->p->dir,
	                           .name = k->sb->name.s,
	                           .keeper = getpid(),
	                           .keeper_start = sandbox_proc_start(getpid()),
	                           .socket = sock,
	                           .log = k->detached ? k->log : "",
	                           .started = time(NULL),
	                           .detached = k->detached};
	struct sandbox_record holder = {0};
	int e = sandbox_record_claim(s, &r, &holder, why, sizeof(why));
	store_close(s);
	if (e == -EBUSY) {
		sandbox_record_free(&holder);
		return -EBUSY;
	}
	if (e < 0) {
		fprintf(stderr, "msb: error: cannot record sandbox '%s' as running: %s\n",
		        k->sb->name.s, why);
		return 1;
	}
	return 0;
}

static void release(struct keep *k)
{
	struct store *s;
	char why[1024];
	if (cli_open_store(&s))
		return;
	if (sandbox_record_release(s, k->p->dir, k->sb->name.s, getpid(), why, sizeof(why)) < 0)
		fprintf(stderr, "msb: warning: %s\n", why);
	store_close(s);
}

static void set_vmm(struct keep *k, pid_t vmm)
{
	struct store *s;
	char why[1024];
	if (cli_open_store(&s))
		return;
	if (sandbox_record_set_vmm(s, k->p->dir, k->sb->name.s, getpid(), vmm, why, sizeof(why)) <
	    0)
		fprintf(stderr, "msb: warning: %s\n", why);
	store_close(s);
}

/* Does the command @w asks for exist? (else the sandbox idles, if allowed) */
static int has_main(const struct sf_sandbox *sb, const struct run_what *w)
{
	if (w->script || w->inline_cmd || w->shell_only || !w->idle_ok)
		return 1;
	for (size_t i = 0; i < sb->scripts.n; i++)
		if (!strcmp(sb->scripts.v[i].name.s, "start"))
			return 1;
	return sb->command.n > 0;
}

/* The keeper's whole life once the record is ours. */
static int keep(struct keep *k)
{
	struct project_vm v;
	if (project_vm_start(k->p, k->sb, k->detached, &v))
		return 1;
	set_vmm(k, msb_vm_pid(v.vm));
	if (k->ready_fd >= 0) { /* msb up waits for this, then goes on */
		if (write(k->ready_fd, "u", 1) < 0)
			fprintf(stderr, "msb: warning: cannot tell msb up: %s\n", strerror(errno));
		close(k->ready_fd);
		k->ready_fd = -1;
	}
	int rc = 1, tty = !k->detached && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	struct project_cmd c = {0};
	int main = has_main(k->sb, k->w);
	if (main &&
	    project_cmd_make(k->p, k->sb, &v.cfg, k->w->script, k->w->inline_cmd, k->w->args,
	                     k->w->nargs, k->w->shell_only, msb_vm_hostname(v.vm), &c))
		goto out;
	char term_env[128];
	if (main && tty && !exec_env_has(c.env, c.nenv, "TERM")) {
		const char *t = getenv("TERM");
		snprintf(term_env, sizeof(term_env), "TERM=%s", t && *t ? t : "xterm");
		exec_env_set(c.env, &c.nenv, term_env);
	}
	struct msb_exec_opts xo = {.size = sizeof(xo),
	                           .argv = c.argv,
	                           .env = c.env,
	                           .cwd = c.cwd,
	                           .user = c.user,
	                           .tty = tty,
	                           .with_stdin = !k->detached};
	struct keeper_opts ko = {.vm = v.vm,
	                         .sock_dir = k->sock_dir,
	                         .main = main ? &xo : NULL,
	                         .in_fd = k->detached ? -1 : STDIN_FILENO,
	                         .out_fd = STDOUT_FILENO,
	                         .err_fd = STDERR_FILENO,
	                         .stop_grace_ms = STOP_GRACE_MS,
	                         .log = k->detached ? k->log : NULL,
	                         .log_cap = LOG_CAP};
	rc = keeper_serve(&ko);
out:
	project_cmd_free(&c);
	/* a clean power-off: the guest syncs the writable layer first */
	struct msb_err err = {0};
	if (msb_vm_stop(v.vm, POWEROFF_MS, &err) < 0 && !cli_stop_signal())
		fprintf(stderr, "msb: warning: sandbox '%s' did not power off cleanly: %s\n",
		        k->sb->name.s, err.msg);
	project_vm_free(&v);
	return rc;
}

static int keep_init(struct keep *k, const struct project *p, const struct sf_sandbox *sb,
                     const struct run_what *w, int detached)
{
	memset(k, 0, sizeof(*k));
	k->p = p;
	k->sb = sb;
	k->w = w;
	k->detached = detached;
	k->ready_fd = -1;
	char logdir[PATH_MAX];
	if (project_state_dir(p, sb->name.s, k->sock_dir, sizeof(k->sock_dir)) ||
	    project_log_path(p, sb->name.s, k->log, sizeof(k->log)) ||
	    fs_path(logdir, sizeof(logdir), "%s/.msb/log", p->dir)) {
		fprintf(stderr, "msb: error: the project's path is too long\n");
		return 1;
	}
	int e = fs_mkdir_p(k->sock_dir);
	if (!e && detached)
		e = fs_mkdir_p(logdir);
	if (e < 0) {
		fprintf(stderr, "msb: error: cannot create %s: %s\n", k->sock_dir, strerror(-e));
		return 1;
	}
	return 0;
}

int sandbox_run_here(const struct project *p, const struct sf_sandbox *sb, const struct run_what *w)
{
	struct keep k;
	if (keep_init(&k, p, sb, w, 0))
		return 1;
	cli_catch_stop_signals();
	int e = claim(&k);
	if (e == -EBUSY) { /* started meanwhile by another msb: run in that one */
		struct sandbox_record rec;
		if (sandbox_running(p, sb->name.s, &rec) <= 0)
			return 1;
		int rc = sandbox_attach(p, sb, &rec, w);
		sandbox_record_free(&rec);
		return rc;
	}
	if (e)
		return 1;
	int rc = keep(&k);
	release(&k);
	return rc;
}

/* The last lines of the log, after a background start failed. */
static void show_log_tail(const char *log)
{
	char buf[4096];
	int fd = open(log, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	off_t end = lseek(fd, 0, SEEK_END), from = end > 2000 ? end - 2000 : 0;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	const char *s = from ? strchr(buf, '\n') : buf;
	fprintf(stderr, "msb: the end of %s:\n%s", log, s ? s + (from ? 1 : 0) : buf);
}

int sandbox_start_detached(const struct project *p, const struct sf_sandbox *sb,
                           const struct run_what *w, int quiet)
{
	struct keep k;
	if (keep_init(&k, p, sb, w, 1))
		return 1;
	/* the image comes first, here, with progress; the keeper finds it */
	struct store_image im;
	struct image_config cfg;
	char erofs[PATH_MAX];
	int guard;
	struct cli_pull how = {.quiet = quiet};
	if (cli_image_open(sb->image.s, &how, &im, erofs, sizeof(erofs), &cfg, &guard))
		return 1;
	store_unlock(guard);
	image_config_free(&cfg);
	store_image_free(&im);
	fflush(NULL);
	int ready[2];
	if (pipe2(ready, O_CLOEXEC) < 0) {
		fprintf(stderr, "msb: error: pipe: %s\n", strerror(errno));
		return 1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "msb: error: fork: %s\n", strerror(errno));
		close(ready[0]);
		close(ready[1]);
		return 1;
	}
	if (pid == 0) {
		/* the keeper: its own session, nothing of the terminal */
		close(ready[0]);
		k.ready_fd = ready[1];
		setsid();
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		int log = open(k.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (null < 0 || log < 0)
			_exit(1);
		dup2(null, STDIN_FILENO);
		dup2(log, STDOUT_FILENO);
		dup2(log, STDERR_FILENO);
		close(null);
		close(log);
		cli_catch_stop_signals();
		int e = claim(&k);
		if (e == -EBUSY)
			_exit(3);
		if (e)
			_exit(1);
		char when[64];
		time_t now = time(NULL);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
		fprintf(stderr, "msb: %s: sandbox '%s' starting (keeper pid %d)\n", when,
		        sb->name.s, (int)getpid());
		int rc = keep(&k);
		now = time(NULL);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
		fprintf(stderr, "msb: %s: sandbox '%s' stopped (status %d)\n", when, sb->name.s,
		        rc);
		release(&k);
		_exit(rc & 0xff);
	}
	/* up once the keeper says its VM runs with the root mounted; the pipe
	 * ends without a word when the keeper does */
	close(ready[1]);
	struct pollfd pf = {.fd = ready[0], .events = POLLIN};
	char word;
	int r;
	while ((r = poll(&pf, 1, START_WAIT_MS)) < 0 && errno == EINTR)
		;
	ssize_t got = r > 0 ? read(ready[0], &word, 1) : -1;
	close(ready[0]);
	if (got == 1)
		return 0;
	int st;
	if (r > 0 && waitpid(pid, &st, 0) == pid) {
		if (WIFEXITED(st) && WEXITSTATUS(st) == 3) {
			fprintf(stderr, "msb: sandbox '%s' is running already\n", sb->name.s);
			return 0;
		}
		if (WIFEXITED(st))
			fprintf(stderr, "msb: error: sandbox '%s' ended at once (status %d)\n",
			        sb->name.s, WEXITSTATUS(st));
		else
			fprintf(stderr, "msb: error: sandbox '%s' did not start (signal %d)\n",
			        sb->name.s, WTERMSIG(st));
		show_log_tail(k.log);
		return 1;
	}
	fprintf(stderr, "msb: error: sandbox '%s' did not start within %d s; see %s\n", sb->name.s,
	        START_WAIT_MS / 1000, k.log);
	return 1;
}

/* The keeper's socket, once it listens: a keeper starting its VM listens
 * soon; one stopping never will, and once its record is gone the sandbox
 * is free to start here. Returns the fd, -ENOENT when the sandbox stopped,
 * or another negative errno after printing why. */
static int reach_keeper(const struct project *p, const char *name, const char *sock)
{
	for (int waited = 0;; waited += 50) {
		int fd = keeper_connect(sock);
		if (fd >= 0 || (fd != -ENOENT && fd != -ECONNREFUSED) || waited >= ATTACH_WAIT_MS ||
		    cli_stop_signal()) {
			if (fd < 0)
				fprintf(stderr, "msb: error: cannot reach sandbox '%s' at %s: %s\n",
				        name, sock, strerror(-fd));
			return fd < 0 ? -EIO : fd;
		}
		struct sandbox_record rec;
		int r = sandbox_running(p, name, &rec);
		sandbox_record_free(&rec);
		if (r < 0)
			return -EIO;
		if (r == 0)
			return -ENOENT;
		struct timespec ts = {.tv_nsec = 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

int sandbox_attach(const struct project *p, const struct sf_sandbox *sb,
                   const struct sandbox_record *rec, const struct run_what *w)
{
	cli_catch_stop_signals();
	int fd = reach_keeper(p, sb->name.s, rec->socket);
	if (fd == -ENOENT) /* it stopped meanwhile */
		return sandbox_run_here(p, sb, w);
	if (fd < 0)
		return 1;
	struct store_image im;
	struct image_config cfg;
	char erofs[PATH_MAX], host[80];
	int guard;
	struct cli_pull how = {.quiet = 1};
	if (cli_image_open(sb->image.s, &how, &im, erofs, sizeof(erofs), &cfg, &guard)) {
		close(fd);
		return 1;
	}
	store_unlock(guard);
	sandbox_hostname(sb->name.s, host, sizeof(host));
	struct project_cmd c;
	int rc = 1;
	if (project_cmd_make(p, sb, &cfg, w->script, w->inline_cmd, w->args, w->nargs,
	                     w->shell_only, host, &c)) {
		close(fd);
		goto out;
	}
	int tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	char term_env[128];
	if (tty && !exec_env_has(c.env, c.nenv, "TERM")) {
		const char *t = getenv("TERM");
		snprintf(term_env, sizeof(term_env), "TERM=%s", t && *t ? t : "xterm");
		exec_env_set(c.env, &c.nenv, term_env);
	}
	struct attach_cmd ac = {.argv = c.argv,
	                        .env = c.env,
	                        .argc = c.argc,
	                        .envc = c.nenv,
	                        .cwd = c.cwd,
	                        .user = c.user,
	                        .tty = tty};
	rc = attach_run(fd, &ac);
	project_cmd_free(&c);
out:
	image_config_free(&cfg);
	store_image_free(&im);
	return rc;
}
