/*
 * feed: /feed subscribers. Messages are built once and shared (reference
 * counted) by every subscriber's queue; only the envelope with the
 * per-subscriber seq is rendered at write time. A writable callback packs
 * as many whole WebSocket frames as fit in 64 KiB into one write, so a
 * burst costs one system call per subscriber rather than one per message.
 */
#define _GNU_SOURCE
#include "feed.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>

#include "db.h"
#include "http.h"
#include "link.h"
#include "log.h"
#include "rest.h"
#include "server.h"

#define FEED_QUEUE_BYTES	(16 * 1024 * 1024)	/* deltas per subscriber */
#define FEED_WRITE_MAX		(64 * 1024)	/* bytes of frames per write */
#define FEED_RX_MAX		4096	/* a message from a subscriber */
#define FEED_AUTH_TIMEOUT_S	5
#define FEED_FLUSH_US		3000	/* changes collected before a write */
#define FEED_EVENTS		"200"	/* events in a snapshot */

#define FEED_SQL_SNAPSHOT "SELECT * FROM remsim_feed_snapshot($1::integer)"
#define FEED_SQL_FETCH \
	"SELECT remsim_feed_fetch($1, k) FROM jsonb_array_elements($2::jsonb) k"

/* Where a subscriber is; the names appear in logs. */
enum sub_state {
	SUB_AUTH,	/* connected, no token yet */
	SUB_SNAPSHOT,	/* authenticated, its snapshot is being read */
	SUB_LIVE,	/* snapshot queued, changes follow */
	SUB_CLOSING,	/* what is queued goes out, then the close frame */
};

static const char *const sub_state_names[] = {
	[SUB_AUTH] = "AUTH",
	[SUB_SNAPSHOT] = "SNAPSHOT",
	[SUB_LIVE] = "LIVE",
	[SUB_CLOSING] = "CLOSING",
};

/* One message for any number of subscribers: body follows the seq. */
struct feed_msg {
	unsigned refs;
	const char *type;	/* "change", "event", "snapshot", ... */
	int is_snapshot;
	size_t len;
	char body[];		/* ',"table":...}' */
};

struct feed_item {
	struct feed_msg *msg;
	const char *reason;	/* a snapshot's "connect" / "resync" */
};

/* A ring of items, grown on demand. */
struct feed_queue {
	struct feed_item *items;
	unsigned cap, head, count;
	size_t bytes;		/* of the non-snapshot messages */
};

struct feed;

/* lws per-session data of a /feed connection. */
struct feed_sub {
	struct feed *feed;
	struct lws *wsi;
	struct feed_sub *prev, *next;
	enum sub_state state;
	char peer[64];		/* "127.0.0.1:4711" */
	char who[160];		/* "admin:1@127.0.0.1:4711" once known */
	uint64_t seq;
	struct feed_queue q;	/* to write */
	struct feed_queue held;	/* changes while the snapshot is read */
	uint64_t want_gen;	/* the snapshot query it waits for */
	const char *snap_reason;
	int snapshot_unsent;	/* a snapshot in q not completely written */
	/* the message at the head of q, being written */
	char prefix[128];
	size_t prefix_len, off;
	int started;
	int ping_due;
	int64_t last_rx_ms;
	int close_code;
	char close_reason[64];	/* under 124 bytes: one control frame */
	int close_sent;
	char rx[FEED_RX_MAX];
	size_t rx_len;
	int rx_skip;		/* rest of an oversized message */
};

/* A notification waiting while a row is fetched. */
struct feed_backlog {
	struct feed_backlog *next;
	char payload[];
};

