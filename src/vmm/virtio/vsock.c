#include "vsock.h"
#include "../timing.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define HOST_CID         2
#define TYPE_STREAM      1
#define OP_REQUEST       1
#define OP_RESPONSE      2
#define OP_RST           3
#define OP_SHUTDOWN      4
#define OP_RW            5
#define OP_CREDIT_UPDATE 6
#define OP_CREDIT_REQ    7
#define SHUT_BOTH        3

#define HDR_SIZE        44
#define CONN_BUF        (256u << 10) /* what we advertise: our buffer per connection */
#define MAX_PKT         (64u << 10)
#define MAX_CONNS       256
#define LINE_MAX_LEN    32
#define FIRST_HOST_PORT (1u << 30) /* local ports of host-initiated connections */

#define Q_RX 0
#define Q_TX 1

/* Control packets owed to the guest, sent as rx buffers allow. */
#define P_REQUEST  1u
#define P_RESPONSE 2u
#define P_RST      4u
#define P_SHUTDOWN 8u
#define P_CREDIT   16u

enum conn_state { C_LINE, C_REQUESTED, C_CONNECTED, C_CLOSED };

struct hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));

/* Connections live in slots of struct vsock that are never freed while the
 * device exists: the event loop may still hold an event for a connection
 * that was just freed (later in the same epoll batch, or while it waits for
 * the lock the vCPU thread holds to reset the device), and must find a slot
 * marked not live (or a new connection, for which a spurious event is
 * harmless), not freed memory. vs and src.cb are set once; conn_new()
 * clears the rest (from state on). */
struct conn {
	struct vsock *vs;
	struct ev_source src;
	enum conn_state state;
	int live;       /* in vs->conns */
	int registered; /* src.fd is in the event loop */
	uint32_t local_port, peer_port;
	char line[LINE_MAX_LEN];
	size_t line_len;
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt; /* the guest's credit */
	uint32_t fwd_cnt, fwd_announced;               /* our side */
	uint8_t *buf;                                  /* from the guest, not yet written */
	size_t buf_len;
	unsigned pending;
	int host_eof, guest_shut_send, guest_shut_both;
	uint32_t events;
};

struct vsock {
	struct virtio_dev dev;
	struct evloop *loop;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct ev_source listen_src;
	struct conn *conns[MAX_CONNS];
	struct conn slots[MAX_CONNS]; /* conns[i] is &slots[i] or NULL */
	uint32_t next_port;
	int rx_starved;
	struct vq_chain held; /* an rx chain taken but not used */
	int have_held;
	struct vmm_timing *timing;
};

static int conn_credit(const struct conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
	return in_flight < c->peer_buf_alloc ? (int)(c->peer_buf_alloc - in_flight) : 0;
}

static void update_events(struct conn *c)
{
	if (c->src.fd < 0)
		return;
	uint32_t ev = 0;
	if (c->state == C_LINE ||
	    (c->state == C_CONNECTED && !c->host_eof && conn_credit(c) > 0 && !c->vs->rx_starved))
		ev |= EPOLLIN;
	if (c->buf_len)
		ev |= EPOLLOUT;
	/* epoll reports EPOLLHUP/EPOLLERR whatever the mask: a host that hung
	 * up while we wait for the guest (its RST, credit, rx buffers) would
	 * wake the loop without end. Watch the fd only when we want something
	 * of it; level-triggered, nothing is missed when it comes back. */
	if (!ev) {
		if (c->registered)
			evloop_del(c->vs->loop, &c->src);
		c->registered = 0;
	} else if (!c->registered) {
		c->registered = evloop_add(c->vs->loop, &c->src, ev) == 0;
	} else if (ev != c->events) {
		evloop_mod(c->vs->loop, &c->src, ev);
	}
	c->events = ev;
}

static void conn_free(struct vsock *vs, int i)
{
	struct conn *c = vs->conns[i];
	if (c->src.fd >= 0) {
		if (c->registered)
			evloop_del(vs->loop, &c->src);
		close(c->src.fd);
	}
	free(c->buf);
	c->buf = NULL;
	c->src.fd = -1;
	c->registered = 0;
	c->live = 0;
	vs->conns[i] = NULL;
}

