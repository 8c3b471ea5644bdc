/* gzip streams through isa-l for libarchive (see gunzip.h). */
#include "gunzip.h"

#include <errno.h>
#include <isa-l/igzip_lib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IN_SIZE  (256u << 10)
#define OUT_SIZE (256u << 10)
#define NCHUNKS  8 /* inflated ahead of the tar reader: 2 MiB */

/*
 * A thread inflates into a ring of chunks while the caller's thread reads
 * the tar from it and writes the image: inflating is half of that work, so
 * on two cores the two halves overlap.
 */
struct chunk {
	size_t len;
	uint8_t data[OUT_SIZE];
};

struct gunzip {
	int fd;
	int eof;  /* the file is read to its end */
	int done; /* the last member ended */
	const char *error;
	struct inflate_state st;
	uint8_t in[IN_SIZE];

	pthread_t thread;
	int started;
	pthread_mutex_t lock; /* guards what follows */
	pthread_cond_t cond;
	struct chunk *ring;  /* NCHUNKS */
	unsigned head, tail; /* filled: [tail, head), counted modulo NCHUNKS */
	int held;            /* the reader holds ring[tail] */
	int ended;           /* the thread is done: at the end, or err */
	int err;             /* < 0: what the thread failed with */
	int stop;            /* the reader is gone */
};

int gunzip_detect(int fd)
{
	uint8_t m[2];
	ssize_t n = pread(fd, m, sizeof(m), 0);
	if (n < 0)
		return -errno;
	return n == 2 && m[0] == 0x1f && m[1] == 0x8b;
}

static int fill(struct gunzip *g)
{
	if (g->st.avail_in || g->eof)
		return 0;
	ssize_t n;
	do
		n = read(g->fd, g->in, sizeof(g->in));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		g->eof = 1;
	g->st.next_in = g->in;
	g->st.avail_in = (uint32_t)n;
	return 0;
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* A member ended: another one follows (gzip allows concatenation), or the
 * stream ends, maybe padded with zeros. */
static int next_member(struct gunzip *g)
{
	for (;;) {
		int e = fill(g);
		if (e)
			return e;
		if (!g->st.avail_in) {
			g->done = 1;
			return 0;
		}
		if (g->st.next_in[0] == 0x1f) {
			uint8_t *in = g->st.next_in;
			uint32_t avail = g->st.avail_in;
			isal_inflate_reset(&g->st);
			g->st.crc_flag = ISAL_GZIP;
			g->st.next_in = in;
			g->st.avail_in = avail;
			return 0;
		}
		if (!all_zero(g->st.next_in, g->st.avail_in)) {
			g->error = "data after the end of the gzip stream";
			return -EIO;
		}
		g->st.avail_in = 0;
	}
}

/* Up to OUT_SIZE bytes of output into @out: their count, 0 at the end,
 * or a negative errno (g->error says why). */
static ssize_t inflate_some(struct gunzip *g, uint8_t *out)
{
	while (!g->done) {
		int e = fill(g);
		if (e)
			return e;
		g->st.next_out = out;
		g->st.avail_out = OUT_SIZE;
		int r = isal_inflate(&g->st);
		if (r != ISAL_DECOMP_OK) {
			g->error = r == ISAL_INCORRECT_CHECKSUM ? "the gzip checksum does not match"
			                                        : "the gzip data is damaged";
			return -EIO;
		}
		size_t got = OUT_SIZE - g->st.avail_out;
		if (g->st.block_state == ISAL_BLOCK_FINISH && (e = next_member(g)) < 0)
			return e;
		if (got)
			return (ssize_t)got;
		if (g->eof && !g->st.avail_in && g->st.block_state != ISAL_BLOCK_FINISH) {
			g->error = "the gzip stream is truncated";
			return -EIO;
		}
	}
	return 0;
}

static void *inflater(void *arg)
{
	struct gunzip *g = arg;
	for (;;) {
		pthread_mutex_lock(&g->lock);
		while (!g->stop && g->head - g->tail == NCHUNKS)
			pthread_cond_wait(&g->cond, &g->lock);
		int stop = g->stop;
		struct chunk *c = &g->ring[g->head % NCHUNKS];
		pthread_mutex_unlock(&g->lock);
		if (stop)
			break;
		ssize_t n = inflate_some(g, c->data);
		pthread_mutex_lock(&g->lock);
		if (n > 0) {
			c->len = (size_t)n;
			g->head++;
		} else {
			g->err = (int)n;
			g->ended = 1;
		}
		pthread_cond_broadcast(&g->cond);
		pthread_mutex_unlock(&g->lock);
		if (n <= 0)
			break;
	}
	return NULL;
}

/* The next inflated chunk (released at the next call): its length, 0 at
 * the end, or a negative errno. */
static ssize_t next_chunk(struct gunzip *g, const void **buf)
{
	pthread_mutex_lock(&g->lock);
	if (g->held) {
		g->tail++;
		g->held = 0;
		pthread_cond_broadcast(&g->cond);
	}
	while (g->head == g->tail && !g->ended)
		pthread_cond_wait(&g->cond, &g->lock);
	ssize_t n = g->err;
	if (g->head != g->tail) {
		struct chunk *c = &g->ring[g->tail % NCHUNKS];
		*buf = c->data;
		n = (ssize_t)c->len;
		g->held = 1;
	}
	pthread_mutex_unlock(&g->lock);
	return n;
}

static la_ssize_t gz_read(struct archive *a, void *arg, const void **buf)
{
	struct gunzip *g = arg;
	ssize_t n = next_chunk(g, buf);
	if (n < 0) {
		archive_set_error(a, EIO, "%s", g->error ? g->error : strerror((int)-n));
		return -1;
	}
	return n;
}

int gunzip_open(struct archive *a, int fd, struct gunzip **out, char *why, size_t why_len)
{
	struct gunzip *g = calloc(1, sizeof(*g));
	if (g)
		g->ring = malloc(NCHUNKS * sizeof(*g->ring));
	if (!g || !g->ring) {
		if (g)
			free(g);
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	g->fd = fd;
	isal_inflate_init(&g->st);
	g->st.crc_flag = ISAL_GZIP; /* parse the header, check CRC and length */
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	if (pthread_create(&g->thread, NULL, inflater, g) != 0) {
		snprintf(why, why_len, "cannot start a thread");
		gunzip_free(g);
		return -EAGAIN;
	}
	g->started = 1;
	if (archive_read_open(a, g, NULL, gz_read, NULL) != ARCHIVE_OK) {
		snprintf(why, why_len, "the layer is damaged or not a tar: %s",
		         archive_error_string(a));
		gunzip_free(g);
		return -EINVAL;
	}
	*out = g;
	return 0;
}

int gunzip_finish(struct gunzip *g, char *why, size_t why_len)
{
	const void *buf;
	ssize_t n;
	while ((n = next_chunk(g, &buf)) > 0)
		;
	if (n < 0) {
		snprintf(why, why_len, "the layer is damaged: %s",
		         g->error ? g->error : strerror((int)-n));
		return -EIO;
	}
	return 0;
}

void gunzip_free(struct gunzip *g)
{
	if (!g)
		return;
	if (g->started) {
		pthread_mutex_lock(&g->lock);
		g->stop = 1;
		pthread_cond_broadcast(&g->cond);
		pthread_mutex_unlock(&g->lock);
		pthread_join(g->thread, NULL);
	}
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
	free(g->ring);
	free(g);
}
