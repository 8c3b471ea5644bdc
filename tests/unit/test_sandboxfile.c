/* Sandboxfiles: good ones read field by field, the start order of a
 * three-level depends_on, what is refused for now, the limits, and a corpus
 * of broken files (tests/data/sandboxfile/bad/NAME.yaml) each of which must
 * give exactly the line in NAME.err. MSB_TEST_DATA overrides where the
 * corpus is; by default it is found from this file's path, which make
 * passes relative to the repository's root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/project/sandboxfile.h"

static char data_dir[PATH_MAX];

static void find_data(void)
{
	const char *env = getenv("MSB_TEST_DATA");
	if (env) {
		snprintf(data_dir, sizeof(data_dir), "%s/sandboxfile", env);
		return;
	}
	const char *f = __FILE__, *slash = strrchr(f, '/');
	int dl = slash ? (int)(slash - f) : 1;
	snprintf(data_dir, sizeof(data_dir), "%.*s/../data/sandboxfile", dl, slash ? f : ".");
}

/* The whole file, NUL-terminated; *@len without the NUL. */
static char *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		fail_msg("%s: %s", path, strerror(errno));
	char *buf = malloc(SANDBOXFILE_MAX_BYTES + 2);
	assert_non_null(buf);
	size_t n = fread(buf, 1, SANDBOXFILE_MAX_BYTES + 1, fp);
	fclose(fp);
	buf[n] = 0;
	if (len)
		*len = n;
	return buf;
}

static struct sandboxfile *good(const char *name)
{
	char path[PATH_MAX + 64], why[512] = "";
	struct sandboxfile *sf = NULL;
	snprintf(path, sizeof(path), "%s/good/%s", data_dir, name);
	int r = sandboxfile_load(path, &sf, why, sizeof(why));
	if (r)
		fail_msg("%s: %d %s", name, r, why);
	assert_non_null(sf);
	assert_string_equal(sf->display_name, path);
	return sf;
}

static struct sandboxfile *parses(const char *text)
{
	char why[512] = "";
	struct sandboxfile *sf = NULL;
	int r = sandboxfile_parse(text, strlen(text), "Sandboxfile", &sf, why, sizeof(why));
	if (r)
		fail_msg("%d %s\n%s", r, why, text);
	return sf;
}

static void refused(const char *text, int err, const char *says)
{
	char why[512] = "";
	struct sandboxfile *sf = (void *)1;
	int r = sandboxfile_parse(text, strlen(text), "Sandboxfile", &sf, why, sizeof(why));
	assert_null(sf);
	if (r != err || strcmp(why, says))
		fail_msg("got %d \"%s\", wanted %d \"%s\"", r, why, err, says);
}

#define POS(p, l, c)                                                                               \
	do {                                                                                       \
		assert_int_equal((p).line, (l));                                                   \
		assert_int_equal((p).col, (c));                                                    \
	} while (0)

