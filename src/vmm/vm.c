#include "vm.h"
#include "timing.h"
#include "snapshot.h"
#include "boot.h"
#include "mptable.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define KVM_TSS_GPA          0xfffbd000ULL
#define KVM_IDENTITY_MAP_GPA 0xfffbc000ULL
#define VCPU_KICK_SIGNAL     SIGUSR1

#define MSR_IA32_SYSENTER_CS  0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_STAR              0xc0000081
#define MSR_LSTAR             0xc0000082
#define MSR_CSTAR             0xc0000083
#define MSR_SYSCALL_MASK      0xc0000084
#define MSR_KERNEL_GS_BASE    0xc0000102
#define MSR_IA32_TSC          0x10
#define MSR_IA32_MISC_ENABLE  0x1a0
#define MISC_ENABLE_FAST_STR  1

#define APIC_LVT0     0x350
#define APIC_LVT1     0x360
#define APIC_MODE_NMI 0x4
#define APIC_MODE_EXT 0x7

static __thread struct kvm_run *this_run;

static void on_kick(int sig)
{
	(void)sig;
	/* KVM_RUN returns at once (EINTR) instead of entering the guest. */
	if (this_run)
		this_run->immediate_exit = 1;
}

#define SERIAL_IRQ 4

/* An edge on an ISA interrupt line of the in-kernel PIC/IOAPIC. */
static void pulse_irq(struct vm *vm, uint32_t irq)
{
	struct kvm_irq_level l = {.irq = irq, .level = 1};
	ioctl(vm->vm_fd, KVM_IRQ_LINE, &l);
	l.level = 0;
	ioctl(vm->vm_fd, KVM_IRQ_LINE, &l);
}

static void serial_irq(void *ctx)
{
	pulse_irq(ctx, SERIAL_IRQ);
}

static int failf(char *why, size_t len, int err, const char *what)
{
	snprintf(why, len, "%s: %s", what, strerror(err));
	return -err;
}

void vm_request_stop(struct vm *vm, enum vm_stop reason, const char *fmt, ...)
{
	int expected = VM_RUNNING;
	if (!atomic_compare_exchange_strong(&vm->stop, &expected, (int)reason))
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(vm->stop_why, sizeof(vm->stop_why), fmt, ap);
	va_end(ap);
	for (int i = 0; i < vm->ncpus; i++)
		if (vm->vcpus[i].started)
			pthread_kill(vm->vcpus[i].thread, VCPU_KICK_SIGNAL);
	pthread_mutex_lock(&vm->park_lock);
	pthread_cond_broadcast(&vm->park_cond);
	pthread_mutex_unlock(&vm->park_lock);
	uint64_t one = 1;
	ssize_t w = write(vm->stop_efd, &one, sizeof(one));
	(void)w;
}

void vm_request_park(struct vm *vm)
{
	int expected = 0;
	if (!vm->snapshot_to || !atomic_compare_exchange_strong(&vm->park_req, &expected, 1))
		return;
	for (int i = 0; i < vm->ncpus; i++)
		if (vm->vcpus[i].started)
			pthread_kill(vm->vcpus[i].thread, VCPU_KICK_SIGNAL);
}

/* In a vCPU thread: let KVM finish the exit it is in (an OUT's or MMIO's
 * completion happens on the next KVM_RUN; immediate_exit makes that run
 * return at once), save the state, and wait for the end. */
static void park(struct vcpu *v)
{
	struct vm *vm = v->vm;
	v->run->immediate_exit = 1;
	ioctl(v->fd, KVM_RUN, 0);
	v->run->immediate_exit = 0;
	char why[128];
	int e = snapshot_vcpu_get(v, &vm->saved[v->id], why, sizeof(why));
	if (e)
		fprintf(stderr, "msb-vmm: snapshot of vCPU %d: %s\n", v->id, why);
	pthread_mutex_lock(&vm->park_lock);
	vm->park_error |= e != 0;
	if (++vm->parked == vm->ncpus) {
		uint64_t one = 1;
		ssize_t w = write(vm->snap_efd, &one, sizeof(one));
		(void)w;
	}
	while (atomic_load(&vm->stop) == VM_RUNNING)
		pthread_cond_wait(&vm->park_cond, &vm->park_lock);
	pthread_mutex_unlock(&vm->park_lock);
}

static int set_lapic(int fd)
{
	struct kvm_lapic_state l;
	if (ioctl(fd, KVM_GET_LAPIC, &l) < 0)
		return -errno;
	uint32_t v;
	memcpy(&v, l.regs + APIC_LVT0, 4);
	v = (v & ~0x700u) | (APIC_MODE_EXT << 8);
	memcpy(l.regs + APIC_LVT0, &v, 4);
	memcpy(&v, l.regs + APIC_LVT1, 4);
	v = (v & ~0x700u) | (APIC_MODE_NMI << 8);
	memcpy(l.regs + APIC_LVT1, &v, 4);
	return ioctl(fd, KVM_SET_LAPIC, &l) < 0 ? -errno : 0;
}

