/*
 * The smallest VM that tells a standard KVM from one that cannot run Linux
 * user space: 64-bit mode, Linux's segment layout, one 2 MiB identity page.
 */
#include "tinyvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

extern const uint8_t tvm_guest_start[], tvm_guest_end[];

#define MEM_SIZE   0x200000ULL /* one 2 MiB page; TVM_MAX_GUEST follows from it */
#define GDT_GPA    0x1000ULL
#define PML4_GPA   0x2000ULL
#define PDPT_GPA   0x3000ULL
#define PD_GPA     0x4000ULL
#define STACK_GPA  0x7000ULL
#define GUEST_BASE 0x8000ULL
#define MAX_EXITS  100000 /* the guest needs a few hundred; more means a loop */

/* Linux's GDT layout, so STAR below matches what a Linux kernel programs. */
#define SEL_KERNEL_CS 0x10
#define SEL_KERNEL_DS 0x18
#define SEL_USER32_CS 0x23

#define MSR_STAR   0xc0000081
#define MSR_LSTAR  0xc0000082
#define MSR_SFMASK 0xc0000084

#define EFER_SCE 0x001ULL
#define EFER_LME 0x100ULL
#define EFER_LMA 0x400ULL

const void *tvm_builtin_guest(size_t *len)
{
	*len = (size_t)(tvm_guest_end - tvm_guest_start);
	return tvm_guest_start;
}

static int fail(struct tvm_result *r, int err, const char *what)
{
	snprintf(r->detail, sizeof(r->detail), "%s: %s", what, strerror(err));
	return -err;
}

static void setup_memory(uint8_t *mem)
{
	uint64_t *gdt = (uint64_t *)(mem + GDT_GPA);
	gdt[SEL_KERNEL_CS >> 3] = 0x00af9b000000ffffULL;       /* 64-bit code, DPL0 */
	gdt[SEL_KERNEL_DS >> 3] = 0x00cf93000000ffffULL;       /* data, DPL0 */
	gdt[SEL_USER32_CS >> 3] = 0x00cffb000000ffffULL;       /* 32-bit code, DPL3 */
	gdt[(SEL_USER32_CS >> 3) + 1] = 0x00cff3000000ffffULL; /* data, DPL3 */
	gdt[(SEL_USER32_CS >> 3) + 2] = 0x00affb000000ffffULL; /* 64-bit code, DPL3 */

	uint64_t *pml4 = (uint64_t *)(mem + PML4_GPA);
	uint64_t *pdpt = (uint64_t *)(mem + PDPT_GPA);
	uint64_t *pd = (uint64_t *)(mem + PD_GPA);
	/* present, writable, user; the PD entry is one 2 MiB page at 0 */
	pml4[0] = PDPT_GPA | 0x7;
	pdpt[0] = PD_GPA | 0x7;
	pd[0] = 0x87;
}

static void set_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, int code64)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->limit = 0xffffffff;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code64;
	s->db = !code64;
}

static int setup_vcpu(int kvm_fd, int vcpu_fd, uint64_t syscall_off, struct tvm_result *r)
{
	int nent = 128;
	size_t sz = sizeof(struct kvm_cpuid2) + (size_t)nent * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *cpuid = calloc(1, sz);
	if (!cpuid)
		return fail(r, ENOMEM, "allocating CPUID");
	cpuid->nent = nent;
	/* KVM refuses EFER.LME unless the guest's CPUID has long mode. */
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0 ||
	    ioctl(vcpu_fd, KVM_SET_CPUID2, cpuid) < 0) {
		int e = errno;
		free(cpuid);
		return fail(r, e, "setting the vCPU's CPUID");
	}
	free(cpuid);

	struct kvm_sregs sregs;
	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return fail(r, errno, "KVM_GET_SREGS");
	set_seg(&sregs.cs, SEL_KERNEL_CS, 11, 1);
	set_seg(&sregs.ds, SEL_KERNEL_DS, 3, 0);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.gdt.base = GDT_GPA;
	sregs.gdt.limit = 8 * 8 - 1;
	sregs.cr3 = PML4_GPA;
	sregs.cr4 = 0x20;       /* PAE */
	sregs.cr0 = 0x80050033; /* PG, AM, WP, NE, ET, MP, PE */
	sregs.efer = EFER_SCE | EFER_LME | EFER_LMA;
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return fail(r, errno, "KVM_SET_SREGS");

	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[3];
	} msrs;
	memset(&msrs, 0, sizeof(msrs));
	msrs.hdr.nmsrs = 3;
	msrs.e[0].index = MSR_STAR;
	msrs.e[0].data = ((uint64_t)SEL_USER32_CS << 48) | ((uint64_t)SEL_KERNEL_CS << 32);
	msrs.e[1].index = MSR_LSTAR;
	msrs.e[1].data = GUEST_BASE + syscall_off;
	msrs.e[2].index = MSR_SFMASK;
	msrs.e[2].data = 0x47700; /* what Linux masks: TF, DF, IF, IOPL, NT, AC */
	int n = ioctl(vcpu_fd, KVM_SET_MSRS, &msrs);
	if (n != 3)
		return fail(r, n < 0 ? errno : EINVAL, "setting the SYSCALL MSRs");

	struct kvm_regs regs;
	memset(&regs, 0, sizeof(regs));
	regs.rip = GUEST_BASE;
	regs.rsp = STACK_GPA;
	regs.rflags = 0x2;
	if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return fail(r, errno, "KVM_SET_REGS");
	return 0;
}

