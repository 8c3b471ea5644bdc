/* Records of running sandboxes in msb.db: claims, stale keepers, races. */
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/image/sandbox_records.h"
#include "lib/image/store.h"
#include "test_home.h"

static char why[512];

static struct store *open_store(void)
{
	struct store *s;
	assert_int_equal(store_open(home, &s, why, sizeof(why)), 0);
	return s;
}

static struct sandbox_record mine(const char *project, const char *name, const char *socket)
{
	return (struct sandbox_record){.project = (char *)project,
	                               .name = (char *)name,
	                               .keeper = getpid(),
	                               .keeper_start = sandbox_proc_start(getpid()),
	                               .socket = (char *)socket,
	                               .log = "/var/log/x.log",
	                               .detached = 1};
}

static int exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* A socket file left behind, as by a keeper killed with SIGKILL. */
static void make_socket(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	assert_true(strlen(path) < sizeof(a.sun_path));
	memcpy(a.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	close(fd);
}

/* A child (named @comm, if not NULL) that has run and been reaped, and
 * the start time it had. */
static pid_t dead_child(uint64_t *start, const char *comm)
{
	int sv[2];
	char c = 'x';
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		if (comm)
			prctl(PR_SET_NAME, comm, 0, 0, 0);
		/* Renamed; then live until the parent has read our start. */
		if (write(sv[1], &c, 1) != 1 || read(sv[1], &c, 1) != 0)
			_exit(1);
		_exit(0);
	}
	close(sv[1]);
	assert_int_equal(read(sv[0], &c, 1), 1);
	*start = sandbox_proc_start(pid);
	assert_true(*start != 0);
	close(sv[0]);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	return pid;
}

static void test_proc_start(void **state)
{
	(void)state;
	uint64_t self = sandbox_proc_start(getpid());
	assert_true(self != 0);
	assert_int_equal(sandbox_proc_start(getpid()), self);
	assert_int_equal(sandbox_proc_start(0), 0);
	assert_int_equal(sandbox_proc_start(-1), 0);
	uint64_t start;
	pid_t pid = dead_child(&start, NULL);
	assert_true(start >= self);
	assert_int_equal(sandbox_proc_start(pid), 0);

	/* A zombie (exited, not yet reaped) holds nothing either. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	siginfo_t si;
	assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	assert_int_equal(sandbox_proc_start(pid), 0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
}

static void test_comm_with_parens(void **state)
{
	(void)state;
	uint64_t plain, odd;
	dead_child(&plain, NULL);
	dead_child(&odd, "x) y (z) 7 8 9");
	/* Both children were forked moments apart: a parse that stopped at
	 * the first ')' would read another field (a pid, a flag word, a fault
	 * count), not a start time within a few ticks. */
	assert_true(odd >= plain);
	assert_true(odd - plain < 1000);
}

static void test_claim_get_release(void **state)
{
	(void)state;
	struct store *s = open_store();
	struct sandbox_record r = mine("/p/one", "web", "/run/web.sock"), got, holder;
	assert_int_equal(sandbox_record_claim(s, &r, &holder, why, sizeof(why)), 0);
	assert_int_equal(sandbox_record_get(s, "/p/one", "web", &got, why, sizeof(why)), 0);
	assert_string_equal(got.project, "/p/one");
	assert_string_equal(got.name, "web");
	assert_int_equal(got.keeper, getpid());
	assert_int_equal(got.keeper_start, r.keeper_start);
	assert_int_equal(got.vmm, 0);
	assert_string_equal(got.socket, "/run/web.sock");
	assert_string_equal(got.log, "/var/log/x.log");
	assert_true(got.started > 0);
	assert_int_equal(got.detached, 1);
	sandbox_record_free(&got);

	/* A second claim of a live record names its holder. */
	struct sandbox_record again = mine("/p/one", "web", "");
	assert_int_equal(sandbox_record_claim(s, &again, &holder, why, sizeof(why)), -EBUSY);
	assert_non_null(strstr(why, "held by"));
	assert_int_equal(holder.keeper, getpid());
	assert_string_equal(holder.socket, "/run/web.sock");
	sandbox_record_free(&holder);
	assert_int_equal(sandbox_record_claim(s, &again, NULL, why, sizeof(why)), -EBUSY);

	/* Only the keeper sets the VMM or releases. */
	assert_int_equal(
	    sandbox_record_set_vmm(s, "/p/one", "web", getpid(), 4242, why, sizeof(why)), 0);
	assert_int_equal(
	    sandbox_record_set_vmm(s, "/p/one", "web", getpid() + 1, 1, why, sizeof(why)), -ENOENT);
	assert_int_equal(sandbox_record_set_vmm(s, "/p/one", "db", getpid(), 1, why, sizeof(why)),
	                 -ENOENT);
	assert_int_equal(sandbox_record_get(s, "/p/one", "web", &got, why, sizeof(why)), 0);
	assert_int_equal(got.vmm, 4242);
	sandbox_record_free(&got);
	assert_int_equal(sandbox_record_release(s, "/p/one", "web", getpid() + 1, why, sizeof(why)),
	                 0);
	assert_int_equal(sandbox_record_get(s, "/p/one", "web", &got, why, sizeof(why)), 0);
	sandbox_record_free(&got);
	assert_int_equal(sandbox_record_release(s, "/p/one", "web", getpid(), why, sizeof(why)), 0);
	assert_int_equal(sandbox_record_get(s, "/p/one", "web", &got, why, sizeof(why)), -ENOENT);
	assert_int_equal(sandbox_record_release(s, "/p/one", "web", getpid(), why, sizeof(why)), 0);

	/* Keys are checked. */
	struct sandbox_record bad = mine("relative/dir", "web", "");
	assert_int_equal(sandbox_record_claim(s, &bad, NULL, why, sizeof(why)), -EINVAL);
	bad = mine("/p/one", "", "");
	assert_int_equal(sandbox_record_claim(s, &bad, NULL, why, sizeof(why)), -EINVAL);
	bad = mine("/p/one", "web", "");
	bad.keeper_start = 0;
	assert_int_equal(sandbox_record_claim(s, &bad, NULL, why, sizeof(why)), -EINVAL);
	store_close(s);
}

