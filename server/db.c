/*
 * db: one libpq connection driven by the libwebsockets loop. libpq's
 * socket is adopted (as a dup, so lws and libpq each close their own fd)
 * as a raw file descriptor; readable -> PQconsumeInput and drain results
 * and notifications, writable -> PQflush / PQconnectPoll. Queries run
 * strictly in order, one at a time, so their callbacks see a consistent
 * sequence.
 */
#define _GNU_SOURCE
#include "db.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "link.h"
#include "log.h"
#include "metrics.h"
#include "server.h"

/* pg_advisory_xact_lock key of the schema migrations ("remsim" in ASCII) */
#define DB_MIGRATION_LOCK	"114101109115105109"
#define DB_RETRY_BASE_MS	1000
#define DB_RETRY_CAP_MS		30000
#define DB_STABLE_MS		30000

enum db_state {
	DB_IDLE,
	DB_CONNECTING,
	DB_MIGRATING,	/* schema_migrations, migrations, LISTEN */
	DB_UP,
	DB_WAIT_RETRY,
};

static const char *const db_state_names[] = {
	[DB_IDLE] = "idle",
	[DB_CONNECTING] = "connecting",
	[DB_MIGRATING] = "migrating",
	[DB_UP] = "up",
	[DB_WAIT_RETRY] = "wait-retry",
};

struct db_query {
	struct db_query *next;
	char *sql;
	int nparams;		/* -1: simple query (may hold several statements) */
	char **params;
	db_result_cb cb;
	void *arg;
};

struct db {
	struct server *srv;
	char *conninfo;
	const char *const *channels;
	struct db_callbacks cb;
	enum db_state state;
	PGconn *conn;
	struct lws *wsi;	/* adopted dup of PQsocket() */
	int sock;		/* the PQsocket() value wsi was adopted for */
	struct db_query *head, *tail;	/* queued, head is in flight if busy */
	int busy;
	PGresult *last;		/* latest result of the query in flight */
	struct timespec sent_at;
	struct link_backoff backoff;
	int64_t up_since_ms;
	lws_sorted_usec_list_t sul_retry;
	struct db_stats stats;
};

static void db_set_state(struct db *db, enum db_state st, const char *reason)
{
	if (db->state == st)
		return;
	LOGN("db", "%s -> %s (%s)", db_state_names[db->state],
	     db_state_names[st], reason);
	db->state = st;
}

static void db_query_free(struct db_query *q)
{
	for (int i = 0; i < q->nparams; i++)
		free(q->params[i]);
	free(q->params);
	free(q->sql);
	free(q);
}

static struct db_query *db_query_new(const char *sql, int nparams,
				     const char *const *params,
				     db_result_cb cb, void *arg)
{
	struct db_query *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->sql = strdup(sql);
	q->nparams = nparams;
	q->cb = cb;
	q->arg = arg;
	if (nparams > 0)
		q->params = calloc((size_t)nparams, sizeof(char *));
	if (!q->sql || (nparams > 0 && !q->params)) {
		q->nparams = 0;
		db_query_free(q);
		return NULL;
	}
	for (int i = 0; i < nparams; i++) {
		if (params[i] && !(q->params[i] = strdup(params[i]))) {
			db_query_free(q);
			return NULL;
		}
	}
	return q;
}

static void db_send_next(struct db *db);
static void db_lost(struct db *db, const char *why);

static void db_enqueue(struct db *db, struct db_query *q)
{
	if (db->tail)
		db->tail->next = q;
	else
		db->head = q;
	db->tail = q;
	db_send_next(db);
}

/* Internal steps run while migrating; user queries only once up. */
static int db_enqueue_internal(struct db *db, const char *sql, int nparams,
			       const char *const *params, db_result_cb cb)
{
	struct db_query *q = db_query_new(sql, nparams, params, cb, NULL);

	if (!q) {
		db_lost(db, "out of memory");
		return -1;
	}
	db_enqueue(db, q);
	return 0;
}

int db_query(struct db *db, const char *sql, int nparams,
	     const char *const *params, db_result_cb cb, void *arg)
{
	struct db_query *q;

	if (db->state != DB_UP)
		return -1;
	q = db_query_new(sql, nparams, params, cb, arg);
	if (!q)
		return -1;
	db_enqueue(db, q);
	return 0;
}

