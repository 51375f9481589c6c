/*
 * rest_v2: /api/v2, remsim's admin API. Admin bearer tokens (health is
 * public), JSON errors {"error":{"code","message"}} with proper statuses,
 * inventory and history from PostgreSQL, live state (who is online, each
 * mapping's state) from the control plane. Writes are SQL only, each with
 * its audit event in the same statement; the control plane acts on the
 * notifications exactly as for a psql session.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth.h"
#include "control.h"
#include "db.h"
#include "hex.h"
#include "log.h"
#include "rest.h"
#include "server.h"

#define V2_LIMIT_DEFAULT	100
#define V2_LIMIT_MAX		1000
#define V2_OFFSET_MAX		1000000000
#define V2_TTL_DEFAULT		(30 * 86400)
#define V2_TTL_MAX		(10 * 365 * 86400)
#define V2_COMMENT_MAX		200

/* ---- authentication ---- */

enum rest_auth rest_auth_admin(struct http_req *req,
			       struct token_claims *claims, char *why,
			       size_t whylen)
{
	char token[HTTP_AUTH_MAX], id[33];
	const char *a = req->authorization;
	size_t n;
	int rc;

	if (!req->srv->have_key) {
		snprintf(why, whylen, "the server has no key (--key) to check "
			 "tokens with");
		return REST_AUTH_NO_KEY;
	}
	if (req->authorization_too_long) {
		snprintf(why, whylen, "Authorization header too long");
		return REST_AUTH_INVALID;
	}
	if (!*a) {
		snprintf(why, whylen, "no bearer token (Authorization: Bearer "
			 "...)");
		return REST_AUTH_MISSING;
	}
	if (strncasecmp(a, "Bearer ", 7)) {
		snprintf(why, whylen, "Authorization is not a Bearer token");
		return REST_AUTH_MISSING;
	}
	a += 7 + strspn(a + 7, " ");
	n = strlen(a);
	while (n && a[n - 1] == ' ')
		n--;
	memcpy(token, a, n);
	token[n] = '\0';
	rc = token_verify(token, req->srv->keypair.pk, TOKEN_ROLE_ADMIN,
			  TOKEN_SUBJECT_ANY, time(NULL), TOKEN_DEFAULT_SKEW,
			  claims);
	explicit_bzero(token, sizeof(token));
	if (rc == TOKEN_ERR_ROLE) {
		token_id_hex(claims, id);
		snprintf(why, whylen, "token %s is a %s token, not admin", id,
			 token_role_name(claims->role));
		return REST_AUTH_FORBIDDEN;
	}
	if (rc != TOKEN_OK) {
		snprintf(why, whylen, "token refused: %s", token_strerror(rc));
		return REST_AUTH_INVALID;
	}
	token_id_hex(claims, id);
	if (auth_is_revoked(req->srv, claims->token_id)) {
		snprintf(why, whylen, "token %s is revoked", id);
		return REST_AUTH_INVALID;
	}
	snprintf(req->who, sizeof(req->who), "admin:%u", claims->subject);
	snprintf(why, whylen, "token %s", id);
	return REST_AUTH_OK;
}

static int v2_authorize(struct http_req *req)
{
	struct token_claims claims;
	char why[160];

	switch (rest_auth_admin(req, &claims, why, sizeof(why))) {
	case REST_AUTH_OK:
		return 0;
	case REST_AUTH_NO_KEY:
		http_reply_error(req, 503, "auth_unavailable", "%s", why);
		break;
	case REST_AUTH_MISSING:
		http_add_header(req, "WWW-Authenticate",
				"Bearer realm=\"remsim\"");
		http_reply_error(req, 401, "unauthorized", "%s", why);
		break;
	case REST_AUTH_INVALID:
		http_add_header(req, "WWW-Authenticate",
				"Bearer realm=\"remsim\", "
				"error=\"invalid_token\"");
		http_reply_error(req, 401, "unauthorized", "%s", why);
		break;
	case REST_AUTH_FORBIDDEN:
		http_reply_error(req, 403, "forbidden", "%s", why);
		break;
	}
	return -1;
}

/* ---- request input ---- */

/* An id or slot number in the path: 0..1023. */
static int v2_path_id(struct http_req *req, const char *s, const char *what,
		      char out[8])
{
	uint64_t v;

	if (http_parse_uint(s, RSPRO_MAX_ID, &v)) {
		http_reply_error(req, 400, "invalid_parameter", "%s '%s' is "
				 "not a number in 0..%d", what, s,
				 RSPRO_MAX_ID);
		return -1;
	}
	snprintf(out, 8, "%u", (unsigned)v);
	return 0;
}

/* Only the query arguments an endpoint knows; a typo must not widen a list. */
static int v2_args(struct http_req *req, const char *const *allowed)
{
	const char *bad = http_arg_unknown(req, allowed);

	if (req->args_overflow) {
		http_reply_error(req, 400, "invalid_parameter",
				 "too many query arguments");
		return -1;
	}
	if (bad) {
		http_reply_error(req, 400, "invalid_parameter",
				 "unknown query argument '%s'", bad);
		return -1;
	}
	return 0;
}

