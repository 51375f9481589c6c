/*
 * http: the HTTP listener of remsim-server, one libwebsockets vhost (port
 * 9997 by default) in the server's event loop. Requests are routed by path
 * prefix to a handler (REST v1, REST v2; later the feed, /metrics and the
 * dashboard). A request lives in a struct http_req that outlasts its
 * connection, so a handler may answer later, from a database callback.
 */
#ifndef REMSIM_HTTP_H
#define REMSIM_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

struct server;

#define HTTP_PATH_MAX		512
#define HTTP_AUTH_MAX		1024	/* Authorization header */
#define HTTP_ARGS_MAX		16	/* query arguments kept */
#define HTTP_BODY_MAX		(64 * 1024)	/* larger bodies: 413 */
#define HTTP_SCRATCH_MAX	512

enum http_method {
	HTTP_OTHER = 0,		/* a method we do not serve */
	HTTP_GET,
	HTTP_POST,
	HTTP_PUT,
	HTTP_PATCH,
	HTTP_DELETE,
	HTTP_OPTIONS,
	HTTP_HEAD,
};

/* How refusals look: a JSON error object, or only the status (osmo). */
enum http_error_style {
	HTTP_ERRORS_JSON,
	HTTP_ERRORS_EMPTY,
};

struct http_query_arg {
	const char *name;
	const char *value;
};

struct http_req {
	struct server *srv;
	enum http_method method;
	char path[HTTP_PATH_MAX];	/* decoded, no query, no final '/' */
	char content_type[128];		/* "" if none */
	char authorization[HTTP_AUTH_MAX];	/* "" if none or too long */
	int authorization_too_long;
	char peer[64];			/* "192.0.2.1:40", "[::1]:40" */
	int peer_loopback;		/* 127.0.0.0/8 or ::1 */
	struct http_query_arg args[HTTP_ARGS_MAX];
	int nargs;
	int args_overflow;		/* more than HTTP_ARGS_MAX */
	char *body;			/* NUL-terminated, body_len bytes */
	size_t body_len;
	enum http_error_style error_style;
	/* for the handler, kept across its database queries, wiped after */
	char who[64];			/* who asks, for logs and events */
	unsigned char scratch[HTTP_SCRATCH_MAX];
};

/* A route's handler answers with http_reply*() now or from http_query(). */
typedef void (*http_handler)(struct http_req *req);

int http_start(struct server *srv);
/* After the event loop has ended: frees requests still waiting. */
void http_free(struct server *srv);

const char *http_method_name(enum http_method m);
/* Decimal digits only, no sign or space, value <= max: 0, else -1. */
int http_parse_uint(const char *s, uint64_t max, uint64_t *out);
/* The value of query argument name, or NULL if absent. */
const char *http_arg(const struct http_req *req, const char *name);
/* The first query argument not in the NULL-terminated list, or NULL. */
const char *http_arg_unknown(const struct http_req *req,
			     const char *const *allowed);

/*
 * Answers. Every request gets exactly one; later calls are ignored.
 * content_type NULL: no Content-Type header (osmo-remsim's empty answers).
 */
void http_reply(struct http_req *req, int status, const char *content_type,
		const void *body, size_t len);
void http_reply_empty(struct http_req *req, int status);
/* Compact JSON; takes the reference to j. */
void http_reply_json(struct http_req *req, int status, json_t *j);
/*
 * A refusal: logged with the reason (notice; error for 5xx), answered as
 * {"error":{"code":...,"message":...}} or, in HTTP_ERRORS_EMPTY style,
 * with the status only.
 */
void http_reply_error(struct http_req *req, int status, const char *code,
		      const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* An extra response header ("WWW-Authenticate", "Bearer"); before reply. */
void http_add_header(struct http_req *req, const char *name,
		     const char *value);

/*
 * Runs a parameterised query for the request; cb gets its result (never
 * NULL: a lost connection is answered 503 by http.c). cb must answer or
 * start another query. If the database is down, answers 503 at once.
 * Returns 0, or -1 when it answered 503.
 */
typedef void (*http_query_cb)(struct http_req *req, const PGresult *res);
int http_query(struct http_req *req, const char *sql, int nparams,
	       const char *const *params, http_query_cb cb);

#endif
