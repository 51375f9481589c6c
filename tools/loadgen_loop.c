/*
 * loadgen_loop: the one event loop over every simulated agent's link:
 * paced starts, socket I/O, link and agent timers, the stop conditions.
 * It uses epoll, not poll(): with 10,000 sockets poll() spent ~80 % of
 * the loadgen's CPU walking idle sockets and added milliseconds to every
 * round trip the benchmarks time. A link says which fd and events it wants
 * (link_pollfd); whenever it may have changed them (I/O, a timer, a
 * start) its registration is refreshed before the next wait.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "link.h"
#include "loadgen.h"
#include "log.h"

#define LOOP_PROGRESS_MS	1000
#define LOOP_MAX_EVENTS		1024

static volatile sig_atomic_t loop_signal;

struct loop {
	struct loadgen *lg;
	int epfd;
	/* agents whose link may have a new socket or new events */
	uint32_t *touched;
	size_t n_touched;
	uint8_t *is_touched;
	int64_t timer_at;	/* earliest link or agent deadline, -1: none */
};

static void loop_touch(struct loop *lp, size_t i)
{
	if (lp->is_touched[i])
		return;
	lp->is_touched[i] = 1;
	lp->touched[lp->n_touched++] = (uint32_t)i;
}

/*
 * Brings the agent's epoll registration in line with its link. Always MOD
 * (ADD when unknown): a link that replaced its socket usually gets the same
 * fd number back, and closing the old one has dropped its registration.
 * Nothing to delete either: close() does that.
 */
static void loop_sync(struct loop *lp, size_t i)
{
	struct pollfd p;
	struct epoll_event ev = { .data.u64 = i };

	if (!link_pollfd(lp->lg->agents[i].link, &p))
		return;
	ev.events = (p.events & POLLIN ? EPOLLIN : 0) |
		    (p.events & POLLOUT ? EPOLLOUT : 0);
	if (epoll_ctl(lp->epfd, EPOLL_CTL_MOD, p.fd, &ev) == 0)
		return;
	if (errno != ENOENT ||
	    epoll_ctl(lp->epfd, EPOLL_CTL_ADD, p.fd, &ev) != 0)
		LOGE(link_get_name(lp->lg->agents[i].link), "epoll_ctl fd %d: "
		     "%s", p.fd, strerror(errno));
}

static void loop_sync_touched(struct loop *lp)
{
	for (size_t k = 0; k < lp->n_touched; k++) {
		loop_sync(lp, lp->touched[k]);
		lp->is_touched[lp->touched[k]] = 0;
	}
	lp->n_touched = 0;
}

static short loop_revents(uint32_t events)
{
	return (short)((events & EPOLLIN ? POLLIN : 0) |
		       (events & EPOLLOUT ? POLLOUT : 0) |
		       (events & EPOLLERR ? POLLERR : 0) |
		       (events & EPOLLHUP ? POLLHUP : 0));
}

static int64_t loop_earliest(int64_t a, int64_t b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

/*
 * Starts the agents whose turn has come; returns when the next one is due
 * (-1: all started). Pacing keeps the server's accept backlog from
 * overflowing: a dropped SYN costs a 1 s retransmit.
 */
static int64_t loop_start_due(struct loop *lp, int64_t now)
{
	struct loadgen *lg = lp->lg;
	int64_t elapsed = now - lg->start_ms;
	unsigned int rate = lg->cfg.connect_rate;
	size_t due = lg->n_agents;

	if (rate) {
		due = (size_t)(elapsed * rate / 1000) + 1;
		if (due > lg->n_agents)
			due = lg->n_agents;
	}
	while (lg->n_started < due) {
		agent_start(&lg->agents[lg->n_started]);
		loop_touch(lp, lg->n_started++);
	}
	if (lg->n_started == lg->n_agents)
		return -1;
	/* the n-th start (counting from 0) is due n * 1000 / rate ms in */
	return lg->start_ms +
	       ((int64_t)lg->n_started * 1000 + rate - 1) / rate;
}

/* Runs due timers of every agent and finds the next deadline. */
static void loop_timers(struct loop *lp, int64_t now)
{
	struct loadgen *lg = lp->lg;
	int64_t next = -1;

	for (size_t i = 0; i < lg->n_agents; i++) {
		struct agent *a = &lg->agents[i];
		int t;

		if (link_timeout_ms(a->link, now) == 0 ||
		    agent_timeout_ms(a, now) == 0) {
			link_handle_timers(a->link, now);
			agent_handle_timers(a, now);
			loop_touch(lp, i);
		}
		t = link_timeout_ms(a->link, now);
		if (t >= 0)
			next = loop_earliest(next, now + t);
		t = agent_timeout_ms(a, now);
		if (t >= 0)
			next = loop_earliest(next, now + t);
	}
	lp->timer_at = next;
}

static int loop_wait(struct loop *lp, int64_t wake_at, int64_t now)
{
	struct epoll_event events[LOOP_MAX_EVENTS];
	int timeout = -1;
	int n;

	if (wake_at >= 0)
		timeout = wake_at > now ? (int)(wake_at - now) : 0;
	n = epoll_wait(lp->epfd, events, LOOP_MAX_EVENTS, timeout);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int k = 0; k < n; k++) {
		size_t i = (size_t)events[k].data.u64;

		link_handle_io(lp->lg->agents[i].link,
			       loop_revents(events[k].events));
		loop_touch(lp, i);
	}
	return n;
}

