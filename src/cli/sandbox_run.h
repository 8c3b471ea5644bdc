/*
 * Running a project sandbox: in this process (msb run in a terminal), in a
 * keeper of its own in the background (msb up, msb run -d), or as a client
 * of the keeper that already runs it (msb shell, msb run NAME~SCRIPT while
 * it is up). Every running sandbox has a record in msb.db
 * (lib/image/sandbox_records.h) naming its keeper and the keeper's socket.
 */
#ifndef MSB_CLI_SANDBOX_RUN_H
#define MSB_CLI_SANDBOX_RUN_H

#include "project_vm.h"

#include "lib/image/sandbox_records.h"

/* What to run: see project_cmd_make(). @idle_ok: without a start script or
 * command, run nothing and keep the sandbox up (msb up); else the shell. */
struct run_what {
	const char *script, *inline_cmd;
	char *const *args;
	size_t nargs;
	int shell_only, idle_ok;
};

/* The live record of @name in @p, into *@out (sandbox_record_free()).
 * Returns 1 when it runs, 0 when not, -1 after printing an error. */
int sandbox_running(const struct project *p, const char *name, struct sandbox_record *out);

/* The live records of all @p's sandboxes at once, by their index in the
 * Sandboxfile (zeroed, name NULL, for one that does not run); free each
 * with sandbox_record_free(). Returns 0, or -1 after printing an error. */
int sandbox_records_of(const struct project *p, struct sandbox_record *by_index);

/* Runs @w in this process as the sandbox's keeper, with the terminal.
 * Returns msb's exit status. */
int sandbox_run_here(const struct project *p, const struct sf_sandbox *sb,
                     const struct run_what *w);

/* Starts a keeper in the background that runs @w with its output in the
 * sandbox's log, and returns once the sandbox is up (0), or 1 after
 * printing why (with the log's last lines). */
int sandbox_start_detached(const struct project *p, const struct sf_sandbox *sb,
                           const struct run_what *w, int quiet);

/* Runs @w in the sandbox @rec's keeper runs. Returns msb's exit status. */
int sandbox_attach(const struct project *p, const struct sf_sandbox *sb,
                   const struct sandbox_record *rec, const struct run_what *w);

/* The hostname of a project sandbox: its name, made a valid one. */
void sandbox_hostname(const char *name, char *buf, size_t len);

#endif
