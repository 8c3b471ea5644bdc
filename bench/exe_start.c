/*
 * bench/exe_start: `msb exe IMAGE -- true` on a cached image, end to end as
 * a user runs it, side by side in one run with the container baseline (crun
 * running the same root file system) and with QEMU microvm cold-booting the
 * same kernel and the same erofs image to a finished command.
 *
 * The image: /bin/busybox (static) and its applet links, /etc/passwd and
 * /etc/group, as one tar layer, made an image with `msb import` into a
 * private MSB_HOME (a temporary directory; XDG_CACHE_HOME stays the user's,
 * so the portable host image and the host self-test are reused). The first
 * `msb exe` there makes the 1024 MiB / 1 vCPU warm-start snapshots (timed
 * apart, once); then one warm-up of every command, then RUNS rounds, each
 * with, alternating which goes first:
 *   msb exe IMAGE -- true        spawn to the exit of msb
 *   crun run (true)              spawn to the exit of crun
 *   msb exe IMAGE -- echo hi     spawn to the first byte on stdout, and exit
 *   crun run (echo hi)           the same
 * stdin is /dev/null and stdout a pipe for all, and each starts after
 * SETTLE_MS of idle. crun runs a bundle whose rootfs is the same layer tar
 * unpacked (`crun spec`, or `crun spec --rootless` when not root; args set,
 * no terminal); without a working crun the rest is still measured. On a host
 * with hybrid cgroups whose v2 hierarchy has controllers (crun refuses those),
 * crun runs in a mount namespace of its own without /sys/fs/cgroup/unified
 * (root only), so it uses the v1 controllers.
 *
 * Then msb-bench-compare (bench/phost_compare.c) boots msb's kernel and
 * agent initramfs with the image's erofs as disk 0 under QEMU microvm and
 * under msb-vmm (cold boot), where msb-vmm runs: inside the benchmark
 * portable host on its nested KVM, or natively; it mounts the root, runs
 * `true` and measures VMM fork/exec to the EXIT frame.
 *
 *   build/bench/exe_start [RUNS] [--qemu-runs N] [--no-qemu]   (RUNS default 20)
 *
 * Targets (printed, never enforced): msb exe ≤ 2× crun, ≤ 1/5 of QEMU.
 * Writes bench/results/exe_start-<host mode>-<time>.json.
 */
#include "msb.h"
#include "bench_util.h"
#include "qemu_compare.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS    200
#define MAX_QRUNS   20 /* msb-bench-compare's limit */
#define IMAGE       "msb.local/bench-busybox:latest"
#define RUN_TIMEOUT 120000.0 /* ms for one command */
/* idle before each command; after longer idles every start here is slower
 * (crun `true` 7 ms after 10 ms of idle, 20 ms after 100 ms) */
#define SETTLE_MS   10
#define TARGET_CRUN 2.0
#define TARGET_QEMU 0.2
#define HYBRID_V2   "/sys/fs/cgroup/unified"

/* Builds the root file system and its layer tar in $1. */
static const char SETUP_SH[] =
    "set -eu\n"
    "cd \"$1\"; bb=$2\n"
    "mkdir -p rootfs/bin rootfs/etc rootfs/tmp rootfs/proc rootfs/sys rootfs/dev rootfs/root\n"
    "cp \"$bb\" rootfs/bin/busybox\n"
    "for a in $(rootfs/bin/busybox --list); do\n"
    "  [ \"$a\" = busybox ] || ln -s busybox \"rootfs/bin/$a\"\n"
    "done\n"
    "echo 'root:x:0:0:root:/root:/bin/sh' > rootfs/etc/passwd\n"
    "echo 'root:x:0:' > rootfs/etc/group\n"
    "chmod 1777 rootfs/tmp\n"
    "tar -C rootfs --numeric-owner --owner=0 --group=0 -cf layer.tar .\n"
    "mkdir -p crun/rootfs crun/true crun/echo crun/state\n"
    "tar -C crun/rootfs -xf layer.tar\n";

struct cmd_time {
	double exit_ms, first_ms; /* from spawn; first_ms -1 without output */
	int status;
	char out[64];
	size_t outlen;
};

