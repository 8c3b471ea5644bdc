#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "lib/vmproc/phost_cmd.h"

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
	const struct msb_vm_file files[] = {{"guest", "/share/guest.bin", 0},
	                                    {"disk", "/d.img", 1}};
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
	                    "if=none,id=file0,format=raw,readonly=on,file=/share/guest.bin");
	assert_string_equal(arg_after(&a, "-drive", 1),
	                    "if=none,id=file1,format=raw,readonly=off,file=/d.img");
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
	const struct msb_vm_file files[] = {{"kernel", "/k", 0}};
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
	const struct msb_vm_file comma[] = {{"f", "/a,b", 0}};
	c = base(ok, comma, 1);
	assert_int_equal(phost_cmd_build(&c, &a, &err), -EINVAL);

	const struct msb_vm_file twice[] = {{"f", "/a", 0}, {"f", "/b", 0}};
	c = base(ok, twice, 2);
	assert_int_equal(phost_cmd_build(&c, &a, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "twice"));

	const struct msb_vm_file badname[] = {{"../x", "/a", 0}};
	c = base(ok, badname, 1);
	assert_int_equal(phost_cmd_build(&c, &a, &err), -EINVAL);

	const struct msb_vm_file longname[] = {{"a23456789012345678901", "/a", 0}};
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_builds_command),  cmocka_unit_test(test_vsock_relay),
	    cmocka_unit_test(test_rejects_unsafe),  cmocka_unit_test(test_cmdline_limit),
	    cmocka_unit_test(test_argbuf_overflow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
