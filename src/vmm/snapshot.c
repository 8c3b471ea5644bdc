/* Snapshots of a paused VM: see snapshot.h and docs/design/snapshot.md. */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HDR_PAGE   4096
#define STATE_MAX  (1u << 20)
#define MEM_ALIGN  (2u << 20)
#define MAX_MSRS   256
#define FILE_MAGIC "MSBSNAPF"
#define FILE_VER   1

/* Raw KVM structures: the file is only ever read by the same msb-vmm
 * format version on the same kind of host, which the shape checks. */
struct vcpu_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave xsave;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs dregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	uint32_t nmsrs;
	uint32_t pad;
	struct kvm_msr_entry msrs[MAX_MSRS];
};

struct file_hdr {
	char magic[8];
	uint32_t version, reserved;
	uint64_t state_off, state_len, mem_off, mem_len;
	uint32_t crc, pad;
};

static int fail(char *why, size_t wl, int err, const char *what)
{
	snprintf(why, wl, "%s: %s", what, strerror(err));
	return -err;
}

/* The MSRs worth saving: KVM's list, less those this vCPU refuses to read. */
static int msr_list(int kvm_fd, int vcpu_fd, struct vcpu_state *s)
{
	struct {
		struct kvm_msr_list hdr;
		uint32_t idx[1024];
	} l = {.hdr.nmsrs = 1024};
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &l) < 0)
		return -errno;
	s->nmsrs = 0;
	for (uint32_t i = 0; i < l.hdr.nmsrs && i < 1024 && s->nmsrs < MAX_MSRS; i++) {
		struct {
			struct kvm_msrs hdr;
			struct kvm_msr_entry e;
		} one = {.hdr.nmsrs = 1, .e.index = l.idx[i]};
		if (ioctl(vcpu_fd, KVM_GET_MSRS, &one) == 1)
			s->msrs[s->nmsrs++] = one.e;
	}
	return 0;
}

int snapshot_vcpu_get(struct vcpu *v, struct vcpu_state **out, char *why, size_t wl)
{
	struct vcpu_state *s = calloc(1, sizeof(*s));
	if (!s)
		return fail(why, wl, ENOMEM, "vCPU state");
	int fd = v->fd, e = 0;
	if (ioctl(fd, KVM_GET_REGS, &s->regs) < 0 || ioctl(fd, KVM_GET_SREGS, &s->sregs) < 0 ||
	    ioctl(fd, KVM_GET_XSAVE, &s->xsave) < 0 || ioctl(fd, KVM_GET_XCRS, &s->xcrs) < 0 ||
	    ioctl(fd, KVM_GET_DEBUGREGS, &s->dregs) < 0 ||
	    ioctl(fd, KVM_GET_LAPIC, &s->lapic) < 0 ||
	    ioctl(fd, KVM_GET_VCPU_EVENTS, &s->events) < 0 ||
	    ioctl(fd, KVM_GET_MP_STATE, &s->mp) < 0)
		e = fail(why, wl, errno, "reading a vCPU's state");
	else if ((e = msr_list(v->vm->kvm_fd, fd, s)) < 0)
		fail(why, wl, -e, "reading MSRs");
	if (e) {
		free(s);
		return e;
	}
	*out = s;
	return 0;
}

uint64_t snapshot_file_size(uint64_t mem_bytes)
{
	return HDR_PAGE + MEM_ALIGN + STATE_MAX + mem_bytes;
}

static int pwrite_all(int fd, const void *p, size_t len, uint64_t off)
{
	const uint8_t *b = p;
	while (len > 0) {
		ssize_t n = pwrite(fd, b, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		b += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int page_is_zero(const uint8_t *p, size_t len)
{
	static const uint8_t zero[4096];
	return !memcmp(p, zero, len < sizeof(zero) ? len : sizeof(zero));
}

/* Guest RAM, in order, skipping pages never touched (mincore) or all zero,
 * which stay holes in the file. */
static int write_memory(const struct gm *gm, int fd, uint64_t off)
{
	static unsigned char vec[1024];
	const size_t page = 4096, chunk = sizeof(vec) * page;
	for (int r = 0; r < gm->n; r++) {
		const struct gm_region *g = &gm->r[r];
		for (uint64_t at = 0; at < g->size; at += chunk) {
			size_t len = g->size - at < chunk ? (size_t)(g->size - at) : chunk;
			if (mincore(g->host + at, len, vec) < 0)
				return -errno;
			for (size_t p = 0; p < len / page; p++) {
				const uint8_t *src = g->host + at + p * page;
				if (!(vec[p] & 1) || page_is_zero(src, page))
					continue;
				int e = pwrite_all(fd, src, page, off + at + p * page);
				if (e)
					return e;
			}
		}
		off += g->size;
	}
	return 0;
}

static int add_vm_sections(struct vm *vm, struct snap_writer *w, char *why, size_t wl)
{
	for (int i = 0; i < vm->ncpus; i++)
		snapw_add(w, SEC_VCPU, (uint32_t)i, vm->saved[i], sizeof(*vm->saved[i]));
	for (uint32_t chip = 0; chip < 3; chip++) {
		struct kvm_irqchip c = {.chip_id = chip};
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &c) < 0)
			return fail(why, wl, errno, "KVM_GET_IRQCHIP");
		snapw_add(w, SEC_IRQCHIP, chip, &c, sizeof(c));
	}
	struct kvm_pit_state2 pit;
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0)
		return fail(why, wl, errno, "KVM_GET_PIT2");
	snapw_add(w, SEC_PIT, 0, &pit, sizeof(pit));
	struct kvm_clock_data clk = {0};
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &clk) < 0)
		return fail(why, wl, errno, "KVM_GET_CLOCK");
	snapw_add(w, SEC_CLOCK, 0, &clk, sizeof(clk));
	for (int i = 0; i < vm->ndevs; i++) {
		struct virtio_dev_state ds;
		virtio_dev_save(vm->devs[i], &ds);
		snapw_add(w, SEC_VIRTIO, (uint32_t)i, &ds, sizeof(ds));
	}
	return w->err ? fail(why, wl, -w->err, "building the state") : 0;
}

