/*
 * test_vsim: remsim-vsim's card without sockets: profile parsing and
 * generation, ICCID/IMSI encodings, the TS 34.108 XOR algorithm, and APDUs
 * straight into vsim_card_process() (including a bounded random-APDU run).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hex.h"
#include "vsim.h"

static const char good_profile[] =
	"{\"cards\": [{\"iccid\": \"89490000000000000017\", "
	"\"imsi\": \"001010123456789\", "
	"\"ki\": \"000102030405060708090a0b0c0d0e0f\", \"pin1\": \"1234\", "
	"\"puk1\": \"12345678\", \"pin2\": \"5678\", \"puk2\": \"87654321\"}]}";

static uint8_t hx(const char *text, uint8_t *out, size_t size)
{
	ssize_t n = hex_decode(out, size, text);

	assert_true(n >= 0);
	return (uint8_t)n;
}

/* sends hex text, returns SW; data (if any) is copied to data/len */
static uint16_t send_apdu(struct vsim_card *card, const char *text,
			  uint8_t *data, size_t *len)
{
	uint8_t apdu[VSIM_APDU_MAX], resp[VSIM_RESP_MAX];
	size_t n = vsim_card_process(card, apdu, hx(text, apdu, sizeof(apdu)),
				     resp);

	assert_true(n >= 2);
	if (data)
		memcpy(data, resp, n - 2);
	if (len)
		*len = n - 2;
	return (uint16_t)(resp[n - 2] << 8 | resp[n - 1]);
}

static struct vsim_card *new_card(void)
{
	struct vsim_profile *cards;
	struct vsim_card *card;
	char err[256];
	size_t n;

	assert_int_equal(vsim_profile_parse(good_profile, &cards, &n, err,
					    sizeof(err)), 0);
	assert_int_equal(n, 1);
	card = vsim_card_new(&cards[0]);
	free(cards);
	assert_non_null(card);
	return card;
}

static void test_luhn_and_encodings(void **state)
{
	uint8_t out[10], imsi[9];
	uint8_t want[10], want_imsi[9];

	assert_int_equal(vsim_luhn_digit("7992739871"), 3);
	assert_int_equal(vsim_luhn_digit("8949000000000000001"), 5);
	vsim_bcd_swapped(out, sizeof(out), "8949000000000000001");
	hx("98940000000000000010", want, sizeof(want));
	want[9] = 0xf1;
	assert_memory_equal(out, want, sizeof(out));
	vsim_encode_imsi(imsi, "001010123456789");
	hx("080910101032547698", want_imsi, sizeof(want_imsi));
	assert_memory_equal(imsi, want_imsi, sizeof(imsi));
	vsim_encode_imsi(imsi, "00101012345678");	/* even: parity 1 */
	hx("0801101010325476f8", want_imsi, sizeof(want_imsi));
	assert_memory_equal(imsi, want_imsi, sizeof(imsi));
}

static void test_xor_algorithm(void **state)
{
	uint8_t ki[16], rand[16], autn[16], ck[16], ik[16], res[8];
	uint8_t sres[4], kc[8];
	struct vsim_auth_result out;

	hx("000102030405060708090a0b0c0d0e0f", ki, sizeof(ki));
	hx("0b30557a9fc4e90e33587da2c7ec1136", rand, sizeof(rand));
	hx("799bc1ef091a80000b3157799be06f09", autn, sizeof(autn));
	hx("3157799bc1ef093b5177a9cbe11f390b", ck, sizeof(ck));
	hx("57799bc1ef093b5177a9cbe11f390b31", ik, sizeof(ik));
	hx("0b3157799bc1ef09", res, sizeof(res));
	assert_int_equal(vsim_auth_umts(ki, rand, autn, &out), VSIM_AUTH_OK);
	assert_memory_equal(out.res, res, 8);
	assert_memory_equal(out.ck, ck, 16);
	assert_memory_equal(out.ik, ik, 16);
	assert_int_equal(out.sqn[5], 0x21);
	autn[6] ^= 0x80;	/* AMF is under the MAC */
	assert_int_equal(vsim_auth_umts(ki, rand, autn, &out),
			 VSIM_AUTH_MAC_FAILURE);
	vsim_auth_gsm(ki, rand, sres, kc);
	assert_memory_equal(sres, res, 4);
	assert_memory_equal(kc, res + 4, 4);
}

static void test_profile_errors(void **state)
{
	struct vsim_profile *cards = NULL;
	char err[256];
	size_t n;

	assert_int_equal(vsim_profile_parse("{\"cards\": [{\"iccid\": "
					    "\"1\"}]}", &cards, &n, err,
					    sizeof(err)), -1);
	assert_string_equal(err, "card 0: field 'iccid' must be a string of "
			    "10 to 20 digits");
	assert_int_equal(vsim_profile_parse("{", &cards, &n, err,
					    sizeof(err)), -1);
	assert_non_null(strstr(err, "line 1"));
	assert_int_equal(vsim_profile_parse("{\"cards\": 3}", &cards, &n, err,
					    sizeof(err)), -1);
	assert_null(cards);
}

