/*
 * control_db: the control plane following PostgreSQL: the initial load and
 * every reload of the slot mappings (reconciled with what is in memory),
 * NOTIFYs about single mappings, and the write-back resync after an outage.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "control_priv.h"
#include "db.h"
#include "log.h"
#include "server.h"

/* ---- the database side ---- */

static void load_mark_unseen(uint32_t key, void *val, void *arg)
{
	((struct slotmap *)val)->seen = 0;
}

struct sweep {
	struct slotmap *list[256];
	size_t n;
};

static void load_collect_unseen(uint32_t key, void *val, void *arg)
{
	struct sweep *sw = arg;
	struct slotmap *m = val;

	if (!m->seen && sw->n < sizeof(sw->list) / sizeof(sw->list[0]))
		sw->list[sw->n++] = m;
}

static void control_loaded(struct db *db, const PGresult *res, void *arg)
{
	struct control *ctl = arg;
	struct sweep sw;
	int rows;

	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		LOGE("db", "cannot load the slot mappings: %s",
		     res ? PQresultErrorMessage(res) : "connection lost");
		return;
	}
	idmap_foreach(&ctl->by_bank, load_mark_unseen, NULL);
	rows = PQntuples(res);
	for (int r = 0; r < rows; r++) {
		struct rspro_bank_slot b = {
			(uint16_t)atoi(PQgetvalue(res, r, 0)),
			(uint16_t)atoi(PQgetvalue(res, r, 1)) };
		struct rspro_client_slot c = {
			(uint16_t)atoi(PQgetvalue(res, r, 2)),
			(uint16_t)atoi(PQgetvalue(res, r, 3)) };
		struct slotmap *m = control_map_add(ctl, &b, &c);

		if (m) {
			m->seen = 1;
			control_persist_map_state(ctl, m);	/* resync after an outage */
		}
	}
	/* mappings deleted while we could not see the database */
	do {
		sw.n = 0;
		idmap_foreach(&ctl->by_bank, load_collect_unseen, &sw);
		for (size_t i = 0; i < sw.n; i++)
			control_map_remove(ctl, sw.list[i], "deleted from the database");
	} while (sw.n);
	ctl->loaded = 1;
	LOGN("db", "%d slot mappings loaded", rows);
}

static void resync_peer(uint32_t key, void *val, void *arg)
{
	struct control *ctl = arg;
	struct peer *p = val;

	if (p->kind == PEER_BANKD)
		control_persist_bankd(ctl, &p->bankd, 1, rspro_conn_peer(p->bankd.conn));
	else
		control_persist_client(ctl, &p->client, 1,
			       rspro_conn_peer(p->client.conn));
}

void control_db_up(struct server *srv)
{
	struct control *ctl = srv->control;

	/* what happened while the database was away: write it now */
	control_db_write(ctl, "UPDATE banks SET online = false WHERE online", 0,
			 NULL);
	control_db_write(ctl, "UPDATE client_slots SET online = false WHERE "
			 "online", 0, NULL);
	idmap_foreach(&ctl->banks, resync_peer, ctl);
	idmap_foreach(&ctl->clients, resync_peer, ctl);
	db_query(srv->db, "SELECT bank_id, bank_slot, client_id, client_slot "
		 "FROM slotmaps ORDER BY created_at, bank_id, bank_slot", 0,
		 NULL, control_loaded, ctl);
}

static int json_pair(const json_t *j, const char *key, uint16_t *a, uint16_t *b)
{
	json_t *v = json_object_get(j, key);
	json_int_t x, y;

	if (!json_is_array(v) || json_array_size(v) != 2 ||
	    !json_is_integer(json_array_get(v, 0)) ||
	    !json_is_integer(json_array_get(v, 1)))
		return -1;
	x = json_integer_value(json_array_get(v, 0));
	y = json_integer_value(json_array_get(v, 1));
	if (x < 0 || x > RSPRO_MAX_ID || y < 0 || y > RSPRO_MAX_ID)
		return -1;
	*a = (uint16_t)x;
	*b = (uint16_t)y;
	return 0;
}

static void control_slotmap_notify(struct control *ctl, const char *payload)
{
	struct rspro_bank_slot b, ob;
	struct rspro_client_slot c, oc;
	json_t *j = json_loads(payload, 0, NULL);
	const char *op = j ? json_string_value(json_object_get(j, "op")) : NULL;
	struct slotmap *m;

	if (!op) {
		LOGE("db", "unreadable slotmap notification: %s", payload);
		goto out;
	}
	if (!strcmp(op, "TRUNCATE")) {
		control_db_up(ctl->srv);
		goto out;
	}
	if (json_pair(j, "bank", &b.bank_id, &b.slot_nr) ||
	    json_pair(j, "client", &c.client_id, &c.slot_nr)) {
		LOGE("db", "unreadable slotmap notification: %s", payload);
		goto out;
	}
	if (!strcmp(op, "UPDATE") &&
	    !json_pair(j, "old_bank", &ob.bank_id, &ob.slot_nr) &&
	    !json_pair(j, "old_client", &oc.client_id, &oc.slot_nr)) {
		m = idmap_get(&ctl->by_bank, slot_key(ob.bank_id, ob.slot_nr));
		if (m && m->client.client_id == oc.client_id &&
		    m->client.slot_nr == oc.slot_nr)
			control_map_remove(ctl, m, "moved by an UPDATE");
		control_map_add(ctl, &b, &c);
	} else if (!strcmp(op, "INSERT")) {
		control_map_add(ctl, &b, &c);
	} else if (!strcmp(op, "DELETE")) {
		m = idmap_get(&ctl->by_bank, slot_key(b.bank_id, b.slot_nr));
		if (m && m->client.client_id == c.client_id &&
		    m->client.slot_nr == c.slot_nr)
			control_map_remove(ctl, m, "deleted");
	} else {
		LOGE("db", "unknown slotmap operation: %s", payload);
	}
out:
	json_decref(j);
}

void control_db_notify(struct server *srv, const char *channel,
		       const char *payload)
{
	LOGD("db", "notification on %s: %s", channel, payload);
	if (!strcmp(channel, "remsim_slotmaps") && srv->control->loaded)
		control_slotmap_notify(srv->control, payload);
}
