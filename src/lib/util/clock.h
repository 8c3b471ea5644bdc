/* Monotonic time for deadlines. */
#ifndef MSB_UTIL_CLOCK_H
#define MSB_UTIL_CLOCK_H

#include <time.h>

static inline long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

#endif
