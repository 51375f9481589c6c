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
#include "rest_v2.h"
#include "server.h"

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
int v2_path_id(struct http_req *req, const char *s, const char *what,
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
int v2_args(struct http_req *req, const char *const *allowed)
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
int v2_arg_uint(struct http_req *req, const char *name, uint64_t max,
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


int v2_page(struct http_req *req, struct v2_page *pg)
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
json_t *v2_body(struct http_req *req)
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
int v2_field_uint(struct http_req *req, const json_t *obj,
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
int v2_body_slot(struct http_req *req, const json_t *body,
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

int v2_db_error(struct http_req *req, const PGresult *res)
{
	return rest_db_error(req, res, 409);
}

/* A column as JSON: 'i' integer, 'b' boolean, 's' text, 'j' JSON text. */
json_t *pgv(const PGresult *res, int row, int col, char kind)
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

int pgi(const PGresult *res, int row, int col)
{
	return atoi(PQgetvalue(res, row, col));
}

/* {"limit","offset","total","next_offset"} of a page of total rows. */
void v2_page_info(json_t *o, const struct v2_page *pg, long long total)
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

int v2_bank_online(struct server *srv, int bank_id)
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
const char *v2_map_state(struct server *srv, int bank_id, int bank_slot,
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
json_t *v2_slotmap(struct server *srv, const PGresult *res, int r,
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