static void test_full(void **state)
{
	(void)state;
	struct sandboxfile *sf = good("full.yaml");
	assert_string_equal(sf->description.s, "a web app");
	POS(sf->description.key, 2, 8);
	POS(sf->description.pos, 2, 21);
	assert_int_equal(sf->authors.n, 2);
	assert_string_equal(sf->authors.v[0].s, "Ada <ada@example.com>");
	assert_string_equal(sf->authors.v[1].s, "Bob");
	POS(sf->authors.v[1].pos, 2, 69);

	assert_int_equal(sf->nsandboxes, 2);
	const struct sf_sandbox *a = &sf->sandboxes[0];
	assert_ptr_equal(sandboxfile_find(sf, "api"), a);
	assert_string_equal(a->name.s, "api");
	POS(a->name.pos, 4, 3);
	assert_string_equal(a->image.s, "python:3.11");
	POS(a->image.key, 5, 5);
	POS(a->image.pos, 5, 12);
	assert_int_equal(a->memory.v, 2048);
	POS(a->memory.pos, 6, 13);
	assert_int_equal(a->cpus.v, 4);
	POS(a->cpus.key, 7, 5);
	assert_int_equal(a->envs.n, 3);
	assert_string_equal(a->envs.v[0].s, "DEBUG=false");
	assert_string_equal(a->envs.v[1].s, "API_PORT=8000");
	assert_string_equal(a->envs.v[2].s, "EMPTY=");
	POS(a->envs.v[1].pos, 8, 27);
	assert_string_equal(a->env_file.s, ".env");
	assert_string_equal(a->workdir.s, "/app");
	assert_string_equal(a->shell.s, "/bin/bash");
	POS(a->shell.pos, 11, 12);
	assert_int_equal(a->scripts.n, 2);
	assert_string_equal(a->scripts.v[0].name.s, "start");
	assert_string_equal(a->scripts.v[0].value.s, "python -m http.server 8000");
	assert_string_equal(a->scripts.v[1].name.s, "test");
	assert_string_equal(a->scripts.v[1].value.s, "pytest src/tests/");
	POS(a->scripts.v[1].name.pos, 14, 7);
	POS(a->scripts.v[1].value.pos, 14, 13);
	assert_int_equal(a->command.n, 2);
	assert_false(a->command_is_string);
	assert_string_equal(a->command.v[0].s, "python");
	assert_string_equal(a->command.v[1].s, "app.py");
	assert_int_equal(a->depends_on.n, 1);
	assert_string_equal(a->depends_on.v[0].s, "database");
	assert_int_equal(a->deps[0], 1);
	POS(a->depends_on.v[0].pos, 16, 18);

	assert_int_equal(a->volumes.n, 3);
	assert_string_equal(a->volumes.v[0].host, "./api");
	assert_string_equal(a->volumes.v[0].guest, "/app/src");
	assert_false(a->volumes.v[0].read_only);
	assert_string_equal(a->volumes.v[1].host, "./data");
	assert_string_equal(a->volumes.v[1].guest, "/data");
	assert_true(a->volumes.v[1].read_only);
	assert_string_equal(a->volumes.v[2].guest, "/x");
	assert_false(a->volumes.v[2].read_only);
	POS(a->volumes.key, 17, 5);
	POS(a->volumes.v[1].pos, 17, 33);

	assert_int_equal(a->ports.n, 3);
	assert_int_equal(a->ports.v[0].host, 8000);
	assert_int_equal(a->ports.v[0].guest, 8000);
	assert_false(a->ports.v[0].udp);
	assert_int_equal(a->ports.v[1].host, 5353);
	assert_int_equal(a->ports.v[1].guest, 53);
	assert_true(a->ports.v[1].udp);
	assert_int_equal(a->ports.v[2].host, 1);
	assert_int_equal(a->ports.v[2].guest, 65535);
	assert_false(a->ports.v[2].udp);

	assert_int_equal(a->scope.v, SF_SCOPE_PUBLIC);
	POS(a->scope.pos, 19, 12);
	assert_int_equal(a->imports.n, 1);
	assert_string_equal(a->imports.v[0].build.s, "api_base");
	assert_int_equal(a->imports.v[0].build_index, 0);
	assert_int_equal(a->imports.v[0].paths.n, 1);
	assert_string_equal(a->imports.v[0].paths.v[0].name.s, "packages");
	assert_string_equal(a->imports.v[0].paths.v[0].value.s, "/app/packages");

	const struct sf_sandbox *d = sandboxfile_find(sf, "database");
	assert_ptr_equal(d, &sf->sandboxes[1]);
	assert_string_equal(d->image.s, "postgres:16");
	assert_true(d->command_is_string);
	assert_int_equal(d->command.n, 1);
	assert_string_equal(d->command.v[0].s, "postgres -c fsync=off");
	assert_null(sandboxfile_find(sf, "nope"));
	assert_null(sandboxfile_find(sf, "api_base"));

	assert_int_equal(sf->nbuilds, 1);
	const struct sf_build *b = &sf->builds[0];
	assert_string_equal(b->name.s, "api_base");
	POS(b->name.pos, 25, 3);
	assert_string_equal(b->image.s, "python:3");
	assert_int_equal(b->memory.v, 512);
	assert_int_equal(b->cpus.v, 2);
	assert_int_equal(b->envs.n, 1);
	assert_string_equal(b->envs.v[0].s, "PIP_NO_CACHE_DIR=1");
	assert_string_equal(b->workdir.s, "/build");
	assert_int_equal(b->steps.n, 1);
	assert_string_equal(b->steps.v[0].name.s, "start");
	assert_string_equal(b->steps.v[0].value.s, "pip install ...");
	assert_int_equal(b->exports.n, 1);
	assert_string_equal(b->exports.v[0].value.s, "/build/dist/packages");
	sandboxfile_free(sf);
}

