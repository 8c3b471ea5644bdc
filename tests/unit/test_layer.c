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

static int apply(struct erofs_writer *w, const char *path, unsigned index,
                 struct layer_stats *st, char *why, size_t len)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	int r = layer_apply(w, fd, index, st, why, len);
	close(fd);
	return r;
}

static void test_two_layers(void **state)
{
	(void)state;
	char d[] = "/tmp/msb-test-layer-XXXXXX", cmd[2048];
	assert_non_null(mkdtemp(d));
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_two_layers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
