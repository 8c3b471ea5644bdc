/*
 * msb install / msb uninstall (msi is msb install): an image as a command
 * on the user's PATH. The command is a small sh script that execs
 * `msb exe -q [OPTIONS] IMAGE -- "$@"`, so every run is a throwaway
 * sandbox with the caller's arguments, stdin, stdout and exit status. The
 * image is pulled now, so a typo fails here and the first run is fast.
 * See docs/design/install.md for the script's shape and why it has a marker.
 */
#include "cli.h"

#include "fsutil.h"
#include "lib/image/pull.h"
#include "lib/image/ref.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ALIAS_MAX 63
#define MAX_ENV   4096
/* The line that says msb wrote a file, so it may replace or remove it. */
#define MARKER "# written by msb install"
/* Where the marker must be: the script's first lines. */
#define MARKER_WINDOW 4096
#define ALNUM         "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

static void usage(FILE *f)
{
	fprintf(f, "usage: msb install [OPTIONS] IMAGE[~PROGRAM] [ALIAS]\n"
	           "       msi ...\n\n"
	           "Puts a command ALIAS on your PATH that runs IMAGE in a throwaway sandbox\n"
	           "(msb exe), passing its arguments, stdin, stdout and exit status through:\n"
	           "  msi alpine my-tool; my-tool ls /\n"
	           "The arguments replace the image's Cmd (as 'docker run'); without any, the\n"
	           "image's Entrypoint and Cmd run. IMAGE~PROGRAM runs PROGRAM instead of the\n"
	           "Entrypoint (msb exe -e PROGRAM). ALIAS defaults to the image's name\n"
	           "(127.0.0.1:5000/tools/alpine:3.20 -> alpine). IMAGE is pulled now when it is\n"
	           "not here. msb never replaces a file it did not write.\n\n"
	           "  --dir DIR           where the command goes (default\n"
	           "                      ${XDG_BIN_HOME:-$HOME/.local/bin}, made if missing)\n"
	           "  --force             replace a command msb install wrote before\n"
	           "  --memory MIB        guest memory of each run\n"
	           "  --cpus N            vCPUs of each run\n"
	           "  --env K=V           set an environment variable (repeatable)\n"
	           "  --workdir DIR       working directory in the sandbox\n"
	           "  --user USER[:GROUP] name or number, resolved in the image\n"
	           "  --platform OS/ARCH  the platform to pull\n"
	           "  --insecure          plain HTTP to the image's registry\n"
	           "  -q, --quiet         no pull progress\n");
}

static void usage_uninstall(FILE *f)
{
	fprintf(f, "usage: msb uninstall [--dir DIR] ALIAS...\n\n"
	           "Removes commands msb install put in DIR (default\n"
	           "${XDG_BIN_HOME:-$HOME/.local/bin}); refuses a file msb did not write.\n\n"
	           "  --dir DIR   where the commands are\n");
}

struct install_opts {
	const char *image, *program, *alias, *dir;
	const char *memory, *cpus, *workdir, *user, *platform;
	const char *env[MAX_ENV];
	size_t nenv;
	int force, insecure, quiet;
};

/* [A-Za-z0-9][A-Za-z0-9._-]{0,62}: a file name that is never a path, an
 * option or a dot file. */
static int alias_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > ALIAS_MAX || !strchr(ALNUM, s[0]))
		return 0;
	return strspn(s, ALNUM "._-") == n;
}

static int takes_value(const char *a)
{
	static const char *const valued[] = {"--memory", "--cpus",     "--env", "--workdir",
	                                     "--user",   "--platform", "--dir"};
	for (size_t i = 0; i < sizeof(valued) / sizeof(valued[0]); i++)
		if (!strcmp(a, valued[i]))
			return 1;
	return 0;
}

