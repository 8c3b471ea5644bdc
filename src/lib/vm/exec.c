/* Commands in a sandbox VM: msb_exec_* in msb.h. */
#include "vm_int.h"
#include "err.h"
#include "why.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define STDIN_CHUNK  (64u << 10)
#define START_MS     60000      /* default wait for a command to start */
#define WB_HIGH      (1u << 20) /* wait for the stream to drain above this */
#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static const char *const default_env[] = {DEFAULT_PATH, "HOME=/root", "TERM=xterm", NULL};
/* With a user the agent sets HOME from its passwd entry. */
static const char *const default_user_env[] = {DEFAULT_PATH, "TERM=xterm", NULL};

/* The size of struct msb_exec_opts before `user`: what older callers pass. */
#define OPTS_SIZE_V1 offsetof(struct msb_exec_opts, user)

/* opts->user when the caller's struct has it; NULL for "" too. */
static const char *opts_user(const struct msb_exec_opts *o)
{
	if (o->size < OPTS_SIZE_V1 + sizeof(o->user))
		return NULL;
	return o->user && o->user[0] ? o->user : NULL;
}

/* The EXEC payload can be large (1 MiB): build it on the heap. */
static int send_exec(struct msb_vm *vm, uint32_t id, const struct msb_exec_opts *o,
                     struct msb_err *err)
{
	const char *user = opts_user(o);
	const char *const *env = o->env ? o->env : user ? default_user_env : default_env;
	struct proto_exec m = {
	    .flags = (o->tty ? PROTO_EXEC_TTY : 0) | (o->with_stdin ? PROTO_EXEC_STDIN : 0) |
	             (user ? PROTO_EXEC_USER : 0),
	    .uid = user ? 0 : o->uid,
	    .gid = user ? 0 : o->gid,
	    .rows = (uint16_t)(o->tty ? o->rows : 0),
	    .cols = (uint16_t)(o->tty ? o->cols : 0),
	    .cwd = o->cwd ? o->cwd : "/",
	    .argv = (const char **)o->argv,
	    .envp = (const char **)env,
	    .user = user,
	};
	while (m.argc <= PROTO_MAX_ARGS && o->argv[m.argc])
		m.argc++;
	while (m.envc <= PROTO_MAX_ENV && env[m.envc])
		m.envc++;
	if (o->tty && (o->rows > 0xffff || o->cols > 0xffff || !o->rows != !o->cols))
		return err_set(err, -EINVAL,
		               "a terminal size needs both rows and cols, each < 65536");
	uint8_t *b = malloc(PROTO_MAX_PAYLOAD);
	if (!b)
		return err_set(err, -ENOMEM, "out of memory");
	int n = proto_exec_encode(&m, b, PROTO_MAX_PAYLOAD);
	int e = n < 0 ? err_set(err, n == -ENOSPC ? -E2BIG : n,
	                        "cannot run %s: %s (at most %d arguments and %d variables of "
	                        "64 KiB each, 1 MiB in all; the cwd absolute; env as K=V; "
	                        "the user at most 64 KiB)",
	                        o->argv[0] ? o->argv[0] : "(no program)",
	                        n == -E2BIG || n == -EMSGSIZE || n == -ENOSPC
	                            ? "the command line or environment is too long"
	                            : "invalid arguments",
	                        PROTO_MAX_ARGS, PROTO_MAX_ENV)
	              : conn_send(vm, PROTO_EXEC, id, b, (uint32_t)n, err);
	free(b);
	return e;
}

