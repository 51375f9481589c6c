/*
 * slot_status: what agents report about their slots. A bankd's
 * bankSlotStatusInd (card, contacts and, from remsim-bankd, worker state,
 * ATR and TPDU count) and a client's clientSlotStatusInd are checked
 * against who sent them and handed to the database write-back.
 */
#include "slot_status.h"

#include "log.h"
#include "writeback.h"

void slot_status_bank(struct writeback *wb, const char *who, uint16_t bank_id,
		      const BankSlotStatusInd_t *ind)
{
	struct rspro_bank_slot b;
	struct rspro_slot_status st;
	const char *ws = NULL;

	rspro_bank_slot_get(&ind->fromBankSlot, &b);
	if (b.bank_id != bank_id) {
		LOGE(who, "bankSlotStatusInd for bank %u ignored: this is "
		     "bank %u", b.bank_id, bank_id);
		return;
	}
	rspro_slot_status_get(&ind->slotPhysStatus, &st);
	if (ind->workerState) {
		ws = rspro_worker_state_name(*ind->workerState);
		if (!ws)
			LOGI(who, "slot %u: unknown worker state %ld ignored",
			     b.slot_nr, *ind->workerState);
	}
	LOGI(who, "slot %u: card %s, reset %s%s%s", b.slot_nr,
	     st.card_present < 0 ? "?" : st.card_present ? "present" : "absent",
	     st.reset_active ? "active" : "inactive", ws ? ", worker " : "",
	     ws ? ws : "");
	writeback_bank_slot_status(wb, &b, &st, ws,
				   ind->atr ? ind->atr->buf : NULL,
				   ind->atr ? (size_t)ind->atr->size : 0,
				   ind->tpduCount ? *ind->tpduCount : -1);
}

void slot_status_client(struct writeback *wb, const char *who,
			const struct rspro_client_slot *own,
			const ClientSlotStatusInd_t *ind)
{
	struct rspro_client_slot c;
	struct rspro_slot_status st;

	rspro_client_slot_get(&ind->fromClientSlot, &c);
	if (c.client_id != own->client_id || c.slot_nr != own->slot_nr) {
		LOGE(who, "clientSlotStatusInd for client %u:%u ignored: "
		     "this is client %u:%u", c.client_id, c.slot_nr,
		     own->client_id, own->slot_nr);
		return;
	}
	rspro_slot_status_get(&ind->slotPhysStatus, &st);
	LOGI(who, "modem side: reset %s, vcc %d, clock %d, card %d",
	     st.reset_active ? "active" : "inactive", st.vcc_present,
	     st.clk_active, st.card_present);
	writeback_client_slot_status(wb, &c, &st);
}
