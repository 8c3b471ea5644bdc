/* Internal helpers for struct msb_err (see msb.h). */
#ifndef MSB_UTIL_ERR_H
#define MSB_UTIL_ERR_H

#include "msb.h"

/* Sets @e to @code (a negative errno) and a formatted message; returns @code
 * so callers can `return err_set(e, -ENOENT, "...")`. @e may be NULL. */
int err_set(struct msb_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes @e's message with formatted context ("ctx: old message");
 * returns e->code. */
int err_wrap(struct msb_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
