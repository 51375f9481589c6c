/*
 * vsim_profile: card profiles of remsim-vsim. Loads and checks the JSON
 * profile file ({"cards":[{iccid, imsi, ki, pin1, puk1, pin2, puk2, atr}]})
 * and generates such files, deterministically when given a seed.
 */
#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <string.h>
#include <sys/random.h>

#include "hex.h"
#include "vsim.h"

/*
 * An ATR of our own for a T=0-only card: TS 3B (direct convention), T0 08
 * (no interface bytes, 8 historical bytes), historical bytes 80 (compact
 * TLV follows) 56 (issuer data, 6 bytes) "remsim". No TCK: only T=0.
 */
static const uint8_t profile_default_atr[] = {
	0x3b, 0x08, 0x80, 0x56, 'r', 'e', 'm', 's', 'i', 'm',
};

void vsim_default_atr(uint8_t *atr, size_t *len)
{
	memcpy(atr, profile_default_atr, sizeof(profile_default_atr));
	*len = sizeof(profile_default_atr);
}

static int profile_error(char *err, size_t err_size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int profile_error(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
	return -1;
}

static int profile_all_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return 0;
	return 1;
}

/* Luhn check digit for the digits given (ISO/IEC 7812, used by ICCIDs) */
int vsim_luhn_digit(const char *digits)
{
	size_t n = strlen(digits);
	int sum = 0;

	for (size_t i = 0; i < n; i++) {
		int d = digits[n - 1 - i] - '0';

		/* double every second digit, from the one next to the check */
		if (i % 2 == 0) {
			d *= 2;
			if (d > 9)
				d -= 9;
		}
		sum += d;
	}
	return (10 - sum % 10) % 10;
}

/* A string field of digits, min..max long, copied into out. */
static int profile_digits(json_t *card, size_t idx, const char *field,
			  size_t min, size_t max, char *out, char *err,
			  size_t err_size)
{
	json_t *v = json_object_get(card, field);
	const char *s;

	if (!v)
		return profile_error(err, err_size, "card %zu: missing field "
				     "'%s'", idx, field);
	s = json_string_value(v);
	if (!s || !profile_all_digits(s) || strlen(s) < min ||
	    strlen(s) > max)
		return profile_error(err, err_size, "card %zu: field '%s' "
				     "must be a string of %zu to %zu digits",
				     idx, field, min, max);
	strcpy(out, s);
	return 0;
}

static int profile_hex(json_t *card, size_t idx, const char *field,
		       size_t min, size_t max, uint8_t *out, size_t *len,
		       char *err, size_t err_size)
{
	json_t *v = json_object_get(card, field);
	const char *s = json_string_value(v);
	ssize_t n;

	if (!v)
		return profile_error(err, err_size, "card %zu: missing field "
				     "'%s'", idx, field);
	n = s ? hex_decode(out, max, s) : -1;
	if (n < (ssize_t)min)
		return profile_error(err, err_size, "card %zu: field '%s' "
				     "must be a string of %zu to %zu bytes in "
				     "hex", idx, field, min, max);
	*len = (size_t)n;
	return 0;
}

static const char *const profile_fields[] = {
	"iccid", "imsi", "ki", "pin1", "puk1", "pin2", "puk2", "atr",
	"pin1_enabled", NULL,
};

static int profile_check_fields(json_t *card, size_t idx, char *err,
				size_t err_size)
{
	const char *key;
	json_t *v;

	json_object_foreach(card, key, v) {
		int known = 0;

		for (int i = 0; profile_fields[i]; i++)
			known |= !strcmp(key, profile_fields[i]);
		if (!known)
			return profile_error(err, err_size, "card %zu: unknown "
					     "field '%s'", idx, key);
	}
	return 0;
}

static int profile_parse_card(json_t *card, size_t idx,
			      struct vsim_profile *p, char *err,
			      size_t err_size)
{
	json_t *enabled;
	size_t len;

	if (!json_is_object(card))
		return profile_error(err, err_size, "card %zu: not a JSON "
				     "object", idx);
	if (profile_check_fields(card, idx, err, err_size) ||
	    profile_digits(card, idx, "iccid", 10, VSIM_ICCID_MAX, p->iccid,
			   err, err_size) ||
	    profile_digits(card, idx, "imsi", 6, VSIM_IMSI_MAX, p->imsi, err,
			   err_size) ||
	    profile_hex(card, idx, "ki", VSIM_KI_LEN, VSIM_KI_LEN, p->ki,
			&len, err, err_size) ||
	    profile_digits(card, idx, "pin1", 4, 8, p->pin1, err,
			   err_size) ||
	    profile_digits(card, idx, "puk1", 8, 8, p->puk1, err,
			   err_size) ||
	    profile_digits(card, idx, "pin2", 4, 8, p->pin2, err,
			   err_size) ||
	    profile_digits(card, idx, "puk2", 8, 8, p->puk2, err, err_size))
		return -1;
	if (json_object_get(card, "atr")) {
		if (profile_hex(card, idx, "atr", 2, VSIM_ATR_MAX, p->atr,
				&p->atr_len, err, err_size))
			return -1;
		if (p->atr[0] != 0x3b && p->atr[0] != 0x3f)
			return profile_error(err, err_size, "card %zu: field "
					     "'atr' must start with 3B or 3F",
					     idx);
	} else {
		vsim_default_atr(p->atr, &p->atr_len);
	}
	enabled = json_object_get(card, "pin1_enabled");
	if (enabled && !json_is_boolean(enabled))
		return profile_error(err, err_size, "card %zu: field "
				     "'pin1_enabled' must be true or false",
				     idx);
	p->pin1_enabled = enabled && json_is_true(enabled);
	return 0;
}

