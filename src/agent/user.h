/*
 * Who an exec runs as, from a Docker-style user ("app", "1000", "app:wheel",
 * "1000:10", "app:10", "1000:wheel") and the image's /etc/passwd and
 * /etc/group, with runc's rules (its user.GetExecUser):
 *
 * - A numeric user is always a uid; it may be missing from passwd (then gid
 *   0 and HOME "/"). A name must be in passwd.
 * - The first matching line wins.
 * - Without a group: the passwd entry's gid, and as supplementary groups
 *   the primary gid and every group in /etc/group that lists the user's
 *   name. With a group (a gid, which may be missing from /etc/group, or a
 *   name, which may not): that gid, and it alone.
 * - Numbers are decimal digits only, 0..2^31-1.
 *
 * The files are written by the image's author and read by the agent (as
 * root, in the exec's child), so they are hostile input: each is read only
 * when it is a regular file of at most USER_MAX_FILE bytes; lines over
 * USER_MAX_LINE bytes, with a NUL, too few or too many fields, an empty
 * name or a number out of range are skipped, never half-used. A missing
 * file has no entries.
 */
#ifndef MSB_AGENT_USER_H
#define MSB_AGENT_USER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define USER_MAX_FILE   (1u << 20) /* bytes of /etc/passwd or /etc/group */
#define USER_MAX_LINE   4096       /* bytes of one line, without its newline */
#define USER_MAX_GROUPS 1024       /* supplementary groups of one user */
#define USER_MAX_ID     2147483647u

struct user_ids {
	uid_t uid;
	gid_t gid;
	size_t ngroups;                /* >= 1 */
	gid_t groups[USER_MAX_GROUPS]; /* for setgroups(): the gid first */
	char home[USER_MAX_LINE + 1];  /* from passwd; "/" when unknown or empty */
};

/*
 * Resolves @spec (non-empty) against the text of passwd (@pw, @pwlen bytes)
 * and group (@gr, @grlen); either may be NULL with length 0 (no file).
 * Returns 0 and fills @out, or a negative errno with @msg (of @msglen) set:
 * -ENOENT "unable to find user NAME: no matching entries in passwd file"
 * (or the group's), -ERANGE for a number over 2^31-1, -EINVAL for a spec
 * with an empty user part, -E2BIG for more than USER_MAX_GROUPS groups.
 */
int user_resolve(const char *spec, const char *pw, size_t pwlen, const char *gr, size_t grlen,
                 struct user_ids *out, char *msg, size_t msglen);

/*
 * Reads the regular file at @path; a FIFO or a device is refused without
 * blocking on it or reading it. Returns 0 with *buf (malloc'd,
 * NUL-terminated, caller frees) and *len, 0 with *buf NULL and *len 0 when
 * the file does not exist, -EFBIG over USER_MAX_FILE, -EINVAL when it is not
 * a regular file, or another negative errno.
 */
int user_read_file(const char *path, char **buf, size_t *len);

/*
 * user_resolve() against /etc/passwd and /etc/group of the current root
 * (the exec's child calls it after its chroot). Returns as user_resolve(),
 * or a read error of either file with @msg naming it.
 */
int user_lookup(const char *spec, struct user_ids *out, char *msg, size_t msglen);

/*
 * @envp (NULL-terminated) as it is when it has a HOME, else a new array
 * with "HOME=@home" added at the end. Returns the array (a new one is
 * malloc'd in one block with its string, free() it; compare with @envp),
 * or NULL when out of memory.
 */
char **user_env(char **envp, const char *home);

#endif
