/*
 * client: the modem agent's state machine (rspro-protocol.md 4.3, 4.4 and
 * 6.6): INIT -> UNMAPPED -> WAIT_BANKD -> WAIT_ATR -> OPERATIONAL. The
 * server session only configures; losing it never touches a working bankd
 * session, and an unchanged configClientBankReq keeps the bankd session.
 */
#define _GNU_SOURCE
#include "client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "event_script.h"
#include "frontend.h"
#include "hex.h"
#include "log.h"
#include "loop.h"
#include "session.h"

#define CLIENT_ATR_MAX		55
#define CLIENT_NAME_MAX		32

struct client {
	struct client_config cfg;
	struct loop *loop;
	struct frontend *fe;
	char name[40];			/* "client 23:0" */
	char host_name[CLIENT_NAME_MAX + 1];
	struct rspro_identity identity;
	struct rspro_client_slot slot;
	enum client_state state;

	struct session *server;

	/* what the last configClientBankReq said */
	struct session *bankd;
	struct rspro_bank_slot bank;
	char bankd_host[INET6_ADDRSTRLEN];
	uint16_t bankd_port;

	uint8_t atr[CLIENT_ATR_MAX];
	size_t atr_len;
	bool tpdu_pending;
	struct loop_timer tpdu_timer;
	char usb_device[64];		/* REMSIM_USB_DEVICE, "" for none */
	/* for osmo-style event scripts */
	struct rspro_slot_status modem;	/* last clientSlotStatusInd */
	bool have_modem;
	bool server_was_up, bankd_was_up;
};

static const char *const client_state_names[] = {
	[CLIENT_INIT] = "INIT",
	[CLIENT_UNMAPPED] = "UNMAPPED",
	[CLIENT_WAIT_BANKD] = "WAIT_BANKD",
	[CLIENT_WAIT_ATR] = "WAIT_ATR",
	[CLIENT_OPERATIONAL] = "OPERATIONAL",
};

const char *client_state_name(enum client_state state)
{
	if ((unsigned int)state >= sizeof(client_state_names) /
					   sizeof(client_state_names[0]))
		return "?";
	return client_state_names[state];
}

/* ---- events ------------------------------------------------------------- */

/*
 * The causes osmo-remsim-client 1.1 gives its script for what we call
 * event, in its order (shared rspro-protocol.md 6.5); NULL-terminated.
 */
static const char *const *client_osmo_causes(const char *event,
					     bool first_server_up)
{
	static const char *const server_connect[] = {
		"event-server-connect", NULL };
	static const char *const config[] = { "event-config-bankd", NULL };
	static const char *const bankd_connect[] = {
		"event-bankd-connect", NULL };
	static const char *const inserted[] = { "request-sim-remote",
		"request-card-insert", "request-modem-reset", NULL };
	static const char *const removed[] = { "request-card-remove",
		"request-sim-local", "request-modem-reset", NULL };
	static const char *const modem[] = { "event-modem-status", NULL };
	static const char *const none[] = { NULL };

	if (!strcmp(event, "server-up"))	/* osmo: not on reconnects */
		return first_server_up ? server_connect : none;
	if (!strcmp(event, "mapped") || !strcmp(event, "unmapped"))
		return config;
	if (!strcmp(event, "bankd-up"))
		return bankd_connect;
	if (!strcmp(event, "card-inserted"))
		return inserted;
	if (!strcmp(event, "card-removed"))
		return removed;
	if (!strcmp(event, "modem-reset"))
		return modem;
	return none;
}

/* osmo's link state names: INIT, ESTABLISHED, CONNECTED, REESTABLISH */
static const char *client_osmo_link(const struct session *s, bool was_up)
{
	enum session_state st = s ? session_get_state(s) : SESSION_DOWN;

	if (st == SESSION_READY)
		return "CONNECTED";
	if (st == SESSION_IDENTIFYING)
		return "ESTABLISHED";
	return was_up ? "REESTABLISH" : "INIT";
}

