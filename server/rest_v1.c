/*
 * rest_v1: /api/backend/v1, osmo-remsim 1.0's REST interface as its tools
 * see it: the same paths, compact JSON with the same keys in the same
 * order, the same status codes and empty bodies. Where osmo-remsim's
 * behaviour is a bug that acts on or reports the wrong object we refuse or
 * stay silent instead; docs/api.md lists every such difference.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "control.h"
#include "log.h"
#include "idmap.h"
#include "rest.h"
#include "server.h"

#define V1_NOT_FOUND	"Resource not found"
#define V1_ID_MAX	65535	/* osmo-remsim reads ids as uint16 */

/* GET /slotmaps is the hot path: its JSON is kept until a mapping changes. */
static struct {
	int valid;
	uint64_t generation;
	char *json;
	size_t len, cap;
} v1_cache;

static void v1_not_found(struct http_req *req)
{
	http_reply(req, 404, "text/plain; charset=utf-8", V1_NOT_FOUND,
		   strlen(V1_NOT_FOUND));
}

/* --v1-access: loopback (default), any, off; an admin token admits too. */
static int v1_access_allowed(struct http_req *req)
{
	const char *policy = req->srv->cfg.v1_access ?
			     req->srv->cfg.v1_access : "loopback";
	struct token_claims claims;
	char why[160];

	if (!strcmp(policy, "off")) {
		http_reply_error(req, 403, "forbidden",
				 "the v1 API is switched off (--v1-access "
				 "off)");
		return 0;
	}
	if (!strcmp(policy, "any") || req->peer_loopback)
		return 1;
	if (rest_auth_admin(req, &claims, why, sizeof(why)) == REST_AUTH_OK)
		return 1;
	http_reply_error(req, 403, "forbidden", "v1 API from a non-loopback "
			 "address without an admin token (%s)", why);
	return 0;
}

/*
 * An id in the path. osmo-remsim reads anything non-numeric as 0 (so
 * DELETE /slotmaps/abc removed B0:0); we refuse it.
 */
static int v1_path_id(struct http_req *req, const char *s, uint64_t max,
		      uint64_t *id)
{
	if (http_parse_uint(s, max, id)) {
		http_reply_error(req, 400, "bad_request", "invalid id '%s'", s);
		return -1;
	}
	return 0;
}

/*
 * component_id: the identity with "type" renamed "type_", no hwModel
 * (osmo-remsim forgets to copy it) and the optional fields only when set.
 * It never changes while the agent is connected, so its text is rendered
 * once per connection and kept in the connection's memo: with 10,000
 * clients, GET /clients would otherwise spend ~100 ms in jansson.
 */
static const char *v1_component(const json_t *identity, char **memo)
{
	json_t *out;
	const char *key;
	json_t *val;

	if (*memo)
		return *memo;
	out = json_object();
	if (identity) {
		json_object_foreach((json_t *)identity, key, val) {
			int optional = strncmp(key, "hw", 2) == 0 ||
				       strcmp(key, "fwVersion") == 0;

			if (!strcmp(key, "hwModel") ||
			    (optional && json_is_string(val) &&
			     !json_string_length(val)))
				continue;
			json_object_set(out, strcmp(key, "type") ? key : "type_",
					val);
		}
	}
	*memo = json_dumps(out, JSON_COMPACT);
	json_decref(out);
	return *memo ? *memo : "{}";
}

/* A growing answer body; failed: out of memory (the answer is a 500). */
struct v1_buf {
	char *p;
	size_t len, cap;
	int failed;
};

