/* For unit tests that check files with erofs-utils and friends: runs a
 * shell command, fails the test unless it exits 0, returns its output
 * (a static buffer, overwritten by the next call). Include after cmocka.h. */
#ifndef MSB_TEST_SHELL_H
#define MSB_TEST_SHELL_H

#include <stdio.h>

static char *run(const char *cmd)
{
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	static char out[8192];
	size_t n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	int st = pclose(p);
	if (st != 0)
		fail_msg("%s failed (%d): %s", cmd, st, out);
	return out;
}

#endif
