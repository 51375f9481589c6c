/*
 * rest_v2_admin: /api/v2/events (the audit log, newest or since an id)
 * and /api/v2/tokens (issue, list, revoke; secrets are shown only once).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hex.h"
#include "log.h"
#include "rest.h"
#include "rest_v2.h"
#include "server.h"

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
void v2_list_events(struct http_req *req, const char *const *p)
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

void v2_issue_token(struct http_req *req, const char *const *p)
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
void v2_list_tokens(struct http_req *req, const char *const *p)
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
void v2_revoke_token(struct http_req *req, const char *const *p)
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
