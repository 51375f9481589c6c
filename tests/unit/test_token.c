/*
 * Unit tests for token: issue/verify round trips, every way a token can be
 * wrong (time, role, subject, key, tampering, truncation, garbage) and the
 * key files (permissions, corruption, mismatched halves, no overwrite).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "token.h"

#define T0 1700000000LL		/* 2023-11-14, any fixed time will do */
#define B64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING

static struct token_keypair key_a, key_b;

static int setup_keys(void **state)
{
	uint8_t seed[TOKEN_SEED_LEN];

	if (token_init() != TOKEN_OK)
		return -1;
	memset(seed, 0xa1, sizeof(seed));
	if (token_keypair_from_seed(seed, &key_a) != TOKEN_OK)
		return -1;
	memset(seed, 0xb2, sizeof(seed));
	return token_keypair_from_seed(seed, &key_b) == TOKEN_OK ? 0 : -1;
}

static void issue_ok(const struct token_keypair *kp, enum token_role role,
		     uint32_t subject, int64_t now, int64_t ttl, char *out,
		     struct token_claims *claims)
{
	assert_int_equal(token_issue(kp, role, subject, now, ttl, out,
				     TOKEN_TEXT_MAX, claims),
			 TOKEN_OK);
}

/* Printable form <-> binary form, to tamper with single bits. */
static void token_to_bin(const char *text, uint8_t bin[TOKEN_BINARY_LEN])
{
	size_t len;

	assert_int_equal(sodium_base642bin(bin, TOKEN_BINARY_LEN,
					   text + strlen(TOKEN_PREFIX),
					   strlen(text) - strlen(TOKEN_PREFIX),
					   NULL, &len, NULL, B64_VARIANT),
			 0);
	assert_int_equal(len, TOKEN_BINARY_LEN);
}

static void bin_to_token(const uint8_t bin[TOKEN_BINARY_LEN], char *text)
{
	strcpy(text, TOKEN_PREFIX);
	sodium_bin2base64(text + strlen(TOKEN_PREFIX),
			  TOKEN_TEXT_MAX - strlen(TOKEN_PREFIX), bin,
			  TOKEN_BINARY_LEN, B64_VARIANT);
}

/* Signs a hand-made payload with key_a, for payloads token_issue refuses. */
static void sign_bin(uint8_t bin[TOKEN_BINARY_LEN])
{
	crypto_sign_detached(bin + TOKEN_PAYLOAD_LEN, NULL, bin,
			     TOKEN_PAYLOAD_LEN, key_a.sk);
}

static void test_valid(void **state)
{
	char text[TOKEN_TEXT_MAX];
	struct token_claims issued, got;

	issue_ok(&key_a, TOKEN_ROLE_CLIENT, 23, T0, 3600, text, &issued);
	assert_int_equal(strlen(text), TOKEN_TEXT_LEN);
	assert_memory_equal(text, TOKEN_PREFIX, strlen(TOKEN_PREFIX));
	/* URL- and header-safe: base64url alphabet only, no padding. */
	assert_int_equal(strspn(text + strlen(TOKEN_PREFIX),
				"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
				"qrstuvwxyz0123456789-_"),
			 TOKEN_TEXT_LEN - strlen(TOKEN_PREFIX));

	assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_CLIENT, 23,
				      T0 + 10, TOKEN_DEFAULT_SKEW, &got),
			 TOKEN_OK);
	assert_int_equal(got.version, TOKEN_VERSION);
	assert_int_equal(got.role, TOKEN_ROLE_CLIENT);
	assert_int_equal(got.subject, 23);
	assert_int_equal(got.issued, T0);
	assert_int_equal(got.expires, T0 + 3600);
	assert_memory_equal(got.key_id, key_a.key_id, TOKEN_KEY_ID_LEN);
	assert_memory_equal(&got, &issued, sizeof(got));

	assert_int_equal(token_parse_unverified(text, &got), TOKEN_OK);
	assert_memory_equal(&got, &issued, sizeof(got));
	/* claims is optional */
	assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_CLIENT, 23,
				      T0, 0, NULL),
			 TOKEN_OK);
}

static void test_token_ids_differ(void **state)
{
	char t1[TOKEN_TEXT_MAX], t2[TOKEN_TEXT_MAX];
	struct token_claims c1, c2;

	issue_ok(&key_a, TOKEN_ROLE_BANKD, 1, T0, 60, t1, &c1);
	issue_ok(&key_a, TOKEN_ROLE_BANKD, 1, T0, 60, t2, &c2);
	assert_string_not_equal(t1, t2);
	assert_memory_not_equal(c1.token_id, c2.token_id, TOKEN_ID_LEN);
}

