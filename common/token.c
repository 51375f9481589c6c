/*
 * token: issue and verify Ed25519-signed tokens, and read and write the
 * server's key files. Tokens and key files come from outside (network,
 * command line, disk), so every decoder here checks lengths exactly and
 * reports a token_result instead of trusting its input.
 */
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "hex.h"

#define TOKEN_B64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define TOKEN_PREFIX_LEN (sizeof(TOKEN_PREFIX) - 1)
#define TOKEN_B64_LEN (TOKEN_TEXT_LEN - TOKEN_PREFIX_LEN)

/* Offsets in the binary form; all integers are big-endian. */
enum token_offset {
	OFF_VERSION = 0,
	OFF_KEY_ID = 1,
	OFF_ROLE = 9,
	OFF_SUBJECT = 10,
	OFF_ISSUED = 14,
	OFF_EXPIRES = 22,
	OFF_TOKEN_ID = 30,
	OFF_SIGNATURE = TOKEN_PAYLOAD_LEN,
};

_Static_assert(OFF_TOKEN_ID + TOKEN_ID_LEN == TOKEN_PAYLOAD_LEN,
	       "payload layout");
_Static_assert(TOKEN_PAYLOAD_LEN + crypto_sign_BYTES == TOKEN_BINARY_LEN,
	       "binary layout");
_Static_assert(TOKEN_B64_LEN + 1 ==
	       sodium_base64_ENCODED_LEN(TOKEN_BINARY_LEN, TOKEN_B64_VARIANT),
	       "printable length");
_Static_assert(TOKEN_PK_LEN == crypto_sign_PUBLICKEYBYTES &&
	       TOKEN_SK_LEN == crypto_sign_SECRETKEYBYTES &&
	       TOKEN_SEED_LEN == crypto_sign_SEEDBYTES, "libsodium sizes");

/* Key files: one header line naming the kind, one line of base64url. */
#define KEYFILE_SECRET_HEADER "remsim-ed25519-secret-key-v1"
#define KEYFILE_PUBLIC_HEADER "remsim-ed25519-public-key-v1"
#define KEYFILE_MAX 1024	/* real files are ~120 bytes */

static const char *const role_names[] = {
	[TOKEN_ROLE_BANKD] = "bankd",
	[TOKEN_ROLE_CLIENT] = "client",
	[TOKEN_ROLE_ADMIN] = "admin",
};

static int token_role_valid(long role)
{
	return role >= TOKEN_ROLE_BANKD && role <= TOKEN_ROLE_ADMIN;
}

static void token_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void token_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int token_init(void)
{
	/* 0 = initialised now, 1 = already initialised, -1 = failure. */
	return sodium_init() < 0 ? TOKEN_ERR_CRYPTO : TOKEN_OK;
}

void token_key_id(const uint8_t pk[TOKEN_PK_LEN],
		  uint8_t key_id[TOKEN_KEY_ID_LEN])
{
	/*
	 * BLAKE2b's output length is a parameter of the hash, so the id is
	 * defined on the 32-byte output; libsodium has no 8-byte output.
	 */
	uint8_t hash[32];

	crypto_generichash(hash, sizeof(hash), pk, TOKEN_PK_LEN, NULL, 0);
	memcpy(key_id, hash, TOKEN_KEY_ID_LEN);
}

int token_keypair_from_seed(const uint8_t seed[TOKEN_SEED_LEN],
			    struct token_keypair *kp)
{
	if (!seed || !kp)
		return TOKEN_ERR_INVALID;
	if (token_init() < 0)
		return TOKEN_ERR_CRYPTO;
	if (crypto_sign_seed_keypair(kp->pk, kp->sk, seed) != 0)
		return TOKEN_ERR_CRYPTO;
	token_key_id(kp->pk, kp->key_id);
	return TOKEN_OK;
}

int token_keypair_generate(struct token_keypair *kp)
{
	uint8_t seed[TOKEN_SEED_LEN];
	int rc;

	if (!kp)
		return TOKEN_ERR_INVALID;
	if (token_init() < 0)
		return TOKEN_ERR_CRYPTO;
	randombytes_buf(seed, sizeof(seed));
	rc = token_keypair_from_seed(seed, kp);
	sodium_memzero(seed, sizeof(seed));
	return rc;
}

