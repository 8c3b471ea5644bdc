/* WWW-Authenticate challenges and the token endpoint (see auth.h). */
#include "auth.h"
#include "why.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- WWW-Authenticate ---------------------------------------------- */

/* RFC 7230 §3.2.6 tchar */
static int tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static size_t token_len(const char *p)
{
	size_t n = 0;
	while (tchar(p[n]))
		n++;
	return n;
}

static const char *ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Reads a token or a quoted string at *pp into @dst (of @cap bytes; NULL
 * to skip the value) and moves *pp past it. Returns 0, -EINVAL, or -E2BIG
 * when it does not fit. */
static int read_value(const char **pp, char *dst, size_t cap)
{
	const char *p = *pp;
	size_t n = 0;
	int big = 0;
	if (*p == '"') {
		for (p++; *p != '"'; p++) {
			if (*p == '\\')
				p++; /* quoted-pair: the next character stands for itself */
			unsigned char c = (unsigned char)*p;
			/* qdtext: HTAB, SP, visible and obs-text; the NUL is
			 * also the end of an unterminated string */
			if (c == 0 || (c < ' ' && c != '\t') || c == 0x7f)
				return -EINVAL;
			if (dst && n + 1 < cap)
				dst[n++] = (char)c;
			else if (dst)
				big = 1;
		}
		p++;
	} else {
		size_t t = token_len(p);
		if (t == 0)
			return -EINVAL;
		if (dst && t < cap) {
			memcpy(dst, p, t);
			n = t;
		} else if (dst) {
			big = 1;
		}
		p += t;
	}
	if (dst)
		dst[big ? 0 : n] = 0;
	*pp = p;
	return big ? -E2BIG : 0;
}

static int bad_header(char *why, size_t len, int code, const char *value, const char *msg)
{
	return why_set(why, len, code, "WWW-Authenticate \"%.200s\": %s", value, msg);
}

static int parse_challenge(const char *value, struct auth_challenge *out, char *why, size_t why_len)
{
	char msg[128];
	const char *p = ows(value);
	size_t n = token_len(p);
	if (n == 0)
		return bad_header(why, why_len, -EINVAL, value, "no authentication scheme");
	if (n == 5 && !strncasecmp(p, "basic", 5)) {
		out->scheme = AUTH_BASIC;
	} else if (n == 6 && !strncasecmp(p, "bearer", 6)) {
		out->scheme = AUTH_BEARER;
	} else {
		snprintf(msg, sizeof(msg), "unsupported scheme \"%.*s\" (only Basic and Bearer)",
		         n > 40 ? 40 : (int)n, p);
		return bad_header(why, why_len, -ENOTSUP, value, msg);
	}
	p += n;
	if (*p && *p != ' ' && *p != '\t')
		return bad_header(why, why_len, -EINVAL, value, "no space after the scheme");

	struct {
		const char *name;
		char *dst;
		size_t cap;
		int seen;
	} known[] = {
	    {"realm", out->realm, sizeof(out->realm), 0},
	    {"service", out->service, sizeof(out->service), 0},
	    {"scope", out->scope, sizeof(out->scope), 0},
	};
	for (;;) {
		int after_comma = 0;
		for (p = ows(p); *p == ','; p = ows(p + 1))
			after_comma = 1;
		if (!*p)
			break;
		const char *name = p;
		size_t nl = token_len(p);
		if (nl == 0) {
			snprintf(msg, sizeof(msg), "unexpected '%c' where a parameter should be",
			         *p >= ' ' && *p < 0x7f ? *p : '?');
			return bad_header(why, why_len, -EINVAL, value, msg);
		}
		p = ows(p + nl);
		if (*p != '=') {
			/* "Basic realm=x, Bearer realm=y": after a ',' a name
			 * without '=' begins the next challenge; we take the
			 * first. */
			if (after_comma)
				break;
			snprintf(msg, sizeof(msg), "no '=' after \"%.*s\"", nl > 40 ? 40 : (int)nl,
			         name);
			return bad_header(why, why_len, -EINVAL, value, msg);
		}
		p = ows(p + 1);
		char *dst = NULL;
		size_t cap = 0;
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
			if (strlen(known[i].name) != nl || strncasecmp(name, known[i].name, nl))
				continue;
			/* RFC 7235 §2.1: each name once; two realms would
			 * leave us guessing which the registry meant */
			if (known[i].seen++) {
				snprintf(msg, sizeof(msg), "%s is given twice", known[i].name);
				return bad_header(why, why_len, -EINVAL, value, msg);
			}
			dst = known[i].dst;
			cap = known[i].cap;
		}
		int e = read_value(&p, dst, cap);
		if (e == -E2BIG) {
			snprintf(msg, sizeof(msg), "%.*s is longer than %zu bytes", (int)nl, name,
			         cap - 1);
			return bad_header(why, why_len, -E2BIG, value, msg);
		}
		if (e) {
			snprintf(msg, sizeof(msg), "bad value for \"%.*s\"", nl > 40 ? 40 : (int)nl,
			         name);
			return bad_header(why, why_len, -EINVAL, value, msg);
		}
		p = ows(p);
		if (*p && *p != ',')
			return bad_header(why, why_len, -EINVAL, value,
			                  "no ',' between parameters");
	}
	if (out->scheme == AUTH_BEARER && !out->realm[0])
		return bad_header(why, why_len, -EINVAL, value, "a Bearer challenge needs a realm");
	return 0;
}

