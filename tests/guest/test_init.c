/*
 * PID 1 of the boot tests' initramfs: the least a guest can do, without the
 * agent, so the VMM's boot path is tested on its own. Reports what the guest
 * sees on the console and shuts down.
 *   hello            a greeting
 *   cpus N           online CPUs (from /proc/cpuinfo)
 *   memtotal KIB     MemTotal from /proc/meminfo
 * then "done" and reboot(RB_AUTOBOOT), which the VMM takes as the end.
 * With "crash" on the kernel command line it exits instead, so the kernel
 * panics (attempted to kill init) and the VMM reports a crash.
 * With "vsock" it first serves one connection on vsock port 1024: reads a
 * line and answers it upper-cased, the way the agent will be reached, then
 * waits for the host to close before it goes on (and reboots).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/reboot.h>
#include <unistd.h>

static long count_cpus(void)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[256];
	long n = 0;
	while (f && fgets(line, sizeof(line), f))
		n += !strncmp(line, "processor", 9);
	if (f)
		fclose(f);
	return n;
}

static long memtotal(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	long kib = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

static void vsock_echo(void)
{
	int l = socket(AF_VSOCK, SOCK_STREAM, 0);
	struct sockaddr_vm a = {
	    .svm_family = AF_VSOCK, .svm_port = 1024, .svm_cid = VMADDR_CID_ANY};
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0) {
		perror("msb-test-init: vsock listen");
		return;
	}
	printf("msb-test-init: vsock listening\n");
	fflush(stdout);
	int c = accept(l, NULL, NULL);
	char buf[256];
	size_t got = 0;
	while (c >= 0 && got < sizeof(buf)) {
		ssize_t n = read(c, buf + got, sizeof(buf) - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (buf[got - 1] == '\n')
			break;
	}
	for (size_t i = 0; i < got; i++)
		if (buf[i] >= 'a' && buf[i] <= 'z')
			buf[i] = (char)(buf[i] - 32);
	if (c >= 0 && write(c, buf, got) != (ssize_t)got)
		perror("msb-test-init: vsock write");
	printf("msb-test-init: vsock answered %zu bytes\n", got);
	if (c >= 0) {
		/* A write that returned is only queued: the kernel's virtio-vsock
		 * sends from a worker, and the reboot that follows resets the
		 * device and drops what it has not sent yet. So say we are done
		 * (SHUT_WR) and wait for the host to end its side, which it does
		 * only after it has read everything (bounded, for a host that
		 * never closes). */
		shutdown(c, SHUT_WR);
		struct pollfd p = {.fd = c, .events = POLLIN};
		while (poll(&p, 1, 30000) > 0 && read(c, buf, sizeof(buf)) > 0)
			;
		close(c);
	}
	close(l);
}

int main(void)
{
	mount("proc", "/proc", "proc", 0, NULL);
	printf("msb-test-init: hello\n");
	printf("msb-test-init: cpus %ld\n", count_cpus());
	printf("msb-test-init: memtotal %ld\n", memtotal());
	char cmdline[2048] = "";
	FILE *f = fopen("/proc/cmdline", "r");
	if (f) {
		if (!fgets(cmdline, sizeof(cmdline), f))
			cmdline[0] = 0;
		fclose(f);
	}
	int crash = strstr(cmdline, " crash") != NULL;
	if (strstr(cmdline, " vsock"))
		vsock_echo();
	printf("msb-test-init: done\n");
	fflush(stdout);
	if (crash)
		return 1;
	sync();
	reboot(RB_AUTOBOOT);
	return 1;
}
