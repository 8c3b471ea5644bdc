/* The keeper's socket protocol: keeper_proto.h. */
#include "keeper_proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint32_t kp_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void kp_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

void kp_header(uint8_t hdr[KP_HDR], uint8_t type, uint32_t len)
{
	hdr[0] = type;
	hdr[1] = hdr[2] = hdr[3] = 0;
	kp_put32(hdr + 4, len);
}

int kp_buf_add(struct kp_buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *nb = realloc(b->b, cap);
		if (!nb)
			return -ENOMEM;
		b->b = nb;
		b->cap = cap;
	}
	memcpy(b->b + b->len, p, n);
	b->len += n;
	return 0;
}

int kp_buf_frame(struct kp_buf *b, uint8_t type, const void *p, uint32_t n)
{
	uint8_t hdr[KP_HDR];
	kp_header(hdr, type, n);
	int e = kp_buf_add(b, hdr, sizeof(hdr));
	return e ? e : n ? kp_buf_add(b, p, n) : 0;
}

void kp_buf_drop(struct kp_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->b, b->b + n, b->len - n);
	b->len -= n;
}

void kp_buf_free(struct kp_buf *b)
{
	free(b->b);
	memset(b, 0, sizeof(*b));
}

int kp_next(const struct kp_buf *b, size_t max, uint8_t *type, const uint8_t **payload,
            uint32_t *len, size_t *total)
{
	if (b->len < KP_HDR)
		return 0;
	uint32_t n = kp_get32(b->b + 4);
	if (n > max || b->b[1] || b->b[2] || b->b[3])
		return -EPROTO;
	if (b->len < KP_HDR + (size_t)n)
		return 0;
	*type = b->b[0];
	*payload = b->b + KP_HDR;
	*len = n;
	*total = KP_HDR + (size_t)n;
	return 1;
}

/* EXEC payload: u32 flags (1 tty, 2 stdin), rows, cols, argc, envc, then
 * NUL-terminated strings: cwd, user, argv..., env... */
#define F_TTY   1u
#define F_STDIN 2u

int kp_exec_encode(const struct kp_exec *x, uint8_t **out, size_t *len)
{
	size_t n = KP_HDR + 20 + strlen(x->cwd) + 1 + strlen(x->user ? x->user : "") + 1;
	for (size_t i = 0; i < x->argc; i++)
		n += strlen(x->argv[i]) + 1;
	for (size_t i = 0; i < x->envc; i++)
		n += strlen(x->env[i]) + 1;
	if (n - KP_HDR > KP_MAX_FRAME || x->argc + x->envc > KP_MAX_STRS)
		return -E2BIG;
	uint8_t *b = malloc(n), *p = b + KP_HDR + 20;
	if (!b)
		return -ENOMEM;
	kp_header(b, KP_EXEC, (uint32_t)(n - KP_HDR));
	kp_put32(b + KP_HDR, (x->tty ? F_TTY : 0) | (x->with_stdin ? F_STDIN : 0));
	kp_put32(b + KP_HDR + 4, x->rows);
	kp_put32(b + KP_HDR + 8, x->cols);
	kp_put32(b + KP_HDR + 12, (uint32_t)x->argc);
	kp_put32(b + KP_HDR + 16, (uint32_t)x->envc);
	const char *user = x->user ? x->user : "";
	size_t l;
	memcpy(p, x->cwd, l = strlen(x->cwd) + 1);
	p += l;
	memcpy(p, user, l = strlen(user) + 1);
	p += l;
	for (size_t i = 0; i < x->argc; i++, p += l)
		memcpy(p, x->argv[i], l = strlen(x->argv[i]) + 1);
	for (size_t i = 0; i < x->envc; i++, p += l)
		memcpy(p, x->env[i], l = strlen(x->env[i]) + 1);
	*out = b;
	*len = n;
	return 0;
}

/* The next NUL-terminated string at *@p before @end, or NULL. */
static const char *take_str(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nul = memchr(*p, 0, (size_t)(end - *p));
	if (!nul)
		return NULL;
	const char *s = (const char *)*p;
	*p = nul + 1;
	return s;
}

int kp_exec_decode(const uint8_t *p, size_t len, struct kp_exec *out)
{
	memset(out, 0, sizeof(*out));
	if (len < 20)
		return -EPROTO;
	uint32_t flags = kp_get32(p), argc = kp_get32(p + 12), envc = kp_get32(p + 16);
	if ((flags & ~(F_TTY | F_STDIN)) || argc == 0 || argc > KP_MAX_STRS ||
	    envc > KP_MAX_STRS - argc)
		return -EPROTO;
	out->tty = !!(flags & F_TTY);
	out->with_stdin = !!(flags & F_STDIN);
	out->rows = kp_get32(p + 4);
	out->cols = kp_get32(p + 8);
	const uint8_t *q = p + 20, *end = p + len;
	out->argv = calloc(argc + 1, sizeof(char *));
	out->env = calloc(envc + 1, sizeof(char *));
	if (!out->argv || !out->env) {
		kp_exec_free(out);
		return -ENOMEM;
	}
	int ok = (out->cwd = take_str(&q, end)) && (out->user = take_str(&q, end));
	for (uint32_t i = 0; ok && i < argc; i++)
		ok = (out->argv[i] = take_str(&q, end)) != NULL;
	for (uint32_t i = 0; ok && i < envc; i++)
		ok = (out->env[i] = take_str(&q, end)) != NULL;
	if (!ok || q != end || out->cwd[0] != '/' || !out->argv[0][0]) {
		kp_exec_free(out);
		return -EPROTO;
	}
	out->argc = argc;
	out->envc = envc;
	return 0;
}

void kp_exec_free(struct kp_exec *x)
{
	free(x->argv);
	free(x->env);
	x->argv = x->env = NULL;
}
