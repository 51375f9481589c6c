/*
 * writeback: pending rows per table in id maps (one per key, the latest
 * value), flushed by a short timer as PostgreSQL array parameters unnested
 * into one INSERT ... ON CONFLICT or UPDATE ... FROM per table. While the
 * database is away the rows simply stay pending.
 */
#define _GNU_SOURCE
#include "writeback.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "db.h"
#include "idmap.h"
#include "log.h"
#include "server.h"

#define WB_DELAY_MS	10	/* how long changes are collected */
#define WB_BATCH	2000	/* rows per statement */

struct wb_map {
	struct rspro_bank_slot bank;
	struct rspro_client_slot client;
	const char *state;	/* a static name */
};

struct wb_peer {
	uint16_t id, slot;	/* bank id / client id and slot */
	uint16_t num_slots;
	int online;
	int authenticated;	/* -1: not checked (auth off) */
	char peer[64];
	char *component;	/* JSON text or NULL */
};

/* A slot status indication; -1 in an int field: not reported. */
struct wb_status {
	uint16_t id, slot;	/* bank id / client id and slot */
	struct rspro_slot_status st;
	const char *worker_state;	/* a static name or NULL */
	char atr[2 * 55 + 1];	/* hex, "" for none */
	long tpdu_count;
};

struct writeback {
	struct server *srv;
	struct idmap maps;	/* slot_key(bank) -> wb_map */
	struct idmap banks;	/* bank id -> wb_peer */
	struct idmap clients;	/* slot_key(client) -> wb_peer */
	struct idmap bank_status;	/* slot_key(bank) -> wb_status */
	struct idmap client_status;	/* slot_key(client) -> wb_status */
	int scheduled;
	int closed;		/* shutting down: nothing more is written */
	lws_sorted_usec_list_t sul;
};

/* A growing PostgreSQL array literal: "{1,2,3}", "{\"a\",NULL}". */
struct pgarr {
	char *buf;
	size_t len, cap;
	int n;
};

static void pgarr_raw(struct pgarr *a, const char *s, size_t n)
{
	if (a->len + n + 3 > a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 1024;
		char *p;

		while (cap < a->len + n + 3)
			cap *= 2;
		p = realloc(a->buf, cap);
		if (!p)
			return;	/* the statement fails and is logged */
		a->buf = p;
		a->cap = cap;
	}
	if (!a->len)
		a->buf[a->len++] = '{';
	memcpy(a->buf + a->len, s, n);
	a->len += n;
	a->buf[a->len] = '\0';
}

static void pgarr_sep(struct pgarr *a)
{
	if (a->n++)
		pgarr_raw(a, ",", 1);
	else
		pgarr_raw(a, "", 0);	/* just the opening brace */
}

static void pgarr_int(struct pgarr *a, long v)
{
	char num[24];

	pgarr_sep(a);
	pgarr_raw(a, num, (size_t)snprintf(num, sizeof(num), "%ld", v));
}

static void pgarr_bool(struct pgarr *a, int v)
{
	pgarr_sep(a);
	pgarr_raw(a, v ? "t" : "f", 1);
}

/* A quoted element; NULL becomes an SQL NULL. */
static void pgarr_text(struct pgarr *a, const char *s)
{
	pgarr_sep(a);
	if (!s) {
		pgarr_raw(a, "NULL", 4);
		return;
	}
	pgarr_raw(a, "\"", 1);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			pgarr_raw(a, "\\", 1);
		pgarr_raw(a, s, 1);
	}
	pgarr_raw(a, "\"", 1);
}

static const char *pgarr_done(struct pgarr *a)
{
	if (!a->len)
		pgarr_raw(a, "", 0);
	pgarr_raw(a, "}", 1);
	return a->buf;
}

static void pgarr_free(struct pgarr *a, int count)
{
	for (int i = 0; i < count; i++)
		free(a[i].buf);
}

static void wb_done(struct db *db, const PGresult *res, void *arg)
{
	const char *what = arg;

	if (res && PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)
		LOGE("db", "writing %s failed: %s", what,
		     PQresultErrorMessage(res));
}

static void wb_query(struct writeback *wb, const char *what, const char *sql,
		     struct pgarr *arrays, int n)
{
	const char *params[9];

