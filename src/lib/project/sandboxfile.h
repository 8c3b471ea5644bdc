/*
 * The Sandboxfile: a project's sandboxes and builds, in YAML (issue 8).
 *
 *   meta:      {description: STRING, authors: [STRING...]}
 *   sandboxes: {NAME: SANDBOX...}
 *   builds:    {NAME: BUILD...}
 *
 * A SANDBOX takes image (required), memory (MiB, default 1024, 64..1048576),
 * cpus (default 1, 1..64), envs (["K=V"...]), env_file, workdir (absolute;
 * default: the image's WorkingDir, else /), shell (default /bin/sh),
 * scripts ({NAME: CMD}), command ([ARG...] or a string), depends_on
 * ([SANDBOX...]), volumes (["HOST:GUEST[:ro|rw]"...]), ports
 * (["HOST:GUEST[/tcp|udp]"...]), scope (none|local|public|any; default
 * local: the issue names no default and local is what a sandbox without
 * networking is) and imports ({BUILD: {EXPORT: GUEST_PATH}}).
 * A BUILD takes image (required), memory, cpus, envs, workdir (as a
 * sandbox), steps ({NAME: CMD}) and exports ({NAME: ABSOLUTE_PATH}).
 * Sandbox, build, script, step and export names match
 * [A-Za-z0-9][A-Za-z0-9_-]{0,62}.
 *
 * Everything is checked when parsed: types, ranges, unknown keys (with a
 * "did you mean"), duplicate keys at any level, a name used by a sandbox
 * and a build, depends_on naming no sandbox, dependency cycles, imports
 * naming no build or export. Aliases are refused (a billion-laughs guard;
 * anchors alone are harmless), as are YAML tags and more than one document.
 * Limits: SANDBOXFILE_MAX_BYTES, SANDBOXFILE_MAX_DEPTH nested maps and
 * lists, SANDBOXFILE_MAX_ENTRIES entries in one map or list.
 *
 * Errors are a negative errno and one line in @why (a buffer of @why_len
 * bytes, written on failure; control characters replaced):
 *   DISPLAY_NAME:LINE:COL: KEY.PATH: what was expected, got what
 * e.g. `Sandboxfile:12:13: sandboxes.api.memory: expected a whole number of
 * MiB, got "lots"`. Lines and columns count from 1. The errnos:
 *   -EINVAL   not a valid Sandboxfile (YAML syntax included)
 *   -E2BIG    a limit above is exceeded
 *   -ENOMEM   out of memory
 *   (sandboxfile_load also returns open(2)/read(2)'s errno)
 *
 * volumes, ports, a scope other than local, imports and builds parse and
 * are checked like everything else, but need virtio-fs and networking (later
 * issues): sandboxfile_check_supported() refuses them, and every command
 * that acts on a Sandboxfile must call it.
 *
 * Functions keep no global state and no pointer to their arguments; a
 * struct sandboxfile is immutable once parsed and may be read from several
 * threads at once.
 */
#ifndef MSB_PROJECT_SANDBOXFILE_H
#define MSB_PROJECT_SANDBOXFILE_H

#include <stddef.h>
#include <stdint.h>

#define SANDBOXFILE_MAX_BYTES   (1u << 20)
#define SANDBOXFILE_MAX_DEPTH   32
#define SANDBOXFILE_MAX_ENTRIES 4096
#define SANDBOXFILE_NAME_MAX    63

#define SF_MEMORY_DEFAULT 1024
#define SF_MEMORY_MIN     64
#define SF_MEMORY_MAX     1048576
#define SF_CPUS_DEFAULT   1
#define SF_CPUS_MAX       64
#define SF_SHELL_DEFAULT  "/bin/sh"

/* Where a node starts in the file, from 1; {0, 0} when it is not in the
 * file (a key left out, whose default applies). */
struct sf_pos {
	int line, col;
};

/* Each field records @key, the position of its key, and @pos, that of its
 * value (for list items and map entries @key is {0, 0} and @pos the item's).
 * An absent field has both {0, 0} and its default. */

/* A string; @s is NULL when absent and has no default. */
struct sf_str {
	char *s;
	struct sf_pos key, pos;
};

struct sf_num {
	uint32_t v;
	struct sf_pos key, pos;
};

struct sf_list {
	struct sf_str *v;
	size_t n;
	struct sf_pos key, pos;
};

/* A map of strings in file order; @name.pos is where the entry's key is. */
struct sf_entry {
	struct sf_str name, value;
};

struct sf_map {
	struct sf_entry *v;
	size_t n;
	struct sf_pos key, pos;
};

/* "HOST:GUEST[/tcp|udp]" */
struct sf_port {
	uint16_t host, guest;
	int udp;
	struct sf_pos pos;
};

struct sf_ports {
	struct sf_port *v;
	size_t n;
	struct sf_pos key, pos;
};

