/*
 * loop: sources in an array rebuilt into a pollfd array every round, timers
 * in an unsorted list (a client has a handful). Removal only marks a source
 * dead; dead ones are freed between rounds, so callbacks can add and remove
 * sources freely while the loop walks the array.
 */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "link.h"

struct loop_source {
	loop_prepare_fn prepare;
	loop_dispatch_fn dispatch;
	void *arg;
	bool dead;
	/* for loop_add_fd() sources */
	int fd;
	short events;
	loop_io_fn io;
	void *io_arg;
};

struct loop {
	struct loop_source **src;
	size_t nsrc;
	size_t cap;
	struct pollfd *pfds;
	size_t pfd_cap;
	struct loop_timer timers;	/* list head */
	unsigned int pass;
	bool quit;
	int code;
};

struct loop *loop_new(void)
{
	struct loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->timers.next = &loop->timers;
	loop->timers.prev = &loop->timers;
	return loop;
}

void loop_free(struct loop *loop)
{
	size_t i;

	if (!loop)
		return;
	for (i = 0; i < loop->nsrc; i++)
		free(loop->src[i]);
	/* unlink the owners' timers so a late loop_timer_stop() is harmless */
	while (loop->timers.next != &loop->timers)
		loop_timer_stop(loop, loop->timers.next);
	free(loop->src);
	free(loop->pfds);
	free(loop);
}

/* ---- sources ------------------------------------------------------------ */

struct loop_source *loop_add_source(struct loop *loop, loop_prepare_fn prep,
				    loop_dispatch_fn dispatch, void *arg)
{
	struct loop_source *src;

	if (loop->nsrc == loop->cap) {
		size_t cap = loop->cap ? 2 * loop->cap : 8;
		struct loop_source **n = realloc(loop->src, cap * sizeof(*n));

		if (!n)
			return NULL;
		loop->src = n;
		loop->cap = cap;
	}
	src = calloc(1, sizeof(*src));
	if (!src)
		return NULL;
	src->prepare = prep;
	src->dispatch = dispatch;
	src->arg = arg;
	src->fd = -1;
	loop->src[loop->nsrc++] = src;
	return src;
}

void loop_remove_source(struct loop *loop, struct loop_source *src)
{
	if (src)
		src->dead = true;
}

static int fd_prepare(void *arg, struct pollfd *pfd, int64_t now)
{
	struct loop_source *src = arg;

	pfd->fd = src->events ? src->fd : -1;
	pfd->events = src->events;
	return -1;
}

static void fd_dispatch(void *arg, short revents, int64_t now)
{
	struct loop_source *src = arg;

	if (revents)
		src->io(src->io_arg, src->fd, revents);
}

struct loop_source *loop_add_fd(struct loop *loop, int fd, short events,
				loop_io_fn cb, void *arg)
{
	struct loop_source *src = loop_add_source(loop, fd_prepare,
						  fd_dispatch, NULL);

	if (!src)
		return NULL;
	src->arg = src;
	src->fd = fd;
	src->events = events;
	src->io = cb;
	src->io_arg = arg;
	return src;
}

void loop_set_fd_events(struct loop_source *src, short events)
{
	src->events = events;
}

static int link_prepare(void *arg, struct pollfd *pfd, int64_t now)
{
	link_pollfd(arg, pfd);
	return link_timeout_ms(arg, now);
}

static void link_dispatch(void *arg, short revents, int64_t now)
{
	if (revents)
		link_handle_io(arg, revents);
	link_handle_timers(arg, link_now_ms());
}

struct loop_source *loop_add_link(struct loop *loop, struct link *link)
{
	return loop_add_source(loop, link_prepare, link_dispatch, link);
}

/* Frees dead sources; only between rounds. */
static void loop_compact(struct loop *loop)
{
	size_t i, n = 0;

	for (i = 0; i < loop->nsrc; i++) {
		if (loop->src[i]->dead)
			free(loop->src[i]);
		else
			loop->src[n++] = loop->src[i];
	}
	loop->nsrc = n;
}

/* ---- timers ------------------------------------------------------------- */

