/*
 * link: the RSPRO client side of a TCP connection (bankd -> server,
 * client -> server, client -> bankd). It connects without blocking, keeps
 * the IPA PING/PONG keepalive going, reconnects with a jittered exponential
 * backoff and moves RSPRO PDUs as opaque bytes. The owner runs the poll()
 * loop; the link only says which fd, which events and which deadline.
 */
#ifndef REMSIM_LINK_H
#define REMSIM_LINK_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

/* Defaults, as osmo-remsim uses them (rspro-protocol.md 1.3, 1.4). */
#define LINK_DEFAULT_PING_INTERVAL_MS	30000
#define LINK_DEFAULT_PONG_TIMEOUT_MS	10000
#define LINK_DEFAULT_CONNECT_TIMEOUT_MS	10000
#define LINK_DEFAULT_BACKOFF_BASE_MS	1000
#define LINK_DEFAULT_BACKOFF_CAP_MS	30000
#define LINK_DEFAULT_STABLE_AFTER_MS	30000

/* Bytes the socket did not take yet; more than this resets the link. */
#define LINK_OUT_QUEUE_MAX		65536

enum link_state {
	LINK_IDLE,		/* created, link_start() not called yet */
	LINK_CONNECTING,	/* TCP connect in progress (one address) */
	LINK_UP,		/* TCP up, keepalive running, PDUs flow */
	LINK_WAIT_RETRY,	/* waiting for the backoff delay to pass */
	LINK_STOPPED,		/* link_stop(): no more attempts */
};

struct link;

typedef void (*link_up_cb)(struct link *link, void *user);
typedef void (*link_rspro_cb)(struct link *link, const uint8_t *pdu,
			      size_t len, void *user);
typedef void (*link_down_cb)(struct link *link, const char *reason,
			     void *user);

/*
 * Zero in any of the *_ms fields means the LINK_DEFAULT_* value. Strings are
 * copied by link_new().
 */
struct link_config {
	const char *name;	/* log context, e.g. "server 127.0.0.1:9998" */
	const char *host;	/* host name, IPv4 or IPv6 literal */
	uint16_t port;
	uint32_t ping_interval_ms;	/* PONG received -> next PING */
	uint32_t pong_timeout_ms;	/* PING sent -> PONG must be there */
	uint32_t connect_timeout_ms;	/* per address tried */
	uint32_t backoff_base_ms;
	uint32_t backoff_cap_ms;
	uint32_t stable_after_ms;	/* up this long: backoff starts over */
	link_up_cb on_up;		/* TCP up and our first PING sent */
	link_rspro_cb on_rspro;		/* one PDU, valid during the call */
	link_down_cb on_down;		/* an up connection was lost */
	void *user;
};

struct link_stats {
	uint64_t frames_in;	/* IPA frames of any stream */
	uint64_t frames_out;
	uint64_t bytes_in;	/* bytes read from / written to the socket */
	uint64_t bytes_out;
	uint64_t attempts;	/* connect attempts (each resolves anew) */
	uint64_t connects;	/* TCP connections that came up */
	uint64_t reconnects;	/* attempts started after a failure or loss */
	uint64_t pong_timeouts;
};

/*
 * Reconnect delays: the nominal delay starts at base and doubles up to cap.
 * Jitter takes up to 20 % off the nominal delay and never adds to it, so
 * the cap holds and peers restarting together spread out. Pure: tests feed
 * it fixed random numbers.
 */
struct link_backoff {
	uint32_t base_ms;
	uint32_t cap_ms;
	uint32_t stable_ms;
	uint32_t nominal_ms;	/* delay of the next retry before jitter */
};

void link_backoff_init(struct link_backoff *b, uint32_t base_ms,
		       uint32_t cap_ms, uint32_t stable_ms);
void link_backoff_reset(struct link_backoff *b);
/* Delay before the next retry, in [nominal * 0.8, nominal]; then doubles. */
uint32_t link_backoff_next(struct link_backoff *b, uint32_t random);
/*
 * Delay after losing a connection that was up for up_ms: 0 (retry at once,
 * backoff back to base) when it was stable, else link_backoff_next().
 */
uint32_t link_backoff_after_up(struct link_backoff *b, int64_t up_ms,
			       uint32_t random);

/* NULL on bad configuration (logged) or out of memory. */
struct link *link_new(const struct link_config *cfg);
/* Closes the connection without calling on_down. NULL is fine. */
void link_free(struct link *link);

/*
 * Starts connecting (from IDLE or STOPPED; -EALREADY otherwise). Callbacks
 * never run inside link_start(): a connection that comes up at once is
 * reported from link_handle_io().
 */
int link_start(struct link *link);
/* Closes the connection and cancels retries; on_down is not called. */
void link_stop(struct link *link);
/*
 * Drops the connection (if any) and retries after the backoff delay, e.g.
 * when the peer refused our connect request. on_down runs if it was up.
 */
void link_reconnect(struct link *link, const char *reason);

/*
 * Sends one RSPRO PDU (framed LL LL EE 07 <pdu>). 0 on success, -EMSGSIZE
 * above RSPRO_MAX_PDU, -ENOTCONN unless up. Nothing is queued across
 * reconnects. A socket error or a full output queue drops the connection
 * (on_down runs before this returns) and returns a negative errno.
 */
int link_send_rspro(struct link *link, const uint8_t *pdu, size_t len);

int link_is_up(const struct link *link);
enum link_state link_get_state(const struct link *link);
const char *link_state_name(enum link_state state);
const char *link_get_name(const struct link *link);
/* "[::1]:9998" or "127.0.0.1:9998" while connecting or up, else "". */
const char *link_get_peer(const struct link *link);
const struct link_stats *link_get_stats(const struct link *link);

/*
 * Event loop integration. Callbacks run only inside link_handle_io(),
 * link_handle_timers(), link_reconnect() and link_send_rspro(); they may
 * send, reconnect or stop the link, but not free it.
 */
/* Fills fd and events; returns 0 (pfd->fd = -1) when there is no socket. */
int link_pollfd(const struct link *link, struct pollfd *pfd);
/* Call with the revents poll() reported for the link's pollfd. */
void link_handle_io(struct link *link, short revents);
/* Milliseconds until the next timer is due (0: now), -1 for none. */
int link_timeout_ms(const struct link *link, int64_t now_ms);
void link_handle_timers(struct link *link, int64_t now_ms);

/* CLOCK_MONOTONIC in milliseconds: the clock of all link timers. */
int64_t link_now_ms(void);

/*
 * One poll() over the given links only (for simple programs and tests):
 * waits at most max_wait_ms (-1: until a link timer or event), handles I/O
 * and timers. Returns the number of links with events, or -errno.
 */
int link_run_once(struct link **links, size_t n, int max_wait_ms);

#endif
