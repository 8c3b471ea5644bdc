/*
 * A sandbox's writable layer on the host: a sparse file formatted as ext4
 * by mke2fs, which needs no root because it writes a plain file. The host
 * never reads the file system again (the guest kernel mounts it; only its
 * allocated size is looked at), so whatever the guest writes into it stays
 * the guest's problem.
 */
#include "msb.h"

#include "err.h"
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* mke2fs lives in /sbin, which an ordinary user's PATH often lacks. */
static int find_mke2fs(char *out, size_t len)
{
	static const char *const dirs[] = {"/usr/sbin", "/sbin"};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(out, len, "%s/mke2fs", dirs[i]);
		if (access(out, X_OK) == 0)
			return 0;
	}
	const char *path = getenv("PATH");
	while (path && *path) {
		size_t n = strcspn(path, ":");
		if (n && (size_t)snprintf(out, len, "%.*s/mke2fs", (int)n, path) < len &&
		    access(out, X_OK) == 0)
			return 0;
		path += n + (path[n] == ':');
	}
	return -ENOENT;
}

/* Runs mke2fs on @path; its messages go to @why on failure. */
static int run_mke2fs(const char *mke2fs, const char *path, char *why, size_t wl)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = -errno;
		close(pfd[0]);
		close(pfd[1]);
		return e;
	}
	if (pid == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		dup2(pfd[1], STDERR_FILENO);
		/* root_owner: the guest's root owns the upper layer, whoever ran
		 * msb. lazy init: the sparse file reads as zeros already, so
		 * nothing needs writing and the file stays small. */
		execl(mke2fs, "mke2fs", "-q", "-F", "-t", "ext4", "-m", "0", "-L", "msb-rw", "-E",
		      "root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1,nodiscard", path,
		      (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	size_t got = 0;
	for (;;) {
		char buf[512];
		ssize_t n = read(pfd[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		size_t take = (size_t)n < wl - 1 - got ? (size_t)n : wl - 1 - got;
		memcpy(why + got, buf, take);
		got += take;
	}
	close(pfd[0]);
	why[got] = 0;
	why[strcspn(why, "\n")] = 0;
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

int msb_disk_make(const char *path, uint64_t size, struct msb_err *err)
{
	if (size < MSB_DISK_MIN_SIZE || size > MSB_DISK_MAX_SIZE)
		return err_set(err, -EINVAL, "a writable layer has from %llu MiB to %llu GiB",
		               (unsigned long long)(MSB_DISK_MIN_SIZE >> 20),
		               (unsigned long long)(MSB_DISK_MAX_SIZE >> 30));
	char mke2fs[4096];
	if (find_mke2fs(mke2fs, sizeof(mke2fs)) < 0)
		return err_set(err, -ENOENT,
		               "cannot find mke2fs (Debian's e2fsprogs package), which makes "
		               "a sandbox's writable layer");
	char tmp[4200];
	if (fs_path(tmp, sizeof(tmp), "%s.XXXXXX", path))
		return err_set(err, -ENAMETOOLONG, "path too long: %s", path);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return err_set(err, -errno, "cannot create %s: %s", tmp, strerror(errno));
	int e = 0;
	char why[512] = "";
	if (ftruncate(fd, (off_t)size) < 0)
		e = err_set(err, -errno, "cannot size %s: %s", tmp, strerror(errno));
	else if ((e = run_mke2fs(mke2fs, tmp, why, sizeof(why))) < 0)
		err_set(err, e, "mke2fs failed on %s: %s", tmp, why[0] ? why : strerror(-e));
	else if (fsync(fd) < 0)
		e = err_set(err, -errno, "cannot write %s: %s", tmp, strerror(errno));
	else if (fchmod(fd, 0600) < 0 || rename(tmp, path) < 0)
		e = err_set(err, -errno, "cannot create %s: %s", path, strerror(errno));
	close(fd);
	if (e) {
		char note[128];
		fs_full_note(tmp, note, sizeof(note));
		size_t have = strlen(err->msg);
		snprintf(err->msg + have, sizeof(err->msg) - have, "%s", note);
		unlink(tmp);
		return e;
	}
	fs_fsync_parent(path);
	return 0;
}

int msb_disk_usage(const char *path, uint64_t *bytes, struct msb_err *err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return err_set(err, -errno, "cannot read %s: %s", path, strerror(errno));
	*bytes = (uint64_t)st.st_blocks * 512;
	return 0;
}
