/*
 * test_rspro: the RSPRO codec against osmo-remsim 1.0's golden bytes, round
 * trips of all 21 message types with boundary values, remsim's extension
 * fields, and every kind of bad input the decoder must refuse cleanly.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "hex.h"
#include "ipa.h"
#include "rspro.h"
#include "testdata.h"

static const struct rspro_identity bankd_id = {
	.type = ComponentType_remsimBankd,
	.name = "fixme-name",
	.software = "remsim-bankd",
	.sw_version = "1.0.0",
};

static const struct rspro_identity client_id = {
	.type = ComponentType_remsimClient,
	.name = "modem1",
	.software = "remsim-client",
	.sw_version = "1.0.0",
};

static size_t from_hex(uint8_t *out, size_t size, const char *hex)
{
	ssize_t n = hex_decode(out, size, hex);

	assert_true(n >= 0);
	return (size_t)n;
}

static void assert_encodes_to(const RsproPDU_t *pdu, const char *hex)
{
	uint8_t buf[2048];
	char out[4097], err[200] = "";
	ssize_t n = rspro_encode(pdu, buf, sizeof(buf), err, sizeof(err));

	if (n < 0)
		fail_msg("encode failed: %s", err);
	hex_encode(out, buf, (size_t)n);
	assert_string_equal(out, hex);
}

/* ---- golden vectors ---- */

struct vector_stats {
	int rows;
	int version_mismatch;
	int types_seen[RsproPDUchoice_PR_bankSlotStatusInd + 1];
};

static void check_vector(const struct tsv_row *row, void *arg)
{
	struct vector_stats *st = arg;
	uint8_t bytes[2048];
	char err[200] = "";
	json_error_t jerr;
	json_t *want, *got;
	RsproPDU_t *pdu, *pdu2;
	size_t len;
	int rc;

	assert_int_equal(row->ncols, 4);
	len = from_hex(bytes, sizeof(bytes), row->col[2]);
	rc = rspro_decode(bytes, len, &pdu, err, sizeof(err));
	if (rc == RSPRO_ERR_VERSION) {
		st->version_mismatch++;
	} else if (rc) {
		fail_msg("%s (%s): %s", row->col[0], row->col[3], err);
	}
	assert_non_null(pdu);
	assert_string_equal(rspro_pdu_name(pdu), row->col[0]);
	st->types_seen[pdu->msg.present]++;

	/* decoded content renders exactly as the reference decoder saw it */
	want = json_loads(row->col[1], 0, &jerr);
	assert_non_null(want);
	got = rspro_to_json(pdu);
	assert_non_null(got);
	if (!json_equal(want, got)) {
		char *s = json_dumps(got, JSON_COMPACT);

		fail_msg("%s: JSON differs:\n got  %s\n want %s", row->col[3], s,
			 row->col[1]);
	}
	/* re-encodes (DER) to the identical bytes */
	assert_encodes_to(pdu, row->col[2]);

	/* and the JSON form encodes to the same bytes too */
	assert_int_equal(rspro_from_json(want, &pdu2, err, sizeof(err)), 0);
	assert_encodes_to(pdu2, row->col[2]);

	rspro_pdu_free(pdu2);
	rspro_pdu_free(pdu);
	json_decref(want);
	json_decref(got);
	st->rows++;
}

static void test_golden_vectors(void **state)
{
	struct vector_stats st = { 0 };
	int rows = tsv_foreach("rspro-vectors.tsv", 1, check_vector, &st);

	assert_int_equal(rows, 90);
	assert_int_equal(st.rows, rows);
	assert_int_equal(st.version_mismatch, 1);	/* the version-32 one */
	for (int t = 1; t <= RsproPDUchoice_PR_bankSlotStatusInd; t++)
		if (!st.types_seen[t])
			fail_msg("no vector for %s", rspro_msg_name(t));
}

