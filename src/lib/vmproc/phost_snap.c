/*
 * Starting a portable host from a snapshot of itself instead of booting it
 * (docs/design/snapshot.md, "The portable host").
 *
 * Made once: QEMU boots the host with its RAM in a file mapped shared, our
 * init sets up /dev/kvm, the stream and the disks and says it is ready, and
 * QEMU migrates the device state into a second file, skipping the RAM
 * (x-ignore-shared: it is already in the first). Each start: QEMU maps the
 * RAM file copy-on-write, loads the device state and runs on from the
 * moment the snapshot was taken, where init waits for its resume message.
 * Milliseconds instead of the seconds of an emulated boot, and the host's
 * untouched RAM pages stay shared between hosts.
 *
 * A snapshot is only valid for the QEMU, host image, memory size and disks
 * it was made with; its name holds a hash of all of them (the files by
 * identity: path, size, mtime, inode), and a flock keeps two processes from
 * making the same one twice.
 */
#include "vmproc_int.h"
#include "le.h"
#include "argbuf.h"
#include "clock.h"
#include "crc32.h"
#include "err.h"
#include "identity.h"
#include "fsutil.h"
#include "qmp.h"
#include "../../phost/resume.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READY_MS   120000 /* an emulated boot takes seconds, more on a busy machine */
#define QMP_MS     30000
#define LOAD_MS    60000
#define QUIT_MS    2000
#define FORMAT_TAG "phost snapshot 1"

/* The state file: our header, then QEMU's migration stream, which has no
 * checksum of its own (QEMU reads it from the fd's offset, after ours). */
#define STATE_MAGIC "MSBPHST1"
#define STATE_HDR   64
#define STATE_MAX   (64u << 20) /* QEMU's device state is a few hundred KiB */

/* The file QEMU's name runs, as execvp would find it. */
static int which(const char *name, char *out, size_t len)
{
	if (strchr(name, '/'))
		return fs_path(out, len, "%s", name);
	const char *path = getenv("PATH");
	for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
		const char *end = strchrnul(p, ':');
		if (!fs_path(out, len, "%.*s/%s", (int)(end - p), p, name) &&
		    access(out, X_OK) == 0)
			return 0;
		p = *end ? end + 1 : end;
	}
	return -ENOENT;
}

/* The hash naming a snapshot: everything that shapes the host. */
static int snapshot_key(const struct phost_cmd *c, uint64_t *key, struct msb_err *err)
{
	struct phost_cmd k = *c;
	k.start = PHOST_SNAPSHOT;
	k.log = "-";
	k.ram = "-";
	struct argbuf a;
	int e = phost_cmd_build(&k, &a, err);
	if (e)
		return e;
	uint64_t h = fnv1a(FNV1A_INIT, FORMAT_TAG, sizeof(FORMAT_TAG));
	for (char **s = a.argv; *s; s++)
		h = fnv1a(h, *s, strlen(*s) + 1);
	char qemu[4096];
	if (which(c->qemu, qemu, sizeof(qemu)) < 0)
		return err_set(err, -ENOENT, "cannot find %s (QEMU) on PATH", c->qemu);
	if ((e = identity_add(&h, qemu, err)) || (e = identity_add(&h, c->kernel, err)) ||
	    (e = identity_add(&h, c->initramfs, err)))
		return e;
	for (size_t i = 0; i < c->nfiles; i++) /* a per-start file is bound later */
		if (!c->files[i].per_start && (e = identity_add(&h, c->files[i].path, err)))
			return e;
	*key = h;
	return 0;
}

static int child_alive(struct msb_vmproc *p)
{
	return vmproc_reap(p, 0, 0) == -ETIMEDOUT;
}

