/* One HTTP exchange with a registry or its token service (see registry_int.h). */
#include "registry_int.h"

#include "msb.h"
#include "fsutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_REDIRECTS 5

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
CURLcode registry_http_get(struct exchange *x, const char *url, const char *auth, const char *extra)
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
		/* Large reads: a blob is written in as few pieces as curl allows. */
		curl_easy_setopt(x->c, CURLOPT_BUFFERSIZE, 512L * 1024);
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
