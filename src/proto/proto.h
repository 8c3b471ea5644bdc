/*
 * The host <-> msb-agent wire protocol: frames and their payloads.
 *
 * One byte stream (a vsock connection, or a virtio-serial port relayed to
 * one) carries everything: every exec, its stdin/stdout/stderr, signals and
 * exits. A frame is a 16-byte header and a payload; all integers are
 * little-endian. docs/design/protocol.md is the reference for the format and
 * the reasons behind it.
 *
 * Both sides use this code. The host treats every byte from the guest as
 * hostile, so the decoders here validate everything they return: a caller may
 * rely on every limit written below without checking again.
 *
 * Conventions: functions return 0 (or a count) on success and a negative
 * errno on failure. Decoders return -EPROTO for anything malformed and -E2BIG
 * for counts or strings over a limit; encoders return -EINVAL for a value the
 * decoder would reject, -E2BIG for the same limits and -ENOSPC when the
 * output does not fit. There is no global state: functions may run on any
 * thread, each object (reader, credit) is used by one thread at a time.
 */
#ifndef MSB_PROTO_H
#define MSB_PROTO_H

#include <endian.h> /* le32toh and friends: needs _GNU_SOURCE or _DEFAULT_SOURCE */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PROTO_VERSION     1
#define PROTO_HDR_SIZE    16
#define PROTO_MAX_PAYLOAD (1u << 20)
/* The vsock port the agent listens on in the guest. */
#define PROTO_AGENT_PORT 1024

/* Message types (struct proto_hdr.type). */
enum proto_type {
	PROTO_HELLO = 1,         /* both ways: versions and features; the first frame */
	PROTO_EXEC = 2,          /* host: start exec `id` */
	PROTO_STDIN = 3,         /* host: bytes for the exec's stdin; len 0 = EOF */
	PROTO_STDOUT = 4,        /* agent: bytes the exec wrote; len 0 = EOF */
	PROTO_STDERR = 5,        /* agent: as STDOUT */
	PROTO_CREDIT = 6,        /* both ways: permission to send more bytes on a stream */
	PROTO_SIGNAL = 7,        /* host: send a signal to the exec */
	PROTO_RESIZE = 8,        /* host: the exec's terminal size changed */
	PROTO_EXIT = 9,          /* agent: the exec ended; its last frame */
	PROTO_ERROR = 10,        /* both ways: an exec (id) or the connection (id 0) failed */
	PROTO_SET_TIME = 11,     /* host: set the guest's realtime clock */
	PROTO_ADD_ENTROPY = 12,  /* host: bytes for the guest's random pool */
	PROTO_SHUTDOWN = 13,     /* host: sync and power off */
	PROTO_PING = 14,         /* both ways: answered by PONG with the same bytes */
	PROTO_PONG = 15,         /* both ways: the answer to PING */
	PROTO_READY = 16,        /* agent: exec `id` started; payload: its pid */
	PROTO_SNAPSHOT = 17,     /* host: close this connection and let the VMM snapshot */
	PROTO_SET_HOSTNAME = 18, /* host: the guest's hostname */
	PROTO_MOUNT_ROOT = 19,   /* host: request `id`: mount the image root from a disk */
	PROTO_DONE = 20,         /* agent: request `id` succeeded (else ERROR for it) */
};
#define PROTO_TYPE_MAX PROTO_DONE

/*
 * The frame header, decoded. On the wire: version u8, type u8, flags u16,
 * id u32, len u32, reserved u32 (must be 0). No flags are defined in
 * version 1, so flags must be 0 for every type.
 */
struct proto_hdr {
	uint8_t version; /* PROTO_VERSION */
	uint8_t type;    /* enum proto_type */
	uint16_t flags;  /* per type; none defined yet */
	uint32_t id;     /* the exec the frame belongs to; 0 for the connection */
	uint32_t len;    /* payload bytes, <= PROTO_MAX_PAYLOAD */
	uint32_t reserved;
};