void loop_timer_init(struct loop_timer *t, loop_timer_fn cb, void *arg)
{
	memset(t, 0, sizeof(*t));
	t->cb = cb;
	t->arg = arg;
	t->at = -1;
}

void loop_timer_stop(struct loop *loop, struct loop_timer *t)
{
	if (t->next) {
		t->prev->next = t->next;
		t->next->prev = t->prev;
	}
	t->next = t->prev = NULL;
	t->at = -1;
	t->pass = 0;
}

void loop_timer_start(struct loop *loop, struct loop_timer *t, uint32_t ms)
{
	loop_timer_stop(loop, t);
	t->at = link_now_ms() + ms;
	t->next = &loop->timers;
	t->prev = loop->timers.prev;
	loop->timers.prev->next = t;
	loop->timers.prev = t;
}

bool loop_timer_armed(const struct loop_timer *t)
{
	return t->at >= 0;
}

static int loop_timer_timeout(const struct loop *loop, int64_t now)
{
	const struct loop_timer *t;
	int64_t min = -1;

	for (t = loop->timers.next; t != &loop->timers; t = t->next) {
		if (min < 0 || t->at < min)
			min = t->at;
	}
	if (min < 0)
		return -1;
	return min <= now ? 0 : (int)(min - now > 86400000 ? 86400000 :
				      min - now);
}

/*
 * Fires the timers due at now. A timer a callback re-arms (even with a
 * zero delay) waits for the next round, so this always ends.
 */
static void loop_fire_timers(struct loop *loop, int64_t now)
{
	struct loop_timer *t;
	unsigned int pass = ++loop->pass ? loop->pass : ++loop->pass;

	for (t = loop->timers.next; t != &loop->timers; t = t->next) {
		if (t->at <= now)
			t->pass = pass;
	}
	for (;;) {
		for (t = loop->timers.next; t != &loop->timers; t = t->next) {
			if (t->pass == pass)
				break;
		}
		if (t == &loop->timers)
			return;
		loop_timer_stop(loop, t);
		t->cb(t->arg);
	}
}

/* ---- running ------------------------------------------------------------ */

static int min_timeout(int a, int b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

int loop_run_once(struct loop *loop, int max_wait_ms)
{
	size_t n = loop->nsrc, i;
	int64_t now = link_now_ms();
	int timeout = max_wait_ms;
	int rc;

	if (n > loop->pfd_cap) {
		struct pollfd *p = realloc(loop->pfds, n * sizeof(*p));

		if (!p)
			return -ENOMEM;
		loop->pfds = p;
		loop->pfd_cap = n;
	}
	for (i = 0; i < n; i++) {
		struct loop_source *s = loop->src[i];
		struct pollfd *p = &loop->pfds[i];

		p->fd = -1;
		p->events = 0;
		p->revents = 0;
		if (!s->dead)
			timeout = min_timeout(timeout,
					      s->prepare(s->arg, p, now));
		if (p->fd < 0)
			p->events = 0;
	}
	timeout = min_timeout(timeout, loop_timer_timeout(loop, now));

	rc = poll(loop->pfds, n, timeout);
	if (rc < 0) {
		rc = errno == EINTR ? 0 : -errno;
		if (rc < 0)
			return rc;
	}
	now = link_now_ms();
	for (i = 0; i < n && !loop->quit; i++) {
		struct loop_source *s = loop->src[i];

		if (!s->dead)
			s->dispatch(s->arg, loop->pfds[i].fd >= 0 ?
					    loop->pfds[i].revents : 0, now);
	}
	if (!loop->quit)
		loop_fire_timers(loop, link_now_ms());
	loop_compact(loop);
	return 0;
}

int loop_run(struct loop *loop)
{
	int rc;

	while (!loop->quit) {
		rc = loop_run_once(loop, -1);
		if (rc < 0)
			return 1;
	}
	return loop->code;
}

void loop_quit(struct loop *loop, int code)
{
	if (loop->quit)
		return;
	loop->quit = true;
	loop->code = code;
}

bool loop_quitting(const struct loop *loop)
{
	return loop->quit;
}
