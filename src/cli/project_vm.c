/* A project sandbox's files, command and VM: project_vm.h. */
#include "project_vm.h"
#include "cli.h"
#include "exec_io.h"
#include "sandbox_run.h"

#include "fsutil.h"
#include "lib/image/pull.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ROOT_WAIT_MS 10000
#define MAX_ARGS     4096
#define ENV_FILE_MAX (1u << 20)

int project_open(const char *file, struct project *p)
{
	memset(p, 0, sizeof(*p));
	char why[1024];
	if (cli_find_sandboxfile(file, p->file, sizeof(p->file)))
		return 1;
	if (sandboxfile_load(p->file, &p->sf, why, sizeof(why)) < 0) {
		fprintf(stderr, "msb: error: %s\n", why);
		return 1;
	}
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", p->file);
	char *slash = strrchr(tmp, '/');
	if (slash)
		*slash = 0;
	if (!realpath(slash ? (tmp[0] ? tmp : "/") : ".", p->dir)) {
		fprintf(stderr, "msb: error: %s: %s\n", p->file, strerror(errno));
		project_close(p);
		return 1;
	}
	return 0;
}

void project_close(struct project *p)
{
	sandboxfile_free(p->sf);
	p->sf = NULL;
}

const struct sf_sandbox *project_sandbox(const struct project *p, const char *name)
{
	const struct sf_sandbox *sb = sandboxfile_find(p->sf, name);
	if (!sb) {
		fprintf(stderr, "msb: error: %s has no sandbox '%s'", p->file, name);
		for (size_t i = 0; i < p->sf->nsandboxes; i++)
			fprintf(stderr, "%s%s",
			        i ? ", " : " (it has: ", p->sf->sandboxes[i].name.s);
		fprintf(stderr, "%s\n", p->sf->nsandboxes ? ")" : "");
		return NULL;
	}
	char why[1024];
	if (sandboxfile_check_supported(p->sf, why, sizeof(why)) < 0) {
		fprintf(stderr, "msb: error: %s\n", why);
		return NULL;
	}
	return sb;
}

int project_msb_dir(const char *path)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -errno;
	/* 16 GiB sparse layers, logs and sockets are no one's source code */
	char ignore[PATH_MAX];
	if (fs_path(ignore, sizeof(ignore), "%s/.gitignore", path))
		return -ENAMETOOLONG;
	int fd = open(ignore, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return errno == EEXIST ? 0 : -errno;
	static const char text[] =
	    "# msb's state of this project: writable layers, logs, sockets\n*\n";
	int e = write(fd, text, sizeof(text) - 1) == (ssize_t)(sizeof(text) - 1) ? 0 : -EIO;
	close(fd);
	return e;
}

int project_state_dir(const struct project *p, const char *name, char *buf, size_t len)
{
	return fs_path(buf, len, "%s/.msb/sandboxes/%s", p->dir, name);
}

int project_disk_path(const struct project *p, const char *name, char *buf, size_t len)
{
	return fs_path(buf, len, "%s/.msb/sandboxes/%s/rw.ext4", p->dir, name);
}

int project_log_path(const struct project *p, const char *name, char *buf, size_t len)
{
	return fs_path(buf, len, "%s/.msb/log/%s.log", p->dir, name);
}

/* ---- the command and its environment ----------------------------------- */

/* Strings the command keeps: appended to one growing buffer, pointed into
 * only after it stops moving (offsets until then). */
struct strbuf {
	char *b;
	size_t len, cap;
};

static long sb_add(struct strbuf *s, const char *str, size_t n)
{
	if (n > ENV_FILE_MAX || s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		while (cap < s->len + n + 1)
			cap *= 2;
		char *b = realloc(s->b, cap);
		if (!b)
			return -1;
		s->b = b;
		s->cap = cap;
	}
	long at = (long)s->len;
	memcpy(s->b + s->len, str, n);
	s->b[s->len + n] = 0;
	s->len += n + 1;
	return at;
}

/* env_file: KEY=VALUE lines, blank lines and # comments; a value in matching
 * quotes loses them (as Compose reads .env). Offsets of "K=V" go to @at. */
