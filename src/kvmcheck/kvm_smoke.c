/*
 * msb-kvm-smoke: runs the self-test guest on /dev/kvm with the guest's
 * output on stdout and its input from stdin.
 *
 * It stands in for msb-vmm inside the portable host until the VMM exists and
 * stays as the test that a KVM works there: its stdout and stdin are the
 * portable host's byte stream, so what the guest prints reaches msb the way
 * the agent's protocol will.
 */
#include "tinyvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct stdio_ctx {
	char buf[512];
	size_t len;
};

static int flush_out(struct stdio_ctx *c)
{
	size_t off = 0;
	while (off < c->len) {
		ssize_t n = write(STDOUT_FILENO, c->buf + off, c->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		off += (size_t)n;
	}
	c->len = 0;
	return 0;
}

static int out_byte(void *ctx, uint8_t b)
{
	struct stdio_ctx *c = ctx;
	c->buf[c->len++] = (char)b;
	if (b == '\n' || c->len == sizeof(c->buf))
		return flush_out(c);
	return 0;
}

static int in_byte(void *ctx)
{
	int e = flush_out(ctx);
	if (e < 0)
		return e;
	for (;;) {
		unsigned char b;
		ssize_t n = read(STDIN_FILENO, &b, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		if (b != 0) /* 0 would mean end of input to the guest */
			return b;
	}
}

/* Reads at most TVM_MAX_GUEST bytes: the file may be a block device whose
 * size is rounded up to a sector with zeros, which the guest ignores. */
static int read_guest(const char *path, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	uint8_t *buf = malloc(TVM_MAX_GUEST);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	size_t got = 0;
	while (got < TVM_MAX_GUEST) {
		ssize_t n = read(fd, buf + got, TVM_MAX_GUEST - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			free(buf);
			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	*out = buf;
	*len = got;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: msb-kvm-smoke [--guest FILE] [--kvm DEVICE]\n"
	           "Runs msb's self-test guest on KVM: the guest enters user mode, makes a\n"
	           "SYSCALL, checks it reached CPL0, prints a greeting and echoes one line\n"
	           "of stdin upper-cased. Exit status 0 when all of that worked.\n"
	           "  --guest FILE   load the guest from FILE (default: the built-in one)\n"
	           "  --kvm DEVICE   the KVM device (default /dev/kvm)\n");
}

int main(int argc, char **argv)
{
	const char *guest_path = NULL, *kvm_path = "/dev/kvm";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--guest") && i + 1 < argc) {
			guest_path = argv[++i];
		} else if (!strcmp(argv[i], "--kvm") && i + 1 < argc) {
			kvm_path = argv[++i];
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}

	uint8_t *loaded = NULL;
	size_t len;
	const void *code;
	if (guest_path) {
		int e = read_guest(guest_path, &loaded, &len);
		if (e < 0) {
			fprintf(stderr, "msb-kvm-smoke: cannot read %s: %s\n", guest_path,
			        strerror(-e));
			return 1;
		}
		code = loaded;
	} else {
		code = tvm_builtin_guest(&len);
	}

	int kvm = open(kvm_path, O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		fprintf(stderr, "msb-kvm-smoke: cannot open %s: %s\n", kvm_path, strerror(errno));
		free(loaded);
		return 1;
	}
	struct stdio_ctx ctx = {.len = 0};
	struct tvm_io io = {.out_byte = out_byte, .in_byte = in_byte, .ctx = &ctx};
	struct tvm_result res;
	int e = tvm_run(kvm, code, len, &io, &res);
	int fe = flush_out(&ctx);
	close(kvm);
	free(loaded);
	if (e < 0) {
		fprintf(stderr, "msb-kvm-smoke: %s\n", res.detail);
		return 1;
	}
	if (fe < 0) {
		fprintf(stderr, "msb-kvm-smoke: writing output: %s\n", strerror(-fe));
		return 1;
	}
	return 0;
}
