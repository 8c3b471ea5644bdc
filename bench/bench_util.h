/*
 * What every benchmark here needs: a monotonic clock, percentiles, and a
 * value from a /proc file. Header-only, so the static helpers that run
 * inside the portable host (musl) use it too.
 */
#ifndef MSB_BENCH_UTIL_H
#define MSB_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_SAMPLES 2000

static inline double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The @pct percentile of @n values (n <= BENCH_MAX_SAMPLES; -1 when none);
 * @in is left as it is. */
static inline double pctl(const double *in, int n, double pct)
{
	static double v[BENCH_MAX_SAMPLES];
	if (n <= 0 || n > BENCH_MAX_SAMPLES)
		return -1;
	memcpy(v, in, (size_t)n * sizeof(*v));
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[(int)(pct / 100.0 * (n - 1) + 0.5)];
}

/* A "Key:  N kB" value from /proc/PID/FILE, in KiB; -1 if absent. */
static inline long proc_kib(pid_t pid, const char *file, const char *key)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long v = -1;
	size_t klen = strlen(key);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			v = strtol(line + klen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* The last bytes of the file at @path on stderr, to say why something
 * failed. */
static inline void bench_show_tail(const char *path)
{
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	off_t end = lseek(fd, 0, SEEK_END);
	lseek(fd, end > (off_t)sizeof(buf) ? end - (off_t)sizeof(buf) : 0, SEEK_SET);
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n > 0)
		fprintf(stderr, "--- %s (end):\n%.*s\n---\n", path, (int)n, buf);
}

#endif