static int set_msrs(int fd)
{
	static const uint32_t zero[] = {MSR_IA32_SYSENTER_CS,
	                                MSR_IA32_SYSENTER_ESP,
	                                MSR_IA32_SYSENTER_EIP,
	                                MSR_STAR,
	                                MSR_LSTAR,
	                                MSR_CSTAR,
	                                MSR_SYSCALL_MASK,
	                                MSR_KERNEL_GS_BASE,
	                                MSR_IA32_TSC};
	enum { N = sizeof(zero) / sizeof(zero[0]) + 1 };
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[N];
	} m;
	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = N;
	for (unsigned i = 0; i < N - 1; i++)
		m.e[i].index = zero[i];
	m.e[N - 1].index = MSR_IA32_MISC_ENABLE;
	m.e[N - 1].data = MISC_ENABLE_FAST_STR;
	int n = ioctl(fd, KVM_SET_MSRS, &m);
	return n == N ? 0 : (n < 0 ? -errno : -EINVAL);
}

static int setup_vcpu(struct vm *vm, int id, char *why, size_t wl)
{
	struct vcpu *v = &vm->vcpus[id];
	v->vm = vm;
	v->id = id;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0)
		return failf(why, wl, errno, "KVM_CREATE_VCPU");
	v->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return failf(why, wl, errno, "mapping a vCPU's run area");
	}
	int e = cpuid_setup(vm->kvm_fd, v->fd, id, vm->ncpus);
	if (e)
		return failf(why, wl, -e, "setting CPUID");
	if ((e = set_msrs(v->fd)))
		return failf(why, wl, -e, "setting MSRs");
	struct kvm_fpu fpu;
	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0)
		return failf(why, wl, errno, "KVM_SET_FPU");
	if ((e = set_lapic(v->fd)))
		return failf(why, wl, -e, "setting the LAPIC");
	return 0;
}

int vm_create(struct vm *vm, int kvm_fd, const struct vm_config *c, char *why, size_t wl)
{
	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = kvm_fd;
	vm->vm_fd = -1;
	vm->stop_efd = -1;
	vm->snap_efd = -1;
	atomic_init(&vm->stop, VM_RUNNING);
	pthread_mutex_init(&vm->io_lock, NULL);
	pthread_mutex_init(&vm->park_lock, NULL);
	pthread_cond_init(&vm->park_cond, NULL);
	serial_init(&vm->serial, c->serial_fd);
	if (c->ncpus < 1 || c->ncpus > VM_MAX_CPUS) {
		snprintf(why, wl, "--cpus must be 1..%d", VM_MAX_CPUS);
		return -EINVAL;
	}
	vm->ncpus = c->ncpus;
	for (int i = 0; i < VM_MAX_CPUS; i++)
		vm->vcpus[i].fd = -1;

	vm->stop_efd = eventfd(0, EFD_CLOEXEC);
	vm->snap_efd = eventfd(0, EFD_CLOEXEC);
	if (vm->stop_efd < 0 || vm->snap_efd < 0)
		return failf(why, wl, errno, "eventfd");
	int e = c->restore_fd >= 0
	            ? gm_init_file(&vm->gm, c->mem_bytes, c->restore_fd, c->restore_off)
	            : gm_init(&vm->gm, c->mem_bytes);
	if (e)
		return failf(why, wl, -e, "guest memory (16 MiB..64 GiB, a multiple of 2 MiB)");
	vm->vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return failf(why, wl, errno, "KVM_CREATE_VM");
	for (int i = 0; i < vm->gm.n; i++) {
		struct kvm_userspace_memory_region r = {
		    .slot = (uint32_t)i,
		    .guest_phys_addr = vm->gm.r[i].gpa,
		    .memory_size = vm->gm.r[i].size,
		    .userspace_addr = (uintptr_t)vm->gm.r[i].host,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
			return failf(why, wl, errno, "KVM_SET_USER_MEMORY_REGION");
	}
	/* Needed on Intel, harmless on AMD: pages for KVM's real-mode helpers,
	 * inside the 32-bit hole where no RAM or device is. */
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_GPA) < 0)
		return failf(why, wl, errno, "KVM_SET_TSS_ADDR");
	uint64_t idmap = KVM_IDENTITY_MAP_GPA;
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
		return failf(why, wl, errno, "KVM_SET_IDENTITY_MAP_ADDR");
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return failf(why, wl, errno, "KVM_CREATE_IRQCHIP");
	vm->serial.raise_irq = serial_irq;
	vm->serial.irq_ctx = vm;
	struct kvm_pit_config pit = {.flags = 0};
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return failf(why, wl, errno, "KVM_CREATE_PIT2");
	long rs = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (rs < (long)sizeof(struct kvm_run))
		return failf(why, wl, rs < 0 ? errno : EINVAL, "KVM_GET_VCPU_MMAP_SIZE");
	vm->run_size = (size_t)rs;
	if ((e = evloop_init(&vm->loop)))
		return failf(why, wl, -e, "the event loop");
	vm->loop_ready = 1;
	/* a restored guest's memory already holds its tables */
	if (c->restore_fd < 0 && (e = mptable_write(&vm->gm, vm->ncpus)))
		return failf(why, wl, -e, "writing the MP table");
	for (int i = 0; i < vm->ncpus; i++)
		if ((e = setup_vcpu(vm, i, why, wl)))
			return e;
	return 0;
}

