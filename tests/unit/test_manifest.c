/* Registry and archive documents: what is chosen from indexes, what
 * manifests and configs yield, and a table of hostile inputs refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/image/manifest.h"

#define X8(s)  s s s s s s s s
#define X64(s) X8(X8(s))
#define D(c)   "sha256:" X64(c)
#define DA     D("a")
#define DB     D("b")
#define DC     D("c")
#define DD     D("d")
#define DE     D("e")

/* Documents are written with ' for " to stay readable; q() swaps them. */
static char *q(const char *doc)
{
	char *s = strdup(doc);
	assert_non_null(s);
	for (char *c = s; *c; c++)
		if (*c == '\'')
			*c = '"';
	return s;
}

static const char oci_index[] =
    "{'schemaVersion': 2, 'mediaType': '" MT_OCI_INDEX "',"
    " 'manifests': ["
    "  {'mediaType': '" MT_OCI_MANIFEST "', 'digest': '" DA "', 'size': 1234,"
    "   'platform': {'architecture': 'amd64', 'os': 'linux'}},"
    "  {'mediaType': '" MT_OCI_MANIFEST "', 'digest': '" DB "', 'size': 1235,"
    "   'platform': {'architecture': 'arm64', 'os': 'linux', 'variant': 'v8'}},"
    "  {'mediaType': '" MT_OCI_MANIFEST "', 'digest': '" DC "', 'size': 566,"
    "   'annotations': {'vnd.docker.reference.digest': '" DA "',"
    "                   'vnd.docker.reference.type': 'attestation-manifest'},"
    "   'platform': {'architecture': 'unknown', 'os': 'unknown'}}],"
    " 'annotations': {'org.opencontainers.image.created': '2024-05-01T10:00:00Z'}}";

static const char docker_list[] =
    "{'schemaVersion': 2, 'mediaType': '" MT_DOCKER_LIST "',"
    " 'manifests': ["
    "  {'mediaType': '" MT_DOCKER_MANIFEST "', 'digest': '" DA "', 'size': 529,"
    "   'platform': {'architecture': 'amd64', 'os': 'linux'}},"
    "  {'mediaType': '" MT_DOCKER_MANIFEST "', 'digest': '" DB "', 'size': 529,"
    "   'platform': {'architecture': 'arm', 'os': 'linux'}},"
    "  {'mediaType': '" MT_DOCKER_MANIFEST "', 'digest': '" DC "', 'size': 529,"
    "   'platform': {'architecture': 'arm', 'os': 'linux', 'variant': 'v7'}},"
    "  {'mediaType': '" MT_DOCKER_MANIFEST "', 'digest': '" DD "', 'size': 529,"
    "   'platform': {'architecture': 'arm64', 'os': 'linux'}},"
    "  {'mediaType': '" MT_DOCKER_MANIFEST "', 'digest': '" DE "', 'size': 529,"
    "   'platform': {'architecture': 'amd64', 'os': 'windows', 'os.version': '10.0.17763'}}]}";

static const char oci_manifest[] =
    "{'schemaVersion': 2, 'mediaType': '" MT_OCI_MANIFEST "',"
    " 'config': {'mediaType': '" MT_OCI_CONFIG "', 'digest': '" DA "', 'size': 1470},"
    " 'layers': ["
    "  {'mediaType': '" MT_OCI_LAYER_GZIP "', 'digest': '" DB "', 'size': 29150000},"
    "  {'mediaType': '" MT_OCI_LAYER_ZSTD "', 'digest': '" DC "', 'size': 0},"
    "  {'mediaType': '" MT_OCI_LAYER_TAR "', 'digest': '" DD "', 'size': 1125899906842624,"
    "   'annotations': {'org.opencontainers.image.title': 'x'}}]}";

static const char docker_manifest[] =
    "{'schemaVersion': 2, 'mediaType': '" MT_DOCKER_MANIFEST "',"
    " 'config': {'mediaType': '" MT_DOCKER_CONFIG "', 'size': 7023, 'digest': '" DA "'},"
    " 'layers': ["
    "  {'mediaType': '" MT_DOCKER_LAYER_GZIP "', 'size': 32654, 'digest': '" DB "'},"
    "  {'mediaType': '" MT_DOCKER_LAYER_GZIP "', 'size': 16724, 'digest': '" DC "'},"
    "  {'mediaType': '" MT_DOCKER_LAYER_GZIP "', 'size': 73109, 'digest': '" DD "'}]}";

static const char docker_config[] =
    "{'architecture': 'amd64', 'os': 'linux',"
    " 'config': {'Hostname': '', 'User': 'app:app', 'ExposedPorts': {'8080/tcp': {}},"
    "   'Env': ['PATH=/usr/local/bin:/usr/bin:/bin', 'LANG=C.UTF-8', 'EMPTY='],"
    "   'Entrypoint': ['/docker-entrypoint.sh'], 'Cmd': ['python3', '-m', 'http.server'],"
    "   'WorkingDir': '/srv', 'Volumes': null, 'OnBuild': null, 'Labels': {'a': 'b'}},"
    " 'created': '2024-05-01T10:00:00.123456789Z', 'docker_version': '24.0.7',"
    " 'history': [{'created': '2024-05-01T10:00:00Z', 'created_by': 'ADD rootfs.tar /'}],"
    " 'rootfs': {'type': 'layers', 'diff_ids': ['" DB "', '" DC "', '" DD "']}}";

