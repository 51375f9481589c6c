/*
 * frontend_vpcd: remsim-client as the virtual card of a vpcd reader in a
 * local pcscd, so any PC/SC program on the modem host uses the remote SIM.
 * The card is "inserted" (TCP connection to the reader's port) only while
 * a mapped card with an ATR exists. Wire format: docs/testbed.md section 5.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "apdu.h"
#include "client.h"
#include "frontend.h"
#include "hex.h"
#include "log.h"
#include "loop.h"

#define VPCD_RETRY_MS		1000
#define VPCD_MSG_MAX		(4 + 255 + 1 + 16)	/* short APDUs */
#define VPCD_OUT_MAX		(2 + APDU_MAX_RESPONSE + 2)

/* One-byte messages from pcscd (vpcd's driver). */
enum vpcd_ctrl {
	VPCD_CTRL_OFF = 0x00,
	VPCD_CTRL_ON = 0x01,
	VPCD_CTRL_RESET = 0x02,
	VPCD_CTRL_ATR = 0x04,
};

enum vpcd_state {
	VPCD_REMOVED,		/* no usable card: not connected */
	VPCD_CONNECTING,	/* inserting: TCP connect in progress */
	VPCD_RETRY,		/* vpcd not reachable, next try on a timer */
	VPCD_INSERTED,		/* connected, waiting for pcscd */
	VPCD_BUSY,		/* an APDU is at the card */
};

struct vpcd {
	struct frontend fe;
	char *host;
	uint16_t port;
	bool auto_get_response;
	enum vpcd_state state;
	int fd;
	struct loop_source *src;
	struct loop_timer retry;
	unsigned int failures;	/* connect failures in a row */
	bool powered;
	uint8_t in[2 + VPCD_MSG_MAX];
	size_t in_len;
	uint8_t out[VPCD_OUT_MAX];
	size_t out_len;
	struct apdu_xfer xfer;
};

static const char *const vpcd_state_names[] = {
	[VPCD_REMOVED] = "removed",
	[VPCD_CONNECTING] = "connecting",
	[VPCD_RETRY] = "retry-wait",
	[VPCD_INSERTED] = "inserted",
	[VPCD_BUSY] = "busy",
};

static void vpcd_connect(struct vpcd *v);

static void vpcd_update_events(struct vpcd *v)
{
	short ev = 0;

	if (v->state == VPCD_CONNECTING || v->out_len)
		ev |= POLLOUT;
	if (v->state == VPCD_INSERTED)
		ev |= POLLIN;
	loop_set_fd_events(v->src, ev);
}

static void vpcd_set_state(struct vpcd *v, enum vpcd_state new_state,
			   const char *reason)
{
	enum log_level level = LOG_NOTICE;

	if (v->state == new_state)
		return;
	/* per APDU, or a retry every second while pcscd is away: not news */
	if (new_state == VPCD_BUSY || v->state == VPCD_BUSY)
		level = LOG_DEBUG;
	else if (v->failures > 1 && (new_state == VPCD_RETRY ||
				     new_state == VPCD_CONNECTING))
		level = LOG_INFO;
	if (log_get_level() >= level)
		log_msg(level, v->fe.name, "%s -> %s (%s)",
			vpcd_state_names[v->state],
			vpcd_state_names[new_state], reason);
	v->state = new_state;
}

/* Closes the socket; the card is out of the reader. */
static void vpcd_close(struct vpcd *v)
{
	loop_remove_source(v->fe.loop, v->src);
	v->src = NULL;
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
	v->in_len = 0;
	v->out_len = 0;
	v->powered = false;
}

static void vpcd_remove(struct vpcd *v, const char *reason)
{
	vpcd_close(v);
	loop_timer_stop(v->fe.loop, &v->retry);
	vpcd_set_state(v, VPCD_REMOVED, reason);
}

