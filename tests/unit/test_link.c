/*
 * test_link: the RSPRO client link against real sockets on loopback. A
 * listening socket inside the test plays the peer and is driven step by
 * step with poll() next to the link's own fd and timers; no mocks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipa.h"
#include "link.h"
#include "log.h"

#define MAX_PDUS	16
#define MAX_DOWNS	8

/* The test's side of the TCP connection: a tiny IPA server. */
struct peer {
	int lfd;		/* listening (or bound, not listening) socket */
	int cfd;		/* the connection accepted last */
	uint16_t port;
	int accepts;
	int close_on_accept;	/* close every new connection at once */
	int answer_ping;	/* answer the link's PINGs with PONG */
	uint8_t rx[256 * 1024];	/* bytes received on cfd */
	size_t rx_len;
	size_t rx_parsed;	/* frames before this offset are counted */
	int pings;		/* PINGs received on cfd */
	int eof;		/* cfd was closed by the link */
	int discard;		/* drop parsed bytes, check RSPRO numbering */
	uint32_t next_seq;	/* RSPRO frames carry a 4-byte number */
	int seq_errors;
};

/* The link's owner: records what the callbacks saw. */
struct owner {
	int ups;
	int downs;
	char last_down[256];
	int retry_in[MAX_DOWNS];	/* link_timeout_ms() inside on_down */
	int npdus;
	uint8_t pdus[MAX_PDUS][64];
	size_t pdu_len[MAX_PDUS];
	const uint8_t *send_on_up;
	size_t send_on_up_len;
	int stop_on_down;
};

struct ctx {
	struct link *link;
	struct peer peer;
	struct owner owner;
	size_t want_peer_rx;	/* for peer_has_bytes() */
	uint64_t want_link_rx;	/* for link_has_bytes() */
};

static const uint8_t ping_frame[] = { 0x00, 0x01, 0xfe, 0x00 };
static const uint8_t pong_frame[] = { 0x00, 0x01, 0xfe, 0x01 };

/* ---- callbacks ---------------------------------------------------------- */

static void owner_on_up(struct link *link, void *user)
{
	struct owner *o = user;

	o->ups++;
	if (o->send_on_up)
		assert_int_equal(link_send_rspro(link, o->send_on_up,
						 o->send_on_up_len), 0);
}

static void owner_on_rspro(struct link *link, const uint8_t *pdu, size_t len,
			   void *user)
{
	struct owner *o = user;

	assert_true(o->npdus < MAX_PDUS);
	assert_true(len <= sizeof(o->pdus[0]));
	memcpy(o->pdus[o->npdus], pdu, len);
	o->pdu_len[o->npdus] = len;
	o->npdus++;
}

static void owner_on_down(struct link *link, const char *reason, void *user)
{
	struct owner *o = user;

	assert_false(link_is_up(link));
	if (o->downs < MAX_DOWNS)
		o->retry_in[o->downs] = link_timeout_ms(link, link_now_ms());
	o->downs++;
	snprintf(o->last_down, sizeof(o->last_down), "%s", reason);
	if (o->stop_on_down)
		link_stop(link);
}

/* ---- the test peer ------------------------------------------------------ */

static int set_nonblock(int fd)
{
	return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Binds a loopback socket to a free port; listens unless told not to. */
static void peer_open(struct peer *p, int family, int do_listen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		len = sizeof(*in6);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*in);
	}
	p->lfd = socket(family, SOCK_STREAM, 0);
	assert_true(p->lfd >= 0);
	setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(p->lfd, (struct sockaddr *)&ss, len), 0);
	if (do_listen)
		assert_int_equal(listen(p->lfd, 8), 0);
	assert_int_equal(set_nonblock(p->lfd), 0);
	len = sizeof(ss);
	assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&ss, &len), 0);
	if (family == AF_INET6)
		p->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		p->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void peer_close_conn(struct peer *p)
{
	if (p->cfd >= 0)
		close(p->cfd);
	p->cfd = -1;
}

