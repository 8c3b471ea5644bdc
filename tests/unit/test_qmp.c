/*
 * The QMP client against a scripted peer on the other end of a socketpair:
 * greeting, replies split across writes, events between replies, errors,
 * fds passed with a command, a peer that hangs up or talks nonsense.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/vmproc/qmp.h"

static const char greeting[] =
    "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}}, "
    "\"capabilities\": [\"oob\"]}}\r\n";

/* Reads one command line from the client; returns its length. */
static ssize_t read_cmd(int fd, char *buf, size_t len, int *passed_fd)
{
	size_t got = 0;
	if (passed_fd)
		*passed_fd = -1;
	while (got + 1 < len) {
		union {
			struct cmsghdr h;
			char space[CMSG_SPACE(sizeof(int))];
		} ctl;
		struct iovec iov = {.iov_base = buf + got, .iov_len = 1};
		struct msghdr m = {.msg_iov = &iov,
		                   .msg_iovlen = 1,
		                   .msg_control = ctl.space,
		                   .msg_controllen = sizeof(ctl.space)};
		if (recvmsg(fd, &m, 0) != 1)
			return -1;
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		if (c && c->cmsg_type == SCM_RIGHTS && passed_fd)
			memcpy(passed_fd, CMSG_DATA(c), sizeof(int));
		if (buf[got++] == '\n')
			break;
	}
	buf[got] = 0;
	return (ssize_t)got;
}

static void say(int fd, const char *s)
{
	ssize_t n = write(fd, s, strlen(s));
	(void)n;
}

/* The peer: answers each command by its name, as QEMU would. */
static void peer(int fd)
{
	say(fd, greeting);
	char cmd[1024];
	int passed;
	while (read_cmd(fd, cmd, sizeof(cmd), &passed) > 0) {
		if (strstr(cmd, "qmp_capabilities")) {
			/* split in two writes */
			say(fd, "{\"ret");
			usleep(1000);
			say(fd, "urn\": {}}\r\n");
		} else if (strstr(cmd, "\"stop\"")) {
			say(fd, "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": "
			        "\"STOP\"}\r\n{\"return\": {}}\r\n");
		} else if (strstr(cmd, "getfd")) {
			/* the fd arrived: prove it by writing through it */
			if (passed >= 0 && write(passed, "x", 1) == 1)
				say(fd, "{\"return\": {}}\r\n");
			else
				say(fd,
				    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"No file "
				    "descriptor supplied via SCM_RIGHTS\"}}\r\n");
		} else if (strstr(cmd, "query-migrate")) {
			say(fd, "{\"return\": {\"status\": \"completed\", \"total-time\": 2}}\r\n");
		} else if (strstr(cmd, "nonsense")) {
			say(fd, "[1, 2, 3]\r\n");
		} else if (strstr(cmd, "hang up")) {
			return;
		} else {
			say(fd,
			    "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command "
			    "\\\"x\\\" has not been found\"}}\r\n");
		}
	}
}

static pid_t start_peer(int *fd)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		peer(sv[1]);
		_exit(0);
	}
	close(sv[1]);
	*fd = sv[0];
	return pid;
}

static void finish_peer(pid_t pid, int fd)
{
	close(fd);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
}

static void test_commands_replies_events_and_errors(void **state)
{
	(void)state;
	int fd;
	pid_t pid = start_peer(&fd);
	struct qmp q;
	char why[200], reply[QMP_LINE_MAX], status[32];
	assert_int_equal(qmp_open(&q, fd, 5000, why, sizeof(why)), 0);
	/* the event before the reply is skipped */
	assert_int_equal(qmp_exec(&q, "{\"execute\":\"stop\"}", -1, NULL, 0, why, sizeof(why)), 0);
	assert_int_equal(qmp_exec(&q, "{\"execute\":\"query-migrate\"}", -1, reply, sizeof(reply),
	                          why, sizeof(why)),
	                 0);
	assert_int_equal(qmp_str(reply, "status", status, sizeof(status)), 0);
	assert_string_equal(status, "completed");
	assert_int_equal(qmp_str(reply, "missing", status, sizeof(status)), -ENOENT);
	/* an error reply carries QEMU's description, unescaped */
	assert_int_equal(qmp_exec(&q, "{\"execute\":\"x\"}", -1, NULL, 0, why, sizeof(why)), -EIO);
	assert_string_equal(why, "QEMU: The command \"x\" has not been found");

	/* an fd travels with the command */
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	assert_int_equal(
	    qmp_exec(&q, "{\"execute\":\"getfd\"}", pipefd[1], NULL, 0, why, sizeof(why)), 0);
	char c;
	assert_int_equal(read(pipefd[0], &c, 1), 1);
	close(pipefd[0]);
	close(pipefd[1]);

	/* not QMP */
	assert_int_equal(qmp_exec(&q, "{\"execute\":\"nonsense\"}", -1, NULL, 0, why, sizeof(why)),
	                 -EPROTO);
	/* the peer goes away */
	assert_int_equal(qmp_exec(&q, "{\"execute\":\"hang up\"}", -1, NULL, 0, why, sizeof(why)),
	                 -EPIPE);
	finish_peer(pid, fd);
}

static void test_silent_peer_times_out(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct qmp q;
	char why[200];
	assert_int_equal(qmp_open(&q, sv[0], 50, why, sizeof(why)), -ETIMEDOUT);
	/* a line longer than the buffer is refused, not overflowed */
	static char big[QMP_LINE_MAX + 10];
	memset(big, 'a', sizeof(big));
	assert_int_equal(write(sv[1], big, sizeof(big)), (ssize_t)sizeof(big));
	assert_int_equal(qmp_open(&q, sv[0], 1000, why, sizeof(why)), -EPROTO);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_commands_replies_events_and_errors),
	    cmocka_unit_test(test_silent_peer_times_out),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
