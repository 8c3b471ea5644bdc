/*
 * Inside libmsb's VM API (msb_vm_*, msb_exec_*): the connection to the
 * guest agent and the state of each exec on it. conn.c owns the connection
 * and checks every frame the guest sends against the session rules of
 * docs/design/protocol.md; vm.c starts and stops the VM; exec.c is the exec
 * API on top.
 */
#ifndef MSB_LIB_VM_INT_H
#define MSB_LIB_VM_INT_H

#include "msb.h"
#include "proto.h"
#include "wbuf.h"

enum exec_state {
	EXEC_STARTING, /* EXEC sent, waiting for READY or ERROR */
	EXEC_RUNNING,  /* READY received */
	EXEC_FAILED,   /* ERROR received: it never ran */
	EXEC_EXITED,   /* EXIT received */
};

/* Output received from one stream, waiting for the caller to read it. Its
 * size is bounded by the credit we granted: we grant only what was read. */
struct out_stream {
	uint8_t *buf;
	size_t off, len, cap;
	int eof;
	struct proto_credit recv; /* mirror of the agent's credit */
	uint64_t ungranted;       /* read by the caller, not yet granted again */
};

struct msb_exec {
	struct msb_vm *vm;
	uint32_t id;
	enum exec_state state;
	int tty;
	int stdin_open;           /* PROTO_EXEC_STDIN and no EOF sent yet */
	int orphaned;             /* freed by the caller; dropped at its EXIT */
	uint32_t pid;             /* in the guest, from READY */
	struct proto_credit in;   /* what we may still send on stdin */
	struct out_stream out[3]; /* [PROTO_STREAM_STDOUT], [PROTO_STREAM_STDERR] */
	struct proto_exit exit;   /* valid in EXEC_EXITED */
	struct proto_error fail;  /* valid in EXEC_FAILED */
	struct msb_exec *next;
};

struct msb_vm {
	struct msb_vmproc *proc;
	int fd; /* the stream to the agent, non-blocking; owned by proc */
	struct proto_reader rd;
	struct wbuf wb;
	int hello; /* the agent's HELLO arrived */
	char agent_name[PROTO_MAX_NAME + 1];
	char hostname[PROTO_MAX_HOSTNAME + 1];
	/* the one request (not an exec) in flight, e.g. MOUNT_ROOT */
	uint32_t req_id; /* 0: none */
	enum { REQ_WAITING, REQ_DONE, REQ_FAILED } req_state;
	struct proto_error req_err;
	int dead; /* the connection is over: every call fails with dead_err */
	struct msb_err dead_err;
	int stopping;   /* SHUTDOWN sent: the connection's end is expected */
	int failed;     /* keep the log: the VM crashed or broke a rule */
	unsigned pongs; /* PONGs received */
	uint32_t next_id;
	struct msb_exec *execs;
	char *snap_tmp; /* where msb-vmm writes a snapshot; renamed to snap_path */
	char *snap_path;
};

/*
 * Moves bytes once: waits until the stream is readable (or writable while
 * frames are queued) or @deadline (mono_ms(); -1 none) passes, then writes
 * what it can and reads and handles every complete frame. Returns 0 (call it
 * again until what you wait for happened), -ETIMEDOUT, -EINTR (a signal
 * handler ran), or the connection's error (vm->dead set, @err filled).
 */
int conn_pump(struct msb_vm *vm, long deadline, struct msb_err *err);

/* Queues a frame and tries to write it at once. Returns 0 or the
 * connection's error. */
int conn_send(struct msb_vm *vm, uint8_t type, uint32_t id, const void *p, uint32_t len,
              struct msb_err *err);

/* Marks the connection dead with @code and a message naming why (and the
 * VMM's status when it has ended); returns @code with @err filled. */
int conn_fail(struct msb_vm *vm, int code, struct msb_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The connection is dead: copies why into @err and returns its code. */
int conn_dead(struct msb_vm *vm, struct msb_err *err);

/* The last "msb-vmm: error: ..." line of the VM's log, so a failure says
 * why without sending people to the log. "" when there is none. */
void conn_vmm_error(struct msb_vm *vm, char *out, size_t len);

/* The caller read @n bytes of @st: grant them again when worthwhile. */
int conn_consumed(struct msb_exec *x, int st, size_t n, struct msb_err *err);

/* Unlinks and frees @x. */
void exec_destroy(struct msb_exec *x);

/* A VM over an agent connection already open on @fd (taken over: closed by
 * msb_vm_destroy()), with no VMM process: for tests that run the agent on
 * the host. Waits for the agent's HELLO; sends no clock or entropy. */
int vm_attach_fd(int fd, int timeout_ms, struct msb_vm **out, struct msb_err *err);

/* The warm-start cache (snapcache.c). snapcache_path: where the snapshot
 * of this shape lives. snapcache_ensure: makes it (cold boot, snapshot)
 * unless it exists, once across processes. */
int snapcache_path(enum msb_host_mode mode, const char *kernel, const char *initrd, unsigned mem,
                   unsigned cpus, char *path, size_t len, struct msb_err *err);
int snapcache_ensure(const struct msb_vm_opts *o, const char *path, struct msb_err *err);

/* A deadline @timeout_ms from now, or -1 for none (timeout < 0). */
long deadline_in(int timeout_ms);

#endif
