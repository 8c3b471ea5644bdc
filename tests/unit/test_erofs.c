/*
 * The erofs writer: what it refuses, how it normalises paths and replaces
 * entries, and that erofs-utils (fsck.erofs, dump.erofs) read what it writes
 * back the same: contents, types, owners, modes, device numbers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shell.h"
#include "lib/image/erofs.h"

struct mem {
	const char *data;
	size_t len, off, cut; /* cut: end the data early here (0: never) */
};

static ssize_t mem_read(void *arg, void *buf, size_t len)
{
	struct mem *m = arg;
	size_t end = m->cut ? m->cut : m->len;
	size_t n = end - m->off < len ? end - m->off : len;
	memcpy(buf, m->data + m->off, n);
	m->off += n;
	return (ssize_t)n;
}

static int add_text(struct erofs_writer *w, const char *path, const char *text, uint32_t uid)
{
	struct erofs_meta m = {.mode = 0640, .uid = uid, .gid = uid + 1, .mtime = 1700000000};
	struct mem src = {.data = text, .len = strlen(text)};
	char why[300];
	return erofs_add_file(w, path, &m, src.len, mem_read, &src, why, sizeof(why));
}

static void test_image_reads_back(void **state)
{
	(void)state;
	char img[] = "/tmp/msb-test-erofs-XXXXXX";
	int fd = mkstemp(img);
	assert_true(fd >= 0);
	struct erofs_writer *w = erofs_writer_new(fd);
	char why[300];
	/* normalised: no escape above the root, no empty or "." parts */
	assert_int_equal(add_text(w, "/a/../../etc//./passwd", "root:x:0:0::/root:/bin/sh\n", 0),
	                 0);
	assert_int_equal(add_text(w, "deep/er/file", "deep\n", 1234), 0); /* parents made */
	/* a later entry replaces an earlier one, as a later layer does */
	assert_int_equal(add_text(w, "f", "old\n", 0), 0);
	struct erofs_meta dm = {.mode = 0700, .uid = 7, .gid = 8};
	assert_int_equal(erofs_add_dir(w, "f", &dm, why, sizeof(why)), 0);
	assert_int_equal(add_text(w, "f/inside", "in\n", 0), 0);
	assert_int_equal(erofs_add_dir(w, "gone", &dm, why, sizeof(why)), 0);
	assert_int_equal(add_text(w, "gone/child", "x\n", 0), 0);
	assert_int_equal(add_text(w, "gone", "now a file\n", 0), 0);
	struct erofs_meta lm = {.mode = 0777};
	assert_int_equal(erofs_add_symlink(w, "etc/link", &lm, "passwd", why, sizeof(why)), 0);
	struct erofs_meta cm = {.mode = S_IFCHR | 0666, .rdev_major = 1, .rdev_minor = 300};
	assert_int_equal(erofs_add_special(w, "dev/odd", &cm, why, sizeof(why)), 0);
	struct erofs_meta fm = {.mode = S_IFIFO | 0600};
	assert_int_equal(erofs_add_special(w, "fifo", &fm, why, sizeof(why)), 0);
	/* a directory big enough for several blocks, names sorting before "." */
	for (int i = 0; i < 300; i++) {
		char p[64];
		snprintf(p, sizeof(p), "many/%c-a-rather-long-file-name-%03d", i % 2 ? '-' : 'z',
		         i);
		assert_int_equal(add_text(w, p, "", 0), 0);
	}
	assert_int_equal(erofs_writer_finish(w, why, sizeof(why)), 0);
	erofs_writer_free(w);
	close(fd);

	char cmd[512];
	snprintf(cmd, sizeof(cmd), "fsck.erofs %s 2>&1", img);
	run(cmd);
	snprintf(cmd, sizeof(cmd), "dump.erofs --path=/deep/er/file %s", img);
	char *o = run(cmd);
	assert_non_null(strstr(o, "Uid: 1234   Gid: 1235  Access: 0640"));
	snprintf(cmd, sizeof(cmd), "dump.erofs --path=/f %s", img);
	assert_non_null(strstr(run(cmd), "Uid: 7   Gid: 8  Access: 0700"));
	char dir[] = "/tmp/msb-test-erofs-x-XXXXXX";
	assert_non_null(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd),
	         "fsck.erofs --extract=%s/t %s >/dev/null 2>&1 && cd %s/t && "
	         "cat etc/passwd f/inside gone deep/er/file && readlink etc/link && "
	         "stat -c '%%F %%t,%%T' dev/odd fifo && ls many | wc -l && ls many | head -1 && "
	         "test ! -e a",
	         dir, img, dir);
	o = run(cmd);
	assert_string_equal(o, "root:x:0:0::/root:/bin/sh\nin\nnow a file\ndeep\npasswd\n"
	                       "character special file 1,12c\nfifo 0,0\n300\n"
	                       "--a-rather-long-file-name-001\n");
	snprintf(cmd, sizeof(cmd), "rm -rf %s %s", dir, img);
	run(cmd);
}

