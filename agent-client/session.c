/*
 * session: connect procedure of rspro-protocol.md 4.1 for the client side,
 * as a state machine on top of common/link (which owns TCP, keepalive and
 * backoff). Refusals, a wrong peer type and a missing answer all go back
 * to the link's backoff instead of osmo-remsim 1.0's immediate retry.
 */
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipa.h"
#include "link.h"
#include "log.h"
#include "loop.h"

/* osmo-remsim waits this long for a connect response (section 1.4). */
#define SESSION_IDENTIFY_TIMEOUT_MS	10000

struct session {
	struct session_config cfg;
	char *name;
	char *host;
	enum session_state state;
	struct loop *loop;
	struct link *link;
	struct loop_source *src;
	struct loop_timer identify_timer;
};

static const char *const session_state_names[] = {
	[SESSION_DOWN] = "down",
	[SESSION_IDENTIFYING] = "identifying",
	[SESSION_READY] = "ready",
	[SESSION_STOPPED] = "stopped",
};

const char *session_state_name(enum session_state state)
{
	if ((unsigned int)state >= sizeof(session_state_names) /
					   sizeof(session_state_names[0]))
		return "?";
	return session_state_names[state];
}

/* The only place that changes s->state. */
static void session_set_state(struct session *s, enum session_state new_state,
			      const char *reason)
{
	if (s->state == new_state)
		return;
	LOGN(s->name, "session %s -> %s (%s)", session_state_name(s->state),
	     session_state_name(new_state), reason);
	s->state = new_state;
	if (new_state != SESSION_IDENTIFYING)
		loop_timer_stop(s->loop, &s->identify_timer);
}

int session_send(struct session *s, RsproPDU_t *pdu)
{
	uint8_t buf[RSPRO_MAX_PDU];
	char err[160];
	ssize_t n;

	if (!pdu) {
		LOGE(s->name, "out of memory building a PDU");
		return -ENOMEM;
	}
	n = rspro_encode(pdu, buf, sizeof(buf), err, sizeof(err));
	if (n < 0) {
		LOGE(s->name, "cannot encode %s: %s", rspro_pdu_name(pdu),
		     err);
		rspro_pdu_free(pdu);
		return -EINVAL;
	}
	LOGD(s->name, "tx %s", rspro_pdu_name(pdu));
	rspro_pdu_free(pdu);
	return link_send_rspro(s->link, buf, (size_t)n);
}

/* ---- link callbacks ----------------------------------------------------- */

static void session_on_up(struct link *link, void *user)
{
	struct session *s = user;

	session_set_state(s, SESSION_IDENTIFYING, "link up, connectClientReq");
	loop_timer_start(s->loop, &s->identify_timer,
			 SESSION_IDENTIFY_TIMEOUT_MS);
	/* a failed send has dropped the link already (session_on_down) */
	session_send(s, rspro_gen_connect_client_req(s->cfg.identity,
						     s->cfg.slot,
						     s->cfg.token));
}

static void session_on_down(struct link *link, const char *reason, void *user)
{
	struct session *s = user;
	int was_ready = s->state == SESSION_READY;

	if (s->state == SESSION_STOPPED)
		return;
	session_set_state(s, SESSION_DOWN, reason);
	if (was_ready && s->cfg.ops->lost)
		s->cfg.ops->lost(s, reason, s->cfg.user);
}

static void session_identify_timeout(void *arg)
{
	struct session *s = arg;

	LOGE(s->name, "no connectClientRes within %d ms",
	     SESSION_IDENTIFY_TIMEOUT_MS);
	session_restart(s, "no connect response");
}

static void session_connect_res(struct session *s, const ConnectClientRes_t *r)
{
	const char *res = rspro_result_name(r->result);
	char reason[128];

	if (s->state != SESSION_IDENTIFYING) {
		LOGE(s->name, "connectClientRes while %s: ignored",
		     session_state_name(s->state));
		return;
	}
	if (r->result != ResultCode_ok) {
		snprintf(reason, sizeof(reason), "connect refused: %s",
			 res ? res : "unknown result");
		LOGE(s->name, "%s (%ld)", reason, (long)r->result);
		session_restart(s, reason);
		return;
	}
	if (r->identity.type != (long)s->cfg.peer_type) {
		snprintf(reason, sizeof(reason), "peer says it is a %s, not a %s",
			 rspro_component_type_name(r->identity.type),
			 rspro_component_type_name(s->cfg.peer_type));
		LOGE(s->name, "%s", reason);
		session_restart(s, reason);
		return;
	}
	LOGI(s->name, "peer is %.*s %.*s (%.*s)",
	     (int)r->identity.software.size,
	     (const char *)r->identity.software.buf,
	     (int)r->identity.swVersion.size,
	     (const char *)r->identity.swVersion.buf,
	     (int)r->identity.name.size, (const char *)r->identity.name.buf);
	session_set_state(s, SESSION_READY, "connectClientRes ok");
	if (s->cfg.ops->ready)
		s->cfg.ops->ready(s, s->cfg.user);
}

