/*
 * Users the agent resolves in an image (src/agent/user.c): Docker's forms
 * against passwd and group texts, and the hostile shapes an image's author
 * can give those files. Under ASan/UBSan like every unit test.
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

#include "agent/user.h"

static const char PASSWD[] = "root:x:0:0:root:/root:/bin/sh\n"
                             "app:x:1000:1000::/home/app:/bin/sh\n"
                             "nohome:x:1001:1001::\n"
                             "short:x:1002:1002\n"
                             "dup:x:1003:1003::/first:/bin/sh\n"
                             "dup:x:1004:1004::/second:/bin/sh\n"
                             "alias:x:1000:7::/alias:/bin/sh\n";

static const char GROUP[] = "root:x:0:\n"
                            "wheel:x:10:bob,app\n"
                            "app:x:1000:app\n" /* its primary group, listed: once */
                            "ops:x:20:app,app\n"
                            "appx:x:30:appx,ap,apps\n" /* near misses */
                            "nomembers:x:40\n";

struct res {
	int e;
	struct user_ids ids;
	char msg[1025];
};

static struct res *resolve_in(const char *spec, const char *pw, const char *gr)
{
	static struct res r;
	memset(&r, 0, sizeof(r));
	r.e = user_resolve(spec, pw, pw ? strlen(pw) : 0, gr, gr ? strlen(gr) : 0, &r.ids, r.msg,
	                   sizeof(r.msg));
	return &r;
}

static struct res *resolve(const char *spec)
{
	return resolve_in(spec, PASSWD, GROUP);
}

static void assert_ids(const struct res *r, uid_t uid, gid_t gid, const char *home, size_t ngroups,
                       const gid_t *groups)
{
	if (r->e)
		fail_msg("resolve: %d %s", r->e, r->msg);
	assert_int_equal(r->ids.uid, uid);
	assert_int_equal(r->ids.gid, gid);
	assert_string_equal(r->ids.home, home);
	assert_int_equal(r->ids.ngroups, ngroups);
	for (size_t i = 0; i < ngroups; i++)
		assert_int_equal(r->ids.groups[i], groups[i]);
}

static void test_names(void **state)
{
	(void)state;
	assert_ids(resolve("app"), 1000, 1000, "/home/app", 3, (gid_t[]){1000, 10, 20});
	assert_ids(resolve("root"), 0, 0, "/root", 1, (gid_t[]){0});
	/* the first matching line wins */
	assert_ids(resolve("dup"), 1003, 1003, "/first", 1, (gid_t[]){1003});
	/* an empty or missing home is "/" */
	assert_ids(resolve("nohome"), 1001, 1001, "/", 1, (gid_t[]){1001});
	assert_ids(resolve("short"), 1002, 1002, "/", 1, (gid_t[]){1002});
	/* "name:" is the name alone, as runc reads it */
	assert_ids(resolve("app:"), 1000, 1000, "/home/app", 3, (gid_t[]){1000, 10, 20});
}

static void test_numbers(void **state)
{
	(void)state;
	/* a number is a uid: the first entry with it, and its groups */
	assert_ids(resolve("1000"), 1000, 1000, "/home/app", 3, (gid_t[]){1000, 10, 20});
	assert_ids(resolve("0"), 0, 0, "/root", 1, (gid_t[]){0});
	assert_ids(resolve("00001000"), 1000, 1000, "/home/app", 3, (gid_t[]){1000, 10, 20});
	/* not in passwd: gid 0, HOME "/" */
	assert_ids(resolve("1234"), 1234, 0, "/", 1, (gid_t[]){0});
	assert_ids(resolve("2147483647"), 2147483647u, 0, "/", 1, (gid_t[]){0});
	/* out of range, however long */
	struct res *r = resolve("2147483648");
	assert_int_equal(r->e, -ERANGE);
	assert_non_null(strstr(r->msg, "0-2147483647"));
	assert_int_equal(resolve("4294967295")->e, -ERANGE);
	assert_int_equal(resolve("99999999999999999999999999999")->e, -ERANGE);
	assert_int_equal(resolve("app:2147483648")->e, -ERANGE);
	assert_int_equal(resolve("1:99999999999999999999")->e, -ERANGE);
	/* signs and spaces make a name, which is not there */
	assert_int_equal(resolve("-1")->e, -ENOENT);
	assert_int_equal(resolve("+5")->e, -ENOENT);
	assert_int_equal(resolve(" 5")->e, -ENOENT);
}