static int select_from(const char *doc, const char *plat, struct image_desc *d, char *why,
                       size_t wl)
{
	struct platform p;
	char *s = q(doc);
	assert_int_equal(platform_parse(plat, &p, why, wl), 0);
	int r = index_select(s, strlen(s), &p, d, why, wl);
	free(s);
	return r;
}

static void picks(const char *doc, const char *plat, const char *digest)
{
	struct image_desc d;
	char why[400] = "";
	int r = select_from(doc, plat, &d, why, sizeof(why));
	if (r)
		fail_msg("%s: %d %s", plat, r, why);
	assert_string_equal(d.digest, digest);
}

static void test_index_select(void **state)
{
	(void)state;
	struct image_desc d;
	char why[400] = "";
	picks(oci_index, "linux/amd64", DA);
	picks(oci_index, "amd64", DA);
	picks(oci_index, "linux/arm64/v8", DB);
	picks(oci_index, "linux/arm64", DB);
	assert_int_equal(select_from(oci_index, "linux/amd64", &d, why, sizeof(why)), 0);
	assert_string_equal(d.media_type, MT_OCI_MANIFEST);
	assert_int_equal(d.size, 1234);

	/* the attestation (unknown/unknown) is neither chosen nor listed */
	assert_int_equal(select_from(oci_index, "linux/s390x", &d, why, sizeof(why)), -ENOENT);
	assert_string_equal(why,
	                    "index has no linux/s390x image (it has linux/amd64, linux/arm64/v8)");
	assert_int_equal(select_from(oci_index, "linux/arm64/v9", &d, why, sizeof(why)), -ENOENT);

	/* arm64 without a variant is v8; a variant that matches wins over none */
	picks(docker_list, "linux/arm64/v8", DD);
	picks(docker_list, "linux/arm/v7", DC);
	picks(docker_list, "linux/arm/v6", DB);
	picks(docker_list, "linux/arm", DB);
	picks(docker_list, "windows/amd64", DE);
	assert_int_equal(select_from(docker_list, "linux/ppc64le", &d, why, sizeof(why)), -ENOENT);
	assert_string_equal(why, "index has no linux/ppc64le image (it has linux/amd64, linux/arm, "
	                         "linux/arm/v7, linux/arm64, windows/amd64)");

	/* a nested index comes back as one; an artifact for the platform does not */
	const char nested[] = "{'schemaVersion': 2, 'manifests': [{'mediaType': '" MT_OCI_INDEX
	                      "', 'digest': '" DA "', 'size': 5,"
	                      " 'platform': {'os': 'linux', 'architecture': 'amd64'}}]}";
	assert_int_equal(select_from(nested, "linux/amd64", &d, why, sizeof(why)), 0);
	assert_string_equal(d.media_type, MT_OCI_INDEX);
	const char artifact[] = "{'schemaVersion': 2, 'manifests': [{'mediaType': 'application/x',"
	                        " 'digest': '" DA "', 'size': 5,"
	                        " 'platform': {'os': 'linux', 'architecture': 'amd64'}}]}";
	assert_int_equal(select_from(artifact, "linux/amd64", &d, why, sizeof(why)), -ENOTSUP);
	const char none[] = "{'schemaVersion': 2, 'manifests': [{'mediaType': '" MT_OCI_MANIFEST
	                    "', 'digest': '" DA "', 'size': 5}]}";
	assert_int_equal(select_from(none, "linux/amd64", &d, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "no images for any platform"));
}

static void test_platforms(void **state)
{
	(void)state;
	struct platform p;
	char why[200], buf[100];
	assert_int_equal(platform_parse("linux/arm64/v8", &p, why, sizeof(why)), 0);
	assert_string_equal(p.os, "linux");
	assert_string_equal(p.arch, "arm64");
	assert_string_equal(p.variant, "v8");
	assert_int_equal(platform_parse("Linux/X86_64", &p, why, sizeof(why)), 0);
	platform_format(&p, buf, sizeof(buf));
	assert_string_equal(buf, "linux/amd64");
	assert_int_equal(platform_parse("aarch64", &p, why, sizeof(why)), 0);
	platform_format(&p, buf, sizeof(buf));
	assert_string_equal(buf, "linux/arm64");
	const char *bad[] = {"",
	                     "/",
	                     "linux/",
	                     "/amd64",
	                     "linux//amd64",
	                     "a/b/c/d",
	                     "linux amd64",
	                     "linux/amd64\n",
	                     "linux",
	                     "linux/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = 0;
		assert_int_equal(platform_parse(bad[i], &p, why, sizeof(why)), -EINVAL);
		assert_non_null(strstr(why, "platform"));
		for (char *c = why; *c; c++)
			assert_true((unsigned char)*c >= ' ');
	}
	platform_host(&p);
	assert_string_equal(p.os, "linux");
#if defined(__x86_64__)
	assert_string_equal(p.arch, "amd64");
#elif defined(__aarch64__)
	assert_string_equal(p.arch, "arm64");
	assert_string_equal(p.variant, "v8");
#endif
}

