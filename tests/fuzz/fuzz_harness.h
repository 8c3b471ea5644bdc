/*
 * What every libFuzzer harness here shares: the entry point's declaration,
 * CHECK() for the promises a harness checks (abort, which the fuzzer
 * reports with the input), and with -DFUZZ_REPLAY (any compiler, no
 * libFuzzer) a main() that runs each file named on the command line
 * through the harness. Include it once, from the harness's .c file.
 */
#ifndef MSB_FUZZ_HARNESS_H
#define MSB_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #x);                    \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#ifdef FUZZ_REPLAY
/* Runs each file named on the command line through the harness. */
int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		if (!f) {
			perror(argv[i]);
			return 1;
		}
		size_t cap = 4096, n = 0, got;
		uint8_t *buf = malloc(cap);
		if (!buf)
			return 1;
		while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
			n += got;
			if (n == cap) {
				uint8_t *nb = realloc(buf, cap * 2);
				if (!nb)
					return 1;
				buf = nb;
				cap *= 2;
			}
		}
		int bad = ferror(f);
		fclose(f);
		if (bad) {
			fprintf(stderr, "%s: read error\n", argv[i]);
			free(buf);
			return 1;
		}
		LLVMFuzzerTestOneInput(buf, n);
		free(buf);
		printf("%s: ok (%zu bytes)\n", argv[i], n);
	}
	return 0;
}
#endif

#endif
