/*
 * Inside the registry client (registry.h). registry.c opens a session and
 * makes requests (retries, authentication, the registry's errors) and
 * fetches manifests and small blobs; registry_http.c is one HTTP exchange
 * (headers, bodies, redirects); registry_auth.c answers a 401;
 * registry_blob.c downloads blobs to files.
 */
#ifndef MSB_IMAGE_REGISTRY_INT_H
#define MSB_IMAGE_REGISTRY_INT_H

#include "registry.h"
#include "sha256.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define ERR_BODY_MAX 4096
#define CRED_MAX     1024
#define AUTH_HDR_MAX 8192

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

/* registry_http.c: one GET of @url, redirects followed by hand. */
CURLcode registry_http_get(struct exchange *x, const char *url, const char *auth,
                           const char *extra);

/* registry_auth.c: a token (Bearer) or Basic credentials after a 401. */
int registry_authenticate(struct registry *r, CURL *c, const char *challenge, char *why,
                          size_t why_len);

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
int registry_request(struct registry *r, struct request *q, char *why, size_t why_len);

#endif
