/* Pull progress: per-layer bars on a terminal, one line per step otherwise. */
#include "pull_view.h"

#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void human_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	unsigned u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
}

void pull_view_init(struct pull_view *v, int quiet)
{
	memset(v, 0, sizeof(*v));
	v->out = stderr;
	v->quiet = quiet;
	v->tty = isatty(STDERR_FILENO) && getenv("TERM") && strcmp(getenv("TERM"), "dumb");
	v->t0 = now();
}

int pull_view_cancelled(void *arg)
{
	(void)arg;
	return cli_stop_signal() != 0;
}

static void draw_bars(struct pull_view *v)
{
	if (v->drawn)
		fprintf(v->out, "\033[%uA", v->drawn);
	double t = now();
	for (unsigned i = 0; i < v->nlayers; i++) {
		char done[32], total[32], line[200];
		human_bytes(v->layer[i].done, done, sizeof(done));
		human_bytes(v->layer[i].total, total, sizeof(total));
		const char *what = "waiting";
		char bar[32] = "";
		switch (v->layer[i].state) {
		case LAYER_WAITING:
			break;
		case LAYER_CACHED:
			what = "already here";
			break;
		case LAYER_DONE:
			what = "done";
			break;
		case LAYER_DOWNLOADING: {
			unsigned w = 20, fill = 0;
			if (v->layer[i].total)
				fill = (unsigned)(v->layer[i].done * w / v->layer[i].total);
			for (unsigned k = 0; k < w; k++)
				bar[k] = k < fill ? '=' : k == fill ? '>' : ' ';
			bar[w] = 0;
			what = NULL;
		}
		}
		if (what)
			snprintf(line, sizeof(line), "%s: %s (%s)", v->layer[i].digest, what,
			         total);
		else {
			double secs = t - v->layer[i].started;
			char rate[40] = "", per[32];
			if (secs > 0.2) {
				human_bytes((uint64_t)((double)v->layer[i].done / secs), per,
				            sizeof(per));
				snprintf(rate, sizeof(rate), "%s/s", per);
			}
			snprintf(line, sizeof(line), "%s: [%s] %s / %s %s", v->layer[i].digest, bar,
			         done, total, rate);
		}
		fprintf(v->out, "\r%s\033[K\n", line);
	}
	v->drawn = v->nlayers;
	fflush(v->out);
}

void pull_view_event(const struct pull_event *ev, void *arg)
{
	struct pull_view *v = arg;
	if (v->quiet)
		return;
	char size[32];
	switch (ev->step) {
	case PULL_RESOLVED:
		fprintf(v->out, "msb: pulling %s (%.19s…, %u layer%s)\n", ev->ref, ev->digest,
		        ev->count, ev->count == 1 ? "" : "s");
		v->nlayers = ev->count < PULL_VIEW_MAX_LAYERS ? ev->count : PULL_VIEW_MAX_LAYERS;
		break;
	case PULL_LAYER:
		if (ev->index >= v->nlayers)
			return;
		snprintf(v->layer[ev->index].digest, sizeof(v->layer[ev->index].digest), "%.15s",
		         ev->digest + 7);
		if (v->layer[ev->index].state == LAYER_WAITING)
			v->layer[ev->index].started = now();
		v->layer[ev->index].state = ev->state;
		v->layer[ev->index].done = ev->done;
		v->layer[ev->index].total = ev->total;
		if (v->tty) {
			draw_bars(v);
		} else if (ev->state == LAYER_DONE || ev->state == LAYER_CACHED) {
			human_bytes(ev->total, size, sizeof(size));
			fprintf(v->out, "msb: layer %u/%u %.19s… %s %s\n", ev->index + 1, ev->count,
			        ev->digest,
			        ev->state == LAYER_CACHED ? "already here," : "downloaded,", size);
		}
		break;
	case PULL_BUILDING:
		fprintf(v->out, "msb: writing the root file system (%u layer%s)\n", ev->count,
		        ev->count == 1 ? "" : "s");
		break;
	case PULL_BUILT:
		human_bytes(ev->total, size, sizeof(size));
		fprintf(v->out, "msb: root file system ready: %s in %.1f s\n", size, ev->secs);
		break;
	case PULL_DONE:
		fprintf(v->out, "msb: %s %s (%.1f s)\n", ev->ref,
		        ev->up_to_date ? "is up to date" : "pulled", now() - v->t0);
		break;
	}
	fflush(v->out);
}
