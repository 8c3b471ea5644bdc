/*
 * The options of the commands that act on a project's sandboxes by name
 * (up, down, status, log, clean): -f/--file PATH and NAMEs, plus each
 * command's own few, parsed, with the project opened and the names checked.
 */
#ifndef MSB_CLI_PROJECT_ARGS_H
#define MSB_CLI_PROJECT_ARGS_H

#include "project_vm.h"

#include <stdio.h>

enum {
	PA_QUIET = 1, /* -q, --quiet */
	PA_LOG = 2,   /* -f is --follow (--file only), -n N; one NAME */
	PA_CLEAN = 4, /* --all or NAMEs, --force */
	PA_KNOWN = 8, /* every NAME must be a sandbox of the project */
};

struct project_args {
	const char *file;
	const char **names;
	size_t n;
	int quiet, follow, all, force;
	long lines; /* -1: all */
	struct project p;
};

/*
 * Parses @argv (argv[0] the command's name) as @flags says and opens the
 * project. Returns 1 to go on, or 0 with *@rc the exit status (after --help
 * or printing an error). Then project_args_end().
 */
int project_args_begin(int argc, char **argv, unsigned flags, void (*usage)(FILE *),
                       struct project_args *a, int *rc);
void project_args_end(struct project_args *a);

/* 1 when NAMEs were not given or @name is one of them. */
int project_args_picked(const struct project_args *a, const char *name);

#endif
