/* Docker's credentials in ~/.docker/config.json (see auth.h). */
#include "auth.h"
#include "why.h"
#include "base64.h"
#include "fsutil.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The key Docker writes Docker Hub's credentials under. */
#define HUB_KEY "https://index.docker.io/v1/"

int auth_config_path(char *buf, size_t len)
{
	const char *d = getenv("DOCKER_CONFIG");
	if (d && *d)
		return fs_path(buf, len, "%s/config.json", d);
	const char *h = getenv("HOME");
	if (h && *h)
		return fs_path(buf, len, "%s/.docker/config.json", h);
	return -ENOENT;
}

/* The host[:port] a key or registry names, without scheme and path:
 * "https://index.docker.io/v1/" -> "index.docker.io". */
static const char *host_of(const char *s, size_t *n)
{
	const char *sep = strstr(s, "://");
	const char *h = sep ? sep + 3 : s;
	*n = strcspn(h, "/");
	return h;
}

static int is_hub(const char *h, size_t n)
{
	static const char *const names[] = {"docker.io", "index.docker.io", "registry-1.docker.io"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == n && !strncasecmp(h, names[i], n))
			return 1;
	return 0;
}

static int key_matches(const char *key, const char *registry)
{
	size_t kn, rn;
	const char *k = host_of(key, &kn), *r = host_of(registry, &rn);
	if (kn == 0 || rn == 0)
		return 0;
	if (kn == rn && !strncasecmp(k, r, kn))
		return 1;
	return is_hub(k, kn) && is_hub(r, rn);
}

/* Where Docker writes @registry's entry (and where we look first). */
static int canonical_key(const char *registry, char *buf, size_t len)
{
	size_t n;
	const char *h = host_of(registry, &n);
	if (is_hub(h, n))
		return fs_path(buf, len, "%s", HUB_KEY);
	return fs_path(buf, len, "%.*s", (int)n, h);
}

static int registry_ok(const char *registry, char *why, size_t why_len)
{
	size_t n;
	host_of(registry, &n);
	int ok = n > 0 && n < 256;
	for (const char *p = registry; ok && *p; p++)
		ok = (unsigned char)*p > ' ' && (unsigned char)*p < 0x7f;
	return ok ? 0 : why_set(why, why_len, -EINVAL, "bad registry name \"%.100s\"", registry);
}

/* Reads and parses the file at @path into *root (an object). -ENOENT when
 * there is no file; an empty one is an empty object, as for Docker. */
static int load(const char *path, json_t **root, char *why, size_t why_len)
{
	*root = NULL;
	char *buf = malloc(AUTH_FILE_MAX + 2);
	if (!buf)
		return -ENOMEM;
	int n = fs_read_small(path, buf, AUTH_FILE_MAX + 2);
	int e = 0;
	json_error_t je;
	if (n == -ENOENT)
		e = why_set(why, why_len, -ENOENT, "%s does not exist", path);
	else if (n < 0)
		e = why_set(why, why_len, n, "cannot read %s: %s", path, strerror(-n));
	else if (n > AUTH_FILE_MAX)
		e = why_set(why, why_len, -EINVAL, "%s is larger than %d bytes", path,
		            AUTH_FILE_MAX);
	else if (buf[strspn(buf, " \t\r\n")] == 0 && (size_t)n == strlen(buf))
		*root = json_object();
	else if (!(*root = json_loadb(buf, (size_t)n, 0, &je)))
		e = why_set(why, why_len, -EINVAL, "%s is not valid JSON: %s (line %d)", path,
		            je.text, je.line);
	if (n > 0)
		explicit_bzero(buf, (size_t)n); /* it holds secrets */
	free(buf);
	if (!e && !*root)
		e = -ENOMEM;
	if (!e && !json_is_object(*root))
		e = why_set(why, why_len, -EINVAL, "%s is not a JSON object", path);
	if (e) {
		json_decref(*root);
		*root = NULL;
	}
	return e;
}

