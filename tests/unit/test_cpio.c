#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cpio.h"

static unsigned long field(const char *hdr, int i)
{
	char buf[9];
	memcpy(buf, hdr + 6 + 8 * i, 8);
	buf[8] = 0;
	return strtoul(buf, NULL, 16);
}

static void test_layout(void **state)
{
	(void)state;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct cpio c;
	cpio_init(&c, f);
	assert_int_equal(cpio_add_dir(&c, "dev", 0755), 0);
	assert_int_equal(cpio_add_file(&c, "init", 0755, "hello", 5), 0);
	assert_int_equal(cpio_add_chardev(&c, "dev/console", 0600, 5, 1), 0);
	assert_int_equal(cpio_add_symlink(&c, "sh", "init"), 0);
	assert_int_equal(cpio_finish(&c), 0);
	fclose(f);

	/* first entry: "dev", a directory */
	assert_memory_equal(buf, "070701", 6);
	assert_int_equal(field(buf, 1), 040755);
	assert_int_equal(field(buf, 11), 4); /* namesize counts the NUL */
	assert_string_equal(buf + 110, "dev");
	/* header + name padded to 4, no data */
	size_t off = (110 + 4 + 3) & ~3u;
	assert_memory_equal(buf + off, "070701", 6);
	assert_int_equal(field(buf + off, 1), 0100755);
	assert_int_equal(field(buf + off, 6), 5);
	assert_string_equal(buf + off + 110, "init");
	size_t data = (off + 110 + 5 + 3) & ~3u;
	assert_memory_equal(buf + data, "hello", 5);
	off = (data + 5 + 3) & ~3u;
	assert_int_equal(field(buf + off, 1), 020600);
	assert_int_equal(field(buf + off, 9), 5);
	assert_int_equal(field(buf + off, 10), 1);
	/* every entry starts 4-aligned and the archive ends with the trailer */
	assert_int_equal(len % 4, 0);
	assert_non_null(memmem(buf, len, "TRAILER!!!", 10));
	assert_int_equal(c.written, len);
	free(buf);
}

static void test_rejects(void **state)
{
	(void)state;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct cpio c;
	cpio_init(&c, f);
	assert_int_equal(cpio_add_dir(&c, "/abs", 0755), -22);
	assert_int_equal(cpio_add_dir(&c, "", 0755), -22);
	assert_int_equal(cpio_add_dir(&c, "x", 0100755), -22);
	assert_int_equal(cpio_add_symlink(&c, "x", ""), -22);
	fclose(f);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_layout),
	    cmocka_unit_test(test_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