/* "HOST:GUEST[:ro|rw]": @host as written (relative to the Sandboxfile's
 * directory when not absolute), @guest absolute. */
struct sf_volume {
	char *host, *guest;
	int read_only;
	struct sf_pos pos;
};

struct sf_volumes {
	struct sf_volume *v;
	size_t n;
	struct sf_pos key, pos;
};

enum sf_scope { SF_SCOPE_NONE, SF_SCOPE_LOCAL, SF_SCOPE_PUBLIC, SF_SCOPE_ANY };

struct sf_scope_field {
	enum sf_scope v;
	struct sf_pos key, pos;
};

/* imports: {BUILD: {EXPORT: GUEST_PATH}}; @build.s names a build of the
 * file (@build_index into sandboxfile.builds) and every EXPORT one of its
 * exports. */
struct sf_import {
	struct sf_str build;
	size_t build_index;
	struct sf_map paths;
};

struct sf_imports {
	struct sf_import *v;
	size_t n;
	struct sf_pos key, pos;
};

struct sf_sandbox {
	struct sf_str name; /* @name.pos: the key under `sandboxes` */
	struct sf_str image;
	struct sf_num memory; /* MiB */
	struct sf_num cpus;
	struct sf_list envs; /* "K=V", K not empty */
	struct sf_str env_file;
	struct sf_str workdir; /* NULL: the image's WorkingDir, else / */
	struct sf_str shell;   /* SF_SHELL_DEFAULT when absent */
	struct sf_map scripts;
	/* command: argv; a YAML string gives one item and @command_is_string,
	 * for the caller to run with `shell -c`. */
	struct sf_list command;
	int command_is_string;
	/* depends_on; @deps[i] is the index in sandboxfile.sandboxes of
	 * depends_on.v[i]. No cycles. */
	struct sf_list depends_on;
	size_t *deps;
	struct sf_volumes volumes;
	struct sf_ports ports;
	struct sf_scope_field scope; /* SF_SCOPE_LOCAL when absent */
	struct sf_imports imports;
};

struct sf_build {
	struct sf_str name;
	struct sf_str image;
	struct sf_num memory, cpus;
	struct sf_list envs;
	struct sf_str workdir;
	struct sf_map steps;
	struct sf_map exports; /* values are absolute paths */
};

/* The whole file. Arrays are in file order. Every string and array belongs
 * to the struct and is freed by sandboxfile_free(). */
struct sandboxfile {
	char *display_name;
	struct sf_str description;
	struct sf_list authors;
	struct sf_sandbox *sandboxes;
	size_t nsandboxes;
	struct sf_build *builds;
	size_t nbuilds;
};

/*
 * Parses and checks @len bytes at @text (need not be NUL-terminated);
 * @display_name starts every error message and is copied into the result.
 * On success *@out is a new struct sandboxfile (free it with
 * sandboxfile_free()); on failure *@out is NULL and @why says why.
 * Returns 0, -EINVAL, -E2BIG or -ENOMEM.
 */
int sandboxfile_parse(const char *text, size_t len, const char *display_name,
                      struct sandboxfile **out, char *why, size_t why_len);

/*
 * Reads the file at @path (at most SANDBOXFILE_MAX_BYTES; more is -E2BIG)
 * and parses it as sandboxfile_parse() with @path as the display name.
 * Also returns -errno of open(2) or read(2) (-ENOENT, -EACCES, -EISDIR...).
 */
int sandboxfile_load(const char *path, struct sandboxfile **out, char *why, size_t why_len);

/* Frees @sf and all it owns; NULL is fine. */
void sandboxfile_free(struct sandboxfile *sf);

/* The sandbox named @name, borrowed from @sf; NULL if there is none. */
const struct sf_sandbox *sandboxfile_find(const struct sandboxfile *sf, const char *name);

/*
 * The order `msb up` starts sandboxes in: the @n sandboxes named by @names
 * (all of the file's when @n is 0) and everything they depend on,
 * transitively, each after its dependencies; among those ready at once, the
 * earliest in the file first. *@order is a malloc'd array of *@norder
 * pointers into @sf: free() the array, not what it points to, and not after
 * sandboxfile_free(@sf). Repeated names are started once.
 * Returns 0, -ENOENT when a name is not a sandbox of @sf, or -ENOMEM.
 */
int sandboxfile_start_order(const struct sandboxfile *sf, const char *const *names, size_t n,
                            const struct sf_sandbox ***order, size_t *norder);

/*
 * Refuses what parses but msb cannot do yet: volumes, ports, imports (all
 * non-empty), a scope other than local, and any build. Returns 0, or
 * -ENOTSUP with @why naming the first such key in the file, e.g.
 * `Sandboxfile:9:5: sandboxes.api.volumes: not supported yet (needs
 * virtio-fs, a later issue)`.
 */
int sandboxfile_check_supported(const struct sandboxfile *sf, char *why, size_t why_len);

#endif
