/* Shared by the commands that run something in a sandbox: exec_io.h. */
#include "exec_io.h"
#include "cli.h"
#include "keeper.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int exec_env_set(const char **env, size_t *n, const char *kv)
{
	size_t kl = strcspn(kv, "=");
	for (size_t i = 0; i < *n; i++)
		if (!strncmp(env[i], kv, kl) && env[i][kl] == '=') {
			env[i] = kv;
			return 0;
		}
	if (*n + 1 >= EXEC_IO_MAX_ENV)
		return -E2BIG;
	env[(*n)++] = kv;
	return 0;
}

int exec_env_has(const char **env, size_t n, const char *name)
{
	size_t kl = strlen(name);
	for (size_t i = 0; i < n; i++)
		if (!strncmp(env[i], name, kl) && env[i][kl] == '=')
			return 1;
	return 0;
}

/* ---- the terminal ------------------------------------------------------ */

static volatile sig_atomic_t winch;

static void on_winch(int sig)
{
	(void)sig;
	winch = 1;
}

void term_watch_resize(void)
{
	struct sigaction sa = {.sa_handler = on_winch};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGWINCH, &sa, NULL);
}

int term_resized(void)
{
	if (!winch)
		return 0;
	winch = 0;
	return 1;
}

void term_raw(struct term *t)
{
	if (tcgetattr(STDIN_FILENO, &t->saved) < 0)
		return;
	struct termios r = t->saved;
	cfmakeraw(&r);
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &r) == 0)
		t->raw = 1;
}

void term_restore(struct term *t)
{
	if (t->raw)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &t->saved);
	t->raw = 0;
}

void term_size(unsigned *rows, unsigned *cols)
{
	struct winsize ws;
	*rows = *cols = 0;
	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	}
}

int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int exec_run(struct msb_vm *vm, struct msb_exec_opts *xo)
{
	/* a keeper without a socket: the same loop as a project sandbox's */
	struct keeper_opts ko = {.vm = vm,
	                         .main = xo,
	                         .in_fd = xo->with_stdin ? STDIN_FILENO : -1,
	                         .out_fd = STDOUT_FILENO,
	                         .err_fd = STDERR_FILENO};
	return keeper_serve(&ko);
}
