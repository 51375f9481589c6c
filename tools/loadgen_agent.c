/*
 * loadgen_agent: one simulated bankd or client and its RSPRO conversation
 * with the server, as rspro-protocol.md section 4 describes the real ones:
 * connect request on link up, a refused connect retried through the link's
 * backoff, bankds answering create/remove/reset requests (checking bank id
 * and slot like osmo-remsim-bankd), clients answering configClientBankReq.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ipa.h"
#include "link.h"
#include "loadgen.h"
#include "log.h"

/* osmo-remsim waits this long for a connect response (rspro-protocol.md 1.4). */
#define AGENT_IDENTIFY_TIMEOUT_MS	10000

static const char *const agent_state_names[] = {
	[AGENT_IDLE] = "idle",
	[AGENT_LINKING] = "linking",
	[AGENT_IDENTIFYING] = "identifying",
	[AGENT_READY] = "ready",
};

const char *agent_state_name(enum agent_state state)
{
	if ((unsigned int)state >= sizeof(agent_state_names) /
					   sizeof(agent_state_names[0]))
		return "?";
	return agent_state_names[state];
}

/* The only place that changes a->state; keeps the up counters true. */
static void agent_set_state(struct agent *a, enum agent_state new_state,
			    const char *reason)
{
	struct loadgen_counts *c = &a->lg->counts;
	unsigned int *up = a->kind == AGENT_BANKD ? &c->banks_up :
						    &c->clients_up;

	LOGN(link_get_name(a->link), "%s -> %s (%s)",
	     agent_state_name(a->state), agent_state_name(new_state), reason);
	if (a->state == AGENT_READY)
		(*up)--;
	if (new_state == AGENT_READY)
		(*up)++;
	a->state = new_state;
	a->identify_deadline = -1;
}

/* Encodes, frees and sends pdu; 0 or a negative errno (logged). */
static int agent_send(struct agent *a, RsproPDU_t *pdu)
{
	uint8_t buf[RSPRO_MAX_PDU];
	char err[160];
	ssize_t n;

	if (!pdu) {
		LOGE(link_get_name(a->link), "out of memory building a PDU");
		return -ENOMEM;
	}
	n = rspro_encode(pdu, buf, sizeof(buf), err, sizeof(err));
	if (n < 0) {
		LOGE(link_get_name(a->link), "cannot encode %s: %s",
		     rspro_pdu_name(pdu), err);
		rspro_pdu_free(pdu);
		return -EINVAL;
	}
	rspro_pdu_free(pdu);
	return link_send_rspro(a->link, buf, (size_t)n);
}

/* ---- link callbacks ---------------------------------------------------- */

static void agent_on_up(struct link *link, void *user)
{
	struct agent *a = user;
	struct rspro_identity id = {
		.software = "remsim-loadgen",
		.sw_version = REMSIM_VERSION,
	};
	char name[32];
	RsproPDU_t *req;

	agent_set_state(a, AGENT_IDENTIFYING, "link up");
	a->identify_deadline = link_now_ms() + AGENT_IDENTIFY_TIMEOUT_MS;
	if (a->kind == AGENT_BANKD) {
		snprintf(name, sizeof(name), "loadgen-bank-%u",
			 a->bankd.bank_id);
		id.type = ComponentType_remsimBankd;
		id.name = name;
		req = rspro_gen_connect_bank_req(&id, a->bankd.bank_id,
						 a->bankd.num_slots, NULL);
	} else {
		snprintf(name, sizeof(name), "loadgen-client-%u-%u",
			 a->client.slot.client_id, a->client.slot.slot_nr);
		id.type = ComponentType_remsimClient;
		id.name = name;
		req = rspro_gen_connect_client_req(&id, &a->client.slot, NULL);
	}
	/* a failed send has dropped the link already (agent_on_down) */
	agent_send(a, req);
}

