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
/* Until sandboxes have networks, /etc/resolv.conf says there is none. */
#define ROOT_RESOLV_CONF "# msb: this sandbox has no network (scope none)\n"

/* Owned by the agent's main(); lives across host connections. */
struct agent_root {
	int mounted;
	char path[64]; /* where execs chroot to, once mounted */
};

/*
 * Mounts the erofs image on the disk whose serial is "disk<@disk>", waiting
 * up to @timeout_ms for it to have a capacity (a restored VM learns it from
 * a config-change interrupt), under an overlay whose upper layer is the
 * ext4 file system on disk slot @upper (kept between runs) or, when @upper
 * is -1, memory; with /proc, /sys, /dev,
 * /dev/pts, /dev/shm and /tmp inside, and the /etc files root_write_etc()
 * writes, for the current hostname. Returns 0, or a negative errno with
 * @msg saying what failed (then nothing stays mounted). Mounting a second
 * time is -EBUSY.
 */
int root_mount(struct agent_root *r, uint32_t disk, int upper, uint32_t timeout_ms, char *msg,
               size_t msglen);

/*
 * Writes /etc/hostname (@hostname and a newline), /etc/hosts (localhost and
 * 127.0.1.1 for @hostname) and /etc/resolv.conf (ROOT_RESOLV_CONF) in the
 * directory tree at @root, regular files of mode 0644 owned by the caller
 * (root in the guest). Through the overlay they land in its upper layer;
 * the image is untouched. /etc is resolved inside @root (a symlinked /etc
 * never leads out of it) and made (0755) when missing; whatever is at the
 * three names (a symlink, a FIFO) is replaced, never written through.
 * Returns 0, or a negative errno with @msg saying what failed.
 */
int root_write_etc(const char *root, const char *hostname, char *msg, size_t msglen);

#endif