static void db_send_next(struct db *db)
{
	struct db_query *q = db->head;
	int ok;

	if (db->busy || !q || !db->conn ||
	    (db->state != DB_UP && db->state != DB_MIGRATING))
		return;
	if (q->nparams < 0)
		ok = PQsendQuery(db->conn, q->sql);
	else
		ok = PQsendQueryParams(db->conn, q->sql, q->nparams, NULL,
				       (const char *const *)q->params, NULL,
				       NULL, 0);
	if (!ok) {
		db_lost(db, PQerrorMessage(db->conn));
		return;
	}
	db->busy = 1;
	clock_gettime(CLOCK_MONOTONIC, &db->sent_at);
	if (PQflush(db->conn) == 1)
		lws_callback_on_writable(db->wsi);
}

static void db_complete(struct db *db)
{
	struct db_query *q = db->head;
	struct timespec now;
	PGresult *res = db->last;

	clock_gettime(CLOCK_MONOTONIC, &now);
	db->stats.last_rtt_ms = (now.tv_sec - db->sent_at.tv_sec) * 1e3 +
				(now.tv_nsec - db->sent_at.tv_nsec) / 1e6;
	db->stats.queries++;
	metrics_db_rtt(db->stats.last_rtt_ms);
	db->head = q->next;
	if (!db->head)
		db->tail = NULL;
	db->busy = 0;
	db->last = NULL;
	if (res && PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)
		db->stats.errors++;
	if (q->cb)
		q->cb(db, res, q->arg);
	PQclear(res);
	db_query_free(q);
	db_send_next(db);
}

/* Reads what arrived: results of the query in flight and notifications. */
static void db_read(struct db *db)
{
	PGnotify *n;

	if (!PQconsumeInput(db->conn)) {
		db_lost(db, PQerrorMessage(db->conn));
		return;
	}
	while (db->busy && db->conn && !PQisBusy(db->conn)) {
		PGresult *r = PQgetResult(db->conn);

		if (!r) {
			db_complete(db);
			continue;
		}
		PQclear(db->last);
		db->last = r;
	}
	/* every read may carry notifications: drain them all now */
	while (db->conn && (n = PQnotifies(db->conn))) {
		if (db->cb.on_notify)
			db->cb.on_notify(db, n->relname, n->extra, db->cb.user);
		PQfreemem(n);
	}
}

static void db_retry_due(lws_sorted_usec_list_t *sul);

static void db_detach_socket(struct db *db)
{
	if (db->wsi) {
		struct lws *wsi = db->wsi;

		db->wsi = NULL;
		lws_set_opaque_user_data(wsi, NULL);
		lws_set_timeout(wsi, PENDING_TIMEOUT_KILLED_BY_PARENT,
				LWS_TO_KILL_ASYNC);
	}
	db->sock = -1;
}

/* Fails every queued query and schedules a reconnect. */
static void db_lost(struct db *db, const char *why)
{
	enum db_state was = db->state;
	char reason[256];
	uint32_t delay;

	snprintf(reason, sizeof(reason), "%s", why && *why ? why : "closed");
	reason[strcspn(reason, "\n")] = '\0';
	db_detach_socket(db);
	if (db->conn) {
		PQfinish(db->conn);
		db->conn = NULL;
	}
	PQclear(db->last);
	db->last = NULL;
	db->busy = 0;
	while (db->head) {
		struct db_query *q = db->head;

		db->head = q->next;
		if (q->cb && was == DB_UP)
			q->cb(db, NULL, q->arg);
		db_query_free(q);
	}
	db->tail = NULL;
	delay = link_backoff_after_up(&db->backoff,
				      was == DB_UP ? link_now_ms() -
				      db->up_since_ms : 0, (uint32_t)rand());
	if (delay < DB_RETRY_BASE_MS)
		delay = DB_RETRY_BASE_MS / 2;
	LOGE("db", "database connection failed: %s; retry in %u ms", reason,
	     delay);
	db_set_state(db, DB_WAIT_RETRY, reason);
	lws_sul_schedule(db->srv->ctx, 0, &db->sul_retry, db_retry_due,
			 (lws_usec_t)delay * 1000);
	if (was == DB_UP && db->cb.on_down)
		db->cb.on_down(db, reason, db->cb.user);
}

