/*
 * feed: the admin feed's subscribers (docs/feed.md): bounded queues of
 * shared, reference-counted messages, fan-out of the changes PostgreSQL
 * announces on remsim_feed, snapshots and resyncs, heartbeats, the database
 * hooks. The WebSocket side (callback, auth, frames) is feed_ws.c.
 */
#include "feed_priv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "db.h"
#include "hex.h"
#include "link.h"
#include "log.h"
#include "server.h"
#include "token.h"

#define FEED_FLUSH_US		3000	/* changes collected before a write */
#define FEED_EVENTS		"200"	/* events in a snapshot */

#define FEED_SQL_SNAPSHOT "SELECT * FROM remsim_feed_snapshot($1::integer)"
#define FEED_SQL_FETCH \
	"SELECT remsim_feed_fetch($1, k) FROM jsonb_array_elements($2::jsonb) k"

static const char *const sub_state_names[] = {
	[SUB_AUTH] = "AUTH",
	[SUB_SNAPSHOT] = "SNAPSHOT",
	[SUB_LIVE] = "LIVE",
	[SUB_CLOSING] = "CLOSING",
};

/* A notification waiting while a row is fetched. */
struct feed_backlog {
	struct feed_backlog *next;
	char payload[];
};

/* ---- messages ---- */

static struct feed_msg *msg_new(const char *type, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static struct feed_msg *msg_new(const char *type, const char *fmt, ...)
{
	struct feed_msg *m;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !(m = malloc(sizeof(*m) + (size_t)n + 1))) {
		LOGE("feed", "out of memory for a %s message", type);
		return NULL;
	}
	va_start(ap, fmt);
	vsnprintf(m->body, (size_t)n + 1, fmt, ap);
	va_end(ap);
	m->refs = 1;
	m->type = type;
	m->is_snapshot = !strcmp(type, "snapshot");
	m->len = (size_t)n;
	return m;
}

static void msg_unref(struct feed_msg *m)
{
	if (m && !--m->refs)
		free(m);
}

/* ---- queues ---- */

static int queue_push(struct feed_queue *q, struct feed_msg *m,
		      const char *reason)
{
	if (q->count == q->cap) {
		unsigned cap = q->cap ? 2 * q->cap : 64;
		struct feed_item *p = malloc(cap * sizeof(*p));

		if (!p)
			return -1;
		for (unsigned i = 0; i < q->count; i++)
			p[i] = q->items[(q->head + i) % q->cap];
		free(q->items);
		q->items = p;
		q->cap = cap;
		q->head = 0;
	}
	q->items[(q->head + q->count) % q->cap] =
		(struct feed_item){ .msg = m, .reason = reason };
	q->count++;
	if (!m->is_snapshot)
		q->bytes += m->len;
	m->refs++;
	return 0;
}

struct feed_item *feed_queue_head(struct feed_queue *q)
{
	return q->count ? &q->items[q->head] : NULL;
}

void feed_queue_pop(struct feed_queue *q)
{
	struct feed_msg *m = q->items[q->head].msg;

	if (!m->is_snapshot)
		q->bytes -= m->len;
	msg_unref(m);
	q->head = (q->head + 1) % q->cap;
	q->count--;
}

/* Drops everything; keep_head keeps a message already partly written. */
static void queue_clear(struct feed_queue *q, int keep_head)
{
	while (q->count > (keep_head ? 1u : 0u)) {
		unsigned last = (q->head + q->count - 1) % q->cap;
		struct feed_msg *m = q->items[last].msg;

		if (!m->is_snapshot)
			q->bytes -= m->len;
		msg_unref(m);
		q->count--;
	}
	if (!q->count) {
		free(q->items);
		*q = (struct feed_queue){ 0 };
	}
}

/* ---- subscribers ---- */

static void sub_set_state(struct feed_sub *s, enum sub_state st,
			  const char *reason)
{
	if (s->state == st)
		return;
	LOGI(s->who, "feed %s -> %s (%s)", sub_state_names[s->state],
	     sub_state_names[st], reason);
	if ((s->state == SUB_SNAPSHOT || s->state == SUB_LIVE) &&
	    st != SUB_SNAPSHOT && st != SUB_LIVE)
		s->feed->authed--;
	else if (s->state == SUB_AUTH &&
		 (st == SUB_SNAPSHOT || st == SUB_LIVE))
		s->feed->authed++;
	s->state = st;
}