static void client_fire(struct client *c, const char *event)
{
	char atr[2 * CLIENT_ATR_MAX + 1] = "";
	bool mapped = c->bankd != NULL || !strcmp(event, "unmapped");
	bool first_server_up = !strcmp(event, "server-up") &&
			       !c->server_was_up;
	/* SIMtrace2 reports raw cardem flags (VCC 1, CLK 2, RST 16) */
	bool st2 = c->usb_device[0] != '\0';
	const char *const *cause;
	struct event_env env;

	if (!strcmp(event, "server-up"))
		c->server_was_up = true;
	if (!strcmp(event, "bankd-up"))
		c->bankd_was_up = true;
	env = (struct event_env){
		.event = event,
		.state = client_state_name(c->state),
		.client_id = c->slot.client_id,
		.client_slot = c->slot.slot_nr,
		.bank_id = mapped ? c->bank.bank_id : -1,
		.bank_slot = mapped ? c->bank.slot_nr : -1,
		.bankd_host = mapped ? c->bankd_host : NULL,
		.bankd_port = mapped ? c->bankd_port : -1,
		.server_host = c->cfg.server_host,
		.server_port = c->cfg.server_port,
		.atr_hex = atr,
		.usb_device = c->usb_device,
		.server_state = client_osmo_link(c->server, c->server_was_up),
		.bankd_state = client_osmo_link(c->bankd, c->bankd_was_up),
		.sim_vcc = !c->have_modem ? -1 :
			   c->modem.vcc_present ? 1 : 0,
		.sim_rst = !c->have_modem ? -1 :
			   c->modem.reset_active ? (st2 ? 16 : 1) : 0,
		.sim_clk = !c->have_modem ? -1 :
			   c->modem.clk_active ? (st2 ? 2 : 1) : 0,
	};

	LOGI(c->name, "event %s", event);
	if (!c->cfg.script)
		return;
	if (c->atr_len)
		hex_encode(atr, c->atr, c->atr_len);
	if (event_script_style(c->cfg.script) != EVENT_STYLE_OSMO) {
		event_script_fire(c->cfg.script, &env);
		return;
	}
	for (cause = client_osmo_causes(event, first_server_up); *cause;
	     cause++) {
		env.cause = *cause;
		event_script_fire(c->cfg.script, &env);
	}
}

/* ---- state -------------------------------------------------------------- */

/* The TPDU in flight (if any) will never be answered. */
static void client_fail_tpdu(struct client *c, const char *reason)
{
	if (!c->tpdu_pending)
		return;
	c->tpdu_pending = false;
	loop_timer_stop(c->loop, &c->tpdu_timer);
	c->fe->ops->tpdu_failed(c->fe, reason);
}

/*
 * The only place that changes c->state. Entering and leaving OPERATIONAL
 * is what the front end sees as card insertion and removal.
 */
static void client_set_state(struct client *c, enum client_state new_state,
			     const char *reason)
{
	enum client_state old = c->state;

	if (old == new_state)
		return;
	LOGN(c->name, "%s -> %s (%s)", client_state_name(old),
	     client_state_name(new_state), reason);
	c->state = new_state;
	if (old == CLIENT_OPERATIONAL) {
		client_fail_tpdu(c, reason);
		c->fe->ops->card_remove(c->fe, reason);
		client_fire(c, "card-removed");
	}
	if (new_state == CLIENT_OPERATIONAL) {
		c->fe->ops->card_insert(c->fe, c->atr, c->atr_len);
		client_fire(c, "card-inserted");
	}
	if (c->fe->ops->client_state)
		c->fe->ops->client_state(c->fe, new_state, reason);
}

static void client_set_name(struct client *c)
{
	snprintf(c->name, sizeof(c->name), "client %u:%u", c->slot.client_id,
		 c->slot.slot_nr);
}

/* ---- bankd session ------------------------------------------------------ */

