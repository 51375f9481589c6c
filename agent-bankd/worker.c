/*
 * worker: the per-slot thread and its state machine (design.md "Bank
 * agent"): INIT -> ACCEPTING -> CONNECTED_WAIT_ID -> CONNECTED_CLIENT ->
 * CONNECTED_CLIENT_MAPPED -> CONNECTED_CLIENT_MAPPED_CARD; any error closes
 * socket and reader and returns to INIT. Each worker blocks in poll() on its
 * socket and its own eventfd, so the main thread can wake it without signals.
 */
#define _GNU_SOURCE		/* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hex.h"
#include "ipa.h"
#include "link.h"
#include "log.h"
#include "worker_priv.h"

#define WORKER_STACK_SIZE	(256 * 1024)
#define WORKER_IDENTIFY_MS	10000	/* connectClientReq after accept */
#define WORKER_PROBE_MS		3000	/* PONG after a duplicate's probe */
#define WORKER_SEND_TIMEOUT_S	10


const char *worker_state_name(long state)
{
	const char *n = rspro_worker_state_name(state);

	return n ? n : "?";
}

void worker_set_who(struct worker *w)
{
	if (w->mapped)
		snprintf(w->who, sizeof(w->who),
			 "worker %u bank %u slot %u <-> client %u:%u", w->idx,
			 w->bank.bank_id, w->bank.slot_nr, w->client.client_id,
			 w->client.slot_nr);
	else if (w->identified)
		snprintf(w->who, sizeof(w->who), "worker %u client %u:%u @%s",
			 w->idx, w->client.client_id, w->client.slot_nr,
			 w->peer);
	else if (w->fd >= 0)
		snprintf(w->who, sizeof(w->who), "worker %u @%s", w->idx,
			 w->peer);
	else
		snprintf(w->who, sizeof(w->who), "worker %u", w->idx);
}

/* The slot's status as the server should see it. */
void worker_post_report(struct worker *w)
{
	struct slot_status s;

	if (!w->mapped)
		return;
	slot_status_idle(&s, w->bank.slot_nr);
	s.worker_state = w->state;
	s.has_client = true;
	s.client = w->client;
	s.card_present = w->card_present;
	if (w->card.atr_len) {
		memcpy(s.atr, w->card.atr, w->card.atr_len);
		s.atr_len = w->card.atr_len;
	}
	if (w->have_phys)
		s.phys = w->phys;
	slot_report_post(&w->bd->report, &s);
}

