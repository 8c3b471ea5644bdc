/*
 * Starting a portable host from a snapshot of itself (docs/design/snapshot.md,
 * "The portable host").
 *
 * A portable host booted with "-- --serve" sets itself up (modules,
 * /dev/kvm, the stream port, the shared disks), writes PHOST_READY_MAGIC on
 * the stream and then waits for a resume message on it. msb snapshots it at
 * that point (QEMU migration). Every portable host restored from that
 * snapshot resumes inside that wait and reads its own resume message: the
 * words it would otherwise have had on the kernel command line, fresh
 * entropy and the host's time, so no two restored hosts share random state.
 * Shared by msb-phost-init and libmsb; libc only.
 */
#ifndef MSB_PHOST_RESUME_H
#define MSB_PHOST_RESUME_H

#include <stdint.h>
#include <string.h>

#define PHOST_READY_MAGIC    "MSBPHRDY"
#define PHOST_READY_LEN      8
#define PHOST_RESUME_MAGIC   "MSBPHRS1"
#define PHOST_RESUME_MAX     4096 /* bytes of words */
#define PHOST_RESUME_SEED    32
#define PHOST_RESUME_HDR_LEN 56

/* Little-endian on the wire, as both ends are x86. */
struct phost_resume_hdr {
	char magic[8];
	uint32_t len;         /* bytes of NUL-terminated words that follow */
	uint32_t flags;       /* 0 */
	uint64_t realtime_ns; /* the host's CLOCK_REALTIME */
	uint8_t seed[PHOST_RESUME_SEED];
};

_Static_assert(sizeof(struct phost_resume_hdr) == PHOST_RESUME_HDR_LEN, "resume header layout");

/*
 * Splits the @len bytes of words at @buf (modified: each word ends in NUL)
 * into @argv, at most @max - 1 words plus a NULL. Returns the number of
 * words, or -1 when @len is 0 or too big, the last byte is not NUL, a word is
 * empty, or there are too many words.
 */
static inline int phost_resume_words(char *buf, uint32_t len, char **argv, int max)
{
	if (len == 0 || len > PHOST_RESUME_MAX || buf[len - 1] != 0)
		return -1;
	int n = 0;
	for (uint32_t off = 0; off < len;) {
		size_t w = strlen(buf + off);
		if (w == 0 || n + 1 >= max)
			return -1;
		argv[n++] = buf + off;
		off += (uint32_t)w + 1;
	}
	argv[n] = NULL;
	return n;
}

#endif
