/* Registry authentication: WWW-Authenticate challenges as registries send
 * them (and as they should not), token URLs, token responses, and Docker's
 * config.json read and written in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/image/auth.h"
#include "lib/util/fsutil.h"

/* ---- challenges ------------------------------------------------------ */

static void parses(const char *value, enum auth_scheme scheme, const char *realm,
                   const char *service, const char *scope)
{
	struct auth_challenge c;
	char why[400] = "";
	int e = auth_parse_challenge(value, &c, why, sizeof(why));
	if (e)
		fail_msg("%s: %d %s", value, e, why);
	assert_int_equal(c.scheme, scheme);
	assert_string_equal(c.realm, realm);
	assert_string_equal(c.service, service);
	assert_string_equal(c.scope, scope);
}

static void refused(const char *value, int code, const char *says)
{
	struct auth_challenge c;
	char why[400] = "";
	int e = auth_parse_challenge(value, &c, why, sizeof(why));
	if (e != code)
		fail_msg("\"%s\": got %d, want %d (%s)", value, e, code, why);
	if (!strstr(why, says))
		fail_msg("\"%s\": \"%s\" does not say \"%s\"", value, why, says);
	/* nothing half-read is left for a careless caller */
	assert_int_equal(c.scheme, AUTH_NONE);
	assert_string_equal(c.realm, "");
}

static void test_registry_challenges(void **state)
{
	(void)state;
	parses("Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
	       "scope=\"repository:library/python:pull\"",
	       AUTH_BEARER, "https://auth.docker.io/token", "registry.docker.io",
	       "repository:library/python:pull");
	parses("Bearer realm=\"https://ghcr.io/token\",service=\"ghcr.io\","
	       "scope=\"repository:owner/repo:pull\"",
	       AUTH_BEARER, "https://ghcr.io/token", "ghcr.io", "repository:owner/repo:pull");
	/* quay-like: no scope */
	parses("Bearer realm=\"https://quay.io/v2/auth\",service=\"quay.io\"", AUTH_BEARER,
	       "https://quay.io/v2/auth", "quay.io", "");
	/* after a refused token: error parameters are ignored */
	parses("Bearer realm=\"https://r/t\",service=\"s\",scope=\"repository:a/b:pull\","
	       "error=\"insufficient_scope\",error_description=\"no, \\\"really\\\"\"",
	       AUTH_BEARER, "https://r/t", "s", "repository:a/b:pull");
	parses("Basic realm=\"Registry Realm\"", AUTH_BASIC, "Registry Realm", "", "");
	parses("Basic", AUTH_BASIC, "", "", "");
	parses("basic realm=x", AUTH_BASIC, "x", "", "");
}

static void test_spacing_case_and_escapes(void **state)
{
	(void)state;
	parses("  bEaReR   REALM = \"https://x/t\" ,  Service=svc ,sCoPe = \"a b\"  ", AUTH_BEARER,
	       "https://x/t", "svc", "a b");
	parses("Bearer\trealm=\"https://x/t\"\t,\tservice=\"s\"", AUTH_BEARER, "https://x/t", "s",
	       "");
	parses("Bearer realm=\"https://x/t\",service=\"a\\\"b\\\\c\\d\"", AUTH_BEARER,
	       "https://x/t", "a\"b\\cd", "");
	/* empty list elements, a trailing comma */
	parses("Bearer realm=\"https://x\", , service=\"s\",", AUTH_BEARER, "https://x", "s", "");
	/* several challenges: the first is taken */
	parses("Bearer realm=\"https://x\",service=\"s\", Basic realm=\"r\"", AUTH_BEARER,
	       "https://x", "s", "");
	parses("Basic realm=\"r\", Bearer realm=\"https://x\"", AUTH_BASIC, "r", "", "");
	/* token values may hold any tchar */
	parses("Bearer realm=\"https://x\",service=a.b-c_d~e!#$%&'*+^`|", AUTH_BEARER, "https://x",
	       "a.b-c_d~e!#$%&'*+^`|", "");
	parses("Bearer realm=\"https://x\",service=\"\"", AUTH_BEARER, "https://x", "", "");
}