static void check_session_frame(const struct tsv_row *row, void *arg)
{
	int *count = arg;
	struct ipa_reader r;
	struct ipa_frame f;
	uint8_t bytes[2048];
	RsproPDU_t *pdu;
	char err[200];
	size_t len;

	/* the last column is the complete IPA frame */
	len = from_hex(bytes, sizeof(bytes), row->col[row->ncols - 1]);
	ipa_reader_init(&r);
	assert_int_equal(ipa_reader_feed(&r, bytes, len), 0);
	assert_int_equal(ipa_reader_next(&r, &f), 1);
	assert_int_equal(ipa_reader_next(&r, &f) , 0);
	/* recover the frame again: the second call invalidated nothing new */
	ipa_reader_init(&r);
	ipa_reader_feed(&r, bytes, len);
	ipa_reader_next(&r, &f);
	if (f.stream == IPA_STREAM_CCM)
		return;
	assert_int_equal(f.stream, IPA_STREAM_OSMO);
	assert_int_equal(f.ext, IPA_OSMO_EXT_RSPRO);
	if (rspro_decode(f.data, f.len, &pdu, err, sizeof(err)))
		fail_msg("frame %s: %s", row->col[0], err);
	rspro_pdu_free(pdu);
	(*count)++;
}

static void test_session_frames(void **state)
{
	int rspro = 0;
	int rows = tsv_foreach("osmo-remsim-1.0-session-frames.tsv", 0,
			       check_session_frame, &rspro);

	assert_true(rows > 70);
	assert_int_equal(rspro, 57);	/* as the testdata README counts */
}

/* ---- constructors: the exact bytes osmo-remsim sends ---- */

