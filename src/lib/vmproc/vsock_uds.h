/*
 * The host side of msb-vmm's vsock socket (Firecracker's convention):
 * connect to PATH, write "CONNECT <port>\n", read "OK <hostport>\n". Shared
 * by libmsb (native mode) and the portable host's init (which relays its
 * byte stream to the VMM the same way), so it depends on libc only.
 */
#ifndef MSB_VSOCK_UDS_H
#define MSB_VSOCK_UDS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Connects to guest port @port through the VMM socket @path, retrying
 * until @timeout_ms has passed while the socket does not exist yet or the
 * guest does not listen yet (the VMM then closes the connection). Returns a
 * connected, blocking fd, or a negative errno (-ETIMEDOUT) with @why set.
 * @keep_going, if not NULL, is polled between tries: return 0 to give up.
 */
int vsock_uds_connect(const char *path, uint32_t port, long timeout_ms, int (*keep_going)(void *),
                      void *arg, char *why, size_t why_len);

#endif
