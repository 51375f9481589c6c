/*
 * test_client_apdu: remsim-client's APDU -> T=0 TPDU mapping (ISO 7816-3
 * cases 1-4) and the optional GET RESPONSE / re-send loop (agent-client/
 * apdu.c), fed with scripted card answers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "apdu.h"
#include "hex.h"

#define B(...) ((const uint8_t[]){ __VA_ARGS__ }), sizeof((const uint8_t[]){ __VA_ARGS__ })

static void expect_tpdu(const struct apdu_xfer *x, const uint8_t *want,
			size_t len)
{
	assert_int_equal(x->tpdu_len, len);
	assert_memory_equal(x->tpdu, want, len);
}

static void test_cases(void **state)
{
	uint8_t tpdu[APDU_MAX_TPDU];
	enum apdu_case c;
	char err[96];

	assert_int_equal(apdu_to_tpdu(B(0x00, 0x70, 0x00, 0x00), tpdu, &c,
				      err, sizeof(err)), 5);
	assert_int_equal(c, APDU_CASE_1);
	assert_memory_equal(tpdu, "\x00\x70\x00\x00\x00", 5);

	assert_int_equal(apdu_to_tpdu(B(0xa0, 0xc0, 0x00, 0x00, 0x17), tpdu,
				      &c, err, sizeof(err)), 5);
	assert_int_equal(c, APDU_CASE_2);

	assert_int_equal(apdu_to_tpdu(B(0xa0, 0xa4, 0x00, 0x00, 0x02, 0x3f,
					0x00), tpdu, &c, err, sizeof(err)), 7);
	assert_int_equal(c, APDU_CASE_3);

	/* case 4: T=0 has no Le in the command, it goes */
	assert_int_equal(apdu_to_tpdu(B(0x00, 0xa4, 0x04, 0x00, 0x02, 0x3f,
					0x00, 0x00), tpdu, &c, err, sizeof(err)),
			 7);
	assert_int_equal(c, APDU_CASE_4);
	assert_memory_equal(tpdu, "\x00\xa4\x04\x00\x02\x3f\x00", 7);
}

static void test_refusals(void **state)
{
	uint8_t tpdu[APDU_MAX_TPDU];
	enum apdu_case c;
	char err[96];

	assert_int_equal(apdu_to_tpdu(B(0x00, 0xa4, 0x00), tpdu, &c, err,
				      sizeof(err)), -1);
	assert_non_null(strstr(err, "at least CLA INS P1 P2"));
	assert_int_equal(apdu_to_tpdu(B(0x00, 0xa4, 0x04, 0x00, 0x00, 0x00,
					0x02, 0x3f, 0x00), tpdu, &c, err,
				      sizeof(err)), -1);
	assert_non_null(strstr(err, "extended-length"));
	assert_int_equal(apdu_to_tpdu(B(0x00, 0xa4, 0x04, 0x00, 0x05, 0x3f),
				      tpdu, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "does not match its Lc"));
}

static void test_raw_status_words(void **state)
{
	struct apdu_xfer x;

	/* without auto GET RESPONSE, 61xx and 9Fxx are the answer */
	assert_int_equal(apdu_xfer_begin(&x, false, B(0xa0, 0xa4, 0x00, 0x00,
						      0x02, 0x3f, 0x00)),
			 APDU_STEP_SEND);
	assert_int_equal(apdu_xfer_next(&x, B(0x9f, 0x17)), APDU_STEP_DONE);
	assert_int_equal(x.resp_len, 2);
	assert_memory_equal(x.resp, "\x9f\x17", 2);

	assert_int_equal(apdu_xfer_begin(&x, false, B(0x00, 0xb0, 0x00, 0x00,
						      0x00)), APDU_STEP_SEND);
	assert_int_equal(apdu_xfer_next(&x, B(0x6c, 0x04)), APDU_STEP_DONE);
	assert_memory_equal(x.resp, "\x6c\x04", 2);
}

static void test_auto_get_response(void **state)
{
	struct apdu_xfer x;

	assert_int_equal(apdu_xfer_begin(&x, true, B(0x01, 0xa4, 0x04, 0x00,
						     0x02, 0x3f, 0x00, 0x00)),
			 APDU_STEP_SEND);
	assert_int_equal(apdu_xfer_next(&x, B(0x61, 0x03)), APDU_STEP_SEND);
	/* GET RESPONSE on the command's logical channel (CLA kept) */
	expect_tpdu(&x, B(0x01, 0xc0, 0x00, 0x00, 0x03));
	/* chained: 2 bytes + 61 01, then the last byte */
	assert_int_equal(apdu_xfer_next(&x, B(0xaa, 0xbb, 0x61, 0x01)),
			 APDU_STEP_SEND);
	expect_tpdu(&x, B(0x01, 0xc0, 0x00, 0x00, 0x01));
	assert_int_equal(apdu_xfer_next(&x, B(0xcc, 0x90, 0x00)),
			 APDU_STEP_DONE);
	assert_int_equal(x.resp_len, 5);
	assert_memory_equal(x.resp, "\xaa\xbb\xcc\x90\x00", 5);
}