/* Optional numeric argument; out stays NULL if absent. */
static int v2_arg_uint(struct http_req *req, const char *name, uint64_t max,
		       char buf[24], const char **out)
{
	const char *s = http_arg(req, name);
	uint64_t v;

	*out = NULL;
	if (!s)
		return 0;
	if (http_parse_uint(s, max, &v)) {
		http_reply_error(req, 400, "invalid_parameter", "%s='%s': not "
				 "a number in 0..%llu", name, s,
				 (unsigned long long)max);
		return -1;
	}
	snprintf(buf, 24, "%llu", (unsigned long long)v);
	*out = buf;
	return 0;
}

struct v2_page {
	char limit[24], offset[24];
	uint64_t limit_n, offset_n;
};

static int v2_page(struct http_req *req, struct v2_page *pg)
{
	const char *s;

	if (v2_arg_uint(req, "limit", V2_LIMIT_MAX, pg->limit, &s))
		return -1;
	if (!s)
		snprintf(pg->limit, sizeof(pg->limit), "%d", V2_LIMIT_DEFAULT);
	pg->limit_n = strtoull(pg->limit, NULL, 10);
	if (!pg->limit_n) {
		http_reply_error(req, 400, "invalid_parameter",
				 "limit=0: must be 1..%d", V2_LIMIT_MAX);
		return -1;
	}
	if (v2_arg_uint(req, "offset", V2_OFFSET_MAX, pg->offset, &s))
		return -1;
	if (!s)
		strcpy(pg->offset, "0");
	pg->offset_n = strtoull(pg->offset, NULL, 10);
	return 0;
}

/* The request body as a JSON object, or NULL (answered). */
static json_t *v2_body(struct http_req *req)
{
	json_error_t err;
	json_t *j;

	if (*req->content_type &&
	    !strcasestr(req->content_type, "application/json")) {
		http_reply_error(req, 415, "unsupported_media_type",
				 "Content-Type '%s': send application/json",
				 req->content_type);
		return NULL;
	}
	if (!req->body_len) {
		http_reply_error(req, 400, "invalid_json", "empty body: "
				 "expected a JSON object");
		return NULL;
	}
	j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &err);
	if (!j) {
		http_reply_error(req, 400, "invalid_json", "line %d column %d: "
				 "%s", err.line, err.column, err.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		http_reply_error(req, 400, "invalid_body",
				 "expected a JSON object");
		return NULL;
	}
	return j;
}

/* obj[key] (shown as where.key): a JSON integer in 0..max. */
static int v2_field_uint(struct http_req *req, const json_t *obj,
			 const char *where, const char *key, json_int_t max,
			 json_int_t *out)
{
	json_t *v = json_object_get(obj, key);

	if (!v) {
		http_reply_error(req, 400, "invalid_body", "%s%s%s is missing",
				 where, *where ? "." : "", key);
		return -1;
	}
	if (!json_is_integer(v)) {
		http_reply_error(req, 400, "invalid_body", "%s%s%s must be an "
				 "integer", where, *where ? "." : "", key);
		return -1;
	}
	*out = json_integer_value(v);
	if (*out < 0 || *out > max) {
		http_reply_error(req, 400, "out_of_range", "%s%s%s = %lld is "
				 "not in 0..%lld", where, *where ? "." : "",
				 key, (long long)*out, (long long)max);
		return -1;
	}
	return 0;
}

/* body[side] = {"<id_key>": id, "slot": slot}, both 0..1023, as text. */
static int v2_body_slot(struct http_req *req, const json_t *body,
			const char *side, const char *id_key, char id[8],
			char slot[8])
{
	const json_t *o = json_object_get(body, side);
	json_int_t a, b;

	if (!json_is_object(o)) {
		http_reply_error(req, 400, "invalid_body", "%s must be an "
				 "object {\"%s\": ..., \"slot\": ...}", side,
				 id_key);
		return -1;
	}
	if (v2_field_uint(req, o, side, id_key, RSPRO_MAX_ID, &a) ||
	    v2_field_uint(req, o, side, "slot", RSPRO_MAX_ID, &b))
		return -1;
	snprintf(id, 8, "%d", (int)a);
	snprintf(slot, 8, "%d", (int)b);
	return 0;
}

/* ---- database results ---- */

int rest_db_error(struct http_req *req, const PGresult *res,
		  int conflict_status)
{
	const char *state, *constraint, *detail, *primary;
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return 0;
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
	detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	if (!state)
		state = "";
	if (!constraint)
		constraint = "";
	if (!strcmp(state, "23505")) {
		const char *code = "conflict";

		if (!strcmp(constraint, "slotmaps_bank_slot_unique"))
			code = "bank_slot_in_use";
		else if (!strcmp(constraint, "slotmaps_client_slot_unique"))
			code = "client_slot_in_use";
		http_reply_error(req, conflict_status, code, "%s",
				 detail ? detail : constraint);
	} else if (!strncmp(state, "23", 2)) {
		/* ranges are checked before; this is the database's word */
		http_reply_error(req, 400, !strcmp(state, "23514") ?
				 "out_of_range" : "invalid_body",
				 "refused by %s", *constraint ? constraint :
				 state);
	} else if (!strncmp(state, "22", 2)) {
		/* a value PostgreSQL could not read, e.g. since=<timestamp> */
		http_reply_error(req, 400, "invalid_parameter", "%s",
				 primary ? primary : state);
	} else if (!strncmp(state, "08", 2) || !strncmp(state, "57", 2) ||
		   !strncmp(state, "40", 2)) {
		/* connection trouble, shutdown, deadlock: worth a retry */
		http_reply_error(req, 503, "database_unavailable", "%s",
				 primary ? primary : state);
	} else {
		http_reply_error(req, 500, "internal_error", "database: %s %s",
				 state, primary ? primary : "");
	}
	return 1;
}