static void feed_set_listening(struct feed *f, int on);
static void feed_request_snapshot(struct feed *f);

/*
 * Closes with a status: after what is queued if drop is 0 (an error
 * message), at once otherwise.
 */
void feed_sub_close(struct feed_sub *s, int code, const char *reason,
		    int drop)
{
	if (s->state == SUB_CLOSING)
		return;
	if (drop) {
		queue_clear(&s->q, s->started && s->off);
		queue_clear(&s->held, 0);
	}
	s->close_code = code;
	snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason);
	sub_set_state(s, SUB_CLOSING, reason);
	if (!s->feed->authed)
		feed_set_listening(s->feed, 0);
	lws_callback_on_writable(s->wsi);
}

/* A refusal before authentication: the error message, then the close. */
void feed_sub_refuse(struct feed_sub *s, int code, const char *errcode,
		     const char *why)
{
	json_t *j = json_pack("{s:s,s:s}", "code", errcode, "message", why);
	char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
	struct feed_msg *m = NULL;

	LOGN(s->who, "feed refused: %s", why);
	/* the object without its braces follows the envelope */
	if (txt)
		m = msg_new("error", ",%.*s}", (int)strlen(txt) - 2, txt + 1);
	if (m)
		queue_push(&s->q, m, NULL);
	msg_unref(m);
	free(txt);
	json_decref(j);
	feed_sub_close(s, code, errcode, 0);
}

/* Waits for a snapshot read after now (reason "connect" or "resync"). */
static void sub_want_snapshot(struct feed_sub *s, const char *reason)
{
	s->snap_reason = reason;
	s->want_gen = s->feed->next_gen;
	queue_clear(&s->held, 0);
	sub_set_state(s, SUB_SNAPSHOT, reason);
	feed_request_snapshot(s->feed);
}

/* Drops what is queued; the subscriber gets resync, then a snapshot. */
static void sub_resync(struct feed_sub *s, const char *why)
{
	struct feed_msg *m = msg_new("resync", ",\"reason\":\"%s\"}", why);

	queue_clear(&s->q, s->started && s->off);
	if (m)
		queue_push(&s->q, m, NULL);
	msg_unref(m);
	s->feed->stats.resyncs++;
	sub_want_snapshot(s, "resync");
	lws_callback_on_writable(s->wsi);
}

/* A new /feed connection (feed_ws.c): not authenticated yet. */
void feed_sub_attach(struct feed *f, struct feed_sub *s, struct lws *wsi)
{
	memset(s, 0, sizeof(*s));
	s->feed = f;
	s->wsi = wsi;
	s->last_rx_ms = link_now_ms();
	s->next = f->subs;
	if (f->subs)
		f->subs->prev = s;
	f->subs = s;
}

/* Its connection is gone: forgotten, and the last one unlistens. */
void feed_sub_detach(struct feed_sub *s)
{
	struct feed *f = s->feed;

	if (s->state != SUB_CLOSING)
		sub_set_state(s, SUB_CLOSING, "connection closed");
	LOGI(s->who, "feed connection closed");
	if (s->prev)
		s->prev->next = s->next;
	else
		f->subs = s->next;
	if (s->next)
		s->next->prev = s->prev;
	queue_clear(&s->q, 0);
	queue_clear(&s->held, 0);
	free(s->pend);
	s->pend = NULL;
	s->feed = NULL;
	if (!f->authed)
		feed_set_listening(f, 0);
}

/* Authenticated (feed_ws.c): its snapshot, then the changes. */
void feed_sub_subscribe(struct feed_sub *s, const uint8_t *token_id)
{
	memcpy(s->token_id, token_id, TOKEN_ID_LEN);
	sub_want_snapshot(s, "connect");
}

void feed_drop_token(struct server *srv, const uint8_t *token_id)
{
	struct feed *f = srv->feed;
	char id[2 * TOKEN_ID_LEN + 1];

	if (!f)
		return;
	for (struct feed_sub *s = f->subs; s; s = s->next) {
		if ((s->state != SUB_SNAPSHOT && s->state != SUB_LIVE) ||
		    memcmp(s->token_id, token_id, TOKEN_ID_LEN))
			continue;
		hex_encode(id, token_id, TOKEN_ID_LEN);
		LOGN(s->who, "feed: its token %s was revoked: closing", id);
		feed_sub_close(s, 4401, "token revoked", 1);
	}
}

