/* msb info: how this machine runs sandboxes, and where msb keeps things. */
#include "cli.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int cmd_info(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf(
			    "usage: msb info\n\nShows the host mode msb uses here (native /dev/kvm "
			    "or the portable host) and why,\nand where msb keeps its state, cache "
			    "and files. Runs the KVM self-test if its\nresult is not cached yet. "
			    "See also: msb doctor.\n");
			return 0;
		}
		fprintf(stderr, "msb info: unknown argument '%s' (see msb info --help)\n", argv[i]);
		return 2;
	}
	struct msb_host_choice c;
	if (cli_select_host(&c, 0))
		return 1;
	char home[4096] = "?", cache[4096] = "?", share[4096] = "?", phost[4200] = "?";
	msb_home(home, sizeof(home));
	msb_cache_dir(cache, sizeof(cache));
	msb_share_dir(share, sizeof(share));
	snprintf(phost, sizeof(phost), "%s/phost/vmlinuz", share);
	printf("msb %s\n", MSB_VERSION);
	printf("host mode:     %s\n", c.mode == MSB_HOST_NATIVE ? "native" : "portable");
	printf("why:           %s%s\n", c.why, c.from_cache ? " (self-test result cached)" : "");
	printf("home:          %s\n", home);
	printf("cache:         %s\n", cache);
	printf("share:         %s\n", share);
	if (c.mode == MSB_HOST_PORTABLE)
		printf("portable host: %s\n",
		       access(phost, R_OK) == 0 ? "image installed" : "image missing (run make)");
	return 0;
}