	for (int i = 0; i < n; i++)
		params[i] = pgarr_done(&arrays[i]);
	db_query(wb->srv->db, sql, n, params, wb_done, (void *)what);
	pgarr_free(arrays, n);
}

/* Collects up to WB_BATCH entries of an idmap, removing them from it. */
struct wb_take {
	void *items[WB_BATCH];
	uint32_t keys[WB_BATCH];
	int n;
};

static void wb_collect(uint32_t key, void *val, void *arg)
{
	struct wb_take *t = arg;

	if (t->n < WB_BATCH) {
		t->keys[t->n] = key;
		t->items[t->n++] = val;
	}
}

static int wb_take(struct idmap *m, struct wb_take *t)
{
	t->n = 0;
	idmap_foreach(m, wb_collect, t);
	for (int i = 0; i < t->n; i++)
		idmap_del(m, t->keys[i]);
	return t->n;
}

static void wb_flush_maps(struct writeback *wb, struct wb_take *t)
{
	while (wb_take(&wb->maps, t)) {
		struct pgarr a[5] = { 0 };

		for (int i = 0; i < t->n; i++) {
			struct wb_map *m = t->items[i];

			pgarr_int(&a[0], m->bank.bank_id);
			pgarr_int(&a[1], m->bank.slot_nr);
			pgarr_int(&a[2], m->client.client_id);
			pgarr_int(&a[3], m->client.slot_nr);
			pgarr_text(&a[4], m->state);
			free(m);
		}
		/* all four columns: never overwrite a mapping moved meanwhile */
		wb_query(wb, "mapping states",
			 "UPDATE slotmaps s SET state = u.state FROM "
			 "unnest($1::int[], $2::int[], $3::int[], $4::int[], "
			 "$5::text[]) AS u(b, bs, c, cs, state) WHERE "
			 "s.bank_id = u.b AND s.bank_slot = u.bs AND "
			 "s.client_id = u.c AND s.client_slot = u.cs AND "
			 "s.state IS DISTINCT FROM u.state", a, 5);
	}
}

/* Banks written offline: their slots' runtime state is unknown now. */
static void wb_clear_offline(struct writeback *wb, struct pgarr *offline)
{
	if (!offline->n)
		return;
	wb_query(wb, "offline bank slots",
		 "UPDATE bank_slots SET worker_state = NULL, card_present = "
		 "NULL, atr = NULL, updated_at = now() WHERE bank_id = "
		 "ANY($1::int[])", offline, 1);
	memset(offline, 0, sizeof(*offline));
}

/* -1 (not reported) becomes NULL */
static void pgarr_opt_bool(struct pgarr *a, int v)
{
	if (v < 0)
		pgarr_text(a, NULL);
	else
		pgarr_bool(a, v);
}

static void wb_flush_banks(struct writeback *wb, struct wb_take *t,
			   struct pgarr *offline)
{
	while (wb_take(&wb->banks, t)) {
		struct pgarr a[6] = { 0 }, inv[2] = { 0 };

		for (int i = 0; i < t->n; i++) {
			struct wb_peer *p = t->items[i];

			pgarr_int(&a[0], p->id);
			pgarr_bool(&a[1], p->online);
			pgarr_text(&a[2], p->peer);
			pgarr_int(&a[3], p->num_slots);
			pgarr_text(&a[4], p->component);
			pgarr_opt_bool(&a[5], p->authenticated);
			if (p->online) {
				pgarr_int(&inv[0], p->id);
				pgarr_int(&inv[1], p->num_slots);
			} else {
				pgarr_int(offline, p->id);
			}
			free(p->component);
			free(p);
		}
		wb_query(wb, "banks",
			 "INSERT INTO banks (bank_id, online, peer_addr, "
			 "num_slots, component, authenticated, connected_at, "
			 "last_seen) SELECT u.id, u.online, u.peer, u.n, u.comp, "
			 "u.auth, now(), now() FROM unnest($1::int[], $2::bool[], "
			 "$3::text[], $4::int[], $5::jsonb[], $6::bool[]) AS "
			 "u(id, online, peer, n, comp, auth) "
			 "ON CONFLICT (bank_id) DO UPDATE SET "
			 "online = EXCLUDED.online, peer_addr = EXCLUDED.peer_addr, "
			 "num_slots = EXCLUDED.num_slots, "
			 "component = EXCLUDED.component, last_seen = now(), "
			 /* offline: how the last session authenticated */
			 "authenticated = CASE WHEN EXCLUDED.online THEN "
			 "EXCLUDED.authenticated ELSE banks.authenticated END, "
			 "connected_at = CASE WHEN EXCLUDED.online THEN now() "
			 "ELSE banks.connected_at END", a, 6);
		/* the slot inventory, so free_bank_slots lists them */
		wb_query(wb, "bank slots",
			 "INSERT INTO bank_slots (bank_id, slot_nr) SELECT u.id, "
			 "generate_series(0, u.n - 1) FROM unnest($1::int[], "
			 "$2::int[]) AS u(id, n) ON CONFLICT DO NOTHING", inv, 2);
	}
}