static void bankd_ready(struct session *s, void *user)
{
	struct client *c = user;

	client_set_state(c, CLIENT_WAIT_ATR, "bankd accepted us");
	client_fire(c, "bankd-up");
}

static void bankd_lost(struct session *s, const char *reason, void *user)
{
	struct client *c = user;

	c->atr_len = 0;
	client_set_state(c, CLIENT_WAIT_BANKD, reason);
	client_fire(c, "bankd-down");
}

static void bankd_set_atr(struct client *c, const SetAtrReq_t *r)
{
	struct rspro_client_slot to;
	char hex[2 * CLIENT_ATR_MAX + 1];
	long res = ResultCode_ok;

	rspro_client_slot_get(&r->slot, &to);
	if (to.client_id != c->slot.client_id || to.slot_nr != c->slot.slot_nr)
		LOGI(session_name(c->bankd), "setAtrReq for client %u:%u, we "
		     "are %u:%u: taken anyway", to.client_id, to.slot_nr,
		     c->slot.client_id, c->slot.slot_nr);
	if (r->atr.size < 1 || r->atr.size > CLIENT_ATR_MAX) {
		/* the decoder checks SIZE (1..55); never trust a length */
		LOGE(session_name(c->bankd), "ATR of %zu bytes refused",
		     (size_t)r->atr.size);
		session_send(c->bankd, rspro_gen_set_atr_res(
					       ResultCode_cardTransmissionError));
		return;
	}
	memcpy(c->atr, r->atr.buf, r->atr.size);
	c->atr_len = r->atr.size;
	hex_encode(hex, c->atr, c->atr_len);
	LOGI(session_name(c->bankd), "ATR %s", hex);
	session_send(c->bankd, rspro_gen_set_atr_res((ResultCode_t)res));
	if (c->state == CLIENT_WAIT_ATR)
		client_set_state(c, CLIENT_OPERATIONAL, "ATR received");
	else if (c->state == CLIENT_OPERATIONAL)
		c->fe->ops->card_atr(c->fe, c->atr, c->atr_len);
}

static void bankd_tpdu(struct client *c, const TpduCardToModem_t *r)
{
	if (!c->tpdu_pending) {
		LOGE(session_name(c->bankd), "tpduCardToModem (%zu bytes) "
		     "without a TPDU outstanding: dropped",
		     (size_t)r->data.size);
		return;
	}
	c->tpdu_pending = false;
	loop_timer_stop(c->loop, &c->tpdu_timer);
	if (r->data.size < 2) {
		/* osmo-remsim reads past the end here; we fail the TPDU */
		LOGE(session_name(c->bankd), "tpduCardToModem of %zu bytes "
		     "has no status word", (size_t)r->data.size);
		c->fe->ops->tpdu_failed(c->fe, "response without status word");
		return;
	}
	LOGD(session_name(c->bankd), "card -> modem, %zu bytes",
	     (size_t)r->data.size);
	c->fe->ops->tpdu_response(c->fe, r->data.buf, r->data.size);
}

static void bankd_pdu(struct session *s, const RsproPDU_t *pdu, void *user)
{
	struct client *c = user;

	switch (pdu->msg.present) {
	case RsproPDUchoice_PR_setAtrReq:
		bankd_set_atr(c, &pdu->msg.choice.setAtrReq);
		break;
	case RsproPDUchoice_PR_tpduCardToModem:
		bankd_tpdu(c, &pdu->msg.choice.tpduCardToModem);
		break;
	case RsproPDUchoice_PR_bankSlotStatusInd:
		LOGI(session_name(s), "bankSlotStatusInd: noted, nothing to do");
		break;
	default:
		LOGE(session_name(s), "unexpected %s from a bankd: ignored",
		     rspro_pdu_name(pdu));
		break;
	}
}

static const struct session_ops bankd_ops = {
	.ready = bankd_ready,
	.lost = bankd_lost,
	.pdu = bankd_pdu,
};