static void v1_put(struct v1_buf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 4096;
		char *p;

		while (cap < b->len + n)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->failed = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void v1_puts(struct v1_buf *b, const char *s)
{
	v1_put(b, s, strlen(s));
}

static void v1_put_uint(struct v1_buf *b, unsigned v)
{
	char d[12];
	size_t i = sizeof(d);

	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	v1_put(b, d + i, sizeof(d) - i);
}

static void v1_reply_buf(struct http_req *req, struct v1_buf *b)
{
	if (b->failed) {
		LOGE(req->peer, "out of memory rendering the answer");
		http_reply_empty(req, 500);
	} else {
		http_reply(req, 200, "application/json", b->p, b->len);
	}
	free(b->p);
}

/* A connected bankd or client as osmo-remsim lists it. */
struct v1_agent {
	uint32_t key;		/* list order */
	uint16_t id, n;		/* bank id, slots / client id, slot */
	const char *component;	/* rendered component_id */
};

static void v1_put_bank(struct v1_buf *b, const struct v1_agent *a)
{
	v1_puts(b, "{\"peer\":\"B");
	v1_put_uint(b, a->id);
	v1_puts(b, "\",\"state\":\"CONNECTED_BANKD\",\"component_id\":");
	v1_puts(b, a->component);
	v1_puts(b, ",\"bankId\":");
	v1_put_uint(b, a->id);
	v1_puts(b, ",\"numberOfSlots\":");
	v1_put_uint(b, a->n);
	v1_puts(b, "}");
}

static void v1_put_client(struct v1_buf *b, const struct v1_agent *a)
{
	v1_puts(b, "{\"peer\":\"C");
	v1_put_uint(b, a->id);
	v1_puts(b, ":");
	v1_put_uint(b, a->n);
	v1_puts(b, "\",\"state\":\"CONNECTED_CLIENT\",\"component_id\":");
	v1_puts(b, a->component);
	v1_puts(b, "}");
}

/* The agents of a list answer, collected before they are put in order. */
struct v1_list {
	struct v1_agent *items;
	size_t n, cap;
	int failed;
};

static void v1_list_add(struct v1_list *l, const struct v1_agent *a)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct v1_agent *items = realloc(l->items, cap * sizeof(*items));

		if (!items) {
			l->failed = 1;
			return;
		}
		l->items = items;
		l->cap = cap;
	}
	l->items[l->n++] = *a;
}

static int v1_agent_cmp(const void *a, const void *b)
{
	const struct v1_agent *x = a, *y = b;

	return x->key < y->key ? -1 : x->key > y->key;
}

/*
 * Answers {"<name>":[...]} with the agents in key order (idmap order is
 * arbitrary) and frees the list.
 */
static void v1_list_reply(struct http_req *req, struct v1_list *l,
			  const char *name,
			  void (*put)(struct v1_buf *, const struct v1_agent *))
{
	struct v1_buf b = { .failed = l->failed };

	if (l->n)
		qsort(l->items, l->n, sizeof(*l->items), v1_agent_cmp);
	v1_puts(&b, "{\"");
	v1_puts(&b, name);
	v1_puts(&b, "\":[");
	for (size_t i = 0; i < l->n; i++) {
		if (i)
			v1_put(&b, ",", 1);
		put(&b, &l->items[i]);
	}
	v1_puts(&b, "]}");
	free(l->items);
	v1_reply_buf(req, &b);
}

static void v1_bank_agent(const struct control_bankd_info *bi,
			  struct v1_agent *a)
{
	*a = (struct v1_agent){ bi->bank_id, bi->bank_id, bi->num_slots,
				v1_component(bi->identity, bi->memo) };
}

static void v1_collect_bank(const struct control_bankd_info *bi, void *arg)
{
	struct v1_agent a;

	v1_bank_agent(bi, &a);
	v1_list_add(arg, &a);
}

static void v1_get_banks(struct http_req *req)
{
	struct v1_list l = { 0 };

	control_foreach_bankd(req->srv, v1_collect_bank, &l);
	v1_list_reply(req, &l, "banks", v1_put_bank);
}

static void v1_get_bank(struct http_req *req, const char *id_text)
{
	struct control_bankd_info bi;
	struct v1_buf b = { 0 };
	struct v1_agent a;
	uint64_t id;

	if (v1_path_id(req, id_text, V1_ID_MAX, &id))
		return;
	/* osmo-remsim: 200 with an empty body for a bank not connected */
	if (id > RSPRO_MAX_ID ||
	    control_find_bankd(req->srv, (uint16_t)id, &bi)) {
		http_reply_empty(req, 200);
		return;
	}
	v1_bank_agent(&bi, &a);
	v1_put_bank(&b, &a);
	v1_reply_buf(req, &b);
}

/* ---- clients ---- */

static void v1_collect_client(const struct control_client_info *c, void *arg)
{
	struct v1_agent a = { slot_key(c->slot.client_id, c->slot.slot_nr),
			      c->slot.client_id, c->slot.slot_nr,
			      v1_component(c->identity, c->memo) };

	v1_list_add(arg, &a);
}

