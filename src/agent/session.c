/* The agent's side of a host connection: see session.h. */
#include "session.h"
#include "root.h"
#include "proto.h"
#include "spawn.h"
#include "wbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define AGENT_NAME                                                                                 \
	"msb-agent "                                                                               \
	"0.1.0"
#define MAX_EXECS  256
#define READ_CHUNK (64u << 10)  /* most bytes of one data frame we send */
#define OUT_HIGH   (256u << 10) /* stop reading processes above this much queued */
#define OUT_MAX    (4u << 20)   /* stop reading the host above this much queued */
#define GRANT_STEP (64u << 10)  /* grant stdin credit in steps of this */

struct exec {
	uint32_t id;
	pid_t pid;
	int tty;
	int fd[3];                   /* by enum proto_stream; -1 once closed */
	struct proto_credit send[3]; /* [STDOUT], [STDERR]: what we may send */
	struct proto_credit in_recv; /* mirror of the host's stdin credit */
	uint8_t *in;                 /* stdin bytes not yet written; PROTO_INITIAL_CREDIT */
	size_t in_off, in_len;
	uint64_t in_done; /* written (or dropped) and not yet granted again */
	int in_eof;       /* the host ended stdin */
	int exited;
	int status;
	struct exec *next;
};

struct session {
	int conn;
	struct agent_root *root; /* the image root, once mounted; owned by main() */
	struct proto_reader rd;
	struct wbuf wb;
	struct exec *execs;
	unsigned nexecs;
	uint32_t max_id; /* ids are never reused on a connection */
	int hello;
	int shutdown;
	int failed; /* stop serving; after the queue is flushed if possible */
};

static void logmsg(const char *what, int e)
{
	fprintf(stderr, "msb-agent: %s: %s\n", what, strerror(-e));
}

/* Ends the connection with an ERROR frame saying why. */
static void conn_error(struct session *s, int e, const char *msg)
{
	struct proto_error m = {.err = e < 0 ? -e : EPROTO};
	snprintf(m.msg, sizeof(m.msg), "%s", msg);
	uint8_t p[PROTO_ERROR_FIXED + PROTO_MAX_ERROR_MSG];
	int n = proto_error_encode(&m, p, sizeof(p));
	if (n >= 0)
		wbuf_frame(&s->wb, PROTO_ERROR, 0, p, (uint32_t)n);
	fprintf(stderr, "msb-agent: closing the connection: %s\n", msg);
	s->failed = 1;
}

/* A request or exec @id failed: ERROR with its id (the connection goes on). */
static void request_error(struct session *s, uint32_t id, struct proto_error *er, int e)
{
	er->err = -e;
	uint8_t b[PROTO_ERROR_FIXED + PROTO_MAX_ERROR_MSG];
	int n = proto_error_encode(er, b, sizeof(b));
	if (n >= 0)
		wbuf_frame(&s->wb, PROTO_ERROR, id, b, (uint32_t)n);
}

