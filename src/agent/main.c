/*
 * msb-agent: PID 1 of every sandbox. Prepares the guest's base file systems,
 * then serves the host over vsock (port PROTO_AGENT_PORT), one connection at
 * a time, until the host asks for a shutdown.
 *
 *   msb-agent            as PID 1 in the guest
 *   msb-agent --fd N     serve one connection already open on fd N, then exit
 *                        (tests run the agent on the host this way)
 */
#include "proto.h"
#include "root.h"
#include "session.h"

/* The VMM's snapshot port (src/vmm/snapshot.h). */
#define SNAPSHOT_PORT 0x5b0

#include <errno.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/io.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "msb-agent: %s: %s\n", what, strerror(errno));
	/* as PID 1, exiting panics the kernel, which the VMM reports as a crash */
	exit(1);
}

struct mnt {
	const char *src, *dir, *type;
	unsigned long flags;
	const char *data;
	mode_t mode;
};

static void mount_base(void)
{
	static const struct mnt m[] = {
	    {"proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555},
	    {"sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555},
	    {"devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", 0755},
	    {"devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666",
	     0755},
	    {"shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 01777},
	    {"tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 01777},
	    {"tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", 0755},
	};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		if (mkdir(m[i].dir, m[i].mode) < 0 && errno != EEXIST)
			die(m[i].dir);
		if (mount(m[i].src, m[i].dir, m[i].type, m[i].flags, m[i].data) < 0 &&
		    errno != EBUSY)
			die(m[i].dir);
	}
	if (sethostname("msb", 3) < 0)
		die("sethostname");
}

/* SIGCHLD arrives through a signalfd; SIGPIPE would kill us on a closed
 * stream. Children reset both (spawn.c). */
static int setup_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		die("sigprocmask");
	signal(SIGPIPE, SIG_IGN);
	int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		die("signalfd");
	return fd;
}

static int listen_vsock(void)
{
	int l = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_vm a = {
	    .svm_family = AF_VSOCK, .svm_port = PROTO_AGENT_PORT, .svm_cid = VMADDR_CID_ANY};
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 4) < 0)
		die("listening on vsock");
	return l;
}

static void power_off(void)
{
	sync();
	/* without ACPI the reset is how a guest ends: the VMM takes it as a clean
	 * end (reboot=k on the command line makes it a keyboard-controller reset) */
	reboot(RB_AUTOBOOT);
	die("reboot");
}

/* Asks the VMM for the snapshot: it parks every vCPU on this OUT and saves
 * the VM. A VM restored from that snapshot resumes right after it, here,
 * and goes back to accept() the new sandbox's host, which sets the clock
 * and seeds the random pool. In a VM not started to be snapshotted the OUT
 * does nothing. */
static void snapshot_point(void)
{
	sync();
	if (ioperm(SNAPSHOT_PORT, 1, 1) < 0) {
		fprintf(stderr, "msb-agent: ioperm: %s\n", strerror(errno));
		return;
	}
	__asm__ volatile("outb %b0, %w1" : : "a"((uint8_t)1), "Nd"((uint16_t)SNAPSHOT_PORT));
	ioperm(SNAPSHOT_PORT, 1, 0);
}

int main(int argc, char **argv)
{
	struct agent_root root = {0};
	if (argc == 3 && !strcmp(argv[1], "--fd")) {
		int sigfd = setup_signals();
		int r = session_run(atoi(argv[2]), sigfd, &root);
		return r < 0 ? 1 : 0;
	}
	if (getpid() != 1) {
		fprintf(stderr, "usage: msb-agent (as PID 1) | msb-agent --fd N\n");
		return 2;
	}
	mount_base();
	int sigfd = setup_signals();
	int l = listen_vsock();
	for (;;) {
		struct pollfd pf[2] = {{.fd = l, .events = POLLIN},
		                       {.fd = sigfd, .events = POLLIN}};
		if (poll(pf, 2, -1) < 0 && errno != EINTR)
			die("poll");
		if (pf[1].revents)
			session_reap(sigfd);
		if (!(pf[0].revents & POLLIN))
			continue;
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		int r = session_run(c, sigfd, &root);
		close(c);
		if (r == 1)
			power_off();
		if (r == 2)
			snapshot_point();
		if (r < 0)
			fprintf(stderr, "msb-agent: the connection failed: %s\n", strerror(-r));
	}
}