static void v1_get_clients(struct http_req *req)
{
	struct v1_list l = { 0 };

	control_foreach_client(req->srv, v1_collect_client, &l);
	v1_list_reply(req, &l, "clients", v1_put_client);
}

/*
 * osmo-remsim 1.0 looks clients up by a field that is always 0: every id
 * answers 200 with an empty body, except 0, which shows whichever client
 * connected first. We keep the empty answer and leave out the wrong client.
 */
static void v1_get_client(struct http_req *req, const char *id_text)
{
	uint64_t id;

	if (v1_path_id(req, id_text, V1_ID_MAX, &id))
		return;
	http_reply_empty(req, 200);
}

/* ---- slot mappings ---- */

static int v1_render_slotmaps(struct server *srv)
{
	size_t n, need, used;
	struct control_map_info *maps = control_list_maps(srv, &n);
	static const char head[] = "{\"slotmaps\":[", tail[] = "]}";

	if (!maps)
		return -1;
	/* each entry is at most ~120 bytes */
	need = sizeof(head) + sizeof(tail) + n * 128;
	if (need > v1_cache.cap) {
		char *p = realloc(v1_cache.json, need);

		if (!p) {
			free(maps);
			return -1;
		}
		v1_cache.json = p;
		v1_cache.cap = need;
	}
	memcpy(v1_cache.json, head, sizeof(head) - 1);
	used = sizeof(head) - 1;
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf(v1_cache.json + used,
			v1_cache.cap - used,
			"%s{\"bank\":{\"bankId\":%u,\"slotNr\":%u},"
			"\"client\":{\"clientId\":%u,\"slotNr\":%u},"
			"\"state\":\"%s\"}", i ? "," : "",
			maps[i].bank.bank_id, maps[i].bank.slot_nr,
			maps[i].client.client_id, maps[i].client.slot_nr,
			slotmap_state_name(maps[i].state));
	memcpy(v1_cache.json + used, tail, sizeof(tail) - 1);
	v1_cache.len = used + sizeof(tail) - 1;
	free(maps);
	return 0;
}

static void v1_get_slotmaps(struct http_req *req)
{
	uint64_t gen = control_maps_generation(req->srv);

	if (!v1_cache.valid || v1_cache.generation != gen) {
		if (v1_render_slotmaps(req->srv)) {
			http_reply_error(req, 500, "internal_error",
					 "out of memory");
			return;
		}
		v1_cache.valid = 1;
		v1_cache.generation = gen;
	}
	http_reply(req, 200, "application/json", v1_cache.json, v1_cache.len);
}

/* Constraint violations are the caller's fault: 400, as osmo-remsim. */
static void v1_write_done(struct http_req *req, const PGresult *res,
			  int ok_status, int none_status)
{
	if (!rest_db_error(req, res, 400))
		http_reply_empty(req, PQntuples(res) ? ok_status : none_status);
}

static void v1_post_done(struct http_req *req, const PGresult *res)
{
	v1_write_done(req, res, 201, 500);
}

static void v1_delete_done(struct http_req *req, const PGresult *res)
{
	v1_write_done(req, res, 200, 404);
}

static void v1_reset_done(struct http_req *req, const PGresult *res)
{
	v1_write_done(req, res, 200, 200);
}

/* body.<obj>.<key>: a JSON integer 0..1023 (osmo truncated to 16 bits). */
static int v1_body_id(struct http_req *req, json_t *body, const char *obj,
		      const char *key, char out[8])
{
	json_t *v = json_object_get(json_object_get(body, obj), key);
	json_int_t i;

	if (!json_is_integer(v)) {
		http_reply_error(req, 400, "bad_request", "%s.%s: %s", obj,
				 key, v ? "not an integer" : "missing");
		return -1;
	}
	i = json_integer_value(v);
	if (i < 0 || i > RSPRO_MAX_ID) {
		http_reply_error(req, 400, "bad_request",
				 "%s.%s: %lld not in 0..%d", obj, key,
				 (long long)i, RSPRO_MAX_ID);
		return -1;
	}
	snprintf(out, 8, "%d", (int)i);
	return 0;
}

