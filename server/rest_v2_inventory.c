/*
 * rest_v2_inventory: /api/v2/banks and /api/v2/clients with their slots:
 * the inventory from PostgreSQL, who is online and each mapping's live
 * state from the control plane.
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "control.h"
#include "rest.h"
#include "rest_v2.h"

/* ---- banks ---- */

#define V2_SQL_BANKS \
	"SELECT b.bank_id, b.name, b.peer_addr, b.component::text, " \
	"b.num_slots, b.authenticated, " REST_TS("b.connected_at") ", " \
	REST_TS("b.last_seen") ", (SELECT count(*) FROM slotmaps m WHERE " \
	"m.bank_id = b.bank_id) FROM banks b WHERE ($1::int IS NULL OR " \
	"b.bank_id = $1) ORDER BY b.bank_id"

static json_t *v2_bank(struct server *srv, const PGresult *res, int r)
{
	struct control_bankd_info live;
	int id = pgi(res, r, 0);
	int online = !control_find_bankd(srv, (uint16_t)id, &live);

	return json_pack("{s:i,s:o,s:b,s:o,s:o,s:o,s:o,s:o,s:o,s:o}",
			 "bank_id", id,
			 "name", pgv(res, r, 1, 's'),
			 "online", online,
			 "peer", online ? json_string(live.peer) :
				 pgv(res, r, 2, 's'),
			 "num_slots", online ? json_integer(live.num_slots) :
				      pgv(res, r, 4, 'i'),
			 "component", online && live.identity ?
				      json_deep_copy(live.identity) :
				      pgv(res, r, 3, 'j'),
			 "authenticated", pgv(res, r, 5, 'b'),
			 "connected_at", pgv(res, r, 6, 's'),
			 "last_seen", pgv(res, r, 7, 's'),
			 "slotmaps", pgv(res, r, 8, 'i'));
}

static void v2_banks_done(struct http_req *req, const PGresult *res)
{
	json_t *list;

	if (v2_db_error(req, res))
		return;
	list = json_array();
	for (int r = 0; r < PQntuples(res); r++)
		json_array_append_new(list, v2_bank(req->srv, res, r));
	http_reply_json(req, 200, json_pack("{s:o}", "banks", list));
}

void v2_list_banks(struct http_req *req, const char *const *p)
{
	const char *params[1] = { NULL };

	if (!v2_args(req, (const char *const[]){ NULL }))
		http_query(req, V2_SQL_BANKS, 1, params, v2_banks_done);
}

static void v2_bank_done(struct http_req *req, const PGresult *res)
{
	if (v2_db_error(req, res))
		return;
	if (!PQntuples(res))
		http_reply_error(req, 404, "not_found", "no bank %s",
				 (const char *)req->scratch);
	else
		http_reply_json(req, 200, v2_bank(req->srv, res, 0));
}

void v2_get_bank(struct http_req *req, const char *const *p)
{
	char *id = (char *)req->scratch;
	const char *params[1] = { id };

	if (!v2_args(req, (const char *const[]){ NULL }) &&
	    !v2_path_id(req, p[0], "bank id", id))
		http_query(req, V2_SQL_BANKS, 1, params, v2_bank_done);
}

/* Inventory slots and mapped slots of bank $1, and whether the bank exists. */
#define V2_SQL_BANK_SLOTS \
	"SELECT q.known, x.slot_nr, s.name, s.card_present, " \
	"encode(s.atr, 'hex'), s.worker_state, s.reset_active, " \
	"s.vcc_present, s.clk_active, s.apdu_count, s.slot_nr IS NOT NULL, " \
	REST_TS("s.updated_at") ", m.client_id, m.client_slot, m.state " \
	"FROM (SELECT EXISTS (SELECT 1 FROM banks WHERE bank_id = $1) " \
	"AS known) q LEFT JOIN (SELECT slot_nr FROM bank_slots WHERE " \
	"bank_id = $1 UNION SELECT bank_slot FROM slotmaps WHERE " \
	"bank_id = $1) x ON true " \
	"LEFT JOIN bank_slots s ON s.bank_id = $1 AND s.slot_nr = x.slot_nr " \
	"LEFT JOIN slotmaps m ON m.bank_id = $1 AND m.bank_slot = x.slot_nr " \
	"ORDER BY x.slot_nr"