static void agent_on_down(struct link *link, const char *reason, void *user)
{
	struct agent *a = user;

	if (a->state != AGENT_IDENTIFYING && a->state != AGENT_READY)
		return;
	a->lg->counts.downs++;
	agent_set_state(a, AGENT_LINKING, reason);
	report_down(a->lg, a, reason);
	report_milestones(a->lg);
}

static void agent_connect_res(struct agent *a, long result,
			      const ComponentIdentity_t *server)
{
	char reason[80];

	if (a->state != AGENT_IDENTIFYING) {
		LOGE(link_get_name(a->link), "connect response while %s: "
		     "ignored", agent_state_name(a->state));
		return;
	}
	if (result != ResultCode_ok) {
		snprintf(reason, sizeof(reason), "connect refused: %s",
			 rspro_result_name(result) ? rspro_result_name(result) :
						     "?");
		a->lg->counts.refused++;
		/* LINKING first: this is a refusal, not the loss of a link */
		agent_set_state(a, AGENT_LINKING, reason);
		report_refused(a->lg, a, result);
		link_reconnect(a->link, reason);
		return;
	}
	if (server->type != ComponentType_remsimServer)
		LOGE(link_get_name(a->link), "the peer says it is a %s, not a "
		     "server", rspro_component_type_name(server->type));
	agent_set_state(a, AGENT_READY, "connect response ok");
	if (a->kind == AGENT_BANKD)
		report_bankd_up(a->lg, a);
	else
		report_client_up(a->lg, a);
	report_milestones(a->lg);
}

/*
 * osmo-remsim-bankd's checks, in its order: our bank id, then a slot we
 * have (rspro-protocol.md 4.2). Returns ok or the result to answer.
 */
static long bankd_check_slot(const struct agent *a,
			     const struct rspro_bank_slot *bank)
{
	if (bank->bank_id != a->bankd.bank_id)
		return ResultCode_illegalBankId;
	if (bank->slot_nr >= a->bankd.num_slots)
		return ResultCode_illegalSlotId;
	return ResultCode_ok;
}

static void bankd_create_mapping(struct agent *a, const CreateMappingReq_t *r)
{
	struct rspro_bank_slot bank;
	struct rspro_client_slot client;
	struct bank_map *m;
	long res;

	rspro_bank_slot_get(&r->bank, &bank);
	rspro_client_slot_get(&r->client, &client);
	res = bankd_check_slot(a, &bank);
	if (res == ResultCode_ok) {
		/* like osmo-remsim-bankd 1.1.2+: a client has one bank slot */
		for (unsigned int i = 0; i < a->bankd.num_slots; i++) {
			m = &a->bankd.maps[i];
			if (m->mapped && i != bank.slot_nr &&
			    m->client.client_id == client.client_id &&
			    m->client.slot_nr == client.slot_nr)
				m->mapped = 0;
		}
		m = &a->bankd.maps[bank.slot_nr];
		m->create_ns = report_now_ns();
		m->client = client;
		m->mapped = 1;
	}
	a->lg->counts.creates++;
	report_mapping(a->lg, a, "create", &bank, &client, res);
	agent_send(a, rspro_gen_create_mapping_res((ResultCode_t)res));
}

static void bankd_remove_mapping(struct agent *a, const RemoveMappingReq_t *r)
{
	struct rspro_bank_slot bank;
	struct rspro_client_slot client;
	struct bank_map *m;
	long res;

	rspro_bank_slot_get(&r->bank, &bank);
	rspro_client_slot_get(&r->client, &client);
	res = bankd_check_slot(a, &bank);
	if (res == ResultCode_ok) {
		m = &a->bankd.maps[bank.slot_nr];
		if (!m->mapped || m->client.client_id != client.client_id ||
		    m->client.slot_nr != client.slot_nr)
			res = ResultCode_unknownSlotmap;
		else
			m->mapped = 0;
	}
	a->lg->counts.removes++;
	report_mapping(a->lg, a, "remove", &bank, &client, res);
	agent_send(a, rspro_gen_remove_mapping_res((ResultCode_t)res));
}

