/*
 * msb exe: runs a command in a throwaway sandbox of an image, like
 * `docker run --rm`: the image (pulled when missing) is the root, the
 * command's output streams back, msb exits with its exit code, and nothing
 * of the sandbox remains.
 */
#include "cli.h"
#include "exec_io.h"

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
#define MAX_ENV      EXEC_IO_MAX_ENV
#define MAX_ARGS     4096
#define ROOT_WAIT_MS 10000

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

static int run(struct exe_opts *o)
{
	const char *name = o->image ? o->image : CLI_DEFAULT_IMAGE;
	cli_catch_stop_signals();
	struct store_image im;
	struct image_config cfg;
	char erofs[PATH_MAX];
	int guard;
	struct cli_pull how = {.platform = o->platform, .insecure = o->insecure, .quiet = o->quiet};
	if (cli_image_open(name, &how, &im, erofs, sizeof(erofs), &cfg, &guard))
		return 1;
	int rc = 1;
	/* argv: -e PROGRAM replaces the Entrypoint; a COMMAND replaces Cmd. */
	const char **argv = calloc(MAX_ARGS * 3 + 2, sizeof(char *));
	const char **env = calloc(MAX_ENV + 8, sizeof(char *));
	size_t argc = 0, nenv = 0;
	struct msb_vm *vm = NULL;
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
		exec_env_set(env, &nenv, *p);
	for (size_t i = 0; i < o->nenv; i++)
		if (exec_env_set(env, &nenv, o->env[i]) < 0) {
			fprintf(stderr, "msb: error: too many environment variables\n");
			goto out;
		}
	if (!exec_env_has(env, nenv, "PATH"))
		exec_env_set(env, &nenv, EXEC_IO_DEFAULT_PATH);
	int tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	char term_env[128];
	if (tty && !exec_env_has(env, nenv, "TERM")) {
		const char *t = getenv("TERM");
		snprintf(term_env, sizeof(term_env), "TERM=%s", t && *t ? t : "xterm");
		exec_env_set(env, &nenv, term_env);
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
	if (!exec_env_has(env, nenv, "HOSTNAME"))
		exec_env_set(env, &nenv, host_env);
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
	rc = exec_run(vm, &xo);
out:
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