static int db_adopt_socket(struct db *db)
{
	lws_sock_file_fd_type fd;
	int s = PQsocket(db->conn);

	if (s == db->sock && db->wsi)
		return 0;
	db_detach_socket(db);
	if (s < 0)
		return -1;
	fd.filefd = dup(s);
	if (fd.filefd < 0)
		return -1;
	db->wsi = lws_adopt_descriptor_vhost(db->srv->internal_vh,
					     LWS_ADOPT_RAW_FILE_DESC, fd,
					     "remsim-db", NULL);
	if (!db->wsi)
		return -1;	/* lws closed our dup */
	lws_set_opaque_user_data(db->wsi, db);
	db->sock = s;
	return 0;
}

static void db_migrated(struct db *db, const PGresult *res, void *arg)
{
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_lost(db, "LISTEN failed");
		return;
	}
	db->up_since_ms = link_now_ms();
	db_set_state(db, DB_UP, "schema current, listening");
	if (db->cb.on_up)
		db->cb.on_up(db, db->cb.user);
}

static int db_check(struct db *db, const PGresult *res, const char *what)
{
	char msg[512];

	if (res && (PQresultStatus(res) == PGRES_COMMAND_OK ||
		    PQresultStatus(res) == PGRES_TUPLES_OK))
		return 0;
	snprintf(msg, sizeof(msg), "%s: %s", what,
		 res ? PQresultErrorMessage(res) : "connection lost");
	db_lost(db, msg);
	return -1;
}

static void db_step_ok(struct db *db, const PGresult *res, void *arg)
{
	(void)arg;
	db_check(db, res, "schema migration");
}

/* Knows which migrations are applied: queue the rest, then LISTEN. */
static void db_have_versions(struct db *db, const PGresult *res, void *arg)
{
	char listen[128];

	if (db_check(db, res, "reading schema_migrations"))
		return;
	for (int i = 0; i < db_migrations_count; i++) {
		const struct db_migration *m = &db_migrations[i];
		char version[16];
		const char *params[2] = { version, m->name };
		int applied = 0;

		for (int r = 0; r < PQntuples(res); r++)
			if (atoi(PQgetvalue(res, r, 0)) == m->version)
				applied = 1;
		if (applied)
			continue;
		LOGN("db", "applying schema migration %03d_%s", m->version,
		     m->name);
		snprintf(version, sizeof(version), "%d", m->version);
		if (db_enqueue_internal(db, m->sql, -1, NULL, db_step_ok) ||
		    db_enqueue_internal(db, "INSERT INTO schema_migrations "
					"(version, name) VALUES ($1, $2)",
					2, params, db_step_ok))
			return;
	}
	if (db_enqueue_internal(db, "COMMIT", 0, NULL, db_step_ok))
		return;
	for (const char *const *ch = db->channels; ch && *ch; ch++) {
		snprintf(listen, sizeof(listen), "LISTEN %s", *ch);
		if (db_enqueue_internal(db, listen, 0, NULL, db_step_ok))
			return;
	}
	db_enqueue_internal(db, "SELECT 1", 0, NULL, db_migrated);
}

static void db_start_migrations(struct db *db)
{
	static const char *const lock[] = { DB_MIGRATION_LOCK };

	db_set_state(db, DB_MIGRATING, "connected");
	if (db_enqueue_internal(db, "BEGIN", 0, NULL, db_step_ok) ||
	    /* a second server starting now waits here until we commit;
	     * even CREATE TABLE IF NOT EXISTS races without the lock */
	    db_enqueue_internal(db, "SELECT pg_advisory_xact_lock($1)", 1,
				lock, db_step_ok) ||
	    db_enqueue_internal(db,
			"CREATE TABLE IF NOT EXISTS schema_migrations ("
			"version integer PRIMARY KEY, name text NOT NULL, "
			"applied_at timestamptz NOT NULL DEFAULT now())",
			0, NULL, db_step_ok) ||
	    db_enqueue_internal(db, "SELECT version FROM schema_migrations",
				0, NULL, db_have_versions))
		return;
}

