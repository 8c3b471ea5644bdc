/*
 * msb status|ps, msb log, msb clean: what a project's sandboxes are doing
 * and what they keep.
 */
#include "cli.h"
#include "project_args.h"
#include "sandbox_run.h"

#include "fsutil.h"
#include "lib/image/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CPU_SAMPLE_MS 500

static void status_usage(FILE *f)
{
	fprintf(f, "usage: msb status [OPTIONS] [NAME...]\n       msb ps ...\n\n"
	           "The project's sandboxes: running or not, the VM's pid, uptime, CPU use over\n"
	           "half a second, memory the VM takes on this machine, and the space its\n"
	           "writable layer takes on disk.\n\n"
	           "  -a, --all        every running sandbox of every project (no Sandboxfile\n"
	           "                   needed)\n"
	           "  -f, --file PATH  the Sandboxfile, or the project directory\n");
}

static void log_usage(FILE *f)
{
	fprintf(f,
	        "usage: msb log [OPTIONS] NAME\n\n"
	        "What sandbox NAME's main command wrote while it ran in the background (msb up,\n"
	        "msb run -d), from .msb/log/NAME.log.\n\n"
	        "  -n, --lines N    only the last N lines\n"
	        "  -f, --follow     keep printing what it writes until it stops\n"
	        "  --file PATH      the Sandboxfile, or the project directory\n");
}

static void clean_usage(FILE *f)
{
	fprintf(f, "usage: msb clean [OPTIONS] NAME... | --all\n\n"
	           "Removes what the sandboxes kept between runs (their writable layer), so the\n"
	           "next run starts from the image again. Asks first, unless --force. A running\n"
	           "sandbox is refused: msb down it first.\n\n"
	           "  --all            every sandbox of the project\n"
	           "  --force          do not ask\n"
	           "  -f, --file PATH  the Sandboxfile, or the project directory\n");
}

/* ---- status --------------------------------------------------------------- */

/* utime + stime of @pid in clock ticks, or 0. */
static unsigned long long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (fs_read_small(path, buf, sizeof(buf)) <= 0)
		return 0;
	const char *p = strrchr(buf, ')');
	unsigned long long ut = 0, st = 0;
	/* after ')': state (3), then fields 4..13, utime (14), stime (15) */
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return 0;
	return ut + st;
}

/* Resident memory of @pid in KiB, or 0. */
static unsigned long rss_kib(pid_t pid)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (fs_read_small(path, buf, sizeof(buf)) <= 0)
		return 0;
	const char *p = strstr(buf, "\nVmRSS:");
	return p ? strtoul(p + 7, NULL, 10) : 0;
}

static void human(uint64_t bytes, char *buf, size_t len)
{
	if (bytes >= 10ull << 30)
		snprintf(buf, len, "%llu GiB", (unsigned long long)(bytes >> 30));
	else if (bytes >= 10ull << 20)
		snprintf(buf, len, "%llu MiB", (unsigned long long)(bytes >> 20));
	else
		snprintf(buf, len, "%llu KiB", (unsigned long long)(bytes >> 10));
}

static void duration(long s, char *buf, size_t len)
{
	if (s < 120)
		snprintf(buf, len, "%lds", s);
	else if (s < 7200)
		snprintf(buf, len, "%ldm", s / 60);
	else if (s < 172800)
		snprintf(buf, len, "%ldh", s / 3600);
	else
		snprintf(buf, len, "%ldd", s / 86400);
}

/* msb status --all: the records of every project. */
static int status_all(void)
{
	struct store *s;
	if (cli_open_store(&s))
		return 1;
	struct sandbox_record *recs = NULL;
	size_t n = 0;
	char why[1024];
	int e = sandbox_record_list(s, NULL, &recs, &n, why, sizeof(why));
	store_close(s);
	if (e < 0) {
		fprintf(stderr, "msb: error: cannot read the running sandboxes: %s\n", why);
		return 1;
	}
	printf("%-16s %8s %7s %9s  %s\n", "NAME", "PID", "UPTIME", "MEMORY", "PROJECT");
	for (size_t i = 0; i < n; i++) {
		char pid[16] = "-", upt[32], mem[32] = "-";
		if (recs[i].vmm > 0) {
			snprintf(pid, sizeof(pid), "%d", (int)recs[i].vmm);
			human((uint64_t)rss_kib(recs[i].vmm) << 10, mem, sizeof(mem));
		}
		duration((long)(time(NULL) - recs[i].started), upt, sizeof(upt));
		printf("%-16s %8s %7s %9s  %s\n", recs[i].name, pid, upt, mem, recs[i].project);
	}
	sandbox_records_free(recs, n);
	return 0;
}

