/*
 * auth: token checks for RSPRO agents and the revocation list. The list
 * is a sorted array of token ids (revocations are rare and few; lookups
 * happen at every connect and every admin request).
 */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "feed.h"
#include "hex.h"
#include "log.h"
#include "server.h"

struct auth {
	uint8_t (*revoked)[TOKEN_ID_LEN];
	size_t n, cap;
	int loaded;	/* the list was read from the database at least once */
};

static int id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, TOKEN_ID_LEN);
}

static void auth_add_revoked(struct auth *a, const uint8_t id[TOKEN_ID_LEN])
{
	size_t lo = 0, hi = a->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = memcmp(a->revoked[mid], id, TOKEN_ID_LEN);

		if (!c)
			return;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (a->n == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 64;
		void *p = realloc(a->revoked, cap * TOKEN_ID_LEN);

		if (!p) {
			LOGE("auth", "out of memory for the revocation list");
			return;
		}
		a->revoked = p;
		a->cap = cap;
	}
	memmove(a->revoked[lo + 1], a->revoked[lo], (a->n - lo) * TOKEN_ID_LEN);
	memcpy(a->revoked[lo], id, TOKEN_ID_LEN);
	a->n++;
}

int auth_is_revoked(struct server *srv, const uint8_t token_id[TOKEN_ID_LEN])
{
	struct auth *a = srv->auth;

	return a->n && bsearch(token_id, a->revoked, a->n, TOKEN_ID_LEN,
			       id_cmp) != NULL;
}

void auth_check_agent(struct server *srv, const AuthToken_t *token,
		      enum token_role role, long subject,
		      struct auth_result *out)
{
	char text[TOKEN_TEXT_MAX + 1];
	int rc;

	memset(out, 0, sizeof(*out));
	out->result = ResultCode_ok;
	if (srv->cfg.rspro_auth == AUTH_OFF)
		return;
	if (!token || !token->size) {
		if (srv->cfg.rspro_auth == AUTH_REQUIRED) {
			out->result = ResultCode_authRequired;
			snprintf(out->why, sizeof(out->why), "no token, and "
				 "tokens are required");
		} else {
			snprintf(out->why, sizeof(out->why), "no token: "
				 "admitted unauthenticated");
		}
		return;
	}
	out->presented = 1;
	if (!srv->have_key) {
		out->result = srv->cfg.rspro_auth == AUTH_REQUIRED ?
			      ResultCode_authFailed : ResultCode_ok;
		snprintf(out->why, sizeof(out->why), "token not checked: the "
			 "server has no key (--key)");
		return;
	}
	if ((size_t)token->size >= sizeof(text)) {
		out->result = ResultCode_authFailed;
		snprintf(out->why, sizeof(out->why), "token too long");
		return;
	}
	memcpy(text, token->buf, (size_t)token->size);
	text[token->size] = '\0';
	rc = token_verify(text, srv->keypair.pk, role, subject, time(NULL),
			  TOKEN_DEFAULT_SKEW, &out->claims);
	if (rc == TOKEN_OK && auth_is_revoked(srv, out->claims.token_id))
		rc = -100;
	if (rc != TOKEN_OK) {
		char id[33] = "?";

		if (rc != TOKEN_ERR_MALFORMED && rc != TOKEN_ERR_SIGNATURE &&
		    rc != TOKEN_ERR_VERSION && rc != TOKEN_ERR_KEY)
			token_id_hex(&out->claims, id);
		out->result = ResultCode_authFailed;
		snprintf(out->why, sizeof(out->why), "token %s refused: %s", id,
			 rc == -100 ? "revoked" : token_strerror(rc));
		return;
	}
	out->authenticated = 1;
	{
		char id[33];

		token_id_hex(&out->claims, id);
		snprintf(out->why, sizeof(out->why), "token %s valid", id);
	}
}

void auth_caps(struct server *srv, const struct auth_result *ar,
	       struct rspro_caps *caps)
{
	memset(caps, 0, sizeof(*caps));
	caps->revision = RSPRO_REMSIM_REVISION;
	caps->authenticated = ar->authenticated;
	if (srv->have_key) {
		/* lets a bankd check its clients' tokens offline */
		caps->server_pubkey = srv->keypair.pk;
		caps->server_key_id = srv->keypair.key_id;
	}
}

static void auth_loaded(struct db *db, const PGresult *res, void *arg)
{
	struct server *srv = arg;
	struct auth *a = srv->auth;
	uint8_t id[TOKEN_ID_LEN];

	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		LOGE("auth", "cannot read revoked_tokens: %s",
		     res ? PQresultErrorMessage(res) : "connection lost");
		return;
	}
	a->n = 0;
	for (int r = 0; r < PQntuples(res); r++)
		if (hex_decode(id, sizeof(id), PQgetvalue(res, r, 0)) ==
		    TOKEN_ID_LEN)
			auth_add_revoked(a, id);
	a->loaded = 1;
	LOGI("auth", "%zu revoked tokens", a->n);
	/* anyone connected with a token revoked while we were not looking */
	for (size_t i = 0; i < a->n; i++) {
		rspro_server_drop_token(srv, a->revoked[i]);
		feed_drop_token(srv, a->revoked[i]);
	}
}

void auth_db_up(struct server *srv)
{
	db_query(srv->db, "SELECT token_id FROM revoked_tokens", 0, NULL,
		 auth_loaded, srv);
}

void auth_db_notify_revoked(struct server *srv, const char *token_id_hex)
{
	uint8_t id[TOKEN_ID_LEN];

	if (hex_decode(id, sizeof(id), token_id_hex) != TOKEN_ID_LEN) {
		LOGE("auth", "unreadable revocation notification '%s'",
		     token_id_hex);
		return;
	}
	LOGN("auth", "token %s revoked", token_id_hex);
	auth_add_revoked(srv->auth, id);
	rspro_server_drop_token(srv, id);
	feed_drop_token(srv, id);
}

int auth_init(struct server *srv)
{
	srv->auth = calloc(1, sizeof(struct auth));
	return srv->auth ? 0 : -1;
}

void auth_free(struct server *srv)
{
	struct auth *a = srv->auth;

	if (!a)
		return;
	free(a->revoked);
	free(a);
	srv->auth = NULL;
}
