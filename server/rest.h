/*
 * rest: what the two REST APIs share: their entry points, the admin token
 * check (v2 always; v1 for callers the v1 policy does not admit by
 * address) and the SQL that creates and removes slot mappings, so that a
 * mapping made through v1 or v2 is the same row with the same audit event.
 */
#ifndef REMSIM_REST_H
#define REMSIM_REST_H

#include <stddef.h>

#include "http.h"
#include "token.h"

#define REST_V1_PREFIX	"/api/backend/v1"
#define REST_V2_PREFIX	"/api/v2"

void rest_v1_handle(struct http_req *req);
void rest_v2_handle(struct http_req *req);
/* The v1 cache, at exit. */
void rest_v1_free(void);

enum rest_auth {
	REST_AUTH_OK,
	REST_AUTH_MISSING,	/* no bearer token: 401 */
	REST_AUTH_INVALID,	/* bad, expired or revoked: 401 */
	REST_AUTH_FORBIDDEN,	/* valid, but not an admin token: 403 */
	REST_AUTH_NO_KEY,	/* the server has no key to check with: 503 */
};

/*
 * Checks the request's "Authorization: Bearer" token: signature, validity,
 * admin role, revocation list. On success claims is filled and req->who
 * set to "admin:<subject>"; otherwise why says what was wrong.
 */
enum rest_auth rest_auth_admin(struct http_req *req,
			       struct token_claims *claims, char *why,
			       size_t whylen);

/*
 * 1 (answered) if res is an error, 0 if it holds rows. Constraint names
 * and SQLSTATEs become API errors: unique violations conflict_status
 * (v2: 409, v1: 400 as osmo-remsim), other constraints 400, connection
 * trouble 503, anything else 500.
 */
int rest_db_error(struct http_req *req, const PGresult *res,
		  int conflict_status);

/* Timestamps in answers: RFC 3339, UTC, microseconds. */
#define REST_TS(col) \
	"to_char(" col " AT TIME ZONE 'UTC', " \
	"'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* A v2 slot mapping row: slotmaps aliased m, bank_slots aliased bs. */
#define REST_SLOTMAP_COLUMNS \
	"m.slotmap_id, m.bank_id, m.bank_slot, m.client_id, m.client_slot, " \
	"m.state, bs.card_present, m.created_by, " REST_TS("m.created_at") \
	", " REST_TS("m.updated_at")

/*
 * New mapping $1:$2 -> $3:$4, created_by $5, event actor $6. Answers the
 * new row (REST_SLOTMAP_COLUMNS); the control plane acts on the NOTIFY.
 */
#define REST_SQL_SLOTMAP_INSERT \
	"WITH m AS (INSERT INTO slotmaps (bank_id, bank_slot, client_id, " \
	"client_slot, created_by) VALUES ($1, $2, $3, $4, $5) RETURNING *), " \
	"e AS (INSERT INTO events (kind, bank_id, bank_slot, client_id, " \
	"client_slot, actor, message) SELECT 'slotmap.create', bank_id, " \
	"bank_slot, client_id, client_slot, $6::text, format('slot mapping " \
	"B%s:%s <-> C%s:%s created', bank_id, bank_slot, client_id, " \
	"client_slot) FROM m) " \
	"SELECT " REST_SLOTMAP_COLUMNS " FROM m LEFT JOIN bank_slots bs ON " \
	"bs.bank_id = m.bank_id AND bs.slot_nr = m.bank_slot"

/* Deletes the mapping of bank slot $1:$2 (event actor $3); one row or none. */
#define REST_SQL_SLOTMAP_DELETE \
	"WITH m AS (DELETE FROM slotmaps WHERE bank_id = $1 AND " \
	"bank_slot = $2 RETURNING *), " \
	"e AS (INSERT INTO events (kind, bank_id, bank_slot, client_id, " \
	"client_slot, actor, message) SELECT 'slotmap.delete', bank_id, " \
	"bank_slot, client_id, client_slot, $3::text, format('slot mapping " \
	"B%s:%s <-> C%s:%s deleted', bank_id, bank_slot, client_id, " \
	"client_slot) FROM m) " \
	"SELECT slotmap_id FROM m"

#endif