static void peer_send(struct peer *p, const void *data, size_t len)
{
	assert_true(p->cfd >= 0);
	assert_int_equal(send(p->cfd, data, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void peer_accept(struct peer *p)
{
	int fd = accept(p->lfd, NULL, NULL);
	int one = 1;

	if (fd < 0)
		return;
	peer_close_conn(p);
	p->cfd = fd;
	p->accepts++;
	p->rx_len = 0;
	p->rx_parsed = 0;
	p->pings = 0;
	p->eof = 0;
	assert_int_equal(set_nonblock(fd), 0);
	/* Else split writes wait ~40 ms for the link's delayed ACK. */
	assert_int_equal(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				    sizeof(one)), 0);
	if (p->close_on_accept)
		peer_close_conn(p);
}

/* Counts the link's PINGs among complete frames and answers them. */
static void peer_parse(struct peer *p)
{
	while (p->rx_len - p->rx_parsed >= 3) {
		const uint8_t *f = p->rx + p->rx_parsed;
		size_t len = (size_t)f[0] << 8 | f[1];

		if (p->rx_len - p->rx_parsed < 3 + len)
			break;
		if (len == 1 && f[2] == 0xfe && f[3] == 0x00) {
			p->pings++;
			if (p->answer_ping)
				peer_send(p, pong_frame, sizeof(pong_frame));
		}
		if (p->discard && len >= 5 && f[2] == 0xee && f[3] == 0x07) {
			uint32_t seq = (uint32_t)f[4] << 24 | f[5] << 16 |
				       f[6] << 8 | f[7];

			if (seq != p->next_seq)
				p->seq_errors++;
			p->next_seq = seq + 1;
		}
		p->rx_parsed += 3 + len;
	}
	if (p->discard) {
		memmove(p->rx, p->rx + p->rx_parsed, p->rx_len - p->rx_parsed);
		p->rx_len -= p->rx_parsed;
		p->rx_parsed = 0;
	}
}

static void peer_read(struct peer *p)
{
	ssize_t n = recv(p->cfd, p->rx + p->rx_len, sizeof(p->rx) - p->rx_len,
			 0);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		p->eof = 1;
		peer_close_conn(p);
		return;
	}
	if (n > 0) {
		p->rx_len += (size_t)n;
		peer_parse(p);
	}
}

/* ---- driving both sides ------------------------------------------------- */

typedef int (*cond_fn)(struct ctx *c);

/*
 * Runs link and peer until cond holds (or, without cond, for max_ms).
 * Returns whether cond held; never waits longer than max_ms.
 */
static int pump(struct ctx *c, int max_ms, cond_fn cond)
{
	int64_t deadline = link_now_ms() + max_ms;
	struct pollfd pfd[3];

	for (;;) {
		int64_t now = link_now_ms();
		int wait, t;

		if (cond && cond(c))
			return 1;
		if (now >= deadline)
			return cond ? 0 : 1;

		link_pollfd(c->link, &pfd[0]);
		pfd[1].fd = c->peer.lfd;
		pfd[1].events = POLLIN;
		pfd[2].fd = c->peer.cfd;
		pfd[2].events = POLLIN;
		wait = (int)(deadline - now);
		if (wait > 20)
			wait = 20;
		t = link_timeout_ms(c->link, now);
		if (t >= 0 && t < wait)
			wait = t;
		assert_true(poll(pfd, 3, wait) >= 0);

		if (pfd[1].revents)
			peer_accept(&c->peer);
		if (pfd[2].revents && c->peer.cfd == pfd[2].fd)
			peer_read(&c->peer);
		if (pfd[0].fd >= 0 && pfd[0].revents)
			link_handle_io(c->link, pfd[0].revents);
		link_handle_timers(c->link, link_now_ms());
	}
}

static int is_up(struct ctx *c)
{
	return link_is_up(c->link);
}

static int up_and_greeted(struct ctx *c)
{
	return c->owner.ups == 1 && c->peer.cfd >= 0 && c->peer.rx_len >= 4;
}

static int peer_has_bytes(struct ctx *c)
{
	return c->peer.rx_len >= c->want_peer_rx;
}

static int link_has_bytes(struct ctx *c)
{
	return link_get_stats(c->link)->bytes_in >= c->want_link_rx;
}

static int two_accepts(struct ctx *c)
{
	return c->peer.accepts >= 2;
}

static int one_down(struct ctx *c)
{
	return c->owner.downs >= 1;
}

static int waiting_retry(struct ctx *c)
{
	return link_get_state(c->link) == LINK_WAIT_RETRY;
}

static struct link *make_link(struct ctx *c, const char *host, uint16_t port,
			      const struct link_config *extra)
{
	struct link_config cfg = { 0 };
	char name[64];

	if (extra)
		cfg = *extra;
	snprintf(name, sizeof(name), "test %s:%u", host, port);
	cfg.name = name;
	cfg.host = host;
	cfg.port = port;
	cfg.on_up = owner_on_up;
	cfg.on_rspro = owner_on_rspro;
	cfg.on_down = owner_on_down;
	cfg.user = &c->owner;
	c->link = link_new(&cfg);
	assert_non_null(c->link);
	return c->link;
}

/* Starts the link and waits until the peer holds an up connection. */
static void connect_link(struct ctx *c)
{
	assert_int_equal(link_start(c->link), 0);
	assert_true(pump(c, 2000, up_and_greeted));
	assert_memory_equal(c->peer.rx, ping_frame, 4);
}

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->peer.lfd = -1;
	c->peer.cfd = -1;
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	link_free(c->link);
	peer_close_conn(&c->peer);
	if (c->peer.lfd >= 0)
		close(c->peer.lfd);
	free(c);
	return 0;
}

