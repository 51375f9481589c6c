/*
 * db: the server's PostgreSQL connection, asynchronous and inside the
 * libwebsockets loop. Queries are queued and run one after the other; a
 * lost connection is retried with backoff while the server keeps serving
 * from memory. At every (re)connect the schema migrations are applied
 * (under an advisory lock, so two servers starting together are safe) and
 * the notification channels are listened to, then on_up runs.
 */
#ifndef REMSIM_DB_H
#define REMSIM_DB_H

#include <stdint.h>

#include <libpq-fe.h>

struct server;
struct db;

/*
 * Called once per query: res is its last result (check PQresultStatus), or
 * NULL when the connection went away before it completed. res is freed
 * after the call.
 */
typedef void (*db_result_cb)(struct db *db, const PGresult *res, void *arg);

struct db_callbacks {
	void (*on_up)(struct db *db, void *user);	/* migrated, listening */
	void (*on_down)(struct db *db, const char *reason, void *user);
	void (*on_notify)(struct db *db, const char *channel,
			  const char *payload, void *user);
	void *user;
};

struct db_migration {
	int version;
	const char *name;
	const char *sql;
};

/* Embedded sql/NNN_name.sql files, in order (generated at build time). */
extern const struct db_migration db_migrations[];
extern const int db_migrations_count;

struct db *db_new(struct server *srv, const char *conninfo,
		  const char *const *listen_channels,
		  const struct db_callbacks *cb);
void db_free(struct db *db);
int db_start(struct db *db);

int db_is_up(const struct db *db);
/* Nothing queued or in flight. */
int db_is_idle(const struct db *db);

/*
 * Queues a parameterised query (text parameters, NULL = SQL NULL). Returns
 * 0, or -1 when the database is down (cb is not called then).
 */
int db_query(struct db *db, const char *sql, int nparams,
	     const char *const *params, db_result_cb cb, void *arg);

/* Round-trip times of completed queries, for /metrics. */
struct db_stats {
	uint64_t queries;
	uint64_t errors;
	uint64_t reconnects;
	double last_rtt_ms;
};
const struct db_stats *db_get_stats(const struct db *db);

#endif