static char tmp[] = "/tmp/msb-bench-exe-XXXXXX";
static char errlog[256];
static int crun_ns = -1; /* the mount namespace crun runs in, or -1: ours */

/*
 * Runs @argv (stdin /dev/null, stdout a pipe we read, stderr appended to
 * errlog), in crun's mount namespace when @in_crun_ns. Measures from just
 * before fork() to the first byte on stdout and to the exit (a pidfd, so the
 * exit counts even while something it left behind holds the pipe).
 */
static int run_cmd(char *const argv[], int in_crun_ns, struct cmd_time *t)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	*t = (struct cmd_time){.first_ms = -1, .status = -1};
	double t0 = now_ms();
	pid_t pid = fork();
	if (pid == 0) {
		int in = open("/dev/null", O_RDONLY);
		int err = open(errlog, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if ((in_crun_ns && crun_ns >= 0 && setns(crun_ns, CLONE_NEWNS) < 0) || in < 0 ||
		    err < 0 || dup2(in, 0) < 0 || dup2(p[1], 1) < 0 || dup2(err, 2) < 0)
			_exit(127);
		execvp(argv[0], argv);
		dprintf(2, "exe_start: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return -errno;
	}
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int out_open = 1, e = pfd < 0 ? -errno : 0;
	while (!e && t->status < 0) {
		struct pollfd fds[2] = {{.fd = pfd, .events = POLLIN},
		                        {.fd = out_open ? p[0] : -1, .events = POLLIN}};
		int left = (int)(t0 + RUN_TIMEOUT - now_ms());
		int r = left > 0 ? poll(fds, 2, left) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			e = r < 0 ? -errno : -ETIMEDOUT;
			kill(pid, SIGKILL);
			break;
		}
		if (fds[1].revents) {
			char buf[256];
			ssize_t n = read(p[0], buf, sizeof(buf));
			if (n > 0 && t->first_ms < 0)
				t->first_ms = now_ms() - t0;
			if (n > 0 && t->outlen + (size_t)n < sizeof(t->out)) {
				memcpy(t->out + t->outlen, buf, (size_t)n);
				t->outlen += (size_t)n;
			}
			if (n <= 0)
				out_open = 0;
		}
		if (fds[0].revents) {
			t->exit_ms = now_ms() - t0;
			int st;
			waitpid(pid, &st, 0);
			t->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
	}
	if (e && pfd >= 0)
		waitpid(pid, NULL, 0);
	/* what was written before the exit is in the pipe now */
	struct pollfd fp = {.fd = p[0], .events = POLLIN};
	while (!e && out_open && poll(&fp, 1, 0) > 0) {
		ssize_t n = read(p[0], t->out + t->outlen, sizeof(t->out) - 1 - t->outlen);
		if (n <= 0)
			break;
		t->outlen += (size_t)n;
	}
	t->out[t->outlen] = 0;
	if (pfd >= 0)
		close(pfd);
	close(p[0]);
	return e;
}

/* Runs @argv and checks it exits 0 (and printed @want, unless NULL). */
static int run_ok(char *const argv[], int in_crun_ns, const char *want, struct cmd_time *t)
{
	/* let what the last command left (its exit, freed memory) settle */
	struct timespec settle = {.tv_nsec = SETTLE_MS * 1000000L};
	nanosleep(&settle, NULL);
	int e = run_cmd(argv, in_crun_ns, t);
	if (e) {
		fprintf(stderr, "exe_start: %s: %s\n", argv[0], strerror(-e));
		return -1;
	}
	if (t->status != 0 || (want && strcmp(t->out, want))) {
		fprintf(stderr, "exe_start: `%s %s ...` exited %d with output \"%s\"\n", argv[0],
		        argv[1], t->status, t->out);
		bench_show_tail(errlog);
		return -1;
	}
	return 0;
}

/* Edits a `crun spec` config.json: the command, no terminal, the shared
 * root file system. */
static int crun_config(const char *bundle, const char *rootfs, const char *const *args)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/config.json", bundle);
	json_error_t je;
	json_t *c = json_load_file(path, 0, &je);
	json_t *proc = c ? json_object_get(c, "process") : NULL;
	json_t *root = c ? json_object_get(c, "root") : NULL;
	if (!proc || !root) {
		fprintf(stderr, "exe_start: %s: not a crun spec (%s)\n", path, je.text);
		json_decref(c);
		return -1;
	}
	json_t *a = json_array();
	for (; *args; args++)
		json_array_append_new(a, json_string(*args));
	json_object_set_new(proc, "args", a);
	json_object_set_new(proc, "terminal", json_false());
	json_object_set_new(root, "path", json_string(rootfs));
	int e = json_dump_file(c, path, JSON_INDENT(1));
	json_decref(c);
	return e;
}