struct feed {
	struct server *srv;
	struct feed_sub *subs;
	unsigned authed;	/* subscribers in SNAPSHOT or LIVE */
	int listening;
	int snap_inflight;
	uint64_t snap_gen, next_gen;
	int fetching;		/* a row fetch is out: the rest waits */
	char fetch_table[16];
	struct feed_backlog *backlog, *backlog_tail;
	int closing;
	lws_sorted_usec_list_t sul_heartbeat;
	lws_sorted_usec_list_t sul_flush;
	int flush_scheduled;
	struct feed_stats stats;
	unsigned char wbuf[LWS_PRE + FEED_WRITE_MAX];
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

static struct feed_item *queue_head(struct feed_queue *q)
{
	return q->count ? &q->items[q->head] : NULL;
}

static void queue_pop(struct feed_queue *q)
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
static void sub_close(struct feed_sub *s, int code, const char *reason,
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
static void sub_refuse(struct feed_sub *s, int code, const char *errcode,
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
	sub_close(s, code, errcode, 0);
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

static void feed_flush(lws_sorted_usec_list_t *sul)
{
	struct feed *f = lws_container_of(sul, struct feed, sul_flush);

	f->flush_scheduled = 0;
	for (struct feed_sub *s = f->subs; s; s = s->next)
		if (s->q.count)
			lws_callback_on_writable(s->wsi);
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
			sub_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION,
				  "too slow", 1);
			return;
		}
		LOGN(s->who, "feed subscriber fell behind (%u messages, %zu "
		     "bytes queued): resync", s->q.count, s->q.bytes);
		sub_resync(s, "queue overflow");
		return;
	}
	if (queue_push(q, m, NULL)) {
		sub_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
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

/* ---- writing: whole frames, packed ---- */

static size_t frame_header(unsigned char *p, int fin, int cont, size_t len)
{
	p[0] = (unsigned char)((fin ? 0x80 : 0) | (cont ? 0x0 : 0x1));
	if (len < 126) {
		p[1] = (unsigned char)len;
		return 2;
	}
	p[1] = 126;
	p[2] = (unsigned char)(len >> 8);
	p[3] = (unsigned char)len;
	return 4;
}

/* Bytes [off, off + n) of the head message: envelope, then body. */
static void sub_copy(struct feed_sub *s, const struct feed_msg *m,
		     unsigned char *dst, size_t off, size_t n)
{
	if (off < s->prefix_len) {
		size_t k = s->prefix_len - off < n ? s->prefix_len - off : n;

		memcpy(dst, s->prefix + off, k);
		dst += k;
		off += k;
		n -= k;
	}
	memcpy(dst, m->body + (off - s->prefix_len), n);
}

static void sub_start_message(struct feed_sub *s, const struct feed_item *it)
{
	int n;

	if (!strcmp(it->msg->type, "error"))	/* before any seq */
		n = snprintf(s->prefix, sizeof(s->prefix),
			     "{\"v\":1,\"type\":\"error\"");
	else if (it->reason)
		n = snprintf(s->prefix, sizeof(s->prefix),
			     "{\"v\":1,\"type\":\"%s\",\"seq\":%llu,"
			     "\"reason\":\"%s\"", it->msg->type,
			     (unsigned long long)++s->seq, it->reason);
	else
		n = snprintf(s->prefix, sizeof(s->prefix),
			     "{\"v\":1,\"type\":\"%s\",\"seq\":%llu",
			     it->msg->type, (unsigned long long)++s->seq);
	s->prefix_len = (size_t)n;
	s->off = 0;
	s->started = 1;
}

/* Fills buf with frames of queued messages; returns the bytes. */
static size_t sub_pack(struct feed_sub *s, unsigned char *buf)
{
	size_t used = 0;
	struct feed_item *it;

	while ((it = queue_head(&s->q))) {
		size_t left, room, n, h;
		int fin;

		if (!s->started)
			sub_start_message(s, it);
		left = s->prefix_len + it->msg->len - s->off;
		room = FEED_WRITE_MAX - used - 4;
		if (left > room && used)
			break;	/* a large one starts its own write */
		n = left <= room ? left : room;
		fin = n == left;
		h = frame_header(buf + used, fin, s->off > 0, n);
		sub_copy(s, it->msg, buf + used + h, s->off, n);
		used += h + n;
		s->off += n;
		if (!fin)
			break;
		if (it->msg->is_snapshot)
			s->snapshot_unsent = 0;
		s->started = 0;
		s->feed->stats.messages++;
		queue_pop(&s->q);
	}
	return used;
}

static int sub_writeable(struct feed_sub *s)
{
	unsigned char *buf = s->feed->wbuf + LWS_PRE;
	size_t n;

	if (s->ping_due) {
		int64_t now = link_now_ms();

		/* lws reports pongs with a payload only: send one */
		s->ping_due = 0;
		memcpy(buf, &now, sizeof(now));
		if (lws_write(s->wsi, buf, sizeof(now), LWS_WRITE_PING) < 0)
			return -1;
		lws_callback_on_writable(s->wsi);
		return 0;
	}
	n = sub_pack(s, buf);
	if (n) {
		/* frames made here: lws passes them on as they are */
		if (lws_write(s->wsi, buf, n, LWS_WRITE_RAW) < (int)n) {
			LOGN(s->who, "feed write failed: closing");
			return -1;
		}
		lws_callback_on_writable(s->wsi);
		return 0;
	}
	if (s->state != SUB_CLOSING)
		return 0;
	if (s->close_sent)
		return -1;	/* the close frame is out: hang up */
	/* our own close frame, whole, like the rest (lws_close_reason()
	 * sent none after our raw writes) */
	n = strlen(s->close_reason);
	buf[0] = 0x88;
	buf[1] = (unsigned char)(2 + n);
	buf[2] = (unsigned char)(s->close_code >> 8);
	buf[3] = (unsigned char)s->close_code;
	memcpy(buf + 4, s->close_reason, n);
	s->close_sent = 1;
	if (lws_write(s->wsi, buf, 4 + n, LWS_WRITE_RAW) < (int)(4 + n))
		return -1;
	lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, 2);
	lws_callback_on_writable(s->wsi);
	return 0;
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
			sub_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
				  "snapshot failed", 1);
			continue;
		}
		queue_push(&s->q, m, s->snap_reason);
		s->snapshot_unsent = 1;
		while (s->held.count) {
			struct feed_item *it = queue_head(&s->held);

			queue_push(&s->q, it->msg, NULL);
			queue_pop(&s->held);
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
			sub_close(s, LWS_CLOSE_STATUS_GOINGAWAY, "no pong", 1);
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

/* ---- the lws protocol ---- */

static void sub_peer(struct lws *wsi, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ip[64] = "?";
	int port = 0;

	lws_get_peer_simple(wsi, ip, sizeof(ip));
	if (!getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)&ss, &sl))
		port = ntohs(ss.ss_family == AF_INET6 ?
			     ((struct sockaddr_in6 *)&ss)->sin6_port :
			     ((struct sockaddr_in *)&ss)->sin_port);
	if (!strncmp(ip, "::ffff:", 7))
		memmove(ip, ip + 7, strlen(ip + 7) + 1);
	snprintf(out, len, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, port);
}