static int v2_db_error(struct http_req *req, const PGresult *res)
{
	return rest_db_error(req, res, 409);
}

/* A column as JSON: 'i' integer, 'b' boolean, 's' text, 'j' JSON text. */
static json_t *pgv(const PGresult *res, int row, int col, char kind)
{
	const char *v;

	if (PQgetisnull(res, row, col))
		return json_null();
	v = PQgetvalue(res, row, col);
	switch (kind) {
	case 'i':
		return json_integer(strtoll(v, NULL, 10));
	case 'b':
		return json_boolean(*v == 't');
	case 'j': {
		json_t *j = json_loads(v, JSON_DECODE_ANY, NULL);

		return j ? j : json_null();
	}
	default:
		return json_string(v);
	}
}

static int pgi(const PGresult *res, int row, int col)
{
	return atoi(PQgetvalue(res, row, col));
}

/* {"limit","offset","total","next_offset"} of a page of total rows. */
static void v2_page_info(json_t *o, const struct v2_page *pg, long long total)
{
	long long next = (long long)(pg->offset_n + pg->limit_n);

	json_object_set_new(o, "total", json_integer(total));
	json_object_set_new(o, "limit", json_integer((json_int_t)pg->limit_n));
	json_object_set_new(o, "offset",
			    json_integer((json_int_t)pg->offset_n));
	json_object_set_new(o, "next_offset", next < total ?
			    json_integer(next) : json_null());
}

/* ---- live state from the control plane ---- */

static int v2_bank_online(struct server *srv, int bank_id)
{
	struct control_bankd_info b;

	return !control_find_bankd(srv, (uint16_t)bank_id, &b);
}

static int v2_client_online(struct server *srv, int client_id, int slot)
{
	struct rspro_client_slot s = { (uint16_t)client_id, (uint16_t)slot };
	struct control_client_info c;

	return !control_find_client(srv, &s, &c);
}

/* The mapping's state as the control plane has it now, else the stored one. */
static const char *v2_map_state(struct server *srv, int bank_id, int bank_slot,
				int client_id, int client_slot,
				const char *stored)
{
	struct control_map_info m;

	if (!control_find_map(srv, (uint16_t)bank_id, (uint16_t)bank_slot,
			      &m) &&
	    m.client.client_id == client_id && m.client.slot_nr == client_slot)
		return slotmap_state_name(m.state);
	return stored;
}

/* A row of REST_SLOTMAP_COLUMNS starting at column c. */
static json_t *v2_slotmap(struct server *srv, const PGresult *res, int r,
			  int c)
{
	int b = pgi(res, r, c + 1), bs = pgi(res, r, c + 2);
	int cl = pgi(res, r, c + 3), cs = pgi(res, r, c + 4);

	return json_pack("{s:o,s:{s:i,s:i},s:{s:i,s:i},s:s,s:b,s:o,s:b,s:o,"
			 "s:o,s:o}",
			 "id", pgv(res, r, c, 'i'),
			 "bank", "bank_id", b, "slot", bs,
			 "client", "client_id", cl, "slot", cs,
			 "state", v2_map_state(srv, b, bs, cl, cs,
					       PQgetvalue(res, r, c + 5)),
			 "bank_online", v2_bank_online(srv, b),
			 "card_present", pgv(res, r, c + 6, 'b'),
			 "client_online", v2_client_online(srv, cl, cs),
			 "created_by", pgv(res, r, c + 7, 's'),
			 "created_at", pgv(res, r, c + 8, 's'),
			 "updated_at", pgv(res, r, c + 9, 's'));
}

/* ---- health (public) ---- */

static void v2_health(struct http_req *req, const char *const *p)
{
	struct control_stats st;
	int up = req->srv->db && db_is_up(req->srv->db);
	unsigned total = 0;
	json_t *maps = json_object();

	control_get_stats(req->srv, &st);
	for (int i = SLOTMAP_NEW; i <= SLOTMAP_DELETING; i++) {
		json_object_set_new(maps, slotmap_state_name(i),
				    json_integer(st.maps[i]));
		total += st.maps[i];
	}
	json_object_set_new(maps, "total", json_integer(total));
	http_reply_json(req, up ? 200 : 503,
			json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:o}",
				  "status", up ? "ok" : "degraded",
				  "version", REMSIM_VERSION,
				  "database", up ? "up" : "down",
				  "auth", req->srv->have_key ? "enabled" :
				  "no key",
				  "banks_online", st.banks_online,
				  "clients_online", st.clients_online,
				  "slotmaps", maps));
}

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

static void v2_list_banks(struct http_req *req, const char *const *p)
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

static void v2_get_bank(struct http_req *req, const char *const *p)
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

static void v2_get_bank_slots(struct http_req *req, const char *const *p)
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

static void v2_list_clients(struct http_req *req, const char *const *p)
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

