/*
 * libFuzzer harness for the snapshot state file parser: whatever the bytes,
 * snap_parse() returns an error or a file whose every section snap_find()
 * can walk within the buffer. The first SNAP_SHAPE_SIZE bytes of the input
 * double as the expected shape, so inputs that pass the shape check exist.
 *
 * Build with clang -fsanitize=fuzzer,address,undefined -Isrc, linking
 * src/vmm/snapfile.c.
 */
#include "vmm/snapfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t shape[SNAP_SHAPE_SIZE] = {0};
	if (size >= 16 + SNAP_SHAPE_SIZE)
		memcpy(shape, data + 16, SNAP_SHAPE_SIZE); /* where a header keeps it */
	struct snap_file f;
	char why[128];
	/* a private copy: the parser must read nothing past size */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (snap_parse(buf, size, shape, &f, why, sizeof(why)) == 0) {
		uint32_t len;
		for (uint32_t type = 0; type < 8; type++)
			for (uint32_t id = 0; id < 4; id++) {
				const uint8_t *p = snap_find(&f, type, id, &len);
				if (p && (p < buf || p + len > buf + size))
					abort();
			}
	}
	free(buf);
	return 0;
}
