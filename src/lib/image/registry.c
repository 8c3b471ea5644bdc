/* The OCI distribution client (see registry.h). */
#include "registry.h"

#include "auth.h"
#include "msb.h"
#include "base64.h"
#include "fsutil.h"
#include "manifest.h"
#include "sha256.h"
#include "why.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_REDIRECTS 5
#define ERR_BODY_MAX  4096
#define CRED_MAX      1024
#define AUTH_HDR_MAX  8192
#define BLOB_MEM_MAX  (4u << 20)

static const char manifest_accept[] =
    "Accept: " MT_OCI_INDEX ", " MT_OCI_MANIFEST ", " MT_DOCKER_LIST ", " MT_DOCKER_MANIFEST;

struct registry {
	char base[IMAGE_NAME_MAX + 16]; /* scheme://host[:port] */
	char host[IMAGE_NAME_MAX + 1];  /* for messages */
	char repository[IMAGE_NAME_MAX + 1];
	char user[CRED_MAX], pass[CRED_MAX];
	int have_creds;
	struct registry_opts o;
	pthread_mutex_t lock;    /* guards auth, which every thread's requests use */
	char auth[AUTH_HDR_MAX]; /* "Authorization: ..." or "" */
	char cred_note[600];     /* why config.json's credentials are not used */
};

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

/* ---- one HTTP exchange ----------------------------------------------- */

/* Where a response body goes: memory (bounded) or a file being hashed. */
struct sink {
	/* memory */
	char *buf;
	size_t len, max;
	/* file */
	int fd;
	struct sha256 *hash;
	uint64_t done, limit; /* bytes in the file; what it may reach */
	int too_big;
	int write_errno;
	int started; /* this response's body has begun */
	void (*progress)(void *, uint64_t);
	void *progress_arg;
};

struct exchange {
	struct registry *r;
	CURL *c;
	long status;
	char content_type[160];
	char www_auth[2048];
	char location[4096];
	char content_digest[80];
	char err_body[ERR_BODY_MAX];
	size_t err_len;
	struct sink *sink;
};

static void header_value(const char *line, size_t n, const char *name, char *out, size_t out_len)
{
	size_t nl = strlen(name);
	if (n <= nl || strncasecmp(line, name, nl) || line[nl] != ':')
		return;
	const char *v = line + nl + 1;
	const char *end = line + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	size_t len = (size_t)(end - v);
	if (len >= out_len)
		return; /* longer than anything we accept: as if absent */
	memcpy(out, v, len);
	out[len] = 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct exchange *x = arg;
	size_t len = size * n;
	if (len >= 5 && !strncmp(p, "HTTP/", 5)) { /* a new response: forget the last */
		x->content_type[0] = x->www_auth[0] = x->location[0] = x->content_digest[0] = 0;
		return len;
	}
	header_value(p, len, "Content-Type", x->content_type, sizeof(x->content_type));
	header_value(p, len, "WWW-Authenticate", x->www_auth, sizeof(x->www_auth));
	header_value(p, len, "Location", x->location, sizeof(x->location));
	header_value(p, len, "Docker-Content-Digest", x->content_digest, sizeof(x->content_digest));
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct exchange *x = arg;
	size_t len = size * n;
	long status = 0;
	curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status >= 300 || !x->sink) {
		/* An error's body (the registry's JSON errors): keep its start. */
		size_t room = sizeof(x->err_body) - 1 - x->err_len;
		size_t take = len < room ? len : room;
		memcpy(x->err_body + x->err_len, p, take);
		x->err_len += take;
		x->err_body[x->err_len] = 0;
		return len;
	}
	struct sink *s = x->sink;
	if (s->fd < 0) {
		if (len > s->max - s->len) {
			s->too_big = 1;
			return 0; /* aborts the transfer */
		}
		memcpy(s->buf + s->len, p, len);
		s->len += len;
		return len;
	}
	if (!s->started) {
		s->started = 1;
		/* A 200 to our Range request is the whole blob again: the registry
		 * does not resume, so the file starts over. */
		if (status == 200 && s->done > 0) {
			if (ftruncate(s->fd, 0) < 0 || lseek(s->fd, 0, SEEK_SET) < 0) {
				s->write_errno = errno;
				return 0;
			}
			sha256_init(s->hash);
			s->done = 0;
		}
	}
	if (len > s->limit - s->done) {
		s->too_big = 1;
		return 0;
	}
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(s->fd, p + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			s->write_errno = w < 0 ? errno : EIO;
			return 0;
		}
		off += (size_t)w;
	}
	sha256_update(s->hash, p, len);
	s->done += len;
	if (s->progress)
		s->progress(s->progress_arg, s->done);
	return len;
}