/* ---- connecting --------------------------------------------------------- */

static void check_connect(struct ctx *c, int family, const char *host,
			  const char *peer_name)
{
	static const uint8_t pdu[] = { 0xa0, 0x01, 0x02 };
	static const uint8_t framed[] = { 0x00, 0x04, 0xee, 0x07,
					  0xa0, 0x01, 0x02 };

	peer_open(&c->peer, family, 1);
	make_link(c, host, c->peer.port, NULL);
	c->owner.send_on_up = pdu;
	c->owner.send_on_up_len = sizeof(pdu);
	assert_int_equal(link_get_state(c->link), LINK_IDLE);
	connect_link(c);

	/* Our PING goes first, then what the owner sent from on_up. */
	c->want_peer_rx = 4 + 7;
	assert_true(pump(c, 1000, peer_has_bytes));
	assert_int_equal(c->peer.rx_len, 4 + 7);
	assert_memory_equal(c->peer.rx, ping_frame, 4);
	assert_memory_equal(c->peer.rx + 4, framed, sizeof(framed));
	assert_int_equal(link_get_state(c->link), LINK_UP);
	if (peer_name) {
		char want[64];

		snprintf(want, sizeof(want), peer_name, c->peer.port);
		assert_string_equal(link_get_peer(c->link), want);
	}
	assert_int_equal(link_get_stats(c->link)->connects, 1);
	assert_int_equal(link_get_stats(c->link)->frames_out, 2);
	assert_int_equal(link_get_stats(c->link)->bytes_out, 11);
}

static void test_connect_ipv4(void **state)
{
	check_connect(*state, AF_INET, "127.0.0.1", "127.0.0.1:%u");
}

static void test_connect_ipv6(void **state)
{
	check_connect(*state, AF_INET6, "::1", "[::1]:%u");
}

static void test_connect_localhost(void **state)
{
	/* Whatever order localhost resolves in, 127.0.0.1 gets there. */
	check_connect(*state, AF_INET, "localhost", "127.0.0.1:%u");
}

static void test_bad_config(void **state)
{
	struct link_config cfg = { .name = "bad", .host = "127.0.0.1" };

	assert_null(link_new(&cfg));
	cfg.port = 9998;
	cfg.host = "";
	assert_null(link_new(&cfg));
}

static void test_unresolvable_host_retries(void **state)
{
	struct ctx *c = *state;
	struct link_config extra = { .backoff_base_ms = 20 };

	make_link(c, "no-such-host.invalid", 9998, &extra);
	assert_int_equal(link_start(c->link), 0);
	assert_int_equal(link_get_state(c->link), LINK_WAIT_RETRY);
	assert_int_equal(link_start(c->link), -EALREADY);
	assert_true(link_timeout_ms(c->link, link_now_ms()) <= 20);
}

/* ---- sending and receiving ---------------------------------------------- */

