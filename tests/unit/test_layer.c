/*
 * Layers into erofs: two tar layers (gzip, then zstd) made by GNU tar,
 * applied in order; the image read back with fsck.erofs --extract. Checks
 * whiteouts, an opaque directory, a hard link, a symlink, a fifo, a member
 * named to climb out of the root (kept inside), and damaged input.
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
#include <unistd.h>

#include "shell.h"
#include "lib/image/layer.h"

static int apply(struct erofs_writer *w, const char *path, unsigned index, struct layer_stats *st,
                 char *why, size_t len)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	int r = layer_apply(w, fd, index, st, why, len);
	close(fd);
	return r;
}

/* Two layers in @d: l1.tgz and l2.tzst. */
static void make_layers(const char *d)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
	         "set -e; cd %s; mkdir -p l1/etc l1/opt l1/bin l2/etc l2/opt; "
	         "echo a1 > l1/etc/a; echo b1 > l1/etc/b; echo old > l1/opt/old; "
	         "echo tool > l1/bin/tool; ln l1/bin/tool l1/bin/alias; ln -s etc/b l1/lnk; "
	         "mkfifo l1/fifo; tar -C l1 -czf l1.tgz .; "
	         ": > l2/etc/.wh.a; : > l2/opt/.wh..wh..opq; echo new > l2/opt/new; "
	         "echo out > l2/escaped; "
	         "tar -C l2 -P --transform='s,^\\./escaped,../../escaped,' --zstd -cf l2.tzst .",
	         d);
	run(cmd);
}

static void test_two_layers(void **state)
{
	(void)state;
	char d[] = "/tmp/msb-test-layer-XXXXXX", cmd[2048];
	assert_non_null(mkdtemp(d));
	make_layers(d);
	char img[2100], l1[2100], l2[2100], why[300];
	snprintf(img, sizeof(img), "%s/img.erofs", d);
	snprintf(l1, sizeof(l1), "%s/l1.tgz", d);
	snprintf(l2, sizeof(l2), "%s/l2.tzst", d);
	int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0644);
	struct erofs_writer *w = erofs_writer_new(fd);
	struct layer_stats st;
	assert_int_equal(apply(w, l1, 0, &st, why, sizeof(why)), 0);
	assert_true(st.entries >= 9);
	assert_int_equal(apply(w, l2, 1, &st, why, sizeof(why)), 0);
	assert_int_equal(st.whiteouts, 2);
	assert_int_equal(erofs_writer_finish(w, why, sizeof(why)), 0);
	erofs_writer_free(w);
	close(fd);

	snprintf(cmd, sizeof(cmd),
	         "set -e; cd %s; fsck.erofs --extract=x img.erofs >/dev/null 2>&1; cd x; "
	         "ls etc opt; cat bin/alias escaped; readlink lnk; test -p fifo; "
	         "test ! -e ../escaped && echo ok",
	         d);
	assert_string_equal(run(cmd), "etc:\nb\n\nopt:\nnew\ntool\nout\netc/b\nok\n");

	/* damaged: cut short, and not an archive at all */
	snprintf(cmd, sizeof(cmd), "cd %s && head -c 100 l1.tgz > cut.tgz && echo hi > not.tar", d);
	run(cmd);
	char cut[2100], bad[2100];
	snprintf(cut, sizeof(cut), "%s/cut.tgz", d);
	snprintf(bad, sizeof(bad), "%s/not.tar", d);
	fd = open(img, O_RDWR | O_TRUNC);
	w = erofs_writer_new(fd);
	assert_true(apply(w, cut, 0, &st, why, sizeof(why)) < 0);
	if (!strstr(why, "damaged"))
		fail_msg("%s", why);
	assert_true(apply(w, bad, 0, &st, why, sizeof(why)) < 0);
	erofs_writer_free(w);
	close(fd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", d);
	run(cmd);
}

/* The whole image: the layers in order, then renamed into place; a bad
 * layer leaves nothing behind. */
static void test_build_image(void **state)
{
	(void)state;
	char d[] = "/tmp/msb-test-layer-XXXXXX", cmd[8192], p[3][2100], img[2100], why[400];
	assert_non_null(mkdtemp(d));
	make_layers(d);
	snprintf(cmd, sizeof(cmd), "echo hi > %s/not.tar", d);
	run(cmd);
	snprintf(p[0], sizeof(p[0]), "%s/l1.tgz", d);
	snprintf(p[1], sizeof(p[1]), "%s/l2.tzst", d);
	snprintf(p[2], sizeof(p[2]), "%s/not.tar", d);
	snprintf(img, sizeof(img), "%s/root.erofs", d);
	int fds[3];
	for (int i = 0; i < 3; i++)
		assert_true((fds[i] = open(p[i], O_RDONLY)) >= 0);
	assert_int_equal(layer_build_image(fds, 2, img, why, sizeof(why)), 0);
	snprintf(cmd, sizeof(cmd), "fsck.erofs %s >/dev/null 2>&1 && ls %s | grep -c tmp || true",
	         img, d);
	assert_string_equal(run(cmd), "0\n");

	char img2[2100];
	snprintf(img2, sizeof(img2), "%s/bad.erofs", d);
	lseek(fds[0], 0, SEEK_SET);
	int bad[2] = {fds[0], fds[2]};
	assert_true(layer_build_image(bad, 2, img2, why, sizeof(why)) < 0);
	if (strncmp(why, "layer 2: ", 9))
		fail_msg("%s", why);
	assert_int_equal(access(img2, F_OK), -1);
	snprintf(cmd, sizeof(cmd), "ls %s | grep -c tmp || true", d);
	assert_string_equal(run(cmd), "0\n");
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", d);
	run(cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_two_layers),
	    cmocka_unit_test(test_build_image),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
