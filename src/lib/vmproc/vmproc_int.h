/*
 * What vmproc.c shares with the portable host's snapshot code
 * (phost_snap.c): the process record and how a process is started and reaped.
 */
#ifndef MSB_VMPROC_INT_H
#define MSB_VMPROC_INT_H

#include "msb.h"
#include "phost_cmd.h"
#include "rundir.h"

#include <sys/types.h>

struct msb_vmproc {
	enum msb_host_mode mode;
	pid_t pid;
	int stream_fd;
	int exited; /* pid has been reaped */
	int wait_status;
	char prog[256];
	struct rundir rd;
};

/* Another fd the child gets: @src (ours) as its fd @dst. */
struct fdmap {
	int src, dst;
};

/*
 * Starts @argv with a new stream socketpair at each of @fds and @extra's
 * fds mapped, its output into the run dir's log, dying with us. Sets
 * p->pid and p->stream_fd. @fail: the exit status when exec fails.
 */
int vmproc_spawn(struct msb_vmproc *p, char *const *argv, const int *fds, int nfds,
                 const struct fdmap *extra, int nextra, int fail, struct msb_err *err);

/* Waits up to @timeout_ms (-1: forever) for p->pid; 0 once reaped,
 * -ETIMEDOUT, or -EINTR when @interruptible and a signal arrived. */
int vmproc_reap(struct msb_vmproc *p, int timeout_ms, int interruptible);

/* Kills and reaps p->pid if it runs; closes the stream. */
void vmproc_kill(struct msb_vmproc *p);

/*
 * Starts the portable host of @c (start PHOST_BOOT) from a snapshot of a
 * host booted with the same files, kept as @prefix.phost-<key>.{ram,state}
 * and made first if there is none (docs/design/snapshot.md). Returns 0 with
 * p->pid and p->stream_fd set, or a negative errno with @err set.
 * @progress, if not NULL, is told when a snapshot is made.
 */
int phost_snap_start(struct msb_vmproc *p, const struct phost_cmd *c, const char *prefix,
                     void (*progress)(void *, const char *), void *progress_arg,
                     struct msb_err *err);

#endif
