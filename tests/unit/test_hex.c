/*
 * test_hex: hex text <-> bytes, as typed on command lines and stored in
 * JSON renderings.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "hex.h"

static void test_roundtrip(void **state)
{
	uint8_t all[256], back[256];
	char text[513];

	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	hex_encode(text, all, sizeof(all));
	assert_int_equal(strlen(text), 512);
	assert_memory_equal(text, "000102", 6);
	assert_string_equal(text + 506, "fdfeff");
	assert_int_equal(hex_decode(back, sizeof(back), text), 256);
	assert_memory_equal(back, all, sizeof(all));
}

static void test_separators_and_case(void **state)
{
	uint8_t b[8];

	assert_int_equal(hex_decode(b, sizeof(b), "3B 9f:96\t80\n"), 4);
	assert_memory_equal(b, "\x3b\x9f\x96\x80", 4);
	assert_int_equal(hex_decode(b, sizeof(b), ""), 0);
	assert_int_equal(hex_decode(b, sizeof(b), "  "), 0);
}

static void test_refusals(void **state)
{
	uint8_t b[2];

	assert_int_equal(hex_decode(b, sizeof(b), "abc"), -1);	/* odd */
	assert_int_equal(hex_decode(b, sizeof(b), "zz"), -1);
	assert_int_equal(hex_decode(b, sizeof(b), "a b"), -1);	/* split byte */
	assert_int_equal(hex_decode(b, sizeof(b), "000102"), -1);	/* overflow */
	assert_int_equal(hex_decode(b, sizeof(b), "0x01"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_separators_and_case),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
