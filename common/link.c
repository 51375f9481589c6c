/*
 * link: one RSPRO client connection as an explicit state machine (idle,
 * connecting, up, wait-retry, stopped). Resolves the host on every attempt,
 * connects without blocking to each address in turn, runs the IPA keepalive
 * the way osmo-remsim does and spaces attempts with a jittered backoff.
 */
#define _GNU_SOURCE
#include "link.h"

#include "ipa.h"
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LINK_REASON_MAX	256
#define LINK_PEER_MAX	80	/* numeric IPv6 with scope, brackets, port */

struct link {
	char *name;
	char *host;
	uint16_t port;
	uint32_t ping_interval_ms;
	uint32_t pong_timeout_ms;
	uint32_t connect_timeout_ms;
	link_up_cb on_up;
	link_rspro_cb on_rspro;
	link_down_cb on_down;
	void *user;

	enum link_state state;
	int fd;
	/*
	 * Bumped whenever the socket is closed: a callback may reconnect or
	 * stop the link, and the code that called it must then stop touching
	 * the old connection.
	 */
	unsigned int generation;
	struct addrinfo *addrs;		/* addresses of the current attempt */
	struct addrinfo *cur;		/* the one being connected to */
	char peer[LINK_PEER_MAX];

	/* Deadlines in link_now_ms() time; -1 when not armed. */
	int64_t connect_deadline;	/* CONNECTING: give up on cur */
	int64_t retry_at;		/* WAIT_RETRY: next attempt */
	int64_t ping_at;		/* UP: next PING due */
	int64_t pong_deadline;		/* UP: PING outstanding, PONG due */
	int64_t up_since;

	struct link_backoff backoff;
	uint32_t rng;

	struct link_stats stats;
	struct ipa_reader reader;
	size_t out_start;
	size_t out_len;
	uint8_t out[LINK_OUT_QUEUE_MAX];
};

static const char *const link_state_names[] = {
	[LINK_IDLE] = "idle",
	[LINK_CONNECTING] = "connecting",
	[LINK_UP] = "up",
	[LINK_WAIT_RETRY] = "wait-retry",
	[LINK_STOPPED] = "stopped",
};

const char *link_state_name(enum link_state state)
{
	if ((unsigned int)state >= sizeof(link_state_names) /
					   sizeof(link_state_names[0]))
		return "?";
	return link_state_names[state];
}

/* The only place that changes link->state. */
static void link_set_state(struct link *link, enum link_state new_state,
			   const char *reason)
{
	LOGN(link->name, "%s -> %s (%s)", link_state_name(link->state),
	     link_state_name(new_state), reason);
	link->state = new_state;
}

int64_t link_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- backoff ---------------------------------------------------------- */

void link_backoff_init(struct link_backoff *b, uint32_t base_ms,
		       uint32_t cap_ms, uint32_t stable_ms)
{
	b->base_ms = base_ms;
	b->cap_ms = cap_ms < base_ms ? base_ms : cap_ms;
	b->stable_ms = stable_ms;
	b->nominal_ms = base_ms;
}

void link_backoff_reset(struct link_backoff *b)
{
	b->nominal_ms = b->base_ms;
}

uint32_t link_backoff_next(struct link_backoff *b, uint32_t random)
{
	uint32_t nominal = b->nominal_ms;
	uint32_t spread = nominal / 5;
	/* Scales random onto [0, spread] without modulo bias. */
	uint32_t cut = (uint32_t)(((uint64_t)spread + 1) * random >> 32);

	if (nominal >= b->cap_ms - nominal)
		b->nominal_ms = b->cap_ms;
	else
		b->nominal_ms = nominal * 2;
	return nominal - cut;
}

uint32_t link_backoff_after_up(struct link_backoff *b, int64_t up_ms,
			       uint32_t random)
{
	/*
	 * Like osmo-remsim 1.1: a link that was up for a while reconnects at
	 * once. A peer that drops us right after connecting keeps doubling.
	 */
	if (up_ms >= (int64_t)b->stable_ms) {
		link_backoff_reset(b);
		return 0;
	}
	return link_backoff_next(b, random);
}

/* xorshift32: jitter needs spread, not secrecy. */
static uint32_t link_random(struct link *link)
{
	uint32_t x = link->rng;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	link->rng = x;
	return x;
}

