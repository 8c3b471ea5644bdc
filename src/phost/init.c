/*
 * msb-phost-init: PID 1 of the portable host.
 *
 * The portable host is a QEMU TCG VM whose only job is to give our VMM a
 * real /dev/kvm (kvm_amd on an emulated SVM CPU). This init loads the
 * modules listed in /modules.list, waits for /dev/kvm, the byte-stream port
 * and the shared files, runs one program with the stream as its stdin and
 * stdout, and hands its exit status to QEMU through isa-debug-exit, so the
 * portable host lives exactly as long as that program.
 *
 * Arguments come from the kernel command line after its "--" (which the
 * kernel removes):
 *   [-f NAME]... [--vsock-relay PATH PORT] --run PROGRAM [ARG]...
 * Each NAME is a read-only virtio-blk disk whose serial is NAME; it appears
 * as /files/NAME. -F NAME is the same for a disk whose file changes at every
 * restore (rebind_disk()). With --vsock-relay the stream is not the program's stdio:
 * it is relayed to guest port PORT through the VMM's vsock socket PATH
 * (the program is msb-vmm, started with --vsock PATH). Module parameters use the usual
 * "module.param=value" on the kernel command line (virtio_mmio.device=... on -M microvm).
 *
 * With the single argument --serve the same words come later, in a resume
 * message on the stream (resume.h): that is how a host restored from a
 * snapshot of itself learns what to run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/random.h>

#include "resume.h"
#include "status.h"
#include "../lib/vmproc/vsock_uds.h"

#define STREAM_PORT_NAME "msb.stream"
#define DEVICE_WAIT_MS   60000 /* TCG is slow; a missing device is still an error */
#define MAX_FILES        16
#define MAX_NAME         64
#define CMDLINE_MAX      4096
#define MAX_ARGS         256
#define RELAY_DRAIN_MS   2000
#define READAHEAD_KB     "2048"

static void logf_(const char *fmt, ...)
{
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "msb-phost-init[%ld.%03ld]: ", (long)ts.tv_sec,
	                 ts.tv_nsec / 1000000);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(buf))
		vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	size_t len = strnlen(buf, sizeof(buf) - 2);
	buf[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, buf, len);
	(void)w;
}

/* Ends the portable host, handing @v (a PHOST_V_* value) to msb. */
static _Noreturn void finish(unsigned v)
{
	sync();
	if (ioperm(PHOST_DEBUG_EXIT_PORT, 4, 1) == 0)
		outl(v, PHOST_DEBUG_EXIT_PORT);
	/* No isa-debug-exit: power off; the host sees "no status". */
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}

static _Noreturn void die(const char *fmt, ...)
{
	char buf[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	logf_("error: %s", buf);
	finish(PHOST_V_SETUP);
}

static int read_small_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t got = 0;
	while (got + 1 < size) {
		ssize_t n = read(fd, buf + got, size - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = 0;
	while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == ' '))
		buf[--got] = 0;
	return (int)got;
}

/* "mod.param=value" words of the kernel command line for module @mod, joined
 * by spaces as finit_module wants them. Module names compare with '-' == '_'. */
static void module_params(const char *cmdline, const char *mod, char *out, size_t size)
{
	size_t used = 0, mlen = strlen(mod);
	out[0] = 0;
	const char *p = cmdline;
	while (*p) {
		while (*p == ' ')
			p++;
		const char *w = p;
		while (*p && *p != ' ')
			p++;
		size_t wlen = (size_t)(p - w);
		if (wlen <= mlen + 1 || w[mlen] != '.')
			continue;
		int same = 1;
		for (size_t i = 0; i < mlen && same; i++) {
			char a = w[i] == '-' ? '_' : w[i], b = mod[i] == '-' ? '_' : mod[i];
			same = a == b;
		}
		if (!same || wlen - mlen - 1 + 2 > size - used)
			continue;
		if (used)
			out[used++] = ' ';
		memcpy(out + used, w + mlen + 1, wlen - mlen - 1);
		used += wlen - mlen - 1;
		out[used] = 0;
	}
}

