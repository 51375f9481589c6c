/*
 * token: Ed25519-signed access tokens (libsodium) and the server's key files.
 * A token names a role and a subject id, carries its validity period and a
 * random token id for revocation; docs/tokens.md describes the format.
 */
#ifndef REMSIM_TOKEN_H
#define REMSIM_TOKEN_H

#include <stddef.h>
#include <stdint.h>

enum token_role {
	TOKEN_ROLE_BANKD = 1,
	TOKEN_ROLE_CLIENT = 2,
	TOKEN_ROLE_ADMIN = 3,
};

/* Wildcards for token_verify()'s expected_role / expected_subject. */
#define TOKEN_ROLE_ANY 0
#define TOKEN_SUBJECT_ANY (-1L)

#define TOKEN_VERSION 1
#define TOKEN_PREFIX "rst1."
#define TOKEN_PAYLOAD_LEN 46	/* signed part of the binary form */
#define TOKEN_BINARY_LEN 110	/* payload + 64-byte signature */
#define TOKEN_TEXT_LEN 152	/* printable form without the NUL */
#define TOKEN_TEXT_MAX 512	/* any printable form incl. NUL fits */
#define TOKEN_DEFAULT_SKEW 60	/* seconds of clock skew tolerated */

#define TOKEN_PK_LEN 32
#define TOKEN_SK_LEN 64		/* libsodium: seed || public key */
#define TOKEN_SEED_LEN 32
#define TOKEN_KEY_ID_LEN 8
#define TOKEN_ID_LEN 16

struct token_keypair {
	uint8_t pk[TOKEN_PK_LEN];
	uint8_t sk[TOKEN_SK_LEN];
	uint8_t key_id[TOKEN_KEY_ID_LEN];
};

struct token_claims {
	uint8_t version;
	uint8_t key_id[TOKEN_KEY_ID_LEN];
	enum token_role role;
	uint32_t subject;	/* bank id, client id or admin id */
	int64_t issued;		/* Unix seconds */
	int64_t expires;	/* Unix seconds, always > issued */
	uint8_t token_id[TOKEN_ID_LEN];
};

/* Every function below returns TOKEN_OK or one of these negative values. */
enum token_result {
	TOKEN_OK = 0,
	TOKEN_ERR_MALFORMED = -1,	/* prefix, length, base64, fields */
	TOKEN_ERR_VERSION = -2,		/* unknown token version */
	TOKEN_ERR_KEY = -3,		/* signed by another key (key id) */
	TOKEN_ERR_SIGNATURE = -4,
	TOKEN_ERR_EXPIRED = -5,
	TOKEN_ERR_NOT_YET_VALID = -6,
	TOKEN_ERR_ROLE = -7,
	TOKEN_ERR_SUBJECT = -8,
	TOKEN_ERR_IO = -9,		/* key file not readable/writable */
	TOKEN_ERR_PERM = -10,		/* secret key file not 0600 */
	TOKEN_ERR_EXISTS = -11,		/* key file exists, no force */
	TOKEN_ERR_KEYFILE = -12,	/* key file content invalid */
	TOKEN_ERR_INVALID = -13,	/* invalid argument */
	TOKEN_ERR_CRYPTO = -14,		/* libsodium failed to start */
};

/* Initialises libsodium; safe to call repeatedly and from several threads. */
int token_init(void);

/* A fresh random key pair; key_id is derived from the public key. */
int token_keypair_generate(struct token_keypair *kp);
/* The same key pair for the same seed: for tests and fuzzing. */
int token_keypair_from_seed(const uint8_t seed[TOKEN_SEED_LEN],
			    struct token_keypair *kp);
/* Key id = first 8 bytes of BLAKE2b-256 (crypto_generichash) of pk. */
void token_key_id(const uint8_t pk[TOKEN_PK_LEN],
		  uint8_t key_id[TOKEN_KEY_ID_LEN]);
/* Overwrites the secret key with zeros. */
void token_keypair_wipe(struct token_keypair *kp);

/*
 * Key files. The secret key file is created with mode 0600; an existing
 * file is refused (TOKEN_ERR_EXISTS) unless force is set, in which case it
 * is replaced atomically. On error a message naming the file is put in err.
 */
int token_keypair_save(const struct token_keypair *kp,
		       const char *secret_path, const char *public_path,
		       int force, char *err, size_t errlen);
/*
 * Loads a secret key file. Refuses a file with any group/other permission
 * bit (TOKEN_ERR_PERM) and a file whose public half does not belong to its
 * seed (TOKEN_ERR_KEYFILE).
 */
int token_keypair_load(const char *secret_path, struct token_keypair *kp,
		       char *err, size_t errlen);
/* Loads a public key file, or the public half of a secret key file. */
int token_public_load(const char *path, uint8_t pk[TOKEN_PK_LEN],
		      uint8_t key_id[TOKEN_KEY_ID_LEN], char *err,
		      size_t errlen);

/*
 * Issues a token valid from now to now + ttl_seconds (ttl > 0) with a new
 * random token id. Writes the printable form (TOKEN_TEXT_LEN characters and
 * a NUL) to out; claims may be NULL.
 */
int token_issue(const struct token_keypair *kp, enum token_role role,
		uint32_t subject, int64_t now, int64_t ttl_seconds, char *out,
		size_t outlen, struct token_claims *claims);

/*
 * Checks in this order: form, version, key id, signature, validity period
 * (issued - skew <= now <= expires + skew), role, subject. expected_role may
 * be TOKEN_ROLE_ANY and expected_subject TOKEN_SUBJECT_ANY. Revocation is the
 * caller's business (token id). claims (may be NULL) is filled whenever the
 * signature is good, so a caller can report what expired or mismatched;
 * otherwise it is zeroed.
 */
int token_verify(const char *text, const uint8_t pk[TOKEN_PK_LEN],
		 int expected_role, long expected_subject, int64_t now,
		 int64_t skew, struct token_claims *claims);

/* Decodes without any check of signature or time: for display only. */
int token_parse_unverified(const char *text, struct token_claims *claims);

const char *token_strerror(int result);
const char *token_role_name(enum token_role role);	/* "?" if unknown */
int token_role_parse(const char *name, enum token_role *role);
/* Lowercase hex: 32 digits for the token id, 16 for a key id, plus NUL. */
void token_id_hex(const struct token_claims *claims, char out[33]);
void token_key_id_hex(const uint8_t key_id[TOKEN_KEY_ID_LEN], char out[17]);

#endif