static void link_seed_random(struct link *link)
{
	uint32_t seed = 0;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
		seed = (uint32_t)link_now_ms() ^ (uint32_t)getpid() ^
		       (uint32_t)(uintptr_t)link;
	link->rng = seed ? seed : 0x2545f491;
}

/* ---- life cycle --------------------------------------------------------- */

static uint32_t link_value_or(uint32_t value, uint32_t fallback)
{
	return value ? value : fallback;
}

struct link *link_new(const struct link_config *cfg)
{
	const char *ctx = cfg->name ? cfg->name : "link";
	struct link *link;
	char name[300];

	if (!cfg->host || !cfg->host[0] || cfg->port == 0) {
		LOGE(ctx, "link needs a host and a non-zero port");
		return NULL;
	}
	if (!cfg->name) {
		snprintf(name, sizeof(name), "%s:%u", cfg->host, cfg->port);
		ctx = name;
	}

	link = calloc(1, sizeof(*link));
	if (!link)
		return NULL;
	link->name = strdup(ctx);
	link->host = strdup(cfg->host);
	if (!link->name || !link->host) {
		link_free(link);
		return NULL;
	}
	link->port = cfg->port;
	link->ping_interval_ms = link_value_or(cfg->ping_interval_ms,
					       LINK_DEFAULT_PING_INTERVAL_MS);
	link->pong_timeout_ms = link_value_or(cfg->pong_timeout_ms,
					      LINK_DEFAULT_PONG_TIMEOUT_MS);
	link->connect_timeout_ms =
		link_value_or(cfg->connect_timeout_ms,
			      LINK_DEFAULT_CONNECT_TIMEOUT_MS);
	link_backoff_init(&link->backoff,
			  link_value_or(cfg->backoff_base_ms,
					LINK_DEFAULT_BACKOFF_BASE_MS),
			  link_value_or(cfg->backoff_cap_ms,
					LINK_DEFAULT_BACKOFF_CAP_MS),
			  link_value_or(cfg->stable_after_ms,
					LINK_DEFAULT_STABLE_AFTER_MS));
	link->on_up = cfg->on_up;
	link->on_rspro = cfg->on_rspro;
	link->on_down = cfg->on_down;
	link->user = cfg->user;

	link->state = LINK_IDLE;
	link->fd = -1;
	link->connect_deadline = -1;
	link->retry_at = -1;
	link->ping_at = -1;
	link->pong_deadline = -1;
	link_seed_random(link);
	ipa_reader_init(&link->reader);
	return link;
}

static void link_free_addrs(struct link *link)
{
	if (link->addrs)
		freeaddrinfo(link->addrs);
	link->addrs = NULL;
	link->cur = NULL;
}

static void link_close_socket(struct link *link)
{
	if (link->fd >= 0)
		close(link->fd);
	link->fd = -1;
	link->generation++;
}

/* Forgets everything about the current connection or attempt. */
static void link_close(struct link *link)
{
	link_close_socket(link);
	link_free_addrs(link);
	ipa_reader_init(&link->reader);
	link->out_start = 0;
	link->out_len = 0;
	link->peer[0] = '\0';
	link->connect_deadline = -1;
	link->retry_at = -1;
	link->ping_at = -1;
	link->pong_deadline = -1;
}

void link_free(struct link *link)
{
	if (!link)
		return;
	link_close(link);
	free(link->name);
	free(link->host);
	free(link);
}

/*
 * Closes whatever is open and schedules the next attempt. The owner hears
 * of it (on_down) only if it had been told the link was up.
 */
static void link_fail(struct link *link, int64_t now, const char *reason)
{
	char text[LINK_REASON_MAX + 32];
	int was_up = link->state == LINK_UP;
	uint32_t delay;

	if (was_up)
		delay = link_backoff_after_up(&link->backoff,
					      now - link->up_since,
					      link_random(link));
	else
		delay = link_backoff_next(&link->backoff, link_random(link));
	link_close(link);
	link->retry_at = now + delay;
	snprintf(text, sizeof(text), "%s; retry in %u ms", reason, delay);
	link_set_state(link, LINK_WAIT_RETRY, text);
	if (was_up && link->on_down)
		link->on_down(link, reason, link->user);
}

/* ---- sending ------------------------------------------------------------ */

