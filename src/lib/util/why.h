/* The `why` buffers library functions fill for the caller's message. */
#ifndef MSB_UTIL_WHY_H
#define MSB_UTIL_WHY_H

#include <stddef.h>

/* Formats into @why (NULL or @len 0: nothing) and returns @code, so callers
 * can `return why_set(why, len, -EINVAL, "...")`. */
int why_set(char *why, size_t len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Replaces control characters in @s with '?': text quoted from a
 * registry or a document must not drive the user's terminal. */
void why_sanitize(char *s);

#endif
