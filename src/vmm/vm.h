/*
 * One KVM virtual machine: its memory, vCPU threads and devices. Owned by
 * main(); nothing here is global.
 */
#ifndef MSB_VMM_VM_H
#define MSB_VMM_VM_H

#include "evloop.h"
#include "memory.h"
#include "serial.h"
#include "virtio/mmio.h"

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define VM_MAX_CPUS  8             /* the guest kernel's NR_CPUS */
#define VM_MAX_DEVS  16            /* IRQs 5..20: below the IOAPIC's 24 pins */
#define VM_MMIO_BASE 0xd0000000ULL /* virtio-mmio windows, 4 KiB each */
#define VM_FIRST_IRQ 5             /* after the ISA ones we use (serial: 4) */

/* A queue's ioeventfd, delivered to its device on the event loop. */
struct vm_kick {
	struct ev_source src;
	struct virtio_dev *dev;
	int queue;
};

struct vm;

struct vcpu {
	struct vm *vm;
	int id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	int started;
};

enum vm_stop {
	VM_RUNNING = 0,
	VM_STOP_GUEST_RESET,   /* the guest rebooted or powered off: done */
	VM_STOP_GUEST_CRASHED, /* triple fault, panic, or KVM could not run it */
	VM_STOP_REQUESTED,     /* SIGTERM/SIGINT to the VMM */
	VM_STOP_VMM_ERROR,     /* a KVM call failed */
};

struct vmm_timing;
struct vcpu_state;

struct vm {
	int kvm_fd, vm_fd;
	struct gm gm;
	int ncpus;
	struct vcpu vcpus[VM_MAX_CPUS];
	size_t run_size;
	pthread_mutex_t io_lock; /* devices touched from several vCPUs */
	struct serial serial;
	_Atomic int stop; /* an enum vm_stop; the first reason wins */
	char stop_why[256];
	int stop_efd; /* eventfd: written when stop is set */
	struct evloop loop;
	int loop_ready;
	struct virtio_dev *devs[VM_MAX_DEVS]; /* owned by their device modules */
	int ndevs;
	struct vm_kick kicks[VM_MAX_DEVS][VIRTIO_MAX_QUEUES];
	struct vmm_timing *timing; /* owned by main; NULL when off */

	/* Snapshots: with snapshot_to set, the guest's write to SNAPSHOT_PORT
	 * parks every vCPU; each saves its own state into saved[] and the last
	 * one signals snap_efd, on which main writes the file. */
	const char *snapshot_to;
	struct vcpu_state *saved[VM_MAX_CPUS];
	pthread_mutex_t park_lock;
	pthread_cond_t park_cond;
	_Atomic int park_req;
	int parked;     /* under park_lock */
	int park_error; /* a vCPU could not read its state */
	int snap_efd;
};

struct vm_config {
	uint64_t mem_bytes;
	int ncpus;
	int serial_fd;
	int restore_fd;       /* >= 0: guest RAM comes from this snapshot file */
	uint64_t restore_off; /* where in it */
};

/* Parks every vCPU for a snapshot (from a vCPU thread, under io_lock). */
void vm_request_park(struct vm *vm);

/* Creates the VM (memory, irqchip, PIT, vCPUs with CPUID/MSRs/LAPIC) on
 * an open /dev/kvm. Returns 0 or a negative errno with @why set. */
int vm_create(struct vm *vm, int kvm_fd, const struct vm_config *c, char *why, size_t why_len);

/* Sets vCPU 0 up to enter the kernel at its 32-bit PVH @entry with EBX =
 * @start_info. */
int vm_set_pvh_entry(struct vm *vm, uint32_t entry, uint64_t start_info, char *why, size_t why_len);

/* Where the next virtio device goes (MMIO base and IRQ). */
void vm_next_device_slot(const struct vm *vm, uint64_t *base, uint32_t *irq);

/* Wires @d in: its interrupt through an irqfd, its queue notifications
 * through ioeventfds on the event loop, its registers on MMIO exits. */
int vm_add_device(struct vm *vm, struct virtio_dev *d, char *why, size_t why_len);

/* Starts the event loop and one thread per vCPU. */
int vm_start(struct vm *vm);

/* Records the reason the VM stops (the first one wins) and kicks every
 * vCPU out of the guest. Safe from any thread, not from signal handlers. */
void vm_request_stop(struct vm *vm, enum vm_stop why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Joins the vCPU threads (after a stop) and frees everything. */
void vm_destroy(struct vm *vm);

/* CPUID for vCPU @id of @ncpus (cpuid.c). */
int cpuid_setup(int kvm_fd, int vcpu_fd, int id, int ncpus);

/* Port I/O from a vCPU (pio.c); returns 0, or 1 when the VM must stop. */
int pio_handle(struct vm *vm, struct kvm_run *run);

#endif