/* Reads the init's ready message off the stream of a host that boots. */
static int await_ready(struct msb_vmproc *p, struct msb_err *err)
{
	char got[PHOST_READY_LEN];
	size_t have = 0;
	long deadline = mono_ms() + READY_MS;
	while (have < sizeof(got)) {
		if (!child_alive(p))
			return err_set(err, -ECHILD, "the portable host stopped while it booted");
		if (mono_ms() > deadline)
			return err_set(err, -ETIMEDOUT, "the portable host did not boot in %d s",
			               READY_MS / 1000);
		struct pollfd pf = {.fd = p->stream_fd, .events = POLLIN};
		if (poll(&pf, 1, 100) <= 0)
			continue;
		ssize_t n = read(p->stream_fd, got + have, sizeof(got) - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return err_set(err, -EPIPE,
			               "the portable host closed its stream while it "
			               "booted");
		have += (size_t)n;
	}
	if (memcmp(got, PHOST_READY_MAGIC, PHOST_READY_LEN))
		return err_set(err, -EPROTO, "the portable host's init did not say it was ready");
	return 0;
}

static int qmp_fail(int e, const char *why, const char *what, struct msb_err *err)
{
	return err_set(err, e, "%s: %s", what, why);
}

/* Polls query-migrate until the migration ends; 0 when it completed. */
static int await_migration(struct qmp *q, long timeout_ms, struct msb_err *err)
{
	char reply[QMP_LINE_MAX], status[32], why[300];
	long deadline = mono_ms() + timeout_ms;
	for (;;) {
		int e = qmp_exec(q, "{\"execute\":\"query-migrate\"}", -1, reply, sizeof(reply),
		                 why, sizeof(why));
		if (e)
			return qmp_fail(e, why, "asking QEMU about the snapshot", err);
		if (qmp_str(reply, "status", status, sizeof(status)) == 0) {
			if (!strcmp(status, "completed"))
				return 0;
			if (!strcmp(status, "failed") || !strcmp(status, "cancelled")) {
				char desc[300];
				if (qmp_str(reply, "error-desc", desc, sizeof(desc)) < 0)
					snprintf(desc, sizeof(desc), "%s", "no reason given");
				return err_set(err, -EIO, "QEMU's migration %s: %s", status, desc);
			}
		}
		if (mono_ms() > deadline)
			return err_set(err, -ETIMEDOUT, "QEMU's migration did not finish in %ld s",
			               timeout_ms / 1000);
		struct timespec ts = {.tv_nsec = 2 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

static const char ignore_shared[] =
    "{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":"
    "[{\"capability\":\"x-ignore-shared\",\"state\":true}]}}";

/* Reads the whole state file; checks our header against QEMU's stream. */
static int read_state(int fd, uint8_t **out, size_t *len, struct msb_err *err, const char *path)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_set(err, -errno, "cannot read %s: %s", path, strerror(errno));
	if (st.st_size <= STATE_HDR || (uint64_t)st.st_size > STATE_MAX)
		return err_set(err, -EPROTO, "%s is not a portable host snapshot (%lld bytes)",
		               path, (long long)st.st_size);
	uint8_t *buf = malloc((size_t)st.st_size);
	if (!buf)
		return err_set(err, -ENOMEM, "out of memory");
	ssize_t n = pread(fd, buf, (size_t)st.st_size, 0);
	if (n != st.st_size) {
		free(buf);
		return err_set(err, -EIO, "cannot read %s", path);
	}
	*out = buf;
	*len = (size_t)st.st_size;
	return 0;
}

/* Writes our header over the first bytes QEMU left alone. */
static int seal_state(int fd, struct msb_err *err)
{
	uint8_t *buf;
	size_t len;
	int e = read_state(fd, &buf, &len, err, "the new snapshot");
	if (e)
		return e;
	memset(buf, 0, STATE_HDR);
	memcpy(buf, STATE_MAGIC, 8);
	put_le(buf + 8, len - STATE_HDR, 8);
	put_le(buf + 16, crc32_update(0, buf + STATE_HDR, len - STATE_HDR), 4);
	e = pwrite(fd, buf, STATE_HDR, 0) == STATE_HDR ? 0 : -EIO;
	free(buf);
	return e ? err_set(err, e, "cannot write the snapshot's header") : 0;
}

/* Opens @path checked whole, positioned where QEMU's stream starts. */
static int open_state(const char *path, struct msb_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, -errno, "cannot open %s: %s", path, strerror(errno));
	uint8_t *buf;
	size_t len;
	int e = read_state(fd, &buf, &len, err, path);
	if (!e) {
		if (memcmp(buf, STATE_MAGIC, 8) || get_le(buf + 8, 8) != len - STATE_HDR ||
		    get_le(buf + 16, 4) != crc32_update(0, buf + STATE_HDR, len - STATE_HDR))
			e = err_set(err, -EPROTO, "the portable host snapshot %s is damaged", path);
		free(buf);
	}
	if (!e && lseek(fd, STATE_HDR, SEEK_SET) < 0)
		e = err_set(err, -errno, "lseek: %s", strerror(errno));
	if (e) {
		close(fd);
		return e;
	}
	return fd;
}

/*
 * Starts QEMU for @c as @start with its RAM in @ram, its control socket
 * (our end in *@qmp, to close) and, when @state_fd >= 0, the state to load
 * at PHOST_STATE_FD. *@qmp is -1 when nothing was started.
 */
static int spawn_qemu(struct msb_vmproc *p, const struct phost_cmd *c, enum phost_start start,
                      const char *ram, int state_fd, int *qmp, struct msb_err *err)
{
	static const int fds[] = {PHOST_STREAM_FD};
	struct phost_cmd s = *c;
	s.start = start;
	s.ram = ram;
	struct argbuf a;
	int qs[2];
	*qmp = -1;
	int e = phost_cmd_build(&s, &a, err);
	if (e)
		return e;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qs) < 0)
		return err_set(err, -errno, "socketpair: %s", strerror(errno));
	struct fdmap extra[] = {{qs[1], PHOST_QMP_FD}, {state_fd, PHOST_STATE_FD}};
	e = vmproc_spawn(p, a.argv, fds, 1, extra, state_fd >= 0 ? 2 : 1, 1, err);
	close(qs[1]);
	if (e) {
		close(qs[0]);
		return e;
	}
	*qmp = qs[0];
	return 0;
}