static void test_list(void **state)
{
	(void)state;
	struct store *s = open_store();
	const char *keys[][2] = {{"/p/two", "api"}, {"/p/one", "web"}, {"/p/one", "db"}};
	for (size_t i = 0; i < 3; i++) {
		struct sandbox_record r = mine(keys[i][0], keys[i][1], NULL);
		assert_int_equal(sandbox_record_claim(s, &r, NULL, why, sizeof(why)), 0);
	}
	struct sandbox_record *v;
	size_t n;
	assert_int_equal(sandbox_record_list(s, NULL, &v, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].name, "db");
	assert_string_equal(v[1].name, "web");
	assert_string_equal(v[2].project, "/p/two");
	assert_string_equal(v[2].socket, ""); /* NULL stored as "" */
	sandbox_records_free(v, n);
	assert_int_equal(sandbox_record_list(s, "/p/one", &v, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].project, "/p/one");
	assert_string_equal(v[1].project, "/p/one");
	sandbox_records_free(v, n);
	assert_int_equal(sandbox_record_list(s, "/p/none", &v, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 0);
	assert_null(v);
	store_close(s);
}

/* Records @keeper (with @start) as holding /p/x web, with a socket file
 * left at @sock. */
static void claim_for(struct store *s, pid_t keeper, uint64_t start, const char *sock)
{
	struct sandbox_record r = mine("/p/x", "web", sock);
	r.keeper = keeper;
	r.keeper_start = start;
	make_socket(sock);
	assert_int_equal(sandbox_record_claim(s, &r, NULL, why, sizeof(why)), 0);
}

static void test_stale(void **state)
{
	(void)state;
	struct store *s = open_store();
	char sock[PATH_MAX + 16];
	snprintf(sock, sizeof(sock), "%s/keeper.sock", home);
	uint64_t start;
	pid_t dead = dead_child(&start, NULL);
	struct sandbox_record *v, got;
	size_t n;

	/* list cleans a dead keeper's record and its socket. */
	claim_for(s, dead, start, sock);
	assert_true(exists(sock));
	assert_int_equal(sandbox_record_list(s, NULL, &v, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 0);
	assert_false(exists(sock));

	/* So does get. */
	claim_for(s, dead, start, sock);
	assert_int_equal(sandbox_record_get(s, "/p/x", "web", &got, why, sizeof(why)), -ENOENT);
	assert_false(exists(sock));

	/* And claim, which then wins. */
	claim_for(s, dead, start, sock);
	struct sandbox_record r = mine("/p/x", "web", "");
	assert_int_equal(sandbox_record_claim(s, &r, NULL, why, sizeof(why)), 0);
	assert_false(exists(sock));
	assert_int_equal(sandbox_record_get(s, "/p/x", "web", &got, why, sizeof(why)), 0);
	assert_int_equal(got.keeper, getpid());
	sandbox_record_free(&got);
	assert_int_equal(sandbox_record_release(s, "/p/x", "web", getpid(), why, sizeof(why)), 0);

	/* Our own pid with another start time is a reused pid: stale. */
	claim_for(s, getpid(), sandbox_proc_start(getpid()) + 1, sock);
	assert_int_equal(sandbox_record_list(s, "/p/x", &v, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 0);
	assert_false(exists(sock));

	/* Only a socket is unlinked: a file that took its path stays. */
	struct sandbox_record f = mine("/p/x", "web", sock);
	f.keeper = dead;
	f.keeper_start = start;
	FILE *fp = fopen(sock, "w");
	assert_non_null(fp);
	fclose(fp);
	assert_int_equal(sandbox_record_claim(s, &f, NULL, why, sizeof(why)), 0);
	assert_int_equal(sandbox_record_get(s, "/p/x", "web", &got, why, sizeof(why)), -ENOENT);
	assert_true(exists(sock));
	store_close(s);
}

/* Many msb processes claim one sandbox at once: exactly one wins. */
static void test_race(void **state)
{
	(void)state;
	enum { N = 8 };
	int go[2], res[2], hold[2];
	pid_t kids[N];
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(res), 0);
	assert_int_equal(pipe(hold), 0);
	for (int i = 0; i < N; i++) {
		kids[i] = fork();
		assert_true(kids[i] >= 0);
		if (kids[i])
			continue;
		/* The child: no cmocka here, only an answer on @res. */
		close(go[1]);
		close(res[0]);
		close(hold[1]);
		struct store *s;
		char c = 'E', w[256];
		if (store_open(home, &s, w, sizeof(w)) == 0) {
			struct sandbox_record r = mine("/p/race", "web", "");
			if (read(go[0], &c, 1) == 0) { /* EOF: everyone starts */
				int e = sandbox_record_claim(s, &r, NULL, w, sizeof(w));
				c = e == 0 ? 'W' : e == -EBUSY ? 'B' : 'E';
			}
		}
		/* Stay alive (the winner's record live) until all answered. */
		if (write(res[1], &c, 1) != 1 || read(hold[0], &c, 1) != 0)
			_exit(1);
		_exit(0);
	}
	close(go[0]);
	close(res[1]);
	close(hold[0]);
	close(go[1]);
	int won = 0, busy = 0;
	for (int i = 0; i < N; i++) {
		char c;
		assert_int_equal(read(res[0], &c, 1), 1);
		won += c == 'W';
		busy += c == 'B';
	}
	close(res[0]);
	close(hold[1]);
	for (int i = 0; i < N; i++)
		assert_int_equal(waitpid(kids[i], NULL, 0), kids[i]);
	assert_int_equal(won, 1);
	assert_int_equal(busy, N - 1);
	/* The winner has exited: its record is stale now. */
	struct store *s = open_store();
	struct sandbox_record got;
	assert_int_equal(sandbox_record_get(s, "/p/race", "web", &got, why, sizeof(why)), -ENOENT);
	store_close(s);
}

static int db_int(sqlite3 *h, const char *sql)
{
	sqlite3_stmt *st;
	int v = -1;
	assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static const char has_table[] =
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sandboxes'";

static void test_migration(void **state)
{
	(void)state;
	char db[PATH_MAX + 16];
	snprintf(db, sizeof(db), "%s/msb.db", home);
	store_close(open_store());
	sqlite3 *h;
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(db_int(h, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(STORE_SCHEMA_VERSION, 2);
	assert_int_equal(db_int(h, has_table), 1);
	/* Back to what an msb of schema 1 left: its tables and a reference. */
	assert_int_equal(sqlite3_exec(h,
	                              "DROP TABLE sandboxes; PRAGMA user_version = 1;"
	                              "INSERT INTO images VALUES ('m', NULL, 'c', 'linux/amd64', "
	                              "NULL, 1, 1, 1);"
	                              "INSERT INTO refs VALUES ('r', 'm', 1);",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	assert_int_equal(db_int(h, has_table), 0);
	sqlite3_close(h);
	/* Opening migrates 1 -> 2 only (migration 1 again would fail on its
	 * existing tables), keeping the images; a second open does nothing. */
	store_close(open_store());
	struct store *s = open_store();
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(db_int(h, "PRAGMA user_version"), 2);
	assert_int_equal(db_int(h, has_table), 1);
	assert_int_equal(db_int(h, "SELECT count(*) FROM refs"), 1);
	sqlite3_close(h);
	struct sandbox_record r = mine("/p/m", "web", ""), got;
	assert_int_equal(sandbox_record_claim(s, &r, NULL, why, sizeof(why)), 0);
	assert_int_equal(sandbox_record_get(s, "/p/m", "web", &got, why, sizeof(why)), 0);
	sandbox_record_free(&got);
	store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_proc_start),
	    cmocka_unit_test(test_comm_with_parens),
	    cmocka_unit_test_setup_teardown(test_claim_get_release, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stale, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_race, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migration, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
