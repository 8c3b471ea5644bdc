/*
 * Registry authentication helpers, without any network code: what a
 * registry's 401 asks for (WWW-Authenticate), where to get a token and how
 * to read the answer, and the credentials Docker keeps in
 * ~/.docker/config.json.
 *
 * The flow (distribution's token auth): GET /v2/... answers 401 with
 *   WWW-Authenticate: Bearer realm="https://auth.docker.io/token",
 *                     service="registry.docker.io",scope="repository:library/python:pull"
 * auth_parse_challenge() reads that, auth_token_url() builds
 *   https://auth.docker.io/token?service=registry.docker.io&scope=repository%3Alibrary...
 * which is fetched (with Basic credentials from auth_config_get() when there
 * are any), and auth_parse_token_response() takes the token for
 * "Authorization: Bearer <token>".
 *
 * Everything here reads input from outside (a registry, a user's file):
 * every length is bounded and errors say what was wrong in @why. All
 * functions return 0 or a negative errno, keep no state and are safe to
 * call from any thread, except auth_config_set() concurrently on one file
 * (read-modify-write: the last rename wins), and auth_config_path() against
 * setenv().
 */
#ifndef MSB_IMAGE_AUTH_H
#define MSB_IMAGE_AUTH_H

#include <stddef.h>

/* Longest user name and password we read or write. Passwords are often
 * tokens (a GCP service-account key is ~2.3 KiB of JSON). */
#define AUTH_USER_MAX 256
#define AUTH_PASS_MAX 8192

/* Largest config.json we read, and largest token response we parse. */
#define AUTH_FILE_MAX (1 << 20)

enum auth_scheme { AUTH_NONE, AUTH_BASIC, AUTH_BEARER };

struct auth_challenge {
	enum auth_scheme scheme;
	char realm[1024];
	char service[256];
	char scope[512]; /* "" when the registry named none */
};

/*
 * Parses one WWW-Authenticate header value (RFC 7235 §4.1) such as
 *   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="..."
 *   Basic realm="Registry Realm"
 * The scheme and parameter names are case-insensitive; values are quoted
 * strings (with \" escapes) or tokens; spaces are allowed around '=' and
 * ','. Parameters other than realm, service and scope are ignored. When the
 * value holds several challenges, the first is taken.
 *
 * Returns 0 and fills @out (unset fields are ""), or with @why saying what:
 * -ENOTSUP for a scheme other than Basic and Bearer; -EINVAL for a
 * malformed value, a parameter given twice or a Bearer challenge without a
 * realm; -E2BIG when realm, service or scope does not fit in @out.
 */
int auth_parse_challenge(const char *value, struct auth_challenge *out, char *why, size_t why_len);

/*
 * The token endpoint for a Bearer challenge: realm + "?service=...&scope=..."
 * with each value percent-encoded (RFC 3986 unreserved characters kept).
 * The scope is the challenge's or, when it has none, @fallback_scope
 * ("repository:library/python:pull"; may be NULL). Empty parameters are
 * left out. When the realm already has a query, they are added with '&'.
 *
 * Returns 0, -EINVAL when the realm is not an http:// or https:// URL (or
 * has spaces, control characters or a '#' fragment), -ENAMETOOLONG when
 * @url (@len including the NUL) is too small.
 */
int auth_token_url(const struct auth_challenge *c, const char *fallback_scope, char *url,
                   size_t len);

/*
 * Takes the token from a token endpoint's JSON answer (@len bytes at @body,
 * at most AUTH_FILE_MAX): the object's "token", or "access_token" when
 * "token" is not a non-empty string. Returns 0 and the NUL-terminated token
 * in @token; -EINVAL with @why for anything else (not JSON, not an object,
 * no token, a token with spaces or control characters, which could not go
 * in a header); -E2BIG when it does not fit in @token_len.
 */
int auth_parse_token_response(const char *body, size_t len, char *token, size_t token_len,
                              char *why, size_t why_len);

/*
 * Docker's credential file: $DOCKER_CONFIG/config.json when DOCKER_CONFIG is
 * set (and not empty), else $HOME/.docker/config.json. Returns 0, -ENOENT
 * when neither variable is set, -ENAMETOOLONG when @buf is too small.
 */
int auth_config_path(char *buf, size_t len);

/*
 * Looks up the credentials for @registry (host[:port], as image_ref's
 * registry field) in the Docker config file at @path.
 *
 * "auths" keys may be a bare host ("ghcr.io"), host:port, or a URL, which
 * matches on its host[:port] ("https://index.docker.io/v1/"). Host names
 * compare case-insensitively. Docker Hub has several names:
 * "registry-1.docker.io", "docker.io" and "index.docker.io" all match keys
 * "https://index.docker.io/v1/", "index.docker.io", "docker.io" and
 * "registry-1.docker.io". The key Docker itself writes is preferred
 * ("https://index.docker.io/v1/" for Hub, @registry itself otherwise),
 * then the first other match in file order.
 *
 * An entry holds "auth": base64("user:password"), or "username" and
 * "password". An entry with neither (Docker writes {} when a credential
 * store holds the secret) counts as absent.
 *
 * Returns 0 with @user and @pass filled (NUL-terminated); -ENOENT when
 * there is no file, no entry, or an empty one (callers then go on
 * anonymously; @why says which); -EINVAL with @why (naming the file) for a
 * file that is not JSON or an entry that is not well formed; -E2BIG when
 * the user name or password does not fit; -ENOTSUP with @why "credential
 * helpers are not supported; ..." when "credHelpers" names a helper for
 * @registry, or "credsStore" is set and the file has an entry for it (the
 * secret then lives in the helper, not the file), and with @why when the
 * entry holds an "identitytoken" (OAuth, not supported); another negative
 * errno when the file cannot be read.
 */
int auth_config_get(const char *path, const char *registry, char *user, size_t user_len, char *pass,
                    size_t pass_len, char *why, size_t why_len);

/*
 * Stores (@user and @pass set) or removes (@user NULL; @pass is then
 * ignored) the credentials for @registry in the Docker config file at
 * @path, keeping every other key of the file as it was. Docker Hub's entry
 * is written under "https://index.docker.io/v1/", as Docker does; others
 * under @registry. Removing deletes every key that matches @registry (as
 * auth_config_get() matches them), so no older spelling stays behind.
 *
 * The directory (0700) and file (0600) are created when missing. The new
 * file is written under a temporary name in the same directory, fsynced,
 * renamed over the old one (the target, when @path is a symbolic link) and
 * the directory fsynced, so a crash leaves the old file or the new one.
 *
 * Returns 0; -ENOENT when removing an entry that does not exist; -EINVAL
 * with @why for an empty user name or one with ':', a password with
 * control characters or too long, or a file that is not well formed;
 * -ENOTSUP with @why when a credential helper or store is configured for
 * @registry (the file would not be where Docker looks); another negative
 * errno with @why when the file cannot be read or written.
 */
int auth_config_set(const char *path, const char *registry, const char *user, const char *pass,
                    char *why, size_t why_len);

#endif