/* Payload sizes and limits. */
#define PROTO_HELLO_FIXED     12 /* then the name */
#define PROTO_MAX_NAME        64
#define PROTO_EXEC_FIXED      24 /* then the string area */
#define PROTO_MAX_ARGS        4096
#define PROTO_MAX_ENV         4096
#define PROTO_MAX_STRING      65536 /* bytes of one EXEC string, without its NUL */
#define PROTO_CREDIT_SIZE     8
#define PROTO_SIGNAL_SIZE     4
#define PROTO_RESIZE_SIZE     4
#define PROTO_EXIT_SIZE       12
#define PROTO_ERROR_FIXED     4 /* then the message */
#define PROTO_MAX_ERROR_MSG   1024
#define PROTO_SET_TIME_SIZE   16
#define PROTO_MAX_ENTROPY     4096
#define PROTO_MAX_PING        64
#define PROTO_READY_SIZE      4
#define PROTO_MAX_SIGNAL      64
#define PROTO_MAX_ERRNO       4095
#define PROTO_MAX_HOSTNAME    64 /* Linux's HOST_NAME_MAX */
#define PROTO_MOUNT_ROOT_SIZE 16
#define PROTO_MAX_DISK        7
#define PROTO_MAX_WAIT_MS     600000

/* ---- Little-endian field access -------------------------------------- */

/* Fields are copied with memcpy, never read through a cast pointer: a
 * payload has no alignment, and each field is read once into a local. */
static inline uint16_t proto_get16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static inline uint32_t proto_get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static inline uint64_t proto_get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static inline void proto_put16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof(v));
}

static inline void proto_put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static inline void proto_put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

/* ---- Headers and frames (proto.c) ------------------------------------ */

/* The type's name for logs ("EXEC"), or "?" for an unknown type. Static. */
const char *proto_type_name(unsigned type);

/*
 * Decodes and validates a header; fills @h only on success. Checks, in this
 * order: version (-EPROTONOSUPPORT), len > PROTO_MAX_PAYLOAD (-EMSGSIZE),
 * reserved != 0, unknown type, flags not defined for the type, id (must be 0
 * for HELLO, SET_TIME, ADD_ENTROPY, SHUTDOWN, PING and PONG, non-zero for
 * the per-exec types, either for ERROR), and len outside the type's allowed
 * sizes (e.g. SIGNAL is exactly 4): all -EPROTO. So a bad frame is refused
 * before anything reads or buffers its payload.
 */
int proto_hdr_decode(const uint8_t in[PROTO_HDR_SIZE], struct proto_hdr *h);

/* Encodes @h into @out. Returns 0, or -EINVAL if proto_hdr_decode() would
 * refuse it (then @out is untouched). */
int proto_hdr_encode(const struct proto_hdr *h, uint8_t out[PROTO_HDR_SIZE]);

/*
 * Writes a whole frame (header with version PROTO_VERSION, flags 0, then
 * @len bytes of @payload) into @out. @payload may be NULL when @len is 0,
 * and may point at out + PROTO_HDR_SIZE, so a payload can be encoded in
 * place:
 *
 *	uint8_t f[PROTO_HDR_SIZE + PROTO_EXIT_SIZE];
 *	int n = proto_exit_encode(&ex, f + PROTO_HDR_SIZE, PROTO_EXIT_SIZE);
 *	size_t flen = n < 0 ? 0 : proto_frame(f, sizeof(f), PROTO_EXIT, id,
 *	                                      f + PROTO_HDR_SIZE, (uint32_t)n);
 *
 * Returns the frame's size, or 0 (and @out untouched) when it does not fit in
 * @cap or the header would be refused by the peer (len over the limits of
 * @type, a wrong id, an unknown type).
 */
size_t proto_frame(uint8_t *out, size_t cap, uint8_t type, uint32_t id, const void *payload,
                   uint32_t len);

/* ---- Reading frames from a stream (proto.c) -------------------------- */

/*
 * An incremental frame reader for a non-blocking stream. It owns one buffer
 * of PROTO_HDR_SIZE + PROTO_MAX_PAYLOAD bytes, allocated by init; nothing
 * else allocates. The caller reads into a buffer of its own and loops:
 *
 *	ssize_t n = read(fd, buf, sizeof(buf));   (n > 0)
 *	size_t off = 0, used;
 *	while (off < (size_t)n) {
 *		if ((e = proto_reader_feed(r, buf + off, n - off, &used)) < 0)
 *			return e;
 *		off += used;
 *		if ((e = proto_reader_next(r, &h, &payload)) < 0)
 *			return e;
 *		if (e == 1)
 *			handle(&h, payload);   (payload valid until the next feed)
 *	}
 *
 * At end of stream, proto_reader_partial() says whether a frame was cut.
 * A malformed header fails the reader for good: the stream has no markers to
 * resynchronise on, so every later feed and next returns the same error.
 */
