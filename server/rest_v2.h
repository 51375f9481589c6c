/*
 * rest_v2.h: what the parts of /api/v2 share (private to server/rest_v2*.c):
 * request input checks, database result helpers, live state lookups and
 * the handlers the router in rest_v2.c calls.
 */
#ifndef REMSIM_REST_V2_H
#define REMSIM_REST_V2_H

#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "http.h"

struct server;

#define V2_LIMIT_DEFAULT	100
#define V2_LIMIT_MAX		1000
#define V2_OFFSET_MAX		1000000000
#define V2_TTL_DEFAULT		(30 * 86400)
#define V2_TTL_MAX		(10 * 365 * 86400)
#define V2_COMMENT_MAX		200

struct v2_page {
	char limit[24], offset[24];
	uint64_t limit_n, offset_n;
};

/*
 * shared helpers (rest_v2.c): request input checks (each answers the
 * request itself when it fails), database results, live state
 */
int v2_path_id(struct http_req *req, const char *s, const char *what,
	       char out[8]);
int v2_args(struct http_req *req, const char *const *allowed);
int v2_arg_uint(struct http_req *req, const char *name, uint64_t max,
		char buf[24], const char **out);
int v2_page(struct http_req *req, struct v2_page *pg);
json_t *v2_body(struct http_req *req);
int v2_field_uint(struct http_req *req, const json_t *obj,
		  const char *where, const char *key, json_int_t max,
		  json_int_t *out);
int v2_body_slot(struct http_req *req, const json_t *body,
		 const char *side, const char *id_key, char id[8],
		 char slot[8]);
int v2_db_error(struct http_req *req, const PGresult *res);
json_t *pgv(const PGresult *res, int row, int col, char kind);
int pgi(const PGresult *res, int row, int col);
void v2_page_info(json_t *o, const struct v2_page *pg, long long total);
int v2_bank_online(struct server *srv, int bank_id);
const char *v2_map_state(struct server *srv, int bank_id, int bank_slot,
			 int client_id, int client_slot,
			 const char *stored);
json_t *v2_slotmap(struct server *srv, const PGresult *res, int r,
		   int c);

/* banks and clients (rest_v2_inventory.c) */
void v2_list_banks(struct http_req *req, const char *const *p);
void v2_get_bank(struct http_req *req, const char *const *p);
void v2_get_bank_slots(struct http_req *req, const char *const *p);
void v2_list_clients(struct http_req *req, const char *const *p);
void v2_get_client(struct http_req *req, const char *const *p);
void v2_get_client_slots(struct http_req *req, const char *const *p);

/* slot mappings (rest_v2_slotmaps.c) */
void v2_list_slotmaps(struct http_req *req, const char *const *p);
void v2_get_slotmap(struct http_req *req, const char *const *p);
void v2_create_slotmap(struct http_req *req, const char *const *p);
void v2_delete_slotmap(struct http_req *req, const char *const *p);
void v2_move_slotmap(struct http_req *req, const char *const *p);

/* events and tokens (rest_v2_admin.c) */
void v2_list_events(struct http_req *req, const char *const *p);
void v2_issue_token(struct http_req *req, const char *const *p);
void v2_list_tokens(struct http_req *req, const char *const *p);
void v2_revoke_token(struct http_req *req, const char *const *p);

#endif