static void client_tpdu_timeout(void *arg)
{
	struct client *c = arg;
	char reason[64];

	snprintf(reason, sizeof(reason), "no TPDU response within %u ms",
		 c->cfg.tpdu_timeout_ms);
	LOGE(session_name(c->bankd), "%s", reason);
	/* leaving OPERATIONAL fails the TPDU with this reason */
	session_restart(c->bankd, reason);
}

/* Tears the bankd session down (no event: the caller knows why). */
static void client_drop_bankd(struct client *c, enum client_state next,
			      const char *reason)
{
	client_set_state(c, next, reason);
	session_free(c->bankd);
	c->bankd = NULL;
	c->atr_len = 0;
}

static int client_new_bankd(struct client *c)
{
	char name[INET6_ADDRSTRLEN + 16];
	struct session_config sc = {
		.name = name,
		.host = c->bankd_host,
		.port = c->bankd_port,
		.peer_type = ComponentType_remsimBankd,
		.identity = &c->identity,
		.slot = &c->slot,
		.token = c->cfg.token,
		.ping_interval_ms = c->cfg.ping_interval_ms,
		.pong_timeout_ms = c->cfg.pong_timeout_ms,
		.ops = &bankd_ops,
		.user = c,
	};

	snprintf(name, sizeof(name), strchr(c->bankd_host, ':') ?
		 "bankd [%s]:%u" : "bankd %s:%u", c->bankd_host,
		 c->bankd_port);
	c->bankd = session_new(c->loop, &sc);
	if (!c->bankd)
		return -ENOMEM;
	return session_start(c->bankd);
}

/* ---- server session ----------------------------------------------------- */

static void server_ready(struct session *s, void *user)
{
	struct client *c = user;

	if (c->state == CLIENT_INIT)
		client_set_state(c, CLIENT_UNMAPPED, "server connected, "
				 "no mapping yet");
	client_fire(c, "server-up");
}

static void server_lost(struct session *s, const char *reason, void *user)
{
	struct client *c = user;

	/* the bankd session carries on: the server is not in the APDU path */
	LOGI(c->name, "server session lost (%s); %s continues", reason,
	     client_state_name(c->state));
	client_fire(c, "server-down");
}

static void server_config_bank(struct client *c, const ConfigClientBankReq_t *r)
{
	struct rspro_bank_slot bank;
	char host[INET6_ADDRSTRLEN] = "";
	uint16_t port = (uint16_t)r->bankd.port;
	bool was_mapped = c->bankd != NULL;
	char reason[128];

	rspro_bank_slot_get(&r->bankSlot, &bank);
	if (r->bankd.ip.present == IpAddress_PR_ipv4 &&
	    r->bankd.ip.choice.ipv4.size == 4)
		inet_ntop(AF_INET, r->bankd.ip.choice.ipv4.buf, host,
			  sizeof(host));
	else if (r->bankd.ip.present == IpAddress_PR_ipv6 &&
		 r->bankd.ip.choice.ipv6.size == 16)
		inet_ntop(AF_INET6, r->bankd.ip.choice.ipv6.buf, host,
			  sizeof(host));
	session_send(c->server, rspro_gen_config_client_bank_res(
					ResultCode_ok));

	if (port == 0) {
		LOGN(c->name, "server: no bankd for us (port 0)");
		if (!was_mapped) {
			client_set_state(c, CLIENT_UNMAPPED, "not mapped");
			return;
		}
		client_drop_bankd(c, CLIENT_UNMAPPED, "mapping removed");
		client_fire(c, "unmapped");
		return;
	}
	if (!host[0]) {
		LOGE(c->name, "configClientBankReq with a malformed bankd "
		     "address: ignored");
		return;
	}
	if (was_mapped && bank.bank_id == c->bank.bank_id &&
	    bank.slot_nr == c->bank.slot_nr && port == c->bankd_port &&
	    !strcmp(host, c->bankd_host)) {
		/* osmo-remsim re-connects here and resets the modem (7.11) */
		LOGI(c->name, "configuration unchanged (bank %u:%u at %s "
		     "port %u): bankd session kept", bank.bank_id,
		     bank.slot_nr, host, port);
		return;
	}
	snprintf(reason, sizeof(reason), "mapped to bank %u:%u at %s port %u",
		 bank.bank_id, bank.slot_nr, host, port);
	LOGN(c->name, "%s", reason);
	if (was_mapped)
		client_drop_bankd(c, CLIENT_UNMAPPED, "mapping changed");
	c->bank = bank;
	memcpy(c->bankd_host, host, sizeof(host));
	c->bankd_port = port;
	if (client_new_bankd(c) < 0) {
		LOGE(c->name, "cannot set up the bankd session");
		session_free(c->bankd);
		c->bankd = NULL;
		return;
	}
	client_set_state(c, CLIENT_WAIT_BANKD, reason);
	client_fire(c, "mapped");
}

