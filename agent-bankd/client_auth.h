/*
 * client_auth: checks the token a client presents in its connectClientReq,
 * offline, with the server's public key (from --server-pubkey or from the
 * server's connectBankRes). A client may only use the client id its token
 * names. Policy: required (default), optional, off.
 */
#ifndef BANKD_CLIENT_AUTH_H
#define BANKD_CLIENT_AUTH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rspro.h"
#include "token.h"

enum client_auth_policy {
	CLIENT_AUTH_REQUIRED,
	CLIENT_AUTH_OPTIONAL,
	CLIENT_AUTH_OFF,
};

struct client_auth {
	pthread_mutex_t lock;
	enum client_auth_policy policy;
	bool have_key;
	bool key_pinned;	/* from a file: the server cannot change it */
	uint8_t pk[TOKEN_PK_LEN];
	uint8_t key_id[TOKEN_KEY_ID_LEN];
};

/* What a check decided. */
struct client_auth_result {
	long result;		/* ok, authRequired, authFailed */
	bool presented;		/* the client sent a token */
	bool authenticated;	/* the token was checked and is good */
	char why[160];		/* for the log */
};

void client_auth_init(struct client_auth *ca, enum client_auth_policy p);
void client_auth_destroy(struct client_auth *ca);
int client_auth_policy_parse(const char *s, enum client_auth_policy *p);
const char *client_auth_policy_name(enum client_auth_policy p);

/* Loads the key from a file; it then wins over the server's. */
int client_auth_load_key(struct client_auth *ca, const char *path, char *err,
			 size_t errlen);
/*
 * The key the server sent in its capabilities. Returns 1 when it was taken,
 * 0 when it changed nothing, -1 when it differs from a pinned key.
 */
int client_auth_offer_key(struct client_auth *ca, const uint8_t *pk,
			  size_t pk_len);

void client_auth_check(struct client_auth *ca, const AuthToken_t *token,
		       uint16_t client_id, struct client_auth_result *r);

/* The capabilities to put into connectClientRes (only if presented). */
void client_auth_caps(struct client_auth *ca,
		      const struct client_auth_result *r,
		      struct rspro_caps *caps, uint8_t pk[TOKEN_PK_LEN],
		      uint8_t key_id[TOKEN_KEY_ID_LEN]);

#endif
