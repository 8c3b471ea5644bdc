/*
 * tinyvm: runs the self-test guest (tinyvm_guest.S) on a /dev/kvm.
 *
 * Used twice: by libmsb's host probe, which asks "can this /dev/kvm run a
 * standard guest?", and by msb-kvm-smoke, the program that proves a KVM
 * works inside the portable host and talks through its byte stream.
 * No global state; safe to call from several threads with different fds.
 */
#ifndef MSB_TINYVM_H
#define MSB_TINYVM_H

#include <stddef.h>
#include <stdint.h>

#define TVM_PORT_CS  0x510 /* guest OUTs its CS (32 bits) after SYSCALL */
#define TVM_PORT_OUT 0x511 /* guest OUTs one output byte */
#define TVM_PORT_IN  0x512 /* guest INs one input byte; 0 means end of input */

struct tvm_io {
	/* Called for every byte the guest writes. Returns 0 or a negative errno,
	 * which stops the run. May be NULL: output is dropped. */
	int (*out_byte)(void *ctx, uint8_t byte);
	/* Returns the next input byte (1..255), 0 at end of input, or a negative
	 * errno. May be NULL: the guest sees end of input at once. */
	int (*in_byte)(void *ctx);
	void *ctx;
};

struct tvm_result {
	int cs_reported;  /* the guest reached its SYSCALL handler */
	uint16_t cs;      /* CS the handler saw; CPL is cs & 3 */
	char detail[160]; /* why the run failed, for the caller's message */
};

/*
 * Runs @code (@code_len bytes, a guest built like tinyvm_guest.S: the 64-bit
 * little-endian offset of its SYSCALL handler at byte 8) in a fresh VM on
 * @kvm_fd, an open /dev/kvm. Stops when the guest halts. @code is copied;
 * its length and header are checked (-EINVAL with detail).
 * Returns 0 when the guest halted after reporting CPL0; -EPROTO when it did
 * not get there (result->detail says what happened instead: a shutdown, a CS
 * at CPL3); another negative errno when a KVM call failed (detail names it).
 */
int tvm_run(int kvm_fd, const void *code, size_t code_len, const struct tvm_io *io,
            struct tvm_result *result);

/* The guest blob linked into this program; *len gets its size. */
const void *tvm_builtin_guest(size_t *len);

/* Largest guest blob tvm_run accepts. */
#define TVM_MAX_GUEST (0x200000 - 0x8000)

#endif
