/*
 * rspro: building, encoding and decoding RSPRO PDUs (the asn1c types of
 * asn1/RSPRO.asn), their names, and a JSON rendering for logs, the admin
 * feed and remsimctl. Every constructor returns a PDU owned by the caller
 * (rspro_pdu_free()), with version 2 and OperationTag 0 as osmo-remsim sends.
 */
#ifndef REMSIM_RSPRO_H
#define REMSIM_RSPRO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "RsproPDU.h"

#define RSPRO_VERSION		2
#define RSPRO_MAX_ID		1023
#define RSPRO_TOKEN_MAX		512
/* OperationTag osmo-remsim puts into every connectClientRes. */
#define RSPRO_TAG_CONNECT_CLIENT_RES	2342

/* Decoder and encoder results (negative). */
enum rspro_error {
	RSPRO_ERR_MALFORMED = -1,	/* not valid BER for RsproPDU */
	RSPRO_ERR_TRAILING = -2,	/* bytes left after the PDU */
	RSPRO_ERR_CONSTRAINT = -3,	/* out-of-range id, bad size, ... */
	RSPRO_ERR_VERSION = -4,		/* decoded, but version is not 2 */
	RSPRO_ERR_UNKNOWN_MSG = -5,	/* a message type we do not know */
	RSPRO_ERR_TOO_BIG = -6,		/* does not fit the buffer / limit */
	RSPRO_ERR_INVALID = -7,		/* bad argument or JSON */
	RSPRO_ERR_NOMEM = -8,
};

struct rspro_identity {
	ComponentType_t type;
	const char *name;
	const char *software;
	const char *sw_version;
	/* optional, NULL when absent */
	const char *hw_manufacturer;
	const char *hw_model;
	const char *hw_serial;
	const char *hw_version;
	const char *fw_version;
};

struct rspro_client_slot {
	uint16_t client_id;
	uint16_t slot_nr;
};

struct rspro_bank_slot {
	uint16_t bank_id;
	uint16_t slot_nr;
};

struct rspro_tpdu_flags {
	bool hdr_present;
	bool final_part;
	bool proc_byte_continue_tx;
	bool proc_byte_continue_rx;
};

/* SlotPhysStatus: the optional fields are -1 when absent, else 0/1. */
struct rspro_slot_status {
	bool reset_active;
	int vcc_present;
	int clk_active;
	int card_present;
};

/* A bankd address as sent in configClientBankReq. */
struct rspro_ip_port {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];	/* 4 or 16 bytes, network order */
	uint16_t port;		/* 0 = "no bankd, disconnect" */
};

/* remsim's connect response extension (RemsimCapabilities). */
struct rspro_caps {
	uint8_t revision;
	const uint8_t *server_pubkey;	/* 32 bytes or NULL */
	const uint8_t *server_key_id;	/* 8 bytes or NULL */
	int authenticated;		/* -1 absent, 0/1 */
};

#define RSPRO_REMSIM_REVISION	1

void rspro_pdu_free(RsproPDU_t *pdu);

/* Constructors, one per message type (NULL only on allocation failure). */
RsproPDU_t *rspro_gen_connect_bank_req(const struct rspro_identity *id,
				       uint16_t bank_id, uint16_t num_slots,
				       const char *token);
RsproPDU_t *rspro_gen_connect_bank_res(const struct rspro_identity *id,
				       ResultCode_t res,
				       const struct rspro_caps *caps);
RsproPDU_t *rspro_gen_connect_client_req(const struct rspro_identity *id,
					 const struct rspro_client_slot *slot,
					 const char *token);
RsproPDU_t *rspro_gen_connect_client_res(const struct rspro_identity *id,
					 ResultCode_t res,
					 const struct rspro_caps *caps);
RsproPDU_t *rspro_gen_create_mapping_req(const struct rspro_client_slot *c,
					 const struct rspro_bank_slot *b);
RsproPDU_t *rspro_gen_create_mapping_res(ResultCode_t res);
RsproPDU_t *rspro_gen_remove_mapping_req(const struct rspro_client_slot *c,
					 const struct rspro_bank_slot *b);
RsproPDU_t *rspro_gen_remove_mapping_res(ResultCode_t res);
RsproPDU_t *rspro_gen_config_client_id_req(const struct rspro_client_slot *c);
RsproPDU_t *rspro_gen_config_client_id_res(ResultCode_t res);
RsproPDU_t *rspro_gen_config_client_bank_req(const struct rspro_bank_slot *b,
					     const struct rspro_ip_port *bankd);
RsproPDU_t *rspro_gen_config_client_bank_res(ResultCode_t res);
RsproPDU_t *rspro_gen_error_ind(ComponentType_t sender, ErrorSeverity_t sev,
				ErrorCode_t code,
				const struct rspro_bank_slot *bank,
				const struct rspro_client_slot *client,
				const char *text);