int snapshot_write(struct vm *vm, const uint8_t shape[SNAP_SHAPE_SIZE], const char *path, char *why,
                   size_t wl)
{
	struct snap_writer w;
	if (snapw_init(&w, shape, vm->gm.ram_size) < 0)
		return fail(why, wl, ENOMEM, "snapshot state");
	int e = add_vm_sections(vm, &w, why, wl);
	if (!e && w.len > STATE_MAX)
		e = fail(why, wl, EFBIG, "snapshot state");
	uint8_t *state = NULL;
	size_t slen = 0;
	if (!e && (e = snapw_finish(&w, &state, &slen)) < 0)
		fail(why, wl, -e, "snapshot state");
	int fd = e ? -1 : open(path, O_WRONLY | O_CLOEXEC);
	if (!e && fd < 0)
		e = fail(why, wl, errno, path);
	struct file_hdr h = {.magic = FILE_MAGIC,
	                     .version = FILE_VER,
	                     .state_off = HDR_PAGE,
	                     .state_len = slen,
	                     .mem_off = HDR_PAGE + STATE_MAX + MEM_ALIGN -
	                                (HDR_PAGE + STATE_MAX) % MEM_ALIGN,
	                     .mem_len = vm->gm.ram_size};
	h.crc = snap_crc32(&h, offsetof(struct file_hdr, crc));
	if (!e && (e = write_memory(&vm->gm, fd, h.mem_off)) < 0)
		fail(why, wl, -e, "writing guest memory");
	if (!e && (e = pwrite_all(fd, state, slen, h.state_off)) < 0)
		fail(why, wl, -e, "writing the state");
	/* the header last: a file cut short anywhere before has none */
	if (!e && ((e = fsync(fd) < 0 ? -errno : 0) || (e = pwrite_all(fd, &h, sizeof(h), 0)) ||
	           (e = fsync(fd) < 0 ? -errno : 0)))
		fail(why, wl, -e, "writing the snapshot");
	if (fd >= 0)
		close(fd);
	snapw_free(&w);
	return e;
}

