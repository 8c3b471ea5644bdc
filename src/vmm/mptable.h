/*
 * The Intel MultiProcessor table: how a guest without ACPI learns its CPUs,
 * its IOAPIC and how ISA interrupts are wired. Written into the reserved
 * EBDA area (BOOT_EBDA_GPA), which Linux scans.
 */
#ifndef MSB_VMM_MPTABLE_H
#define MSB_VMM_MPTABLE_H

#include "memory.h"

#define MPTABLE_MAX_CPUS   32
#define MPTABLE_IOAPIC_GPA 0xfec00000U
#define MPTABLE_LAPIC_GPA  0xfee00000U
#define MPTABLE_IRQS       24 /* KVM's in-kernel IOAPIC has 24 pins */

/* Writes the table for @ncpus CPUs (APIC ids 0..ncpus-1). Returns 0 or
 * -EINVAL (ncpus out of range, or the EBDA is not in guest RAM). */
int mptable_write(struct gm *gm, int ncpus);

#endif