static void wb_flush_clients(struct writeback *wb, struct wb_take *t)
{
	while (wb_take(&wb->clients, t)) {
		struct pgarr a[6] = { 0 }, ids[1] = { 0 };

		for (int i = 0; i < t->n; i++) {
			struct wb_peer *p = t->items[i];

			pgarr_int(&ids[0], p->id);
			pgarr_int(&a[0], p->id);
			pgarr_int(&a[1], p->slot);
			pgarr_bool(&a[2], p->online);
			pgarr_text(&a[3], p->peer);
			pgarr_text(&a[4], p->component);
			pgarr_opt_bool(&a[5], p->authenticated);
			free(p->component);
			free(p);
		}
		wb_query(wb, "clients", "INSERT INTO clients (client_id) SELECT "
			 "DISTINCT unnest($1::int[]) ON CONFLICT DO NOTHING",
			 ids, 1);
		wb_query(wb, "client slots",
			 "INSERT INTO client_slots (client_id, slot_nr, online, "
			 "peer_addr, component, authenticated, connected_at, "
			 "last_seen) SELECT u.c, u.s, u.online, u.peer, u.comp, "
			 "u.auth, now(), now() FROM unnest($1::int[], $2::int[], "
			 "$3::bool[], $4::text[], $5::jsonb[], $6::bool[]) AS "
			 "u(c, s, online, peer, comp, auth) "
			 "ON CONFLICT (client_id, slot_nr) DO UPDATE SET "
			 "online = EXCLUDED.online, peer_addr = EXCLUDED.peer_addr, "
			 "component = EXCLUDED.component, last_seen = now(), "
			 "authenticated = CASE WHEN EXCLUDED.online THEN "
			 "EXCLUDED.authenticated ELSE "
			 "client_slots.authenticated END, "
			 "connected_at = CASE WHEN EXCLUDED.online THEN now() "
			 "ELSE client_slots.connected_at END", a, 6);
	}
}

static void wb_flush_bank_status(struct writeback *wb, struct wb_take *t)
{
	while (wb_take(&wb->bank_status, t)) {
		struct pgarr a[9] = { 0 }, keys[2] = { 0 };

		for (int i = 0; i < t->n; i++) {
			struct wb_status *x = t->items[i];

			pgarr_int(&keys[0], x->id);
			pgarr_int(&keys[1], x->slot);
			pgarr_int(&a[0], x->id);
			pgarr_int(&a[1], x->slot);
			pgarr_opt_bool(&a[2], x->st.card_present);
			pgarr_bool(&a[3], x->st.reset_active);
			pgarr_opt_bool(&a[4], x->st.vcc_present);
			pgarr_opt_bool(&a[5], x->st.clk_active);
			pgarr_text(&a[6], x->worker_state);
			pgarr_text(&a[7], x->atr[0] ? x->atr : NULL);
			if (x->tpdu_count < 0)
				pgarr_text(&a[8], NULL);
			else
				pgarr_int(&a[8], x->tpdu_count);
			free(x);
		}
		/* a slot beyond the inventory the bankd announced */
		wb_query(wb, "bank slots",
			 "INSERT INTO bank_slots (bank_id, slot_nr) SELECT * FROM "
			 "unnest($1::int[], $2::int[]) ON CONFLICT DO NOTHING",
			 keys, 2);
		/*
		 * An unreported value keeps what is stored, except the ATR:
		 * no card, no ATR.
		 */
		wb_query(wb, "bank slot status",
			 "UPDATE bank_slots s SET card_present = coalesce(u.card, "
			 "s.card_present), reset_active = u.rst, vcc_present = "
			 "coalesce(u.vcc, s.vcc_present), clk_active = "
			 "coalesce(u.clk, s.clk_active), worker_state = "
			 "coalesce(u.ws, s.worker_state), atr = CASE WHEN u.card "
			 "IS FALSE THEN NULL ELSE coalesce(decode(u.atr, 'hex'), "
			 "s.atr) END, apdu_count = coalesce(u.n, s.apdu_count), "
			 "updated_at = now() FROM unnest($1::int[], $2::int[], "
			 "$3::bool[], $4::bool[], $5::bool[], $6::bool[], "
			 "$7::text[], $8::text[], $9::bigint[]) AS u(b, sl, card, "
			 "rst, vcc, clk, ws, atr, n) WHERE s.bank_id = u.b AND "
			 "s.slot_nr = u.sl", a, 9);
	}
}