int msb_exec_start(struct msb_vm *vm, const struct msb_exec_opts *o, struct msb_exec **out,
                   struct msb_err *err)
{
	*out = NULL;
	if (!o || o->size < OPTS_SIZE_V1 || !o->argv || !o->argv[0])
		return err_set(err, -EINVAL, "msb_exec_start: needs opts with size and argv");
	if (vm->dead)
		return conn_dead(vm, err);
	if (vm->next_id == 0)
		return err_set(err, -EMFILE, "this VM has run all the commands it can");
	struct msb_exec *x = calloc(1, sizeof(*x));
	if (!x)
		return err_set(err, -ENOMEM, "out of memory");
	x->vm = vm;
	x->id = vm->next_id++;
	x->tty = !!o->tty;
	x->stdin_open = !!o->with_stdin;
	proto_credit_init(&x->in);
	for (int i = 0; i < 3; i++)
		proto_credit_init(&x->out[i].recv);
	int e = send_exec(vm, x->id, o, err);
	if (e) {
		free(x);
		return e;
	}
	x->next = vm->execs;
	vm->execs = x;
	long deadline = deadline_in(o->start_timeout_ms > 0 ? o->start_timeout_ms : START_MS);
	while (x->state == EXEC_STARTING)
		if ((e = conn_pump(vm, deadline, err)) < 0) {
			if (vm->dead) {
				exec_destroy(x);
				return e;
			}
			/* it may still start: kill it then (conn.c), and forget it */
			x->orphaned = 1;
			return e == -ETIMEDOUT
			           ? err_set(err, e, "%s did not start in time", o->argv[0])
			           : e;
		}
	if (x->state == EXEC_FAILED) {
		why_sanitize(x->fail.msg); /* the guest's bytes, shown to people */
		e = err_set(err, -x->fail.err, "%s", x->fail.msg);
		exec_destroy(x);
		return e;
	}
	*out = x;
	return 0;
}

uint32_t msb_exec_pid(const struct msb_exec *x)
{
	return x->pid;
}

ssize_t msb_exec_write_some(struct msb_exec *x, const void *buf, size_t len, struct msb_err *err)
{
	struct msb_vm *vm = x->vm;
	if (!x->stdin_open)
		return err_set(err, -EPIPE, "the command's stdin is %s",
		               x->state == EXEC_RUNNING ? "closed or was not asked for" : "gone");
	/* one look without waiting: credit the agent granted since */
	int e = conn_pump(vm, 0, err);
	if (e < 0 && e != -ETIMEDOUT && e != -EINTR)
		return e;
	if (vm->dead)
		return conn_dead(vm, err);
	if (x->state != EXEC_RUNNING)
		return (ssize_t)len; /* it ended: what it did not read is dropped */
	const uint8_t *p = buf;
	size_t done = 0;
	while (done < len && wbuf_len(&vm->wb) <= WB_HIGH) {
		uint64_t avail = proto_credit_avail(&x->in);
		if (avail == 0)
			break;
		size_t n = len - done < STDIN_CHUNK ? len - done : STDIN_CHUNK;
		if (n > avail)
			n = (size_t)avail;
		proto_credit_take(&x->in, n);
		if ((e = conn_send(vm, PROTO_STDIN, x->id, p + done, (uint32_t)n, err)))
			return e;
		done += n;
	}
	return (ssize_t)done;
}

int msb_exec_write(struct msb_exec *x, const void *buf, size_t len, int timeout_ms,
                   struct msb_err *err)
{
	struct msb_vm *vm = x->vm;
	const uint8_t *p = buf;
	long deadline = deadline_in(timeout_ms);
	if (!x->stdin_open)
		return err_set(err, -EPIPE, "the command's stdin is %s",
		               x->state == EXEC_RUNNING ? "closed or was not asked for" : "gone");
	while (len > 0) {
		if (vm->dead)
			return conn_dead(vm, err);
		if (x->state != EXEC_RUNNING)
			return 0; /* it ended: what it did not read is dropped */
		uint64_t avail = proto_credit_avail(&x->in);
		if (avail == 0 || wbuf_len(&vm->wb) > WB_HIGH) {
			int e = conn_pump(vm, deadline, err);
			if (e < 0)
				return e == -ETIMEDOUT ? err_set(err, e, "timed out writing stdin")
				                       : e;
			continue;
		}
		uint32_t n = (uint32_t)(len < STDIN_CHUNK ? len : STDIN_CHUNK);
		if (n > avail)
			n = (uint32_t)avail;
		proto_credit_take(&x->in, n);
		int e = conn_send(vm, PROTO_STDIN, x->id, p, n, err);
		if (e)
			return e;
		p += n;
		len -= n;
	}
	return 0;
}

int msb_exec_close_stdin(struct msb_exec *x, struct msb_err *err)
{
	if (!x->stdin_open)
		return 0;
	x->stdin_open = 0;
	if (x->state != EXEC_RUNNING)
		return 0;
	return conn_send(x->vm, PROTO_STDIN, x->id, NULL, 0, err);
}

