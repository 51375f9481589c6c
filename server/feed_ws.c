/*
 * feed_ws: the /feed WebSocket side of the admin feed (docs/feed.md): the
 * lws protocol callback, authentication of a new subscriber, and writing:
 * whole frames made here, packed up to 64 KiB per write, and close frames.
 */
#define _GNU_SOURCE
#include "feed_priv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <jansson.h>

#include "http.h"
#include "link.h"
#include "log.h"
#include "rest.h"
#include "server.h"
#include "token.h"

/* ---- writing: whole frames, packed ---- */

static size_t frame_header(unsigned char *p, int fin, int cont, size_t len)
{
	p[0] = (unsigned char)((fin ? 0x80 : 0) | (cont ? 0x0 : 0x1));
	if (len < 126) {
		p[1] = (unsigned char)len;
		return 2;
	}
	p[1] = 126;
	p[2] = (unsigned char)(len >> 8);
	p[3] = (unsigned char)len;
	return 4;
}

/* Bytes [off, off + n) of the head message: envelope, then body. */
static void sub_copy(struct feed_sub *s, const struct feed_msg *m,
		     unsigned char *dst, size_t off, size_t n)
{
	if (off < s->prefix_len) {
		size_t k = s->prefix_len - off < n ? s->prefix_len - off : n;

		memcpy(dst, s->prefix + off, k);
		dst += k;
		off += k;
		n -= k;
	}
	memcpy(dst, m->body + (off - s->prefix_len), n);
}

static void sub_start_message(struct feed_sub *s, const struct feed_item *it)
{
	int n;

	if (!strcmp(it->msg->type, "error"))	/* before any seq */
		n = snprintf(s->prefix, sizeof(s->prefix),
			     "{\"v\":1,\"type\":\"error\"");
	else if (it->reason)
		n = snprintf(s->prefix, sizeof(s->prefix),
			     "{\"v\":1,\"type\":\"%s\",\"seq\":%llu,"
			     "\"reason\":\"%s\"", it->msg->type,
			     (unsigned long long)++s->seq, it->reason);
	else
		n = snprintf(s->prefix, sizeof(s->prefix),
			     "{\"v\":1,\"type\":\"%s\",\"seq\":%llu",
			     it->msg->type, (unsigned long long)++s->seq);
	s->prefix_len = (size_t)n;
	s->off = 0;
	s->started = 1;
}

/* Fills buf with frames of queued messages; returns the bytes. */
static size_t sub_pack(struct feed_sub *s, unsigned char *buf)
{
	size_t used = 0;
	struct feed_item *it;

	while ((it = feed_queue_head(&s->q))) {
		size_t left, room, n, h;
		int fin;

		if (!s->started)
			sub_start_message(s, it);
		left = s->prefix_len + it->msg->len - s->off;
		room = FEED_WRITE_MAX - used - 4;
		if (left > room && used)
			break;	/* a large one starts its own write */
		n = left <= room ? left : room;
		fin = n == left;
		h = frame_header(buf + used, fin, s->off > 0, n);
		sub_copy(s, it->msg, buf + used + h, s->off, n);
		used += h + n;
		s->off += n;
		if (!fin)
			break;
		if (it->msg->is_snapshot)
			s->snapshot_unsent = 0;
		s->started = 0;
		s->feed->stats.messages++;
		feed_queue_pop(&s->q);
	}
	return used;
}

/* An unmasked control frame (ping 0x89, close 0x88) into buf. */
static size_t control_frame(unsigned char *buf, unsigned char op,
			    const void *payload, size_t len)
{
	buf[0] = op;
	buf[1] = (unsigned char)len;	/* control frames: < 126 bytes */
	memcpy(buf + 2, payload, len);
	return 2 + len;
}

/*
 * Sends buf on the socket itself, not through lws_write(): lws would
 * re-arm POLLOUT (two epoll_ctl calls) for every write, which at 200
 * subscribers x 1,000 changes/s cost the server more than the sends. What
 * the socket does not take is kept and goes first next time.
 */
static int sub_send(struct feed_sub *s, const unsigned char *buf, size_t len)
{
	ssize_t n = send(lws_get_socket_fd(s->wsi), buf, len,
			 MSG_DONTWAIT | MSG_NOSIGNAL);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		      errno == EINTR))
		n = 0;
	if (n < 0) {
		LOGN(s->who, "feed write failed (%s): closing",
		     strerror(errno));
		return -1;
	}
	if ((size_t)n == len)
		return 0;
	s->pend = malloc(len - (size_t)n);
	if (!s->pend) {
		LOGE(s->who, "out of memory for a feed write: closing");
		return -1;
	}
	memcpy(s->pend, buf + n, len - (size_t)n);
	s->pend_len = len - (size_t)n;
	s->pend_off = 0;
	return 0;
}