static void load_modules(const char *cmdline)
{
	FILE *f = fopen("/modules.list", "re");
	if (!f)
		die("cannot open /modules.list: %s", strerror(errno));
	char name[MAX_NAME + 2];
	while (fgets(name, sizeof(name), f)) {
		name[strcspn(name, "\n")] = 0;
		if (!name[0])
			continue;
		char path[128], params[1024];
		snprintf(path, sizeof(path), "/lib/modules/%s.ko", name);
		module_params(cmdline, name, params, sizeof(params));
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			die("cannot open %s: %s", path, strerror(errno));
		if (syscall(SYS_finit_module, fd, params, 0) < 0 && errno != EEXIST)
			die("cannot load module %s: %s", name, strerror(errno));
		close(fd);
	}
	fclose(f);
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Finds the entry of @class_dir whose @attr file reads @want; writes its
 * name to @out. Returns 1 when found. */
static int find_by_attr(const char *class_dir, const char *prefix, const char *attr,
                        const char *want, char *out, size_t size)
{
	DIR *d = opendir(class_dir);
	if (!d)
		return 0;
	struct dirent *e;
	int found = 0;
	while (!found && (e = readdir(d))) {
		if (strncmp(e->d_name, prefix, strlen(prefix)))
			continue;
		char path[300], val[MAX_NAME + 1];
		snprintf(path, sizeof(path), "%s/%s/%s", class_dir, e->d_name, attr);
		if (read_small_file(path, val, sizeof(val)) >= 0 && !strcmp(val, want)) {
			snprintf(out, size, "%s", e->d_name);
			found = 1;
		}
	}
	closedir(d);
	return found;
}

static void wait_for(const char *what, int (*ready)(const void *, char *, size_t), const void *arg,
                     char *out, size_t size)
{
	long deadline = now_ms() + DEVICE_WAIT_MS;
	while (!ready(arg, out, size)) {
		if (now_ms() > deadline)
			die("%s did not appear within %d s", what, DEVICE_WAIT_MS / 1000);
		sleep_ms(5);
	}
}

static int kvm_ready(const void *arg, char *out, size_t size)
{
	(void)arg;
	(void)out;
	(void)size;
	return access("/dev/kvm", R_OK | W_OK) == 0;
}

static int port_ready(const void *name, char *out, size_t size)
{
	return find_by_attr("/sys/class/virtio-ports", "vport", "name", name, out, size);
}

static int disk_ready(const void *serial, char *out, size_t size)
{
	return find_by_attr("/sys/block", "vd", "serial", serial, out, size);
}

static int valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > MAX_NAME - 1)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
			return 0;
	return s[0] != '.';
}

/* Copies between the stream port and the guest's vsock port until either
 * side ends; runs in its own process beside the VMM. */
static void relay(int stream, const char *path, uint32_t port)
{
	char why[200];
	int sock = vsock_uds_connect(path, port, DEVICE_WAIT_MS, NULL, NULL, why, sizeof(why));
	if (sock < 0) {
		logf_("error: relay: %s", why);
		return;
	}
	logf_("relaying the stream to vsock port %u", port);
	struct pollfd p[2] = {{.fd = stream, .events = POLLIN}, {.fd = sock, .events = POLLIN}};
	static char buf[65536];
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		for (int k = 0; k < 2; k++) {
			if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t n = read(p[k].fd, buf, sizeof(buf));
			if (n <= 0) {
				shutdown(sock, SHUT_RDWR);
				return;
			}
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(p[1 - k].fd, buf + off, (size_t)(n - off));
				if (w <= 0)
					return;
				off += w;
			}
		}
	}
}

struct args {
	const char *files[MAX_FILES];
	int rebind[MAX_FILES]; /* -F: bound to another file at each restore */
	int nfiles;
	const char *relay_path;
	unsigned long relay_port;
	char **prog;
};

static void parse_args(int argc, char **argv, struct args *a)
{
	memset(a, 0, sizeof(*a));
	int i = 0;
	for (; i < argc && strcmp(argv[i], "--run"); i++) {
		if ((!strcmp(argv[i], "-f") || !strcmp(argv[i], "-F")) && i + 1 < argc &&
		    a->nfiles < MAX_FILES && valid_name(argv[i + 1])) {
			a->rebind[a->nfiles] = argv[i][1] == 'F';
			a->files[a->nfiles++] = argv[++i];
		} else if (!strcmp(argv[i], "--vsock-relay") && i + 2 < argc) {
			a->relay_path = argv[++i];
			a->relay_port = strtoul(argv[++i], NULL, 10);
		} else
			die("bad argument %s (usage: [-f NAME]... --run PROGRAM [ARG]...)",
			    argv[i]);
	}
	if (i + 1 >= argc)
		die("no program to run (usage: [-f NAME]... --run PROGRAM [ARG]...)");
	a->prog = argv + i + 1;
}

