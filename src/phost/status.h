/*
 * How the portable host's init reports its program's exit status to msb.
 *
 * init writes a value V to QEMU's isa-debug-exit port and QEMU exits with
 * 2 * V + 1. QEMU's own failures exit with 1 and a kernel that powers off
 * without reporting exits 0, so V starts at 1 and never collides with those.
 */
#ifndef MSB_PHOST_STATUS_H
#define MSB_PHOST_STATUS_H

#define PHOST_DEBUG_EXIT_PORT 0xf4

#define PHOST_V_EXITED   1 /* V = 1 + status, for status 0..PHOST_MAX_STATUS */
#define PHOST_MAX_STATUS 122
#define PHOST_V_HIGH     124 /* the program exited with a status above PHOST_MAX_STATUS */
#define PHOST_V_SIGNALED 125 /* the program was killed by a signal */
#define PHOST_V_SETUP    126 /* init could not set the portable host up; see the log */

#endif
