/*
 * server: what the parts of remsim-server share: its configuration, the
 * one libwebsockets context that owns the event loop, and the entry points
 * of each part (RSPRO listener, database, HTTP).
 */
#ifndef REMSIM_SERVER_H
#define REMSIM_SERVER_H

#include <stdint.h>

#include <libwebsockets.h>

#include "rspro.h"
#include "token.h"

#define SERVER_DEFAULT_RSPRO_PORT	9998
#define SERVER_DEFAULT_HTTP_PORT	9997
#define SERVER_DEFAULT_BANKD_PORT	9999

/* Who may connect to a listener without a valid token. */
enum auth_policy {
	AUTH_REQUIRED,	/* no token, no service */
	AUTH_OPTIONAL,	/* osmo-remsim peers allowed, marked unauthenticated */
	AUTH_OFF,	/* tokens ignored */
};

struct server_config {
	const char *rspro_bind;		/* NULL: all interfaces, v4 + v6 */
	int rspro_port;
	const char *http_bind;
	int http_port;
	const char *db_conninfo;	/* NULL: libpq's PG* environment */
	const char *key_path;		/* server secret key */
	enum auth_policy rspro_auth;
	const char *v1_access;		/* "loopback" (default), "any", "off" */
	const char *web_root;		/* dashboard files; NULL: default */
	int bankd_port;			/* told to clients for osmo bankds */
	uint32_t ping_interval_ms;
	uint32_t pong_timeout_ms;
	uint32_t connect_timeout_ms;	/* TCP up -> connect request */
	uint32_t feed_heartbeat_ms;	/* /feed heartbeat and ping interval */
	unsigned feed_queue_max;	/* /feed messages queued per subscriber */
};

struct server {
	struct server_config cfg;
	struct lws_context *ctx;
	struct lws_vhost *rspro_vh;
	struct lws_vhost *internal_vh;	/* no listener: adopted fds (db) */
	struct db *db;
	struct control *control;
	struct http *http;		/* the HTTP vhost (http.c) */
	struct feed *feed;		/* /feed subscribers (feed.c) */
	struct auth *auth;
	struct rspro_identity identity;	/* what we say we are */
	char hostname[33];
	int have_key;			/* keypair loaded from cfg.key_path */
	struct token_keypair keypair;
	int stopping;
};

const char *auth_policy_name(enum auth_policy p);
int auth_policy_parse(const char *s, enum auth_policy *p);

/* db.c */
extern const struct lws_protocols db_protocol;

/* rspro_server.c */
extern const struct lws_protocols rspro_server_protocol;
int rspro_server_start(struct server *srv);

/* What the control plane may do with a connection (rspro_server.c). */
struct rspro_conn;
/* Encodes and queues pdu, then frees it. 0 or -1 (logged). */
int rspro_conn_send(struct rspro_conn *c, RsproPDU_t *pdu);
/* Closes after what is queued has been sent. */
void rspro_conn_close(struct rspro_conn *c, const char *reason);
const char *rspro_conn_name(const struct rspro_conn *c);
const char *rspro_conn_peer(const struct rspro_conn *c);
/* The peer's IP address (port left 0). */
void rspro_conn_peer_ip(const struct rspro_conn *c, struct rspro_ip_port *ip);
/* Milliseconds the peer has been late with a PONG (0: not late). */
int64_t rspro_conn_pong_overdue_ms(const struct rspro_conn *c);
/* Sends a PING now and closes the link unless a PONG comes within ms. */
void rspro_conn_probe(struct rspro_conn *c, uint32_t ms);
void rspro_conn_set_user(struct rspro_conn *c, void *user);
/* Whether the peer proved its identity with a valid token. */
int rspro_conn_authenticated(const struct rspro_conn *c);
/* Closes every connection that authenticated with this token. */
void rspro_server_drop_token(struct server *srv, const uint8_t *token_id);
void *rspro_conn_get_user(const struct rspro_conn *c);

#endif
