/* Where msb keeps its state, its cache and its own files. */
#include "msb.h"
#include "fsutil.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *home_dir(void)
{
	const char *h = getenv("HOME");
	return h && *h ? h : "/";
}

int msb_home(char *buf, size_t len)
{
	const char *v = getenv("MSB_HOME");
	if (v && *v)
		return fs_path(buf, len, "%s", v);
	v = getenv("XDG_DATA_HOME");
	if (v && *v)
		return fs_path(buf, len, "%s/msb", v);
	return fs_path(buf, len, "%s/.local/share/msb", home_dir());
}

int msb_cache_dir(char *buf, size_t len)
{
	const char *v = getenv("XDG_CACHE_HOME");
	if (v && *v)
		return fs_path(buf, len, "%s/msb", v);
	return fs_path(buf, len, "%s/.cache/msb", home_dir());
}

/* <dir of the running executable>/../@rel, or $@env when set. */
static int beside_exe(char *buf, size_t len, const char *env, const char *rel)
{
	const char *v = getenv(env);
	if (v && *v)
		return fs_path(buf, len, "%s", v);
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return -errno;
	exe[n] = 0;
	char *slash = strrchr(exe, '/');
	if (!slash)
		return -ENOENT;
	*slash = 0;
	return fs_path(buf, len, "%s/../%s", exe, rel);
}

int msb_share_dir(char *buf, size_t len)
{
	return beside_exe(buf, len, "MSB_SHARE_DIR", "share/msb");
}

int msb_libexec_dir(char *buf, size_t len)
{
	return beside_exe(buf, len, "MSB_LIBEXEC_DIR", "libexec/msb");
}
