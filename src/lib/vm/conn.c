/*
 * The host end of the agent connection. Every frame here comes from the
 * guest and is hostile: the codec validates its shape, and this file checks
 * that it fits the session (an exec we started, in a state where the frame
 * may come, within the credit we granted). Anything else ends the
 * connection: a byte stream cannot be trusted after a broken rule.
 */
#include "vm_int.h"
#include "clock.h"
#include "err.h"
#include "why.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GRANT_STEP (64u << 10)

long deadline_in(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
}

int conn_fail(struct msb_vm *vm, int code, struct msb_err *err, const char *fmt, ...)
{
	if (!vm->dead) {
		char why[512];
		if (code != -ESHUTDOWN)
			vm->failed = 1;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, sizeof(why), fmt, ap);
		va_end(ap);
		vm->dead = 1;
		if (vm->proc)
			err_set(&vm->dead_err, code, "%s; the VM's log: %s", why,
			        msb_vmproc_log(vm->proc));
		else
			err_set(&vm->dead_err, code, "%s", why);
	}
	if (err)
		*err = vm->dead_err;
	return vm->dead_err.code;
}

int conn_dead(struct msb_vm *vm, struct msb_err *err)
{
	if (err)
		*err = vm->dead_err;
	return vm->dead_err.code;
}

/* The agent broke the protocol: the VM is not to be trusted any more. */
static int violation(struct msb_vm *vm, const char *what)
{
	return conn_fail(vm, -EPROTO, NULL, "the sandbox's agent broke the protocol (%s)", what);
}

int conn_send(struct msb_vm *vm, uint8_t type, uint32_t id, const void *p, uint32_t len,
              struct msb_err *err)
{
	if (vm->dead)
		return conn_dead(vm, err);
	int e = wbuf_frame(&vm->wb, type, id, p, len);
	if (e < 0)
		return err_set(err, e, "cannot queue a %s frame: %s", proto_type_name(type),
		               strerror(-e));
	if ((e = wbuf_flush(&vm->wb, vm->fd)) < 0)
		return conn_fail(vm, -ECONNRESET, err, "the connection to the sandbox broke: %s",
		                 strerror(-e));
	return 0;
}

int conn_consumed(struct msb_exec *x, int st, size_t n, struct msb_err *err)
{
	struct out_stream *o = &x->out[st];
	o->ungranted += n;
	/* grant in steps, and everything once the buffer is empty, so the agent
	 * is never left without credit while we wait for its output */
	if (o->eof || o->ungranted == 0 || (o->ungranted < GRANT_STEP && o->len > 0))
		return 0;
	if (x->state != EXEC_RUNNING)
		return 0;
	uint8_t b[PROTO_CREDIT_SIZE];
	struct proto_credit_msg c = {.stream = (uint32_t)st, .bytes = (uint32_t)o->ungranted};
	proto_credit_encode(&c, b, sizeof(b));
	if (proto_credit_grant(&o->recv, o->ungranted) < 0)
		return violation(x->vm,
		                 "credit overflow"); /* cannot happen: we grant what we got */
	o->ungranted = 0;
	return conn_send(x->vm, PROTO_CREDIT, x->id, b, sizeof(b), err);
}

