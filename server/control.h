/*
 * control: the server's mapping control plane. It knows which bankds and
 * clients are online, holds every slot mapping (loaded from PostgreSQL,
 * changed through its notifications) and drives each mapping through
 * osmo-remsim's lifecycle NEW -> UNACKNOWLEDGED -> ACTIVE -> DELETE_REQ ->
 * DELETING -> gone, talking RSPRO to the bankd and the client.
 */
#ifndef REMSIM_CONTROL_H
#define REMSIM_CONTROL_H

#include <stdint.h>

#include <stddef.h>

#include <jansson.h>

#include "rspro.h"

struct server;
struct rspro_conn;

enum slotmap_state {
	SLOTMAP_NEW,		/* known, not yet sent to its bankd */
	SLOTMAP_UNACKNOWLEDGED,	/* createMappingReq sent */
	SLOTMAP_ACTIVE,		/* bankd confirmed; client told */
	SLOTMAP_DELETE_REQ,	/* to be removed from the bankd */
	SLOTMAP_DELETING,	/* removeMappingReq sent */
};

const char *slotmap_state_name(enum slotmap_state st);

int control_init(struct server *srv);
/* Before exit: record that every agent is now offline. */
void control_shutdown(struct server *srv);
void control_free(struct server *srv);

/* From rspro_server: a peer identified itself; returns the ResultCode. */
long control_bankd_connect(struct server *srv, struct rspro_conn *conn,
			   const ConnectBankReq_t *req);
long control_client_connect(struct server *srv, struct rspro_conn *conn,
			    const ConnectClientReq_t *req);
/* ... after its ok response went out: push what it needs to know. */
void control_bankd_up(struct server *srv, struct rspro_conn *conn);
void control_client_up(struct server *srv, struct rspro_conn *conn);
/* An identified peer's connection closed. */
void control_conn_gone(struct server *srv, struct rspro_conn *conn);
/* An RSPRO message from an identified peer. */
void control_handle_pdu(struct server *srv, struct rspro_conn *conn,
			const RsproPDU_t *pdu);

/* From the database. */
void control_db_up(struct server *srv);
void control_db_notify(struct server *srv, const char *channel,
		       const char *payload);

/* Read-only views for the REST API and /metrics. */
/*
 * memo: a string the REST layer may hang on the connection (malloc()ed; it
 * is free()d with the connection), so that what never changes while an
 * agent is connected is rendered once, not on every request.
 */
struct control_bankd_info {
	uint16_t bank_id;
	uint16_t num_slots;
	const char *peer;		/* "127.0.0.1:40000" */
	const json_t *identity;		/* ComponentIdentity as JSON */
	char **memo;
};

struct control_client_info {
	struct rspro_client_slot slot;
	const char *peer;
	const json_t *identity;
	char **memo;
};

struct control_map_info {
	struct rspro_bank_slot bank;
	struct rspro_client_slot client;
	enum slotmap_state state;
	uint64_t seq;			/* creation order */
};

void control_foreach_bankd(struct server *srv,
			   void (*fn)(const struct control_bankd_info *, void *),
			   void *arg);
void control_foreach_client(struct server *srv,
			    void (*fn)(const struct control_client_info *,
				       void *),
			    void *arg);
/* Every mapping (not those being removed), oldest first; free() it. */
struct control_map_info *control_list_maps(struct server *srv, size_t *n);

/*
 * Lookups for the REST API: 0 and *out filled, or -1 if not there. The
 * pointers in *out stay valid until the loop runs again.
 */
int control_find_map(struct server *srv, uint16_t bank_id, uint16_t slot_nr,
		     struct control_map_info *out);
int control_find_bankd(struct server *srv, uint16_t bank_id,
		       struct control_bankd_info *out);
int control_find_client(struct server *srv,
			const struct rspro_client_slot *slot,
			struct control_client_info *out);
/* Changes whenever control_list_maps() would list something else. */
uint64_t control_maps_generation(struct server *srv);

/* Counts for logs and /metrics. */
struct control_stats {
	unsigned banks_online;
	unsigned clients_online;
	unsigned maps[SLOTMAP_DELETING + 1];
};
void control_get_stats(struct server *srv, struct control_stats *st);

#endif