static void v2_get_client(struct http_req *req, const char *const *p)
{
	v2_client_query(req, p[0], 'c');
}

static void v2_get_client_slots(struct http_req *req, const char *const *p)
{
	v2_client_query(req, p[0], 's');
}

/* ---- slot mappings ---- */

static const char *const v2_slotmap_states[] = {
	"NEW", "UNACKNOWLEDGED", "ACTIVE", "DELETE_REQ", "DELETING", NULL,
};

/*
 * Filters $1 bank, $2 client, $3 state; page $4 limit, $5 offset. The
 * total comes first, in a row of its own when the page is empty.
 */
#define V2_SQL_SLOTMAPS \
	"WITH f AS (SELECT * FROM slotmaps WHERE ($1::int IS NULL OR " \
	"bank_id = $1) AND ($2::int IS NULL OR client_id = $2) AND " \
	"($3::text IS NULL OR state = $3)) " \
	"SELECT t.total, p.* FROM (SELECT count(*) AS total FROM f) t " \
	"LEFT JOIN LATERAL (SELECT " REST_SLOTMAP_COLUMNS " FROM f m " \
	"LEFT JOIN bank_slots bs ON bs.bank_id = m.bank_id AND " \
	"bs.slot_nr = m.bank_slot ORDER BY m.bank_id, m.bank_slot " \
	"LIMIT $4 OFFSET $5) p ON true"

static void v2_slotmaps_done(struct http_req *req, const PGresult *res)
{
	struct v2_page pg;
	json_t *list, *o;

	if (v2_db_error(req, res) || v2_page(req, &pg))
		return;
	list = json_array();
	for (int r = 0; r < PQntuples(res); r++)
		if (!PQgetisnull(res, r, 1))
			json_array_append_new(list, v2_slotmap(req->srv, res,
							       r, 1));
	o = json_pack("{s:o}", "slotmaps", list);
	v2_page_info(o, &pg, strtoll(PQgetvalue(res, 0, 0), NULL, 10));
	http_reply_json(req, 200, o);
}

static void v2_list_slotmaps(struct http_req *req, const char *const *p)
{
	static const char *const allowed[] = { "bank_id", "client_id", "state",
		"limit", "offset", NULL };
	char b[24], c[24];
	struct v2_page pg;
	const char *params[5], *state = http_arg(req, "state");

	if (v2_args(req, allowed) ||
	    v2_arg_uint(req, "bank_id", RSPRO_MAX_ID, b, &params[0]) ||
	    v2_arg_uint(req, "client_id", RSPRO_MAX_ID, c, &params[1]) ||
	    v2_page(req, &pg))
		return;
	if (state) {
		const char *const *s;

		for (s = v2_slotmap_states; *s && strcmp(*s, state); s++)
			;
		if (!*s) {
			http_reply_error(req, 400, "invalid_parameter",
					 "state='%s': one of NEW, "
					 "UNACKNOWLEDGED, ACTIVE", state);
			return;
		}
	}
	params[2] = state;
	params[3] = pg.limit;
	params[4] = pg.offset;
	http_query(req, V2_SQL_SLOTMAPS, 5, params, v2_slotmaps_done);
}

static void v2_slotmap_done(struct http_req *req, const PGresult *res)
{
	if (v2_db_error(req, res))
		return;
	if (!PQntuples(res))
		http_reply_error(req, 404, "not_found", "no slot mapping for "
				 "bank slot %s", (const char *)req->scratch);
	else
		http_reply_json(req, 200, v2_slotmap(req->srv, res, 0, 0));
}

/* Path /slotmaps/{bank_id}/{slot}: params b, s; "B1:0" into scratch. */
static int v2_path_bank_slot(struct http_req *req, const char *const *p,
			     char b[8], char s[8])
{
	if (v2_args(req, (const char *const[]){ NULL }) ||
	    v2_path_id(req, p[0], "bank id", b) ||
	    v2_path_id(req, p[1], "bank slot", s))
		return -1;
	snprintf((char *)req->scratch, sizeof(req->scratch), "B%s:%s", b, s);
	return 0;
}

static void v2_get_slotmap(struct http_req *req, const char *const *p)
{
	char b[8], s[8];
	const char *params[2] = { b, s };

	if (!v2_path_bank_slot(req, p, b, s))
		http_query(req, "SELECT " REST_SLOTMAP_COLUMNS " FROM slotmaps "
			   "m LEFT JOIN bank_slots bs ON bs.bank_id = "
			   "m.bank_id AND bs.slot_nr = m.bank_slot WHERE "
			   "m.bank_id = $1 AND m.bank_slot = $2", 2, params,
			   v2_slotmap_done);
}