static void feed_flush(lws_sorted_usec_list_t *sul)
{
	struct feed *f = lws_container_of(sul, struct feed, sul_flush);

	f->flush_scheduled = 0;
	for (struct feed_sub *s = f->subs; s; s = s->next)
		if (s->q.count && !s->pend)
			feed_sub_write(s);
}

/*
 * Changes are written FEED_FLUSH_US after the first one: at 1,000 changes
 * a second a subscriber then gets a few per write instead of a write (and
 * a poll re-arm) per change, for at most that much more delay.
 */
static void sub_wake(struct feed_sub *s)
{
	struct feed *f = s->feed;

	if (f->flush_scheduled)
		return;
	f->flush_scheduled = 1;
	lws_sul_schedule(f->srv->ctx, 0, &f->sul_flush, feed_flush,
			 FEED_FLUSH_US);
}

/* A change for this subscriber, within its queue's bounds. */
static void sub_push(struct feed_sub *s, struct feed_msg *m)
{
	struct feed_queue *q = s->state == SUB_SNAPSHOT ? &s->held : &s->q;
	unsigned max = s->feed->srv->cfg.feed_queue_max;

	if (s->state != SUB_SNAPSHOT && s->state != SUB_LIVE)
		return;
	if (s->q.count + s->held.count >= max ||
	    s->q.bytes + s->held.bytes + m->len > FEED_QUEUE_BYTES) {
		if (s->state == SUB_SNAPSHOT || s->snapshot_unsent) {
			LOGN(s->who, "feed subscriber too slow: queue full "
			     "again before its resync was written; closing");
			s->feed->stats.drops++;
			feed_sub_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION,
				       "too slow", 1);
			return;
		}
		LOGN(s->who, "feed subscriber fell behind (%u messages, %zu "
		     "bytes queued): resync", s->q.count, s->q.bytes);
		sub_resync(s, "queue overflow");
		return;
	}
	if (queue_push(q, m, NULL)) {
		feed_sub_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
			       "out of memory", 1);
		return;
	}
	if (q == &s->q)
		sub_wake(s);
}

static void feed_broadcast(struct feed *f, struct feed_msg *m)
{
	if (!m)
		return;
	for (struct feed_sub *s = f->subs; s; s = s->next)
		sub_push(s, m);
	msg_unref(m);
}

/* ---- snapshots ---- */

static void feed_snapshot_done(struct db *db, const PGresult *res, void *arg)
{
	struct feed *f = arg;
	struct feed_msg *m = NULL;
	uint64_t gen = f->snap_gen;

	(void)db;
	f->snap_inflight = 0;
	if (!res)
		return;	/* the database went away: feed_db_up() asks again */
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    PQnfields(res) != 7) {
		LOGE("feed", "snapshot query failed: %s",
		     PQresultErrorMessage(res));
	} else {
		m = msg_new("snapshot", ",\"at\":\"%s\",\"banks\":%s,"
			    "\"bank_slots\":%s,\"clients\":%s,"
			    "\"client_slots\":%s,\"slotmaps\":%s,"
			    "\"events\":%s}", PQgetvalue(res, 0, 0),
			    PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
			    PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4),
			    PQgetvalue(res, 0, 5), PQgetvalue(res, 0, 6));
	}
	for (struct feed_sub *s = f->subs; s; s = s->next) {
		if (s->state != SUB_SNAPSHOT || s->want_gen > gen)
			continue;
		if (!m) {
			feed_sub_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
				       "snapshot failed", 1);
			continue;
		}
		queue_push(&s->q, m, s->snap_reason);
		s->snapshot_unsent = 1;
		while (s->held.count) {
			struct feed_item *it = feed_queue_head(&s->held);

			queue_push(&s->q, it->msg, NULL);
			feed_queue_pop(&s->held);
		}
		queue_clear(&s->held, 0);
		sub_set_state(s, SUB_LIVE, "snapshot read");
		lws_callback_on_writable(s->wsi);
	}
	msg_unref(m);
	feed_request_snapshot(f);
}

/* Reads a snapshot if a subscriber waits for one and none is out. */
static void feed_request_snapshot(struct feed *f)
{
	static const char *const params[] = { FEED_EVENTS };
	struct db *db = f->srv->db;
	int waiting = 0;

	for (struct feed_sub *s = f->subs; s; s = s->next)
		waiting |= s->state == SUB_SNAPSHOT;
	if (!waiting || f->snap_inflight || !db || !db_is_up(db))
		return;
	/* LISTEN is queued first: every change after the snapshot arrives */
	feed_set_listening(f, 1);
	if (db_query(db, FEED_SQL_SNAPSHOT, 1, params, feed_snapshot_done, f))
		return;
	f->snap_inflight = 1;
	f->snap_gen = f->next_gen++;
}