static int kind_of(const char *ct, const char *doc, enum manifest_kind *k, char *why, size_t wl)
{
	char *s = doc ? q(doc) : NULL;
	int r = manifest_kind(ct, s, s ? strlen(s) : 0, k, why, wl);
	free(s);
	return r;
}

static void test_manifest_kind(void **state)
{
	(void)state;
	enum manifest_kind k;
	char why[400];
	assert_int_equal(kind_of(MT_OCI_INDEX "; charset=utf-8", oci_index, &k, why, sizeof(why)),
	                 0);
	assert_int_equal(k, MANIFEST_INDEX);
	assert_int_equal(kind_of(MT_DOCKER_MANIFEST, docker_manifest, &k, why, sizeof(why)), 0);
	assert_int_equal(k, MANIFEST_IMAGE);
	assert_int_equal(kind_of(NULL, docker_list, &k, why, sizeof(why)), 0);
	assert_int_equal(k, MANIFEST_INDEX);
	assert_int_equal(kind_of(" Application/JSON ", oci_manifest, &k, why, sizeof(why)), 0);
	assert_int_equal(k, MANIFEST_IMAGE);
	/* no mediaType: the shape decides */
	assert_int_equal(
	    kind_of("text/plain", "{'schemaVersion': 2, 'manifests': []}", &k, why, sizeof(why)),
	    0);
	assert_int_equal(k, MANIFEST_INDEX);
	assert_int_equal(
	    kind_of(NULL, "{'schemaVersion': 2, 'config': {}, 'layers': []}", &k, why, sizeof(why)),
	    0);
	assert_int_equal(k, MANIFEST_IMAGE);
	/* a HEAD answer has only the header */
	assert_int_equal(kind_of(MT_OCI_MANIFEST, NULL, &k, why, sizeof(why)), 0);
	assert_int_equal(k, MANIFEST_IMAGE);
	assert_int_equal(kind_of(NULL, NULL, &k, why, sizeof(why)), -EINVAL);

	assert_int_equal(kind_of("application/vnd.docker.distribution.manifest.v1+prettyjws",
	                         "{'schemaVersion': 1}", &k, why, sizeof(why)),
	                 -ENOTSUP);
	assert_non_null(strstr(why, "schema 1 manifests are not supported (the image is too old)"));
	assert_int_equal(kind_of("application/json",
	                         "{'schemaVersion': 1, 'name': 'x', 'tag': 'y', 'fsLayers': []}",
	                         &k, why, sizeof(why)),
	                 -ENOTSUP);
	assert_non_null(strstr(why, "schema 1"));
	assert_int_equal(kind_of("text/html", "{}", &k, why, sizeof(why)), -ENOTSUP);
	assert_non_null(strstr(why, "text/html"));
	assert_int_equal(kind_of(MT_OCI_MANIFEST, oci_index, &k, why, sizeof(why)), -EINVAL);
	assert_int_equal(
	    kind_of(MT_OCI_INDEX, "{'schemaVersion': 2, 'layers': []}", &k, why, sizeof(why)),
	    -EINVAL);
	assert_int_equal(kind_of(NULL, "{'schemaVersion': 2}", &k, why, sizeof(why)), -EINVAL);
	assert_int_equal(kind_of(NULL, "{'schemaVersion': 2, 'layers': [], 'manifests': []}", &k,
	                         why, sizeof(why)),
	                 -EINVAL);
	assert_int_equal(kind_of(NULL,
	                         "{'schemaVersion': 2, 'mediaType': "
	                         "'application/vnd.oci.artifact.manifest.v1+json'}",
	                         &k, why, sizeof(why)),
	                 -ENOTSUP);
}