/* The first key of @auths (in file order) that names @registry, or NULL. */
static const char *first_match(json_t *auths, const char *registry)
{
	for (void *it = json_object_iter(auths); it; it = json_object_iter_next(auths, it))
		if (key_matches(json_object_iter_key(it), registry))
			return json_object_iter_key(it);
	return NULL;
}

/* -ENOTSUP when Docker would look for @registry's secret in a credential
 * helper: one named for it in "credHelpers", or the "credsStore" when
 * @store_counts (the file has an entry for it, or we are about to write
 * one). */
static int helper_check(json_t *root, const char *path, const char *registry, int store_counts,
                        char *why, size_t why_len)
{
	json_t *helpers = json_object_get(root, "credHelpers");
	const char *k = json_is_object(helpers) ? first_match(helpers, registry) : NULL;
	if (k) {
		json_t *v = json_object_get(helpers, k);
		return why_set(
		    why, why_len, -ENOTSUP,
		    "credential helpers are not supported; \"credHelpers\" in %s sends %s "
		    "to docker-credential-%s: remove that entry to keep credentials in "
		    "the file",
		    path, registry, json_is_string(v) ? json_string_value(v) : "?");
	}
	json_t *store = json_object_get(root, "credsStore");
	if (store_counts && json_is_string(store) && json_string_length(store))
		return why_set(why, why_len, -ENOTSUP,
		               "credential helpers are not supported; %s keeps the credentials for "
		               "%s in \"credsStore\" \"%s\"",
		               path, registry, json_string_value(store));
	return 0;
}

/* @registry's entry in @auths: under Docker's own key, else the first
 * match in file order; NULL when there is none. */
static json_t *find_entry(json_t *auths, const char *registry, const char **key)
{
	char canon[300];
	void *it = NULL;
	if (!canonical_key(registry, canon, sizeof(canon)))
		it = json_object_iter_at(auths, canon);
	*key = it ? json_object_iter_key(it) : first_match(auths, registry);
	return *key ? json_object_get(auths, *key) : NULL;
}

static int copy_creds(const char *u, size_t un, const char *p, size_t pn, char *user,
                      size_t user_len, char *pass, size_t pass_len, const char *path,
                      const char *key, char *why, size_t why_len)
{
	if (un == 0)
		return why_set(why, why_len, -EINVAL, "%s: \"%s\" has an empty user name", path,
		               key);
	if (memchr(u, 0, un) || memchr(p, 0, pn))
		return why_set(why, why_len, -EINVAL, "%s: \"%s\" has a NUL byte", path, key);
	if (un > AUTH_USER_MAX || un >= user_len)
		return why_set(why, why_len, -E2BIG, "%s: the user name of \"%s\" is too long",
		               path, key);
	if (pn > AUTH_PASS_MAX || pn >= pass_len)
		return why_set(why, why_len, -E2BIG, "%s: the password of \"%s\" is too long", path,
		               key);
	memcpy(user, u, un);
	user[un] = 0;
	memcpy(pass, p, pn);
	pass[pn] = 0;
	return 0;
}

