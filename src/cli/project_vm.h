/*
 * A project sandbox's life on this machine: its files under the project's
 * .msb/ (the writable layer, the log), what it runs (scripts, command,
 * shell), its environment, and starting its VM.
 *
 *   .msb/sandboxes/NAME/rw.ext4   the writable layer (sparse ext4), kept
 *                                 between runs until `msb clean`
 *   .msb/sandboxes/NAME/image     the image digest it was made on
 *   .msb/log/NAME.log             what `msb up` ran wrote (NAME.log.1: older)
 */
#ifndef MSB_CLI_PROJECT_VM_H
#define MSB_CLI_PROJECT_VM_H

#include "msb.h"

#include "lib/image/manifest.h"
#include "lib/image/store.h"
#include "lib/project/sandboxfile.h"

#include <limits.h>
#include <stddef.h>

struct project {
	struct sandboxfile *sf;
	char file[PATH_MAX]; /* the Sandboxfile, as found */
	char dir[PATH_MAX];  /* its directory, absolute: the project's identity */
};

/* Loads the project -f names (@file: a Sandboxfile or its directory; NULL:
 * the nearest here or above). Returns 0, or 1 after printing why. */
int project_open(const char *file, struct project *p);
void project_close(struct project *p);

/* The sandbox @name of @p, with what this msb cannot run yet refused; NULL
 * after printing why. */
const struct sf_sandbox *project_sandbox(const struct project *p, const char *name);

/* Makes a project's .msb directory at @path (if missing) with a .gitignore
 * that keeps all of it out of the project's repository. 0 or -errno. */
int project_msb_dir(const char *path);

/* .msb/sandboxes/NAME, its writable layer, and .msb/log/NAME.log. */
int project_state_dir(const struct project *p, const char *name, char *buf, size_t len);
int project_disk_path(const struct project *p, const char *name, char *buf, size_t len);
int project_log_path(const struct project *p, const char *name, char *buf, size_t len);

/* A command line for a sandbox, and the environment it runs with. */
struct project_cmd {
	const char **argv; /* NULL-terminated */
	const char **env;  /* NULL-terminated K=V */
	const char *cwd;
	const char *user; /* NULL: root */
	char *owned;      /* strings argv and env point into */
	size_t argc, nenv;
	char hostname_env[100];
};

/*
 * What `msb run NAME[~SCRIPT] [-e CMD] [-- ARGS]` runs: SCRIPT, or -e CMD,
 * as `SHELL -c TEXT NAME ARGS...`; without either the `start` script, else
 * `command` (ARGS appended), else the shell. @shell_only: the shell (msb
 * shell). Environment: the image's, then env_file, then envs, then PATH
 * and HOSTNAME defaults. Returns 0, or 1 after printing why.
 */
int project_cmd_make(const struct project *p, const struct sf_sandbox *sb,
                     const struct image_config *cfg, const char *script, const char *inline_cmd,
                     char *const *args, size_t nargs, int shell_only, const char *hostname,
                     struct project_cmd *out);
void project_cmd_free(struct project_cmd *c);

/* The text of @sb's script @script, or NULL after printing that there is
 * none (and which there are). */
const char *project_has_script(const struct sf_sandbox *sb, const char *script);

/* A started project sandbox: its VM with the root mounted over the kept
 * writable layer. */
struct project_vm {
	struct msb_vm *vm;
	struct store_image im;
	struct image_config cfg;
};

/* Pulls the image if needed, makes the writable layer on first use, starts
 * the VM and mounts the root. Returns 0, or 1 after printing why. */
int project_vm_start(const struct project *p, const struct sf_sandbox *sb, int quiet,
                     struct project_vm *out);
void project_vm_free(struct project_vm *v);

#endif
