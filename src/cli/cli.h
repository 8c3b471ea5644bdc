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
/* How many stop signals arrived (a second Ctrl-C means "now"). */
int cli_stop_count(void);

/* A msb_vm_opts.progress callback: "msb: MSG" on stderr. */
void cli_say(void *arg, const char *msg);

/* The image msb exe runs when none is named: Debian 12 with python3,
 * made by ./setup under a name no registry serves. */
#define CLI_BUILTIN_DOMAIN "msb.local"
#define CLI_DEFAULT_IMAGE  CLI_BUILTIN_DOMAIN "/default:latest"
int cli_is_builtin_image(const char *name);

/* A whole number from @lo to @hi in @s (all of it). Returns 0 or -1. */
int cli_number(const char *s, long lo, long hi, long *out);

struct store;
/* Opens the image store under $MSB_HOME. Returns 0, or 1 after printing
 * the error. */
int cli_open_store(struct store **out);

/* 1 when MSB_INSECURE_REGISTRIES names @name's registry. */
int cli_insecure_registry(const char *name);

/* How cli_image_open() pulls an image that is not here. */
struct cli_pull {
	const char *platform; /* NULL: this machine's */
	int insecure, quiet;
};

struct store_image;
struct image_config;
/* Finds image @name in the store, pulling it first when it is not there
 * (with progress unless @how->quiet): its record, erofs path and config
 * (free both), and *guard, the store's shared guard to store_unlock() once
 * a VM has the image open. Returns 0, or 1 after printing the error. */
int cli_image_open(const char *name, const struct cli_pull *how, struct store_image *im,
                   char *erofs, size_t erofs_len, struct image_config *cfg, int *guard);

int cmd_info(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_exe(int argc, char **argv);
int cmd_login(int argc, char **argv);
int cmd_logout(int argc, char **argv);
int cmd_load(int argc, char **argv);
int cmd_import(int argc, char **argv);
/* The Sandboxfile @arg names (a file or its directory), or the nearest one
 * here or above; into @path. Returns 0, or 1 after printing why. */
int cli_find_sandboxfile(const char *arg, char *path, size_t len);

int cmd_init(int argc, char **argv);
int cmd_add(int argc, char **argv);
int cmd_remove(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_tree(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_shell(int argc, char **argv);
int cmd_up(int argc, char **argv);
int cmd_down(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_log(int argc, char **argv);
int cmd_clean(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_prepare(int argc, char **argv);
int cmd_install(int argc, char **argv);
int cmd_uninstall(int argc, char **argv);

#endif