static void test_groups(void **state)
{
	(void)state;
	/* an explicit group is the only one */
	assert_ids(resolve("app:10"), 1000, 10, "/home/app", 1, (gid_t[]){10});
	assert_ids(resolve("app:wheel"), 1000, 10, "/home/app", 1, (gid_t[]){10});
	assert_ids(resolve("1234:wheel"), 1234, 10, "/", 1, (gid_t[]){10});
	assert_ids(resolve("1234:55"), 1234, 55, "/", 1, (gid_t[]){55});
	/* a gid need not be in the group file, a name must */
	assert_ids(resolve("app:555"), 1000, 555, "/home/app", 1, (gid_t[]){555});
	struct res *r = resolve("app:nosuch");
	assert_int_equal(r->e, -ENOENT);
	assert_string_equal(r->msg,
	                    "unable to find group nosuch: no matching entries in group file");
	/* a number is a gid, even with a group named like it (runc) */
	assert_ids(resolve_in("app:7", PASSWD, "7:x:70:\n"), 1000, 7, "/home/app", 1, (gid_t[]){7});
	/* no group file: numbers only */
	assert_ids(resolve_in("app", PASSWD, NULL), 1000, 1000, "/home/app", 1, (gid_t[]){1000});
	assert_ids(resolve_in("app:9", PASSWD, NULL), 1000, 9, "/home/app", 1, (gid_t[]){9});
	assert_int_equal(resolve_in("app:wheel", PASSWD, NULL)->e, -ENOENT);
	/* a uid found by number under another name: that entry's groups */
	assert_ids(resolve_in("1000", "alias:x:1000:7::/alias:/bin/sh\n", GROUP), 1000, 7, "/alias",
	           1, (gid_t[]){7});
}

static void test_missing(void **state)
{
	(void)state;
	struct res *r = resolve("nosuch");
	assert_int_equal(r->e, -ENOENT);
	assert_string_equal(r->msg,
	                    "unable to find user nosuch: no matching entries in passwd file");
	r = resolve("nosuch:wheel");
	assert_int_equal(r->e, -ENOENT);
	assert_string_equal(r->msg,
	                    "unable to find user nosuch: no matching entries in passwd file");
	/* no passwd file at all, or an empty one */
	r = resolve_in("app", NULL, NULL);
	assert_int_equal(r->e, -ENOENT);
	assert_string_equal(r->msg, "unable to find user app: no matching entries in passwd file");
	assert_int_equal(resolve_in("app", "", "")->e, -ENOENT);
	assert_ids(resolve_in("0", NULL, NULL), 0, 0, "/", 1, (gid_t[]){0});
	/* no user before the ':' */
	assert_int_equal(resolve(":10")->e, -EINVAL);
	assert_int_equal(resolve(":")->e, -EINVAL);
	/* names are matched whole */
	assert_int_equal(resolve("ap")->e, -ENOENT);
	assert_int_equal(resolve("appx")->e, -ENOENT);
	assert_int_equal(resolve("APP")->e, -ENOENT);
}

