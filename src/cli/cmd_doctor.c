/*
 * msb doctor: proves this machine can run sandboxes by running a real KVM
 * guest the way sandboxes run (natively, or inside the portable host) and
 * talking to it through the byte stream the agent protocol will use.
 */
#include "cli.h"
#include "clock.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GREETING "msb-kvm-smoke: hello from a KVM guest; its user-mode SYSCALL reached CPL0\n"
#define PING     "msb doctor ping\n"
#define PONG     "MSB DOCTOR PING\n"

/* Reads one line from @fd into @buf before @deadline. Returns its length,
 * 0 at end of stream, -ETIMEDOUT or another negative errno. */
static int read_line(int fd, char *buf, size_t size, long deadline)
{
	size_t got = 0;
	while (got + 1 < size) {
		long left = deadline - mono_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
		if (cli_stop_signal())
			return -EINTR;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		ssize_t n = read(fd, buf + got, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		if (buf[got++] == '\n')
			break;
	}
	buf[got] = 0;
	return (int)got;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: msb doctor [--timeout SECONDS]\n\n"
	           "Checks that this machine can run sandboxes: picks the host mode (native\n"
	           "/dev/kvm or the portable host, see msb info), starts a test VM there whose\n"
	           "guest enters user mode and makes a system call, and talks to it through\n"
	           "the same byte stream sandboxes use. Exit status 0 when all of it works.\n\n"
	           "  --timeout SECONDS   give up after this long (default 300)\n");
}

struct doctor {
	struct msb_vmproc *vm;
	long start, deadline;
};

/* Talks to the test guest; returns 0 or 1 after printing what went wrong. */
static int converse(struct doctor *d, const char *where)
{
	int fd = msb_vmproc_stream(d->vm);
	char line[256];
	int n = read_line(fd, line, sizeof(line), d->deadline);
	long first = mono_ms() - d->start;
	if (n == -EINTR)
		return 1;
	if (n <= 0 || strcmp(line, GREETING)) {
		struct msb_err err = {0};
		if (n == -ETIMEDOUT) {
			fprintf(stderr,
			        "msb: error: no answer from the test VM within the timeout; "
			        "see %s\n",
			        msb_vmproc_log(d->vm));
			return 1;
		}
		if (n > 0) {
			fprintf(stderr,
			        "msb: error: the test VM said \"%.*s\" instead of its "
			        "greeting; see %s\n",
			        (int)strcspn(line, "\n"), line, msb_vmproc_log(d->vm));
			return 1;
		}
		int st = msb_vmproc_wait(d->vm, 30000, &err);
		if (st < 0)
			return cli_fail(&err);
		fprintf(stderr,
		        "msb: error: the test VM exited with status %d before greeting; "
		        "see %s\n",
		        st, msb_vmproc_log(d->vm));
		return 1;
	}
	printf("guest:    %s", line);
	printf("          first output %.2f s after start (%s)\n", first / 1000.0, where);

	if (write(fd, PING, strlen(PING)) != (ssize_t)strlen(PING)) {
		fprintf(stderr, "msb: error: writing to the test VM: %s\n", strerror(errno));
		return 1;
	}
	n = read_line(fd, line, sizeof(line), d->deadline);
	if (n == -EINTR)
		return 1;
	if (n <= 0 || strcmp(line, PONG)) {
		fprintf(stderr, "msb: error: the test VM did not echo the stream (%s); see %s\n",
		        n < 0 ? strerror(-n) : "got something else", msb_vmproc_log(d->vm));
		return 1;
	}
	printf("stream:   sent \"%.*s\", the guest answered \"%.*s\"\n", (int)strlen(PING) - 1,
	       PING, (int)strlen(PONG) - 1, PONG);
	return 0;
}

int cmd_doctor(int argc, char **argv)
{
	long timeout_s = 300;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		}
		char *end;
		if (!strcmp(argv[i], "--timeout") && i + 1 < argc &&
		    (timeout_s = strtol(argv[i + 1], &end, 10)) > 0 && !*end) {
			i++;
			continue;
		}
		usage(stderr);
		return 2;
	}

	struct msb_host_choice c;
	if (cli_select_host(&c, 0))
		return 1;
	const int portable = c.mode == MSB_HOST_PORTABLE;
	printf("host:     %s\n", portable ? "portable" : "native");
	printf("          %s\n", c.why);
	fflush(stdout);

	char share[4096], libexec[4096], guest[4200], smoke[4200], gpath[4200];
	if (msb_share_dir(share, sizeof(share)) || msb_libexec_dir(libexec, sizeof(libexec))) {
		fprintf(stderr, "msb: error: cannot find msb's own files\n");
		return 1;
	}
	snprintf(guest, sizeof(guest), "%s/kvm-smoke-guest.bin", share);
	snprintf(smoke, sizeof(smoke), "%s/msb-kvm-smoke", libexec);
	const struct msb_vm_file files[] = {{.name = "guest", .path = guest}};
	if (!msb_vm_file_path(c.mode, &files[0], gpath, sizeof(gpath)))
		return 1;
	const char *argv_vm[] = {portable ? "/bin/msb-kvm-smoke" : smoke, "--guest", gpath, NULL};
	struct msb_vmproc_opts o = {
	    .size = sizeof(o),
	    .mode = c.mode,
	    .name = "doctor",
	    .argv = argv_vm,
	    .files = files,
	    .nfiles = 1,
	};
	struct doctor d = {.start = mono_ms()};
	d.deadline = d.start + timeout_s * 1000;
	if (portable)
		fprintf(stderr, "msb: starting a test VM in the portable host (software emulation, "
		                "this takes a few seconds)...\n");
	struct msb_err err = {0};
	cli_catch_stop_signals();
	if (msb_vmproc_start(&o, &d.vm, &err) < 0)
		return cli_fail(&err);

	int rc = converse(&d, portable ? "portable host" : "native /dev/kvm");
	if (rc == 0) {
		int st;
		do {
			long left = d.deadline - mono_ms();
			st = msb_vmproc_wait(d.vm, left > 0 ? (int)left : 0, &err);
		} while (st == -EINTR && !cli_stop_signal());
		if (cli_stop_signal()) {
			rc = 1;
		} else if (st < 0) {
			rc = cli_fail(&err);
		} else if (st != 0) {
			fprintf(stderr, "msb: error: the test VM exited with status %d; see %s\n",
			        st, msb_vmproc_log(d.vm));
			rc = 1;
		} else {
			printf("result:   ok, this machine can run sandboxes (%s, %.2f s in all)\n",
			       portable ? "portable host" : "native",
			       (mono_ms() - d.start) / 1000.0);
		}
	}
	int sig = cli_stop_signal();
	/* Stopped by the user: stop the VM, keep nothing, exit as the signal. */
	msb_vmproc_destroy(d.vm, rc != 0 && !sig);
	if (sig) {
		fprintf(stderr, "msb: stopped (%s); the test VM is stopped too\n", strsignal(sig));
		return 128 + sig;
	}
	return rc;
}
