/*
 * control: bankds, clients and slot mappings in memory, and the RSPRO
 * conversation that moves SIMs. PostgreSQL is the truth for which mappings
 * exist; this file only follows it (initial load, then NOTIFY) and writes
 * back the runtime state (who is online, each mapping's state). Responses
 * of a bankd are matched to its requests in order, as osmo-remsim bankds
 * answer them one by one and never echo the OperationTag.
 */
#include "control.h"
#include "control_priv.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "db.h"
#include "idmap.h"
#include "log.h"
#include "server.h"
#include "slot_status.h"
#include "writeback.h"

static const char *const slotmap_state_names[] = {
	[SLOTMAP_NEW] = "NEW",
	[SLOTMAP_UNACKNOWLEDGED] = "UNACKNOWLEDGED",
	[SLOTMAP_ACTIVE] = "ACTIVE",
	[SLOTMAP_DELETE_REQ] = "DELETE_REQ",
	[SLOTMAP_DELETING] = "DELETING",
};

const char *slotmap_state_name(enum slotmap_state st)
{
	return slotmap_state_names[st];
}


/* ---- database write-back ---- */

static void control_db_done(struct db *db, const PGresult *res, void *arg)
{
	if (res && PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)
		LOGE("db", "write failed: %s", PQresultErrorMessage(res));
}

/* Runs a write if the database is up; a full resync follows every reconnect. */
void control_db_write(struct control *ctl, const char *sql, int n,
		      const char *const *params)
{
	if (ctl->srv->db && db_is_up(ctl->srv->db))
		db_query(ctl->srv->db, sql, n, params, control_db_done, NULL);
}

void control_persist_map_state(struct control *ctl, const struct slotmap *m)
{
	writeback_map_state(ctl->wb, &m->bank, &m->client,
			    slotmap_state_name(m->state));
}

/* 1 the agent's token was checked, 0 admitted without one, -1 auth off. */
static int control_authenticated(const struct control *ctl,
				 const struct rspro_conn *conn)
{
	if (!conn || ctl->srv->cfg.rspro_auth == AUTH_OFF)
		return -1;
	return rspro_conn_authenticated(conn) ? 1 : 0;
}

void control_persist_bankd(struct control *ctl, const struct bankd *b,
			   int online, const char *peer)
{
	writeback_bankd(ctl->wb, b->bank_id, online,
			control_authenticated(ctl, b->conn), peer,
			b->num_slots, b->identity);
}

void control_persist_client(struct control *ctl, const struct client *cl,
			    int online, const char *peer)
{
	writeback_client(ctl->wb, &cl->slot, online,
			 control_authenticated(ctl, cl->conn), peer,
			 cl->identity);
}

/* An audit event; dropped (but logged) while the database is away. */
static void control_event(struct control *ctl, const char *severity,
			  const char *kind, const char *message)
{
	const char *p[3] = { severity, kind, message };

	control_db_write(ctl, "INSERT INTO events (severity, kind, message) "
			 "VALUES ($1, $2, $3)", 3, p);
}

/* ---- mappings ---- */

static void map_set_state(struct control *ctl, struct slotmap *m,
			  enum slotmap_state st, const char *reason)
{
	if (m->state == st)
		return;
	LOGN(CTX(m), "%s -> %s (%s)", slotmap_state_name(m->state),
	     slotmap_state_name(st), reason);
	m->state = st;
	ctl->maps_gen++;
	if (m->indexed)
		control_persist_map_state(ctl, m);
}

static void map_unindex(struct control *ctl, struct slotmap *m)
{
	if (!m->indexed)
		return;
	idmap_del(&ctl->by_bank, slot_key(m->bank.bank_id, m->bank.slot_nr));
	idmap_del(&ctl->by_client,
		  slot_key(m->client.client_id, m->client.slot_nr));
	m->indexed = 0;
	ctl->maps_gen++;
}

static struct bankd *bankd_of(struct control *ctl, uint16_t bank_id)
{
	struct peer *p = idmap_get(&ctl->banks, bank_id);

	return p ? &p->bankd : NULL;
}