/* Drops the host side; the guest hears an RST, then the slot is freed once
 * that is sent. */
static void conn_reset(struct conn *c)
{
	if (c->src.fd >= 0) {
		if (c->registered)
			evloop_del(c->vs->loop, &c->src);
		close(c->src.fd);
		c->src.fd = -1;
		c->registered = 0;
	}
	c->state = C_CLOSED;
	c->pending = P_RST;
}

static void on_conn_event(struct ev_source *s, uint32_t events);

static struct conn *conn_new(struct vsock *vs, int fd, enum conn_state st)
{
	int slot = -1;
	for (int i = 0; i < MAX_CONNS && slot < 0; i++)
		if (!vs->conns[i])
			slot = i;
	if (slot < 0)
		return NULL;
	struct conn *c = &vs->slots[slot];
	uint8_t *buf = malloc(CONN_BUF);
	if (!buf)
		return NULL;
	memset((char *)c + offsetof(struct conn, state), 0,
	       sizeof(*c) - offsetof(struct conn, state));
	c->buf = buf;
	c->state = st;
	c->src.fd = fd;
	if (fd >= 0 && st == C_LINE) {
		if (evloop_add(vs->loop, &c->src, EPOLLIN) < 0) {
			c->src.fd = -1;
			free(buf);
			c->buf = NULL;
			return NULL;
		}
		c->registered = 1;
		c->events = EPOLLIN;
	}
	c->live = 1;
	vs->conns[slot] = c;
	return c;
}

static struct conn *find(struct vsock *vs, uint32_t local, uint32_t peer)
{
	for (int i = 0; i < MAX_CONNS; i++) {
		struct conn *c = vs->conns[i];
		if (c && c->state != C_LINE && c->local_port == local && c->peer_port == peer)
			return c;
	}
	return NULL;
}

static void fill_hdr(struct conn *c, struct hdr *h, uint16_t op, uint32_t len)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = HOST_CID;
	h->dst_cid = VSOCK_GUEST_CID;
	h->src_port = c->local_port;
	h->dst_port = c->peer_port;
	h->len = len;
	h->type = TYPE_STREAM;
	h->op = op;
	h->buf_alloc = CONN_BUF;
	h->fwd_cnt = c->fwd_cnt;
	if (op == OP_SHUTDOWN)
		h->flags = SHUT_BOTH;
}

static int rx_chain(struct vsock *vs, struct vq_chain *ch)
{
	if (vs->have_held) {
		*ch = vs->held;
		vs->have_held = 0;
		return 1;
	}
	for (;;) {
		int r = vq_pop(vs->dev.gm, &vs->dev.vq[Q_RX], ch);
		if (r <= 0) {
			if (r < 0)
				virtio_fail(&vs->dev, "the rx queue is broken");
			return 0;
		}
		if (!ch->bad && ch->wlen >= HDR_SIZE)
			return 1;
		vq_push(vs->dev.gm, &vs->dev.vq[Q_RX], ch->head, 0); /* unusable: give back */
	}
}

static void rx_done(struct vsock *vs, struct vq_chain *ch, uint32_t len)
{
	vq_push(vs->dev.gm, &vs->dev.vq[Q_RX], ch->head, len);
	virtio_signal_used(&vs->dev, Q_RX);
}

/* Sends what each connection owes the guest while rx buffers last. */
static void send_control(struct vsock *vs)
{
	for (int i = 0; i < MAX_CONNS; i++) {
		struct conn *c = vs->conns[i];
		while (c && c->pending) {
			struct vq_chain ch;
			if (!rx_chain(vs, &ch)) {
				vs->rx_starved = 1;
				return;
			}
			unsigned p = c->pending & -c->pending; /* lowest bit first */
			uint16_t op = p == P_REQUEST    ? OP_REQUEST
			              : p == P_RESPONSE ? OP_RESPONSE
			              : p == P_RST      ? OP_RST
			              : p == P_SHUTDOWN ? OP_SHUTDOWN
			                                : OP_CREDIT_UPDATE;
			struct hdr h;
			fill_hdr(c, &h, op, 0);
			vq_chain_write(vs->dev.gm, &ch, 0, &h, HDR_SIZE);
			rx_done(vs, &ch, HDR_SIZE);
			c->pending &= ~p;
			if (op == OP_CREDIT_UPDATE)
				c->fwd_announced = c->fwd_cnt;
			if (op == OP_RST) {
				conn_free(vs, i);
				c = NULL;
			}
		}
	}
}

