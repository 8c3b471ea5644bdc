/* The image store: migrations, blobs checked by digest, records, prune. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/image/store.h"
#include "test_home.h"
#include "sha256.h"

static void digest_of(const char *s, char out[SHA256_DIGEST_STR])
{
	struct sha256 h;
	uint8_t d[32];
	sha256_init(&h);
	sha256_update(&h, s, strlen(s));
	sha256_final(&h, d);
	sha256_digest_str(d, out);
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static void test_blobs(void **state)
{
	(void)state;
	struct store *s;
	char why[512], d[SHA256_DIGEST_STR], path[PATH_MAX];
	assert_int_equal(store_open(home, &s, why, sizeof(why)), 0);
	digest_of("hello", d);
	assert_int_equal(store_has_blob(s, d, 5), 0);
	/* Bytes that do not hash to the digest never land. */
	assert_int_equal(store_put_blob(s, d, "hellO", 5), -EBADMSG);
	assert_int_equal(store_has_blob(s, d, (uint64_t)-1), 0);
	assert_int_equal(store_put_blob(s, d, "hello", 5), 0);
	assert_int_equal(store_has_blob(s, d, 5), 1);
	assert_int_equal(store_has_blob(s, d, 6), 0);
	char *data;
	size_t len;
	assert_int_equal(store_read_blob(s, d, 100, &data, &len), 0);
	assert_int_equal(len, 5);
	assert_string_equal(data, "hello");
	free(data);
	assert_int_equal(store_read_blob(s, d, 4, &data, &len), -EFBIG);
	/* Digests are checked before they become paths. */
	assert_int_equal(store_blob_path(s, "sha256:../../etc/passwd", path, sizeof(path)),
	                 -EINVAL);
	assert_int_equal(store_blob_path(s, "md5:00", path, sizeof(path)), -EINVAL);
	assert_int_equal(store_put_blob(s, "sha256:ABC", "x", 1), -EINVAL);
	store_close(s);
}

struct chunks {
	const char *const *parts;
	size_t i;
};

static ssize_t next_chunk(void *arg, void *buf, size_t len)
{
	struct chunks *c = arg;
	const char *p = c->parts[c->i];
	if (!p)
		return 0;
	c->i++;
	size_t n = strlen(p) < len ? strlen(p) : len;
	memcpy(buf, p, n);
	return (ssize_t)n;
}

static ssize_t failing(void *arg, void *buf, size_t len)
{
	(void)arg, (void)buf, (void)len;
	return -1;
}

static void test_stream(void **state)
{
	(void)state;
	struct store *s;
	char why[512], d[SHA256_DIGEST_STR], want[SHA256_DIGEST_STR];
	uint64_t size;
	assert_int_equal(store_open(home, &s, why, sizeof(why)), 0);
	const char *const parts[] = {"hel", "lo ", "world", NULL};
	struct chunks c = {parts, 0};
	assert_int_equal(store_put_stream(s, next_chunk, &c, d, &size, why, sizeof(why)), 0);
	digest_of("hello world", want);
	assert_string_equal(d, want);
	assert_int_equal(size, 11);
	assert_int_equal(store_has_blob(s, want, 11), 1);
	/* A failing source leaves no blob and no temporary file. */
	assert_int_equal(store_put_stream(s, failing, NULL, d, &size, why, sizeof(why)), -EIO);
	char cmd[PATH_MAX + 64];
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls %s/blobs/partial)\"", home);
	assert_int_equal(system(cmd), 0);
	store_close(s);
}

static void test_images_and_prune(void **state)
{
	(void)state;
	struct store *s;
	char why[512], man[SHA256_DIGEST_STR], cfg[SHA256_DIGEST_STR], l1[SHA256_DIGEST_STR],
	    l2[SHA256_DIGEST_STR], stray[SHA256_DIGEST_STR], erofs[PATH_MAX], p[PATH_MAX];
	assert_int_equal(store_open(home, &s, why, sizeof(why)), 0);
	const char *blobs[][2] = {
	    {"manifest", man}, {"config", cfg}, {"layer1", l1}, {"layer2", l2}, {"stray", stray}};
	for (size_t i = 0; i < 5; i++) {
		digest_of(blobs[i][0], (char *)blobs[i][1]);
		assert_int_equal(store_put_blob(s, blobs[i][1], blobs[i][0], strlen(blobs[i][0])),
		                 0);
	}
	assert_int_equal(store_erofs_path(s, man, erofs, sizeof(erofs)), 0);
	FILE *f = fopen(erofs, "w");
	assert_non_null(f);
	fclose(f);
	struct store_image im = {.manifest_digest = man,
	                         .config_digest = cfg,
	                         .platform = "linux/amd64",
	                         .created = "2026-01-01T00:00:00Z",
	                         .size = 12,
	                         .erofs_size = 4096};
	const char *layers[] = {l1, l2};
	assert_int_equal(store_add_image(s, "example.com/a:1", &im, layers, 2, why, sizeof(why)),
	                 0);
	assert_int_equal(
	    store_add_image(s, "example.com/a:latest", &im, layers, 2, why, sizeof(why)), 0);
	struct store_image got;
	assert_int_equal(store_find_ref(s, "example.com/a:1", &got), 0);
	assert_string_equal(got.manifest_digest, man);
	assert_string_equal(got.platform, "linux/amd64");
	assert_int_equal(got.size, 12);
	store_image_free(&got);
	assert_int_equal(store_find_ref(s, "example.com/b:1", &got), -ENOENT);
	struct store_image *v;
	size_t n;
	assert_int_equal(store_list(s, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].ref, "example.com/a:1");
	store_image_list_free(v, n);

	/* Prune: the stray blob goes, what the image uses stays. */
	unsigned images, files;
	uint64_t bytes;
	assert_int_equal(store_prune(s, &images, &files, &bytes, why, sizeof(why)), 0);
	assert_int_equal(images, 0);
	assert_int_equal(files, 1);
	assert_int_equal(store_has_blob(s, stray, (uint64_t)-1), 0);
	assert_int_equal(store_has_blob(s, l1, (uint64_t)-1), 1);
	/* One reference gone: the image stays for the other. */
	assert_int_equal(store_remove_ref(s, "example.com/a:1"), 0);
	assert_int_equal(store_remove_ref(s, "example.com/a:1"), -ENOENT);
	assert_int_equal(store_prune(s, &images, &files, &bytes, why, sizeof(why)), 0);
	assert_int_equal(images, 0);
	assert_true(exists(erofs));
	/* The last one gone: image, erofs and blobs go. */
	assert_int_equal(store_remove_ref(s, "example.com/a:latest"), 0);
	assert_int_equal(store_prune(s, &images, &files, &bytes, why, sizeof(why)), 0);
	assert_int_equal(images, 1);
	assert_int_equal(files, 5);
	assert_false(exists(erofs));
	assert_int_equal(store_blob_path(s, l2, p, sizeof(p)), 0);
	assert_false(exists(p));
	store_close(s);
}

static void test_schema(void **state)
{
	(void)state;
	struct store *s, *s2;
	char why[512], db[PATH_MAX + 16];
	/* Two handles at once (two msb processes) both open and migrate. */
	assert_int_equal(store_open(home, &s, why, sizeof(why)), 0);
	assert_int_equal(store_open(home, &s2, why, sizeof(why)), 0);
	store_close(s2);
	store_close(s);
	/* A newer schema than this msb knows is refused, not damaged. */
	snprintf(db, sizeof(db), "%s/msb.db", home);
	sqlite3 *h;
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	assert_int_equal(store_open(home, &s, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "newer"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_blobs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stream, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_images_and_prune, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_schema, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