RsproPDU_t *rspro_gen_reset_state_req(void);
RsproPDU_t *rspro_gen_reset_state_res(ResultCode_t res);
RsproPDU_t *rspro_gen_set_atr_req(const struct rspro_client_slot *c,
				  const uint8_t *atr, size_t len);
RsproPDU_t *rspro_gen_set_atr_res(ResultCode_t res);
RsproPDU_t *rspro_gen_tpdu_modem2card(const struct rspro_client_slot *from,
				      const struct rspro_bank_slot *to,
				      const struct rspro_tpdu_flags *flags,
				      const uint8_t *data, size_t len);
RsproPDU_t *rspro_gen_tpdu_card2modem(const struct rspro_bank_slot *from,
				      const struct rspro_client_slot *to,
				      const struct rspro_tpdu_flags *flags,
				      const uint8_t *data, size_t len);
RsproPDU_t *rspro_gen_client_slot_status_ind(
	const struct rspro_client_slot *from, const struct rspro_bank_slot *to,
	const struct rspro_slot_status *st);
/* remsim-bankd's listen port in its connectBankReq; 0 or -ENOMEM. */
int rspro_connect_bank_req_set_port(RsproPDU_t *req, uint16_t port);

RsproPDU_t *rspro_gen_bank_slot_status_ind(
	const struct rspro_bank_slot *from, const struct rspro_client_slot *to,
	const struct rspro_slot_status *st);

/*
 * remsim-bankd's bankSlotStatusInd with the remsim extensions: worker_state
 * is a WorkerState_* value or -1, atr_len 0 means no ATR, tpdu_count -1
 * means not sent. to is the mapped client, or 0:0 when there is none.
 */
struct rspro_slot_report {
	long worker_state;
	const uint8_t *atr;
	size_t atr_len;
	long tpdu_count;
};
RsproPDU_t *rspro_gen_bank_slot_report(const struct rspro_bank_slot *from,
				       const struct rspro_client_slot *to,
				       const struct rspro_slot_status *st,
				       const struct rspro_slot_report *r);

/*
 * Checks constraints and DER-encodes pdu into buf. Returns the number of
 * bytes, or a negative enum rspro_error (and a reason in err, if given).
 * Never produces more than RSPRO_MAX_PDU bytes.
 */
ssize_t rspro_encode(const RsproPDU_t *pdu, uint8_t *buf, size_t size,
		     char *err, size_t errlen);
/* The same, framed for the wire: IPA header, 0xEE 0x07, PDU. */
ssize_t rspro_encode_ipa(const RsproPDU_t *pdu, uint8_t *buf, size_t size,
			 char *err, size_t errlen);

/*
 * Decodes one PDU of exactly len bytes (BER accepted) and checks its
 * constraints. Returns 0 with *out set, or a negative enum rspro_error with
 * *out NULL and a reason in err. RSPRO_ERR_VERSION is the exception: the
 * PDU decoded fine and *out is set, so the caller can still answer it.
 */
int rspro_decode(const uint8_t *buf, size_t len, RsproPDU_t **out,
		 char *err, size_t errlen);

const char *rspro_strerror(int err);

/* "connectBankReq", ... ; "unknown" for PR_NOTHING or out of range. */
const char *rspro_msg_name(RsproPDUchoice_PR present);
const char *rspro_pdu_name(const RsproPDU_t *pdu);
/* "ok", "cardNotPresent", ...; NULL for a value without a name. */
const char *rspro_result_name(long result);
const char *rspro_component_type_name(long type);
/* "INIT" ... "CONNECTED_SERVER" for a WorkerState_* value, else NULL. */
const char *rspro_worker_state_name(long state);

/* Result code carried by a *Res message; -1 if pdu is no response. */
long rspro_pdu_result(const RsproPDU_t *pdu);

/* Plain C views of asn1c values. */
void rspro_client_slot_get(const ClientSlot_t *in, struct rspro_client_slot *out);
void rspro_bank_slot_get(const BankSlot_t *in, struct rspro_bank_slot *out);
void rspro_slot_status_get(const SlotPhysStatus_t *in,
			   struct rspro_slot_status *out);

/*
 * JSON rendering of any PDU: objects with the ASN.1 component names in
 * encoding order, ENUMERATED as names, OCTET STRING as lowercase hex,
 * IA5String as text, absent OPTIONALs left out (as in the testdata).
 * rspro_from_json() parses that form back (enums also as numbers).
 */
json_t *rspro_to_json(const RsproPDU_t *pdu);
/* The same rendering for one ComponentIdentity (for APIs and the database). */
json_t *rspro_identity_to_json(const ComponentIdentity_t *id);
int rspro_from_json(const json_t *j, RsproPDU_t **out, char *err,
		    size_t errlen);

#endif
