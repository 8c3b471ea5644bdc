/* Image references: Docker's spellings, defaults, and what is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "lib/image/ref.h"

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void check(const char *in, const char *registry, const char *full)
{
	struct image_ref r;
	char why[400] = "", buf[600];
	assert_int_equal(image_ref_parse(in, &r, why, sizeof(why)), 0);
	assert_string_equal(r.registry, registry);
	assert_int_equal(image_ref_format(&r, buf, sizeof(buf)), 0);
	assert_string_equal(buf, full);
}

static void test_docker_spellings(void **state)
{
	(void)state;
	check("python", "registry-1.docker.io", "docker.io/library/python:latest");
	check("python:3.11", "registry-1.docker.io", "docker.io/library/python:3.11");
	check("library/python", "registry-1.docker.io", "docker.io/library/python:latest");
	check("docker.io/python", "registry-1.docker.io", "docker.io/library/python:latest");
	check("index.docker.io/owner/app:v1", "registry-1.docker.io", "docker.io/owner/app:v1");
	check("owner/app", "registry-1.docker.io", "docker.io/owner/app:latest");
	check("ghcr.io/owner/repo:tag", "ghcr.io", "ghcr.io/owner/repo:tag");
	check("localhost:5000/x", "localhost:5000", "localhost:5000/x:latest");
	check("localhost/x", "localhost", "localhost/x:latest");
	check("127.0.0.1:5000/a/b/c:1.0-rc_2", "127.0.0.1:5000", "127.0.0.1:5000/a/b/c:1.0-rc_2");
	check("[::1]:5000/x", "[::1]:5000", "[::1]:5000/x:latest");
	check("Registry.Example.com/x", "Registry.Example.com", "Registry.Example.com/x:latest");
	check("name@sha256:" D64, "registry-1.docker.io", "docker.io/library/name@sha256:" D64);
	check("a/b:t@sha256:" D64, "registry-1.docker.io", "docker.io/a/b:t@sha256:" D64);
	check("my-app__x.y", "registry-1.docker.io", "docker.io/library/my-app__x.y:latest");
	check("a---b", "registry-1.docker.io", "docker.io/library/a---b:latest");
	/* no '/': "localhost:5000" is a name and a tag, as for Docker */
	check("localhost:5000", "registry-1.docker.io", "docker.io/library/localhost:5000");

	struct image_ref r;
	char why[400];
	assert_int_equal(image_ref_parse("localhost:5000/x", &r, why, sizeof(why)), 0);
	assert_true(image_ref_is_loopback(&r));
	assert_int_equal(image_ref_parse("127.0.0.1:5000/x", &r, why, sizeof(why)), 0);
	assert_true(image_ref_is_loopback(&r));
	assert_int_equal(image_ref_parse("[::1]:5000/x", &r, why, sizeof(why)), 0);
	assert_true(image_ref_is_loopback(&r));
	assert_int_equal(image_ref_parse("ghcr.io/x", &r, why, sizeof(why)), 0);
	assert_false(image_ref_is_loopback(&r));
	assert_int_equal(image_ref_parse("localhost.evil.com/x", &r, why, sizeof(why)), 0);
	assert_false(image_ref_is_loopback(&r));
}

static void refused(const char *in, const char *says)
{
	struct image_ref r;
	char why[400] = "";
	assert_int_equal(image_ref_parse(in, &r, why, sizeof(why)), -EINVAL);
	if (!strstr(why, says))
		fail_msg("\"%s\": \"%s\" does not say \"%s\"", in, why, says);
}

static void test_bad_references(void **state)
{
	(void)state;
	refused("", "empty");
	refused("Python", "lowercase");
	refused("owner/App", "lowercase");
	refused("a b", "spaces");
	refused("a\n", "control");
	refused("python:", "tag");
	refused("python:-x", "tag");
	refused("python:a/b", "registry"); /* "python:a" is a host with a bad port */
	refused(":tag", "no name");
	refused("a//b", "each part");
	refused("a/", "ends with");
	refused("-a", "each part");
	refused("a..b", "each part");
	refused("a___b", "each part");
	refused("ghcr.io/", "no repository");
	refused("bad_host.io/x", "registry");
	refused("host.-io/x", "registry");
	refused("host:99999999/x", "registry");
	refused("host:/x", "registry");
	refused("[zz]:5/x", "registry");
	refused("x@sha256:abc", "digest");
	refused("x@md5:" D64, "digest");
	refused("x@sha256:" D64 "0", "digest");
	refused("x@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
	        "digest");
	char tag[200] = "x:";
	memset(tag + 2, 'a', 129);
	refused(tag, "tag");
	char name[300];
	memset(name, 'a', 256);
	name[256] = 0;
	refused(name, "255");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_docker_spellings),
	    cmocka_unit_test(test_bad_references),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
