#include "phost_cmd.h"
#include "err.h"
#include "../../phost/resume.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/*
 * -M q35 with virtio-pci, measured against -M microvm with virtio-mmio in
 * docs/design/portable-host.md; the CPU is EPYC with SVM, less the features
 * TCG does not emulate (QEMU warns about each otherwise).
 */
static const char *const cpu_model =
    "EPYC,+svm,-rdseed,-sha-ni,-fxsr-opt,-misalignsse,-3dnowprefetch,-osvw,-topoext,"
    "-nrip-save,-xsavec";

/* Kernel command line of the portable host. "quiet" keeps the log short;
 * panic=-1 with -no-reboot turns a panic into QEMU's exit. */
static const char *const kernel_args = "console=ttyS0 panic=-1 reboot=t quiet";

int phost_valid_file_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 20 || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
			return 0;
	return 1;
}

static int cmdline_safe(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == '"' || *s == 0x7f)
			return 0;
	return 1;
}

/* QEMU's option parser splits on ',' unless doubled. */
static int qemu_opt_safe(const char *s)
{
	return strchr(s, ',') == NULL;
}

/* Appends @s to the @sep-separated words in @buf (a NUL-separated list
 * ends each word with its NUL). */
static int append(char *buf, size_t len, size_t *used, const char *s, char sep)
{
	size_t n = strlen(s);
	if (*used + n + 2 > len)
		return -EINVAL;
	if (*used && sep)
		buf[(*used)++] = sep;
	memcpy(buf + *used, s, n + 1);
	*used += n + (sep ? 0 : 1);
	return 0;
}

int phost_words(const struct phost_cmd *c, char *buf, size_t len, char sep, size_t *used,
                struct msb_err *err)
{
	if (!c->argv || !c->argv[0])
		return err_set(err, -EINVAL, "no program to run in the portable host");
	if (c->nfiles > PHOST_MAX_FILES)
		return err_set(err, -EINVAL,
		               "at most %d files can be shared with the portable host",
		               PHOST_MAX_FILES);
	int e = 0;
	for (size_t i = 0; !e && i < c->nfiles; i++) {
		const struct msb_vm_file *f = &c->files[i];
		if (!phost_valid_file_name(f->name))
			return err_set(err, -EINVAL, "invalid shared file name \"%s\"", f->name);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(c->files[j].name, f->name))
				return err_set(err, -EINVAL, "shared file \"%s\" named twice",
				               f->name);
		if (!qemu_opt_safe(f->path))
			return err_set(err, -EINVAL, "paths with ',' are not supported: %s",
			               f->path);
		/* -F: a disk the host's init binds again after a restore */
		e = append(buf, len, used, f->per_start ? "-F" : "-f", sep);
		e = e ?: append(buf, len, used, f->name, sep);
	}
	if (!e && c->vsock_port) {
		char port[16];
		snprintf(port, sizeof(port), "%u", c->vsock_port);
		e = append(buf, len, used, "--vsock-relay", sep);
		e = e ?: append(buf, len, used, PHOST_VSOCK_PATH, sep);
		e = e ?: append(buf, len, used, port, sep);
	}
	e = e ?: append(buf, len, used, "--run", sep);
	for (const char *const *p = c->argv; !e && *p; p++) {
		if (!cmdline_safe(*p))
			return err_set(err, -EINVAL,
			               "argument \"%s\" cannot be passed into the portable host "
			               "(empty, or has spaces, quotes or control characters)",
			               *p);
		e = append(buf, len, used, *p, sep);
	}
	if (!e && c->vsock_port) {
		e = append(buf, len, used, "--vsock", sep);
		e = e ?: append(buf, len, used, PHOST_VSOCK_PATH, sep);
	}
	if (e)
		return err_set(err, -EINVAL,
		               "the portable host's command line is longer than %zu bytes",
		               len - 1);
	return 0;
}