void token_keypair_wipe(struct token_keypair *kp)
{
	if (kp)
		sodium_memzero(kp, sizeof(*kp));
}

/* ---- binary and printable form ---- */

static void put_be(uint8_t *p, uint64_t v, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(v >> (8 * (len - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, size_t len)
{
	uint64_t v = 0;

	for (size_t i = 0; i < len; i++)
		v = v << 8 | p[i];
	return v;
}

static void token_pack(const struct token_claims *c,
		       uint8_t bin[TOKEN_PAYLOAD_LEN])
{
	bin[OFF_VERSION] = c->version;
	memcpy(bin + OFF_KEY_ID, c->key_id, TOKEN_KEY_ID_LEN);
	bin[OFF_ROLE] = (uint8_t)c->role;
	put_be(bin + OFF_SUBJECT, c->subject, 4);
	put_be(bin + OFF_ISSUED, (uint64_t)c->issued, 8);
	put_be(bin + OFF_EXPIRES, (uint64_t)c->expires, 8);
	memcpy(bin + OFF_TOKEN_ID, c->token_id, TOKEN_ID_LEN);
}

/*
 * The prefix carries the version so that a future format ("rst2.") is
 * reported as such rather than as garbage. Only the exact prefix is
 * accepted, so that one token has one printable form.
 */
static int token_check_prefix(const char *text, const char **b64)
{
	const char *p;

	if (!strncmp(text, TOKEN_PREFIX, TOKEN_PREFIX_LEN)) {
		*b64 = text + TOKEN_PREFIX_LEN;
		return TOKEN_OK;
	}
	if (strncmp(text, "rst", 3) != 0)
		return TOKEN_ERR_MALFORMED;
	p = text + 3;
	if (*p < '0' || *p > '9')
		return TOKEN_ERR_MALFORMED;
	while (*p >= '0' && *p <= '9')
		p++;
	return *p == '.' ? TOKEN_ERR_VERSION : TOKEN_ERR_MALFORMED;
}

/* Printable form -> binary form and claims; checks form only, no crypto. */
static int token_decode(const char *text, uint8_t bin[TOKEN_BINARY_LEN],
			struct token_claims *c)
{
	const char *b64, *end;
	size_t bin_len;
	int rc;

	if (!text)
		return TOKEN_ERR_MALFORMED;
	rc = token_check_prefix(text, &b64);
	if (rc < 0)
		return rc;
	/* strnlen: a huge input costs no more than a valid one. */
	if (strnlen(b64, TOKEN_B64_LEN + 1) != TOKEN_B64_LEN)
		return TOKEN_ERR_MALFORMED;
	/* Rejects padding, '+', '/', whitespace and non-zero spare bits. */
	if (sodium_base642bin(bin, TOKEN_BINARY_LEN, b64, TOKEN_B64_LEN, NULL,
			      &bin_len, &end, TOKEN_B64_VARIANT) != 0 ||
	    bin_len != TOKEN_BINARY_LEN || end != b64 + TOKEN_B64_LEN)
		return TOKEN_ERR_MALFORMED;

	memset(c, 0, sizeof(*c));
	c->version = bin[OFF_VERSION];
	if (c->version != TOKEN_VERSION)
		return TOKEN_ERR_VERSION;
	memcpy(c->key_id, bin + OFF_KEY_ID, TOKEN_KEY_ID_LEN);
	if (!token_role_valid(bin[OFF_ROLE]))
		return TOKEN_ERR_MALFORMED;
	c->role = (enum token_role)bin[OFF_ROLE];
	c->subject = (uint32_t)get_be(bin + OFF_SUBJECT, 4);
	c->issued = (int64_t)get_be(bin + OFF_ISSUED, 8);
	c->expires = (int64_t)get_be(bin + OFF_EXPIRES, 8);
	memcpy(c->token_id, bin + OFF_TOKEN_ID, TOKEN_ID_LEN);
	if (c->expires <= c->issued)
		return TOKEN_ERR_MALFORMED;
	return TOKEN_OK;
}

int token_issue(const struct token_keypair *kp, enum token_role role,
		uint32_t subject, int64_t now, int64_t ttl_seconds, char *out,
		size_t outlen, struct token_claims *claims)
{
	struct token_claims c;
	uint8_t bin[TOKEN_BINARY_LEN];

	if (!kp || !out || outlen < TOKEN_TEXT_LEN + 1 ||
	    !token_role_valid(role) || ttl_seconds <= 0 ||
	    (now > 0 && ttl_seconds > INT64_MAX - now))
		return TOKEN_ERR_INVALID;
	if (token_init() < 0)
		return TOKEN_ERR_CRYPTO;

	memset(&c, 0, sizeof(c));
	c.version = TOKEN_VERSION;
	token_key_id(kp->pk, c.key_id);
	c.role = role;
	c.subject = subject;
	c.issued = now;
	c.expires = now + ttl_seconds;
	randombytes_buf(c.token_id, sizeof(c.token_id));

	token_pack(&c, bin);
	if (crypto_sign_detached(bin + OFF_SIGNATURE, NULL, bin,
				 TOKEN_PAYLOAD_LEN, kp->sk) != 0)
		return TOKEN_ERR_CRYPTO;
	memcpy(out, TOKEN_PREFIX, TOKEN_PREFIX_LEN);
	sodium_bin2base64(out + TOKEN_PREFIX_LEN, outlen - TOKEN_PREFIX_LEN,
			  bin, sizeof(bin), TOKEN_B64_VARIANT);
	if (claims)
		*claims = c;
	return TOKEN_OK;
}

/* The difference a - b as unsigned, for a >= b; cannot overflow. */
static uint64_t time_diff(int64_t a, int64_t b)
{
	return (uint64_t)a - (uint64_t)b;
}

int token_verify(const char *text, const uint8_t pk[TOKEN_PK_LEN],
		 int expected_role, long expected_subject, int64_t now,
		 int64_t skew, struct token_claims *claims)
{
	struct token_claims c;
	uint8_t bin[TOKEN_BINARY_LEN];
	uint8_t key_id[TOKEN_KEY_ID_LEN];
	int rc;

	if (claims)
		memset(claims, 0, sizeof(*claims));
	if (!pk || skew < 0 ||
	    (expected_role != TOKEN_ROLE_ANY &&
	     !token_role_valid(expected_role)) ||
	    expected_subject < TOKEN_SUBJECT_ANY ||
	    (int64_t)expected_subject > (int64_t)UINT32_MAX)
		return TOKEN_ERR_INVALID;
	if (token_init() < 0)
		return TOKEN_ERR_CRYPTO;

	rc = token_decode(text, bin, &c);
	if (rc < 0)
		return rc;
	token_key_id(pk, key_id);
	if (memcmp(key_id, c.key_id, sizeof(key_id)) != 0)
		return TOKEN_ERR_KEY;
	if (crypto_sign_verify_detached(bin + OFF_SIGNATURE, bin,
					TOKEN_PAYLOAD_LEN, pk) != 0)
		return TOKEN_ERR_SIGNATURE;

	if (claims)
		*claims = c;
	if (now < c.issued && time_diff(c.issued, now) > (uint64_t)skew)
		return TOKEN_ERR_NOT_YET_VALID;
	if (now > c.expires && time_diff(now, c.expires) > (uint64_t)skew)
		return TOKEN_ERR_EXPIRED;
	if (expected_role != TOKEN_ROLE_ANY && (int)c.role != expected_role)
		return TOKEN_ERR_ROLE;
	if (expected_subject != TOKEN_SUBJECT_ANY &&
	    (int64_t)c.subject != (int64_t)expected_subject)
		return TOKEN_ERR_SUBJECT;
	return TOKEN_OK;
}

int token_parse_unverified(const char *text, struct token_claims *claims)
{
	struct token_claims c;
	uint8_t bin[TOKEN_BINARY_LEN];
	int rc;

	if (!claims)
		return TOKEN_ERR_INVALID;
	memset(claims, 0, sizeof(*claims));
	rc = token_decode(text, bin, &c);
	if (rc == TOKEN_OK)
		*claims = c;
	return rc;
}

/* ---- names and strings ---- */

const char *token_strerror(int result)
{
	switch (result) {
	case TOKEN_OK:
		return "valid";
	case TOKEN_ERR_MALFORMED:
		return "malformed token";
	case TOKEN_ERR_VERSION:
		return "unsupported token version";
	case TOKEN_ERR_KEY:
		return "token was signed by another key (key id differs)";
	case TOKEN_ERR_SIGNATURE:
		return "bad token signature";
	case TOKEN_ERR_EXPIRED:
		return "token expired";
	case TOKEN_ERR_NOT_YET_VALID:
		return "token not yet valid (issued in the future)";
	case TOKEN_ERR_ROLE:
		return "token has the wrong role";
	case TOKEN_ERR_SUBJECT:
		return "token has the wrong subject id";
	case TOKEN_ERR_IO:
		return "key file I/O error";
	case TOKEN_ERR_PERM:
		return "secret key file is accessible by group or others";
	case TOKEN_ERR_EXISTS:
		return "key file exists";
	case TOKEN_ERR_KEYFILE:
		return "invalid key file";
	case TOKEN_ERR_INVALID:
		return "invalid argument";
	case TOKEN_ERR_CRYPTO:
		return "crypto library failure";
	}
	return "unknown token error";
}

const char *token_role_name(enum token_role role)
{
	if (!token_role_valid(role))
		return "?";
	return role_names[role];
}

int token_role_parse(const char *name, enum token_role *role)
{
	if (!name || !role)
		return TOKEN_ERR_INVALID;
	for (int r = TOKEN_ROLE_BANKD; r <= TOKEN_ROLE_ADMIN; r++) {
		if (!strcmp(name, role_names[r])) {
			*role = (enum token_role)r;
			return TOKEN_OK;
		}
	}
	return TOKEN_ERR_INVALID;
}

void token_id_hex(const struct token_claims *claims, char out[33])
{
	hex_encode(out, claims->token_id, TOKEN_ID_LEN);
}

void token_key_id_hex(const uint8_t key_id[TOKEN_KEY_ID_LEN], char out[17])
{
	hex_encode(out, key_id, TOKEN_KEY_ID_LEN);
}

/* ---- key files ---- */

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Without force, O_EXCL makes "refuse to overwrite" race-free. With force,
 * a temporary file renamed over the old one means a crash never leaves a
 * half-written key, and the new file has our mode whatever the old one had.
 */
static int key_file_write(const char *path, const char *text, mode_t mode,
			  int force, char *err, size_t errlen)
{
	char tmp[4096];
	const char *target = path;
	int fd, saved;

	if (force) {
		if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >=
		    sizeof(tmp)) {
			token_set_err(err, errlen, "%s: path too long", path);
			return TOKEN_ERR_INVALID;
		}
		fd = mkstemp(tmp);	/* mode 0600 */
		target = tmp;
	} else {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	}
	if (fd < 0) {
		saved = errno;
		token_set_err(err, errlen, "%s: %s", path,
			      saved == EEXIST ? "file exists, not overwritten"
					      : strerror(saved));
		return saved == EEXIST ? TOKEN_ERR_EXISTS : TOKEN_ERR_IO;
	}
	if ((force && fchmod(fd, mode) != 0) ||
	    write_all(fd, text, strlen(text)) != 0 || fsync(fd) != 0) {
		saved = errno;
		close(fd);
		unlink(target);
		token_set_err(err, errlen, "%s: %s", path, strerror(saved));
		return TOKEN_ERR_IO;
	}
	if (close(fd) != 0 || (force && rename(tmp, path) != 0)) {
		saved = errno;
		unlink(target);
		token_set_err(err, errlen, "%s: %s", path, strerror(saved));
		return TOKEN_ERR_IO;
	}
	return TOKEN_OK;
}

/* "HEADER\nBASE64URL\n"; returns 0, or -1 if text is too small. */
static int key_file_format(char *text, size_t size, const char *header,
			   const uint8_t *key, size_t keylen)
{
	size_t hlen = strlen(header);

	if (size < hlen + 2 + sodium_base64_ENCODED_LEN(keylen,
							 TOKEN_B64_VARIANT))
		return -1;
	memcpy(text, header, hlen);
	text[hlen] = '\n';
	sodium_bin2base64(text + hlen + 1, size - hlen - 1, key, keylen,
			  TOKEN_B64_VARIANT);
	strcat(text, "\n");
	return 0;
}

int token_keypair_save(const struct token_keypair *kp,
		       const char *secret_path, const char *public_path,
		       int force, char *err, size_t errlen)
{
	char secret_text[256], public_text[128];
	struct stat st;
	int rc;

	if (!kp || !secret_path || !public_path) {
		token_set_err(err, errlen, "no key pair or file name");
		return TOKEN_ERR_INVALID;
	}
	if (!strcmp(secret_path, public_path)) {
		token_set_err(err, errlen,
			      "secret and public key file are both %s",
			      secret_path);
		return TOKEN_ERR_INVALID;
	}
	/* Checked first so that a refusal leaves no new secret key behind. */
	if (!force && lstat(public_path, &st) == 0) {
		token_set_err(err, errlen, "%s: file exists, not overwritten",
			      public_path);
		return TOKEN_ERR_EXISTS;
	}
	if (key_file_format(secret_text, sizeof(secret_text),
			    KEYFILE_SECRET_HEADER, kp->sk, TOKEN_SK_LEN) ||
	    key_file_format(public_text, sizeof(public_text),
			    KEYFILE_PUBLIC_HEADER, kp->pk, TOKEN_PK_LEN)) {
		token_set_err(err, errlen, "key file buffer too small");
		return TOKEN_ERR_INVALID;
	}

	rc = key_file_write(secret_path, secret_text, 0600, force, err,
			    errlen);
	sodium_memzero(secret_text, sizeof(secret_text));
	if (rc < 0)
		return rc;
	rc = key_file_write(public_path, public_text, 0644, force, err,
			    errlen);
	if (rc < 0 && !force)
		unlink(secret_path);	/* we created it just now */
	return rc;
}

/*
 * Reads a whole key file into buf (NUL-terminated) and reports its mode,
 * taken from the open descriptor so that it is the file actually read.
 */
static int key_file_read(const char *path, char *buf, size_t size,
			 mode_t *mode, char *err, size_t errlen)
{
	struct stat st;
	size_t len = 0;
	int fd, saved;

	if (!path) {
		token_set_err(err, errlen, "no key file name");
		return TOKEN_ERR_INVALID;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		token_set_err(err, errlen, "%s: %s", path, strerror(errno));
		return TOKEN_ERR_IO;
	}
	if (fstat(fd, &st) != 0) {
		saved = errno;
		close(fd);
		token_set_err(err, errlen, "%s: %s", path, strerror(saved));
		return TOKEN_ERR_IO;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		token_set_err(err, errlen, "%s: not a regular file", path);
		return TOKEN_ERR_IO;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, size - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			saved = errno;
			close(fd);
			token_set_err(err, errlen, "%s: %s", path,
				      strerror(saved));
			return TOKEN_ERR_IO;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == size - 1) {
			close(fd);
			token_set_err(err, errlen,
				      "%s: too large for a key file", path);
			return TOKEN_ERR_KEYFILE;
		}
	}
	close(fd);
	buf[len] = '\0';
	*mode = st.st_mode;
	return TOKEN_OK;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Checks the header line and decodes the key line. Trailing blanks on
 * either line are tolerated (editors add them); nothing else is.
 */
static int key_file_decode(const char *path, char *text, const char *header,
			   uint8_t *key, size_t keylen, char *err,
			   size_t errlen)
{
	size_t hlen = strlen(header), len, key_len;
	char *line, *end;
	const char *b64_end;

	if (strncmp(text, header, hlen) != 0) {
		token_set_err(err, errlen,
			      "%s: not a remsim key file (expected first line "
			      "'%s')", path, header);
		return TOKEN_ERR_KEYFILE;
	}
	line = text + hlen;
	while (*line && *line != '\n' && is_blank(*line))
		line++;
	if (*line != '\n') {
		token_set_err(err, errlen, "%s: bad header line", path);
		return TOKEN_ERR_KEYFILE;
	}
	line++;
	len = strlen(line);
	while (len && is_blank(line[len - 1]))
		len--;
	end = line + len;
	if (sodium_base642bin(key, keylen, line, len, NULL, &key_len,
			      &b64_end, TOKEN_B64_VARIANT) != 0 ||
	    key_len != keylen || b64_end != end) {
		token_set_err(err, errlen,
			      "%s: key line is not %zu bytes of base64url",
			      path, keylen);
		return TOKEN_ERR_KEYFILE;
	}
	return TOKEN_OK;
}

static int key_file_is(const char *text, const char *header)
{
	return !strncmp(text, header, strlen(header));
}

/* Decodes a secret key file's text; shared by both loaders. */
static int key_file_secret(const char *path, char *text, mode_t mode,
			   struct token_keypair *kp, char *err, size_t errlen)
{
	struct token_keypair derived;
	int rc;

	/* Said first: a public key is no secret, whatever its mode. */
	if (key_file_is(text, KEYFILE_PUBLIC_HEADER)) {
		token_set_err(err, errlen, "%s: is a public key file; a secret "
			      "key file is needed", path);
		return TOKEN_ERR_KEYFILE;
	}
	if (mode & 077) {
		token_set_err(err, errlen,
			      "%s: secret key file has mode %04o and is "
			      "accessible by group or others; refusing it "
			      "(fix: chmod 600 %s)",
			      path, (unsigned int)(mode & 07777), path);
		return TOKEN_ERR_PERM;
	}
	rc = key_file_decode(path, text, KEYFILE_SECRET_HEADER, kp->sk,
			     TOKEN_SK_LEN, err, errlen);
	if (rc < 0)
		return rc;
	/* The stored public half must be the one the seed gives. */
	rc = token_keypair_from_seed(kp->sk, &derived);
	if (rc < 0) {
		token_set_err(err, errlen, "%s: %s", path,
			      token_strerror(rc));
		return rc;
	}
	if (sodium_memcmp(derived.sk, kp->sk, TOKEN_SK_LEN) != 0) {
		token_keypair_wipe(&derived);
		token_set_err(err, errlen,
			      "%s: public half does not match the secret "
			      "seed (corrupt or spliced key file)", path);
		return TOKEN_ERR_KEYFILE;
	}
	*kp = derived;
	token_keypair_wipe(&derived);
	return TOKEN_OK;
}

int token_keypair_load(const char *secret_path, struct token_keypair *kp,
		       char *err, size_t errlen)
{
	char text[KEYFILE_MAX];
	mode_t mode;
	int rc;

	if (!kp) {
		token_set_err(err, errlen, "no key pair");
		return TOKEN_ERR_INVALID;
	}
	rc = key_file_read(secret_path, text, sizeof(text), &mode, err,
			   errlen);
	if (rc == TOKEN_OK)
		rc = key_file_secret(secret_path, text, mode, kp, err,
				     errlen);
	sodium_memzero(text, sizeof(text));
	if (rc < 0)
		token_keypair_wipe(kp);
	return rc;
}

int token_public_load(const char *path, uint8_t pk[TOKEN_PK_LEN],
		      uint8_t key_id[TOKEN_KEY_ID_LEN], char *err,
		      size_t errlen)
{
	char text[KEYFILE_MAX];
	struct token_keypair kp;
	mode_t mode;
	int rc;

	if (!pk) {
		token_set_err(err, errlen, "no public key buffer");
		return TOKEN_ERR_INVALID;
	}
	rc = key_file_read(path, text, sizeof(text), &mode, err, errlen);
	if (rc < 0)
		return rc;
	if (key_file_is(text, KEYFILE_SECRET_HEADER)) {
		rc = key_file_secret(path, text, mode, &kp, err, errlen);
		if (rc == TOKEN_OK)
			memcpy(pk, kp.pk, TOKEN_PK_LEN);
		token_keypair_wipe(&kp);
		sodium_memzero(text, sizeof(text));
	} else {
		rc = key_file_decode(path, text, KEYFILE_PUBLIC_HEADER, pk,
				     TOKEN_PK_LEN, err, errlen);
	}
	if (rc == TOKEN_OK && key_id)
		token_key_id(pk, key_id);
	return rc;
}