static int on_xfer(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                   curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	struct exchange *x = arg;
	return x->r->o.cancelled && x->r->o.cancelled(x->r->o.cancel_arg);
}

/* Same scheme, host and port: credentials may go there. */
static int same_origin(const char *a, const char *b)
{
	CURLU *ua = curl_url(), *ub = curl_url();
	int same = 0;
	if (ua && ub && curl_url_set(ua, CURLUPART_URL, a, 0) == CURLUE_OK &&
	    curl_url_set(ub, CURLUPART_URL, b, 0) == CURLUE_OK) {
		same = 1;
		static const CURLUPart parts[] = {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT};
		for (size_t i = 0; i < 3 && same; i++) {
			char *pa = NULL, *pb = NULL;
			curl_url_get(ua, parts[i], &pa, CURLU_DEFAULT_PORT);
			curl_url_get(ub, parts[i], &pb, CURLU_DEFAULT_PORT);
			same = pa && pb && !strcasecmp(pa, pb);
			curl_free(pa);
			curl_free(pb);
		}
	}
	curl_url_cleanup(ua);
	curl_url_cleanup(ub);
	return same;
}

/* @location resolved against @base into @out. */
static int resolve_url(const char *base, const char *location, char *out, size_t len)
{
	CURLU *u = curl_url();
	char *s = NULL;
	int e = -EINVAL;
	if (u && curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_URL, location, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK) {
		e = fs_path(out, len, "%s", s);
		/* Only HTTP(S) onwards: a registry must not point us at file://. */
		if (!e && strncmp(out, "http://", 7) && strncmp(out, "https://", 8))
			e = -EINVAL;
	}
	curl_free(s);
	curl_url_cleanup(u);
	return e;
}

/*
 * One GET of @url, following redirects by hand so that the registry's
 * Authorization goes only to the registry's own origin. @auth is the
 * header to send there ("" for none); @extra another header (Accept,
 * Range) or NULL. Returns a CURLcode; x->status holds the final status.
 */
