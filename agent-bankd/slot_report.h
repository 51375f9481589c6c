/*
 * slot_report: what the bankd tells the server about each bank slot (worker
 * state, mapped client, card presence, ATR, TPDU count, the modem's reset
 * lines). Workers post changes without ever blocking on the server link; the
 * main thread drains them in order and sends one bankSlotStatusInd each.
 */
#ifndef BANKD_SLOT_REPORT_H
#define BANKD_SLOT_REPORT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rspro.h"

#define SLOT_REPORT_QUEUE	256
#define SLOT_REPORT_MAX_ATR	55

struct slot_status {
	uint16_t slot_nr;
	long worker_state;		/* WorkerState_* */
	bool has_client;
	struct rspro_client_slot client;
	int card_present;		/* -1 unknown, 0, 1 */
	size_t atr_len;
	uint8_t atr[SLOT_REPORT_MAX_ATR];
	struct rspro_slot_status phys;	/* the modem's lines, -1 unknown */
	uint64_t tpdu_count;		/* kept by slot_report itself */
};

struct slot_report {
	pthread_mutex_t lock;
	uint16_t num_slots;
	struct slot_status *current;	/* one per bank slot */
	struct slot_status queue[SLOT_REPORT_QUEUE];
	size_t head, count;
	bool overflow;		/* queue was full: resend everything */
	int wake_fd;		/* eventfd the main thread polls */
};

int slot_report_init(struct slot_report *r, uint16_t num_slots);
void slot_report_destroy(struct slot_report *r);

/* An empty slot: no worker on it, so its client may connect (ACCEPTING). */
void slot_status_idle(struct slot_status *s, uint16_t slot_nr);

/* Workers: record a change and queue it for the server. Never blocks. */
void slot_report_post(struct slot_report *r, const struct slot_status *s);
void slot_report_count_tpdu(struct slot_report *r, uint16_t slot_nr);

/*
 * Main thread: takes up to max queued changes. *all is set when changes were
 * lost to a full queue: the caller then sends slot_report_snapshot().
 */
size_t slot_report_take(struct slot_report *r, struct slot_status *out,
			size_t max, bool *all);
/* Copies all current statuses (num_slots entries). */
void slot_report_snapshot(struct slot_report *r, struct slot_status *out);
/* Drains the wake eventfd. */
void slot_report_clear_wake(struct slot_report *r);

#endif