static struct client *client_of(struct control *ctl,
				const struct rspro_client_slot *s)
{
	struct peer *p = idmap_get(&ctl->clients,
				   slot_key(s->client_id, s->slot_nr));

	return p ? &p->client : NULL;
}

static int pending_push(struct bankd *b, enum pending_op op,
			struct slotmap *m)
{
	struct pending *pe = calloc(1, sizeof(*pe));

	if (!pe)
		return -1;
	pe->op = op;
	pe->map = m;
	if (m) {
		pe->bank = m->bank;
		pe->client = m->client;
	}
	if (b->pend_tail)
		b->pend_tail->next = pe;
	else
		b->pend_head = pe;
	b->pend_tail = pe;
	return 0;
}

/* Takes the oldest outstanding request of kind op (they come back in order). */
static struct pending *pending_pop(struct bankd *b, enum pending_op op)
{
	struct pending **pp, *pe;

	for (pp = &b->pend_head; *pp; pp = &(*pp)->next) {
		if ((*pp)->op != op)
			continue;
		pe = *pp;
		*pp = pe->next;
		if (b->pend_tail == pe) {
			b->pend_tail = NULL;
			for (struct pending *q = b->pend_head; q; q = q->next)
				b->pend_tail = q;
		}
		return pe;
	}
	return NULL;
}

/* Tells the mapped client where its card is now (or that it has none). */
static void client_update(struct control *ctl, struct client *cl,
			  const struct slotmap *m)
{
	struct rspro_ip_port addr = { .family = AF_INET, .port = 0 };
	struct rspro_bank_slot bank = { 0, 0 };
	struct bankd *b;
	char ip[INET6_ADDRSTRLEN];

	if (m && m->state == SLOTMAP_ACTIVE &&
	    (b = bankd_of(ctl, m->bank.bank_id))) {
		addr = b->addr;
		bank = m->bank;
	} else if (m) {
		bank = m->bank;
	}
	if (cl->told && !memcmp(&cl->told_bank, &bank, sizeof(bank)) &&
	    cl->told_addr.port == addr.port &&
	    cl->told_addr.family == addr.family &&
	    !memcmp(cl->told_addr.addr, addr.addr, 16))
		return;	/* nothing new: do not make it reconnect */
	inet_ntop(addr.family, addr.addr, ip, sizeof(ip));
	LOGN(rspro_conn_name(cl->conn), "use bank slot B%u:%u at %s port %u",
	     bank.bank_id, bank.slot_nr, ip, addr.port);
	rspro_conn_send(cl->conn, rspro_gen_config_client_bank_req(&bank, &addr));
	cl->told = 1;
	cl->told_bank = bank;
	cl->told_addr = addr;
}

static void map_update_client(struct control *ctl, const struct slotmap *m)
{
	struct client *cl = client_of(ctl, &m->client);

	if (cl)
		client_update(ctl, cl, m);
}

static void map_send_create(struct control *ctl, struct slotmap *m)
{
	struct bankd *b = bankd_of(ctl, m->bank.bank_id);

	if (!b || m->state != SLOTMAP_NEW)
		return;
	if (pending_push(b, PENDING_CREATE, m))
		return;
	rspro_conn_send(b->conn, rspro_gen_create_mapping_req(&m->client,
							       &m->bank));
	map_set_state(ctl, m, SLOTMAP_UNACKNOWLEDGED, "createMappingReq sent");
}

static void map_send_remove(struct control *ctl, struct slotmap *m)
{
	struct bankd *b = bankd_of(ctl, m->bank.bank_id);

	map_set_state(ctl, m, SLOTMAP_DELETE_REQ, "deleted");
	if (!b || pending_push(b, PENDING_REMOVE, m)) {
		free(m);
		return;
	}
	rspro_conn_send(b->conn, rspro_gen_remove_mapping_req(&m->client,
							       &m->bank));
	map_set_state(ctl, m, SLOTMAP_DELETING, "removeMappingReq sent");
}

