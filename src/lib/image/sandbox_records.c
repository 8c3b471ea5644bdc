/* The running sandboxes of msb.db (see sandbox_records.h). */
#include "sandbox_records.h"

#include "fsutil.h"
#include "store_int.h"
#include "why.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t sandbox_proc_start(pid_t pid)
{
	/* Field 22 lies within the first ~300 bytes even with the longest
	 * comm; a longer line is cut, not misread. */
	char path[64], buf[1024];
	if (pid <= 0 || fs_path(path, sizeof(path), "/proc/%d/stat", (int)pid) < 0 ||
	    fs_read_small(path, buf, sizeof(buf)) <= 0)
		return 0;
	/* "pid (comm) state ppid ...": comm is the program's name and may hold
	 * spaces and ')', but every field after it is a number or the state
	 * letter, so the fields begin after the last ')'. */
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	p++;
	for (int field = 3;; field++) {
		if (*p != ' ')
			return 0;
		p++;
		/* A zombie's keeper has exited: it holds no VM any more. */
		if (field == 3 && (*p == 'Z' || *p == 'X'))
			return 0;
		if (field == 22)
			break;
		p += strcspn(p, " ");
	}
	char *end;
	unsigned long long t = strtoull(p, &end, 10);
	if (end == p || (*end != ' ' && *end != '\n' && *end != '\0'))
		return 0;
	return (uint64_t)t;
}

void sandbox_record_free(struct sandbox_record *r)
{
	if (!r)
		return;
	free(r->project);
	free(r->name);
	free(r->socket);
	free(r->log);
	memset(r, 0, sizeof(*r));
}

void sandbox_records_free(struct sandbox_record *r, size_t n)
{
	for (size_t i = 0; r && i < n; i++)
		sandbox_record_free(&r[i]);
	free(r);
}

static int is_live(const struct sandbox_record *r)
{
	return r->keeper > 0 && r->keeper_start && sandbox_proc_start(r->keeper) == r->keeper_start;
}

/* Every column is NOT NULL, so a NULL text is SQLite out of memory. */
static int text_dup(sqlite3_stmt *st, int col, char **out)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	*out = t ? strdup((const char *)t) : NULL;
	return *out ? 0 : -ENOMEM;
}

#define RECORD_COLS "project, name, keeper, keeper_start, vmm, socket, log, started, detached"

static int row_record(sqlite3_stmt *st, struct sandbox_record *r)
{
	memset(r, 0, sizeof(*r));
	r->keeper = (pid_t)sqlite3_column_int64(st, 2);
	r->keeper_start = (uint64_t)sqlite3_column_int64(st, 3);
	r->vmm = (pid_t)sqlite3_column_int64(st, 4);
	r->started = sqlite3_column_int64(st, 7);
	r->detached = sqlite3_column_int(st, 8) != 0;
	if (text_dup(st, 0, &r->project) || text_dup(st, 1, &r->name) ||
	    text_dup(st, 5, &r->socket) || text_dup(st, 6, &r->log)) {
		sandbox_record_free(r);
		return -ENOMEM;
	}
	return 0;
}

/* The records of @project and @name (NULL: any), live or not, ordered by
 * project then name, into a malloc'd array. */
static int query(struct store *s, const char *project, const char *name,
                 struct sandbox_record **out, size_t *n, char *why, size_t why_len)
{
	static const char what[] = "cannot read the sandbox records";
	sqlite3_stmt *st;
	*out = NULL;
	*n = 0;
	if (sqlite3_prepare_v2(s->db,
	                       "SELECT " RECORD_COLS " FROM sandboxes "
	                       "WHERE (?1 IS NULL OR project = ?1) AND (?2 IS NULL OR name = ?2) "
	                       "ORDER BY project, name",
	                       -1, &st, NULL) != SQLITE_OK)
		return store_sql_error(s->db, what, why, why_len);
	sqlite3_bind_text(st, 1, project, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	struct sandbox_record *v = NULL;
	size_t cnt = 0, cap = 0;
	int rc, e = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct sandbox_record *nv =
			    ncap > SIZE_MAX / sizeof(*v) ? NULL : realloc(v, ncap * sizeof(*v));
			if (!nv) {
				e = why_set(why, why_len, -ENOMEM, "%s: out of memory", what);
				break;
			}
			v = nv;
			cap = ncap;
		}
		if ((e = row_record(st, &v[cnt])) < 0) {
			why_set(why, why_len, e, "%s: out of memory", what);
			break;
		}
		cnt++;
	}
	if (!e && rc != SQLITE_DONE)
		e = store_sql_error(s->db, what, why, why_len);
	sqlite3_finalize(st);
	if (e) {
		sandbox_records_free(v, cnt);
		return e;
	}
	*out = v;
	*n = cnt;
	return 0;
}

