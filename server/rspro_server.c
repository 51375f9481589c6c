/*
 * rspro_server: the RSPRO listener of remsim-server, a raw-TCP vhost in
 * the server's libwebsockets loop. Each connection reassembles IPA frames,
 * runs osmo-remsim's keepalive (PING at accept, then 30 s after each PONG,
 * 10 s to answer), waits at most connect_timeout for a connect request and
 * then speaks for one bankd or one client.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "auth.h"
#include "control.h"
#include "ipa.h"
#include "link.h"
#include "log.h"
#include "metrics.h"
#include "rspro.h"
#include "server.h"

#define CONN_OUT_MAX	(256 * 1024)	/* unsent bytes before we give up */
#define CONN_WRITE_CHUNK 4096

enum conn_state {
	CONN_NEW,	/* TCP up, no connect request yet */
	CONN_BANKD,	/* identified as a bankd */
	CONN_CLIENT,	/* identified as a client */
	CONN_CLOSING,	/* flushing, then closed */
};

static const char *const conn_state_names[] = {
	[CONN_NEW] = "NEW",
	[CONN_BANKD] = "BANKD",
	[CONN_CLIENT] = "CLIENT",
	[CONN_CLOSING] = "CLOSING",
};

struct rspro_conn {
	struct rspro_conn *next, *prev;	/* all connections, for revocations */
	struct server *srv;
	struct lws *wsi;
	enum conn_state state;
	char peer[64];		/* "127.0.0.1:51234" */
	char name[96];		/* log context */
	struct rspro_ip_port peer_ip;
	void *user;		/* the control plane's bankd or client */
	int64_t ping_sent_ms;	/* when the unanswered PING went out */
	int authenticated;	/* proved its identity with a token */
	uint8_t token_id[TOKEN_ID_LEN];
	struct ipa_reader rd;
	uint8_t *out;
	size_t out_len;
	size_t out_cap;
	int waiting_pong;
	lws_sorted_usec_list_t sul_ping;	/* next PING due */
	lws_sorted_usec_list_t sul_pong;	/* PONG overdue */
	lws_sorted_usec_list_t sul_connect;	/* connect request overdue */
};

static struct rspro_conn *conn_list;

static void conn_set_state(struct rspro_conn *c, enum conn_state st,
			   const char *reason)
{
	if (c->state == st)
		return;
	LOGN(c->name, "%s -> %s (%s)", conn_state_names[c->state],
	     conn_state_names[st], reason);
	c->state = st;
}

/* Queues bytes for the socket; 0 or -1 when the peer does not read. */
static int conn_queue(struct rspro_conn *c, const uint8_t *data, size_t len)
{
	if (c->out_len + len > CONN_OUT_MAX) {
		LOGE(c->name, "peer does not read: %zu bytes unsent, closing",
		     c->out_len);
		conn_set_state(c, CONN_CLOSING, "output overflow");
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT,
				LWS_TO_KILL_ASYNC);
		return -1;
	}
	if (c->out_len + len > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 1024;
		uint8_t *p;

		while (cap < c->out_len + len)
			cap *= 2;
		p = realloc(c->out, cap);
		if (!p)
			return -1;
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	lws_callback_on_writable(c->wsi);
	return 0;
}

int rspro_conn_send(struct rspro_conn *c, RsproPDU_t *pdu)
{
	uint8_t buf[IPA_MAX_TX_FRAME];
	char err[160];
	ssize_t n;

	if (!pdu) {
		LOGE(c->name, "out of memory building a PDU");
		return -1;
	}
	n = rspro_encode_ipa(pdu, buf, sizeof(buf), err, sizeof(err));
	if (n < 0) {
		LOGE(c->name, "cannot encode %s: %s", rspro_pdu_name(pdu), err);
		rspro_pdu_free(pdu);
		return -1;
	}
	LOGD(c->name, "tx %s", rspro_pdu_name(pdu));
	metrics_rspro_tx(pdu->msg.present);
	rspro_pdu_free(pdu);
	return conn_queue(c, buf, (size_t)n);
}

static void conn_send_ccm(struct rspro_conn *c, enum ipa_ccm_type type)
{
	uint8_t f[4];

	conn_queue(c, f, ipa_ccm_frame(f, type));
}