static int handle_io(struct kvm_run *run, const struct tvm_io *io, struct tvm_result *r)
{
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	if (run->io.count != 1)
		return fail(r, EPROTO, "the guest used a string I/O instruction");
	if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == TVM_PORT_CS &&
	    run->io.size == 4) {
		uint32_t v;
		memcpy(&v, data, 4);
		r->cs_reported = 1;
		r->cs = (uint16_t)v;
		return 0;
	}
	if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == TVM_PORT_OUT &&
	    run->io.size == 1)
		return io && io->out_byte ? io->out_byte(io->ctx, data[0]) : 0;
	if (run->io.direction == KVM_EXIT_IO_IN && run->io.port == TVM_PORT_IN &&
	    run->io.size == 1) {
		int b = io && io->in_byte ? io->in_byte(io->ctx) : 0;
		if (b < 0)
			return b;
		data[0] = (uint8_t)b;
		return 0;
	}
	snprintf(r->detail, sizeof(r->detail), "the guest used I/O port %#x, which it has not",
	         run->io.port);
	return -EPROTO;
}

static int run_loop(int vcpu_fd, struct kvm_run *run, const struct tvm_io *io, struct tvm_result *r)
{
	for (int exits = 0; exits < MAX_EXITS; exits++) {
		if (ioctl(vcpu_fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return fail(r, errno, "KVM_RUN");
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO: {
			int e = handle_io(run, io, r);
			if (e < 0)
				return e;
			break;
		}
		case KVM_EXIT_HLT:
			if (r->cs_reported && (r->cs & 3) == 0)
				return 0;
			snprintf(r->detail, sizeof(r->detail),
			         "the guest halted before its SYSCALL handler ran");
			return -EPROTO;
		case KVM_EXIT_SHUTDOWN:
			if (r->cs_reported)
				snprintf(r->detail, sizeof(r->detail),
				         "a user-mode SYSCALL reached its handler at CPL%d "
				         "(CS %#x), not CPL0",
				         r->cs & 3, r->cs);
			else
				snprintf(r->detail, sizeof(r->detail),
				         "the guest faulted before its user-mode SYSCALL "
				         "reached CPL0");
			return -EPROTO;
		case KVM_EXIT_FAIL_ENTRY:
			snprintf(r->detail, sizeof(r->detail),
			         "KVM could not enter the guest (%#llx)",
			         (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			return -EPROTO;
		case KVM_EXIT_INTERNAL_ERROR:
			snprintf(r->detail, sizeof(r->detail), "KVM internal error %u",
			         run->internal.suberror);
			return -EPROTO;
		default:
			snprintf(r->detail, sizeof(r->detail), "unexpected KVM exit %u",
			         run->exit_reason);
			return -EPROTO;
		}
	}
	snprintf(r->detail, sizeof(r->detail), "the guest did not halt after %d exits", MAX_EXITS);
	return -EPROTO;
}

int tvm_run(int kvm_fd, const void *code, size_t code_len, const struct tvm_io *io,
            struct tvm_result *r)
{
	memset(r, 0, sizeof(*r));
	uint64_t syscall_off = 0;
	if (code_len >= 16)
		memcpy(&syscall_off, (const uint8_t *)code + 8, sizeof(syscall_off));
	if (code_len < 16 || code_len > TVM_MAX_GUEST || syscall_off < 16 ||
	    syscall_off >= code_len)
		return fail(r, EINVAL, "the self-test guest has no valid header");

	int ret;
	int vm_fd = -1, vcpu_fd = -1;
	uint8_t *mem = MAP_FAILED;
	struct kvm_run *run = MAP_FAILED;
	long run_size = 0;

	vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm_fd < 0) {
		ret = fail(r, errno, "KVM_CREATE_VM");
		goto out;
	}
	mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
	           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		ret = fail(r, errno, "mapping guest memory");
		goto out;
	}
	setup_memory(mem);
	memcpy(mem + GUEST_BASE, code, code_len);
	struct kvm_userspace_memory_region region = {
	    .slot = 0,
	    .guest_phys_addr = 0,
	    .memory_size = MEM_SIZE,
	    .userspace_addr = (uintptr_t)mem,
	};
	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		ret = fail(r, errno, "KVM_SET_USER_MEMORY_REGION");
		goto out;
	}
	vcpu_fd = ioctl(vm_fd, KVM_CREATE_VCPU, 0);
	if (vcpu_fd < 0) {
		ret = fail(r, errno, "KVM_CREATE_VCPU");
		goto out;
	}
	run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size < (long)sizeof(struct kvm_run)) {
		ret = fail(r, run_size < 0 ? errno : EINVAL, "KVM_GET_VCPU_MMAP_SIZE");
		goto out;
	}
	run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
	if (run == MAP_FAILED) {
		ret = fail(r, errno, "mapping the vCPU's run area");
		goto out;
	}
	ret = setup_vcpu(kvm_fd, vcpu_fd, syscall_off, r);
	if (ret == 0)
		ret = run_loop(vcpu_fd, run, io, r);
out:
	if (run != MAP_FAILED)
		munmap(run, (size_t)run_size);
	if (vcpu_fd >= 0)
		close(vcpu_fd);
	if (mem != MAP_FAILED)
		munmap(mem, MEM_SIZE);
	if (vm_fd >= 0)
		close(vm_fd);
	return ret;
}
