/* What the image commands share: the store, and which registries are plain HTTP. */
#include "cli.h"
#include "pull_view.h"

#include "lib/image/pull.h"

#include "lib/image/ref.h"
#include "lib/image/store.h"

#include <errno.h>
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

int cli_image_open(const char *name, const struct cli_pull *how, struct store_image *im,
                   char *erofs, size_t erofs_len, struct image_config *cfg, int *guard)
{
	struct store *s;
	*guard = -1;
	if (cli_open_store(&s))
		return 1;
	char why[2048];
	int e = image_find(s, name, im, erofs, erofs_len, cfg, why, sizeof(why));
	if (e == -ENOENT && cli_is_builtin_image(name)) {
		fprintf(stderr,
		        "msb: error: the built-in image %s is not here: ./setup makes it "
		        "(or 'msb import' a root file system tar under that name)\n",
		        name);
		store_close(s);
		return 1;
	}
	if (e == -ENOENT) {
		struct pull_view view;
		pull_view_init(&view, how->quiet);
		struct pull_opts po = {.platform = how->platform,
		                       .insecure = how->insecure || cli_insecure_registry(name),
		                       .progress = pull_view_event,
		                       .progress_arg = &view,
		                       .cancelled = pull_view_cancelled};
		struct store_image pulled;
		e = image_pull(s, name, &po, &pulled, why, sizeof(why));
		if (!e) {
			store_image_free(&pulled);
			e = image_find(s, name, im, erofs, erofs_len, cfg, why, sizeof(why));
		}
	}
	/* Held until the VM has the image open: a prune meanwhile keeps it. */
	if (!e)
		*guard = store_guard(s);
	store_close(s);
	if (e) {
		fprintf(stderr, "msb: error: %s\n", why);
		return 1;
	}
	return 0;
}
