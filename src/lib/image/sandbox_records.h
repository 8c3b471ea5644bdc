/*
 * Records of the project sandboxes running on this machine, one row per
 * (project, name) in the store's msb.db (table `sandboxes`, schema 2).
 *
 * Why msb.db: there is no daemon. The msb process that starts a sandbox
 * (its "keeper") holds the VM for as long as it runs, so `msb down`,
 * `msb status` or `msb log` typed in another terminal need somewhere to
 * find that keeper, its control socket and its log. The store's database
 * is already shared by every msb process of the user and serialises
 * writers, which also makes claiming a sandbox atomic: of two `msb up`
 * racing for the same sandbox, one wins and the other is told who holds it.
 *
 * Stale records: a keeper killed with SIGKILL (or a crashed host) cannot
 * remove its record or its socket. A record is live only while a process
 * with its keeper pid exists, is not a zombie, and started at the clock
 * tick the record remembers (/proc/PID/stat field 22); comparing the start
 * time, not just kill(pid, 0), keeps a reused pid from passing for the
 * keeper. Claim, get and list delete stale records they meet, and unlink
 * their sockets, while holding the database's write lock, so a new keeper
 * (which creates its socket only after its claim succeeded) never loses
 * its socket to this cleanup.
 *
 * All functions take a store handle from store_open() and, like it, are
 * for one thread per handle; different processes may call them at once.
 * They return 0 or a negative errno and then say why in @why (NULL with
 * @why_len 0 when the caller has no use for it); database errors are
 * those of store_sql_error(): -ENOSPC, -EBUSY (locked past SQLite's busy
 * timeout), -EIO.
 */
#ifndef MSB_IMAGE_SANDBOX_RECORDS_H
#define MSB_IMAGE_SANDBOX_RECORDS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct store;

/* One running sandbox. Records this module returns own their strings
 * (sandbox_record_free()); records passed in are only read. */
struct sandbox_record {
	char *project;         /* absolute path of the project directory (where its
	                          Sandboxfile is) */
	char *name;            /* the sandbox's name in the Sandboxfile */
	pid_t keeper;          /* the msb process that holds the VM and owns the record */
	uint64_t keeper_start; /* the keeper's start time, sandbox_proc_start(keeper) */
	pid_t vmm;             /* the VMM (or QEMU) process; 0 until the VM runs */
	char *socket;          /* the keeper's control socket path; "" when none */
	char *log;             /* where its main process's output goes; "" when a
	                          terminal */
	int64_t started;       /* unix time (seconds) the keeper claimed it */
	int detached;          /* 1: started by `msb up` / `msb run -d`; 0: in a
	                          terminal */
};

/* The start time of process @pid in clock ticks since boot (field 22 of
 * /proc/PID/stat), or 0 when there is no such process, it is a zombie
 * (it holds nothing any more) or @pid <= 0. */
uint64_t sandbox_proc_start(pid_t pid);

/*
 * Claims (@r->project, @r->name) for @r->keeper: inserts @r unless a live
 * record holds that sandbox. A stale record found there is deleted first
 * and its socket unlinked. @r->socket and @r->log may be NULL (""),
 * @r->started 0 (now). Create the socket only after this succeeds: the
 * cleanup of a stale record with the same path would remove it otherwise.
 *
 * Atomic across processes (one write transaction). Returns 0; -EBUSY when
 * a live keeper holds the sandbox, with *@holder (if not NULL) filled with
 * its record (sandbox_record_free() it; zeroed on every other return);
 * -EINVAL for a relative or empty project, an empty name, or a keeper
 * without pid or start time; -EAGAIN when the database stayed locked past
 * the busy timeout (here not -EBUSY, which means a holder); or another
 * negative errno from the database.
 */
int sandbox_record_claim(struct store *s, const struct sandbox_record *r,
                         struct sandbox_record *holder, char *why, size_t why_len);

/* Sets the VMM pid of the record @keeper holds for (@project, @name).
 * Returns 0, -ENOENT when @keeper holds no such record, or a negative
 * errno from the database. */
int sandbox_record_set_vmm(struct store *s, const char *project, const char *name, pid_t keeper,
                           pid_t vmm, char *why, size_t why_len);

/* Deletes the record of (@project, @name) if @keeper holds it: a keeper
 * never deletes another's. Returns 0 also when there is none; the socket
 * file is the keeper's to remove. */
int sandbox_record_release(struct store *s, const char *project, const char *name, pid_t keeper,
                           char *why, size_t why_len);

/* The live records of @project (NULL: of every project), ordered by project
 * then name, after cleaning stale ones as claim does. Returns 0 with *@out
 * a malloc'd array of *@n records (NULL when none; sandbox_records_free()
 * it), or a negative errno. */
int sandbox_record_list(struct store *s, const char *project, struct sandbox_record **out,
                        size_t *n, char *why, size_t why_len);

/* The live record of (@project, @name) into *@out (sandbox_record_free()
 * it), or -ENOENT (@why untouched) when there is none: a stale one is
 * cleaned first. */
int sandbox_record_get(struct store *s, const char *project, const char *name,
                       struct sandbox_record *out, char *why, size_t why_len);

/* Frees the strings of @r and zeroes it; NULL is fine. */
void sandbox_record_free(struct sandbox_record *r);

/* Frees an array from sandbox_record_list() and its @n records. */
void sandbox_records_free(struct sandbox_record *r, size_t n);

#endif
