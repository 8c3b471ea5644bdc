/*
 * What every command that runs something in a sandbox shares (msb exe, run,
 * shell, and msb run's client side): environment lists and the user's
 * terminal. The loop that moves a command's stdin and output is the
 * keeper's (keeper.h); exec_run() is a keeper without a socket.
 */
#ifndef MSB_CLI_EXEC_IO_H
#define MSB_CLI_EXEC_IO_H

#include "msb.h"

#include <stddef.h>
#include <termios.h>

#define EXEC_IO_MAX_ENV      4096
#define EXEC_IO_DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* K=V lists (@env holds at most EXEC_IO_MAX_ENV): sets @kv, replacing an
 * entry of the same name. Borrows @kv. Returns 0 or -E2BIG. */
int exec_env_set(const char **env, size_t *n, const char *kv);
int exec_env_has(const char **env, size_t n, const char *name);

/* The user's terminal: raw mode while a sandbox's command has it. */
struct term {
	int raw;
	struct termios saved;
};
void term_raw(struct term *t);
void term_restore(struct term *t);
/* The terminal's size (0 when stdin is not one). */
void term_size(unsigned *rows, unsigned *cols);
/* Notes SIGWINCH from now on; term_resized() says (once) when it came. */
void term_watch_resize(void);
int term_resized(void);

/* write() all of it, through EINTR; -1 with errno on failure. */
int write_all(int fd, const void *p, size_t n);

/*
 * Runs @xo in @vm with the user's stdin, stdout and stderr (a terminal's
 * size goes into @xo when xo->tty), and returns the exit status msb gives:
 * the command's, 128+N for signal N, 127 when the program is not there,
 * 126 when it cannot start, 1 when the sandbox failed (after printing why).
 */
int exec_run(struct msb_vm *vm, struct msb_exec_opts *xo);

#endif