static void v2_created_done(struct http_req *req, const PGresult *res)
{
	char location[64];

	if (v2_db_error(req, res))
		return;
	snprintf(location, sizeof(location), REST_V2_PREFIX "/slotmaps/%s/%s",
		 PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
	http_add_header(req, "Location", location);
	http_reply_json(req, 201, v2_slotmap(req->srv, res, 0, 0));
}

static void v2_create_slotmap(struct http_req *req, const char *const *p)
{
	char b[8], bs[8], c[8], cs[8], by[80];
	const char *params[6] = { b, bs, c, cs, by, by };
	json_t *body;
	int bad;

	if (v2_args(req, (const char *const[]){ NULL }) ||
	    !(body = v2_body(req)))
		return;
	bad = v2_body_slot(req, body, "bank", "bank_id", b, bs) ||
	      v2_body_slot(req, body, "client", "client_id", c, cs);
	json_decref(body);
	if (bad)
		return;
	snprintf(by, sizeof(by), "rest-v2 %s", req->who);
	http_query(req, REST_SQL_SLOTMAP_INSERT, 6, params, v2_created_done);
}

static void v2_deleted_done(struct http_req *req, const PGresult *res)
{
	if (v2_db_error(req, res))
		return;
	if (!PQntuples(res))
		http_reply_error(req, 404, "not_found", "no slot mapping for "
				 "bank slot %s", (const char *)req->scratch);
	else
		http_reply_empty(req, 204);
}

static void v2_delete_slotmap(struct http_req *req, const char *const *p)
{
	char b[8], s[8], by[80];
	const char *params[3] = { b, s, by };

	if (v2_path_bank_slot(req, p, b, s))
		return;
	snprintf(by, sizeof(by), "rest-v2 %s", req->who);
	http_query(req, REST_SQL_SLOTMAP_DELETE, 3, params, v2_deleted_done);
}

static void v2_moved_done(struct http_req *req, const PGresult *res)
{
	json_t *o;

	if (v2_db_error(req, res))
		return;
	if (!PQntuples(res)) {
		http_reply_error(req, 404, "not_found", "client slot %s has "
				 "no mapping to move",
				 (const char *)req->scratch);
		return;
	}
	o = v2_slotmap(req->srv, res, 0, 0);
	json_object_set_new(o, "moved_from", json_pack("{s:i,s:i}",
			    "bank_id", pgi(res, 0, 10), "slot",
			    pgi(res, 0, 11)));
	http_reply_json(req, 200, o);
}

/* Moves client slot $1:$2 to bank slot $3:$4 (actor $5); old slot last */
#define V2_SQL_MOVE \
	"WITH o AS (SELECT bank_id, bank_slot FROM slotmaps WHERE " \
	"client_id = $1 AND client_slot = $2 FOR UPDATE), " \
	"m AS (UPDATE slotmaps s SET bank_id = $3, bank_slot = $4 " \
	"FROM o WHERE s.client_id = $1 AND s.client_slot = $2 " \
	"RETURNING s.*, o.bank_id AS old_bank, o.bank_slot AS " \
	"old_slot), " \
	"e AS (INSERT INTO events (kind, bank_id, bank_slot, " \
	"client_id, client_slot, actor, message) SELECT " \
	"'slotmap.move', bank_id, bank_slot, client_id, " \
	"client_slot, $5::text, format('client %s:%s moved from " \
	"B%s:%s to B%s:%s', client_id, client_slot, old_bank, " \
	"old_slot, bank_id, bank_slot) FROM m) " \
	"SELECT " REST_SLOTMAP_COLUMNS ", m.old_bank, m.old_slot " \
	"FROM m LEFT JOIN bank_slots bs ON bs.bank_id = m.bank_id " \
	"AND bs.slot_nr = m.bank_slot"

/* One UPDATE: the trigger makes it a new mapping (NEW) on the new slot. */
static void v2_move_slotmap(struct http_req *req, const char *const *p)
{
	char c[8], cs[8], b[8], bs[8], by[80];
	const char *params[5] = { c, cs, b, bs, by };
	json_t *body;
	int bad;

	if (v2_args(req, (const char *const[]){ NULL }) ||
	    !(body = v2_body(req)))
		return;
	bad = v2_body_slot(req, body, "client", "client_id", c, cs) ||
	      v2_body_slot(req, body, "bank", "bank_id", b, bs);
	json_decref(body);
	if (bad)
		return;
	snprintf((char *)req->scratch, sizeof(req->scratch), "C%s:%s", c, cs);
	snprintf(by, sizeof(by), "rest-v2 %s", req->who);
	http_query(req, V2_SQL_MOVE, 5, params, v2_moved_done);
}

/* ---- events ---- */

static void v2_events_done(struct http_req *req, const PGresult *res)
{
	json_t *list;
	int n;

	if (v2_db_error(req, res))
		return;
	list = json_array();
	n = PQntuples(res);
	for (int r = 0; r < n; r++)
		json_array_append_new(list, json_pack(
			"{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}",
			"event_id", pgv(res, r, 0, 'i'),
			"at", pgv(res, r, 1, 's'),
			"severity", pgv(res, r, 2, 's'),
			"kind", pgv(res, r, 3, 's'),
			"bank_id", pgv(res, r, 4, 'i'),
			"bank_slot", pgv(res, r, 5, 'i'),
			"client_id", pgv(res, r, 6, 'i'),
			"client_slot", pgv(res, r, 7, 'i'),
			"actor", pgv(res, r, 8, 's'),
			"message", pgv(res, r, 9, 's'),
			"details", pgv(res, r, 10, 'j')));
	http_reply_json(req, 200, json_pack("{s:o,s:o}", "events", list,
			"last_event_id", n ? pgv(res, n - 1, 0, 'i') :
			json_null()));
}

/*
 * $1 kind (or a dotted prefix), $2 after event id, $3 at or after time,
 * $4 bank, $5 client, $6 limit. Without $2 or $3: the latest $6 events.
 */
#define V2_SQL_EVENTS \
	"SELECT * FROM (SELECT event_id, " REST_TS("at") ", severity, " \
	"kind, bank_id, bank_slot, client_id, client_slot, actor, " \
	"message, details::text FROM events WHERE ($1::text IS NULL " \
	"OR kind = $1 OR left(kind, length($1) + 1) = $1 || '.') " \
	"AND ($2::bigint IS NULL OR event_id > $2) AND " \
	"($3::timestamptz IS NULL OR at >= $3) AND ($4::int IS NULL " \
	"OR bank_id = $4) AND ($5::int IS NULL OR client_id = $5) " \
	"ORDER BY CASE WHEN $2::bigint IS NULL AND $3::timestamptz " \
	"IS NULL THEN -event_id ELSE event_id END LIMIT $6) e " \
	"ORDER BY event_id"

/*
 * since=<event id> (after it) or since=<timestamp> (at or after it);
 * events come oldest first: with since, the first limit after it, else
 * the latest limit.
 */
static void v2_list_events(struct http_req *req, const char *const *p)
{
	static const char *const allowed[] = { "kind", "since", "bank_id",
		"client_id", "limit", NULL };
	char b[24], c[24], limit[24];
	const char *params[6], *since = http_arg(req, "since"), *s;
	uint64_t id;

	if (v2_args(req, allowed) ||
	    v2_arg_uint(req, "bank_id", RSPRO_MAX_ID, b, &params[3]) ||
	    v2_arg_uint(req, "client_id", RSPRO_MAX_ID, c, &params[4]) ||
	    v2_arg_uint(req, "limit", V2_LIMIT_MAX, limit, &s))
		return;
	params[5] = s ? limit : "100";
	if (s && !strcmp(s, "0")) {
		http_reply_error(req, 400, "invalid_parameter",
				 "limit=0: must be 1..%d", V2_LIMIT_MAX);
		return;
	}
	params[0] = http_arg(req, "kind");
	params[1] = since && !http_parse_uint(since, INT64_MAX, &id) ? since :
		    NULL;
	params[2] = since && !params[1] ? since : NULL;
	http_query(req, V2_SQL_EVENTS, 6, params, v2_events_done);
}

/* ---- tokens ---- */

/* What POST /tokens keeps in the request's scratch until the INSERT returns. */
struct v2_issued {
	char text[TOKEN_TEXT_MAX];
};

_Static_assert(sizeof(struct v2_issued) <= HTTP_SCRATCH_MAX,
	       "the token must fit the request's scratch space");

static void v2_token_issued(struct http_req *req, const PGresult *res)
{
	struct v2_issued *is = (struct v2_issued *)req->scratch;

	if (v2_db_error(req, res))
		return;
	http_reply_json(req, 201, json_pack("{s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o}",
			"token", is->text,
			"token_id", pgv(res, 0, 0, 's'),
			"role", pgv(res, 0, 1, 's'),
			"subject", pgv(res, 0, 2, 'i'),
			"key_id", pgv(res, 0, 3, 's'),
			"issued_at", pgv(res, 0, 4, 's'),
			"expires_at", pgv(res, 0, 5, 's'),
			"comment", pgv(res, 0, 6, 's')));
}

/* role/subject/ttl/comment of a POST /tokens body; 0 or -1 (answered). */
static int v2_token_request(struct http_req *req, const json_t *body,
			    enum token_role *role, json_int_t *subject,
			    json_int_t *ttl, const char **comment)
{
	const json_t *r = json_object_get(body, "role");
	const json_t *c = json_object_get(body, "comment");

	if (!json_is_string(r) ||
	    token_role_parse(json_string_value(r), role) < 0) {
		http_reply_error(req, 400, "invalid_body", "role must be "
				 "\"bankd\", \"client\" or \"admin\"");
		return -1;
	}
	if (v2_field_uint(req, body, "", "subject", *role == TOKEN_ROLE_ADMIN ?
			  UINT32_MAX : RSPRO_MAX_ID, subject))
		return -1;
	*ttl = V2_TTL_DEFAULT;
	if (json_object_get(body, "ttl") &&
	    v2_field_uint(req, body, "", "ttl", V2_TTL_MAX, ttl))
		return -1;
	if (!*ttl) {
		http_reply_error(req, 400, "out_of_range", "ttl = 0: a token "
				 "must be valid for at least a second");
		return -1;
	}
	*comment = NULL;
	if (c && !json_is_null(c)) {
		if (!json_is_string(c) ||
		    json_string_length(c) > V2_COMMENT_MAX) {
			http_reply_error(req, 400, "invalid_body", "comment "
					 "must be a string of at most %d "
					 "bytes", V2_COMMENT_MAX);
			return -1;
		}
		*comment = json_string_value(c);
	}
	return 0;
}

/* Registers an issued token: $1 id .. $7 comment, $8 actor */
#define V2_SQL_TOKEN_INSERT \
	"WITH t AS (INSERT INTO tokens (token_id, role, subject, " \
	"key_id, issued_at, expires_at, comment) VALUES ($1, $2, " \
	"$3, $4, to_timestamp($5), to_timestamp($6), $7) RETURNING " \
	"*), e AS (INSERT INTO events (kind, actor, message, " \
	"details) SELECT 'token.issue', $8::text, format('%s token " \
	"%s issued for %s', role, token_id, subject), " \
	"jsonb_build_object('token_id', token_id, 'role', role, " \
	"'subject', subject) FROM t) SELECT token_id, role, subject, " \
	"key_id, " REST_TS("issued_at") ", " REST_TS("expires_at") \
	", comment FROM t"

static void v2_issue_token(struct http_req *req, const char *const *p)
{
	struct v2_issued *is = (struct v2_issued *)req->scratch;
	char id[33], key[17], subj[16], issued[24], expires[24], by[80];
	const char *params[8] = { id, NULL, subj, key, issued, expires, NULL,
				  by };
	struct token_claims cl;
	enum token_role role;
	json_int_t subject, ttl;
	json_t *body;
	int rc;

	if (v2_args(req, (const char *const[]){ NULL }) ||
	    !(body = v2_body(req)))
		return;
	if (v2_token_request(req, body, &role, &subject, &ttl, &params[6])) {
		json_decref(body);
		return;
	}
	rc = token_issue(&req->srv->keypair, role, (uint32_t)subject,
			 time(NULL), ttl, is->text, sizeof(is->text), &cl);
	if (rc != TOKEN_OK) {
		json_decref(body);
		http_reply_error(req, 500, "internal_error", "cannot issue: %s",
				 token_strerror(rc));
		return;
	}
	token_id_hex(&cl, id);
	token_key_id_hex(cl.key_id, key);
	params[1] = token_role_name(role);
	snprintf(subj, sizeof(subj), "%u", cl.subject);
	snprintf(issued, sizeof(issued), "%lld", (long long)cl.issued);
	snprintf(expires, sizeof(expires), "%lld", (long long)cl.expires);
	snprintf(by, sizeof(by), "rest-v2 %s", req->who);
	LOGN(req->peer, "%s issues a %s token for %u: %s", req->who,
	     params[1], cl.subject, id);
	http_query(req, V2_SQL_TOKEN_INSERT, 8, params, v2_token_issued);
	json_decref(body);	/* held the comment until the query took it */
}

static void v2_tokens_done(struct http_req *req, const PGresult *res)
{
	struct v2_page pg;
	json_t *list, *o;

	if (v2_db_error(req, res) || v2_page(req, &pg))
		return;
	list = json_array();
	for (int r = 0; r < PQntuples(res); r++) {
		if (PQgetisnull(res, r, 1))
			continue;
		json_array_append_new(list, json_pack(
			"{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:b,s:o,s:o,s:o}",
			"token_id", pgv(res, r, 1, 's'),
			"role", pgv(res, r, 2, 's'),
			"subject", pgv(res, r, 3, 'i'),
			"key_id", pgv(res, r, 4, 's'),
			"issued_at", pgv(res, r, 5, 's'),
			"expires_at", pgv(res, r, 6, 's'),
			"comment", pgv(res, r, 7, 's'),
			"revoked", *PQgetvalue(res, r, 8) == 't',
			"revoked_at", pgv(res, r, 9, 's'),
			"revoked_by", pgv(res, r, 10, 's'),
			"revoke_reason", pgv(res, r, 11, 's')));
	}
	o = json_pack("{s:o}", "tokens", list);
	v2_page_info(o, &pg, strtoll(PQgetvalue(res, 0, 0), NULL, 10));
	http_reply_json(req, 200, o);
}

/* Registered tokens and revoked ids; the total first; $1 limit, $2 offset */
#define V2_SQL_TOKENS \
	"WITH f AS (SELECT coalesce(t.token_id, r.token_id) AS " \
	"token_id, t.role, t.subject, t.key_id, t.issued_at, " \
	"t.expires_at, t.comment, r.token_id IS NOT NULL AS revoked, " \
	"r.revoked_at, r.revoked_by, r.reason FROM tokens t FULL " \
	"JOIN revoked_tokens r ON r.token_id = t.token_id) " \
	"SELECT t.total, p.* FROM (SELECT count(*) AS total FROM f) t " \
	"LEFT JOIN LATERAL (SELECT token_id, role, subject, key_id, " \
	REST_TS("issued_at") ", " REST_TS("expires_at") ", comment, " \
	"revoked, " REST_TS("revoked_at") ", revoked_by, reason " \
	"FROM f ORDER BY coalesce(issued_at, revoked_at), token_id " \
	"LIMIT $1 OFFSET $2) p ON true"

/* Registered tokens and revoked ids (registered or not); no secrets. */
static void v2_list_tokens(struct http_req *req, const char *const *p)
{
	static const char *const allowed[] = { "limit", "offset", NULL };
	struct v2_page pg;
	const char *params[2] = { pg.limit, pg.offset };

	if (v2_args(req, allowed) || v2_page(req, &pg))
		return;
	http_query(req, V2_SQL_TOKENS, 2, params, v2_tokens_done);
}

static void v2_token_revoked(struct http_req *req, const PGresult *res)
{
	if (!v2_db_error(req, res))
		http_reply_empty(req, 204);
}

/* Revokes token $1 (reason $2, by $3); revoking twice changes nothing */
#define V2_SQL_REVOKE \
	"WITH r AS (INSERT INTO revoked_tokens (token_id, reason, " \
	"revoked_by) VALUES ($1, $2, $3) ON CONFLICT (token_id) DO " \
	"NOTHING RETURNING token_id), e AS (INSERT INTO events " \
	"(kind, actor, message, details) SELECT 'token.revoke', " \
	"$3::text, format('token %s revoked', token_id), " \
	"jsonb_build_object('token_id', token_id) FROM r) " \
	"SELECT count(*) FROM r"

/* Revocation is an INSERT into revoked_tokens; its NOTIFY reaches auth. */
static void v2_revoke_token(struct http_req *req, const char *const *p)
{
	static const char *const allowed[] = { "reason", NULL };
	char id[33], by[80];
	const char *params[3] = { id, http_arg(req, "reason"), by };
	uint8_t raw[TOKEN_ID_LEN];

	if (v2_args(req, allowed))
		return;
	if (strlen(p[0]) != 2 * TOKEN_ID_LEN ||
	    hex_decode(raw, sizeof(raw), p[0]) != TOKEN_ID_LEN) {
		http_reply_error(req, 400, "invalid_parameter", "token id '%s' "
				 "is not 32 hex digits", p[0]);
		return;
	}
	hex_encode(id, raw, sizeof(raw));
	snprintf(by, sizeof(by), "rest-v2 %s", req->who);
	LOGN(req->peer, "%s revokes token %s", req->who, id);
	http_query(req, V2_SQL_REVOKE, 3, params, v2_token_revoked);
}

/* ---- routing ---- */

typedef void (*v2_handler)(struct http_req *req, const char *const *params);

struct v2_route {
	enum http_method method;
	const char *pattern;	/* "*" stands for one path segment */
	v2_handler handle;
	int public;
};

static const struct v2_route v2_routes[] = {
	{ HTTP_GET, "/health", v2_health, 1 },
	{ HTTP_GET, "/banks", v2_list_banks, 0 },
	{ HTTP_GET, "/banks/*", v2_get_bank, 0 },
	{ HTTP_GET, "/banks/*/slots", v2_get_bank_slots, 0 },
	{ HTTP_GET, "/clients", v2_list_clients, 0 },
	{ HTTP_GET, "/clients/*", v2_get_client, 0 },
	{ HTTP_GET, "/clients/*/slots", v2_get_client_slots, 0 },
	{ HTTP_GET, "/slotmaps", v2_list_slotmaps, 0 },
	{ HTTP_POST, "/slotmaps", v2_create_slotmap, 0 },
	{ HTTP_POST, "/slotmaps/move", v2_move_slotmap, 0 },
	{ HTTP_GET, "/slotmaps/*/*", v2_get_slotmap, 0 },
	{ HTTP_DELETE, "/slotmaps/*/*", v2_delete_slotmap, 0 },
	{ HTTP_GET, "/events", v2_list_events, 0 },
	{ HTTP_GET, "/tokens", v2_list_tokens, 0 },
	{ HTTP_POST, "/tokens", v2_issue_token, 0 },
	{ HTTP_DELETE, "/tokens/*", v2_revoke_token, 0 },
};

#define V2_SEGMENTS_MAX	4
#define V2_ROUTES	(sizeof(v2_routes) / sizeof(v2_routes[0]))

/* Splits "/a/b/c" in place; -1 if too many segments. */
static int v2_split(char *path, char **seg)
{
	int n = 0;

	while (*path == '/') {
		if (n == V2_SEGMENTS_MAX)
			return -1;
		*path++ = '\0';
		seg[n++] = path;
		path += strcspn(path, "/");
	}
	return n;
}

static int v2_match(const char *pattern, char *const *seg, int n,
		    const char **params)
{
	char buf[64], *pseg[V2_SEGMENTS_MAX];
	int np = 0, m;

	snprintf(buf, sizeof(buf), "%s", pattern);
	m = v2_split(buf, pseg);
	if (m != n)
		return 0;
	for (int i = 0; i < n; i++) {
		if (!strcmp(pseg[i], "*"))
			params[np++] = seg[i];
		else if (strcmp(pseg[i], seg[i]))
			return 0;
	}
	return 1;
}

void rest_v2_handle(struct http_req *req)
{
	char path[HTTP_PATH_MAX], *seg[V2_SEGMENTS_MAX], allow[64] = "";
	const char *params[V2_SEGMENTS_MAX];
	const struct v2_route *route = NULL;
	int n;

	snprintf(path, sizeof(path), "%s", req->path + strlen(REST_V2_PREFIX));
	n = v2_split(path, seg);
	for (size_t i = 0; n > 0 && i < V2_ROUTES; i++) {
		if (!v2_match(v2_routes[i].pattern, seg, n, params))
			continue;
		if (v2_routes[i].method == req->method) {
			route = &v2_routes[i];
			break;
		}
		snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow),
			 "%s%s", *allow ? ", " : "",
			 http_method_name(v2_routes[i].method));
	}
	if (!route && *allow) {
		http_add_header(req, "Allow", allow);
		http_reply_error(req, 405, "method_not_allowed",
				 "%s %s: use %s", http_method_name(req->method),
				 req->path, allow);
		return;
	}
	if (!route) {
		http_reply_error(req, 404, "not_found", "no such endpoint: %s",
				 req->path);
		return;
	}
	if (!route->public && v2_authorize(req))
		return;
	route->handle(req, params);
}