static void test_send_framing(void **state)
{
	struct ctx *c = *state;
	uint8_t pdu[RSPRO_MAX_PDU + 1];
	size_t before;

	for (size_t i = 0; i < sizeof(pdu); i++)
		pdu[i] = (uint8_t)i;
	peer_open(&c->peer, AF_INET, 1);
	make_link(c, "127.0.0.1", c->peer.port, NULL);
	connect_link(c);
	before = c->peer.rx_len;

	assert_int_equal(link_send_rspro(c->link, pdu, RSPRO_MAX_PDU), 0);
	assert_int_equal(link_send_rspro(c->link, pdu, sizeof(pdu)),
			 -EMSGSIZE);
	c->want_peer_rx = before + 4 + RSPRO_MAX_PDU;
	assert_true(pump(c, 1000, peer_has_bytes));
	assert_int_equal(c->peer.rx_len - before, 4 + RSPRO_MAX_PDU);
	/* 1016-byte PDU: length 1017 = 0x03f9 counts the extension byte. */
	assert_int_equal(c->peer.rx[before], 0x03);
	assert_int_equal(c->peer.rx[before + 1], 0xf9);
	assert_int_equal(c->peer.rx[before + 2], 0xee);
	assert_int_equal(c->peer.rx[before + 3], 0x07);
	assert_memory_equal(c->peer.rx + before + 4, pdu, RSPRO_MAX_PDU);
	assert_true(link_is_up(c->link));
}

/* Two RSPRO PDUs with a PING and an unknown stream between them. */
static const uint8_t rx_burst[] = {
	0x00, 0x04, 0xee, 0x07, 0x11, 0x22, 0x33,
	0x00, 0x01, 0xfe, 0x00,
	0x00, 0x02, 0x99, 0x42, 0x43,
	0x00, 0x05, 0xee, 0x08, 0x01, 0x02, 0x03, 0x04,
	0x00, 0x02, 0xee, 0x07, 0x44,
};

static int two_pdus(struct ctx *c)
{
	return c->owner.npdus >= 2;
}

static void check_burst_delivered(struct ctx *c)
{
	assert_int_equal(c->owner.npdus, 2);
	assert_int_equal(c->owner.pdu_len[0], 3);
	assert_memory_equal(c->owner.pdus[0], rx_burst + 4, 3);
	assert_int_equal(c->owner.pdu_len[1], 1);
	assert_int_equal(c->owner.pdus[1][0], 0x44);
	assert_true(link_is_up(c->link));
}

static void test_rx_one_write(void **state)
{
	struct ctx *c = *state;

	peer_open(&c->peer, AF_INET, 1);
	make_link(c, "127.0.0.1", c->peer.port, NULL);
	connect_link(c);
	peer_send(&c->peer, rx_burst, sizeof(rx_burst));
	assert_true(pump(c, 1000, two_pdus));
	check_burst_delivered(c);
	assert_int_equal(link_get_stats(c->link)->frames_in, 5);
}

static void test_rx_split_everywhere(void **state)
{
	struct ctx *c = *state;
	uint64_t base;

	peer_open(&c->peer, AF_INET, 1);
	make_link(c, "127.0.0.1", c->peer.port, NULL);
	connect_link(c);

	for (size_t k = 1; k < sizeof(rx_burst); k++) {
		c->owner.npdus = 0;
		base = link_get_stats(c->link)->bytes_in;
		peer_send(&c->peer, rx_burst, k);
		/* The link must have read exactly the first part. */
		c->want_link_rx = base + k;
		assert_true(pump(c, 1000, link_has_bytes));
		assert_int_equal(link_get_stats(c->link)->bytes_in, base + k);
		peer_send(&c->peer, rx_burst + k, sizeof(rx_burst) - k);
		assert_true(pump(c, 1000, two_pdus));
		check_burst_delivered(c);
	}
	assert_int_equal(link_get_stats(c->link)->connects, 1);
}

static int got_ping_answers(struct ctx *c)
{
	return c->peer.rx_len >= 12;
}