static void test_manifests(void **state)
{
	(void)state;
	struct image_manifest m;
	char why[400] = "";
	char *s = q(oci_manifest);
	assert_int_equal(manifest_parse(s, strlen(s), &m, why, sizeof(why)), 0);
	free(s);
	assert_string_equal(m.config.media_type, MT_OCI_CONFIG);
	assert_string_equal(m.config.digest, DA);
	assert_int_equal(m.config.size, 1470);
	assert_int_equal(m.nlayers, 3);
	assert_string_equal(m.layers[0].media_type, MT_OCI_LAYER_GZIP);
	assert_string_equal(m.layers[1].digest, DC);
	assert_int_equal(m.layers[1].size, 0);
	assert_int_equal(m.layers[2].size, 1ULL << 50);
	manifest_free(&m);

	s = q(docker_manifest);
	assert_int_equal(manifest_parse(s, strlen(s), &m, why, sizeof(why)), 0);
	free(s);
	assert_string_equal(m.config.media_type, MT_DOCKER_CONFIG);
	assert_int_equal(m.nlayers, 3);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(m.layers[i].media_type, MT_DOCKER_LAYER_GZIP);
	assert_string_equal(m.layers[2].digest, DD);
	assert_int_equal(m.layers[2].size, 73109);
	manifest_free(&m);

	s = q("{'schemaVersion': 2, 'config': {'mediaType': '" MT_OCI_CONFIG "', 'digest': '" DA
	      "', 'size': 2}, 'layers': []}");
	assert_int_equal(manifest_parse(s, strlen(s), &m, why, sizeof(why)), 0);
	free(s);
	assert_int_equal(m.nlayers, 0);
	manifest_free(&m);
}

static void test_image_config(void **state)
{
	(void)state;
	struct image_config c;
	char why[400] = "";
	char *s = q(docker_config);
	int r = image_config_parse(s, strlen(s), &c, why, sizeof(why));
	free(s);
	if (r)
		fail_msg("%s", why);
	assert_string_equal(c.env[0], "PATH=/usr/local/bin:/usr/bin:/bin");
	assert_string_equal(c.env[2], "EMPTY=");
	assert_null(c.env[3]);
	assert_string_equal(c.entrypoint[0], "/docker-entrypoint.sh");
	assert_null(c.entrypoint[1]);
	assert_string_equal(c.cmd[2], "http.server");
	assert_null(c.cmd[3]);
	assert_string_equal(c.workdir, "/srv");
	assert_string_equal(c.user, "app:app");
	assert_string_equal(c.created, "2024-05-01T10:00:00.123456789Z");
	assert_string_equal(c.platform.arch, "amd64");
	assert_int_equal(c.ndiff_ids, 3);
	assert_string_equal(c.diff_ids[2], DD);
	assert_null(c.diff_ids[3]);
	image_config_free(&c);

	/* no "config", an arm64 image: empty, never NULL */
	s = q("{'architecture': 'arm64', 'variant': 'v8', 'os': 'linux', 'created': "
	      "'2024-05-01T10:00:00+02:00', 'rootfs': {'type': 'layers', 'diff_ids': []}}");
	assert_int_equal(image_config_parse(s, strlen(s), &c, why, sizeof(why)), 0);
	free(s);
	assert_null(c.env[0]);
	assert_null(c.entrypoint[0]);
	assert_null(c.cmd[0]);
	assert_null(c.workdir);
	assert_null(c.user);
	assert_string_equal(c.platform.variant, "v8");
	assert_int_equal(c.ndiff_ids, 0);
	image_config_free(&c);

	s = q("{'architecture': 'amd64', 'os': 'linux', 'config': {'Entrypoint': null, 'Cmd':"
	      " null, 'Env': null, 'User': ''}, 'rootfs': {'type': 'layers', 'diff_ids': []}}");
	assert_int_equal(image_config_parse(s, strlen(s), &c, why, sizeof(why)), 0);
	free(s);
	assert_null(c.entrypoint[0]);
	assert_string_equal(c.user, "");
	image_config_free(&c);
}

static void test_docker_archive(void **state)
{
	(void)state;
	struct docker_archive_entry *e;
	size_t n;
	char why[400] = "";
	char *s = q("[{'Config': 'blobs/sha256/" X64(
	    "a") "', 'RepoTags': ['python:3.11'],"
	         "  'Layers': ['blobs/sha256/" X64(
	             "b") "', 'c/layer.tar', '.../x']},"
	                  " {'Config': 'abc.json', 'RepoTags': null, 'Layers': []}]");
	assert_int_equal(docker_archive_manifest_parse(s, strlen(s), &e, &n, why, sizeof(why)), 0);
	free(s);
	assert_int_equal(n, 2);
	assert_string_equal(e[0].config, "blobs/sha256/" X64("a"));
	assert_string_equal(e[0].repo_tags[0], "python:3.11");
	assert_null(e[0].repo_tags[1]);
	assert_int_equal(e[0].nlayers, 3);
	assert_string_equal(e[0].layers[1], "c/layer.tar");
	assert_null(e[0].layers[3]);
	assert_null(e[1].repo_tags[0]);
	assert_int_equal(e[1].nlayers, 0);
	docker_archive_manifest_free(e, n);
}

enum parser { MANIFEST, INDEX, CONFIG, ARCHIVE, KIND };

