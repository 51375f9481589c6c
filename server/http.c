/*
 * http: the HTTP vhost. lws hands a request over in pieces (headers in
 * LWS_CALLBACK_HTTP, then the body in chunks); what handlers need is copied
 * into a pooled exchange (request + response), routed by path prefix, and
 * answered with the headers and the first part of the body in one write,
 * the rest as the socket takes it. An exchange waiting for the database
 * outlives its connection: the connection's end clears its wsi and the
 * query's callback then frees it instead of answering.
 */
#include "http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libwebsockets.h>

#include "db.h"
#include "feed.h"
#include "log.h"
#include "metrics.h"
#include "rest.h"
#include "server.h"
#include "static.h"

#define HTTP_WRITE_CHUNK	(128 * 1024)	/* body bytes per write */
#define HTTP_HEADERS_MAX	1024
/* room before an answer's body: lws's LWS_PRE, then the headers */
#define HTTP_OUT_HEAD		(LWS_PRE + HTTP_HEADERS_MAX)
#define HTTP_EXTRA_MAX		512	/* extra response headers */
/* bodies announced larger than this are refused at once, then closed */
#define HTTP_DISCARD_MAX	(8 * 1024 * 1024)
#define HTTP_POOL_MAX		64
#define HTTP_POOL_BUF_MAX	(256 * 1024)	/* larger buffers: freed */
#define HTTP_QUERY_TIMEOUT_S	30

/* Where an exchange is; the names appear in debug logs. */
enum exchange_state {
	EX_IDLE,	/* in the pool */
	EX_BODY,	/* reading the request body */
	EX_HANDLING,	/* a handler runs and has not answered yet */
	EX_WAIT_DB,	/* a query for it is out */
	EX_REPLYING,	/* answer ready, being written */
};

static const char *const exchange_state_names[] = {
	[EX_IDLE] = "IDLE",
	[EX_BODY] = "BODY",
	[EX_HANDLING] = "HANDLING",
	[EX_WAIT_DB] = "WAIT_DB",
	[EX_REPLYING] = "REPLYING",
};

struct http;

struct http_exchange {
	struct http_req req;		/* first member: handlers see it */
	struct http *http;
	struct lws *wsi;		/* NULL once the connection is gone */
	enum exchange_state state;
	struct http_exchange *prev, *next;	/* active list or pool */
	struct timespec started;
	const struct http_route *route;
	/* request body */
	size_t content_length;
	size_t body_got;
	size_t body_cap;
	int body_discard;		/* too large: read, drop, then 413 */
	char argbuf[1024];
	/* response */
	int status;
	const char *ctype;
	char extra[HTTP_EXTRA_MAX];	/* "Name: value\r\n" lines */
	size_t extra_len;
	char *out;			/* HTTP_OUT_HEAD, then the body */
	size_t out_len, out_cap, out_sent;	/* of the body */
	int headers_sent;
	int close_after;		/* close instead of keep-alive */
	http_query_cb query_cb;
};

struct http {
	struct server *srv;
	struct lws_vhost *vh;
	struct http_exchange *active;	/* every exchange not pooled */
	struct http_exchange *pool;
	unsigned pooled;
	time_t date_at;
	char date[40];
};

/* lws per-session data: the exchange of the request in progress. */
struct http_session {
	struct http_exchange *x;
};

struct http_route {
	const char *prefix;	/* the path itself or a parent of it */
	http_handler handle;
	enum http_error_style errors;
};

static void http_metrics(struct http_req *req);
static void http_static(struct http_exchange *x);

/* /feed upgrades to a WebSocket (feed.c); any other path: static.c. */
static const struct http_route http_routes[] = {
	{ REST_V1_PREFIX, rest_v1_handle, HTTP_ERRORS_EMPTY },
	{ REST_V2_PREFIX, rest_v2_handle, HTTP_ERRORS_JSON },
	{ "/metrics", http_metrics, HTTP_ERRORS_JSON },
};

static const char *const method_names[] = {
	[HTTP_OTHER] = "?", [HTTP_GET] = "GET", [HTTP_POST] = "POST",
	[HTTP_PUT] = "PUT", [HTTP_PATCH] = "PATCH", [HTTP_DELETE] = "DELETE",
	[HTTP_OPTIONS] = "OPTIONS", [HTTP_HEAD] = "HEAD",
};