struct proto_reader {
	uint8_t *buf;         /* owned; PROTO_HDR_SIZE + PROTO_MAX_PAYLOAD bytes */
	size_t have;          /* bytes of the current frame in buf */
	struct proto_hdr hdr; /* valid once have >= PROTO_HDR_SIZE */
	int state;            /* private */
	int err;              /* 0, or the error that failed the reader */
};

/* Allocates the buffer. Returns 0 or -ENOMEM. */
int proto_reader_init(struct proto_reader *r);

/* Frees the buffer; @r may be initialised again. Safe on a zeroed reader and
 * twice in a row. */
void proto_reader_free(struct proto_reader *r);

/*
 * Consumes bytes of @data (@len, may be 0) up to the end of one frame and
 * stores in *consumed how many it took. Returns 1 when a frame is complete
 * (take it with proto_reader_next(); until then feed consumes nothing and
 * keeps returning 1), 0 when it consumed all of @data and needs more, or a
 * negative errno from proto_hdr_decode() when the header just completed is
 * malformed (*consumed then ends with that header; no payload byte is taken),
 * or -EINVAL on a reader that is not initialised. Feeding after a frame was
 * taken invalidates that frame's payload pointer.
 */
int proto_reader_feed(struct proto_reader *r, const uint8_t *data, size_t len, size_t *consumed);

/*
 * Takes the complete frame: returns 1 and fills @h and *payload (h->len
 * bytes inside the reader's buffer, valid until the next feed or free), 0
 * when no frame is complete (or it was already taken), or the reader's error.
 */
int proto_reader_next(struct proto_reader *r, struct proto_hdr *h, const uint8_t **payload);

/* Non-zero when bytes of an incomplete frame are buffered: at end of stream
 * this means the peer stopped in the middle of a frame. */
int proto_reader_partial(const struct proto_reader *r);

/* ---- Flow control (proto.c) ------------------------------------------ */

/*
 * Credits: a sender may have at most the bytes its peer granted outstanding
 * on each stream (stdin, stdout, stderr) of each exec. Each side starts with
 * PROTO_INITIAL_CREDIT per stream per exec, counted from the EXEC frame; the
 * receiver sends CREDIT frames granting more as it consumes (writes the
 * bytes to the process or to the user). Grants add up. Only data bytes
 * count: an EOF frame (len 0) and control frames need no credit, so SIGNAL,
 * EXIT and the other streams never wait behind a stream nobody reads.
 *
 * Both sides keep a struct proto_credit per stream: the sender takes before
 * sending a data frame and adds what CREDIT frames grant; the receiver
 * mirrors it (takes for each data frame received, grants when it sends
 * CREDIT), and -EAGAIN from its take means the peer broke the rule.
 */
#define PROTO_INITIAL_CREDIT (256u << 10)
#define PROTO_MAX_CREDIT     (64u << 20) /* most bytes outstanding on one stream */

enum proto_stream {
	PROTO_STREAM_STDIN = 0,
	PROTO_STREAM_STDOUT = 1,
	PROTO_STREAM_STDERR = 2,
};

struct proto_credit {
	uint64_t granted; /* all bytes granted so far */
	uint64_t used;    /* all bytes sent (or received) so far; <= granted */
};

/* Sets granted = PROTO_INITIAL_CREDIT, used = 0. */
void proto_credit_init(struct proto_credit *c);

/* Bytes that may still be sent: granted - used. */
uint64_t proto_credit_avail(const struct proto_credit *c);

/* Uses @n bytes of credit. Returns 0, or -EAGAIN (and @c unchanged) when
 * fewer than @n are available. */
int proto_credit_take(struct proto_credit *c, uint64_t n);

/* Adds a grant of @n bytes. Returns 0, or -EOVERFLOW (and @c unchanged) when
 * the bytes outstanding would exceed PROTO_MAX_CREDIT or the total would not
 * fit in 64 bits. */
int proto_credit_grant(struct proto_credit *c, uint64_t n);

/* ---- Payloads (messages.c) ------------------------------------------- */

/*
 * Every decoder takes (payload, len, out), reads nothing past @len, fills
 * @out only on success (proto_exec_decode: see there) and returns 0 or a
 * negative errno. Every encoder takes (message, out, cap) and returns the
 * payload's length (>= 0) or a negative errno; frame it with proto_frame().
 */

/*
 * HELLO. version_min >= 1, version_min <= version_max. features is a bitmask
 * (none defined): unknown bits are not an error, a receiver uses the bits it
 * shares with its own. name identifies the agent ("msb-agent 0.1.0"): up to
 * PROTO_MAX_NAME bytes of UTF-8 without control characters, sent without a
 * NUL; decoded into a NUL-terminated string ("" when absent).
 */
