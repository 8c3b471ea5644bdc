/* The keeper's loop: keeper.h. */
#include "keeper.h"
#include "cli.h"
#include "exec_io.h"
#include "keeper_proto.h"

#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define OUT_HIGH    (256u << 10) /* a client's unsent bytes before we stop reading for it */
#define IN_MAX      (64u << 10)  /* stdin bytes taken in before the command accepted them */

/* One command in the sandbox and where its bytes go: the main command
 * (local: file descriptors) or a client's (remote: frames on its socket). */
struct att {
	int remote;
	int sock;             /* remote: the client's socket; -1 once gone */
	struct kp_buf rx, tx; /* remote: frames in, frames out */
	struct msb_exec *x;   /* NULL until a remote client's EXEC started */
	uint8_t in[IN_MAX];   /* stdin read, not yet accepted by the command */
	size_t in_len;
	int in_fd;  /* local stdin, -1 when none or ended */
	int in_eof; /* stdin ended: close the command's once @in is sent */
	int out_fd, err_fd;
	int tty;
	int done; /* the command exited; its status is in @rc */
	int rc;
};

static long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

int keeper_sockaddr(const char *path, struct sockaddr_un *a, int *dirfd)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	*dirfd = -1;
	if (strlen(path) < sizeof(a->sun_path)) {
		memcpy(a->sun_path, path, strlen(path) + 1);
		return 0;
	}
	char dir[4096];
	if (fs_path(dir, sizeof(dir), "%s", path))
		return -ENAMETOOLONG;
	char *slash = strrchr(dir, '/');
	if (!slash || strlen(slash + 1) > 64)
		return -ENAMETOOLONG;
	*slash = 0;
	*dirfd = open(dir[0] ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0)
		return -errno;
	snprintf(a->sun_path, sizeof(a->sun_path), "/proc/self/fd/%d/%s", *dirfd, slash + 1);
	return 0;
}

int keeper_connect(const char *path)
{
	struct sockaddr_un a;
	int dirfd, e = keeper_sockaddr(path, &a, &dirfd);
	if (e)
		return e;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		e = -errno;
		close(fd);
		fd = e;
	} else if (fd < 0) {
		fd = -errno;
	}
	if (dirfd >= 0)
		close(dirfd);
	return fd;
}

static int listen_at(const char *path)
{
	struct sockaddr_un a;
	int dirfd, e = keeper_sockaddr(path, &a, &dirfd);
	if (e)
		return e;
	unlink(path); /* a dead keeper's; the caller holds the sandbox's record */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0) {
		e = -errno;
		if (fd >= 0)
			close(fd);
		fd = e;
	}
	if (dirfd >= 0)
		close(dirfd);
	return fd;
}

static void att_close_remote(struct att *a)
{
	if (a->sock >= 0)
		close(a->sock);
	a->sock = -1;
	kp_buf_free(&a->rx);
	kp_buf_free(&a->tx);
	if (a->x && !a->done) /* its client went away: so does its command */
		msb_exec_signal(a->x, SIGKILL, NULL);
	msb_exec_free(a->x);
	a->x = NULL;
}

/* A client's EXEC: starts its command (a few ms: the agent answers READY
 * once it runs). */
static int start_remote(struct msb_vm *vm, struct att *a, const uint8_t *p, uint32_t len)
{
	struct kp_exec rq;
	if (kp_exec_decode(p, len, &rq) < 0)
		return -EPROTO;
	struct msb_exec_opts xo = {.size = sizeof(xo),
	                           .argv = rq.argv,
	                           .env = rq.env,
	                           .cwd = rq.cwd,
	                           .user = rq.user[0] ? rq.user : NULL,
	                           .tty = rq.tty,
	                           .rows = rq.rows,
	                           .cols = rq.cols,
	                           .with_stdin = rq.with_stdin};
	struct msb_err err = {0};
	int e = msb_exec_start(vm, &xo, &a->x, &err);
	kp_exec_free(&rq);
	if (e < 0) {
		uint8_t b[4 + sizeof(err.msg)];
		kp_put32(b, (uint32_t)e);
		size_t n = strlen(err.msg);
		memcpy(b + 4, err.msg, n);
		a->done = 1;
		return kp_buf_frame(&a->tx, KP_FAILED, b, (uint32_t)(4 + n));
	}
	a->tty = rq.tty;
	a->in_eof = !rq.with_stdin;
	uint8_t pid[4];
	kp_put32(pid, msb_exec_pid(a->x));
	return kp_buf_frame(&a->tx, KP_STARTED, pid, sizeof(pid));
}