void vm_next_device_slot(const struct vm *vm, uint64_t *base, uint32_t *irq)
{
	*base = VM_MMIO_BASE + (uint64_t)vm->ndevs * VIRTIO_MMIO_SIZE;
	*irq = VM_FIRST_IRQ + (uint32_t)vm->ndevs;
}

static void on_queue_kick(struct ev_source *s, uint32_t events)
{
	(void)events;
	struct vm_kick *k = (struct vm_kick *)s;
	uint64_t v;
	if (read(s->fd, &v, sizeof(v)) == sizeof(v))
		virtio_queue_kick(k->dev, k->queue);
}

int vm_add_device(struct vm *vm, struct virtio_dev *d, char *why, size_t wl)
{
	if (vm->ndevs >= VM_MAX_DEVS)
		return failf(why, wl, ENOSPC, "too many devices");
	int i = vm->ndevs;
	d->irqfd = eventfd(0, EFD_CLOEXEC);
	if (d->irqfd < 0)
		return failf(why, wl, errno, "eventfd");
	struct kvm_irqfd irqfd = {.fd = (uint32_t)d->irqfd, .gsi = d->irq};
	if (ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0)
		return failf(why, wl, errno, "KVM_IRQFD");
	for (int q = 0; q < d->ops->nqueues; q++) {
		struct vm_kick *k = &vm->kicks[i][q];
		k->dev = d;
		k->queue = q;
		k->src.cb = on_queue_kick;
		k->src.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (k->src.fd < 0)
			return failf(why, wl, errno, "eventfd");
		/* a write of q to QueueNotify becomes an eventfd signal, no exit
		 * to user space on the vCPU */
		struct kvm_ioeventfd io = {.datamatch = (uint64_t)q,
		                           .addr = d->base + 0x50,
		                           .len = 4,
		                           .fd = k->src.fd,
		                           .flags = KVM_IOEVENTFD_FLAG_DATAMATCH};
		if (ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0)
			return failf(why, wl, errno, "KVM_IOEVENTFD");
		int e = evloop_add(&vm->loop, &k->src, EPOLLIN);
		if (e)
			return failf(why, wl, -e, "epoll");
	}
	vm->devs[i] = d;
	vm->ndevs++;
	return 0;
}

static void mmio_exit(struct vm *vm, struct kvm_run *run)
{
	uint64_t a = run->mmio.phys_addr;
	uint32_t len = run->mmio.len <= 8 ? run->mmio.len : 8;
	for (int i = 0; i < vm->ndevs; i++) {
		struct virtio_dev *d = vm->devs[i];
		if (a >= d->base && a - d->base < VIRTIO_MMIO_SIZE) {
			virtio_mmio_access(d, a - d->base, run->mmio.data, len, run->mmio.is_write);
			return;
		}
	}
	/* nothing there: reads see all ones, writes vanish */
	if (!run->mmio.is_write)
		memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
}

static void set_seg(struct kvm_segment *s, uint16_t sel, uint8_t type)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->limit = 0xffffffff;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->db = 1;
	s->g = 1;
}