static void test_expired(void **state)
{
	char text[TOKEN_TEXT_MAX];
	struct token_claims got;

	issue_ok(&key_a, TOKEN_ROLE_BANKD, 7, T0, 100, text, NULL);
	/* The last second of validity, with and without skew. */
	assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_BANKD, 7,
				      T0 + 100, 0, NULL),
			 TOKEN_OK);
	assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_BANKD, 7,
				      T0 + 101, 0, &got),
			 TOKEN_ERR_EXPIRED);
	/* claims are reported for a token that is only too old */
	assert_int_equal(got.expires, T0 + 100);
	assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_BANKD, 7,
				      T0 + 160, 60, NULL),
			 TOKEN_OK);
	assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_BANKD, 7,
				      T0 + 161, 60, NULL),
			 TOKEN_ERR_EXPIRED);
	assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_BANKD, 7,
				      INT64_MAX, 60, NULL),
			 TOKEN_ERR_EXPIRED);
}

static void test_not_yet_valid(void **state)
{
	char text[TOKEN_TEXT_MAX];
	struct token_claims got;

	issue_ok(&key_a, TOKEN_ROLE_CLIENT, 5, T0 + 1000, 3600, text, NULL);
	assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_CLIENT, 5,
				      T0, TOKEN_DEFAULT_SKEW, &got),
			 TOKEN_ERR_NOT_YET_VALID);
	assert_int_equal(got.issued, T0 + 1000);
	assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_CLIENT, 5,
				      INT64_MIN, TOKEN_DEFAULT_SKEW, NULL),
			 TOKEN_ERR_NOT_YET_VALID);
}

static void test_within_skew(void **state)
{
	char text[TOKEN_TEXT_MAX];

	/* Issued by a server whose clock runs 30 s ahead of ours. */
	issue_ok(&key_a, TOKEN_ROLE_CLIENT, 5, T0 + 30, 3600, text, NULL);
	assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_CLIENT, 5,
				      T0, TOKEN_DEFAULT_SKEW, NULL),
			 TOKEN_OK);
	assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_CLIENT, 5,
				      T0 - 30, 60, NULL),
			 TOKEN_OK);
	assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_CLIENT, 5,
				      T0 - 31, 60, NULL),
			 TOKEN_ERR_NOT_YET_VALID);
	assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_CLIENT, 5,
				      T0, 0, NULL),
			 TOKEN_ERR_NOT_YET_VALID);
}

/* What a flipped bit at offset off of the signed payload must give. */
static void check_payload_flip(size_t off, int rc)
{
	if (off == 0) {
		assert_int_equal(rc, TOKEN_ERR_VERSION);
	} else if (off < 9) {
		assert_int_equal(rc, TOKEN_ERR_KEY);
	} else if (off == 9) {
		/* role: another valid role or an unknown one */
		assert_true(rc == TOKEN_ERR_SIGNATURE ||
			    rc == TOKEN_ERR_MALFORMED);
	} else if (off >= 14 && off < 30) {
		/* times: may turn expires <= issued */
		assert_true(rc == TOKEN_ERR_SIGNATURE ||
			    rc == TOKEN_ERR_MALFORMED);
	} else {
		assert_int_equal(rc, TOKEN_ERR_SIGNATURE);
	}
}

static void test_tampered_payload(void **state)
{
	char text[TOKEN_TEXT_MAX], bad[TOKEN_TEXT_MAX];
	uint8_t bin[TOKEN_BINARY_LEN];

	issue_ok(&key_a, TOKEN_ROLE_CLIENT, 23, T0, 3600, text, NULL);
	token_to_bin(text, bin);
	for (size_t off = 0; off < TOKEN_PAYLOAD_LEN; off++) {
		for (int bit = 0; bit < 8; bit++) {
			bin[off] ^= (uint8_t)(1 << bit);
			bin_to_token(bin, bad);
			check_payload_flip(off,
					   token_verify(bad, key_a.pk,
							TOKEN_ROLE_ANY,
							TOKEN_SUBJECT_ANY, T0,
							60, NULL));
			bin[off] ^= (uint8_t)(1 << bit);
		}
	}
	/* and the untouched token still verifies */
	bin_to_token(bin, bad);
	assert_string_equal(bad, text);
}

static void test_tampered_signature(void **state)
{
	char text[TOKEN_TEXT_MAX], bad[TOKEN_TEXT_MAX];
	uint8_t bin[TOKEN_BINARY_LEN];
	struct token_claims got;

	issue_ok(&key_a, TOKEN_ROLE_ADMIN, 0, T0, 3600, text, NULL);
	token_to_bin(text, bin);
	for (size_t off = TOKEN_PAYLOAD_LEN; off < TOKEN_BINARY_LEN; off++) {
		for (int bit = 0; bit < 8; bit++) {
			bin[off] ^= (uint8_t)(1 << bit);
			bin_to_token(bin, bad);
			assert_int_equal(token_verify(bad, key_a.pk,
						      TOKEN_ROLE_ANY,
						      TOKEN_SUBJECT_ANY, T0,
						      60, &got),
					 TOKEN_ERR_SIGNATURE);
			/* nothing unverified leaks out */
			assert_int_equal(got.role, 0);
			bin[off] ^= (uint8_t)(1 << bit);
		}
	}
}

