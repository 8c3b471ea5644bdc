/*
 * libFuzzer harness for the Sandboxfile parser (src/lib/project/): a
 * project's YAML is the user's, but it may come from anywhere (a cloned
 * repository). Whatever parses must check, order and free cleanly, and an
 * error must leave nothing and say something.
 *
 * Build with clang -fsanitize=fuzzer,address,undefined, linking
 * the files of src/lib/project, src/lib/util/why.c and -lyaml.
 */
#include "lib/project/sandboxfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sandboxfile *sf = NULL;
	char why[512] = "";
	int e = sandboxfile_parse((const char *)data, size, "Sandboxfile", &sf, why, sizeof(why));
	if (e) {
		if (sf || !why[0] || strlen(why) >= sizeof(why))
			abort();
		return 0;
	}
	sandboxfile_check_supported(sf, why, sizeof(why));
	const struct sf_sandbox **order = NULL;
	size_t n = 0;
	if (sandboxfile_start_order(sf, NULL, 0, &order, &n) == 0)
		free(order);
	sandboxfile_free(sf);
	return 0;
}
