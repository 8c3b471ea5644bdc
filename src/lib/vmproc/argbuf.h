/* A bounded argv under construction: strings live in one fixed buffer. */
#ifndef MSB_VMPROC_ARGBUF_H
#define MSB_VMPROC_ARGBUF_H

#include <stddef.h>

#define ARGBUF_MAX_ARGS  128
#define ARGBUF_MAX_BYTES 16384

struct argbuf {
	char *argv[ARGBUF_MAX_ARGS + 1]; /* NULL-terminated */
	int argc;
	char store[ARGBUF_MAX_BYTES];
	size_t used;
	int overflow; /* set once anything did not fit; all later pushes fail */
};

void argbuf_init(struct argbuf *a);
/* Appends a formatted argument; returns 0 or -E2BIG (and sets overflow). */
int argbuf_push(struct argbuf *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