static void v1_post_slotmap(struct http_req *req)
{
	char b[8], bs[8], c[8], cs[8], actor[96];
	const char *params[6] = { b, bs, c, cs, "rest-v1", actor };
	json_error_t err;
	json_t *body;
	int bad;

	if (!strcasestr(req->content_type, "application/json")) {
		http_reply_error(req, 400, "bad_request", "Content-Type '%s' "
				 "is not application/json", req->content_type);
		return;
	}
	body = json_loadb(req->body ? req->body : "", req->body_len, 0, &err);
	if (!body) {
		http_reply_error(req, 400, "bad_request", "invalid JSON: %s",
				 err.text);
		return;
	}
	bad = v1_body_id(req, body, "bank", "bankId", b) ||
	      v1_body_id(req, body, "bank", "slotNr", bs) ||
	      v1_body_id(req, body, "client", "clientId", c) ||
	      v1_body_id(req, body, "client", "slotNr", cs);
	json_decref(body);
	if (bad)
		return;
	snprintf(actor, sizeof(actor), "rest-v1 %s", req->peer);
	http_query(req, REST_SQL_SLOTMAP_INSERT, 6, params, v1_post_done);
}

static void v1_delete_slotmap(struct http_req *req, const char *id_text)
{
	char b[16], s[16], actor[96];
	const char *params[3] = { b, s, actor };
	uint64_t id;

	/* osmo-remsim 1.1 refuses ids beyond 32 bits; 1.0 wrapped them */
	if (v1_path_id(req, id_text, UINT32_MAX, &id))
		return;
	snprintf(b, sizeof(b), "%u", (unsigned)(id >> 16));
	snprintf(s, sizeof(s), "%u", (unsigned)(id & 0xffff));
	snprintf(actor, sizeof(actor), "rest-v1 %s", req->peer);
	http_query(req, REST_SQL_SLOTMAP_DELETE, 3, params, v1_delete_done);
}

static void v1_global_reset(struct http_req *req)
{
	char actor[96];
	const char *params[1] = { actor };

	snprintf(actor, sizeof(actor), "rest-v1 %s", req->peer);
	http_query(req,
		   "WITH m AS (DELETE FROM slotmaps RETURNING 1), "
		   "e AS (INSERT INTO events (kind, actor, message) "
		   "SELECT 'slotmap.reset', $1::text, format('global reset: "
		   "%s slot mappings deleted', count(*)) FROM m) "
		   "SELECT count(*) FROM m", 1, params, v1_reset_done);
}

/* ---- routing ---- */

void rest_v1_handle(struct http_req *req)
{
	const char *rest = req->path + strlen(REST_V1_PREFIX);
	char seg[3][64];
	int n = 0;

	if (!v1_access_allowed(req))
		return;
	/* "/banks/1" -> "banks", "1" */
	while (*rest == '/' && n < 3) {
		size_t len = strcspn(rest + 1, "/");

		if (len >= sizeof(seg[0]))
			break;
		memcpy(seg[n], rest + 1, len);
		seg[n++][len] = '\0';
		rest += 1 + len;
	}
	if (*rest || n == 0 || n > 2) {
		v1_not_found(req);
		return;
	}
	if (req->method == HTTP_GET && n == 1 && !strcmp(seg[0], "banks"))
		v1_get_banks(req);
	else if (req->method == HTTP_GET && n == 2 && !strcmp(seg[0], "banks"))
		v1_get_bank(req, seg[1]);
	else if (req->method == HTTP_GET && n == 1 &&
		 !strcmp(seg[0], "clients"))
		v1_get_clients(req);
	else if (req->method == HTTP_GET && n == 2 &&
		 !strcmp(seg[0], "clients"))
		v1_get_client(req, seg[1]);
	else if (req->method == HTTP_GET && n == 1 &&
		 !strcmp(seg[0], "slotmaps"))
		v1_get_slotmaps(req);
	else if (req->method == HTTP_POST && n == 1 &&
		 !strcmp(seg[0], "slotmaps"))
		v1_post_slotmap(req);
	else if (req->method == HTTP_DELETE && n == 2 &&
		 !strcmp(seg[0], "slotmaps"))
		v1_delete_slotmap(req, seg[1]);
	else if (req->method == HTTP_POST && n == 1 &&
		 !strcmp(seg[0], "global-reset"))
		v1_global_reset(req);
	else if (req->method == HTTP_GET && n == 1 &&
		 !strcmp(seg[0], "restart-counter"))
		http_reply_empty(req, 200);	/* osmo-remsim's stub */
	else
		v1_not_found(req);
}

void rest_v1_free(void)
{
	free(v1_cache.json);
	memset(&v1_cache, 0, sizeof(v1_cache));
}