static int entry_creds(json_t *entry, const char *path, const char *key, char *user,
                       size_t user_len, char *pass, size_t pass_len, char *why, size_t why_len)
{
	if (!json_is_object(entry))
		return why_set(why, why_len, -EINVAL, "%s: \"auths\" \"%s\" is not an object", path,
		               key);
	json_t *id = json_object_get(entry, "identitytoken");
	if (json_is_string(id) && json_string_length(id))
		return why_set(why, why_len, -ENOTSUP,
		               "%s: \"%s\" holds an identity token, which msb does not support; "
		               "log in with a password or access token",
		               path, key);
	json_t *auth = json_object_get(entry, "auth");
	if (auth && !json_is_string(auth))
		return why_set(why, why_len, -EINVAL, "%s: \"auth\" of \"%s\" is not a string",
		               path, key);
	size_t n = json_string_length(auth);
	if (n) {
		if (n > BASE64_ENCODED_LEN(AUTH_USER_MAX + 1 + AUTH_PASS_MAX))
			return why_set(why, why_len, -E2BIG, "%s: \"auth\" of \"%s\" is too long",
			               path, key);
		uint8_t *buf = malloc(n);
		if (!buf)
			return -ENOMEM;
		ssize_t d = base64_decode(json_string_value(auth), n, buf, n);
		const uint8_t *colon = d > 0 ? memchr(buf, ':', (size_t)d) : NULL;
		int e;
		if (d < 0)
			e = why_set(why, why_len, -EINVAL, "%s: \"auth\" of \"%s\" is not base64",
			            path, key);
		else if (!colon)
			e = why_set(why, why_len, -EINVAL,
			            "%s: \"auth\" of \"%s\" is not base64(\"user:password\")", path,
			            key);
		else
			e = copy_creds((const char *)buf, (size_t)(colon - buf),
			               (const char *)colon + 1, (size_t)(buf + d - colon - 1), user,
			               user_len, pass, pass_len, path, key, why, why_len);
		explicit_bzero(buf, n);
		free(buf);
		return e;
	}
	json_t *u = json_object_get(entry, "username"), *p = json_object_get(entry, "password");
	if (!u && !p)
		return why_set(why, why_len, -ENOENT, "%s: \"%s\" holds no credentials", path, key);
	if (!json_is_string(u) || !json_is_string(p))
		return why_set(why, why_len, -EINVAL,
		               "%s: \"username\" and \"password\" of \"%s\" must both be strings",
		               path, key);
	return copy_creds(json_string_value(u), json_string_length(u), json_string_value(p),
	                  json_string_length(p), user, user_len, pass, pass_len, path, key, why,
	                  why_len);
}

int auth_config_get(const char *path, const char *registry, char *user, size_t user_len, char *pass,
                    size_t pass_len, char *why, size_t why_len)
{
	if (user_len)
		user[0] = 0;
	if (pass_len)
		pass[0] = 0;
	if (why_len)
		why[0] = 0;
	int e = registry_ok(registry, why, why_len);
	json_t *root = NULL;
	if (!e)
		e = load(path, &root, why, why_len);
	if (e)
		return e;
	json_t *auths = json_object_get(root, "auths"), *entry = NULL;
	const char *key = NULL;
	if (auths && !json_is_object(auths))
		e = why_set(why, why_len, -EINVAL, "%s: \"auths\" is not an object", path);
	if (!e && auths)
		entry = find_entry(auths, registry, &key);
	if (!e)
		e = helper_check(root, path, registry, entry != NULL, why, why_len);
	if (!e && !entry)
		e = why_set(why, why_len, -ENOENT, "%s has no credentials for %s", path, registry);
	if (!e)
		e = entry_creds(entry, path, key, user, user_len, pass, pass_len, why, why_len);
	json_decref(root);
	if (e && user_len)
		user[0] = 0;
	if (e && pass_len)
		explicit_bzero(pass, pass_len);
	return e;
}

static int text_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < ' ' || (unsigned char)*s == 0x7f)
			return 0;
	return 1;
}

/* The new entry for @auths: {"auth": base64("user:pass")}, as Docker
 * writes it. */
static int put_entry(json_t *auths, const char *registry, const char *user, const char *pass)
{
	char key[300];
	int e = canonical_key(registry, key, sizeof(key));
	if (e)
		return e;
	size_t un = strlen(user), pn = strlen(pass);
	size_t cap = BASE64_ENCODED_LEN(un + 1 + pn) + 1;
	char *plain = malloc(un + 1 + pn + 1), *b64 = malloc(cap);
	json_t *entry = NULL;
	if (plain && b64) {
		snprintf(plain, un + 1 + pn + 1, "%s:%s", user, pass);
		if (base64_encode(plain, un + 1 + pn, b64, cap) >= 0)
			entry = json_pack("{s:s}", "auth", b64);
		explicit_bzero(plain, un + 1 + pn + 1);
		explicit_bzero(b64, cap);
	}
	free(plain);
	free(b64);
	if (!entry || json_object_set_new(auths, key, entry))
		return -ENOMEM;
	return 0;
}

