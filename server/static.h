/*
 * static: the dashboard's files (web/), served by the HTTP vhost for every
 * path no other route claims. GET and HEAD only, files under one root
 * directory, ETag revalidation, and a restrictive Content-Security-Policy
 * plus the other browser security headers on every answer.
 */
#ifndef REMSIM_STATIC_H
#define REMSIM_STATIC_H

#include "http.h"

/* Request headers static.c needs that struct http_req does not carry. */
struct static_headers {
	const char *host;		/* Host, "" if none */
	const char *if_none_match;	/* If-None-Match, "" if none */
};

/*
 * Where the files are when --web-root is not given: the source tree's web/
 * for a binary run from its build tree, <prefix>/share/remsim/web for an
 * installed one.
 */
const char *static_default_root(void);

/*
 * Resolves and checks the root directory. explicit: given on the command
 * line, so a missing directory is an error (-1); the default one missing
 * is only logged and the dashboard answers 404.
 */
int static_init(const char *root, int explicit);

void static_serve(struct http_req *req, const struct static_headers *h);

#endif
