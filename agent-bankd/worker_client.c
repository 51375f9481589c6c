/*
 * worker_client: what a worker does with its client's RSPRO messages:
 * connectClientReq (token, duplicate, mapping, card), tpduModemToCard (checks
 * and the PC/SC transmit), clientSlotStatusInd (card resets), setAtrRes.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "hex.h"
#include "link.h"
#include "log.h"
#include "worker_priv.h"

#define TPDU_MIN_LEN		5	/* CLA INS P1 P2 P3 */
#define TPDU_MAX_LEN		260	/* header + 255 data bytes */

/* ---- card --------------------------------------------------------------- */

/* The client has a mapping: open its card and answer the connect. */
static void worker_take_slot(struct worker *w, uint16_t slot_nr)
{
	char err[400], atr[2 * PCSC_CARD_MAX_ATR + 1];
	int rc;

	w->mapped = true;
	w->bank.bank_id = w->bd->cfg.bank_id;
	w->bank.slot_nr = slot_nr;
	worker_set_who(w);
	worker_set_state(w, WorkerState_connectedClientMapped,
			 "mapped to bank slot %u", slot_nr);
	rc = pcsc_card_open(&w->card, &w->bd->readers, w->bank.bank_id,
			    slot_nr, w->bd->cfg.shared_pcsc, err, sizeof(err));
	if (rc) {
		w->card_present = rc == PCSC_CARD_ERR_NO_CARD ? 0 : -1;
		worker_post_report(w);
		worker_refuse(w, ResultCode_cardNotPresent, err);
		return;
	}
	w->card_present = 1;
	hex_encode(atr, w->card.atr, w->card.atr_len);
	worker_set_state(w, WorkerState_connectedClientMappedCard,
			 "reader \"%s\", ATR %s", w->card.reader, atr);
	worker_send_connect_res(w, ResultCode_ok);
	w->answered = true;
	w->deadline = -1;
	worker_send(w, rspro_gen_set_atr_req(&w->client, w->card.atr,
					     w->card.atr_len));
}

/* After a wake-up or a connect: is the client's mapping what we serve? */
void worker_check_mapping(struct worker *w)
{
	uint16_t slot_nr;
	int rc;

	if (!w->identified)
		return;
	rc = slotmap_find_client(&w->bd->map, &w->client, &slot_nr);
	if (w->state == WorkerState_connectedClient) {
		if (!rc)
			worker_take_slot(w, slot_nr);
		return;
	}
	if (!w->mapped)
		return;
	if (rc)
		worker_reset(w, "mapping removed");
	else if (slot_nr != w->bank.slot_nr)
		worker_reset(w, "mapping moved to another bank slot");
}

/* ---- messages from the client ------------------------------------------ */

static void worker_handle_connect(struct worker *w,
				  const ConnectClientReq_t *req)
{
	unsigned holder;
	char why[200];

	if (w->identified) {
		/* as osmo-remsim 1.1, but the link stays up */
		LOGE(w->who, "repeated connectClientReq: refused "
		     "illegalClientId");
		worker_send_connect_res(w, ResultCode_illegalClientId);
		return;
	}
	if (req->identity.type == ComponentType_remsimServer) {
		worker_set_state(w, WorkerState_connectedServer,
				 "peer identifies as a server");
		worker_reset(w, "a server has nothing to do on the client port");
		return;
	}
	if (req->identity.type != ComponentType_remsimClient) {
		LOGE(w->who, "connectClientReq from a %s: closing",
		     rspro_component_type_name(req->identity.type) ?
		     rspro_component_type_name(req->identity.type) : "?");
		worker_reset(w, "wrong identity type");
		return;
	}
	if (!req->clientSlot) {
		worker_refuse(w, ResultCode_illegalClientId,
			      "connectClientReq without a client slot");
		return;
	}
	rspro_client_slot_get(req->clientSlot, &w->client);
	snprintf(w->who, sizeof(w->who), "worker %u client %u:%u @%s", w->idx,
		 w->client.client_id, w->client.slot_nr, w->peer);
	client_auth_check(&w->bd->auth, req->authToken, w->client.client_id,
			  &w->auth);
	if (w->auth.result != ResultCode_ok) {
		worker_refuse(w, w->auth.result, w->auth.why);
		return;
	}
	if (slotmap_claim(&w->bd->map, &w->client, w->idx, &holder)) {
		snprintf(why, sizeof(why), "client %u:%u is already connected "
			 "on worker %u (probing it with a PING)",
			 w->client.client_id, w->client.slot_nr, holder);
		/* a dead first connection loses its claim within 3 s */
		atomic_store(&w->bd->workers[holder]->probe_req, true);
		workers_wake_client(w->bd, &w->client);
		worker_refuse(w, ResultCode_identityInUse, why);
		return;
	}
	w->identified = true;
	w->deadline = link_now_ms() + w->bd->cfg.map_wait_ms;
	worker_set_state(w, WorkerState_connectedClient, "connectClientReq, %s",
			 w->auth.why);
	worker_check_mapping(w);
}

