/*
 * frontend_shell: hex command APDUs on stdin, one response per line on
 * stdout, for scripts and humans. stdin is only read while a card is
 * usable, so lines typed early wait for the mapping; EOF ends the program
 * once the last answer is out. Logs and waiting notices go to stderr.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "apdu.h"
#include "client.h"
#include "frontend.h"
#include "hex.h"
#include "log.h"
#include "loop.h"

#define SHELL_LINE_MAX	4096

enum shell_state {
	SHELL_WAIT_CARD,	/* no usable card: stdin not read */
	SHELL_READY,		/* reading lines */
	SHELL_BUSY,		/* APDU at the card */
	SHELL_DONE,		/* EOF or quit: exiting */
};

struct shell {
	struct frontend fe;
	bool auto_get_response;
	enum shell_state state;
	struct loop_source *in;
	char buf[SHELL_LINE_MAX + 1];
	size_t len;
	bool eof;
	bool overlong;		/* discarding the rest of a too long line */
	struct apdu_xfer xfer;
};

static const char *const shell_state_names[] = {
	[SHELL_WAIT_CARD] = "wait-card",
	[SHELL_READY] = "ready",
	[SHELL_BUSY] = "busy",
	[SHELL_DONE] = "done",
};

static void shell_process(struct shell *sh);

static void shell_set_state(struct shell *sh, enum shell_state new_state,
			    const char *reason)
{
	if (sh->state == new_state)
		return;
	/* ready <-> busy happens per APDU: debug, like APDUs themselves */
	if (new_state == SHELL_BUSY || sh->state == SHELL_BUSY)
		LOGD(sh->fe.name, "%s -> %s (%s)", shell_state_names[sh->state],
		     shell_state_names[new_state], reason);
	else
		LOGN(sh->fe.name, "%s -> %s (%s)",
		     shell_state_names[sh->state],
		     shell_state_names[new_state], reason);
	sh->state = new_state;
	loop_set_fd_events(sh->in, new_state == SHELL_READY && !sh->eof ?
					   POLLIN : 0);
}

