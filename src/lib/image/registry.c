/* The OCI distribution client (see registry.h). */
#include "registry.h"

#include "auth.h"
#include "fsutil.h"
#include "manifest.h"
#include "registry_int.h"
#include "sha256.h"
#include "why.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BLOB_MEM_MAX (4u << 20)

static const char manifest_accept[] =
    "Accept: " MT_OCI_INDEX ", " MT_OCI_MANIFEST ", " MT_DOCKER_LIST ", " MT_DOCKER_MANIFEST;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *registry_base(const struct registry *r)
{
	return r->base;
}

void registry_body_free(struct registry_body *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

int registry_open(const struct image_ref *ref, const struct registry_opts *o, struct registry **out,
                  char *why, size_t why_len)
{
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		snprintf(why, why_len, "cannot initialise libcurl: %s",
		         curl_easy_strerror(curl_init_rc));
		return -EIO;
	}
	struct registry *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->o = *o;
	if (!r->o.max_attempts)
		r->o.max_attempts = 5;
	int plain = o->insecure || image_ref_is_loopback(ref);
	snprintf(r->host, sizeof(r->host), "%s", ref->registry);
	snprintf(r->repository, sizeof(r->repository), "%s", ref->repository);
	snprintf(r->base, sizeof(r->base), "%s://%s", plain ? "http" : "https", ref->registry);
	pthread_mutex_init(&r->lock, NULL);
	if (o->user) {
		if (snprintf(r->user, sizeof(r->user), "%s", o->user) >= (int)sizeof(r->user) ||
		    snprintf(r->pass, sizeof(r->pass), "%s", o->pass ? o->pass : "") >=
		        (int)sizeof(r->pass)) {
			registry_close(r);
			snprintf(why, why_len, "user name or password too long");
			return -E2BIG;
		}
		r->have_creds = 1;
	} else {
		char path[PATH_MAX];
		if (auth_config_path(path, sizeof(path)) == 0) {
			int e = auth_config_get(path, ref->registry, r->user, sizeof(r->user),
			                        r->pass, sizeof(r->pass), why, why_len);
			if (e == 0) {
				r->have_creds = 1;
			} else if (e == -ENOTSUP) {
				/* A credential helper holds them: go on anonymously (public
				 * images work) and say why if the registry wants more. */
				snprintf(r->cred_note, sizeof(r->cred_note), " (%s)", why);
				why[0] = 0;
			} else if (e != -ENOENT) {
				registry_close(r);
				return e;
			}
		}
	}
	*out = r;
	return 0;
}

void registry_close(struct registry *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	explicit_bzero(r->pass, sizeof(r->pass));
	explicit_bzero(r->auth, sizeof(r->auth));
	free(r);
}

/* The registry's own words for an error: "MANIFEST_UNKNOWN: manifest unknown". */
static void registry_says(const struct exchange *x, char *out, size_t len)
{
	out[0] = 0;
	json_t *j = json_loadb(x->err_body, x->err_len, 0, NULL);
	json_t *errs = j ? json_object_get(j, "errors") : NULL;
	json_t *first = json_is_array(errs) ? json_array_get(errs, 0) : NULL;
	const char *code = first ? json_string_value(json_object_get(first, "code")) : NULL;
	const char *msg = first ? json_string_value(json_object_get(first, "message")) : NULL;
	if (code || msg) {
		snprintf(out, len, "%s%s%s", code ? code : "", code && msg ? ": " : "",
		         msg ? msg : "");
		why_sanitize(out);
	}
	json_decref(j);
}

static int transient_status(long s)
{
	return s == 408 || s == 429 || s >= 500;
}

static int transient_curl(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		return 1;
	default:
		return 0;
	}
}