/* crun refuses hybrid cgroups whose v2 hierarchy has controllers: give it
 * a mount namespace without that hierarchy (root only). 0, or -1. */
static int crun_namespace(const char **how)
{
	char buf[256] = "";
	FILE *f = fopen(HYBRID_V2 "/cgroup.controllers", "re");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	if (n == 0 || buf[0] == '\n') {
		*how = "as is";
		return 0;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "exe_start: hybrid cgroups with v2 controllers: crun needs root\n");
		return -1;
	}
	int self = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int e = self < 0 || cwd < 0 || unshare(CLONE_NEWNS) < 0 ||
	        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	        umount2(HYBRID_V2, MNT_DETACH) < 0 ||
	        (crun_ns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC)) < 0;
	if (e)
		perror("exe_start: a mount namespace for crun");
	/* back to ours (setns also moves the cwd to its root) */
	if (self >= 0 && (setns(self, CLONE_NEWNS) < 0 || fchdir(cwd) < 0)) {
		perror("exe_start: back to our mount namespace");
		exit(1);
	}
	if (self >= 0)
		close(self);
	if (cwd >= 0)
		close(cwd);
	*how = "in a mount namespace without " HYBRID_V2
	       " (hybrid cgroups; crun refuses v2 controllers there), v1 cgroups";
	return e ? -1 : 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/* The one erofs image in $MSB_HOME/images. */