static void bankd_reset_state(struct agent *a)
{
	memset(a->bankd.maps, 0, a->bankd.num_slots * sizeof(*a->bankd.maps));
	a->lg->counts.resets++;
	report_reset(a->lg, a);
	agent_send(a, rspro_gen_reset_state_res(ResultCode_ok));
}

/* Copies the bankd address out of a configClientBankReq. */
static void client_get_ip_port(const IpPort_t *in, struct rspro_ip_port *out)
{
	const OCTET_STRING_t *ip = NULL;

	memset(out, 0, sizeof(*out));
	out->family = AF_INET;
	out->port = (uint16_t)in->port;
	if (in->ip.present == IpAddress_PR_ipv4) {
		ip = &in->ip.choice.ipv4;
	} else if (in->ip.present == IpAddress_PR_ipv6) {
		ip = &in->ip.choice.ipv6;
		out->family = AF_INET6;
	}
	/* the decoder has checked the sizes (4 and 16) */
	if (ip && ip->size > 0 && (size_t)ip->size <= sizeof(out->addr))
		memcpy(out->addr, ip->buf, ip->size);
}

/*
 * Time from our bankd seeing createMappingReq for this bank slot to this
 * client hearing of it, when both are ours; -1 otherwise.
 */
static int64_t client_map_latency_us(struct agent *a,
				     const struct rspro_bank_slot *bank,
				     int64_t now_ns)
{
	struct agent *b = loadgen_find_bankd(a->lg, bank->bank_id);
	const struct bank_map *m;

	if (!b || bank->slot_nr >= b->bankd.num_slots)
		return -1;
	m = &b->bankd.maps[bank->slot_nr];
	if (!m->mapped || m->client.client_id != a->client.slot.client_id ||
	    m->client.slot_nr != a->client.slot.slot_nr || !m->create_ns)
		return -1;
	return (now_ns - m->create_ns) / 1000;
}

static void client_config_bank(struct agent *a, const ConfigClientBankReq_t *r)
{
	struct rspro_bank_slot bank;
	struct rspro_ip_port bankd;
	int64_t latency = -1;
	int mapped;

	rspro_bank_slot_get(&r->bankSlot, &bank);
	client_get_ip_port(&r->bankd, &bankd);
	mapped = bankd.port != 0;
	if (mapped && !a->client.mapped)
		a->lg->counts.mapped++;
	else if (!mapped && a->client.mapped)
		a->lg->counts.mapped--;
	a->client.mapped = (uint8_t)mapped;
	a->client.bank = bank;
	if (mapped)
		latency = client_map_latency_us(a, &bank, report_now_ns());
	a->lg->counts.configs++;
	report_config(a->lg, a, &bank, &bankd, latency);
	agent_send(a, rspro_gen_config_client_bank_res(ResultCode_ok));
	report_milestones(a->lg);
}

static void agent_handle_pdu(struct agent *a, const RsproPDU_t *pdu)
{
	const RsproPDUchoice_t *m = &pdu->msg;

	switch (m->present) {
	case RsproPDUchoice_PR_connectBankRes:
		if (a->kind != AGENT_BANKD)
			break;
		agent_connect_res(a, m->choice.connectBankRes.result,
				  &m->choice.connectBankRes.identity);
		return;
	case RsproPDUchoice_PR_connectClientRes:
		if (a->kind != AGENT_CLIENT)
			break;
		agent_connect_res(a, m->choice.connectClientRes.result,
				  &m->choice.connectClientRes.identity);
		return;
	case RsproPDUchoice_PR_createMappingReq:
		if (a->kind != AGENT_BANKD)
			break;
		bankd_create_mapping(a, &m->choice.createMappingReq);
		return;
	case RsproPDUchoice_PR_removeMappingReq:
		if (a->kind != AGENT_BANKD)
			break;
		bankd_remove_mapping(a, &m->choice.removeMappingReq);
		return;
	case RsproPDUchoice_PR_resetStateReq:
		if (a->kind != AGENT_BANKD)
			break;
		bankd_reset_state(a);
		return;
	case RsproPDUchoice_PR_configClientBankReq:
		if (a->kind != AGENT_CLIENT)
			break;
		client_config_bank(a, &m->choice.configClientBankReq);
		return;
	default:
		break;
	}
	LOGI(link_get_name(a->link), "%s not handled", rspro_pdu_name(pdu));
}