static int read_env_file(const struct project *p, const struct sf_sandbox *sb, struct strbuf *s,
                         long *at, size_t *n, size_t cap)
{
	char path[PATH_MAX];
	const char *f = sb->env_file.s;
	if (fs_path(path, sizeof(path), "%s%s%s", f[0] == '/' ? "" : p->dir, f[0] == '/' ? "" : "/",
	            f)) {
		fprintf(stderr, "msb: error: env_file path too long\n");
		return 1;
	}
	FILE *in = fopen(path, "re");
	if (!in) {
		fprintf(stderr, "msb: error: %s:%d:%d: sandboxes.%s.env_file: cannot read %s: %s\n",
		        p->file, sb->env_file.pos.line, sb->env_file.pos.col, sb->name.s, path,
		        strerror(errno));
		return 1;
	}
	char line[8192];
	int ln = 0, rc = 0;
	while (!rc && fgets(line, sizeof(line), in)) {
		ln++;
		if (!strchr(line, '\n') && !feof(in)) { /* never cut a value short */
			fprintf(stderr, "msb: error: %s:%d: a line longer than %zu bytes\n", path, ln,
			        sizeof(line) - 2);
			rc = 1;
			break;
		}
		size_t len = strcspn(line, "\r\n");
		line[len] = 0;
		char *k = line + strspn(line, " \t");
		if (!*k || *k == '#')
			continue;
		if (!strncmp(k, "export ", 7))
			k += 7;
		char *eq = strchr(k, '=');
		size_t kl = eq ? (size_t)(eq - k) : 0;
		while (kl && (k[kl - 1] == ' ' || k[kl - 1] == '\t'))
			kl--;
		if (!eq || !kl || strcspn(k, " \t") < kl) {
			fprintf(stderr, "msb: error: %s:%d: expected KEY=VALUE, got \"%.80s\"\n",
			        path, ln, k);
			rc = 1;
			break;
		}
		char *v = eq + 1;
		size_t vl = strlen(v);
		if (vl >= 2 && (v[0] == '"' || v[0] == '\'') && v[vl - 1] == v[0]) {
			v++;
			vl -= 2;
		}
		char kv[8200];
		snprintf(kv, sizeof(kv), "%.*s=%.*s", (int)kl, k, (int)vl, v);
		if (*n + 1 >= cap || (at[(*n)++] = sb_add(s, kv, strlen(kv))) < 0) {
			fprintf(stderr, "msb: error: %s: too many variables\n", path);
			rc = 1;
		}
	}
	fclose(in);
	return rc;
}

const char *project_has_script(const struct sf_sandbox *sb, const char *script)
{
	for (size_t i = 0; i < sb->scripts.n; i++)
		if (!strcmp(sb->scripts.v[i].name.s, script))
			return sb->scripts.v[i].value.s;
	fprintf(stderr, "msb: error: sandbox '%s' has no script '%s'", sb->name.s, script);
	for (size_t i = 0; i < sb->scripts.n; i++)
		fprintf(stderr, "%s%s", i ? ", " : " (it has: ", sb->scripts.v[i].name.s);
	fprintf(stderr, "%s\n", sb->scripts.n ? ")" : "");
	return NULL;
}

int project_cmd_make(const struct project *p, const struct sf_sandbox *sb,
                     const struct image_config *cfg, const char *script, const char *inline_cmd,
                     char *const *args, size_t nargs, int shell_only, const char *hostname,
                     struct project_cmd *out)
{
	memset(out, 0, sizeof(*out));
	const char *shell = sb->shell.s ? sb->shell.s : SF_SHELL_DEFAULT;
	const char *text = inline_cmd;
	if (script && !(text = project_has_script(sb, script)))
		return 1;
	if (!text && !shell_only)
		for (size_t i = 0; i < sb->scripts.n; i++)
			if (!strcmp(sb->scripts.v[i].name.s, "start"))
				text = sb->scripts.v[i].value.s;
	if (!text && !shell_only && sb->command.n == 1 && sb->command_is_string)
		text = sb->command.v[0].s;
	/* argv: SHELL -c TEXT NAME ARGS (the script's $0 and "$@"), the
	 * command with ARGS, or the shell */
	const char *head[MAX_ARGS];
	size_t nh = 0;
	head[nh++] = shell;
	if (text) {
		head[nh++] = "-c";
		head[nh++] = text;
		head[nh++] = sb->name.s;
	} else if (!shell_only && sb->command.n) {
		nh = 0;
		for (size_t i = 0; i < sb->command.n && nh < MAX_ARGS / 2; i++)
			head[nh++] = sb->command.v[i].s;
	}
	if (nargs > MAX_ARGS / 2) {
		fprintf(stderr, "msb: error: too many arguments\n");
		return 1;
	}
	out->argv = calloc(nh + nargs + 1, sizeof(char *));
	out->env = calloc(EXEC_IO_MAX_ENV + 1, sizeof(char *));
	long *at = calloc(EXEC_IO_MAX_ENV, sizeof(long));
	struct strbuf s = {0};
	size_t nat = 0;
	int rc = !out->argv || !out->env || !at;
	for (size_t i = 0; !rc && i < nh; i++)
		out->argv[out->argc++] = head[i];
	for (size_t i = 0; !rc && i < nargs; i++)
		out->argv[out->argc++] = args[i];
	if (!rc && sb->env_file.s)
		rc = read_env_file(p, sb, &s, at, &nat, EXEC_IO_MAX_ENV);
	snprintf(out->hostname_env, sizeof(out->hostname_env), "HOSTNAME=%s", hostname);
	if (!rc) {
		out->owned = s.b;
		s.b = NULL;
		for (char **e = cfg->env; *e && !rc; e++)
			rc = exec_env_set(out->env, &out->nenv, *e) < 0;
		for (size_t i = 0; i < nat && !rc; i++)
			rc = exec_env_set(out->env, &out->nenv, out->owned + at[i]) < 0;
		for (size_t i = 0; i < sb->envs.n && !rc; i++)
			rc = exec_env_set(out->env, &out->nenv, sb->envs.v[i].s) < 0;
		if (!rc && !exec_env_has(out->env, out->nenv, "PATH"))
			rc = exec_env_set(out->env, &out->nenv, EXEC_IO_DEFAULT_PATH) < 0;
		if (!rc && !exec_env_has(out->env, out->nenv, "HOSTNAME"))
			rc = exec_env_set(out->env, &out->nenv, out->hostname_env) < 0;
		if (rc)
			fprintf(stderr, "msb: error: too many environment variables\n");
	} else if (!out->argv || !out->env || !at) {
		fprintf(stderr, "msb: error: out of memory\n");
	}
	free(at);
	if (rc) {
		free(s.b);
		project_cmd_free(out);
		return 1;
	}
	out->cwd = sb->workdir.s                     ? sb->workdir.s
	           : cfg->workdir && cfg->workdir[0] ? cfg->workdir
	                                             : "/";
	out->user = cfg->user && cfg->user[0] ? cfg->user : NULL;
	return 0;
}

