/* Blobs from a registry to files, resumed and verified (see registry.h). */
#include "registry.h"

#include "fsutil.h"
#include "registry_int.h"
#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct blob_fetch {
	const char *partial;
	struct sha256 hash;
	struct sink sink;
	int primed; /* hash covers the file's bytes */
};

/* Re-hashes what an earlier attempt (maybe an earlier msb) left. */
static int hash_file(int fd, struct sha256 *h, uint64_t *len)
{
	char buf[65536];
	sha256_init(h);
	*len = 0;
	if (lseek(fd, 0, SEEK_SET) < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		sha256_update(h, buf, (size_t)n);
		*len += (uint64_t)n;
	}
}

static int blob_prepare(struct request *q, char *range, size_t range_len)
{
	struct blob_fetch *b = q->arg;
	struct sink *s = &b->sink;
	if (s->fd < 0) {
		s->fd = open(b->partial, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (s->fd < 0)
			return -errno;
	}
	if (!b->primed) {
		int e = hash_file(s->fd, &b->hash, &s->done);
		if (e)
			return e;
		b->primed = 1;
	}
	if (s->done > s->limit) { /* a partial file longer than the blob: restart */
		if (ftruncate(s->fd, 0) < 0)
			return -errno;
		sha256_init(&b->hash);
		s->done = 0;
	}
	if (lseek(s->fd, 0, SEEK_END) < 0)
		return -errno;
	if (s->done > 0 && s->done < s->limit)
		snprintf(range, range_len, "Range: bytes=%llu-", (unsigned long long)s->done);
	return 0;
}

int registry_fetch_blob(struct registry *r, const char *digest, uint64_t size,
                        const char *partial_path, const char *final_path,
                        void (*progress)(void *arg, uint64_t done), void *arg, char *why,
                        size_t why_len)
{
	struct blob_fetch b = {.partial = partial_path};
	b.sink.fd = -1;
	b.sink.hash = &b.hash;
	b.sink.limit = size;
	b.sink.progress = progress;
	b.sink.progress_arg = arg;
	char path[600], what[200];
	snprintf(path, sizeof(path), "blobs/%s", digest);
	snprintf(what, sizeof(what), "blob %s", digest);
	struct request q = {
	    .path = path, .what = what, .sink = &b.sink, .prepare = blob_prepare, .arg = &b};
	char range[80];
	int e = blob_prepare(&q, range, sizeof(range));
	if (e)
		snprintf(why, why_len, "cannot write %s: %s", partial_path, strerror(-e));
	for (int restarts = 0; !e; restarts++) {
		/* A partial file already complete (an msb killed before the rename)
		 * needs no request at all. */
		if (b.sink.done == size)
			break;
		e = registry_request(r, &q, why, why_len);
		if (e)
			break;
		/* 416: what we hold does not fit what the registry has. */
		if (q.status == 416 && b.sink.done != size && restarts < 2) {
			if (ftruncate(b.sink.fd, 0) < 0) {
				e = -errno;
				break;
			}
			sha256_init(&b.hash);
			b.sink.done = 0;
			continue;
		}
		break;
	}
	if (!e && b.sink.done != size) {
		snprintf(why, why_len, "blob %s from %s ended after %llu of %llu bytes", digest,
		         r->host, (unsigned long long)b.sink.done, (unsigned long long)size);
		e = -EBADMSG;
	}
	if (!e) {
		uint8_t d[32];
		char got[SHA256_DIGEST_STR];
		sha256_final(&b.hash, d);
		sha256_digest_str(d, got);
		if (strcmp(got, digest)) {
			snprintf(why, why_len, "blob %s from %s does not match its digest (got %s)",
			         digest, r->host, got);
			e = -EBADMSG;
		}
	}
	if (!e && fsync(b.sink.fd) < 0) {
		e = -errno;
		snprintf(why, why_len, "cannot write %s: %s", partial_path, strerror(-e));
	}
	if (b.sink.fd >= 0 && close(b.sink.fd) < 0 && !e) {
		e = -errno;
		snprintf(why, why_len, "cannot write %s: %s", partial_path, strerror(-e));
	}
	if (!e && rename(partial_path, final_path) < 0) {
		e = -errno;
		snprintf(why, why_len, "cannot store %s: %s", final_path, strerror(-e));
	}
	if (!e)
		fs_fsync_parent(final_path);
	/* A bad blob is gone; an interrupted or dropped one stays for a resume. */
	if (e == -EBADMSG || e == -EFBIG)
		unlink(partial_path);
	return e;
}
