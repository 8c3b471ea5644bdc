/*
 * Between a sandbox's keeper (the msb process that holds its VM: `msb up`,
 * or `msb run` in a terminal) and the commands that run more in it from
 * elsewhere (`msb shell NAME`, `msb run NAME~SCRIPT`): frames over the
 * keeper's Unix socket. The VM has one connection to its agent (in the
 * portable host there is no other way in), so the keeper runs every
 * client's command on it and moves the bytes.
 *
 * A frame: type (1 byte), 3 zero bytes, payload length (4 bytes, little
 * endian), payload. A client sends one EXEC, then STDIN/EOF/SIGNAL/RESIZE;
 * the keeper answers STARTED or FAILED, then OUT/ERR, then EXIT. Only the
 * socket's owner can connect (its directory is private), but the keeper
 * still checks every frame: a bad one ends that client only.
 */
#ifndef MSB_CLI_KEEPER_PROTO_H
#define MSB_CLI_KEEPER_PROTO_H

#include <stddef.h>
#include <stdint.h>

enum kp_type {
	KP_EXEC = 1,   /* kp_exec_encode() */
	KP_STDIN = 2,  /* bytes */
	KP_EOF = 3,    /* stdin ended */
	KP_SIGNAL = 4, /* u32 signal number */
	KP_RESIZE = 5, /* u32 rows, u32 cols */
	KP_STARTED = 16,
	KP_FAILED = 17, /* i32 negative errno, message */
	KP_OUT = 18,    /* stdout bytes (everything with a terminal) */
	KP_ERR = 19,    /* stderr bytes */
	KP_EXIT = 20,   /* u32 signaled, u32 code, u32 signo */
};

#define KP_HDR       8
#define KP_MAX_DATA  (64u << 10)
#define KP_MAX_FRAME (1u << 20) /* an EXEC's argv and environment */
#define KP_MAX_STRS  8192

/* An EXEC request; the strings point into the frame it was decoded from. */
struct kp_exec {
	int tty, with_stdin;
	uint32_t rows, cols;
	const char *cwd, *user;   /* user "" : the image's */
	const char **argv, **env; /* NULL-terminated, malloc'd arrays */
	size_t argc, envc;
};

/* Encodes a whole frame (header included) into a malloc'd buffer. */
int kp_exec_encode(const struct kp_exec *x, uint8_t **out, size_t *len);
/* Decodes an EXEC payload; free the arrays with kp_exec_free(). Returns 0
 * or -EPROTO. */
int kp_exec_decode(const uint8_t *p, size_t len, struct kp_exec *out);
void kp_exec_free(struct kp_exec *x);

/* Writes the header for @type and @len into @hdr. */
void kp_header(uint8_t hdr[KP_HDR], uint8_t type, uint32_t len);

/* A growing buffer of bytes read from a socket, taken apart into frames. */
struct kp_buf {
	uint8_t *b;
	size_t len, cap;
};
/* Appends @n bytes; -ENOMEM. */
int kp_buf_add(struct kp_buf *b, const void *p, size_t n);
/* Appends one frame. */
int kp_buf_frame(struct kp_buf *b, uint8_t type, const void *p, uint32_t n);
/* Drops the first @n bytes. */
void kp_buf_drop(struct kp_buf *b, size_t n);
void kp_buf_free(struct kp_buf *b);
/* The first complete frame in @b: 1 with its type, payload and total size
 * (to kp_buf_drop()), 0 when more bytes are needed, -EPROTO for a frame
 * longer than @max. */
int kp_next(const struct kp_buf *b, size_t max, uint8_t *type, const uint8_t **payload,
            uint32_t *len, size_t *total);

uint32_t kp_get32(const uint8_t *p);
void kp_put32(uint8_t *p, uint32_t v);

#endif
