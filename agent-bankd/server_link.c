/*
 * server_link: the control link to the server, driven from the main
 * thread's poll() loop through common/link.c (keepalive, reconnect backoff).
 * The slot map survives a lost link; workers never wait for it: slot reports
 * made while the link is down are dropped, and a full snapshot follows the
 * next connectBankRes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipa.h"
#include "link.h"
#include "log.h"
#include "server_link.h"
#include "worker.h"

#define SERVER_CONNECT_RES_MS	10000	/* as osmo-remsim (4.1) */
#define SERVER_TPDU_REPORT_MS	1000	/* TPDU counts, when they changed */
#define SERVER_REPORT_BATCH	64

struct server_link {
	struct bankd *bd;
	struct link *link;
	char name[300];
	bool registered;
	int64_t res_deadline;		/* connectBankRes due, -1 none */
	int64_t next_count_report;
	struct slot_status *sent;	/* last status sent, per slot */
	struct slot_status *scratch;
};

static int server_link_send(struct server_link *sl, RsproPDU_t *pdu)
{
	uint8_t buf[RSPRO_MAX_PDU];
	char err[160];
	ssize_t n;

	if (!pdu) {
		LOGE(sl->name, "out of memory building a PDU");
		return -ENOMEM;
	}
	n = rspro_encode(pdu, buf, sizeof(buf), err, sizeof(err));
	if (n < 0) {
		LOGE(sl->name, "cannot encode %s: %s", rspro_pdu_name(pdu), err);
		rspro_pdu_free(pdu);
		return -EINVAL;
	}
	LOGD(sl->name, "tx %s", rspro_pdu_name(pdu));
	rspro_pdu_free(pdu);
	return link_send_rspro(sl->link, buf, (size_t)n);
}

/* ---- slot reports ------------------------------------------------------- */

static void server_link_send_status(struct server_link *sl,
				    const struct slot_status *s)
{
	struct rspro_bank_slot from = {
		.bank_id = sl->bd->cfg.bank_id,
		.slot_nr = s->slot_nr,
	};
	struct rspro_client_slot to = { 0 };
	struct rspro_slot_status phys = s->phys;
	struct rspro_slot_report r = {
		.worker_state = s->worker_state,
		.atr = s->atr,
		.atr_len = s->atr_len,
		.tpdu_count = s->tpdu_count > 0x7fffffff ? 0x7fffffff :
			      (long)s->tpdu_count,
	};

	if (s->has_client)
		to = s->client;
	phys.card_present = s->card_present;
	if (server_link_send(sl, rspro_gen_bank_slot_report(&from, &to, &phys,
							    &r)))
		return;
	sl->sent[s->slot_nr] = *s;
}

static void server_link_send_all(struct server_link *sl)
{
	slot_report_snapshot(&sl->bd->report, sl->scratch);
	for (unsigned i = 0; i < sl->bd->cfg.num_slots && sl->registered; i++)
		server_link_send_status(sl, &sl->scratch[i]);
}

void server_link_flush_reports(struct server_link *sl)
{
	struct slot_status batch[SERVER_REPORT_BATCH];
	bool all = false;
	size_t n;

	slot_report_clear_wake(&sl->bd->report);
	do {
		bool lost;

		n = slot_report_take(&sl->bd->report, batch, SERVER_REPORT_BATCH,
				     &lost);
		all |= lost;
		for (size_t i = 0; i < n && sl->registered; i++)
			server_link_send_status(sl, &batch[i]);
	} while (n == SERVER_REPORT_BATCH);
	if (all && sl->registered)
		server_link_send_all(sl);
}

/* TPDU counts change too often to report each; send them now and then. */
static void server_link_report_counts(struct server_link *sl)
{
	slot_report_snapshot(&sl->bd->report, sl->scratch);
	for (unsigned i = 0; i < sl->bd->cfg.num_slots && sl->registered; i++)
		if (sl->scratch[i].tpdu_count != sl->sent[i].tpdu_count)
			server_link_send_status(sl, &sl->scratch[i]);
}

/* ---- server requests ---------------------------------------------------- */

static void server_link_log_map(struct server_link *sl, const char *what,
				const ClientSlot_t *cs, const BankSlot_t *bs,
				long result)
{
	struct rspro_client_slot c;
	struct rspro_bank_slot b;
	const char *res = rspro_result_name(result);

	rspro_client_slot_get(cs, &c);
	rspro_bank_slot_get(bs, &b);
	if (result == ResultCode_ok)
		LOGN(sl->name, "mapping bank %u slot %u <-> client %u:%u %s",
		     b.bank_id, b.slot_nr, c.client_id, c.slot_nr, what);
	else
		LOGE(sl->name, "mapping bank %u slot %u <-> client %u:%u not "
		     "%s: %s", b.bank_id, b.slot_nr, c.client_id, c.slot_nr,
		     what, res ? res : "?");
}