static int parse(int argc, char **argv, struct install_opts *o, char *image, size_t image_len)
{
	const char *pos[2] = {NULL, NULL};
	long num;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 1;
		}
		if (!strcmp(a, "--force")) {
			o->force = 1;
		} else if (!strcmp(a, "--insecure")) {
			o->insecure = 1;
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			o->quiet = 1;
		} else if (!v && takes_value(a)) {
			fprintf(stderr, "msb install: %s needs a value\n", a);
			return 2;
		} else if (!strcmp(a, "--memory")) {
			/* Checked now, as msb exe would, so a typo fails here. */
			if (cli_number(v, 64, 1 << 20, &num)) {
				fprintf(stderr, "msb install: --memory takes MiB from 64, not %s\n",
				        v);
				return 2;
			}
			o->memory = argv[++i];
		} else if (!strcmp(a, "--cpus")) {
			if (cli_number(v, 1, 8, &num)) {
				fprintf(stderr, "msb install: --cpus takes 1 to 8, not %s\n", v);
				return 2;
			}
			o->cpus = argv[++i];
		} else if (!strcmp(a, "--env")) {
			if (!strchr(v, '=') || v[0] == '=' || o->nenv == MAX_ENV) {
				fprintf(stderr, "msb install: --env takes NAME=VALUE, not %s\n", v);
				return 2;
			}
			o->env[o->nenv++] = argv[++i];
		} else if (!strcmp(a, "--workdir")) {
			if (v[0] != '/') {
				fprintf(stderr, "msb install: --workdir must be absolute, not %s\n",
				        v);
				return 2;
			}
			o->workdir = argv[++i];
		} else if (!strcmp(a, "--user")) {
			o->user = argv[++i];
		} else if (!strcmp(a, "--platform")) {
			o->platform = argv[++i];
		} else if (!strcmp(a, "--dir")) {
			o->dir = argv[++i];
		} else if (a[0] != '-' && !pos[1]) {
			pos[pos[0] ? 1 : 0] = a;
		} else {
			fprintf(stderr, "msb install: bad argument %s\n", a);
			usage(stderr);
			return 2;
		}
	}
	if (!pos[0]) {
		fprintf(stderr, "msb install: which image? (e.g. msb install alpine)\n");
		return 2;
	}
	/* '~' is in no image reference, so the first one splits off PROGRAM. */
	size_t n = strcspn(pos[0], "~");
	if (n == 0 || n >= image_len) {
		fprintf(stderr, "msb install: bad image %s\n", pos[0]);
		return 2;
	}
	memcpy(image, pos[0], n);
	image[n] = 0;
	o->image = image;
	if (pos[0][n]) {
		o->program = pos[0] + n + 1;
		if (!*o->program) {
			fprintf(stderr, "msb install: %s: no PROGRAM after ~\n", pos[0]);
			return 2;
		}
	}
	o->alias = pos[1];
	if (o->alias && !alias_ok(o->alias)) {
		fprintf(stderr,
		        "msb install: bad ALIAS %s: letters, digits, '.', '_' and '-', up to %d, "
		        "starting with a letter or digit\n",
		        o->alias, ALIAS_MAX);
		return 2;
	}
	return 0;
}

/* ${XDG_BIN_HOME:-$HOME/.local/bin}, or --dir (made absolute: it is what
 * we tell the user to put on PATH), into @out. The XDG variables count
 * only when absolute, as their spec says. Returns 0, or 1 after printing
 * the error. */
static int bin_dir(const char *opt, char *out, size_t len)
{
	const char *xdg = getenv("XDG_BIN_HOME"), *home = getenv("HOME");
	char cwd[PATH_MAX];
	int e;
	if (opt && opt[0] != '/' && !getcwd(cwd, sizeof(cwd))) {
		fprintf(stderr, "msb: error: cannot tell the current directory: %s\n",
		        strerror(errno));
		return 1;
	}
	if (opt)
		e = opt[0] == '/' ? fs_path(out, len, "%s", opt)
		                  : fs_path(out, len, "%s/%s", cwd, opt);
	else if (xdg && xdg[0] == '/')
		e = fs_path(out, len, "%s", xdg);
	else if (home && home[0] == '/')
		e = fs_path(out, len, "%s/.local/bin", home);
	else {
		fprintf(stderr, "msb: error: $HOME is not set: name a directory with --dir\n");
		return 1;
	}
	if (e) {
		fprintf(stderr, "msb: error: the directory's name is too long\n");
		return 1;
	}
	return 0;
}

