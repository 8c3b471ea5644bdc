/*
 * Encoders and decoders of the structured payloads. Each decoder checks the
 * length first, copies every field into a local once, validates the copies,
 * and only then fills its output. Each encoder checks the same rules, so a
 * frame we send is one the peer accepts.
 */
#include "proto.h"

#include <errno.h>
#include <stdlib.h>

/* Strict UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF) without control characters (C0, DEL, C1): a name is shown to
 * people and must not be able to drive their terminal. */
static int printable_utf8(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint32_t c = s[i], min;
		size_t more;
		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return 0;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			more = 1, c &= 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			more = 2, c &= 0x0f, min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3, c &= 0x07, min = 0x10000;
		} else {
			return 0;
		}
		if (n - i - 1 < more)
			return 0;
		for (size_t k = 1; k <= more; k++) {
			uint8_t b = s[i + k];
			if ((b & 0xc0) != 0x80)
				return 0;
			c = c << 6 | (b & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff) || c <= 0x9f)
			return 0;
		i += more + 1;
	}
	return 1;
}

/* ---- HELLO ------------------------------------------------------------ */

static int hello_check(uint32_t vmin, uint32_t vmax, const uint8_t *name, size_t nlen)
{
	if (vmin == 0 || vmin > vmax || nlen > PROTO_MAX_NAME || !printable_utf8(name, nlen))
		return -EPROTO;
	return 0;
}

int proto_hello_encode(const struct proto_hello *m, uint8_t *out, size_t cap)
{
	size_t nlen = strnlen(m->name, sizeof(m->name));
	if (nlen == sizeof(m->name) ||
	    hello_check(m->version_min, m->version_max, (const uint8_t *)m->name, nlen))
		return -EINVAL;
	if (cap < PROTO_HELLO_FIXED + nlen)
		return -ENOSPC;
	proto_put32(out, m->version_min);
	proto_put32(out + 4, m->version_max);
	proto_put32(out + 8, m->features);
	if (nlen)
		memcpy(out + PROTO_HELLO_FIXED, m->name, nlen);
	return (int)(PROTO_HELLO_FIXED + nlen);
}

int proto_hello_decode(const uint8_t *p, uint32_t len, struct proto_hello *out)
{
	if (len < PROTO_HELLO_FIXED || len > PROTO_HELLO_FIXED + PROTO_MAX_NAME)
		return -EPROTO;
	uint32_t vmin = proto_get32(p), vmax = proto_get32(p + 4);
	size_t nlen = len - PROTO_HELLO_FIXED;
	int e = hello_check(vmin, vmax, p + PROTO_HELLO_FIXED, nlen);
	if (e)
		return e;
	out->version_min = vmin;
	out->version_max = vmax;
	out->features = proto_get32(p + 8);
	if (nlen)
		memcpy(out->name, p + PROTO_HELLO_FIXED, nlen);
	out->name[nlen] = '\0';
	return 0;
}

int proto_hello_pick(const struct proto_hello *peer)
{
	const uint32_t lo = PROTO_VERSION, hi = PROTO_VERSION;
	uint32_t v = peer->version_max < hi ? peer->version_max : hi;
	if (v < lo || v < peer->version_min)
		return -EPROTONOSUPPORT;
	return (int)v;
}

/* ---- EXEC ------------------------------------------------------------- */

/* Rules on the fixed part; returns 0, or -EPROTO / -E2BIG as the decoder
 * reports them. */
static int exec_check_fixed(uint32_t flags, uint32_t uid, uint32_t gid, uint16_t rows,
                            uint16_t cols, uint32_t argc, uint32_t envc)
{
	if (flags & ~(PROTO_EXEC_TTY | PROTO_EXEC_STDIN | PROTO_EXEC_USER))
		return -EPROTO;
	if (uid == UINT32_MAX || gid == UINT32_MAX)
		return -EPROTO;
	/* the user decides both: other values would be a second encoding */
	if ((flags & PROTO_EXEC_USER) && (uid || gid))
		return -EPROTO;
	if (!(flags & PROTO_EXEC_TTY) && (rows || cols))
		return -EPROTO;
	if (!rows != !cols)
		return -EPROTO;
	if (argc == 0)
		return -EPROTO;
	if (argc > PROTO_MAX_ARGS || envc > PROTO_MAX_ENV)
		return -E2BIG;
	return 0;
}

