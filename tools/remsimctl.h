/*
 * remsimctl: the admin command line tool. remsimctl.c dispatches to the
 * subcommand files (remsimctl_<group>.c); each cmd_* returns the exit code.
 */
#ifndef REMSIMCTL_H
#define REMSIMCTL_H

#include <stddef.h>

/* Exit codes shared by every subcommand. */
enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_FAIL = 1,	/* the operation failed (bad input, refused) */
	CTL_EXIT_USAGE = 2,	/* wrong command line */
};

int cmd_rspro(int argc, char **argv);	/* rspro decode | encode */

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
