/* gzip through isa-l: members, padding, and the damage it must notice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/image/gunzip.h"
#include "shell.h"

static char dir[] = "/tmp/msb-test-gunzip-XXXXXX";

/* The file @name made by the shell command @make (run in dir), inflated:
 * returns the data (static) and sets *rc to 0 or the error. */
static const char *inflate_file(const char *make, int *rc)
{
	static char out[1 << 16];
	char cmd[1024], path[256], why[256] = "";
	snprintf(cmd, sizeof(cmd), "cd %s && rm -f f && %s", dir, make);
	run(cmd);
	snprintf(path, sizeof(path), "%s/f", dir);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(gunzip_detect(fd), 1);
	struct archive *a = archive_read_new();
	archive_read_support_filter_none(a);
	archive_read_support_format_raw(a);
	struct gunzip *g = NULL;
	size_t len = 0;
	*rc = gunzip_open(a, fd, &g, why, sizeof(why));
	struct archive_entry *e;
	if (!*rc && archive_read_next_header(a, &e) != ARCHIVE_OK)
		*rc = -EIO;
	while (!*rc) {
		la_ssize_t n = archive_read_data(a, out + len, sizeof(out) - 1 - len);
		if (n < 0)
			*rc = -EIO;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (!*rc)
		*rc = gunzip_finish(g, why, sizeof(why));
	archive_read_free(a);
	gunzip_free(g);
	close(fd);
	out[len] = 0;
	return out;
}

static void test_members_and_padding(void **state)
{
	(void)state;
	int rc;
	assert_string_equal(inflate_file("printf hello | gzip > f", &rc), "hello");
	assert_int_equal(rc, 0);
	/* concatenated members are one stream, as gzip(1) reads them */
	assert_string_equal(
	    inflate_file("printf 'hello ' | gzip > f && printf world | gzip >> f", &rc),
	    "hello world");
	assert_int_equal(rc, 0);
	assert_string_equal(inflate_file("printf hi | gzip > f && head -c 512 /dev/zero >> f", &rc),
	                    "hi");
	assert_int_equal(rc, 0);
	/* 300 KiB: more than one output buffer */
	inflate_file("head -c 307200 /dev/zero | tr '\\0' x | gzip > f", &rc);
	assert_int_equal(rc, 0);
}

static void test_damage(void **state)
{
	(void)state;
	int rc;
	inflate_file("printf hello | gzip > f && printf junk >> f", &rc);
	assert_true(rc < 0); /* at open (read ahead) or later */
	/* cut inside the deflate data, and inside the trailer */
	inflate_file("head -c 2000 /dev/urandom | gzip > g && head -c 1000 g > f", &rc);
	assert_true(rc < 0); /* at open (read ahead) or later */
	inflate_file("printf hello | gzip > g && head -c -3 g > f", &rc);
	assert_true(rc < 0); /* at open (read ahead) or later */
	/* a wrong CRC: the trailer's first byte flipped */
	inflate_file("printf hello | gzip > g && size=$(stat -c %s g) && "
	             "head -c $((size - 8)) g > f && "
	             "tail -c 8 g | { b=$(head -c 1 | od -An -tu1); "
	             "printf \"\\\\$(printf %o $(( (b + 1) % 256 )))\"; tail -c 7 g; } >> f",
	             &rc);
	assert_true(rc < 0); /* at open (read ahead) or later */
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_members_and_padding),
	    cmocka_unit_test(test_damage),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	run(cmd);
	return r;
}
