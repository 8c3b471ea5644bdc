#include "evloop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

int evloop_init(struct evloop *l)
{
	l->started = 0;
	atomic_init(&l->stop, 0);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->epfd < 0 || l->wake_fd < 0)
		return -errno;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	return epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wake_fd, &ev) < 0 ? -errno : 0;
}

int evloop_add(struct evloop *l, struct ev_source *s, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = s};
	return epoll_ctl(l->epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0 ? -errno : 0;
}

int evloop_mod(struct evloop *l, struct ev_source *s, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = s};
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0 ? -errno : 0;
}

void evloop_del(struct evloop *l, struct ev_source *s)
{
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->fd, NULL);
}

static void *loop(void *arg)
{
	struct evloop *l = arg;
	struct epoll_event evs[32];
	while (!atomic_load(&l->stop)) {
		int n = epoll_wait(l->epfd, evs, 32, -1);
		for (int i = 0; i < n; i++) {
			struct ev_source *s = evs[i].data.ptr;
			if (s)
				s->cb(s, evs[i].events);
		}
	}
	return NULL;
}

int evloop_start(struct evloop *l)
{
	int e = pthread_create(&l->thread, NULL, loop, l);
	if (e)
		return -e;
	l->started = 1;
	return 0;
}

void evloop_destroy(struct evloop *l)
{
	atomic_store(&l->stop, 1);
	uint64_t one = 1;
	ssize_t w = write(l->wake_fd, &one, sizeof(one));
	(void)w;
	if (l->started)
		pthread_join(l->thread, NULL);
	close(l->epfd);
	close(l->wake_fd);
}