static void wb_flush_client_status(struct writeback *wb, struct wb_take *t)
{
	while (wb_take(&wb->client_status, t)) {
		struct pgarr a[6] = { 0 };

		for (int i = 0; i < t->n; i++) {
			struct wb_status *x = t->items[i];

			pgarr_int(&a[0], x->id);
			pgarr_int(&a[1], x->slot);
			pgarr_bool(&a[2], x->st.reset_active);
			pgarr_opt_bool(&a[3], x->st.vcc_present);
			pgarr_opt_bool(&a[4], x->st.clk_active);
			pgarr_opt_bool(&a[5], x->st.card_present);
			free(x);
		}
		wb_query(wb, "client slot status",
			 "UPDATE client_slots s SET reset_active = u.rst, "
			 "vcc_present = u.vcc, clk_active = u.clk, card_present "
			 "= u.card, updated_at = now() FROM unnest($1::int[], "
			 "$2::int[], $3::bool[], $4::bool[], $5::bool[], "
			 "$6::bool[]) AS u(c, n, rst, vcc, clk, card) WHERE "
			 "s.client_id = u.c AND s.slot_nr = u.n", a, 6);
	}
}

void writeback_flush(struct writeback *wb)
{
	static struct wb_take t;	/* big: keep it off the stack */
	struct pgarr offline = { 0 };

	wb->scheduled = 0;
	lws_sul_cancel(&wb->sul);
	if (!wb->srv->db || !db_is_up(wb->srv->db))
		return;	/* kept; control_db_up() flushes on reconnect */
	/*
	 * banks and clients first: the rest refers to them. A bank that went
	 * offline loses its slots' state after the last reports it sent.
	 */
	wb_flush_banks(wb, &t, &offline);
	wb_flush_clients(wb, &t);
	wb_flush_bank_status(wb, &t);
	wb_clear_offline(wb, &offline);
	wb_flush_client_status(wb, &t);
	wb_flush_maps(wb, &t);
}

static void wb_due(lws_sorted_usec_list_t *sul)
{
	writeback_flush(lws_container_of(sul, struct writeback, sul));
}

static void wb_schedule(struct writeback *wb)
{
	if (wb->scheduled || wb->closed)
		return;
	wb->scheduled = 1;
	lws_sul_schedule(wb->srv->ctx, 0, &wb->sul, wb_due,
			 WB_DELAY_MS * LWS_US_PER_MS);
}

void writeback_map_state(struct writeback *wb, const struct rspro_bank_slot *b,
			 const struct rspro_client_slot *c, const char *state)
{
	uint32_t key = slot_key(b->bank_id, b->slot_nr);
	struct wb_map *m = idmap_get(&wb->maps, key);

	if (!m) {
		m = calloc(1, sizeof(*m));
		if (!m || idmap_put(&wb->maps, key, m)) {
			free(m);
			LOGE("db", "out of memory: mapping state not written");
			return;
		}
	}
	m->bank = *b;
	m->client = *c;
	m->state = state;
	wb_schedule(wb);
}

