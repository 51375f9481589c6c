/*
 * rspro: constructors for all 21 RSPRO messages, DER encoding with a
 * constraint check first (we only ever send valid values), BER decoding
 * with the checks asn1c's decoder leaves out, and name tables.
 */
#include "rspro.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ipa.h"

#define ERRF(err, errlen, ...)                                               \
	do {                                                                 \
		if (err && errlen)                                           \
			snprintf(err, errlen, __VA_ARGS__);                  \
	} while (0)

void rspro_pdu_free(RsproPDU_t *pdu)
{
	if (pdu)
		ASN_STRUCT_FREE(asn_DEF_RsproPDU, pdu);
}

static RsproPDU_t *rspro_pdu_alloc(RsproPDUchoice_PR present)
{
	RsproPDU_t *pdu = calloc(1, sizeof(*pdu));

	if (!pdu)
		return NULL;
	pdu->version = RSPRO_VERSION;
	pdu->tag = 0;
	pdu->msg.present = present;
	return pdu;
}

/* Sets an OCTET STRING / IA5String; a NULL src leaves it empty. */
static int rspro_set_octets(OCTET_STRING_t *os, const void *src, size_t len)
{
	if (!src)
		return 0;
	return OCTET_STRING_fromBuf(os, src, (int)len);
}

static int rspro_set_string(OCTET_STRING_t *os, const char *s)
{
	return s ? rspro_set_octets(os, s, strlen(s)) : 0;
}

/* An OPTIONAL string: allocated only when s is given. */
static int rspro_set_opt_string(OCTET_STRING_t **os, const char *s)
{
	if (!s)
		return 0;
	*os = OCTET_STRING_new_fromBuf(&asn_DEF_IA5String, s, (int)strlen(s));
	return *os ? 0 : -1;
}

static int rspro_set_identity(ComponentIdentity_t *ci,
			      const struct rspro_identity *id)
{
	int rc = 0;

	ci->type = id->type;
	rc |= rspro_set_string(&ci->name, id->name);
	rc |= rspro_set_string(&ci->software, id->software);
	rc |= rspro_set_string(&ci->swVersion, id->sw_version);
	rc |= rspro_set_opt_string(&ci->hwManufacturer, id->hw_manufacturer);
	rc |= rspro_set_opt_string(&ci->hwModel, id->hw_model);
	rc |= rspro_set_opt_string(&ci->hwSerialNr, id->hw_serial);
	rc |= rspro_set_opt_string(&ci->hwVersion, id->hw_version);
	rc |= rspro_set_opt_string(&ci->fwVersion, id->fw_version);
	return rc;
}

static void rspro_set_client_slot(ClientSlot_t *cs,
				  const struct rspro_client_slot *c)
{
	cs->clientId = c->client_id;
	cs->slotNr = c->slot_nr;
}

static void rspro_set_bank_slot(BankSlot_t *bs, const struct rspro_bank_slot *b)
{
	bs->bankId = b->bank_id;
	bs->slotNr = b->slot_nr;
}

static void rspro_set_flags(TpduFlags_t *f, const struct rspro_tpdu_flags *in)
{
	if (!in)
		return;
	f->tpduHeaderPresent = in->hdr_present;
	f->finalPart = in->final_part;
	f->procByteContinueTx = in->proc_byte_continue_tx;
	f->procByteContinueRx = in->proc_byte_continue_rx;
}

static int rspro_set_opt_bool(BOOLEAN_t **b, int value)
{
	if (value < 0)
		return 0;
	*b = calloc(1, sizeof(**b));
	if (!*b)
		return -1;
	**b = value ? 1 : 0;
	return 0;
}

static int rspro_set_status(SlotPhysStatus_t *s,
			    const struct rspro_slot_status *st)
{
	int rc = 0;

	s->resetActive = st->reset_active;
	rc |= rspro_set_opt_bool(&s->vccPresent, st->vcc_present);
	rc |= rspro_set_opt_bool(&s->clkActive, st->clk_active);
	rc |= rspro_set_opt_bool(&s->cardPresent, st->card_present);
	return rc;
}

static int rspro_set_token(AuthToken_t **t, const char *token)
{
	return rspro_set_opt_string(t, token);
}

