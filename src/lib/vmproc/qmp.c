#include "qmp.h"
#include "clock.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(char *why, size_t len, int e, const char *msg)
{
	snprintf(why, len, "%s", msg);
	return e;
}

/* One line (without its newline) into @out; a line longer than the
 * buffer is an error, as QEMU's replies to our commands are short. */
static int read_line(struct qmp *q, char *out, size_t out_len, char *why, size_t why_len)
{
	long deadline = mono_ms() + q->timeout_ms;
	for (;;) {
		char *nl = memchr(q->buf, '\n', q->have);
		if (nl) {
			size_t n = (size_t)(nl - q->buf);
			if (n >= out_len)
				return fail(why, why_len, -EPROTO, "QMP reply too long");
			memcpy(out, q->buf, n);
			out[n] = 0;
			if (n && out[n - 1] == '\r')
				out[n - 1] = 0;
			q->have -= n + 1;
			memmove(q->buf, nl + 1, q->have);
			return 0;
		}
		if (q->have == sizeof(q->buf))
			return fail(why, why_len, -EPROTO, "QMP reply too long");
		long left = deadline - mono_ms();
		if (left <= 0)
			return fail(why, why_len, -ETIMEDOUT, "QEMU did not answer in time");
		struct pollfd p = {.fd = q->fd, .events = POLLIN};
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		ssize_t got = read(q->fd, q->buf + q->have, sizeof(q->buf) - q->have);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return fail(why, why_len, -EPIPE, "QEMU closed its control socket");
		q->have += (size_t)got;
	}
}

/* The first key of the object on @line: "return", "error", "event"'s
 * "timestamp", or the greeting's "QMP". */
static int first_key(const char *line, char *key, size_t len)
{
	const char *p = line;
	while (*p == ' ')
		p++;
	if (*p++ != '{')
		return -EPROTO;
	while (*p == ' ')
		p++;
	if (*p++ != '"')
		return -EPROTO;
	const char *end = strchr(p, '"');
	if (!end || (size_t)(end - p) >= len)
		return -EPROTO;
	memcpy(key, p, (size_t)(end - p));
	key[end - p] = 0;
	return 0;
}

int qmp_str(const char *json, const char *key, char *out, size_t out_len)
{
	char pat[64];
	if (snprintf(pat, sizeof(pat), "\"%s\"", key) >= (int)sizeof(pat))
		return -ENOENT;
	const char *p = strstr(json, pat);
	if (!p)
		return -ENOENT;
	p += strlen(pat);
	while (*p == ' ' || *p == ':')
		p++;
	if (*p++ != '"')
		return -ENOENT;
	size_t n = 0;
	for (; *p && *p != '"'; p++) {
		if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
			p++;
		if (n + 1 < out_len)
			out[n++] = *p;
	}
	if (out_len)
		out[n] = 0;
	return *p == '"' ? 0 : -ENOENT;
}

/* The next reply, skipping events. */
static int read_reply(struct qmp *q, char *line, size_t len, char *why, size_t why_len)
{
	for (;;) {
		int e = read_line(q, line, len, why, why_len);
		if (e)
			return e;
		char key[32];
		if (first_key(line, key, sizeof(key)) < 0)
			return fail(why, why_len, -EPROTO, "QEMU sent something that is not QMP");
		if (!strcmp(key, "timestamp") || !strcmp(key, "event"))
			continue;
		if (!strcmp(key, "return"))
			return 0;
		if (!strcmp(key, "error")) {
			char desc[400];
			if (qmp_str(line, "desc", desc, sizeof(desc)) < 0)
				snprintf(desc, sizeof(desc), "%s", "no description");
			snprintf(why, why_len, "QEMU: %s", desc);
			return -EIO;
		}
		return fail(why, why_len, -EPROTO, "unexpected QMP reply");
	}
}

int qmp_open(struct qmp *q, int fd, int timeout_ms, char *why, size_t why_len)
{
	q->fd = fd;
	q->timeout_ms = timeout_ms;
	q->have = 0;
	char line[QMP_LINE_MAX], key[8];
	int e = read_line(q, line, sizeof(line), why, why_len);
	if (e)
		return e;
	if (first_key(line, key, sizeof(key)) < 0 || strcmp(key, "QMP"))
		return fail(why, why_len, -EPROTO, "no QMP greeting from QEMU");
	return qmp_exec(q, "{\"execute\":\"qmp_capabilities\"}", -1, NULL, 0, why, why_len);
}

int qmp_exec(struct qmp *q, const char *cmd, int pass_fd, char *reply, size_t reply_len, char *why,
             size_t why_len)
{
	char out[1024];
	int n = snprintf(out, sizeof(out), "%s\n", cmd);
	if (n < 0 || (size_t)n >= sizeof(out))
		return fail(why, why_len, -E2BIG, "QMP command too long");
	struct iovec iov = {.iov_base = out, .iov_len = (size_t)n};
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	if (pass_fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		m.msg_control = ctl.space;
		m.msg_controllen = sizeof(ctl.space);
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
	}
	/* The command is small and the socket empty of our writes: one
	 * sendmsg carries it whole, with the fd on its first byte. */
	ssize_t w;
	do
		w = sendmsg(q->fd, &m, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w != n)
		return fail(why, why_len, -EPIPE, "cannot write to QEMU's control socket");
	char line[QMP_LINE_MAX];
	int e = read_reply(q, line, sizeof(line), why, why_len);
	if (!e && reply)
		snprintf(reply, reply_len, "%s", line);
	return e;
}