/* Host socket -> guest, one packet into one rx buffer. */
static void host_to_guest(struct conn *c)
{
	struct vsock *vs = c->vs;
	struct vq_chain ch;
	if (!rx_chain(vs, &ch)) {
		vs->rx_starved = 1;
		return;
	}
	if (conn_credit(c) == 0) {
		/* woken without credit (a hang-up is reported whatever the
		 * mask): nothing may be sent, and a read of 0 bytes is not the
		 * end of the host's stream */
		vs->held = ch;
		vs->have_held = 1;
		return;
	}
	uint64_t room = ch.wlen - HDR_SIZE;
	uint32_t n = (uint32_t)conn_credit(c);
	if (n > room)
		n = (uint32_t)room;
	if (n > MAX_PKT)
		n = MAX_PKT;
	static __thread uint8_t data[MAX_PKT];
	ssize_t got = n ? read(c->src.fd, data, n) : 0;
	if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
		vs->held = ch;
		vs->have_held = 1;
		return;
	}
	if (got <= 0) {
		/* end of the host's stream (or an error): tell the guest */
		vs->held = ch;
		vs->have_held = 1;
		c->host_eof = 1;
		c->pending |= P_SHUTDOWN;
		return;
	}
	struct hdr h;
	fill_hdr(c, &h, OP_RW, (uint32_t)got);
	vq_chain_write(vs->dev.gm, &ch, 0, &h, HDR_SIZE);
	vq_chain_write(vs->dev.gm, &ch, HDR_SIZE, data, (uint64_t)got);
	c->tx_cnt += (uint32_t)got;
	rx_done(vs, &ch, HDR_SIZE + (uint32_t)got);
}

static void flush_to_host(struct conn *c)
{
	while (c->buf_len) {
		ssize_t n = write(c->src.fd, c->buf, c->buf_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			conn_reset(c); /* the host side went away */
			return;
		}
		memmove(c->buf, c->buf + n, c->buf_len - (size_t)n);
		c->buf_len -= (size_t)n;
		c->fwd_cnt += (uint32_t)n;
	}
	if (c->fwd_cnt - c->fwd_announced >= CONN_BUF / 4)
		c->pending |= P_CREDIT;
	if (!c->buf_len && c->guest_shut_both)
		conn_reset(c); /* everything the guest sent is delivered: done */
	else if (!c->buf_len && c->guest_shut_send && c->src.fd >= 0)
		shutdown(c->src.fd, SHUT_WR);
}

/* "CONNECT <port>\n" from a host client. */
static void read_line(struct conn *c)
{
	while (c->line_len < sizeof(c->line)) {
		char ch;
		ssize_t n = read(c->src.fd, &ch, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
			break;
		if (ch != '\n') {
			c->line[c->line_len++] = ch;
			continue;
		}
		c->line[c->line_len] = 0;
		if (strncmp(c->line, "CONNECT ", 8))
			break;
		char *end;
		unsigned long port = strtoul(c->line + 8, &end, 10);
		if (end == c->line + 8 || *end || port > UINT32_MAX)
			break;
		c->peer_port = (uint32_t)port;
		c->local_port = c->vs->next_port++;
		c->state = C_REQUESTED;
		c->pending |= P_REQUEST;
		return;
	}
	c->state = C_CLOSED; /* a bad line: just drop the client */
	c->pending = 0;
}

static void after_io(struct vsock *vs)
{
	send_control(vs);
	for (int i = 0; i < MAX_CONNS; i++) {
		struct conn *c = vs->conns[i];
		if (c && c->state == C_CLOSED && !c->pending)
			conn_free(vs, i);
		else if (c)
			update_events(c);
	}
}

static void on_conn_event(struct ev_source *s, uint32_t events)
{
	struct conn *c = (struct conn *)((char *)s - offsetof(struct conn, src));
	struct vsock *vs = c->vs;
	pthread_mutex_lock(&vs->dev.lock);
	if (vs->dev.active && c->live) {
		if (c->state == C_LINE && (events & (EPOLLIN | EPOLLHUP)))
			read_line(c);
		else if (c->state == C_CONNECTED && (events & (EPOLLIN | EPOLLHUP)) && !c->host_eof)
			host_to_guest(c);
		if (c->state == C_CONNECTED && (events & EPOLLOUT))
			flush_to_host(c);
		after_io(vs);
	}
	pthread_mutex_unlock(&vs->dev.lock);
}

static void guest_connect(struct vsock *vs, const struct hdr *h)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = -1;
	if (snprintf(a.sun_path, sizeof(a.sun_path), "%s_%u", vs->path, h->dst_port) <
	    (int)sizeof(a.sun_path))
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		fd = -1;
	}
	struct conn *c = conn_new(vs, fd, fd >= 0 ? C_CONNECTED : C_CLOSED);
	if (!c) {
		if (fd >= 0)
			close(fd);
		return; /* no room: the guest's connect times out */
	}
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->pending = fd >= 0 ? P_RESPONSE : P_RST;
}

