/* CRC-32 (IEEE), shared by the VMM's state file and libmsb's portable host
 * snapshots; header-only so the static VMM needs nothing of libmsb. */
#ifndef MSB_UTIL_CRC32_H
#define MSB_UTIL_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continues @crc over @len bytes at @p (start with 0). The table is built
 * per call: 2 K operations, nothing against the kilobytes it serves. */
static inline uint32_t crc32_update(uint32_t crc, const void *p, size_t len)
{
	uint32_t t[256];
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
		t[i] = c;
	}
	const uint8_t *b = p;
	uint32_t c = ~crc;
	for (size_t i = 0; i < len; i++)
		c = (c >> 8) ^ t[(c ^ b[i]) & 0xff];
	return ~c;
}

#endif
