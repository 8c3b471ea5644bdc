/*
 * The project commands that read or start a Sandboxfile: msb init, msb list,
 * msb tree. A project is found from -f/--file (a Sandboxfile or its
 * directory) or, without it, the nearest Sandboxfile in this directory or
 * one above it, as git finds its repository.
 */
#include "cli.h"
#include "sandbox_run.h"

#include "lib/project/sandboxfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SANDBOXFILE "Sandboxfile"

/* What `msb init` writes: every key a new user reaches for, explained, and
 * a file that parses as it is (tests/integration/test_project.py). */
static const char starter[] =
    "# The sandboxes of this project, for msb (msb run NAME, msb up, msb list).\n"
    "# Every key here does what it says; a key msb does not know is an error.\n"
    "\n"
    "meta:\n"
    "  description: \"\"\n"
    "\n"
    "sandboxes:\n"
    "  # A sandbox is a microVM of an image with its own Linux kernel.\n"
    "  app:\n"
    "    image: \"msb.local/default\"   # any OCI image: python:3.11, ghcr.io/o/r:tag, ...\n"
    "    memory: 1024                  # MiB\n"
    "    cpus: 1\n"
    "    # envs: [\"DEBUG=false\"]\n"
    "    # workdir: \"/app\"             # default: the image's WorkingDir, else /\n"
    "    scripts:\n"
    "      # msb run app runs `start`; msb run app~test runs `test`\n"
    "      start: \"python3 -c 'print(\\\"hello from app\\\")'\"\n"
    "    # depends_on: [\"db\"]          # started first by msb up\n";

static void init_usage(FILE *f)
{
	fprintf(f, "usage: msb init [DIR]\n\n"
	           "Starts a project in DIR (default: here): a commented Sandboxfile to edit,\n"
	           "and .msb/ for what the project's sandboxes keep. Refuses to overwrite a\n"
	           "Sandboxfile that is there.\n");
}

static void list_usage(FILE *f, const char *cmd)
{
	fprintf(
	    f,
	    "usage: msb %s [-f PATH]\n\n%s\n\n"
	    "  -f, --file PATH   the Sandboxfile, or its directory (default: the nearest\n"
	    "                    Sandboxfile here or above)\n",
	    cmd,
	    !strcmp(cmd, "list")
	        ? "Lists the project's sandboxes and builds: image, memory, vCPUs and what each\n"
	          "depends on."
	        : "Shows the project's sandboxes as a tree of what each depends on, and its\n"
	          "builds.");
}

static int write_new(const char *path, const char *text)
{
	/* O_EXCL: never over a file that is there, not even one made meanwhile */
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? -errno : -EIO;
			close(fd);
			unlink(path);
			return e;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		int e = -errno;
		unlink(path);
		return e;
	}
	return 0;
}

int cmd_init(int argc, char **argv)
{
	const char *dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			init_usage(stdout);
			return 0;
		}
		if (argv[i][0] == '-' || dir) {
			fprintf(stderr, "msb init: bad argument %s\n", argv[i]);
			init_usage(stderr);
			return 2;
		}
		dir = argv[i];
	}
	if (!dir)
		dir = ".";
	char file[PATH_MAX], state[PATH_MAX];
	if (snprintf(file, sizeof(file), "%s/" SANDBOXFILE, dir) >= (int)sizeof(file) ||
	    snprintf(state, sizeof(state), "%s/.msb", dir) >= (int)sizeof(state)) {
		fprintf(stderr, "msb: error: %s: path too long\n", dir);
		return 1;
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "msb: error: cannot create %s: %s\n", dir, strerror(errno));
		return 1;
	}
	int e = write_new(file, starter);
	if (e == -EEXIST) {
		fprintf(stderr, "msb: error: %s exists already; msb init leaves it as it is\n",
		        file);
		return 1;
	}
	if (e) {
		fprintf(stderr, "msb: error: cannot write %s: %s\n", file, strerror(-e));
		return 1;
	}
	if ((e = project_msb_dir(state)) < 0) {
		fprintf(stderr, "msb: error: cannot create %s: %s\n", state, strerror(-e));
		return 1;
	}
	fprintf(stderr, "msb: wrote %s; edit it, then: msb list\n", file);
	return 0;
}