/* Docker's layout: one tab per level. jansson indents with spaces only,
 * and a JSON text has no raw newline inside a string, so the spaces that
 * start a line are all indentation. */
static void tabify(char *s)
{
	for (char *p = s; *p; p++)
		if (*p == '\n')
			for (p++; *p == ' '; p++)
				*p = '\t';
}

/* Writes @root to @path as tmp + fsync + rename + fsync of the directory. */
static int save(json_t *root, const char *path, char *why, size_t why_len)
{
	/* Through a symbolic link (dotfiles) to its target, as Docker does,
	 * rather than replacing the link with a file. */
	char *real = realpath(path, NULL);
	const char *dest = real ? real : path;
	char dir[4096];
	int e = fs_path(dir, sizeof(dir), "%s", dest);
	char *slash = strrchr(dir, '/');
	if (!e && slash && slash != dir) {
		*slash = 0;
		e = fs_mkdir_p(dir);
	}
	char *text = e ? NULL : json_dumps(root, JSON_INDENT(1));
	if (!e && !text)
		e = -ENOMEM;
	if (!e) {
		tabify(text);
		size_t n = strlen(text);
		e = fs_write_atomic(dest, text, n);
		if (!e)
			e = fs_fsync_parent(dest);
		explicit_bzero(text, n);
	}
	if (e) {
		char note[128];
		fs_full_note(dest, note, sizeof(note));
		why_set(why, why_len, e, "cannot write %s: %s%s", dest, strerror(-e), note);
	}
	free(text);
	free(real);
	return e;
}

int auth_config_set(const char *path, const char *registry, const char *user, const char *pass,
                    char *why, size_t why_len)
{
	if (why_len)
		why[0] = 0;
	int e = registry_ok(registry, why, why_len);
	if (e)
		return e;
	if (user) {
		if (!pass)
			return why_set(why, why_len, -EINVAL, "no password given");
		size_t un = strlen(user), pn = strlen(pass);
		/* Basic credentials are "user:password": the user has no ':' */
		if (un == 0 || strchr(user, ':') || !text_ok(user))
			return why_set(why, why_len, -EINVAL,
			               "the user name must be non-empty, without ':' or control "
			               "characters");
		if (un > AUTH_USER_MAX)
			return why_set(why, why_len, -EINVAL,
			               "the user name is longer than %d bytes", AUTH_USER_MAX);
		if (pn > AUTH_PASS_MAX || !text_ok(pass))
			return why_set(why, why_len, -EINVAL,
			               "the password is longer than %d bytes or has control "
			               "characters",
			               AUTH_PASS_MAX);
	}
	json_t *root;
	e = load(path, &root, why, why_len);
	if (e == -ENOENT && user) {
		root = json_object();
		e = root ? 0 : -ENOMEM;
	}
	if (e == -ENOENT)
		return why_set(why, why_len, -ENOENT, "%s has no credentials for %s", path,
		               registry);
	if (e)
		return e;
	json_t *auths = json_object_get(root, "auths");
	if (auths && !json_is_object(auths))
		e = why_set(why, why_len, -EINVAL, "%s: \"auths\" is not an object", path);
	if (!e)
		e = helper_check(root, path, registry, 1, why, why_len);
	if (!e && user) {
		if (!auths &&
		    (!(auths = json_object()) || json_object_set_new(root, "auths", auths)))
			e = -ENOMEM;
		if (!e)
			e = put_entry(auths, registry, user, pass);
	} else if (!e) {
		/* every spelling, so no older key answers for it later */
		int removed = 0;
		for (const char *k; auths && (k = first_match(auths, registry)); removed++)
			json_object_del(auths, k);
		if (!removed)
			e = why_set(why, why_len, -ENOENT, "%s has no credentials for %s", path,
			            registry);
	}
	if (!e)
		e = save(root, path, why, why_len);
	json_decref(root);
	return e;
}