static void test_malformed_lines(void **state)
{
	(void)state;
	/* each bad line is skipped whole; the good ones around it still count */
	static const char pw[] = "# a comment\n"
	                         "\n"
	                         "   \t\r\n"
	                         "bad\n"
	                         "two:x\n"
	                         "three:x:5\n"
	                         "notnum:x:abc:1::/h:/bin/sh\n"
	                         "notnum2:x:1:1a::/h:/bin/sh\n"
	                         "emptyuid:x::1::/h:/bin/sh\n"
	                         ":x:5:5::/nameless:/bin/sh\n"
	                         "eight:x:6:6:a:/h:/bin/sh:extra\n"
	                         "big:x:4294967296:0::/h:/bin/sh\n"
	                         "big2:x:2147483648:0::/h:/bin/sh\n"
	                         "gbig:x:9:99999999999999999999::/h:/bin/sh\n"
	                         "neg:x:-1:0::/h:/bin/sh\n"
	                         "  spaced:x:3:3::/s:/bin/sh  \r\n"
	                         "last:x:4:4::/l:/bin/sh"; /* no final newline */
	static const char *const skipped[] = {
	    "bad", "two",  "three", "notnum", "notnum2", "emptyuid",   "eight",
	    "big", "big2", "gbig",  "neg",    "#",       "# a comment"};
	for (size_t i = 0; i < sizeof(skipped) / sizeof(skipped[0]); i++) {
		struct res *r = resolve_in(skipped[i], pw, GROUP);
		if (r->e != -ENOENT)
			fail_msg("%s: %d", skipped[i], r->e);
	}
	/* the nameless line does not make uid 5 known */
	assert_ids(resolve_in("5", pw, GROUP), 5, 0, "/", 1, (gid_t[]){0});
	assert_ids(resolve_in("spaced", pw, GROUP), 3, 3, "/s", 1, (gid_t[]){3});
	assert_ids(resolve_in("last", pw, GROUP), 4, 4, "/l", 1, (gid_t[]){4});

	/* a NUL inside a line */
	static const char nul[] = "hid\0den:x:1:1::/h:/bin/sh\nok:x:2:2::/o:/bin/sh\n";
	struct user_ids ids;
	char msg[256];
	assert_int_equal(user_resolve("hid", nul, sizeof(nul) - 1, NULL, 0, &ids, msg, sizeof(msg)),
	                 -ENOENT);
	assert_int_equal(user_resolve("ok", nul, sizeof(nul) - 1, NULL, 0, &ids, msg, sizeof(msg)),
	                 0);
	assert_int_equal(ids.uid, 2);

	/* group lines: bad gids, too many fields, no name; the rest still count */
	static const char gr[] = "badgid:x:abc:app\n"
	                         "biggid:x:2147483648:app\n"
	                         "five:x:50:app:extra\n"
	                         ":x:60:app\n"
	                         "good:x:70:app\n"
	                         "   \n"
	                         "# com:x:80:app\n";
	assert_ids(resolve_in("app", PASSWD, gr), 1000, 1000, "/home/app", 2, (gid_t[]){1000, 70});
	assert_int_equal(resolve_in("app:badgid", PASSWD, gr)->e, -ENOENT);
	assert_int_equal(resolve_in("app:five", PASSWD, gr)->e, -ENOENT);
	assert_ids(resolve_in("app:good", PASSWD, gr), 1000, 70, "/home/app", 1, (gid_t[]){70});
}

static void test_long_lines(void **state)
{
	(void)state;
	/* a line of exactly USER_MAX_LINE bytes counts, one byte more does not */
	size_t cap = 3 * USER_MAX_LINE;
	char *pw = malloc(cap);
	assert_non_null(pw);
	const char *head = "long:x:7:7::/", *tail = ":/bin/sh\n";
	size_t pad = USER_MAX_LINE - strlen(head) - strlen(tail) + 1; /* + 1: the newline */
	int n = snprintf(pw, cap, "%s", head);
	memset(pw + n, 'h', pad);
	snprintf(pw + n + pad, cap - n - pad, "%s", tail);
	assert_int_equal(strlen(pw), USER_MAX_LINE + 1);
	struct res *r = resolve_in("long", pw, NULL);
	assert_int_equal(r->e, 0);
	assert_int_equal(strlen(r->ids.home), pad + 1);
	assert_int_equal(r->ids.home[0], '/');
	/* one byte more: skipped, and the next line still read */
	n = snprintf(pw, cap, "%s", head);
	memset(pw + n, 'h', pad + 1);
	snprintf(pw + n + pad + 1, cap - n - pad - 1, "%sok:x:1:1::/ok:/bin/sh\n", tail);
	assert_int_equal(resolve_in("long", pw, NULL)->e, -ENOENT);
	assert_ids(resolve_in("ok", pw, NULL), 1, 1, "/ok", 1, (gid_t[]){1});
	/* a line of nothing but colons: too many fields */
	memset(pw, ':', USER_MAX_LINE);
	pw[USER_MAX_LINE] = '\0';
	assert_int_equal(resolve_in("app", pw, NULL)->e, -ENOENT);
	free(pw);

	/* USER_MAX_GROUPS groups in all, the primary one counted */
	size_t gcap = (size_t)(USER_MAX_GROUPS + 1) * 32;
	char *gr = malloc(gcap);
	assert_non_null(gr);
	size_t off = 0;
	for (int i = 0; i < USER_MAX_GROUPS - 1; i++)
		off += (size_t)snprintf(gr + off, gcap - off, "g%d:x:%d:app\n", i, 2000 + i);
	r = resolve_in("app", PASSWD, gr);
	assert_int_equal(r->e, 0);
	assert_int_equal(r->ids.ngroups, USER_MAX_GROUPS);
	assert_int_equal(r->ids.groups[USER_MAX_GROUPS - 1], 2000 + USER_MAX_GROUPS - 2);
	snprintf(gr + off, gcap - off, "one-more:x:9999:app\n");
	r = resolve_in("app", PASSWD, gr);
	assert_int_equal(r->e, -E2BIG);
	assert_non_null(strstr(r->msg, "more than"));
	free(gr);
}

