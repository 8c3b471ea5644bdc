/* A command run in a sandbox another msb keeps: attach.h. */
#include "attach.h"
#include "cli.h"
#include "exec_io.h"
#include "keeper_proto.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Sends what @tx holds, as far as the socket takes it now. */
static int flush(int fd, struct kp_buf *tx)
{
	if (!tx->len)
		return 0;
	ssize_t n = send(fd, tx->b, tx->len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	kp_buf_drop(tx, (size_t)n);
	return 0;
}

/* One frame from the keeper. Returns 1 when the command's end came (*rc
 * set), 0 to go on, -1 after printing an error. */
static int on_frame(uint8_t type, const uint8_t *p, uint32_t len, int *started, int *rc)
{
	switch (type) {
	case KP_STARTED:
		*started = 1;
		return 0;
	case KP_FAILED: {
		int e = len >= 4 ? (int)kp_get32(p) : -EIO;
		fprintf(stderr, "msb: error: %.*s\n", len >= 4 ? (int)(len - 4) : 0,
		        len >= 4 ? (const char *)p + 4 : "");
		*rc = e == -ENOENT && len > 15 && !memcmp(p + 4, "cannot run ", 11) ? 127 : 126;
		return 1;
	}
	case KP_OUT:
	case KP_ERR:
		write_all(type == KP_OUT ? STDOUT_FILENO : STDERR_FILENO, p, len);
		return 0;
	case KP_EXIT:
		if (len != 12)
			break;
		*rc = kp_get32(p) ? 128 + (int)kp_get32(p + 8) : (int)kp_get32(p + 4);
		return 1;
	}
	fprintf(stderr, "msb: error: the sandbox's keeper sent something unexpected\n");
	return -1;
}

int attach_run(int fd, const struct attach_cmd *c)
{
	struct kp_exec rq = {.tty = c->tty,
	                     .with_stdin = 1,
	                     .cwd = c->cwd,
	                     .user = c->user ? c->user : "",
	                     .argv = (const char **)c->argv,
	                     .env = (const char **)c->env,
	                     .argc = c->argc,
	                     .envc = c->envc};
	if (c->tty)
		term_size(&rq.rows, &rq.cols);
	uint8_t *frame;
	size_t flen;
	int e = kp_exec_encode(&rq, &frame, &flen);
	if (e < 0) {
		fprintf(stderr, "msb: error: the command and its environment are too big\n");
		close(fd);
		return 1;
	}
	e = write_all(fd, frame, flen);
	free(frame);
	struct kp_buf rx = {0}, tx = {0};
	struct term term = {0};
	int rc = 1, started = 0, in_open = 1, stops = 0, end = 0;
	if (e < 0) {
		fprintf(stderr, "msb: error: the sandbox's keeper went away: %s\n",
		        strerror(errno));
		goto out;
	}
	if (c->tty) {
		term_watch_resize();
		term_raw(&term);
	}
	while (!end) {
		if (cli_stop_count() > stops) {
			stops = cli_stop_count();
			if (stops > 1) { /* asked twice: leave; the keeper kills the command */
				rc = 128 + cli_stop_signal();
				break;
			}
			uint8_t b[4];
			kp_put32(b, (uint32_t)cli_stop_signal());
			kp_buf_frame(&tx, KP_SIGNAL, b, sizeof(b));
		}
		if (c->tty && term_resized()) {
			uint8_t b[8];
			unsigned rows, cols;
			term_size(&rows, &cols);
			kp_put32(b, rows);
			kp_put32(b + 4, cols);
			if (rows && cols)
				kp_buf_frame(&tx, KP_RESIZE, b, sizeof(b));
		}
		struct pollfd pf[2] = {
		    {.fd = fd, .events = (short)(POLLIN | (tx.len ? POLLOUT : 0))},
		    {.fd = in_open && started && !tx.len ? STDIN_FILENO : -1, .events = POLLIN}};
		if (poll(pf, 2, 1000) < 0 && errno != EINTR)
			break;
		if (pf[1].revents) {
			uint8_t buf[KP_MAX_DATA];
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n > 0) {
				kp_buf_frame(&tx, KP_STDIN, buf, (uint32_t)n);
			} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
				in_open = 0;
				kp_buf_frame(&tx, KP_EOF, NULL, 0);
			}
		}
		if (flush(fd, &tx) < 0) {
			/* the keeper closed its side: the command ended before it
			 * took all we had; its EXIT is still there to read */
			tx.len = 0;
			in_open = 0;
		}
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			uint8_t buf[KP_MAX_DATA];
			ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				term_restore(&term);
				fprintf(stderr, "msb: error: the sandbox stopped\n");
				break;
			}
			if (n > 0 && kp_buf_add(&rx, buf, (size_t)n) < 0)
				break;
		}
		uint8_t type;
		const uint8_t *p;
		uint32_t len;
		size_t total;
		int r;
		while (!end && (r = kp_next(&rx, KP_MAX_FRAME, &type, &p, &len, &total)) != 0) {
			if (r < 0 || (r = on_frame(type, p, len, &started, &rc)) < 0) {
				rc = 1;
				end = 1;
				break;
			}
			end = r;
			kp_buf_drop(&rx, total);
		}
	}
out:
	term_restore(&term);
	kp_buf_free(&rx);
	kp_buf_free(&tx);
	close(fd);
	return rc;
}