const char *http_method_name(enum http_method m)
{
	return method_names[m];
}

int http_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		uint64_t d = (uint64_t)(*s - '0');

		if (*s < '0' || *s > '9' || d > max || v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static struct http_exchange *exchange_of(struct http_req *req)
{
	return (struct http_exchange *)req;
}

static void exchange_set_state(struct http_exchange *x, enum exchange_state st)
{
	LOGD(x->req.peer, "%s %s: %s -> %s", method_names[x->req.method],
	     x->req.path, exchange_state_names[x->state],
	     exchange_state_names[st]);
	x->state = st;
}

/* Control characters from the network never reach a log line as such. */
static void http_sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

/* ---- exchanges: pooled, so a request costs no allocation ---- */

static void list_remove(struct http_exchange **head, struct http_exchange *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		*head = x->next;
	if (x->next)
		x->next->prev = x->prev;
	x->prev = x->next = NULL;
}

static void list_push(struct http_exchange **head, struct http_exchange *x)
{
	x->prev = NULL;
	x->next = *head;
	if (*head)
		(*head)->prev = x;
	*head = x;
}

static struct http_exchange *exchange_get(struct http *h, struct lws *wsi)
{
	struct http_exchange *x = h->pool;

	if (x) {
		list_remove(&h->pool, x);
		h->pooled--;
	} else {
		x = calloc(1, sizeof(*x));
		if (!x)
			return NULL;
		x->http = h;
	}
	x->req.srv = h->srv;
	x->wsi = wsi;
	clock_gettime(CLOCK_MONOTONIC, &x->started);
	list_push(&h->active, x);
	return x;
}

static void exchange_destroy(struct http_exchange *x)
{
	free(x->req.body);
	free(x->out);
	free(x);
}

/* Back to the pool, everything the request carried wiped. */
static void exchange_put(struct http_exchange *x)
{
	struct http *h = x->http;
	char *body = x->req.body, *out = x->out;
	size_t body_cap = x->body_cap, out_cap = x->out_cap;

	list_remove(&h->active, x);
	if (h->pooled >= HTTP_POOL_MAX) {
		exchange_destroy(x);
		return;
	}
	if (body_cap > HTTP_POOL_BUF_MAX) {
		free(body);
		body = NULL;
		body_cap = 0;
	}
	if (out_cap > HTTP_POOL_BUF_MAX) {
		free(out);
		out = NULL;
		out_cap = 0;
	}
	/* tokens pass through bodies, scratch and answers */
	if (body)
		explicit_bzero(body, x->body_got < body_cap ? x->body_got :
			       body_cap);
	if (out)
		explicit_bzero(out + HTTP_OUT_HEAD, x->out_len);
	explicit_bzero(x, sizeof(*x));
	x->http = h;
	x->req.body = body;
	x->body_cap = body_cap;
	x->out = out;
	x->out_cap = out_cap;
	list_push(&h->pool, x);
	h->pooled++;
}

/* ---- the request ---- */

static enum http_method request_method(struct lws *wsi,
				       enum lws_token_indexes *uri)
{
	static const struct {
		enum lws_token_indexes token;
		enum http_method method;
	} tokens[] = {
		{ WSI_TOKEN_GET_URI, HTTP_GET },
		{ WSI_TOKEN_POST_URI, HTTP_POST },
		{ WSI_TOKEN_DELETE_URI, HTTP_DELETE },
		{ WSI_TOKEN_PUT_URI, HTTP_PUT },
		{ WSI_TOKEN_PATCH_URI, HTTP_PATCH },
		{ WSI_TOKEN_OPTIONS_URI, HTTP_OPTIONS },
		{ WSI_TOKEN_HEAD_URI, HTTP_HEAD },
	};

	for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
		if (lws_hdr_total_length(wsi, tokens[i].token) > 0) {
			*uri = tokens[i].token;
			return tokens[i].method;
		}
	}
	return HTTP_OTHER;
}