static void server_config_id(struct client *c, const ConfigClientIdReq_t *r)
{
	struct rspro_client_slot slot;

	rspro_client_slot_get(&r->clientSlot, &slot);
	LOGN(c->name, "server assigns client %u:%u", slot.client_id,
	     slot.slot_nr);
	c->slot = slot;
	client_set_name(c);
	session_send(c->server, rspro_gen_config_client_id_res(ResultCode_ok));
	/* the bankd knows us by slot: tell it who we are now */
	if (c->bankd && session_get_state(c->bankd) != SESSION_DOWN)
		session_restart(c->bankd, "client id changed");
}

static void server_pdu(struct session *s, const RsproPDU_t *pdu, void *user)
{
	struct client *c = user;

	switch (pdu->msg.present) {
	case RsproPDUchoice_PR_configClientBankReq:
		server_config_bank(c, &pdu->msg.choice.configClientBankReq);
		break;
	case RsproPDUchoice_PR_configClientIdReq:
		server_config_id(c, &pdu->msg.choice.configClientIdReq);
		break;
	default:
		/* resetStateReq included: osmo-remsim's client ignores it */
		LOGI(session_name(s), "%s from the server: ignored",
		     rspro_pdu_name(pdu));
		break;
	}
}

static const struct session_ops server_ops = {
	.ready = server_ready,
	.lost = server_lost,
	.pdu = server_pdu,
};

/* ---- life cycle --------------------------------------------------------- */

struct client *client_new(struct loop *loop, const struct client_config *cfg,
			  struct frontend *fe)
{
	char name[300];
	struct session_config sc = {
		.name = name,
		.host = cfg->server_host,
		.port = cfg->server_port,
		.peer_type = ComponentType_remsimServer,
		.ping_interval_ms = cfg->ping_interval_ms,
		.pong_timeout_ms = cfg->pong_timeout_ms,
		.ops = &server_ops,
	};
	struct client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->cfg = *cfg;
	if (!c->cfg.tpdu_timeout_ms)
		c->cfg.tpdu_timeout_ms = CLIENT_TPDU_TIMEOUT_MS;
	c->loop = loop;
	c->fe = fe;
	fe->client = c;
	c->slot = cfg->slot;
	client_set_name(c);
	snprintf(c->host_name, sizeof(c->host_name), "%s",
		 cfg->name && cfg->name[0] ? cfg->name : "remsim-client");
	c->identity.type = ComponentType_remsimClient;
	c->identity.name = c->host_name;
	c->identity.software = "remsim-client";
	c->identity.sw_version = REMSIM_VERSION;
	loop_timer_init(&c->tpdu_timer, client_tpdu_timeout, c);

	snprintf(name, sizeof(name), strchr(cfg->server_host, ':') ?
		 "server [%s]:%u" : "server %s:%u", cfg->server_host,
		 cfg->server_port);
	sc.identity = &c->identity;
	sc.slot = &c->slot;
	sc.token = cfg->token;
	sc.user = c;
	c->server = session_new(loop, &sc);
	if (!c->server) {
		free(c);
		return NULL;
	}
	return c;
}