static bool client_eq(const struct rspro_client_slot *a,
		      const struct rspro_client_slot *b)
{
	return a->client_id == b->client_id && a->slot_nr == b->slot_nr;
}

static void worker_handle_tpdu(struct worker *w,
			       const TpduModemToCard_t *t)
{
	uint8_t resp[PCSC_CARD_MAX_RESP];
	size_t resp_len = sizeof(resp);
	struct rspro_client_slot from;
	struct rspro_bank_slot to;
	struct rspro_tpdu_flags flags = { 0 };
	char why[200], err[300];
	size_t len = (size_t)t->data.size;
	int rc;

	rspro_client_slot_get(&t->fromClientSlot, &from);
	rspro_bank_slot_get(&t->toBankSlot, &to);
	if (w->state != WorkerState_connectedClientMappedCard) {
		snprintf(why, sizeof(why), "TPDU refused: no card open (%s)",
			 worker_state_name(w->state));
		LOGE(w->who, "%s", why);
		worker_send_error(w, ErrorSeverity_minor,
				  ErrorCode_unknownClientConnected, why);
		return;
	}
	if (!client_eq(&from, &w->client) || to.bank_id != w->bank.bank_id ||
	    to.slot_nr != w->bank.slot_nr) {
		snprintf(why, sizeof(why), "TPDU refused: from client %u:%u to "
			 "bank %u slot %u, but this link is client %u:%u <-> "
			 "bank %u slot %u", from.client_id, from.slot_nr,
			 to.bank_id, to.slot_nr, w->client.client_id,
			 w->client.slot_nr, w->bank.bank_id, w->bank.slot_nr);
		LOGE(w->who, "%s", why);
		worker_send_error(w, ErrorSeverity_minor,
				  ErrorCode_unknownClientConnected, why);
		return;
	}
	if (len < TPDU_MIN_LEN || len > TPDU_MAX_LEN) {
		/* no ErrorCode fits; the text says what was wrong */
		snprintf(why, sizeof(why), "TPDU refused: %zu bytes (a T=0 "
			 "TPDU has %d..%d)", len, TPDU_MIN_LEN, TPDU_MAX_LEN);
		LOGE(w->who, "%s", why);
		worker_send_error(w, ErrorSeverity_minor,
				  ErrorCode_unexpectedProtocolVersion, why);
		return;
	}
	if (log_get_level() >= LOG_DEBUG) {
		char hex[2 * TPDU_MAX_LEN + 1];

		hex_encode(hex, t->data.buf, len);
		LOGD(w->who, "C-TPDU %s", hex);
	}
	rc = pcsc_card_transmit(&w->card, t->data.buf, len, resp, &resp_len,
				err, sizeof(err));
	if (rc) {
		LOGE(w->who, "card I/O error: %s", err);
		if (rc == PCSC_CARD_ERR_NO_CARD)
			w->card_present = 0;
		worker_send_error(w, ErrorSeverity_major,
				  ErrorCode_unexpectedDisconnect, err);
		worker_reset(w, "card I/O error");
		return;
	}
	slot_report_count_tpdu(&w->bd->report, w->bank.slot_nr);
	if (log_get_level() >= LOG_DEBUG) {
		char hex[2 * PCSC_CARD_MAX_RESP + 1];

		hex_encode(hex, resp, resp_len);
		LOGD(w->who, "R-TPDU %s", hex);
	}
	worker_send(w, rspro_gen_tpdu_card2modem(&to, &from, &flags, resp,
						 resp_len));
}