struct proto_hello {
	uint32_t version_min;
	uint32_t version_max;
	uint32_t features;
	char name[PROTO_MAX_NAME + 1];
};

int proto_hello_encode(const struct proto_hello *m, uint8_t *out, size_t cap);
int proto_hello_decode(const uint8_t *p, uint32_t len, struct proto_hello *out);

/* The highest version both this build (PROTO_VERSION only, for now) and
 * @peer speak. Returns it, or -EPROTONOSUPPORT when there is none. */
int proto_hello_pick(const struct proto_hello *peer);

/*
 * EXEC. On the wire: flags, uid, gid (u32), rows, cols (u16), argc, envc
 * (u32), then cwd, argv[0..argc-1], env[0..envc-1] and, with
 * PROTO_EXEC_USER, the user, each NUL-terminated, filling the rest of the
 * payload exactly. Rules: flags only PROTO_EXEC_TTY|PROTO_EXEC_STDIN|
 * PROTO_EXEC_USER; uid and gid not (uint32_t)-1 (that means "unchanged" to
 * setresuid), and both 0 with PROTO_EXEC_USER (the user decides them);
 * without TTY rows and cols are 0, with TTY both are 0 (size unknown) or
 * both >= 1; 1 <= argc <= PROTO_MAX_ARGS, argv[0] non-empty; envc <=
 * PROTO_MAX_ENV (-E2BIG beyond); each string at most PROTO_MAX_STRING bytes
 * (-E2BIG beyond); cwd starts with '/'; each env string has a '=' after at
 * least one byte; the user is not empty.
 */
#define PROTO_EXEC_TTY   (1u << 0) /* run on a new pseudo-terminal */
#define PROTO_EXEC_STDIN (1u << 1) /* the host sends STDIN frames (else stdin is empty) */
#define PROTO_EXEC_USER  (1u << 2) /* a user string follows env ("name[:group]", as Docker's) */

struct proto_exec {
	uint32_t flags;
	uint32_t uid;
	uint32_t gid;
	uint16_t rows;
	uint16_t cols;
	uint32_t argc;
	uint32_t envc;
	const char *cwd;
	const char **argv; /* argc strings, then NULL */
	const char **envp; /* envc strings, then NULL */
	const char *user;  /* with PROTO_EXEC_USER: "NAME", "UID", "NAME:GROUP", "UID:GID"...,
	                      resolved by the agent in the sandbox's root; else NULL */
};

/*
 * Encodes @m, reading argc entries of argv and envc of envp (envp may be NULL
 * when envc is 0), and user, which must be NULL without PROTO_EXEC_USER and
 * a non-empty string with it. Returns the payload length, -EINVAL or -E2BIG for a
 * message that breaks the rules above, -EMSGSIZE when it would exceed
 * PROTO_MAX_PAYLOAD, or -ENOSPC when it does not fit in @cap.
 */
int proto_exec_encode(const struct proto_exec *m, uint8_t *out, size_t cap);

/*
 * Decodes an EXEC payload. This decoder allocates: on success out->argv and
 * out->envp are NULL-terminated arrays in one calloc'd block (release it with
 * proto_exec_free(), never free() envp), and out->cwd, out->user (NULL
 * without PROTO_EXEC_USER) and every string point
 * INTO @p, so @p must stay unchanged while @out is used (a reader's payload:
 * until its next feed). The allocation is at most (len + 2) pointers. On
 * failure @out is zeroed and owns nothing. Returns 0, -EPROTO, -E2BIG, or
 * -ENOMEM.
 */
int proto_exec_decode(const uint8_t *p, uint32_t len, struct proto_exec *out);

/* Frees what proto_exec_decode() allocated and clears argv/envp. Safe on a
 * zeroed struct and twice. Not for a struct whose arrays the caller built. */
void proto_exec_free(struct proto_exec *m);

/* CREDIT: grants @bytes (>= 1) more on @stream (enum proto_stream) of the
 * frame's exec. Stdin credit goes from agent to host, stdout/stderr credit
 * from host to agent. */
struct proto_credit_msg {
	uint32_t stream;
	uint32_t bytes;
};

int proto_credit_encode(const struct proto_credit_msg *m, uint8_t *out, size_t cap);
int proto_credit_decode(const uint8_t *p, uint32_t len, struct proto_credit_msg *out);

/* SIGNAL: 1 <= signo <= PROTO_MAX_SIGNAL (Linux numbering). */
struct proto_signal {
	uint32_t signo;
};