static void test_tampered_text(void **state)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		"0123456789-_";
	char text[TOKEN_TEXT_MAX], bad[TOKEN_TEXT_MAX];
	const char *pos;

	issue_ok(&key_a, TOKEN_ROLE_CLIENT, 1, T0, 3600, text, NULL);
	for (size_t i = 0; i < TOKEN_TEXT_LEN; i++) {
		strcpy(bad, text);
		/* the next character of the alphabet, or 'A' */
		pos = strchr(alphabet, text[i]);
		bad[i] = pos && pos[1] ? pos[1] : 'A';
		if (bad[i] == text[i])
			bad[i] = 'B';
		assert_int_not_equal(token_verify(bad, key_a.pk,
						  TOKEN_ROLE_ANY,
						  TOKEN_SUBJECT_ANY, T0, 60,
						  NULL),
				     TOKEN_OK);
	}
}

static void test_wrong_key(void **state)
{
	char text[TOKEN_TEXT_MAX], bad[TOKEN_TEXT_MAX];
	uint8_t bin[TOKEN_BINARY_LEN];

	issue_ok(&key_a, TOKEN_ROLE_BANKD, 3, T0, 3600, text, NULL);
	assert_int_equal(token_verify(text, key_b.pk, TOKEN_ROLE_BANKD, 3, T0,
				      60, NULL),
			 TOKEN_ERR_KEY);
	/* A forger who also puts key b's id in still fails the signature. */
	token_to_bin(text, bin);
	memcpy(bin + 1, key_b.key_id, TOKEN_KEY_ID_LEN);
	bin_to_token(bin, bad);
	assert_int_equal(token_verify(bad, key_b.pk, TOKEN_ROLE_BANKD, 3, T0,
				      60, NULL),
			 TOKEN_ERR_SIGNATURE);
}

static void test_wrong_role(void **state)
{
	char text[TOKEN_TEXT_MAX];
	struct token_claims got;

	issue_ok(&key_a, TOKEN_ROLE_CLIENT, 9, T0, 3600, text, NULL);
	assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_BANKD, 9, T0,
				      60, &got),
			 TOKEN_ERR_ROLE);
	assert_int_equal(got.role, TOKEN_ROLE_CLIENT);
	assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_ADMIN, 9, T0,
				      60, NULL),
			 TOKEN_ERR_ROLE);
}

static void test_wrong_subject(void **state)
{
	char text[TOKEN_TEXT_MAX];

	issue_ok(&key_a, TOKEN_ROLE_CLIENT, 9, T0, 3600, text, NULL);
	assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_CLIENT, 10,
				      T0, 60, NULL),
			 TOKEN_ERR_SUBJECT);
	assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_CLIENT, 0, T0,
				      60, NULL),
			 TOKEN_ERR_SUBJECT);
}

static void test_any_role_subject(void **state)
{
	char text[TOKEN_TEXT_MAX];
	struct token_claims got;

	for (int r = TOKEN_ROLE_BANKD; r <= TOKEN_ROLE_ADMIN; r++) {
		issue_ok(&key_a, (enum token_role)r, 1023, T0, 3600, text,
			 NULL);
		assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_ANY,
					      TOKEN_SUBJECT_ANY, T0, 60,
					      &got),
				 TOKEN_OK);
		assert_int_equal(got.role, r);
		assert_int_equal(got.subject, 1023);
		assert_int_equal(token_verify(text, key_a.pk, r,
					      TOKEN_SUBJECT_ANY, T0, 60,
					      NULL),
				 TOKEN_OK);
		assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_ANY,
					      1023, T0, 60, NULL),
				 TOKEN_OK);
	}
	/* the full uint32 subject range survives the round trip */
	issue_ok(&key_a, TOKEN_ROLE_ADMIN, UINT32_MAX, T0, 3600, text, NULL);
	assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_ADMIN,
				      (long)UINT32_MAX, T0, 60, &got),
			 TOKEN_OK);
	assert_int_equal(got.subject, UINT32_MAX);
}