/* "192.0.2.1:4000" or "[2001:db8::1]:4000"; IPv4 peers of the v6 socket too. */
static void request_peer(struct lws *wsi, struct http_req *req)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ip[INET6_ADDRSTRLEN] = "?";
	int fd = lws_get_socket_fd(wsi), port = 0, v6 = 0;

	req->peer_loopback = 0;
	if (fd >= 0 && !getpeername(fd, (struct sockaddr *)&ss, &sl)) {
		if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *s6 = (void *)&ss;
			const uint8_t *a = s6->sin6_addr.s6_addr;

			port = ntohs(s6->sin6_port);
			if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
				inet_ntop(AF_INET, a + 12, ip, sizeof(ip));
				req->peer_loopback = a[12] == 127;
			} else {
				inet_ntop(AF_INET6, a, ip, sizeof(ip));
				req->peer_loopback =
					IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
				v6 = 1;
			}
		} else if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *s4 = (void *)&ss;

			port = ntohs(s4->sin_port);
			inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
			req->peer_loopback =
				(ntohl(s4->sin_addr.s_addr) >> 24) == 127;
		}
	}
	snprintf(req->peer, sizeof(req->peer), v6 ? "[%s]:%d" : "%s:%d", ip,
		 port);
}

/* lws has split and decoded the query: keep up to HTTP_ARGS_MAX of them. */
static void request_args(struct http_exchange *x, struct lws *wsi)
{
	struct http_req *req = &x->req;
	size_t used = 0;

	for (int i = 0;; i++) {
		char *arg = x->argbuf + used, *eq;
		int n = lws_hdr_copy_fragment(wsi, arg,
					      (int)(sizeof(x->argbuf) - used),
					      WSI_TOKEN_HTTP_URI_ARGS, i);

		if (n < 0) {
			/* no such fragment, or no room left for it */
			if (lws_hdr_fragment_length(wsi,
					WSI_TOKEN_HTTP_URI_ARGS, i) > 0)
				req->args_overflow = 1;
			break;
		}
		if (req->nargs == HTTP_ARGS_MAX) {
			req->args_overflow = 1;
			break;
		}
		used += (size_t)n + 1;
		http_sanitize(arg);
		eq = strchr(arg, '=');
		if (eq)
			*eq++ = '\0';
		req->args[req->nargs].name = arg;
		req->args[req->nargs].value = eq ? eq : "";
		req->nargs++;
	}
}

const char *http_arg(const struct http_req *req, const char *name)
{
	for (int i = 0; i < req->nargs; i++)
		if (!strcmp(req->args[i].name, name))
			return req->args[i].value;
	return NULL;
}

const char *http_arg_unknown(const struct http_req *req,
			     const char *const *allowed)
{
	for (int i = 0; i < req->nargs; i++) {
		const char *const *a;

		for (a = allowed; *a && strcmp(*a, req->args[i].name); a++)
			;
		if (!*a)
			return req->args[i].name;
	}
	return NULL;
}

static int header_copy(struct lws *wsi, enum lws_token_indexes token,
		       char *buf, size_t len)
{
	buf[0] = '\0';
	if (lws_hdr_total_length(wsi, token) <= 0)
		return 0;
	if (lws_hdr_copy(wsi, buf, (int)len, token) < 0) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}

static const struct http_route *route_find(const char *path)
{
	for (size_t i = 0; i < sizeof(http_routes) / sizeof(http_routes[0]);
	     i++) {
		size_t n = strlen(http_routes[i].prefix);

		if (!strncmp(path, http_routes[i].prefix, n) &&
		    (path[n] == '\0' || path[n] == '/'))
			return &http_routes[i];
	}
	return NULL;
}

/* ---- answers ---- */

/* Room for a body of len bytes after HTTP_OUT_HEAD. */
static int out_reserve(struct http_exchange *x, size_t len)
{
	char *p;
	size_t cap = x->out_cap ? x->out_cap : 4096;

	len += HTTP_OUT_HEAD;
	if (x->out && len <= x->out_cap)
		return 0;
	while (cap < len)
		cap *= 2;
	p = realloc(x->out, cap);
	if (!p)
		return -1;
	x->out = p;
	x->out_cap = cap;
	return 0;
}

static int exchange_may_reply(struct http_exchange *x)
{
	if (x->state == EX_REPLYING) {
		LOGE(x->req.peer, "%s %s: second answer ignored",
		     method_names[x->req.method], x->req.path);
		return 0;
	}
	return 1;
}