static int rspro_set_caps(RemsimCapabilities_t **out,
			  const struct rspro_caps *caps)
{
	RemsimCapabilities_t *c;
	int rc = 0;

	if (!caps)
		return 0;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	*out = c;
	c->protocolRevision = caps->revision;
	if (caps->server_pubkey) {
		c->serverPublicKey = OCTET_STRING_new_fromBuf(
			&asn_DEF_OCTET_STRING,
			(const char *)caps->server_pubkey, 32);
		rc |= c->serverPublicKey ? 0 : -1;
	}
	if (caps->server_key_id) {
		c->serverKeyId = OCTET_STRING_new_fromBuf(
			&asn_DEF_OCTET_STRING,
			(const char *)caps->server_key_id, 8);
		rc |= c->serverKeyId ? 0 : -1;
	}
	rc |= rspro_set_opt_bool(&c->authenticated, caps->authenticated);
	return rc;
}

/* Frees pdu and returns NULL when a constructor step failed. */
static RsproPDU_t *rspro_pdu_done(RsproPDU_t *pdu, int rc)
{
	if (rc) {
		rspro_pdu_free(pdu);
		return NULL;
	}
	return pdu;
}

#define PDU_NEW(var, alt)                                                    \
	RsproPDU_t *var = rspro_pdu_alloc(RsproPDUchoice_PR_##alt);          \
	if (!var)                                                            \
		return NULL

RsproPDU_t *rspro_gen_connect_bank_req(const struct rspro_identity *id,
				       uint16_t bank_id, uint16_t num_slots,
				       const char *token)
{
	PDU_NEW(pdu, connectBankReq);
	ConnectBankReq_t *m = &pdu->msg.choice.connectBankReq;
	int rc = rspro_set_identity(&m->identity, id);

	m->bankId = bank_id;
	m->numberOfSlots = num_slots;
	rc |= rspro_set_token(&m->authToken, token);
	return rspro_pdu_done(pdu, rc);
}

RsproPDU_t *rspro_gen_connect_bank_res(const struct rspro_identity *id,
				       ResultCode_t res,
				       const struct rspro_caps *caps)
{
	PDU_NEW(pdu, connectBankRes);
	ConnectBankRes_t *m = &pdu->msg.choice.connectBankRes;
	int rc = rspro_set_identity(&m->identity, id);

	m->result = res;
	rc |= rspro_set_caps(&m->capabilities, caps);
	return rspro_pdu_done(pdu, rc);
}

RsproPDU_t *rspro_gen_connect_client_req(const struct rspro_identity *id,
					 const struct rspro_client_slot *slot,
					 const char *token)
{
	PDU_NEW(pdu, connectClientReq);
	ConnectClientReq_t *m = &pdu->msg.choice.connectClientReq;
	int rc = rspro_set_identity(&m->identity, id);

	if (slot) {
		m->clientSlot = calloc(1, sizeof(*m->clientSlot));
		if (m->clientSlot)
			rspro_set_client_slot(m->clientSlot, slot);
		else
			rc = -1;
	}
	rc |= rspro_set_token(&m->authToken, token);
	return rspro_pdu_done(pdu, rc);
}

RsproPDU_t *rspro_gen_connect_client_res(const struct rspro_identity *id,
					 ResultCode_t res,
					 const struct rspro_caps *caps)
{
	PDU_NEW(pdu, connectClientRes);
	ConnectClientRes_t *m = &pdu->msg.choice.connectClientRes;
	int rc = rspro_set_identity(&m->identity, id);

	/* osmo-remsim's constant; its clients never look at it. */
	pdu->tag = RSPRO_TAG_CONNECT_CLIENT_RES;
	m->result = res;
	rc |= rspro_set_caps(&m->capabilities, caps);
	return rspro_pdu_done(pdu, rc);
}

RsproPDU_t *rspro_gen_create_mapping_req(const struct rspro_client_slot *c,
					 const struct rspro_bank_slot *b)
{
	PDU_NEW(pdu, createMappingReq);
	rspro_set_client_slot(&pdu->msg.choice.createMappingReq.client, c);
	rspro_set_bank_slot(&pdu->msg.choice.createMappingReq.bank, b);
	return pdu;
}

RsproPDU_t *rspro_gen_remove_mapping_req(const struct rspro_client_slot *c,
					 const struct rspro_bank_slot *b)
{
	PDU_NEW(pdu, removeMappingReq);
	rspro_set_client_slot(&pdu->msg.choice.removeMappingReq.client, c);
	rspro_set_bank_slot(&pdu->msg.choice.removeMappingReq.bank, b);
	return pdu;
}

RsproPDU_t *rspro_gen_config_client_id_req(const struct rspro_client_slot *c)
{
	PDU_NEW(pdu, configClientIdReq);
	rspro_set_client_slot(&pdu->msg.choice.configClientIdReq.clientSlot, c);
	return pdu;
}

RsproPDU_t *rspro_gen_config_client_bank_req(const struct rspro_bank_slot *b,
					     const struct rspro_ip_port *bankd)
{
	PDU_NEW(pdu, configClientBankReq);
	ConfigClientBankReq_t *m = &pdu->msg.choice.configClientBankReq;
	int rc;

	rspro_set_bank_slot(&m->bankSlot, b);
	m->bankd.port = bankd->port;
	if (bankd->family == AF_INET6) {
		m->bankd.ip.present = IpAddress_PR_ipv6;
		rc = rspro_set_octets(&m->bankd.ip.choice.ipv6, bankd->addr, 16);
	} else {
		m->bankd.ip.present = IpAddress_PR_ipv4;
		rc = rspro_set_octets(&m->bankd.ip.choice.ipv4, bankd->addr, 4);
	}
	return rspro_pdu_done(pdu, rc);
}

RsproPDU_t *rspro_gen_error_ind(ComponentType_t sender, ErrorSeverity_t sev,
				ErrorCode_t code,
				const struct rspro_bank_slot *bank,
				const struct rspro_client_slot *client,
				const char *text)
{
	PDU_NEW(pdu, errorInd);
	ErrorInd_t *m = &pdu->msg.choice.errorInd;
	int rc = 0;

	m->sender = sender;
	m->severity = sev;
	m->code = code;
	if (bank) {
		m->bankSlot = calloc(1, sizeof(*m->bankSlot));
		if (m->bankSlot)
			rspro_set_bank_slot(m->bankSlot, bank);
		else
			rc = -1;
	}
	if (client) {
		m->clientSlot = calloc(1, sizeof(*m->clientSlot));
		if (m->clientSlot)
			rspro_set_client_slot(m->clientSlot, client);
		else
			rc = -1;
	}
	rc |= rspro_set_opt_string(&m->errorString, text);
	return rspro_pdu_done(pdu, rc);
}

RsproPDU_t *rspro_gen_reset_state_req(void)
{
	return rspro_pdu_alloc(RsproPDUchoice_PR_resetStateReq);
}

RsproPDU_t *rspro_gen_set_atr_req(const struct rspro_client_slot *c,
				  const uint8_t *atr, size_t len)
{
	PDU_NEW(pdu, setAtrReq);
	rspro_set_client_slot(&pdu->msg.choice.setAtrReq.slot, c);
	return rspro_pdu_done(pdu, rspro_set_octets(
				       &pdu->msg.choice.setAtrReq.atr, atr, len));
}

RsproPDU_t *rspro_gen_tpdu_modem2card(const struct rspro_client_slot *from,
				      const struct rspro_bank_slot *to,
				      const struct rspro_tpdu_flags *flags,
				      const uint8_t *data, size_t len)
{
	PDU_NEW(pdu, tpduModemToCard);
	TpduModemToCard_t *m = &pdu->msg.choice.tpduModemToCard;

	rspro_set_client_slot(&m->fromClientSlot, from);
	rspro_set_bank_slot(&m->toBankSlot, to);
	rspro_set_flags(&m->flags, flags);
	return rspro_pdu_done(pdu, rspro_set_octets(&m->data, data, len));
}

RsproPDU_t *rspro_gen_tpdu_card2modem(const struct rspro_bank_slot *from,
				      const struct rspro_client_slot *to,
				      const struct rspro_tpdu_flags *flags,
				      const uint8_t *data, size_t len)
{
	PDU_NEW(pdu, tpduCardToModem);
	TpduCardToModem_t *m = &pdu->msg.choice.tpduCardToModem;

	rspro_set_bank_slot(&m->fromBankSlot, from);
	rspro_set_client_slot(&m->toClientSlot, to);
	rspro_set_flags(&m->flags, flags);
	return rspro_pdu_done(pdu, rspro_set_octets(&m->data, data, len));
}

RsproPDU_t *rspro_gen_client_slot_status_ind(
	const struct rspro_client_slot *from, const struct rspro_bank_slot *to,
	const struct rspro_slot_status *st)
{
	PDU_NEW(pdu, clientSlotStatusInd);
	ClientSlotStatusInd_t *m = &pdu->msg.choice.clientSlotStatusInd;

	rspro_set_client_slot(&m->fromClientSlot, from);
	rspro_set_bank_slot(&m->toBankSlot, to);
	return rspro_pdu_done(pdu, rspro_set_status(&m->slotPhysStatus, st));
}

RsproPDU_t *rspro_gen_bank_slot_status_ind(
	const struct rspro_bank_slot *from, const struct rspro_client_slot *to,
	const struct rspro_slot_status *st)
{
	PDU_NEW(pdu, bankSlotStatusInd);
	BankSlotStatusInd_t *m = &pdu->msg.choice.bankSlotStatusInd;

	rspro_set_bank_slot(&m->fromBankSlot, from);
	rspro_set_client_slot(&m->toClientSlot, to);
	return rspro_pdu_done(pdu, rspro_set_status(&m->slotPhysStatus, st));
}

int rspro_connect_bank_req_set_port(RsproPDU_t *req, uint16_t port)
{
	ConnectBankReq_t *m = &req->msg.choice.connectBankReq;

	if (!m->bankdPort)
		m->bankdPort = calloc(1, sizeof(*m->bankdPort));
	if (!m->bankdPort)
		return -ENOMEM;
	*m->bankdPort = port;
	return 0;
}

RsproPDU_t *rspro_gen_bank_slot_report(const struct rspro_bank_slot *from,
				       const struct rspro_client_slot *to,
				       const struct rspro_slot_status *st,
				       const struct rspro_slot_report *r)
{
	RsproPDU_t *pdu = rspro_gen_bank_slot_status_ind(from, to, st);
	BankSlotStatusInd_t *m;
	int rc = 0;

	if (!pdu)
		return NULL;
	m = &pdu->msg.choice.bankSlotStatusInd;
	if (r->worker_state >= 0) {
		m->workerState = calloc(1, sizeof(*m->workerState));
		rc |= !m->workerState;
		if (m->workerState)
			*m->workerState = r->worker_state;
	}
	if (r->atr_len) {
		m->atr = calloc(1, sizeof(*m->atr));
		rc |= !m->atr || OCTET_STRING_fromBuf(m->atr,
				(const char *)r->atr, (int)r->atr_len);
	}
	if (r->tpdu_count >= 0) {
		m->tpduCount = calloc(1, sizeof(*m->tpduCount));
		rc |= !m->tpduCount;
		if (m->tpduCount)
			*m->tpduCount = r->tpdu_count;
	}
	return rspro_pdu_done(pdu, rc);
}

/* The *Res messages that carry nothing but a result code. */
#define RSPRO_GEN_RESULT_ONLY(fn, alt)                                       \
	RsproPDU_t *fn(ResultCode_t res)                                     \
	{                                                                    \
		PDU_NEW(pdu, alt);                                           \
		pdu->msg.choice.alt.result = res;                            \
		return pdu;                                                  \
	}

RSPRO_GEN_RESULT_ONLY(rspro_gen_create_mapping_res, createMappingRes)
RSPRO_GEN_RESULT_ONLY(rspro_gen_remove_mapping_res, removeMappingRes)
RSPRO_GEN_RESULT_ONLY(rspro_gen_config_client_id_res, configClientIdRes)
RSPRO_GEN_RESULT_ONLY(rspro_gen_config_client_bank_res, configClientBankRes)
RSPRO_GEN_RESULT_ONLY(rspro_gen_reset_state_res, resetStateRes)
RSPRO_GEN_RESULT_ONLY(rspro_gen_set_atr_res, setAtrRes)

/* asn_check_constraints() wants a writable length pointer. */
static int rspro_check(const RsproPDU_t *pdu, char *err, size_t errlen)
{
	char why[160] = "";
	size_t whylen = sizeof(why);

	if (asn_check_constraints(&asn_DEF_RsproPDU, pdu, why, &whylen)) {
		ERRF(err, errlen, "constraint violated: %s", why);
		return RSPRO_ERR_CONSTRAINT;
	}
	return 0;
}

ssize_t rspro_encode(const RsproPDU_t *pdu, uint8_t *buf, size_t size,
		     char *err, size_t errlen)
{
	asn_enc_rval_t er;
	int rc;

	if (!pdu) {
		ERRF(err, errlen, "no PDU");
		return RSPRO_ERR_INVALID;
	}
	rc = rspro_check(pdu, err, errlen);
	if (rc)
		return rc;
	if (size > RSPRO_MAX_PDU)
		size = RSPRO_MAX_PDU;
	er = der_encode_to_buffer(&asn_DEF_RsproPDU, (void *)pdu, buf, size);
	if (er.encoded < 0) {
		ERRF(err, errlen, "%s does not fit %zu bytes",
		     rspro_pdu_name(pdu), size);
		return RSPRO_ERR_TOO_BIG;
	}
	return er.encoded;
}

ssize_t rspro_encode_ipa(const RsproPDU_t *pdu, uint8_t *buf, size_t size,
			 char *err, size_t errlen)
{
	ssize_t n;

	if (size < IPA_HDR_LEN + 1) {
		ERRF(err, errlen, "buffer too small");
		return RSPRO_ERR_TOO_BIG;
	}
	n = rspro_encode(pdu, buf + IPA_HDR_LEN + 1, size - IPA_HDR_LEN - 1,
			 err, errlen);
	if (n < 0)
		return n;
	ipa_write_header(buf, IPA_STREAM_OSMO, IPA_OSMO_EXT_RSPRO, (size_t)n);
	return n + IPA_HDR_LEN + 1;
}

int rspro_decode(const uint8_t *buf, size_t len, RsproPDU_t **out,
		 char *err, size_t errlen)
{
	RsproPDU_t *pdu = NULL;
	asn_dec_rval_t dr;
	int rc;

	*out = NULL;
	dr = ber_decode(NULL, &asn_DEF_RsproPDU, (void **)&pdu, buf, len);
	if (dr.code != RC_OK) {
		ERRF(err, errlen, "%s BER at byte %zu of %zu",
		     dr.code == RC_WMORE ? "truncated" : "malformed",
		     dr.consumed, len);
		rspro_pdu_free(pdu);
		return RSPRO_ERR_MALFORMED;
	}
	if (dr.consumed != len) {
		ERRF(err, errlen, "%zu trailing bytes after the PDU",
		     len - dr.consumed);
		rspro_pdu_free(pdu);
		return RSPRO_ERR_TRAILING;
	}
	/* asn1c skips unknown CHOICE alternatives and leaves PR_NOTHING. */
	if (pdu->msg.present == RsproPDUchoice_PR_NOTHING) {
		ERRF(err, errlen, "unknown RSPRO message type");
		rspro_pdu_free(pdu);
		return RSPRO_ERR_UNKNOWN_MSG;
	}
	rc = rspro_check(pdu, err, errlen);
	if (rc) {
		rspro_pdu_free(pdu);
		return rc;
	}
	*out = pdu;
	if (pdu->version != RSPRO_VERSION) {
		ERRF(err, errlen, "RSPRO version %ld, expected %d",
		     pdu->version, RSPRO_VERSION);
		return RSPRO_ERR_VERSION;
	}
	return 0;
}

const char *rspro_strerror(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case RSPRO_ERR_MALFORMED:
		return "malformed PDU";
	case RSPRO_ERR_TRAILING:
		return "trailing bytes after PDU";
	case RSPRO_ERR_CONSTRAINT:
		return "value out of range";
	case RSPRO_ERR_VERSION:
		return "unsupported RSPRO version";
	case RSPRO_ERR_UNKNOWN_MSG:
		return "unknown message type";
	case RSPRO_ERR_TOO_BIG:
		return "PDU too big";
	case RSPRO_ERR_INVALID:
		return "invalid input";
	case RSPRO_ERR_NOMEM:
		return "out of memory";
	default:
		return "unknown error";
	}
}

