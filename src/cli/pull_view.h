/* How a pull shows its progress: bars on a terminal, lines otherwise. */
#ifndef MSB_CLI_PULL_VIEW_H
#define MSB_CLI_PULL_VIEW_H

#include "lib/image/pull.h"

#include <stdio.h>

#define PULL_VIEW_MAX_LAYERS 256

struct pull_view {
	FILE *out; /* stderr */
	int tty;   /* redraw bars in place */
	int quiet; /* nothing */
	unsigned nlayers, drawn;
	double t0;
	struct {
		char digest[16]; /* short form */
		uint64_t done, total;
		enum pull_layer_state state;
		double started;
	} layer[PULL_VIEW_MAX_LAYERS];
};

/* Sets up a view on stderr; @quiet shows nothing. */
void pull_view_init(struct pull_view *v, int quiet);

/* A pull_opts.progress callback; @arg is the struct pull_view. */
void pull_view_event(const struct pull_event *ev, void *arg);

/* A pull_opts.cancelled callback: a stop signal arrived. */
int pull_view_cancelled(void *arg);

/* "12.3 MiB" */
void human_bytes(uint64_t n, char *buf, size_t len);

#endif
