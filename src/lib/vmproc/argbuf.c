#include "argbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

void argbuf_init(struct argbuf *a)
{
	a->argc = 0;
	a->used = 0;
	a->overflow = 0;
	a->argv[0] = NULL;
}

int argbuf_push(struct argbuf *a, const char *fmt, ...)
{
	if (a->overflow || a->argc >= ARGBUF_MAX_ARGS)
		goto full;
	char *dst = a->store + a->used;
	size_t room = sizeof(a->store) - a->used;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(dst, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room)
		goto full;
	a->used += (size_t)n + 1;
	a->argv[a->argc++] = dst;
	a->argv[a->argc] = NULL;
	return 0;
full:
	a->overflow = 1;
	return -E2BIG;
}
