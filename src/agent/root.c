#include "root.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
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

/* The root's /etc, resolved inside the root and on its own file system (a
 * symlinked /etc stays in the image), made when the image has none. */
static int open_etc(int rootfd)
{
	struct open_how how = {
	    .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
	    .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	for (int tries = 0;; tries++) {
		int fd = (int)syscall(SYS_openat2, rootfd, "etc", &how, sizeof(how));
		if (fd < 0 && errno == ENOSYS) /* before Linux 5.6: no symlinked /etc */
			fd = openat(rootfd, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 || errno != ENOENT || tries)
			return fd < 0 ? -errno : fd;
		if (mkdirat(rootfd, "etc", 0755) < 0 && errno != EEXIST)
			return -errno;
		fchmodat(rootfd, "etc", 0755, 0); /* whatever the umask */
	}
}

/*
 * Replaces @name in @dirfd with a regular file of @len bytes, mode 0644:
 * written under a temporary name and renamed over it, so whatever was there
 * (a symlink out of the root, a FIFO, a device) is never opened or followed.
 */
static int put_file(int dirfd, const char *name, const char *data, size_t len)
{
	char tmp[64];
	snprintf(tmp, sizeof(tmp), ".%s.msb-new", name);
	unlinkat(dirfd, tmp, 0);
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int e = 0;
	for (size_t off = 0; off < len && !e;) {
		ssize_t n = write(fd, data + off, len - off);
		if (n > 0)
			off += (size_t)n;
		else if (n == 0)
			e = -EIO;
		else if (errno != EINTR)
			e = -errno;
	}
	if (!e && fchmod(fd, 0644) < 0)
		e = -errno;
	if (close(fd) < 0 && !e)
		e = -errno;
	if (!e && renameat(dirfd, tmp, dirfd, name) < 0)
		e = -errno;
	if (e)
		unlinkat(dirfd, tmp, 0);
	return e;
}

int root_write_etc(const char *root, const char *hostname, char *msg, size_t msglen)
{
	int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return fail(msg, msglen, -errno, "opening", root);
	int etc = open_etc(rootfd);
	close(rootfd);
	if (etc < 0)
		return fail(msg, msglen, etc, "opening the image's", "/etc");
	/* a hostname is at most 64 bytes (HOST_NAME_MAX): both fit */
	char hosts[256], name[80];
	snprintf(name, sizeof(name), "%.64s\n", hostname);
	snprintf(hosts, sizeof(hosts),
	         "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	         "127.0.1.1\t%.64s\n",
	         hostname);
	const struct {
		const char *name, *data;
		size_t len;
	} files[] = {
	    {"hostname", name, strlen(name)},
	    {"hosts", hosts, strlen(hosts)},
	    {"resolv.conf", ROOT_RESOLV_CONF, sizeof(ROOT_RESOLV_CONF) - 1},
	};
	int e = 0;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]) && !e; i++)
		if ((e = put_file(etc, files[i].name, files[i].data, files[i].len)) < 0) {
			char path[32];
			snprintf(path, sizeof(path), "/etc/%s", files[i].name);
			fail(msg, msglen, e, "writing", path);
		}
	close(etc);
	return e;
}

struct inner_mount {
	const char *src, *target, *type;
	unsigned long flags;
	const char *data;
	mode_t mode;
};

/* The device of disk slot @disk, once it has a capacity. */
static int slot_device(uint32_t disk, long deadline, char *dev, size_t len, char *msg,
                       size_t msglen)
{
	char serial[24];
	snprintf(serial, sizeof(serial), "disk%u", disk);
	long left = deadline - now_ms();
	int e = wait_disk(serial, left > 0 ? (uint32_t)left : 0, dev, len);
	if (e == -ENOENT || e == -ETIMEDOUT) {
		snprintf(msg, msglen, "disk %u did not get a capacity in time (no disk bound?)",
		         disk);
		return -ENODEV;
	}
	return e ? fail(msg, msglen, e, "looking for", serial) : 0;
}

int root_mount(struct agent_root *r, uint32_t disk, int upper, uint32_t timeout_ms, char *msg,
               size_t msglen)
{
	if (r->mounted) {
		snprintf(msg, msglen, "the root file system is mounted already");
		return -EBUSY;
	}
	long deadline = now_ms() + timeout_ms;
	char dev[300], upper_dev[300];
	int e = slot_device(disk, deadline, dev, sizeof(dev), msg, msglen);
	if (!e && upper >= 0)
		e = slot_device((uint32_t)upper, deadline, upper_dev, sizeof(upper_dev), msg,
		                msglen);
	if (e)
		return e;

	const char *lower = ROOT_BASE "/lower", *rw = ROOT_BASE "/rw", *root = ROOT_BASE "/root";
	if ((e = dir(ROOT_BASE, 0755)) || (e = dir(lower, 0755)) || (e = dir(rw, 0755)) ||
	    (e = dir(root, 0755)))
		return fail(msg, msglen, e, "mkdir under", ROOT_BASE);
	if (mount(dev, lower, "erofs", MS_RDONLY, NULL) < 0)
		return fail(msg, msglen, -errno, "mounting the image (erofs) on", dev);
	/* The upper layer: a project sandbox's ext4 disk keeps it between runs
	 * (made by mke2fs on the host, whose inode tables read as zeros, so the
	 * kernel need not zero them in the background: noinit_itable); else
	 * memory. */
	if (upper >= 0 &&
	    mount(upper_dev, rw, "ext4", MS_NOSUID | MS_NODEV | MS_NOATIME, "noinit_itable") < 0) {
		e = fail(msg, msglen, -errno, "mounting the writable layer (ext4) from", upper_dev);
		goto undo_lower;
	}
	if (upper < 0 && mount("tmpfs", rw, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0) {
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
	/* the hostname SET_HOSTNAME gave, if it came first (else it rewrites) */
	struct utsname u;
	if (uname(&u) < 0)
		snprintf(u.nodename, sizeof(u.nodename), "localhost");
	if ((e = root_write_etc(root, u.nodename, msg, msglen)) < 0) {
		umount2(root, MNT_DETACH);
		goto undo_rw;
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
