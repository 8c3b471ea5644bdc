/*
 * The QEMU command line of a portable host. Kept apart from process
 * handling so it is a pure function, tested on its own.
 */
#ifndef MSB_VMPROC_PHOST_CMD_H
#define MSB_VMPROC_PHOST_CMD_H

#include "argbuf.h"
#include "msb.h"

#define PHOST_STREAM_FD   3 /* the stream socket's fd number in QEMU */
#define PHOST_QMP_FD      4 /* its control socket, when snapshotting or restoring */
#define PHOST_STATE_FD    5 /* the snapshot's device state, when restoring */
#define PHOST_DEFAULT_MIB 512
#define PHOST_MAX_FILES   16
#define PHOST_CMDLINE_MAX 2048 /* x86 COMMAND_LINE_SIZE */
#define PHOST_STREAM_NAME "msb.stream"

enum phost_start {
	PHOST_BOOT,     /* boot, with the program's words on the kernel command line */
	PHOST_SNAPSHOT, /* boot with RAM in the file @ram, shared, to snapshot it */
	PHOST_RESTORE,  /* restore from @ram (copy-on-write) and a state stream */
};

struct phost_cmd {
	const char *qemu;      /* binary, found on PATH if it has no '/' */
	const char *kernel;    /* vmlinuz of Debian's cloud kernel */
	const char *initramfs; /* ours: init, modules, programs */
	const char *log;       /* console output goes here (appended) */
	unsigned mem_mib;
	const char *const *argv; /* program inside the portable host */
	const struct msb_vm_file *files;
	size_t nfiles;
	uint32_t vsock_port; /* relay the stream to this guest port; 0: stdio */
	enum phost_start start;
	const char *ram; /* guest RAM file, for PHOST_SNAPSHOT and PHOST_RESTORE */
	/* PHOST_SNAPSHOT: by file index, an empty file that stands for each
	 * per_start file (its disk slot is in the snapshot, the file is bound
	 * at restore); one each, since QEMU locks a file a drive writes */
	const char *const *placeholders;
};

#define PHOST_VSOCK_PATH "/run/vsock.sock" /* msb-vmm's socket inside the host */

/*
 * Fills @out with QEMU's argv. Returns 0, or -EINVAL with @err set when an
 * argument cannot travel on the kernel command line (empty, spaces, quotes,
 * control characters), a file name is invalid or repeated, or the command
 * line is longer than the kernel takes; -E2BIG when @out overflows.
 */
int phost_cmd_build(const struct phost_cmd *c, struct argbuf *out, struct msb_err *err);

/*
 * The words msb-phost-init takes (files, relay, program), validated as
 * phost_cmd_build does, appended to @buf at *@used separated by @sep (' ' for
 * a command line, 0 for a resume message: each word ends in NUL).
 */
int phost_words(const struct phost_cmd *c, char *buf, size_t len, char sep, size_t *used,
                struct msb_err *err);

/* 1 when @name may name a shared file (see struct msb_vm_file). */
int phost_valid_file_name(const char *name);

#endif