static void test_peer_ping_answered(void **state)
{
	static const uint8_t id_ack[] = { 0x00, 0x01, 0xfe, 0x06 };
	struct ctx *c = *state;

	peer_open(&c->peer, AF_INET, 1);
	make_link(c, "127.0.0.1", c->peer.port, NULL);
	assert_int_equal(link_start(c->link), 0);
	/* The peer PINGs first thing, before it read anything. */
	assert_true(pump(c, 2000, is_up));
	assert_true(pump(c, 1000, up_and_greeted));
	peer_send(&c->peer, ping_frame, sizeof(ping_frame));
	peer_send(&c->peer, id_ack, sizeof(id_ack));
	assert_true(pump(c, 1000, got_ping_answers));
	assert_memory_equal(c->peer.rx, ping_frame, 4);
	assert_memory_equal(c->peer.rx + 4, pong_frame, 4);
	assert_memory_equal(c->peer.rx + 8, id_ack, 4);
	assert_true(link_is_up(c->link));
}

static void test_rx_oversize_reconnects(void **state)
{
	static const uint8_t bad[] = { 0xff, 0xff, 0xee, 0x07 };
	struct ctx *c = *state;
	struct link_config extra = { .backoff_base_ms = 10 };

	peer_open(&c->peer, AF_INET, 1);
	make_link(c, "127.0.0.1", c->peer.port, &extra);
	connect_link(c);
	peer_send(&c->peer, bad, sizeof(bad));
	assert_true(pump(c, 1000, one_down));
	assert_non_null(strstr(c->owner.last_down, "IPA length"));
	assert_true(pump(c, 2000, two_accepts));
	assert_true(pump(c, 1000, is_up));
	assert_int_equal(c->owner.ups, 2);
	assert_int_equal(c->owner.npdus, 0);
}

static void test_peer_close_reconnects(void **state)
{
	struct ctx *c = *state;
	struct link_config extra = { .backoff_base_ms = 10 };

	peer_open(&c->peer, AF_INET6, 1);
	make_link(c, "::1", c->peer.port, &extra);
	connect_link(c);
	peer_close_conn(&c->peer);
	assert_true(pump(c, 1000, one_down));
	assert_string_equal(c->owner.last_down, "peer closed");
	assert_int_equal(link_send_rspro(c->link, rx_burst, 3), -ENOTCONN);
	assert_true(pump(c, 2000, two_accepts));
	assert_true(pump(c, 1000, is_up));
	assert_int_equal(link_get_stats(c->link)->reconnects, 1);
}

static void test_owner_reconnect(void **state)
{
	struct ctx *c = *state;
	struct link_config extra = { .backoff_base_ms = 10 };

	peer_open(&c->peer, AF_INET, 1);
	make_link(c, "127.0.0.1", c->peer.port, &extra);
	connect_link(c);
	link_reconnect(c->link, "connect request refused");
	assert_int_equal(c->owner.downs, 1);
	assert_string_equal(c->owner.last_down, "connect request refused");
	assert_true(c->owner.retry_in[0] >= 0 && c->owner.retry_in[0] <= 10);
	assert_true(pump(c, 2000, two_accepts));
	assert_true(pump(c, 1000, is_up));
}

/* ---- keepalive ---------------------------------------------------------- */

static void test_pong_timeout_reconnects(void **state)
{
	struct ctx *c = *state;
	struct link_config extra = {
		.ping_interval_ms = 50,
		.pong_timeout_ms = 100,
		.backoff_base_ms = 10,
	};
	int64_t t0;

	peer_open(&c->peer, AF_INET, 1);
	make_link(c, "127.0.0.1", c->peer.port, &extra);
	connect_link(c);
	t0 = link_now_ms();
	assert_true(pump(c, 2000, one_down));
	assert_true(link_now_ms() - t0 >= 90);
	assert_non_null(strstr(c->owner.last_down, "no PONG"));
	assert_int_equal(link_get_stats(c->link)->pong_timeouts, 1);
	assert_true(pump(c, 2000, two_accepts));
	assert_true(pump(c, 1000, is_up));
}

static void test_pong_keeps_link_up(void **state)
{
	struct ctx *c = *state;
	struct link_config extra = {
		.ping_interval_ms = 50,
		.pong_timeout_ms = 100,
	};

	peer_open(&c->peer, AF_INET, 1);
	c->peer.answer_ping = 1;
	make_link(c, "127.0.0.1", c->peer.port, &extra);
	connect_link(c);
	assert_true(pump(c, 400, NULL));
	assert_true(link_is_up(c->link));
	assert_int_equal(c->owner.downs, 0);
	assert_int_equal(c->peer.accepts, 1);
	/* PING at 0, then one every ~50 ms after each PONG. */
	assert_true(c->peer.pings >= 4);
	assert_true(c->peer.pings <= 9);
}

