#include "vsock_uds.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define RETRY_MS 20

static long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

/* One attempt: 1 and *fd on success, 0 to retry, negative to give up. */
static int try_once(const char *path, uint32_t port, long deadline, int *out)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (snprintf(a.sun_path, sizeof(a.sun_path), "%s", path) >= (int)sizeof(a.sun_path))
		return -ENAMETOOLONG;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		close(fd);
		return e == ENOENT || e == ECONNREFUSED ? 0 : -e;
	}
	char line[32];
	int n = snprintf(line, sizeof(line), "CONNECT %u\n", port);
	if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n) { /* the VMM may close at once */
		close(fd);
		return 0;
	}
	/* "OK <port>\n", read byte by byte: what follows is the guest's */
	size_t got = 0;
	while (got < sizeof(line) - 1) {
		long left = deadline - mono_ms();
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		if (read(fd, line + got, 1) != 1)
			break;
		if (line[got++] == '\n') {
			line[got] = 0;
			if (!strncmp(line, "OK ", 3)) {
				*out = fd;
				return 1;
			}
			break;
		}
	}
	close(fd); /* the guest does not listen yet, or the VMM refused */
	return 0;
}

int vsock_uds_connect(const char *path, uint32_t port, long timeout_ms, int (*keep_going)(void *),
                      void *arg, char *why, size_t wl)
{
	long deadline = mono_ms() + timeout_ms;
	for (;;) {
		int fd = -1;
		int r = try_once(path, port, deadline, &fd);
		if (r == 1)
			return fd;
		if (r < 0) {
			snprintf(why, wl, "cannot connect to %s: %s", path, strerror(-r));
			return r;
		}
		if (mono_ms() >= deadline || (keep_going && !keep_going(arg))) {
			snprintf(why, wl, "nothing in the guest accepted vsock port %u through %s",
			         port, path);
			return -ETIMEDOUT;
		}
		struct timespec ts = {.tv_sec = 0, .tv_nsec = RETRY_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
}