static void feed_listen_done(struct db *db, const PGresult *res, void *arg)
{
	(void)db;
	(void)arg;
	if (res && PQresultStatus(res) != PGRES_COMMAND_OK)
		LOGE("feed", "LISTEN/UNLISTEN failed: %s",
		     PQresultErrorMessage(res));
}

/*
 * The server LISTENs only while someone subscribes: its own write-back
 * would otherwise cost it parsing notifications nobody reads.
 */
static void feed_set_listening(struct feed *f, int on)
{
	struct db *db = f->srv->db;

	if (f->listening == on || !db || !db_is_up(db))
		return;
	if (db_query(db, on ? "LISTEN " FEED_CHANNEL : "UNLISTEN " FEED_CHANNEL,
		     0, NULL, feed_listen_done, f))
		return;
	f->listening = on;
	LOGN("feed", "%s %s", on ? "listening on" : "no subscriber: unlisten",
	     FEED_CHANNEL);
}

/* ---- changes from the database ---- */

static const char *const feed_tables[] = {
	"banks", "bank_slots", "clients", "client_slots", "slotmaps", "events",
	NULL,
};

static void feed_apply(struct feed *f, const char *payload);

/* One row of a table as the feed shows it (JSON text). */
static void feed_emit_row(struct feed *f, const char *table, const char *op,
			  const char *row)
{
	if (!strcmp(table, "events"))
		feed_broadcast(f, msg_new("event", ",\"event\":%s}", row));
	else
		feed_broadcast(f, msg_new("change", ",\"table\":\"%s\",\"op\":"
					  "\"%s\",\"row\":%s}", table, op, row));
}

static void feed_drain_backlog(struct feed *f)
{
	while (f->backlog && !f->fetching) {
		struct feed_backlog *b = f->backlog;

		f->backlog = b->next;
		if (!f->backlog)
			f->backlog_tail = NULL;
		feed_apply(f, b->payload);
		free(b);
	}
}

static void feed_fetch_done(struct db *db, const PGresult *res, void *arg)
{
	struct feed *f = arg;

	(void)db;
	f->fetching = 0;
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
		for (int r = 0; r < PQntuples(res); r++)
			if (!PQgetisnull(res, r, 0))	/* NULL: gone since */
				feed_emit_row(f, f->fetch_table,
					      "upsert", PQgetvalue(res, r, 0));
	} else if (res) {
		LOGE("feed", "reading %s rows failed: %s", f->fetch_table,
		     PQresultErrorMessage(res));
	}
	feed_drain_backlog(f);
}

/* Rows too large for a notification: read them, the rest waits. */
static void feed_fetch(struct feed *f, const char *table, json_t *keys)
{
	char *k = json_dumps(keys, JSON_COMPACT);
	const char *params[2] = { table, k };

	snprintf(f->fetch_table, sizeof(f->fetch_table), "%s", table);
	if (k && !db_query(f->srv->db, FEED_SQL_FETCH, 2, params,
			   feed_fetch_done, f))
		f->fetching = 1;
	free(k);
}

static void feed_resync_all(struct feed *f, const char *why)
{
	for (struct feed_sub *s = f->subs; s; s = s->next)
		if (s->state == SUB_LIVE)
			sub_resync(s, why);
}

/* One remsim_feed payload (sql/003_feed.sql): rows of one table. */
static void feed_apply(struct feed *f, const char *payload)
{
	json_error_t err;
	json_t *j = json_loads(payload, 0, &err), *rows, *row;
	const char *t = json_string_value(json_object_get(j, "t"));
	const char *op = json_string_value(json_object_get(j, "op"));
	const char *const *known = feed_tables;
	size_t i;

	while (t && *known && strcmp(*known, t))
		known++;
	if (!j || !t || !op || !*known) {
		LOGE("feed", "unexpected %s notification: %.80s", FEED_CHANNEL,
		     payload);
		json_decref(j);
		return;
	}
	if (!strcmp(op, "truncate")) {
		feed_resync_all(f, "table truncated");
	} else if (!strcmp(op, "fetch")) {
		feed_fetch(f, *known, json_object_get(j, "keys"));
	} else if (json_is_array(rows = json_object_get(j, "rows"))) {
		json_array_foreach(rows, i, row) {
			char *txt = json_dumps(row, JSON_COMPACT);

			if (txt)
				feed_emit_row(f, *known, op, txt);
			free(txt);
		}
	}
	json_decref(j);
}