static int read_full(int fd, void *buf, size_t len)
{
	for (size_t got = 0; got < len;) {
		ssize_t n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

/*
 * Serve mode: tell msb this host is ready to be snapshotted, then wait for
 * the resume message, which a host restored from that snapshot reads first.
 * Its words become our arguments; the seed and the time make this host's
 * random state and clock its own.
 */
static int await_resume(int stream, char *words, char **argv, int max)
{
	if (write(stream, PHOST_READY_MAGIC, PHOST_READY_LEN) != PHOST_READY_LEN)
		die("cannot write to the stream: %s", strerror(errno));
	struct phost_resume_hdr h;
	if (read_full(stream, &h, sizeof(h)) < 0)
		die("the stream ended before the resume message");
	if (memcmp(h.magic, PHOST_RESUME_MAGIC, 8) || h.flags || h.len == 0 ||
	    h.len > PHOST_RESUME_MAX)
		die("bad resume message (length %u)", h.len);
	if (read_full(stream, words, h.len) < 0)
		die("the stream ended inside the resume message");
	int n = phost_resume_words(words, h.len, argv, max);
	if (n < 0)
		die("bad words in the resume message");

	struct {
		struct rand_pool_info info;
		uint8_t seed[PHOST_RESUME_SEED];
	} pool = {.info = {.entropy_count = PHOST_RESUME_SEED * 8, .buf_size = PHOST_RESUME_SEED}};
	memcpy(pool.seed, h.seed, sizeof(pool.seed));
	int r = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	/* crediting alone does not reseed a ready crng: force it, or every
	 * restored host would go on from the snapshot's key */
	if (r < 0 || ioctl(r, RNDADDENTROPY, &pool) < 0 || ioctl(r, RNDRESEEDCRNG) < 0)
		die("cannot seed the random pool: %s", strerror(errno));
	close(r);
	struct timespec ts = {.tv_sec = (time_t)(h.realtime_ns / 1000000000u),
	                      .tv_nsec = (long)(h.realtime_ns % 1000000000u)};
	if (clock_settime(CLOCK_REALTIME, &ts) < 0)
		logf_("cannot set the clock: %s", strerror(errno));
	logf_("resumed");
	return n;
}

/*
 * A disk whose file was bound at this restore: QEMU serves the new file, but
 * the driver still holds the size it read from the snapshot's placeholder
 * and virtio-blk has no rescan. Unbinding and binding the driver probes the
 * device again (a new block device, its own cache, the real size).
 */
static void rebind_disk(const char *disk)
{
	char link[128], target[256], dev[256];
	snprintf(link, sizeof(link), "/sys/block/%s/device", disk);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0)
		die("cannot find the device of %s: %s", disk, strerror(errno));
	target[n] = 0;
	const char *base = strrchr(target, '/');
	snprintf(dev, sizeof(dev), "%s", base ? base + 1 : target);
	const char *drv = "/sys/bus/virtio/drivers/virtio_blk/";
	for (int bind = 0; bind < 2; bind++) {
		char path[96];
		snprintf(path, sizeof(path), "%s%s", drv, bind ? "bind" : "unbind");
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, dev, strlen(dev)) != (ssize_t)strlen(dev))
			die("cannot %s %s: %s", bind ? "bind" : "unbind", dev, strerror(errno));
		close(fd);
	}
}

/*
 * A restored guest faults its memory in from the snapshot disk, a page at a
 * time at first, each fault a virtio-blk request through emulated QEMU:
 * a larger read-ahead window makes each request bring in more of the
 * neighbourhood (guest memory has locality). Best effort.
 */
static void set_readahead(const char *disk)
{
	char path[128];
	snprintf(path, sizeof(path), "/sys/block/%s/queue/read_ahead_kb", disk);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t w = write(fd, READAHEAD_KB, strlen(READAHEAD_KB));
	(void)w;
	close(fd);
}

/* A disk's cached blocks from before a snapshot may not be the restored
 * host's file: drop them (the snapshot is keyed by each file's size, so the
 * capacity the driver saw still holds). */
static void drop_cached_blocks(const char *dev)
{
	int fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, BLKFLSBUF, 0) < 0)
		die("cannot drop the cached blocks of %s: %s", dev, strerror(errno));
	close(fd);
}