static void test_bad_challenges(void **state)
{
	(void)state;
	refused("Bearer service=\"registry.docker.io\"", -EINVAL, "realm");
	refused("Bearer", -EINVAL, "realm");
	refused("Negotiate abc", -ENOTSUP, "Negotiate");
	refused("Digest realm=\"x\", nonce=\"y\"", -ENOTSUP, "Digest");
	refused("BearerX realm=\"x\"", -ENOTSUP, "BearerX");
	refused("", -EINVAL, "scheme");
	refused("   ", -EINVAL, "scheme");
	refused("\"Bearer\"", -EINVAL, "scheme");
	refused("Bearer,realm=\"x\"", -EINVAL, "space");
	refused("Bearer realm", -EINVAL, "'='");
	refused("Bearer realm=", -EINVAL, "realm");
	refused("Bearer realm=,service=x", -EINVAL, "realm");
	refused("Bearer realm=\"unterminated", -EINVAL, "realm");
	refused("Bearer realm=\"ends in a backslash\\", -EINVAL, "realm");
	refused("Bearer realm=\"a\nb\"", -EINVAL, "realm");
	refused("Bearer realm=\"a\rb\"", -EINVAL, "realm");
	refused("Bearer realm=\"x\" service=\"y\"", -EINVAL, "','");
	refused("Bearer realm=https://x/t", -EINVAL, "','");
	refused("Bearer =x", -EINVAL, "'='");
	refused("Bearer realm=\"x\",=y", -EINVAL, "'='");
	refused("Bearer realm=\"x\";service=\"y\"", -EINVAL, "','");
	refused("Bearer realm=\"a\",REALM=\"b\"", -EINVAL, "twice");
	refused("Basic dXNlcjpwYXNz", -EINVAL, "'='");
	refused("Bearer \x01", -EINVAL, "unexpected");
}

static void test_overlong_values(void **state)
{
	(void)state;
	struct auth_challenge c;
	char why[400] = "";
	char v[3000];
	/* 1023 bytes fit realm[1024], 1024 do not */
	snprintf(v, sizeof(v), "Bearer realm=\"https://%01015d\"", 0);
	assert_int_equal(auth_parse_challenge(v, &c, why, sizeof(why)), 0);
	assert_int_equal(strlen(c.realm), 1023);
	snprintf(v, sizeof(v), "Bearer realm=\"https://%01016d\"", 0);
	assert_int_equal(auth_parse_challenge(v, &c, why, sizeof(why)), -E2BIG);
	assert_non_null(strstr(why, "realm is longer than 1023"));
	snprintf(v, sizeof(v), "Bearer realm=\"https://x\",service=%0256d", 0);
	assert_int_equal(auth_parse_challenge(v, &c, why, sizeof(why)), -E2BIG);
	assert_non_null(strstr(why, "service"));
	snprintf(v, sizeof(v), "Bearer realm=\"https://x\",scope=\"%0512d\"", 0);
	assert_int_equal(auth_parse_challenge(v, &c, why, sizeof(why)), -E2BIG);
	/* an unknown parameter may be any length: it is not kept */
	snprintf(v, sizeof(v), "Bearer realm=\"https://x\",error_description=\"%02900d\"", 0);
	assert_int_equal(auth_parse_challenge(v, &c, why, sizeof(why)), 0);
}

/* ---- token URL ------------------------------------------------------- */

static void token_url(const char *realm, const char *service, const char *scope,
                      const char *fallback, const char *want)
{
	struct auth_challenge c = {.scheme = AUTH_BEARER};
	snprintf(c.realm, sizeof(c.realm), "%s", realm);
	snprintf(c.service, sizeof(c.service), "%s", service);
	snprintf(c.scope, sizeof(c.scope), "%s", scope);
	char url[600];
	assert_int_equal(auth_token_url(&c, fallback, url, sizeof(url)), 0);
	assert_string_equal(url, want);
}