static void test_truncated(void **state)
{
	char text[TOKEN_TEXT_MAX], cut[TOKEN_TEXT_MAX + 8];
	struct token_claims got;

	issue_ok(&key_a, TOKEN_ROLE_CLIENT, 1, T0, 3600, text, NULL);
	for (size_t len = 0; len < TOKEN_TEXT_LEN; len++) {
		memcpy(cut, text, len);
		cut[len] = '\0';
		assert_int_equal(token_verify(cut, key_a.pk, TOKEN_ROLE_ANY,
					      TOKEN_SUBJECT_ANY, T0, 60,
					      NULL),
				 TOKEN_ERR_MALFORMED);
		assert_int_equal(token_parse_unverified(cut, &got),
				 TOKEN_ERR_MALFORMED);
	}
	/* one character more, or a trailing newline, is no better */
	snprintf(cut, sizeof(cut), "%sA", text);
	assert_int_equal(token_verify(cut, key_a.pk, TOKEN_ROLE_ANY,
				      TOKEN_SUBJECT_ANY, T0, 60, NULL),
			 TOKEN_ERR_MALFORMED);
	snprintf(cut, sizeof(cut), "%s\n", text);
	assert_int_equal(token_verify(cut, key_a.pk, TOKEN_ROLE_ANY,
				      TOKEN_SUBJECT_ANY, T0, 60, NULL),
			 TOKEN_ERR_MALFORMED);
}

static int verify_any(const char *text)
{
	return token_verify(text, key_a.pk, TOKEN_ROLE_ANY, TOKEN_SUBJECT_ANY,
			    T0, 60, NULL);
}

static void test_garbage(void **state)
{
	char text[TOKEN_TEXT_MAX], bad[TOKEN_TEXT_MAX + 8];
	struct token_claims got;
	char *huge;
	size_t i;

	assert_int_equal(verify_any(NULL), TOKEN_ERR_MALFORMED);
	assert_int_equal(token_parse_unverified(NULL, &got),
			 TOKEN_ERR_MALFORMED);
	assert_int_equal(verify_any(""), TOKEN_ERR_MALFORMED);
	assert_int_equal(verify_any("rst1."), TOKEN_ERR_MALFORMED);
	assert_int_equal(verify_any("rst"), TOKEN_ERR_MALFORMED);
	assert_int_equal(verify_any("rst."), TOKEN_ERR_MALFORMED);
	assert_int_equal(verify_any("Bearer x"), TOKEN_ERR_MALFORMED);

	issue_ok(&key_a, TOKEN_ROLE_CLIENT, 1, T0, 3600, text, NULL);
	/* right length, characters outside base64url */
	strcpy(bad, TOKEN_PREFIX);
	memset(bad + 5, '!', TOKEN_TEXT_LEN - 5);
	bad[TOKEN_TEXT_LEN] = '\0';
	assert_int_equal(verify_any(bad), TOKEN_ERR_MALFORMED);
	/* the standard base64 alphabet is not accepted */
	strcpy(bad, text);
	bad[20] = '+';
	assert_int_equal(verify_any(bad), TOKEN_ERR_MALFORMED);
	bad[20] = '/';
	assert_int_equal(verify_any(bad), TOKEN_ERR_MALFORMED);
	bad[20] = ' ';
	assert_int_equal(verify_any(bad), TOKEN_ERR_MALFORMED);
	/* padding makes it too long */
	snprintf(bad, sizeof(bad), "%s=", text);
	assert_int_equal(verify_any(bad), TOKEN_ERR_MALFORMED);
	/* wrong or other-version prefixes */
	strcpy(bad, text);
	bad[0] = 'x';
	assert_int_equal(verify_any(bad), TOKEN_ERR_MALFORMED);
	strcpy(bad, text);
	bad[3] = '2';
	assert_int_equal(verify_any(bad), TOKEN_ERR_VERSION);
	snprintf(bad, sizeof(bad), "rst01.%s", text + 5);
	assert_int_equal(verify_any(bad), TOKEN_ERR_VERSION);
	snprintf(bad, sizeof(bad), "RST1.%s", text + 5);
	assert_int_equal(verify_any(bad), TOKEN_ERR_MALFORMED);

	/* huge inputs: after the prefix, and a long run of digits */
	huge = malloc(100001);
	assert_non_null(huge);
	memset(huge, 'A', 100000);
	huge[100000] = '\0';
	memcpy(huge, TOKEN_PREFIX, 5);
	assert_int_equal(verify_any(huge), TOKEN_ERR_MALFORMED);
	memset(huge + 3, '7', 99990);
	assert_int_equal(verify_any(huge), TOKEN_ERR_MALFORMED);
	for (i = 0; i < 100000; i++)
		huge[i] = (char)(1 + (i * 7919) % 255);
	assert_int_equal(verify_any(huge), TOKEN_ERR_MALFORMED);
	free(huge);
}