void http_reply(struct http_req *req, int status, const char *content_type,
		const void *body, size_t len)
{
	struct http_exchange *x = exchange_of(req);

	if (!exchange_may_reply(x))
		return;
	if (out_reserve(x, len)) {
		LOGE(req->peer, "out of memory for a %zu byte answer", len);
		status = 500;
		content_type = NULL;
		len = 0;
	}
	if (len)
		memcpy(x->out + HTTP_OUT_HEAD, body, len);
	x->out_len = len;
	x->status = status;
	x->ctype = content_type;
	exchange_set_state(x, EX_REPLYING);
}

void http_reply_empty(struct http_req *req, int status)
{
	http_reply(req, status, NULL, NULL, 0);
}

void http_reply_json(struct http_req *req, int status, json_t *j)
{
	struct http_exchange *x = exchange_of(req);
	size_t n = j ? json_dumpb(j, NULL, 0, JSON_COMPACT) : 0;

	if (!exchange_may_reply(x)) {
		json_decref(j);
		return;
	}
	if (!n || out_reserve(x, n)) {
		json_decref(j);
		LOGE(req->peer, "cannot render a JSON answer");
		http_reply_empty(req, 500);
		return;
	}
	x->out_len = json_dumpb(j, x->out + HTTP_OUT_HEAD, n, JSON_COMPACT);
	json_decref(j);
	x->status = status;
	x->ctype = "application/json";
	exchange_set_state(x, EX_REPLYING);
}

void http_reply_error(struct http_req *req, int status, const char *code,
		      const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	http_sanitize(msg);
	log_msg(status >= 500 ? LOG_ERROR : LOG_NOTICE, req->peer,
		"%s %s refused: %d %s: %s", method_names[req->method],
		req->path, status, code, msg);
	if (req->error_style == HTTP_ERRORS_EMPTY) {
		http_reply_empty(req, status);
		return;
	}
	http_reply_json(req, status, json_pack("{s:{s:s,s:s}}", "error",
					       "code", code, "message", msg));
}

void http_add_header(struct http_req *req, const char *name,
		     const char *value)
{
	struct http_exchange *x = exchange_of(req);
	size_t room = sizeof(x->extra) - x->extra_len;
	int n = snprintf(x->extra + x->extra_len, room, "%s: %s\r\n", name,
			 value);

	if (n > 0 && (size_t)n < room)
		x->extra_len += (size_t)n;
	else
		x->extra[x->extra_len] = '\0';
}

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "";
	}
}

/* RFC 7231 date of now, rendered at most once a second. */
static const char *http_date(struct http *h)
{
	time_t now = time(NULL);
	struct tm tm;

	if (now != h->date_at && gmtime_r(&now, &tm)) {
		strftime(h->date, sizeof(h->date), "%a, %d %b %Y %H:%M:%S GMT",
			 &tm);
		h->date_at = now;
	}
	return h->date;
}

static int add_header(struct lws *wsi, const char *name, const char *value,
		      size_t len, unsigned char **p, unsigned char *end)
{
	return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
					   (const unsigned char *)value,
					   (int)len, p, end);
}

static int exchange_write_headers(struct http_exchange *x, unsigned char **p,
				  unsigned char *end)
{
	const char *date = http_date(x->http);
	char line[64], len[24];
	int n;

	/* our own status line: lws leaves the reason out for 201 and 204 */
	n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s", x->status,
		     status_text(x->status));
	if (add_header(x->wsi, NULL, line, (size_t)n, p, end) ||
	    add_header(x->wsi, "Date:", date, strlen(date), p, end))
		return -1;
	if (x->ctype && add_header(x->wsi, "Content-Type:", x->ctype,
				   strlen(x->ctype), p, end))
		return -1;
	/* 304: no Content-Length, it would have to be the 200's length */
	if (x->status != 204 && x->status != 304) {
		n = snprintf(len, sizeof(len), "%zu", x->out_len);
		if (add_header(x->wsi, "Content-Length:", len, (size_t)n, p,
			       end))
			return -1;
	}
	if (x->close_after && add_header(x->wsi, "Connection:", "close", 5, p,
					 end))
		return -1;
	if (x->extra_len) {
		if ((size_t)(end - *p) < x->extra_len)
			return -1;
		memcpy(*p, x->extra, x->extra_len);
		*p += x->extra_len;
	}
	return lws_finalize_http_header(x->wsi, p, end);
}