/*
 * Sends one whole frame, queueing what the socket does not take at once
 * behind anything already queued, so frames never interleave. Returns 0,
 * -ENOBUFS when the queue would overflow, or the socket's -errno.
 */
static int link_write(struct link *link, const uint8_t *data, size_t n)
{
	size_t done = 0;
	size_t rest;

	while (link->out_len == 0 && done < n) {
		ssize_t r = send(link->fd, data + done, n - done,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -errno;
		}
		done += (size_t)r;
		link->stats.bytes_out += (uint64_t)r;
	}

	rest = n - done;
	if (rest > LINK_OUT_QUEUE_MAX - link->out_len)
		return -ENOBUFS;
	if (rest) {
		size_t tail = LINK_OUT_QUEUE_MAX - link->out_start;

		if (link->out_len + rest > tail) {
			memmove(link->out, link->out + link->out_start,
				link->out_len);
			link->out_start = 0;
		}
		memcpy(link->out + link->out_start + link->out_len,
		       data + done, rest);
		link->out_len += rest;
	}
	link->stats.frames_out++;
	return 0;
}

/* Writes as much of the output queue as the socket takes. */
static int link_flush(struct link *link)
{
	while (link->out_len) {
		ssize_t r = send(link->fd, link->out + link->out_start,
				 link->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		link->out_start += (size_t)r;
		link->out_len -= (size_t)r;
		link->stats.bytes_out += (uint64_t)r;
	}
	link->out_start = 0;
	return 0;
}

static void link_fail_write(struct link *link, int64_t now, int err)
{
	char reason[LINK_REASON_MAX];

	if (err == -ENOBUFS) {
		LOGE(link->name, "output queue to %s full (%zu bytes waiting)",
		     link->peer, link->out_len);
		snprintf(reason, sizeof(reason), "output queue overflow");
	} else {
		snprintf(reason, sizeof(reason), "send: %s", strerror(-err));
	}
	link_fail(link, now, reason);
}

static int link_send_ccm(struct link *link, enum ipa_ccm_type type)
{
	uint8_t frame[4];

	ipa_ccm_frame(frame, type);
	LOGD(link->name, "tx CCM %s", ipa_ccm_name(type));
	return link_write(link, frame, sizeof(frame));
}

int link_send_rspro(struct link *link, const uint8_t *pdu, size_t len)
{
	uint8_t frame[IPA_MAX_TX_FRAME];
	size_t hdr;
	int rc;

	if (len > RSPRO_MAX_PDU) {
		LOGE(link->name, "refusing to send a %zu-byte RSPRO PDU "
		     "(limit %d)", len, RSPRO_MAX_PDU);
		return -EMSGSIZE;
	}
	if (link->state != LINK_UP)
		return -ENOTCONN;

	hdr = ipa_write_header(frame, IPA_STREAM_OSMO, IPA_OSMO_EXT_RSPRO, len);
	if (len)
		memcpy(frame + hdr, pdu, len);
	LOGD(link->name, "tx RSPRO %zu bytes", len);
	rc = link_write(link, frame, hdr + len);
	if (rc < 0)
		link_fail_write(link, link_now_ms(), rc);
	return rc;
}

/* ---- keepalive ---------------------------------------------------------- */

static void link_send_ping(struct link *link, int64_t now)
{
	int rc = link_send_ccm(link, IPA_CCM_PING);

	if (rc < 0) {
		link_fail_write(link, now, rc);
		return;
	}
	link->ping_at = -1;
	link->pong_deadline = now + link->pong_timeout_ms;
}

static void link_handle_pong(struct link *link, int64_t now)
{
	if (link->pong_deadline < 0) {
		LOGD(link->name, "PONG without a PING outstanding, ignored");
		return;
	}
	link->pong_deadline = -1;
	link->ping_at = now + link->ping_interval_ms;
}

/* ---- receiving ---------------------------------------------------------- */

static void link_handle_ccm(struct link *link, const struct ipa_frame *f,
			    int64_t now)
{
	uint8_t type = f->data[0];	/* the reader refuses length 0 */
	uint8_t reply[4];
	size_t n;
	int rc;

	LOGD(link->name, "rx CCM %s", ipa_ccm_name(type));
	if (type == IPA_CCM_PONG) {
		link_handle_pong(link, now);
		return;
	}
	n = ipa_ccm_reply(f, reply);
	if (n == 0) {
		/* Never answer ID_GET: see rspro-protocol.md 1.2. */
		LOGI(link->name, "ignoring CCM %s (0x%02x) from %s",
		     ipa_ccm_name(type), type, link->peer);
		return;
	}
	rc = link_write(link, reply, n);
	if (rc < 0)
		link_fail_write(link, now, rc);
}

static void link_handle_frame(struct link *link, const struct ipa_frame *f,
			      int64_t now)
{
	if (f->stream == IPA_STREAM_CCM) {
		link_handle_ccm(link, f, now);
		return;
	}
	if (f->stream == IPA_STREAM_OSMO && f->ext == IPA_OSMO_EXT_RSPRO) {
		if (f->len == 0) {
			LOGI(link->name, "ignoring empty RSPRO frame");
			return;
		}
		LOGD(link->name, "rx RSPRO %zu bytes", f->len);
		if (link->on_rspro)
			link->on_rspro(link, f->data, f->len, link->user);
		return;
	}
	/*
	 * osmo-remsim 1.0 ignores other streams as well; dropping the link
	 * (as 1.1 does) would only hurt a newer peer.
	 */
	LOGI(link->name, "ignoring IPA stream 0x%02x ext %d (%zu bytes)",
	     f->stream, f->ext, f->len);
}

static void link_read(struct link *link, int64_t now)
{
	unsigned int gen = link->generation;
	char reason[LINK_REASON_MAX];
	struct ipa_frame f;
	size_t room;
	uint8_t *p = ipa_reader_space(&link->reader, &room);
	ssize_t n;
	int rc;

	if (room == 0) {
		link_fail(link, now, ipa_strerror(IPA_ERR_FULL));
		return;
	}
	n = recv(link->fd, p, room, MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		snprintf(reason, sizeof(reason), "recv: %s", strerror(errno));
		link_fail(link, now, reason);
		return;
	}
	if (n == 0) {
		link_fail(link, now, "peer closed");
		return;
	}
	ipa_reader_commit(&link->reader, (size_t)n);
	link->stats.bytes_in += (uint64_t)n;

	while ((rc = ipa_reader_next(&link->reader, &f)) > 0) {
		link->stats.frames_in++;
		link_handle_frame(link, &f, now);
		if (link->generation != gen)
			return;
	}
	if (rc < 0) {
		LOGE(link->name, "bad IPA data from %s: %s", link->peer,
		     ipa_strerror(rc));
		link_fail(link, now, ipa_strerror(rc));
	}
}

/* ---- connecting --------------------------------------------------------- */

/* "192.0.2.1:9998" or "[2001:db8::1]:9998", for logs and link_get_peer(). */
static void link_format_peer(struct link *link, const struct addrinfo *ai)
{
	char host[LINK_PEER_MAX - 16];
	char serv[8];

	if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), serv,
			sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(link->peer, sizeof(link->peer), "?");
	else if (ai->ai_family == AF_INET6)
		snprintf(link->peer, sizeof(link->peer), "[%s]:%s", host, serv);
	else
		snprintf(link->peer, sizeof(link->peer), "%s:%s", host, serv);
}