/* Drops the connection and inserts the card again after a pause. */
static void vpcd_fail(struct vpcd *v, const char *reason)
{
	char text[160];

	vpcd_close(v);
	v->failures++;
	snprintf(text, sizeof(text), "%s; retry in %d ms", reason,
		 VPCD_RETRY_MS);
	/* the first failure needs a human; repeats only clutter the log */
	if (v->failures == 1)
		LOGE(v->fe.name, "%s", reason);
	vpcd_set_state(v, VPCD_RETRY, text);
	loop_timer_start(v->fe.loop, &v->retry, VPCD_RETRY_MS);
}

/* ---- sending ------------------------------------------------------------ */

static void vpcd_flush(struct vpcd *v)
{
	char reason[96];

	while (v->out_len) {
		ssize_t n = send(v->fd, v->out, v->out_len,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			snprintf(reason, sizeof(reason), "send: %s",
				 strerror(errno));
			vpcd_fail(v, reason);
			return;
		}
		memmove(v->out, v->out + n, v->out_len - (size_t)n);
		v->out_len -= (size_t)n;
	}
	vpcd_update_events(v);
}

/* One reply, length and payload in one write (testbed.md section 6). */
static void vpcd_reply(struct vpcd *v, const uint8_t *data, size_t len)
{
	if (len > sizeof(v->out) - 2 - v->out_len) {
		vpcd_fail(v, "reply does not fit the output buffer");
		return;
	}
	v->out[v->out_len++] = (uint8_t)(len >> 8);
	v->out[v->out_len++] = (uint8_t)len;
	memcpy(v->out + v->out_len, data, len);
	v->out_len += len;
	vpcd_flush(v);
}

static void vpcd_reply_sw(struct vpcd *v, uint8_t sw1, uint8_t sw2)
{
	uint8_t sw[2] = { sw1, sw2 };

	vpcd_reply(v, sw, 2);
}

/* ---- pcscd's messages --------------------------------------------------- */

static void vpcd_power(struct vpcd *v, bool on)
{
	struct rspro_slot_status st = {
		.reset_active = !on,
		.vcc_present = on,
		.clk_active = on,
		.card_present = 1,
	};

	if (v->powered == on)
		return;
	v->powered = on;
	LOGI(v->fe.name, "pcscd powers the card %s", on ? "on" : "off");
	client_send_slot_status(v->fe.client, &st);
}

static void vpcd_send_step(struct vpcd *v)
{
	int rc;

	vpcd_set_state(v, VPCD_BUSY, "APDU from pcscd");
	rc = client_send_tpdu(v->fe.client, v->xfer.tpdu, v->xfer.tpdu_len);
	if (rc < 0 && v->state == VPCD_BUSY) {
		LOGE(v->fe.name, "cannot send the TPDU: %s", strerror(-rc));
		vpcd_set_state(v, VPCD_INSERTED, "send failed");
		vpcd_reply_sw(v, 0x6f, 0x00);
	}
}

static void vpcd_apdu(struct vpcd *v, const uint8_t *apdu, size_t len)
{
	if (apdu_xfer_begin(&v->xfer, v->auto_get_response, apdu, len) !=
	    APDU_STEP_SEND) {
		/* what a card answers to a length it cannot take */
		LOGE(v->fe.name, "APDU refused: %s", v->xfer.error);
		vpcd_reply_sw(v, 0x67, 0x00);
		return;
	}
	vpcd_send_step(v);
}

static void vpcd_message(struct vpcd *v, const uint8_t *msg, size_t len)
{
	size_t atr_len;
	const uint8_t *atr;

	if (len > 1) {
		vpcd_apdu(v, msg, len);
		return;
	}
	if (len == 0) {
		LOGI(v->fe.name, "empty message from pcscd: ignored");
		return;
	}
	switch (msg[0]) {
	case VPCD_CTRL_OFF:
		vpcd_power(v, false);
		break;
	case VPCD_CTRL_ON:
		vpcd_power(v, true);
		break;
	case VPCD_CTRL_RESET:
		LOGN(v->fe.name, "pcscd resets the card");
		client_reset_card(v->fe.client, CLIENT_RESET_WARM);
		break;
	case VPCD_CTRL_ATR:
		/* also pcscd's presence poll, every 400 ms: keep it quiet */
		atr = client_get_atr(v->fe.client, &atr_len);
		vpcd_reply(v, atr, atr_len);
		break;
	default:
		LOGI(v->fe.name, "unknown control byte 0x%02x: ignored",
		     msg[0]);
		break;
	}
}