static void session_on_rspro(struct link *link, const uint8_t *data,
			     size_t len, void *user)
{
	struct session *s = user;
	RsproPDU_t *pdu = NULL;
	char err[160];
	int rc;

	rc = rspro_decode(data, len, &pdu, err, sizeof(err));
	if (rc < 0 && rc != RSPRO_ERR_VERSION) {
		/* osmo-remsim drops such PDUs too; the link stays usable */
		LOGE(s->name, "undecodable RSPRO PDU (%zu bytes) dropped: %s",
		     len, err);
		return;
	}
	if (rc == RSPRO_ERR_VERSION)
		LOGI(s->name, "PDU with RSPRO version %ld (we speak %d)",
		     pdu->version, RSPRO_VERSION);
	LOGD(s->name, "rx %s", rspro_pdu_name(pdu));
	if (pdu->msg.present == RsproPDUchoice_PR_connectClientRes)
		session_connect_res(s, &pdu->msg.choice.connectClientRes);
	else if (s->state == SESSION_READY)
		s->cfg.ops->pdu(s, pdu, s->cfg.user);
	else
		LOGE(s->name, "%s before the connect response: ignored",
		     rspro_pdu_name(pdu));
	rspro_pdu_free(pdu);
}

/* ---- life cycle --------------------------------------------------------- */

struct session *session_new(struct loop *loop, const struct session_config *c)
{
	struct link_config lc = {
		.name = c->name,
		.host = c->host,
		.port = c->port,
		.ping_interval_ms = c->ping_interval_ms,
		.pong_timeout_ms = c->pong_timeout_ms,
		.backoff_base_ms = c->backoff_base_ms,
		.backoff_cap_ms = c->backoff_cap_ms,
		.on_up = session_on_up,
		.on_rspro = session_on_rspro,
		.on_down = session_on_down,
	};
	struct session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->cfg = *c;
	s->loop = loop;
	s->state = SESSION_DOWN;
	s->name = strdup(c->name);
	s->host = strdup(c->host);
	lc.user = s;
	loop_timer_init(&s->identify_timer, session_identify_timeout, s);
	if (!s->name || !s->host)
		goto fail;
	s->link = link_new(&lc);
	if (!s->link)
		goto fail;
	s->src = loop_add_link(loop, s->link);
	if (!s->src)
		goto fail;
	return s;
fail:
	session_free(s);
	return NULL;
}

void session_free(struct session *s)
{
	if (!s)
		return;
	loop_timer_stop(s->loop, &s->identify_timer);
	loop_remove_source(s->loop, s->src);
	link_free(s->link);
	free(s->name);
	free(s->host);
	free(s);
}

int session_start(struct session *s)
{
	if (s->state == SESSION_STOPPED)
		s->state = SESSION_DOWN;
	return link_start(s->link);
}

void session_stop(struct session *s)
{
	session_set_state(s, SESSION_STOPPED, "stopped");
	link_stop(s->link);
}

void session_restart(struct session *s, const char *reason)
{
	/* DOWN first: the owner hears "lost" only for a READY session */
	int was_ready = s->state == SESSION_READY;

	session_set_state(s, SESSION_DOWN, reason);
	link_reconnect(s->link, reason);
	if (was_ready && s->cfg.ops->lost)
		s->cfg.ops->lost(s, reason, s->cfg.user);
}

enum session_state session_get_state(const struct session *s)
{
	return s->state;
}

const char *session_name(const struct session *s)
{
	return s->name;
}

const char *session_host(const struct session *s)
{
	return s->host;
}

uint16_t session_port(const struct session *s)
{
	return s->cfg.port;
}