static struct exec *exec_find(struct session *s, uint32_t id)
{
	for (struct exec *e = s->execs; e; e = e->next)
		if (e->id == id)
			return e;
	return NULL;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void exec_free(struct session *s, struct exec *x)
{
	for (struct exec **pp = &s->execs; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	for (int i = 0; i < 3; i++)
		close_fd(&x->fd[i]);
	free(x->in);
	free(x);
	s->nexecs--;
}

static void exec_start(struct session *s, uint32_t id, const uint8_t *p, uint32_t len)
{
	struct proto_exec m;
	struct proto_error er = {0};
	int e;
	if (id <= s->max_id) {
		conn_error(s, -EPROTO, "EXEC reuses an id");
		return;
	}
	s->max_id = id;
	if ((e = proto_exec_decode(p, len, &m)) < 0) {
		conn_error(s, e, "malformed EXEC");
		return;
	}
	struct exec *x = NULL;
	struct spawned sp;
	if (s->nexecs >= MAX_EXECS) {
		e = -EAGAIN;
		snprintf(er.msg, sizeof(er.msg), "too many processes running (at most %d)",
		         MAX_EXECS);
	} else if (!(x = calloc(1, sizeof(*x)))) {
		e = -ENOMEM;
		snprintf(er.msg, sizeof(er.msg), "out of memory");
	} else {
		e = spawn_exec(&m, s->root->mounted ? s->root->path : NULL, &sp, er.msg,
		               sizeof(er.msg));
	}
	if (e < 0) {
		free(x);
		proto_exec_free(&m);
		request_error(s, id, &er, e);
		return;
	}
	x->id = id;
	x->pid = sp.pid;
	x->tty = !!(m.flags & PROTO_EXEC_TTY);
	x->fd[PROTO_STREAM_STDIN] = sp.in;
	x->fd[PROTO_STREAM_STDOUT] = sp.out;
	x->fd[PROTO_STREAM_STDERR] = sp.err;
	x->in_eof = !(m.flags & PROTO_EXEC_STDIN);
	for (int i = 0; i < 3; i++)
		proto_credit_init(&x->send[i]);
	proto_credit_init(&x->in_recv);
	proto_exec_free(&m);
	x->next = s->execs;
	s->execs = x;
	s->nexecs++;
	uint8_t b[PROTO_READY_SIZE];
	struct proto_ready r = {.pid = (uint32_t)sp.pid};
	proto_ready_encode(&r, b, sizeof(b));
	wbuf_frame(&s->wb, PROTO_READY, id, b, sizeof(b));
	/* a terminal has one output stream: stderr ends at once */
	if (x->tty)
		wbuf_frame(&s->wb, PROTO_STDERR, id, NULL, 0);
}

static void grant_stdin(struct session *s, struct exec *x, int force)
{
	if (x->in_done == 0 || (!force && x->in_done < GRANT_STEP))
		return;
	struct proto_credit_msg c = {.stream = PROTO_STREAM_STDIN, .bytes = (uint32_t)x->in_done};
	uint8_t b[PROTO_CREDIT_SIZE];
	proto_credit_encode(&c, b, sizeof(b));
	if (wbuf_frame(&s->wb, PROTO_CREDIT, x->id, b, sizeof(b)) == 0)
		proto_credit_grant(&x->in_recv, x->in_done);
	x->in_done = 0;
}

static void stdin_data(struct session *s, struct exec *x, const uint8_t *p, uint32_t len)
{
	if (x->in_eof) {
		conn_error(s, -EPROTO, "STDIN after its end or without PROTO_EXEC_STDIN");
		return;
	}
	if (len == 0) {
		x->in_eof = 1;
		return;
	}
	if (proto_credit_take(&x->in_recv, len) < 0) {
		conn_error(s, -EPROTO, "STDIN beyond the credit granted");
		return;
	}
	if (x->fd[PROTO_STREAM_STDIN] < 0) { /* the process closed its stdin */
		x->in_done += len;
		grant_stdin(s, x, 1);
		return;
	}
	if (!x->in && !(x->in = malloc(PROTO_INITIAL_CREDIT))) {
		conn_error(s, -ENOMEM, "out of memory for stdin");
		return;
	}
	/* credit outstanding never exceeds the initial credit (we grant only
	 * what we wrote), so what is buffered always fits */
	if (x->in_off > 0) {
		memmove(x->in, x->in + x->in_off, x->in_len);
		x->in_off = 0;
	}
	if (x->in_len + len > PROTO_INITIAL_CREDIT) {
		conn_error(s, -EPROTO, "STDIN beyond the buffer");
		return;
	}
	memcpy(x->in + x->in_len, p, len);
	x->in_len += len;
}

static void handle_frame(struct session *s, const struct proto_hdr *h, const uint8_t *p)
{
	if (!s->hello) {
		struct proto_hello peer;
		if (h->type != PROTO_HELLO || proto_hello_decode(p, h->len, &peer) < 0) {
			conn_error(s, -EPROTO, "the first frame must be a valid HELLO");
			return;
		}
		if (proto_hello_pick(&peer) < 0) {
			conn_error(s, -EPROTONOSUPPORT, "no protocol version in common");
			return;
		}
		s->hello = 1;
		return;
	}
	struct exec *x = h->id ? exec_find(s, h->id) : NULL;
	switch (h->type) {
	case PROTO_EXEC:
		exec_start(s, h->id, p, h->len);
		return;
	case PROTO_STDIN:
	case PROTO_CREDIT:
	case PROTO_SIGNAL:
	case PROTO_RESIZE:
		/* frames for an exec that ended race with its EXIT: drop them */
		if (!x) {
			if (h->id > s->max_id)
				conn_error(s, -EPROTO, "a frame for an exec that never started");
			return;
		}
		break;
	case PROTO_SET_TIME: {
		struct proto_set_time t;
		if (proto_set_time_decode(p, h->len, &t) < 0) {
			conn_error(s, -EPROTO, "malformed SET_TIME");
			return;
		}
		struct timespec ts = {.tv_sec = (time_t)t.sec, .tv_nsec = (long)t.nsec};
		if (clock_settime(CLOCK_REALTIME, &ts) < 0)
			logmsg("set the clock", -errno);
		return;
	}
	case PROTO_ADD_ENTROPY: {
		struct {
			struct rand_pool_info info;
			uint8_t bytes[PROTO_MAX_ENTROPY];
		} pool;
		pool.info.entropy_count = (int)(h->len * 8);
		pool.info.buf_size = (int)h->len;
		memcpy(pool.bytes, p, h->len);
		/* Crediting entropy does not reseed a crng that is already
		 * ready; after a restore every sandbox would go on from the
		 * snapshot's key until the next timed reseed. Force it. */
		int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || ioctl(fd, RNDADDENTROPY, &pool.info) < 0 ||
		    ioctl(fd, RNDRESEEDCRNG) < 0)
			logmsg("add entropy", -errno);
		if (fd >= 0)
			close(fd);
		return;
	}
	case PROTO_SHUTDOWN:
		s->shutdown = 1;
		return;
	case PROTO_MOUNT_ROOT: {
		struct proto_mount_root mr;
		if (h->id <= s->max_id || proto_mount_root_decode(p, h->len, &mr) < 0) {
			conn_error(s, -EPROTO, "malformed MOUNT_ROOT");
			return;
		}
		s->max_id = h->id;
		/* waits at most mr.wait_ms here: the disk of a restored VM gets
		 * its capacity within milliseconds of the restore */
		struct proto_error er = {0};
		int upper = mr.flags & PROTO_ROOT_UPPER_DISK ? (int)mr.upper : -1;
		int e = root_mount(s->root, mr.disk, upper, mr.wait_ms, er.msg, sizeof(er.msg));
		if (e)
			request_error(s, h->id, &er, e);
		else
			wbuf_frame(&s->wb, PROTO_DONE, h->id, NULL, 0);
		return;
	}
	case PROTO_SET_HOSTNAME: {
		struct proto_hostname hn;
		if (proto_hostname_decode(p, h->len, &hn) < 0) {
			conn_error(s, -EPROTO, "malformed SET_HOSTNAME");
			return;
		}
		if (sethostname(hn.name, strlen(hn.name)) < 0)
			logmsg("set the hostname", -errno);
		/* a root mounted before (a restored VM's) says the new name too */
		char msg[256];
		int e =
		    s->root->mounted ? root_write_etc(s->root->path, hn.name, msg, sizeof(msg)) : 0;
		if (e < 0)
			fprintf(stderr, "msb-agent: %s\n", msg);
		return;
	}
	case PROTO_SNAPSHOT:
		/* only between execs: a snapshot must not hold a running one */
		if (s->execs) {
			conn_error(s, -EBUSY, "SNAPSHOT while commands run");
			return;
		}
		s->shutdown = 2;
		return;
	case PROTO_PING:
		wbuf_frame(&s->wb, PROTO_PONG, 0, p, h->len);
		return;
	case PROTO_PONG:
		return;
	case PROTO_ERROR: {
		struct proto_error er;
		if (proto_error_decode(p, h->len, &er) == 0)
			fprintf(stderr, "msb-agent: the host ended the connection: %s\n", er.msg);
		s->failed = 1;
		return;
	}
	default:
		conn_error(s, -EPROTO, "a frame only the agent sends");
		return;
	}

	switch (h->type) {
	case PROTO_STDIN:
		stdin_data(s, x, p, h->len);
		break;
	case PROTO_CREDIT: {
		struct proto_credit_msg c;
		if (proto_credit_decode(p, h->len, &c) < 0 || c.stream == PROTO_STREAM_STDIN ||
		    proto_credit_grant(&x->send[c.stream], c.bytes) < 0)
			conn_error(s, -EPROTO, "malformed or excessive CREDIT");
		break;
	}
	case PROTO_SIGNAL: {
		struct proto_signal sg;
		if (proto_signal_decode(p, h->len, &sg) < 0) {
			conn_error(s, -EPROTO, "malformed SIGNAL");
			break;
		}
		if (!x->exited)
			kill(x->pid, (int)sg.signo);
		break;
	}
	case PROTO_RESIZE: {
		struct proto_resize r;
		if (!x->tty || proto_resize_decode(p, h->len, &r) < 0) {
			conn_error(s, -EPROTO, "RESIZE without a terminal, or malformed");
			break;
		}
		struct winsize ws = {.ws_row = r.rows, .ws_col = r.cols};
		if (x->fd[PROTO_STREAM_STDOUT] >= 0)
			ioctl(x->fd[PROTO_STREAM_STDOUT], TIOCSWINSZ, &ws);
		break;
	}
	}
}

/* Reads what the host sent; returns -1 when the connection ended. */
static int read_conn(struct session *s)
{
	uint8_t buf[64 << 10];
	ssize_t n = read(s->conn, buf, sizeof(buf));
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	size_t off = 0, used;
	while (off < (size_t)n && !s->failed) {
		int e = proto_reader_feed(&s->rd, buf + off, (size_t)n - off, &used);
		if (e < 0) {
			conn_error(s, e, "malformed frame header");
			break;
		}
		off += used;
		struct proto_hdr h;
		const uint8_t *p;
		if (proto_reader_next(&s->rd, &h, &p) == 1)
			handle_frame(s, &h, p);
	}
	return 0;
}

/* Moves a process's output into the queue, against credit. */
static void read_output(struct session *s, struct exec *x, int st)
{
	uint64_t avail = proto_credit_avail(&x->send[st]);
	uint32_t max = avail < READ_CHUNK ? (uint32_t)avail : READ_CHUNK;
	uint8_t type = st == PROTO_STREAM_STDOUT ? PROTO_STDOUT : PROTO_STDERR;
	uint8_t *p = wbuf_reserve(&s->wb, max);
	if (!p) {
		conn_error(s, -ENOMEM, "out of memory for output");
		return;
	}
	ssize_t n = read(x->fd[st], p, max);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		proto_credit_take(&x->send[st], (uint64_t)n);
		wbuf_commit(&s->wb, type, x->id, (uint32_t)n);
		return;
	}
	/* end of file, or EIO from a terminal whose last user closed it */
	close_fd(&x->fd[st]);
	if (x->tty)
		close_fd(&x->fd[PROTO_STREAM_STDIN]);
	wbuf_frame(&s->wb, type, x->id, NULL, 0);
}

