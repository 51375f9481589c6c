/*
 * feed: the admin WebSocket feed at /feed (docs/feed.md). Subscribers
 * authenticate with an admin token, get a snapshot of the tables, then the
 * changes PostgreSQL's triggers announce on the remsim_feed channel,
 * through a bounded queue per subscriber.
 */
#ifndef REMSIM_FEED_H
#define REMSIM_FEED_H

#include <stdint.h>

#include <libwebsockets.h>

struct server;

#define FEED_PATH		"/feed"
#define FEED_SUBPROTOCOL	"remsim-feed.v1"
#define FEED_CHANNEL		"remsim_feed"
#define FEED_HEARTBEAT_MS	15000	/* default of --feed-heartbeat */
#define FEED_QUEUE_MAX		10000	/* default of --feed-queue */

/* the WebSocket protocol of the HTTP vhost (http.c lists it) */
extern const struct lws_protocols feed_protocol;

int feed_init(struct server *srv);
void feed_free(struct server *srv);

/* database hooks (main.c) */
void feed_db_up(struct server *srv);
void feed_db_down(struct server *srv);
void feed_db_notify(struct server *srv, const char *payload);

/*
 * A token was revoked (auth.c): its subscribers are closed with 4401
 * "token revoked". token_id has TOKEN_ID_LEN bytes.
 */
void feed_drop_token(struct server *srv, const uint8_t *token_id);

/* SIGTERM: every subscriber is closed with 1001 "server shutting down". */
void feed_shutdown(struct server *srv);
/* Close frames still to be written (the shutdown waits for them). */
int feed_is_busy(const struct server *srv);

struct feed_stats {
	unsigned subscribers;		/* authenticated, connected */
	uint64_t messages;		/* messages written */
	uint64_t resyncs;		/* queues dropped, snapshot resent */
	uint64_t drops;			/* closed: too slow or not answering */
};
void feed_get_stats(const struct server *srv, struct feed_stats *st);

#endif