static void test_gen_matches_capture(void **state)
{
	struct rspro_client_slot c = { 23, 0 };
	struct rspro_bank_slot b = { 1, 0 };
	struct rspro_ip_port lo = { .family = AF_INET, .port = 9999 };
	struct rspro_ip_port none = { .family = AF_INET, .port = 0 };
	struct rspro_slot_status rst = { true, 0, 0, 1 };
	struct rspro_tpdu_flags nf = { 0 };
	static const uint8_t atr[] = { 0x3b, 0x7d, 0x94, 0x00, 0x00, 0x55,
				       0x55, 0x53, 0x0a, 0x74, 0x86, 0x93,
				       0x0b, 0x24, 0x7c, 0x4d, 0x54, 0x68 };
	static const uint8_t select_mf[] = { 0xa0, 0xa4, 0x00, 0x00, 0x02,
					     0x3f, 0x00 };
	static const uint8_t sw[] = { 0x9f, 0x17 };
	RsproPDU_t *p;

	inet_pton(AF_INET, "127.0.0.1", lo.addr);

#define CHECK(expr, hex)                                                     \
	do {                                                                 \
		p = (expr);                                                  \
		assert_non_null(p);                                          \
		assert_encodes_to(p, hex);                                   \
		rspro_pdu_free(p);                                           \
	} while (0)

	CHECK(rspro_gen_connect_client_req(&client_id, &c, NULL),
	      "3035800102810100a22da22b30210a0100160" "66d6f64656d31800d72656d73"
	      "696d2d636c69656e748105312e302e303006020117020100");
	CHECK(rspro_gen_connect_bank_req(&bankd_id, 1, 2, NULL),
	      "3036800102810100a22ea02c30240a0102160a6669786d652d6e616d65800c72"
	      "656d73696d2d62616e6b648105312e302e30020101020102");
	CHECK(rspro_gen_connect_client_res(&bankd_id, ResultCode_ok, NULL),
	      "303480010281020926a22ba32930240a0102160a6669786d652d6e616d65800c"
	      "72656d73696d2d62616e6b648105312e302e300a0100");
	CHECK(rspro_gen_create_mapping_req(&c, &b),
	      "301a800102810100a212a41030060201170201003006020101020100");
	CHECK(rspro_gen_create_mapping_res(ResultCode_ok),
	      "300d800102810100a205a5030a0100");
	CHECK(rspro_gen_remove_mapping_req(&c, &b),
	      "301a800102810100a212a61030060201170201003006020101020100");
	CHECK(rspro_gen_remove_mapping_res(ResultCode_ok),
	      "300d800102810100a205a7030a0100");
	CHECK(rspro_gen_config_client_bank_req(&b, &lo),
	      "301e800102810100a216b1143006020101020100300a80047f0000010202270f");
	CHECK(rspro_gen_config_client_bank_req(&b, &none),
	      "301d800102810100a215b11330060201010201003009800400000000020100");
	CHECK(rspro_gen_config_client_bank_res(ResultCode_ok),
	      "300d800102810100a205b2030a0100");
	CHECK(rspro_gen_set_atr_req(&c, atr, sizeof(atr)),
	      "3026800102810100a21eaa1c300602011702010004123b7d9400005555530a74"
	      "86930b247c4d5468");
	CHECK(rspro_gen_set_atr_res(ResultCode_ok),
	      "300d800102810100a205ab030a0100");
	CHECK(rspro_gen_tpdu_modem2card(&c, &b, &nf, select_mf,
					sizeof(select_mf)),
	      "3031800102810100a229ac27300602011702010030060201010201003"
	      "00c010100010100010100010100040" "7a0a4000002" "3f00");
	CHECK(rspro_gen_tpdu_card2modem(&b, &c, &nf, sw, sizeof(sw)),
	      "302c800102810100a224ad2230060201010201003006020117020100300c0101"
	      "000101000101000101000402" "9f17");
	CHECK(rspro_gen_client_slot_status_ind(&c, &b, &rst),
	      "3028800102810100a220ae1e30060201170201003006020101020100300c8001"
	      "ff8101008201008301ff");
	CHECK(rspro_gen_config_client_id_req(&c),
	      "3012800102810100a20aa8083006020117020100");
	CHECK(rspro_gen_reset_state_req(), "300a800102810100a202b300");
	CHECK(rspro_gen_reset_state_res(ResultCode_ok),
	      "300d800102810100a205b4030a0100");
	CHECK(rspro_gen_error_ind(ComponentType_remsimBankd,
				  ErrorSeverity_major,
				  ErrorCode_unknownClientConnected, NULL, &c,
				  "no map"),
	      "3023800102810100a21bb0190a01020a01020a0101a10602011702010082066e"
	      "6f206d6170");
#undef CHECK
}

/* ---- round trip of all 21 types with boundary values ---- */

static RsproPDU_t *roundtrip(const RsproPDU_t *in)
{
	uint8_t buf[2048];
	char err[200] = "";
	RsproPDU_t *out;
	ssize_t n = rspro_encode(in, buf, sizeof(buf), err, sizeof(err));

	if (n < 0)
		fail_msg("encode %s: %s", rspro_pdu_name(in), err);
	if (rspro_decode(buf, (size_t)n, &out, err, sizeof(err)))
		fail_msg("decode %s: %s", rspro_pdu_name(in), err);
	return out;
}

/* Round trip, then compare both PDUs field by field (via the JSON form). */
static void check_roundtrip(RsproPDU_t *in)
{
	RsproPDU_t *out;
	json_t *a, *b;

	assert_non_null(in);
	out = roundtrip(in);
	a = rspro_to_json(in);
	b = rspro_to_json(out);
	assert_true(json_equal(a, b));
	assert_int_equal(in->msg.present, out->msg.present);
	json_decref(a);
	json_decref(b);
	rspro_pdu_free(in);
	rspro_pdu_free(out);
}

