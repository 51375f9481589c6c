/*
 * auth: who may speak to the server. Agents' tokens (the authToken
 * extension of connectBankReq / connectClientReq) are checked against the
 * server key, the role and subject they claim, and the revocation list,
 * which is kept in memory (loaded from revoked_tokens, then followed
 * through the remsim_tokens notification).
 */
#ifndef REMSIM_AUTH_H
#define REMSIM_AUTH_H

#include <stdint.h>

#include "rspro.h"
#include "token.h"

struct server;

struct auth_result {
	long result;		/* ResultCode to answer: ok, authRequired, ... */
	int presented;		/* the peer sent a token (a remsim peer) */
	int authenticated;	/* and it was valid */
	struct token_claims claims;
	char why[160];		/* reason, for logs and events */
};

int auth_init(struct server *srv);
void auth_free(struct server *srv);

/*
 * Checks a connect request's token (NULL: none) against the listener
 * policy. role is TOKEN_ROLE_BANKD or TOKEN_ROLE_CLIENT, subject the bank
 * or client id the peer claims.
 */
void auth_check_agent(struct server *srv, const AuthToken_t *token,
		      enum token_role role, long subject,
		      struct auth_result *out);

/* The capabilities extension for a peer that presented a token. */
void auth_caps(struct server *srv, const struct auth_result *ar,
	       struct rspro_caps *caps);

int auth_is_revoked(struct server *srv, const uint8_t token_id[TOKEN_ID_LEN]);

/* Database hooks: reload the revocation list / one more token revoked. */
void auth_db_up(struct server *srv);
void auth_db_notify_revoked(struct server *srv, const char *token_id_hex);

#endif
