/*
 * The keeper: the msb process that holds a project sandbox's VM while it
 * runs (`msb up` in the background, `msb run` in a terminal). It runs the
 * sandbox's main command, and serves the commands other msb processes run
 * in the sandbox through its socket (keeper_proto.h).
 */
#ifndef MSB_CLI_KEEPER_H
#define MSB_CLI_KEEPER_H

#include "msb.h"

#include <stddef.h>

struct keeper_opts {
	struct msb_vm *vm;    /* started, root mounted; the caller stops it */
	const char *sock_dir; /* where ctl.sock goes (a private directory);
	                         NULL: no socket, the main command only (msb exe) */
	/* The main command, or NULL: none (the sandbox idles until stopped). */
	struct msb_exec_opts *main;
	/* Its I/O: @in_fd (-1: none) to its stdin; stdout and stderr to out_fd
	 * and err_fd. With main->tty, in_fd is the user's terminal. */
	int in_fd, out_fd, err_fd;
	/* A stop signal (cli_catch_stop_signals()) goes to the main command
	 * first; the sandbox ends when it exits, after this many ms (0: no
	 * limit), or at a second stop signal. */
	int stop_grace_ms;
	/* Detached: out_fd and err_fd are this log file (opened for append);
	 * past @log_cap bytes it becomes @log.1 (the one before is dropped) and
	 * a new one starts, so a chatty service cannot fill the disk. */
	const char *log;
	size_t log_cap;
};

/*
 * Serves until the main command exits (or, without one, until a stop
 * signal). Returns the exit status msb gives for the main command (its
 * own, 128+N for signal N, 127 when the program is not there, 126 when it
 * cannot start), 0 for a sandbox without one, or 1 when the sandbox failed
 * (after printing why). The socket is gone on return.
 */
int keeper_serve(const struct keeper_opts *o);

/* Connects to the keeper whose socket is @path. Returns the fd or a
 * negative errno. */
int keeper_connect(const char *path);

/* A Unix socket address for @path, which may be longer than sun_path
 * holds: through /proc/self/fd/N of its directory, which *@dirfd holds
 * open until the bind or connect is done (close it after; -1 when not
 * needed). Returns 0 or a negative errno. */
struct sockaddr_un;
int keeper_sockaddr(const char *path, struct sockaddr_un *a, int *dirfd);

#endif
