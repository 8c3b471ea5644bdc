/*
 * Port I/O the in-kernel devices do not take: the serial console, the i8042
 * reset line (how the guest says "I am done", with reboot=k), and the
 * legacy ports a PC kernel pokes, which read as absent.
 */
#include "vm.h"
#include "snapshot.h"

#include <string.h>

#define I8042_DATA    0x60
#define I8042_COMMAND 0x64
#define I8042_RESET   0xfe
#define POST_PORT     0x80

static void pio_out(struct vm *vm, uint16_t port, uint8_t v)
{
	if (port >= SERIAL_BASE && port < SERIAL_BASE + SERIAL_LEN) {
		serial_out(&vm->serial, port - SERIAL_BASE, v);
		return;
	}
	if (port == SNAPSHOT_PORT) {
		vm_request_park(vm); /* a no-op unless this VM is one to snapshot */
		return;
	}
	if (port == I8042_COMMAND && v == I8042_RESET) {
		serial_flush(&vm->serial);
		if (vm->serial.saw_panic)
			vm_request_stop(vm, VM_STOP_GUEST_CRASHED, "the guest kernel panicked");
		else
			vm_request_stop(vm, VM_STOP_GUEST_RESET, "the guest shut down");
	}
}

static uint8_t pio_in(struct vm *vm, uint16_t port)
{
	if (port >= SERIAL_BASE && port < SERIAL_BASE + SERIAL_LEN)
		return serial_in(&vm->serial, port - SERIAL_BASE);
	if (port == I8042_COMMAND)
		return 0; /* controller idle, output buffer empty */
	return 0xff;
}

int pio_handle(struct vm *vm, struct kvm_run *run)
{
	/* Fields KVM filled; data lives inside the run area KVM mapped. */
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	uint16_t port = run->io.port;
	if (port == POST_PORT)
		return 0;
	pthread_mutex_lock(&vm->io_lock);
	for (uint32_t i = 0; i < run->io.count; i++) {
		for (unsigned b = 0; b < run->io.size; b++) {
			uint8_t *p = data + (size_t)i * run->io.size + b;
			if (run->io.direction == KVM_EXIT_IO_OUT)
				pio_out(vm, (uint16_t)(port + b), *p);
			else
				*p = pio_in(vm, (uint16_t)(port + b));
		}
	}
	pthread_mutex_unlock(&vm->io_lock);
	return atomic_load(&vm->stop) != VM_RUNNING;
}
