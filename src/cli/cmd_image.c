/* msb image ls|rm|prune: the pulled images. */
#include "cli.h"
#include "pull_view.h"

#include "lib/image/ref.h"
#include "lib/image/store.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: msb image ls [--digests]\n"
	           "       msb image rm IMAGE...\n"
	           "       msb image prune\n\n"
	           "ls     the images in the store: reference, digest, size, when created\n"
	           "rm     forget IMAGE's reference and delete what no other image uses\n"
	           "prune  delete images no reference names, and blobs no image uses\n");
}

static void ago(int64_t t, char *buf, size_t len)
{
	int64_t d = (int64_t)time(NULL) - t;
	if (d < 120)
		snprintf(buf, len, "just now");
	else if (d < 7200)
		snprintf(buf, len, "%lld minutes ago", (long long)(d / 60));
	else if (d < 172800)
		snprintf(buf, len, "%lld hours ago", (long long)(d / 3600));
	else
		snprintf(buf, len, "%lld days ago", (long long)(d / 86400));
}

static int image_ls(int argc, char **argv)
{
	int full = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--digests") || !strcmp(argv[i], "--no-trunc")) {
			full = 1;
		} else {
			fprintf(stderr, "msb image ls: bad argument %s\n", argv[i]);
			return 2;
		}
	}
	struct store *s;
	if (cli_open_store(&s))
		return 1;
	struct store_image *v;
	size_t n;
	int e = store_list(s, &v, &n);
	store_close(s);
	if (e) {
		fprintf(stderr, "msb: error: cannot read the image store: %s\n", strerror(-e));
		return 1;
	}
	printf("%-50s %-*s %10s %10s  %-20s %s\n", "REFERENCE", full ? 71 : 19, "DIGEST", "SIZE",
	       "ROOT FS", "CREATED", "PULLED");
	for (size_t i = 0; i < n; i++) {
		char size[32], fs[32], pulled[40], created[21];
		human_bytes(v[i].size, size, sizeof(size));
		human_bytes(v[i].erofs_size, fs, sizeof(fs));
		ago(v[i].pulled_at, pulled, sizeof(pulled));
		/* RFC 3339 to the second: "2026-11-23T21:35:37" */
		snprintf(created, sizeof(created), "%.19s", v[i].created ? v[i].created : "-");
		for (char *p = created; *p; p++)
			if (*p == 'T')
				*p = ' ';
		printf("%-50s %-*.*s %10s %10s  %-20s %s\n", v[i].ref ? v[i].ref : "<none>",
		       full ? 71 : 19, full ? 71 : 19, v[i].manifest_digest, size, fs, created,
		       pulled);
	}
	store_image_list_free(v, n);
	return 0;
}

static int prune(struct store *s, int quiet)
{
	unsigned images, files;
	uint64_t bytes;
	char why[1024], freed[32];
	if (store_prune(s, &images, &files, &bytes, why, sizeof(why)) < 0) {
		fprintf(stderr, "msb: error: %s\n", why);
		return 1;
	}
	human_bytes(bytes, freed, sizeof(freed));
	if (!quiet || files)
		fprintf(stderr, "msb: deleted %u image%s and %u file%s, %s freed\n", images,
		        images == 1 ? "" : "s", files, files == 1 ? "" : "s", freed);
	return 0;
}

static int image_rm(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "msb image rm: which image?\n");
		return 2;
	}
	struct store *s;
	if (cli_open_store(&s))
		return 1;
	int rc = 0;
	for (int i = 1; i < argc; i++) {
		struct image_ref r;
		char full[600], why[300];
		if (image_ref_parse(argv[i], &r, why, sizeof(why)) < 0) {
			fprintf(stderr, "msb: error: invalid image reference \"%s\": %s\n", argv[i],
			        why);
			rc = 1;
			continue;
		}
		image_ref_format(&r, full, sizeof(full));
		int e = store_remove_ref(s, full);
		if (e == -ENOENT) {
			fprintf(stderr, "msb: error: no image %s here (msb image ls lists them)\n",
			        full);
			rc = 1;
		} else if (e) {
			fprintf(stderr, "msb: error: cannot remove %s: %s\n", full, strerror(-e));
			rc = 1;
		} else {
			printf("removed %s\n", full);
		}
	}
	if (prune(s, 1))
		rc = 1;
	store_close(s);
	return rc;
}

int cmd_image(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		}
	if (!strcmp(argv[1], "ls") || !strcmp(argv[1], "list"))
		return image_ls(argc - 1, argv + 1);
	if (!strcmp(argv[1], "rm") || !strcmp(argv[1], "remove"))
		return image_rm(argc - 1, argv + 1);
	if (!strcmp(argv[1], "prune")) {
		if (argc > 2) {
			fprintf(stderr, "msb image prune: bad argument %s\n", argv[2]);
			return 2;
		}
		struct store *s;
		if (cli_open_store(&s))
			return 1;
		int rc = prune(s, 0);
		store_close(s);
		return rc;
	}
	fprintf(stderr, "msb image: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