/* IMMEDIATE takes the write lock at once, so what the transaction reads
 * stays true until it commits: no other msb claims in between. */
static int begin(struct store *s, const char *what, char *why, size_t why_len)
{
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return store_sql_error(s->db, what, why, why_len);
	return 0;
}

/* Commits when @e is 0, else (or when the commit fails) rolls back;
 * returns @e or the commit's error. */
static int finish(struct store *s, int e, const char *what, char *why, size_t why_len)
{
	if (!e && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		e = store_sql_error(s->db, what, why, why_len);
	if (e)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return e;
}

/* Prepares @sql, whose first parameters are ?1 project, ?2 name and ?3
 * keeper: which record, and who holds it. */
static int prepare_keyed(struct store *s, const char *sql, const char *project, const char *name,
                         pid_t keeper, sqlite3_stmt **st, const char *what, char *why,
                         size_t why_len)
{
	if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK)
		return store_sql_error(s->db, what, why, why_len);
	sqlite3_bind_text(*st, 1, project, -1, SQLITE_STATIC);
	sqlite3_bind_text(*st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(*st, 3, keeper);
	return 0;
}

/* Runs @st, which changes rows, and finalizes it: 0 or a negative errno
 * (taken before finalizing, which would lose SQLite's message). */
static int step_done(struct store *s, sqlite3_stmt *st, const char *what, char *why, size_t why_len)
{
	int e = sqlite3_step(st) == SQLITE_DONE ? 0 : store_sql_error(s->db, what, why, why_len);
	sqlite3_finalize(st);
	return e;
}

/*
 * Deletes the stale record @r, if the row is still that claim (same keeper
 * and start: a dead keeper's claim never comes back to life), and removes
 * its socket. Called in a write transaction, so no new keeper can claim
 * the sandbox and bind the same path between the delete and the unlink.
 */
static int drop_stale(struct store *s, const struct sandbox_record *r, char *why, size_t why_len)
{
	static const char what[] = "cannot delete a stale sandbox record";
	sqlite3_stmt *st;
	int e = prepare_keyed(s,
	                      "DELETE FROM sandboxes WHERE project = ?1 AND name = ?2 AND "
	                      "keeper = ?3 AND keeper_start = ?4",
	                      r->project, r->name, r->keeper, &st, what, why, why_len);
	if (e)
		return e;
	sqlite3_bind_int64(st, 4, (sqlite3_int64)r->keeper_start);
	if ((e = step_done(s, st, what, why, why_len)))
		return e;
	/* Only a socket: whatever else took its path since is not ours.
	 * Failing to unlink is not an error: the row matters, and a new
	 * keeper's bind() would then say what is in the way. */
	struct stat sb;
	if (sqlite3_changes(s->db) && r->socket[0] && lstat(r->socket, &sb) == 0 &&
	    S_ISSOCK(sb.st_mode))
		unlink(r->socket);
	return 0;
}

/* Drops the stale records of @v (in one write transaction, only when there
 * are some) and keeps the live ones, in order, in v[0 .. *n). */
static int clean_stale(struct store *s, struct sandbox_record *v, size_t *n, char *why,
                       size_t why_len)
{
	static const char what[] = "cannot clean the sandbox records";
	size_t live = 0;
	int e = 0, began = 0;
	for (size_t i = 0; i < *n; i++) {
		if (is_live(&v[i])) {
			struct sandbox_record keep = v[i];
			v[i] = v[live];
			v[live++] = keep;
			continue;
		}
		if (!e && !began && !(e = begin(s, what, why, why_len)))
			began = 1;
		if (!e)
			e = drop_stale(s, &v[i], why, why_len);
	}
	if (began)
		e = finish(s, e, what, why, why_len);
	for (size_t i = live; i < *n; i++)
		sandbox_record_free(&v[i]);
	*n = live;
	return e;
}

static int insert(struct store *s, const struct sandbox_record *r, char *why, size_t why_len)
{
	static const char what[] = "cannot record the sandbox";
	sqlite3_stmt *st;
	int e = prepare_keyed(s,
	                      "INSERT INTO sandboxes (" RECORD_COLS ") "
	                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	                      r->project, r->name, r->keeper, &st, what, why, why_len);
	if (e)
		return e;
	sqlite3_bind_int64(st, 4, (sqlite3_int64)r->keeper_start);
	sqlite3_bind_int64(st, 5, r->vmm);
	sqlite3_bind_text(st, 6, r->socket ? r->socket : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, r->log ? r->log : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, r->started ? r->started : (int64_t)time(NULL));
	sqlite3_bind_int(st, 9, r->detached != 0);
	return step_done(s, st, what, why, why_len);
}

static int check_key(const char *project, const char *name, char *why, size_t why_len)
{
	if (!project || project[0] != '/')
		return why_set(why, why_len, -EINVAL,
		               "a sandbox's project must be an absolute path");
	if (!name || !name[0])
		return why_set(why, why_len, -EINVAL, "a sandbox needs a name");
	return 0;
}

int sandbox_record_claim(struct store *s, const struct sandbox_record *r,
                         struct sandbox_record *holder, char *why, size_t why_len)
{
	static const char what[] = "cannot claim the sandbox";
	if (holder)
		memset(holder, 0, sizeof(*holder));
	int e = check_key(r->project, r->name, why, why_len);
	if (e)
		return e;
	if (r->keeper <= 0 || !r->keeper_start)
		return why_set(why, why_len, -EINVAL,
		               "a sandbox's keeper needs a pid and start time");
	struct sandbox_record *v = NULL;
	size_t n = 0;
	e = begin(s, what, why, why_len);
	int began = e == 0, held = 0;
	if (began)
		e = query(s, r->project, r->name, &v, &n, why, why_len);
	if (!e && n && is_live(&v[0])) {
		held = 1;
		e = why_set(why, why_len, -EBUSY, "sandbox %s of %s is held by msb process %d",
		            r->name, r->project, (int)v[0].keeper);
		if (holder) {
			*holder = v[0];
			memset(&v[0], 0, sizeof(v[0]));
		}
	} else if (!e && n) {
		e = drop_stale(s, &v[0], why, why_len);
	}
	if (!e)
		e = insert(s, r, why, why_len);
	sandbox_records_free(v, n);
	if (began)
		e = finish(s, e, what, why, why_len);
	/* -EBUSY says a keeper holds the sandbox; a database SQLite found
	 * locked past its busy timeout must not read as that. */
	return e == -EBUSY && !held ? -EAGAIN : e;
}

/* Runs @sql, an UPDATE or DELETE of the record @keeper holds, with the
 * parameters of prepare_keyed() and (when it has it) ?4 @vmm. Returns the
 * number of rows changed or a negative errno. */
static int change_own(struct store *s, const char *sql, const char *project, const char *name,
                      pid_t keeper, pid_t vmm, const char *what, char *why, size_t why_len)
{
	sqlite3_stmt *st;
	int e = check_key(project, name, why, why_len);
	if (!e)
		e = prepare_keyed(s, sql, project, name, keeper, &st, what, why, why_len);
	if (e)
		return e;
	if (sqlite3_bind_parameter_count(st) >= 4)
		sqlite3_bind_int64(st, 4, vmm);
	if ((e = step_done(s, st, what, why, why_len)))
		return e;
	return sqlite3_changes(s->db);
}

int sandbox_record_set_vmm(struct store *s, const char *project, const char *name, pid_t keeper,
                           pid_t vmm, char *why, size_t why_len)
{
	int e = change_own(s,
	                   "UPDATE sandboxes SET vmm = ?4 "
	                   "WHERE project = ?1 AND name = ?2 AND keeper = ?3",
	                   project, name, keeper, vmm, "cannot record the VMM", why, why_len);
	if (e == 0)
		return why_set(why, why_len, -ENOENT, "msb process %d holds no sandbox %s of %s",
		               (int)keeper, name, project);
	return e < 0 ? e : 0;
}

int sandbox_record_release(struct store *s, const char *project, const char *name, pid_t keeper,
                           char *why, size_t why_len)
{
	int e =
	    change_own(s, "DELETE FROM sandboxes WHERE project = ?1 AND name = ?2 AND keeper = ?3",
	               project, name, keeper, 0, "cannot release the sandbox", why, why_len);
	return e < 0 ? e : 0;
}

int sandbox_record_list(struct store *s, const char *project, struct sandbox_record **out,
                        size_t *n, char *why, size_t why_len)
{
	*out = NULL;
	*n = 0;
	struct sandbox_record *v;
	size_t cnt;
	int e = query(s, project, NULL, &v, &cnt, why, why_len);
	if (!e)
		e = clean_stale(s, v, &cnt, why, why_len);
	if (e) {
		sandbox_records_free(v, cnt);
		return e;
	}
	if (!cnt) {
		free(v);
		v = NULL;
	}
	*out = v;
	*n = cnt;
	return 0;
}

int sandbox_record_get(struct store *s, const char *project, const char *name,
                       struct sandbox_record *out, char *why, size_t why_len)
{
	memset(out, 0, sizeof(*out));
	int e = check_key(project, name, why, why_len);
	if (e)
		return e;
	struct sandbox_record *v;
	size_t n;
	if ((e = query(s, project, name, &v, &n, why, why_len)))
		return e;
	e = clean_stale(s, v, &n, why, why_len);
	if (!e && !n)
		e = -ENOENT;
	if (!e) {
		*out = v[0];
		memset(&v[0], 0, sizeof(v[0]));
	}
	sandbox_records_free(v, n);
	return e;
}
