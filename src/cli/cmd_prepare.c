/*
 * msb prepare: makes a VM shape's warm-start snapshot now, so the first
 * sandbox of that shape starts warm (./setup runs it for the default).
 */
#include "cli.h"
#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MIB 1024 /* msb exe's default */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: msb prepare [--memory MIB] [--cpus N]\n\n"
	        "Prepares the VM image sandboxes of this shape start from: boots msb's\n"
	        "kernel and agent once and snapshots them (and, on a machine that uses the\n"
	        "portable host, that host too), under $MSB_HOME/snapshots/. The first\n"
	        "sandbox of a shape does this by itself; preparing it ahead makes that\n"
	        "first start as fast as the rest. Nothing happens when it is ready.\n\n"
	        "  --memory MIB   guest memory (default %d)\n"
	        "  --cpus N       vCPUs (default 1)\n",
	        DEFAULT_MIB);
}

static void say(void *arg, const char *msg)
{
	int *said = arg;
	*said = 1;
	fprintf(stderr, "msb: %s\n", msg);
}

int cmd_prepare(int argc, char **argv)
{
	long mem = DEFAULT_MIB, cpus = 1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(argv[i], "--memory") && i + 1 < argc &&
		    !cli_number(argv[i + 1], 64, 1 << 20, &mem)) {
			i++;
		} else if (!strcmp(argv[i], "--cpus") && i + 1 < argc &&
		           !cli_number(argv[i + 1], 1, 8, &cpus)) {
			i++;
		} else {
			fprintf(stderr, "msb prepare: bad argument %s\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	struct msb_host_choice hc;
	if (cli_select_host(&hc, 0))
		return 1;
	cli_catch_stop_signals();
	int said = 0;
	struct msb_vm_opts o = {.size = sizeof(o),
	                        .mem_mib = (unsigned)mem,
	                        .cpus = (unsigned)cpus,
	                        .name = "prepare",
	                        .progress = say,
	                        .progress_arg = &said};
	struct msb_err err = {0};
	long t0 = mono_ms();
	if (msb_vm_prepare(&o, &err) < 0)
		return cli_fail(&err);
	if (said)
		fprintf(stderr, "msb: the VM image for %ld MiB / %ld vCPU is ready (%.1f s)\n", mem,
		        cpus, (double)(mono_ms() - t0) / 1000);
	else
		fprintf(stderr, "msb: the VM image for %ld MiB / %ld vCPU was ready already\n", mem,
		        cpus);
	return 0;
}