static struct rspro_conn *conn_from_sul(lws_sorted_usec_list_t *sul,
					size_t offset)
{
	return (struct rspro_conn *)((char *)sul - offset);
}

static void conn_schedule(struct rspro_conn *c, lws_sorted_usec_list_t *sul,
			  sul_cb_t cb, uint32_t ms)
{
	lws_sul_schedule(c->srv->ctx, 0, sul, cb, (lws_usec_t)ms * 1000);
}

static void conn_pong_overdue(lws_sorted_usec_list_t *sul)
{
	struct rspro_conn *c =
		conn_from_sul(sul, offsetof(struct rspro_conn, sul_pong));

	LOGN(c->name, "no PONG within %u ms: closing",
	     c->srv->cfg.pong_timeout_ms);
	conn_set_state(c, CONN_CLOSING, "keepalive timeout");
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT,
			LWS_TO_KILL_ASYNC);
}

static void conn_ping_with_timeout(struct rspro_conn *c, uint32_t ms)
{
	conn_send_ccm(c, IPA_CCM_PING);
	if (!c->waiting_pong)
		c->ping_sent_ms = link_now_ms();
	c->waiting_pong = 1;
	lws_sul_cancel(&c->sul_ping);
	conn_schedule(c, &c->sul_pong, conn_pong_overdue, ms);
}

static void conn_ping(struct rspro_conn *c)
{
	conn_ping_with_timeout(c, c->srv->cfg.pong_timeout_ms);
}

static void conn_ping_due(lws_sorted_usec_list_t *sul)
{
	conn_ping(conn_from_sul(sul, offsetof(struct rspro_conn, sul_ping)));
}

static void conn_connect_overdue(lws_sorted_usec_list_t *sul)
{
	struct rspro_conn *c =
		conn_from_sul(sul, offsetof(struct rspro_conn, sul_connect));

	if (c->state != CONN_NEW)
		return;
	LOGN(c->name, "no connect request within %u ms: closing",
	     c->srv->cfg.connect_timeout_ms);
	conn_set_state(c, CONN_CLOSING, "connect timeout");
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT,
			LWS_TO_KILL_ASYNC);
}

static void conn_got_pong(struct rspro_conn *c)
{
	if (!c->waiting_pong)
		return;
	c->waiting_pong = 0;
	lws_sul_cancel(&c->sul_pong);
	conn_schedule(c, &c->sul_ping, conn_ping_due,
		      c->srv->cfg.ping_interval_ms);
}

/* Refuses a connect request: answer with the result, then close. */
static void conn_refuse(struct rspro_conn *c, RsproPDU_t *res, long result)
{
	LOGN(c->name, "connect refused: %s",
	     rspro_result_name(result) ? rspro_result_name(result) : "?");
	rspro_conn_send(c, res);
	conn_set_state(c, CONN_CLOSING, "connect refused");
}

/* Checks the peer's token; non-zero when the connect must be refused. */
static int conn_authenticate(struct rspro_conn *c, const AuthToken_t *token,
			     enum token_role role, long subject,
			     struct auth_result *ar)
{
	auth_check_agent(c->srv, token, role, subject, ar);
	if (ar->result != ResultCode_ok) {
		LOGE(c->name, "authentication failed: %s", ar->why);
		return -1;
	}
	if (ar->why[0])
		LOGN(c->name, "%s", ar->why);
	c->authenticated = ar->authenticated;
	if (ar->authenticated)
		memcpy(c->token_id, ar->claims.token_id, TOKEN_ID_LEN);
	return 0;
}

/*
 * connectBankReq and connectClientReq: the same steps with different
 * types, roles and answers.
 */
