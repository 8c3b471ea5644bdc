#include "rundir.h"
#include "err.h"
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static int try_stale(const char *home, const char *id)
{
	char dir[4096], lock[4096], log[4096];
	if (fs_path(dir, sizeof(dir), "%s/run/%s", home, id) ||
	    fs_path(lock, sizeof(lock), "%s/lock", dir) ||
	    fs_path(log, sizeof(log), "%s/log/%s.log", home, id))
		return 0;
	int fd = open(lock, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 0; /* being created right now, or not ours */
	int stale = flock(fd, LOCK_EX | LOCK_NB) == 0;
	if (stale) {
		unlink(log);
		fs_remove_flat_dir(dir);
	}
	close(fd);
	return stale;
}

void rundir_gc(const char *home)
{
	char run[4096];
	if (fs_path(run, sizeof(run), "%s/run", home))
		return;
	DIR *d = opendir(run);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			try_stale(home, e->d_name);
	closedir(d);
}

int rundir_create(struct rundir *r, const char *prefix, struct msb_err *err)
{
	char home[4096];
	int e = msb_home(home, sizeof(home));
	if (e)
		return err_set(err, e, "cannot find msb's home directory");
	rundir_gc(home);

	static unsigned counter; /* only makes ids unique within this process */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(r->id, sizeof(r->id), "%.40s-%d-%lx%u", prefix, (int)getpid(),
	         (unsigned long)ts.tv_nsec, __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
	r->lock_fd = -1;
	char logdir[4096], lock[4096], lock_tmp[4096];
	if ((e = fs_path(r->path, sizeof(r->path), "%s/run/%s", home, r->id)) ||
	    (e = fs_path(r->log, sizeof(r->log), "%s/log/%s.log", home, r->id)) ||
	    (e = fs_path(logdir, sizeof(logdir), "%s/log", home)) ||
	    (e = fs_path(lock, sizeof(lock), "%s/lock", r->path)) ||
	    (e = fs_path(lock_tmp, sizeof(lock_tmp), "%s/lock.new", r->path)))
		return err_set(err, e, "msb's home directory path is too long: %s", home);
	if ((e = fs_mkdir_p(r->path)) || (e = fs_mkdir_p(logdir)))
		return err_set(err, e, "cannot create %s: %s", r->path, strerror(-e));
	/* The lock appears under its real name only once it is held, so a
	 * concurrent rundir_gc() never sees this dir as stale. */
	r->lock_fd = open(lock_tmp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (r->lock_fd < 0 || flock(r->lock_fd, LOCK_EX) < 0 || rename(lock_tmp, lock) < 0) {
		e = -errno;
		rundir_remove(r, 0);
		return err_set(err, e, "cannot lock %s: %s", lock, strerror(-e));
	}
	int lfd = open(r->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (lfd < 0) {
		e = -errno;
		rundir_remove(r, 0);
		return err_set(err, e, "cannot create %s: %s", r->log, strerror(-e));
	}
	close(lfd);
	return 0;
}

void rundir_remove(struct rundir *r, int keep_log)
{
	if (!keep_log)
		unlink(r->log);
	fs_remove_flat_dir(r->path);
	if (r->lock_fd >= 0)
		close(r->lock_fd);
	r->lock_fd = -1;
}