int proto_signal_encode(const struct proto_signal *m, uint8_t *out, size_t cap);
int proto_signal_decode(const uint8_t *p, uint32_t len, struct proto_signal *out);

/* RESIZE: the terminal's new size, both >= 1. */
struct proto_resize {
	uint16_t rows;
	uint16_t cols;
};

int proto_resize_encode(const struct proto_resize *m, uint8_t *out, size_t cap);
int proto_resize_decode(const uint8_t *p, uint32_t len, struct proto_resize *out);

/* EXIT: kind, value (u32), core_dumped (u8), 3 zero bytes. An exit code is
 * 0..255, a signal 1..PROTO_MAX_SIGNAL; core_dumped is 0 or 1, and 1 only
 * with PROTO_EXIT_SIGNALED. */
#define PROTO_EXIT_EXITED   0
#define PROTO_EXIT_SIGNALED 1

struct proto_exit {
	uint32_t kind;
	uint32_t value;
	uint8_t core_dumped;
};

int proto_exit_encode(const struct proto_exit *m, uint8_t *out, size_t cap);
int proto_exit_decode(const uint8_t *p, uint32_t len, struct proto_exit *out);

/*
 * ERROR: err (i32, a positive errno 1..PROTO_MAX_ERRNO), then a message of up
 * to PROTO_MAX_ERROR_MSG bytes without a NUL (sent without one; decoded into
 * a NUL-terminated string). The message is not checked further: whoever shows
 * it to a person must escape control characters. The encoder sends msg up to
 * its NUL, which must lie within msg[]: snprintf() into it truncates safely.
 */
struct proto_error {
	int32_t err;
	char msg[PROTO_MAX_ERROR_MSG + 1];
};

int proto_error_encode(const struct proto_error *m, uint8_t *out, size_t cap);
int proto_error_decode(const uint8_t *p, uint32_t len, struct proto_error *out);

/* SET_TIME: CLOCK_REALTIME as sec (i64, >= 0: Linux refuses earlier times)
 * and nsec (u32, < 1e9), then a u32 of 0. */
struct proto_set_time {
	int64_t sec;
	uint32_t nsec;
};

int proto_set_time_encode(const struct proto_set_time *m, uint8_t *out, size_t cap);
int proto_set_time_decode(const uint8_t *p, uint32_t len, struct proto_set_time *out);

/* SET_HOSTNAME: 1..64 bytes, no NUL: letters, digits, '-' and '.', not
 * starting or ending with '-' or '.' (a DNS label set, RFC 1123). Decoded
 * into a NUL-terminated buffer. */
struct proto_hostname {
	char name[PROTO_MAX_HOSTNAME + 1];
};

/* 1 when @s (NUL-terminated) is a hostname SET_HOSTNAME carries. */
int proto_hostname_valid(const char *s);
int proto_hostname_encode(const struct proto_hostname *m, uint8_t *out, size_t cap);
int proto_hostname_decode(const uint8_t *p, uint32_t len, struct proto_hostname *out);

/* MOUNT_ROOT: disk slot (0..7; the disk whose serial is "diskN"), flags,
 * how long to wait for the disks to have a capacity (ms, at most 600000),
 * and with PROTO_ROOT_UPPER_DISK the slot of the ext4 disk that holds the
 * overlay's upper layer (another slot; else 0, and the upper is memory).
 * The agent answers DONE or ERROR with the same id. */
#define PROTO_ROOT_UPPER_DISK 1u
struct proto_mount_root {
	uint32_t disk;
	uint32_t flags;
	uint32_t wait_ms;
	uint32_t upper;
};

int proto_mount_root_encode(const struct proto_mount_root *m, uint8_t *out, size_t cap);
int proto_mount_root_decode(const uint8_t *p, uint32_t len, struct proto_mount_root *out);

/* READY: the exec started as process @pid (1..INT32_MAX, in the guest). */
struct proto_ready {
	uint32_t pid;
};

int proto_ready_encode(const struct proto_ready *m, uint8_t *out, size_t cap);
int proto_ready_decode(const uint8_t *p, uint32_t len, struct proto_ready *out);

/* STDIN/STDOUT/STDERR (raw bytes, len 0 = EOF), ADD_ENTROPY (1..4096 raw
 * bytes), SHUTDOWN (empty), PING and PONG (0..64 bytes, echoed) have no
 * structure beyond their length, which proto_hdr_decode() checks. */

#endif