/* The rest of an earlier write; 1 if some is still left. */
static int sub_send_pending(struct feed_sub *s)
{
	ssize_t n;

	if (!s->pend)
		return 0;
	n = send(lws_get_socket_fd(s->wsi), s->pend + s->pend_off,
		 s->pend_len - s->pend_off, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		      errno == EINTR))
		return 1;
	if (n < 0) {
		LOGN(s->who, "feed write failed (%s): closing",
		     strerror(errno));
		return -1;
	}
	s->pend_off += (size_t)n;
	if (s->pend_off < s->pend_len)
		return 1;
	free(s->pend);
	s->pend = NULL;
	s->pend_len = s->pend_off = 0;
	return 0;
}

/* One write's worth: a ping, packed frames or the close frame; 0 if none. */
static size_t sub_next_write(struct feed_sub *s, unsigned char *buf)
{
	size_t n;

	if (s->ping_due) {
		int64_t now = link_now_ms();

		/* lws reports pongs with a payload only: send one */
		s->ping_due = 0;
		return control_frame(buf, 0x89, &now, sizeof(now));
	}
	n = sub_pack(s, buf);
	if (n || s->state != SUB_CLOSING || s->close_sent)
		return n;
	/* our own close frame, whole, like the rest */
	{
		unsigned char payload[2 + sizeof(s->close_reason)];
		size_t len = strlen(s->close_reason);

		payload[0] = (unsigned char)(s->close_code >> 8);
		payload[1] = (unsigned char)s->close_code;
		memcpy(payload + 2, s->close_reason, len);
		s->close_sent = 1;
		return control_frame(buf, 0x88, payload, 2 + len);
	}
}

#define FEED_WRITES_PER_TURN	4	/* then others get their turn */

int feed_sub_write(struct feed_sub *s)
{
	unsigned char *buf = s->feed->wbuf + LWS_PRE;
	int rc = 0;

	if (s->write_failed)
		return -1;
	for (int i = 0; i < FEED_WRITES_PER_TURN && rc == 0; i++) {
		size_t n;

		rc = sub_send_pending(s);
		if (rc)
			break;
		n = sub_next_write(s, buf);
		if (!n)
			break;
		if (sub_send(s, buf, n))
			rc = -1;
		else if (s->pend)
			rc = 1;
	}
	if (rc < 0) {
		s->write_failed = 1;
		/* outside lws' callback we cannot return -1: let it kill */
		lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND,
				LWS_TO_KILL_ASYNC);
		return -1;
	}
	if (s->close_sent && !s->pend) {
		/* the close frame is out: hang up in the writeable callback */
		lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, 2);
		lws_callback_on_writable(s->wsi);
		return 0;
	}
	if (s->pend || s->ping_due || s->q.count ||
	    (s->state == SUB_CLOSING && !s->close_sent))
		lws_callback_on_writable(s->wsi);
	return 0;
}

static int sub_writeable(struct feed_sub *s)
{
	if (s->close_sent && !s->pend)
		return -1;	/* the close frame is out: hang up */
	return feed_sub_write(s);
}

/* ---- the lws protocol ---- */

static void sub_peer(struct lws *wsi, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ip[64] = "?";
	int port = 0;

	lws_get_peer_simple(wsi, ip, sizeof(ip));
	if (!getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)&ss, &sl))
		port = ntohs(ss.ss_family == AF_INET6 ?
			     ((struct sockaddr_in6 *)&ss)->sin6_port :
			     ((struct sockaddr_in *)&ss)->sin_port);
	if (!strncmp(ip, "::ffff:", 7))
		memmove(ip, ip + 7, strlen(ip + 7) + 1);
	snprintf(out, len, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, port);
}

/* Checks "Bearer <token>" like /api/v2 does; then the snapshot. */
static void sub_authenticate(struct feed_sub *s, const char *authorization,
			     int too_long)
{
	struct http_req *req = calloc(1, sizeof(*req));
	struct token_claims claims;
	char why[160];
	enum rest_auth rc;

	if (!req) {
		feed_sub_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
			       "out of memory", 1);
		return;
	}
	req->srv = s->feed->srv;
	snprintf(req->authorization, sizeof(req->authorization), "%s",
		 authorization);
	req->authorization_too_long = too_long;
	rc = rest_auth_admin(req, &claims, why, sizeof(why));
	if (rc == REST_AUTH_OK)
		snprintf(s->who, sizeof(s->who), "%s@%s", req->who, s->peer);
	explicit_bzero(req, sizeof(*req));
	free(req);
	lws_set_timer_usecs(s->wsi, LWS_SET_TIMER_USEC_CANCEL);
	if (rc != REST_AUTH_OK) {
		feed_sub_refuse(s, 4401, "unauthorized", why);
		return;
	}
	LOGN(s->who, "feed subscribed (%s)", why);
	feed_sub_subscribe(s, claims.token_id);
}