static int run(enum parser p, const void *body, size_t len, char *why, size_t wl)
{
	struct image_manifest m;
	struct image_desc d;
	struct image_config c;
	struct docker_archive_entry *e;
	struct platform plat = {"linux", "amd64", ""};
	enum manifest_kind k;
	size_t n;
	int r = -1;
	switch (p) {
	case MANIFEST:
		if (!(r = manifest_parse(body, len, &m, why, wl)))
			manifest_free(&m);
		break;
	case INDEX:
		r = index_select(body, len, &plat, &d, why, wl);
		break;
	case CONFIG:
		if (!(r = image_config_parse(body, len, &c, why, wl)))
			image_config_free(&c);
		break;
	case ARCHIVE:
		r = docker_archive_manifest_parse(body, len, &e, &n, why, wl);
		if (!r)
			docker_archive_manifest_free(e, n);
		else
			assert_true(e == NULL && n == 0);
		break;
	case KIND:
		r = manifest_kind(NULL, body, len, &k, why, wl);
		break;
	}
	return r;
}

static void refused_len(enum parser p, const void *body, size_t len, int err, const char *says)
{
	char why[400] = "";
	int r = run(p, body, len, why, sizeof(why));
	if (r != err || !strstr(why, says))
		fail_msg("%.200s: got %d \"%s\", want %d \"%s\"", (const char *)body, r, why, err,
		         says);
	for (char *c = why; *c; c++)
		if ((unsigned char)*c < ' ')
			fail_msg("control character in \"%s\"", why);
}

static void refused(enum parser p, const char *doc, int err, const char *says)
{
	char *s = q(doc);
	refused_len(p, s, strlen(s), err, says);
	free(s);
}

#define CFG(x)     "{'schemaVersion': 2, 'config': " x ", 'layers': []}"
#define GOODC      "{'mediaType': '" MT_OCI_CONFIG "', 'digest': '" DA "', 'size': 1}"
#define LAY(x)     "{'schemaVersion': 2, 'config': " GOODC ", 'layers': [" x "]}"
#define L(t, d, s) "{'mediaType': '" t "', 'digest': '" d "', 'size': " s "}"
#define GZ         MT_OCI_LAYER_GZIP
#define IDX(x)     "{'schemaVersion': 2, 'manifests': [" x "]}"
#define AMD64      "'platform': {'os': 'linux', 'architecture': 'amd64'}"
#define ICONF(x)                                                                                   \
	"{'architecture': 'amd64', 'os': 'linux', 'config': {" x "},"                              \
	" 'rootfs': {'type': 'layers', 'diff_ids': []}}"

