#include "root.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int read_attr(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

/* The block device whose virtio serial is @serial: "vdb". */
static int find_disk(const char *serial, char *name, size_t len)
{
	DIR *d = opendir("/sys/block");
	if (!d)
		return -errno;
	struct dirent *e;
	int found = -ENOENT;
	while (found && (e = readdir(d))) {
		if (strncmp(e->d_name, "vd", 2))
			continue;
		char path[300], val[64];
		snprintf(path, sizeof(path), "/sys/block/%s/serial", e->d_name);
		if (read_attr(path, val, sizeof(val)) == 0 && !strcmp(val, serial)) {
			snprintf(name, len, "%s", e->d_name);
			found = 0;
		}
	}
	closedir(d);
	return found;
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

/* Waits until disk @serial exists with a capacity; its device path. */
static int wait_disk(const char *serial, uint32_t timeout_ms, char *dev, size_t len)
{
	long deadline = now_ms() + timeout_ms;
	for (;;) {
		char name[256], path[320], size[32];
		if (find_disk(serial, name, sizeof(name)) == 0) {
			snprintf(path, sizeof(path), "/sys/block/%s/size", name);
			if (read_attr(path, size, sizeof(size)) == 0 &&
			    strtoull(size, NULL, 10) > 0) {
				snprintf(dev, len, "/dev/%s", name);
				return 0;
			}
		}
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		struct timespec ts = {.tv_nsec = 2 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

static int fail(char *msg, size_t len, int e, const char *what, const char *arg)
{
	snprintf(msg, len, "%s %s: %s", what, arg, strerror(-e));
	return e;
}

/* mkdir that accepts an existing directory. */
static int dir(const char *path, mode_t mode)
{
	return mkdir(path, mode) < 0 && errno != EEXIST ? -errno : 0;
}

struct inner_mount {
	const char *src, *target, *type;
	unsigned long flags;
	const char *data;
	mode_t mode;
};

int root_mount(struct agent_root *r, uint32_t disk, uint32_t timeout_ms, char *msg, size_t msglen)
{
	if (r->mounted) {
		snprintf(msg, msglen, "the root file system is mounted already");
		return -EBUSY;
	}
	char serial[24], dev[300];
	snprintf(serial, sizeof(serial), "disk%u", disk);
	int e = wait_disk(serial, timeout_ms, dev, sizeof(dev));
	if (e == -ENOENT || e == -ETIMEDOUT) {
		snprintf(msg, msglen,
		         "disk %u did not get a capacity within %u ms (no disk bound?)", disk,
		         timeout_ms);
		return -ENODEV;
	}
	if (e)
		return fail(msg, msglen, e, "looking for", serial);

	const char *lower = ROOT_BASE "/lower", *rw = ROOT_BASE "/rw", *root = ROOT_BASE "/root";
	if ((e = dir(ROOT_BASE, 0755)) || (e = dir(lower, 0755)) || (e = dir(rw, 0755)) ||
	    (e = dir(root, 0755)))
		return fail(msg, msglen, e, "mkdir under", ROOT_BASE);
	if (mount(dev, lower, "erofs", MS_RDONLY, NULL) < 0)
		return fail(msg, msglen, -errno, "mounting the image (erofs) on", dev);
	if (mount("tmpfs", rw, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0) {
		e = fail(msg, msglen, -errno, "mounting a tmpfs at", rw);
		goto undo_lower;
	}
	if ((e = dir(ROOT_BASE "/rw/upper", 0755)) || (e = dir(ROOT_BASE "/rw/work", 0755))) {
		fail(msg, msglen, e, "mkdir under", rw);
		goto undo_rw;
	}
	if (mount("overlay", root, "overlay", 0,
	          "lowerdir=" ROOT_BASE "/lower,upperdir=" ROOT_BASE "/rw/upper,workdir=" ROOT_BASE
	          "/rw/work") < 0) {
		e = fail(msg, msglen, -errno, "mounting the overlay at", root);
		goto undo_rw;
	}
	/* what a container's processes expect; the directories are made in
	 * the upper layer when the image lacks them */
	static const struct inner_mount inner[] = {
	    {"proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555},
	    {"sysfs", "sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL, 0555},
	    {"devtmpfs", "dev", "devtmpfs", MS_NOSUID, "mode=0755", 0755},
	    /* the agent's own, where the terminals it opens for execs live */
	    {"/dev/pts", "dev/pts", NULL, MS_BIND, NULL, 0755},
	    {"tmpfs", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 01777},
	    {"tmpfs", "tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 01777},
	};
	for (size_t i = 0; i < sizeof(inner) / sizeof(inner[0]); i++) {
		char target[128];
		snprintf(target, sizeof(target), "%s/%s", root, inner[i].target);
		if ((e = dir(target, inner[i].mode)) || (mount(inner[i].src, target, inner[i].type,
		                                               inner[i].flags, inner[i].data) < 0 &&
		                                         (e = -errno))) {
			fail(msg, msglen, e, "mounting", target);
			umount2(root, MNT_DETACH);
			goto undo_rw;
		}
	}
	snprintf(r->path, sizeof(r->path), "%s", root);
	r->mounted = 1;
	return 0;
undo_rw:
	umount2(rw, MNT_DETACH);
undo_lower:
	umount2(lower, MNT_DETACH);
	return e;
}
