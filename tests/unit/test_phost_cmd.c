#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "lib/vmproc/phost_cmd.h"
#include "phost/resume.h"

static const char *arg_after(const struct argbuf *a, const char *opt, int nth)
{
	for (int i = 0; i + 1 < a->argc; i++)
		if (!strcmp(a->argv[i], opt) && nth-- == 0)
			return a->argv[i + 1];
	return NULL;
}

static struct phost_cmd base(const char *const *argv, const struct msb_vm_file *files,
                             size_t nfiles)
{
	struct phost_cmd c = {
	    .qemu = "qemu-system-x86_64",
	    .kernel = "/k/vmlinuz",
	    .initramfs = "/k/initramfs.cpio",
	    .log = "/run/x.log",
	    .argv = argv,
	    .files = files,
	    .nfiles = nfiles,
	};
	return c;
}

static void test_builds_command(void **state)
{
	(void)state;
	const char *argv[] = {"/bin/msb-kvm-smoke", "--guest", "/files/guest", NULL};
	const struct msb_vm_file files[] = {{"guest", "/share/guest.bin", 0, 0},
	                                    {"disk", "/d.img", 1, 0}};
	struct phost_cmd c = base(argv, files, 2);
	struct argbuf a;
	struct msb_err err = {0};
	assert_int_equal(phost_cmd_build(&c, &a, &err), 0);
	assert_string_equal(a.argv[0], "qemu-system-x86_64");
	assert_null(a.argv[a.argc]);
	assert_string_equal(arg_after(&a, "-accel", 0), "tcg");
	assert_non_null(strstr(arg_after(&a, "-cpu", 0), "+svm"));
	assert_string_equal(arg_after(&a, "-m", 0), "512");
	assert_string_equal(arg_after(&a, "-append", 0),
	                    "console=ttyS0 panic=-1 reboot=t quiet -- -f guest -f disk --run "
	                    "/bin/msb-kvm-smoke --guest /files/guest");
	/* shared files are disks whose serial is their name, read-only unless
	 * the program is to write them (a snapshot) */
	assert_string_equal(arg_after(&a, "-drive", 0),
	                    "if=none,id=file0,format=raw,readonly=on,werror=report,rerror=report,"
	                    "file=/share/guest.bin");
	assert_string_equal(
	    arg_after(&a, "-drive", 1),
	    "if=none,id=file1,format=raw,readonly=off,werror=report,rerror=report,file=/d.img");
	int found = 0;
	for (int i = 0; i < a.argc; i++)
		found += !strcmp(a.argv[i], "virtio-blk-pci,drive=file1,serial=disk");
	assert_int_equal(found, 1);
	assert_string_equal(arg_after(&a, "-chardev", 1), "socket,id=stream,fd=3");
	assert_non_null(strstr(arg_after(&a, "-chardev", 0), "path=/run/x.log"));
}

static void test_vsock_relay(void **state)
{
	(void)state;
	const char *argv[] = {"/bin/msb-vmm", "--kernel", "/files/kernel", NULL};
	const struct msb_vm_file files[] = {{"kernel", "/k", 0, 0}};
	struct phost_cmd c = base(argv, files, 1);
	c.vsock_port = 1024;
	struct argbuf a;
	struct msb_err err = {0};
	assert_int_equal(phost_cmd_build(&c, &a, &err), 0);
	/* init relays the stream to the VMM's socket; the VMM is told where */
	assert_string_equal(arg_after(&a, "-append", 0),
	                    "console=ttyS0 panic=-1 reboot=t quiet -- -f kernel --vsock-relay "
	                    "/run/vsock.sock 1024 --run /bin/msb-vmm --kernel /files/kernel "
	                    "--vsock /run/vsock.sock");
}

