#include "identity.h"
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int identity_add(uint64_t *h, const char *path, struct msb_err *err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return err_set(err, -errno, "cannot read %s: %s", path, strerror(errno));
	char id[4200];
	int n = snprintf(id, sizeof(id), "%s|%lld|%lld.%ld|%llu|%llu;", path, (long long)st.st_size,
	                 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
	                 (unsigned long long)st.st_ino, (unsigned long long)st.st_dev);
	*h = fnv1a(*h, id, n > 0 && (size_t)n < sizeof(id) ? (size_t)n : sizeof(id) - 1);
	return 0;
}
