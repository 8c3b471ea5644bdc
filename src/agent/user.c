/* Docker-style users resolved in the image's /etc/passwd and /etc/group: see user.h. */
#include "user.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PW_FIELDS 7 /* name:password:uid:gid:gecos:home:shell */
#define GR_FIELDS 4 /* name:password:gid:members */

/* Bytes of a line or spec: not NUL-terminated. */
struct field {
	const char *p;
	size_t n;
};

static int field_eq(struct field a, struct field b)
{
	return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* Decimal digits only: -EINVAL when it is not a number (so a name),
 * -ERANGE above USER_MAX_ID. */
static int parse_id(struct field f, uint32_t *out)
{
	if (f.n == 0)
		return -EINVAL;
	for (size_t i = 0; i < f.n; i++)
		if (f.p[i] < '0' || f.p[i] > '9')
			return -EINVAL;
	uint64_t v = 0;
	for (size_t i = 0; i < f.n; i++) {
		v = v * 10 + (uint64_t)(f.p[i] - '0'); /* v <= USER_MAX_ID before: no wrap */
		if (v > USER_MAX_ID)
			return -ERANGE;
	}
	*out = (uint32_t)v;
	return 0;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Walks the lines of a file's text. */
struct lines {
	const char *p, *end;
};

static int next_line(struct lines *it, struct field *line)
{
	if (!it->p || it->p >= it->end)
		return 0;
	const char *nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
	const char *e = nl ? nl : it->end;
	*line = (struct field){it->p, (size_t)(e - it->p)};
	it->p = nl ? nl + 1 : it->end;
	return 1;
}

/*
 * Splits a line into at most @max ':'-separated fields. Returns their count,
 * or 0 for a line to skip: over USER_MAX_LINE, with a NUL, blank, a comment,
 * or with more than @max fields. Blanks around the line are trimmed.
 */
static size_t split(struct field line, struct field *f, size_t max)
{
	if (line.n > USER_MAX_LINE || memchr(line.p, '\0', line.n))
		return 0;
	while (line.n && is_space(line.p[0]))
		line.p++, line.n--;
	while (line.n && is_space(line.p[line.n - 1]))
		line.n--;
	if (line.n == 0 || line.p[0] == '#')
		return 0;
	const char *p = line.p, *end = line.p + line.n;
	for (size_t k = 0;; k++) {
		if (k == max)
			return 0;
		const char *c = memchr(p, ':', (size_t)(end - p));
		f[k] = (struct field){p, (size_t)((c ? c : end) - p)};
		if (!c)
			return k + 1;
		p = c + 1;
	}
}

struct pw_entry {
	struct field name, home;
	uint32_t uid, gid;
};

/* A passwd line: at least name, password, uid and gid; a name; ids in range. */
static int pw_parse(struct field line, struct pw_entry *e)
{
	struct field f[PW_FIELDS];
	size_t n = split(line, f, PW_FIELDS);
	if (n < 4 || f[0].n == 0 || parse_id(f[2], &e->uid) || parse_id(f[3], &e->gid))
		return 0;
	e->name = f[0];
	e->home = n >= 6 ? f[5] : (struct field){"", 0};
	return 1;
}

struct gr_entry {
	struct field name, members;
	uint32_t gid;
};

/* A group line: at least name, password and gid; a name; the gid in range. */
static int gr_parse(struct field line, struct gr_entry *e)
{
	struct field f[GR_FIELDS];
	size_t n = split(line, f, GR_FIELDS);
	if (n < 3 || f[0].n == 0 || parse_id(f[2], &e->gid))
		return 0;
	e->name = f[0];
	e->members = n == 4 ? f[3] : (struct field){"", 0};
	return 1;
}

/* Whether the ','-separated @members name @user. */
static int lists(struct field members, struct field user)
{
	const char *p = members.p, *end = members.p + members.n;
	while (p < end) {
		const char *c = memchr(p, ',', (size_t)(end - p));
		struct field m = {p, (size_t)((c ? c : end) - p)};
		if (field_eq(m, user))
			return 1;
		p = c ? c + 1 : end;
	}
	return 0;
}

static int add_group(struct user_ids *out, gid_t gid)
{
	for (size_t i = 0; i < out->ngroups; i++)
		if (out->groups[i] == gid)
			return 0;
	if (out->ngroups == USER_MAX_GROUPS)
		return -E2BIG;
	out->groups[out->ngroups++] = gid;
	return 0;
}

/* Finds the group @g names (a gid when @numeric, else a name). */
static int find_group(const char *gr, size_t grlen, struct field g, int numeric, uint32_t gid,
                      uint32_t *found)
{
	struct lines it = {gr, gr ? gr + grlen : NULL};
	struct field line;
	struct gr_entry ge;
	while (next_line(&it, &line))
		if (gr_parse(line, &ge) && (numeric ? ge.gid == gid : field_eq(ge.name, g))) {
			*found = ge.gid;
			return 1;
		}
	return 0;
}

int user_resolve(const char *spec, const char *pw, size_t pwlen, const char *gr, size_t grlen,
                 struct user_ids *out, char *msg, size_t msglen)
{
	const char *colon = strchr(spec, ':');
	struct field u = {spec, colon ? (size_t)(colon - spec) : strlen(spec)};
	struct field g = {colon ? colon + 1 : "", colon ? strlen(colon + 1) : 0};
	uint32_t uarg = 0, garg = 0;
	int ue = parse_id(u, &uarg), ge = parse_id(g, &garg);
	if (u.n == 0) {
		snprintf(msg, msglen, "invalid user \"%s\": it names no user", spec);
		return -EINVAL;
	}
	if (ue == -ERANGE || ge == -ERANGE) {
		snprintf(msg, msglen, "invalid user \"%s\": uids and gids must be in range 0-%u",
		         spec, USER_MAX_ID);
		return -ERANGE;
	}

	/* the user: a number is always a uid, the first match wins */
	struct lines it = {pw, pw ? pw + pwlen : NULL};
	struct field line;
	struct pw_entry pe;
	int found = 0;
	while (!found && next_line(&it, &line))
		found = pw_parse(line, &pe) && (ue == 0 ? pe.uid == uarg : field_eq(pe.name, u));
	if (!found && ue) {
		snprintf(msg, msglen,
		         "unable to find user %.*s: no matching entries in passwd file", (int)u.n,
		         u.p);
		return -ENOENT;
	}
	out->uid = found ? pe.uid : uarg;
	out->gid = found ? pe.gid : 0;
	if (found && pe.home.n) { /* pe.home.n <= USER_MAX_LINE: the line's bound */
		memcpy(out->home, pe.home.p, pe.home.n);
		out->home[pe.home.n] = '\0';
	} else {
		snprintf(out->home, sizeof(out->home), "/");
	}

	/* an explicit group is the only one, as runc has it */
	out->ngroups = 0;
	if (g.n) {
		uint32_t gid;
		if (find_group(gr, grlen, g, ge == 0, garg, &gid))
			out->gid = gid;
		else if (ge == 0)
			out->gid = garg;
		else {
			snprintf(msg, msglen,
			         "unable to find group %.*s: no matching entries in group file",
			         (int)g.n, g.p);
			return -ENOENT;
		}
		return add_group(out, out->gid);
	}
	add_group(out, out->gid);
	if (!found)
		return 0;
	struct lines git = {gr, gr ? gr + grlen : NULL};
	struct gr_entry e;
	while (next_line(&git, &line))
		if (gr_parse(line, &e) && lists(e.members, pe.name) && add_group(out, e.gid) < 0) {
			snprintf(msg, msglen, "user %.*s is in more than %u groups", (int)u.n, u.p,
			         USER_MAX_GROUPS);
			return -E2BIG;
		}
	return 0;
}

int user_read_file(const char *path, char **buf, size_t *len)
{
	*buf = NULL;
	*len = 0;
	/* O_PATH first: opening a FIFO or a device could block or act */
	struct stat a, b;
	int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	int e = fstat(fd, &a) < 0 ? -errno : 0;
	close(fd);
	if (e)
		return e;
	if (!S_ISREG(a.st_mode))
		return -EINVAL;
	if (a.st_size > (off_t)USER_MAX_FILE)
		return -EFBIG;
	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* swapped in between: only a process already root in the sandbox can */
	if (fstat(fd, &b) < 0 || b.st_dev != a.st_dev || b.st_ino != a.st_ino) {
		close(fd);
		return -EAGAIN;
	}
	/* st_size is a hint (files in /proc say 0): read to the cap */
	char *p = malloc(USER_MAX_FILE + 1);
	if (!p) {
		close(fd);
		return -ENOMEM;
	}
	size_t have = 0;
	for (;;) {
		ssize_t n = read(fd, p + have, USER_MAX_FILE + 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = -errno;
			break;
		}
		if (n == 0)
			break;
		have += (size_t)n;
		if (have > USER_MAX_FILE) {
			e = -EFBIG;
			break;
		}
	}
	close(fd);
	if (e) {
		free(p);
		return e;
	}
	p[have] = '\0';
	*buf = p;
	*len = have;
	return 0;
}

int user_lookup(const char *spec, struct user_ids *out, char *msg, size_t msglen)
{
	static const char *const path[2] = {"/etc/passwd", "/etc/group"};
	char *text[2] = {NULL, NULL};
	size_t len[2] = {0, 0};
	int e = 0;
	for (int i = 0; i < 2 && !e; i++)
		if ((e = user_read_file(path[i], &text[i], &len[i])) < 0)
			snprintf(msg, msglen, "cannot read %s for user %s: %s", path[i], spec,
			         e == -EINVAL  ? "not a regular file"
			         : e == -EFBIG ? "larger than 1 MiB"
			                       : strerror(-e));
	if (!e)
		e = user_resolve(spec, text[0], len[0], text[1], len[1], out, msg, msglen);
	free(text[0]);
	free(text[1]);
	return e;
}

char **user_env(char **envp, const char *home)
{
	size_t n = 0;
	for (; envp[n]; n++)
		if (!strncmp(envp[n], "HOME=", 5))
			return envp;
	size_t hl = strlen(home);
	char **v = malloc((n + 2) * sizeof(*v) + 5 + hl + 1);
	if (!v)
		return NULL;
	char *s = (char *)(v + n + 2);
	memcpy(s, "HOME=", 5);
	memcpy(s + 5, home, hl + 1);
	if (n)
		memcpy(v, envp, n * sizeof(*v));
	v[n] = s;
	v[n + 1] = NULL;
	return v;
}