int snapshot_open(const char *path, const uint8_t shape[SNAP_SHAPE_SIZE], struct snapshot_in *in,
                  char *why, size_t wl)
{
	memset(in, 0, sizeof(*in));
	in->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (in->fd < 0)
		return fail(why, wl, errno, path);
	struct file_hdr h;
	off_t end = lseek(in->fd, 0, SEEK_END);
	int e = -EPROTO;
	if (end < 0 || pread(in->fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    memcmp(h.magic, FILE_MAGIC, 8) || h.version != FILE_VER ||
	    h.crc != snap_crc32(&h, offsetof(struct file_hdr, crc)))
		snprintf(why, wl, "%s is not a complete msb snapshot", path);
	else if (h.state_len > STATE_MAX || h.state_off != HDR_PAGE || h.mem_off % 4096 ||
	         h.mem_off < h.state_off + h.state_len || h.mem_len > (uint64_t)end ||
	         h.mem_off > (uint64_t)end - h.mem_len)
		snprintf(why, wl, "%s is truncated or its layout is damaged", path);
	else
		e = 0;
	uint8_t *state = e ? NULL : malloc(h.state_len ? h.state_len : 1);
	if (!e && (!state ||
	           pread(in->fd, state, h.state_len, (off_t)h.state_off) != (ssize_t)h.state_len)) {
		e = -EIO;
		snprintf(why, wl, "cannot read %s", path);
	}
	if (!e && (e = snap_parse(state, h.state_len, shape, &in->state, why, wl)) == 0 &&
	    in->state.mem_bytes != h.mem_len) {
		e = -EPROTO;
		snprintf(why, wl, "the snapshot's memory size does not match its state");
	}
	if (e) {
		free(state);
		in->state.buf = NULL;
		snapshot_close(in);
		return e;
	}
	in->mem_off = h.mem_off;
	in->mem_len = h.mem_len;
	return 0;
}

void snapshot_close(struct snapshot_in *in)
{
	snap_free(&in->state);
	if (in->fd >= 0)
		close(in->fd);
	in->fd = -1;
}

/* A section of exactly @len bytes, or NULL. */
static const void *section(const struct snapshot_in *in, uint32_t type, uint32_t id, size_t len)
{
	uint32_t n;
	const uint8_t *p = snap_find(&in->state, type, id, &n);
	return p && n == len ? p : NULL;
}

int snapshot_vcpu_restore(struct vcpu *v, const struct snapshot_in *in, char *why, size_t wl)
{
	const struct vcpu_state *src = section(in, SEC_VCPU, (uint32_t)v->id, sizeof(*src));
	if (!src)
		return fail(why, wl, EPROTO, "the snapshot lacks a vCPU");
	struct vcpu_state *s = malloc(sizeof(*s));
	if (!s)
		return fail(why, wl, ENOMEM, "vCPU state");
	memcpy(s, src, sizeof(*s)); /* aligned, and ioctls may write back */
	int fd = v->fd, e = 0;
	if (s->nmsrs > MAX_MSRS)
		e = fail(why, wl, EPROTO, "the snapshot's MSR count");
	else if (ioctl(fd, KVM_SET_SREGS, &s->sregs) < 0 || ioctl(fd, KVM_SET_REGS, &s->regs) < 0 ||
	         ioctl(fd, KVM_SET_XSAVE, &s->xsave) < 0 || ioctl(fd, KVM_SET_XCRS, &s->xcrs) < 0 ||
	         ioctl(fd, KVM_SET_DEBUGREGS, &s->dregs) < 0 ||
	         ioctl(fd, KVM_SET_LAPIC, &s->lapic) < 0)
		e = fail(why, wl, errno, "setting a vCPU's registers");
	if (!e) {
		struct {
			struct kvm_msrs hdr;
			struct kvm_msr_entry e[MAX_MSRS];
		} m;
		memset(&m, 0, sizeof(m));
		m.hdr.nmsrs = s->nmsrs;
		memcpy(m.e, s->msrs, s->nmsrs * sizeof(m.e[0]));
		int n = ioctl(fd, KVM_SET_MSRS, &m);
		if (n != (int)s->nmsrs) {
			char what[64];
			snprintf(what, sizeof(what), "setting MSR %#x",
			         n >= 0 && n < (int)s->nmsrs ? s->msrs[n].index : 0);
			e = fail(why, wl, n < 0 ? errno : EINVAL, what);
		}
	}
	if (!e && (ioctl(fd, KVM_SET_MP_STATE, &s->mp) < 0 ||
	           ioctl(fd, KVM_SET_VCPU_EVENTS, &s->events) < 0))
		e = fail(why, wl, errno, "setting a vCPU's events");
	free(s);
	return e;
}

int snapshot_vm_restore(struct vm *vm, const struct snapshot_in *in, char *why, size_t wl)
{
	for (uint32_t chip = 0; chip < 3; chip++) {
		const struct kvm_irqchip *c = section(in, SEC_IRQCHIP, chip, sizeof(*c));
		struct kvm_irqchip copy;
		if (!c)
			return fail(why, wl, EPROTO, "the snapshot lacks the irqchip");
		memcpy(&copy, c, sizeof(copy));
		if (copy.chip_id != chip || ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &copy) < 0)
			return fail(why, wl, errno ? errno : EPROTO, "KVM_SET_IRQCHIP");
	}
	struct kvm_pit_state2 pit;
	const void *p = section(in, SEC_PIT, 0, sizeof(pit));
	if (!p)
		return fail(why, wl, EPROTO, "the snapshot lacks the PIT");
	memcpy(&pit, p, sizeof(pit));
	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0)
		return fail(why, wl, errno, "KVM_SET_PIT2");
	struct kvm_clock_data clk;
	if (!(p = section(in, SEC_CLOCK, 0, sizeof(clk))))
		return fail(why, wl, EPROTO, "the snapshot lacks the clock");
	memcpy(&clk, p, sizeof(clk));
	struct kvm_clock_data set = {.clock = clk.clock};
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &set) < 0)
		return fail(why, wl, errno, "KVM_SET_CLOCK");
	for (int i = 0; i < vm->ndevs; i++) {
		struct virtio_dev_state ds;
		if (!(p = section(in, SEC_VIRTIO, (uint32_t)i, sizeof(ds))))
			return fail(why, wl, EPROTO, "the snapshot lacks a device");
		memcpy(&ds, p, sizeof(ds));
		if (virtio_dev_restore(vm->devs[i], &ds) < 0)
			return fail(why, wl, EPROTO, "a device's saved state is invalid");
	}
	return 0;
}
