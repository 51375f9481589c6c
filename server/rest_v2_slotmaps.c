/*
 * rest_v2_slotmaps: /api/v2/slotmaps: list with filters and pages, get,
 * create, delete and move. Writes are single SQL statements with their
 * audit event; the control plane acts on the NOTIFY they cause.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rest.h"
#include "rest_v2.h"
#include "server.h"

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

void v2_list_slotmaps(struct http_req *req, const char *const *p)
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

void v2_get_slotmap(struct http_req *req, const char *const *p)
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

void v2_create_slotmap(struct http_req *req, const char *const *p)
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

void v2_delete_slotmap(struct http_req *req, const char *const *p)
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
void v2_move_slotmap(struct http_req *req, const char *const *p)
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
