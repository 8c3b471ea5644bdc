/*
 * Host selection: native /dev/kvm or the portable host.
 *
 * The decision comes from a self-test, not from names: a tiny guest
 * (src/kvmcheck) enters user mode and makes a SYSCALL that must land at CPL0.
 * PVM and other KVMs that cannot run an unmodified Linux user space fail it.
 * The result is cached per boot (and per /dev/kvm identity and access), so
 * the test runs once, and msb says which mode it uses when it decides.
 */
#include "msb.h"
#include "err.h"
#include "fsutil.h"
#include "clock.h"
#include "../../kvmcheck/tinyvm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KVM_PATH        "/dev/kvm"
#define SELFTEST_MS     10000 /* the guest runs a few dozen instructions */
#define CACHE_VERSION   "msb-host-probe-v1"
#define PORTABLE_SUFFIX "using the portable host (software emulation, slower)"

static void child_selftest(int kvm_fd, int out_fd)
{
	size_t len;
	const void *code = tvm_builtin_guest(&len);
	struct tvm_result res;
	int e = tvm_run(kvm_fd, code, len, NULL, &res);
	if (e == 0)
		snprintf(res.detail, sizeof(res.detail), "ok");
	ssize_t w = write(out_fd, res.detail, strnlen(res.detail, sizeof(res.detail)));
	(void)w;
	_exit(e == 0 ? 0 : 1);
}

int msb_kvm_selftest(const char *kvm_path, char *detail, size_t dlen)
{
	snprintf(detail, dlen, "ok");
	int kvm = open(kvm_path, O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		int e = errno;
		snprintf(detail, dlen, "cannot open %s: %s", kvm_path, strerror(e));
		return -e;
	}
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		int e = errno;
		close(kvm);
		snprintf(detail, dlen, "pipe: %s", strerror(e));
		return -e;
	}
	/* A child runs the guest, so a KVM that hangs or misbehaves costs a
	 * kill, never msb itself. */
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(kvm);
		close(pfd[0]);
		close(pfd[1]);
		snprintf(detail, dlen, "fork: %s", strerror(e));
		return -e;
	}
	if (pid == 0) {
		close(pfd[0]);
		child_selftest(kvm, pfd[1]);
	}
	close(kvm);
	close(pfd[1]);
	char buf[200];
	size_t got = 0;
	long deadline = mono_ms() + SELFTEST_MS;
	int timed_out = 0;
	for (;;) {
		long left = deadline - mono_ms();
		if (left <= 0) {
			timed_out = 1;
			break;
		}
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			timed_out = r == 0;
			break;
		}
		ssize_t n = read(pfd[0], buf + got, sizeof(buf) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (got += (size_t)n) == sizeof(buf) - 1)
			break;
	}
	close(pfd[0]);
	buf[got] = 0;
	if (timed_out)
		kill(pid, SIGKILL);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (timed_out) {
		snprintf(detail, dlen, "the self-test guest did not finish within %d s",
		         SELFTEST_MS / 1000);
		return -ETIMEDOUT;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (WIFSIGNALED(st))
		snprintf(detail, dlen, "the self-test was killed by signal %d", WTERMSIG(st));
	else
		snprintf(detail, dlen, "%s", got ? buf : "the self-test failed");
	return -ENODEV;
}

/* Identifies this boot and this /dev/kvm, so a cached answer is reused only
 * while nothing it depends on can have changed. */
static void cache_key(char *key, size_t len)
{
	char boot[64] = "unknown";
	if (fs_read_small("/proc/sys/kernel/random/boot_id", boot, sizeof(boot)) > 0)
		boot[strcspn(boot, "\n")] = 0;
	struct stat st;
	if (stat(KVM_PATH, &st) < 0)
		snprintf(key, len, "%s %s none", CACHE_VERSION, boot);
	else
		snprintf(key, len, "%s %s %llx:%llx:%d", CACHE_VERSION, boot,
		         (unsigned long long)st.st_rdev, (unsigned long long)st.st_ino,
		         access(KVM_PATH, R_OK | W_OK) == 0);
}

struct probe {
	int ok;
	char detail[400];
};

