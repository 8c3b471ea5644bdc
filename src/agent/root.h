/*
 * The sandbox's root file system: an image (erofs, on a virtio-blk disk the
 * host bound, possibly after a restore) mounted read-only under an overlay
 * whose upper layer is a tmpfs, so a sandbox writes only to memory and
 * keeps nothing. Execs then run chrooted into it. The agent itself stays in
 * its initramfs, where the host's protocol and the disks are.
 */
#ifndef MSB_AGENT_ROOT_H
#define MSB_AGENT_ROOT_H

#include <stddef.h>
#include <stdint.h>

#define ROOT_BASE "/run/msb"

/* Owned by the agent's main(); lives across host connections. */
struct agent_root {
	int mounted;
	char path[64]; /* where execs chroot to, once mounted */
};

/*
 * Mounts the erofs image on the disk whose serial is "disk<@disk>", waiting
 * up to @timeout_ms for it to have a capacity (a restored VM learns it from
 * a config-change interrupt), with the overlay and /proc, /sys, /dev,
 * /dev/pts, /dev/shm and /tmp inside. Returns 0, or a negative errno with
 * @msg saying what failed. Mounting a second time is -EBUSY.
 */
int root_mount(struct agent_root *r, uint32_t disk, uint32_t timeout_ms, char *msg, size_t msglen);

#endif
