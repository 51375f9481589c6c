/*
 * slot_status: bank and client slot status indications, checked and
 * stored (bank_slots / client_slots runtime columns).
 */
#ifndef REMSIM_SLOT_STATUS_H
#define REMSIM_SLOT_STATUS_H

#include <stdint.h>

#include "rspro.h"

struct writeback;

/* From the bankd with bank_id; who names the connection in logs. */
void slot_status_bank(struct writeback *wb, const char *who, uint16_t bank_id,
		      const BankSlotStatusInd_t *ind);
/* From the client connected as *own. */
void slot_status_client(struct writeback *wb, const char *who,
			const struct rspro_client_slot *own,
			const ClientSlotStatusInd_t *ind);

#endif