/* Boots a host and writes its snapshot to @ram and @state (both new). */
static int make_snapshot(struct msb_vmproc *p, const struct phost_cmd *c, const char *ram,
                         int state_fd, struct msb_err *err)
{
	int qfd;
	int e = spawn_qemu(p, c, PHOST_SNAPSHOT, ram, -1, &qfd, err);
	if (!e)
		e = await_ready(p, err);
	struct qmp q;
	char why[300];
	if (!e && (e = qmp_open(&q, qfd, QMP_MS, why, sizeof(why))))
		qmp_fail(e, why, "talking to QEMU", err);
	/* Stopped first, so RAM and device state are of the same instant. */
	if (!e && (e = qmp_exec(&q, "{\"execute\":\"stop\"}", -1, NULL, 0, why, sizeof(why))))
		qmp_fail(e, why, "pausing the portable host", err);
	if (!e && (e = qmp_exec(&q, ignore_shared, -1, NULL, 0, why, sizeof(why))))
		qmp_fail(e, why, "setting up the snapshot", err);
	if (!e && lseek(state_fd, STATE_HDR, SEEK_SET) < 0)
		e = err_set(err, -errno, "lseek: %s", strerror(errno));
	if (!e &&
	    (e = qmp_exec(&q, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"snapshot\"}}",
	                  state_fd, NULL, 0, why, sizeof(why))))
		qmp_fail(e, why, "passing the snapshot file to QEMU", err);
	if (!e &&
	    (e = qmp_exec(&q, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"fd:snapshot\"}}",
	                  -1, NULL, 0, why, sizeof(why))))
		qmp_fail(e, why, "snapshotting the portable host", err);
	if (!e)
		e = await_migration(&q, LOAD_MS, err);
	if (!e) {
		/* QEMU closes the socket as it quits: no reply is fine too */
		qmp_exec(&q, "{\"execute\":\"quit\"}", -1, NULL, 0, why, sizeof(why));
		if (vmproc_reap(p, QMP_MS, 0) < 0)
			e = err_set(err, -ETIMEDOUT, "QEMU did not quit after the snapshot");
	}
	if (qfd >= 0)
		close(qfd);
	vmproc_kill(p);
	p->pid = -1;
	p->exited = 0;
	return e ?: seal_state(state_fd, err);
}