const char *rspro_msg_name(RsproPDUchoice_PR present)
{
	const asn_TYPE_descriptor_t *td = &asn_DEF_RsproPDUchoice;

	if (present <= RsproPDUchoice_PR_NOTHING ||
	    (int)present > td->elements_count)
		return "unknown";
	return td->elements[present - 1].name;
}

const char *rspro_pdu_name(const RsproPDU_t *pdu)
{
	return rspro_msg_name(pdu->msg.present);
}

/* Name of an ENUMERATED value, from the asn1c value map. */
static const char *rspro_enum_name(const asn_TYPE_descriptor_t *td, long v)
{
	const asn_INTEGER_specifics_t *spec = td->specifics;

	for (int i = 0; spec && i < spec->map_count; i++)
		if (spec->value2enum[i].nat_value == v)
			return spec->value2enum[i].enum_name;
	return NULL;
}

const char *rspro_result_name(long result)
{
	return rspro_enum_name(&asn_DEF_ResultCode, result);
}

const char *rspro_component_type_name(long type)
{
	return rspro_enum_name(&asn_DEF_ComponentType, type);
}

/* The names the logs, the database and the API use ("CONNECTED_CLIENT"). */
const char *rspro_worker_state_name(long state)
{
	static const char *const names[] = {
		[WorkerState_init] = "INIT",
		[WorkerState_accepting] = "ACCEPTING",
		[WorkerState_connectedWaitId] = "CONNECTED_WAIT_ID",
		[WorkerState_connectedClient] = "CONNECTED_CLIENT",
		[WorkerState_connectedClientMapped] = "CONNECTED_CLIENT_MAPPED",
		[WorkerState_connectedClientMappedCard] =
			"CONNECTED_CLIENT_MAPPED_CARD",
		[WorkerState_connectedServer] = "CONNECTED_SERVER",
	};

	if (state < 0 || state >= (long)(sizeof(names) / sizeof(names[0])))
		return NULL;
	return names[state];
}