static void test_auto_resend_on_6c(void **state)
{
	struct apdu_xfer x;

	assert_int_equal(apdu_xfer_begin(&x, true, B(0x00, 0xb0, 0x00, 0x00,
						     0x00)), APDU_STEP_SEND);
	assert_int_equal(apdu_xfer_next(&x, B(0x6c, 0x02)), APDU_STEP_SEND);
	expect_tpdu(&x, B(0x00, 0xb0, 0x00, 0x00, 0x02));
	assert_int_equal(apdu_xfer_next(&x, B(0x12, 0x34, 0x90, 0x00)),
			 APDU_STEP_DONE);
	assert_memory_equal(x.resp, "\x12\x34\x90\x00", 4);

	/* a case 3 command answered 6Cxx cannot be repeated with a new Le */
	assert_int_equal(apdu_xfer_begin(&x, true, B(0x00, 0xd6, 0x00, 0x00,
						     0x01, 0x55)),
			 APDU_STEP_SEND);
	assert_int_equal(apdu_xfer_next(&x, B(0x6c, 0x02)), APDU_STEP_DONE);
}

static void test_bounded_and_bad_answers(void **state)
{
	struct apdu_xfer x;
	unsigned int sends = 0;
	enum apdu_step step;

	/* a card that always says "more" is cut off after APDU_MAX_ROUNDS */
	apdu_xfer_begin(&x, true, B(0x00, 0xa4, 0x04, 0x00, 0x02, 0x3f, 0x00));
	while ((step = apdu_xfer_next(&x, B(0x61, 0x01))) == APDU_STEP_SEND)
		assert_true(++sends < 100);
	assert_int_equal(step, APDU_STEP_DONE);
	assert_int_equal(sends + 1, APDU_MAX_ROUNDS);
	assert_memory_equal(x.resp + x.resp_len - 2, "\x61\x01", 2);

	apdu_xfer_begin(&x, false, B(0x00, 0xa4, 0x04, 0x00));
	assert_int_equal(apdu_xfer_next(&x, B(0x90)), APDU_STEP_ERROR);
	assert_non_null(strstr(x.error, "no status word"));
}

/* How a card emulator classifies a header it sees alone (cardem doc 7.2). */
static void test_tpdu_case_from_header(void **state)
{
	static const struct {
		const char *hdr;
		enum apdu_case cse;
	} t[] = {
		{ "a0a4000002", APDU_CASE_4 },	/* SELECT */
		{ "00a4000402", APDU_CASE_4 },
		{ "0088008122", APDU_CASE_4 },	/* AUTHENTICATE */
		{ "a088000010", APDU_CASE_4 },	/* RUN GSM ALGORITHM */
		{ "80c2000010", APDU_CASE_4 },	/* ENVELOPE */
		{ "a0b000000a", APDU_CASE_2 },	/* READ BINARY */
		{ "00b2010410", APDU_CASE_2 },	/* READ RECORD */
		{ "00c000000f", APDU_CASE_2 },	/* GET RESPONSE */
		{ "80f2000000", APDU_CASE_2 },	/* STATUS (ETSI) */
		{ "80f2400002", APDU_CASE_4 },	/* GlobalPlatform GET STATUS */
		{ "80ca9f7f00", APDU_CASE_2 },	/* GET DATA, no data */
		{ "80ca000002", APDU_CASE_4 },
		{ "00d6000002", APDU_CASE_3 },	/* UPDATE BINARY */
		{ "0020000108", APDU_CASE_3 },	/* VERIFY */
		{ "8010000014", APDU_CASE_3 },	/* TERMINAL PROFILE */
		{ "0044000000", APDU_CASE_1 },	/* ACTIVATE FILE */
		{ "a0fa000000", APDU_CASE_1 },	/* SLEEP */
		{ "0070000001", APDU_CASE_2 },	/* MANAGE CHANNEL open */
		{ "0070800100", APDU_CASE_1 },	/* MANAGE CHANNEL close */
	};
	uint8_t hdr[5] = { 0x00, 0xee, 0, 0, 0 };
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint8_t h[5];

		assert_int_equal(hex_decode(h, sizeof(h), t[i].hdr), 5);
		assert_int_equal(apdu_tpdu_case(h), t[i].cse);
	}
	assert_int_equal(apdu_tpdu_case(hdr), 0);	/* unknown INS */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_raw_status_words),
		cmocka_unit_test(test_auto_get_response),
		cmocka_unit_test(test_auto_resend_on_6c),
		cmocka_unit_test(test_bounded_and_bad_answers),
		cmocka_unit_test(test_tpdu_case_from_header),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