static int find_erofs(const char *home, char *out, size_t len)
{
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/images", home);
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = -1;
	while (d && (e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (n > 6 && !strcmp(e->d_name + n - 6, ".erofs")) {
			snprintf(out, len, "%s/%s", dir, e->d_name);
			found = 0;
		}
	}
	if (d)
		closedir(d);
	return found;
}

static json_t *stats(const double *v, int n)
{
	return json_pack("{s:f, s:f, s:f, s:f}", "median", pctl(v, n, 50), "p90", pctl(v, n, 90),
	                 "min", pctl(v, n, 0), "max", pctl(v, n, 100));
}

/* One line of the table: median and p90 of msb's and (unless NULL) crun's. */
static void row(const char *what, const double *m, const double *c, int n)
{
	printf("  %-40s %10.1f %10.1f", what, pctl(m, n, 50), pctl(m, n, 90));
	if (c)
		printf(" %10.2f %10.2f", pctl(c, n, 50), pctl(c, n, 90));
	printf("\n");
}

static const char *met(double ratio, double target)
{
	return ratio <= target ? "met" : "NOT met";
}

int main(int argc, char **argv)
{
	int runs = 20, qruns = -1, no_qemu = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--no-qemu"))
			no_qemu = 1;
		else if (!strcmp(argv[i], "--qemu-runs") && i + 1 < argc)
			qruns = atoi(argv[++i]);
		else
			runs = atoi(argv[i]);
	}
	if (qruns < 0)
		qruns = runs < MAX_QRUNS ? runs : MAX_QRUNS;
	if (runs < 1 || runs > MAX_RUNS || qruns < 1 || qruns > MAX_QRUNS) {
		fprintf(stderr,
		        "usage: exe_start [RUNS] [--qemu-runs N] [--no-qemu]   (1..%d, 1..%d)\n",
		        MAX_RUNS, MAX_QRUNS);
		return 2;
	}
	struct msb_host_choice hc;
	struct msb_err err = {0};
	if (msb_host_select(&hc, &err) < 0) {
		fprintf(stderr, "exe_start: %s\n", err.msg);
		return 1;
	}
	const char *mode = hc.mode == MSB_HOST_PORTABLE ? "portable" : "native";
	printf("host mode: %s (%s)\n", mode, hc.why);

	char exe[4096], msb[4200], share[4000], kernel[4096], initrd[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0 || msb_share_dir(share, sizeof(share)) < 0) {
		fprintf(stderr, "exe_start: cannot find msb\n");
		return 1;
	}
	exe[n] = 0;
	*strrchr(exe, '/') = 0;
	snprintf(msb, sizeof(msb), "%s/../bin/msb", exe);
	snprintf(kernel, sizeof(kernel), "%s/vmlinux", share);
	snprintf(initrd, sizeof(initrd), "%s/agent.cpio", share);
	const char *bb = getenv("MSB_BENCH_BUSYBOX") ? getenv("MSB_BENCH_BUSYBOX") : "/bin/busybox";
	if (!mkdtemp(tmp)) {
		perror("exe_start: mkdtemp");
		return 1;
	}
	char home[256], layer[256], rootfs[256], b_true[256], b_echo[256], state[256];
	snprintf(errlog, sizeof(errlog), "%s/stderr.log", tmp);
	snprintf(home, sizeof(home), "%s/home", tmp);
	snprintf(layer, sizeof(layer), "%s/layer.tar", tmp);
	snprintf(rootfs, sizeof(rootfs), "%s/crun/rootfs", tmp);
	snprintf(b_true, sizeof(b_true), "%s/crun/true", tmp);
	snprintf(b_echo, sizeof(b_echo), "%s/crun/echo", tmp);
	snprintf(state, sizeof(state), "%s/crun/state", tmp);
	setenv("MSB_HOME", home, 1);
	int ret = 1;
	struct cmd_time t;
	char *setup[] = {"sh", "-c", (char *)SETUP_SH, "sh", tmp, (char *)bb, NULL};
	char *import[] = {msb, "import", layer, IMAGE, NULL};
	if (run_ok(setup, 0, NULL, &t) || run_ok(import, 0, NULL, &t))
		goto out;
	char erofs[600];
	struct stat est;
	if (find_erofs(home, erofs, sizeof(erofs)) < 0 || stat(erofs, &est) < 0) {
		fprintf(stderr, "exe_start: no erofs image in %s/images\n", home);
		goto out;
	}

	/* crun: two bundles over one unpacked root; spec in each. Without it
	 * (not installed, or cgroups it refuses) the rest is still measured. */
	const char *crun_how = "not measured: crun could not run here (see above)";
	int root = geteuid() == 0;
	static const char *const a_true[] = {"true", NULL}, *const a_echo[] = {"echo", "hi", NULL};
	char *spec = root ? "cd \"$1\" && crun spec" : "cd \"$1\" && crun spec --rootless";
	char *spec_t[] = {"sh", "-c", spec, "sh", b_true, NULL};
	char *spec_e[] = {"sh", "-c", spec, "sh", b_echo, NULL};
	int have_crun = !run_ok(spec_t, 0, NULL, &t) && !run_ok(spec_e, 0, NULL, &t) &&
	                !crun_config(b_true, rootfs, a_true) &&
	                !crun_config(b_echo, rootfs, a_echo) && !crun_namespace(&crun_how);

	char id[64];
	char *msb_true[] = {msb, "exe", IMAGE, "--", "true", NULL};
	char *msb_echo[] = {msb, "exe", IMAGE, "--", "echo", "hi", NULL};
	char *crun_true[] = {"crun", "--root", state, "run", "--bundle", b_true, id, NULL};
	char *crun_echo[] = {"crun", "--root", state, "run", "--bundle", b_echo, id, NULL};
	int ids = 0;

	printf("image: %s (busybox, erofs %.1f MiB), MSB_HOME %s\n", IMAGE,
	       (double)est.st_size / (1 << 20), home);
	if (have_crun)
		printf("crun: runs the same layer unpacked, %s, %s\n",
		       root ? "as root" : "rootless", crun_how);
	fflush(stdout);
	/* first use of this MSB_HOME: the shape's snapshots (once) */
	if (run_ok(msb_true, 0, NULL, &t))
		goto out;
	double first_use = t.exit_ms;
	printf("first msb exe in this MSB_HOME (makes the warm-start snapshots): %.0f ms\n",
	       first_use);
	/* one warm-up of each */
	if (run_ok(msb_true, 0, NULL, &t) || run_ok(msb_echo, 0, "hi\n", &t))
		goto out;
	snprintf(id, sizeof(id), "msb-bench-%d-%d", (int)getpid(), ids++);
	have_crun = have_crun && !run_ok(crun_true, 1, NULL, &t);
	snprintf(id, sizeof(id), "msb-bench-%d-%d", (int)getpid(), ids++);
	have_crun = have_crun && !run_ok(crun_echo, 1, "hi\n", &t);
	if (!have_crun)
		crun_how = "not measured: crun could not run here (see above)";

	static double mt[MAX_RUNS], ct[MAX_RUNS], mf[MAX_RUNS], me[MAX_RUNS], cf[MAX_RUNS],
	    ce[MAX_RUNS];
	for (int r = 0; r < runs; r++) {
		struct cmd_time a = {0}, b = {0}, c = {0}, d = {0};
		for (int k = 0; k < 2; k++) {
			int crun_turn = (k == 0) == (r % 2 == 1); /* odd rounds: crun first */
			if (crun_turn && !have_crun)
				continue;
			if (crun_turn) {
				snprintf(id, sizeof(id), "msb-bench-%d-%d", (int)getpid(), ids++);
				if (run_ok(crun_true, 1, NULL, &b))
					goto out;
				snprintf(id, sizeof(id), "msb-bench-%d-%d", (int)getpid(), ids++);
				if (run_ok(crun_echo, 1, "hi\n", &d))
					goto out;
			} else if (run_ok(msb_true, 0, NULL, &a) ||
			           run_ok(msb_echo, 0, "hi\n", &c)) {
				goto out;
			}
		}
		mt[r] = a.exit_ms, ct[r] = b.exit_ms;
		mf[r] = c.first_ms, me[r] = c.exit_ms;
		cf[r] = d.first_ms, ce[r] = d.exit_ms;
		printf("run %d: msb exe true %.0f ms, echo first byte %.0f / exit %.0f ms", r + 1,
		       a.exit_ms, c.first_ms, c.exit_ms);
		if (have_crun)
			printf("; crun true %.1f ms, echo first byte %.1f / exit %.1f ms",
			       b.exit_ms, d.first_ms, d.exit_ms);
		printf("\n");
		fflush(stdout);
	}
	double r_true = have_crun ? pctl(mt, runs, 50) / pctl(ct, runs, 50) : 0;
	double r_first = have_crun ? pctl(mf, runs, 50) / pctl(cf, runs, 50) : 0;
	printf("\n`msb exe` vs crun, busybox image, 1024 MiB / 1 vCPU, %d runs each, host mode "
	       "%s\n",
	       runs, mode);
	printf("  %-40s %10s %10s %10s %10s\n", "(ms)", "msb med", "msb p90", "crun med",
	       "crun p90");
	row("`true`: spawn to exit", mt, have_crun ? ct : NULL, runs);
	row("`echo hi`: spawn to first stdout byte", mf, have_crun ? cf : NULL, runs);
	row("`echo hi`: spawn to exit", me, have_crun ? ce : NULL, runs);
	if (have_crun)
		printf(
		    "  msb / crun, medians: `true` %.1f×, first byte %.1f× (target ≤ %.0f×: %s)\n",
		    r_true, r_first, TARGET_CRUN,
		    met(r_true > r_first ? r_true : r_first, TARGET_CRUN));
	else
		printf("  crun %s\n", crun_how);
	printf("  msb exe includes the msb CLI, opening the store, restoring the portable host "
	       "and the VM from their snapshots, binding and mounting the erofs root, the command "
	       "and tearing it all down\n");
	fflush(stdout);

	/* A project sandbox: its own VM with the writable layer (msb run), and
	 * a command run in one msb up keeps (exec latency into a running
	 * sandbox, through its keeper). */
	char proj[300], sfile[320];
	snprintf(proj, sizeof(proj), "%s/proj", tmp);
	snprintf(sfile, sizeof(sfile), "%s/Sandboxfile", proj);
	FILE *sf = mkdir(proj, 0700) == 0 ? fopen(sfile, "w") : NULL;
	if (!sf || fprintf(sf, "sandboxes:\n  app:\n    image: \"%s\"\n", IMAGE) < 0 ||
	    fclose(sf) != 0) {
		fprintf(stderr, "exe_start: cannot write %s\n", sfile);
		goto out;
	}
	char *run_true[] = {msb, "run", "-f", proj, "app", "-e", "true", NULL};
	char *up[] = {msb, "up", "-f", proj, NULL};
	char *down[] = {msb, "down", "-f", proj, NULL};
	static double rt[MAX_RUNS], xt[MAX_RUNS];
	/* the first makes the writable layer and the host snapshot of this
	 * disk layout (once) */
	if (run_ok(run_true, 0, NULL, &t) || run_ok(run_true, 0, NULL, &t))
		goto out;
	for (int r = 0; r < runs; r++) {
		if (run_ok(run_true, 0, NULL, &t))
			goto out;
		rt[r] = t.exit_ms;
	}
	if (run_ok(up, 0, NULL, &t))
		goto out;
	int exec_failed = run_ok(run_true, 0, NULL, &t);
	for (int r = 0; r < runs && !exec_failed; r++) {
		exec_failed = run_ok(run_true, 0, NULL, &t);
		xt[r] = t.exit_ms;
	}
	if (run_ok(down, 0, NULL, &t) || exec_failed)
		goto out;
	printf("\nproject sandbox (busybox, 1024 MiB / 1 vCPU), %d runs each, host mode %s\n", runs,
	       mode);
	printf("  %-40s %10s %10s\n", "(ms)", "median", "p90");
	printf("  %-40s %10.1f %10.1f\n", "msb run app -e true (own VM, kept layer)",
	       pctl(rt, runs, 50), pctl(rt, runs, 90));
	printf("  %-40s %10.1f %10.1f\n", "msb run app -e true, app up (exec)", pctl(xt, runs, 50),
	       pctl(xt, runs, 90));
	if (have_crun)
		printf("  exec into a running sandbox / crun run `true`, medians: %.1f×\n",
		       pctl(xt, runs, 50) / pctl(ct, runs, 50));
	fflush(stdout);

	struct qemu_compare qc = {0};
	int qc_ok = 0;
	if (!no_qemu) {
		printf("\nQEMU microvm vs msb-vmm, cold boot of %s + agent.cpio with the image's "
		       "erofs "
		       "as disk 0 to the EXIT of `true`, %s, %d alternating runs:\n",
		       kernel,
		       hc.mode == MSB_HOST_PORTABLE
		           ? "inside an already running benchmark portable host (nested KVM)"
		           : "on this machine's KVM",
		       qruns);
		fflush(stdout);
		if (qemu_compare_exec_run(hc.mode, qruns, kernel, initrd, erofs, &qc, &err) < 0)
			fprintf(stderr, "exe_start: QEMU comparison: %s\n", err.msg);
		else
			qc_ok = 1;
	}
	double r_qemu = qc_ok ? pctl(mt, runs, 50) / qc.qemu_exec_ms : 0;
	if (qc_ok) {
		printf("  %-46s %10s %10s\n", "(ms)", "median", "p90");
		printf("  %-46s %10.1f %10.1f\n", "msb exe IMAGE -- true, end to end (above)",
		       pctl(mt, runs, 50), pctl(mt, runs, 90));
		printf("  %-46s %10.1f %10.1f\n", "QEMU microvm: fork/exec to EXIT of `true`",
		       qc.qemu_exec_ms, qc.qemu_exec_p90_ms);
		printf("  %-46s %10.1f %10.1f\n", "msb-vmm cold boot: fork/exec to EXIT",
		       qc.msb_exec_ms, qc.msb_exec_p90_ms);
		printf("  %-46s %10.1f / %.1f\n", "  to HELLO (QEMU / msb-vmm)", qc.qemu_boot_ms,
		       qc.msb_boot_ms);
		printf("  %-46s %10.1f / %.1f\n", "  to MOUNT_ROOT done (QEMU / msb-vmm)",
		       qc.qemu_mount_ms, qc.msb_mount_ms);
		printf("  msb exe / QEMU, medians: %.2f (target ≤ %.2f: %s)\n", r_qemu, TARGET_QEMU,
		       met(r_qemu, TARGET_QEMU));
		printf("  QEMU: %s %s\n", QEMU_COMPARE_CMD, QEMU_COMPARE_DISK);
		if (hc.mode == MSB_HOST_PORTABLE)
			printf("  QEMU's figure runs inside an already running portable host and "
			       "reads the erofs from its RAM; msb exe's also pays for that host\n");
	}

	mkdir("bench/results", 0755);
	char path[256], stamp[32];
	time_t now = time(NULL);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", gmtime(&now));
	snprintf(path, sizeof(path), "bench/results/exe_start-%s-%s.json", mode, stamp);
	json_t *qj = json_null();
	if (qc_ok)
		qj = json_pack(
		    "{s:s, s:i, s:s, s:s, s:{s:f, s:f}, s:{s:f, s:f}, s:{s:f, s:f}, s:{s:f, s:f}, "
		    "s:f}",
		    "where",
		    hc.mode == MSB_HOST_PORTABLE
		        ? "nested KVM inside an already running benchmark portable host"
		        : "native KVM",
		    "runs", qc.runs, "measure",
		    "VMM fork/exec to the EXIT frame of `true`, after HELLO, SET_TIME, "
		    "ADD_ENTROPY, "
		    "SET_HOSTNAME, MOUNT_ROOT (disk 0, erofs, read-only) and EXEC; cold boot; the "
		    "kernel, initramfs and erofs copied into the host's RAM first",
		    "qemu", QEMU_COMPARE_CMD " " QEMU_COMPARE_DISK, "qemu_exec_ms", "median",
		    qc.qemu_exec_ms, "p90", qc.qemu_exec_p90_ms, "msb_vmm_exec_ms", "median",
		    qc.msb_exec_ms, "p90", qc.msb_exec_p90_ms, "hello_ms", "qemu", qc.qemu_boot_ms,
		    "msb_vmm", qc.msb_boot_ms, "mount_ms", "qemu", qc.qemu_mount_ms, "msb_vmm",
		    qc.msb_mount_ms, "msb_exe_over_qemu", r_qemu);
	json_t *cj = json_null(), *rj = json_null();
	if (have_crun) {
		cj = json_pack("{s:s, s:o, s:o, s:o}", "how", crun_how, "true_exit_ms",
		               stats(ct, runs), "echo_first_byte_ms", stats(cf, runs),
		               "echo_exit_ms", stats(ce, runs));
		rj = json_pack("{s:f, s:f}", "true_exit", r_true, "echo_first_byte", r_first);
	}
	json_t *j = json_pack(
	    "{s:s, s:s, s:s, s:i, s:{s:i, s:i}, s:{s:s, s:I}, s:f, s:s, s:{s:o, s:o, s:o}, s:o, "
	    "s:o, s:o, s:{s:f, s:f}, s:{s:o, s:o}}",
	    "bench", "exe_start", "host_mode", mode, "time", stamp, "runs", runs, "guest",
	    "mem_mib", 1024, "cpus", 1, "image", "name", IMAGE, "erofs_bytes",
	    (json_int_t)est.st_size, "first_use_ms", first_use, "measure",
	    "spawn to exit (and to the first stdout byte) of each command; stdin /dev/null, "
	    "stdout a pipe; 10 ms idle before each; rounds alternate which goes first",
	    "msb_exe", "true_exit_ms", stats(mt, runs), "echo_first_byte_ms", stats(mf, runs),
	    "echo_exit_ms", stats(me, runs), "crun", cj, "msb_over_crun", rj, "qemu_microvm", qj,
	    "targets", "msb_over_crun_max", TARGET_CRUN, "msb_over_qemu_max", TARGET_QEMU,
	    "msb_run", "own_vm_true_exit_ms", stats(rt, runs), "exec_into_up_true_exit_ms",
	    stats(xt, runs));
	if (!j || json_dump_file(j, path, JSON_INDENT(2)) < 0) {
		fprintf(stderr, "exe_start: cannot write %s\n", path);
		json_decref(j);
		goto out;
	}
	json_decref(j);
	printf("wrote %s\n", path);
	ret = qc_ok || no_qemu ? 0 : 1;
out:
	if (ret && !getenv("MSB_BENCH_KEEP"))
		fprintf(stderr, "exe_start: failed (MSB_BENCH_KEEP=1 keeps %s)\n", tmp);
	if (!getenv("MSB_BENCH_KEEP"))
		nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return ret;
}