int phost_cmd_build(const struct phost_cmd *c, struct argbuf *a, struct msb_err *err)
{
	if (!qemu_opt_safe(c->kernel) || !qemu_opt_safe(c->initramfs) || !qemu_opt_safe(c->log))
		return err_set(err, -EINVAL, "paths with ',' are not supported: %s, %s, %s",
		               c->kernel, c->initramfs, c->log);
	if (c->start != PHOST_BOOT && (!c->ram || !qemu_opt_safe(c->ram)))
		return err_set(err, -EINVAL, "bad portable host snapshot path %s",
		               c->ram ? c->ram : "(none)");

	char cmdline[PHOST_CMDLINE_MAX];
	size_t used = 0;
	cmdline[0] = 0;
	int e = append(cmdline, sizeof(cmdline), &used, kernel_args, ' ');
	e = e ?: append(cmdline, sizeof(cmdline), &used, "--", ' ');
	if (e)
		return err_set(err, -EINVAL, "the portable host's command line is too long");
	if (c->start == PHOST_BOOT) {
		e = phost_words(c, cmdline, sizeof(cmdline), ' ', &used, err);
		if (e)
			return e;
	} else {
		/* the words come later, in the resume message (resume.h); check
		 * them now all the same */
		char words[PHOST_RESUME_MAX];
		size_t n = 0;
		e = phost_words(c, words, sizeof(words), 0, &n, err);
		e = e ?: append(cmdline, sizeof(cmdline), &used, "--serve", ' ');
		if (e)
			return e;
	}
	unsigned mem = c->mem_mib ? c->mem_mib : PHOST_DEFAULT_MIB;

	argbuf_init(a);
	argbuf_push(a, "%s", c->qemu);
	argbuf_push(a, "-M");
	argbuf_push(a, c->start == PHOST_BOOT ? "q35" : "q35,memory-backend=ram");
	argbuf_push(a, "-accel");
	argbuf_push(a, "tcg");
	argbuf_push(a, "-cpu");
	argbuf_push(a, "%s", cpu_model);
	argbuf_push(a, "-m");
	argbuf_push(a, "%u", mem);
	if (c->start != PHOST_BOOT) {
		/* RAM in a file: a snapshot shares it (with x-ignore-shared the
		 * migration stream leaves it out) and a restore maps it
		 * copy-on-write, so restored hosts share its pages */
		argbuf_push(a, "-object");
		argbuf_push(a, "memory-backend-file,id=ram,size=%uM,mem-path=%s,share=%s", mem,
		            c->ram, c->start == PHOST_SNAPSHOT ? "on" : "off");
		argbuf_push(a, "-chardev");
		argbuf_push(a, "socket,id=qmp,fd=%d", PHOST_QMP_FD);
		argbuf_push(a, "-mon");
		argbuf_push(a, "chardev=qmp,mode=control");
	}
	if (c->start == PHOST_RESTORE) {
		argbuf_push(a, "-incoming");
		argbuf_push(a, "defer");
	}
	argbuf_push(a, "-smp");
	argbuf_push(a, "1");
	argbuf_push(a, "-nodefaults");
	argbuf_push(a, "-no-user-config");
	argbuf_push(a, "-display");
	argbuf_push(a, "none");
	argbuf_push(a, "-no-reboot");
	argbuf_push(a, "-kernel");
	argbuf_push(a, "%s", c->kernel);
	argbuf_push(a, "-initrd");
	argbuf_push(a, "%s", c->initramfs);
	argbuf_push(a, "-append");
	argbuf_push(a, "%s", cmdline);
	argbuf_push(a, "-chardev");
	argbuf_push(a, "file,id=console,path=%s,append=on", c->log);
	argbuf_push(a, "-serial");
	argbuf_push(a, "chardev:console");
	argbuf_push(a, "-device");
	argbuf_push(a, "isa-debug-exit,iobase=0xf4,iosize=4");
	argbuf_push(a, "-device");
	argbuf_push(a, "virtio-serial-pci,id=vser");
	argbuf_push(a, "-chardev");
	argbuf_push(a, "socket,id=stream,fd=%d", PHOST_STREAM_FD);
	argbuf_push(a, "-device");
	argbuf_push(a, "virtserialport,bus=vser.0,chardev=stream,name=%s", PHOST_STREAM_NAME);
	/* werror/rerror=report: QEMU's default pauses the VM on ENOSPC, which
	 * for us is a hang; reported, a full disk fails msb-vmm's write */
	for (size_t i = 0; i < c->nfiles; i++) {
		const char *path = c->files[i].path;
		if (c->start == PHOST_SNAPSHOT && c->files[i].per_start)
			path = c->placeholders ? c->placeholders[i] : NULL;
		if (!path || !qemu_opt_safe(path))
			return err_set(err, -EINVAL, "bad path for shared file %s",
			               c->files[i].name);
		argbuf_push(a, "-drive");
		argbuf_push(
		    a,
		    "if=none,id=file%zu,format=raw,readonly=%s,werror=report,rerror=report,file=%s",
		    i, c->files[i].writable ? "off" : "on", path);
		argbuf_push(a, "-device");
		argbuf_push(a, "virtio-blk-pci,drive=file%zu,serial=%s", i, c->files[i].name);
	}
	if (a->overflow)
		return err_set(err, -E2BIG, "the portable host's QEMU command line is too long");
	return 0;
}