void client_free(struct client *c)
{
	if (!c)
		return;
	loop_timer_stop(c->loop, &c->tpdu_timer);
	session_free(c->bankd);
	session_free(c->server);
	free(c);
}

int client_start(struct client *c)
{
	LOGN(c->name, "starting: server %s port %u, front end %s",
	     c->cfg.server_host, c->cfg.server_port, c->fe->ops->name);
	return session_start(c->server);
}

/* ---- front-end side ----------------------------------------------------- */

int client_send_tpdu(struct client *c, const uint8_t *tpdu, size_t len)
{
	int rc;

	if (c->state != CLIENT_OPERATIONAL)
		return -ENOTCONN;
	if (c->tpdu_pending)
		return -EBUSY;
	/* what osmo-remsim's bankd (master) accepts: header + 0..255 bytes */
	if (len < 5 || len > 260)
		return -EINVAL;
	LOGD(session_name(c->bankd), "modem -> card, %zu bytes", len);
	c->tpdu_pending = true;
	loop_timer_start(c->loop, &c->tpdu_timer, c->cfg.tpdu_timeout_ms);
	rc = session_send(c->bankd, rspro_gen_tpdu_modem2card(
					    &c->slot, &c->bank,
					    &(struct rspro_tpdu_flags){ 0 },
					    tpdu, len));
	if (rc < 0 && c->tpdu_pending) {
		c->tpdu_pending = false;
		loop_timer_stop(c->loop, &c->tpdu_timer);
		return rc;
	}
	/* a send that dropped the session has called tpdu_failed already */
	return 0;
}

int client_send_slot_status(struct client *c,
			    const struct rspro_slot_status *st)
{
	if (c->state != CLIENT_WAIT_ATR && c->state != CLIENT_OPERATIONAL)
		return -ENOTCONN;
	LOGI(session_name(c->bankd), "slot status: RST %s, VCC %s, CLK %s",
	     st->reset_active ? "active" : "inactive",
	     st->vcc_present ? "on" : "off", st->clk_active ? "on" : "off");
	c->modem = *st;
	c->have_modem = true;
	return session_send(c->bankd, rspro_gen_client_slot_status_ind(
					      &c->slot, &c->bank, st));
}

int client_reset_card(struct client *c, enum client_reset kind)
{
	/*
	 * Two indications, so that both bankd generations act: 1.0 resets on
	 * any indication with RST active (cold if VCC is off), 1.1 on the
	 * edges RST inactive -> active and VCC on -> off. The second one
	 * releases RST so that the next reset is an edge again.
	 */
	struct rspro_slot_status hold = {
		.reset_active = true,
		.vcc_present = kind == CLIENT_RESET_WARM,
		.clk_active = kind == CLIENT_RESET_WARM,
		.card_present = 1,
	};
	struct rspro_slot_status run = {
		.reset_active = false,
		.vcc_present = 1,
		.clk_active = 1,
		.card_present = 1,
	};
	int rc;

	LOGN(c->name, "%s reset requested by the front end",
	     kind == CLIENT_RESET_WARM ? "warm" : "cold");
	rc = client_send_slot_status(c, &hold);
	if (rc == 0)
		rc = client_send_slot_status(c, &run);
	if (rc == 0)
		client_fire(c, "reset");
	return rc;
}

enum client_state client_get_state(const struct client *c)
{
	return c->state;
}

const uint8_t *client_get_atr(const struct client *c, size_t *len)
{
	*len = c->atr_len;
	return c->atr_len ? c->atr : NULL;
}

void client_fire_event(struct client *c, const char *event)
{
	client_fire(c, event);
}

void client_set_usb_device(struct client *c, const char *desc)
{
	snprintf(c->usb_device, sizeof(c->usb_device), "%s", desc ? desc : "");
}

const char *client_name(const struct client *c)
{
	return c->name;
}