/* The first message of a browser: {"type":"auth","token":"..."}. */
static void sub_receive_auth(struct feed_sub *s)
{
	json_t *j = json_loadb(s->rx, s->rx_len, 0, NULL);
	const char *type = json_string_value(json_object_get(j, "type"));
	const char *token = json_string_value(json_object_get(j, "token"));
	char bearer[HTTP_AUTH_MAX + 8];
	int n;

	if (!type || strcmp(type, "auth") || !token) {
		feed_sub_refuse(s, 4400, "bad_request", "the first message "
				"must be {\"type\":\"auth\",\"token\":"
				"\"...\"}");
		json_decref(j);
		return;
	}
	n = snprintf(bearer, sizeof(bearer), "Bearer %s", token);
	sub_authenticate(s, bearer, n >= HTTP_AUTH_MAX);
	explicit_bzero(bearer, sizeof(bearer));
	json_decref(j);
}

static void sub_receive(struct feed_sub *s, const void *in, size_t len,
			int final)
{
	s->last_rx_ms = link_now_ms();
	if (!s->rx_skip && s->rx_len + len > sizeof(s->rx)) {
		if (s->state == SUB_AUTH) {
			feed_sub_refuse(s, 4400, "bad_request",
					"first message too long");
			return;
		}
		s->rx_skip = 1;
	}
	if (!s->rx_skip) {
		memcpy(s->rx + s->rx_len, in, len);
		s->rx_len += len;
	}
	if (!final)
		return;
	if (s->state == SUB_AUTH && !s->rx_skip)
		sub_receive_auth(s);
	else
		LOGD(s->who, "feed message from the subscriber ignored");
	explicit_bzero(s->rx, s->rx_len);
	s->rx_len = 0;
	s->rx_skip = 0;
}

/*
 * How long a new connection may take to send its auth message: 5 s, or two
 * heartbeat intervals if that is less (the time after which an authenticated
 * subscriber that sends nothing is dropped).
 */
static uint32_t sub_auth_timeout_ms(const struct feed *f)
{
	uint32_t ms = 2 * f->srv->cfg.feed_heartbeat_ms;

	return ms < FEED_AUTH_TIMEOUT_MS ? ms : FEED_AUTH_TIMEOUT_MS;
}

static void sub_established(struct feed *f, struct feed_sub *s,
			    struct lws *wsi)
{
	char auth[HTTP_AUTH_MAX];
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);

	feed_sub_attach(f, s, wsi);
	sub_peer(wsi, s->peer, sizeof(s->peer));
	snprintf(s->who, sizeof(s->who), "%s", s->peer);
	if (f->closing) {
		feed_sub_close(s, LWS_CLOSE_STATUS_GOINGAWAY,
			       "server shutting down", 1);
		return;
	}
	if (n > 0) {
		if (n >= (int)sizeof(auth) ||
		    lws_hdr_copy(wsi, auth, sizeof(auth),
				 WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
			auth[0] = '\0';
		sub_authenticate(s, auth, n >= (int)sizeof(auth));
		explicit_bzero(auth, sizeof(auth));
		return;
	}
	LOGI(s->who, "feed connected, waiting for its auth message");
	lws_set_timer_usecs(wsi, (lws_usec_t)sub_auth_timeout_ms(f) *
			    LWS_US_PER_MS);
}

static void sub_auth_timeout(struct feed_sub *s)
{
	char why[64];

	snprintf(why, sizeof(why), "no auth message within %u ms",
		 (unsigned)sub_auth_timeout_ms(s->feed));
	feed_sub_refuse(s, 4401, "unauthorized", why);
}

/* Only GET /feed with our subprotocol becomes a subscriber. */
static int feed_filter(struct lws *wsi)
{
	char uri[64];

	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0)
		return -1;
	if (strcmp(uri, FEED_PATH) && strcmp(uri, FEED_PATH "/"))
		return -1;
	return 0;
}

static int feed_callback(struct lws *wsi, enum lws_callback_reasons reason,
			 void *user, void *in, size_t len)
{
	struct server *srv = lws_context_user(lws_get_context(wsi));
	struct feed_sub *s = user;

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return feed_filter(wsi);
	case LWS_CALLBACK_ESTABLISHED:
		if (!srv->feed)
			return -1;
		sub_established(srv->feed, s, wsi);
		break;
	case LWS_CALLBACK_RECEIVE:
		if (s->feed && s->state != SUB_CLOSING)
			sub_receive(s, in, len, lws_is_final_fragment(wsi));
		break;
	case LWS_CALLBACK_RECEIVE_PONG:
		s->last_rx_ms = link_now_ms();
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (s->feed)
			return sub_writeable(s);
		break;
	case LWS_CALLBACK_TIMER:
		if (s->feed && s->state == SUB_AUTH)
			sub_auth_timeout(s);
		break;
	case LWS_CALLBACK_CLOSED:
		if (s->feed)
			feed_sub_detach(s);
		break;
	default:
		break;
	}
	return 0;
}

const struct lws_protocols feed_protocol = {
	.name = FEED_SUBPROTOCOL,
	.callback = feed_callback,
	.per_session_data_size = sizeof(struct feed_sub),
	.rx_buffer_size = FEED_RX_MAX,
};