/* Frames a client sent; stdin only while the last of it is passed on, so
 * a command that does not read holds its client back, not us. */
static int client_frames(struct msb_vm *vm, struct att *a)
{
	uint8_t type;
	const uint8_t *p;
	uint32_t len;
	size_t total;
	int r;
	while (!a->done && a->in_len == 0 &&
	       (r = kp_next(&a->rx, a->x ? KP_MAX_DATA : KP_MAX_FRAME, &type, &p, &len, &total))) {
		if (r < 0)
			return r;
		int e = 0;
		if (!a->x && type != KP_EXEC)
			return -EPROTO;
		if (type == KP_EXEC && a->x)
			return -EPROTO;
		switch (type) {
		case KP_EXEC:
			e = start_remote(vm, a, p, len);
			break;
		case KP_STDIN:
			if (a->in_eof)
				break; /* after EOF: dropped, like a closed pipe */
			memcpy(a->in, p, len);
			a->in_len = len;
			break;
		case KP_EOF:
			a->in_eof = 1;
			break;
		case KP_SIGNAL:
			if (len != 4 || kp_get32(p) == 0 || kp_get32(p) > 64)
				return -EPROTO;
			msb_exec_signal(a->x, (int)kp_get32(p), NULL);
			break;
		case KP_RESIZE:
			if (len != 8)
				return -EPROTO;
			msb_exec_resize(a->x, kp_get32(p), kp_get32(p + 4), NULL);
			break;
		default:
			return -EPROTO;
		}
		kp_buf_drop(&a->rx, total);
		if (e)
			return e;
	}
	return 0;
}

static int frame_ready(const struct kp_buf *b)
{
	uint8_t type;
	const uint8_t *p;
	uint32_t len;
	size_t total;
	return kp_next(b, KP_MAX_FRAME, &type, &p, &len, &total) != 0;
}

/* Stdin taken in goes to the command as flow control allows. */
static int feed_stdin(struct att *a, struct msb_err *err)
{
	if (!a->x || a->done)
		return 0;
	if (a->in_len) {
		ssize_t n = msb_exec_write_some(a->x, a->in, a->in_len, err);
		if (n == -EPIPE) {
			a->in_len = 0; /* it stopped reading: fine */
			a->in_eof = 1;
			return 0;
		}
		if (n < 0)
			return (int)n;
		memmove(a->in, a->in + n, a->in_len - (size_t)n);
		a->in_len -= (size_t)n;
	}
	if (a->in_eof && a->in_len == 0 && a->in_eof != 2) {
		msb_exec_close_stdin(a->x, NULL);
		a->in_eof = 2; /* closed */
	}
	return 0;
}

/* The command's output, as far as where it goes takes it now. */
static int drain_output(struct att *a, struct msb_err *err)
{
	char buf[KP_MAX_DATA];
	while (a->x && !a->done && (!a->remote || a->tx.len < OUT_HIGH)) {
		int stream;
		ssize_t n = msb_exec_read(a->x, &stream, buf, sizeof(buf), 0, err);
		if (n == -ETIMEDOUT || n == -EINTR)
			return 0;
		if (n < 0)
			return (int)n;
		if (n == 0) {
			struct msb_exit st;
			int e = msb_exec_wait(a->x, 0, &st, err);
			if (e == -ETIMEDOUT || e == -EINTR) /* its output ended before it did */
				return 0;
			if (e < 0)
				return e;
			a->done = 1;
			a->rc = st.signaled ? 128 + st.signo : st.code;
			if (a->remote) {
				uint8_t b[12];
				kp_put32(b, (uint32_t)st.signaled);
				kp_put32(b + 4, (uint32_t)st.code);
				kp_put32(b + 8, (uint32_t)st.signo);
				return kp_buf_frame(&a->tx, KP_EXIT, b, sizeof(b));
			}
			return 0;
		}
		if (a->remote) {
			int e = kp_buf_frame(&a->tx, stream == MSB_STDERR ? KP_ERR : KP_OUT, buf,
			                     (uint32_t)n);
			if (e)
				return e;
		} else if (write_all(stream == MSB_STDERR ? a->err_fd : a->out_fd, buf, (size_t)n) <
		               0 &&
		           errno == EPIPE) {
			msb_exec_signal(a->x, SIGPIPE, NULL); /* our reader went away */
		}
	}
	return 0;
}