static void test_rejects_unsafe(void **state)
{
	(void)state;
	struct argbuf a;
	struct msb_err err = {0};
	const char *spaces[] = {"/bin/x", "two words", NULL};
	struct phost_cmd c = base(spaces, NULL, 0);
	assert_int_equal(phost_cmd_build(&c, &a, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "two words"));

	const char *quote[] = {"/bin/x", "a\"b", NULL};
	c = base(quote, NULL, 0);
	assert_int_equal(phost_cmd_build(&c, &a, &err), -EINVAL);

	const char *empty[] = {"/bin/x", "", NULL};
	c = base(empty, NULL, 0);
	assert_int_equal(phost_cmd_build(&c, &a, &err), -EINVAL);

	const char *ok[] = {"/bin/x", NULL};
	const struct msb_vm_file comma[] = {{"f", "/a,b", 0, 0}};
	c = base(ok, comma, 1);
	assert_int_equal(phost_cmd_build(&c, &a, &err), -EINVAL);

	const struct msb_vm_file twice[] = {{"f", "/a", 0, 0}, {"f", "/b", 0, 0}};
	c = base(ok, twice, 2);
	assert_int_equal(phost_cmd_build(&c, &a, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "twice"));

	const struct msb_vm_file badname[] = {{"../x", "/a", 0, 0}};
	c = base(ok, badname, 1);
	assert_int_equal(phost_cmd_build(&c, &a, &err), -EINVAL);

	const struct msb_vm_file longname[] = {{"a23456789012345678901", "/a", 0, 0}};
	c = base(ok, longname, 1);
	assert_int_equal(phost_cmd_build(&c, &a, &err), -EINVAL);

	const char *none[] = {NULL};
	c = base(none, NULL, 0);
	assert_int_equal(phost_cmd_build(&c, &a, &err), -EINVAL);
}

static void test_cmdline_limit(void **state)
{
	(void)state;
	static char big[3000];
	memset(big, 'x', sizeof(big) - 1);
	const char *argv[] = {"/bin/x", big, NULL};
	struct phost_cmd c = base(argv, NULL, 0);
	struct argbuf a;
	struct msb_err err = {0};
	assert_int_equal(phost_cmd_build(&c, &a, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "longer than"));
}

static void test_argbuf_overflow(void **state)
{
	(void)state;
	struct argbuf a;
	argbuf_init(&a);
	int e = 0;
	for (int i = 0; i < ARGBUF_MAX_ARGS + 1 && !e; i++)
		e = argbuf_push(&a, "%d", i);
	assert_int_equal(e, -E2BIG);
	assert_int_equal(a.argc, ARGBUF_MAX_ARGS);
	assert_int_equal(argbuf_push(&a, "x"), -E2BIG);
}

static int has_arg(const struct argbuf *a, const char *s)
{
	for (int i = 0; i < a->argc; i++)
		if (!strcmp(a->argv[i], s))
			return 1;
	return 0;
}

/* Snapshot and restore: RAM in a file (shared to take the snapshot,
 * copy-on-write to restore it), a control socket, and the program's words
 * not on the command line but in the resume message. */
