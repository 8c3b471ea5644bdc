/*
 * Run directories: $MSB_HOME/run/<id>/ holds what one running VM needs on
 * disk, and a lock file the owning msb process holds with flock() for as
 * long as it lives. A directory whose lock can be taken belongs to no live
 * process (its msb was killed): rundir_gc() removes it and its log.
 * Logs live apart, in $MSB_HOME/log/<id>.log, so one can outlive its run dir
 * when a failure message points at it.
 */
#ifndef MSB_VMPROC_RUNDIR_H
#define MSB_VMPROC_RUNDIR_H

#include "msb.h"

struct rundir {
	char id[96];
	char path[4096];
	char log[4096];
	int lock_fd; /* held with LOCK_EX while the run dir is in use */
};

/* Creates a run dir for a VM named after @prefix; removes stale ones first. */
int rundir_create(struct rundir *r, const char *prefix, struct msb_err *err);

/* Removes the run dir; the log too, unless @keep_log. */
void rundir_remove(struct rundir *r, int keep_log);

/* Removes run dirs (and their logs) that no live process holds. */
void rundir_gc(const char *home);

#endif