static void test_token_url(void **state)
{
	(void)state;
	token_url("https://auth.docker.io/token", "registry.docker.io",
	          "repository:library/python:pull", NULL,
	          "https://auth.docker.io/token?service=registry.docker.io&"
	          "scope=repository%3Alibrary%2Fpython%3Apull");
	/* the fallback only when the challenge has no scope */
	token_url("https://quay.io/v2/auth", "quay.io", "", "repository:a/b:pull",
	          "https://quay.io/v2/auth?service=quay.io&scope=repository%3Aa%2Fb%3Apull");
	token_url("https://r/t", "s", "repository:x:pull", "repository:y:pull",
	          "https://r/t?service=s&scope=repository%3Ax%3Apull");
	/* a realm with a query already */
	token_url("https://r/t?account=me", "s", "", "repository:x:pull",
	          "https://r/t?account=me&service=s&scope=repository%3Ax%3Apull");
	token_url("https://r/t?", "s", "", NULL, "https://r/t?service=s");
	token_url("https://r/t?a=1&", "s", "", NULL, "https://r/t?a=1&service=s");
	/* empty parameters are left out */
	token_url("http://127.0.0.1:5000/auth", "", "", NULL, "http://127.0.0.1:5000/auth");
	token_url("HTTPS://r/t", "", "", "repository:x:pull",
	          "HTTPS://r/t?scope=repository%3Ax%3Apull");
	/* unreserved kept, everything else percent-encoded, bytes >= 0x80 too */
	token_url("https://r/t", "a-b.c_d~e", "x y&z=1+2?#%/\xc3\xa9", NULL,
	          "https://r/t?service=a-b.c_d~e&scope=x%20y%26z%3D1%2B2%3F%23%25%2F%C3%A9");
}

static void test_token_url_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "",
	    "ftp://r/t",
	    "/token",
	    "https://",
	    "https:///t",
	    "https://?x",
	    "file:///etc/passwd",
	    "https://r/t#frag",
	    "https://r/a b",
	    "https://r/\x7f",
	    "https://r/\n",
	    "r/t",
	};
	struct auth_challenge c = {.scheme = AUTH_BEARER};
	char url[600];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(c.realm, sizeof(c.realm), "%s", bad[i]);
		if (auth_token_url(&c, "repository:x:pull", url, sizeof(url)) != -EINVAL)
			fail_msg("realm \"%s\" was accepted", bad[i]);
	}
	/* the buffer: exact fit, one short */
	snprintf(c.realm, sizeof(c.realm), "https://r/t");
	snprintf(c.service, sizeof(c.service), "s");
	const char *want = "https://r/t?service=s&scope=a%3Ab";
	assert_int_equal(auth_token_url(&c, "a:b", url, strlen(want) + 1), 0);
	assert_string_equal(url, want);
	assert_int_equal(auth_token_url(&c, "a:b", url, strlen(want)), -ENAMETOOLONG);
	assert_string_equal(url, "");
	assert_int_equal(auth_token_url(&c, "a:b", url, 0), -ENAMETOOLONG);
}

/* ---- token responses ------------------------------------------------- */

static void token_ok(const char *body, const char *want)
{
	char token[64], why[400] = "";
	int e =
	    auth_parse_token_response(body, strlen(body), token, sizeof(token), why, sizeof(why));
	if (e)
		fail_msg("%s: %d %s", body, e, why);
	assert_string_equal(token, want);
}

static void token_bad_n(const char *body, size_t len, int code, const char *says)
{
	char token[64], why[400] = "";
	int e = auth_parse_token_response(body, len, token, sizeof(token), why, sizeof(why));
	if (e != code)
		fail_msg("%s: got %d, want %d (%s)", body, e, code, why);
	if (!strstr(why, says))
		fail_msg("%s: \"%s\" does not say \"%s\"", body, why, says);
	assert_string_equal(token, "");
}

static void token_bad(const char *body, int code, const char *says)
{
	token_bad_n(body, strlen(body), code, says);
}