static void conn_handle_connect(struct rspro_conn *c, const RsproPDU_t *pdu)
{
	int bankd = pdu->msg.present == RsproPDUchoice_PR_connectBankReq;
	const ConnectBankReq_t *breq = &pdu->msg.choice.connectBankReq;
	const ConnectClientReq_t *creq = &pdu->msg.choice.connectClientReq;
	const ComponentIdentity_t *id = bankd ? &breq->identity :
					&creq->identity;
	long type = bankd ? ComponentType_remsimBankd :
		    ComponentType_remsimClient;
	RsproPDU_t *(*gen_res)(const struct rspro_identity *, ResultCode_t,
			       const struct rspro_caps *) =
		bankd ? rspro_gen_connect_bank_res :
			rspro_gen_connect_client_res;
	struct auth_result ar = { .result = ResultCode_ok };
	struct rspro_caps caps;
	long result;

	if (id->type != type) {
		/* osmo-remsim closes without an answer; we say why first */
		LOGE(c->name, "%s from a %s: closing", rspro_pdu_name(pdu),
		     rspro_component_type_name(id->type) ?
		     rspro_component_type_name(id->type) : "?");
		conn_set_state(c, CONN_CLOSING, "wrong identity type");
		return;
	}
	if (!bankd && !creq->clientSlot) {
		/* osmo-remsim drops these silently; we say why */
		LOGE(c->name, "connectClientReq without a client slot");
		conn_refuse(c, gen_res(&c->srv->identity,
				       ResultCode_illegalClientId, NULL),
			    ResultCode_illegalClientId);
		return;
	}
	if (bankd)
		snprintf(c->name, sizeof(c->name), "bankd %ld @%s",
			 breq->bankId, c->peer);
	else
		snprintf(c->name, sizeof(c->name), "client %ld:%ld @%s",
			 creq->clientSlot->clientId, creq->clientSlot->slotNr,
			 c->peer);
	lws_sul_cancel(&c->sul_connect);

	if (conn_authenticate(c, bankd ? breq->authToken : creq->authToken,
			      bankd ? TOKEN_ROLE_BANKD : TOKEN_ROLE_CLIENT,
			      bankd ? breq->bankId : creq->clientSlot->clientId,
			      &ar))
		result = ar.result;
	else if (bankd)
		result = control_bankd_connect(c->srv, c, breq);
	else
		result = control_client_connect(c->srv, c, creq);
	auth_caps(c->srv, &ar, &caps);
	if (result != ResultCode_ok) {
		conn_refuse(c, gen_res(&c->srv->identity, result,
				       ar.presented ? &caps : NULL), result);
		return;
	}
	conn_set_state(c, bankd ? CONN_BANKD : CONN_CLIENT,
		       rspro_pdu_name(pdu));
	rspro_conn_send(c, gen_res(&c->srv->identity, ResultCode_ok,
				   ar.presented ? &caps : NULL));
	if (bankd)
		control_bankd_up(c->srv, c);
	else
		control_client_up(c->srv, c);
}

static void conn_handle_pdu(struct rspro_conn *c, const uint8_t *data,
			    size_t len)
{
	char err[200] = "";
	RsproPDU_t *pdu;
	int rc = rspro_decode(data, len, &pdu, err, sizeof(err));

	if (rc == RSPRO_ERR_UNKNOWN_MSG) {
		/* a newer peer: say so, keep the link (as osmo-remsim does) */
		LOGI(c->name, "ignoring %s", err);
		return;
	}
	if (rc) {
		metrics_rspro_bad_input();
		LOGE(c->name, "bad RSPRO PDU (%s): %s; closing",
		     rspro_strerror(rc), err);
		rspro_pdu_free(pdu);
		conn_set_state(c, CONN_CLOSING, rspro_strerror(rc));
		return;
	}
	LOGD(c->name, "rx %s", rspro_pdu_name(pdu));
	metrics_rspro_rx(pdu->msg.present);
	switch (pdu->msg.present) {
	case RsproPDUchoice_PR_connectBankReq:
	case RsproPDUchoice_PR_connectClientReq:
		if (c->state == CONN_NEW)
			conn_handle_connect(c, pdu);
		else
			LOGI(c->name, "repeated %s ignored",
			     rspro_pdu_name(pdu));
		break;
	default:
		if (c->state == CONN_BANKD || c->state == CONN_CLIENT)
			control_handle_pdu(c->srv, c, pdu);
		else
			LOGI(c->name, "%s before any connect request: ignored",
			     rspro_pdu_name(pdu));
		break;
	}
	rspro_pdu_free(pdu);
}

