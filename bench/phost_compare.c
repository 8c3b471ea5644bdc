/*
 * msb-bench-compare: the same guest under msb-vmm and under QEMU microvm, on
 * the same KVM, in one run. It runs where the VMM runs: inside the
 * benchmark portable host (phost/build-bench-image), or natively on a KVM
 * that runs standard guests. bench/qemu_compare.c starts it through libmsb.
 *
 *   msb-bench-compare --runs N --kernel K --initrd I --vmm PATH --qemu PATH
 *                     [--dir DIR] [--cid N] [--disk IMAGE]
 *
 * After a warm-up boot of each, every run boots msb-vmm and QEMU, the first
 * of the two alternating (so drift in the machine hits both alike), each
 * with 1 GiB and 1 vCPU from the same copies of K and I in DIR, and
 * measures:
 *   boot_ms  fork/exec of the VMM to the agent's first frame (HELLO) read by
 *            us over vsock: msb-vmm's socket (CONNECT 1024), QEMU's
 *            vhost-vsock (AF_VSOCK, the guest's CID, port 1024). Both retry
 *            every RETRY_MS until the guest listens.
 *   rss_kib  the VMM's VmRSS after the guest idled IDLE_MS: guest RAM the
 *            guest touched plus the VMM itself, for both.
 * Then the VMM gets SIGTERM. Per-run lines and then medians and the ratios
 * (QEMU / msb) go to stdout as key=value; diagnostics go to stderr.
 *
 * With --disk IMAGE (an image's erofs root, copied into DIR like K and I),
 * each VMM also gets it as a read-only virtio-blk disk with serial "disk0"
 * (msb-vmm: --disk-slots 4 --disk-ro 0=…, as libmsb's sandboxes; QEMU: a
 * virtio-blk-device), and after the HELLO we do what libmsb does for `msb
 * exe IMAGE -- true`: HELLO, SET_TIME, ADD_ENTROPY, SET_HOSTNAME, MOUNT_ROOT
 * of disk 0 (waiting for its DONE), then an EXEC of `true` in that root, and
 * also measure
 *   mount_ms  fork/exec of the VMM to MOUNT_ROOT's DONE
 *   exec_ms   fork/exec of the VMM to the EXEC's EXIT frame (status 0):
 *             a cold boot of kernel + erofs to a finished command
 * (rss_kib is then read right after the EXIT, without the idle).
 */
#include "proto.h"
#include "../src/lib/vmproc/vsock_uds.h"

#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS           20
#define BOOT_TIMEOUT_MS    120000 /* a boot inside the portable host takes seconds */
#define IDLE_MS            1000
#define RETRY_MS           20
#define CONNECT_TIMEOUT_MS 100 /* for one AF_VSOCK attempt; see vsock_try() */
#define STOP_MS            5000
#define GUEST_MIB          "1024"
/* msb-vmm's BASE_CMDLINE (src/vmm/main.c); each VMM adds virtio_mmio.device=
 * for its own vsock device. "quiet" matters: under nested KVM every console
 * byte is an exit to the VMM, and a verbose boot takes seconds longer. */
#define GUEST_CMDLINE "console=ttyS0 reboot=k panic=-1 quiet"
#define MOUNT_WAIT_MS 10000 /* how long the agent may wait for disk 0 */

struct opts {
	int runs;
	const char *kernel, *initrd, *vmm, *qemu, *dir, *disk;
	unsigned cid;
};

/* What one boot measured, in ms from the VMM's fork/exec (-1: not done). */
struct times {
	double boot, mount, exec;
	long rss;
};

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Copies @src to @dst. Both VMMs boot from these copies: QEMU loads an ELF
 * kernel through a mapping of the file's size, which a shared file's block
 * device (size 0 to fstat) does not have; and neither pays for the disk. */