int vm_set_pvh_entry(struct vm *vm, uint32_t entry, uint64_t start_info, char *why, size_t wl)
{
	struct vcpu *v = &vm->vcpus[0];
	/* The PVH ABI: 32-bit protected mode, paging off, flat segments, a
	 * loaded 32-bit TSS. A boot GDT in memory matches the selectors. */
	uint64_t *gdt = gm_ptr(&vm->gm, BOOT_GDT_GPA, 4 * sizeof(uint64_t));
	if (!gdt)
		return failf(why, wl, EINVAL, "boot GDT");
	gdt[0] = 0;
	gdt[1] = 0x00cf9b000000ffffULL; /* code: flat, 32-bit, read/exec */
	gdt[2] = 0x00cf93000000ffffULL; /* data: flat, read/write */
	gdt[3] = 0x00008b0000000067ULL; /* TSS: base 0, limit 0x67, busy */

	struct kvm_sregs s;
	if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return failf(why, wl, errno, "KVM_GET_SREGS");
	set_seg(&s.cs, 0x08, 0xb);
	set_seg(&s.ds, 0x10, 0x3);
	s.es = s.fs = s.gs = s.ss = s.ds;
	memset(&s.tr, 0, sizeof(s.tr));
	s.tr.selector = 0x18;
	s.tr.limit = 0x67;
	s.tr.type = 0xb;
	s.tr.present = 1;
	s.gdt.base = BOOT_GDT_GPA;
	s.gdt.limit = 4 * 8 - 1;
	s.cr0 = 0x11; /* PE, ET */
	s.cr3 = 0;
	s.cr4 = 0;
	s.efer = 0;
	if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0)
		return failf(why, wl, errno, "KVM_SET_SREGS");
	struct kvm_regs r;
	memset(&r, 0, sizeof(r));
	r.rip = entry;
	r.rbx = start_info;
	r.rflags = 0x2;
	if (ioctl(v->fd, KVM_SET_REGS, &r) < 0)
		return failf(why, wl, errno, "KVM_SET_REGS");
	return 0;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	this_run = v->run;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	if (v->id == 0 && vm->timing)
		timing_mark(vm->timing, "first guest instruction");
	while (atomic_load(&vm->stop) == VM_RUNNING) {
		if (atomic_load(&vm->park_req)) {
			park(v);
			break;
		}
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				v->run->immediate_exit = 0;
				continue;
			}
			vm_request_stop(vm, VM_STOP_VMM_ERROR, "KVM_RUN on vCPU %d: %s", v->id,
			                strerror(errno));
			break;
		}
		struct kvm_run *run = v->run;
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			pio_handle(vm, run);
			break;
		case KVM_EXIT_MMIO:
			mmio_exit(vm, run);
			break;
		case KVM_EXIT_SHUTDOWN:
			vm_request_stop(vm, VM_STOP_GUEST_CRASHED,
			                "the guest triple-faulted on vCPU %d", v->id);
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			vm_request_stop(vm, VM_STOP_GUEST_RESET, "the guest stopped (event %u)",
			                run->system_event.type);
			break;
		case KVM_EXIT_HLT:
			vm_request_stop(vm, VM_STOP_GUEST_RESET, "the guest halted");
			break;
		case KVM_EXIT_FAIL_ENTRY:
			vm_request_stop(
			    vm, VM_STOP_GUEST_CRASHED, "KVM could not enter vCPU %d (reason %#llx)",
			    v->id,
			    (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			vm_request_stop(vm, VM_STOP_GUEST_CRASHED,
			                "KVM internal error %u on vCPU %d", run->internal.suberror,
			                v->id);
			break;
		default:
			vm_request_stop(vm, VM_STOP_GUEST_CRASHED, "unexpected exit %u on vCPU %d",
			                run->exit_reason, v->id);
			break;
		}
	}
	return NULL;
}

int vm_start(struct vm *vm)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_kick;
	sigemptyset(&sa.sa_mask);
	sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
	int e = evloop_start(&vm->loop);
	if (e) {
		vm_request_stop(vm, VM_STOP_VMM_ERROR, "starting the event loop: %s", strerror(-e));
		return e;
	}
	for (int i = 0; i < vm->ncpus; i++) {
		int e = pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread, &vm->vcpus[i]);
		if (e) {
			vm_request_stop(vm, VM_STOP_VMM_ERROR, "starting vCPU %d: %s", i,
			                strerror(e));
			return -e;
		}
		vm->vcpus[i].started = 1;
	}
	return 0;
}

void vm_destroy(struct vm *vm)
{
	for (int i = 0; i < vm->ncpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		if (v->started)
			pthread_join(v->thread, NULL);
		if (v->run)
			munmap(v->run, vm->run_size);
		if (v->fd >= 0)
			close(v->fd);
	}
	serial_flush(&vm->serial);
	if (vm->loop_ready)
		evloop_destroy(&vm->loop); /* before devices go: it calls into them */
	for (int i = 0; i < vm->ndevs; i++)
		for (int q = 0; q < vm->devs[i]->ops->nqueues; q++)
			if (vm->kicks[i][q].src.fd > 0)
				close(vm->kicks[i][q].src.fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	gm_destroy(&vm->gm);
	if (vm->stop_efd >= 0)
		close(vm->stop_efd);
	if (vm->snap_efd >= 0)
		close(vm->snap_efd);
	for (int i = 0; i < VM_MAX_CPUS; i++)
		free(vm->saved[i]);
	pthread_mutex_destroy(&vm->io_lock);
	pthread_mutex_destroy(&vm->park_lock);
	pthread_cond_destroy(&vm->park_cond);
}
