/*
 * Saving a paused VM to a snapshot file and building a VM from one
 * (docs/design/snapshot.md). The file: a 4 KiB header page, the state file
 * (snapfile.h) at state_off, and guest RAM at mem_off (page-aligned, RAM in
 * guest-physical order: the low region, then the one above 4 GiB), written
 * sparse: pages the guest never touched, or that are all zeros, stay holes.
 */
#ifndef MSB_VMM_SNAPSHOT_H
#define MSB_VMM_SNAPSHOT_H

#include "snapfile.h"
#include "vm.h"

#include <stddef.h>
#include <stdint.h>

/* The guest writes any value to this port to ask for the snapshot; only a
 * VMM started with --snapshot-to listens. */
#define SNAPSHOT_PORT 0x5b0

/* Section types in the state file. */
enum snap_section {
	SEC_VCPU = 1,    /* id: vCPU index */
	SEC_IRQCHIP = 2, /* id: KVM irqchip id (0, 1 PIC; 2 IOAPIC) */
	SEC_PIT = 3,
	SEC_CLOCK = 4,
	SEC_VIRTIO = 5, /* id: device slot */
};

/* Reads vCPU @v's whole state into @out (from the vCPU's own thread, after
 * KVM completed its pending I/O). Returns 0 or a negative errno. */
struct vcpu_state;
int snapshot_vcpu_get(struct vcpu *v, struct vcpu_state **out, char *why, size_t wl);

/*
 * Writes the snapshot of @vm (every vCPU parked, its state in vm->saved[])
 * to @path: header, state, memory. @path may be a block device (the
 * portable host's writable shared file) or a regular file; either way the
 * caller made it large enough (snapshot_file_size()). Returns 0 or a
 * negative errno with @why set.
 */
int snapshot_write(struct vm *vm, const uint8_t shape[SNAP_SHAPE_SIZE], const char *path, char *why,
                   size_t wl);

/* Bytes a snapshot of @mem_bytes of guest RAM may need. */
uint64_t snapshot_file_size(uint64_t mem_bytes);

/* An opened snapshot: the state, checked, and where the memory is. */
struct snapshot_in {
	struct snap_file state;
	int fd; /* the snapshot file, for mapping the memory */
	uint64_t mem_off, mem_len;
};

/* Opens and checks @path. Returns 0, or a negative errno with @why set. */
int snapshot_open(const char *path, const uint8_t shape[SNAP_SHAPE_SIZE], struct snapshot_in *in,
                  char *why, size_t wl);
void snapshot_close(struct snapshot_in *in);

/* Sets vCPU @v's state from the snapshot (after vm_create's defaults). */
int snapshot_vcpu_restore(struct vcpu *v, const struct snapshot_in *in, char *why, size_t wl);

/* Sets the irqchip, PIT and clock of @vm from the snapshot. */
int snapshot_vm_restore(struct vm *vm, const struct snapshot_in *in, char *why, size_t wl);

#endif
