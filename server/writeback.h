/*
 * writeback: the runtime state the server writes back to PostgreSQL (who
 * is online, from where, each mapping's state), collected for a few
 * milliseconds and written in one statement per table. 10,000 agents
 * connecting at once are then a handful of queries, not 10,000 round
 * trips that would hold up every API request behind them.
 */
#ifndef REMSIM_WRITEBACK_H
#define REMSIM_WRITEBACK_H

#include <stdint.h>

#include <jansson.h>

#include "rspro.h"

struct server;
struct writeback;

struct writeback *writeback_new(struct server *srv);
void writeback_free(struct writeback *wb);

/* Record the latest value; the next flush writes it (last one wins). */
void writeback_map_state(struct writeback *wb, const struct rspro_bank_slot *b,
			 const struct rspro_client_slot *c, const char *state);
/* authenticated: 1 token checked, 0 admitted without one, -1 auth off */
void writeback_bankd(struct writeback *wb, uint16_t bank_id, int online,
		     int authenticated, const char *peer, uint16_t num_slots,
		     const json_t *component);
void writeback_client(struct writeback *wb, const struct rspro_client_slot *s,
		      int online, int authenticated, const char *peer,
		      const json_t *component);

/*
 * Slot status indications. Bank side: worker_state NULL, atr_len 0 and
 * tpdu_count -1 mean "not reported" (osmo-remsim-bankd reports none).
 */
void writeback_bank_slot_status(struct writeback *wb,
				const struct rspro_bank_slot *b,
				const struct rspro_slot_status *st,
				const char *worker_state, const uint8_t *atr,
				size_t atr_len, long tpdu_count);
void writeback_client_slot_status(struct writeback *wb,
				  const struct rspro_client_slot *c,
				  const struct rspro_slot_status *st);

/* Queue everything pending now (shutdown, or the database came back). */
void writeback_flush(struct writeback *wb);
/* Shutting down: later changes are dropped, no timer is left behind. */
void writeback_close(struct writeback *wb);

#endif