static void db_connect_poll(struct db *db)
{
	PostgresPollingStatusType st = PQconnectPoll(db->conn);

	if (st == PGRES_POLLING_FAILED) {
		db_lost(db, PQerrorMessage(db->conn));
		return;
	}
	/* libpq may move to another socket (next host, SSL retry) */
	if (db_adopt_socket(db)) {
		db_lost(db, "cannot watch the database socket");
		return;
	}
	if (st == PGRES_POLLING_WRITING)
		lws_callback_on_writable(db->wsi);
	if (st != PGRES_POLLING_OK)
		return;
	if (PQsetnonblocking(db->conn, 1)) {
		db_lost(db, PQerrorMessage(db->conn));
		return;
	}
	LOGN("db", "connected to PostgreSQL %d on %s", PQserverVersion(db->conn),
	     PQhost(db->conn));
	db_start_migrations(db);
}

/* PostgreSQL's NOTICEs and libpq's own messages: into our log, not stderr. */
static void db_notice(void *arg, const char *message)
{
	size_t n = strlen(message);

	while (n && message[n - 1] == '\n')
		n--;
	LOGI("db", "postgres: %.*s", (int)n, message);
}

static void db_connect(struct db *db)
{
	db->conn = PQconnectStart(db->conninfo);
	if (!db->conn) {
		db_lost(db, "out of memory");
		return;
	}
	PQsetNoticeProcessor(db->conn, db_notice, db);
	if (PQstatus(db->conn) == CONNECTION_BAD) {
		db_lost(db, PQerrorMessage(db->conn));
		return;
	}
	db_set_state(db, DB_CONNECTING, "connect");
	/* PQconnectPoll starts as if it had asked for writability */
	if (db_adopt_socket(db)) {
		db_lost(db, "cannot watch the database socket");
		return;
	}
	lws_callback_on_writable(db->wsi);
}

static void db_retry_due(lws_sorted_usec_list_t *sul)
{
	struct db *db = lws_container_of(sul, struct db, sul_retry);

	db->stats.reconnects++;
	db_connect(db);
}

static int db_callback(struct lws *wsi, enum lws_callback_reasons reason,
		       void *user, void *in, size_t len)
{
	struct db *db = lws_get_opaque_user_data(wsi);

	if (!db || db->wsi != wsi)
		return 0;	/* a socket we already let go of */
	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		if (db->state == DB_CONNECTING)
			db_connect_poll(db);
		else
			db_read(db);
		break;
	case LWS_CALLBACK_RAW_WRITEABLE_FILE:
		if (db->state == DB_CONNECTING)
			db_connect_poll(db);
		else if (db->conn && PQflush(db->conn) == 1)
			lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		db->wsi = NULL;
		db->sock = -1;
		if (db->conn)
			db_lost(db, "database socket closed");
		break;
	default:
		break;
	}
	return 0;
}

const struct lws_protocols db_protocol = {
	.name = "remsim-db",
	.callback = db_callback,
};

struct db *db_new(struct server *srv, const char *conninfo,
		  const char *const *listen_channels,
		  const struct db_callbacks *cb)
{
	struct db *db = calloc(1, sizeof(*db));

	if (!db)
		return NULL;
	db->srv = srv;
	db->conninfo = strdup(conninfo ? conninfo : "");
	db->channels = listen_channels;
	db->cb = *cb;
	db->sock = -1;
	link_backoff_init(&db->backoff, DB_RETRY_BASE_MS, DB_RETRY_CAP_MS,
			  DB_STABLE_MS);
	if (!db->conninfo) {
		free(db);
		return NULL;
	}
	return db;
}

int db_start(struct db *db)
{
	db_connect(db);
	return 0;
}

void db_free(struct db *db)
{
	if (!db)
		return;
	lws_sul_cancel(&db->sul_retry);
	db_detach_socket(db);
	if (db->conn)
		PQfinish(db->conn);
	PQclear(db->last);
	while (db->head) {
		struct db_query *q = db->head;

		db->head = q->next;
		db_query_free(q);
	}
	free(db->conninfo);
	free(db);
}

int db_is_up(const struct db *db)
{
	return db->state == DB_UP;
}

int db_is_idle(const struct db *db)
{
	return !db->head;
}

const struct db_stats *db_get_stats(const struct db *db)
{
	return &db->stats;
}