/* Properly signed payloads that token_issue would never produce. */
static void test_signed_nonsense(void **state)
{
	char text[TOKEN_TEXT_MAX], bad[TOKEN_TEXT_MAX];
	uint8_t bin[TOKEN_BINARY_LEN];

	issue_ok(&key_a, TOKEN_ROLE_CLIENT, 1, T0, 3600, text, NULL);
	token_to_bin(text, bin);

	bin[9] = 0;	/* role 0 */
	sign_bin(bin);
	bin_to_token(bin, bad);
	assert_int_equal(verify_any(bad), TOKEN_ERR_MALFORMED);
	bin[9] = 4;	/* role 4 */
	sign_bin(bin);
	bin_to_token(bin, bad);
	assert_int_equal(verify_any(bad), TOKEN_ERR_MALFORMED);
	bin[9] = TOKEN_ROLE_CLIENT;

	/* expires == issued */
	memcpy(bin + 22, bin + 14, 8);
	sign_bin(bin);
	bin_to_token(bin, bad);
	assert_int_equal(verify_any(bad), TOKEN_ERR_MALFORMED);

	bin[0] = 2;	/* version 2 inside a version-1 prefix */
	sign_bin(bin);
	bin_to_token(bin, bad);
	assert_int_equal(verify_any(bad), TOKEN_ERR_VERSION);
}

static void test_invalid_arguments(void **state)
{
	char text[TOKEN_TEXT_MAX];
	struct token_claims got;

	assert_int_equal(token_issue(&key_a, TOKEN_ROLE_CLIENT, 1, T0, 0, text,
				     sizeof(text), NULL),
			 TOKEN_ERR_INVALID);
	assert_int_equal(token_issue(&key_a, TOKEN_ROLE_CLIENT, 1, T0, -5,
				     text, sizeof(text), NULL),
			 TOKEN_ERR_INVALID);
	assert_int_equal(token_issue(&key_a, TOKEN_ROLE_CLIENT, 1,
				     INT64_MAX - 10, 11, text, sizeof(text),
				     NULL),
			 TOKEN_ERR_INVALID);
	assert_int_equal(token_issue(&key_a, (enum token_role)7, 1, T0, 60,
				     text, sizeof(text), NULL),
			 TOKEN_ERR_INVALID);
	assert_int_equal(token_issue(&key_a, TOKEN_ROLE_CLIENT, 1, T0, 60,
				     text, TOKEN_TEXT_LEN, NULL),
			 TOKEN_ERR_INVALID);
	assert_int_equal(token_issue(NULL, TOKEN_ROLE_CLIENT, 1, T0, 60, text,
				     sizeof(text), NULL),
			 TOKEN_ERR_INVALID);
	/* exactly big enough */
	assert_int_equal(token_issue(&key_a, TOKEN_ROLE_CLIENT, 1, T0, 60,
				     text, TOKEN_TEXT_LEN + 1, NULL),
			 TOKEN_OK);

	assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_ANY,
				      TOKEN_SUBJECT_ANY, T0, -1, NULL),
			 TOKEN_ERR_INVALID);
	assert_int_equal(token_verify(text, key_a.pk, 4, TOKEN_SUBJECT_ANY,
				      T0, 60, NULL),
			 TOKEN_ERR_INVALID);
	assert_int_equal(token_verify(text, key_a.pk, TOKEN_ROLE_ANY, -2, T0,
				      60, NULL),
			 TOKEN_ERR_INVALID);
	assert_int_equal(token_verify(text, NULL, TOKEN_ROLE_ANY,
				      TOKEN_SUBJECT_ANY, T0, 60, &got),
			 TOKEN_ERR_INVALID);
	assert_int_equal(token_parse_unverified(text, NULL),
			 TOKEN_ERR_INVALID);
}

static void test_names(void **state)
{
	enum token_role role;
	struct token_claims c;
	char hex[33], kid[17];

	for (int r = TOKEN_ROLE_BANKD; r <= TOKEN_ROLE_ADMIN; r++) {
		assert_int_equal(token_role_parse(token_role_name(r), &role),
				 TOKEN_OK);
		assert_int_equal(role, r);
	}
	assert_string_equal(token_role_name(TOKEN_ROLE_BANKD), "bankd");
	assert_string_equal(token_role_name((enum token_role)0), "?");
	assert_string_equal(token_role_name((enum token_role)99), "?");
	assert_int_equal(token_role_parse("Admin", &role), TOKEN_ERR_INVALID);
	assert_int_equal(token_role_parse("", &role), TOKEN_ERR_INVALID);
	assert_int_equal(token_role_parse(NULL, &role), TOKEN_ERR_INVALID);

	for (int rc = TOKEN_OK; rc >= TOKEN_ERR_CRYPTO; rc--)
		assert_string_not_equal(token_strerror(rc),
					"unknown token error");
	assert_string_equal(token_strerror(-999), "unknown token error");

	memset(&c, 0, sizeof(c));
	c.token_id[0] = 0xab;
	c.token_id[15] = 0x01;
	token_id_hex(&c, hex);
	assert_string_equal(hex, "ab000000000000000000000000000001");
	token_key_id_hex(key_a.key_id, kid);
	assert_int_equal(strlen(kid), 16);
}

