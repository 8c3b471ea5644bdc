/*
 * vmrun: boots a kernel and initramfs with msb-vmm in the host mode msb
 * chooses (natively, or inside the portable host) and copies the guest's
 * console to stdout. For tests and for debugging the boot path:
 *
 *   vmrun [--cpus N] [--memory MIB] [--cmdline ARGS] [--send PORT TEXT] KERNEL INITRD
 *
 * With --send, the stream is a vsock connection to guest port PORT instead
 * of the console: TEXT and a newline are sent, and what comes back printed.
 *
 * Exit status: msb-vmm's (0 guest shut down, 1 guest crashed, 2 VMM error),
 * or 3 when the VM could not be run at all (the message says why).
 */
#include "msb.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *cpus = "1", *mem = "256", *send = NULL;
	const char *cmdline[4];
	int ncmd = 0;
	uint32_t port = 0;
	int i = 1;
	for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
		if (!strcmp(argv[i], "--send") && i + 2 < argc) {
			port = (uint32_t)strtoul(argv[i + 1], NULL, 10);
			send = argv[i + 2];
			i++;
		} else if (!strcmp(argv[i], "--cpus"))
			cpus = argv[i + 1];
		else if (!strcmp(argv[i], "--memory"))
			mem = argv[i + 1];
		else if (!strcmp(argv[i], "--cmdline") && ncmd < 4)
			cmdline[ncmd++] = argv[i + 1];
		else
			break;
	}
	if (argc - i != 2) {
		fprintf(stderr, "usage: vmrun [--cpus N] [--memory MIB] [--cmdline ARGS] KERNEL "
		                "INITRD\n");
		return 3;
	}
	struct msb_host_choice c;
	struct msb_err err = {0};
	if (msb_host_select(&c, &err) < 0) {
		fprintf(stderr, "vmrun: %s\n", err.msg);
		return 3;
	}
	const struct msb_vm_file files[] = {{.name = "kernel", .path = argv[i]},
	                                    {.name = "initrd", .path = argv[i + 1]}};
	char kpath[4096], ipath[4096], vmm[4096];
	msb_vm_file_path(c.mode, &files[0], kpath, sizeof(kpath));
	msb_vm_file_path(c.mode, &files[1], ipath, sizeof(ipath));
	if (c.mode == MSB_HOST_PORTABLE) {
		snprintf(vmm, sizeof(vmm), "/bin/msb-vmm");
	} else {
		char libexec[4000];
		if (msb_libexec_dir(libexec, sizeof(libexec)))
			return 3;
		snprintf(vmm, sizeof(vmm), "%s/msb-vmm", libexec);
	}
	const char *vargv[24] = {
	    vmm,      "--kernel", kpath,      "--initrd", ipath,
	    "--cpus", cpus,       "--memory", mem,        send ? NULL : "--serial-log",
	    "-",      NULL};
	for (int k = send ? 9 : 11, c = 0; c < ncmd; c++, k += 2) {
		vargv[k] = "--cmdline";
		vargv[k + 1] = cmdline[c];
		vargv[k + 2] = NULL;
	}
	struct msb_vmproc_opts o = {
	    .size = sizeof(o),
	    .mode = c.mode,
	    .name = "vmrun",
	    .argv = vargv,
	    .files = files,
	    .nfiles = 2,
	    /* untouched memory costs nothing at either level */
	    .mem_mib = (unsigned)strtoul(mem, NULL, 10) + 512,
	    .stream_vsock_port = port,
	};
	struct msb_vmproc *vm;
	if (msb_vmproc_start(&o, &vm, &err) < 0) {
		fprintf(stderr, "vmrun: %s\n", err.msg);
		return 3;
	}
	if (send) {
		size_t n = strlen(send);
		int fd = msb_vmproc_stream(vm);
		if (write(fd, send, n) != (ssize_t)n || write(fd, "\n", 1) != 1)
			fprintf(stderr, "vmrun: writing to the guest: %s\n", strerror(errno));
	}
	char buf[4096];
	for (;;) {
		ssize_t n = read(msb_vmproc_stream(vm), buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		fwrite(buf, 1, (size_t)n, stdout);
		fflush(stdout);
	}
	/* the guest's listener waits for our end of the connection to close
	 * before it shuts down: end it (natively our fd is the connection) */
	shutdown(msb_vmproc_stream(vm), SHUT_RDWR);
	int st = msb_vmproc_wait(vm, 600000, &err);
	if (st < 0) {
		fprintf(stderr, "vmrun: %s\n", err.msg);
		msb_vmproc_destroy(vm, 1);
		return 3;
	}
	fprintf(stderr, "vmrun: msb-vmm exited with status %d; its log: %s\n", st,
	        msb_vmproc_log(vm));
	msb_vmproc_destroy(vm, st != 0);
	return st;
}
