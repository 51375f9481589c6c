/*
 * client_auth: the bankd's offline check of client tokens. The key is read
 * by workers and replaced by the main thread (server link), hence the mutex;
 * verification itself runs on a copy outside it.
 */
#include <string.h>
#include <strings.h>
#include <time.h>

#include "client_auth.h"

static const char *const policy_names[] = {
	[CLIENT_AUTH_REQUIRED] = "required",
	[CLIENT_AUTH_OPTIONAL] = "optional",
	[CLIENT_AUTH_OFF] = "off",
};

void client_auth_init(struct client_auth *ca, enum client_auth_policy p)
{
	memset(ca, 0, sizeof(*ca));
	pthread_mutex_init(&ca->lock, NULL);
	ca->policy = p;
}

void client_auth_destroy(struct client_auth *ca)
{
	pthread_mutex_destroy(&ca->lock);
}

int client_auth_policy_parse(const char *s, enum client_auth_policy *p)
{
	for (unsigned i = 0; i <= CLIENT_AUTH_OFF; i++) {
		if (!strcasecmp(s, policy_names[i])) {
			*p = i;
			return 0;
		}
	}
	return -1;
}

const char *client_auth_policy_name(enum client_auth_policy p)
{
	return p <= CLIENT_AUTH_OFF ? policy_names[p] : "?";
}

int client_auth_load_key(struct client_auth *ca, const char *path, char *err,
			 size_t errlen)
{
	uint8_t pk[TOKEN_PK_LEN], key_id[TOKEN_KEY_ID_LEN];
	int rc = token_public_load(path, pk, key_id, err, errlen);

	if (rc != TOKEN_OK)
		return rc;
	pthread_mutex_lock(&ca->lock);
	memcpy(ca->pk, pk, sizeof(pk));
	memcpy(ca->key_id, key_id, sizeof(key_id));
	ca->have_key = true;
	ca->key_pinned = true;
	pthread_mutex_unlock(&ca->lock);
	return 0;
}

int client_auth_offer_key(struct client_auth *ca, const uint8_t *pk,
			  size_t pk_len)
{
	int rc = 0;

	if (pk_len != TOKEN_PK_LEN)
		return 0;
	pthread_mutex_lock(&ca->lock);
	if (ca->key_pinned) {
		rc = memcmp(ca->pk, pk, TOKEN_PK_LEN) ? -1 : 0;
	} else if (!ca->have_key || memcmp(ca->pk, pk, TOKEN_PK_LEN)) {
		memcpy(ca->pk, pk, TOKEN_PK_LEN);
		token_key_id(ca->pk, ca->key_id);
		ca->have_key = true;
		rc = 1;
	}
	pthread_mutex_unlock(&ca->lock);
	return rc;
}

void client_auth_check(struct client_auth *ca, const AuthToken_t *token,
		       uint16_t client_id, struct client_auth_result *r)
{
	char text[RSPRO_TOKEN_MAX + 1];
	uint8_t pk[TOKEN_PK_LEN];
	struct token_claims claims;
	char id[33];
	bool have_key;
	int rc;

	memset(r, 0, sizeof(*r));
	r->result = ResultCode_ok;
	r->presented = token && token->size > 0;
	if (ca->policy == CLIENT_AUTH_OFF) {
		snprintf(r->why, sizeof(r->why), "client auth off");
		return;
	}
	if (!r->presented) {
		if (ca->policy == CLIENT_AUTH_REQUIRED) {
			r->result = ResultCode_authRequired;
			snprintf(r->why, sizeof(r->why),
				 "no token, and tokens are required");
		} else {
			snprintf(r->why, sizeof(r->why),
				 "no token: admitted unauthenticated");
		}
		return;
	}
	pthread_mutex_lock(&ca->lock);
	have_key = ca->have_key;
	memcpy(pk, ca->pk, sizeof(pk));
	pthread_mutex_unlock(&ca->lock);
	r->result = ResultCode_authFailed;
	if (!have_key) {
		snprintf(r->why, sizeof(r->why), "token presented, but the "
			 "server's public key is not known yet");
		return;
	}
	if ((size_t)token->size > RSPRO_TOKEN_MAX) {
		snprintf(r->why, sizeof(r->why), "token too long");
		return;
	}
	memcpy(text, token->buf, (size_t)token->size);
	text[token->size] = '\0';
	rc = token_verify(text, pk, TOKEN_ROLE_CLIENT, client_id, time(NULL),
			  TOKEN_DEFAULT_SKEW, &claims);
	if (rc != TOKEN_OK) {
		if (rc == TOKEN_ERR_SUBJECT)
			snprintf(r->why, sizeof(r->why), "token is for client "
				 "%u, not %u", claims.subject, client_id);
		else
			snprintf(r->why, sizeof(r->why), "token refused: %s",
				 token_strerror(rc));
		return;
	}
	token_id_hex(&claims, id);
	r->result = ResultCode_ok;
	r->authenticated = true;
	snprintf(r->why, sizeof(r->why), "token %s valid", id);
}

void client_auth_caps(struct client_auth *ca,
		      const struct client_auth_result *r,
		      struct rspro_caps *caps, uint8_t pk[TOKEN_PK_LEN],
		      uint8_t key_id[TOKEN_KEY_ID_LEN])
{
	memset(caps, 0, sizeof(*caps));
	caps->revision = RSPRO_REMSIM_REVISION;
	caps->authenticated = r->authenticated;
	pthread_mutex_lock(&ca->lock);
	if (ca->have_key) {
		memcpy(pk, ca->pk, TOKEN_PK_LEN);
		memcpy(key_id, ca->key_id, TOKEN_KEY_ID_LEN);
		caps->server_pubkey = pk;
		caps->server_key_id = key_id;
	}
	pthread_mutex_unlock(&ca->lock);
}
