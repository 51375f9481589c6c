/*
 * test_reader_map: osmo-remsim's bankd_pcsc_slots.csv (quoting, comments,
 * CRLF, strict numbers, regex errors and duplicates with line numbers) and
 * reader selection: first PC/SC reader the unanchored regex matches, or the
 * automatic natural name order.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "reader_map.h"

static const char *const readers[] = {
	"remsim-vpcd1 00 00", "remsim-vpcd0 00 01", "remsim-vpcd0 00 00",
	"Reader 10", "Reader 2",
};
#define NREADERS (sizeof(readers) / sizeof(readers[0]))

static int parse(struct reader_map *m, const char *text, char *err,
		 size_t errlen)
{
	return reader_map_parse(m, text, strlen(text), "f.csv", err, errlen);
}

static void test_parse_and_select(void **state)
{
	struct reader_map m;
	char err[300] = "";
	const char *csv =
		"# bank,slot,regex\r\n"
		"\"1\",\"0\",\"ACS ACR33 ICC Reader 00 00\"\r\n"
		"1, 1 ,\"vpcd0 00 0\"\n"
		"\"1\",\"2\",\"^remsim-vpcd1 00 00$\"\n"
		"\"1\",\"3\",\"say \"\"hi\"\"\"\n"
		"\n"
		"2,0,\"Reader [0-9]{2}\"\n";

	assert_int_equal(parse(&m, csv, err, sizeof(err)), 0);
	assert_int_equal(m.n, 5);
	assert_string_equal(m.rows[3].pattern, "say \"hi\"");
	assert_int_equal(m.rows[4].line, 7);
	/* no reader matches */
	assert_int_equal(reader_map_select(&m, 1, 0, readers, NREADERS),
			 -ENODEV);
	/* unanchored, first in PC/SC order: "... 00 01" before "... 00 00" */
	assert_int_equal(reader_map_select(&m, 1, 1, readers, NREADERS), 1);
	assert_int_equal(reader_map_select(&m, 1, 2, readers, NREADERS), 0);
	assert_int_equal(reader_map_select(&m, 2, 0, readers, NREADERS), 3);
	assert_int_equal(reader_map_select(&m, 1, 9, readers, NREADERS),
			 -ENOENT);
	reader_map_free(&m);
}

static void expect_error(const char *csv, const char *want)
{
	struct reader_map m;
	char err[300] = "";

	assert_int_equal(parse(&m, csv, err, sizeof(err)), -EINVAL);
	if (!strstr(err, want))
		fail_msg("error \"%s\" does not contain \"%s\"", err, want);
	assert_int_equal(m.n, 0);
}

static void test_errors(void **state)
{
	expect_error("1,0,a\n1,1,\"[x\"\n", "f.csv:2: bad regex \"[x\"");
	expect_error("1,0\n", "f.csv:1: fewer than 3 fields");
	expect_error("1,0,a,b\n", "f.csv:1: more than 3 fields");
	expect_error("1,x,a\n", "f.csv:1: bank id and slot must be numbers");
	expect_error("1024,0,a\n", "f.csv:1: bank id and slot");
	expect_error("-1,0,a\n", "f.csv:1: bank id and slot");
	expect_error("1,0,\"a\n", "f.csv:1: unterminated quote");
	expect_error("1,0,\"a\"b\n", "f.csv:1: text after a closing quote");
	expect_error("1,0,a\"b\n", "f.csv:1: quote inside an unquoted field");
	expect_error("1,0,\"\"\n", "f.csv:1: empty reader name regex");
	expect_error("1,0,a\n\n1,0,b\n", "f.csv:3: bank 1 slot 0 is already "
		     "mapped on line 1");
	expect_error("# only a comment\n\n", "f.csv: no rows");
}

static void test_automatic(void **state)
{
	struct reader_map m;

	reader_map_init_auto(&m);
	/* natural order: Reader 2, Reader 10, remsim-vpcd0 00 00, ... */
	assert_int_equal(reader_map_select(&m, 1, 0, readers, NREADERS), 4);
	assert_int_equal(reader_map_select(&m, 1, 1, readers, NREADERS), 3);
	assert_int_equal(reader_map_select(&m, 1, 2, readers, NREADERS), 2);
	assert_int_equal(reader_map_select(&m, 5, 3, readers, NREADERS), 1);
	assert_int_equal(reader_map_select(&m, 1, 4, readers, NREADERS), 0);
	assert_int_equal(reader_map_select(&m, 1, 5, readers, NREADERS),
			 -ENODEV);
	reader_map_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_and_select),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_automatic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
