/*
 * A small client for QEMU's machine protocol (QMP), enough to snapshot and
 * restore a portable host: commands in, one reply each, events skipped.
 * The peer is the QEMU msb started, over a socketpair; replies are still
 * read into bounded buffers and anything unexpected is an error.
 */
#ifndef MSB_VMPROC_QMP_H
#define MSB_VMPROC_QMP_H

#include <stddef.h>

#define QMP_LINE_MAX 8192

struct qmp {
	int fd; /* owned by the caller */
	int timeout_ms;
	char buf[QMP_LINE_MAX];
	size_t have; /* bytes in buf not yet returned as lines */
};

/*
 * Reads QEMU's greeting and enters command mode. Returns 0, or a negative
 * errno with @why set (-ETIMEDOUT after @timeout_ms per reply, -EPIPE when
 * QEMU closed the socket, -EPROTO for an unexpected reply).
 */
int qmp_open(struct qmp *q, int fd, int timeout_ms, char *why, size_t why_len);

/*
 * Sends @cmd (one JSON object, without newline) with @pass_fd attached when
 * it is >= 0 (for "getfd"), and waits for its reply. On success returns 0
 * and, if @reply is not NULL, copies the reply line into it. A QMP error
 * reply returns -EIO with its description in @why.
 */
int qmp_exec(struct qmp *q, const char *cmd, int pass_fd, char *reply, size_t reply_len, char *why,
             size_t why_len);

/*
 * The string value of the first "@key": "..." in @json, copied to @out
 * (unescaped only for \" and \\). Returns 0, or -ENOENT.
 */
int qmp_str(const char *json, const char *key, char *out, size_t out_len);

#endif