static void test_refusals(void **state)
{
	(void)state;
	char img[] = "/tmp/msb-test-erofs-XXXXXX";
	int fd = mkstemp(img);
	struct erofs_writer *w = erofs_writer_new(fd);
	char why[300], name[300];
	memset(name, 'n', 256);
	name[256] = 0;
	assert_int_equal(add_text(w, name, "x", 0), -ENAMETOOLONG);
	char deep[2 * 200 + 1] = "";
	for (int i = 0; i < 129; i++)
		strcat(deep, "d/");
	assert_int_equal(add_text(w, deep, "x", 0), -ELOOP);
	assert_int_equal(add_text(w, "file", "x", 0), 0);
	assert_int_equal(add_text(w, "file/child", "x", 0), -ENOTDIR);
	struct mem short_src = {.data = "abcdef", .len = 6, .cut = 3};
	struct erofs_meta m = {.mode = 0644};
	assert_int_equal(erofs_add_file(w, "short", &m, 6, mem_read, &short_src, why, sizeof(why)),
	                 -EIO);
	assert_non_null(strstr(why, "ended early"));
	assert_true(erofs_add_symlink(w, "l", &m, "", why, sizeof(why)) < 0);
	assert_int_equal(erofs_add_special(w, "s", &m, why, sizeof(why)), -EINVAL);
	assert_int_equal(
	    erofs_add_special(w, "/", &(struct erofs_meta){.mode = S_IFIFO}, why, sizeof(why)),
	    -EISDIR);
	/* xattrs: only the namespaces images carry, bounded, on entries that exist */
	char big[EROFS_XATTR_MAX + 1] = {0};
	assert_int_equal(erofs_set_xattr(w, "nope", "user.a", "v", 1, why, sizeof(why)), -ENOENT);
	assert_int_equal(
	    erofs_set_xattr(w, "file", "system.posix_acl_access", "v", 1, why, sizeof(why)),
	    -EOPNOTSUPP);
	assert_int_equal(erofs_set_xattr(w, "file", "user.", "v", 1, why, sizeof(why)), -E2BIG);
	assert_int_equal(erofs_set_xattr(w, "file", "user.a", big, sizeof(big), why, sizeof(why)),
	                 -E2BIG);
	for (int i = 0; i < 3; i++) /* replacing keeps one copy: no growth */
		assert_int_equal(erofs_set_xattr(w, "file", "user.a", big, 1500, why, sizeof(why)),
		                 0);
	assert_int_equal(erofs_set_xattr(w, "file", "user.b", big, 1000, why, sizeof(why)), -E2BIG);
	erofs_writer_free(w);
	close(fd);
	unlink(img);
}

/* Layers: whiteouts remove, an opaque directory hides what lower layers
 * put there but not its own layer's entries; hard links share data. */