static int profile_parse_root(json_t *root, struct vsim_profile **cards,
			      size_t *n, char *err, size_t err_size)
{
	json_t *list = json_object_get(root, "cards");
	struct vsim_profile *out;
	size_t count;

	if (!json_is_object(root) || !json_is_array(list))
		return profile_error(err, err_size, "expected an object "
				     "{\"cards\": [...]}");
	count = json_array_size(list);
	if (count == 0)
		return profile_error(err, err_size, "\"cards\" is empty");
	out = calloc(count, sizeof(*out));
	if (!out)
		return profile_error(err, err_size, "out of memory");
	for (size_t i = 0; i < count; i++) {
		if (profile_parse_card(json_array_get(list, i), i, &out[i],
				       err, err_size)) {
			free(out);
			return -1;
		}
	}
	*cards = out;
	*n = count;
	return 0;
}

int vsim_profile_parse(const char *text, struct vsim_profile **cards,
		       size_t *n, char *err, size_t err_size)
{
	json_error_t jerr;
	json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	int rc;

	if (!root)
		return profile_error(err, err_size, "line %d column %d: %s",
				     jerr.line, jerr.column, jerr.text);
	rc = profile_parse_root(root, cards, n, err, err_size);
	json_decref(root);
	return rc;
}

int vsim_profile_load(const char *path, struct vsim_profile **cards,
		      size_t *n, char *err, size_t err_size)
{
	char inner[256];
	json_error_t jerr;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	int rc;

	if (!root) {
		if (jerr.line <= 0)
			return profile_error(err, err_size, "%s: %s", path,
					     jerr.text);
		return profile_error(err, err_size, "%s: line %d column %d: "
				     "%s", path, jerr.line, jerr.column,
				     jerr.text);
	}
	rc = profile_parse_root(root, cards, n, inner, sizeof(inner));
	json_decref(root);
	if (rc)
		profile_error(err, err_size, "%s: %s", path, inner);
	return rc;
}

/* ---- generator ----------------------------------------------------------- */

/* splitmix64: small, fast, and the same numbers everywhere for a seed */
static uint64_t profile_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void profile_random_digits(uint64_t *state, char *out, int n)
{
	for (int i = 0; i < n; i++)
		out[i] = (char)('0' + profile_next(state) % 10);
	out[n] = '\0';
}

/*
 * ICCID: 89 (telecom) 49 (country) 99 (issuer) + 5 random digits per file +
 * 8-digit card number, then the Luhn digit: 20 digits, unique in the file.
 * IMSI: MCC 001 MNC 01 (the test network) + 3 random digits per file +
 * 7-digit card number.
 */
int vsim_profile_generate(FILE *out, unsigned int n, uint64_t seed)
{
	uint64_t state = seed;
	char block[8], imsi_block[4], pin1[5], pin2[5], puk1[9], puk2[9];
	char iccid[32], ki[2 * VSIM_KI_LEN + 1];
	uint8_t kib[VSIM_KI_LEN];

	profile_random_digits(&state, block, 5);
	profile_random_digits(&state, imsi_block, 3);
	fprintf(out, "{\"cards\": [\n");
	for (unsigned int i = 0; i < n; i++) {
		snprintf(iccid, sizeof(iccid), "894999%s%08u", block,
			 i % 100000000u);
		iccid[19] = (char)('0' + vsim_luhn_digit(iccid));
		iccid[20] = '\0';
		for (int k = 0; k < VSIM_KI_LEN; k++)
			kib[k] = (uint8_t)profile_next(&state);
		hex_encode(ki, kib, sizeof(kib));
		profile_random_digits(&state, pin1, 4);
		profile_random_digits(&state, puk1, 8);
		profile_random_digits(&state, pin2, 4);
		profile_random_digits(&state, puk2, 8);
		fprintf(out, "  {\"iccid\": \"%s\", \"imsi\": \"00101%s%07u\", "
			"\"ki\": \"%s\", \"pin1\": \"%s\", \"puk1\": \"%s\", "
			"\"pin2\": \"%s\", \"puk2\": \"%s\"}%s\n", iccid,
			imsi_block, i % 10000000u, ki, pin1, puk1, pin2, puk2,
			i + 1 < n ? "," : "");
	}
	fprintf(out, "]}\n");
	return fflush(out) ? -1 : 0;
}