/* Opens a socket towards ai and starts connecting; 0 or -errno. */
static int link_open_socket(struct link *link, const struct addrinfo *ai)
{
	int one = 1;
	int fd, err;

	fd = socket(ai->ai_family,
		    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
	if (fd < 0)
		return -errno;
	/*
	 * Every RSPRO message is small and waits for an answer: with Nagle
	 * on, osmo-remsim lost ~40 ms per message to delayed ACKs.
	 */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 &&
	     errno != EINPROGRESS)) {
		err = -errno;
		close(fd);
		return err;
	}
	link->fd = fd;
	return 0;
}

/*
 * Starts connecting to the address after link->cur (the first one if none).
 * When no address is left the attempt has failed with reason failure.
 */
static void link_connect_next(struct link *link, int64_t now,
			      const char *failure)
{
	char reason[LINK_REASON_MAX];
	struct addrinfo *ai = link->cur ? link->cur->ai_next : link->addrs;
	int err;

	for (; ai; ai = ai->ai_next) {
		link_format_peer(link, ai);
		err = link_open_socket(link, ai);
		if (err == 0)
			break;
		snprintf(reason, sizeof(reason), "connect to %s: %s",
			 link->peer, strerror(-err));
		LOGI(link->name, "%s", reason);
		failure = reason;
	}
	if (!ai) {
		link_fail(link, now, failure ? failure : "no address to try");
		return;
	}

	link->cur = ai;
	link->connect_deadline = now + link->connect_timeout_ms;
	snprintf(reason, sizeof(reason), "connecting to %s", link->peer);
	if (link->state == LINK_CONNECTING)
		LOGI(link->name, "%s", reason);
	else
		link_set_state(link, LINK_CONNECTING, reason);
}