/* Checks "Bearer <token>" like /api/v2 does; then the snapshot. */
static void sub_authenticate(struct feed_sub *s, const char *authorization,
			     int too_long)
{
	struct http_req *req = calloc(1, sizeof(*req));
	struct token_claims claims;
	char why[160];
	enum rest_auth rc;

	if (!req) {
		sub_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
			  "out of memory", 1);
		return;
	}
	req->srv = s->feed->srv;
	snprintf(req->authorization, sizeof(req->authorization), "%s",
		 authorization);
	req->authorization_too_long = too_long;
	rc = rest_auth_admin(req, &claims, why, sizeof(why));
	if (rc == REST_AUTH_OK)
		snprintf(s->who, sizeof(s->who), "%s@%s", req->who, s->peer);
	explicit_bzero(req, sizeof(*req));
	free(req);
	lws_set_timer_usecs(s->wsi, LWS_SET_TIMER_USEC_CANCEL);
	if (rc != REST_AUTH_OK) {
		sub_refuse(s, 4401, "unauthorized", why);
		return;
	}
	LOGN(s->who, "feed subscribed (%s)", why);
	sub_want_snapshot(s, "connect");
}

/* The first message of a browser: {"type":"auth","token":"..."}. */
static void sub_receive_auth(struct feed_sub *s)
{
	json_t *j = json_loadb(s->rx, s->rx_len, 0, NULL);
	const char *type = json_string_value(json_object_get(j, "type"));
	const char *token = json_string_value(json_object_get(j, "token"));
	char bearer[HTTP_AUTH_MAX + 8];
	int n;

	if (!type || strcmp(type, "auth") || !token) {
		sub_refuse(s, 4400, "bad_request", "the first message must be "
			   "{\"type\":\"auth\",\"token\":\"...\"}");
		json_decref(j);
		return;
	}
	n = snprintf(bearer, sizeof(bearer), "Bearer %s", token);
	sub_authenticate(s, bearer, n >= HTTP_AUTH_MAX);
	explicit_bzero(bearer, sizeof(bearer));
	json_decref(j);
}