/* Reads what a client sent and sends what it is owed; < 0: drop it. */
static int client_io(struct msb_vm *vm, struct att *a, short revents)
{
	if (revents & (POLLIN | POLLHUP | POLLERR)) {
		uint8_t buf[KP_MAX_DATA];
		ssize_t n = recv(a->sock, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return -ECONNRESET;
		if (n > 0 && (a->rx.len + (size_t)n > KP_MAX_FRAME + KP_HDR + sizeof(buf) ||
		              kp_buf_add(&a->rx, buf, (size_t)n) < 0))
			return -EPROTO;
	}
	int e = client_frames(vm, a);
	if (e < 0)
		return e;
	if (a->tx.len) {
		ssize_t n = send(a->sock, a->tx.b, a->tx.len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -ECONNRESET;
		if (n > 0)
			kp_buf_drop(&a->tx, (size_t)n);
	}
	return a->done && a->tx.len == 0 ? -ECONNRESET : 0; /* all said: close */
}

static int local_stdin(struct att *a)
{
	ssize_t n = read(a->in_fd, a->in, sizeof(a->in));
	if (n > 0) {
		a->in_len = (size_t)n;
	} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		a->in_fd = -1;
		a->in_eof = 1;
	}
	return 0;
}

/* The log past its cap: renamed to .1, and a new one in its place on
 * out_fd and err_fd. */
static void rotate_log(const struct keeper_opts *o)
{
	struct stat st;
	if (!o->log || fstat(o->out_fd, &st) < 0 || (size_t)st.st_size < o->log_cap)
		return;
	char old[4200];
	if (fs_path(old, sizeof(old), "%s.1", o->log) || rename(o->log, old) < 0)
		return;
	int fd = open(o->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	dup2(fd, o->out_fd);
	if (o->err_fd != o->out_fd)
		dup2(fd, o->err_fd);
	close(fd);
}

int keeper_serve(const struct keeper_opts *o)
{
	char path[4200] = "";
	int lfd = -1;
	if (o->sock_dir && fs_path(path, sizeof(path), "%s/ctl.sock", o->sock_dir)) {
		fprintf(stderr, "msb: error: path too long: %s\n", o->sock_dir);
		return 1;
	}
	if (o->sock_dir && (lfd = listen_at(path)) < 0) {
		fprintf(stderr, "msb: error: cannot listen on %s: %s\n", path, strerror(-lfd));
		return 1;
	}
	struct att *atts = calloc(MAX_CLIENTS + 1, sizeof(*atts));
	if (!atts) {
		if (lfd >= 0) {
			close(lfd);
			unlink(path);
		}
		fprintf(stderr, "msb: error: out of memory\n");
		return 1;
	}
	struct att *m = &atts[0];
	size_t n = 1;
	int rc = 0, failed = 0;
	struct msb_err err = {0};
	struct term term = {0};
	m->sock = -1;
	m->in_fd = -1;
	m->done = 1; /* no main command: idle until stopped */
	if (o->main) {
		m->done = 0;
		m->tty = o->main->tty;
		m->in_fd = o->in_fd;
		m->in_eof = o->in_fd < 0;
		m->out_fd = o->out_fd;
		m->err_fd = o->err_fd;
		if (m->tty)
			term_size(&o->main->rows, &o->main->cols);
		if (msb_exec_start(o->vm, o->main, &m->x, &err) < 0) {
			fprintf(stderr, "msb: error: %s\n", err.msg);
			rc =
			    err.code == -ENOENT && !strncmp(err.msg, "cannot run ", 11) ? 127 : 126;
			goto out;
		}
		if (m->tty) {
			term_watch_resize();
			term_raw(&term);
		}
	}
	int stops = 0;
	long stop_deadline = -1;
	for (;;) {
		if (cli_stop_count() > stops) {
			stops = cli_stop_count();
			if (m->done) /* nothing to wait for */
				break;
			if (stops > 1) { /* asked twice: the sandbox goes now */
				fprintf(stderr, "msb: error: stopped by signal %d\n",
				        cli_stop_signal());
				rc = 128 + cli_stop_signal();
				break;
			}
			msb_exec_signal(m->x, cli_stop_signal(), NULL);
			if (o->stop_grace_ms > 0)
				stop_deadline = mono_ms() + o->stop_grace_ms;
		}
		if (stop_deadline >= 0 && mono_ms() >= stop_deadline) {
			fprintf(stderr,
			        "msb: the main command did not end within %d ms of the stop "
			        "signal: stopping the sandbox\n",
			        o->stop_grace_ms);
			rc = 128 + cli_stop_signal();
			break;
		}
		if (o->main && m->done)
			break;
		if (m->tty && term_resized()) {
			unsigned rows, cols;
			term_size(&rows, &cols);
			if (rows && cols)
				msb_exec_resize(m->x, rows, cols, NULL);
		}
		struct pollfd pf[MAX_CLIENTS + 3];
		int waiting = 0;
		pf[0] = (struct pollfd){.fd = msb_vm_poll_fd(o->vm), .events = POLLIN};
		pf[1] = (struct pollfd){.fd = n <= MAX_CLIENTS ? lfd : -1, .events = POLLIN};
		pf[2] =
		    (struct pollfd){.fd = !m->done && !m->in_len ? m->in_fd : -1, .events = POLLIN};
		for (size_t i = 1; i < n; i++) {
			struct att *a = &atts[i];
			/* more from a client only once what it sent is passed on:
			 * its socket's buffer holds the rest, so it waits, not us */
			short ev = (short)((a->in_len || frame_ready(&a->rx) ? 0 : POLLIN) |
			                   (a->tx.len ? POLLOUT : 0));
			pf[2 + i] = (struct pollfd){.fd = a->sock, .events = ev};
			waiting |= a->in_len > 0;
		}
		waiting |= m->in_len > 0;
		/* stdin waiting for credit: the credit comes on the VM's fd, but
		 * a look every 20 ms is cheap and needs no bookkeeping */
		if (poll(pf, (nfds_t)(2 + n), waiting ? 20 : 500) < 0 && errno != EINTR) {
			fprintf(stderr, "msb: error: poll: %s\n", strerror(errno));
			failed = 1;
			break;
		}
		size_t polled = n; /* a client accepted now has no pollfd yet */
		if ((pf[1].revents & POLLIN) && n <= MAX_CLIENTS) {
			int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
			if (c >= 0) {
				atts[n] = (struct att){.remote = 1, .sock = c, .in_fd = -1};
				n++;
			}
		}
		if (pf[2].revents)
			local_stdin(m);
		for (size_t i = 1; i < n; i++)
			if (client_io(o->vm, &atts[i], i < polled ? pf[2 + i].revents : 0) < 0)
				att_close_remote(&atts[i]);
		/* the VM's news: output, credit, or its end, which without a main
		 * command nobody else would notice */
		if (pf[0].revents && msb_vm_pump(o->vm, &err) < 0)
			failed = 1;
		for (size_t i = 0; i < n && !failed; i++) {
			struct att *a = &atts[i];
			if (a->remote && a->sock < 0)
				continue;
			if (feed_stdin(a, &err) < 0 || (a->remote && client_frames(o->vm, a) < 0) ||
			    drain_output(a, &err) < 0) {
				if (!a->remote)
					failed = 1;
				else
					att_close_remote(a);
				continue;
			}
			if (a->remote && a->tx.len &&
			    client_io(o->vm, a, 0) < 0) /* what just came out goes now */
				att_close_remote(a);
		}
		if (failed) {
			fprintf(stderr, "msb: error: %s\n",
			        err.msg[0] ? err.msg : "the sandbox ended");
			failed = 1;
			break;
		}
		rotate_log(o);
		/* forget clients that are gone, keeping the main command first */
		size_t k = 1;
		for (size_t i = 1; i < n; i++)
			if (atts[i].sock >= 0)
				atts[k++] = atts[i];
		n = k;
	}
	if (!failed && o->main && m->done)
		rc = m->rc;
	if (failed)
		rc = 1;
out:
	term_restore(&term);
	for (size_t i = 1; i < n; i++)
		att_close_remote(&atts[i]);
	msb_exec_free(m->x);
	free(atts);
	if (lfd >= 0) {
		close(lfd);
		unlink(path);
	}
	return rc;
}
