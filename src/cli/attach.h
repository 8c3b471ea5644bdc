/*
 * The client side of a sandbox's keeper (keeper.h): `msb shell NAME` and
 * `msb run NAME~SCRIPT` while NAME runs under another msb. The command
 * gets our stdin, stdout and stderr (or our terminal), signals as in msb
 * exe, and its exit status becomes ours.
 */
#ifndef MSB_CLI_ATTACH_H
#define MSB_CLI_ATTACH_H

#include <stddef.h>

struct attach_cmd {
	const char *const *argv; /* NULL-terminated */
	const char *const *env;
	size_t argc, envc;
	const char *cwd;
	const char *user; /* NULL: root */
	int tty;
};

/* Runs @c through @fd, connected to the sandbox's keeper (keeper_connect();
 * closed here). Returns the exit status msb gives (as exec_run()), or 1
 * after printing why. */
int attach_run(int fd, const struct attach_cmd *c);

#endif