int main(int argc, char **argv)
{
	mkdir("/dev", 0755);
	mkdir("/proc", 0555);
	mkdir("/sys", 0555);
	if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") < 0 ||
	    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 ||
	    mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		die("mounting /dev, /proc, /sys: %s", strerror(errno));

	int serve = argc == 2 && !strcmp(argv[1], "--serve");
	struct args a;
	if (!serve)
		parse_args(argc - 1, argv + 1, &a);

	char cmdline[CMDLINE_MAX];
	if (read_small_file("/proc/cmdline", cmdline, sizeof(cmdline)) < 0)
		die("cannot read /proc/cmdline");
	load_modules(cmdline);

	char dev[MAX_NAME + 16];
	wait_for("/dev/kvm", kvm_ready, NULL, dev, sizeof(dev));
	logf_("/dev/kvm is ready");
	char port[MAX_NAME];
	wait_for("the stream port " STREAM_PORT_NAME, port_ready, STREAM_PORT_NAME, port,
	         sizeof(port));
	char port_path[MAX_NAME + 8];
	snprintf(port_path, sizeof(port_path), "/dev/%s", port);
	int stream = open(port_path, O_RDWR | O_CLOEXEC);
	if (stream < 0)
		die("cannot open %s: %s", port_path, strerror(errno));
	/* Until QEMU says the host end is connected, a read of the port returns
	 * end-of-file at once; the port polls POLLHUP until then. */
	for (long deadline = now_ms() + DEVICE_WAIT_MS;;) {
		struct pollfd pfd = {.fd = stream, .events = POLLOUT};
		if (poll(&pfd, 1, 100) > 0 && !(pfd.revents & POLLHUP))
			break;
		if (now_ms() > deadline)
			die("the host end of %s did not connect", port_path);
		sleep_ms(5);
	}

	static char words[PHOST_RESUME_MAX];
	static char *resumed_argv[MAX_ARGS];
	if (serve) {
		int n = await_resume(stream, words, resumed_argv, MAX_ARGS);
		parse_args(n, resumed_argv, &a);
	}

	mkdir("/files", 0755);
	for (int f = 0; f < a.nfiles; f++) {
		char disk[MAX_NAME], target[MAX_NAME + 8], link[MAX_NAME + 8];
		wait_for(a.files[f], disk_ready, a.files[f], disk, sizeof(disk));
		if (serve && a.rebind[f]) {
			rebind_disk(disk);
			wait_for(a.files[f], disk_ready, a.files[f], disk, sizeof(disk));
		}
		snprintf(target, sizeof(target), "/dev/%s", disk);
		snprintf(link, sizeof(link), "/files/%s", a.files[f]);
		if (serve && !a.rebind[f])
			drop_cached_blocks(target);
		set_readahead(disk);
		if (symlink(target, link) < 0)
			die("cannot link %s: %s", link, strerror(errno));
	}
	char **prog = a.prog;
	const char *relay_path = a.relay_path;
	unsigned long relay_port = a.relay_port;

	mkdir("/run", 0755);
	pid_t child = fork();
	if (child < 0)
		die("fork: %s", strerror(errno));
	if (child == 0) {
		int in = relay_path ? open("/dev/null", O_RDONLY) : stream;
		int out = relay_path ? STDERR_FILENO : stream;
		if (in < 0 || dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0)
			_exit(127);
		execv(prog[0], prog);
		logf_("error: cannot run %s: %s", prog[0], strerror(errno));
		_exit(127);
	}
	logf_("started %s", prog[0]);
	pid_t relay_pid = -1;
	if (relay_path && (relay_pid = fork()) == 0) {
		signal(SIGPIPE, SIG_IGN); /* a closed peer is an error to see, not a death */
		relay(stream, relay_path, (uint32_t)relay_port);
		_exit(0);
	}
	for (;;) {
		int st;
		pid_t p = wait(&st);
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0)
			die("wait: %s", strerror(errno));
		if (p != child)
			continue; /* an orphan reparented to us */
		/* Let the relay copy what the VMM wrote last: it ends at the
		 * socket's end-of-file, which the VMM's exit gives it. */
		for (long dl = now_ms() + RELAY_DRAIN_MS; relay_pid > 0 && now_ms() < dl;
		     sleep_ms(5))
			if (waitpid(relay_pid, NULL, WNOHANG) != 0)
				break;
		if (WIFEXITED(st)) {
			int code = WEXITSTATUS(st);
			logf_("%s exited with status %d", prog[0], code);
			finish(code > PHOST_MAX_STATUS ? PHOST_V_HIGH
			                               : PHOST_V_EXITED + (unsigned)code);
		}
		logf_("%s was killed by signal %d", prog[0], WTERMSIG(st));
		finish(PHOST_V_SIGNALED);
	}
}