static int cache_load(const char *path, const char *key, struct probe *p)
{
	char buf[1024];
	if (fs_read_small(path, buf, sizeof(buf)) <= 0)
		return -ENOENT;
	char *nl = strchr(buf, '\n');
	if (!nl || (size_t)(nl - buf) != strlen(key) || strncmp(buf, key, strlen(key)))
		return -ESTALE;
	char *rest = nl + 1;
	if ((rest[0] != '0' && rest[0] != '1') || rest[1] != ' ')
		return -ESTALE;
	p->ok = rest[0] == '1';
	snprintf(p->detail, sizeof(p->detail), "%s", rest + 2);
	p->detail[strcspn(p->detail, "\n")] = 0;
	return 0;
}

static void cache_store(const char *path, const char *key, const struct probe *p)
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "%s\n%d %s\n", key, p->ok, p->detail);
	if (n > 0 && (size_t)n < sizeof(buf))
		fs_write_atomic(path, buf, (size_t)n); /* a cache: failing to write it is fine */
}

static void run_probe(struct probe *p)
{
	p->ok = msb_kvm_selftest(KVM_PATH, p->detail, sizeof(p->detail)) == 0;
}

/* Why /dev/kvm cannot be used, as the start of a sentence. */
static void unusable_reason(const struct probe *p, char *buf, size_t len)
{
	struct stat st;
	if (stat(KVM_PATH, &st) < 0)
		snprintf(buf, len, "this machine has no %s", KVM_PATH);
	else if (access(KVM_PATH, R_OK | W_OK) < 0)
		snprintf(buf, len,
		         "%s (for native speed, give your user access to %s, e.g. the kvm group)",
		         p->detail, KVM_PATH);
	else if (access("/sys/module/kvm_pvm", F_OK) == 0)
		snprintf(buf, len, "%s here is PVM and cannot run standard guests (%s)", KVM_PATH,
		         p->detail);
	else
		snprintf(buf, len, "%s cannot run standard guests (%s)", KVM_PATH, p->detail);
}

int msb_host_select(struct msb_host_choice *out, struct msb_err *err)
{
	memset(out, 0, sizeof(*out));
	const char *env = getenv("MSB_HOST");
	if (!env || !*env)
		env = "auto";
	if (strcmp(env, "auto") && strcmp(env, "native") && strcmp(env, "portable"))
		return err_set(err, -EINVAL, "MSB_HOST=%s is not one of native, portable, auto",
		               env);
	if (!strcmp(env, "portable")) {
		out->mode = MSB_HOST_PORTABLE;
		out->forced = 1;
		snprintf(out->why, sizeof(out->why), "MSB_HOST=portable: %s", PORTABLE_SUFFIX);
		return 0;
	}

	char cache[4096], key[256];
	struct probe p = {0};
	cache_key(key, sizeof(key));
	int have_cache = msb_cache_dir(cache, sizeof(cache)) == 0;
	if (have_cache &&
	    fs_path(cache + strlen(cache), sizeof(cache) - strlen(cache), "/host-probe") != 0)
		have_cache = 0;
	if (have_cache && cache_load(cache, key, &p) == 0) {
		out->from_cache = 1;
	} else {
		run_probe(&p);
		if (have_cache) {
			char dir[4096];
			if (msb_cache_dir(dir, sizeof(dir)) == 0 && fs_mkdir_p(dir) == 0)
				cache_store(cache, key, &p);
		}
	}

	char reason[512];
	unusable_reason(&p, reason, sizeof(reason));
	if (!strcmp(env, "native")) {
		out->forced = 1;
		if (!p.ok)
			return err_set(err, -ENODEV,
			               "MSB_HOST=native, but %s; unset MSB_HOST (or set "
			               "MSB_HOST=portable) to use the portable host",
			               reason);
		out->mode = MSB_HOST_NATIVE;
		snprintf(out->why, sizeof(out->why), "MSB_HOST=native: using %s directly",
		         KVM_PATH);
		return 0;
	}
	if (p.ok) {
		out->mode = MSB_HOST_NATIVE;
		snprintf(out->why, sizeof(out->why),
		         "%s passed the self-test: using it directly (native)", KVM_PATH);
	} else {
		out->mode = MSB_HOST_PORTABLE;
		snprintf(out->why, sizeof(out->why), "%s: %s", reason, PORTABLE_SUFFIX);
	}
	return 0;
}