static void server_link_wake(struct server_link *sl,
			     const struct slotmap_affected *aff)
{
	for (unsigned i = 0; i < aff->n; i++)
		workers_wake_client(sl->bd, &aff->client[i]);
}

static void server_link_create_mapping(struct server_link *sl,
				       const CreateMappingReq_t *req)
{
	struct slotmap_affected aff;
	struct rspro_client_slot c;
	struct rspro_bank_slot b;
	long res;

	rspro_client_slot_get(&req->client, &c);
	rspro_bank_slot_get(&req->bank, &b);
	res = slotmap_create(&sl->bd->map, &c, &b, &aff);
	server_link_log_map(sl, "created", &req->client, &req->bank, res);
	server_link_wake(sl, &aff);
	server_link_send(sl, rspro_gen_create_mapping_res(res));
}

static void server_link_remove_mapping(struct server_link *sl,
				       const RemoveMappingReq_t *req)
{
	struct slotmap_affected aff;
	struct rspro_client_slot c;
	struct rspro_bank_slot b;
	long res;

	rspro_client_slot_get(&req->client, &c);
	rspro_bank_slot_get(&req->bank, &b);
	res = slotmap_remove(&sl->bd->map, &c, &b, &aff);
	server_link_log_map(sl, "removed", &req->client, &req->bank, res);
	server_link_wake(sl, &aff);
	server_link_send(sl, rspro_gen_remove_mapping_res(res));
}

static void server_link_connect_res(struct server_link *sl,
				    const ConnectBankRes_t *res)
{
	const char *name = rspro_result_name(res->result);
	const RemsimCapabilities_t *caps = res->capabilities;
	char reason[120];

	sl->res_deadline = -1;
	if (res->identity.type != ComponentType_remsimServer) {
		LOGE(sl->name, "connectBankRes from a %s, not a server",
		     rspro_component_type_name(res->identity.type) ?
		     rspro_component_type_name(res->identity.type) : "?");
		link_reconnect(sl->link, "peer is no server");
		return;
	}
	if (res->result != ResultCode_ok) {
		snprintf(reason, sizeof(reason), "connectBankReq refused: %s",
			 name ? name : "?");
		LOGE(sl->name, "%s", reason);
		link_reconnect(sl->link, reason);
		return;
	}
	sl->registered = true;
	LOGN(sl->name, "registered as bank %u with %u slots%s",
	     sl->bd->cfg.bank_id, sl->bd->cfg.num_slots,
	     caps && caps->authenticated && *caps->authenticated ?
	     " (authenticated)" : "");
	if (caps && caps->serverPublicKey) {
		int rc = client_auth_offer_key(&sl->bd->auth,
					       caps->serverPublicKey->buf,
					       (size_t)caps->serverPublicKey->size);

		if (rc > 0)
			LOGN(sl->name, "client tokens are now checked with the "
			     "server's public key");
		else if (rc < 0)
			LOGE(sl->name, "the server's public key differs from "
			     "--server-pubkey; keeping the file's key");
	}
	server_link_send_all(sl);
	sl->next_count_report = link_now_ms() + SERVER_TPDU_REPORT_MS;
}

static void server_link_on_rspro(struct link *link, const uint8_t *data,
				 size_t len, void *user)
{
	struct server_link *sl = user;
	RsproPDU_t *pdu = NULL;
	unsigned n;
	char err[200];
	int rc = rspro_decode(data, len, &pdu, err, sizeof(err));

	if (rc && rc != RSPRO_ERR_VERSION) {
		/* a newer or broken server: say so, keep the link */
		LOGE(sl->name, "ignoring a PDU we cannot use (%s): %s",
		     rspro_strerror(rc), err);
		rspro_pdu_free(pdu);
		return;
	}
	LOGD(sl->name, "rx %s", rspro_pdu_name(pdu));
	switch (pdu->msg.present) {
	case RsproPDUchoice_PR_connectBankRes:
		server_link_connect_res(sl, &pdu->msg.choice.connectBankRes);
		break;
	case RsproPDUchoice_PR_createMappingReq:
		server_link_create_mapping(sl,
					   &pdu->msg.choice.createMappingReq);
		break;
	case RsproPDUchoice_PR_removeMappingReq:
		server_link_remove_mapping(sl,
					   &pdu->msg.choice.removeMappingReq);
		break;
	case RsproPDUchoice_PR_resetStateReq:
		n = slotmap_reset(&sl->bd->map);
		LOGN(sl->name, "resetStateReq: %u mapping%s removed", n,
		     n == 1 ? "" : "s");
		workers_wake_all(sl->bd);
		server_link_send(sl, rspro_gen_reset_state_res(ResultCode_ok));
		break;
	default:
		LOGI(sl->name, "%s not handled: ignored", rspro_pdu_name(pdu));
		break;
	}
	rspro_pdu_free(pdu);
}

