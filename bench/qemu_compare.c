#include "qemu_compare.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HELPER "msb-bench-compare"
/* Per boot the helper allows 120 s; a portable host boots in seconds. */
#define BOOT_BUDGET_MS  (2 * 130000L)
#define PHOST_BUDGET_MS 120000L
#define GUEST_MIB       1024
#define PHOST_EXTRA_MIB 1024 /* QEMU or msb-vmm, and the image itself */
#define LINE_MAX_LEN    512

static int fail(struct msb_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct msb_err *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	err->code = code;
	return code;
}

static long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

/* One line of the helper's output: per-run lines are shown, summary keys
 * kept (bit i of *have for keys[i]). Unknown lines are ignored. */
static void take_line(const char *line, struct qemu_compare *c, int *have)
{
#define K(name) #name "=", offsetof(struct qemu_compare, name)
	static const struct {
		const char *key;
		size_t off; /* of a double in struct qemu_compare; runs= is the int */
	} keys[] = {{"runs=", 0},          {K(msb_boot_ms)},     {K(qemu_boot_ms)},
	            {K(msb_rss_kib)},      {K(qemu_rss_kib)},    {K(boot_ratio)},
	            {K(rss_ratio)},        {K(msb_mount_ms)},    {K(qemu_mount_ms)},
	            {K(msb_exec_ms)},      {K(msb_exec_p90_ms)}, {K(qemu_exec_ms)},
	            {K(qemu_exec_p90_ms)}, {K(exec_ratio)}};
#undef K
	if (!strncmp(line, "run=", 4)) {
		printf("  %s\n", line);
		fflush(stdout);
		return;
	}
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		size_t n = strlen(keys[i].key);
		if (strncmp(line, keys[i].key, n))
			continue;
		char *end;
		double v = strtod(line + n, &end);
		if (end == line + n || *end)
			return;
		if (i == 0)
			c->runs = (int)v;
		else
			*(double *)((char *)c + keys[i].off) = v;
		*have |= 1 << i;
	}
}
#define KEYS_BOOT 7  /* runs= .. rss_ratio= */
#define KEYS_ALL  14 /* and the exec keys */