static json_t *v2_bank_slot(struct server *srv, int bank_id,
			    const PGresult *res, int r)
{
	int slot = pgi(res, r, 1);
	json_t *mapping = json_null();

	if (!PQgetisnull(res, r, 12)) {
		int c = pgi(res, r, 12), cs = pgi(res, r, 13);

		mapping = json_pack("{s:i,s:i,s:s}", "client_id", c,
				    "client_slot", cs, "state",
				    v2_map_state(srv, bank_id, slot, c, cs,
						 PQgetvalue(res, r, 14)));
	}
	return json_pack("{s:i,s:o,s:b,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}",
			 "slot", slot,
			 "name", pgv(res, r, 2, 's'),
			 "in_inventory", *PQgetvalue(res, r, 10) == 't',
			 "card_present", pgv(res, r, 3, 'b'),
			 "atr", pgv(res, r, 4, 's'),
			 "worker_state", pgv(res, r, 5, 's'),
			 "reset_active", pgv(res, r, 6, 'b'),
			 "vcc_present", pgv(res, r, 7, 'b'),
			 "clk_active", pgv(res, r, 8, 'b'),
			 "apdu_count", pgv(res, r, 9, 'i'),
			 "updated_at", pgv(res, r, 11, 's'),
			 "mapping", mapping);
}

static void v2_bank_slots_done(struct http_req *req, const PGresult *res)
{
	int bank_id = atoi((const char *)req->scratch);
	json_t *slots;

	if (v2_db_error(req, res))
		return;
	if (*PQgetvalue(res, 0, 0) != 't' &&
	    !v2_bank_online(req->srv, bank_id)) {
		http_reply_error(req, 404, "not_found", "no bank %d", bank_id);
		return;
	}
	slots = json_array();
	for (int r = 0; r < PQntuples(res); r++)
		if (!PQgetisnull(res, r, 1))
			json_array_append_new(slots, v2_bank_slot(req->srv,
					      bank_id, res, r));
	http_reply_json(req, 200, json_pack("{s:i,s:o}", "bank_id", bank_id,
					    "slots", slots));
}

void v2_get_bank_slots(struct http_req *req, const char *const *p)
{
	char *id = (char *)req->scratch;
	const char *params[1] = { id };

	if (!v2_args(req, (const char *const[]){ NULL }) &&
	    !v2_path_id(req, p[0], "bank id", id))
		http_query(req, V2_SQL_BANK_SLOTS, 1, params,
			   v2_bank_slots_done);
}

/* ---- clients ---- */

#define V2_SQL_CLIENTS \
	"SELECT c.client_id, c.name, s.slot_nr, s.name, s.peer_addr, " \
	"s.component::text, s.authenticated, s.bankd_addr, " \
	REST_TS("s.connected_at") ", " REST_TS("s.last_seen") ", " \
	"m.bank_id, m.bank_slot, m.state, s.reset_active, s.vcc_present, " \
	"s.clk_active, s.card_present FROM clients c " \
	"LEFT JOIN client_slots s ON s.client_id = c.client_id " \
	"LEFT JOIN slotmaps m ON m.client_id = s.client_id AND " \
	"m.client_slot = s.slot_nr WHERE ($1::int IS NULL OR " \
	"c.client_id = $1) ORDER BY c.client_id, s.slot_nr"

