/* Pulling images into the store, and finding them (see pull.h). */
#include "pull.h"

#include "fsutil.h"
#include "layer.h"
#include "registry.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define INDEX_DEPTH_MAX 2 /* an index may name an index, once */
#define JOBS_DEFAULT    3

static double now_secs(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* State shared by the threads of one pull. */
struct pull {
	struct store *s;
	struct registry *reg;
	const struct pull_opts *o;
	const char *ref;
	const struct image_manifest *m;
	pthread_mutex_t lock; /* guards what follows and serialises progress */
	pthread_cond_t ready_cond;
	size_t next;          /* the next layer to take */
	unsigned char *ready; /* per layer: in the store */
	int err;              /* the first failure */
	char why[1024];
	int fetched; /* a layer was downloaded */
};

/* Records the first real failure (over the others' -EINTR) and wakes the
 * thread writing the image. */
static void pull_fail(struct pull *p, int e, const char *why)
{
	pthread_mutex_lock(&p->lock);
	if (!p->err || (p->err == -EINTR && e != -EINTR)) {
		p->err = e;
		snprintf(p->why, sizeof(p->why), "%s", why);
	}
	pthread_cond_broadcast(&p->ready_cond);
	pthread_mutex_unlock(&p->lock);
}

static void emit(struct pull *p, const struct pull_event *ev)
{
	if (p->o->progress)
		p->o->progress(ev, p->o->progress_arg);
}

static int pull_cancelled(void *arg)
{
	struct pull *p = arg;
	pthread_mutex_lock(&p->lock);
	int stop = p->err != 0;
	pthread_mutex_unlock(&p->lock);
	return stop || (p->o->cancelled && p->o->cancelled(p->o->cancel_arg));
}

struct layer_progress {
	struct pull *p;
	size_t i;
	uint64_t last;
};

static void on_layer_bytes(void *arg, uint64_t done)
{
	struct layer_progress *lp = arg;
	struct pull *p = lp->p;
	const struct image_desc *d = &p->m->layers[lp->i];
	/* Every 256 KiB and at the end: a terminal redraws at a human rate. */
	if (done - lp->last < (256u << 10) && done != d->size)
		return;
	lp->last = done;
	struct pull_event ev = {.step = PULL_LAYER,
	                        .ref = p->ref,
	                        .digest = d->digest,
	                        .index = (unsigned)lp->i,
	                        .count = (unsigned)p->m->nlayers,
	                        .done = done,
	                        .total = d->size,
	                        .state = LAYER_DOWNLOADING};
	pthread_mutex_lock(&p->lock);
	emit(p, &ev);
	pthread_mutex_unlock(&p->lock);
}

static int fetch_layer(struct pull *p, size_t i, char *why, size_t why_len)
{
	const struct image_desc *d = &p->m->layers[i];
	char final[PATH_MAX], partial[PATH_MAX];
	int e = store_blob_path(p->s, d->digest, final, sizeof(final));
	if (!e)
		e = store_partial_path(p->s, d->digest, partial, sizeof(partial));
	if (e) {
		snprintf(why, why_len, "layer %zu: bad digest %s", i + 1, d->digest);
		return e;
	}
	/* Another msb may be fetching the same blob: wait for it, then find
	 * the blob there. */
	int lock = store_lock(p->s, d->digest);
	if (lock < 0) {
		snprintf(why, why_len, "cannot lock layer %s: %s", d->digest, strerror(-lock));
		return lock;
	}
	struct pull_event ev = {.step = PULL_LAYER,
	                        .ref = p->ref,
	                        .digest = d->digest,
	                        .index = (unsigned)i,
	                        .count = (unsigned)p->m->nlayers,
	                        .total = d->size};
	double t0 = now_secs();
	if (store_has_blob(p->s, d->digest, d->size)) {
		ev.state = LAYER_CACHED;
		ev.done = d->size;
	} else {
		struct layer_progress lp = {.p = p, .i = i};
		e = registry_fetch_blob(p->reg, d->digest, d->size, partial, final, on_layer_bytes,
		                        &lp, why, why_len);
		ev.state = LAYER_DONE;
		ev.done = d->size;
		pthread_mutex_lock(&p->lock);
		p->fetched = 1;
		pthread_mutex_unlock(&p->lock);
	}
	store_unlock(lock);
	if (e)
		return e;
	ev.secs = now_secs() - t0;
	pthread_mutex_lock(&p->lock);
	emit(p, &ev);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void *layer_worker(void *arg)
{
	struct pull *p = arg;
	for (;;) {
		pthread_mutex_lock(&p->lock);
		size_t i = p->next++;
		int stop = p->err != 0 || i >= p->m->nlayers;
		pthread_mutex_unlock(&p->lock);
		if (stop)
			return NULL;
		char why[1024];
		int e = fetch_layer(p, i, why, sizeof(why));
		if (e) {
			pull_fail(p, e, why);
			return NULL;
		}
		pthread_mutex_lock(&p->lock);
		p->ready[i] = 1;
		pthread_cond_broadcast(&p->ready_cond);
		pthread_mutex_unlock(&p->lock);
	}
}

/*
 * Downloads the layers with a few worker threads while this thread writes
 * each one, bottom first, into @li as soon as it is in the store (when @li
 * is not NULL): the image is written while later layers still download.
 */
static int fetch_and_build(struct pull *p, struct layer_image *li, char *why, size_t why_len)
{
	unsigned jobs = p->o->jobs ? p->o->jobs : JOBS_DEFAULT;
	if (jobs > p->m->nlayers)
		jobs = (unsigned)p->m->nlayers;
	pthread_t th[16];
	if (jobs > 16)
		jobs = 16;
	unsigned started = 0;
	for (unsigned j = 0; j < jobs; j++) {
		if (pthread_create(&th[started], NULL, layer_worker, p) != 0)
			break;
		started++;
	}
	if (!started && p->m->nlayers)
		layer_worker(p); /* no threads to be had: one at a time here */
	for (size_t i = 0; li && i < p->m->nlayers; i++) {
		pthread_mutex_lock(&p->lock);
		while (!p->ready[i] && !p->err)
			pthread_cond_wait(&p->ready_cond, &p->lock);
		int stop = p->err;
		pthread_mutex_unlock(&p->lock);
		if (stop)
			break;
		char path[PATH_MAX], w[1024];
		int fd = -1, e = store_blob_path(p->s, p->m->layers[i].digest, path, sizeof(path));
		if (!e && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			e = -errno;
		if (e)
			snprintf(w, sizeof(w), "layer %zu vanished from the store: %s", i + 1,
			         strerror(-e));
		else
			e = layer_image_add(li, fd, w, sizeof(w));
		if (fd >= 0)
			close(fd);
		if (e)
			pull_fail(p, e, w); /* the downloads stop too */
	}
	for (unsigned j = 0; j < started; j++)
		pthread_join(th[j], NULL);
	if (p->err)
		snprintf(why, why_len, "%s", p->why);
	return p->err;
}

/* Records a built image and points @ref at it. */
static int image_record(struct store *s, const char *ref, const char *manifest_digest,
                        const char *index_digest, const struct image_manifest *m,
                        const struct image_config *cfg, uint64_t erofs_size,
                        struct store_image *out, char *why, size_t why_len)
{
	struct store_image im = {0};
	char plat[100];
	platform_format(&cfg->platform, plat, sizeof(plat));
	im.manifest_digest = (char *)manifest_digest;
	im.index_digest = (char *)index_digest;
	im.config_digest = (char *)m->config.digest;
	im.platform = plat;
	im.created = cfg->created;
	im.erofs_size = erofs_size;
	for (size_t i = 0; i < m->nlayers; i++)
		im.size += m->layers[i].size;
	const char **layers = calloc(m->nlayers ? m->nlayers : 1, sizeof(char *));
	if (!layers)
		return -ENOMEM;
	for (size_t i = 0; i < m->nlayers; i++)
		layers[i] = m->layers[i].digest;
	int e = store_add_image(s, ref, &im, layers, m->nlayers, why, why_len);
	free(layers);
	if (e)
		return e;
	return ref ? store_find_ref(s, ref, out) : 0;
}

int image_install(struct store *s, const char *ref, const char *manifest_digest,
                  const char *index_digest, const struct image_manifest *m,
                  const struct image_config *cfg,
                  void (*progress)(const struct pull_event *, void *), void *arg,
                  struct store_image *out, int *built, char *why, size_t why_len)
{
	char erofs[PATH_MAX];
	int e = store_erofs_path(s, manifest_digest, erofs, sizeof(erofs));
	if (e)
		return e;
	*built = 0;
	int lock = store_lock(s, manifest_digest);
	if (lock < 0) {
		snprintf(why, why_len, "cannot lock the image: %s", strerror(-lock));
		return lock;
	}
	struct stat st;
	if (stat(erofs, &st) < 0) {
		struct pull_event ev = {.step = PULL_BUILDING,
		                        .ref = ref,
		                        .digest = manifest_digest,
		                        .count = (unsigned)m->nlayers};
		if (progress)
			progress(&ev, arg);
		double t0 = now_secs();
		int *fds = calloc(m->nlayers ? m->nlayers : 1, sizeof(int));
		if (!fds) {
			store_unlock(lock);
			return -ENOMEM;
		}
		size_t n = 0;
		for (; n < m->nlayers; n++) {
			char path[PATH_MAX];
			e = store_blob_path(s, m->layers[n].digest, path, sizeof(path));
			if (!e && (fds[n] = open(path, O_RDONLY | O_CLOEXEC)) < 0)
				e = -errno;
			if (e) {
				snprintf(why, why_len,
				         "layer %zu (%s) is missing from the store: %s", n + 1,
				         m->layers[n].digest, strerror(-e));
				break;
			}
		}
		if (!e)
			e = layer_build_image(fds, n, erofs, why, why_len);
		for (size_t i = 0; i < n; i++)
			close(fds[i]);
		free(fds);
		if (!e && stat(erofs, &st) < 0)
			e = -errno;
		if (e) {
			store_unlock(lock);
			return e;
		}
		*built = 1;
		ev.step = PULL_BUILT;
		ev.total = (uint64_t)st.st_size;
		ev.secs = now_secs() - t0;
		if (progress)
			progress(&ev, arg);
	}
	store_unlock(lock);
	return image_record(s, ref, manifest_digest, index_digest, m, cfg, (uint64_t)st.st_size,
	                    out, why, why_len);
}

/* The image manifest for @want: follows an index (at most twice). */
static int resolve_manifest(struct registry *reg, const struct image_ref *r, const char *full,
                            const struct platform *want, struct registry_body *man,
                            char *index_digest, size_t idx_len, char *why, size_t why_len)
{
	char w[700], reference[sizeof(((struct image_desc *)0)->digest)];
	snprintf(reference, sizeof(reference), "%s", r->digest[0] ? r->digest : r->tag);
	index_digest[0] = 0;
	for (int depth = 0;; depth++) {
		/* By digest, registry_get_manifest() checks the body against it. */
		int e =
		    registry_get_manifest(reg, reference, MANIFEST_MAX_BYTES, man, why, why_len);
		if (e)
			return e;
		enum manifest_kind kind;
		e = manifest_kind(man->content_type, man->data, man->len, &kind, w, sizeof(w));
		if (!e && kind == MANIFEST_IMAGE)
			return 0;
		if (!e && depth == INDEX_DEPTH_MAX) {
			snprintf(w, sizeof(w), "image indexes nest deeper than msb follows");
			e = -EINVAL;
		}
		struct image_desc d;
		if (!e)
			e = index_select(man->data, man->len, want, &d, w, sizeof(w));
		if (e) {
			snprintf(why, why_len, "%s: %s", full, w);
			registry_body_free(man);
			return e;
		}
		if (!index_digest[0])
			snprintf(index_digest, idx_len, "%s", man->digest);
		snprintf(reference, sizeof(reference), "%s", d.digest);
		registry_body_free(man);
	}
}

/* @name as a user wrote it -> parsed, and its full spelling. */
static int full_ref(const char *name, struct image_ref *r, char *full, size_t len, char *why,
                    size_t why_len)
{
	char w[700];
	if (image_ref_parse(name, r, w, sizeof(w)) < 0) {
		snprintf(why, why_len, "invalid image reference \"%s\": %s", name, w);
		return -EINVAL;
	}
	return image_ref_format(r, full, len);
}

int image_pull(struct store *s, const char *name, const struct pull_opts *o,
               struct store_image *out, char *why, size_t why_len)
{
	struct image_ref r;
	char full[IMAGE_NAME_MAX * 2 + 160], w[1024];
	int e = full_ref(name, &r, full, sizeof(full), why, why_len);
	if (e)
		return e;
	struct platform want;
	if (o->platform) {
		if ((e = platform_parse(o->platform, &want, w, sizeof(w))) < 0) {
			snprintf(why, why_len, "--platform %s: %s", o->platform, w);
			return e;
		}
	} else {
		platform_host(&want);
	}
	int guard = store_guard(s);
	if (guard < 0) {
		snprintf(why, why_len, "cannot lock the image store: %s", strerror(-guard));
		return guard;
	}
	struct pull p = {.s = s, .o = o, .ref = full};
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.ready_cond, NULL);
	struct registry_opts ro = {.insecure = o->insecure,
	                           .user = o->user,
	                           .pass = o->pass,
	                           .cancelled = pull_cancelled,
	                           .cancel_arg = &p};
	struct registry_body man = {0}, cfgb = {0};
	struct image_manifest m = {0};
	struct image_config cfg = {0};
	int have_m = 0, have_cfg = 0;
	char index_digest[80] = "";
	e = registry_open(&r, &ro, &p.reg, w, sizeof(w));
	if (e) {
		snprintf(why, why_len, "%s: %s", full, w);
		goto out;
	}
	e = resolve_manifest(p.reg, &r, full, &want, &man, index_digest, sizeof(index_digest), why,
	                     why_len);
	if (e)
		goto out;
	if ((e = manifest_parse(man.data, man.len, &m, w, sizeof(w))) < 0) {
		snprintf(why, why_len, "%s: bad manifest from %s: %s", full, r.registry, w);
		goto out;
	}
	have_m = 1;
	p.m = &m;
	struct pull_event ev = {
	    .step = PULL_RESOLVED, .ref = full, .digest = man.digest, .count = (unsigned)m.nlayers};
	emit(&p, &ev);
	/* The config: small, read into memory, stored like any blob. */
	char *cfg_data = NULL;
	size_t cfg_len = 0;
	if (store_read_blob(s, m.config.digest, MANIFEST_MAX_BYTES, &cfg_data, &cfg_len) == 0 &&
	    cfg_len == m.config.size) {
		cfgb.data = cfg_data;
		cfgb.len = cfg_len;
	} else {
		free(cfg_data);
		if ((e = registry_get_blob_mem(p.reg, m.config.digest, m.config.size, &cfgb, w,
		                               sizeof(w))) < 0) {
			snprintf(why, why_len, "%s: config: %s", full, w);
			goto out;
		}
	}
	if ((e = image_config_parse(cfgb.data, cfgb.len, &cfg, w, sizeof(w))) < 0) {
		snprintf(why, why_len, "%s: bad image config: %s", full, w);
		goto out;
	}
	have_cfg = 1;
	if (!o->platform &&
	    (strcmp(cfg.platform.os, want.os) || strcmp(cfg.platform.arch, want.arch))) {
		char have[100], host[100];
		platform_format(&cfg.platform, have, sizeof(have));
		platform_format(&want, host, sizeof(host));
		snprintf(
		    why, why_len,
		    "%s is a %s image; this machine runs %s (pull it anyway with --platform %s)",
		    full, have, host, have);
		e = -ENOTSUP;
		goto out;
	}
	if (cfg.ndiff_ids != m.nlayers) {
		snprintf(why, why_len, "%s: the config lists %zu layers, the manifest %zu", full,
		         cfg.ndiff_ids, m.nlayers);
		e = -EINVAL;
		goto out;
	}
	/* Manifest, index and config go into the store first: small, and
	 * what `msb image ls` and a later offline start read. */
	if ((e = store_put_blob(s, man.digest, man.data, man.len)) < 0 ||
	    (e = store_put_blob(s, m.config.digest, cfgb.data, cfgb.len)) < 0) {
		char note[200];
		fs_full_note(store_home(s), note, sizeof(note));
		snprintf(why, why_len, "%s: cannot store the manifest: %s%s", full, strerror(-e),
		         note);
		goto out;
	}
	/* The image is written while its layers download, unless it exists
	 * (another tag of it, or another msb just made it: wait for that one). */
	char erofs[PATH_MAX];
	struct stat est;
	struct layer_image *li = NULL;
	int ilock = -1, built = 0;
	double t0 = now_secs();
	if ((e = store_erofs_path(s, man.digest, erofs, sizeof(erofs))) < 0)
		goto out;
	if (stat(erofs, &est) < 0) {
		if ((ilock = store_lock(s, man.digest)) < 0) {
			e = ilock;
			snprintf(why, why_len, "%s: cannot lock the image: %s", full, strerror(-e));
			goto out;
		}
		if (stat(erofs, &est) < 0 && (e = layer_image_begin(erofs, &li, w, sizeof(w))) < 0)
			goto build_failed;
	}
	if (!(p.ready = calloc(m.nlayers ? m.nlayers : 1, 1))) {
		e = -ENOMEM;
		goto build_failed;
	}
	e = fetch_and_build(&p, li, w, sizeof(w));
	if (!e && li) {
		e = layer_image_commit(li, w, sizeof(w));
		li = NULL; /* committed or aborted */
		built = !e;
	}
	if (!e && stat(erofs, &est) < 0)
		e = -errno;
build_failed:
	layer_image_abort(li);
	store_unlock(ilock);
	if (e) {
		char note[200] = "";
		if (e == -ENOSPC || e == -EIO)
			fs_full_note(store_home(s), note, sizeof(note));
		snprintf(why, why_len, "%s: %s%s", full, w, note);
		goto out;
	}
	if (built) {
		ev = (struct pull_event){.step = PULL_BUILT,
		                         .ref = full,
		                         .digest = man.digest,
		                         .count = (unsigned)m.nlayers,
		                         .total = (uint64_t)est.st_size,
		                         .secs = now_secs() - t0};
		emit(&p, &ev);
	}
	e = image_record(s, full, man.digest, index_digest[0] ? index_digest : NULL, &m, &cfg,
	                 (uint64_t)est.st_size, out, w, sizeof(w));
	if (e) {
		snprintf(why, why_len, "%s: %s", full, w);
		goto out;
	}
	ev = (struct pull_event){.step = PULL_DONE,
	                         .ref = full,
	                         .digest = man.digest,
	                         .count = (unsigned)m.nlayers,
	                         .up_to_date = !p.fetched && !built};
	emit(&p, &ev);
out:
	if (have_cfg)
		image_config_free(&cfg);
	if (have_m)
		manifest_free(&m);
	registry_body_free(&man);
	free(cfgb.data);
	registry_close(p.reg);
	free(p.ready);
	pthread_cond_destroy(&p.ready_cond);
	pthread_mutex_destroy(&p.lock);
	store_unlock(guard);
	return e;
}

int image_find(struct store *s, const char *name, struct store_image *out, char *erofs,
               size_t erofs_len, struct image_config *cfg, char *why, size_t why_len)
{
	struct image_ref r;
	char full[IMAGE_NAME_MAX * 2 + 160], w[700];
	int e = full_ref(name, &r, full, sizeof(full), why, why_len);
	if (e)
		return e;
	if ((e = store_find_ref(s, full, out)) < 0) {
		if (e == -ENOENT)
			snprintf(why, why_len, "image %s is not pulled", full);
		else
			snprintf(why, why_len, "cannot read the image store: %s", strerror(-e));
		return e;
	}
	char *data = NULL;
	size_t len = 0;
	struct stat st;
	if ((e = store_erofs_path(s, out->manifest_digest, erofs, erofs_len)) < 0 ||
	    (stat(erofs, &st) < 0 && (e = -errno)) ||
	    (e = store_read_blob(s, out->config_digest, MANIFEST_MAX_BYTES, &data, &len)) < 0) {
		snprintf(why, why_len, "image %s is damaged in the store (%s): pull it again", full,
		         strerror(-e));
		store_image_free(out);
		return e == -ENOENT ? -EIO : e;
	}
	e = image_config_parse(data, len, cfg, w, sizeof(w));
	free(data);
	if (e) {
		snprintf(why, why_len, "image %s: bad config: %s", full, w);
		store_image_free(out);
	}
	return e;
}