static void sub_receive(struct feed_sub *s, const void *in, size_t len,
			int final)
{
	s->last_rx_ms = link_now_ms();
	if (!s->rx_skip && s->rx_len + len > sizeof(s->rx)) {
		if (s->state == SUB_AUTH) {
			sub_refuse(s, 4400, "bad_request",
				   "first message too long");
			return;
		}
		s->rx_skip = 1;
	}
	if (!s->rx_skip) {
		memcpy(s->rx + s->rx_len, in, len);
		s->rx_len += len;
	}
	if (!final)
		return;
	if (s->state == SUB_AUTH && !s->rx_skip)
		sub_receive_auth(s);
	else
		LOGD(s->who, "feed message from the subscriber ignored");
	explicit_bzero(s->rx, s->rx_len);
	s->rx_len = 0;
	s->rx_skip = 0;
}

static void sub_established(struct feed *f, struct feed_sub *s,
			    struct lws *wsi)
{
	char auth[HTTP_AUTH_MAX];
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);

	memset(s, 0, sizeof(*s));
	s->feed = f;
	s->wsi = wsi;
	s->last_rx_ms = link_now_ms();
	sub_peer(wsi, s->peer, sizeof(s->peer));
	snprintf(s->who, sizeof(s->who), "%s", s->peer);
	s->next = f->subs;
	if (f->subs)
		f->subs->prev = s;
	f->subs = s;
	if (f->closing) {
		sub_close(s, LWS_CLOSE_STATUS_GOINGAWAY,
			  "server shutting down", 1);
		return;
	}
	if (n > 0) {
		if (n >= (int)sizeof(auth) ||
		    lws_hdr_copy(wsi, auth, sizeof(auth),
				 WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
			auth[0] = '\0';
		sub_authenticate(s, auth, n >= (int)sizeof(auth));
		explicit_bzero(auth, sizeof(auth));
		return;
	}
	LOGI(s->who, "feed connected, waiting for its auth message");
	lws_set_timer_usecs(wsi, (lws_usec_t)FEED_AUTH_TIMEOUT_S *
			    LWS_USEC_PER_SEC);
}

static void sub_closed(struct feed_sub *s)
{
	struct feed *f = s->feed;

	if (!f)
		return;
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
	s->feed = NULL;
	if (!f->authed)
		feed_set_listening(f, 0);
}

/* Only GET /feed with our subprotocol becomes a subscriber. */
static int feed_filter(struct lws *wsi)
{
	char uri[64];

	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0)
		return -1;
	if (strcmp(uri, FEED_PATH) && strcmp(uri, FEED_PATH "/"))
		return -1;
	return 0;
}

static int feed_callback(struct lws *wsi, enum lws_callback_reasons reason,
			 void *user, void *in, size_t len)
{
	struct server *srv = lws_context_user(lws_get_context(wsi));
	struct feed_sub *s = user;

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return feed_filter(wsi);
	case LWS_CALLBACK_ESTABLISHED:
		if (!srv->feed)
			return -1;
		sub_established(srv->feed, s, wsi);
		break;
	case LWS_CALLBACK_RECEIVE:
		if (s->feed && s->state != SUB_CLOSING)
			sub_receive(s, in, len, lws_is_final_fragment(wsi));
		break;
	case LWS_CALLBACK_RECEIVE_PONG:
		s->last_rx_ms = link_now_ms();
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (s->feed)
			return sub_writeable(s);
		break;
	case LWS_CALLBACK_TIMER:
		if (s->feed && s->state == SUB_AUTH)
			sub_refuse(s, 4401, "unauthorized", "no auth message "
				   "within 5 s");
		break;
	case LWS_CALLBACK_CLOSED:
		sub_closed(s);
		break;
	default:
		break;
	}
	return 0;
}

const struct lws_protocols feed_protocol = {
	.name = FEED_SUBPROTOCOL,
	.callback = feed_callback,
	.per_session_data_size = sizeof(struct feed_sub),
	.rx_buffer_size = FEED_RX_MAX,
};

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
		sub_close(s, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down",
			  1);
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