static void backoff(struct registry *r, int attempt)
{
	/* 0.25 s, 0.5 s, 1 s, 2 s, ...: a restarting registry gets time. */
	long ms = 250L << (attempt < 5 ? attempt : 5);
	for (long waited = 0; waited < ms; waited += 50) {
		if (r->o.cancelled && r->o.cancelled(r->o.cancel_arg))
			return;
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

int registry_request(struct registry *r, struct request *q, char *why, size_t why_len)
{
	char url[4096];
	int e0 = q->path[0] == '/'
	             ? fs_path(url, sizeof(url), "%s%s", r->base, q->path)
	             : fs_path(url, sizeof(url), "%s/v2/%s/%s", r->base, r->repository, q->path);
	if (e0) {
		snprintf(why, why_len, "%s: URL too long", q->what);
		return -ENAMETOOLONG;
	}
	CURL *c = curl_easy_init();
	if (!c)
		return -ENOMEM;
	struct exchange x = {.r = r, .c = c, .sink = q->sink};
	int e = 0, authed = 0;
	for (int attempt = 0;; attempt++) {
		char range[80] = "";
		if (q->prepare && (e = q->prepare(q, range, sizeof(range))) < 0) {
			snprintf(why, why_len, "%s: cannot write the download: %s", q->what,
			         strerror(-e));
			break;
		}
		char auth[AUTH_HDR_MAX];
		pthread_mutex_lock(&r->lock);
		memcpy(auth, r->auth, sizeof(auth));
		pthread_mutex_unlock(&r->lock);
		if (q->sink)
			q->sink->started = 0;
		/* Manifests carry Accept, blobs maybe a Range: never both. */
		const char *extra = q->accept ? q->accept : range[0] ? range : NULL;
		CURLcode rc = registry_http_get(&x, url, auth, extra);
		explicit_bzero(auth, sizeof(auth));
		if (rc == CURLE_ABORTED_BY_CALLBACK) {
			snprintf(why, why_len, "%s: interrupted", q->what);
			e = -EINTR;
			break;
		}
		if (q->sink && q->sink->too_big) {
			snprintf(why, why_len, "%s from %s is larger than %s", q->what, r->host,
			         q->sink->fd < 0 ? "msb accepts" : "its descriptor says");
			e = -EFBIG;
			break;
		}
		if (q->sink && q->sink->write_errno) {
			e = -q->sink->write_errno;
			snprintf(why, why_len, "%s: cannot write the download: %s", q->what,
			         strerror(-e));
			break;
		}
		if (rc != CURLE_OK) {
			if (transient_curl(rc) && attempt + 1 < r->o.max_attempts) {
				backoff(r, attempt);
				continue;
			}
			snprintf(why, why_len, "cannot get %s from %s: %s%s (%d attempt%s)",
			         q->what, r->base, curl_easy_strerror(rc),
			         rc == CURLE_COULDNT_CONNECT ? ", is the registry running?" : "",
			         attempt + 1, attempt ? "s" : "");
			e = rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_CONNECT
			        ? -EHOSTUNREACH
			        : -EIO;
			break;
		}
		if (x.status == 401 && !authed && x.www_auth[0]) {
			authed = 1;
			if ((e = registry_authenticate(r, c, x.www_auth, why, why_len)) < 0)
				break;
			attempt--; /* authenticating is not a failed attempt */
			continue;
		}
		if (x.status >= 200 && x.status < 300) {
			q->status = x.status;
			snprintf(q->content_type, sizeof(q->content_type), "%s", x.content_type);
			snprintf(q->content_digest, sizeof(q->content_digest), "%s",
			         x.content_digest);
			e = 0;
			break;
		}
		if (x.status == 416 && q->prepare) { /* our Range is past the end */
			q->status = 416;
			e = 0;
			break;
		}
		if (transient_status(x.status) && attempt + 1 < r->o.max_attempts) {
			backoff(r, attempt);
			continue;
		}
		char says[600];
		registry_says(&x, says, sizeof(says));
		if (x.status == 404) {
			snprintf(why, why_len, "%s not found in registry %s%s%s%s", q->what,
			         r->host, says[0] ? " (" : "", says, says[0] ? ")" : "");
			e = -ENOENT;
		} else if (x.status == 401 || x.status == 403) {
			snprintf(why, why_len, "registry %s refused access to %s%s%s%s", r->host,
			         q->what, says[0] ? " (" : "", says, says[0] ? ")" : "");
			if (!r->have_creds)
				snprintf(why + strlen(why), why_len - strlen(why),
				         ": it may need credentials (run 'msb login %s')%s",
				         r->host, r->cred_note);
			e = -EACCES;
		} else {
			snprintf(why, why_len, "registry %s answered HTTP %ld for %s%s%s%s",
			         r->host, x.status, q->what, says[0] ? " (" : "", says,
			         says[0] ? ")" : "");
			e = -EPROTO;
		}
		break;
	}
	curl_easy_cleanup(c);
	return e;
}

static int get_small(struct registry *r, const char *path, const char *what, const char *accept,
                     size_t max, const char *want_digest, struct registry_body *out, char *why,
                     size_t why_len)
{
	memset(out, 0, sizeof(*out));
	struct sink s = {.fd = -1, .max = max};
	if (!(s.buf = malloc(max + 1)))
		return -ENOMEM;
	struct request q = {.path = path, .what = what, .accept = accept, .sink = &s};
	int e = registry_request(r, &q, why, why_len);
	if (e) {
		free(s.buf);
		return e;
	}
	s.buf[s.len] = 0;
	out->data = s.buf;
	out->len = s.len;
	snprintf(out->content_type, sizeof(out->content_type), "%s", q.content_type);
	sha256_digest_of(s.buf, s.len, out->digest);
	if (want_digest && strcmp(out->digest, want_digest)) {
		snprintf(why, why_len, "%s from %s does not match its digest (got %s)", what,
		         r->host, out->digest);
		registry_body_free(out);
		return -EBADMSG;
	}
	return 0;
}

int registry_get_manifest(struct registry *r, const char *reference, size_t max,
                          struct registry_body *out, char *why, size_t why_len)
{
	char path[600], what[IMAGE_NAME_MAX + 200];
	int by_digest = !strncmp(reference, "sha256:", 7);
	snprintf(path, sizeof(path), "manifests/%s", reference);
	snprintf(what, sizeof(what), "%s%s%s", r->repository, by_digest ? "@" : ":", reference);
	return get_small(r, path, what, manifest_accept, max, by_digest ? reference : NULL, out,
	                 why, why_len);
}

int registry_get_blob_mem(struct registry *r, const char *digest, uint64_t size,
                          struct registry_body *out, char *why, size_t why_len)
{
	char path[600], what[200];
	if (size > BLOB_MEM_MAX) {
		snprintf(why, why_len, "blob %s is %llu bytes, more than msb reads for it", digest,
		         (unsigned long long)size);
		return -EFBIG;
	}
	snprintf(path, sizeof(path), "blobs/%s", digest);
	snprintf(what, sizeof(what), "blob %s", digest);
	int e = get_small(r, path, what, NULL, (size_t)size, digest, out, why, why_len);
	if (!e && out->len != size) {
		snprintf(why, why_len,
		         "blob %s from %s has %zu bytes, not the %llu its descriptor says", digest,
		         r->host, out->len, (unsigned long long)size);
		registry_body_free(out);
		return -EBADMSG;
	}
	return e;
}

int registry_ping(struct registry *r, char *why, size_t why_len)
{
	struct registry_body b;
	int e = get_small(r, "/v2/", "the registry's API", NULL, 64 * 1024, NULL, &b, why, why_len);
	if (!e)
		registry_body_free(&b);
	return e;
}