void feed_db_notify(struct server *srv, const char *payload)
{
	struct feed *f = srv->feed;
	struct feed_backlog *b;
	size_t n = strlen(payload);

	if (!f || !f->authed)
		return;
	if (!f->fetching) {
		feed_apply(f, payload);
		return;
	}
	b = malloc(sizeof(*b) + n + 1);
	if (!b) {
		feed_resync_all(f, "out of memory");
		return;
	}
	memcpy(b->payload, payload, n + 1);
	b->next = NULL;
	if (f->backlog_tail)
		f->backlog_tail->next = b;
	else
		f->backlog = b;
	f->backlog_tail = b;
}

void feed_db_up(struct server *srv)
{
	struct feed *f = srv->feed;

	if (!f)
		return;
	/* changes made while the database was away are unknown */
	feed_resync_all(f, "database reconnected");
	feed_request_snapshot(f);
}

void feed_db_down(struct server *srv)
{
	struct feed *f = srv->feed;

	if (!f)
		return;
	f->listening = 0;	/* the new connection listens again */
	while (f->backlog) {
		struct feed_backlog *b = f->backlog;

		f->backlog = b->next;
		free(b);
	}
	f->backlog_tail = NULL;
}

/* ---- heartbeats ---- */

static void feed_heartbeat(lws_sorted_usec_list_t *sul)
{
	struct feed *f = lws_container_of(sul, struct feed, sul_heartbeat);
	uint32_t hb = f->srv->cfg.feed_heartbeat_ms;
	int64_t now = link_now_ms();
	struct feed_msg *m = NULL;
	char at[40];
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%S", &tm);
	for (struct feed_sub *s = f->subs; s; s = s->next) {
		if (s->state != SUB_SNAPSHOT && s->state != SUB_LIVE)
			continue;
		if (now - s->last_rx_ms > 2 * (int64_t)hb) {
			LOGN(s->who, "feed subscriber silent for %lld ms (no "
			     "pong): dropping", (long long)(now - s->last_rx_ms));
			f->stats.drops++;
			feed_sub_close(s, LWS_CLOSE_STATUS_GOINGAWAY, "no pong",
				       1);
			lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, 1);
			continue;
		}
		if (!m)
			m = msg_new("heartbeat", ",\"at\":\"%s.%06ldZ\"}", at,
				    ts.tv_nsec / 1000);
		if (m)
			sub_push(s, m);
		s->ping_due = 1;
		lws_callback_on_writable(s->wsi);
	}
	msg_unref(m);
	lws_sul_schedule(f->srv->ctx, 0, &f->sul_heartbeat, feed_heartbeat,
			 (lws_usec_t)hb * LWS_US_PER_MS);
}


/* ---- life cycle ---- */

int feed_init(struct server *srv)
{
	struct feed *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->srv = srv;
	srv->feed = f;
	lws_sul_schedule(srv->ctx, 0, &f->sul_heartbeat, feed_heartbeat,
			 (lws_usec_t)srv->cfg.feed_heartbeat_ms * LWS_US_PER_MS);
	return 0;
}

void feed_shutdown(struct server *srv)
{
	struct feed *f = srv->feed;

	if (!f)
		return;
	f->closing = 1;
	lws_sul_cancel(&f->sul_heartbeat);
	lws_sul_cancel(&f->sul_flush);
	for (struct feed_sub *s = f->subs; s; s = s->next)
		feed_sub_close(s, LWS_CLOSE_STATUS_GOINGAWAY,
			       "server shutting down", 1);
}

int feed_is_busy(const struct server *srv)
{
	return srv->feed && srv->feed->subs;
}

void feed_get_stats(const struct server *srv, struct feed_stats *st)
{
	const struct feed *f = srv->feed;

	*st = f ? f->stats : (struct feed_stats){ 0 };
	if (f)
		st->subscribers = f->authed;
}

void feed_free(struct server *srv)
{
	struct feed *f = srv->feed;

	if (!f)
		return;
	feed_db_down(srv);
	free(f);
	srv->feed = NULL;
}