static CURLcode get(struct exchange *x, const char *url, const char *auth, const char *extra)
{
	char cur[4096];
	CURLcode rc = CURLE_URL_MALFORMAT;
	if (fs_path(cur, sizeof(cur), "%s", url))
		return rc;
	for (int hop = 0; hop <= MAX_REDIRECTS; hop++) {
		struct curl_slist *h = NULL;
		if (auth[0] && same_origin(cur, url))
			h = curl_slist_append(h, auth);
		if (extra)
			h = curl_slist_append(h, extra);
		x->err_len = 0;
		x->err_body[0] = 0;
		curl_easy_reset(x->c);
		curl_easy_setopt(x->c, CURLOPT_URL, cur);
		curl_easy_setopt(x->c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(x->c, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(x->c, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(x->c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(x->c, CURLOPT_USERAGENT, "msb/" MSB_VERSION);
		curl_easy_setopt(x->c, CURLOPT_CONNECTTIMEOUT, 20L);
		/* A stalled transfer is a dropped one: retried and resumed. */
		curl_easy_setopt(x->c, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(x->c, CURLOPT_LOW_SPEED_TIME, 60L);
		curl_easy_setopt(x->c, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(x->c, CURLOPT_HEADERDATA, x);
		curl_easy_setopt(x->c, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(x->c, CURLOPT_WRITEDATA, x);
		curl_easy_setopt(x->c, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(x->c, CURLOPT_XFERINFOFUNCTION, on_xfer);
		curl_easy_setopt(x->c, CURLOPT_XFERINFODATA, x);
		rc = curl_easy_perform(x->c);
		curl_slist_free_all(h);
		x->status = 0;
		curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &x->status);
		if (rc != CURLE_OK)
			return rc;
		if (x->status < 300 || x->status >= 400 || !x->location[0] ||
		    (x->status != 301 && x->status != 302 && x->status != 303 && x->status != 307 &&
		     x->status != 308))
			return CURLE_OK;
		char next[4096];
		if (resolve_url(cur, x->location, next, sizeof(next)))
			return CURLE_URL_MALFORMAT;
		memcpy(cur, next, sizeof(cur));
	}
	return CURLE_TOO_MANY_REDIRECTS;
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

/* Fetches a token (Bearer) or sets Basic credentials after a 401 with
 * @challenge. */
static int authenticate(struct registry *r, CURL *c, const char *challenge, char *why,
                        size_t why_len)
{
	struct auth_challenge ch;
	char w[512];
	int e = auth_parse_challenge(challenge, &ch, w, sizeof(w));
	if (e) {
		snprintf(why, why_len,
		         "registry %s asks for authentication in a way msb cannot use (%s)",
		         r->host, w);
		return -EACCES;
	}
	char cred[2 * CRED_MAX + 2], b64[4 * CRED_MAX + 8];
	if (r->have_creds) {
		snprintf(cred, sizeof(cred), "%s:%s", r->user, r->pass);
		if (base64_encode(cred, strlen(cred), b64, sizeof(b64)) < 0)
			return -E2BIG;
		explicit_bzero(cred, sizeof(cred));
	}
	if (ch.scheme == AUTH_BASIC) {
		if (!r->have_creds) {
			snprintf(why, why_len,
			         "registry %s needs credentials for %s: run 'msb login %s' (or set "
			         "them in ~/.docker/config.json)%s",
			         r->host, r->repository, r->host, r->cred_note);
			return -EACCES;
		}
		pthread_mutex_lock(&r->lock);
		snprintf(r->auth, sizeof(r->auth), "Authorization: Basic %s", b64);
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	char scope[IMAGE_NAME_MAX + 32], url[4096];
	snprintf(scope, sizeof(scope), "repository:%s:pull", r->repository);
	if (auth_token_url(&ch, scope, url, sizeof(url)) < 0) {
		snprintf(why, why_len, "registry %s names a token service msb cannot use: %s",
		         r->host, ch.realm);
		return -EACCES;
	}
	struct sink s = {.fd = -1, .max = 64 * 1024};
	s.buf = malloc(s.max);
	if (!s.buf)
		return -ENOMEM;
	struct exchange x = {.r = r, .c = c, .sink = &s};
	char basic[sizeof(b64) + 32] = "";
	if (r->have_creds)
		snprintf(basic, sizeof(basic), "Authorization: Basic %s", b64);
	/* The realm is another origin: get() sends the credentials there
	 * because that origin is the URL itself, and to no redirect target. */
	CURLcode rc = get(&x, url, basic, NULL);
	explicit_bzero(basic, sizeof(basic));
	if (rc != CURLE_OK) {
		snprintf(why, why_len, "cannot get a token from %s: %s", ch.realm,
		         curl_easy_strerror(rc));
		free(s.buf);
		return rc == CURLE_ABORTED_BY_CALLBACK ? -EINTR : -EHOSTUNREACH;
	}
	if (x.status == 401 || x.status == 403) {
		snprintf(why, why_len, "%s refused %s for %s%s", ch.realm,
		         r->have_creds ? "the credentials" : "anonymous access", r->repository,
		         r->have_creds ? " (check them, or run 'msb login')"
		                       : ": it may need credentials (run 'msb login')");
		free(s.buf);
		return -EACCES;
	}
	if (x.status != 200) {
		snprintf(why, why_len, "token service %s answered HTTP %ld", ch.realm, x.status);
		free(s.buf);
		return -EPROTO;
	}
	char token[AUTH_HDR_MAX - 32];
	e = auth_parse_token_response(s.buf, s.len, token, sizeof(token), w, sizeof(w));
	free(s.buf);
	if (e) {
		snprintf(why, why_len, "token service %s: %s", ch.realm, w);
		return -EPROTO;
	}
	pthread_mutex_lock(&r->lock);
	snprintf(r->auth, sizeof(r->auth), "Authorization: Bearer %s", token);
	pthread_mutex_unlock(&r->lock);
	explicit_bzero(token, sizeof(token));
	return 0;
}

/*
 * GETs @path (under /v2/<repository>/) into @sink with retries, auth and
 * resume handled by @prepare (called before each attempt; may set a Range
 * header into @extra2). Returns 0 with x->status 2xx, or a negative errno
 * with @why set. @what names the object for messages.
 */
struct request {
	const char *path;
	const char *what;
	const char *accept; /* header or NULL */
	struct sink *sink;
	/* for blobs: reopen/resume before each attempt */
	int (*prepare)(struct request *q, char *range, size_t range_len);
	void *arg;
	long status;
	char content_type[160];
	char content_digest[80];
};

static int request(struct registry *r, struct request *q, char *why, size_t why_len)
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
		CURLcode rc = get(&x, url, auth, extra);
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
			if ((e = authenticate(r, c, x.www_auth, why, why_len)) < 0)
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

static void digest_of(const void *p, size_t n, char out[SHA256_DIGEST_STR])
{
	struct sha256 h;
	uint8_t d[32];
	sha256_init(&h);
	sha256_update(&h, p, n);
	sha256_final(&h, d);
	sha256_digest_str(d, out);
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
	int e = request(r, &q, why, why_len);
	if (e) {
		free(s.buf);
		return e;
	}
	s.buf[s.len] = 0;
	out->data = s.buf;
	out->len = s.len;
	snprintf(out->content_type, sizeof(out->content_type), "%s", q.content_type);
	digest_of(s.buf, s.len, out->digest);
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

/* ---- blobs to files ---------------------------------------------------- */

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
		e = request(r, &q, why, why_len);
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