/* The mapping is gone from the database: take it off its bankd. */
void control_map_remove(struct control *ctl, struct slotmap *m,
			const char *reason)
{
	LOGN(CTX(m), "removing (%s)", reason);
	map_unindex(ctl, m);
	switch (m->state) {
	case SLOTMAP_NEW:
		free(m);
		break;
	case SLOTMAP_UNACKNOWLEDGED:
		/* the create is on its way; remove once it is answered */
		m->doomed = 1;
		break;
	case SLOTMAP_ACTIVE:
		map_send_remove(ctl, m);
		break;
	case SLOTMAP_DELETE_REQ:
	case SLOTMAP_DELETING:
		break;	/* already on its way out */
	}
}

struct slotmap *control_map_add(struct control *ctl,
				const struct rspro_bank_slot *bank,
				const struct rspro_client_slot *client)
{
	struct slotmap *m, *old;

	old = idmap_get(&ctl->by_bank, slot_key(bank->bank_id, bank->slot_nr));
	if (old && old->client.client_id == client->client_id &&
	    old->client.slot_nr == client->slot_nr)
		return old;
	/* the database moved on before we saw the old one go */
	if (old)
		control_map_remove(ctl, old, "bank slot reassigned");
	old = idmap_get(&ctl->by_client,
			slot_key(client->client_id, client->slot_nr));
	if (old)
		control_map_remove(ctl, old, "client slot reassigned");

	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->bank = *bank;
	m->client = *client;
	m->state = SLOTMAP_NEW;
	m->seq = ++ctl->map_seq;
	snprintf(m->name, sizeof(m->name), "B%u:%u <-> C%u:%u", bank->bank_id,
		 bank->slot_nr, client->client_id, client->slot_nr);
	if (idmap_put(&ctl->by_bank, slot_key(bank->bank_id, bank->slot_nr), m) ||
	    idmap_put(&ctl->by_client,
		      slot_key(client->client_id, client->slot_nr), m)) {
		idmap_del(&ctl->by_bank, slot_key(bank->bank_id, bank->slot_nr));
		free(m);
		return NULL;
	}
	m->indexed = 1;
	ctl->maps_gen++;
	LOGN(CTX(m), "new mapping");
	control_persist_map_state(ctl, m);
	map_send_create(ctl, m);
	return m;
}

/* ---- bankd conversation ---- */

static void bankd_create_res(struct control *ctl, struct bankd *b, long result)
{
	struct pending *pe = pending_pop(b, PENDING_CREATE);
	struct slotmap *m;
	char msg[160];

	if (!pe) {
		LOGE(rspro_conn_name(b->conn), "createMappingRes without a "
		     "request: ignored");
		return;
	}
	m = pe->map;
	free(pe);
	if (!m) {
		/* we dropped it meanwhile; if the bankd took it, undo that */
		return;
	}
	if (m->doomed) {
		if (result == ResultCode_ok) {
			m->state = SLOTMAP_ACTIVE;
			map_send_remove(ctl, m);
		} else {
			free(m);
		}
		return;
	}
	if (result != ResultCode_ok) {
		/* osmo-remsim marks it ACTIVE anyway; we keep it NEW and say so */
		snprintf(msg, sizeof(msg), "bankd %u refused mapping %s: %s",
			 b->bank_id, m->name, rspro_result_name(result) ?
			 rspro_result_name(result) : "?");
		LOGE(CTX(m), "%s", msg);
		control_event(ctl, "error", "slotmap.refused", msg);
		map_set_state(ctl, m, SLOTMAP_NEW, "refused by bankd");
		return;
	}
	map_set_state(ctl, m, SLOTMAP_ACTIVE, "createMappingRes ok");
	map_update_client(ctl, m);
}