/* Handles whole messages while INSERTED (one APDU at a time). */
static void vpcd_process(struct vpcd *v)
{
	size_t n;

	while (v->state == VPCD_INSERTED && v->in_len >= 2) {
		n = (size_t)v->in[0] << 8 | v->in[1];
		if (n > VPCD_MSG_MAX) {
			char reason[80];

			snprintf(reason, sizeof(reason), "message of %zu bytes "
				 "from pcscd (limit %d)", n, VPCD_MSG_MAX);
			vpcd_fail(v, reason);
			return;
		}
		if (v->in_len < 2 + n)
			return;
		{
			uint8_t msg[VPCD_MSG_MAX];

			memcpy(msg, v->in + 2, n);
			memmove(v->in, v->in + 2 + n, v->in_len - 2 - n);
			v->in_len -= 2 + n;
			vpcd_message(v, msg, n);
		}
	}
	if (v->src)
		vpcd_update_events(v);
}

static void vpcd_read(struct vpcd *v)
{
	int one = 1;
	ssize_t n;

	/* not sticky: without it every APDU waits 40 ms (testbed.md 6) */
	setsockopt(v->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	n = recv(v->fd, v->in + v->in_len, sizeof(v->in) - v->in_len,
		 MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		vpcd_fail(v, n == 0 ? "pcscd closed the connection" :
				      strerror(errno));
		return;
	}
	v->in_len += (size_t)n;
	vpcd_process(v);
}

/* ---- connecting --------------------------------------------------------- */

static void vpcd_connected(struct vpcd *v)
{
	int err = 0;
	socklen_t len = sizeof(err);
	char reason[160];

	if (getsockopt(v->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		snprintf(reason, sizeof(reason), "connect to vpcd: %s",
			 strerror(err));
		vpcd_fail(v, reason);
		return;
	}
	v->failures = 0;
	vpcd_set_state(v, VPCD_INSERTED, "card inserted into the reader");
	vpcd_update_events(v);
}

static void vpcd_on_io(void *arg, int fd, short revents)
{
	struct vpcd *v = arg;

	if (v->state == VPCD_CONNECTING) {
		vpcd_connected(v);
		return;
	}
	if (revents & (POLLIN | POLLHUP | POLLERR)) {
		if (v->state == VPCD_INSERTED) {
			vpcd_read(v);
		} else if (revents & (POLLHUP | POLLERR)) {
			vpcd_fail(v, "connection to pcscd lost");
			return;
		}
	}
	if (v->fd >= 0 && (revents & POLLOUT))
		vpcd_flush(v);
}

static void vpcd_connect(struct vpcd *v)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res;
	char port[8], reason[160];
	int one = 1;
	int rc;

	snprintf(port, sizeof(port), "%u", v->port);
	rc = getaddrinfo(v->host, port, &hints, &res);
	if (rc != 0) {
		snprintf(reason, sizeof(reason), "cannot resolve %s: %s",
			 v->host, gai_strerror(rc));
		vpcd_fail(v, reason);
		return;
	}
	v->fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
					       SOCK_CLOEXEC, 0);
	if (v->fd < 0 ||
	    setsockopt(v->fd, IPPROTO_TCP, TCP_NODELAY, &one,
		       sizeof(one)) < 0 ||
	    (connect(v->fd, res->ai_addr, res->ai_addrlen) < 0 &&
	     errno != EINPROGRESS)) {
		snprintf(reason, sizeof(reason), "connect to vpcd: %s",
			 strerror(errno));
		freeaddrinfo(res);
		vpcd_fail(v, reason);
		return;
	}
	freeaddrinfo(res);
	v->src = loop_add_fd(v->fe.loop, v->fd, POLLOUT, vpcd_on_io, v);
	if (!v->src) {
		vpcd_fail(v, "out of memory");
		return;
	}
	vpcd_set_state(v, VPCD_CONNECTING, "inserting the card");
}

