/*
 * msb exe: runs a command in a throwaway sandbox of an image, like
 * `docker run --rm`: the image (pulled when missing) is the root, the
 * command's output streams back, msb exits with its exit code, and nothing
 * of the sandbox remains.
 */
#include "cli.h"
#include "pull_view.h"

#include "err.h"
#include "lib/image/pull.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#define DEFAULT_MIB  1024
#define MAX_ENV      4096
#define MAX_ARGS     4096
#define ROOT_WAIT_MS 10000
#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: msb exe [OPTIONS] [IMAGE] [-- COMMAND [ARG...]]\n"
	        "       msb x ...   msx ...\n\n"
	        "Runs COMMAND in a new sandbox of IMAGE (pulled first when it is not here)\n"
	        "and removes the sandbox when it ends; msb exits with the command's exit\n"
	        "status (128+N when signal N ended it). Without COMMAND the image's\n"
	        "Entrypoint and Cmd run; COMMAND replaces Cmd and keeps the Entrypoint,\n"
	        "as 'docker run' does. Without IMAGE, msb's built-in image %s\n"
	        "(Debian 12 with python3, made by ./setup). When stdin is a terminal the\n"
	        "command gets one (raw mode, window size, Ctrl-C reaches it).\n\n"
	        "  --memory MIB        guest memory (default %d)\n"
	        "  --cpus N            vCPUs (default 1)\n"
	        "  --env K=V           set an environment variable (repeatable)\n"
	        "  --workdir DIR       working directory (default: the image's, else /)\n"
	        "  --user USER[:GROUP] name or number, resolved in the image\n"
	        "  -e, --exec PROGRAM  run PROGRAM instead of the image's Entrypoint\n"
	        "  --cold              boot instead of starting from the warm snapshot\n"
	        "  --platform OS/ARCH  when the image must be pulled\n"
	        "  --insecure          plain HTTP to the image's registry\n"
	        "  -q, --quiet         no pull progress\n",
	        CLI_DEFAULT_IMAGE, DEFAULT_MIB);
}

struct exe_opts {
	const char *image, *workdir, *user, *exec, *platform;
	long mem, cpus;
	int cold, insecure, quiet;
	const char *env[MAX_ENV];
	size_t nenv;
	char **cmd; /* after "--" */
	size_t ncmd;
};

static int parse(int argc, char **argv, struct exe_opts *o)
{
	o->mem = DEFAULT_MIB;
	o->cpus = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--")) {
			o->cmd = argv + i + 1;
			o->ncmd = (size_t)(argc - i - 1);
			return 0;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 1;
		}
		if (!strcmp(a, "--cold")) {
			o->cold = 1;
		} else if (!strcmp(a, "--insecure")) {
			o->insecure = 1;
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			o->quiet = 1;
		} else if (a[0] == '-' && !v) {
			fprintf(stderr, "msb exe: %s needs a value\n", a);
			return 2;
		} else if (!strcmp(a, "--memory")) {
			if (cli_number(v, 64, 1 << 20, &o->mem)) {
				fprintf(stderr, "msb exe: --memory takes MiB from 64, not %s\n", v);
				return 2;
			}
			i++;
		} else if (!strcmp(a, "--cpus")) {
			if (cli_number(v, 1, 8, &o->cpus)) {
				fprintf(stderr, "msb exe: --cpus takes 1 to 8, not %s\n", v);
				return 2;
			}
			i++;
		} else if (!strcmp(a, "--env")) {
			if (!strchr(v, '=') || v[0] == '=' || o->nenv == MAX_ENV) {
				fprintf(stderr, "msb exe: --env takes NAME=VALUE, not %s\n", v);
				return 2;
			}
			o->env[o->nenv++] = v;
			i++;
		} else if (!strcmp(a, "--workdir")) {
			if (v[0] != '/') {
				fprintf(stderr, "msb exe: --workdir must be absolute, not %s\n", v);
				return 2;
			}
			o->workdir = v;
			i++;
		} else if (!strcmp(a, "--user")) {
			o->user = v;
			i++;
		} else if (!strcmp(a, "-e") || !strcmp(a, "--exec")) {
			o->exec = v;
			i++;
		} else if (!strcmp(a, "--platform")) {
			o->platform = v;
			i++;
		} else if (a[0] != '-' && !o->image) {
			o->image = a;
		} else {
			fprintf(stderr, "msb exe: bad argument %s (a command goes after --)\n", a);
			usage(stderr);
			return 2;
		}
	}
	return 0;
}

/* K=V lists: the image's, then --env over it (same name: replaced). */
static int env_set(const char **env, size_t *n, const char *kv)
{
	size_t kl = strcspn(kv, "=");
	for (size_t i = 0; i < *n; i++)
		if (!strncmp(env[i], kv, kl) && env[i][kl] == '=') {
			env[i] = kv;
			return 0;
		}
	if (*n + 1 >= MAX_ENV)
		return -E2BIG;
	env[(*n)++] = kv;
	return 0;
}

