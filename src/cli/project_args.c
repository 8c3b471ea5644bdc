/* Options of the commands on a project's sandboxes: project_args.h. */
#include "project_args.h"
#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* 0 to go on, 1 after --help, 2 for a usage error. */
static int parse(int argc, char **argv, unsigned flags, void (*usage)(FILE *),
                 struct project_args *a)
{
	int is_log = !!(flags & PA_LOG), is_clean = !!(flags & PA_CLEAN);
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			usage(stdout);
			return 1;
		}
		if (((!is_log && !strcmp(s, "-f")) || !strcmp(s, "--file")) && v) {
			a->file = v;
			i++;
		} else if ((flags & PA_QUIET) && (!strcmp(s, "-q") || !strcmp(s, "--quiet"))) {
			a->quiet = 1;
		} else if (is_log && (!strcmp(s, "-f") || !strcmp(s, "--follow"))) {
			a->follow = 1;
		} else if (is_log && (!strcmp(s, "-n") || !strcmp(s, "--lines")) && v) {
			if (cli_number(v, 0, 1L << 30, &a->lines)) {
				fprintf(stderr, "msb %s: -n takes a number of lines, not %s\n",
				        argv[0], v);
				return 2;
			}
			i++;
		} else if (is_clean && !strcmp(s, "--all")) {
			a->all = 1;
		} else if (is_clean && !strcmp(s, "--force")) {
			a->force = 1;
		} else if (s[0] != '-') {
			a->names[a->n++] = s;
		} else {
			fprintf(stderr, "msb %s: bad argument %s\n", argv[0], s);
			usage(stderr);
			return 2;
		}
	}
	if ((is_log && a->n != 1) || (is_clean && !a->n && !a->all)) {
		fprintf(stderr, "msb %s: which sandbox%s?\n", argv[0], is_log ? "" : "s");
		usage(stderr);
		return 2;
	}
	return 0;
}

int project_args_begin(int argc, char **argv, unsigned flags, void (*usage)(FILE *),
                       struct project_args *a, int *rc)
{
	memset(a, 0, sizeof(*a));
	a->lines = -1;
	a->names = calloc((size_t)argc + 1, sizeof(char *));
	if (!a->names) {
		fprintf(stderr, "msb: error: out of memory\n");
		*rc = 1;
		return 0;
	}
	int e = parse(argc, argv, flags, usage, a);
	if (!e && project_open(a->file, &a->p))
		e = 3;
	for (size_t i = 0; !e && (flags & PA_KNOWN) && i < a->n; i++)
		if (!sandboxfile_find(a->p.sf, a->names[i])) {
			fprintf(stderr, "msb: error: %s has no sandbox '%s'\n", a->p.file,
			        a->names[i]);
			project_close(&a->p);
			e = 3;
		}
	if (e) {
		free(a->names);
		a->names = NULL;
		*rc = e == 1 ? 0 : e == 3 ? 1 : 2;
		return 0;
	}
	return 1;
}

void project_args_end(struct project_args *a)
{
	free(a->names);
	a->names = NULL;
	project_close(&a->p);
}

int project_args_picked(const struct project_args *a, const char *name)
{
	if (!a->n)
		return 1;
	for (size_t i = 0; i < a->n; i++)
		if (!strcmp(a->names[i], name))
			return 1;
	return 0;
}