static int bool_opt(const BOOLEAN_t *b)
{
	return b ? (*b ? 1 : 0) : -1;
}

/*
 * The modem's reset lines: edge-triggered as osmo-remsim 1.1 (a cold reset
 * when VCC goes away, a warm one when RST becomes active), because resetting
 * on every indication locks pcscd up. A new ATR is sent to the client.
 */
static void worker_handle_status(struct worker *w,
				 const ClientSlotStatusInd_t *s)
{
	const SlotPhysStatus_t *p = &s->slotPhysStatus;
	struct rspro_slot_status now = {
		.reset_active = p->resetActive != 0,
		.vcc_present = bool_opt(p->vccPresent),
		.clk_active = bool_opt(p->clkActive),
		.card_present = bool_opt(p->cardPresent),
	};
	bool prev_vcc = w->have_phys ? w->phys.vcc_present != 0 : true;
	bool prev_rst = w->have_phys ? w->phys.reset_active : false;
	bool cold = prev_vcc && now.vcc_present == 0;
	bool warm = !cold && !prev_rst && now.reset_active;
	uint8_t old_atr[PCSC_CARD_MAX_ATR];
	size_t old_len = w->card.atr_len;
	char err[300], atr[2 * PCSC_CARD_MAX_ATR + 1];

	w->phys = now;
	w->have_phys = true;
	if ((!cold && !warm) ||
	    w->state != WorkerState_connectedClientMappedCard) {
		worker_post_report(w);
		return;
	}
	memcpy(old_atr, w->card.atr, old_len);
	if (pcsc_card_reset(&w->card, cold, w->bd->cfg.shared_pcsc, err,
			    sizeof(err))) {
		LOGE(w->who, "%s reset failed: %s", cold ? "cold" : "warm",
		     err);
		worker_reset(w, "card reset failed");
		return;
	}
	hex_encode(atr, w->card.atr, w->card.atr_len);
	LOGN(w->who, "%s reset of the card (modem %s), ATR %s",
	     cold ? "cold" : "warm", cold ? "VCC off" : "RST active", atr);
	worker_post_report(w);
	if (old_len != w->card.atr_len ||
	    memcmp(old_atr, w->card.atr, old_len))
		worker_send(w, rspro_gen_set_atr_req(&w->client, w->card.atr,
						     w->card.atr_len));
}

void worker_handle_pdu(struct worker *w, const uint8_t *data, size_t len)
{
	RsproPDU_t *pdu = NULL;
	char err[200];
	int rc = rspro_decode(data, len, &pdu, err, sizeof(err));

	if (rc == RSPRO_ERR_UNKNOWN_MSG) {
		LOGI(w->who, "ignoring %s", err);
		return;
	}
	if (rc && rc != RSPRO_ERR_VERSION) {
		LOGE(w->who, "bad RSPRO PDU (%s): %s", rspro_strerror(rc), err);
		rspro_pdu_free(pdu);
		worker_reset(w, "bad RSPRO PDU");
		return;
	}
	LOGD(w->who, "rx %s", rspro_pdu_name(pdu));
	switch (pdu->msg.present) {
	case RsproPDUchoice_PR_connectClientReq:
		worker_handle_connect(w, &pdu->msg.choice.connectClientReq);
		break;
	case RsproPDUchoice_PR_tpduModemToCard:
		worker_handle_tpdu(w, &pdu->msg.choice.tpduModemToCard);
		break;
	case RsproPDUchoice_PR_clientSlotStatusInd:
		worker_handle_status(w, &pdu->msg.choice.clientSlotStatusInd);
		break;
	case RsproPDUchoice_PR_setAtrRes:
		LOGI(w->who, "setAtrRes %s",
		     rspro_result_name(pdu->msg.choice.setAtrRes.result) ?
		     rspro_result_name(pdu->msg.choice.setAtrRes.result) : "?");
		break;
	default:
		/* osmo-remsim closes here; an unexpected message is no harm */
		LOGI(w->who, "%s not handled: ignored", rspro_pdu_name(pdu));
		break;
	}
	rspro_pdu_free(pdu);
}