static int has_env(const char **env, size_t n, const char *name)
{
	size_t kl = strlen(name);
	for (size_t i = 0; i < n; i++)
		if (!strncmp(env[i], name, kl) && env[i][kl] == '=')
			return 1;
	return 0;
}

/* ---- the terminal ------------------------------------------------------ */

static volatile sig_atomic_t winch;

static void on_winch(int sig)
{
	(void)sig;
	winch = 1;
}

struct term {
	int raw;
	struct termios saved;
};

static void term_raw(struct term *t)
{
	if (tcgetattr(STDIN_FILENO, &t->saved) < 0)
		return;
	struct termios r = t->saved;
	cfmakeraw(&r);
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &r) == 0)
		t->raw = 1;
}

static void term_restore(struct term *t)
{
	if (t->raw)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &t->saved);
	t->raw = 0;
}

static void term_size(unsigned *rows, unsigned *cols)
{
	struct winsize ws;
	*rows = *cols = 0;
	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	}
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Copies stdin to the command and its output to ours until it ends, and
 * passes on what the user does: window size changes, and (without a
 * terminal) SIGINT/SIGTERM/SIGHUP, the first to the command, a second one
 * ends the sandbox.
 */
static int pump(struct msb_vm *vm, struct msb_exec *x, int tty, struct msb_err *err)
{
	int stdin_open = 1, out_open = 1, signals_sent = 0;
	char buf[65536];
	while (out_open) {
		if (tty && winch) {
			winch = 0;
			unsigned rows, cols;
			term_size(&rows, &cols);
			if (rows && cols)
				msb_exec_resize(x, rows, cols, NULL);
		}
		if (cli_stop_count() > signals_sent) {
			signals_sent = cli_stop_count();
			if (signals_sent > 1) /* asked twice: the sandbox goes now */
				return err_set(err, -EINTR, "stopped by signal %d",
				               cli_stop_signal());
			msb_exec_signal(x, cli_stop_signal(), NULL);
		}
		struct pollfd pf[2] = {{.fd = msb_vm_poll_fd(vm), .events = POLLIN},
		                       {.fd = stdin_open ? STDIN_FILENO : -1, .events = POLLIN}};
		int r = poll(pf, 2, 1000);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n > 0) {
				int e = msb_exec_write(x, buf, (size_t)n, -1, err);
				if (e == -EPIPE)
					stdin_open = 0; /* it stopped reading: fine */
				else if (e < 0 && e != -EINTR)
					return e;
			} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
				stdin_open = 0;
				msb_exec_close_stdin(x, NULL);
			}
		}
		/* Whatever has arrived, without waiting (see msb_vm_poll_fd()). */
		for (;;) {
			int stream;
			ssize_t n = msb_exec_read(x, &stream, buf, sizeof(buf), 0, err);
			if (n == -ETIMEDOUT || n == -EINTR)
				break;
			if (n < 0)
				return (int)n;
			if (n == 0) {
				out_open = 0;
				break;
			}
			if (write_all(stream == MSB_STDERR ? STDERR_FILENO : STDOUT_FILENO, buf,
			              (size_t)n) < 0 &&
			    errno == EPIPE) {
				/* Our reader went away: so does the command's. */
				msb_exec_signal(x, SIGPIPE, NULL);
			}
		}
	}
	return 0;
}

