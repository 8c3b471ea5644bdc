/* Little-endian integers of 1..8 bytes in byte buffers, without unaligned
 * access; header-only, for the static VMM and libmsb alike. */
#ifndef MSB_UTIL_LE_H
#define MSB_UTIL_LE_H

#include <stdint.h>

static inline void put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t get_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = bytes - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#endif