static void vpcd_retry(void *arg)
{
	struct vpcd *v = arg;

	vpcd_connect(v);
}

/* ---- front-end ops ------------------------------------------------------ */

static int vpcd_start(struct frontend *fe)
{
	struct vpcd *v = (struct vpcd *)fe;

	LOGN(fe->name, "the card goes into the reader once %s is mapped",
	     client_name(fe->client));
	v->state = VPCD_REMOVED;
	return 0;
}

static void vpcd_card_insert(struct frontend *fe, const uint8_t *atr,
			     size_t len)
{
	struct vpcd *v = (struct vpcd *)fe;
	char hex[2 * 55 + 1];

	hex_encode(hex, atr, len < 55 ? len : 55);
	LOGN(fe->name, "card with ATR %s: inserting it", hex);
	v->failures = 0;
	if (v->state == VPCD_REMOVED)
		vpcd_connect(v);
}

static void vpcd_card_atr(struct frontend *fe, const uint8_t *atr,
			  size_t len)
{
	/* GET ATR always answers the latest one */
}

static void vpcd_card_remove(struct frontend *fe, const char *reason)
{
	struct vpcd *v = (struct vpcd *)fe;

	vpcd_remove(v, reason);
}

static void vpcd_tpdu_response(struct frontend *fe, const uint8_t *data,
			       size_t len)
{
	struct vpcd *v = (struct vpcd *)fe;

	if (v->state != VPCD_BUSY)
		return;
	switch (apdu_xfer_next(&v->xfer, data, len)) {
	case APDU_STEP_SEND:
		vpcd_send_step(v);
		return;
	case APDU_STEP_DONE:
		vpcd_set_state(v, VPCD_INSERTED, "response");
		vpcd_reply(v, v->xfer.resp, v->xfer.resp_len);
		break;
	case APDU_STEP_ERROR:
		LOGE(fe->name, "%s", v->xfer.error);
		vpcd_set_state(v, VPCD_INSERTED, "bad response");
		vpcd_reply_sw(v, 0x6f, 0x00);
		break;
	}
	if (v->state == VPCD_INSERTED)
		vpcd_process(v);
}

static void vpcd_tpdu_failed(struct frontend *fe, const char *reason)
{
	struct vpcd *v = (struct vpcd *)fe;

	if (v->state != VPCD_BUSY)
		return;
	/* pcscd waits for an answer: "no precise diagnosis" is the truth */
	vpcd_set_state(v, VPCD_INSERTED, reason);
	vpcd_reply_sw(v, 0x6f, 0x00);
}

static void vpcd_free(struct frontend *fe)
{
	struct vpcd *v = (struct vpcd *)fe;

	vpcd_close(v);
	loop_timer_stop(fe->loop, &v->retry);
	free(v->host);
	free(v);
}

static const struct frontend_ops vpcd_ops = {
	.name = "vpcd",
	.start = vpcd_start,
	.card_insert = vpcd_card_insert,
	.card_atr = vpcd_card_atr,
	.card_remove = vpcd_card_remove,
	.tpdu_response = vpcd_tpdu_response,
	.tpdu_failed = vpcd_tpdu_failed,
	.free = vpcd_free,
};

struct frontend *frontend_vpcd_new(struct loop *loop,
				   const struct frontend_options *o)
{
	struct vpcd *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	v->fe.ops = &vpcd_ops;
	v->fe.loop = loop;
	v->host = strdup(o->vpcd_host ? o->vpcd_host : "127.0.0.1");
	if (!v->host) {
		free(v);
		return NULL;
	}
	v->port = o->vpcd_port;
	v->auto_get_response = o->auto_get_response;
	v->fd = -1;
	loop_timer_init(&v->retry, vpcd_retry, v);
	snprintf(v->fe.name, sizeof(v->fe.name),
		 strchr(v->host, ':') ? "vpcd [%s]:%u" : "vpcd %s:%u",
		 v->host, v->port);
	return &v->fe;
}