static void test_roundtrip_all_types(void **state)
{
	static const char name32[] = "abcdefghijklmnopqrstuvwxyz012345";
	const struct rspro_identity full = {
		.type = ComponentType_remsimServer, .name = name32,
		.software = "s", .sw_version = name32,
		.hw_manufacturer = "m", .hw_model = "sysmoQMOD",
		.hw_serial = name32, .hw_version = "1", .fw_version = "2",
	};
	uint16_t edge[] = { 0, 1, 127, 128, 255, 256, 1023 };
	uint8_t data[RSPRO_MAX_PDU - 60], pk[32], kid[8], atr[55];
	struct rspro_ip_port v6 = { .family = AF_INET6, .port = 65535 };
	struct rspro_caps caps = { 1, pk, kid, 1 };
	char token[RSPRO_TOKEN_MAX + 1];
	struct rspro_slot_status st_none = { false, -1, -1, -1 };
	struct rspro_slot_status st_all = { true, 1, 0, 1 };
	struct rspro_tpdu_flags fl = { true, false, true, true };
	int seen = 0;

	memset(token, 'T', RSPRO_TOKEN_MAX);
	token[RSPRO_TOKEN_MAX] = '\0';
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)i;
	memset(pk, 0xaa, sizeof(pk));
	memset(kid, 0x55, sizeof(kid));
	memset(atr, 0x3b, sizeof(atr));
	inet_pton(AF_INET6, "2001:db8::1", v6.addr);

	for (size_t e = 0; e < sizeof(edge) / sizeof(edge[0]); e++) {
		struct rspro_client_slot c = { edge[e], edge[e] };
		struct rspro_bank_slot b = { edge[e], (uint16_t)(1023 - edge[e]) };

		check_roundtrip(rspro_gen_connect_bank_req(&full, b.bank_id,
							   b.slot_nr, token));
		check_roundtrip(rspro_gen_connect_bank_res(&full, ResultCode_ok,
							   &caps));
		check_roundtrip(rspro_gen_connect_client_req(&full, &c, NULL));
		check_roundtrip(rspro_gen_connect_client_req(&full, NULL, "t"));
		check_roundtrip(rspro_gen_connect_client_res(
			&full, ResultCode_identityInUse, NULL));
		check_roundtrip(rspro_gen_create_mapping_req(&c, &b));
		check_roundtrip(rspro_gen_create_mapping_res(
			ResultCode_cardTransmissionError));
		check_roundtrip(rspro_gen_remove_mapping_req(&c, &b));
		check_roundtrip(rspro_gen_remove_mapping_res(
			ResultCode_unknownSlotmap));
		check_roundtrip(rspro_gen_config_client_id_req(&c));
		check_roundtrip(rspro_gen_config_client_id_res(ResultCode_ok));
		check_roundtrip(rspro_gen_config_client_bank_req(&b, &v6));
		check_roundtrip(rspro_gen_config_client_bank_res(
			ResultCode_authFailed));
		check_roundtrip(rspro_gen_error_ind(
			ComponentType_remsimClient, ErrorSeverity_fatal,
			ErrorCode_unexpectedProtocolVersion, &b, &c, name32));
		check_roundtrip(rspro_gen_reset_state_req());
		check_roundtrip(rspro_gen_reset_state_res(ResultCode_ok));
		check_roundtrip(rspro_gen_set_atr_req(&c, atr, 1 + e * 9));
		check_roundtrip(rspro_gen_set_atr_res(ResultCode_cardNotPresent));
		check_roundtrip(rspro_gen_tpdu_modem2card(&c, &b, &fl, data,
							  e * 150));
		check_roundtrip(rspro_gen_tpdu_card2modem(&b, &c, NULL, data,
							  sizeof(data)));
		check_roundtrip(rspro_gen_client_slot_status_ind(&c, &b,
								 &st_none));
		check_roundtrip(rspro_gen_bank_slot_status_ind(&b, &c, &st_all));
		seen += 22;
	}
	assert_int_equal(seen, 7 * 22);
}

/* ---- remsim extensions ---- */

