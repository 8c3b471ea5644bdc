/* Shared by the commands that run something in a sandbox: exec_io.h. */
#include "exec_io.h"
#include "cli.h"

#include "err.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
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

int exec_pump(struct msb_vm *vm, struct msb_exec *x, int tty, struct msb_err *err)
{
	int stdin_open = 1, out_open = 1, signals_sent = 0;
	char buf[65536];
	while (out_open) {
		if (tty && term_resized()) {
			unsigned rows, cols;
			term_size(&rows, &cols);
			if (rows && cols)
				msb_exec_resize(x, rows, cols, NULL);
		}
		if (cli_stop_count() > signals_sent) {
			signals_sent = cli_stop_count();
			if (signals_sent > 1) /* asked twice: the sandbox goes now */
				return err_set(err, -EINTR, "stopped by signal %d",
				               cli_stop_signal());
			msb_exec_signal(x, cli_stop_signal(), NULL);
		}
		struct pollfd pf[2] = {{.fd = msb_vm_poll_fd(vm), .events = POLLIN},
		                       {.fd = stdin_open ? STDIN_FILENO : -1, .events = POLLIN}};
		int r = poll(pf, 2, 1000);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n > 0) {
				int e = msb_exec_write(x, buf, (size_t)n, -1, err);
				if (e == -EPIPE)
					stdin_open = 0; /* it stopped reading: fine */
				else if (e < 0 && e != -EINTR)
					return e;
			} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
				stdin_open = 0;
				msb_exec_close_stdin(x, NULL);
			}
		}
		/* Whatever has arrived, without waiting (see msb_vm_poll_fd()). */
		for (;;) {
			int stream;
			ssize_t n = msb_exec_read(x, &stream, buf, sizeof(buf), 0, err);
			if (n == -ETIMEDOUT || n == -EINTR)
				break;
			if (n < 0)
				return (int)n;
			if (n == 0) {
				out_open = 0;
				break;
			}
			if (write_all(stream == MSB_STDERR ? STDERR_FILENO : STDOUT_FILENO, buf,
			              (size_t)n) < 0 &&
			    errno == EPIPE) {
				/* Our reader went away: so does the command's. */
				msb_exec_signal(x, SIGPIPE, NULL);
			}
		}
	}
	return 0;
}

int exec_run(struct msb_vm *vm, struct msb_exec_opts *xo)
{
	struct msb_err err = {0};
	struct msb_exec *x = NULL;
	struct term term = {0};
	if (xo->tty)
		term_size(&xo->rows, &xo->cols);
	if (msb_exec_start(vm, xo, &x, &err) < 0) {
		fprintf(stderr, "msb: error: %s\n", err.msg);
		/* As a shell (and docker run) says it: 127 when the program is not
		 * there, 126 when it cannot be started (a user the image lacks, a
		 * working directory it cannot enter, no permission). */
		return err.code == -ENOENT && !strncmp(err.msg, "cannot run ", 11) ? 127 : 126;
	}
	if (xo->tty) {
		term_watch_resize();
		term_raw(&term);
	}
	int e = exec_pump(vm, x, xo->tty, &err);
	struct msb_exit st;
	if (!e)
		e = msb_exec_wait(x, -1, &st, &err);
	term_restore(&term);
	msb_exec_free(x);
	if (e < 0) {
		fprintf(stderr, "msb: error: %s\n", err.msg);
		return cli_stop_signal() ? 128 + cli_stop_signal() : 1;
	}
	return st.signaled ? 128 + st.signo : st.code;
}