static void guest_packet(struct vsock *vs, const struct hdr *h, const struct vq_chain *ch)
{
	if (h->src_cid != VSOCK_GUEST_CID || h->dst_cid != HOST_CID)
		return; /* not from our guest, or not to us: dropped */
	struct conn *c = find(vs, h->dst_port, h->src_port);
	if (h->type != TYPE_STREAM) {
		if (c)
			conn_reset(c);
		return;
	}
	if (h->op == OP_REQUEST) {
		if (c)
			conn_reset(c);
		else
			guest_connect(vs, h);
		return;
	}
	if (!c || c->state == C_CLOSED)
		return; /* for a connection we do not have: nothing to answer */
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	switch (h->op) {
	case OP_RESPONSE:
		if (c->state != C_REQUESTED) {
			conn_reset(c);
			return;
		}
		char ok[32];
		int n = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);
		if (write(c->src.fd, ok, (size_t)n) != n) {
			conn_reset(c);
			return;
		}
		c->state = C_CONNECTED;
		timing_mark(c->vs->timing, "the guest accepted a host connection");
		timing_memory(c->vs->timing, c->vs->dev.gm, "when the guest accepted");
		return;
	case OP_RST:
		c->pending = 0;
		c->state = C_CLOSED;
		return;
	case OP_SHUTDOWN:
		/* once buffered data is written out, flush_to_host() closes */
		c->guest_shut_send |= (h->flags & 2) != 0;
		c->guest_shut_both |= (h->flags & SHUT_BOTH) == SHUT_BOTH;
		flush_to_host(c);
		return;
	case OP_RW:
		if (c->state != C_CONNECTED || h->len > CONN_BUF - c->buf_len) {
			conn_reset(c); /* past the credit we gave: not buffered */
			return;
		}
		c->buf_len += vq_chain_read(vs->dev.gm, ch, HDR_SIZE, c->buf + c->buf_len, h->len);
		flush_to_host(c);
		return;
	case OP_CREDIT_UPDATE:
		return;
	case OP_CREDIT_REQ:
		c->pending |= P_CREDIT;
		return;
	default:
		conn_reset(c);
		return;
	}
}

static void process_tx(struct vsock *vs)
{
	struct vq_chain ch;
	for (;;) {
		int r = vq_pop(vs->dev.gm, &vs->dev.vq[Q_TX], &ch);
		if (r < 0)
			virtio_fail(&vs->dev, "the tx queue is broken");
		if (r <= 0)
			break;
		struct hdr h;
		/* one copy of the header, then checks on the copy */
		if (!ch.bad && ch.rlen >= HDR_SIZE &&
		    vq_chain_read(vs->dev.gm, &ch, 0, &h, HDR_SIZE) == HDR_SIZE &&
		    h.len <= MAX_PKT && h.len <= ch.rlen - HDR_SIZE)
			guest_packet(vs, &h, &ch);
		vq_push(vs->dev.gm, &vs->dev.vq[Q_TX], ch.head, 0);
	}
	virtio_signal_used(&vs->dev, Q_TX);
}

static void vsock_notify(struct virtio_dev *d, int q)
{
	struct vsock *vs = d->priv;
	if (q == Q_TX)
		process_tx(vs);
	if (q == Q_RX)
		vs->rx_starved = 0;
	after_io(vs);
}

