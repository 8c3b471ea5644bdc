#include "ref.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define HUB_DOMAIN   "docker.io"
#define HUB_REGISTRY "registry-1.docker.io"

static int fail(char *why, size_t len, const char *msg, const char *s)
{
	snprintf(why, len, "invalid image reference \"%.300s\": %s", s, msg);
	return -EINVAL;
}

static int lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int upper(char c)
{
	return c >= 'A' && c <= 'Z';
}

/* A path component: [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)* */
static int component_ok(const char *p, size_t n)
{
	if (n == 0 || !lower_alnum(p[0]) || !lower_alnum(p[n - 1]))
		return 0;
	for (size_t i = 0; i < n;) {
		if (lower_alnum(p[i])) {
			i++;
			continue;
		}
		size_t run = 0;
		while (i + run < n && !lower_alnum(p[i + run]))
			run++;
		int dashes = 1, ok = 0;
		for (size_t k = 0; k < run; k++)
			dashes &= p[i + k] == '-';
		if (dashes)
			ok = 1;
		else if (run == 1 && (p[i] == '.' || p[i] == '_'))
			ok = 1;
		else if (run == 2 && p[i] == '_' && p[i + 1] == '_')
			ok = 1;
		if (!ok)
			return 0;
		i += run;
	}
	return 1;
}

/* A domain: host labels of letters, digits and '-' separated by '.', an
 * optional ":port"; or a bracketed IPv6 address with an optional port. */
static int domain_ok(const char *p, size_t n)
{
	size_t host = n;
	const char *colon = NULL;
	if (n && p[0] == '[') {
		const char *close = memchr(p, ']', n);
		if (!close || close == p + 1)
			return 0;
		for (const char *c = p + 1; c < close; c++)
			if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f') ||
			      (*c >= 'A' && *c <= 'F') || *c == ':'))
				return 0;
		host = (size_t)(close - p) + 1;
		if (host < n && p[host] != ':')
			return 0;
		colon = host < n ? p + host : NULL;
	} else {
		colon = memchr(p, ':', n);
		host = colon ? (size_t)(colon - p) : n;
		/* labels of letters, digits and '-', not starting or ending with
		 * '-', separated by single dots */
		for (size_t i = 0; i < host;) {
			size_t l = 0;
			while (i + l < host && p[i + l] != '.')
				l++;
			if (l == 0 || p[i] == '-' || p[i + l - 1] == '-')
				return 0;
			for (size_t k = 0; k < l; k++)
				if (!(lower_alnum(p[i + k]) || upper(p[i + k]) || p[i + k] == '-'))
					return 0;
			i += l;
			if (i < host && ++i == host)
				return 0; /* a trailing dot */
		}
		if (host == 0)
			return 0;
	}
	if (colon) {
		size_t digits = n - (size_t)(colon - p) - 1;
		if (digits == 0 || digits > 5)
			return 0;
		for (size_t i = 1; i <= digits; i++)
			if (colon[i] < '0' || colon[i] > '9')
				return 0;
	}
	return 1;
}