static void test_defaults(void **state)
{
	(void)state;
	struct sandboxfile *sf = good("defaults.yaml");
	assert_null(sf->description.s);
	assert_int_equal(sf->authors.n, 0);
	assert_int_equal(sf->nbuilds, 0);
	assert_int_equal(sf->nsandboxes, 1);
	const struct sf_sandbox *s = &sf->sandboxes[0];
	assert_string_equal(s->image.s, "nginx");
	assert_int_equal(s->memory.v, SF_MEMORY_DEFAULT);
	POS(s->memory.key, 0, 0);
	POS(s->memory.pos, 0, 0);
	assert_int_equal(s->cpus.v, SF_CPUS_DEFAULT);
	assert_string_equal(s->shell.s, "/bin/sh");
	POS(s->shell.pos, 0, 0);
	assert_null(s->workdir.s);
	assert_null(s->env_file.s);
	assert_int_equal(s->scope.v, SF_SCOPE_LOCAL);
	assert_int_equal(s->envs.n + s->scripts.n + s->command.n + s->depends_on.n + s->volumes.n +
	                     s->ports.n + s->imports.n,
	                 0);
	char why[256] = "";
	assert_int_equal(sandboxfile_check_supported(sf, why, sizeof(why)), 0);
	sandboxfile_free(sf);

	sf = good("empty_sections.yaml");
	assert_int_equal(sf->nsandboxes + sf->nbuilds, 0);
	sandboxfile_free(sf);

	/* The edges of each range, quoted numbers, an empty list is no use. */
	sf = parses("sandboxes:\n"
	            "  a: {image: x, memory: 64, cpus: 1, volumes: [], ports: [], scope: local}\n"
	            "  b: {image: x, memory: \"1048576\", cpus: '64', imports: {}}\n");
	assert_int_equal(sf->sandboxes[0].memory.v, 64);
	assert_int_equal(sf->sandboxes[1].memory.v, 1048576);
	assert_int_equal(sf->sandboxes[1].cpus.v, 64);
	assert_int_equal(sandboxfile_check_supported(sf, why, sizeof(why)), 0);
	sandboxfile_free(sf);
}

static void order_is(const struct sandboxfile *sf, const char *const *names, size_t n,
                     const char *want)
{
	const struct sf_sandbox **o = NULL;
	size_t no = 0;
	assert_int_equal(sandboxfile_start_order(sf, names, n, &o, &no), 0);
	char got[256] = "";
	for (size_t i = 0; i < no; i++)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? " " : "",
		         o[i]->name.s);
	free(o);
	assert_string_equal(got, want);
}

static void test_start_order(void **state)
{
	(void)state;
	struct sandboxfile *sf = good("order.yaml");
	order_is(sf, NULL, 0, "tools base db cache api web");
	order_is(sf, (const char *const[]){"web"}, 1, "base db cache api web");
	order_is(sf, (const char *const[]){"cache", "tools"}, 2, "tools base cache");
	order_is(sf, (const char *const[]){"db", "db", "base"}, 3, "base db");
	order_is(sf, (const char *const[]){"base"}, 1, "base");
	const struct sf_sandbox **o = (void *)1;
	size_t no = 7;
	assert_int_equal(
	    sandboxfile_start_order(sf, (const char *const[]){"web", "nope"}, 2, &o, &no), -ENOENT);
	assert_null(o);
	assert_int_equal(no, 0);
	sandboxfile_free(sf);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_bad_corpus(void **state)
{
	(void)state;
	char dir[PATH_MAX + 8];
	snprintf(dir, sizeof(dir), "%s/bad", data_dir);
	DIR *d = opendir(dir);
	if (!d)
		fail_msg("%s: %s", dir, strerror(errno));
	char *names[512];
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 512) {
		size_t l = strlen(e->d_name);
		if (l > 5 && !strcmp(e->d_name + l - 5, ".yaml"))
			assert_non_null(names[n++] = strdup(e->d_name));
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), by_name);
	assert_true(n >= 30);
	int failed = 0;
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX + 600], why[512] = "";
		size_t len;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		char *text = slurp(path, &len);
		strcpy(path + strlen(path) - 5, ".err");
		char *want = slurp(path, NULL);
		want[strcspn(want, "\n")] = 0;
		struct sandboxfile *sf = NULL;
		int r = sandboxfile_parse(text, len, "Sandboxfile", &sf, why, sizeof(why));
		if (r >= 0 || sf || (r != -EINVAL && r != -E2BIG) || strcmp(why, want)) {
			print_error("%s: got %d \"%s\"\n%*s wanted \"%s\"\n", names[i], r, why,
			            (int)strlen(names[i]), "", want);
			failed++;
		}
		sandboxfile_free(sf);
		free(text);
		free(want);
		free(names[i]);
	}
	assert_int_equal(failed, 0);
}

static void supported(const char *text, const char *says)
{
	char why[512] = "";
	struct sandboxfile *sf = parses(text);
	int r = sandboxfile_check_supported(sf, why, sizeof(why));
	sandboxfile_free(sf);
	if (!says) {
		if (r)
			fail_msg("%d %s", r, why);
		return;
	}
	if (r != -ENOTSUP || strcmp(why, says))
		fail_msg("got %d \"%s\", wanted \"%s\"", r, why, says);
}