static void test_extension_token(void **state)
{
	struct rspro_client_slot c = { 23, 0 };
	RsproPDU_t *p = rspro_gen_connect_client_req(&client_id, &c, "rst1.abc");
	RsproPDU_t *q;

	/* osmo-remsim's bytes, with [10] IA5String "rst1.abc" appended */
	assert_encodes_to(p, "303f800102810100a237a23530210a0100160" "66d6f64656d"
			     "31800d72656d73696d2d636c69656e748105312e302e3030"
			     "06020117020100" "8a0872737431" "2e616263");
	q = roundtrip(p);
	assert_non_null(q->msg.choice.connectClientReq.authToken);
	assert_memory_equal(q->msg.choice.connectClientReq.authToken->buf,
			    "rst1.abc", 8);
	rspro_pdu_free(p);
	rspro_pdu_free(q);
}

static void test_extension_caps(void **state)
{
	uint8_t pk[32], kid[8];
	struct rspro_caps caps = { RSPRO_REMSIM_REVISION, pk, kid, 0 };
	RsproPDU_t *p, *q;
	RemsimCapabilities_t *rc;

	memset(pk, 7, sizeof(pk));
	memset(kid, 9, sizeof(kid));
	p = rspro_gen_connect_bank_res(&bankd_id, ResultCode_ok, &caps);
	q = roundtrip(p);
	rc = q->msg.choice.connectBankRes.capabilities;
	assert_non_null(rc);
	assert_int_equal(rc->protocolRevision, RSPRO_REMSIM_REVISION);
	assert_int_equal(rc->serverPublicKey->size, 32);
	assert_memory_equal(rc->serverPublicKey->buf, pk, 32);
	assert_memory_equal(rc->serverKeyId->buf, kid, 8);
	assert_int_equal(*rc->authenticated, 0);
	rspro_pdu_free(p);
	rspro_pdu_free(q);
}

/*
 * bankSlotStatusInd with the bankd's report: osmo-remsim's body first, the
 * extension elements after it; without a report it is byte-for-byte the
 * plain message.
 */
static void test_extension_slot_report(void **state)
{
	struct rspro_bank_slot b = { 1, 2 };
	struct rspro_client_slot c = { 0, 0 };
	struct rspro_slot_status st = { false, -1, -1, 1 };
	static const uint8_t atr[] = { 0x3b, 0x9f, 0x96 };
	struct rspro_slot_report r = {
		WorkerState_connectedClientMappedCard, atr, sizeof(atr), 17
	};
	struct rspro_slot_report none = { -1, NULL, 0, -1 };
	RsproPDU_t *p = rspro_gen_bank_slot_report(&b, &c, &st, &r);
	BankSlotStatusInd_t *m;
	RsproPDU_t *q;

	p->tag = 5;
	assert_encodes_to(p, "302d800102810105a225af2330060201010201023006020100"
			     "02010030068001008301ff" "8a0105" "8b033b9f96"
			     "8c0111");
	q = roundtrip(p);
	m = &q->msg.choice.bankSlotStatusInd;
	assert_int_equal(*m->workerState,
			 WorkerState_connectedClientMappedCard);
	assert_memory_equal(m->atr->buf, atr, sizeof(atr));
	assert_int_equal(*m->tpduCount, 17);
	rspro_pdu_free(p);
	rspro_pdu_free(q);

	p = rspro_gen_bank_slot_report(&b, &c, &st, &none);
	q = rspro_gen_bank_slot_status_ind(&b, &c, &st);
	p->tag = q->tag = 5;
	assert_encodes_to(p, "3022800102810105a21aaf183006020101020102300602010002"
			     "010030068001008301ff");
	assert_encodes_to(q, "3022800102810105a21aaf183006020101020102300602010002"
			     "010030068001008301ff");
	rspro_pdu_free(p);
	rspro_pdu_free(q);
	assert_string_equal(rspro_worker_state_name(WorkerState_init), "INIT");
	assert_string_equal(rspro_worker_state_name(
		WorkerState_connectedClientMappedCard),
		"CONNECTED_CLIENT_MAPPED_CARD");
	assert_null(rspro_worker_state_name(7));
	assert_null(rspro_worker_state_name(-1));
}