static void test_snapshot_and_restore(void **state)
{
	(void)state;
	const char *argv[] = {"/bin/msb-vmm", "--restore", "/files/snapshot", NULL};
	const struct msb_vm_file files[] = {{"snapshot", "/s/vm.snap", 0, 0}};
	struct phost_cmd c = base(argv, files, 1);
	c.mem_mib = 768;
	c.vsock_port = 1024;
	c.ram = "/s/vm.snap.phost-1.ram";
	struct argbuf a;
	struct msb_err err = {0};

	c.start = PHOST_SNAPSHOT;
	assert_int_equal(phost_cmd_build(&c, &a, &err), 0);
	assert_string_equal(arg_after(&a, "-append", 0),
	                    "console=ttyS0 panic=-1 reboot=t quiet -- --serve");
	assert_string_equal(arg_after(&a, "-M", 0), "q35,memory-backend=ram");
	assert_string_equal(arg_after(&a, "-object", 0),
	                    "memory-backend-file,id=ram,size=768M,mem-path=/s/vm.snap.phost-1.ram,"
	                    "share=on");
	assert_string_equal(arg_after(&a, "-chardev", 0), "socket,id=qmp,fd=4");
	assert_false(has_arg(&a, "-incoming"));
	/* the same disks, so the restored host has the devices it booted with */
	assert_string_equal(
	    arg_after(&a, "-drive", 0),
	    "if=none,id=file0,format=raw,readonly=on,werror=report,rerror=report,file=/s/vm.snap");

	c.start = PHOST_RESTORE;
	assert_int_equal(phost_cmd_build(&c, &a, &err), 0);
	assert_string_equal(arg_after(&a, "-append", 0),
	                    "console=ttyS0 panic=-1 reboot=t quiet -- --serve");
	assert_string_equal(arg_after(&a, "-object", 0),
	                    "memory-backend-file,id=ram,size=768M,mem-path=/s/vm.snap.phost-1.ram,"
	                    "share=off");
	assert_string_equal(arg_after(&a, "-incoming", 0), "defer");

	/* the words, NUL-separated, parse back into init's arguments */
	char words[PHOST_RESUME_MAX];
	size_t used = 0;
	assert_int_equal(phost_words(&c, words, sizeof(words), 0, &used, &err), 0);
	char *out[32];
	assert_int_equal(phost_resume_words(words, (uint32_t)used, out, 32), 11);
	const char *want[] = {"-f",
	                      "snapshot",
	                      "--vsock-relay",
	                      "/run/vsock.sock",
	                      "1024",
	                      "--run",
	                      "/bin/msb-vmm",
	                      "--restore",
	                      "/files/snapshot",
	                      "--vsock",
	                      "/run/vsock.sock"};
	for (int i = 0; i < 11; i++)
		assert_string_equal(out[i], want[i]);
	assert_null(out[11]);

	/* a sandbox's own disk: its slot holds the placeholder in the
	 * snapshot, the real file at a restore, and init binds it again (-F) */
	const struct msb_vm_file two[] = {{"snapshot", "/s/vm.snap", 0, 0},
	                                  {"disk0", "/d/mine.img", 1, 1}};
	c.files = two;
	c.nfiles = 2;
	const char *const empties[] = {NULL, "/s/vm.snap.phost-empty1"};
	c.placeholders = empties;
	c.start = PHOST_SNAPSHOT;
	assert_int_equal(phost_cmd_build(&c, &a, &err), 0);
	assert_non_null(strstr(arg_after(&a, "-drive", 1), "readonly=off"));
	assert_non_null(strstr(arg_after(&a, "-drive", 1), "file=/s/vm.snap.phost-empty1"));
	c.start = PHOST_RESTORE;
	assert_int_equal(phost_cmd_build(&c, &a, &err), 0);
	assert_non_null(strstr(arg_after(&a, "-drive", 1), "file=/d/mine.img"));
	used = 0;
	assert_int_equal(phost_words(&c, words, sizeof(words), ' ', &used, &err), 0);
	assert_non_null(strstr(words, "-f snapshot -F disk0 "));
	c.files = files;
	c.nfiles = 1;

	c.ram = "/a,b";
	assert_int_equal(phost_cmd_build(&c, &a, &err), -EINVAL);
	c.ram = NULL;
	assert_int_equal(phost_cmd_build(&c, &a, &err), -EINVAL);
}

/* What init accepts from the stream: NUL-terminated, non-empty words that
 * fit; anything else is refused. */
static void test_resume_words_refuse_bad_input(void **state)
{
	(void)state;
	char *out[4];
	char ok[] = "a\0b";
	assert_int_equal(phost_resume_words(ok, sizeof(ok), out, 4), 2);
	char unterminated[] = {'a', 'b'};
	assert_int_equal(phost_resume_words(unterminated, 2, out, 4), -1);
	char empty_word[] = "a\0\0b";
	assert_int_equal(phost_resume_words(empty_word, sizeof(empty_word), out, 4), -1);
	char many[] = "a\0b\0c\0d";
	assert_int_equal(phost_resume_words(many, sizeof(many), out, 4), -1);
	assert_int_equal(phost_resume_words(ok, 0, out, 4), -1);
	assert_int_equal(phost_resume_words(ok, PHOST_RESUME_MAX + 1, out, 4), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_builds_command),
	    cmocka_unit_test(test_vsock_relay),
	    cmocka_unit_test(test_rejects_unsafe),
	    cmocka_unit_test(test_cmdline_limit),
	    cmocka_unit_test(test_argbuf_overflow),
	    cmocka_unit_test(test_snapshot_and_restore),
	    cmocka_unit_test(test_resume_words_refuse_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