static void bankd_remove_res(struct control *ctl, struct bankd *b, long result)
{
	struct pending *pe = pending_pop(b, PENDING_REMOVE);
	struct client *cl;

	if (!pe) {
		LOGE(rspro_conn_name(b->conn), "removeMappingRes without a "
		     "request: ignored");
		return;
	}
	if (result != ResultCode_ok)
		LOGI(rspro_conn_name(b->conn), "removeMappingRes %s for "
		     "B%u:%u", rspro_result_name(result) ?
		     rspro_result_name(result) : "?", pe->bank.bank_id,
		     pe->bank.slot_nr);
	/* the client loses its card only if nothing replaced the mapping */
	cl = client_of(ctl, &pe->client);
	if (cl && !idmap_get(&ctl->by_client, slot_key(pe->client.client_id,
						       pe->client.slot_nr)))
		client_update(ctl, cl, NULL);
	if (pe->map) {
		LOGN(CTX(pe->map), "%s -> gone (removeMappingRes)",
		     slotmap_state_name(pe->map->state));
		free(pe->map);
	}
	free(pe);
}

/* ---- connections ---- */

static long control_check_duplicate(struct control *ctl,
				    struct rspro_conn *newcomer,
				    struct rspro_conn *old, const char *who)
{
	int64_t late = rspro_conn_pong_overdue_ms(old);
	char msg[160];

	if (late > 0) {
		LOGN(rspro_conn_name(newcomer), "%s is taken over: the old "
		     "connection %s is %lld ms late with its PONG", who,
		     rspro_conn_name(old), (long long)late);
		control_conn_gone(ctl->srv, old);
		rspro_conn_set_user(old, NULL);
		rspro_conn_close(old, "taken over by a new connection");
		return ResultCode_ok;
	}
	snprintf(msg, sizeof(msg), "%s already connected from %s: refused "
		 "%s", who, rspro_conn_peer(old), rspro_conn_peer(newcomer));
	LOGE(rspro_conn_name(newcomer), "%s", msg);
	control_event(ctl, "warning", "identity.in_use", msg);
	/* if the old one is dead it fails this probe and the retry gets in */
	rspro_conn_probe(old, 3000);
	return ResultCode_identityInUse;
}