enum { S_CWD, S_ARG0, S_ARG, S_ENV, S_USER };

static int exec_check_string(const char *s, int kind)
{
	switch (kind) {
	case S_CWD:
		return s[0] == '/' ? 0 : -EPROTO;
	case S_ARG0:
		return s[0] ? 0 : -EPROTO;
	case S_ENV:
		return s[0] && s[0] != '=' && strchr(s, '=') ? 0 : -EPROTO;
	case S_USER:
		return s[0] ? 0 : -EPROTO;
	default:
		return 0;
	}
}

/* String i of the message: 0 is cwd, 1..argc argv, then env, then the
 * user (with PROTO_EXEC_USER). */
static int string_kind(uint32_t i, const struct proto_exec *m)
{
	if (i == 0)
		return S_CWD;
	if (i == 1)
		return S_ARG0;
	if (i <= m->argc)
		return S_ARG;
	return i <= m->argc + m->envc ? S_ENV : S_USER;
}

static uint32_t exec_nstrings(const struct proto_exec *m)
{
	return 1 + m->argc + m->envc + ((m->flags & PROTO_EXEC_USER) ? 1 : 0);
}

static const char *exec_string(const struct proto_exec *m, uint32_t i)
{
	switch (string_kind(i, m)) {
	case S_CWD:
		return m->cwd;
	case S_ARG0:
	case S_ARG:
		return m->argv[i - 1];
	case S_ENV:
		return m->envp[i - 1 - m->argc];
	default:
		return m->user;
	}
}

int proto_exec_encode(const struct proto_exec *m, uint8_t *out, size_t cap)
{
	int e = exec_check_fixed(m->flags, m->uid, m->gid, m->rows, m->cols, m->argc, m->envc);
	if (e)
		return e == -EPROTO ? -EINVAL : e;
	if (!m->cwd || !m->argv || (m->envc && !m->envp) ||
	    !(m->flags & PROTO_EXEC_USER) != !m->user)
		return -EINVAL;
	uint32_t n = exec_nstrings(m);
	/* Measure first: at most 8194 strings of at most 65537 bytes each, and
	 * the sum stops at the first step past PROTO_MAX_PAYLOAD, so no size
	 * here can wrap. */
	size_t total = PROTO_EXEC_FIXED;
	for (uint32_t i = 0; i < n; i++) {
		const char *s = exec_string(m, i);
		if (!s)
			return -EINVAL;
		size_t l = strnlen(s, PROTO_MAX_STRING + 1);
		if (l > PROTO_MAX_STRING)
			return -E2BIG;
		if (exec_check_string(s, string_kind(i, m)))
			return -EINVAL;
		total += l + 1;
		if (total > PROTO_MAX_PAYLOAD)
			return -EMSGSIZE;
	}
	if (cap < total)
		return -ENOSPC;
	proto_put32(out, m->flags);
	proto_put32(out + 4, m->uid);
	proto_put32(out + 8, m->gid);
	proto_put16(out + 12, m->rows);
	proto_put16(out + 14, m->cols);
	proto_put32(out + 16, m->argc);
	proto_put32(out + 20, m->envc);
	size_t off = PROTO_EXEC_FIXED;
	for (uint32_t i = 0; i < n; i++) {
		const char *s = exec_string(m, i);
		size_t l = strlen(s) + 1;
		memcpy(out + off, s, l);
		off += l;
	}
	return (int)total;
}

/* The NUL-terminated string at *off; looks at most PROTO_MAX_STRING + 1
 * bytes and never past len. */
static int take_string(const uint8_t *p, uint32_t len, size_t *off, const char **s)
{
	size_t left = len - *off;
	size_t scan = left < PROTO_MAX_STRING + 1 ? left : PROTO_MAX_STRING + 1;
	const uint8_t *nul = scan ? memchr(p + *off, 0, scan) : NULL;
	if (!nul)
		return scan == left ? -EPROTO : -E2BIG;
	*s = (const char *)(p + *off);
	*off += (size_t)(nul - (p + *off)) + 1;
	return 0;
}