static void test_layers_and_links(void **state)
{
	(void)state;
	char img[] = "/tmp/msb-test-erofs-XXXXXX";
	int fd = mkstemp(img);
	struct erofs_writer *w = erofs_writer_new(fd);
	char why[300];
	erofs_set_layer(w, 0);
	assert_int_equal(add_text(w, "etc/a", "a0\n", 0), 0);
	assert_int_equal(add_text(w, "etc/b", "b0\n", 0), 0);
	assert_int_equal(add_text(w, "opt/old", "o\n", 0), 0);
	assert_int_equal(add_text(w, "bin/tool", "tool\n", 0), 0);
	assert_int_equal(erofs_add_hardlink(w, "bin/alias", "bin/tool", why, sizeof(why)), 0);
	assert_int_equal(erofs_add_hardlink(w, "etc/alias2", "bin/alias", why, sizeof(why)), 0);
	assert_int_equal(erofs_add_hardlink(w, "x", "nope", why, sizeof(why)), -ENOENT);
	erofs_set_layer(w, 1);
	assert_int_equal(add_text(w, "opt/new", "n\n", 0), 0); /* before the opaque marker */
	assert_int_equal(erofs_clear_dir(w, "opt", why, sizeof(why)), 0);
	assert_int_equal(erofs_remove(w, "etc/a", why, sizeof(why)), 0);
	assert_int_equal(erofs_remove(w, "bin/tool", why, sizeof(why)), 0); /* alias stays */
	assert_int_equal(erofs_remove(w, "not/there", why, sizeof(why)), 0);
	assert_int_equal(erofs_remove(w, "/", why, sizeof(why)), -EINVAL);
	assert_int_equal(erofs_writer_finish(w, why, sizeof(why)), 0);
	erofs_writer_free(w);
	close(fd);
	char dir[] = "/tmp/msb-test-erofs-x-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
	         "fsck.erofs --extract=%s/t %s >/dev/null 2>&1 && cd %s/t && "
	         "ls etc opt bin && cat bin/alias",
	         dir, img, dir);
	assert_string_equal(run(cmd), "bin:\nalias\n\netc:\nalias2\nb\n\nopt:\nnew\ntool\n");
	/* The two names left are one inode with two links. */
	snprintf(cmd, sizeof(cmd),
	         "dump.erofs --path=/bin/alias %s | grep -o 'NID: [0-9]*   Links: [0-9]*'; "
	         "dump.erofs --path=/etc/alias2 %s | grep -o 'NID: [0-9]*   Links: [0-9]*'",
	         img, img);
	const char *out = run(cmd);
	const char *nl = strchr(out, '\n');
	assert_non_null(nl);
	assert_non_null(strstr(out, "Links: 2\n"));
	assert_memory_equal(out, nl + 1, (size_t)(nl - out)); /* same NID, same count */

	snprintf(cmd, sizeof(cmd), "rm -rf %s %s", dir, img);
	run(cmd);
}

/* A file of 4 MiB that is mostly a hole stays mostly a hole in the image. */
static void test_sparse(void **state)
{
	(void)state;
	char img[] = "/tmp/msb-test-erofs-XXXXXX";
	int fd = mkstemp(img);
	struct erofs_writer *w = erofs_writer_new(fd);
	char why[300];
	size_t len = 4u << 20;
	char *data = calloc(1, len);
	memcpy(data + 5000, "middle", 6);
	memcpy(data + len - 3, "end", 3);
	struct mem src = {.data = data, .len = len};
	struct erofs_meta m = {.mode = 0644};
	assert_int_equal(erofs_add_file(w, "sparse", &m, len, mem_read, &src, why, sizeof(why)), 0);
	assert_int_equal(erofs_writer_finish(w, why, sizeof(why)), 0);
	erofs_writer_free(w);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(st.st_size > (off_t)len);
	assert_true(st.st_blocks * 512 < 256 * 1024); /* a few blocks, not 4 MiB */
	close(fd);
	char dir[] = "/tmp/msb-test-erofs-x-XXXXXX", cmd[512], out[600];
	assert_non_null(mkdtemp(dir));
	snprintf(out, sizeof(out), "%s/t/sparse", dir);
	snprintf(cmd, sizeof(cmd), "fsck.erofs --extract=%s/t %s >/dev/null 2>&1", dir, img);
	run(cmd);
	int e = open(out, O_RDONLY);
	char *back = malloc(len);
	assert_int_equal(read(e, back, len), (ssize_t)len);
	assert_memory_equal(back, data, len);
	close(e);
	free(back);
	free(data);
	snprintf(cmd, sizeof(cmd), "rm -rf %s %s", dir, img);
	run(cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_image_reads_back),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_layers_and_links),
	    cmocka_unit_test(test_sparse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