static int send_resume(int stream, const struct phost_cmd *c, struct msb_err *err)
{
	struct {
		struct phost_resume_hdr h;
		char words[PHOST_RESUME_MAX];
	} m;
	memset(&m.h, 0, sizeof(m.h));
	size_t used = 0;
	int e = phost_words(c, m.words, sizeof(m.words), 0, &used, err);
	if (e)
		return e;
	memcpy(m.h.magic, PHOST_RESUME_MAGIC, sizeof(m.h.magic));
	m.h.len = (uint32_t)used;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	m.h.realtime_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	if (getrandom(m.h.seed, sizeof(m.h.seed), 0) != (ssize_t)sizeof(m.h.seed))
		return err_set(err, -EIO, "getrandom: %s", strerror(errno));
	/* The socket buffer takes the few hundred bytes at once. */
	size_t len = sizeof(m.h) + used;
	for (size_t off = 0; off < len;) {
		ssize_t w = write(stream, (char *)&m + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return err_set(err, -EPIPE, "cannot write to the portable host's stream");
		off += (size_t)w;
	}
	return 0;
}

/* Starts a host from @ram and @state. */
static int restore(struct msb_vmproc *p, const struct phost_cmd *c, const char *ram,
                   const char *state, struct msb_err *err)
{
	int sfd = open_state(state, err);
	if (sfd < 0)
		return sfd;
	int qfd;
	int e = spawn_qemu(p, c, PHOST_RESTORE, ram, sfd, &qfd, err);
	close(sfd);
	struct qmp q;
	char why[300], uri[32];
	snprintf(uri, sizeof(uri), "fd:%d", PHOST_STATE_FD);
	char cmd[128];
	snprintf(cmd, sizeof(cmd),
	         "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"%s\"}}", uri);
	if (!e && (e = qmp_open(&q, qfd, QMP_MS, why, sizeof(why))))
		qmp_fail(e, why, "talking to QEMU", err);
	if (!e && (e = qmp_exec(&q, ignore_shared, -1, NULL, 0, why, sizeof(why))))
		qmp_fail(e, why, "setting up the restore", err);
	if (!e && (e = qmp_exec(&q, cmd, -1, NULL, 0, why, sizeof(why))))
		qmp_fail(e, why, "restoring the portable host", err);
	if (!e)
		e = await_migration(&q, LOAD_MS, err);
	/* The snapshot was taken paused: run it. */
	if (!e && (e = qmp_exec(&q, "{\"execute\":\"cont\"}", -1, NULL, 0, why, sizeof(why))))
		qmp_fail(e, why, "resuming the portable host", err);
	if (qfd >= 0)
		close(qfd);
	if (!e)
		e = send_resume(p->stream_fd, c, err);
	/* QEMU exits with status 1 when it cannot load the state: the
	 * snapshot does not fit this QEMU, unlike a QEMU killed meanwhile */
	if (e && e != -EPROTO && p->pid > 0 && vmproc_reap(p, QUIT_MS, 0) == 0) {
		int st = p->wait_status;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 1)
			e = err_set(err, -EPROTO,
			            "QEMU could not load the portable host snapshot %s", state);
		else if (WIFSIGNALED(st))
			e = err_set(err, -ECHILD,
			            "the portable host stopped while it was restored (QEMU was "
			            "killed by signal %d)",
			            WTERMSIG(st));
	}
	if (e && p->pid > 0) {
		vmproc_kill(p);
		p->pid = -1;
		p->exited = 0;
	}
	return e;
}