/*
 * Whether @path is a command msb install wrote: 1 (the marker is among its
 * first lines), 0 (something else: another file, a link, a directory),
 * -ENOENT (nothing there) or another negative errno. A link is never ours
 * (we write files), so it is not followed.
 */
static int written_by_msb(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return 0;
	char buf[MARKER_WINDOW + 1];
	int got = fs_read_small(path, buf, sizeof(buf));
	if (got < 0)
		return got;
	if (memchr(buf, 0, (size_t)got)) /* a binary: not ours */
		return 0;
	return strstr(buf, "\n" MARKER "\n") != NULL;
}

/* The refusals, for install (before the pull and again before writing:
 * a pull can take minutes). Returns 0 when @path may be written. */
static int may_write(const char *path, const char *alias, int force)
{
	int w = written_by_msb(path);
	if (w == -ENOENT)
		return 0;
	if (w < 0) {
		fprintf(stderr, "msb: error: cannot read %s: %s\n", path, strerror(-w));
		return 1;
	}
	if (!w) {
		fprintf(stderr,
		        "msb: error: %s exists and was not written by msb; remove it or choose "
		        "another name (msb install IMAGE ALIAS)\n",
		        path);
		return 1;
	}
	if (!force) {
		fprintf(stderr,
		        "msb: error: %s is installed already (--force replaces it, msb uninstall "
		        "%s removes it)\n",
		        path, alias);
		return 1;
	}
	return 0;
}

/*
 * The image in the store, pulled when it is not (cli_image_open(), as msb
 * exe does): its full reference into *ref (free() it). Returns 0, or 1
 * after printing the error.
 */
static int find_or_pull(const struct install_opts *o, char **ref)
{
	struct cli_pull how = {.platform = o->platform, .insecure = o->insecure, .quiet = o->quiet};
	struct store_image im;
	struct image_config cfg;
	char erofs[PATH_MAX];
	int guard;
	cli_catch_stop_signals();
	if (cli_image_open(o->image, &how, &im, erofs, sizeof(erofs), &cfg, &guard))
		return 1;
	store_unlock(guard); /* no VM here to keep it for */
	image_config_free(&cfg);
	*ref = im.ref;
	im.ref = NULL;
	store_image_free(&im);
	if (!*ref) {
		fprintf(stderr, "msb: error: image %s has no reference in the store\n", o->image);
		return 1;
	}
	return 0;
}

/* @s as one sh word: in single quotes, where nothing is special but the
 * quote itself, which becomes '\'' (close, escaped quote, reopen). */
static void put_quoted(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++)
		if (*s == '\'')
			fputs("'\\''", f);
		else
			fputc(*s, f);
	fputc('\'', f);
}

static void put_opt(FILE *f, const char *name, const char *value)
{
	if (!value)
		return;
	fprintf(f, " %s ", name);
	put_quoted(f, value);
}

