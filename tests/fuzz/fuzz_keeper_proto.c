/*
 * libFuzzer harness for the keeper's socket protocol (src/cli/keeper_proto.c):
 * the bytes a client sends a sandbox's keeper, taken apart into frames as
 * the keeper does, every EXEC decoded. A decoded request must keep
 * keeper_proto.h's promises, and encode back to the same payload.
 *
 * Build with clang -fsanitize=fuzzer,address,undefined -Isrc, linking
 * src/cli/keeper_proto.c; with -DFUZZ_REPLAY (any compiler) main() runs each
 * file named on the command line instead.
 */
#include "fuzz_harness.h"
#include "cli/keeper_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_exec(const uint8_t *p, uint32_t len)
{
	struct kp_exec x;
	if (kp_exec_decode(p, len, &x) != 0)
		return;
	CHECK(x.cwd[0] == '/' && x.argc >= 1 && x.argv[0][0]);
	CHECK(x.argv[x.argc] == NULL && x.env[x.envc] == NULL);
	CHECK(x.argc + x.envc <= KP_MAX_STRS);
	uint8_t *b;
	size_t n;
	CHECK(kp_exec_encode(&x, &b, &n) == 0);
	CHECK(n == KP_HDR + len && !memcmp(b + KP_HDR, p, len));
	free(b);
	kp_exec_free(&x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kp_buf rx = {0};
	/* fed in two pieces, as reads may split it anywhere */
	size_t half = size ? data[0] % (size + 1) : 0;
	if (kp_buf_add(&rx, data, half) < 0 || kp_buf_add(&rx, data + half, size - half) < 0)
		return 0;
	uint8_t type;
	const uint8_t *p;
	uint32_t len;
	size_t total;
	int r;
	while ((r = kp_next(&rx, KP_MAX_FRAME, &type, &p, &len, &total)) == 1) {
		CHECK(total == KP_HDR + (size_t)len && total <= rx.len && len <= KP_MAX_FRAME);
		if (type == KP_EXEC)
			check_exec(p, len);
		kp_buf_drop(&rx, total);
	}
	kp_buf_free(&rx);
	return 0;
}