/* One attempt: resolve the host anew, then try its addresses in turn. */
static void link_attempt(struct link *link, int64_t now)
{
	struct addrinfo hints;
	struct addrinfo *res;
	char reason[LINK_REASON_MAX];
	char port[8];
	int rc;

	link->stats.attempts++;
	link_close(link);

	/*
	 * No AI_ADDRCONFIG: it would hide ::1 (or 127.0.0.1) on hosts whose
	 * only address of that family is the loopback one. getaddrinfo()
	 * blocks for DNS names; literals and /etc/hosts names answer at once,
	 * and that is what agents are configured with in practice.
	 */
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", link->port);
	rc = getaddrinfo(link->host, port, &hints, &res);
	if (rc != 0) {
		snprintf(reason, sizeof(reason), "cannot resolve %s: %s",
			 link->host,
			 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		link_fail(link, now, reason);
		return;
	}
	link->addrs = res;
	link->cur = NULL;
	link_connect_next(link, now, NULL);
}

static void link_connected(struct link *link, int64_t now)
{
	char reason[LINK_REASON_MAX];
	int rc;

	/*
	 * osmo-remsim's keepalive starts with a PING right after the TCP
	 * connect, before the connect request (rspro-protocol.md 1.3, 4.1).
	 */
	rc = link_send_ccm(link, IPA_CCM_PING);
	if (rc < 0) {
		snprintf(reason, sizeof(reason), "send to %s: %s", link->peer,
			 strerror(-rc));
		link_close_socket(link);
		link_connect_next(link, now, reason);
		return;
	}
	link_free_addrs(link);
	link->connect_deadline = -1;
	link->pong_deadline = now + link->pong_timeout_ms;
	link->ping_at = -1;
	link->up_since = now;
	link->stats.connects++;
	snprintf(reason, sizeof(reason), "connected to %s", link->peer);
	link_set_state(link, LINK_UP, reason);
	if (link->on_up)
		link->on_up(link, link->user);
}

static void link_check_connect(struct link *link, int64_t now)
{
	char reason[LINK_REASON_MAX];
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(link->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == 0 && getpeername(link->fd, (struct sockaddr *)&ss,
				    &sslen) < 0) {
		/* Events from an earlier socket: still in progress. */
		if (errno == ENOTCONN)
			return;
		err = errno;
	}
	if (err == 0) {
		link_connected(link, now);
		return;
	}
	snprintf(reason, sizeof(reason), "connect to %s: %s", link->peer,
		 strerror(err));
	LOGI(link->name, "%s", reason);
	link_close_socket(link);
	link_connect_next(link, now, reason);
}

int link_start(struct link *link)
{
	if (link->state != LINK_IDLE && link->state != LINK_STOPPED)
		return -EALREADY;
	link_backoff_reset(&link->backoff);
	link_attempt(link, link_now_ms());
	return 0;
}

void link_stop(struct link *link)
{
	if (link->state == LINK_STOPPED)
		return;
	link_close(link);
	link_set_state(link, LINK_STOPPED, "stopped by owner");
}

void link_reconnect(struct link *link, const char *reason)
{
	if (link->state != LINK_UP && link->state != LINK_CONNECTING)
		return;
	link_fail(link, link_now_ms(), reason ? reason : "reconnect requested");
}

/* ---- accessors ---------------------------------------------------------- */

int link_is_up(const struct link *link)
{
	return link->state == LINK_UP;
}

enum link_state link_get_state(const struct link *link)
{
	return link->state;
}

const char *link_get_name(const struct link *link)
{
	return link->name;
}

const char *link_get_peer(const struct link *link)
{
	return link->peer;
}

const struct link_stats *link_get_stats(const struct link *link)
{
	return &link->stats;
}

/* ---- event loop --------------------------------------------------------- */

int link_pollfd(const struct link *link, struct pollfd *pfd)
{
	pfd->fd = -1;
	pfd->events = 0;
	pfd->revents = 0;
	switch (link->state) {
	case LINK_CONNECTING:
		pfd->fd = link->fd;
		pfd->events = POLLOUT;
		return 1;
	case LINK_UP:
		pfd->fd = link->fd;
		pfd->events = POLLIN | (link->out_len ? POLLOUT : 0);
		return 1;
	default:
		return 0;
	}
}

void link_handle_io(struct link *link, short revents)
{
	int64_t now = link_now_ms();
	unsigned int gen = link->generation;
	int rc;

	if (!revents)
		return;
	switch (link->state) {
	case LINK_CONNECTING:
		link_check_connect(link, now);
		break;
	case LINK_UP:
		/* Read first: frames sent just before a close still count. */
		if (revents & (POLLIN | POLLHUP | POLLERR))
			link_read(link, now);
		if (link->generation != gen || !(revents & POLLOUT))
			break;
		rc = link_flush(link);
		if (rc < 0)
			link_fail_write(link, now, rc);
		break;
	default:
		/* Left over from a socket that is closed by now. */
		break;
	}
}

static int64_t link_next_deadline(const struct link *link)
{
	switch (link->state) {
	case LINK_CONNECTING:
		return link->connect_deadline;
	case LINK_WAIT_RETRY:
		return link->retry_at;
	case LINK_UP:
		return link->pong_deadline >= 0 ? link->pong_deadline :
						  link->ping_at;
	default:
		return -1;
	}
}

int link_timeout_ms(const struct link *link, int64_t now_ms)
{
	int64_t at = link_next_deadline(link);

	if (at < 0)
		return -1;
	if (at <= now_ms)
		return 0;
	if (at - now_ms > INT_MAX)
		return INT_MAX;
	return (int)(at - now_ms);
}

void link_handle_timers(struct link *link, int64_t now_ms)
{
	char reason[LINK_REASON_MAX];

	switch (link->state) {
	case LINK_CONNECTING:
		if (now_ms < link->connect_deadline)
			break;
		snprintf(reason, sizeof(reason),
			 "connect to %s: no answer within %u ms", link->peer,
			 link->connect_timeout_ms);
		LOGI(link->name, "%s", reason);
		link_close_socket(link);
		link_connect_next(link, now_ms, reason);
		break;
	case LINK_UP:
		if (link->pong_deadline >= 0 && now_ms >= link->pong_deadline) {
			link->stats.pong_timeouts++;
			snprintf(reason, sizeof(reason),
				 "no PONG from %s within %u ms", link->peer,
				 link->pong_timeout_ms);
			link_fail(link, now_ms, reason);
		} else if (link->ping_at >= 0 && now_ms >= link->ping_at) {
			link_send_ping(link, now_ms);
		}
		break;
	case LINK_WAIT_RETRY:
		if (now_ms < link->retry_at)
			break;
		link->stats.reconnects++;
		link_attempt(link, now_ms);
		break;
	default:
		break;
	}
}

int link_run_once(struct link **links, size_t n, int max_wait_ms)
{
	struct pollfd *pfds;
	int64_t now = link_now_ms();
	int timeout = max_wait_ms;
	int rc;
	size_t i;

	if (n == 0)
		return -EINVAL;
	pfds = calloc(n, sizeof(*pfds));
	if (!pfds)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		int t = link_timeout_ms(links[i], now);

		link_pollfd(links[i], &pfds[i]);
		if (t >= 0 && (timeout < 0 || t < timeout))
			timeout = t;
	}

	rc = poll(pfds, n, timeout);
	if (rc < 0) {
		rc = errno == EINTR ? 0 : -errno;
	} else {
		for (i = 0; i < n; i++) {
			if (pfds[i].fd >= 0 && pfds[i].revents)
				link_handle_io(links[i], pfds[i].revents);
		}
		now = link_now_ms();
		for (i = 0; i < n; i++)
			link_handle_timers(links[i], now);
	}
	free(pfds);
	return rc;
}