static void test_read_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/msb-test-user-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128], *buf;
	size_t len;
	/* missing: no entries */
	snprintf(path, sizeof(path), "%s/none", dir);
	assert_int_equal(user_read_file(path, &buf, &len), 0);
	assert_null(buf);
	assert_int_equal(len, 0);
	/* a FIFO (refused without blocking) and a directory */
	snprintf(path, sizeof(path), "%s/fifo", dir);
	assert_int_equal(mkfifo(path, 0644), 0);
	assert_int_equal(user_read_file(path, &buf, &len), -EINVAL);
	unlink(path);
	assert_int_equal(user_read_file(dir, &buf, &len), -EINVAL);
	assert_null(buf);
	/* a device */
	assert_int_equal(user_read_file("/dev/zero", &buf, &len), -EINVAL);
	/* exactly the cap, and one byte over */
	snprintf(path, sizeof(path), "%s/passwd", dir);
	char *big = malloc(USER_MAX_FILE + 1);
	assert_non_null(big);
	memset(big, '\n', USER_MAX_FILE + 1);
	memcpy(big, "a:x:1:2::/a:/bin/sh", 19);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, big, USER_MAX_FILE), USER_MAX_FILE);
	assert_int_equal(user_read_file(path, &buf, &len), 0);
	assert_int_equal(len, USER_MAX_FILE);
	assert_int_equal(buf[len], '\0');
	struct user_ids ids;
	char msg[256];
	assert_int_equal(user_resolve("a", buf, len, NULL, 0, &ids, msg, sizeof(msg)), 0);
	assert_int_equal(ids.gid, 2);
	free(buf);
	assert_int_equal(write(fd, "\n", 1), 1);
	close(fd);
	assert_int_equal(user_read_file(path, &buf, &len), -EFBIG);
	assert_null(buf);
	unlink(path);
	/* a symlink is followed (the child reads in its chroot) */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	char link[160];
	snprintf(link, sizeof(link), "%s/link", dir);
	assert_int_equal(symlink("passwd", link), 0);
	assert_int_equal(user_read_file(link, &buf, &len), 0);
	assert_int_equal(len, 1);
	free(buf);
	unlink(link);
	unlink(path);
	rmdir(dir);
	free(big);
}

static void test_env(void **state)
{
	(void)state;
	char *with[] = {"PATH=/bin", "HOME=/mine", NULL};
	assert_ptr_equal(user_env(with, "/home/app"), with);
	char *empty_home[] = {"HOME=", NULL};
	assert_ptr_equal(user_env(empty_home, "/home/app"), empty_home);
	char *without[] = {"PATH=/bin", "HOMEDIR=/x", NULL};
	char **v = user_env(without, "/home/app");
	assert_non_null(v);
	assert_ptr_not_equal(v, without);
	assert_string_equal(v[0], "PATH=/bin");
	assert_string_equal(v[1], "HOMEDIR=/x");
	assert_string_equal(v[2], "HOME=/home/app");
	assert_null(v[3]);
	free(v);
	char *none[] = {NULL};
	v = user_env(none, "/");
	assert_string_equal(v[0], "HOME=/");
	assert_null(v[1]);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),           cmocka_unit_test(test_numbers),
	    cmocka_unit_test(test_groups),          cmocka_unit_test(test_missing),
	    cmocka_unit_test(test_malformed_lines), cmocka_unit_test(test_long_lines),
	    cmocka_unit_test(test_read_file),       cmocka_unit_test(test_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