static void agent_on_rspro(struct link *link, const uint8_t *data,
			   size_t len, void *user)
{
	struct agent *a = user;
	RsproPDU_t *pdu = NULL;
	char err[160];
	int rc;

	rc = rspro_decode(data, len, &pdu, err, sizeof(err));
	if (rc < 0) {
		/* a real agent would log and carry on, and so do we */
		a->lg->counts.bad_pdus++;
		LOGE(link_get_name(link), "undecodable RSPRO PDU (%zu bytes): "
		     "%s", len, err);
		rspro_pdu_free(pdu);
		return;
	}
	agent_handle_pdu(a, pdu);
	rspro_pdu_free(pdu);
}

/* ---- life cycle -------------------------------------------------------- */

static int agent_init_link(struct agent *a, struct loadgen *lg,
			   const char *name)
{
	struct link_config cfg = {
		.name = name,
		.host = lg->cfg.server,
		.port = lg->cfg.port,
		.ping_interval_ms = lg->cfg.ping_interval_ms,
		.pong_timeout_ms = lg->cfg.pong_timeout_ms,
		.on_up = agent_on_up,
		.on_rspro = agent_on_rspro,
		.on_down = agent_on_down,
		.user = a,
	};

	a->lg = lg;
	a->state = AGENT_IDLE;
	a->identify_deadline = -1;
	a->link = link_new(&cfg);
	return a->link ? 0 : -1;
}

int agent_init_bankd(struct agent *a, struct loadgen *lg, uint16_t bank_id,
		     uint16_t num_slots)
{
	char name[32];

	snprintf(name, sizeof(name), "bankd %u", bank_id);
	a->kind = AGENT_BANKD;
	a->bankd.bank_id = bank_id;
	a->bankd.num_slots = num_slots;
	a->bankd.maps = calloc(num_slots, sizeof(*a->bankd.maps));
	if (!a->bankd.maps) {
		LOGE(name, "out of memory");
		return -1;
	}
	return agent_init_link(a, lg, name);
}

int agent_init_client(struct agent *a, struct loadgen *lg,
		      const struct rspro_client_slot *slot)
{
	char name[32];

	snprintf(name, sizeof(name), "client %u:%u", slot->client_id,
		 slot->slot_nr);
	a->kind = AGENT_CLIENT;
	a->client.slot = *slot;
	return agent_init_link(a, lg, name);
}

void agent_free(struct agent *a)
{
	link_free(a->link);
	a->link = NULL;
	if (a->kind == AGENT_BANKD) {
		free(a->bankd.maps);
		a->bankd.maps = NULL;
	}
}

void agent_start(struct agent *a)
{
	agent_set_state(a, AGENT_LINKING, "started");
	link_start(a->link);
}

int agent_timeout_ms(const struct agent *a, int64_t now_ms)
{
	if (a->identify_deadline < 0)
		return -1;
	return a->identify_deadline <= now_ms ?
		       0 : (int)(a->identify_deadline - now_ms);
}

void agent_handle_timers(struct agent *a, int64_t now_ms)
{
	if (a->state != AGENT_IDENTIFYING || a->identify_deadline < 0 ||
	    now_ms < a->identify_deadline)
		return;
	a->lg->counts.identify_timeouts++;
	/* still IDENTIFYING: agent_on_down reports the loss */
	link_reconnect(a->link, "no connect response within 10 s");
}
