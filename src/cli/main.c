#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static const struct cli_cmd commands[] = {
    {"info", "show how this machine runs sandboxes, and where msb keeps its files", cmd_info},
    {"doctor", "check that this machine can run sandboxes by starting a test VM", cmd_doctor},
    {"init", "start a project: a commented Sandboxfile and .msb/", cmd_init},
    {"add", "add sandboxes to the project's Sandboxfile", cmd_add},
    {"remove", "remove sandboxes from the project's Sandboxfile (alias: rm)", cmd_remove},
    {"rm", NULL, cmd_remove},
    {"list", "the project's sandboxes and builds", cmd_list},
    {"tree", "the project's sandboxes as a tree of what they depend on", cmd_tree},
    {"run", "run a script of a project sandbox, which keeps its files (alias: r; or: msr)",
     cmd_run},
    {"r", NULL, cmd_run},
    {"shell", "an interactive shell in a project sandbox", cmd_shell},
    {"up", "start the project's sandboxes in the background, in depends_on order", cmd_up},
    {"down", "stop the project's running sandboxes, dependants first", cmd_down},
    {"status", "the project's sandboxes: running, uptime, CPU, memory, disk (alias: ps)",
     cmd_status},
    {"ps", NULL, cmd_status},
    {"log", "what a sandbox started in the background wrote", cmd_log},
    {"clean", "remove what project sandboxes kept between runs", cmd_clean},
    {"pull", "download an image from its registry", cmd_pull},
    {"exe", "run a command in a throwaway sandbox of an image (alias: x)", cmd_exe},
    {"x", NULL, cmd_exe},
    {"image", "list, remove and prune pulled images", cmd_image},
    {"load", "store the images of an OCI or docker archive (no registry needed)", cmd_load},
    {"import", "make a root file system tar an image", cmd_import},
    {"login", "save credentials for a registry", cmd_login},
    {"logout", "forget a registry's credentials", cmd_logout},
    {"prepare", "make a VM shape's warm-start image now, so its first sandbox starts warm",
     cmd_prepare},
    {"install", "put a command on your PATH that runs an image in a sandbox (or: msi)",
     cmd_install},
    {"uninstall", "remove a command msb install put on your PATH", cmd_uninstall},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: msb COMMAND [OPTIONS]\n\nmsb runs untrusted code in hardware-isolated "
	           "microVMs.\n\nCommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (commands[i].summary) /* aliases are not listed */
			fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(f,
	        "\nRun 'msb COMMAND --help' for a command's options.\n"
	        "Environment: MSB_HOST=native|portable|auto (default auto), MSB_HOME (the store,\n"
	        "default ~/.local/share/msb), MSB_INSECURE_REGISTRIES (hosts reached over plain\n"
	        "HTTP), DOCKER_CONFIG (where registry credentials are).\n");
}

/* The one piece of global state: what an async signal handler may touch. */
static volatile sig_atomic_t stop_signal, stop_count;

static void on_stop_signal(int sig)
{
	stop_signal = sig;
	stop_count++;
}

void cli_catch_stop_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal; /* no SA_RESTART: waits return EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

int cli_stop_signal(void)
{
	return stop_signal;
}

int cli_stop_count(void)
{
	return stop_count;
}

void cli_say(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "msb: %s\n", msg);
}

int cli_number(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (end == s || *end || errno || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int cli_is_builtin_image(const char *name)
{
	return !strncmp(name, CLI_BUILTIN_DOMAIN "/", sizeof(CLI_BUILTIN_DOMAIN));
}

int cli_fail(const struct msb_err *e)
{
	fprintf(stderr, "msb: error: %s\n", e->msg);
	return 1;
}

int cli_select_host(struct msb_host_choice *c, int always)
{
	struct msb_err err = {0};
	if (msb_host_select(c, &err) < 0)
		return cli_fail(&err);
	if (always || (!c->from_cache && !c->forced))
		fprintf(stderr, "msb: %s\n", c->why);
	return 0;
}

int main(int argc, char **argv)
{
	/* A closed stream must be an error to handle, not a silent death. */
	signal(SIGPIPE, SIG_IGN);
	/* msx is `msb exe` by another name (a link installed beside msb). */
	const char *base = strrchr(argv[0], '/');
	if (!strcmp(base ? base + 1 : argv[0], "msx"))
		return cmd_exe(argc, argv);
	if (!strcmp(base ? base + 1 : argv[0], "msi")) /* and msi is `msb install` */
		return cmd_install(argc, argv);
	if (!strcmp(base ? base + 1 : argv[0], "msr")) /* and msr is `msb run` */
		return cmd_run(argc, argv);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	/* msb help COMMAND is msb COMMAND --help */
	if (!strcmp(argv[1], "help") && argc > 2) {
		for (size_t i = 0; i < NCOMMANDS; i++)
			if (!strcmp(argv[2], commands[i].name)) {
				char *hargv[] = {argv[2], "--help", NULL};
				return commands[i].run(2, hargv);
			}
		fprintf(stderr, "msb: no command '%s'\n\n", argv[2]);
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("msb %s\n", MSB_VERSION);
		return 0;
	}
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "msb: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