static void on_accept(struct ev_source *s, uint32_t events)
{
	(void)events;
	struct vsock *vs = (struct vsock *)((char *)s - offsetof(struct vsock, listen_src));
	int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	pthread_mutex_lock(&vs->dev.lock);
	if (!vs->dev.active || !conn_new(vs, fd, C_LINE))
		close(fd); /* no guest driver yet, or no room */
	pthread_mutex_unlock(&vs->dev.lock);
}

static void vsock_config_read(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len)
{
	(void)d;
	uint64_t cid = VSOCK_GUEST_CID;
	uint8_t cfg[8];
	memcpy(cfg, &cid, 8);
	memcpy(data, cfg + off, len); /* bounds checked by the transport */
}

static void vsock_reset(struct virtio_dev *d)
{
	struct vsock *vs = d->priv;
	for (int i = 0; i < MAX_CONNS; i++)
		if (vs->conns[i])
			conn_free(vs, i);
	vs->have_held = 0;
	vs->rx_starved = 0;
}

void vsock_snapshot_prepare(struct vsock *vs)
{
	pthread_mutex_lock(&vs->dev.lock);
	/* the held rx chain is the last one taken (rx_chain hands it out before
	 * taking another): give it back to the ring so the restored device
	 * takes it again instead of leaking the guest's buffer */
	if (vs->have_held) {
		vs->dev.vq[Q_RX].last_avail--;
		vs->have_held = 0;
	}
	pthread_mutex_unlock(&vs->dev.lock);
}

static const struct virtio_ops vsock_ops = {
    .name = "vsock",
    .device_id = 19,
    .features = VIRTIO_F_VERSION_1,
    .nqueues = 3,
    .queue_max = 256,
    .config_len = 8,
    .config_read = vsock_config_read,
    .notify = vsock_notify,
    .reset = vsock_reset,
};

void vsock_set_timing(struct vsock *vs, struct vmm_timing *t)
{
	vs->timing = t;
}

struct virtio_dev *vsock_dev(struct vsock *vs)
{
	return &vs->dev;
}

struct vsock *vsock_create(const struct gm *gm, struct evloop *loop, const char *path,
                           uint64_t base, uint32_t irq, char *why, size_t wl)
{
	struct vsock *vs = calloc(1, sizeof(*vs));
	if (!vs) {
		snprintf(why, wl, "out of memory");
		return NULL;
	}
	virtio_dev_init(&vs->dev, &vsock_ops, vs, gm, base, irq);
	vs->loop = loop;
	for (int i = 0; i < MAX_CONNS; i++) {
		vs->slots[i].vs = vs;
		vs->slots[i].src.fd = -1;
		vs->slots[i].src.cb = on_conn_event;
	}
	/* a random start: a VM restored from a snapshot may still know the
	 * ports of the connection that closed just before it was taken */
	uint32_t r = 0;
	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = (uint32_t)getpid();
	vs->next_port = FIRST_HOST_PORT + (r & 0xfffffu) * 16;
	vs->listen_src.fd = -1;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (snprintf(vs->path, sizeof(vs->path), "%s", path) >= (int)sizeof(vs->path) ||
	    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path) >= (int)sizeof(a.sun_path)) {
		snprintf(why, wl, "the vsock socket path is longer than %zu bytes",
		         sizeof(a.sun_path) - 1);
		free(vs);
		return NULL;
	}
	unlink(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
		snprintf(why, wl, "cannot listen on %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(vs);
		return NULL;
	}
	vs->listen_src.fd = fd;
	vs->listen_src.cb = on_accept;
	if (evloop_add(loop, &vs->listen_src, EPOLLIN) < 0) {
		snprintf(why, wl, "epoll: %s", strerror(errno));
		close(fd);
		unlink(path);
		free(vs);
		return NULL;
	}
	return vs;
}

void vsock_destroy(struct vsock *vs)
{
	if (!vs)
		return;
	vsock_reset(&vs->dev);
	if (vs->listen_src.fd >= 0) {
		evloop_del(vs->loop, &vs->listen_src);
		close(vs->listen_src.fd);
		unlink(vs->path);
	}
	free(vs);
}