static json_t *v2_client_slot(struct server *srv, const PGresult *res, int r)
{
	struct rspro_client_slot s = { (uint16_t)pgi(res, r, 0),
				       (uint16_t)pgi(res, r, 2) };
	struct control_client_info live;
	int online = !control_find_client(srv, &s, &live);
	json_t *mapping = json_null();

	if (!PQgetisnull(res, r, 10)) {
		int b = pgi(res, r, 10), bs = pgi(res, r, 11);

		mapping = json_pack("{s:i,s:i,s:s}", "bank_id", b,
				    "bank_slot", bs, "state",
				    v2_map_state(srv, b, bs, s.client_id,
						 s.slot_nr,
						 PQgetvalue(res, r, 12)));
	}
	return json_pack("{s:i,s:o,s:b,s:o,s:o,s:o,s:o,s:o,s:o,s:o,"
			 "s:{s:o,s:o,s:o,s:o}}",
			 "slot", s.slot_nr,
			 "name", pgv(res, r, 3, 's'),
			 "online", online,
			 "peer", online ? json_string(live.peer) :
				 pgv(res, r, 4, 's'),
			 "component", online && live.identity ?
				      json_deep_copy(live.identity) :
				      pgv(res, r, 5, 'j'),
			 "authenticated", pgv(res, r, 6, 'b'),
			 "bankd_addr", pgv(res, r, 7, 's'),
			 "connected_at", pgv(res, r, 8, 's'),
			 "last_seen", pgv(res, r, 9, 's'),
			 "mapping", mapping,
			 "modem", "reset_active", pgv(res, r, 13, 'b'),
			 "vcc_present", pgv(res, r, 14, 'b'),
			 "clk_active", pgv(res, r, 15, 'b'),
			 "card_present", pgv(res, r, 16, 'b'));
}

/* Rows ordered by client: one object per client with its slots. */
static json_t *v2_clients(struct server *srv, const PGresult *res)
{
	json_t *list = json_array(), *client = NULL, *slots = NULL;
	int last = -1;

	for (int r = 0; r < PQntuples(res); r++) {
		int id = pgi(res, r, 0);

		if (id != last) {
			slots = json_array();
			client = json_pack("{s:i,s:o,s:o}", "client_id", id,
					   "name", pgv(res, r, 1, 's'),
					   "slots", slots);
			json_array_append_new(list, client);
			last = id;
		}
		if (!PQgetisnull(res, r, 2))
			json_array_append_new(slots,
					      v2_client_slot(srv, res, r));
	}
	return list;
}

static void v2_clients_done(struct http_req *req, const PGresult *res)
{
	if (!v2_db_error(req, res))
		http_reply_json(req, 200, json_pack("{s:o}", "clients",
					v2_clients(req->srv, res)));
}

/* scratch[0] 's': only the slots; the id follows. */
static void v2_client_done(struct http_req *req, const PGresult *res)
{
	const char *id = (const char *)req->scratch + 1;
	json_t *list, *client;

	if (v2_db_error(req, res))
		return;
	list = v2_clients(req->srv, res);
	client = json_array_get(list, 0);
	if (!client) {
		json_decref(list);
		http_reply_error(req, 404, "not_found", "no client %s", id);
		return;
	}
	if (req->scratch[0] == 's')
		json_object_del(client, "name");
	json_incref(client);
	json_decref(list);
	http_reply_json(req, 200, client);
}

void v2_list_clients(struct http_req *req, const char *const *p)
{
	const char *params[1] = { NULL };

	if (!v2_args(req, (const char *const[]){ NULL }))
		http_query(req, V2_SQL_CLIENTS, 1, params, v2_clients_done);
}

static void v2_client_query(struct http_req *req, const char *id_text,
			    char kind)
{
	char *id = (char *)req->scratch + 1;
	const char *params[1] = { id };

	req->scratch[0] = (unsigned char)kind;
	if (!v2_args(req, (const char *const[]){ NULL }) &&
	    !v2_path_id(req, id_text, "client id", id))
		http_query(req, V2_SQL_CLIENTS, 1, params, v2_client_done);
}

void v2_get_client(struct http_req *req, const char *const *p)
{
	v2_client_query(req, p[0], 'c');
}

void v2_get_client_slots(struct http_req *req, const char *const *p)
{
	v2_client_query(req, p[0], 's');
}