int proto_exec_decode(const uint8_t *p, uint32_t len, struct proto_exec *out)
{
	memset(out, 0, sizeof(*out));
	if (len < PROTO_EXEC_FIXED)
		return -EPROTO;
	struct proto_exec m = {
	    .flags = proto_get32(p),
	    .uid = proto_get32(p + 4),
	    .gid = proto_get32(p + 8),
	    .rows = proto_get16(p + 12),
	    .cols = proto_get16(p + 14),
	    .argc = proto_get32(p + 16),
	    .envc = proto_get32(p + 20),
	};
	int e = exec_check_fixed(m.flags, m.uid, m.gid, m.rows, m.cols, m.argc, m.envc);
	if (e)
		return e;
	/* Every string takes at least its NUL: counts the payload cannot hold
	 * are refused before the allocation of argc + envc + 2 pointers, which
	 * therefore stays below (len + 2). */
	uint32_t n = exec_nstrings(&m);
	if (n > len - PROTO_EXEC_FIXED)
		return -EPROTO;
	const char **v = calloc((size_t)m.argc + m.envc + 2, sizeof(*v));
	if (!v)
		return -ENOMEM;
	m.argv = v;
	m.envp = v + m.argc + 1;
	size_t off = PROTO_EXEC_FIXED;
	for (uint32_t i = 0; i < n; i++) {
		const char *s;
		int kind = string_kind(i, &m);
		if ((e = take_string(p, len, &off, &s)) || (e = exec_check_string(s, kind)))
			goto fail;
		if (kind == S_CWD)
			m.cwd = s;
		else if (kind == S_ARG0 || kind == S_ARG)
			m.argv[i - 1] = s;
		else if (kind == S_ENV)
			m.envp[i - 1 - m.argc] = s;
		else
			m.user = s;
	}
	/* the strings must fill the payload: trailing bytes would be data the
	 * agent ignores, so a message could mean two things */
	if (off != len) {
		e = -EPROTO;
		goto fail;
	}
	*out = m;
	return 0;
fail:
	free(v);
	return e;
}

void proto_exec_free(struct proto_exec *m)
{
	free(m->argv);
	m->argv = NULL;
	m->envp = NULL;
}

/* ---- Fixed-size messages ------------------------------------------------ */

static int credit_check(uint32_t stream, uint32_t bytes)
{
	return stream > PROTO_STREAM_STDERR || bytes == 0 ? -EPROTO : 0;
}

int proto_credit_encode(const struct proto_credit_msg *m, uint8_t *out, size_t cap)
{
	if (credit_check(m->stream, m->bytes))
		return -EINVAL;
	if (cap < PROTO_CREDIT_SIZE)
		return -ENOSPC;
	proto_put32(out, m->stream);
	proto_put32(out + 4, m->bytes);
	return PROTO_CREDIT_SIZE;
}

int proto_credit_decode(const uint8_t *p, uint32_t len, struct proto_credit_msg *out)
{
	if (len != PROTO_CREDIT_SIZE)
		return -EPROTO;
	uint32_t stream = proto_get32(p), bytes = proto_get32(p + 4);
	int e = credit_check(stream, bytes);
	if (e)
		return e;
	out->stream = stream;
	out->bytes = bytes;
	return 0;
}

static int signal_check(uint32_t signo)
{
	return signo >= 1 && signo <= PROTO_MAX_SIGNAL ? 0 : -EPROTO;
}

int proto_signal_encode(const struct proto_signal *m, uint8_t *out, size_t cap)
{
	if (signal_check(m->signo))
		return -EINVAL;
	if (cap < PROTO_SIGNAL_SIZE)
		return -ENOSPC;
	proto_put32(out, m->signo);
	return PROTO_SIGNAL_SIZE;
}

int proto_signal_decode(const uint8_t *p, uint32_t len, struct proto_signal *out)
{
	if (len != PROTO_SIGNAL_SIZE)
		return -EPROTO;
	uint32_t signo = proto_get32(p);
	if (signal_check(signo))
		return -EPROTO;
	out->signo = signo;
	return 0;
}