void worker_set_state(struct worker *w, long state, const char *fmt, ...)
{
	char reason[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	LOGN(w->who, "%s -> %s (%s)", worker_state_name(w->state),
	     worker_state_name(state), reason);
	w->state = state;
	worker_post_report(w);
}

/* Closes client and card, releases the slot: back to INIT. */
void worker_reset(struct worker *w, const char *reason)
{
	struct slot_status idle;
	bool was_mapped = w->mapped;
	uint16_t slot_nr = w->bank.slot_nr;

	pcsc_card_close(&w->card);
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	if (w->identified)
		slotmap_release(&w->bd->map, w->idx);
	worker_set_state(w, WorkerState_init, "%s", reason);
	if (was_mapped) {
		/*
		 * nobody serves the slot now: its client may connect again.
		 * A card known to be gone stays reported gone.
		 */
		slot_status_idle(&idle, slot_nr);
		if (w->card_present == 0)
			idle.card_present = 0;
		slot_report_post(&w->bd->report, &idle);
	}
	w->identified = false;
	w->answered = false;
	w->mapped = false;
	w->have_phys = false;
	w->card_present = -1;
	w->send_failed = false;
	w->deadline = -1;
	w->probe_deadline = -1;
	atomic_store(&w->probe_req, false);
	worker_set_who(w);
}

/* ---- sending ------------------------------------------------------------ */

int worker_write(struct worker *w, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = send(w->fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			LOGE(w->who, "send: %s",
			     n < 0 ? strerror(errno) : "nothing sent");
			w->send_failed = true;
			return -EIO;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Encodes, frames and sends pdu, then frees it. */
int worker_send(struct worker *w, RsproPDU_t *pdu)
{
	uint8_t buf[IPA_MAX_TX_FRAME];
	char err[160];
	ssize_t n;

	if (!pdu) {
		LOGE(w->who, "out of memory building a PDU");
		w->send_failed = true;
		return -ENOMEM;
	}
	n = rspro_encode_ipa(pdu, buf, sizeof(buf), err, sizeof(err));
	if (n < 0) {
		LOGE(w->who, "cannot encode %s: %s", rspro_pdu_name(pdu), err);
		rspro_pdu_free(pdu);
		w->send_failed = true;
		return -EINVAL;
	}
	LOGD(w->who, "tx %s", rspro_pdu_name(pdu));
	rspro_pdu_free(pdu);
	return worker_write(w, buf, (size_t)n);
}

void worker_send_connect_res(struct worker *w, long result)
{
	uint8_t pk[TOKEN_PK_LEN], key_id[TOKEN_KEY_ID_LEN];
	struct rspro_caps caps;
	RsproPDU_t *pdu;

	/* capabilities only for a remsim client (one that sent a token) */
	client_auth_caps(&w->bd->auth, &w->auth, &caps, pk, key_id);
	pdu = rspro_gen_connect_client_res(&w->bd->identity, result,
					   w->auth.presented ? &caps : NULL);
	if (pdu)
		pdu->tag = RSPRO_TAG_CONNECT_CLIENT_RES;
	worker_send(w, pdu);
}

/* Answers a refused request with errorInd and keeps the link. */
void worker_send_error(struct worker *w, ErrorSeverity_t sev,
		       ErrorCode_t code, const char *text)
{
	worker_send(w, rspro_gen_error_ind(ComponentType_remsimBankd, sev,
					   code, w->mapped ? &w->bank : NULL,
					   w->identified ? &w->client : NULL,
					   text));
}

/* Refuses a connect request: answer, log once, close. */
void worker_refuse(struct worker *w, long result, const char *why)
{
	const char *name = rspro_result_name(result);

	LOGE(w->who, "connectClientReq refused (%s): %s", name ? name : "?",
	     why);
	worker_send_connect_res(w, result);
	worker_reset(w, "connect refused");
}

/* ---- I/O loop ----------------------------------------------------------- */

static void worker_drain_wake(struct worker *w)
{
	uint64_t v;
	ssize_t n = read(w->wake_fd, &v, sizeof(v));

	(void)n;
}

static void worker_wake(struct worker *w)
{
	uint64_t one = 1;
	ssize_t n = write(w->wake_fd, &one, sizeof(one));

	(void)n;	/* EAGAIN: already readable */
}

static void worker_setup_socket(int fd)
{
	struct timeval tv = { .tv_sec = WORKER_SEND_TIMEOUT_S };
	int one = 1, idle = 30, intvl = 10, cnt = 3;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	/* osmo-remsim never notices a silently dead client; we do */
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static void worker_format_peer(const struct sockaddr_storage *ss, char *out,
			       size_t outlen)
{
	char addr[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;

		inet_ntop(AF_INET, &a->sin_addr, addr, sizeof(addr));
		snprintf(out, outlen, "%s:%u", addr, ntohs(a->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;

		inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof(addr));
		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
			snprintf(out, outlen, "%s:%u", addr + 7,
				 ntohs(a->sin6_port));
		else
			snprintf(out, outlen, "[%s]:%u", addr,
				 ntohs(a->sin6_port));
	} else {
		snprintf(out, outlen, "?");
	}
}

static void worker_accept(struct worker *w)
{
	struct pollfd pfd[2] = {
		{ .fd = w->bd->listen_fd, .events = POLLIN },
		{ .fd = w->wake_fd, .events = POLLIN },
	};
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd;

	if (poll(pfd, 2, -1) < 0)
		return;		/* EINTR: look at stopping again */
	if (pfd[1].revents)
		worker_drain_wake(w);
	if (!pfd[0].revents || atomic_load(&w->bd->stopping))
		return;
	/* the listen socket is non-blocking: another worker may win */
	fd = accept4(w->bd->listen_fd, (struct sockaddr *)&ss, &sl,
		     SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			LOGE(w->who, "accept: %s", strerror(errno));
		return;
	}
	worker_setup_socket(fd);
	w->fd = fd;
	worker_format_peer(&ss, w->peer, sizeof(w->peer));
	ipa_reader_init(&w->rd);
	w->deadline = link_now_ms() + WORKER_IDENTIFY_MS;
	worker_set_who(w);
	worker_set_state(w, WorkerState_connectedWaitId, "connection from %s",
			 w->peer);
}

/* Handles every complete frame; stops once the worker was reset. */
static void worker_handle_frames(struct worker *w)
{
	struct ipa_frame f;
	uint8_t reply[4];
	size_t n;
	int rc;

	while (w->fd >= 0 && (rc = ipa_reader_next(&w->rd, &f)) == 1) {
		if (f.stream == IPA_STREAM_CCM) {
			if (f.len && f.data[0] == IPA_CCM_PONG &&
			    w->probe_deadline >= 0) {
				LOGN(w->who, "answered the probe: keeps its "
				     "client slot");
				w->probe_deadline = -1;
			}
			n = ipa_ccm_reply(&f, reply);
			if (n)
				worker_write(w, reply, n);
		} else if (f.stream == IPA_STREAM_OSMO &&
			   f.ext == IPA_OSMO_EXT_RSPRO) {
			worker_handle_pdu(w, f.data, f.len);
		} else {
			LOGI(w->who, "ignoring IPA stream 0x%02x", f.stream);
		}
		if (w->fd >= 0 && w->send_failed)
			worker_reset(w, "cannot send to the client");
	}
	if (w->fd >= 0 && rc < 0) {
		LOGE(w->who, "bad IPA frame: %s", ipa_strerror(rc));
		worker_reset(w, "bad IPA frame");
	}
}

static void worker_read(struct worker *w)
{
	size_t room;
	uint8_t *space = ipa_reader_space(&w->rd, &room);
	ssize_t n = recv(w->fd, space, room, 0);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n < 0) {
		char why[120];

		snprintf(why, sizeof(why), "client connection lost: %s",
			 strerror(errno));
		worker_reset(w, why);
		return;
	}
	if (!n) {
		worker_reset(w, "client closed the connection");
		return;
	}
	ipa_reader_commit(&w->rd, (size_t)n);
	worker_handle_frames(w);
}

static void worker_handle_timers(struct worker *w, int64_t now)
{
	if (w->probe_deadline >= 0 && now >= w->probe_deadline) {
		worker_reset(w, "no PONG to the probe: a newer connection "
			     "wants the client slot");
		return;
	}
	if (w->deadline < 0 || now < w->deadline)
		return;
	if (!w->identified) {
		LOGE(w->who, "no connectClientReq within %d ms",
		     WORKER_IDENTIFY_MS);
		worker_reset(w, "identification timeout");
	} else if (!w->answered) {
		char why[100];

		snprintf(why, sizeof(why), "no mapping for client %u:%u",
			 w->client.client_id, w->client.slot_nr);
		worker_refuse(w, ResultCode_cardNotPresent, why);
	}
}

static int worker_poll_timeout(const struct worker *w, int64_t now)
{
	int64_t t = -1;

	if (w->deadline >= 0)
		t = w->deadline;
	if (w->probe_deadline >= 0 && (t < 0 || w->probe_deadline < t))
		t = w->probe_deadline;
	if (t < 0)
		return -1;
	return t <= now ? 0 : (int)(t - now);
}

static void worker_serve(struct worker *w)
{
	struct pollfd pfd[2] = {
		{ .fd = w->fd, .events = POLLIN },
		{ .fd = w->wake_fd, .events = POLLIN },
	};
	int rc = poll(pfd, 2, worker_poll_timeout(w, link_now_ms()));

	if (rc < 0)
		return;
	if (pfd[1].revents) {
		worker_drain_wake(w);
		if (atomic_load(&w->bd->stopping))
			return;
		if (atomic_exchange(&w->probe_req, false) &&
		    w->probe_deadline < 0) {
			uint8_t ping[4];

			LOGN(w->who, "another connection claims client %u:%u: "
			     "probing this one with a PING", w->client.client_id,
			     w->client.slot_nr);
			w->probe_deadline = link_now_ms() + WORKER_PROBE_MS;
			worker_write(w, ping, ipa_ccm_frame(ping,
							    IPA_CCM_PING));
		}
		worker_check_mapping(w);
	}
	if (w->fd >= 0 && w->send_failed)
		worker_reset(w, "cannot send to the client");
	if (w->fd >= 0 && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
		worker_read(w);
	if (w->fd >= 0)
		worker_handle_timers(w, link_now_ms());
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load(&w->bd->stopping)) {
		if (w->state == WorkerState_init)
			worker_set_state(w, WorkerState_accepting,
					 "waiting for a client");
		else if (w->state == WorkerState_accepting)
			worker_accept(w);
		else
			worker_serve(w);
	}
	if (w->fd >= 0)
		worker_reset(w, "bankd stopping");
	return NULL;
}

/* ---- life cycle --------------------------------------------------------- */

static void worker_free(struct worker *w)
{
	if (!w)
		return;
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	free(w);
}

static struct worker *worker_new(struct bankd *bd, unsigned idx)
{
	struct worker *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->bd = bd;
	w->idx = idx;
	w->fd = -1;
	w->state = WorkerState_init;
	w->card_present = -1;
	w->deadline = -1;
	w->probe_deadline = -1;
	pcsc_card_init(&w->card);
	worker_set_who(w);
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->wake_fd < 0) {
		free(w);
		return NULL;
	}
	return w;
}

int workers_start(struct bankd *bd)
{
	pthread_attr_t attr;
	unsigned started = 0;
	int rc = 0;

	bd->workers = calloc(bd->num_workers, sizeof(*bd->workers));
	if (!bd->workers)
		return -ENOMEM;
	for (unsigned i = 0; i < bd->num_workers; i++) {
		bd->workers[i] = worker_new(bd, i);
		if (!bd->workers[i]) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	pthread_attr_init(&attr);
	/* blocking workers need little stack; 1024 slots stay cheap */
	pthread_attr_setstacksize(&attr, WORKER_STACK_SIZE);
	for (; started < bd->num_workers; started++) {
		rc = -pthread_create(&bd->workers[started]->thread, &attr,
				     worker_main, bd->workers[started]);
		if (rc)
			break;
	}
	pthread_attr_destroy(&attr);
	if (!rc)
		return 0;
	LOGE("bankd", "cannot start worker %u: %s", started, strerror(-rc));
fail:
	atomic_store(&bd->stopping, true);
	for (unsigned i = 0; i < started; i++) {
		worker_wake(bd->workers[i]);
		pthread_join(bd->workers[i]->thread, NULL);
	}
	for (unsigned i = 0; i < bd->num_workers; i++)
		worker_free(bd->workers[i]);
	free(bd->workers);
	bd->workers = NULL;
	return rc;
}

void workers_stop(struct bankd *bd)
{
	if (!bd->workers)
		return;
	atomic_store(&bd->stopping, true);
	for (unsigned i = 0; i < bd->num_workers; i++)
		worker_wake(bd->workers[i]);
	for (unsigned i = 0; i < bd->num_workers; i++) {
		pthread_join(bd->workers[i]->thread, NULL);
		worker_free(bd->workers[i]);
	}
	free(bd->workers);
	bd->workers = NULL;
}

void workers_wake_client(struct bankd *bd, const struct rspro_client_slot *c)
{
	int owner = slotmap_owner(&bd->map, c);

	if (owner >= 0 && (unsigned)owner < bd->num_workers)
		worker_wake(bd->workers[owner]);
}

void workers_wake_all(struct bankd *bd)
{
	for (unsigned i = 0; i < bd->num_workers; i++)
		worker_wake(bd->workers[i]);
}