ssize_t msb_exec_read(struct msb_exec *x, int *stream, void *buf, size_t len, int timeout_ms,
                      struct msb_err *err)
{
	long deadline = deadline_in(timeout_ms);
	for (;;) {
		for (int st = PROTO_STREAM_STDOUT; st <= PROTO_STREAM_STDERR; st++) {
			struct out_stream *o = &x->out[st];
			if (o->len == 0)
				continue;
			size_t n = o->len < len ? o->len : len;
			memcpy(buf, o->buf + o->off, n);
			o->off += n;
			o->len -= n;
			if (o->len == 0)
				o->off = 0;
			*stream = st;
			int e = conn_consumed(x, st, n, err);
			return e < 0 ? e : (ssize_t)n;
		}
		if (x->out[PROTO_STREAM_STDOUT].eof && x->out[PROTO_STREAM_STDERR].eof)
			return 0;
		if (x->vm->dead)
			return conn_dead(x->vm, err);
		int e = conn_pump(x->vm, deadline, err);
		if (e < 0)
			return e == -ETIMEDOUT ? err_set(err, e, "timed out reading output") : e;
	}
}

static int send_small(struct msb_exec *x, uint8_t type, const uint8_t *b, uint32_t n,
                      struct msb_err *err)
{
	if (x->state != EXEC_RUNNING)
		return err_set(err, -ESRCH, "the command has ended");
	return conn_send(x->vm, type, x->id, b, n, err);
}

int msb_exec_signal(struct msb_exec *x, int signo, struct msb_err *err)
{
	struct proto_signal s = {.signo = (uint32_t)signo};
	uint8_t b[PROTO_SIGNAL_SIZE];
	if (signo < 1 || signo > PROTO_MAX_SIGNAL || proto_signal_encode(&s, b, sizeof(b)) < 0)
		return err_set(err, -EINVAL, "signal %d is not 1..%d", signo, PROTO_MAX_SIGNAL);
	return send_small(x, PROTO_SIGNAL, b, sizeof(b), err);
}

int msb_exec_resize(struct msb_exec *x, unsigned rows, unsigned cols, struct msb_err *err)
{
	if (!x->tty)
		return err_set(err, -ENOTTY, "the command has no terminal");
	struct proto_resize r = {.rows = (uint16_t)rows, .cols = (uint16_t)cols};
	uint8_t b[PROTO_RESIZE_SIZE];
	if (!rows || !cols || rows > 0xffff || cols > 0xffff ||
	    proto_resize_encode(&r, b, sizeof(b)) < 0)
		return err_set(err, -EINVAL, "a terminal size is 1..65535 rows and cols");
	return send_small(x, PROTO_RESIZE, b, sizeof(b), err);
}

int msb_exec_wait(struct msb_exec *x, int timeout_ms, struct msb_exit *st, struct msb_err *err)
{
	long deadline = deadline_in(timeout_ms);
	while (x->state != EXEC_EXITED) {
		for (int s = PROTO_STREAM_STDOUT; s <= PROTO_STREAM_STDERR; s++) {
			struct out_stream *o = &x->out[s];
			size_t n = o->len;
			o->off = o->len = 0;
			int e = n ? conn_consumed(x, s, n, err) : 0;
			if (e < 0)
				return e;
		}
		if (x->vm->dead)
			return conn_dead(x->vm, err);
		int e = conn_pump(x->vm, deadline, err);
		if (e < 0)
			return e == -ETIMEDOUT
			           ? err_set(err, e, "timed out waiting for the command")
			           : e;
	}
	*st = (struct msb_exit){
	    .signaled = x->exit.kind == PROTO_EXIT_SIGNALED,
	    .code = x->exit.kind == PROTO_EXIT_EXITED ? (int)x->exit.value : 0,
	    .signo = x->exit.kind == PROTO_EXIT_SIGNALED ? (int)x->exit.value : 0,
	    .core_dumped = x->exit.core_dumped,
	};
	return 0;
}

void msb_exec_free(struct msb_exec *x)
{
	if (!x)
		return;
	if (x->state == EXEC_EXITED || x->state == EXEC_FAILED || x->vm->dead) {
		exec_destroy(x);
		return;
	}
	/* still running: kill it and drop its frames until its EXIT */
	msb_exec_signal(x, 9, NULL);
	x->orphaned = 1;
	for (int s = PROTO_STREAM_STDOUT; s <= PROTO_STREAM_STDERR; s++) {
		size_t n = x->out[s].len;
		x->out[s].off = x->out[s].len = 0;
		if (n)
			conn_consumed(x, s, n, NULL);
	}
}