/* Takes every complete frame out of the reader; -1: close the link. */
static int conn_handle_frames(struct rspro_conn *c)
{
	struct ipa_frame f;
	uint8_t reply[4];
	size_t n;
	int rc;

	while ((rc = ipa_reader_next(&c->rd, &f)) == 1) {
		if (f.stream == IPA_STREAM_CCM) {
			if (f.data[0] == IPA_CCM_PONG)
				conn_got_pong(c);
			n = ipa_ccm_reply(&f, reply);
			if (n)
				conn_queue(c, reply, n);
		} else if (f.stream == IPA_STREAM_OSMO &&
			   f.ext == IPA_OSMO_EXT_RSPRO) {
			conn_handle_pdu(c, f.data, f.len);
		} else {
			LOGI(c->name, "ignoring IPA stream 0x%02x", f.stream);
		}
		if (c->state == CONN_CLOSING && !c->out_len)
			return -1;
	}
	if (rc < 0) {
		metrics_rspro_bad_input();
		LOGE(c->name, "%s: closing", ipa_strerror(rc));
		return -1;
	}
	return 0;
}

static void conn_init(struct rspro_conn *c, struct lws *wsi)
{
	char ip[48] = "?";
	int port = 0;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = lws_get_socket_fd(wsi);

	c->srv = lws_context_user(lws_get_context(wsi));
	c->wsi = wsi;
	c->state = CONN_NEW;
	ipa_reader_init(&c->rd);
	if (fd >= 0 && !getpeername(fd, (struct sockaddr *)&ss, &sl)) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			port = ntohs(s6->sin6_port);
			if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
				/* an IPv4 peer on the dual-stack socket */
				c->peer_ip.family = AF_INET;
				memcpy(c->peer_ip.addr, s6->sin6_addr.s6_addr + 12, 4);
			} else {
				c->peer_ip.family = AF_INET6;
				memcpy(c->peer_ip.addr, s6->sin6_addr.s6_addr, 16);
			}
		} else if (ss.ss_family == AF_INET) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

			port = ntohs(s4->sin_port);
			c->peer_ip.family = AF_INET;
			memcpy(c->peer_ip.addr, &s4->sin_addr, 4);
		}
		inet_ntop(c->peer_ip.family, c->peer_ip.addr, ip, sizeof(ip));
	}
	snprintf(c->peer, sizeof(c->peer), strchr(ip, ':') ? "[%s]:%d" :
		 "%s:%d", ip, port);
	snprintf(c->name, sizeof(c->name), "conn @%s", c->peer);
	LOGI(c->name, "TCP connection accepted");
	c->next = conn_list;
	if (conn_list)
		conn_list->prev = c;
	conn_list = c;
	/* osmo-remsim's server PINGs at once; its peers expect it */
	conn_ping(c);
	conn_schedule(c, &c->sul_connect, conn_connect_overdue,
		      c->srv->cfg.connect_timeout_ms);
}

static void conn_cleanup(struct rspro_conn *c)
{
	if (c->user)
		control_conn_gone(c->srv, c);
	c->user = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else if (conn_list == c)
		conn_list = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	lws_sul_cancel(&c->sul_ping);
	lws_sul_cancel(&c->sul_pong);
	lws_sul_cancel(&c->sul_connect);
	LOGN(c->name, "connection closed");
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_cap = 0;
}

static int conn_write(struct rspro_conn *c)
{
	uint8_t buf[LWS_PRE + CONN_WRITE_CHUNK];
	size_t n = c->out_len < CONN_WRITE_CHUNK ? c->out_len : CONN_WRITE_CHUNK;

	if (!n)
		return c->state == CONN_CLOSING ? -1 : 0;
	memcpy(buf + LWS_PRE, c->out, n);
	if (lws_write(c->wsi, buf + LWS_PRE, n, LWS_WRITE_RAW) < (int)n) {
		LOGE(c->name, "write failed: closing");
		return -1;
	}
	memmove(c->out, c->out + n, c->out_len - n);
	c->out_len -= n;
	if (c->out_len || c->state == CONN_CLOSING)
		lws_callback_on_writable(c->wsi);
	return 0;
}