static void exchange_log(struct http_exchange *x)
{
	struct timespec now;
	double ms;

	metrics_http_status(x->status);
	if (log_get_level() < LOG_INFO)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (now.tv_sec - x->started.tv_sec) * 1e3 +
	     (now.tv_nsec - x->started.tv_nsec) / 1e6;
	LOGI(x->req.peer, "%s %s%s -> %d, %zu bytes, %.2f ms",
	     method_names[x->req.method], x->req.path,
	     x->req.nargs ? "?..." : "", x->status, x->out_len, ms);
}

/*
 * Writes the answer: headers with the first part of the body, then one
 * part per WRITEABLE callback, straight from the exchange's buffer (the
 * headers go into the room before the body). Returns what the lws callback
 * returns.
 */
static int exchange_write(struct http_session *s, struct http_exchange *x)
{
	unsigned char hdr[HTTP_HEADERS_MAX], *p = hdr;
	unsigned char *body = (unsigned char *)x->out + HTTP_OUT_HEAD;
	unsigned char *start = body + x->out_sent;
	struct lws *wsi = x->wsi;
	size_t n, hlen = 0;
	int close_after;

	if (!x->out) {
		LOGE(x->req.peer, "no memory for the answer: closing");
		return -1;
	}
	if (!x->headers_sent) {
		if (exchange_write_headers(x, &p, hdr + sizeof(hdr))) {
			LOGE(x->req.peer, "answer headers too long: closing");
			return -1;
		}
		hlen = (size_t)(p - hdr);
		start = body - hlen;
		memcpy(start, hdr, hlen);
		x->headers_sent = 1;
		/* HEAD: the headers GET would have, never a body */
		if (x->req.method == HTTP_HEAD)
			x->out_sent = x->out_len;
	}
	n = x->out_len - x->out_sent;
	if (n > HTTP_WRITE_CHUNK)
		n = HTTP_WRITE_CHUNK;
	x->out_sent += n;
	if (lws_write(wsi, start, hlen + n, x->out_sent == x->out_len ?
		      LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)(hlen + n)) {
		LOGN(x->req.peer, "write failed: closing");
		return -1;
	}
	if (x->out_sent < x->out_len) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	exchange_log(x);
	close_after = x->close_after;
	s->x = NULL;
	exchange_put(x);
	if (close_after)
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* After a handler ran: write now, or wait for its query. */
static int exchange_continue(struct http_session *s, struct http_exchange *x)
{
	if (x->state == EX_HANDLING) {
		LOGE(x->req.peer, "%s %s: handler gave no answer",
		     method_names[x->req.method], x->req.path);
		http_reply_error(&x->req, 500, "internal_error",
				 "no answer");
	}
	if (x->state == EX_WAIT_DB)
		return 0;
	return exchange_write(s, x);
}

static void exchange_dispatch(struct http_exchange *x)
{
	struct http_req *req = &x->req;

	exchange_set_state(x, EX_HANDLING);
	if (x->body_discard)
		http_reply_error(req, 413, "payload_too_large",
				 "request body of %zu bytes; at most %d",
				 x->content_length, HTTP_BODY_MAX);
	else if (!x->route)
		http_static(x);
	else
		x->route->handle(req);
}

/* Every path no route claims: the dashboard's files (static.c). */
static void http_static(struct http_exchange *x)
{
	char host[128], inm[256];
	struct static_headers h = { .host = host, .if_none_match = inm };

	if (header_copy(x->wsi, WSI_TOKEN_HOST, host, sizeof(host)))
		host[0] = '\0';
	if (header_copy(x->wsi, WSI_TOKEN_HTTP_IF_NONE_MATCH, inm, sizeof(inm)))
		inm[0] = '\0';
	static_serve(&x->req, &h);
}

/* Prometheus scrapes this; counters only, so no token. */
static void http_metrics(struct http_req *req)
{
	size_t len;
	char *text;

	if (strcmp(req->path, "/metrics")) {
		http_reply_error(req, 404, "not_found", "no such path");
		return;
	}
	if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
		http_add_header(req, "Allow", "GET");
		http_reply_error(req, 405, "method_not_allowed", "use GET");
		return;
	}
	text = metrics_render(req->srv, &len);
	if (!text) {
		http_reply_error(req, 500, "internal_error", "out of memory");
		return;
	}
	http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", text,
		   len);
	free(text);
}

/* ---- database queries on behalf of a request ---- */

