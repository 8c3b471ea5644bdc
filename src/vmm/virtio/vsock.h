/*
 * virtio-vsock (device 19), implemented in the VMM and bridged to AF_UNIX
 * sockets with Firecracker's host-side convention:
 *
 *  - host -> guest: connect to the VMM's socket PATH, write "CONNECT <port>\n",
 *    read "OK <hostport>\n", then the connection is a byte stream to the
 *    guest's listener on <port>;
 *  - guest -> host: a guest connect to CID 2 port P is connected to the
 *    socket "PATH_P", if something listens there.
 *
 * Flow control is vsock's own credit: we never send the guest more than it
 * has room for, and we advertise a bounded buffer per connection, so a
 * guest that sends past it is reset, not buffered.
 */
#ifndef MSB_VMM_VIRTIO_VSOCK_H
#define MSB_VMM_VIRTIO_VSOCK_H

#include "../evloop.h"
#include "mmio.h"

#define VSOCK_GUEST_CID 3

struct vsock;

/* Creates the device and listens on @uds_path (replacing a stale socket).
 * Returns NULL with @why set on failure. The device is @vs->dev. */
struct vsock *vsock_create(const struct gm *gm, struct evloop *loop, const char *uds_path,
                           uint64_t mmio_base, uint32_t irq, char *why, size_t why_len);
struct virtio_dev *vsock_dev(struct vsock *vs);
/* Marks each host connection the guest accepts (benchmarks; may be NULL). */
struct vmm_timing;
void vsock_set_timing(struct vsock *vs, struct vmm_timing *t);
/* Before a snapshot (vCPUs parked, no connection open): puts back the rx
 * buffer the device holds, so the saved queue state is whole. */
void vsock_snapshot_prepare(struct vsock *vs);

/* Closes every connection and the listener, unlinks the socket. */
void vsock_destroy(struct vsock *vs);

#endif
