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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_raw_status_words),
		cmocka_unit_test(test_auto_get_response),
		cmocka_unit_test(test_auto_resend_on_6c),
		cmocka_unit_test(test_bounded_and_bad_answers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
