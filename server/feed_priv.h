/*
 * feed_priv.h: what feed.c (subscribers, queues, fan-out, database) and
 * feed_ws.c (the lws protocol, authentication, frames) share. Not for any
 * other file: the rest of the server uses feed.h.
 */
#ifndef REMSIM_FEED_PRIV_H
#define REMSIM_FEED_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "feed.h"
#include "token.h"

#define FEED_QUEUE_BYTES	(16 * 1024 * 1024)	/* deltas per subscriber */
#define FEED_WRITE_MAX		(64 * 1024)	/* bytes of frames per write */
#define FEED_RX_MAX		4096	/* a message from a subscriber */
#define FEED_AUTH_TIMEOUT_MS	5000	/* at most: sub_auth_timeout_ms() */

/* Where a subscriber is; the names appear in logs. */
enum sub_state {
	SUB_AUTH,	/* connected, no token yet */
	SUB_SNAPSHOT,	/* authenticated, its snapshot is being read */
	SUB_LIVE,	/* snapshot queued, changes follow */
	SUB_CLOSING,	/* what is queued goes out, then the close frame */
};

/* One message for any number of subscribers: body follows the seq. */
struct feed_msg {
	unsigned refs;
	const char *type;	/* "change", "event", "snapshot", ... */
	int is_snapshot;
	size_t len;
	char body[];		/* ',"table":...}' */
};

struct feed_item {
	struct feed_msg *msg;
	const char *reason;	/* a snapshot's "connect" / "resync" */
};

/* A ring of items, grown on demand. */
struct feed_queue {
	struct feed_item *items;
	unsigned cap, head, count;
	size_t bytes;		/* of the non-snapshot messages */
};

struct feed;

/* lws per-session data of a /feed connection. */
struct feed_sub {
	struct feed *feed;
	struct lws *wsi;
	struct feed_sub *prev, *next;
	enum sub_state state;
	char peer[64];		/* "127.0.0.1:4711" */
	char who[160];		/* "admin:1@127.0.0.1:4711" once known */
	uint8_t token_id[TOKEN_ID_LEN];	/* its token, once authenticated */
	uint64_t seq;
	struct feed_queue q;	/* to write */
	struct feed_queue held;	/* changes while the snapshot is read */
	uint64_t want_gen;	/* the snapshot query it waits for */
	const char *snap_reason;
	int snapshot_unsent;	/* a snapshot in q not completely written */
	/* the message at the head of q, being written */
	char prefix[128];
	size_t prefix_len, off;
	int started;
	int ping_due;
	int64_t last_rx_ms;
	int close_code;
	char close_reason[64];	/* under 124 bytes: one control frame */
	int close_sent;
	/* bytes of a write the socket did not take (feed_sub_write) */
	unsigned char *pend;
	size_t pend_len, pend_off;
	int write_failed;
	char rx[FEED_RX_MAX];
	size_t rx_len;
	int rx_skip;		/* rest of an oversized message */
};

struct feed_backlog;

struct feed {
	struct server *srv;
	struct feed_sub *subs;
	unsigned authed;	/* subscribers in SNAPSHOT or LIVE */
	int listening;
	int snap_inflight;
	uint64_t snap_gen, next_gen;
	int fetching;		/* a row fetch is out: the rest waits */
	char fetch_table[16];
	struct feed_backlog *backlog, *backlog_tail;	/* while fetching */
	int closing;
	lws_sorted_usec_list_t sul_heartbeat;
	lws_sorted_usec_list_t sul_flush;
	int flush_scheduled;
	struct feed_stats stats;
	unsigned char wbuf[LWS_PRE + FEED_WRITE_MAX];
};

/* feed_ws.c: writes what it can now, without blocking; asks lws for a
 * writeable callback for the rest. 0, or -1 when the connection is done
 * (its close frame is out, or the socket failed). */
int feed_sub_write(struct feed_sub *s);

/* feed.c: queues */
struct feed_item *feed_queue_head(struct feed_queue *q);
void feed_queue_pop(struct feed_queue *q);

/* feed.c: subscribers */
void feed_sub_attach(struct feed *f, struct feed_sub *s, struct lws *wsi);
void feed_sub_detach(struct feed_sub *s);
/* drop: at once, else after what is queued (an error message) */
void feed_sub_close(struct feed_sub *s, int code, const char *reason,
		    int drop);
/* before authentication: an error message, then the close */
void feed_sub_refuse(struct feed_sub *s, int code, const char *errcode,
		     const char *why);
/* authenticated: a snapshot, then changes */
void feed_sub_subscribe(struct feed_sub *s, const uint8_t *token_id);

#endif