int auth_parse_challenge(const char *value, struct auth_challenge *out, char *why, size_t why_len)
{
	memset(out, 0, sizeof(*out));
	int e = parse_challenge(value, out, why, why_len);
	if (e)
		memset(out, 0, sizeof(*out)); /* no half-read challenge */
	return e;
}

/* ---- the token endpoint -------------------------------------------- */

struct sbuf {
	char *p;
	size_t len, n;
	int err;
};

static void put(struct sbuf *b, const char *s, size_t n)
{
	if (b->err || n >= b->len - b->n) {
		b->err = -ENAMETOOLONG;
		return;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
}

/* RFC 3986 §2.3: unreserved characters stay, every other byte is %XX. */
static void put_encoded(struct sbuf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			put(b, s, 1);
		} else {
			char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
			put(b, esc, 3);
		}
	}
}

/* http:// or https:// and a host; no spaces, controls or fragment, as we
 * append a query and hand the result to libcurl as it is. */
static int realm_ok(const char *u)
{
	size_t s = !strncasecmp(u, "https://", 8) ? 8 : !strncasecmp(u, "http://", 7) ? 7 : 0;
	if (!s || !u[s] || u[s] == '/' || u[s] == '?')
		return 0;
	for (; *u; u++)
		if ((unsigned char)*u <= ' ' || (unsigned char)*u >= 0x7f || *u == '#')
			return 0;
	return 1;
}

int auth_token_url(const struct auth_challenge *c, const char *fallback_scope, char *url,
                   size_t len)
{
	if (len == 0)
		return -ENAMETOOLONG;
	url[0] = 0;
	if (!realm_ok(c->realm))
		return -EINVAL;
	struct sbuf b = {url, len, 0, 0};
	size_t rl = strlen(c->realm);
	put(&b, c->realm, rl);
	const char *sep = "?";
	if (strchr(c->realm, '?'))
		sep = c->realm[rl - 1] == '?' || c->realm[rl - 1] == '&' ? "" : "&";
	const char *scope = c->scope[0] ? c->scope : fallback_scope;
	const char *names[] = {"service=", "scope="};
	const char *values[] = {c->service, scope};
	for (int i = 0; i < 2; i++) {
		if (!values[i] || !values[i][0])
			continue;
		put(&b, sep, strlen(sep));
		put(&b, names[i], strlen(names[i]));
		put_encoded(&b, values[i]);
		sep = "&";
	}
	if (b.err)
		url[0] = 0;
	return b.err;
}

int auth_parse_token_response(const char *body, size_t len, char *token, size_t token_len,
                              char *why, size_t why_len)
{
	if (token_len)
		token[0] = 0;
	if (len > AUTH_FILE_MAX)
		return why_set(why, why_len, -EINVAL, "token response is larger than %d bytes",
		               AUTH_FILE_MAX);
	json_error_t je;
	json_t *root = json_loadb(body, len, 0, &je);
	if (!root)
		return why_set(why, why_len, -EINVAL, "token response is not JSON: %s (line %d)",
		               je.text, je.line);
	int e = 0;
	json_t *v = json_object_get(root, "token"); /* NULL when root is no object */
	if (!json_is_string(v) || json_string_length(v) == 0)
		v = json_object_get(root, "access_token");
	size_t n = json_string_length(v); /* 0 when v is no string */
	const char *s = json_string_value(v);
	if (!json_is_object(root)) {
		e = why_set(why, why_len, -EINVAL, "token response is not a JSON object");
	} else if (n == 0) {
		e = why_set(why, why_len, -EINVAL,
		            "token response has no \"token\" or \"access_token\" string");
	} else if (n >= token_len) {
		e = why_set(why, why_len, -E2BIG, "token is %zu bytes, more than the %zu we take",
		            n, token_len ? token_len - 1 : 0);
	} else {
		/* It goes into an Authorization header: nothing that could
		 * end or split it. */
		for (size_t i = 0; i < n && !e; i++)
			if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
				e = why_set(why, why_len, -EINVAL,
				            "token has spaces or control characters");
		if (!e)
			memcpy(token, s, n + 1);
	}
	json_decref(root);
	return e;
}