static void test_token_responses(void **state)
{
	(void)state;
	token_ok("{\"token\":\"eyJhbGciOi.x.y\",\"access_token\":\"eyJhbGciOi.x.y\","
	         "\"expires_in\":300,\"issued_at\":\"2024-01-01T00:00:00Z\"}",
	         "eyJhbGciOi.x.y");
	token_ok("{\"access_token\":\"only-access\"}", "only-access");
	token_ok("{\"token\":\"T\",\"access_token\":\"A\"}", "T");
	token_ok("{\"token\":\"\",\"access_token\":\"A\"}", "A");
	token_ok("{\"token\":null,\"access_token\":\"A\"}", "A");
	token_ok(" {\"token\" : \"T\"}\n", "T");
	/* @len bounds the body: nothing after it is read */
	char token[64], why[400];
	const char *body = "{\"token\":\"T\"}garbage";
	assert_int_equal(
	    auth_parse_token_response(body, 13, token, sizeof(token), why, sizeof(why)), 0);
	assert_string_equal(token, "T");

	token_bad("not json", -EINVAL, "not JSON");
	token_bad("", -EINVAL, "not JSON");
	token_bad("[\"token\"]", -EINVAL, "not a JSON object");
	token_bad("\"token\"", -EINVAL, "not JSON"); /* jansson wants an array or object */
	token_bad("{}", -EINVAL, "no \"token\"");
	token_bad("{\"token\":5}", -EINVAL, "no \"token\"");
	token_bad("{\"token\":\"\"}", -EINVAL, "no \"token\"");
	token_bad("{\"token\":\"a b\"}", -EINVAL, "spaces");
	token_bad("{\"token\":\"a\\r\\nX-Evil: 1\"}", -EINVAL, "control");
	token_bad("{\"token\":\"a\\u0000b\"}", -EINVAL, "u0000"); /* jansson refuses it */
	token_bad("{\"token\":\"T\"", -EINVAL, "not JSON");
	char big[100];
	snprintf(big, sizeof(big), "{\"token\":\"%064d\"}", 0);
	token_bad(big, -E2BIG, "64 bytes");
	/* the length is checked before anything is read */
	token_bad_n("{}", (size_t)AUTH_FILE_MAX + 1, -EINVAL, "larger");
}

/* ---- config.json ----------------------------------------------------- */

static char dir[64];