static void server_link_on_up(struct link *link, void *user)
{
	struct server_link *sl = user;
	RsproPDU_t *req;

	LOGI(sl->name, "connected, sending connectBankReq (bank %u, %u "
	     "slots%s)", sl->bd->cfg.bank_id, sl->bd->cfg.num_slots,
	     sl->bd->token ? ", with token" : "");
	sl->res_deadline = link_now_ms() + SERVER_CONNECT_RES_MS;
	req = rspro_gen_connect_bank_req(&sl->bd->identity, sl->bd->cfg.bank_id,
					 sl->bd->cfg.num_slots, sl->bd->token);
	/* where clients reach us: the server tells them (remsim extension) */
	if (req && rspro_connect_bank_req_set_port(req, sl->bd->cfg.bind_port)) {
		rspro_pdu_free(req);
		req = NULL;
	}
	server_link_send(sl, req);
}

static void server_link_on_down(struct link *link, const char *reason,
				void *user)
{
	struct server_link *sl = user;

	/* the workers and their mappings carry on without us */
	LOGN(sl->name, "link lost (%s); clients keep working", reason);
	sl->registered = false;
	sl->res_deadline = -1;
}

/* ---- life cycle and loop integration ------------------------------------ */

struct server_link *server_link_new(struct bankd *bd)
{
	struct server_link *sl = calloc(1, sizeof(*sl));
	struct link_config cfg = {
		.host = bd->cfg.server_host,
		.port = bd->cfg.server_port,
		.ping_interval_ms = bd->cfg.ping_interval_ms,
		.pong_timeout_ms = bd->cfg.pong_timeout_ms,
		.on_up = server_link_on_up,
		.on_rspro = server_link_on_rspro,
		.on_down = server_link_on_down,
	};

	if (!sl)
		return NULL;
	sl->bd = bd;
	sl->res_deadline = -1;
	sl->sent = calloc(bd->cfg.num_slots, sizeof(*sl->sent));
	sl->scratch = calloc(bd->cfg.num_slots, sizeof(*sl->scratch));
	snprintf(sl->name, sizeof(sl->name), "server %s:%u",
		 bd->cfg.server_host, bd->cfg.server_port);
	cfg.name = sl->name;
	cfg.user = sl;
	if (sl->sent && sl->scratch)
		sl->link = link_new(&cfg);
	if (!sl->link) {
		server_link_free(sl);
		return NULL;
	}
	return sl;
}

void server_link_free(struct server_link *sl)
{
	if (!sl)
		return;
	link_free(sl->link);
	free(sl->sent);
	free(sl->scratch);
	free(sl);
}

int server_link_start(struct server_link *sl)
{
	return link_start(sl->link);
}

int server_link_pollfd(struct server_link *sl, struct pollfd *pfd)
{
	return link_pollfd(sl->link, pfd);
}

void server_link_handle_io(struct server_link *sl, short revents)
{
	link_handle_io(sl->link, revents);
}

int server_link_timeout_ms(struct server_link *sl, int64_t now)
{
	int t = link_timeout_ms(sl->link, now);
	int64_t mine = sl->res_deadline;

	if (sl->registered && (mine < 0 || sl->next_count_report < mine))
		mine = sl->next_count_report;
	if (mine >= 0) {
		int m = mine <= now ? 0 : (int)(mine - now);

		if (t < 0 || m < t)
			t = m;
	}
	return t;
}

void server_link_handle_timers(struct server_link *sl, int64_t now)
{
	link_handle_timers(sl->link, now);
	if (sl->res_deadline >= 0 && now >= sl->res_deadline) {
		sl->res_deadline = -1;
		LOGE(sl->name, "no connectBankRes within %d ms",
		     SERVER_CONNECT_RES_MS);
		link_reconnect(sl->link, "no connectBankRes");
	}
	if (sl->registered && now >= sl->next_count_report) {
		sl->next_count_report = now + SERVER_TPDU_REPORT_MS;
		server_link_report_counts(sl);
	}
}