static int rspro_server_callback(struct lws *wsi,
				 enum lws_callback_reasons reason, void *user,
				 void *in, size_t len)
{
	struct rspro_conn *c = user;

	switch (reason) {
	case LWS_CALLBACK_RAW_ADOPT:
		conn_init(c, wsi);
		break;
	case LWS_CALLBACK_RAW_RX: {
		const uint8_t *p = in;

		while (len) {
			size_t room;
			uint8_t *dst = ipa_reader_space(&c->rd, &room);
			size_t n = len < room ? len : room;

			if (!n) {
				LOGE(c->name, "receive buffer full: closing");
				return -1;
			}
			memcpy(dst, p, n);
			ipa_reader_commit(&c->rd, n);
			p += n;
			len -= n;
			if (conn_handle_frames(c))
				return -1;
		}
		break;
	}
	case LWS_CALLBACK_RAW_WRITEABLE:
		return conn_write(c);
	case LWS_CALLBACK_RAW_CLOSE:
		conn_cleanup(c);
		break;
	default:
		break;
	}
	return 0;
}

void rspro_conn_close(struct rspro_conn *c, const char *reason)
{
	conn_set_state(c, CONN_CLOSING, reason);
	/* the WRITEABLE callback closes once the queue is empty */
	lws_callback_on_writable(c->wsi);
}

const char *rspro_conn_name(const struct rspro_conn *c)
{
	return c->name;
}

const char *rspro_conn_peer(const struct rspro_conn *c)
{
	return c->peer;
}

void rspro_conn_peer_ip(const struct rspro_conn *c, struct rspro_ip_port *ip)
{
	*ip = c->peer_ip;
	ip->port = 0;
}

int64_t rspro_conn_pong_overdue_ms(const struct rspro_conn *c)
{
	int64_t late;

	if (!c->waiting_pong)
		return 0;
	/* a PONG is normally back within a round trip */
	late = link_now_ms() - c->ping_sent_ms - 1000;
	return late > 0 ? late : 0;
}

void rspro_conn_probe(struct rspro_conn *c, uint32_t ms)
{
	if (c->waiting_pong)
		return;
	conn_ping_with_timeout(c, ms);
}

int rspro_conn_authenticated(const struct rspro_conn *c)
{
	return c->authenticated;
}

void rspro_server_drop_token(struct server *srv, const uint8_t *token_id)
{
	for (struct rspro_conn *c = conn_list; c; c = c->next) {
		if (!c->authenticated || c->state == CONN_CLOSING ||
		    memcmp(c->token_id, token_id, TOKEN_ID_LEN))
			continue;
		LOGN(c->name, "its token was revoked: closing");
		control_conn_gone(srv, c);
		rspro_conn_close(c, "token revoked");
	}
}

void rspro_conn_set_user(struct rspro_conn *c, void *user)
{
	c->user = user;
}

void *rspro_conn_get_user(const struct rspro_conn *c)
{
	return c->user;
}

const struct lws_protocols rspro_server_protocol = {
	.name = "remsim-rspro",
	.callback = rspro_server_callback,
	.per_session_data_size = sizeof(struct rspro_conn),
	.rx_buffer_size = 0,
};

int rspro_server_start(struct server *srv)
{
	static const struct lws_protocols *pprotocols[] = {
		&rspro_server_protocol, NULL,
	};
	struct lws_context_creation_info info;

	memset(&info, 0, sizeof(info));
	info.vhost_name = "rspro";
	info.port = srv->cfg.rspro_port;
	info.iface = srv->cfg.rspro_bind;
	info.pprotocols = pprotocols;
	info.options = LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG;
	info.listen_accept_role = "raw-skt";
	info.listen_accept_protocol = rspro_server_protocol.name;
	srv->rspro_vh = lws_create_vhost(srv->ctx, &info);
	if (!srv->rspro_vh) {
		LOGE(NULL, "cannot listen for RSPRO on %s port %d",
		     srv->cfg.rspro_bind ? srv->cfg.rspro_bind : "*",
		     srv->cfg.rspro_port);
		return -1;
	}
	LOGN(NULL, "RSPRO listening on %s port %d",
	     srv->cfg.rspro_bind ? srv->cfg.rspro_bind : "*",
	     srv->cfg.rspro_port);
	return 0;
}
