/*
 * Starting one exec's process: pipes or a pseudo-terminal, credentials,
 * working directory, environment, PATH search.
 */
#ifndef MSB_AGENT_SPAWN_H
#define MSB_AGENT_SPAWN_H

#include "proto.h"

#include <sys/types.h>

/* What a started process is connected to. The fds are non-blocking and
 * close-on-exec, owned by the caller; -1 where absent. With a TTY, in and
 * out are the same master fd (dup'ed, so each is closed on its own) and err
 * is -1 (a terminal has one output stream). */
struct spawned {
	pid_t pid;
	int in;  /* write end of the process's stdin; -1 without PROTO_EXEC_STDIN */
	int out; /* read end of its stdout (or the terminal) */
	int err; /* read end of its stderr */
};

/*
 * Starts @m, chrooted into @root unless it is NULL, as a new session leader (so a signal to -pid
 * reaches everything it started), as m->user resolved in that root (user.h) when it is set, else
 * as m->uid and m->gid. Returns 0 and fills @s, or a negative errno with @msg (of @msglen) saying
 * what failed: "cannot run /bin/nope: No such file or directory", "unable to find user app: no
 * matching entries in passwd file". Failures in the child before execve (the user, chdir, setuid,
 * execve itself) are reported here, not as an exit code, and leave no process behind. The caller
 * must have SIGCHLD blocked or handled: the child is not reaped here.
 */
int spawn_exec(const struct proto_exec *m, const char *root, struct spawned *s, char *msg,
               size_t msglen);

#endif