static void test_generated_profiles_parse(void **state)
{
	struct vsim_profile *cards;
	char *text = NULL, err[256];
	size_t size = 0, n;
	FILE *f = open_memstream(&text, &size);

	assert_non_null(f);
	assert_int_equal(vsim_profile_generate(f, 20, 99), 0);
	fclose(f);
	assert_int_equal(vsim_profile_parse(text, &cards, &n, err,
					    sizeof(err)), 0);
	assert_int_equal(n, 20);
	for (size_t i = 0; i < n; i++) {
		char payload[VSIM_ICCID_MAX + 1];

		assert_int_equal(strlen(cards[i].iccid), 20);
		assert_int_equal(strncmp(cards[i].imsi, "00101", 5), 0);
		memcpy(payload, cards[i].iccid, 19);
		payload[19] = '\0';
		assert_int_equal(vsim_luhn_digit(payload),
				 cards[i].iccid[19] - '0');
	}
	free(cards);
	free(text);
}

static void test_select_and_read(void **state)
{
	struct vsim_card *card = new_card();
	uint8_t data[260], want[10];
	size_t len;

	assert_int_equal(send_apdu(card, "00a40004023f00", NULL, &len) >> 8,
			 0x61);
	assert_int_equal(len, 0);
	assert_int_equal(send_apdu(card, "00a4000c022fe2", NULL, NULL),
			 0x9000);
	assert_int_equal(send_apdu(card, "00b000000a", data, &len), 0x9000);
	hx("98940000000000000071", want, sizeof(want));
	assert_memory_equal(data, want, 10);
	assert_int_equal(send_apdu(card, "a0a40000027f20", NULL, NULL), 0x9f16);
	assert_int_equal(send_apdu(card, "a0c0000016", data, &len), 0x9000);
	assert_int_equal(len, 22);
	assert_int_equal(data[4], 0x7f);
	assert_int_equal(send_apdu(card, "00a4", NULL, NULL), 0x6700);
	assert_int_equal(send_apdu(card, "", NULL, NULL), 0x6700);
	assert_int_equal(send_apdu(card, "50a4000000", NULL, NULL), 0x6e00);
	assert_int_equal(send_apdu(card, "00ee000000", NULL, NULL), 0x6d00);
	vsim_card_free(card);
}

static void test_pin_counters(void **state)
{
	struct vsim_card *card = new_card();

	assert_int_equal(send_apdu(card, "002000010830303030ffffffff", NULL,
				   NULL), 0x63c2);
	assert_int_equal(card->pins[VSIM_PIN1].retries, 2);
	assert_int_equal(send_apdu(card, "002000010831323334ffffffff", NULL,
				   NULL), 0x9000);
	assert_int_equal(card->pins[VSIM_PIN1].retries, 3);
	for (int i = 0; i < 3; i++)
		send_apdu(card, "a020000108ffffffffffffffff", NULL, NULL);
	assert_int_equal(send_apdu(card, "a020000108ffffffffffffffff", NULL,
				   NULL), 0x9840);
	assert_int_equal(send_apdu(card, "002c000110"
				   "3132333435363738" "39393939ffffffff",
				   NULL, NULL), 0x9000);
	assert_string_equal(card->pins[VSIM_PIN1].value, "9999");
	vsim_card_free(card);
}

static void fixed_random(uint8_t *buf, size_t len)
{
	memset(buf, 0x5a, len);
}

static void test_get_challenge_uses_random(void **state)
{
	struct vsim_card *card = new_card();
	uint8_t data[260];
	size_t len;

	card->random = fixed_random;
	assert_int_equal(send_apdu(card, "0084000004", data, &len), 0x9000);
	assert_int_equal(len, 4);
	assert_int_equal(data[3], 0x5a);
	assert_int_equal(send_apdu(card, "0084000000", data, &len), 0x9000);
	assert_int_equal(len, 256);
	vsim_card_free(card);
}

/* splitmix64 again: random APDUs must never break the card */
static uint64_t next_random(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void test_random_apdus(void **state)
{
	static const uint8_t classes[] = { 0x00, 0x80, 0xa0, 0x01, 0x50 };
	static const uint8_t ins[] = { 0xa4, 0xb0, 0xd6, 0xb2, 0xdc, 0xc0,
				       0xf2, 0x84, 0x88, 0x20, 0x24, 0x26,
				       0x28, 0x2c, 0x10, 0xaa, 0xfa, 0x00 };
	struct vsim_card *card = new_card();
	uint8_t apdu[VSIM_APDU_MAX + 8], resp[VSIM_RESP_MAX];
	uint64_t seed = 1;

	for (int i = 0; i < 200000; i++) {
		size_t len = next_random(&seed) % sizeof(apdu);

		for (size_t k = 0; k < len; k++)
			apdu[k] = (uint8_t)next_random(&seed);
		if (len > 1) {
			apdu[0] = classes[apdu[0] % sizeof(classes)];
			apdu[1] = ins[apdu[1] % sizeof(ins)];
		}
		if (len > 4 && (apdu[4] & 1))	/* often a matching Lc */
			apdu[4] = (uint8_t)(len - 5);
		if (i % 1000 == 0)
			vsim_card_reset(card);
		assert_true(vsim_card_process(card, apdu, len, resp) >= 2);
	}
	vsim_card_free(card);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_luhn_and_encodings),
		cmocka_unit_test(test_xor_algorithm),
		cmocka_unit_test(test_profile_errors),
		cmocka_unit_test(test_generated_profiles_parse),
		cmocka_unit_test(test_select_and_read),
		cmocka_unit_test(test_pin_counters),
		cmocka_unit_test(test_get_challenge_uses_random),
		cmocka_unit_test(test_random_apdus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
