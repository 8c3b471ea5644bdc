/* Answering a registry's 401: a token or Basic credentials (see registry_int.h). */
#include "registry_int.h"

#include "auth.h"
#include "base64.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fetches a token (Bearer) or sets Basic credentials after a 401 with
 * @challenge. */
int registry_authenticate(struct registry *r, CURL *c, const char *challenge, char *why,
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
	/* The realm is another origin: registry_http_get() sends the credentials there
	 * because that origin is the URL itself, and to no redirect target. */
	CURLcode rc = registry_http_get(&x, url, basic, NULL);
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