static void write_stdin(struct session *s, struct exec *x)
{
	int *fd = &x->fd[PROTO_STREAM_STDIN];
	while (x->in_len > 0) {
		ssize_t n = write(*fd, x->in + x->in_off, x->in_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) { /* the reader went away: drop what is left */
			x->in_done += x->in_len;
			x->in_len = 0;
			close_fd(fd);
			break;
		}
		x->in_off += (size_t)n;
		x->in_len -= (size_t)n;
		x->in_done += (uint64_t)n;
	}
	if (x->in_len == 0)
		x->in_off = 0;
	grant_stdin(s, x, x->in_len == 0);
}

static void exec_finish_if_done(struct session *s, struct exec *x)
{
	if (x->in_eof && x->in_len == 0 && !x->tty)
		close_fd(&x->fd[PROTO_STREAM_STDIN]);
	if (!x->exited || x->fd[PROTO_STREAM_STDOUT] >= 0 || x->fd[PROTO_STREAM_STDERR] >= 0)
		return;
	struct proto_exit m = {0};
	if (WIFSIGNALED(x->status)) {
		m.kind = PROTO_EXIT_SIGNALED;
		m.value = (uint32_t)WTERMSIG(x->status);
		m.core_dumped = WCOREDUMP(x->status) ? 1 : 0;
	} else {
		m.value = (uint32_t)WEXITSTATUS(x->status);
	}
	uint8_t b[PROTO_EXIT_SIZE];
	if (proto_exit_encode(&m, b, sizeof(b)) >= 0)
		wbuf_frame(&s->wb, PROTO_EXIT, x->id, b, sizeof(b));
	exec_free(s, x);
}