static const struct bad {
	enum parser p;
	const char *doc;
	int err;
	const char *says;
} bad[] = {
    {MANIFEST, "{'schemaVersion': 2, 'layers': [", -EINVAL, "not valid JSON"},
    {MANIFEST, "", -EINVAL, "not valid JSON"},
    {MANIFEST, "2", -EINVAL, "not valid JSON"},
    {MANIFEST, "[]", -EINVAL, "not a JSON object"},
    {MANIFEST, "{'schemaVersion': 2, 'schemaVersion': 2}", -EINVAL, "duplicate"},
    {MANIFEST, "{'schemaVersion': '2'}", -EINVAL, "\"schemaVersion\" is not an integer"},
    {MANIFEST, "{'schemaVersion': 3}", -EINVAL, "schemaVersion 3 is not 2"},
    {MANIFEST, "{}", -EINVAL, "no \"schemaVersion\""},
    {MANIFEST, "{'schemaVersion': 1, 'fsLayers': []}", -ENOTSUP, "schema 1"},
    {MANIFEST, "{'schemaVersion': 2, 'mediaType': '" MT_OCI_INDEX "'}", -EINVAL, "an index"},
    {MANIFEST, "{'schemaVersion': 2, 'mediaType': 7}", -EINVAL, "not a string"},
    {MANIFEST, "{'schemaVersion': 2, 'layers': []}", -EINVAL, "no \"config\""},
    {MANIFEST, CFG("'x'"), -EINVAL, "config is not an object"},
    {MANIFEST,
     CFG("{'mediaType': 'application/vnd.oci.empty.v1+json', 'digest': '" DA "', 'size': 2}"),
     -ENOTSUP, "artifact"},
    {MANIFEST, "{'schemaVersion': 2, 'config': " GOODC "}", -EINVAL, "no \"layers\""},
    {MANIFEST, "{'schemaVersion': 2, 'config': " GOODC ", 'layers': {}}", -EINVAL,
     "\"layers\" is not an array"},
    {MANIFEST, LAY("'x'"), -EINVAL, "layer 1 is not an object"},
    {MANIFEST, LAY(L(GZ, DA, "1") ", " L(GZ, DB, "2") ", " L(GZ, "sha256:zz", "3")), -EINVAL,
     "layer 3: digest \"sha256:zz\" is not sha256 followed by 64 hex digits"},
    {MANIFEST, LAY(L(GZ, "sha256:" X64("A"), "1")), -EINVAL, "not sha256 followed by"},
    {MANIFEST, LAY(L(GZ, D("a") "0", "1")), -EINVAL, "not sha256 followed by"},
    {MANIFEST, LAY(L(GZ, "sha256", "1")), -EINVAL, "not sha256 followed by"},
    {MANIFEST, LAY(L(GZ, "sha512:" X64("a") X64("b"), "1")), -ENOTSUP,
     "\"sha512\" is not supported"},
    {MANIFEST, LAY(L(GZ, "blake3:" X64("a"), "1")), -ENOTSUP, "\"blake3\" is not supported"},
    {MANIFEST, LAY(L(GZ, DA, "-1")), -EINVAL, "size -1 is negative"},
    {MANIFEST, LAY(L(GZ, DA, "1125899906842625")), -E2BIG, "larger than 1 PiB"},
    {MANIFEST, LAY(L(GZ, DA, "99999999999999999999")), -EINVAL, "not valid JSON"},
    {MANIFEST, LAY(L(GZ, DA, "1.5")), -EINVAL, "\"size\" is not an integer"},
    {MANIFEST, LAY(L(GZ, DA, "'12'")), -EINVAL, "\"size\" is not an integer"},
    {MANIFEST, LAY("{'mediaType': '" GZ "', 'digest': '" DA "'}"), -EINVAL, "no \"size\""},
    {MANIFEST, LAY("{'mediaType': '" GZ "', 'size': 1}"), -EINVAL, "no \"digest\""},
    {MANIFEST, LAY("{'digest': '" DA "', 'size': 1}"), -EINVAL, "no \"mediaType\""},
    {MANIFEST, LAY("{'mediaType': ['x'], 'digest': '" DA "', 'size': 1}"), -EINVAL,
     "\"mediaType\" is not a string"},
    {MANIFEST, LAY(L("application/vnd.oci.image.layer.v1.tar+bzip2", DA, "1")), -ENOTSUP,
     "layer 1: media type \"application/vnd.oci.image.layer.v1.tar+bzip2\" is not a layer"},
    {MANIFEST, LAY(L(MT_DOCKER_CONFIG, DA, "1")), -ENOTSUP, "not a layer type"},
    {MANIFEST, LAY(L("application/vnd.oci.image.layer.v1.tar\\u0000+gzip", DA, "1")), -EINVAL,
     "NUL"},
    {MANIFEST, LAY(L(GZ, "sha256:\\u001b[31m", "1")), -EINVAL, "not sha256"},
    {MANIFEST, "{'schemaVersion': 2, 'x': '\xff\xfe'}", -EINVAL, "not valid JSON"},

    {INDEX, "{'schemaVersion': 2, 'manifests': {}}", -EINVAL, "\"manifests\" is not an array"},
    {INDEX, "{'schemaVersion': 2}", -EINVAL, "no \"manifests\""},
    {INDEX, "{'schemaVersion': 2, 'mediaType': '" MT_OCI_MANIFEST "', 'manifests': []}", -EINVAL,
     "not an index"},
    {INDEX, "{'schemaVersion': 1, 'manifests': []}", -ENOTSUP, "schema 1"},
    {INDEX, IDX("3"), -EINVAL, "index entry 1 is not an object"},
    {INDEX, IDX("{'mediaType': '" MT_OCI_MANIFEST "', 'size': 1, " AMD64 "}"), -EINVAL,
     "no \"digest\""},
    {INDEX, IDX("{'mediaType': '" MT_OCI_MANIFEST "', 'digest': '" DA "', " AMD64 "}"), -EINVAL,
     "\"size\" is missing or not an integer"},
    {INDEX,
     IDX("{'mediaType': '" MT_OCI_MANIFEST "', 'digest': '" DA "', 'size': 1, 'platform': "
         "'linux/amd64'}"),
     -EINVAL, "\"platform\" is not an object"},
    {INDEX,
     IDX("{'mediaType': '" MT_OCI_MANIFEST "', 'digest': '" DA "', 'size': 1, 'platform': "
         "{'os': 'linux'}}"),
     -EINVAL, "no \"architecture\""},
    {INDEX,
     IDX("{'mediaType': '" MT_OCI_MANIFEST "', 'digest': '" DA "', 'size': 1, 'platform': "
         "{'os': 'linux', 'architecture': 64}}"),
     -EINVAL, "\"architecture\" is not a string"},
    {INDEX,
     IDX("{'mediaType': '" MT_OCI_MANIFEST "', 'digest': '" DA "', 'size': 1, 'platform': "
         "{'os': 'linux', 'architecture': '" X64("x") "'}}"),
     -E2BIG, "longer than 31"},
    {INDEX,
     IDX("{'mediaType': '" MT_OCI_MANIFEST "', 'digest': '" DA "', 'size': 1, "
         "'annotations': [], " AMD64 "}"),
     -EINVAL, "\"annotations\" is not an object"},
    {INDEX, IDX("{'mediaType': '" MT_OCI_MANIFEST "', 'digest': 'sha256:1', 'size': 1, " AMD64 "}"),
     -EINVAL, "index entry 1: digest \"sha256:1\" is not sha256"},
    {INDEX, IDX("{'mediaType': '" MT_OCI_MANIFEST "', 'digest': '" DA "', 'size': -5, " AMD64 "}"),
     -EINVAL, "negative"},

    {CONFIG, "[]", -EINVAL, "not a JSON object"},
    {CONFIG, ICONF("'Env': ['PATH=/bin', 'FOO']"), -EINVAL, "\"Env\" entry 2 (\"FOO\") has no '='"},
    {CONFIG, ICONF("'Env': ['=x']"), -EINVAL, "no name before '='"},
    {CONFIG, ICONF("'Env': 'PATH=/bin'"), -EINVAL, "\"Env\" is not an array"},
    {CONFIG, ICONF("'Env': ['A=\\u0000']"), -EINVAL, "not valid JSON"},
    {CONFIG, ICONF("'Cmd': ['sh', 1]"), -EINVAL, "\"Cmd\" entry 2 is not a string"},
    {CONFIG, ICONF("'Entrypoint': 'sh'"), -EINVAL, "\"Entrypoint\" is not an array"},
    {CONFIG, ICONF("'WorkingDir': 5"), -EINVAL, "\"WorkingDir\" is not a string"},
    {CONFIG, ICONF("'User': {}"), -EINVAL, "\"User\" is not a string"},
    {CONFIG,
     "{'architecture': 'amd64', 'os': 'linux', 'config': [], 'rootfs': {'type': "
     "'layers', 'diff_ids': []}}",
     -EINVAL, "\"config\" is not an object"},
    {CONFIG, "{'architecture': 'amd64', 'os': 'linux'}", -EINVAL, "no \"rootfs\""},
    {CONFIG, "{'os': 'linux', 'rootfs': {'type': 'layers', 'diff_ids': []}}", -EINVAL,
     "no \"architecture\""},
    {CONFIG, "{'architecture': 'amd64', 'os': 'linux', 'rootfs': {'type': 'x', 'diff_ids': []}}",
     -EINVAL, "not \"layers\""},
    {CONFIG, "{'architecture': 'amd64', 'os': 'linux', 'rootfs': {'type': 'layers'}}", -EINVAL,
     "no \"diff_ids\""},
    {CONFIG,
     "{'architecture': 'amd64', 'os': 'linux', 'rootfs': {'type': 'layers', "
     "'diff_ids': ['md5']}}",
     -EINVAL, "\"diff_ids\" entry 1: digest \"md5\""},
    {CONFIG,
     "{'architecture': 'amd64', 'os': 'linux', 'created': 'yesterday', 'rootfs': "
     "{'type': 'layers', 'diff_ids': []}}",
     -EINVAL, "not an RFC 3339 time"},
    {CONFIG,
     "{'architecture': 'amd64', 'os': 'linux', 'created': '2024-05-01T10:00:00', "
     "'rootfs': {'type': 'layers', 'diff_ids': []}}",
     -EINVAL, "not an RFC 3339 time"},

    {ARCHIVE, "{}", -EINVAL, "not a JSON array"},
    {ARCHIVE, "[]", -EINVAL, "no images"},
    {ARCHIVE, "['x']", -EINVAL, "image 1 is not an object"},
    {ARCHIVE, "[{'Config': 'c.json', 'Layers': ['a/layer.tar', '../../etc/passwd']}]", -EINVAL,
     "\"Layers\" entry 2 (\"../../etc/passwd\") has a \"..\" component"},
    {ARCHIVE, "[{'Config': 'c.json', 'Layers': ['a/..']}]", -EINVAL, "\"..\" component"},
    {ARCHIVE, "[{'Config': 'c.json', 'Layers': ['/etc/shadow']}]", -EINVAL, "absolute path"},
    {ARCHIVE, "[{'Config': 'x/../../c.json', 'Layers': []}]", -EINVAL,
     "\"Config\" (\"x/../../c.json\") has a \"..\" component"},
    {ARCHIVE, "[{'Config': '/c.json', 'Layers': []}]", -EINVAL, "absolute path"},
    {ARCHIVE, "[{'Config': '', 'Layers': []}]", -EINVAL, "is empty"},
    {ARCHIVE, "[{'Layers': []}]", -EINVAL, "no \"Config\""},
    {ARCHIVE, "[{'Config': 'c.json'}]", -EINVAL, "no \"Layers\" array"},
    {ARCHIVE, "[{'Config': 'c.json', 'Layers': [1]}]", -EINVAL, "not a string"},
    {ARCHIVE, "[{'Config': 'c.json', 'Layers': [], 'RepoTags': 'a:b'}]", -EINVAL,
     "\"RepoTags\" is not an array"},

    {KIND, "{'schemaVersion': 2, 'manifests': [], 'layers': []}", -EINVAL, "both"},
    {KIND, "{'schemaVersion': 1, 'fsLayers': []}", -ENOTSUP, "schema 1"},
    {KIND,
     "{'schemaVersion': 2, 'mediaType': "
     "'application/vnd.docker.distribution.manifest.v1+json'}",
     -ENOTSUP, "schema 1"},
};

