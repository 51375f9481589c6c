/*
 * remsimctl: the admin command line tool. remsimctl.c dispatches to the
 * subcommand files (remsimctl_<group>.c); each cmd_* returns the exit code.
 */
#ifndef REMSIMCTL_H
#define REMSIMCTL_H

#include <stddef.h>
#include <stdint.h>

/* Exit codes shared by every subcommand. */
enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_FAIL = 1,	/* the operation failed (bad input, refused) */
	CTL_EXIT_USAGE = 2,	/* wrong command line */
};

int cmd_rspro(int argc, char **argv);	/* rspro decode | encode */
/* status, banks, clients, slotmaps, map, unmap, move, events */
int cmd_server(int argc, char **argv);
/* token list | revoke, and token issue without --key: over the API */
int cmd_token_api(int argc, char **argv);

/* "remsimctl CMD: message" on stderr. */
void ctl_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The same, plus where to find the usage; returns CTL_EXIT_USAGE. */
int ctl_usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "90", "90s", "15m", "12h", "30d" -> seconds; -1 if invalid. */
int ctl_parse_duration(const char *s, int64_t *out);

/* remsimctl_http.c: one request to remsim-server's REST API. */
struct ctl_http_answer {
	int status;
	char content_type[64];
	char *body;		/* NUL-terminated */
	size_t len;
};

int ctl_http_request(const char *url, const char *method, const char *path,
		     const char *token, const char *body,
		     struct ctl_http_answer *ans, char *err, size_t errlen);
void ctl_http_answer_free(struct ctl_http_answer *ans);
int cmd_keygen(int argc, char **argv);	/* keygen */
int cmd_token(int argc, char **argv);	/* token issue | verify */

#endif
