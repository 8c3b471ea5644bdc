/*
 * msb-bench-compare: the same guest under msb-vmm and under QEMU microvm, on
 * the same KVM, in one run. It runs where the VMM runs: inside the
 * benchmark portable host (phost/build-bench-image), or natively on a KVM
 * that runs standard guests. bench/qemu_compare.c starts it through libmsb.
 *
 *   msb-bench-compare --runs N --kernel K --initrd I --vmm PATH --qemu PATH
 *                     [--dir DIR] [--cid N]
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

struct opts {
	int runs;
	const char *kernel, *initrd, *vmm, *qemu, *dir;
	unsigned cid;
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

/* Reads the agent's first frame; 0 when it is a HELLO. */
static int read_hello(int fd, double deadline)
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
	return e ? e : h.type == PROTO_HELLO ? 0 : -EPROTO;
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

/* The last bytes of @log on stderr, to say why a boot failed. */
static void show_tail(const char *log)
{
	char buf[4096];
	int fd = open(log, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	off_t end = lseek(fd, 0, SEEK_END);
	lseek(fd, end > (off_t)sizeof(buf) ? end - (off_t)sizeof(buf) : 0, SEEK_SET);
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n > 0)
		fprintf(stderr, "--- %s:\n%.*s\n---\n", log, (int)n, buf);
}

/* Boots one VM with @argv; fills its boot time and RSS. @uds: msb-vmm's
 * vsock socket, or NULL for QEMU's vhost-vsock. */
static int measure(const struct opts *o, char *const *argv, const char *uds, const char *log,
                   const char *serial, double *boot_ms, long *rss)
{
	if (uds)
		unlink(uds);
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
	int e = fd < 0 ? fd : read_hello(fd, deadline);
	*boot_ms = now_ms() - t0;
	if (!e) {
		sleep_ms(IDLE_MS);
		*rss = rss_kib(pid);
		if (*rss < 0)
			e = -ESRCH; /* it died while idle */
	}
	if (fd >= 0)
		close(fd);
	stop(pid);
	if (e) {
		fprintf(stderr, "msb-bench-compare: %s: no HELLO from the agent: %s\n", argv[0],
		        strerror(-e));
		show_tail(log);
		show_tail(serial);
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
		else
			return -1;
	}
	if (argc % 2 == 0 || o->runs < 1 || o->runs > MAX_RUNS || o->cid < 3 || !o->kernel ||
	    !o->initrd || !o->vmm || !o->qemu)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	if (parse(argc, argv, &o) < 0) {
		fprintf(stderr,
		        "usage: msb-bench-compare [--runs 1..%d] --kernel K --initrd I "
		        "--vmm PATH --qemu PATH [--dir DIR] [--cid N>=3]\n",
		        MAX_RUNS);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	char uds[256], mlog[256], qlog[256], cid[32], kernel[256], initrd[256];
	char mser[256], qser[256], serial[300];
	if (snprintf(uds, sizeof(uds), "%s/v.sock", o.dir) >= (int)sizeof(uds) ||
	    snprintf(kernel, sizeof(kernel), "%s/kernel", o.dir) >= (int)sizeof(kernel) ||
	    snprintf(initrd, sizeof(initrd), "%s/initrd", o.dir) >= (int)sizeof(initrd) ||
	    snprintf(mlog, sizeof(mlog), "%s/msb-vmm.log", o.dir) >= (int)sizeof(mlog) ||
	    snprintf(qlog, sizeof(qlog), "%s/qemu.log", o.dir) >= (int)sizeof(qlog) ||
	    snprintf(mser, sizeof(mser), "%s/msb-vmm-serial.log", o.dir) >= (int)sizeof(mser) ||
	    snprintf(qser, sizeof(qser), "%s/qemu-serial.log", o.dir) >= (int)sizeof(qser)) {
		fprintf(stderr, "msb-bench-compare: --dir is too long\n");
		return 2;
	}
	snprintf(serial, sizeof(serial), "file:%s", qser);
	snprintf(cid, sizeof(cid), "vhost-vsock-device,guest-cid=%u", o.cid);
	if (stage(o.kernel, kernel) < 0 || stage(o.initrd, initrd) < 0) {
		fprintf(stderr, "msb-bench-compare: cannot copy %s and %s into %s\n", o.kernel,
		        o.initrd, o.dir);
		return 1;
	}
	char *vmm[] = {(char *)o.vmm, "--kernel",     kernel,   "--initrd", initrd,
	               "--memory",    GUEST_MIB,      "--cpus", "1",        "--vsock",
	               uds,           "--serial-log", mser,     NULL};
	/* acpi=off: our kernel has no ACPI, and only without it does microvm put
	 * virtio_mmio.device= for its transports on the command line */
	// clang-format off
	char *qemu[] = {(char *)o.qemu, "-M", "microvm,acpi=off", "-accel", "kvm",
	                "-cpu", "host", "-m", GUEST_MIB, "-smp", "1",
	                "-nodefaults", "-no-user-config", "-nographic", "-serial", serial,
	                "-kernel", kernel, "-initrd", initrd, "-append", GUEST_CMDLINE,
	                "-device", cid, NULL};
	// clang-format on
	double mb[MAX_RUNS], qb[MAX_RUNS], mr[MAX_RUNS], qr[MAX_RUNS];
	int e = 0;
	/* Run -1 is a warm-up of both, not counted: the first VM in a fresh
	 * portable host pays for more than its own boot. Then each run swaps
	 * which VMM goes first. */
	for (int r = -1; r < o.runs && !e; r++) {
		double m_ms, q_ms;
		long m_rss = -1, q_rss = -1;
		int qemu_first = r >= 0 && r % 2;
		if (qemu_first)
			e = measure(&o, qemu, NULL, qlog, qser, &q_ms, &q_rss);
		e = e ?: measure(&o, vmm, uds, mlog, mser, &m_ms, &m_rss);
		if (!qemu_first)
			e = e ?: measure(&o, qemu, NULL, qlog, qser, &q_ms, &q_rss);
		if (e || r < 0)
			continue;
		mb[r] = m_ms;
		qb[r] = q_ms;
		mr[r] = (double)m_rss;
		qr[r] = (double)q_rss;
		printf("run=%d first=%s msb_boot_ms=%.1f msb_rss_kib=%ld qemu_boot_ms=%.1f "
		       "qemu_rss_kib=%ld\n",
		       r + 1, qemu_first ? "qemu" : "msb", m_ms, m_rss, q_ms, q_rss);
		fflush(stdout);
	}
	unlink(kernel);
	unlink(initrd);
	unlink(uds);
	if (e)
		return 1;
	double b1 = median(mb, o.runs), b2 = median(qb, o.runs);
	double r1 = median(mr, o.runs), r2 = median(qr, o.runs);
	printf("runs=%d\nmsb_boot_ms=%.1f\nqemu_boot_ms=%.1f\nmsb_rss_kib=%.0f\nqemu_rss_kib=%.0f\n"
	       "boot_ratio=%.2f\nrss_ratio=%.2f\n",
	       o.runs, b1, b2, r1, r2, b1 > 0 ? b2 / b1 : 0, r1 > 0 ? r2 / r1 : 0);
	return fflush(stdout) ? 1 : 0;
}