static void http_query_done(struct db *db, const PGresult *res, void *arg)
{
	struct http_exchange *x = arg;
	http_query_cb cb = x->query_cb;

	x->query_cb = NULL;
	if (!x->wsi) {
		/* the client left while we waited */
		LOGI(x->req.peer, "%s %s: answer dropped, connection gone",
		     method_names[x->req.method], x->req.path);
		exchange_put(x);
		return;
	}
	exchange_set_state(x, EX_HANDLING);
	if (!res)
		http_reply_error(&x->req, 503, "database_unavailable",
				 "the database connection was lost");
	else
		cb(&x->req, res);
	if (x->state == EX_HANDLING) {
		LOGE(x->req.peer, "%s %s: query callback gave no answer",
		     method_names[x->req.method], x->req.path);
		http_reply_error(&x->req, 500, "internal_error", "no answer");
	}
	if (x->state == EX_REPLYING) {
		lws_set_timeout(x->wsi, NO_PENDING_TIMEOUT, 0);
		lws_callback_on_writable(x->wsi);
	}
}

int http_query(struct http_req *req, const char *sql, int nparams,
	       const char *const *params, http_query_cb cb)
{
	struct http_exchange *x = exchange_of(req);
	struct db *db = req->srv->db;

	if (!db || !db_is_up(db) ||
	    db_query(db, sql, nparams, params, http_query_done, x)) {
		http_reply_error(req, 503, "database_unavailable",
				 "the database is not available");
		return -1;
	}
	x->query_cb = cb;
	exchange_set_state(x, EX_WAIT_DB);
	/* a stuck database must not hold the connection for ever */
	if (x->wsi)
		lws_set_timeout(x->wsi, PENDING_TIMEOUT_HTTP_CONTENT,
				HTTP_QUERY_TIMEOUT_S);
	return 0;
}

/* ---- lws callbacks ---- */

/* Refuses before any handler: answered now, connection closed after. */
static int request_refuse(struct http_session *s, struct http_exchange *x,
			  int status, const char *code, const char *msg)
{
	x->close_after = 1;
	exchange_set_state(x, EX_HANDLING);
	http_reply_error(&x->req, status, code, "%s", msg);
	return exchange_write(s, x);
}

static int on_request(struct http *h, struct http_session *s,
		      struct lws *wsi)
{
	struct http_exchange *x = exchange_get(h, wsi);
	struct http_req *req;
	enum lws_token_indexes uri = WSI_TOKEN_GET_URI;
	char clen[24];
	uint64_t len = 0;
	size_t n;

	if (!x) {
		LOGE(NULL, "out of memory for an HTTP request: closing");
		return -1;
	}
	s->x = x;
	req = &x->req;
	request_peer(wsi, req);
	req->method = request_method(wsi, &uri);
	if (header_copy(wsi, uri, req->path, sizeof(req->path)))
		return request_refuse(s, x, 414, "uri_too_long",
				      "request path too long");
	http_sanitize(req->path);
	n = strlen(req->path);
	while (n > 1 && req->path[n - 1] == '/')
		req->path[--n] = '\0';
	x->route = route_find(req->path);
	req->error_style = x->route ? x->route->errors : HTTP_ERRORS_EMPTY;
	request_args(x, wsi);
	if (header_copy(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, req->content_type,
			sizeof(req->content_type)))
		strcpy(req->content_type, "?");
	http_sanitize(req->content_type);
	if (header_copy(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, req->authorization,
			sizeof(req->authorization)))
		req->authorization_too_long = 1;

	/* lws cannot read chunked bodies: ask for a Content-Length */
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0)
		return request_refuse(s, x, 411, "length_required",
				      "send the body with a Content-Length, "
				      "not chunked");
	if (header_copy(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, clen,
			sizeof(clen)) ||
	    (clen[0] && http_parse_uint(clen, SIZE_MAX / 2, &len)))
		return request_refuse(s, x, 400, "bad_request",
				      "invalid Content-Length");
	x->content_length = (size_t)len;
	if (!x->content_length) {
		exchange_dispatch(x);
		return exchange_continue(s, x);
	}
	if (x->content_length > HTTP_DISCARD_MAX)
		return request_refuse(s, x, 413, "payload_too_large",
				      "request body far too large");
	if (x->content_length > HTTP_BODY_MAX) {
		x->body_discard = 1;
	} else if (x->content_length + 1 > x->body_cap) {
		char *b = realloc(req->body, x->content_length + 1);

		if (!b)
			return request_refuse(s, x, 500, "internal_error",
					      "out of memory");
		req->body = b;
		x->body_cap = x->content_length + 1;
	}
	exchange_set_state(x, EX_BODY);
	return 0;
}

