/*
 * test_opt: numbers on command lines: what is accepted, what is refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>

#include "opt.h"

static void test_accepted(void **state)
{
	assert_int_equal(opt_number("0", 0, 10), 0);
	assert_int_equal(opt_number("10", 0, 10), 10);
	assert_int_equal(opt_number("9998", 1, 65535), 9998);
	assert_int_equal(opt_number("007", 0, 10), 7);
}

static void test_refused(void **state)
{
	static const char *const bad[] = {
		"", "11", "-1", "+1", "1x", " 1", "1 ", "0x10", "1e3", "abc",
		"99999999999999999999999",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(opt_number(bad[i], 0, 10), -1);
	assert_int_equal(opt_number(NULL, 0, 10), -1);
	assert_int_equal(opt_number("0", 1, 65535), -1);
	assert_int_equal(opt_number("65536", 1, 65535), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
