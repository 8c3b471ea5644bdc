/*
 * PID 1 of the boot tests' initramfs (until the agent exists): reports what
 * the guest sees on the console and shuts down.
 *   hello            a greeting
 *   cpus N           online CPUs (from /proc/cpuinfo)
 *   memtotal KIB     MemTotal from /proc/meminfo
 * then "done" and reboot(RB_AUTOBOOT), which the VMM takes as the end.
 * With "crash" on the kernel command line it exits instead, so the kernel
 * panics (attempted to kill init) and the VMM reports a crash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
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
	printf("msb-test-init: done\n");
	fflush(stdout);
	if (crash)
		return 1;
	sync();
	reboot(RB_AUTOBOOT);
	return 1;
}
