/*
 * msb login / msb logout: a registry's credentials in Docker's
 * ~/.docker/config.json, written the way Docker writes them, so either tool
 * uses what the other saved.
 */
#include "cli.h"

#include "lib/image/auth.h"
#include "lib/image/ref.h"
#include "lib/image/registry.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define CRED_MAX 1024

static void login_usage(FILE *f)
{
	fprintf(f, "usage: msb login [-u USER] [-p PASSWORD | --password-stdin] [--insecure] "
	           "[REGISTRY]\n\n"
	           "Checks the credentials with REGISTRY (host[:port]; default Docker Hub) and\n"
	           "saves them in ~/.docker/config.json ($DOCKER_CONFIG/config.json when set),\n"
	           "where msb pull and Docker find them. Asks for what is not given when stdin\n"
	           "is a terminal.\n");
}

static void logout_usage(FILE *f)
{
	fprintf(f, "usage: msb logout [REGISTRY]\n\n"
	           "Removes REGISTRY's credentials (default Docker Hub) from Docker's\n"
	           "config.json.\n");
}

/* The registry part of @arg ("localhost:5000", "ghcr.io", "docker.io"). */
static int registry_of(const char *arg, struct image_ref *r)
{
	char probe[IMAGE_NAME_MAX + 16], why[300];
	/* A repository under it gives the parser's view of the host. */
	snprintf(probe, sizeof(probe), "%s/msb/login", arg ? arg : "docker.io");
	if (strchr(arg ? arg : "", '/') || image_ref_parse(probe, r, why, sizeof(why)) < 0 ||
	    strcmp(r->repository, "msb/login")) {
		fprintf(stderr, "msb: error: \"%s\" is not a registry (host or host:port)\n", arg);
		return -1;
	}
	return 0;
}

/* One line from the terminal or stdin, without its newline; echo off for
 * a password on a terminal. */
static int read_line(const char *prompt, int secret, char *buf, size_t len)
{
	int tty = isatty(STDIN_FILENO);
	struct termios saved, t;
	if (tty) {
		fprintf(stderr, "%s", prompt);
		if (secret && tcgetattr(STDIN_FILENO, &saved) == 0) {
			t = saved;
			t.c_lflag &= ~(tcflag_t)ECHO;
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &t);
		} else {
			secret = 0;
		}
	}
	char *got = fgets(buf, (int)len, stdin);
	if (tty && secret) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
		fprintf(stderr, "\n");
	}
	if (!got)
		return -1;
	buf[strcspn(buf, "\r\n")] = 0;
	return 0;
}

int cmd_login(int argc, char **argv)
{
	const char *user = NULL, *pass = NULL, *host = NULL;
	int from_stdin = 0, insecure = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			login_usage(stdout);
			return 0;
		} else if ((!strcmp(a, "-u") || !strcmp(a, "--username")) && i + 1 < argc) {
			user = argv[++i];
		} else if ((!strcmp(a, "-p") || !strcmp(a, "--password")) && i + 1 < argc) {
			pass = argv[++i];
		} else if (!strcmp(a, "--password-stdin")) {
			from_stdin = 1;
		} else if (!strcmp(a, "--insecure")) {
			insecure = 1;
		} else if (a[0] != '-' && !host) {
			host = a;
		} else {
			fprintf(stderr, "msb login: bad argument %s\n", a);
			login_usage(stderr);
			return 2;
		}
	}
	struct image_ref r;
	if (registry_of(host, &r) < 0)
		return 1;
	char ubuf[CRED_MAX], pbuf[CRED_MAX];
	if (!user) {
		if (from_stdin || read_line("Username: ", 0, ubuf, sizeof(ubuf)) < 0 || !ubuf[0]) {
			fprintf(stderr, "msb: error: a user name is needed (-u USER)\n");
			return 1;
		}
		user = ubuf;
	}
	if (!pass) {
		if ((!from_stdin && !isatty(STDIN_FILENO)) ||
		    read_line("Password: ", 1, pbuf, sizeof(pbuf)) < 0) {
			fprintf(stderr,
			        "msb: error: a password is needed (-p, --password-stdin, or a "
			        "terminal to type it)\n");
			return 1;
		}
		pass = pbuf;
	}
	struct registry_opts o = {.insecure = insecure || cli_insecure_registry(r.domain),
	                          .user = user,
	                          .pass = pass,
	                          .max_attempts = 2};
	struct registry *reg;
	char why[1500];
	int e = registry_open(&r, &o, &reg, why, sizeof(why));
	if (!e) {
		e = registry_ping(reg, why, sizeof(why));
		registry_close(reg);
	}
	if (e) {
		fprintf(stderr, "msb: error: login to %s failed: %s\n", r.registry, why);
		return 1;
	}
	char path[PATH_MAX];
	if (auth_config_path(path, sizeof(path)) < 0 ||
	    auth_config_set(path, r.registry, user, pass, why, sizeof(why)) < 0) {
		fprintf(stderr, "msb: error: cannot save the credentials: %s\n", why);
		return 1;
	}
	explicit_bzero(pbuf, sizeof(pbuf));
	fprintf(stderr, "msb: logged in to %s (saved in %s)\n", r.registry, path);
	return 0;
}

int cmd_logout(int argc, char **argv)
{
	const char *host = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			logout_usage(stdout);
			return 0;
		} else if (argv[i][0] != '-' && !host) {
			host = argv[i];
		} else {
			fprintf(stderr, "msb logout: bad argument %s\n", argv[i]);
			logout_usage(stderr);
			return 2;
		}
	}
	struct image_ref r;
	if (registry_of(host, &r) < 0)
		return 1;
	char path[PATH_MAX], why[1024];
	if (auth_config_path(path, sizeof(path)) < 0) {
		fprintf(stderr, "msb: error: cannot find Docker's config.json\n");
		return 1;
	}
	int e = auth_config_set(path, r.registry, NULL, NULL, why, sizeof(why));
	if (e == -ENOENT) {
		fprintf(stderr, "msb: not logged in to %s\n", r.registry);
		return 0;
	}
	if (e) {
		fprintf(stderr, "msb: error: cannot remove the credentials: %s\n", why);
		return 1;
	}
	fprintf(stderr, "msb: removed the credentials for %s from %s\n", r.registry, path);
	return 0;
}