static void test_bad_inputs(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refused(bad[i].p, bad[i].doc, bad[i].err, bad[i].says);

	/* bytes a C string cannot carry: a NUL inside and outside a string */
	static const char nul_in[] = "{\"schemaVersion\": 2, \"mediaType\": \"a\0b\"}";
	refused_len(MANIFEST, nul_in, sizeof(nul_in) - 1, -EINVAL, "not valid JSON");
	static const char nul_out[] = "{\"schemaVersion\": 2}\0";
	refused_len(MANIFEST, nul_out, sizeof(nul_out), -EINVAL, "not valid JSON");
	refused_len(MANIFEST, NULL, 5, -EINVAL, "no data");
}

/* @head, @n copies of @item separated by @sep, @tail; ' swapped for ". */
static char *repeat(const char *head, const char *item, const char *sep, size_t n, const char *tail)
{
	size_t hl = strlen(head), il = strlen(item), sl = strlen(sep), tl = strlen(tail);
	char *s = malloc(hl + n * (il + sl) + tl + 1), *p = s;
	assert_non_null(s);
	memcpy(p, head, hl);
	p += hl;
	for (size_t i = 0; i < n; i++) {
		memcpy(p, item, il);
		p += il;
		if (i + 1 < n) {
			memcpy(p, sep, sl);
			p += sl;
		}
	}
	memcpy(p, tail, tl + 1);
	for (char *c = s; *c; c++)
		if (*c == '\'')
			*c = '"';
	return s;
}