int cmd_status(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-a") || !strcmp(argv[i], "--all")) {
			if (argc != 2) {
				fprintf(stderr, "msb %s: --all takes no other arguments\n",
				        argv[0]);
				return 2;
			}
			return status_all();
		}
	struct project_args a;
	int rc;
	if (!project_args_begin(argc, argv, PA_KNOWN, status_usage, &a, &rc))
		return rc;
	const struct project *p = &a.p;
	size_t n = p->sf->nsandboxes;
	struct sandbox_record *recs = calloc(n + 1, sizeof(*recs));
	unsigned long long *t0 = calloc(n + 1, sizeof(*t0));
	int any = 0;
	rc = !recs || !t0 || sandbox_records_of(p, recs) < 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if (!project_args_picked(&a, p->sf->sandboxes[i].name.s))
			continue;
		if (recs[i].name && recs[i].vmm > 0) {
			t0[i] = cpu_ticks(recs[i].vmm);
			any = 1;
		}
	}
	/* CPU: one sample for all of them */
	if (any && !rc) {
		struct timespec ts = {.tv_nsec = CPU_SAMPLE_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
	long hz = sysconf(_SC_CLK_TCK);
	if (!rc)
		printf("%-16s %-8s %8s %7s %6s %9s %9s\n", "NAME", "STATUS", "PID", "UPTIME", "CPU",
		       "MEMORY", "DISK");
	for (size_t i = 0; i < n && !rc; i++) {
		const char *name = p->sf->sandboxes[i].name.s;
		if (!project_args_picked(&a, name))
			continue;
		char disk[PATH_MAX], dsz[32] = "-", mem[32] = "-", pid[16] = "-", upt[32] = "-",
		                     cpu[16] = "-";
		uint64_t bytes;
		if (!project_disk_path(p, name, disk, sizeof(disk)) &&
		    msb_disk_usage(disk, &bytes, NULL) == 0)
			human(bytes, dsz, sizeof(dsz));
		if (recs[i].name && recs[i].vmm > 0) {
			snprintf(pid, sizeof(pid), "%d", (int)recs[i].vmm);
			duration((long)(time(NULL) - recs[i].started), upt, sizeof(upt));
			unsigned long long t1 = cpu_ticks(recs[i].vmm);
			double pct = hz > 0 && t1 >= t0[i]
			                 ? 100.0 * (double)(t1 - t0[i]) / (double)hz /
			                       (CPU_SAMPLE_MS / 1000.0)
			                 : 0;
			snprintf(cpu, sizeof(cpu), "%.1f%%", pct);
			human((uint64_t)rss_kib(recs[i].vmm) << 10, mem, sizeof(mem));
		}
		printf("%-16s %-8s %8s %7s %6s %9s %9s\n", name,
		       !recs[i].name     ? "stopped"
		       : recs[i].vmm > 0 ? "running"
		                         : "starting",
		       pid, upt, cpu, mem, dsz);
	}
	if (recs)
		for (size_t i = 0; i < n; i++)
			sandbox_record_free(&recs[i]);
	free(recs);
	free(t0);
	project_args_end(&a);
	return rc;
}

/* ---- log ------------------------------------------------------------------ */

/* Copies @fd from its offset to stdout; returns the bytes copied. */
static long long copy_out(int fd)
{
	char buf[65536];
	long long total = 0;
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			return -1;
		total += n;
	}
	fflush(stdout);
	return total;
}

/* The offset of the last @lines lines of @fd: just after the newline
 * before them (a final newline ends the last line, it starts none). */
static off_t tail_from(int fd, long lines)
{
	off_t end = lseek(fd, 0, SEEK_END), at = end;
	char last;
	if (lines == 0 || end <= 0)
		return end;
	if (pread(fd, &last, 1, end - 1) == 1 && last == '\n')
		at = end - 1;
	char buf[8192];
	long seen = 0;
	while (at > 0) {
		size_t chunk = at > (off_t)sizeof(buf) ? sizeof(buf) : (size_t)at;
		at -= (off_t)chunk;
		if (pread(fd, buf, chunk, at) != (ssize_t)chunk)
			return 0;
		for (size_t i = chunk; i-- > 0;)
			if (buf[i] == '\n' && ++seen == lines)
				return at + (off_t)i + 1;
	}
	return 0;
}

