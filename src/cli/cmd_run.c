/*
 * msb run NAME[~SCRIPT] and msb shell NAME: a command in a project
 * sandbox, which keeps its writable layer between runs. When the sandbox
 * runs already (msb up, or another msb run), the command runs in it, as
 * `docker compose exec` does; else this msb starts it, and stops it when the
 * command ends (or -d leaves it running in the background).
 */
#include "cli.h"
#include "sandbox_run.h"

#include <stdio.h>
#include <string.h>

static void run_usage(FILE *f)
{
	fprintf(f, "usage: msb run [OPTIONS] NAME[~SCRIPT] [-- ARG...]\n"
	           "       msb r ...   msr ...\n\n"
	           "Runs a script of sandbox NAME of the project (the Sandboxfile here or above):\n"
	           "SCRIPT, else `start`, else the sandbox's `command`, else its shell. A script\n"
	           "runs as `SHELL -c SCRIPT NAME ARG...` (\"$@\" are the ARGs); a command gets\n"
	           "the ARGs appended. msb exits with its exit status. When NAME runs already\n"
	           "(msb up), the script runs in it; else NAME starts for it and stops after.\n"
	           "What the sandbox writes stays for its next run (msb clean resets it).\n\n"
	           "  -e, --exec CMD   run CMD (a shell command line) instead of a script\n"
	           "  -d, --detach     start NAME in the background running the script, and\n"
	           "                   return (its output goes to .msb/log/NAME.log)\n"
	           "  -f, --file PATH  the Sandboxfile, or the project directory\n"
	           "  -q, --quiet      no pull progress\n");
}

static void shell_usage(FILE *f)
{
	fprintf(f, "usage: msb shell [OPTIONS] NAME [-- ARG...]\n\n"
	           "An interactive shell (the sandbox's `shell`, default /bin/sh) in sandbox NAME\n"
	           "of the project: in it when it runs (msb up), else in NAME started for it.\n"
	           "With a terminal: raw mode, window size, Ctrl-C to the shell. msb exits with\n"
	           "the shell's exit status.\n\n"
	           "  -f, --file PATH  the Sandboxfile, or the project directory\n"
	           "  -q, --quiet      no pull progress\n");
}

struct run_args {
	const char *file, *target;
	int detach, quiet;
	struct run_what w;
};

/* Returns 0 to go on, 1 after --help, 2 for a usage error. */
static int parse(int argc, char **argv, int shell, struct run_args *a)
{
	void (*usage)(FILE *) = shell ? shell_usage : run_usage;
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(s, "--")) {
			a->w.args = argv + i + 1;
			a->w.nargs = (size_t)(argc - i - 1);
			break;
		}
		if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			usage(stdout);
			return 1;
		}
		if (!strcmp(s, "-q") || !strcmp(s, "--quiet")) {
			a->quiet = 1;
		} else if (!shell && (!strcmp(s, "-d") || !strcmp(s, "--detach"))) {
			a->detach = 1;
		} else if ((!strcmp(s, "-f") || !strcmp(s, "--file")) && v) {
			a->file = v;
			i++;
		} else if (!shell && (!strcmp(s, "-e") || !strcmp(s, "--exec")) && v) {
			a->w.inline_cmd = v;
			i++;
		} else if (s[0] != '-' && !a->target) {
			a->target = s;
		} else {
			fprintf(stderr, "msb %s: bad argument %s\n", shell ? "shell" : "run", s);
			usage(stderr);
			return 2;
		}
	}
	if (!a->target) {
		fprintf(stderr, "msb %s: which sandbox? (msb list shows them)\n",
		        shell ? "shell" : "run");
		usage(stderr);
		return 2;
	}
	return 0;
}

static int run_or_shell(int argc, char **argv, int shell)
{
	struct run_args a = {0};
	int e = parse(argc, argv, shell, &a);
	if (e)
		return e == 1 ? 0 : e;
	/* NAME~SCRIPT */
	char name[128];
	const char *tilde = strchr(a.target, '~');
	size_t nl = tilde ? (size_t)(tilde - a.target) : strlen(a.target);
	if (shell && tilde) {
		fprintf(stderr, "msb shell: a shell runs no script: msb run %s\n", a.target);
		return 2;
	}
	if (nl == 0 || nl >= sizeof(name) || (tilde && !tilde[1])) {
		fprintf(stderr, "msb run: expected NAME or NAME~SCRIPT, not %s\n", a.target);
		return 2;
	}
	if (tilde && a.w.inline_cmd) {
		fprintf(stderr, "msb run: give a script or -e, not both\n");
		return 2;
	}
	memcpy(name, a.target, nl);
	name[nl] = 0;
	a.w.script = tilde ? tilde + 1 : NULL;
	a.w.shell_only = shell;
	struct project p;
	if (project_open(a.file, &p))
		return 1;
	int rc = 1;
	const struct sf_sandbox *sb = project_sandbox(&p, name);
	if (sb && a.w.script && !project_has_script(sb, a.w.script))
		sb = NULL;
	struct sandbox_record rec = {0};
	int running = sb ? sandbox_running(&p, name, &rec) : -1;
	if (running < 0)
		goto out;
	if (running && a.detach)
		fprintf(stderr, "msb: sandbox '%s' is running already (keeper pid %d)\n", name,
		        (int)rec.keeper);
	else if (running)
		rc = sandbox_attach(&p, sb, &rec, &a.w);
	else if (a.detach)
		rc = sandbox_start_detached(&p, sb, &a.w, a.quiet);
	else
		rc = sandbox_run_here(&p, sb, &a.w);
	if (running && a.detach)
		rc = 1;
out:
	sandbox_record_free(&rec);
	project_close(&p);
	return rc;
}

int cmd_run(int argc, char **argv)
{
	return run_or_shell(argc, argv, 0);
}

int cmd_shell(int argc, char **argv)
{
	return run_or_shell(argc, argv, 1);
}