static void test_check_supported(void **state)
{
	(void)state;
	supported("sandboxes:\n  api:\n    image: x\n    volumes: [\"./a:/a\"]\n",
	          "Sandboxfile:4:5: sandboxes.api.volumes: not supported yet (needs virtio-fs, a "
	          "later issue)");
	supported("sandboxes:\n  api:\n    image: x\n    ports: [\"80:80\"]\n",
	          "Sandboxfile:4:5: sandboxes.api.ports: not supported yet (needs networking, a "
	          "later issue)");
	supported("sandboxes:\n  api:\n    image: x\n    scope: public\n",
	          "Sandboxfile:4:12: sandboxes.api.scope: \"public\" is not supported yet (needs "
	          "networking, a later issue; only \"local\" works)");
	supported("sandboxes:\n  api: {image: x, scope: none}\n",
	          "Sandboxfile:2:26: sandboxes.api.scope: \"none\" is not supported yet (needs "
	          "networking, a later issue; only \"local\" works)");
	supported("sandboxes:\n  api: {image: x, scope: any}\n",
	          "Sandboxfile:2:26: sandboxes.api.scope: \"any\" is not supported yet (needs "
	          "networking, a later issue; only \"local\" works)");
	supported("builds:\n  base: {image: x}\n",
	          "Sandboxfile:2:3: builds.base: not supported yet (needs virtio-fs, a later "
	          "issue)");
	/* the first in the file, whatever the kind and wherever the builds are */
	supported("builds:\n  b: {image: x, exports: {e: /e}}\n"
	          "sandboxes:\n  one: {image: x}\n"
	          "  two:\n    image: x\n    ports: [\"1:1\"]\n    volumes: [\"a:/a\"]\n"
	          "    imports: {b: {e: /e}}\n",
	          "Sandboxfile:2:3: builds.b: not supported yet (needs virtio-fs, a later issue)");
	supported("sandboxes:\n  one: {image: x}\n"
	          "  two:\n    image: x\n    imports: {b: {e: /e}}\n    ports: [\"1:1\"]\n"
	          "builds:\n  b: {image: x, exports: {e: /e}}\n",
	          "Sandboxfile:5:5: sandboxes.two.imports: not supported yet (needs virtio-fs, a "
	          "later issue)");
	supported(
	    "sandboxes:\n  a: {image: x, scope: local, ports: [], volumes: [], imports: {}}\n",
	    NULL);
}

/* A YAML document of @n copies of @item between @head and @tail. */
static char *repeat(const char *head, const char *item, size_t n, const char *tail)
{
	size_t hl = strlen(head), il = strlen(item), tl = strlen(tail);
	char *s = malloc(hl + n * il + tl + 1), *p = s;
	assert_non_null(s);
	memcpy(p, head, hl);
	p += hl;
	for (size_t i = 0; i < n; i++, p += il)
		memcpy(p, item, il);
	memcpy(p, tail, tl + 1);
	return s;
}

