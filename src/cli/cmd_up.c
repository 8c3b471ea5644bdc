/*
 * msb up / msb down: a project's sandboxes started in the background in
 * depends_on order (each once its dependencies run), and stopped with their
 * dependants first.
 */
#include "cli.h"
#include "project_args.h"
#include "sandbox_run.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DOWN_WAIT_MS 60000 /* the main command's grace, then a clean power-off */

static void up_usage(FILE *f)
{
	fprintf(f, "usage: msb up [OPTIONS] [NAME...]\n\n"
	           "Starts the project's sandboxes (NAMEs and what they depend on; all without\n"
	           "NAMEs) in the background, each once its depends_on run. Each runs its `start`\n"
	           "script, else its `command`, else nothing (it stays up for msb shell and msb\n"
	           "run); output goes to .msb/log/NAME.log (msb log NAME). Running ones are left\n"
	           "as they are.\n\n"
	           "  -f, --file PATH  the Sandboxfile, or the project directory\n"
	           "  -q, --quiet      no pull progress\n");
}

static void down_usage(FILE *f)
{
	fprintf(f, "usage: msb down [OPTIONS] [NAME...]\n\n"
	           "Stops the project's running sandboxes (NAMEs and what depends on them; all\n"
	           "without NAMEs), dependants first: each main command gets SIGTERM, 10 s to\n"
	           "end, then the sandbox powers off. Works on sandboxes msb run keeps too.\n\n"
	           "  -f, --file PATH  the Sandboxfile, or the project directory\n");
}

int cmd_up(int argc, char **argv)
{
	struct project_args a;
	int rc;
	if (!project_args_begin(argc, argv, PA_QUIET, up_usage, &a, &rc))
		return rc;
	const struct project *pp = &a.p;
	const struct sf_sandbox **order = NULL;
	size_t n = 0;
	for (size_t i = 0; i < a.n && !rc; i++)
		rc = !project_sandbox(pp, a.names[i]);
	if (!rc && !a.n && pp->sf->nsandboxes && !project_sandbox(pp, pp->sf->sandboxes[0].name.s))
		rc = 1; /* what this msb cannot run yet is refused up front */
	if (!rc && sandboxfile_start_order(pp->sf, a.names, a.n, &order, &n) < 0) {
		fprintf(stderr, "msb: error: out of memory\n");
		rc = 1;
	}
	struct run_what w = {.idle_ok = 1};
	for (size_t i = 0; i < n && !rc; i++) {
		const char *name = order[i]->name.s;
		struct sandbox_record rec;
		int r = sandbox_running(pp, name, &rec);
		if (r < 0) {
			rc = 1;
			break;
		}
		if (r) {
			printf("%s: running already (keeper pid %d)\n", name, (int)rec.keeper);
			sandbox_record_free(&rec);
			continue;
		}
		if (sandbox_start_detached(pp, order[i], &w, a.quiet)) {
			rc = 1;
			break;
		}
		printf("%s: up\n", name);
		fflush(stdout);
	}
	free(order);
	project_args_end(&a);
	return rc;
}

/* Stops @name if it runs: SIGTERM to its keeper, which gives its main
 * command a grace period and powers the VM off; then, if it is still
 * there, SIGKILL (the VM dies with its keeper). */
static int stop_one(const struct project *p, const char *name)
{
	struct sandbox_record rec;
	int r = sandbox_running(p, name, &rec);
	if (r <= 0)
		return r < 0;
	pid_t keeper = rec.keeper, vmm = rec.vmm;
	uint64_t start = rec.keeper_start;
	sandbox_record_free(&rec);
	kill(keeper, SIGTERM);
	/* the keeper releases its record as it ends: its end is enough to see */
	int alive = 1;
	for (int waited = 0; waited < DOWN_WAIT_MS && alive; waited += 100) {
		struct timespec ts = {.tv_nsec = 100 * 1000000L};
		nanosleep(&ts, NULL);
		alive = sandbox_proc_start(keeper) == start;
	}
	if (alive) {
		fprintf(stderr, "msb: %s did not stop in %d s: killing it\n", name,
		        DOWN_WAIT_MS / 1000);
		kill(keeper, SIGKILL);
		if (vmm > 0)
			kill(vmm, SIGKILL);
	}
	printf("%s: down\n", name);
	fflush(stdout);
	return 0;
}

int cmd_down(int argc, char **argv)
{
	struct project_args a;
	int rc;
	if (!project_args_begin(argc, argv, PA_KNOWN, down_usage, &a, &rc))
		return rc;
	const struct project *pp = &a.p;
	const struct sf_sandbox **order = NULL;
	size_t n = 0;
	if (!rc && sandboxfile_start_order(pp->sf, NULL, 0, &order, &n) < 0) {
		fprintf(stderr, "msb: error: out of memory\n");
		rc = 1;
	}
	/* the named ones and, transitively, what depends on them: one pass in
	 * start order sees every dependency before its dependants */
	char *pick = calloc(pp->sf->nsandboxes + 1, 1);
	for (size_t i = 0; i < n && pick && !rc; i++) {
		size_t idx = (size_t)(order[i] - pp->sf->sandboxes);
		int sel = !a.n;
		for (size_t j = 0; j < a.n && !sel; j++)
			sel = !strcmp(a.names[j], order[i]->name.s);
		for (size_t d = 0; d < order[i]->depends_on.n && !sel; d++)
			sel = pick[order[i]->deps[d]];
		pick[idx] = (char)sel;
	}
	for (size_t i = n; i-- > 0 && pick && !rc;)
		if (pick[order[i] - pp->sf->sandboxes])
			rc = stop_one(pp, order[i]->name.s);
	free(pick);
	free(order);
	project_args_end(&a);
	return rc;
}
