/*
 * libFuzzer target for token parsing: arbitrary bytes go to token_verify
 * and token_parse_unverified under a fixed key (seed 0x42 repeated), so
 * the seed corpus in corpus/token/ can hold tokens that really verify.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NOW 1700000000LL	/* the corpus tokens are valid then */

static struct token_keypair fuzz_key;
static int fuzz_key_ready;

/* Field by field: struct padding need not be equal. */
static int claims_equal(const struct token_claims *a,
			const struct token_claims *b)
{
	return a->version == b->version && a->role == b->role &&
	       a->subject == b->subject && a->issued == b->issued &&
	       a->expires == b->expires &&
	       !memcmp(a->key_id, b->key_id, sizeof(a->key_id)) &&
	       !memcmp(a->token_id, b->token_id, sizeof(a->token_id));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct token_claims verified, parsed;
	uint8_t seed[TOKEN_SEED_LEN];
	char *text;
	int rc, parse_rc;

	if (!fuzz_key_ready) {
		memset(seed, 0x42, sizeof(seed));
		if (token_keypair_from_seed(seed, &fuzz_key) != TOKEN_OK)
			abort();
		fuzz_key_ready = 1;
	}
	/* The API takes C strings: a NUL-terminated copy, sized exactly. */
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	parse_rc = token_parse_unverified(text, &parsed);
	rc = token_verify(text, fuzz_key.pk, TOKEN_ROLE_ANY, TOKEN_SUBJECT_ANY,
			  FUZZ_NOW, TOKEN_DEFAULT_SKEW, &verified);
	if (rc > TOKEN_OK || rc < TOKEN_ERR_CRYPTO || parse_rc > TOKEN_OK)
		abort();
	/* What verifies also parses, to the same claims. */
	if (rc == TOKEN_OK &&
	    (parse_rc != TOKEN_OK || !claims_equal(&verified, &parsed)))
		abort();
	/* Exact role and subject checks agree with the wildcard result. */
	if (rc == TOKEN_OK &&
	    token_verify(text, fuzz_key.pk, (int)verified.role,
			 (long)verified.subject, FUZZ_NOW, TOKEN_DEFAULT_SKEW,
			 NULL) != TOKEN_OK)
		abort();
	token_strerror(rc);
	free(text);
	return 0;
}
