/*
 * The guest's CPUID: what KVM can virtualise on this host, made consistent
 * for one vCPU of N. Never more than the host has: we start from
 * KVM_GET_SUPPORTED_CPUID and only adjust topology and clear features.
 */
#include "vm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define MSR_IA32_ARCH_CAPABILITIES 0x10a
#define CPUID_7_EDX_ARCH_CAP       (1u << 29)
#define CPUID_1_ECX_HYPERVISOR     (1u << 31)

/* Some hosts (PVM, older KVMs) refuse IA32_ARCH_CAPABILITIES; a guest told
 * it exists would read it and fault. */
static int host_has_arch_capabilities(int kvm_fd)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} m;
	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = 1;
	m.e.index = MSR_IA32_ARCH_CAPABILITIES;
	return ioctl(kvm_fd, KVM_GET_MSRS, &m) == 1;
}

static struct kvm_cpuid_entry2 *find(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == idx)
			return &c->entries[i];
	return NULL;
}

/*
 * Leaf 0xD (XSAVE) must agree with the features leaf 1 and 7 announce: a
 * guest kernel drops a state component whose feature bit is absent and then
 * finds the sizes inconsistent (seen inside the portable host, where KVM
 * offers AVX state but not AVX). Keep only components the guest may enable
 * and recompute the sizes from their offsets.
 */
static void fix_xsave(struct kvm_cpuid2 *c)
{
	struct kvm_cpuid_entry2 *l1 = find(c, 1, 0), *d0 = find(c, 0xd, 0);
	if (!l1 || !d0)
		return;
	uint64_t mask = d0->eax | ((uint64_t)d0->edx << 32);
	if (!(l1->ecx & (1u << 28))) /* no AVX: no AVX, AVX-512 state */
		mask &= ~((1ULL << 2) | (7ULL << 5));
	uint32_t size = 576; /* legacy area and XSAVE header */
	for (int i = 2; i < 63; i++) {
		struct kvm_cpuid_entry2 *e = find(c, 0xd, (uint32_t)i);
		if (!(mask & (1ULL << i)))
			continue;
		if (!e || e->eax == 0) {
			mask &= ~(1ULL << i);
			continue;
		}
		if (e->ebx + e->eax > size && e->ebx + e->eax > e->ebx)
			size = e->ebx + e->eax;
	}
	d0->eax = (uint32_t)mask;
	d0->edx = (uint32_t)(mask >> 32);
	d0->ebx = size;
	d0->ecx = size;
}

int cpuid_setup(int kvm_fd, int vcpu_fd, int id, int ncpus)
{
	int nent = 128;
	struct kvm_cpuid2 *c = NULL;
	for (;;) {
		size_t sz = sizeof(*c) + (size_t)nent * sizeof(struct kvm_cpuid_entry2);
		c = calloc(1, sz);
		if (!c)
			return -ENOMEM;
		c->nent = (uint32_t)nent;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			break;
		int e = errno;
		free(c);
		if (e != E2BIG || nent >= 1024)
			return -e;
		nent *= 2;
	}
	int arch_cap = host_has_arch_capabilities(kvm_fd);
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		switch (e->function) {
		case 1:
			/* initial APIC id, logical CPU count; we are a guest */
			e->ebx =
			    (e->ebx & 0x0000ffffu) | ((uint32_t)id << 24) | ((uint32_t)ncpus << 16);
			e->ecx |= CPUID_1_ECX_HYPERVISOR;
			break;
		case 7:
			if (e->index == 0 && !arch_cap)
				e->edx &= ~CPUID_7_EDX_ARCH_CAP;
			break;
		case 0xa:
			/* no PMU: the guest has no use for one and it costs exits */
			e->eax = e->ebx = e->ecx = e->edx = 0;
			break;
		case 0xb:
		case 0x1f:
			e->edx = (uint32_t)id; /* x2APIC id */
			break;
		default:
			break;
		}
	}
	fix_xsave(c);
	int r = ioctl(vcpu_fd, KVM_SET_CPUID2, c) < 0 ? -errno : 0;
	free(c);
	return r;
}