void exec_destroy(struct msb_exec *x)
{
	for (struct msb_exec **pp = &x->vm->execs; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	for (int i = 0; i < 3; i++)
		free(x->out[i].buf);
	free(x);
}

static struct msb_exec *find(struct msb_vm *vm, uint32_t id)
{
	for (struct msb_exec *x = vm->execs; x; x = x->next)
		if (x->id == id)
			return x;
	return NULL;
}

static int on_output(struct msb_exec *x, int st, const uint8_t *p, uint32_t len)
{
	struct out_stream *o = &x->out[st];
	if (x->state != EXEC_RUNNING || o->eof)
		return violation(x->vm, "output outside a running exec's streams");
	if (len == 0) {
		o->eof = 1;
		return 0;
	}
	if (x->tty && st == PROTO_STREAM_STDERR)
		return violation(x->vm, "stderr data on a terminal");
	if (proto_credit_take(&o->recv, len) < 0)
		return violation(x->vm, "output beyond the credit granted");
	if (x->orphaned) { /* nobody reads it: take it as read */
		conn_consumed(x, st, len, NULL);
		return 0;
	}
	if (o->off > 0 && o->cap - o->off - o->len < len) {
		memmove(o->buf, o->buf + o->off, o->len);
		o->off = 0;
	}
	if (o->cap - o->off - o->len < len) {
		/* bounded: outstanding credit never exceeds PROTO_MAX_CREDIT */
		size_t cap = o->cap ? o->cap : 64u << 10;
		while (cap - o->len < len)
			cap *= 2;
		uint8_t *b = realloc(o->buf, cap);
		if (!b)
			return conn_fail(x->vm, -ENOMEM, NULL,
			                 "out of memory for a sandbox's output");
		o->buf = b;
		o->cap = cap;
	}
	memcpy(o->buf + o->off + o->len, p, len);
	o->len += len;
	return 0;
}

static int on_exec_frame(struct msb_vm *vm, const struct proto_hdr *h, const uint8_t *p)
{
	struct msb_exec *x = find(vm, h->id);
	if (!x)
		return violation(vm, "a frame for an exec we did not start or that ended");
	switch (h->type) {
	case PROTO_READY: {
		struct proto_ready r;
		if (x->state != EXEC_STARTING || proto_ready_decode(p, h->len, &r) < 0)
			return violation(vm, "unexpected READY");
		x->state = EXEC_RUNNING;
		x->pid = r.pid;
		if (x->orphaned) { /* its caller gave up waiting for it */
			uint8_t b[PROTO_SIGNAL_SIZE];
			struct proto_signal sg = {.signo = 9};
			proto_signal_encode(&sg, b, sizeof(b));
			return conn_send(vm, PROTO_SIGNAL, x->id, b, sizeof(b), NULL);
		}
		return 0;
	}
	case PROTO_ERROR:
		if (x->state != EXEC_STARTING || proto_error_decode(p, h->len, &x->fail) < 0)
			return violation(vm, "unexpected exec ERROR");
		x->state = EXEC_FAILED;
		if (x->orphaned)
			exec_destroy(x);
		return 0;
	case PROTO_STDOUT:
		return on_output(x, PROTO_STREAM_STDOUT, p, h->len);
	case PROTO_STDERR:
		return on_output(x, PROTO_STREAM_STDERR, p, h->len);
	case PROTO_CREDIT: {
		struct proto_credit_msg c;
		if (x->state != EXEC_RUNNING || proto_credit_decode(p, h->len, &c) < 0 ||
		    c.stream != PROTO_STREAM_STDIN || proto_credit_grant(&x->in, c.bytes) < 0)
			return violation(vm, "bad CREDIT");
		return 0;
	}
	case PROTO_EXIT:
		if (x->state != EXEC_RUNNING || !x->out[PROTO_STREAM_STDOUT].eof ||
		    !x->out[PROTO_STREAM_STDERR].eof || proto_exit_decode(p, h->len, &x->exit) < 0)
			return violation(vm, "unexpected EXIT");
		x->state = EXEC_EXITED;
		if (x->orphaned)
			exec_destroy(x);
		return 0;
	}
	return violation(vm, "a frame only the host sends");
}

/* The answer to the request in flight: DONE, or ERROR with its reason. */
static int on_request_frame(struct msb_vm *vm, const struct proto_hdr *h, const uint8_t *p)
{
	if (vm->req_state != REQ_WAITING)
		return violation(vm, "a second answer to a request");
	if (h->type == PROTO_DONE) {
		vm->req_state = REQ_DONE;
		return 0;
	}
	if (h->type != PROTO_ERROR || proto_error_decode(p, h->len, &vm->req_err) < 0)
		return violation(vm, "an unexpected answer to a request");
	why_sanitize(vm->req_err.msg); /* shown to people */
	vm->req_state = REQ_FAILED;
	return 0;
}

static int on_frame(struct msb_vm *vm, const struct proto_hdr *h, const uint8_t *p)
{
	if (!vm->hello) {
		struct proto_hello hi;
		if (h->type != PROTO_HELLO || proto_hello_decode(p, h->len, &hi) < 0)
			return violation(vm, "the first frame was not a valid HELLO");
		if (proto_hello_pick(&hi) < 0)
			return conn_fail(
			    vm, -EPROTONOSUPPORT, NULL,
			    "the sandbox's agent speaks protocol versions %u..%u, this msb "
			    "speaks %u",
			    hi.version_min, hi.version_max, PROTO_VERSION);
		vm->hello = 1;
		memcpy(vm->agent_name, hi.name, sizeof(vm->agent_name));
		return 0;
	}
	if (h->id != 0 && h->id == vm->req_id)
		return on_request_frame(vm, h, p);
	if (h->id != 0)
		return on_exec_frame(vm, h, p);
	switch (h->type) {
	case PROTO_PING:
		return conn_send(vm, PROTO_PONG, 0, p, h->len, NULL);
	case PROTO_PONG:
		vm->pongs++;
		return 0;
	case PROTO_ERROR: {
		struct proto_error er;
		if (proto_error_decode(p, h->len, &er) < 0)
			return violation(vm, "malformed ERROR");
		/* shown to people: keep the guest's bytes from driving a terminal */
		why_sanitize(er.msg);
		return conn_fail(vm, -ECONNABORTED, NULL,
		                 "the sandbox's agent ended the connection: %s", er.msg);
	}
	}
	return violation(vm, "a frame only the host sends");
}

static int on_bytes(struct msb_vm *vm, const uint8_t *buf, size_t n)
{
	size_t off = 0, used;
	while (off < n && !vm->dead) {
		int e = proto_reader_feed(&vm->rd, buf + off, n - off, &used);
		if (e < 0)
			return violation(vm, "malformed frame header");
		off += used;
		struct proto_hdr h;
		const uint8_t *p;
		if (proto_reader_next(&vm->rd, &h, &p) == 1)
			on_frame(vm, &h, p);
	}
	return vm->dead ? vm->dead_err.code : 0;
}

/* The last "msb-vmm: error: ..." line of the VM's log, so a failure says
 * why without sending people to the log. "" when there is none. */
void conn_vmm_error(struct msb_vm *vm, char *out, size_t len)
{
	out[0] = 0;
	FILE *f = fopen(msb_vmproc_log(vm->proc), "r");
	char line[512];
	while (f && fgets(line, sizeof(line), f)) {
		const char *tag = "msb-vmm: error: ";
		if (strncmp(line, tag, strlen(tag)))
			continue;
		size_t n = strcspn(line + strlen(tag), "\r\n");
		n = n < len - 1 ? n : len - 1;
		memcpy(out, line + strlen(tag), n);
		out[n] = 0;
		why_sanitize(out); /* the log holds guest output too */
	}
	if (f)
		fclose(f);
}

/* The stream ended: say why as precisely as we can. */
static int on_eof(struct msb_vm *vm, int read_errno)
{
	struct msb_err we = {0};
	if (!vm->proc)
		return conn_fail(vm, vm->stopping ? -ESHUTDOWN : -ECONNRESET, NULL,
		                 vm->stopping ? "the sandbox was shut down"
		                              : "the connection to the agent closed");
	int st = msb_vmproc_wait(vm->proc, vm->stopping ? 10000 : 2000, &we);
	if (st == 0 && vm->stopping)
		return conn_fail(vm, -ESHUTDOWN, NULL, "the sandbox was shut down");
	char line[300];
	if (st == 2)
		conn_vmm_error(vm, line, sizeof(line));
	if (st == 2 && line[0])
		return conn_fail(vm, -ECONNRESET, NULL, "the sandbox's VM failed: %s", line);
	if (st >= 0)
		return conn_fail(vm, -ECONNRESET, NULL,
		                 "the sandbox's VM ended (msb-vmm exit status %d: %s)", st,
		                 st == 0   ? "the guest powered off"
		                 : st == 1 ? "the guest crashed"
		                           : "a VMM error");
	if (read_errno)
		return conn_fail(vm, -ECONNRESET, NULL, "the connection to the sandbox broke: %s",
		                 strerror(read_errno));
	return conn_fail(vm, -ECONNRESET, NULL, "the connection to the sandbox closed (%s)",
	                 we.msg);
}

int conn_pump(struct msb_vm *vm, long deadline, struct msb_err *err)
{
	if (vm->dead)
		return conn_dead(vm, err);
	int timeout = -1;
	if (deadline >= 0) {
		long left = deadline - mono_ms();
		/* Past the deadline: one look without waiting, so a timeout of 0
		 * still takes what has arrived (a caller polling the fd). */
		timeout = left <= 0 ? 0 : left > 60000 ? 60000 : (int)left;
	}
	struct pollfd pf = {.fd = vm->fd, .events = POLLIN | (wbuf_len(&vm->wb) ? POLLOUT : 0)};
	int r = poll(&pf, 1, timeout);
	if (r < 0)
		return errno == EINTR ? err_set(err, -EINTR, "interrupted")
		                      : err_set(err, -errno, "poll: %s", strerror(errno));
	if (r == 0) /* the caller checks its deadline again */
		return timeout == 0 ? -ETIMEDOUT : 0;
	if (wbuf_len(&vm->wb)) {
		int e = wbuf_flush(&vm->wb, vm->fd);
		if (e < 0) {
			on_eof(vm, -e);
			return conn_dead(vm, err);
		}
	}
	if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
		uint8_t buf[64u << 10];
		ssize_t n = read(vm->fd, buf, sizeof(buf));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n <= 0)
			on_eof(vm, n < 0 ? errno : 0);
		else
			on_bytes(vm, buf, (size_t)n);
		if (vm->dead)
			return conn_dead(vm, err);
	}
	return 0;
}