static void wb_peer_set(struct writeback *wb, struct idmap *table,
			uint32_t key, uint16_t id, uint16_t slot, int online,
			int authenticated, const char *peer,
			uint16_t num_slots, const json_t *component)
{
	struct wb_peer *p = idmap_get(table, key);

	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p || idmap_put(table, key, p)) {
			free(p);
			LOGE("db", "out of memory: agent state not written");
			return;
		}
	}
	p->id = id;
	p->slot = slot;
	p->online = online;
	p->authenticated = authenticated;
	p->num_slots = num_slots;
	snprintf(p->peer, sizeof(p->peer), "%s", peer ? peer : "");
	free(p->component);
	p->component = component ? json_dumps(component, JSON_COMPACT) : NULL;
	wb_schedule(wb);
}

void writeback_bankd(struct writeback *wb, uint16_t bank_id, int online,
		     int authenticated, const char *peer, uint16_t num_slots,
		     const json_t *component)
{
	wb_peer_set(wb, &wb->banks, bank_id, bank_id, 0, online,
		    authenticated, peer, num_slots, component);
}

void writeback_client(struct writeback *wb, const struct rspro_client_slot *s,
		      int online, int authenticated, const char *peer,
		      const json_t *component)
{
	wb_peer_set(wb, &wb->clients, slot_key(s->client_id, s->slot_nr),
		    s->client_id, s->slot_nr, online, authenticated, peer, 0,
		    component);
}

static struct wb_status *wb_status_get(struct writeback *wb,
				       struct idmap *table, uint16_t id,
				       uint16_t slot)
{
	uint32_t key = slot_key(id, slot);
	struct wb_status *x = idmap_get(table, key);

	if (!x) {
		x = calloc(1, sizeof(*x));
		if (!x || idmap_put(table, key, x)) {
			free(x);
			LOGE("db", "out of memory: slot status not written");
			return NULL;
		}
	}
	x->id = id;
	x->slot = slot;
	wb_schedule(wb);
	return x;
}

void writeback_bank_slot_status(struct writeback *wb,
				const struct rspro_bank_slot *b,
				const struct rspro_slot_status *st,
				const char *worker_state, const uint8_t *atr,
				size_t atr_len, long tpdu_count)
{
	struct wb_status *x = wb_status_get(wb, &wb->bank_status, b->bank_id,
					    b->slot_nr);

	if (!x)
		return;
	x->st = *st;
	x->worker_state = worker_state;
	x->tpdu_count = tpdu_count;
	x->atr[0] = '\0';
	for (size_t i = 0; i < atr_len && i < 55; i++)
		snprintf(x->atr + 2 * i, 3, "%02x", atr[i]);
}

void writeback_client_slot_status(struct writeback *wb,
				  const struct rspro_client_slot *c,
				  const struct rspro_slot_status *st)
{
	struct wb_status *x = wb_status_get(wb, &wb->client_status,
					    c->client_id, c->slot_nr);

	if (x)
		x->st = *st;
}

void writeback_close(struct writeback *wb)
{
	wb->closed = 1;
	wb->scheduled = 0;
	lws_sul_cancel(&wb->sul);
}

struct writeback *writeback_new(struct server *srv)
{
	struct writeback *wb = calloc(1, sizeof(*wb));

	if (!wb)
		return NULL;
	wb->srv = srv;
	idmap_init(&wb->maps);
	idmap_init(&wb->banks);
	idmap_init(&wb->clients);
	idmap_init(&wb->bank_status);
	idmap_init(&wb->client_status);
	return wb;
}

static void wb_free_peer(uint32_t key, void *val, void *arg)
{
	struct wb_peer *p = val;

	free(p->component);
	free(p);
}

static void wb_free_plain(uint32_t key, void *val, void *arg)
{
	free(val);
}

void writeback_free(struct writeback *wb)
{
	if (!wb)
		return;
	if (!wb->closed)
		lws_sul_cancel(&wb->sul);
	idmap_foreach(&wb->maps, wb_free_plain, NULL);
	idmap_foreach(&wb->banks, wb_free_peer, NULL);
	idmap_foreach(&wb->clients, wb_free_peer, NULL);
	idmap_foreach(&wb->bank_status, wb_free_plain, NULL);
	idmap_foreach(&wb->client_status, wb_free_plain, NULL);
	idmap_free(&wb->bank_status);
	idmap_free(&wb->client_status);
	idmap_free(&wb->maps);
	idmap_free(&wb->banks);
	idmap_free(&wb->clients);
	free(wb);
}