/* [A-Za-z0-9_][A-Za-z0-9_.-]{0,127} */
static int tag_ok(const char *p, size_t n)
{
	if (n == 0 || n > IMAGE_TAG_MAX || p[0] == '.' || p[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(lower_alnum(p[i]) || upper(p[i]) || p[i] == '_' || p[i] == '.' ||
		      p[i] == '-'))
			return 0;
	return 1;
}

static int hex_ok(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return 0;
	return 1;
}

/* sha256:<64 lowercase hex> or sha512:<128>; other algorithms are refused,
 * as we could not check them. */
static int digest_ok(const char *p, size_t n)
{
	if (n == 7 + 64 && !strncmp(p, "sha256:", 7))
		return hex_ok(p + 7, 64);
	if (n == 7 + 128 && !strncmp(p, "sha512:", 7))
		return hex_ok(p + 7, 128);
	return 0;
}

int image_ref_parse(const char *s, struct image_ref *out, char *why, size_t why_len)
{
	memset(out, 0, sizeof(*out));
	size_t len = strlen(s);
	if (len == 0)
		return fail(why, why_len, "it is empty", s);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return fail(why, why_len, "it has spaces or control characters", s);

	const char *at = strchr(s, '@');
	size_t name_len = at ? (size_t)(at - s) : len;
	if (at) {
		size_t dl = len - name_len - 1;
		if (!digest_ok(at + 1, dl))
			return fail(why, why_len,
			            "the digest must be sha256: and 64 lowercase hex digits (or "
			            "sha512: and 128)",
			            s);
		memcpy(out->digest, at + 1, dl);
	}
	/* a tag is after the last ':' that follows the last '/' */
	const char *slash = NULL;
	for (size_t i = 0; i < name_len; i++)
		if (s[i] == '/')
			slash = s + i;
	const char *colon = NULL;
	for (const char *c = slash ? slash : s; c < s + name_len; c++)
		if (*c == ':')
			colon = c;
	size_t path_end = name_len;
	if (colon) {
		size_t tl = name_len - (size_t)(colon - s) - 1;
		if (!tag_ok(colon + 1, tl))
			return fail(why, why_len,
			            "a tag is letters, digits, '_', '.' and '-', at most 128, not "
			            "starting with '.' or '-'",
			            s);
		memcpy(out->tag, colon + 1, tl);
		path_end = (size_t)(colon - s);
	}
	if (path_end == 0)
		return fail(why, why_len, "it has no name", s);
	if (path_end > IMAGE_NAME_MAX)
		return fail(why, why_len, "the name is longer than 255 characters", s);

	/* domain: the first component, if it looks like a host */
	const char *first_slash = memchr(s, '/', path_end);
	const char *path = s;
	if (first_slash) {
		size_t fl = (size_t)(first_slash - s);
		int is_domain = memchr(s, '.', fl) || memchr(s, ':', fl) ||
		                (fl == 9 && !strncmp(s, "localhost", 9));
		if (!is_domain)
			for (size_t i = 0; i < fl && !is_domain; i++)
				is_domain = upper(s[i]); /* only a host may have capitals */
		if (is_domain) {
			if (!domain_ok(s, fl))
				return fail(why, why_len, "the registry is not a valid host[:port]",
				            s);
			memcpy(out->domain, s, fl);
			path = first_slash + 1;
		}
	}
	size_t plen = path_end - (size_t)(path - s);
	if (plen == 0)
		return fail(why, why_len, "it has no repository after the registry", s);
	for (size_t i = 0; i < plen; i++)
		if (upper(path[i]))
			return fail(why, why_len, "repository name must be lowercase", s);
	for (const char *c = path; c < path + plen;) {
		const char *e = memchr(c, '/', (size_t)(path + plen - c));
		size_t cl = e ? (size_t)(e - c) : (size_t)(path + plen - c);
		if (!component_ok(c, cl))
			return fail(why, why_len,
			            "each part of the name is lowercase letters and digits, "
			            "separated by '.', '_', '__' or dashes",
			            s);
		c += cl + (e ? 1 : 0);
		if (e && c == path + plen)
			return fail(why, why_len, "the name ends with '/'", s);
	}

	if (!out->domain[0] || !strcmp(out->domain, "index.docker.io") ||
	    !strcmp(out->domain, HUB_DOMAIN))
		snprintf(out->domain, sizeof(out->domain), "%s", HUB_DOMAIN);
	int hub = !strcmp(out->domain, HUB_DOMAIN);
	snprintf(out->registry, sizeof(out->registry), "%s", hub ? HUB_REGISTRY : out->domain);
	int one = memchr(path, '/', plen) == NULL;
	if (snprintf(out->repository, sizeof(out->repository), "%s%.*s",
	             hub && one ? "library/" : "", (int)plen, path) >= (int)sizeof(out->repository))
		return fail(why, why_len, "the name is longer than 255 characters", s);
	if (!out->tag[0] && !out->digest[0])
		snprintf(out->tag, sizeof(out->tag), "latest");
	return 0;
}

int image_ref_format(const struct image_ref *r, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s%s%s%s%s", r->domain, r->repository, r->tag[0] ? ":" : "",
	                 r->tag, r->digest[0] ? "@" : "", r->digest);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int image_ref_is_loopback(const struct image_ref *r)
{
	const char *h = r->registry;
	size_t hl = strcspn(h, ":");
	if (h[0] == '[')
		return !strncmp(h, "[::1]", 5);
	if (hl == 9 && !strncmp(h, "localhost", 9))
		return 1;
	return hl >= 4 && !strncmp(h, "127.", 4);
}
