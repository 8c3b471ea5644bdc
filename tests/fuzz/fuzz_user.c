/*
 * libFuzzer harness for the agent's /etc/passwd and /etc/group parser
 * (src/agent/user.c): an image's author writes those files and the agent
 * reads them as root. The input is a user spec, a newline, the passwd text,
 * a NUL and the group text (either part may be missing). Whatever resolves
 * must satisfy user.h's promises.
 *
 * Build with clang -fsanitize=fuzzer,address,undefined -Isrc, linking
 * src/agent/user.c; with -DFUZZ_REPLAY (any compiler) main() runs each file
 * named on the command line instead.
 */
#include "fuzz_harness.h"
#include "agent/user.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t slen = nl ? (size_t)(nl - data) : size;
	if (slen == 0 || memchr(data, 0, slen))
		return 0;
	char *spec = malloc(slen + 1);
	if (!spec)
		return 0;
	memcpy(spec, data, slen);
	spec[slen] = '\0';
	/* the files as exact-size copies, so ASan sees any read past them */
	const uint8_t *rest = nl ? nl + 1 : data + size;
	size_t rlen = (size_t)(data + size - rest);
	const uint8_t *sep = memchr(rest, 0, rlen);
	size_t plen = sep ? (size_t)(sep - rest) : rlen, glen = sep ? rlen - plen - 1 : 0;
	char *pw = plen ? malloc(plen) : NULL, *gr = glen ? malloc(glen) : NULL;
	if (pw)
		memcpy(pw, rest, plen);
	if (gr)
		memcpy(gr, sep + 1, glen);
	static struct user_ids ids;
	char msg[256] = "";
	int e = user_resolve(spec, pw, pw ? plen : 0, gr, gr ? glen : 0, &ids, msg, sizeof(msg));
	if (e == 0) {
		CHECK(ids.uid <= USER_MAX_ID && ids.gid <= USER_MAX_ID);
		CHECK(ids.ngroups >= 1 && ids.ngroups <= USER_MAX_GROUPS);
		CHECK(ids.groups[0] == ids.gid);
		for (size_t i = 0; i < ids.ngroups; i++) {
			CHECK(ids.groups[i] <= USER_MAX_ID);
			for (size_t j = 0; j < i; j++)
				CHECK(ids.groups[i] != ids.groups[j]);
		}
		size_t hl = strnlen(ids.home, sizeof(ids.home));
		CHECK(hl >= 1 && hl <= USER_MAX_LINE && !memchr(ids.home, '\n', hl));
	} else {
		CHECK(e == -ENOENT || e == -ERANGE || e == -EINVAL || e == -E2BIG);
		CHECK(msg[0]);
	}
	free(spec);
	free(pw);
	free(gr);
	return 0;
}