/* remsim-bankd's listen port after osmo-remsim's connectBankReq body */
static void test_extension_bankd_port(void **state)
{
	RsproPDU_t *p = rspro_gen_connect_bank_req(&bankd_id, 1, 4, NULL);
	RsproPDU_t *q;

	assert_int_equal(rspro_connect_bank_req_set_port(p, 12345), 0);
	q = roundtrip(p);
	assert_non_null(q->msg.choice.connectBankReq.bankdPort);
	assert_int_equal(*q->msg.choice.connectBankReq.bankdPort, 12345);
	rspro_pdu_free(q);
	/* set twice: the last one counts, nothing leaks */
	assert_int_equal(rspro_connect_bank_req_set_port(p, 9999), 0);
	q = roundtrip(p);
	assert_int_equal(*q->msg.choice.connectBankReq.bankdPort, 9999);
	rspro_pdu_free(p);
	rspro_pdu_free(q);
}

/* An osmo-remsim 1.0 decoder skips what we add; so must we skip theirs. */
static void test_unknown_extension_skipped(void **state)
{
	uint8_t b[128];
	/* capture frame 54 + an unknown [9] element in connectClientReq */
	size_t n = from_hex(b, sizeof(b),
			    "303f800102810100a237a23530280a0100160d72656d73696d2d"
			    "616e63686f72800d72656d73696d2d636c69656e748105312e30"
			    "2e303006020117020100" "8901ff");
	RsproPDU_t *p;
	char err[200];

	assert_int_equal(rspro_decode(b, n, &p, err, sizeof(err)), 0);
	assert_int_equal(p->msg.present, RsproPDUchoice_PR_connectClientReq);
	assert_int_equal(p->msg.choice.connectClientReq.clientSlot->clientId,
			 23);
	rspro_pdu_free(p);
}

/* ---- bad input ---- */

static int decode_hex(const char *hex, RsproPDU_t **p)
{
	uint8_t b[2048];
	char err[200] = "";
	size_t n = from_hex(b, sizeof(b), hex);
	int rc = rspro_decode(b, n, p, err, sizeof(err));

	if (rc)
		assert_true(strlen(err) > 0);	/* always says why */
	return rc;
}

static void test_decode_errors(void **state)
{
	RsproPDU_t *p;

	/* createMappingReq with bankId 1024 */
	assert_int_equal(decode_hex("301b800102810100a213a411300602011702010030"
				    "0702020400020100", &p),
			 RSPRO_ERR_CONSTRAINT);
	assert_null(p);
	/* version 3 */
	assert_int_equal(decode_hex("300d800103810100a205a5030a0100", &p),
			 RSPRO_ERR_VERSION);
	assert_non_null(p);
	assert_int_equal(p->version, 3);
	rspro_pdu_free(p);
	/* version 33: out of the INTEGER (0..32) range */
	assert_int_equal(decode_hex("300d800121810100a205a5030a0100", &p),
			 RSPRO_ERR_CONSTRAINT);
	/* unknown message [25] */
	assert_int_equal(decode_hex("300d800102810100a205b9030a0100", &p),
			 RSPRO_ERR_UNKNOWN_MSG);
	assert_null(p);
	/* trailing byte */
	assert_int_equal(decode_hex("300d800102810100a205a5030a010000", &p),
			 RSPRO_ERR_TRAILING);
	/* empty, garbage, wrong outer tag */
	assert_int_equal(decode_hex("", &p), RSPRO_ERR_MALFORMED);
	assert_int_equal(decode_hex("ffffffff", &p), RSPRO_ERR_MALFORMED);
	assert_int_equal(decode_hex("310d800102810100a205a5030a0100", &p),
			 RSPRO_ERR_MALFORMED);
	/* ATR of 56 bytes (SIZE 1..55) */
	{
		char hex[400];
		uint8_t atr[56];
		struct rspro_client_slot c = { 1, 1 };
		RsproPDU_t *q;
		uint8_t buf[256];
		char err[100];
		ssize_t n;

		memset(atr, 0x3b, sizeof(atr));
		q = rspro_gen_set_atr_req(&c, atr, sizeof(atr));
		n = rspro_encode(q, buf, sizeof(buf), err, sizeof(err));
		assert_int_equal(n, RSPRO_ERR_CONSTRAINT);
		assert_non_null(strstr(err, "constraint"));
		rspro_pdu_free(q);
		/* hand-made bytes with that ATR */
		strcpy(hex, "304c800102810100a244aa42300602010102010104" "38");
		for (int i = 0; i < 56; i++)
			strcat(hex, "3b");
		assert_int_equal(decode_hex(hex, &p), RSPRO_ERR_CONSTRAINT);
	}
}