/* ---- backoff ------------------------------------------------------------ */

static void test_backoff_sequence(void **state)
{
	static const uint32_t nominal[] = { 1000, 2000, 4000, 8000, 16000,
					    30000, 30000, 30000 };
	struct link_backoff lo, hi, mid;
	uint32_t r = 12345;

	link_backoff_init(&lo, 1000, 30000, 30000);
	link_backoff_init(&hi, 1000, 30000, 30000);
	link_backoff_init(&mid, 1000, 30000, 30000);
	for (size_t i = 0; i < sizeof(nominal) / sizeof(nominal[0]); i++) {
		uint32_t d;

		/* random 0 takes nothing off, the largest takes 20 %. */
		assert_int_equal(link_backoff_next(&lo, 0), nominal[i]);
		assert_int_equal(link_backoff_next(&hi, UINT32_MAX),
				 nominal[i] - nominal[i] / 5);
		r = r * 1103515245 + 12345;
		d = link_backoff_next(&mid, r);
		assert_true(d <= nominal[i]);
		assert_true(d >= nominal[i] - nominal[i] / 5);
	}

	link_backoff_reset(&lo);
	assert_int_equal(link_backoff_next(&lo, 0), 1000);

	/* A short-lived connection keeps doubling, a stable one resets. */
	link_backoff_init(&lo, 1000, 30000, 30000);
	assert_int_equal(link_backoff_after_up(&lo, 500, 0), 1000);
	assert_int_equal(link_backoff_after_up(&lo, 29999, 0), 2000);
	assert_int_equal(link_backoff_next(&lo, 0), 4000);
	assert_int_equal(link_backoff_after_up(&lo, 30000, 0), 0);
	assert_int_equal(link_backoff_next(&lo, 0), 1000);
	assert_int_equal(link_backoff_next(&lo, 0), 2000);

	/* Odd caps hold too, and a cap below base becomes base. */
	link_backoff_init(&lo, 1000, 2500, 30000);
	assert_int_equal(link_backoff_next(&lo, 0), 1000);
	assert_int_equal(link_backoff_next(&lo, 0), 2000);
	assert_int_equal(link_backoff_next(&lo, 0), 2500);
	assert_int_equal(link_backoff_next(&lo, 0), 2500);
	link_backoff_init(&lo, 1000, 10, 30000);
	assert_int_equal(link_backoff_next(&lo, 0), 1000);
	assert_int_equal(link_backoff_next(&lo, 0), 1000);
	link_backoff_init(&lo, 3000000000u, 4000000000u, 30000);
	assert_int_equal(link_backoff_next(&lo, 0), 3000000000u);
	assert_int_equal(link_backoff_next(&lo, 0), 4000000000u);
}

static void test_refused_backs_off(void **state)
{
	/* Nominal 20, 40, 80 (cap), 80: each retry waits 80-100 % of it. */
	static const int nominal[] = { 20, 40, 80, 80 };
	struct ctx *c = *state;
	struct link_config extra = {
		.backoff_base_ms = 20,
		.backoff_cap_ms = 80,
	};
	enum link_state prev = LINK_IDLE;
	int delays[8];
	int n = 0;
	int64_t deadline;

	peer_open(&c->peer, AF_INET, 0);	/* bound, not listening */
	make_link(c, "127.0.0.1", c->peer.port, &extra);
	assert_int_equal(link_start(c->link), 0);
	deadline = link_now_ms() + 2000;
	while (n < 4 && link_now_ms() < deadline) {
		enum link_state now_state = link_get_state(c->link);

		if (now_state == LINK_WAIT_RETRY && prev != LINK_WAIT_RETRY)
			delays[n++] = link_timeout_ms(c->link, link_now_ms());
		prev = now_state;
		/* Stop right after a failure to read the fresh delay. */
		assert_true(link_run_once(&c->link, 1, 50) >= 0);
	}
	assert_int_equal(n, 4);
	for (int i = 0; i < n; i++) {
		/* A few ms may pass between the failure and the reading. */
		assert_true(delays[i] <= nominal[i]);
		assert_true(delays[i] >= nominal[i] - nominal[i] / 5 - 10);
	}
	assert_int_equal(c->owner.ups, 0);
	assert_int_equal(c->owner.downs, 0);
	assert_true(link_get_stats(c->link)->attempts >= 4);
	assert_int_equal(link_get_stats(c->link)->connects, 0);
}

