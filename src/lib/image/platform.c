/* Platforms: a user's, the host's, a document's (see manifest.h). */
#include "manifest.h"
#include "manifest_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

/* "os", "architecture" (both required) and "variant" of @o. */
int platform_from(json_t *o, const char *ctx, struct platform *p, char *why, size_t wl)
{
	const char *os, *arch, *variant;
	int r;
	if ((r = doc_get_str(o, "os", sizeof(p->os) - 1, 0, &os, ctx, why, wl)) ||
	    (r = doc_get_str(o, "architecture", sizeof(p->arch) - 1, 0, &arch, ctx, why, wl)) ||
	    (r = doc_get_str(o, "variant", sizeof(p->variant) - 1, 0, &variant, ctx, why, wl)))
		return r;
	if (!os || !arch)
		return doc_fail(why, wl, -EINVAL, "%s has no \"%s\"", ctx,
		                os ? "architecture" : "os");
	snprintf(p->os, sizeof(p->os), "%.31s", os);
	snprintf(p->arch, sizeof(p->arch), "%.31s", arch);
	snprintf(p->variant, sizeof(p->variant), "%.31s", variant ? variant : "");
	return 0;
}

int platform_parse(const char *s, struct platform *p, char *why, size_t why_len)
{
	static const char *const arch_alias[][2] = {{"x86_64", "amd64"},  {"x86-64", "amd64"},
	                                            {"aarch64", "arm64"}, {"i386", "386"},
	                                            {"i686", "386"},      {NULL, NULL}};
	char part[3][32];
	size_t np = 0;
	memset(p, 0, sizeof(*p));
	if (!s || !*s)
		return doc_fail(why, why_len, -EINVAL, "platform is empty");
	for (const char *c = s;; c++) {
		size_t l = strcspn(c, "/");
		if (np == 3 || l == 0 || l >= sizeof(part[0]))
			goto bad;
		for (size_t k = 0; k < l; k++) {
			char ch = c[k] >= 'A' && c[k] <= 'Z' ? (char)(c[k] - 'A' + 'a') : c[k];
			if (!lower_alnum(ch) && ch != '.' && ch != '_' && ch != '-')
				goto bad;
			part[np][k] = ch;
		}
		part[np++][l] = 0;
		c += l;
		if (!*c)
			break;
	}
	if (np == 1 && (!strcmp(part[0], "linux") || !strcmp(part[0], "windows") ||
	                !strcmp(part[0], "darwin")))
		return doc_fail(why, why_len, -EINVAL,
		                "platform \"%s\" names only an OS; give os/arch, like linux/amd64",
		                part[0]);
	snprintf(p->os, sizeof(p->os), "%.31s", np == 1 ? "linux" : part[0]);
	snprintf(p->arch, sizeof(p->arch), "%.31s", part[np == 1 ? 0 : 1]);
	if (np == 3)
		snprintf(p->variant, sizeof(p->variant), "%.31s", part[2]);
	for (size_t i = 0; arch_alias[i][0]; i++)
		if (!strcmp(p->arch, arch_alias[i][0]))
			snprintf(p->arch, sizeof(p->arch), "%.31s", arch_alias[i][1]);
	return 0;
bad:
	memset(p, 0, sizeof(*p));
	return doc_fail(why, why_len, -EINVAL,
	                "platform \"%.64s\" is not os/arch[/variant], like linux/amd64 or "
	                "linux/arm64/v8",
	                s);
}

void platform_host(struct platform *p)
{
	static const char *const machines[][3] = {
	    {"x86_64", "amd64", ""},  {"amd64", "amd64", ""},  {"aarch64", "arm64", "v8"},
	    {"arm64", "arm64", "v8"}, {"i386", "386", ""},     {"i686", "386", ""},
	    {"armv7l", "arm", "v7"},  {"armv6l", "arm", "v6"}, {"loongarch64", "loong64", ""},
	    {NULL, NULL, NULL}};
	struct utsname u;
	const char *m =
#if defined(__x86_64__)
	    "x86_64";
#elif defined(__aarch64__)
	    "aarch64";
#else
	    "unknown";
#endif
	if (uname(&u) == 0)
		m = u.machine;
	memset(p, 0, sizeof(*p));
	snprintf(p->os, sizeof(p->os), "linux");
	snprintf(p->arch, sizeof(p->arch), "%.31s", m); /* ppc64le, s390x, riscv64: same names */
	for (size_t i = 0; machines[i][0]; i++)
		if (!strcmp(m, machines[i][0])) {
			snprintf(p->arch, sizeof(p->arch), "%.31s", machines[i][1]);
			snprintf(p->variant, sizeof(p->variant), "%.31s", machines[i][2]);
		}
}

void platform_format(const struct platform *p, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s%s%s", p->os, p->arch, p->variant[0] ? "/" : "", p->variant);
}