static void test_limits(void **state)
{
	(void)state;
	char why[512] = "";
	struct sandboxfile *sf;
	/* 4096 entries in a list, then one more */
	char *s = repeat("sandboxes:\n  a:\n    image: x\n    envs:\n", "    - A=1\n",
	                 SANDBOXFILE_MAX_ENTRIES, "");
	sf = parses(s);
	assert_int_equal(sf->sandboxes[0].envs.n, SANDBOXFILE_MAX_ENTRIES);
	sandboxfile_free(sf);
	free(s);
	s = repeat("sandboxes:\n  a:\n    image: x\n    envs:\n", "    - A=1\n",
	           SANDBOXFILE_MAX_ENTRIES + 1, "");
	refused(s, -E2BIG, "Sandboxfile:4101:7: sandboxes.a.envs: more than 4096 entries");
	free(s);

	/* 4097 scripts: a map's entries count the same */
	char *big = malloc(SANDBOXFILE_MAX_ENTRIES * 24 + 64), *p = big;
	assert_non_null(big);
	p += sprintf(p, "sandboxes:\n  a:\n    image: x\n    scripts:\n");
	for (int i = 0; i <= SANDBOXFILE_MAX_ENTRIES; i++)
		p += sprintf(p, "      s%d: x\n", i);
	refused(big, -E2BIG, "Sandboxfile:4101:7: sandboxes.a.scripts: more than 4096 entries");
	free(big);

	/* 32 levels nest (the top map, sandboxes, a: 3; 29 lists), 33 do not */
	s = repeat("sandboxes:\n  a:\n    image: x\n    command: ", "[", 29, "x");
	char *t = repeat(s, "]", 29, "\n");
	refused(t, -EINVAL, "Sandboxfile:4:15: sandboxes.a.command: expected a string, got a list");
	free(s);
	free(t);
	s = repeat("sandboxes:\n  a:\n    image: x\n    command: ", "[", 30, "x");
	t = repeat(s, "]", 30, "\n");
	refused(t, -E2BIG, "Sandboxfile:4:43: maps and lists nest deeper than 32 levels");
	free(s);
	free(t);

	/* exactly 1 MiB reads; a byte more does not, through either door */
	size_t n = SANDBOXFILE_MAX_BYTES;
	char *doc = malloc(n + 1);
	assert_non_null(doc);
	const char head[] = "sandboxes: {a: {image: x}}\n#";
	memcpy(doc, head, sizeof(head) - 1);
	memset(doc + sizeof(head) - 1, 'x', n + 1 - (sizeof(head) - 1));
	doc[n - 1] = '\n';
	assert_int_equal(sandboxfile_parse(doc, n, "Sandboxfile", &sf, why, sizeof(why)), 0);
	sandboxfile_free(sf);
	sf = (void *)1;
	assert_int_equal(sandboxfile_parse(doc, n + 1, "Sandboxfile", &sf, why, sizeof(why)),
	                 -E2BIG);
	assert_null(sf);
	assert_string_equal(why, "Sandboxfile: the file is 1048577 bytes; a Sandboxfile is at "
	                         "most 1 MiB");
	char path[] = "/tmp/msb-test-sandboxfile-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, doc, n + 1), (ssize_t)(n + 1));
	close(fd);
	assert_int_equal(sandboxfile_load(path, &sf, why, sizeof(why)), -E2BIG);
	assert_non_null(strstr(why, ": the file is larger than 1 MiB"));
	assert_int_equal(truncate(path, (off_t)n), 0);
	assert_int_equal(sandboxfile_load(path, &sf, why, sizeof(why)), 0);
	assert_int_equal(sf->nsandboxes, 1);
	sandboxfile_free(sf);
	unlink(path);
	free(doc);
}

static void test_load_and_why(void **state)
{
	(void)state;
	char why[512] = "";
	struct sandboxfile *sf = (void *)1;
	assert_int_equal(sandboxfile_load("/nonexistent/Sandboxfile", &sf, why, sizeof(why)),
	                 -ENOENT);
	assert_null(sf);
	assert_string_equal(why, "/nonexistent/Sandboxfile: No such file or directory");
	assert_int_equal(sandboxfile_load(data_dir, &sf, why, sizeof(why)), -EISDIR);

	/* A short buffer is cut, never overrun; no buffer at all is fine. */
	const char *bad = "sandboxes:\n  api:\n    image: python:3\n    memory: lots\n";
	char small[12];
	assert_int_equal(
	    sandboxfile_parse(bad, strlen(bad), "Sandboxfile", &sf, small, sizeof(small)), -EINVAL);
	assert_string_equal(small, "Sandboxfile");
	assert_int_equal(sandboxfile_parse(bad, strlen(bad), "Sandboxfile", &sf, NULL, 0), -EINVAL);
	/* The display name is the caller's, and control characters never
	 * reach the terminal. */
	refused("sandboxes:\n  api:\n    image: \"a\"\n    \"mem\\e[31m\": 1\n", -EINVAL,
	        "Sandboxfile:4:5: sandboxes.api.mem?[31m: unknown key (a sandbox takes image, "
	        "memory, cpus, envs, env_file, workdir, shell, scripts, command, depends_on, "
	        "volumes, ports, scope, imports)");
	assert_int_equal(
	    sandboxfile_parse(bad, strlen(bad), "proj/Sandboxfile", &sf, why, sizeof(why)),
	    -EINVAL);
	assert_string_equal(why, "proj/Sandboxfile:4:13: sandboxes.api.memory: expected a whole "
	                         "number of MiB, got \"lots\"");
	/* Not NUL-terminated: only @len bytes are read. */
	const char text[] = "sandboxes: {a: {image: x}}GARBAGE";
	assert_int_equal(sandboxfile_parse(text, 26, "S", &sf, why, sizeof(why)), 0);
	sandboxfile_free(sf);
	sandboxfile_free(NULL);
}

int main(void)
{
	find_data();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_start_order),
	    cmocka_unit_test(test_bad_corpus),
	    cmocka_unit_test(test_check_supported),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_load_and_why),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