int cli_find_sandboxfile(const char *arg, char *path, size_t len)
{
	struct stat st;
	if (arg) {
		if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode))
			snprintf(path, len, "%s/" SANDBOXFILE, arg);
		else
			snprintf(path, len, "%s", arg);
		if (stat(path, &st) < 0) {
			fprintf(stderr, "msb: error: %s: %s\n", path, strerror(errno));
			return 1;
		}
		return 0;
	}
	char dir[PATH_MAX];
	if (!getcwd(dir, sizeof(dir))) {
		fprintf(stderr, "msb: error: cannot tell the current directory: %s\n",
		        strerror(errno));
		return 1;
	}
	for (;;) {
		int root = !strcmp(dir, "/");
		if (snprintf(path, len, "%s/" SANDBOXFILE, root ? "" : dir) < (int)len &&
		    stat(path, &st) == 0)
			return 0;
		if (root)
			break;
		char *slash = strrchr(dir, '/');
		if (slash == dir)
			dir[1] = 0; /* "/x" -> "/" */
		else
			*slash = 0;
	}
	fprintf(stderr, "msb: error: no Sandboxfile here or in a directory above; "
	                "start one with msb init, or name one with -f\n");
	return 1;
}

/* -f handling and loading, shared by list and tree. */
static int load_project(int argc, char **argv, struct project *p)
{
	const char *file = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			list_usage(stdout, argv[0]);
			return 2;
		}
		if ((!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) && i + 1 < argc) {
			file = argv[++i];
			continue;
		}
		fprintf(stderr, "msb %s: bad argument %s\n", argv[0], argv[i]);
		list_usage(stderr, argv[0]);
		return 3;
	}
	return project_open(file, p);
}

static int load_status(int r)
{
	return r == 2 ? 0 : r == 3 ? 2 : r;
}

static void join(const struct sf_list *l, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = 0;
	for (size_t i = 0; i < l->n && off < len; i++) {
		int n = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", l->v[i].s);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	if (!l->n)
		snprintf(buf, len, "-");
}

int cmd_list(int argc, char **argv)
{
	struct project p;
	int r = load_project(argc, argv, &p);
	if (r)
		return load_status(r);
	const struct sandboxfile *sf = p.sf;
	struct sandbox_record *recs = calloc(sf->nsandboxes + 1, sizeof(*recs));
	int known = recs && sandbox_records_of(&p, recs) == 0;
	printf("%-20s %-8s %-36s %8s %5s  %-8s %s\n", "NAME", "KIND", "IMAGE", "MEMORY", "CPUS",
	       "STATUS", "DEPENDS ON");
	for (size_t i = 0; i < sf->nsandboxes; i++) {
		const struct sf_sandbox *s = &sf->sandboxes[i];
		char deps[512], mem[32];
		join(&s->depends_on, deps, sizeof(deps));
		snprintf(mem, sizeof(mem), "%u MiB", s->memory.v);
		printf("%-20s %-8s %-36s %8s %5u  %-8s %s\n", s->name.s, "sandbox", s->image.s, mem,
		       s->cpus.v,
		       !known         ? "?"
		       : recs[i].name ? "running"
		                      : "stopped",
		       deps);
		if (recs)
			sandbox_record_free(&recs[i]);
	}
	for (size_t i = 0; i < sf->nbuilds; i++) {
		const struct sf_build *b = &sf->builds[i];
		char mem[32];
		snprintf(mem, sizeof(mem), "%u MiB", b->memory.v);
		printf("%-20s %-8s %-36s %8s %5u  %-8s %s\n", b->name.s, "build", b->image.s, mem,
		       b->cpus.v, "-", "-");
	}
	free(recs);
	project_close(&p);
	return 0;
}

/* @s and, indented under it, what it depends on (a DAG: a sandbox two
 * others need appears under both). */
static void tree_node(const struct sandboxfile *sf, const struct sf_sandbox *s, const char *prefix,
                      int last, int top)
{
	printf("%s%s%s (%s)\n", prefix, top ? "" : last ? "└── " : "├── ", s->name.s, s->image.s);
	char next[512];
	snprintf(next, sizeof(next), "%s%s", prefix, top ? "" : last ? "    " : "│   ");
	for (size_t i = 0; i < s->depends_on.n; i++)
		tree_node(sf, &sf->sandboxes[s->deps[i]], next, i + 1 == s->depends_on.n, 0);
}

int cmd_tree(int argc, char **argv)
{
	struct project p;
	int r = load_project(argc, argv, &p);
	if (r)
		return load_status(r);
	const struct sandboxfile *sf = p.sf;
	/* The roots: sandboxes nothing depends on. */
	char *needed = calloc(sf->nsandboxes ? sf->nsandboxes : 1, 1);
	if (!needed) {
		project_close(&p);
		return 1;
	}
	for (size_t i = 0; i < sf->nsandboxes; i++)
		for (size_t d = 0; d < sf->sandboxes[i].depends_on.n; d++)
			needed[sf->sandboxes[i].deps[d]] = 1;
	for (size_t i = 0; i < sf->nsandboxes; i++)
		if (!needed[i])
			tree_node(sf, &sf->sandboxes[i], "", 1, 1);
	for (size_t i = 0; i < sf->nbuilds; i++)
		printf("build %s (%s)\n", sf->builds[i].name.s, sf->builds[i].image.s);
	free(needed);
	project_close(&p);
	return 0;
}
