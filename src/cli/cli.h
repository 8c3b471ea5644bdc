/* The msb command line: a dispatch table (main.c) and one file per command. */
#ifndef MSB_CLI_H
#define MSB_CLI_H

#include "msb.h"

struct cli_cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv); /* argv[0] is the command name */
};

/* Prints "msb: error: <msg>" to stderr; returns 1 (the exit status). */
int cli_fail(const struct msb_err *e);

/* Chooses the host mode. Prints which mode and why on stderr when the
 * decision is new (not cached) or @always is set. Returns 0 or 1 (after
 * printing the error). */
int cli_select_host(struct msb_host_choice *c, int always);

/* Catches SIGINT, SIGTERM and SIGHUP so a command can stop its VMs and
 * clean up; blocking calls then fail with EINTR. cli_stop_signal() is the
 * signal caught, or 0. */
void cli_catch_stop_signals(void);
int cli_stop_signal(void);

int cmd_info(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_prepare(int argc, char **argv);

#endif