int cmd_log(int argc, char **argv)
{
	struct project_args a;
	int rc;
	if (!project_args_begin(argc, argv, PA_KNOWN | PA_LOG, log_usage, &a, &rc))
		return rc;
	const struct project *p = &a.p;
	char log[PATH_MAX];
	int fd = -1;
	rc = 1;
	if (project_log_path(p, a.names[0], log, sizeof(log)))
		goto out;
	fd = open(log, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && (errno != ENOENT || !a.follow)) {
		if (errno == ENOENT)
			fprintf(stderr,
			        "msb: %s has no log yet: it has not run in the background "
			        "(msb up %s)\n",
			        a.names[0], a.names[0]);
		else
			fprintf(stderr, "msb: error: %s: %s\n", log, strerror(errno));
		goto out;
	}
	if (fd >= 0 && a.lines >= 0)
		lseek(fd, tail_from(fd, a.lines), SEEK_SET);
	if (fd >= 0 && copy_out(fd) < 0)
		goto out;
	rc = 0;
	if (!a.follow)
		goto out;
	/* follow while it runs: new bytes, a rotation (a new file), its end */
	cli_catch_stop_signals();
	while (!cli_stop_signal()) {
		struct sandbox_record rec;
		int r = sandbox_running(p, a.names[0], &rec);
		sandbox_record_free(&rec);
		struct stat now, had;
		if (stat(log, &now) == 0 &&
		    (fd < 0 || (fstat(fd, &had) == 0 && had.st_ino != now.st_ino))) {
			if (fd >= 0)
				copy_out(fd); /* the rest of the rotated one */
			if (fd >= 0)
				close(fd);
			fd = open(log, O_RDONLY | O_CLOEXEC);
		}
		if (fd >= 0)
			copy_out(fd);
		if (r <= 0)
			break;
		poll(NULL, 0, 200);
	}
out:
	if (fd >= 0)
		close(fd);
	project_args_end(&a);
	return rc;
}

/* ---- clean ---------------------------------------------------------------- */

/* .msb/sandboxes/NAME holds files only (rw.ext4, image, ctl.sock). */
static int clean_one(const struct project *p, const char *name, int force)
{
	struct sandbox_record rec;
	int r = sandbox_running(p, name, &rec);
	if (r)
		sandbox_record_free(&rec);
	if (r > 0) {
		fprintf(stderr, "msb: error: %s is running: msb down %s first\n", name, name);
		return 1;
	}
	if (r < 0)
		return 1;
	char dir[PATH_MAX], disk[PATH_MAX], size[32] = "0 KiB";
	uint64_t bytes;
	if (project_state_dir(p, name, dir, sizeof(dir)) ||
	    project_disk_path(p, name, disk, sizeof(disk)))
		return 1;
	if (access(dir, F_OK) < 0) {
		printf("%s: nothing kept\n", name);
		return 0;
	}
	if (msb_disk_usage(disk, &bytes, NULL) == 0)
		human(bytes, size, sizeof(size));
	if (!force) {
		if (!isatty(STDIN_FILENO)) {
			fprintf(stderr,
			        "msb: error: not removing %s's writable layer without asking: "
			        "add --force\n",
			        name);
			return 1;
		}
		fprintf(stderr, "Remove what %s kept (its writable layer, %s)? [y/N] ", name, size);
		char answer[16] = "";
		if (!fgets(answer, sizeof(answer), stdin) ||
		    (answer[0] != 'y' && answer[0] != 'Y')) {
			printf("%s: kept\n", name);
			return 0;
		}
	}
	int e = fs_remove_flat_dir(dir);
	if (e < 0) {
		fprintf(stderr, "msb: error: cannot remove %s: %s\n", dir, strerror(-e));
		return 1;
	}
	printf("%s: cleaned (%s freed)\n", name, size);
	return 0;
}

int cmd_clean(int argc, char **argv)
{
	struct project_args a;
	int rc;
	if (!project_args_begin(argc, argv, PA_KNOWN | PA_CLEAN, clean_usage, &a, &rc))
		return rc;
	for (size_t i = 0; i < a.p.sf->nsandboxes; i++)
		if (project_args_picked(&a, a.p.sf->sandboxes[i].name.s))
			rc |= clean_one(&a.p, a.p.sf->sandboxes[i].name.s, a.force);
	project_args_end(&a);
	return rc;
}