static int on_body(struct http_exchange *x, const void *in, size_t len)
{
	if (!x || x->state != EX_BODY)
		return 0;
	if (x->body_got + len > x->content_length) {
		LOGN(x->req.peer, "more body than Content-Length: closing");
		return -1;
	}
	if (!x->body_discard)
		memcpy(x->req.body + x->body_got, in, len);
	x->body_got += len;
	return 0;
}

static int on_body_done(struct http_session *s, struct http_exchange *x)
{
	if (!x || x->state != EX_BODY)
		return 0;
	if (!x->body_discard) {
		x->req.body[x->body_got] = '\0';
		x->req.body_len = x->body_got;
	}
	exchange_dispatch(x);
	return exchange_continue(s, x);
}

/* The connection (or its binding to us) ends. */
static void on_session_end(struct http_session *s)
{
	struct http_exchange *x = s ? s->x : NULL;

	if (!x)
		return;
	s->x = NULL;
	x->wsi = NULL;
	/* a query still out frees it when it returns */
	if (x->state != EX_WAIT_DB)
		exchange_put(x);
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason,
			 void *user, void *in, size_t len)
{
	struct server *srv = lws_context_user(lws_get_context(wsi));
	struct http_session *s = user;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		if (!s)
			return -1;
		if (s->x)	/* a pipelined request before our answer */
			on_session_end(s);
		return on_request(srv->http, s, wsi);
	case LWS_CALLBACK_HTTP_BODY:
		return on_body(s ? s->x : NULL, in, len);
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		return s ? on_body_done(s, s->x) : 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (s && s->x && s->x->state == EX_REPLYING)
			return exchange_write(s, s->x);
		return 0;
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		on_session_end(s);
		return 0;
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		/* WebSockets only with the feed's subprotocol (feed.c) */
		return -1;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols http_protocol = {
	.name = "remsim-http",
	.callback = http_callback,
	.per_session_data_size = sizeof(struct http_session),
	/* lws sends at most this much per write; answers go out in one */
	.tx_packet_size = HTTP_WRITE_CHUNK + HTTP_HEADERS_MAX,
};

int http_start(struct server *srv)
{
	static const struct lws_protocols *pprotocols[] = {
		&http_protocol, &feed_protocol, NULL,
	};
	/* every path to our callback, whatever the order of protocols */
	static const struct lws_http_mount mount = {
		.mountpoint = "/",
		.mountpoint_len = 1,
		.origin = "remsim-http",
		.origin_protocol = LWSMPRO_CALLBACK,
	};
	struct lws_context_creation_info info;
	struct http *h = calloc(1, sizeof(*h));

	if (!h)
		return -1;
	h->srv = srv;
	srv->http = h;
	memset(&info, 0, sizeof(info));
	info.vhost_name = "http";
	info.port = srv->cfg.http_port;
	info.iface = srv->cfg.http_bind;
	info.pprotocols = pprotocols;
	info.mounts = &mount;
	h->vh = lws_create_vhost(srv->ctx, &info);
	if (!h->vh) {
		LOGE(NULL, "cannot listen for HTTP on %s port %d",
		     srv->cfg.http_bind ? srv->cfg.http_bind : "*",
		     srv->cfg.http_port);
		return -1;
	}
	LOGN(NULL, "HTTP listening on %s port %d (v1 API: %s)",
	     srv->cfg.http_bind ? srv->cfg.http_bind : "*", srv->cfg.http_port,
	     srv->cfg.v1_access ? srv->cfg.v1_access : "loopback");
	return 0;
}

void http_free(struct server *srv)
{
	struct http *h = srv->http;

	if (!h)
		return;
	/* the loop is gone: nothing will answer these any more */
	while (h->active) {
		struct http_exchange *x = h->active;

		list_remove(&h->active, x);
		exchange_destroy(x);
	}
	while (h->pool) {
		struct http_exchange *x = h->pool;

		list_remove(&h->pool, x);
		exchange_destroy(x);
	}
	rest_v1_free();
	free(h);
	srv->http = NULL;
}