static void test_decode_truncated_everywhere(void **state)
{
	uint8_t b[512];
	size_t n = from_hex(b, sizeof(b),
			    "3049800102810100a241a23f30330a010016016e80027377810276"
			    "3182087379736d6f636f6d83097379736d6f514d4f448404313233"
			    "34850368773286036677333008020203ff020203ff");

	for (size_t len = 0; len < n; len++) {
		RsproPDU_t *p;
		int rc = rspro_decode(b, len, &p, NULL, 0);

		assert_true(rc < 0);
		assert_null(p);
	}
	/* every single-byte corruption: an error or a valid PDU, no crash */
	for (size_t i = 0; i < n; i++) {
		for (int v = 0; v < 256; v += 17) {
			uint8_t c[512];
			RsproPDU_t *p;

			memcpy(c, b, n);
			c[i] = (uint8_t)v;
			if (rspro_decode(c, n, &p, NULL, 0) >= 0 ||
			    p != NULL)
				rspro_pdu_free(p);
		}
	}
}

static void test_encode_limits(void **state)
{
	struct rspro_client_slot c = { 1024, 0 };
	struct rspro_bank_slot b = { 1, 0 };
	uint8_t data[2000] = { 0 }, buf[4096];
	char err[200];
	RsproPDU_t *p;

	p = rspro_gen_create_mapping_req(&c, &b);
	assert_int_equal(rspro_encode(p, buf, sizeof(buf), err, sizeof(err)),
			 RSPRO_ERR_CONSTRAINT);
	rspro_pdu_free(p);

	/* never more than RSPRO_MAX_PDU bytes, whatever the buffer */
	c.client_id = 1;
	p = rspro_gen_tpdu_modem2card(&c, &b, NULL, data, sizeof(data));
	assert_int_equal(rspro_encode(p, buf, sizeof(buf), err, sizeof(err)),
			 RSPRO_ERR_TOO_BIG);
	rspro_pdu_free(p);

	p = rspro_gen_create_mapping_res(ResultCode_ok);
	assert_int_equal(rspro_encode(p, buf, 5, err, sizeof(err)),
			 RSPRO_ERR_TOO_BIG);
	assert_int_equal(rspro_encode(NULL, buf, 5, err, sizeof(err)),
			 RSPRO_ERR_INVALID);
	rspro_pdu_free(p);
}

static void test_ipa_encode(void **state)
{
	uint8_t buf[64];
	char hex[129];
	RsproPDU_t *p = rspro_gen_create_mapping_res(ResultCode_ok);
	ssize_t n = rspro_encode_ipa(p, buf, sizeof(buf), NULL, 0);

	assert_int_equal(n, 19);
	hex_encode(hex, buf, (size_t)n);
	assert_string_equal(hex, "0010ee07300d800102810100a205a5030a0100");
	rspro_pdu_free(p);
}

