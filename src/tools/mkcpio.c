/*
 * mkcpio: builds an initramfs (newc cpio) from a manifest, at build time.
 *
 *   mkcpio MANIFEST OUTPUT
 *
 * Manifest lines (paths inside the archive have no leading '/'):
 *   dir     PATH PERM
 *   file    PATH PERM SOURCE
 *   symlink PATH TARGET
 *   nod     PATH PERM c MAJOR MINOR
 * Blank lines and lines starting with '#' are ignored. The output is written
 * to a temporary name, synced and renamed, so a failed build leaves no
 * half-written image.
 */
#include "cpio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SOURCE (256u << 20)

static int read_file(const char *path, char **data, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	size_t cap = 1 << 16, got = 0;
	char *buf = malloc(cap);
	while (buf) {
		size_t n = fread(buf + got, 1, cap - got, f);
		got += n;
		if (got < cap)
			break;
		if (cap >= MAX_SOURCE) {
			free(buf);
			fclose(f);
			return -EFBIG;
		}
		char *nb = realloc(buf, cap * 2);
		if (!nb) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = nb;
		cap *= 2;
	}
	int err = ferror(f) ? -EIO : 0;
	fclose(f);
	if (!buf)
		return -ENOMEM;
	if (err) {
		free(buf);
		return err;
	}
	*data = buf;
	*len = got;
	return 0;
}

static int parse_perm(const char *s, unsigned *perm)
{
	char *end;
	unsigned long v = strtoul(s, &end, 8);
	if (!*s || *end || v > 07777)
		return -EINVAL;
	*perm = (unsigned)v;
	return 0;
}

static int add_line(struct cpio *c, char *line, const char **why)
{
	char *w[7] = {0};
	int n = 0;
	for (char *tok = strtok(line, " \t\n"); tok && n < 7; tok = strtok(NULL, " \t\n"))
		w[n++] = tok;
	if (n == 0 || w[0][0] == '#')
		return 0;
	unsigned perm;
	*why = "expected: dir PATH PERM | file PATH PERM SOURCE | symlink PATH TARGET | "
	       "nod PATH PERM c MAJOR MINOR";
	if (!strcmp(w[0], "dir") && n == 3 && !parse_perm(w[2], &perm))
		return cpio_add_dir(c, w[1], perm);
	if (!strcmp(w[0], "symlink") && n == 3)
		return cpio_add_symlink(c, w[1], w[2]);
	if (!strcmp(w[0], "nod") && n == 6 && !parse_perm(w[2], &perm) && !strcmp(w[3], "c"))
		return cpio_add_chardev(c, w[1], perm, (uint32_t)strtoul(w[4], NULL, 10),
		                        (uint32_t)strtoul(w[5], NULL, 10));
	if (!strcmp(w[0], "file") && n == 4 && !parse_perm(w[2], &perm)) {
		char *data = NULL;
		size_t len = 0;
		int e = read_file(w[3], &data, &len);
		if (e) {
			*why = w[3];
			return e;
		}
		e = cpio_add_file(c, w[1], perm, data, len);
		free(data);
		return e;
	}
	return -EINVAL;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: mkcpio MANIFEST OUTPUT\n");
		return 2;
	}
	FILE *m = fopen(argv[1], "r");
	if (!m) {
		fprintf(stderr, "mkcpio: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", argv[2], (int)getpid()) >= (int)sizeof(tmp)) {
		fprintf(stderr, "mkcpio: output path too long\n");
		return 1;
	}
	FILE *out = fopen(tmp, "wb");
	if (!out) {
		fprintf(stderr, "mkcpio: %s: %s\n", tmp, strerror(errno));
		return 1;
	}
	struct cpio c;
	cpio_init(&c, out);
	char line[8192];
	int lineno = 0, e = 0;
	const char *why = "";
	while (!e && fgets(line, sizeof(line), m)) {
		lineno++;
		e = add_line(&c, line, &why);
	}
	fclose(m);
	if (!e)
		e = cpio_finish(&c);
	if (!e && (fflush(out) || fsync(fileno(out))))
		e = -errno;
	if (fclose(out) && !e)
		e = -EIO;
	if (e) {
		unlink(tmp);
		fprintf(stderr, "mkcpio: %s:%d: %s (%s)\n", argv[1], lineno, strerror(-e), why);
		return 1;
	}
	if (rename(tmp, argv[2])) {
		fprintf(stderr, "mkcpio: rename to %s: %s\n", argv[2], strerror(errno));
		unlink(tmp);
		return 1;
	}
	return 0;
}