static int two_downs(struct ctx *c)
{
	return c->owner.downs >= 2;
}

static int three_downs(struct ctx *c)
{
	return c->owner.downs >= 3;
}

static int third_up(struct ctx *c)
{
	return c->peer.accepts == 3 && c->owner.ups == 3 && is_up(c);
}

static int four_accepts(struct ctx *c)
{
	return c->peer.accepts >= 4;
}

static void test_stable_connection_resets_backoff(void **state)
{
	struct ctx *c = *state;
	struct link_config extra = {
		.backoff_base_ms = 40,
		.backoff_cap_ms = 1000,
		.stable_after_ms = 150,
	};

	peer_open(&c->peer, AF_INET, 1);
	make_link(c, "127.0.0.1", c->peer.port, &extra);

	/* Two connections the peer drops at once: the delay doubles. */
	c->peer.close_on_accept = 1;
	assert_int_equal(link_start(c->link), 0);
	assert_true(pump(c, 2000, two_downs));
	c->peer.close_on_accept = 0;
	assert_true(c->owner.retry_in[0] <= 40 && c->owner.retry_in[0] >= 27);
	assert_true(c->owner.retry_in[1] <= 80 && c->owner.retry_in[1] >= 59);

	/* One that stays up longer than stable_after: retry at once. */
	assert_true(pump(c, 2000, third_up));
	assert_true(pump(c, 200, NULL));
	assert_true(link_is_up(c->link));
	peer_close_conn(&c->peer);
	assert_true(pump(c, 1000, three_downs));
	assert_int_equal(c->owner.retry_in[2], 0);
	assert_true(pump(c, 1000, four_accepts));
	assert_true(pump(c, 1000, is_up));
}

/* ---- stopping and sending while down ------------------------------------ */

static int two_attempts(struct ctx *c)
{
	return link_get_stats(c->link)->attempts >= 2;
}

static void test_stop_stops_retries(void **state)
{
	struct ctx *c = *state;
	struct link_config extra = { .backoff_base_ms = 10 };
	struct pollfd pfd;
	uint64_t attempts;

	peer_open(&c->peer, AF_INET, 0);
	make_link(c, "127.0.0.1", c->peer.port, &extra);
	assert_int_equal(link_start(c->link), 0);
	assert_true(pump(c, 2000, two_attempts));
	link_stop(c->link);
	assert_int_equal(link_get_state(c->link), LINK_STOPPED);
	assert_int_equal(link_pollfd(c->link, &pfd), 0);
	assert_int_equal(pfd.fd, -1);
	assert_int_equal(link_timeout_ms(c->link, link_now_ms()), -1);
	attempts = link_get_stats(c->link)->attempts;
	assert_true(pump(c, 100, NULL));
	assert_int_equal(link_get_stats(c->link)->attempts, attempts);
	assert_int_equal(link_get_state(c->link), LINK_STOPPED);
	assert_string_equal(link_state_name(LINK_STOPPED), "stopped");
	assert_string_equal(link_state_name(LINK_WAIT_RETRY), "wait-retry");
}

static void test_stop_from_on_down(void **state)
{
	struct ctx *c = *state;
	struct link_config extra = { .backoff_base_ms = 10 };

	peer_open(&c->peer, AF_INET, 1);
	make_link(c, "127.0.0.1", c->peer.port, &extra);
	c->owner.stop_on_down = 1;
	connect_link(c);
	peer_close_conn(&c->peer);
	assert_true(pump(c, 1000, one_down));
	assert_true(pump(c, 100, NULL));
	assert_int_equal(link_get_state(c->link), LINK_STOPPED);
	assert_int_equal(c->peer.accepts, 1);

	/* A stopped link can be started again. */
	c->owner.stop_on_down = 0;
	assert_int_equal(link_start(c->link), 0);
	assert_true(pump(c, 2000, two_accepts));
	assert_true(pump(c, 1000, is_up));
}

