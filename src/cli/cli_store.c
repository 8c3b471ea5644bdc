/* What the image commands share: the store, and which registries are plain HTTP. */
#include "cli.h"

#include "lib/image/ref.h"
#include "lib/image/store.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_open_store(struct store **out)
{
	char home[PATH_MAX], why[1024];
	if (msb_home(home, sizeof(home)) < 0) {
		fprintf(stderr, "msb: error: $MSB_HOME is too long\n");
		return 1;
	}
	if (store_open(home, out, why, sizeof(why)) < 0) {
		fprintf(stderr, "msb: error: cannot open the image store in %s: %s\n", home, why);
		return 1;
	}
	return 0;
}

int cli_insecure_registry(const char *name)
{
	const char *list = getenv("MSB_INSECURE_REGISTRIES");
	struct image_ref r;
	char why[300];
	if (!list || !*list || image_ref_parse(name, &r, why, sizeof(why)) < 0)
		return 0;
	/* "host:5000,other.example" (commas or spaces) */
	size_t dl = strlen(r.domain), rl = strlen(r.registry);
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ", ");
		if ((n == dl && !strncmp(p, r.domain, n)) ||
		    (n == rl && !strncmp(p, r.registry, n)))
			return 1;
		p += n;
		p += strspn(p, ", ");
	}
	return 0;
}
