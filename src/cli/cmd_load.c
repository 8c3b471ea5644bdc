/* msb load / msb import: images from files, for hosts with no registry. */
#include "cli.h"

#include "lib/image/archive.h"

#include <stdio.h>
#include <string.h>

static void load_usage(FILE *f)
{
	fprintf(f, "usage: msb load [-n NAME] [-i] FILE\n\n"
	           "Stores the images of FILE (\"-\" reads stdin): an OCI archive (skopeo copy\n"
	           "... oci-archive:FILE) or a docker archive (docker save), plain or\n"
	           "compressed. Each image keeps the name the archive gives it; -n NAME\n"
	           "names a single image.\n\n"
	           "  -n, --name NAME     the image's name (repository[:tag])\n"
	           "  -i, --input FILE    the archive (as docker load says it)\n");
}

static void import_usage(FILE *f)
{
	fprintf(f, "usage: msb import FILE NAME\n\n"
	           "Makes the root file system tar FILE (\"-\" reads stdin; plain, gzip or\n"
	           "zstd) an image called NAME for this machine, as docker import does: one\n"
	           "layer, PATH set, /bin/sh to run when no command is given.\n");
}

static void say_loaded(const struct store_image *im, void *arg)
{
	(void)arg;
	printf("Loaded image: %s\n", im->ref);
}

int cmd_load(int argc, char **argv)
{
	const char *file = NULL, *name = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			load_usage(stdout);
			return 0;
		} else if ((!strcmp(a, "-n") || !strcmp(a, "--name")) && i + 1 < argc) {
			name = argv[++i];
		} else if ((!strcmp(a, "-i") || !strcmp(a, "--input")) && i + 1 < argc && !file) {
			file = argv[++i];
		} else if ((a[0] != '-' || !strcmp(a, "-")) && !file) {
			file = a;
		} else {
			fprintf(stderr, "msb load: bad argument %s\n", a);
			load_usage(stderr);
			return 2;
		}
	}
	if (!file) {
		fprintf(stderr, "msb load: which file? (msb load FILE)\n");
		return 2;
	}
	struct store *s;
	if (cli_open_store(&s))
		return 1;
	char why[2048];
	int e = image_load(s, file, name, say_loaded, NULL, why, sizeof(why));
	store_close(s);
	if (e) {
		fprintf(stderr, "msb: error: cannot load %s: %s\n", file, why);
		return 1;
	}
	return 0;
}

int cmd_import(int argc, char **argv)
{
	const char *pos[2] = {NULL, NULL};
	int npos = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			import_usage(stdout);
			return 0;
		}
		if ((argv[i][0] == '-' && strcmp(argv[i], "-")) || npos == 2) {
			fprintf(stderr, "msb import: bad argument %s\n", argv[i]);
			import_usage(stderr);
			return 2;
		}
		pos[npos++] = argv[i];
	}
	if (npos != 2) {
		import_usage(stderr);
		return 2;
	}
	struct store *s;
	if (cli_open_store(&s))
		return 1;
	struct store_image im;
	char why[2048];
	int e = image_import(s, pos[0], pos[1], &im, why, sizeof(why));
	store_close(s);
	if (e) {
		fprintf(stderr, "msb: error: cannot import %s: %s\n", pos[0], why);
		return 1;
	}
	printf("Imported image: %s (%.19s)\n", im.ref, im.manifest_digest);
	store_image_free(&im);
	return 0;
}