/* Reads the helper's stdout until it ends, line by line. */
static int read_output(int fd, long deadline, struct qemu_compare *c, int *have,
                       struct msb_err *err)
{
	char line[LINE_MAX_LEN];
	size_t used = 0;
	for (;;) {
		long left = deadline - mono_ms();
		if (left <= 0)
			return fail(err, -ETIMEDOUT, "the comparison did not finish in time");
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail(err, -errno, "poll: %s", strerror(errno));
		if (r == 0)
			continue;
		char ch;
		ssize_t n = read(fd, &ch, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		if (ch != '\n') {
			if (used + 1 >= sizeof(line))
				return fail(err, -E2BIG, "a line of %s's output is too long",
				            HELPER);
			line[used++] = ch;
			continue;
		}
		line[used] = 0;
		used = 0;
		take_line(line, c, have);
	}
}

struct where {
	char helper[4096], vmm[4096], qemu[4096], kernel[4096], initrd[4096], disk[4096], dir[64],
	    cid[16];
	struct msb_vm_file files[3];
	size_t nfiles;
	int made_dir; /* natively: dir is ours to remove */
};

static int paths_native(struct where *w, const char *kernel, const char *initrd, const char *disk,
                        struct msb_err *err)
{
	char exe[4096], lib[4000];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return fail(err, -EIO, "cannot find this program's directory");
	exe[n] = 0;
	char *slash = strrchr(exe, '/');
	if (!slash)
		return fail(err, -EIO, "cannot find this program's directory");
	*slash = 0;
	const char *qemu = getenv("MSB_QEMU");
	snprintf(w->dir, sizeof(w->dir), "/tmp/msb-bench-XXXXXX");
	if (msb_libexec_dir(lib, sizeof(lib)) < 0 || !mkdtemp(w->dir))
		return fail(err, -EIO, "cannot find msb-vmm or make a temporary directory");
	w->made_dir = 1;
	/* a CID of our own, so other VMs on this host are not in the way */
	snprintf(w->cid, sizeof(w->cid), "%u", 1000u + (unsigned)getpid());
	if (snprintf(w->helper, sizeof(w->helper), "%s/%s", exe, HELPER) >=
	        (int)sizeof(w->helper) ||
	    snprintf(w->vmm, sizeof(w->vmm), "%s/msb-vmm", lib) >= (int)sizeof(w->vmm) ||
	    snprintf(w->qemu, sizeof(w->qemu), "%s", qemu && *qemu ? qemu : "qemu-system-x86_64") >=
	        (int)sizeof(w->qemu) ||
	    snprintf(w->kernel, sizeof(w->kernel), "%s", kernel) >= (int)sizeof(w->kernel) ||
	    snprintf(w->initrd, sizeof(w->initrd), "%s", initrd) >= (int)sizeof(w->initrd) ||
	    snprintf(w->disk, sizeof(w->disk), "%s", disk ? disk : "") >= (int)sizeof(w->disk))
		return fail(err, -ENAMETOOLONG, "a path is too long");
	return 0;
}

/* Inside the benchmark portable host everything is at fixed places. */
static int paths_portable(struct where *w, const char *kernel, const char *initrd, const char *disk,
                          struct msb_err *err)
{
	w->files[0] = (struct msb_vm_file){.name = "kernel", .path = kernel};
	w->files[1] = (struct msb_vm_file){.name = "initrd", .path = initrd};
	w->files[2] = (struct msb_vm_file){.name = "image", .path = disk};
	w->nfiles = disk ? 3 : 2;
	snprintf(w->helper, sizeof(w->helper), "/bin/%s", HELPER);
	snprintf(w->vmm, sizeof(w->vmm), "/bin/msb-vmm");
	snprintf(w->qemu, sizeof(w->qemu), "/usr/bin/qemu-system-x86_64");
	snprintf(w->dir, sizeof(w->dir), "/run");
	snprintf(w->cid, sizeof(w->cid), "3");
	if (!msb_vm_file_path(MSB_HOST_PORTABLE, &w->files[0], w->kernel, sizeof(w->kernel)) ||
	    !msb_vm_file_path(MSB_HOST_PORTABLE, &w->files[1], w->initrd, sizeof(w->initrd)) ||
	    (disk && !msb_vm_file_path(MSB_HOST_PORTABLE, &w->files[2], w->disk, sizeof(w->disk))))
		return fail(err, -ENAMETOOLONG, "a path is too long");
	if (getenv("MSB_PHOST_DIR"))
		return 0; /* the caller chose the image */
	char share[4000], dir[4096];
	if (msb_share_dir(share, sizeof(share)) < 0 ||
	    snprintf(dir, sizeof(dir), "%s/phost-bench", share) >= (int)sizeof(dir))
		return fail(err, -ENAMETOOLONG, "cannot find msb's share directory");
	if (access(dir, R_OK) < 0)
		return fail(err, -ENOENT, "no %s: build it with make phost-bench", dir);
	setenv("MSB_PHOST_DIR", dir, 1); /* only this process's portable hosts */
	return 0;
}

int qemu_compare_run(enum msb_host_mode mode, int runs, const char *kernel, const char *initrd,
                     struct qemu_compare *out, struct msb_err *err)
{
	return qemu_compare_exec_run(mode, runs, kernel, initrd, NULL, out, err);
}

int qemu_compare_exec_run(enum msb_host_mode mode, int runs, const char *kernel, const char *initrd,
                          const char *disk, struct qemu_compare *out, struct msb_err *err)
{
	memset(out, 0, sizeof(*out));
	struct where *w = calloc(1, sizeof(*w));
	if (!w)
		return fail(err, -ENOMEM, "out of memory");
	int set_env = mode == MSB_HOST_PORTABLE && !getenv("MSB_PHOST_DIR");
	int e = mode == MSB_HOST_PORTABLE ? paths_portable(w, kernel, initrd, disk, err)
	                                  : paths_native(w, kernel, initrd, disk, err);
	char nruns[16];
	snprintf(nruns, sizeof(nruns), "%d", runs);
	const char *argv[] = {w->helper, "--runs",   nruns,     "--kernel",
	                      w->kernel, "--initrd", w->initrd, "--vmm",
	                      w->vmm,    "--qemu",   w->qemu,   "--dir",
	                      w->dir,    "--cid",    w->cid,    disk ? "--disk" : NULL,
	                      w->disk,   NULL};
	struct msb_vmproc_opts o = {
	    .size = sizeof(o),
	    .mode = mode,
	    .name = "bench-qemu",
	    .argv = argv,
	    .files = mode == MSB_HOST_PORTABLE ? w->files : NULL,
	    .nfiles = mode == MSB_HOST_PORTABLE ? w->nfiles : 0,
	    .mem_mib = GUEST_MIB + PHOST_EXTRA_MIB,
	};
	struct msb_vmproc *p = NULL;
	if (!e)
		e = msb_vmproc_start(&o, &p, err);
	int have = 0;
	if (!e)
		e = read_output(msb_vmproc_stream(p),
		                mono_ms() + PHOST_BUDGET_MS + runs * BOOT_BUDGET_MS, out, &have,
		                err);
	if (!e) {
		int st = msb_vmproc_wait(p, 60000, err);
		if (st > 0)
			e = fail(err, -EIO, "%s failed (status %d); see %s", HELPER, st,
			         msb_vmproc_log(p));
		else if (st < 0)
			e = st;
		else if (have != (1 << (disk ? KEYS_ALL : KEYS_BOOT)) - 1)
			e = fail(err, -EPROTO, "%s gave no summary; see %s", HELPER,
			         msb_vmproc_log(p));
	}
	msb_vmproc_destroy(p, e != 0);
	if (set_env)
		unsetenv("MSB_PHOST_DIR");
	if (w->made_dir) {
		/* the helper's socket and logs */
		const char *names[] = {"v.sock",          "msb-vmm.log",        "qemu.log",
		                       "qemu-serial.log", "msb-vmm-serial.log", "disk"};
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			char f[128];
			snprintf(f, sizeof(f), "%s/%s", w->dir, names[i]);
			unlink(f);
		}
		rmdir(w->dir);
	}
	free(w);
	return e;
}