int proto_resize_encode(const struct proto_resize *m, uint8_t *out, size_t cap)
{
	if (m->rows == 0 || m->cols == 0)
		return -EINVAL;
	if (cap < PROTO_RESIZE_SIZE)
		return -ENOSPC;
	proto_put16(out, m->rows);
	proto_put16(out + 2, m->cols);
	return PROTO_RESIZE_SIZE;
}

int proto_resize_decode(const uint8_t *p, uint32_t len, struct proto_resize *out)
{
	if (len != PROTO_RESIZE_SIZE)
		return -EPROTO;
	uint16_t rows = proto_get16(p), cols = proto_get16(p + 2);
	if (rows == 0 || cols == 0)
		return -EPROTO;
	out->rows = rows;
	out->cols = cols;
	return 0;
}

static int exit_check(uint32_t kind, uint32_t value, uint32_t core)
{
	if (kind == PROTO_EXIT_EXITED)
		return value <= 255 && core == 0 ? 0 : -EPROTO;
	if (kind == PROTO_EXIT_SIGNALED)
		return signal_check(value) == 0 && core <= 1 ? 0 : -EPROTO;
	return -EPROTO;
}

int proto_exit_encode(const struct proto_exit *m, uint8_t *out, size_t cap)
{
	if (exit_check(m->kind, m->value, m->core_dumped))
		return -EINVAL;
	if (cap < PROTO_EXIT_SIZE)
		return -ENOSPC;
	proto_put32(out, m->kind);
	proto_put32(out + 4, m->value);
	proto_put32(out + 8, m->core_dumped); /* the u8 and three zero bytes */
	return PROTO_EXIT_SIZE;
}

int proto_exit_decode(const uint8_t *p, uint32_t len, struct proto_exit *out)
{
	if (len != PROTO_EXIT_SIZE)
		return -EPROTO;
	uint32_t kind = proto_get32(p), value = proto_get32(p + 4);
	/* core_dumped and the padding read as one u32: non-zero padding makes
	 * it exceed 1 */
	uint32_t core = proto_get32(p + 8);
	int e = exit_check(kind, value, core);
	if (e)
		return e;
	out->kind = kind;
	out->value = value;
	out->core_dumped = (uint8_t)core;
	return 0;
}

static int errno_check(uint32_t err)
{
	return err >= 1 && err <= PROTO_MAX_ERRNO ? 0 : -EPROTO;
}

int proto_error_encode(const struct proto_error *m, uint8_t *out, size_t cap)
{
	size_t mlen = strnlen(m->msg, sizeof(m->msg));
	if (m->err < 1 || m->err > PROTO_MAX_ERRNO || mlen == sizeof(m->msg))
		return -EINVAL;
	if (cap < PROTO_ERROR_FIXED + mlen)
		return -ENOSPC;
	proto_put32(out, (uint32_t)m->err);
	if (mlen)
		memcpy(out + PROTO_ERROR_FIXED, m->msg, mlen);
	return (int)(PROTO_ERROR_FIXED + mlen);
}

int proto_error_decode(const uint8_t *p, uint32_t len, struct proto_error *out)
{
	if (len < PROTO_ERROR_FIXED || len > PROTO_ERROR_FIXED + PROTO_MAX_ERROR_MSG)
		return -EPROTO;
	uint32_t err = proto_get32(p);
	size_t mlen = len - PROTO_ERROR_FIXED;
	/* a NUL inside would silently cut the message short */
	if (errno_check(err) || (mlen && memchr(p + PROTO_ERROR_FIXED, 0, mlen)))
		return -EPROTO;
	out->err = (int32_t)err;
	if (mlen)
		memcpy(out->msg, p + PROTO_ERROR_FIXED, mlen);
	out->msg[mlen] = '\0';
	return 0;
}

int proto_set_time_encode(const struct proto_set_time *m, uint8_t *out, size_t cap)
{
	if (m->sec < 0 || m->nsec >= 1000000000u)
		return -EINVAL;
	if (cap < PROTO_SET_TIME_SIZE)
		return -ENOSPC;
	proto_put64(out, (uint64_t)m->sec);
	proto_put32(out + 8, m->nsec);
	proto_put32(out + 12, 0);
	return PROTO_SET_TIME_SIZE;
}

