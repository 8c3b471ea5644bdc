/*
 * A 16550A UART at COM1 (0x3f8, IRQ 4), output only: the guest's console.
 * The transmitter is always ready. The kernel's own messages poll for that;
 * writes from user space (/dev/console) go through the tty layer, which
 * sends a FIFO's worth and waits for the "transmitter empty" interrupt, so
 * the UART raises it whenever the guest enables it or writes a byte.
 * Output goes to a file descriptor, line by line.
 */
#ifndef MSB_VMM_SERIAL_H
#define MSB_VMM_SERIAL_H

#include <stdint.h>

#define SERIAL_BASE 0x3f8
#define SERIAL_LEN  8

struct serial {
	int out_fd; /* -1: output dropped */
	uint8_t ier, lcr, mcr, scr, fcr, dll, dlm;
	char line[256];
	unsigned line_len;
	int saw_panic;                /* the guest printed "Kernel panic" */
	int thre_pending;             /* a "transmitter empty" interrupt not yet seen in IIR */
	void (*raise_irq)(void *ctx); /* may be NULL: no interrupts */
	void *irq_ctx;
};

void serial_init(struct serial *s, int out_fd);
/* @off is port - SERIAL_BASE, < SERIAL_LEN. Not thread-safe: the caller
 * serialises (vCPUs share one UART). */
void serial_out(struct serial *s, unsigned off, uint8_t v);
uint8_t serial_in(struct serial *s, unsigned off);
/* Writes out a partial last line. */
void serial_flush(struct serial *s);

#endif