/* Removes this family's snapshots of other keys: made for files since
 * replaced. A host still running from one keeps its mapping. */
static void remove_stale(const char *dir, const char *family, const char *keep)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	char pre[310];
	snprintf(pre, sizeof(pre), "%s-", family);
	struct dirent *ent;
	while ((ent = readdir(d))) {
		if (strncmp(ent->d_name, pre, strlen(pre)) ||
		    !strncmp(ent->d_name, keep, strlen(keep)))
			continue;
		unlinkat(dirfd(d), ent->d_name, 0);
	}
	closedir(d);
}

static int sync_and_rename(const char *tmp, const char *path)
{
	int fd = open(tmp, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int e = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	if (!e && rename(tmp, path) < 0)
		e = -errno;
	return e;
}

/* Makes the snapshot unless it is there, under the directory's lock. */
static int ensure(struct msb_vmproc *p, const struct phost_cmd *c, const char *dir,
                  const char *prefix, const char *family, const char *base, const char *ram,
                  const char *state, void (*progress)(void *, const char *), void *progress_arg,
                  struct msb_err *err)
{
	if (access(state, R_OK) == 0 && access(ram, R_OK) == 0)
		return 0;
	char lock[4200];
	if (fs_path(lock, sizeof(lock), "%s/%s.phost.lock", dir, prefix))
		return err_set(err, -ENAMETOOLONG, "path too long: %s", dir);
	int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0)
		return err_set(err, -errno, "cannot create %s: %s", lock, strerror(errno));
	int e = 0;
	while (flock(lfd, LOCK_EX) < 0)
		if (errno != EINTR) {
			e = err_set(err, -errno, "cannot lock %s: %s", lock, strerror(errno));
			break;
		}
	if (!e && (access(state, R_OK) < 0 || access(ram, R_OK) < 0)) {
		remove_stale(dir, family, base);
		char ram_tmp[4200], state_tmp[4200];
		int rfd = -1, sfd = -1;
		if (fs_path(ram_tmp, sizeof(ram_tmp), "%s.XXXXXX", ram) ||
		    fs_path(state_tmp, sizeof(state_tmp), "%s.XXXXXX", state))
			e = err_set(err, -ENAMETOOLONG, "path too long: %s", ram);
		if (!e && ((rfd = mkostemp(ram_tmp, O_CLOEXEC)) < 0 ||
		           (sfd = mkostemp(state_tmp, O_CLOEXEC)) < 0))
			e = err_set(err, -errno, "cannot create a file in %s: %s", dir,
			            strerror(errno));
		long t0 = mono_ms();
		if (!e && progress)
			progress(progress_arg,
			         "preparing the portable host for it (first run only)");
		if (!e)
			e = make_snapshot(p, c, ram_tmp, sfd, err);
		if (!e && ((e = sync_and_rename(ram_tmp, ram)) ||
		           (e = sync_and_rename(state_tmp, state))))
			err_set(err, e, "cannot store the portable host's snapshot in %s: %s", dir,
			        strerror(-e));
		if (!e)
			fs_fsync_parent(state);
		if (!e && progress) {
			char msg[80];
			snprintf(msg, sizeof(msg), "portable host ready in %.1f s",
			         (double)(mono_ms() - t0) / 1000);
			progress(progress_arg, msg);
		}
		if (e) { /* before the partial files go */
			char full[100];
			fs_full_note(ram, full, sizeof(full));
			err_wrap(err, "preparing the portable host's snapshot%s", full);
		}
		if (rfd >= 0) {
			close(rfd);
			unlink(ram_tmp); /* gone already when renamed */
		}
		if (sfd >= 0) {
			close(sfd);
			unlink(state_tmp);
		}
	}
	close(lfd);
	return e;
}

