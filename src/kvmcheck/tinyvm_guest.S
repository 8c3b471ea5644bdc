/*
 * The self-test guest: a few instructions that do what every Linux user
 * space does first, a user-mode SYSCALL, and check that it reached CPL0.
 *
 * tinyvm.c loads this blob at its guest address and enters it at CPL0 in
 * 64-bit mode with STAR/LSTAR set up like Linux. On a /dev/kvm that runs standard
 * guests the SYSCALL lands in syscall_entry at CPL0; on PVM it stays at CPL3,
 * where the test below (or the privileged OUT) faults and the guest shuts
 * down. Everything is RIP-relative, so the blob runs wherever it is loaded.
 *
 * Ports (see tinyvm.h): 0x510 reports CS, 0x511 writes an output byte,
 * 0x512 reads an input byte (0 at end of input).
 */
	.section .rodata
	.code64
	.globl tvm_guest_start
	.globl tvm_guest_end
tvm_guest_start:
	jmp	kernel_entry
	/* Header at offset 8: where the SYSCALL handler is, so the blob can be
	 * loaded from a file (see tvm_run). */
	.balign 8
	.quad	syscall_entry - tvm_guest_start
kernel_entry:
	lea	user_entry(%rip), %rcx
	mov	$0x2, %r11d		/* user RFLAGS: interrupts off */
	sysretq

user_entry:
	mov	$60, %eax
	syscall
	ud2				/* LSTAR never returns here */

syscall_entry:
	mov	%cs, %eax
	mov	$0x510, %dx
	out	%eax, (%dx)
	test	$3, %al
	jnz	fail

	lea	greeting(%rip), %rsi
	mov	$0x511, %dx
print:
	lodsb
	test	%al, %al
	jz	echo
	out	%al, (%dx)
	jmp	print

	/* Echo one line of input upper-cased, so a test sees the stream work
	 * both ways; the line's end (or the input's) ends the run. */
echo:
	mov	$0x512, %dx
	in	(%dx), %al
	test	%al, %al
	jz	done
	cmp	$'a', %al
	jb	1f
	cmp	$'z', %al
	ja	1f
	sub	$0x20, %al
1:	mov	$0x511, %dx
	out	%al, (%dx)
	cmp	$'\n', %al
	jne	echo

done:
	hlt
	jmp	done
fail:
	ud2

greeting:
	.asciz	"msb-kvm-smoke: hello from a KVM guest; its user-mode SYSCALL reached CPL0\n"
tvm_guest_end:
	.section .note.GNU-stack,"",@progbits
