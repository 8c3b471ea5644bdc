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
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/vmproc/rundir.h"
#include "fsutil.h"

static char home[256];

static int setup(void **state)
{
	(void)state;
	snprintf(home, sizeof(home), "/tmp/msb-test-rundir-XXXXXX");
	if (!mkdtemp(home))
		return -1;
	setenv("MSB_HOME", home, 1);
	return 0;
}

static int exists(const char *fmt, const char *a, const char *b)
{
	char p[8192];
	snprintf(p, sizeof(p), fmt, a, b);
	return access(p, F_OK) == 0;
}

static void test_create_and_remove(void **state)
{
	(void)state;
	struct rundir r;
	struct msb_err err = {0};
	assert_int_equal(rundir_create(&r, "t", &err), 0);
	assert_true(exists("%s/%s", r.path, "lock"));
	assert_true(exists("%s%s", r.log, ""));
	/* a live one survives garbage collection */
	rundir_gc(home);
	assert_true(exists("%s/%s", r.path, "lock"));
	rundir_remove(&r, 1);
	assert_false(exists("%s%s", r.path, ""));
	assert_true(exists("%s%s", r.log, "")); /* kept on request */
	unlink(r.log);
}

static void test_gc_removes_stale(void **state)
{
	(void)state;
	char dir[512], lock[600], log[600];
	snprintf(dir, sizeof(dir), "%s/run/dead-1", home);
	snprintf(lock, sizeof(lock), "%s/lock", dir);
	snprintf(log, sizeof(log), "%s/log/dead-1.log", home);
	assert_int_equal(fs_mkdir_p(dir), 0);
	char logdir[512];
	snprintf(logdir, sizeof(logdir), "%s/log", home);
	assert_int_equal(fs_mkdir_p(logdir), 0);
	close(open(lock, O_CREAT | O_WRONLY, 0600));
	close(open(log, O_CREAT | O_WRONLY, 0600));
	rundir_gc(home);
	assert_int_not_equal(access(dir, F_OK), 0);
	assert_int_not_equal(access(log, F_OK), 0);
}

static void test_fs_write_atomic(void **state)
{
	(void)state;
	char p[512], buf[32];
	snprintf(p, sizeof(p), "%s/f", home);
	assert_int_equal(fs_write_atomic(p, "abc", 3), 0);
	assert_int_equal(fs_read_small(p, buf, sizeof(buf)), 3);
	assert_string_equal(buf, "abc");
	assert_int_equal(fs_path(buf, 4, "%s", "abcd"), -ENAMETOOLONG);
	unlink(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create_and_remove),
	    cmocka_unit_test(test_gc_removes_stale),
	    cmocka_unit_test(test_fs_write_atomic),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