/* The script; into *out (free() it), its length in *len. */
static int make_script(const struct install_opts *o, const char *alias, const char *msb,
                       const char *ref, char **out, size_t *len)
{
	FILE *f = open_memstream(out, len);
	if (!f)
		return -errno;
	/* alias and ref are checked names (no newline), fit for a comment. */
	fprintf(f,
	        "#!/bin/sh\n" MARKER "\n"
	        "# %s: runs %s in a throwaway sandbox (a microVM), with this\n"
	        "# command's arguments, stdin and stdout. msb uninstall %s removes it.\n"
	        "exec ",
	        alias, ref, alias);
	put_quoted(f, msb);
	fputs(" exe -q", f);
	put_opt(f, "--memory", o->memory);
	put_opt(f, "--cpus", o->cpus);
	for (size_t i = 0; i < o->nenv; i++)
		put_opt(f, "--env", o->env[i]);
	put_opt(f, "--workdir", o->workdir);
	put_opt(f, "--user", o->user);
	/* For a pull when the image has been removed since. */
	put_opt(f, "--platform", o->platform);
	if (o->insecure)
		fputs(" --insecure", f);
	put_opt(f, "-e", o->program);
	fputc(' ', f);
	put_quoted(f, ref);
	fputs(" -- \"$@\"\n", f);
	int bad = ferror(f);
	if (fclose(f) || bad) {
		free(*out);
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/*
 * @data as @path, mode 0755, replacing it in one step: fs_write_atomic()
 * to a staging name beside it (its files are 0600), chmod, rename. A run
 * of the command meanwhile sees the old script or the new, never half.
 */
static int write_script(const char *dir, const char *alias, const char *path, const char *data,
                        size_t len)
{
	char stage[PATH_MAX];
	int e = fs_path(stage, sizeof(stage), "%s/.%s.msb-install.%d", dir, alias, (int)getpid());
	if (e)
		return e;
	if ((e = fs_write_atomic(stage, data, len)) < 0)
		return e;
	if (chmod(stage, 0755) < 0 || rename(stage, path) < 0) {
		e = -errno;
		unlink(stage);
		return e;
	}
	fs_fsync_parent(path);
	return 0;
}

/* 1 when a $PATH entry is @dir (both resolved). */
static int on_path(const char *dir)
{
	const char *p = getenv("PATH");
	char want[PATH_MAX], entry[PATH_MAX], have[PATH_MAX];
	if (!p || !realpath(dir, want))
		return 0;
	while (*p) {
		size_t n = strcspn(p, ":");
		if (n && n < sizeof(entry)) {
			memcpy(entry, p, n);
			entry[n] = 0;
			if (realpath(entry, have) && !strcmp(have, want))
				return 1;
		}
		p += n;
		p += strspn(p, ":");
	}
	return 0;
}

static int install(const struct install_opts *o)
{
	char alias[ALIAS_MAX + 1], dir[PATH_MAX], path[PATH_MAX], msb[PATH_MAX], why[300];
	if (o->alias) {
		memcpy(alias, o->alias, strlen(o->alias) + 1); /* alias_ok(): it fits */
	} else {
		/* The repository's last component: tools/alpine -> alpine. */
		struct image_ref r;
		if (image_ref_parse(o->image, &r, why, sizeof(why)) < 0) {
			fprintf(stderr, "msb: error: %s\n", why); /* it names the image */
			return 1;
		}
		const char *base = strrchr(r.repository, '/');
		base = base ? base + 1 : r.repository;
		if (!alias_ok(base)) {
			fprintf(stderr,
			        "msb: error: %s is no command name: give one (msb install %s "
			        "ALIAS)\n",
			        base, o->image);
			return 1;
		}
		memcpy(alias, base, strlen(base) + 1); /* alias_ok(): it fits */
	}
	if (bin_dir(o->dir, dir, sizeof(dir)))
		return 1;
	if (fs_path(path, sizeof(path), "%s/%s", dir, alias)) {
		fprintf(stderr, "msb: error: %s/%s: path too long\n", dir, alias);
		return 1;
	}
	/* The script runs this msb by its real path, whatever PATH holds then. */
	ssize_t n = readlink("/proc/self/exe", msb, sizeof(msb) - 1);
	if (n <= 0 || (size_t)n >= sizeof(msb) - 1) {
		fprintf(stderr, "msb: error: cannot tell where the msb binary is: %s\n",
		        n < 0 ? strerror(errno) : "path too long");
		return 1;
	}
	msb[n] = 0;
	if (may_write(path, alias, o->force))
		return 1;
	char *ref = NULL, *script = NULL;
	size_t len = 0;
	if (find_or_pull(o, &ref))
		return 1;
	int rc = 1, e;
	if (may_write(path, alias, o->force))
		goto out;
	if ((e = make_script(o, alias, msb, ref, &script, &len)) < 0) {
		fprintf(stderr, "msb: error: cannot make the script: %s\n", strerror(-e));
		goto out;
	}
	if ((e = fs_mkdir_p(dir)) < 0 || (e = write_script(dir, alias, path, script, len)) < 0) {
		fprintf(stderr, "msb: error: cannot write %s: %s\n", path, strerror(-e));
		goto out;
	}
	/* Said as the canonical path, the one to put on PATH. */
	char real[PATH_MAX];
	const char *shown = realpath(dir, real) ? real : dir;
	fprintf(stderr, "msb: installed %s/%s: runs %s in a throwaway sandbox\n", shown, alias,
	        ref);
	if (!on_path(shown))
		fprintf(stderr,
		        "msb: %s is not on your PATH; add it, e.g. in ~/.profile:\n"
		        "  export PATH=\"%s:$PATH\"\n",
		        shown, shown);
	rc = 0;
out:
	free(script);
	free(ref);
	return rc;
}

int cmd_install(int argc, char **argv)
{
	struct install_opts o = {0};
	char image[IMAGE_NAME_MAX * 2 + 160];
	int e = parse(argc, argv, &o, image, sizeof(image));
	if (e)
		return e == 1 ? 0 : e;
	return install(&o);
}

static int uninstall_one(const char *dir, const char *alias)
{
	char path[PATH_MAX];
	if (!alias_ok(alias)) {
		fprintf(stderr, "msb: error: %s is no command msb install makes\n", alias);
		return 1;
	}
	if (fs_path(path, sizeof(path), "%s/%s", dir, alias)) {
		fprintf(stderr, "msb: error: %s/%s: path too long\n", dir, alias);
		return 1;
	}
	int w = written_by_msb(path);
	if (w == -ENOENT) {
		fprintf(stderr, "msb: error: no command %s in %s\n", alias, dir);
		return 1;
	}
	if (w < 0) {
		fprintf(stderr, "msb: error: cannot read %s: %s\n", path, strerror(-w));
		return 1;
	}
	if (!w) {
		fprintf(stderr, "msb: error: %s was not written by msb install; msb leaves it\n",
		        path);
		return 1;
	}
	if (unlink(path) < 0) {
		fprintf(stderr, "msb: error: cannot remove %s: %s\n", path, strerror(errno));
		return 1;
	}
	fprintf(stderr, "msb: removed %s\n", path);
	return 0;
}

int cmd_uninstall(int argc, char **argv)
{
	const char *opt_dir = NULL;
	int first = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage_uninstall(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			opt_dir = argv[++i];
		} else if (argv[i][0] != '-') {
			if (!first)
				first = i;
		} else {
			fprintf(stderr, "msb uninstall: bad argument %s\n", argv[i]);
			usage_uninstall(stderr);
			return 2;
		}
	}
	if (!first) {
		fprintf(stderr, "msb uninstall: which command? (e.g. msb uninstall my-tool)\n");
		return 2;
	}
	char dir[PATH_MAX];
	if (bin_dir(opt_dir, dir, sizeof(dir)))
		return 1;
	int rc = 0;
	/* Each one on its own: one refusal does not keep the others. */
	for (int i = first; i < argc; i++) {
		if (!strcmp(argv[i], "--dir")) {
			i++;
			continue;
		}
		if (uninstall_one(dir, argv[i]))
			rc = 1;
	}
	return rc;
}