/* phost_snap_start() once the placeholders are there. */
static int start_from(struct msb_vmproc *p, const struct phost_cmd *c, const char *dir,
                      const char *prefix, void (*progress)(void *, const char *),
                      void *progress_arg, struct msb_err *err)
{
	uint64_t key = 0;
	int e = snapshot_key(c, &key, err);
	if (e)
		return e;
	/* The per-start disks' layout names a family of snapshots of its own
	 * (and is in the key, through QEMU's command line): a throwaway
	 * sandbox (one read-only disk) and a project sandbox (plus its
	 * writable layer) each keep theirs, instead of each start of the other
	 * kind replacing the one snapshot. */
	char layout[PHOST_MAX_FILES + 2] = "";
	size_t nl = 0;
	for (size_t i = 0; i < c->nfiles && nl < PHOST_MAX_FILES; i++)
		if (c->files[i].per_start)
			layout[nl++] = c->files[i].writable ? 'w' : 'r';
	layout[nl] = 0;
	char family[300], base[340], ram[4400], state[4400];
	snprintf(family, sizeof(family), "%s.phost-%s", prefix, nl ? layout : "0");
	snprintf(base, sizeof(base), "%s-%016llx.", family, (unsigned long long)key);
	if (fs_path(ram, sizeof(ram), "%s/%sram", dir, base) ||
	    fs_path(state, sizeof(state), "%s/%sstate", dir, base))
		return err_set(err, -ENAMETOOLONG, "path too long: %s", dir);
	for (int attempt = 0;; attempt++) {
		if ((e = ensure(p, c, dir, prefix, family, base, ram, state, progress, progress_arg,
		                err)))
			return e;
		if ((e = restore(p, c, ram, state, err)) != -EPROTO || attempt)
			return e;
		/* A damaged snapshot, or one this QEMU cannot load: make it
		 * again, once. */
		unlink(state);
		unlink(ram);
	}
}

int phost_snap_start(struct msb_vmproc *p, const struct phost_cmd *c, const char *path,
                     void (*progress)(void *, const char *), void *progress_arg,
                     struct msb_err *err)
{
	char dir[4096];
	if (fs_path(dir, sizeof(dir), "%s", path))
		return err_set(err, -ENAMETOOLONG, "path too long: %s", path);
	char *slash = strrchr(dir, '/');
	const char *prefix = slash ? path + (slash - dir) + 1 : path;
	if (slash == dir)
		snprintf(dir, sizeof(dir), "/");
	else if (slash)
		*slash = 0;
	else
		snprintf(dir, sizeof(dir), ".");
	if (!*prefix || strlen(prefix) > 200)
		return err_set(err, -EINVAL, "bad snapshot path %s", path);
	/* Each per-start file's slot holds an empty file in the snapshot;
	 * init binds the disk again after the restore, and the driver then
	 * reads the real file's size. */
	char(*empty)[4400] = calloc(PHOST_MAX_FILES, sizeof(*empty));
	const char *empties[PHOST_MAX_FILES] = {0};
	if (!empty)
		return err_set(err, -ENOMEM, "out of memory");
	int e = 0;
	for (size_t i = 0; !e && i < c->nfiles && i < PHOST_MAX_FILES; i++) {
		if (!c->files[i].per_start)
			continue;
		char n[16] = "";
		if (i)
			snprintf(n, sizeof(n), "%zu", i);
		if (fs_path(empty[i], sizeof(empty[i]), "%s/%s.phost-empty%s", dir, prefix, n)) {
			e = err_set(err, -ENAMETOOLONG, "path too long: %s", dir);
			break;
		}
		int efd = open(empty[i], O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (efd < 0)
			e = err_set(err, -errno, "cannot create %s: %s", empty[i], strerror(errno));
		else
			close(efd);
		empties[i] = empty[i];
	}
	if (!e) {
		struct phost_cmd with = *c;
		with.placeholders = empties;
		e = start_from(p, &with, dir, prefix, progress, progress_arg, err);
	}
	free(empty);
	return e;
}
