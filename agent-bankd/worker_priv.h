/*
 * worker_priv: the worker's state, shared by worker.c (thread, socket, state
 * machine) and worker_client.c (what the client's RSPRO messages do).
 * Everything here runs on the worker's own thread.
 */
#ifndef BANKD_WORKER_PRIV_H
#define BANKD_WORKER_PRIV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>

#include "ipa.h"
#include "pcsc_card.h"
#include "worker.h"

struct worker {
	struct bankd *bd;
	unsigned idx;
	pthread_t thread;
	int wake_fd;
	atomic_bool probe_req;

	long state;			/* WorkerState_* */
	char who[128];
	int fd;
	char peer[64];
	struct ipa_reader rd;
	bool send_failed;

	bool identified;		/* connectClientReq accepted */
	struct rspro_client_slot client;
	struct client_auth_result auth;
	bool answered;			/* connectClientRes sent */
	bool mapped;
	struct rspro_bank_slot bank;
	struct pcsc_card card;
	int card_present;		/* -1 unknown */
	struct rspro_slot_status phys;	/* last clientSlotStatusInd */
	bool have_phys;

	int64_t deadline;		/* identify / mapping wait, -1 none */
	int64_t probe_deadline;		/* -1: no probe running */
};

const char *worker_state_name(long state);
void worker_set_who(struct worker *w);
/* Logs "old -> new (reason)" and reports the slot to the server. */
void worker_set_state(struct worker *w, long state, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void worker_post_report(struct worker *w);
/* Closes client and card, releases the slot: back to INIT. */
void worker_reset(struct worker *w, const char *reason);

/* Sending fails quietly (logged); the loop resets the worker after it. */
int worker_write(struct worker *w, const uint8_t *buf, size_t len);
int worker_send(struct worker *w, RsproPDU_t *pdu);
void worker_send_connect_res(struct worker *w, long result);
void worker_send_error(struct worker *w, ErrorSeverity_t sev,
		       ErrorCode_t code, const char *text);
/* Refuses a connect request: answer, log once, close. */
void worker_refuse(struct worker *w, long result, const char *why);

/* worker_client.c */
void worker_handle_pdu(struct worker *w, const uint8_t *data, size_t len);
void worker_check_mapping(struct worker *w);

#endif