/* One line on stdout, flushed at once: scripts read it right away. */
static void shell_print(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static void shell_print(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void shell_print_hex(const uint8_t *data, size_t len)
{
	char hex[2 * (APDU_MAX_RESPONSE + 2) + 1];

	hex_encode(hex, data, len);
	shell_print("%s", hex);
}

static void shell_wait_notice(struct shell *sh, const char *reason)
{
	struct client *c = sh->fe.client;

	LOGN(sh->fe.name, "waiting for a card: %s is %s (%s)", client_name(c),
	     client_state_name(client_get_state(c)), reason);
}

static void shell_finish(struct shell *sh, const char *reason)
{
	shell_set_state(sh, SHELL_DONE, reason);
	loop_quit(sh->fe.loop, 0);
}

/* ---- APDUs -------------------------------------------------------------- */

static void shell_send_step(struct shell *sh)
{
	int rc;

	shell_set_state(sh, SHELL_BUSY, "APDU sent");
	rc = client_send_tpdu(sh->fe.client, sh->xfer.tpdu, sh->xfer.tpdu_len);
	if (rc < 0) {
		shell_print("error: cannot send: %s", strerror(-rc));
		shell_set_state(sh, client_get_state(sh->fe.client) ==
					    CLIENT_OPERATIONAL ?
					    SHELL_READY : SHELL_WAIT_CARD,
				"send failed");
	}
}

static void shell_apdu(struct shell *sh, const char *line)
{
	uint8_t apdu[SHELL_LINE_MAX / 2];
	ssize_t n = hex_decode(apdu, sizeof(apdu), line);

	if (n < 0) {
		LOGE(sh->fe.name, "not a hex APDU: '%.40s'", line);
		shell_print("error: not a hex APDU");
		return;
	}
	if (apdu_xfer_begin(&sh->xfer, sh->auto_get_response, apdu,
			    (size_t)n) != APDU_STEP_SEND) {
		LOGE(sh->fe.name, "bad APDU: %s", sh->xfer.error);
		shell_print("error: %s", sh->xfer.error);
		return;
	}
	shell_send_step(sh);
}

static void shell_command(struct shell *sh, char *line)
{
	struct client *c = sh->fe.client;
	size_t atr_len;
	const uint8_t *atr;
	int rc;

	while (*line == ' ' || *line == '\t')
		line++;
	line[strcspn(line, "\r")] = '\0';
	if (!*line || *line == '#')
		return;
	if (!strcasecmp(line, "atr") || !strcasecmp(line, "reset") ||
	    !strcasecmp(line, "reset cold")) {
		if (strcasecmp(line, "atr")) {
			rc = client_reset_card(c, strcasecmp(line, "reset") ?
						       CLIENT_RESET_COLD :
						       CLIENT_RESET_WARM);
			if (rc < 0) {
				shell_print("error: reset failed: %s",
					    strerror(-rc));
				return;
			}
		}
		atr = client_get_atr(c, &atr_len);
		shell_print_hex(atr, atr_len);
		return;
	}
	if (!strcasecmp(line, "quit") || !strcasecmp(line, "exit")) {
		shell_finish(sh, line);
		return;
	}
	shell_apdu(sh, line);
}

/* Handles buffered lines while READY; at EOF with nothing left, exits. */
static void shell_process(struct shell *sh)
{
	char *nl;
	size_t used;

	while (sh->state == SHELL_READY) {
		nl = memchr(sh->buf, '\n', sh->len);
		if (!nl && sh->eof && sh->len) {
			/* a last line without a newline still counts */
			sh->buf[sh->len] = '\0';
			nl = sh->buf + sh->len;
			used = sh->len;
		} else if (!nl) {
			break;
		} else {
			*nl = '\0';
			used = (size_t)(nl - sh->buf) + 1;
		}
		if (sh->overlong) {
			sh->overlong = false;
		} else {
			char line[SHELL_LINE_MAX + 1];

			memcpy(line, sh->buf, (size_t)(nl - sh->buf) + 1);
			memmove(sh->buf, sh->buf + used, sh->len - used);
			sh->len -= used;
			shell_command(sh, line);
			continue;
		}
		memmove(sh->buf, sh->buf + used, sh->len - used);
		sh->len -= used;
	}
	if (sh->state == SHELL_READY && sh->eof && sh->len == 0)
		shell_finish(sh, "end of input");
}

static void shell_on_stdin(void *arg, int fd, short revents)
{
	struct shell *sh = arg;
	ssize_t n;

	if (sh->len == SHELL_LINE_MAX) {
		/* no newline in a full buffer: drop it, skip to the next */
		LOGE(sh->fe.name, "input line longer than %d characters: "
		     "ignored", SHELL_LINE_MAX);
		shell_print("error: line too long");
		sh->len = 0;
		sh->overlong = true;
	}
	n = read(fd, sh->buf + sh->len, SHELL_LINE_MAX - sh->len);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		LOGE(sh->fe.name, "reading stdin: %s", strerror(errno));
		n = 0;
	}
	if (n == 0) {
		sh->eof = true;
		loop_set_fd_events(sh->in, 0);
	}
	sh->len += (size_t)n;
	shell_process(sh);
}

/* ---- front-end ops ------------------------------------------------------ */

static int shell_start(struct frontend *fe)
{
	struct shell *sh = (struct shell *)fe;

	sh->in = loop_add_fd(fe->loop, STDIN_FILENO, 0, shell_on_stdin, sh);
	if (!sh->in)
		return -ENOMEM;
	shell_wait_notice(sh, "starting");
	return 0;
}

static void shell_card_insert(struct frontend *fe, const uint8_t *atr,
			      size_t len)
{
	struct shell *sh = (struct shell *)fe;

	if (sh->state == SHELL_DONE)
		return;
	LOGN(fe->name, "card ready: send APDUs");
	shell_set_state(sh, SHELL_READY, "card inserted");
	shell_process(sh);
}

static void shell_card_atr(struct frontend *fe, const uint8_t *atr,
			   size_t len)
{
}

static void shell_card_remove(struct frontend *fe, const char *reason)
{
	struct shell *sh = (struct shell *)fe;

	if (sh->state == SHELL_DONE)
		return;
	shell_set_state(sh, SHELL_WAIT_CARD, reason);
}

static void shell_client_state(struct frontend *fe, int state,
			       const char *reason)
{
	struct shell *sh = (struct shell *)fe;

	/* tell whoever waits at the terminal why nothing happens */
	if (sh->state == SHELL_WAIT_CARD)
		shell_wait_notice(sh, reason);
}

static void shell_tpdu_response(struct frontend *fe, const uint8_t *data,
				size_t len)
{
	struct shell *sh = (struct shell *)fe;

	switch (apdu_xfer_next(&sh->xfer, data, len)) {
	case APDU_STEP_SEND:
		shell_send_step(sh);
		return;
	case APDU_STEP_DONE:
		shell_print_hex(sh->xfer.resp, sh->xfer.resp_len);
		break;
	case APDU_STEP_ERROR:
		shell_print("error: %s", sh->xfer.error);
		break;
	}
	shell_set_state(sh, SHELL_READY, "response printed");
	shell_process(sh);
}

static void shell_tpdu_failed(struct frontend *fe, const char *reason)
{
	struct shell *sh = (struct shell *)fe;

	shell_print("error: no response: %s", reason);
	/* while the card goes away, card_remove follows right after this */
	if (client_get_state(fe->client) != CLIENT_OPERATIONAL) {
		shell_set_state(sh, SHELL_WAIT_CARD, reason);
		return;
	}
	shell_set_state(sh, SHELL_READY, "TPDU failed");
	shell_process(sh);
}

static void shell_free(struct frontend *fe)
{
	struct shell *sh = (struct shell *)fe;

	loop_remove_source(fe->loop, sh->in);
	free(sh);
}

static const struct frontend_ops shell_ops = {
	.name = "shell",
	.start = shell_start,
	.card_insert = shell_card_insert,
	.card_atr = shell_card_atr,
	.card_remove = shell_card_remove,
	.client_state = shell_client_state,
	.tpdu_response = shell_tpdu_response,
	.tpdu_failed = shell_tpdu_failed,
	.free = shell_free,
};

struct frontend *frontend_shell_new(struct loop *loop,
				    const struct frontend_options *o)
{
	struct shell *sh = calloc(1, sizeof(*sh));

	if (!sh)
		return NULL;
	sh->fe.ops = &shell_ops;
	sh->fe.loop = loop;
	snprintf(sh->fe.name, sizeof(sh->fe.name), "shell");
	sh->auto_get_response = o->auto_get_response;
	sh->state = SHELL_WAIT_CARD;
	return &sh->fe;
}
