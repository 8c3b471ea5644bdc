#include "serial.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#define LCR_DLAB  0x80
#define LSR_READY 0x60 /* transmitter holding register and shifter empty */
#define MSR_LINES 0xb0 /* carrier, data set ready, clear to send */
#define IER_THRI  0x02 /* interrupt when the transmitter is empty */
#define IIR_NONE  0x01
#define IIR_THRI  0x02

/* The transmitter empties at once: if the guest wants to hear of it, say so. */
static void thr_empty(struct serial *s)
{
	if (!(s->ier & IER_THRI))
		return;
	s->thre_pending = 1;
	if (s->raise_irq)
		s->raise_irq(s->irq_ctx);
}

void serial_init(struct serial *s, int out_fd)
{
	memset(s, 0, sizeof(*s));
	s->out_fd = out_fd;
}

void serial_flush(struct serial *s)
{
	if (s->line_len == 0)
		return;
	if (memmem(s->line, s->line_len, "Kernel panic", 12))
		s->saw_panic = 1;
	size_t off = 0;
	while (s->out_fd >= 0 && off < s->line_len) {
		ssize_t n = write(s->out_fd, s->line + off, s->line_len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* a console we cannot write is not the guest's problem */
		off += (size_t)n;
	}
	s->line_len = 0;
}

void serial_out(struct serial *s, unsigned off, uint8_t v)
{
	int dlab = s->lcr & LCR_DLAB;
	switch (off) {
	case 0:
		if (dlab) {
			s->dll = v;
			return;
		}
		s->line[s->line_len++] = (char)v;
		if (v == '\n' || s->line_len == sizeof(s->line))
			serial_flush(s);
		thr_empty(s);
		return;
	case 1:
		if (dlab) {
			s->dlm = v;
			return;
		}
		s->ier = v & 0x0f;
		thr_empty(s);
		return;
	case 2:
		s->fcr = v;
		return;
	case 3:
		s->lcr = v;
		return;
	case 4:
		s->mcr = v & 0x1f;
		return;
	case 7:
		s->scr = v;
		return;
	default:
		return; /* LSR and MSR are read-only */
	}
}

uint8_t serial_in(struct serial *s, unsigned off)
{
	int dlab = s->lcr & LCR_DLAB;
	switch (off) {
	case 0:
		return dlab ? s->dll : 0; /* no input */
	case 1:
		return dlab ? s->dlm : s->ier;
	case 2: {
		/* FIFOs reported when enabled (a 16550A); reading a THRE
		 * interrupt's identification acknowledges it */
		uint8_t fifo = (s->fcr & 1) ? 0xc0 : 0;
		if (s->thre_pending && (s->ier & IER_THRI)) {
			s->thre_pending = 0;
			return (uint8_t)(IIR_THRI | fifo);
		}
		return (uint8_t)(IIR_NONE | fifo);
	}
	case 3:
		return s->lcr;
	case 4:
		return s->mcr;
	case 5:
		return LSR_READY;
	case 6:
		return MSR_LINES;
	default:
		return s->scr;
	}
}