static void limit(enum parser p, const char *head, const char *item, size_t max, const char *tail,
                  const char *says)
{
	char why[400] = "";
	char *s = repeat(head, item, ", ", max, tail);
	int r = run(p, s, strlen(s), why, sizeof(why));
	if (r)
		fail_msg("%zu: %d %s", max, r, why);
	free(s);
	s = repeat(head, item, ", ", max + 1, tail);
	refused_len(p, s, strlen(s), -E2BIG, says);
	free(s);
}

static void test_limits(void **state)
{
	(void)state;
	limit(MANIFEST, "{'schemaVersion': 2, 'config': " GOODC ", 'layers': [", L(GZ, DA, "1"),
	      MANIFEST_MAX_LAYERS, "]}", "manifest has 257 layers; msb takes at most 256");
	limit(INDEX, "{'schemaVersion': 2, 'manifests': [",
	      "{'mediaType': '" MT_OCI_MANIFEST "', 'digest': '" DA "', 'size': 1, " AMD64 "}",
	      INDEX_MAX_MANIFESTS, "]}", "1025 entries");
	limit(CONFIG, "{'architecture': 'amd64', 'os': 'linux', 'config': {'Env': [", "'A=1'",
	      CONFIG_MAX_ENV, "]}, 'rootfs': {'type': 'layers', 'diff_ids': []}}",
	      "\"Env\" has 4097 entries");
	limit(CONFIG, "{'architecture': 'amd64', 'os': 'linux', 'config': {'Cmd': [", "'x'",
	      CONFIG_MAX_ARGV, "]}, 'rootfs': {'type': 'layers', 'diff_ids': []}}",
	      "\"Cmd\" has 4097 entries");
	limit(CONFIG,
	      "{'architecture': 'amd64', 'os': 'linux', 'rootfs': {'type': 'layers', "
	      "'diff_ids': [",
	      "'" DA "'", MANIFEST_MAX_LAYERS, "]}}", "\"diff_ids\" has 257 entries");
	limit(ARCHIVE, "[{'Config': 'c.json', 'Layers': [", "'l.tar'", MANIFEST_MAX_LAYERS, "]}]",
	      "\"Layers\" has 257 entries");

	/* one string past 64 KiB */
	char *s =
	    repeat("{'architecture': 'amd64', 'os': 'linux', 'config': {'User': '", "u", "",
	           MANIFEST_MAX_STRING + 1, "'}, 'rootfs': {'type': 'layers', 'diff_ids': []}}");
	refused_len(CONFIG, s, strlen(s), -E2BIG, "\"User\" is longer than 65536 bytes");
	free(s);

	/* nesting, and a body past 4 MiB, before any parsing */
	s = repeat("{'schemaVersion': 2, 'x': ", "[", "", MANIFEST_MAX_DEPTH, "");
	refused_len(MANIFEST, s, strlen(s), -E2BIG, "nests deeper than 64");
	free(s);
	size_t n = MANIFEST_MAX_BYTES + 1;
	char *doc = malloc(n);
	assert_non_null(doc);
	memset(doc, ' ', n);
	refused_len(INDEX, doc, n, -E2BIG, "larger than 4 MiB");
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_index_select),  cmocka_unit_test(test_platforms),
	    cmocka_unit_test(test_manifest_kind), cmocka_unit_test(test_manifests),
	    cmocka_unit_test(test_image_config),  cmocka_unit_test(test_docker_archive),
	    cmocka_unit_test(test_bad_inputs),    cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