long rspro_pdu_result(const RsproPDU_t *pdu)
{
	const RsproPDUchoice_t *m = &pdu->msg;

	switch (m->present) {
	case RsproPDUchoice_PR_connectBankRes:
		return m->choice.connectBankRes.result;
	case RsproPDUchoice_PR_connectClientRes:
		return m->choice.connectClientRes.result;
	case RsproPDUchoice_PR_createMappingRes:
		return m->choice.createMappingRes.result;
	case RsproPDUchoice_PR_removeMappingRes:
		return m->choice.removeMappingRes.result;
	case RsproPDUchoice_PR_configClientIdRes:
		return m->choice.configClientIdRes.result;
	case RsproPDUchoice_PR_configClientBankRes:
		return m->choice.configClientBankRes.result;
	case RsproPDUchoice_PR_resetStateRes:
		return m->choice.resetStateRes.result;
	case RsproPDUchoice_PR_setAtrRes:
		return m->choice.setAtrRes.result;
	default:
		return -1;
	}
}

void rspro_client_slot_get(const ClientSlot_t *in, struct rspro_client_slot *out)
{
	out->client_id = (uint16_t)in->clientId;
	out->slot_nr = (uint16_t)in->slotNr;
}

void rspro_bank_slot_get(const BankSlot_t *in, struct rspro_bank_slot *out)
{
	out->bank_id = (uint16_t)in->bankId;
	out->slot_nr = (uint16_t)in->slotNr;
}

static int rspro_opt_bool_get(const BOOLEAN_t *b)
{
	return b ? !!*b : -1;
}

void rspro_slot_status_get(const SlotPhysStatus_t *in,
			   struct rspro_slot_status *out)
{
	out->reset_active = !!in->resetActive;
	out->vcc_present = rspro_opt_bool_get(in->vccPresent);
	out->clk_active = rspro_opt_bool_get(in->clkActive);
	out->card_present = rspro_opt_bool_get(in->cardPresent);
}
