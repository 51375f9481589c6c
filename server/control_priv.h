/*
 * control_priv.h: the control plane's own types, shared by control.c (the
 * RSPRO conversation and mapping lifecycle), control_db.c (following the
 * database) and control_query.c (read-only views for the REST API).
 */
#ifndef REMSIM_CONTROL_PRIV_H
#define REMSIM_CONTROL_PRIV_H

#include <jansson.h>
#include <libpq-fe.h>

#include "control.h"
#include "idmap.h"
#include "rspro.h"

struct rspro_conn;

struct slotmap {
	struct rspro_bank_slot bank;
	struct rspro_client_slot client;
	enum slotmap_state state;
	int indexed;	/* in the lookup tables (not yet being removed) */
	int doomed;	/* deleted while its create was outstanding */
	int seen;	/* found in the database by the last reload */
	uint64_t seq;	/* creation order, for listings */
	char name[48];	/* "B1:0 <-> C23:0" */
};

enum pending_op { PENDING_CREATE, PENDING_REMOVE, PENDING_RESET };

/* A request sent to a bankd whose response has not arrived yet. */
struct pending {
	struct pending *next;
	enum pending_op op;
	struct slotmap *map;	/* NULL once the mapping is gone */
	struct rspro_bank_slot bank;
	struct rspro_client_slot client;
};

struct bankd {
	json_t *identity;	/* its ComponentIdentity, as JSON */
	char *memo;		/* control_bankd_info.memo */
	uint16_t bank_id;
	uint16_t num_slots;
	struct rspro_conn *conn;
	struct rspro_ip_port addr;	/* where clients reach it */
	struct pending *pend_head, *pend_tail;
};

struct client {
	json_t *identity;
	char *memo;		/* control_client_info.memo */
	struct rspro_client_slot slot;
	struct rspro_conn *conn;
	int told;			/* sent a configClientBankReq */
	struct rspro_bank_slot told_bank;
	struct rspro_ip_port told_addr;
};

enum peer_kind { PEER_BANKD = 1, PEER_CLIENT };

/* What rspro_conn's user pointer holds: a tagged bankd or client. */
struct peer {
	enum peer_kind kind;
	union {
		struct bankd bankd;
		struct client client;
	};
};

struct control {
	struct server *srv;
	struct idmap banks;		/* bank id -> struct peer (bankd) */
	struct idmap clients;		/* slot_key(client, slot) -> peer */
	struct idmap by_bank;		/* slot_key(bank, slot) -> slotmap */
	struct idmap by_client;		/* slot_key(client, slot) -> slotmap */
	int loaded;			/* mappings read from the database */
	struct writeback *wb;		/* runtime state to the database */
	uint64_t map_seq;
	uint64_t maps_gen;		/* bumped when the mapping list changes */
};

#define CTX(map) ((map)->name)

void control_db_write(struct control *ctl, const char *sql, int n,
		      const char *const *params);
void control_persist_map_state(struct control *ctl, const struct slotmap *m);
void control_persist_bankd(struct control *ctl, const struct bankd *b,
			   int online, const char *peer);
void control_persist_client(struct control *ctl, const struct client *cl,
			    int online, const char *peer);
void control_map_remove(struct control *ctl, struct slotmap *m,
			const char *reason);
struct slotmap *control_map_add(struct control *ctl,
				const struct rspro_bank_slot *bank,
				const struct rspro_client_slot *client);

#endif
