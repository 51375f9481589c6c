/*
 * session: the client's identified RSPRO conversation on top of one link
 * (to the server or to a bankd). On link up it sends connectClientReq with
 * our identity, slot and token, waits up to 10 s for connectClientRes and
 * checks result and peer type; a refusal goes back to the link's backoff.
 */
#ifndef REMSIM_CLIENT_SESSION_H
#define REMSIM_CLIENT_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rspro.h"

struct loop;
struct session;

enum session_state {
	SESSION_DOWN,		/* link not up (connecting or waiting) */
	SESSION_IDENTIFYING,	/* connectClientReq sent, no answer yet */
	SESSION_READY,		/* connectClientRes ok: PDUs flow */
	SESSION_STOPPED,	/* session_stop(): no more attempts */
};

struct session_ops {
	void (*ready)(struct session *s, void *user);
	/* was READY, is not any more */
	void (*lost)(struct session *s, const char *reason, void *user);
	/* one decoded PDU while READY, valid during the call only */
	void (*pdu)(struct session *s, const RsproPDU_t *pdu, void *user);
};

struct session_config {
	const char *name;		/* "server 127.0.0.1:9998" */
	const char *host;
	uint16_t port;
	ComponentType_t peer_type;	/* what the peer must say it is */
	const struct rspro_identity *identity;	/* ours; kept by pointer */
	const struct rspro_client_slot *slot;	/* ours; kept by pointer */
	const char *token;		/* or NULL; kept by pointer */
	uint32_t ping_interval_ms;	/* 0: link defaults */
	uint32_t pong_timeout_ms;
	uint32_t backoff_base_ms;
	uint32_t backoff_cap_ms;
	const struct session_ops *ops;
	void *user;
};

/* NULL on bad configuration (logged) or out of memory. */
struct session *session_new(struct loop *loop, const struct session_config *c);
void session_free(struct session *s);
int session_start(struct session *s);
void session_stop(struct session *s);
/* Drops the connection and retries after the backoff delay. */
void session_restart(struct session *s, const char *reason);

/* Encodes, frees and sends pdu (NULL: out of memory); 0 or -errno. */
int session_send(struct session *s, RsproPDU_t *pdu);

enum session_state session_get_state(const struct session *s);
const char *session_state_name(enum session_state state);
const char *session_name(const struct session *s);
const char *session_host(const struct session *s);
uint16_t session_port(const struct session *s);

#endif
