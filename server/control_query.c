/*
 * control_query: read-only views of the control plane for the REST API and
 * /metrics: who is online, the mapping list and single lookups.
 */
#include <stdlib.h>
#include <string.h>


#include "control_priv.h"
#include "server.h"

struct query_walk {
	void (*bankd_fn)(const struct control_bankd_info *, void *);
	void (*client_fn)(const struct control_client_info *, void *);
	void *arg;
};

static void bankd_info(struct peer *p, struct control_bankd_info *out)
{
	*out = (struct control_bankd_info){
		.bank_id = p->bankd.bank_id,
		.num_slots = p->bankd.num_slots,
		.peer = rspro_conn_peer(p->bankd.conn),
		.identity = p->bankd.identity,
		.memo = &p->bankd.memo,
	};
}

static void client_info(struct peer *p, struct control_client_info *out)
{
	*out = (struct control_client_info){
		.slot = p->client.slot,
		.peer = rspro_conn_peer(p->client.conn),
		.identity = p->client.identity,
		.memo = &p->client.memo,
	};
}

static void query_peer(uint32_t key, void *val, void *arg)
{
	struct query_walk *w = arg;
	struct peer *p = val;

	if (p->kind == PEER_BANKD && w->bankd_fn) {
		struct control_bankd_info bi;

		bankd_info(p, &bi);
		w->bankd_fn(&bi, w->arg);
	} else if (p->kind == PEER_CLIENT && w->client_fn) {
		struct control_client_info ci;

		client_info(p, &ci);
		w->client_fn(&ci, w->arg);
	}
}

void control_foreach_bankd(struct server *srv,
			   void (*fn)(const struct control_bankd_info *, void *),
			   void *arg)
{
	struct query_walk w = { .bankd_fn = fn, .arg = arg };

	idmap_foreach(&srv->control->banks, query_peer, &w);
}

void control_foreach_client(struct server *srv,
			    void (*fn)(const struct control_client_info *,
				       void *),
			    void *arg)
{
	struct query_walk w = { .client_fn = fn, .arg = arg };

	idmap_foreach(&srv->control->clients, query_peer, &w);
}

static int map_info_cmp(const void *a, const void *b)
{
	const struct control_map_info *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void collect_map(uint32_t key, void *val, void *arg)
{
	struct control_map_info **out = arg;
	const struct slotmap *m = val;

	(*out)->bank = m->bank;
	(*out)->client = m->client;
	(*out)->state = m->state;
	(*out)->seq = m->seq;
	(*out)++;
}

struct control_map_info *control_list_maps(struct server *srv, size_t *n)
{
	struct control *ctl = srv->control;
	struct control_map_info *list, *end;

	*n = ctl->by_bank.count;
	list = calloc(*n ? *n : 1, sizeof(*list));
	if (!list) {
		*n = 0;
		return NULL;
	}
	end = list;
	idmap_foreach(&ctl->by_bank, collect_map, &end);
	qsort(list, *n, sizeof(*list), map_info_cmp);
	return list;
}

/* ---- lookups for the REST API (read-only) ---- */

uint64_t control_maps_generation(struct server *srv)
{
	return srv->control->maps_gen;
}

int control_find_map(struct server *srv, uint16_t bank_id, uint16_t slot_nr,
		     struct control_map_info *out)
{
	const struct slotmap *m = idmap_get(&srv->control->by_bank,
					    slot_key(bank_id, slot_nr));

	if (!m)
		return -1;
	out->bank = m->bank;
	out->client = m->client;
	out->state = m->state;
	out->seq = m->seq;
	return 0;
}

int control_find_bankd(struct server *srv, uint16_t bank_id,
		       struct control_bankd_info *out)
{
	struct peer *p = idmap_get(&srv->control->banks, bank_id);

	if (!p)
		return -1;
	bankd_info(p, out);
	return 0;
}

int control_find_client(struct server *srv,
			const struct rspro_client_slot *slot,
			struct control_client_info *out)
{
	struct peer *p = idmap_get(&srv->control->clients,
				   slot_key(slot->client_id, slot->slot_nr));

	if (!p)
		return -1;
	client_info(p, out);
	return 0;
}

void control_get_stats(struct server *srv, struct control_stats *st)
{
	struct control *ctl = srv->control;

	memset(st, 0, sizeof(*st));
	for (size_t i = 0; i < ctl->banks.cap; i++)
		if (ctl->banks.vals[i])
			st->banks_online++;
	st->clients_online = (unsigned)ctl->clients.count;
	for (size_t i = 0; i < ctl->by_bank.cap; i++) {
		struct slotmap *m = ctl->by_bank.vals[i];

		if (m)
			st->maps[m->state]++;
	}
}