static void test_send_while_down(void **state)
{
	static const uint8_t pdu[] = { 0x01 };
	struct ctx *c = *state;
	struct link_config extra = { .backoff_base_ms = 10 };

	peer_open(&c->peer, AF_INET, 0);
	make_link(c, "127.0.0.1", c->peer.port, &extra);
	assert_int_equal(link_send_rspro(c->link, pdu, 1), -ENOTCONN);
	assert_int_equal(link_start(c->link), 0);
	assert_int_equal(link_send_rspro(c->link, pdu, 1), -ENOTCONN);
	assert_true(pump(c, 1000, waiting_retry));
	assert_int_equal(link_send_rspro(c->link, pdu, 1), -ENOTCONN);
	link_stop(c->link);
	assert_int_equal(link_send_rspro(c->link, pdu, 1), -ENOTCONN);
	assert_int_equal(link_get_stats(c->link)->frames_out, 0);
	assert_int_equal(c->owner.downs, 0);
}

static void test_output_overflow_resets(void **state)
{
	struct ctx *c = *state;
	struct link_config extra = { .backoff_base_ms = 10 };
	static uint8_t pdu[1000];
	int rc = 0;
	int i;

	peer_open(&c->peer, AF_INET, 1);
	make_link(c, "127.0.0.1", c->peer.port, &extra);
	connect_link(c);
	/* The peer reads nothing more: kernel buffers fill, then ours. */
	for (i = 0; i < 200000 && rc == 0; i++)
		rc = link_send_rspro(c->link, pdu, sizeof(pdu));
	assert_int_equal(rc, -ENOBUFS);
	assert_int_equal(c->owner.downs, 1);
	assert_string_equal(c->owner.last_down, "output queue overflow");
	assert_int_equal(link_get_state(c->link), LINK_WAIT_RETRY);
	assert_int_equal(link_send_rspro(c->link, pdu, 1), -ENOTCONN);
}

static int peer_got_all(struct ctx *c)
{
	return c->peer.next_seq == c->want_peer_rx;
}

static void test_output_queue_drains(void **state)
{
	struct ctx *c = *state;
	uint8_t pdu[1000] = { 0 };
	struct pollfd pfd;
	uint32_t sent = 0;
	int queued = 0;

	peer_open(&c->peer, AF_INET, 1);
	make_link(c, "127.0.0.1", c->peer.port, NULL);
	connect_link(c);
	c->peer.discard = 1;
	/*
	 * The peer reads nothing meanwhile: once the kernel buffers are
	 * full the link queues (and polls for POLLOUT); queue 30 more.
	 */
	while (sent < 100000 && queued < 30) {
		pdu[0] = (uint8_t)(sent >> 24);
		pdu[1] = (uint8_t)(sent >> 16);
		pdu[2] = (uint8_t)(sent >> 8);
		pdu[3] = (uint8_t)sent;
		assert_int_equal(link_send_rspro(c->link, pdu, sizeof(pdu)), 0);
		sent++;
		link_pollfd(c->link, &pfd);
		if (pfd.events & POLLOUT)
			queued++;
	}
	assert_int_equal(queued, 30);
	c->want_peer_rx = sent;
	assert_true(pump(c, 3000, peer_got_all));
	assert_int_equal(c->peer.seq_errors, 0);
	assert_int_equal(link_pollfd(c->link, &pfd), 1);
	assert_int_equal(pfd.events, POLLIN);
	assert_true(link_is_up(c->link));
	assert_int_equal(link_get_stats(c->link)->bytes_out,
			 4 + (uint64_t)sent * 1004);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_connect_ipv4),
		T(test_connect_ipv6),
		T(test_connect_localhost),
		T(test_bad_config),
		T(test_unresolvable_host_retries),
		T(test_send_framing),
		T(test_rx_one_write),
		T(test_rx_split_everywhere),
		T(test_peer_ping_answered),
		T(test_rx_oversize_reconnects),
		T(test_peer_close_reconnects),
		T(test_owner_reconnect),
		T(test_pong_timeout_reconnects),
		T(test_pong_keeps_link_up),
		T(test_backoff_sequence),
		T(test_refused_backs_off),
		T(test_stable_connection_resets_backoff),
		T(test_stop_stops_retries),
		T(test_stop_from_on_down),
		T(test_send_while_down),
		T(test_output_overflow_resets),
		T(test_output_queue_drains),
#undef T
	};

	log_init("test_link");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