long control_bankd_connect(struct server *srv, struct rspro_conn *conn,
			   const ConnectBankReq_t *req)
{
	struct control *ctl = srv->control;
	struct peer *p = idmap_get(&ctl->banks, (uint32_t)req->bankId);
	char who[32];
	long rc;

	snprintf(who, sizeof(who), "bank %ld", req->bankId);
	if (p) {
		rc = control_check_duplicate(ctl, conn, p->bankd.conn, who);
		if (rc != ResultCode_ok)
			return rc;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return ResultCode_illegalBankId;
	p->kind = PEER_BANKD;
	p->bankd.bank_id = (uint16_t)req->bankId;
	p->bankd.num_slots = (uint16_t)req->numberOfSlots;
	p->bankd.conn = conn;
	p->bankd.identity = rspro_identity_to_json(&req->identity);
	rspro_conn_peer_ip(conn, &p->bankd.addr);
	/* remsim-bankd says where it listens; osmo-remsim's is --bankd-port */
	p->bankd.addr.port = req->bankdPort && *req->bankdPort ?
			     (uint16_t)*req->bankdPort :
			     (uint16_t)srv->cfg.bankd_port;
	if (idmap_put(&ctl->banks, (uint32_t)req->bankId, p)) {
		json_decref(p->bankd.identity);
		free(p);
		return ResultCode_illegalBankId;
	}
	rspro_conn_set_user(conn, p);
	LOGN(rspro_conn_name(conn), "bankd online: %ld slots, %.*s %.*s",
	     req->numberOfSlots, (int)req->identity.software.size,
	     (const char *)req->identity.software.buf,
	     (int)req->identity.swVersion.size,
	     (const char *)req->identity.swVersion.buf);
	control_persist_bankd(ctl, &p->bankd, 1, rspro_conn_peer(conn));
	return ResultCode_ok;
}

struct bank_walk {
	struct control *ctl;
	uint16_t bank_id;
};

static void bankd_push_map(uint32_t key, void *val, void *arg)
{
	struct bank_walk *w = arg;
	struct slotmap *m = val;

	if (m->bank.bank_id == w->bank_id)
		map_send_create(w->ctl, m);
}

void control_bankd_up(struct server *srv, struct rspro_conn *conn)
{
	struct control *ctl = srv->control;
	struct peer *p = rspro_conn_get_user(conn);
	struct bank_walk w = { ctl, p->bankd.bank_id };

	/* the bankd may hold mappings deleted while it was away: start over */
	if (!pending_push(&p->bankd, PENDING_RESET, NULL))
		rspro_conn_send(conn, rspro_gen_reset_state_req());
	/* every mapping of this bank, from memory, in one go */
	idmap_foreach(&ctl->by_bank, bankd_push_map, &w);
}

long control_client_connect(struct server *srv, struct rspro_conn *conn,
			    const ConnectClientReq_t *req)
{
	struct control *ctl = srv->control;
	uint32_t key = slot_key((uint32_t)req->clientSlot->clientId,
				(uint32_t)req->clientSlot->slotNr);
	struct peer *p = idmap_get(&ctl->clients, key);
	char who[32];
	long rc;

	snprintf(who, sizeof(who), "client %ld:%ld", req->clientSlot->clientId,
		 req->clientSlot->slotNr);
	if (p) {
		rc = control_check_duplicate(ctl, conn, p->client.conn, who);
		if (rc != ResultCode_ok)
			return rc;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return ResultCode_illegalClientId;
	p->kind = PEER_CLIENT;
	rspro_client_slot_get(req->clientSlot, &p->client.slot);
	p->client.conn = conn;
	p->client.identity = rspro_identity_to_json(&req->identity);
	if (idmap_put(&ctl->clients, key, p)) {
		json_decref(p->client.identity);
		free(p);
		return ResultCode_illegalClientId;
	}
	rspro_conn_set_user(conn, p);
	LOGN(rspro_conn_name(conn), "client online");
	control_persist_client(ctl, &p->client, 1, rspro_conn_peer(conn));
	return ResultCode_ok;
}

void control_client_up(struct server *srv, struct rspro_conn *conn)
{
	struct control *ctl = srv->control;
	struct peer *p = rspro_conn_get_user(conn);
	struct slotmap *m = idmap_get(&ctl->by_client,
				      slot_key(p->client.slot.client_id,
					       p->client.slot.slot_nr));

	/* as osmo-remsim: tell it only if it has a mapping */
	if (m && m->state == SLOTMAP_ACTIVE)
		client_update(ctl, &p->client, m);
}

static void bankd_gone(struct control *ctl, struct peer *p)
{
	struct bankd *b = &p->bankd;
	struct pending *pe;

	idmap_del(&ctl->banks, b->bank_id);
	/* what was on its way is void: mappings start over as NEW */
	while ((pe = b->pend_head)) {
		b->pend_head = pe->next;
		if (pe->map && (pe->map->doomed || !pe->map->indexed))
			free(pe->map);
		free(pe);
	}
	for (size_t i = 0; i < ctl->by_bank.cap; i++) {
		struct slotmap *m = ctl->by_bank.vals[i];

		if (m && m->bank.bank_id == b->bank_id)
			map_set_state(ctl, m, SLOTMAP_NEW, "bankd offline");
	}
	control_persist_bankd(ctl, b, 0, rspro_conn_peer(b->conn));
	LOGN(rspro_conn_name(b->conn), "bankd offline");
}

void control_conn_gone(struct server *srv, struct rspro_conn *conn)
{
	struct control *ctl = srv->control;
	struct peer *p = rspro_conn_get_user(conn);

	if (!p)
		return;
	rspro_conn_set_user(conn, NULL);
	if (p->kind == PEER_BANKD) {
		bankd_gone(ctl, p);
	} else {
		idmap_del(&ctl->clients, slot_key(p->client.slot.client_id,
						  p->client.slot.slot_nr));
		control_persist_client(ctl, &p->client, 0, rspro_conn_peer(conn));
		LOGN(rspro_conn_name(conn), "client offline");
	}
	json_decref(p->kind == PEER_BANKD ? p->bankd.identity :
		    p->client.identity);
	free(p->kind == PEER_BANKD ? p->bankd.memo : p->client.memo);
	free(p);
}

static void control_error_ind(struct control *ctl, struct rspro_conn *conn,
			      const ErrorInd_t *e)
{
	char msg[320];

	snprintf(msg, sizeof(msg), "errorInd from %s: severity %ld, code %ld%s%.*s",
		 rspro_conn_name(conn), e->severity, e->code,
		 e->errorString ? ": " : "",
		 e->errorString ? (int)e->errorString->size : 0,
		 e->errorString ? (const char *)e->errorString->buf : "");
	LOGE(rspro_conn_name(conn), "%s", msg);
	control_event(ctl, "warning", "rspro.error_ind", msg);
}

void control_handle_pdu(struct server *srv, struct rspro_conn *conn,
			const RsproPDU_t *pdu)
{
	struct control *ctl = srv->control;
	struct peer *p = rspro_conn_get_user(conn);
	long result = rspro_pdu_result(pdu);

	if (!p)
		return;
	switch (pdu->msg.present) {
	case RsproPDUchoice_PR_createMappingRes:
		if (p->kind == PEER_BANKD)
			bankd_create_res(ctl, &p->bankd, result);
		break;
	case RsproPDUchoice_PR_removeMappingRes:
		if (p->kind == PEER_BANKD)
			bankd_remove_res(ctl, &p->bankd, result);
		break;
	case RsproPDUchoice_PR_resetStateRes:
		if (p->kind == PEER_BANKD)
			free(pending_pop(&p->bankd, PENDING_RESET));
		break;
	case RsproPDUchoice_PR_configClientBankRes:
		if (result != ResultCode_ok)
			LOGE(rspro_conn_name(conn), "configClientBankRes %s",
			     rspro_result_name(result) ?
			     rspro_result_name(result) : "?");
		break;
	case RsproPDUchoice_PR_errorInd:
		control_error_ind(ctl, conn, &pdu->msg.choice.errorInd);
		break;
	case RsproPDUchoice_PR_bankSlotStatusInd:
		if (p->kind == PEER_BANKD)
			slot_status_bank(ctl->wb, rspro_conn_name(conn),
					 p->bankd.bank_id,
					 &pdu->msg.choice.bankSlotStatusInd);
		break;
	case RsproPDUchoice_PR_clientSlotStatusInd:
		if (p->kind == PEER_CLIENT)
			slot_status_client(ctl->wb, rspro_conn_name(conn),
					   &p->client.slot,
					   &pdu->msg.choice.clientSlotStatusInd);
		break;
	default:
		LOGI(rspro_conn_name(conn), "%s not handled",
		     rspro_pdu_name(pdu));
		break;
	}
}

void control_shutdown(struct server *srv)
{
	/* what is pending first, then: everyone goes offline with us */
	writeback_flush(srv->control->wb);
	control_db_write(srv->control, "UPDATE banks SET online = false "
			 "WHERE online", 0, NULL);
	control_db_write(srv->control, "UPDATE client_slots SET online = false "
			 "WHERE online", 0, NULL);
	writeback_close(srv->control->wb);
}

int control_init(struct server *srv)
{
	struct control *ctl = calloc(1, sizeof(*ctl));

	if (!ctl)
		return -1;
	ctl->srv = srv;
	ctl->wb = writeback_new(srv);
	if (!ctl->wb) {
		free(ctl);
		return -1;
	}
	idmap_init(&ctl->banks);
	idmap_init(&ctl->clients);
	idmap_init(&ctl->by_bank);
	idmap_init(&ctl->by_client);
	srv->control = ctl;
	return 0;
}

static void free_val(uint32_t key, void *val, void *arg)
{
	free(val);
}

void control_free(struct server *srv)
{
	struct control *ctl = srv->control;

	if (!ctl)
		return;
	/* connections are gone (context destroyed): free what is left */
	idmap_foreach(&ctl->by_bank, free_val, NULL);
	idmap_free(&ctl->by_bank);
	idmap_free(&ctl->by_client);
	idmap_free(&ctl->banks);
	idmap_free(&ctl->clients);
	writeback_free(ctl->wb);
	free(ctl);
	srv->control = NULL;
}