static void loop_on_signal(int sig)
{
	loop_signal = sig;
}

static void loop_setup_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = loop_on_signal;	/* no SA_RESTART: epoll_wait returns */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int loop_init(struct loop *lp, struct loadgen *lg)
{
	memset(lp, 0, sizeof(*lp));
	lp->lg = lg;
	lp->timer_at = -1;
	lp->epfd = epoll_create1(EPOLL_CLOEXEC);
	lp->touched = calloc(lg->n_agents, sizeof(*lp->touched));
	lp->is_touched = calloc(lg->n_agents, sizeof(*lp->is_touched));
	if (lp->epfd < 0 || !lp->touched || !lp->is_touched) {
		LOGE(NULL, "cannot set up the event loop for %zu agents: %s",
		     lg->n_agents, lp->epfd < 0 ? strerror(errno) :
						  "out of memory");
		return -1;
	}
	return 0;
}

static void loop_free(struct loop *lp)
{
	if (lp->epfd >= 0)
		close(lp->epfd);
	free(lp->touched);
	free(lp->is_touched);
}

static int loop_all_ready(const struct loadgen *lg)
{
	return lg->counts.banks_up == lg->cfg.banks &&
	       lg->counts.clients_up == lg->cfg.clients;
}

int loop_run(struct loadgen *lg)
{
	int64_t end = lg->start_ms + (int64_t)llround(lg->cfg.duration_s *
						      1000);
	int progress = !lg->cfg.json && !lg->cfg.quiet;
	int64_t next_progress = lg->start_ms + LOOP_PROGRESS_MS;
	const char *why = NULL;
	struct loop lp;
	int goal_met = 0;
	int rc;

	loop_setup_signals();
	if (loop_init(&lp, lg)) {
		loop_free(&lp);
		return LOADGEN_EXIT_FAIL;
	}
	while (!why) {
		int64_t now = link_now_ms();
		int64_t wake_at = loop_earliest(loop_start_due(&lp, now), end);

		wake_at = loop_earliest(wake_at, lp.timer_at);
		if (progress)
			wake_at = loop_earliest(wake_at, next_progress);
		loop_sync_touched(&lp);
		rc = loop_wait(&lp, wake_at, now);
		if (rc < 0) {
			LOGE(NULL, "epoll_wait: %s", strerror(-rc));
			why = "an epoll_wait() error";
			break;
		}
		now = link_now_ms();
		loop_timers(&lp, now);
		if (lg->cfg.json)
			fflush(stdout);

		if (lg->cfg.until_mapped &&
		    lg->counts.mapped >= lg->cfg.until_mapped) {
			goal_met = 1;
			why = "--until-mapped";
		} else if (loop_signal) {
			why = strsignal(loop_signal);
		} else if (now >= end) {
			why = "--duration";
		}
		if (progress && now >= next_progress) {
			report_progress(lg);
			next_progress = now + LOOP_PROGRESS_MS;
		}
	}
	if (!lg->cfg.until_mapped)
		goal_met = loop_all_ready(lg);
	loop_free(&lp);
	return report_summary(lg, goal_met, why);
}