static int stage(const char *src, const char *dst)
{
	static char buf[1 << 16];
	int in = open(src, O_RDONLY | O_CLOEXEC);
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ssize_t n = 0;
	while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
		for (ssize_t off = 0, w; off < n; off += w)
			if ((w = write(out, buf + off, (size_t)(n - off))) <= 0) {
				n = -1;
				break;
			}
	int e = in < 0 || out < 0 || n < 0 ? -EIO : 0;
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) < 0)
		e = -EIO;
	return e;
}

/* Starts @argv with stdin /dev/null and stdout/stderr into @log; it dies
 * with us. Returns its pid or -1. */
static pid_t spawn(char *const *argv, const char *log)
{
	pid_t parent = getpid(), pid = fork();
	if (pid != 0)
		return pid;
	int in = open("/dev/null", O_RDONLY);
	int out = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent || in < 0 || out < 0 ||
	    dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(127);
	if (strchr(argv[0], '/'))
		execv(argv[0], argv);
	else
		execvp(argv[0], argv);
	dprintf(2, "msb-bench-compare: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static int alive(void *arg)
{
	return waitpid(*(pid_t *)arg, NULL, WNOHANG) == 0;
}

/* One AF_VSOCK connection to the guest's agent: 1 and *fd, 0 to retry. */
static int vsock_try(unsigned cid, int *fd)
{
	int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	struct sockaddr_vm a = {
	    .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = PROTO_AGENT_PORT};
	/* A request that reaches vhost-vsock just before the guest's driver is
	 * up is lost, and the connect would wait out the kernel's default 2 s;
	 * a short timeout keeps that race from counting against QEMU. */
	struct timeval tv = {.tv_sec = 0, .tv_usec = CONNECT_TIMEOUT_MS * 1000};
	if (setsockopt(s, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &tv, sizeof(tv)) < 0) {
		int e = errno;
		close(s);
		return -e;
	}
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0) {
		*fd = s;
		return 1;
	}
	int e = errno;
	close(s);
	/* not yet: no such CID yet, the guest's driver or agent not up */
	if (e == ECONNRESET || e == ENODEV || e == EHOSTUNREACH || e == ETIMEDOUT ||
	    e == ECONNREFUSED || e == EINTR)
		return 0;
	return -e;
}

static int vsock_connect(unsigned cid, pid_t pid, double deadline)
{
	for (;;) {
		int fd = -1, r = vsock_try(cid, &fd);
		if (r == 1)
			return fd;
		if (r < 0) {
			fprintf(stderr, "msb-bench-compare: vsock connect: %s\n", strerror(-r));
			return r;
		}
		if (now_ms() > deadline || !alive(&pid))
			return -ETIMEDOUT;
		sleep_ms(RETRY_MS);
	}
}

/* Reads the header of the agent's first frame; 0 when it is a HELLO, and
 * *len its payload's length (not read). */
static int read_hello(int fd, double deadline, uint32_t *len)
{
	uint8_t b[PROTO_HDR_SIZE];
	size_t got = 0;
	while (got < sizeof(b)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int left = (int)(deadline - now_ms());
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return -ETIMEDOUT;
		ssize_t n = read(fd, b + got, sizeof(b) - got);
		if (n <= 0)
			return -EPIPE;
		got += (size_t)n;
	}
	struct proto_hdr h;
	int e = proto_hdr_decode(b, &h);
	*len = h.len;
	return e ? e : h.type == PROTO_HELLO ? 0 : -EPROTO;
}

/* Reads exactly @n bytes before @deadline. */
static int read_full(int fd, uint8_t *b, size_t n, double deadline)
{
	for (size_t got = 0; got < n;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int left = (int)(deadline - now_ms());
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return -ETIMEDOUT;
		ssize_t r = read(fd, b + got, n - got);
		if (r <= 0)
			return -EPIPE;
		got += (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const uint8_t *b, size_t n)
{
	for (size_t off = 0; off < n;) {
		ssize_t w = write(fd, b + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -EPIPE;
		off += (size_t)w;
	}
	return 0;
}

static int send_frame(int fd, uint8_t type, uint32_t id, const uint8_t *p, int len)
{
	static uint8_t f[PROTO_HDR_SIZE + 4096];
	if (len < 0)
		return len; /* the encoder's error */
	size_t n = proto_frame(f, sizeof(f), type, id, p, (uint32_t)len);
	return n ? write_full(fd, f, n) : -EINVAL;
}

/* Frames from the agent: the reader and what was read but not fed yet. */
struct frames {
	int fd;
	struct proto_reader r;
	uint8_t buf[4096];
	size_t have, off;
};

/* The next frame: 0 and @h/@p (valid until the next call), or an error. */
static int next_frame(struct frames *f, struct proto_hdr *h, const uint8_t **p, double deadline)
{
	for (;;) {
		int e = proto_reader_next(&f->r, h, p);
		if (e)
			return e < 0 ? e : 0;
		if (f->off == f->have) {
			struct pollfd pf = {.fd = f->fd, .events = POLLIN};
			int left = (int)(deadline - now_ms());
			if (left <= 0 || poll(&pf, 1, left) <= 0)
				return -ETIMEDOUT;
			ssize_t n = read(f->fd, f->buf, sizeof(f->buf));
			if (n <= 0)
				return -EPIPE;
			f->have = (size_t)n;
			f->off = 0;
		}
		size_t used;
		if ((e = proto_reader_feed(&f->r, f->buf + f->off, f->have - f->off, &used)) < 0)
			return e;
		f->off += used;
	}
}

/* The agent's ERROR for a request, on stderr. */
static int agent_error(const char *what, const uint8_t *p, uint32_t len)
{
	struct proto_error er;
	if (proto_error_decode(p, len, &er) == 0)
		fprintf(stderr, "msb-bench-compare: %s: the agent says: %s\n", what, er.msg);
	return -EIO;
}

/* After the agent's HELLO header: what libmsb sends for `msb exe IMAGE --
 * true` (the rest of the HELLO read, then HELLO, SET_TIME, ADD_ENTROPY,
 * SET_HOSTNAME, MOUNT_ROOT 1 and, after its DONE, EXEC 2 of `true`), until
 * the EXIT of the exec. Fills t->mount and t->exec (ms since @t0). */
static int run_true(int fd, uint32_t hello_len, double t0, double deadline, struct times *t)
{
	uint8_t b[4096];
	if (hello_len > sizeof(b))
		return -EPROTO;
	int e = read_full(fd, b, hello_len, deadline);
	struct proto_hello hi = {.version_min = PROTO_VERSION, .version_max = PROTO_VERSION};
	snprintf(hi.name, sizeof(hi.name), "msb-bench-compare");
	e = e ?: send_frame(fd, PROTO_HELLO, 0, b, proto_hello_encode(&hi, b, sizeof(b)));
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct proto_set_time st = {.sec = now.tv_sec, .nsec = (uint32_t)now.tv_nsec};
	e = e ?: send_frame(fd, PROTO_SET_TIME, 0, b, proto_set_time_encode(&st, b, sizeof(b)));
	uint8_t seed[64];
	int rnd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (rnd < 0 || read(rnd, seed, sizeof(seed)) != (ssize_t)sizeof(seed))
		e = e ?: -EIO;
	if (rnd >= 0)
		close(rnd);
	e = e ?: send_frame(fd, PROTO_ADD_ENTROPY, 0, seed, sizeof(seed));
	struct proto_hostname hn = {.name = "msb-bench"};
	e = e ?: send_frame(fd, PROTO_SET_HOSTNAME, 0, b, proto_hostname_encode(&hn, b, sizeof(b)));
	struct proto_mount_root mr = {.disk = 0, .wait_ms = MOUNT_WAIT_MS};
	e = e ?: send_frame(fd, PROTO_MOUNT_ROOT, 1, b, proto_mount_root_encode(&mr, b, sizeof(b)));
	if (e)
		return e;
	static struct frames f;
	f = (struct frames){.fd = fd};
	if ((e = proto_reader_init(&f.r)) < 0)
		return e;
	static const char *const argv[] = {"true", NULL};
	static const char *const env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
	                                  "/sbin:/bin",
	                                  NULL};
	struct proto_exec x = {.cwd = "/",
	                       .argc = 1,
	                       .envc = 1,
	                       .argv = (const char **)argv,
	                       .envp = (const char **)env};
	while (!e) {
		struct proto_hdr h;
		const uint8_t *p;
		if ((e = next_frame(&f, &h, &p, deadline)) < 0)
			break;
		if (h.id == 1 && h.type == PROTO_DONE) {
			t->mount = now_ms() - t0;
			e = send_frame(fd, PROTO_EXEC, 2, b, proto_exec_encode(&x, b, sizeof(b)));
		} else if (h.type == PROTO_ERROR) {
			const char *what = h.id == 1 ? "MOUNT_ROOT" : "EXEC true";
			e = agent_error(h.id == 0 ? "connection" : what, p, h.len);
		} else if (h.id == 2 && h.type == PROTO_EXIT) {
			t->exec = now_ms() - t0;
			struct proto_exit ex;
			if (proto_exit_decode(p, h.len, &ex) < 0 || ex.kind != PROTO_EXIT_EXITED ||
			    ex.value != 0) {
				fprintf(stderr, "msb-bench-compare: `true` did not exit 0\n");
				e = -EIO;
			}
			break;
		} else if (h.type == PROTO_PING) {
			e = send_frame(fd, PROTO_PONG, 0, p, (int)h.len);
		} /* READY, the empty STDOUT/STDERR: nothing to do */
	}
	proto_reader_free(&f.r);
	return e;
}

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	long v = -1;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			v = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

static void stop(pid_t pid)
{
	kill(pid, SIGTERM);
	for (double end = now_ms() + STOP_MS; now_ms() < end; sleep_ms(10))
		if (waitpid(pid, NULL, WNOHANG) != 0)
			return; /* reaped now, or by alive() already */
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* Boots one VM with @argv; fills @t. @uds: msb-vmm's vsock socket, or NULL
 * for QEMU's vhost-vsock. */
static int measure(const struct opts *o, char *const *argv, const char *uds, const char *log,
                   const char *serial, struct times *t)
{
	if (uds)
		unlink(uds);
	*t = (struct times){-1, -1, -1, -1};
	double t0 = now_ms(), deadline = t0 + BOOT_TIMEOUT_MS;
	pid_t pid = spawn(argv, log);
	if (pid < 0)
		return -errno;
	int fd;
	if (uds) {
		char why[300];
		fd = vsock_uds_connect(uds, PROTO_AGENT_PORT, BOOT_TIMEOUT_MS, alive, &pid, why,
		                       sizeof(why));
		if (fd < 0)
			fprintf(stderr, "msb-bench-compare: %s\n", why);
	} else
		fd = vsock_connect(o->cid, pid, deadline);
	uint32_t hello_len = 0;
	int e = fd < 0 ? fd : read_hello(fd, deadline, &hello_len);
	t->boot = now_ms() - t0;
	const char *what = "no HELLO from the agent";
	if (!e && o->disk) {
		what = "mounting the image and running `true`";
		e = run_true(fd, hello_len, t0, deadline, t);
	} else if (!e)
		sleep_ms(IDLE_MS);
	if (!e && (t->rss = rss_kib(pid)) < 0)
		e = -ESRCH; /* it died */
	if (fd >= 0)
		close(fd);
	stop(pid);
	if (e) {
		fprintf(stderr, "msb-bench-compare: %s: %s: %s\n", argv[0], what, strerror(-e));
		bench_show_tail(log);
		bench_show_tail(serial);
	}
	return e;
}

static double median(const double *v, int n)
{
	double s[MAX_RUNS];
	memcpy(s, v, (size_t)n * sizeof(*v));
	qsort(s, (size_t)n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static int parse(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){.runs = 3, .dir = "/run", .cid = 3};
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (!strcmp(k, "--runs"))
			o->runs = atoi(v);
		else if (!strcmp(k, "--kernel"))
			o->kernel = v;
		else if (!strcmp(k, "--initrd"))
			o->initrd = v;
		else if (!strcmp(k, "--vmm"))
			o->vmm = v;
		else if (!strcmp(k, "--qemu"))
			o->qemu = v;
		else if (!strcmp(k, "--dir"))
			o->dir = v;
		else if (!strcmp(k, "--cid"))
			o->cid = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(k, "--disk"))
			o->disk = v;
		else
			return -1;
	}
	if (argc % 2 == 0 || o->runs < 1 || o->runs > MAX_RUNS || o->cid < 3 || !o->kernel ||
	    !o->initrd || !o->vmm || !o->qemu)
		return -1;
	return 0;
}

/* Appends @args (NULL-terminated) to the NULL-terminated @argv of @cap. */
static void append(char **argv, size_t cap, char *const *args)
{
	size_t n = 0;
	while (argv[n])
		n++;
	for (; *args && n + 1 < cap; args++)
		argv[n++] = *args;
	argv[n] = NULL;
}

int main(int argc, char **argv)
{
	struct opts o;
	if (parse(argc, argv, &o) < 0) {
		fprintf(stderr,
		        "usage: msb-bench-compare [--runs 1..%d] --kernel K --initrd I "
		        "--vmm PATH --qemu PATH [--dir DIR] [--cid N>=3] [--disk IMAGE]\n",
		        MAX_RUNS);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	char uds[256], mlog[256], qlog[256], cid[32], kernel[256], initrd[256], disk[256];
	char mser[256], qser[256], serial[300], vmm_disk[300], qemu_drive[400];
	if (snprintf(uds, sizeof(uds), "%s/v.sock", o.dir) >= (int)sizeof(uds) ||
	    snprintf(kernel, sizeof(kernel), "%s/kernel", o.dir) >= (int)sizeof(kernel) ||
	    snprintf(initrd, sizeof(initrd), "%s/initrd", o.dir) >= (int)sizeof(initrd) ||
	    snprintf(disk, sizeof(disk), "%s/disk", o.dir) >= (int)sizeof(disk) ||
	    snprintf(mlog, sizeof(mlog), "%s/msb-vmm.log", o.dir) >= (int)sizeof(mlog) ||
	    snprintf(qlog, sizeof(qlog), "%s/qemu.log", o.dir) >= (int)sizeof(qlog) ||
	    snprintf(mser, sizeof(mser), "%s/msb-vmm-serial.log", o.dir) >= (int)sizeof(mser) ||
	    snprintf(qser, sizeof(qser), "%s/qemu-serial.log", o.dir) >= (int)sizeof(qser)) {
		fprintf(stderr, "msb-bench-compare: --dir is too long\n");
		return 2;
	}
	snprintf(serial, sizeof(serial), "file:%s", qser);
	snprintf(cid, sizeof(cid), "vhost-vsock-device,guest-cid=%u", o.cid);
	snprintf(vmm_disk, sizeof(vmm_disk), "0=%s", disk);
	snprintf(qemu_drive, sizeof(qemu_drive), "if=none,id=d0,file=%s,format=raw,readonly=on",
	         disk);
	if (stage(o.kernel, kernel) < 0 || stage(o.initrd, initrd) < 0 ||
	    (o.disk && stage(o.disk, disk) < 0)) {
		fprintf(stderr, "msb-bench-compare: cannot copy %s, %s%s%s into %s\n", o.kernel,
		        o.initrd, o.disk ? " and " : "", o.disk ? o.disk : "", o.dir);
		return 1;
	}
	char *vmm[24] = {(char *)o.vmm, "--kernel",     kernel,   "--initrd", initrd,
	                 "--memory",    GUEST_MIB,      "--cpus", "1",        "--vsock",
	                 uds,           "--serial-log", mser,     NULL};
	/* acpi=off: our kernel has no ACPI, and only without it does microvm put
	 * virtio_mmio.device= for its transports on the command line */
	// clang-format off
	char *qemu[40] = {(char *)o.qemu, "-M", "microvm,acpi=off", "-accel", "kvm",
	                  "-cpu", "host", "-m", GUEST_MIB, "-smp", "1",
	                  "-nodefaults", "-no-user-config", "-nographic", "-serial", serial,
	                  "-kernel", kernel, "-initrd", initrd, "-append", GUEST_CMDLINE,
	                  "-device", cid, NULL};
	// clang-format on
	if (o.disk) {
		/* libmsb's sandboxes have 4 disk slots, the image in slot 0 */
		char *vd[] = {"--disk-slots", "4", "--disk-ro", vmm_disk, NULL};
		char *qd[] = {"-drive", qemu_drive, "-device",
		              "virtio-blk-device,drive=d0,serial=disk0", NULL};
		append(vmm, sizeof(vmm) / sizeof(vmm[0]), vd);
		append(qemu, sizeof(qemu) / sizeof(qemu[0]), qd);
	}
	double mb[MAX_RUNS], qb[MAX_RUNS], mr[MAX_RUNS], qr[MAX_RUNS];
	double mm[MAX_RUNS], qm[MAX_RUNS], mx[MAX_RUNS], qx[MAX_RUNS];
	int e = 0;
	/* Run -1 is a warm-up of both, not counted: the first VM in a fresh
	 * portable host pays for more than its own boot. Then each run swaps
	 * which VMM goes first. */
	for (int r = -1; r < o.runs && !e; r++) {
		struct times m, q;
		int qemu_first = r >= 0 && r % 2;
		if (qemu_first)
			e = measure(&o, qemu, NULL, qlog, qser, &q);
		e = e ?: measure(&o, vmm, uds, mlog, mser, &m);
		if (!qemu_first)
			e = e ?: measure(&o, qemu, NULL, qlog, qser, &q);
		if (e || r < 0)
			continue;
		mb[r] = m.boot, qb[r] = q.boot;
		mr[r] = (double)m.rss, qr[r] = (double)q.rss;
		mm[r] = m.mount, qm[r] = q.mount;
		mx[r] = m.exec, qx[r] = q.exec;
		printf("run=%d first=%s msb_boot_ms=%.1f msb_rss_kib=%ld qemu_boot_ms=%.1f "
		       "qemu_rss_kib=%ld",
		       r + 1, qemu_first ? "qemu" : "msb", m.boot, m.rss, q.boot, q.rss);
		if (o.disk)
			printf(" msb_mount_ms=%.1f msb_exec_ms=%.1f qemu_mount_ms=%.1f "
			       "qemu_exec_ms=%.1f",
			       m.mount, m.exec, q.mount, q.exec);
		printf("\n");
		fflush(stdout);
	}
	unlink(kernel);
	unlink(initrd);
	unlink(disk);
	unlink(uds);
	if (e)
		return 1;
	double b1 = median(mb, o.runs), b2 = median(qb, o.runs);
	double r1 = median(mr, o.runs), r2 = median(qr, o.runs);
	printf("runs=%d\nmsb_boot_ms=%.1f\nqemu_boot_ms=%.1f\nmsb_rss_kib=%.0f\nqemu_rss_kib=%.0f\n"
	       "boot_ratio=%.2f\nrss_ratio=%.2f\n",
	       o.runs, b1, b2, r1, r2, b1 > 0 ? b2 / b1 : 0, r1 > 0 ? r2 / r1 : 0);
	if (o.disk) {
		double x1 = median(mx, o.runs), x2 = median(qx, o.runs);
		printf("msb_mount_ms=%.1f\nqemu_mount_ms=%.1f\n"
		       "msb_exec_ms=%.1f\nmsb_exec_p90_ms=%.1f\n"
		       "qemu_exec_ms=%.1f\nqemu_exec_p90_ms=%.1f\nexec_ratio=%.2f\n",
		       median(mm, o.runs), median(qm, o.runs), x1, pctl(mx, o.runs, 90), x2,
		       pctl(qx, o.runs, 90), x1 > 0 ? x2 / x1 : 0);
	}
	return fflush(stdout) ? 1 : 0;
}