static void reap(struct session *s)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		for (struct exec *x = s ? s->execs : NULL; x; x = x->next)
			if (x->pid == pid && !x->exited) {
				x->exited = 1;
				x->status = st;
			}
}

static void drain_sigfd(int sigfd)
{
	struct signalfd_siginfo si;
	while (read(sigfd, &si, sizeof(si)) > 0)
		;
}

void session_reap(int sigfd)
{
	drain_sigfd(sigfd);
	reap(NULL);
}

static void session_end(struct session *s)
{
	for (struct exec *x = s->execs; x; x = x->next)
		if (!x->exited)
			kill(-x->pid, SIGKILL);
	while (s->execs)
		exec_free(s, s->execs);
	proto_reader_free(&s->rd);
	wbuf_free(&s->wb);
}

int session_run(int conn, int sigfd, struct agent_root *root)
{
	struct session s = {.conn = conn, .root = root};
	int fl = fcntl(conn, F_GETFL);
	if (fl < 0 || fcntl(conn, F_SETFL, fl | O_NONBLOCK) < 0 || proto_reader_init(&s.rd) < 0)
		return -ENOMEM;
	struct proto_hello hi = {.version_min = PROTO_VERSION, .version_max = PROTO_VERSION};
	snprintf(hi.name, sizeof(hi.name), "%s", AGENT_NAME);
	uint8_t hb[PROTO_HELLO_FIXED + PROTO_MAX_NAME];
	int n = proto_hello_encode(&hi, hb, sizeof(hb));
	if (n < 0 || wbuf_frame(&s.wb, PROTO_HELLO, 0, hb, (uint32_t)n) < 0) {
		session_end(&s);
		return -ENOMEM;
	}
	struct pollfd pf[2 + 3 * MAX_EXECS];
	struct exec *who[2 + 3 * MAX_EXECS];
	int ended = 0;
	while (!ended && !(s.failed && wbuf_len(&s.wb) == 0)) {
		/* here, not where a state changes: one exec may have several fds
		 * in pf, and a frame from the host may end its stdin */
		for (struct exec *x = s.execs, *next; x; x = next) {
			next = x->next;
			exec_finish_if_done(&s, x);
		}
		if (wbuf_len(&s.wb) && wbuf_flush(&s.wb, conn) < 0)
			break;
		if (s.shutdown && wbuf_len(&s.wb) == 0)
			break;
		int np = 0;
		pf[np++] = (struct pollfd){
		    .fd = conn,
		    .events = (short)((s.failed || wbuf_len(&s.wb) >= OUT_MAX ? 0 : POLLIN) |
		                      (wbuf_len(&s.wb) ? POLLOUT : 0))};
		pf[np++] = (struct pollfd){.fd = sigfd, .events = POLLIN};
		for (struct exec *x = s.execs; x && !s.failed; x = x->next) {
			for (int st = PROTO_STREAM_STDOUT; st <= PROTO_STREAM_STDERR; st++)
				if (x->fd[st] >= 0 && proto_credit_avail(&x->send[st]) > 0 &&
				    wbuf_len(&s.wb) < OUT_HIGH) {
					who[np] = x;
					pf[np++] =
					    (struct pollfd){.fd = x->fd[st], .events = POLLIN};
				}
			if (x->fd[PROTO_STREAM_STDIN] >= 0 && x->in_len > 0) {
				who[np] = x;
				pf[np++] = (struct pollfd){.fd = x->fd[PROTO_STREAM_STDIN],
				                           .events = POLLOUT};
			}
		}
		if (poll(pf, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			logmsg("poll", -errno);
			break;
		}
		if (pf[1].revents) {
			drain_sigfd(sigfd);
			reap(&s);
		}
		for (int i = 2; i < np; i++) {
			if (!pf[i].revents)
				continue;
			struct exec *x = who[i];
			if (pf[i].fd == x->fd[PROTO_STREAM_STDIN] && (pf[i].events & POLLOUT))
				write_stdin(&s, x);
			else
				for (int st = PROTO_STREAM_STDOUT; st <= PROTO_STREAM_STDERR; st++)
					if (pf[i].fd == x->fd[st])
						read_output(&s, x, st);
		}
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR))
			if (!s.failed && read_conn(&s) < 0)
				ended = 1;
		if (wbuf_len(&s.wb) && wbuf_flush(&s.wb, conn) < 0)
			ended = 1;
	}
	int shutdown = s.shutdown;
	session_end(&s);
	return shutdown; /* 1: power off; 2: snapshot */
}