static void test_key_id(void **state)
{
	uint8_t hash[32], id[TOKEN_KEY_ID_LEN];

	/* documented derivation: first 8 bytes of BLAKE2b-256(pk) */
	crypto_generichash(hash, sizeof(hash), key_a.pk, sizeof(key_a.pk),
			   NULL, 0);
	token_key_id(key_a.pk, id);
	assert_memory_equal(id, hash, sizeof(id));
	assert_memory_equal(key_a.key_id, hash, sizeof(id));
	assert_memory_not_equal(key_a.key_id, key_b.key_id, sizeof(id));
}

static void test_generate(void **state)
{
	struct token_keypair k1, k2;

	assert_int_equal(token_keypair_generate(&k1), TOKEN_OK);
	assert_int_equal(token_keypair_generate(&k2), TOKEN_OK);
	assert_memory_not_equal(k1.pk, k2.pk, sizeof(k1.pk));
	token_keypair_wipe(&k1);
	for (size_t i = 0; i < sizeof(k1.sk); i++)
		assert_int_equal(k1.sk[i], 0);
	assert_int_equal(token_keypair_generate(NULL), TOKEN_ERR_INVALID);
}

/* ---- key files, each test in a fresh temporary directory ---- */

struct tmpdir {
	char path[256];
	char secret[300];
	char pub[300];
};

static int tmpdir_setup(void **state)
{
	struct tmpdir *d = calloc(1, sizeof(*d));
	const char *base = getenv("TMPDIR");

	if (!d)
		return -1;
	snprintf(d->path, sizeof(d->path), "%s/test_token.XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(d->path)) {
		free(d);
		return -1;
	}
	snprintf(d->secret, sizeof(d->secret), "%s/server.key", d->path);
	snprintf(d->pub, sizeof(d->pub), "%s/server.pub", d->path);
	*state = d;
	return 0;
}