static void expect_json_error(const char *json, const char *needle)
{
	char err[256] = "";
	json_t *j = json_loads(json, 0, NULL);
	RsproPDU_t *p;

	assert_non_null(j);
	assert_int_equal(rspro_from_json(j, &p, err, sizeof(err)),
			 RSPRO_ERR_INVALID);
	assert_null(p);
	if (!strstr(err, needle))
		fail_msg("error '%s' does not mention '%s'", err, needle);
	json_decref(j);
}

static void test_json_errors(void **state)
{
	expect_json_error("[]", "object");
	expect_json_error("{\"version\":2,\"tag\":0}", "missing field \"msg\"");
	expect_json_error("{\"version\":2,\"tag\":0,\"msg\":{\"bogus\":{}}}",
			  "unknown RsproPDUchoice alternative \"bogus\"");
	expect_json_error("{\"version\":2,\"tag\":0,\"extra\":1,\"msg\":{}}",
			  "unknown field \"extra\"");
	expect_json_error("{\"version\":\"2\",\"tag\":0,\"msg\":{}}",
			  "version: expected an integer");
	expect_json_error("{\"version\":2,\"tag\":0,\"msg\":{\"setAtrReq\":"
			  "{\"slot\":{\"clientId\":1,\"slotNr\":0},"
			  "\"atr\":\"3bzz\"}}}",
			  "msg.setAtrReq.atr: not a hex string");
	expect_json_error("{\"version\":2,\"tag\":0,\"msg\":{\"setAtrRes\":"
			  "{\"result\":\"great\"}}}",
			  "not a ResultCode value");
}

static void test_identity_json(void **state)
{
	RsproPDU_t *p = rspro_gen_connect_bank_req(&bankd_id, 1, 2, NULL);
	json_t *j = rspro_identity_to_json(
		&p->msg.choice.connectBankReq.identity);
	char *s = json_dumps(j, JSON_COMPACT);

	assert_string_equal(s, "{\"type\":\"remsimBankd\",\"name\":"
			    "\"fixme-name\",\"software\":\"remsim-bankd\","
			    "\"swVersion\":\"1.0.0\"}");
	free(s);
	json_decref(j);
	rspro_pdu_free(p);
}

static void test_names(void **state)
{
	assert_string_equal(rspro_msg_name(RsproPDUchoice_PR_tpduModemToCard),
			    "tpduModemToCard");
	assert_string_equal(rspro_msg_name(RsproPDUchoice_PR_NOTHING), "unknown");
	assert_string_equal(rspro_msg_name(99), "unknown");
	assert_string_equal(rspro_result_name(ResultCode_cardNotPresent),
			    "cardNotPresent");
	assert_string_equal(rspro_result_name(ResultCode_identityInUse),
			    "identityInUse");
	assert_null(rspro_result_name(77));
	assert_string_equal(rspro_component_type_name(2), "remsimBankd");
	for (int e = RSPRO_ERR_NOMEM; e <= 0; e++)
		assert_string_not_equal(rspro_strerror(e), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_vectors),
		cmocka_unit_test(test_session_frames),
		cmocka_unit_test(test_gen_matches_capture),
		cmocka_unit_test(test_roundtrip_all_types),
		cmocka_unit_test(test_extension_token),
		cmocka_unit_test(test_extension_caps),
		cmocka_unit_test(test_extension_slot_report),
		cmocka_unit_test(test_extension_bankd_port),
		cmocka_unit_test(test_unknown_extension_skipped),
		cmocka_unit_test(test_decode_errors),
		cmocka_unit_test(test_decode_truncated_everywhere),
		cmocka_unit_test(test_encode_limits),
		cmocka_unit_test(test_ipa_encode),
		cmocka_unit_test(test_json_errors),
		cmocka_unit_test(test_identity_json),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