static int make_dir(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/msb-test-auth-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void creds(const char *path, const char *registry, const char *user, const char *pass)
{
	char u[AUTH_USER_MAX + 1], p[AUTH_PASS_MAX + 1], why[600] = "";
	int e = auth_config_get(path, registry, u, sizeof(u), p, sizeof(p), why, sizeof(why));
	if (e)
		fail_msg("%s: %d %s", registry, e, why);
	assert_string_equal(u, user);
	assert_string_equal(p, pass);
}

static void no_creds(const char *path, const char *registry, int code, const char *says)
{
	char u[64] = "x", p[64] = "x", why[600] = "";
	int e = auth_config_get(path, registry, u, sizeof(u), p, sizeof(p), why, sizeof(why));
	if (e != code)
		fail_msg("%s: got %d, want %d (%s)", registry, e, code, why);
	if (!strstr(why, says))
		fail_msg("%s: \"%s\" does not say \"%s\"", registry, why, says);
	assert_string_equal(u, "");
	assert_string_equal(p, "");
}

static void set_ok(const char *path, const char *registry, const char *user, const char *pass)
{
	char why[600] = "";
	int e = auth_config_set(path, registry, user, pass, why, sizeof(why));
	if (e)
		fail_msg("set %s: %d %s", registry, e, why);
}

/* "user:password" in base64, as Docker's "auth" */
#define ALICE_SECRET "YWxpY2U6c2VjcmV0"         /* alice:secret */
#define BOB_PW       "Ym9iOnB3OndpdGg6Y29sb25z" /* bob:pw:with:colons */

static void test_config_path(void **state)
{
	(void)state;
	char buf[256];
	char *old_dc = getenv("DOCKER_CONFIG") ? strdup(getenv("DOCKER_CONFIG")) : NULL;
	char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
	setenv("DOCKER_CONFIG", "/etc/dc", 1);
	assert_int_equal(auth_config_path(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/etc/dc/config.json");
	setenv("DOCKER_CONFIG", "", 1);
	setenv("HOME", "/home/u", 1);
	assert_int_equal(auth_config_path(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/home/u/.docker/config.json");
	assert_int_equal(auth_config_path(buf, 10), -ENAMETOOLONG);
	unsetenv("DOCKER_CONFIG");
	unsetenv("HOME");
	assert_int_equal(auth_config_path(buf, sizeof(buf)), -ENOENT);
	if (old_dc)
		setenv("DOCKER_CONFIG", old_dc, 1);
	if (old_home)
		setenv("HOME", old_home, 1);
	free(old_dc);
	free(old_home);
}

static void test_config_lookup(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/lookup.json", dir);
	no_creds(path, "ghcr.io", -ENOENT, "does not exist");
	write_file(path, "{\"auths\":{"
	                 "\"https://index.docker.io/v1/\":{\"auth\":\"" ALICE_SECRET "\"},"
	                 "\"GHCR.io\":{\"auth\":\"" BOB_PW "\"},"
	                 "\"http://localhost:5000/v2/\":{\"username\":\"u\",\"password\":\"p\"},"
	                 "\"quay.io\":{},"
	                 "\"empty-pass.io\":{\"auth\":\"dTo=\"}},"
	                 "\"psFormat\":\"table\"}");
	/* Docker Hub under all its names */
	creds(path, "registry-1.docker.io", "alice", "secret");
	creds(path, "docker.io", "alice", "secret");
	creds(path, "index.docker.io", "alice", "secret");
	/* host names compare without case; passwords keep their ':' */
	creds(path, "ghcr.io", "bob", "pw:with:colons");
	creds(path, "https://ghcr.io/", "bob", "pw:with:colons");
	/* a URL key matches on host:port only */
	creds(path, "localhost:5000", "u", "p");
	no_creds(path, "localhost:5001", -ENOENT, "no credentials for localhost:5001");
	no_creds(path, "localhost", -ENOENT, "no credentials");
	no_creds(path, "quay.io", -ENOENT, "no credentials");
	no_creds(path, "ghcr.io.evil.com", -ENOENT, "no credentials");
	no_creds(path, "docker.io.evil.com", -ENOENT, "no credentials");
	creds(path, "empty-pass.io", "u", "");

	/* Hub keys Docker no longer writes still count; Docker's own key wins */
	write_file(path, "{\"auths\":{\"docker.io\":{\"auth\":\"" BOB_PW "\"}}}");
	creds(path, "registry-1.docker.io", "bob", "pw:with:colons");
	write_file(path, "{\"auths\":{\"registry-1.docker.io\":{\"auth\":\"" BOB_PW "\"}}}");
	creds(path, "docker.io", "bob", "pw:with:colons");
	write_file(path, "{\"auths\":{\"index.docker.io\":{\"auth\":\"" BOB_PW "\"},"
	                 "\"https://index.docker.io/v1/\":{\"auth\":\"" ALICE_SECRET "\"}}}");
	creds(path, "docker.io", "alice", "secret");

	/* no "auths", an empty file: no credentials, no error */
	write_file(path, "{\"credsStore\":\"\"}");
	no_creds(path, "ghcr.io", -ENOENT, "no credentials");
	write_file(path, "\n");
	no_creds(path, "ghcr.io", -ENOENT, "no credentials");

	/* the caller's buffers bound what is copied */
	write_file(path, "{\"auths\":{\"ghcr.io\":{\"auth\":\"" ALICE_SECRET "\"}}}");
	char u[5], p[64], why[400];
	assert_int_equal(
	    auth_config_get(path, "ghcr.io", u, sizeof(u), p, sizeof(p), why, sizeof(why)), -E2BIG);
	assert_non_null(strstr(why, "user name"));
	assert_int_equal(auth_config_get(path, "ghcr.io", u, 6, p, 6, why, sizeof(why)), -E2BIG);
	assert_non_null(strstr(why, "password"));
	assert_int_equal(auth_config_get(path, "", u, 6, p, 6, why, sizeof(why)), -EINVAL);
}

static void test_config_malformed(void **state)
{
	(void)state;
	static const struct {
		const char *text, *says;
	} bad[] = {
	    {"{\"auths\":", "not valid JSON"},
	    {"not json", "not valid JSON"},
	    {"[]", "not a JSON object"},
	    {"{\"auths\":[]}", "\"auths\" is not an object"},
	    {"{\"auths\":{\"ghcr.io\":\"x\"}}", "\"ghcr.io\" is not an object"},
	    {"{\"auths\":{\"ghcr.io\":{\"auth\":5}}}", "not a string"},
	    {"{\"auths\":{\"ghcr.io\":{\"auth\":\"!!!!\"}}}", "not base64"},
	    {"{\"auths\":{\"ghcr.io\":{\"auth\":\"YWxpY2U=\"}}}", "user:password"}, /* alice */
	    {"{\"auths\":{\"ghcr.io\":{\"auth\":\"OnB3\"}}}", "empty user name"},   /* :pw */
	    {"{\"auths\":{\"ghcr.io\":{\"auth\":\"YQBiOmM=\"}}}", "NUL"},           /* a\0b:c */
	    {"{\"auths\":{\"ghcr.io\":{\"username\":\"u\"}}}", "must both be strings"},
	    {"{\"auths\":{\"ghcr.io\":{\"username\":\"u\",\"password\":1}}}", "must both"},
	};
	char path[128];
	snprintf(path, sizeof(path), "%s/bad.json", dir);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(path, bad[i].text);
		no_creds(path, "ghcr.io", -EINVAL, bad[i].says);
		no_creds(path, "ghcr.io", -EINVAL, path); /* the message names the file */
	}
	/* larger than AUTH_FILE_MAX */
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"x\":\"", f);
	for (int i = 0; i < AUTH_FILE_MAX; i++)
		fputc('a', f);
	fputs("\"}", f);
	assert_int_equal(fclose(f), 0);
	no_creds(path, "ghcr.io", -EINVAL, "larger");
	/* nor can it be written through */
	char why[400];
	assert_int_equal(auth_config_set(path, "ghcr.io", "u", "p", why, sizeof(why)), -EINVAL);
	/* a directory is not a file */
	no_creds(dir, "ghcr.io", -EISDIR, "cannot read");
}

static void test_credential_helpers(void **state)
{
	(void)state;
	char path[128], why[600];
	snprintf(path, sizeof(path), "%s/helpers.json", dir);
	/* Docker Desktop: {} placeholders, the secret in the store */
	write_file(path, "{\"auths\":{\"https://index.docker.io/v1/\":{},"
	                 "\"ghcr.io\":{\"auth\":\"" ALICE_SECRET "\"}},"
	                 "\"credsStore\":\"desktop\"}");
	no_creds(path, "docker.io", -ENOTSUP, "credential helpers are not supported; ");
	no_creds(path, "docker.io", -ENOTSUP, "desktop");
	no_creds(path, "ghcr.io", -ENOTSUP, "credential helpers are not supported; ");
	/* no entry: nothing we know of to log in with */
	no_creds(path, "quay.io", -ENOENT, "no credentials");
	assert_int_equal(auth_config_set(path, "quay.io", "u", "p", why, sizeof(why)), -ENOTSUP);
	assert_non_null(strstr(why, "credential helpers are not supported"));
	assert_int_equal(auth_config_set(path, "ghcr.io", NULL, NULL, why, sizeof(why)), -ENOTSUP);

	write_file(path, "{\"auths\":{\"ghcr.io\":{\"auth\":\"" ALICE_SECRET "\"}},"
	                 "\"credHelpers\":{\"gcr.io\":\"gcloud\","
	                 "\"123.dkr.ecr.us-east-1.amazonaws.com\":\"ecr-login\"}}");
	no_creds(path, "gcr.io", -ENOTSUP, "gcloud");
	no_creds(path, "123.dkr.ecr.us-east-1.amazonaws.com", -ENOTSUP,
	         "credential helpers are not supported; ");
	creds(path, "ghcr.io", "alice", "secret");
	set_ok(path, "quay.io", "q", "r");
	assert_int_equal(auth_config_set(path, "gcr.io", "u", "p", why, sizeof(why)), -ENOTSUP);

	write_file(path, "{\"auths\":{\"myregistry.azurecr.io\":{\"auth\":\"" ALICE_SECRET
	                 "\",\"identitytoken\":\"eyJ\"}}}");
	no_creds(path, "myregistry.azurecr.io", -ENOTSUP, "identity token");
}

static json_t *load_json(const char *path)
{
	json_error_t je;
	json_t *j = json_load_file(path, 0, &je);
	if (!j)
		fail_msg("%s: %s", path, je.text);
	return j;
}

static void test_config_round_trip(void **state)
{
	(void)state;
	char path[160], sub[128], why[600];
	struct stat st;
	/* nothing there yet: the directory and file are made, private */
	snprintf(sub, sizeof(sub), "%s/home/.docker", dir);
	snprintf(path, sizeof(path), "%s/config.json", sub);
	assert_int_equal(auth_config_set(path, "ghcr.io", NULL, NULL, why, sizeof(why)), -ENOENT);
	set_ok(path, "ghcr.io", "alice", "secret");
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	creds(path, "ghcr.io", "alice", "secret");
	char text[4096];
	assert_true(fs_read_small(path, text, sizeof(text)) > 0);
	assert_string_equal(text,
	                    "{\n\t\"auths\": {\n\t\t\"ghcr.io\": {\n\t\t\t\"auth\": \"" ALICE_SECRET
	                    "\"\n\t\t}\n\t}\n}");

	/* a file with more in it: everything else stays as it was */
	const char *orig =
	    "{\"auths\":{\"quay.io\":{\"auth\":\"" BOB_PW "\",\"email\":\"b@x\"},"
	    "\"http://localhost:5000\":{\"auth\":\"" ALICE_SECRET "\"}},"
	    "\"psFormat\":\"table {{.ID}}\",\"HttpHeaders\":{\"User-Agent\":\"x\"},"
	    "\"proxies\":{\"default\":{\"httpProxy\":\"http://p:3128\",\"noProxy\":\"*.local\"}},"
	    "\"n\":[1,2.5,true,null,\"\\u00e9\\n\\t\"]}";
	write_file(path, orig);
	json_error_t je;
	json_t *want = json_loads(orig, 0, &je);
	assert_non_null(want);

	set_ok(path, "ghcr.io", "carol", "p@ss:word \"quoted\"");
	creds(path, "ghcr.io", "carol", "p@ss:word \"quoted\"");
	creds(path, "quay.io", "bob", "pw:with:colons");
	json_t *got = load_json(path);
	json_t *auths = json_object_get(got, "auths");
	assert_non_null(json_object_get(auths, "ghcr.io"));
	json_object_del(auths, "ghcr.io");
	assert_true(json_equal(got, want));
	json_decref(got);

	/* replacing an entry, then removing it, restores the file's content */
	set_ok(path, "quay.io", "dave", "x");
	creds(path, "quay.io", "dave", "x");
	assert_int_equal(auth_config_set(path, "ghcr.io", NULL, NULL, why, sizeof(why)), 0);
	no_creds(path, "ghcr.io", -ENOENT, "no credentials");
	assert_int_equal(auth_config_set(path, "ghcr.io", NULL, NULL, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "no credentials for ghcr.io"));
	/* removal takes every spelling of the host */
	assert_int_equal(auth_config_set(path, "localhost:5000", NULL, NULL, why, sizeof(why)), 0);
	no_creds(path, "localhost:5000", -ENOENT, "no credentials");
	got = load_json(path);
	json_object_del(json_object_get(want, "auths"), "http://localhost:5000");
	json_object_set_new(json_object_get(want, "auths"), "quay.io",
	                    json_pack("{s:s}", "auth", "ZGF2ZTp4")); /* dave:x */
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);
	/* no temporary file left behind */
	char tmp[200];
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	assert_int_equal(access(tmp, F_OK), -1);
}

static void test_config_docker_hub(void **state)
{
	(void)state;
	char path[128], why[600];
	snprintf(path, sizeof(path), "%s/hub.json", dir);
	write_file(path, "{\"auths\":{\"docker.io\":{\"auth\":\"" BOB_PW "\"}}}");
	/* written under Docker's key, whatever name it was given as */
	set_ok(path, "registry-1.docker.io", "alice", "secret");
	json_t *got = load_json(path);
	json_t *hub = json_object_get(json_object_get(got, "auths"), "https://index.docker.io/v1/");
	assert_string_equal(json_string_value(json_object_get(hub, "auth")), ALICE_SECRET);
	json_decref(got);
	creds(path, "docker.io", "alice", "secret");
	/* removal takes the old "docker.io" key too */
	assert_int_equal(auth_config_set(path, "docker.io", NULL, NULL, why, sizeof(why)), 0);
	no_creds(path, "registry-1.docker.io", -ENOENT, "no credentials");
	got = load_json(path);
	assert_int_equal(json_object_size(json_object_get(got, "auths")), 0);
	json_decref(got);
}

static void test_config_set_refused(void **state)
{
	(void)state;
	char path[128], why[600], long_user[AUTH_USER_MAX + 2], long_pass[AUTH_PASS_MAX + 2];
	snprintf(path, sizeof(path), "%s/refused.json", dir);
	memset(long_user, 'u', sizeof(long_user) - 1);
	long_user[sizeof(long_user) - 1] = 0;
	memset(long_pass, 'p', sizeof(long_pass) - 1);
	long_pass[sizeof(long_pass) - 1] = 0;
	static const struct {
		const char *registry, *user, *pass;
	} bad[] = {
	    {"ghcr.io", "", "p"},      {"ghcr.io", "a:b", "p"}, {"ghcr.io", "a\nb", "p"},
	    {"ghcr.io", "u", "p\r\n"}, {"ghcr.io", "u", NULL},  {"", "u", "p"},
	    {"a b", "u", "p"},         {"https://", "u", "p"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(auth_config_set(path, bad[i].registry, bad[i].user, bad[i].pass,
		                                 why, sizeof(why)),
		                 -EINVAL);
	assert_int_equal(auth_config_set(path, "ghcr.io", long_user, "p", why, sizeof(why)),
	                 -EINVAL);
	assert_int_equal(auth_config_set(path, "ghcr.io", "u", long_pass, why, sizeof(why)),
	                 -EINVAL);
	/* nothing was written */
	assert_int_equal(access(path, F_OK), -1);
	/* the longest allowed round-trip */
	long_user[AUTH_USER_MAX] = 0;
	long_pass[AUTH_PASS_MAX] = 0;
	set_ok(path, "ghcr.io", long_user, long_pass);
	creds(path, "ghcr.io", long_user, long_pass);
}

/* A config.json that is a link (dotfiles) stays a link; its target changes. */
static void test_config_through_symlink(void **state)
{
	(void)state;
	char target[128], link[128];
	snprintf(target, sizeof(target), "%s/real.json", dir);
	snprintf(link, sizeof(link), "%s/link.json", dir);
	write_file(target, "{\"psFormat\":\"x\"}");
	assert_int_equal(symlink(target, link), 0);
	set_ok(link, "ghcr.io", "alice", "secret");
	struct stat st;
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	creds(target, "ghcr.io", "alice", "secret");
	json_t *got = load_json(target);
	assert_string_equal(json_string_value(json_object_get(got, "psFormat")), "x");
	json_decref(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_registry_challenges),
	    cmocka_unit_test(test_spacing_case_and_escapes),
	    cmocka_unit_test(test_bad_challenges),
	    cmocka_unit_test(test_overlong_values),
	    cmocka_unit_test(test_token_url),
	    cmocka_unit_test(test_token_url_refused),
	    cmocka_unit_test(test_token_responses),
	    cmocka_unit_test(test_config_path),
	    cmocka_unit_test_setup_teardown(test_config_lookup, make_dir, remove_dir),
	    cmocka_unit_test_setup_teardown(test_config_malformed, make_dir, remove_dir),
	    cmocka_unit_test_setup_teardown(test_credential_helpers, make_dir, remove_dir),
	    cmocka_unit_test_setup_teardown(test_config_round_trip, make_dir, remove_dir),
	    cmocka_unit_test_setup_teardown(test_config_docker_hub, make_dir, remove_dir),
	    cmocka_unit_test_setup_teardown(test_config_set_refused, make_dir, remove_dir),
	    cmocka_unit_test_setup_teardown(test_config_through_symlink, make_dir, remove_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
