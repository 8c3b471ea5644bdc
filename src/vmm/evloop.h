/*
 * The VMM's event loop: one thread that waits on every device fd
 * (ioeventfds of queue notifications, vsock sockets) and calls their
 * handlers. Device work happens here, off the vCPU threads.
 */
#ifndef MSB_VMM_EVLOOP_H
#define MSB_VMM_EVLOOP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct ev_source {
	int fd;
	/* Called on the loop thread with the epoll events that fired. */
	void (*cb)(struct ev_source *s, uint32_t events);
};

struct evloop {
	int epfd;
	int wake_fd;
	pthread_t thread;
	int started;
	_Atomic int stop;
};

int evloop_init(struct evloop *l);
/* Watch @s->fd for @events (EPOLLIN, EPOLLOUT...). @s must stay valid until
 * removed. Each returns 0 or a negative errno. */
int evloop_add(struct evloop *l, struct ev_source *s, uint32_t events);
int evloop_mod(struct evloop *l, struct ev_source *s, uint32_t events);
void evloop_del(struct evloop *l, struct ev_source *s);
int evloop_start(struct evloop *l);
/* Stops and joins the loop thread, then closes the loop's own fds. */
void evloop_destroy(struct evloop *l);

#endif