void project_cmd_free(struct project_cmd *c)
{
	free(c->argv);
	free(c->env);
	free(c->owned);
	memset(c, 0, sizeof(*c));
}

/* ---- the VM ------------------------------------------------------------- */

/* The writable layer, made on first use. A layer made on another image
 * keeps working (its changes lie over the new image), which is worth a
 * word: files the new image changed may be hidden by old copies. */
static int ensure_disk(const struct project *p, const struct sf_sandbox *sb, const char *digest,
                       char *disk, size_t len)
{
	char dir[PATH_MAX], mark[PATH_MAX], had[128] = "";
	if (project_state_dir(p, sb->name.s, dir, sizeof(dir)) ||
	    project_disk_path(p, sb->name.s, disk, len) ||
	    fs_path(mark, sizeof(mark), "%s/image", dir)) {
		fprintf(stderr, "msb: error: the project's path is too long\n");
		return 1;
	}
	char msbdir[PATH_MAX];
	int e = fs_path(msbdir, sizeof(msbdir), "%s/.msb", p->dir);
	if (!e)
		e = project_msb_dir(msbdir);
	if (!e)
		e = fs_mkdir_p(dir);
	if (e < 0) {
		fprintf(stderr, "msb: error: cannot create %s: %s\n", dir, strerror(-e));
		return 1;
	}
	if (access(disk, F_OK) < 0) {
		struct msb_err err = {0};
		if (msb_disk_make(disk, MSB_DISK_DEFAULT_SIZE, &err) < 0)
			return cli_fail(&err);
	} else if (fs_read_small(mark, had, sizeof(had)) > 0 && strcmp(had, digest)) {
		fprintf(stderr,
		        "msb: note: %s's image changed since its writable layer was made; its "
		        "changes stay on top ('msb clean %s' starts it afresh)\n",
		        sb->name.s, sb->name.s);
	}
	if (strcmp(had, digest) && (e = fs_write_atomic(mark, digest, strlen(digest))) < 0)
		fprintf(stderr, "msb: warning: cannot write %s: %s\n", mark, strerror(-e));
	return 0;
}

int project_vm_start(const struct project *p, const struct sf_sandbox *sb, int quiet,
                     struct project_vm *out)
{
	memset(out, 0, sizeof(*out));
	char erofs[PATH_MAX], disk[PATH_MAX];
	int guard;
	struct cli_pull how = {.quiet = quiet};
	if (cli_image_open(sb->image.s, &how, &out->im, erofs, sizeof(erofs), &out->cfg, &guard))
		return 1;
	if (ensure_disk(p, sb, out->im.manifest_digest, disk, sizeof(disk))) {
		store_unlock(guard);
		project_vm_free(out);
		return 1;
	}
	struct msb_host_choice hc;
	if (cli_select_host(&hc, 0)) {
		store_unlock(guard);
		project_vm_free(out);
		return 1;
	}
	char host[80];
	sandbox_hostname(sb->name.s, host, sizeof(host));
	struct msb_vm_disk disks[2] = {{.path = erofs, .writable = 0},
	                               {.path = disk, .writable = 1}};
	struct msb_vm_opts vo = {.size = sizeof(vo),
	                         .mem_mib = sb->memory.v,
	                         .cpus = sb->cpus.v,
	                         .name = sb->name.s,
	                         .hostname = host,
	                         .progress = cli_say,
	                         .disks = disks,
	                         .ndisks = 2};
	struct msb_err err = {0};
	int e = msb_vm_start(&vo, &out->vm, &err);
	if (!e)
		e = msb_vm_mount_root(out->vm, 0, 1, ROOT_WAIT_MS, &err);
	store_unlock(guard);
	if (e) {
		fprintf(stderr, "msb: error: cannot start sandbox '%s' (%s): %s\n", sb->name.s,
		        out->im.ref, err.msg);
		project_vm_free(out);
		return 1;
	}
	return 0;
}

void project_vm_free(struct project_vm *v)
{
	msb_vm_destroy(v->vm);
	v->vm = NULL;
	image_config_free(&v->cfg);
	store_image_free(&v->im);
}
