/* msb pull: an image from its registry into the store. */
#include "cli.h"
#include "pull_view.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: msb pull [--platform OS/ARCH] [--insecure] [--quiet] IMAGE\n\n"
	           "Downloads IMAGE (python, python:3.11, ghcr.io/owner/repo:tag,\n"
	           "localhost:5000/x, name@sha256:...) from its registry and writes its root\n"
	           "file system, once, under $MSB_HOME. Credentials come from 'msb login'\n"
	           "(~/.docker/config.json). A pull that is interrupted resumes next time.\n\n"
	           "  --platform OS/ARCH  the platform to pull (default: this machine's)\n"
	           "  --insecure          plain HTTP to this registry (always so for\n"
	           "                      localhost; or list hosts in MSB_INSECURE_REGISTRIES)\n"
	           "  -q, --quiet         print only the image's reference\n");
}

int cmd_pull(int argc, char **argv)
{
	const char *name = NULL, *platform = NULL;
	int quiet = 0, insecure = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--platform") && i + 1 < argc) {
			platform = argv[++i];
		} else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
			quiet = 1;
		} else if (!strcmp(argv[i], "--insecure")) {
			insecure = 1;
		} else if (argv[i][0] != '-' && !name) {
			name = argv[i];
		} else {
			fprintf(stderr, "msb pull: bad argument %s\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (!name) {
		fprintf(stderr, "msb pull: which image? (e.g. msb pull python:3.11)\n");
		return 2;
	}
	struct store *s;
	if (cli_open_store(&s))
		return 1;
	cli_catch_stop_signals();
	struct pull_view view;
	pull_view_init(&view, quiet);
	struct pull_opts o = {.platform = platform,
	                      .insecure = insecure || cli_insecure_registry(name),
	                      .progress = pull_view_event,
	                      .progress_arg = &view,
	                      .cancelled = pull_view_cancelled};
	struct store_image im;
	char why[2048];
	int e = image_pull(s, name, &o, &im, why, sizeof(why));
	store_close(s);
	if (e) {
		fprintf(stderr, "msb: error: %s\n", why);
		return 1;
	}
	if (quiet)
		printf("%s\n", im.ref);
	store_image_free(&im);
	return 0;
}
