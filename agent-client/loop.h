/*
 * loop: remsim-client's single-threaded poll() event loop. Anything with a
 * file descriptor (RSPRO links, stdin, the vpcd socket, later libusb's
 * pollfds) is a source that says before every poll() which fd and events it
 * wants and how long poll() may sleep; one-shot timers sit next to them.
 */
#ifndef REMSIM_CLIENT_LOOP_H
#define REMSIM_CLIENT_LOOP_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

struct link;
struct loop;
struct loop_source;

/*
 * Before each poll(): fill pfd (fd -1 for none) and return the longest
 * sleep in ms this source allows, or -1 for no limit.
 */
typedef int (*loop_prepare_fn)(void *arg, struct pollfd *pfd, int64_t now);
/* After each poll(), for every source: revents may be 0 (timers only). */
typedef void (*loop_dispatch_fn)(void *arg, short revents, int64_t now);
/* An fd became ready (revents != 0). */
typedef void (*loop_io_fn)(void *arg, int fd, short revents);
typedef void (*loop_timer_fn)(void *arg);

/* A one-shot timer, embedded in its owner; loop_timer_init() before use. */
struct loop_timer {
	loop_timer_fn cb;
	void *arg;
	int64_t at;		/* link_now_ms() time, -1 when not armed */
	unsigned int pass;	/* expiry pass that picked it, 0 for none */
	struct loop_timer *prev, *next;
};

struct loop *loop_new(void);
/* Frees the loop and its sources; timers belong to their owners. */
void loop_free(struct loop *loop);

/*
 * Sources may be added and removed at any time, also from inside a
 * callback: a removed source is never called again, one added during a
 * dispatch round is first polled in the next round.
 */
struct loop_source *loop_add_source(struct loop *loop, loop_prepare_fn prep,
				    loop_dispatch_fn dispatch, void *arg);
/* NULL is fine. */
void loop_remove_source(struct loop *loop, struct loop_source *src);

/* A plain fd watch; events may be changed later (0 = not polled). */
struct loop_source *loop_add_fd(struct loop *loop, int fd, short events,
				loop_io_fn cb, void *arg);
void loop_set_fd_events(struct loop_source *src, short events);

/* Drives a common/link.h link: its socket, keepalive and reconnect timers. */
struct loop_source *loop_add_link(struct loop *loop, struct link *link);

void loop_timer_init(struct loop_timer *t, loop_timer_fn cb, void *arg);
/* (Re)arms t to fire once, ms from now. */
void loop_timer_start(struct loop *loop, struct loop_timer *t, uint32_t ms);
void loop_timer_stop(struct loop *loop, struct loop_timer *t);
bool loop_timer_armed(const struct loop_timer *t);

/*
 * One round: prepare, poll (at most max_wait_ms, -1 for no limit), dispatch
 * sources, fire due timers. 0 or -errno (EINTR counts as 0).
 */
int loop_run_once(struct loop *loop, int max_wait_ms);
/* Rounds until loop_quit(); returns the code given to loop_quit(). */
int loop_run(struct loop *loop);
void loop_quit(struct loop *loop, int code);
bool loop_quitting(const struct loop *loop);

#endif
