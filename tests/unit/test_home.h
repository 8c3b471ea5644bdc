/*
 * A fresh temporary directory per test, for tests of code that keeps files
 * (the store, its records): @home, made by setup() and removed with all it
 * holds by teardown() (cmocka's per-test fixtures).
 */
#ifndef MSB_TEST_HOME_H
#define MSB_TEST_HOME_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

static char home[PATH_MAX];

static int setup(void **state)
{
	(void)state;
	snprintf(home, sizeof(home), "/tmp/msb-test-home-XXXXXX");
	assert_non_null(mkdtemp(home));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", home);
	return system(cmd);
}

#endif