static int run(struct exe_opts *o)
{
	const char *name = o->image ? o->image : CLI_DEFAULT_IMAGE;
	struct store *s;
	if (cli_open_store(&s))
		return 1;
	cli_catch_stop_signals();
	struct store_image im;
	struct image_config cfg;
	char erofs[PATH_MAX], why[2048];
	int e = image_find(s, name, &im, erofs, sizeof(erofs), &cfg, why, sizeof(why));
	if (e == -ENOENT && cli_is_builtin_image(name)) {
		fprintf(stderr,
		        "msb: error: the built-in image %s is not here: ./setup makes it "
		        "(or 'msb import' a root file system tar under that name)\n",
		        name);
		store_close(s);
		return 1;
	}
	if (e == -ENOENT) {
		struct pull_view view;
		pull_view_init(&view, o->quiet);
		struct pull_opts po = {.platform = o->platform,
		                       .insecure = o->insecure || cli_insecure_registry(name),
		                       .progress = pull_view_event,
		                       .progress_arg = &view,
		                       .cancelled = pull_view_cancelled};
		struct store_image pulled;
		e = image_pull(s, name, &po, &pulled, why, sizeof(why));
		if (!e) {
			store_image_free(&pulled);
			e = image_find(s, name, &im, erofs, sizeof(erofs), &cfg, why, sizeof(why));
		}
	}
	/* Held until the VM has the image open: a prune meanwhile keeps it. */
	int guard = e ? -1 : store_guard(s);
	store_close(s);
	if (e) {
		fprintf(stderr, "msb: error: %s\n", why);
		return 1;
	}
	int rc = 1;
	/* argv: -e PROGRAM replaces the Entrypoint; a COMMAND replaces Cmd. */
	const char **argv = calloc(MAX_ARGS * 3 + 2, sizeof(char *));
	const char **env = calloc(MAX_ENV + 8, sizeof(char *));
	size_t argc = 0, nenv = 0;
	struct msb_vm *vm = NULL;
	struct msb_exec *x = NULL;
	struct term term = {0};
	if (!argv || !env)
		goto out;
	if (o->exec) {
		argv[argc++] = o->exec;
	} else {
		for (char **p = cfg.entrypoint; *p && argc < MAX_ARGS; p++)
			argv[argc++] = *p;
	}
	if (o->ncmd) {
		for (size_t i = 0; i < o->ncmd && argc < 2 * MAX_ARGS; i++)
			argv[argc++] = o->cmd[i];
	} else if (!o->exec) {
		for (char **p = cfg.cmd; *p && argc < 2 * MAX_ARGS; p++)
			argv[argc++] = *p;
	}
	if (!argc || !argv[0][0]) {
		fprintf(
		    stderr,
		    "msb: error: image %s has no command to run: give one, e.g. msb exe %s -- sh\n",
		    im.ref, name);
		goto out;
	}
	for (char **p = cfg.env; *p; p++)
		env_set(env, &nenv, *p);
	for (size_t i = 0; i < o->nenv; i++)
		if (env_set(env, &nenv, o->env[i]) < 0) {
			fprintf(stderr, "msb: error: too many environment variables\n");
			goto out;
		}
	if (!has_env(env, nenv, "PATH"))
		env_set(env, &nenv, DEFAULT_PATH);
	int tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	char term_env[128];
	if (tty && !has_env(env, nenv, "TERM")) {
		const char *t = getenv("TERM");
		snprintf(term_env, sizeof(term_env), "TERM=%s", t && *t ? t : "xterm");
		env_set(env, &nenv, term_env);
	}

	struct msb_host_choice hc;
	if (cli_select_host(&hc, 0))
		goto out;
	struct msb_vm_disk disk = {.path = erofs, .writable = 0};
	struct msb_vm_opts vo = {.size = sizeof(vo),
	                         .mem_mib = (unsigned)o->mem,
	                         .cpus = (unsigned)o->cpus,
	                         .name = "exe",
	                         .cold = o->cold,
	                         .progress = cli_say,
	                         .progress_arg = NULL,
	                         .disks = &disk,
	                         .ndisks = 1};
	struct msb_err err = {0};
	if (msb_vm_start(&vo, &vm, &err) < 0 ||
	    msb_vm_mount_root(vm, 0, -1, ROOT_WAIT_MS, &err) < 0) {
		fprintf(stderr, "msb: error: cannot start a sandbox of %s: %s\n", im.ref, err.msg);
		if (cli_stop_signal()) /* as a shell reports a command it interrupted */
			rc = 128 + cli_stop_signal();
		goto out;
	}
	store_unlock(guard);
	guard = -1;
	char host_env[100];
	snprintf(host_env, sizeof(host_env), "HOSTNAME=%s", msb_vm_hostname(vm));
	if (!has_env(env, nenv, "HOSTNAME"))
		env_set(env, &nenv, host_env);
	const char *user = o->user ? o->user : cfg.user;
	struct msb_exec_opts xo = {.size = sizeof(xo),
	                           .argv = argv,
	                           .env = env,
	                           .cwd = o->workdir                      ? o->workdir
	                                  : cfg.workdir && cfg.workdir[0] ? cfg.workdir
	                                                                  : "/",
	                           .user = user && *user ? user : NULL,
	                           .tty = tty,
	                           .with_stdin = 1};
	if (tty)
		term_size(&xo.rows, &xo.cols);
	if (msb_exec_start(vm, &xo, &x, &err) < 0) {
		fprintf(stderr, "msb: error: %s\n", err.msg);
		/* As a shell (and docker run) says it: 127 when the program is not
		 * there, 126 when it cannot be started (a user the image lacks, a
		 * working directory it cannot enter, no permission). */
		rc = err.code == -ENOENT && !strncmp(err.msg, "cannot run ", 11) ? 127 : 126;
		goto out;
	}
	if (tty) {
		struct sigaction sa = {.sa_handler = on_winch};
		sigemptyset(&sa.sa_mask);
		sigaction(SIGWINCH, &sa, NULL);
		term_raw(&term);
	}
	e = pump(vm, x, tty, &err);
	struct msb_exit st;
	if (!e)
		e = msb_exec_wait(x, -1, &st, &err);
	term_restore(&term);
	if (e < 0) {
		fprintf(stderr, "msb: error: %s\n", err.msg);
		if (cli_stop_signal())
			rc = 128 + cli_stop_signal();
		goto out;
	}
	rc = st.signaled ? 128 + st.signo : st.code;
out:
	term_restore(&term);
	msb_exec_free(x);
	msb_vm_destroy(vm); /* it keeps nothing: no clean power-off needed */
	store_unlock(guard);
	free(argv);
	free(env);
	image_config_free(&cfg);
	store_image_free(&im);
	return rc;
}

int cmd_exe(int argc, char **argv)
{
	struct exe_opts o = {0};
	int e = parse(argc, argv, &o);
	if (e)
		return e == 1 ? 0 : e;
	return run(&o);
}