int proto_set_time_decode(const uint8_t *p, uint32_t len, struct proto_set_time *out)
{
	if (len != PROTO_SET_TIME_SIZE)
		return -EPROTO;
	uint64_t sec = proto_get64(p);
	uint32_t nsec = proto_get32(p + 8), zero = proto_get32(p + 12);
	/* sec >= 0 as a signed value: the top bit clear */
	if (sec > (uint64_t)INT64_MAX || nsec >= 1000000000u || zero != 0)
		return -EPROTO;
	out->sec = (int64_t)sec;
	out->nsec = nsec;
	return 0;
}

static int hostname_char(char c, int edge)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return !edge && (c == '-' || c == '.');
}

static int hostname_check(const char *s, size_t n)
{
	if (n == 0 || n > PROTO_MAX_HOSTNAME)
		return -EPROTO;
	for (size_t i = 0; i < n; i++)
		if (!hostname_char(s[i], i == 0 || i == n - 1))
			return -EPROTO;
	return 0;
}

int proto_hostname_valid(const char *s)
{
	size_t n = strnlen(s, PROTO_MAX_HOSTNAME + 1);
	return hostname_check(s, n) == 0;
}

int proto_hostname_encode(const struct proto_hostname *m, uint8_t *out, size_t cap)
{
	size_t n = strnlen(m->name, sizeof(m->name));
	if (n > PROTO_MAX_HOSTNAME || hostname_check(m->name, n) < 0)
		return -EINVAL;
	if (cap < n)
		return -ENOSPC;
	memcpy(out, m->name, n);
	return (int)n;
}

int proto_hostname_decode(const uint8_t *p, uint32_t len, struct proto_hostname *out)
{
	if (len == 0 || len > PROTO_MAX_HOSTNAME)
		return -EPROTO;
	char copy[PROTO_MAX_HOSTNAME];
	memcpy(copy, p, len);
	if (hostname_check(copy, len) < 0)
		return -EPROTO;
	memcpy(out->name, copy, len);
	out->name[len] = '\0';
	return 0;
}

static int mount_root_check(const struct proto_mount_root *m)
{
	if (m->disk > PROTO_MAX_DISK || (m->flags & ~PROTO_ROOT_UPPER_DISK) ||
	    m->wait_ms > PROTO_MAX_WAIT_MS)
		return -EPROTO;
	if (m->flags & PROTO_ROOT_UPPER_DISK)
		return m->upper <= PROTO_MAX_DISK && m->upper != m->disk ? 0 : -EPROTO;
	return m->upper == 0 ? 0 : -EPROTO;
}

int proto_mount_root_encode(const struct proto_mount_root *m, uint8_t *out, size_t cap)
{
	if (mount_root_check(m) < 0)
		return -EINVAL;
	if (cap < PROTO_MOUNT_ROOT_SIZE)
		return -ENOSPC;
	proto_put32(out, m->disk);
	proto_put32(out + 4, m->flags);
	proto_put32(out + 8, m->wait_ms);
	proto_put32(out + 12, m->upper);
	return PROTO_MOUNT_ROOT_SIZE;
}

int proto_mount_root_decode(const uint8_t *p, uint32_t len, struct proto_mount_root *out)
{
	if (len != PROTO_MOUNT_ROOT_SIZE)
		return -EPROTO;
	struct proto_mount_root m = {proto_get32(p), proto_get32(p + 4), proto_get32(p + 8),
	                             proto_get32(p + 12)};
	if (mount_root_check(&m) < 0)
		return -EPROTO;
	*out = m;
	return 0;
}

static int pid_check(uint32_t pid)
{
	return pid >= 1 && pid <= INT32_MAX ? 0 : -EPROTO;
}

int proto_ready_encode(const struct proto_ready *m, uint8_t *out, size_t cap)
{
	if (pid_check(m->pid))
		return -EINVAL;
	if (cap < PROTO_READY_SIZE)
		return -ENOSPC;
	proto_put32(out, m->pid);
	return PROTO_READY_SIZE;
}

int proto_ready_decode(const uint8_t *p, uint32_t len, struct proto_ready *out)
{
	if (len != PROTO_READY_SIZE)
		return -EPROTO;
	uint32_t pid = proto_get32(p);
	if (pid_check(pid))
		return -EPROTO;
	out->pid = pid;
	return 0;
}