static int tmpdir_teardown(void **state)
{
	struct tmpdir *d = *state;
	struct dirent *e;
	DIR *dir = opendir(d->path);
	char path[600];

	while (dir && (e = readdir(dir))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", d->path, e->d_name);
		unlink(path);
	}
	if (dir)
		closedir(dir);
	rmdir(d->path);
	free(d);
	return 0;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static mode_t file_mode(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static void test_keyfile_round_trip(void **state)
{
	struct tmpdir *d = *state;
	struct token_keypair loaded;
	uint8_t pk[TOKEN_PK_LEN], kid[TOKEN_KEY_ID_LEN];
	char err[512], text[TOKEN_TEXT_MAX];

	assert_int_equal(token_keypair_save(&key_a, d->secret, d->pub, 0,
					    err, sizeof(err)),
			 TOKEN_OK);
	assert_int_equal(file_mode(d->secret), 0600);

	assert_int_equal(token_keypair_load(d->secret, &loaded, err,
					    sizeof(err)),
			 TOKEN_OK);
	assert_memory_equal(&loaded, &key_a, sizeof(loaded));
	assert_int_equal(token_public_load(d->pub, pk, kid, err,
					   sizeof(err)),
			 TOKEN_OK);
	assert_memory_equal(pk, key_a.pk, sizeof(pk));
	assert_memory_equal(kid, key_a.key_id, sizeof(kid));
	/* the public half of a secret key file serves too */
	memset(pk, 0, sizeof(pk));
	assert_int_equal(token_public_load(d->secret, pk, NULL, err,
					   sizeof(err)),
			 TOKEN_OK);
	assert_memory_equal(pk, key_a.pk, sizeof(pk));

	/* a public key file is no secret key, and is not called insecure */
	assert_int_equal(token_keypair_load(d->pub, &loaded, err,
					    sizeof(err)),
			 TOKEN_ERR_KEYFILE);
	assert_non_null(strstr(err, "public key file"));
	assert_int_equal(token_keypair_load(d->secret, &loaded, err,
					    sizeof(err)),
			 TOKEN_OK);

	issue_ok(&loaded, TOKEN_ROLE_BANKD, 1, T0, 60, text, NULL);
	assert_int_equal(token_verify(text, pk, TOKEN_ROLE_BANKD, 1, T0, 0,
				      NULL),
			 TOKEN_OK);
}

static void test_keyfile_no_overwrite(void **state)
{
	struct tmpdir *d = *state;
	struct token_keypair loaded;
	char err[512], other[320];

	assert_int_equal(token_keypair_save(&key_a, d->secret, d->pub, 0,
					    err, sizeof(err)),
			 TOKEN_OK);
	assert_int_equal(token_keypair_save(&key_b, d->secret, d->pub, 0,
					    err, sizeof(err)),
			 TOKEN_ERR_EXISTS);
	assert_non_null(strstr(err, "exists"));
	/* only the public file exists: no new secret key is left behind */
	snprintf(other, sizeof(other), "%s/other.key", d->path);
	assert_int_equal(token_keypair_save(&key_b, other, d->pub, 0, err,
					    sizeof(err)),
			 TOKEN_ERR_EXISTS);
	assert_int_equal(access(other, F_OK), -1);
	/* only the secret file exists */
	snprintf(other, sizeof(other), "%s/other.pub", d->path);
	assert_int_equal(token_keypair_save(&key_b, d->secret, other, 0, err,
					    sizeof(err)),
			 TOKEN_ERR_EXISTS);
	assert_int_equal(access(other, F_OK), -1);
	assert_int_equal(token_keypair_load(d->secret, &loaded, err,
					    sizeof(err)),
			 TOKEN_OK);
	assert_memory_equal(loaded.pk, key_a.pk, sizeof(loaded.pk));

	/* force replaces both, and the new secret is 0600 again */
	assert_int_equal(chmod(d->secret, 0644), 0);
	assert_int_equal(token_keypair_save(&key_b, d->secret, d->pub, 1,
					    err, sizeof(err)),
			 TOKEN_OK);
	assert_int_equal(file_mode(d->secret), 0600);
	assert_int_equal(file_mode(d->pub), 0644);
	assert_int_equal(token_keypair_load(d->secret, &loaded, err,
					    sizeof(err)),
			 TOKEN_OK);
	assert_memory_equal(loaded.pk, key_b.pk, sizeof(loaded.pk));
	/* same path twice is refused */
	assert_int_equal(token_keypair_save(&key_b, d->secret, d->secret, 1,
					    err, sizeof(err)),
			 TOKEN_ERR_INVALID);
}

static void test_keyfile_permissions(void **state)
{
	static const mode_t refused[] = { 0644, 0640, 0604, 0660, 0601, 0610 };
	struct tmpdir *d = *state;
	struct token_keypair loaded;
	uint8_t pk[TOKEN_PK_LEN];
	char err[512];

	assert_int_equal(token_keypair_save(&key_a, d->secret, d->pub, 0,
					    err, sizeof(err)),
			 TOKEN_OK);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		assert_int_equal(chmod(d->secret, refused[i]), 0);
		err[0] = '\0';
		assert_int_equal(token_keypair_load(d->secret, &loaded, err,
						    sizeof(err)),
				 TOKEN_ERR_PERM);
		assert_non_null(strstr(err, "chmod 600"));
		assert_non_null(strstr(err, d->secret));
		/* nothing of the key is handed out */
		for (size_t j = 0; j < sizeof(loaded.sk); j++)
			assert_int_equal(loaded.sk[j], 0);
		assert_int_equal(token_public_load(d->secret, pk, NULL, err,
						   sizeof(err)),
				 TOKEN_ERR_PERM);
	}
	assert_int_equal(chmod(d->secret, 0400), 0);
	assert_int_equal(token_keypair_load(d->secret, &loaded, err,
					    sizeof(err)),
			 TOKEN_OK);
	/* a world-readable public key file is fine */
	assert_int_equal(token_public_load(d->pub, pk, NULL, err,
					   sizeof(err)),
			 TOKEN_OK);
}

static void expect_secret_refused(struct tmpdir *d, const char *content,
				  int expected)
{
	struct token_keypair loaded;
	char err[512] = "";

	write_file(d->secret, content, 0600);
	assert_int_equal(token_keypair_load(d->secret, &loaded, err,
					    sizeof(err)),
			 expected);
	assert_non_null(strstr(err, d->secret));
}

static void expect_public_refused(struct tmpdir *d, const char *content)
{
	uint8_t pk[TOKEN_PK_LEN];
	char err[512] = "";

	write_file(d->pub, content, 0644);
	assert_int_equal(token_public_load(d->pub, pk, NULL, err,
					   sizeof(err)),
			 TOKEN_ERR_KEYFILE);
	assert_non_null(strstr(err, d->pub));
}

static void test_keyfile_corrupt(void **state)
{
	struct tmpdir *d = *state;
	char good_secret[256], good_public[128], bad[512], *big;
	struct token_keypair loaded;
	uint8_t pk[TOKEN_PK_LEN];
	char err[512];
	FILE *f;
	size_t n;

	/* take well-formed files apart */
	assert_int_equal(token_keypair_save(&key_a, d->secret, d->pub, 0,
					    err, sizeof(err)),
			 TOKEN_OK);
	f = fopen(d->secret, "r");
	assert_non_null(f);
	n = fread(good_secret, 1, sizeof(good_secret) - 1, f);
	good_secret[n] = '\0';
	fclose(f);
	f = fopen(d->pub, "r");
	assert_non_null(f);
	n = fread(good_public, 1, sizeof(good_public) - 1, f);
	good_public[n] = '\0';
	fclose(f);

	expect_secret_refused(d, "", TOKEN_ERR_KEYFILE);
	expect_secret_refused(d, "remsim-ed25519-secret-key-v1\n",
			      TOKEN_ERR_KEYFILE);
	expect_secret_refused(d, "remsim-ed25519-secret-key-v1",
			      TOKEN_ERR_KEYFILE);
	expect_secret_refused(d, good_public, TOKEN_ERR_KEYFILE);
	expect_secret_refused(d, "-----BEGIN PRIVATE KEY-----\nAAAA\n",
			      TOKEN_ERR_KEYFILE);
	expect_secret_refused(d, "remsim-ed25519-secret-key-v1\n!!!!\n",
			      TOKEN_ERR_KEYFILE);
	/* one character short, one character more, an extra line */
	strcpy(bad, good_secret);
	bad[strlen(bad) - 2] = '\n';
	bad[strlen(bad) - 1] = '\0';
	expect_secret_refused(d, bad, TOKEN_ERR_KEYFILE);
	snprintf(bad, sizeof(bad), "%.*sA\n", (int)strlen(good_secret) - 1,
		 good_secret);
	expect_secret_refused(d, bad, TOKEN_ERR_KEYFILE);
	snprintf(bad, sizeof(bad), "%sextra\n", good_secret);
	expect_secret_refused(d, bad, TOKEN_ERR_KEYFILE);
	/* header suffix */
	snprintf(bad, sizeof(bad), "remsim-ed25519-secret-key-v10\n%s",
		 strchr(good_secret, '\n') + 1);
	expect_secret_refused(d, bad, TOKEN_ERR_KEYFILE);
	/* too large to be a key file */
	big = malloc(5000);
	assert_non_null(big);
	memset(big, 'A', 4999);
	big[4999] = '\0';
	memcpy(big, good_secret, strlen(good_secret));
	expect_secret_refused(d, big, TOKEN_ERR_KEYFILE);
	free(big);

	/* CRLF line ends and trailing blanks are tolerated */
	snprintf(bad, sizeof(bad), "remsim-ed25519-secret-key-v1 \r\n%.*s\r\n",
		 (int)strlen(strchr(good_secret, '\n') + 1) - 1,
		 strchr(good_secret, '\n') + 1);
	write_file(d->secret, bad, 0600);
	assert_int_equal(token_keypair_load(d->secret, &loaded, err,
					    sizeof(err)),
			 TOKEN_OK);
	assert_memory_equal(loaded.pk, key_a.pk, sizeof(pk));

	expect_public_refused(d, "");
	expect_public_refused(d, "remsim-ed25519-public-key-v1\n");
	expect_public_refused(d, "remsim-ed25519-public-key-v1\nAAAA\n");
	snprintf(bad, sizeof(bad), "%.*s", (int)strlen(good_public) - 3,
		 good_public);
	expect_public_refused(d, bad);

	/* missing file, a directory */
	snprintf(bad, sizeof(bad), "%s/missing.key", d->path);
	assert_int_equal(token_keypair_load(bad, &loaded, err, sizeof(err)),
			 TOKEN_ERR_IO);
	assert_non_null(strstr(err, "missing.key"));
	assert_int_equal(token_public_load(d->path, pk, NULL, err,
					   sizeof(err)),
			 TOKEN_ERR_IO);
	assert_int_equal(token_keypair_load(NULL, &loaded, err, sizeof(err)),
			 TOKEN_ERR_INVALID);
	/* err may be NULL */
	assert_int_equal(token_keypair_load(bad, &loaded, NULL, 0),
			 TOKEN_ERR_IO);
}

static void test_keyfile_mismatch(void **state)
{
	struct tmpdir *d = *state;
	struct token_keypair spliced = key_a, loaded;
	char err[512];

	/* key a's seed with key b's public half */
	memcpy(spliced.sk + TOKEN_SEED_LEN, key_b.pk, TOKEN_PK_LEN);
	assert_int_equal(token_keypair_save(&spliced, d->secret, d->pub, 0,
					    err, sizeof(err)),
			 TOKEN_OK);
	assert_int_equal(token_keypair_load(d->secret, &loaded, err,
					    sizeof(err)),
			 TOKEN_ERR_KEYFILE);
	assert_non_null(strstr(err, "does not match"));
	assert_int_equal(token_public_load(d->secret, loaded.pk, NULL, err,
					   sizeof(err)),
			 TOKEN_ERR_KEYFILE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_token_ids_differ),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_not_yet_valid),
		cmocka_unit_test(test_within_skew),
		cmocka_unit_test(test_tampered_payload),
		cmocka_unit_test(test_tampered_signature),
		cmocka_unit_test(test_tampered_text),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_wrong_role),
		cmocka_unit_test(test_wrong_subject),
		cmocka_unit_test(test_any_role_subject),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_signed_nonsense),
		cmocka_unit_test(test_invalid_arguments),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_key_id),
		cmocka_unit_test(test_generate),
		cmocka_unit_test_setup_teardown(test_keyfile_round_trip,
						tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_keyfile_no_overwrite,
						tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_keyfile_permissions,
						tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_keyfile_corrupt,
						tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_keyfile_mismatch,
						tmpdir_setup, tmpdir_teardown),
	};

	return cmocka_run_group_tests(tests, setup_keys, NULL);
}
