/*
 * vsim_slot: one virtual card in one vpcd reader. The card connects to the
 * reader's TCP port (pcscd listens), answers vpcd's control bytes and APDUs
 * (2-byte big-endian length + payload each way) and reconnects with backoff
 * when vpcd goes away. Mute and delay faults hold an APDU's answer back.
 */
#define _GNU_SOURCE	/* POLLRDHUP */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hex.h"
#include "log.h"
#include "vsim_io.h"

#define SLOT_BACKOFF_MIN_MS	100
#define SLOT_BACKOFF_MAX_MS	2000
#define SLOT_NEVER		UINT64_MAX
#define SLOT_LOG_BYTES		48	/* of an APDU in a debug line */

/* vpcd control bytes (messages of length 1) */
enum {
	VPCD_POWER_OFF = 0x00,
	VPCD_POWER_ON = 0x01,
	VPCD_RESET = 0x02,
	VPCD_GET_ATR = 0x04,
};

static const char *const slot_state_names[] = {
	[VSIM_SLOT_REMOVED] = "removed",
	[VSIM_SLOT_WAIT_RETRY] = "wait_retry",
	[VSIM_SLOT_CONNECTING] = "connecting",
	[VSIM_SLOT_INSERTED] = "inserted",
};

const char *vsim_slot_state_name(enum vsim_slot_state state)
{
	return slot_state_names[state];
}

uint64_t vsim_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void slot_set_state(struct vsim_slot *slot, enum vsim_slot_state next,
			   const char *reason)
{
	/* a reader that stays unreachable: log the first failure only */
	enum log_level level = slot->failures > 1 ? LOG_DEBUG : LOG_NOTICE;

	if (slot->state == next)
		return;
	if (level <= log_get_level())
		log_msg(level, slot->who, "%s -> %s (%s)",
			slot_state_names[slot->state], slot_state_names[next],
			reason);
	slot->state = next;
}

void vsim_slot_init(struct vsim_slot *slot, unsigned int index,
		    struct vsim_card *card, const struct sockaddr *addr,
		    socklen_t addr_len, const char *host, uint16_t port)
{
	slot->index = index;
	slot->card = card;
	slot->port = port;
	memcpy(&slot->addr, addr, addr_len);
	slot->addr_len = addr_len;
	snprintf(slot->who, sizeof(slot->who), "card %u @%s:%u", index, host,
		 port);
	slot->fd = -1;
	slot->state = VSIM_SLOT_WAIT_RETRY; /* connects at the first timer */
	slot->retry_at_us = 0;
	slot->backoff_ms = SLOT_BACKOFF_MIN_MS;
}

static void slot_drop(struct vsim_slot *slot, enum vsim_slot_state next,
		      const char *reason)
{
	if (slot->fd >= 0)
		close(slot->fd);
	slot->fd = -1;
	slot->rx_len = 0;
	slot->held = 0;
	slot->tx_len = 0;
	slot->tx_off = 0;
	slot->powered = 0;
	if (next == VSIM_SLOT_WAIT_RETRY) {
		slot->failures++;
		slot->retry_at_us = vsim_now_us() + slot->backoff_ms * 1000ull;
		slot->backoff_ms *= 2;
		if (slot->backoff_ms > SLOT_BACKOFF_MAX_MS)
			slot->backoff_ms = SLOT_BACKOFF_MAX_MS;
	}
	slot_set_state(slot, next, reason);
}

void vsim_slot_close(struct vsim_slot *slot)
{
	if (slot->fd >= 0)
		close(slot->fd);
	slot->fd = -1;
}

static void slot_connected(struct vsim_slot *slot)
{
	slot->failures = 0;
	slot->backoff_ms = SLOT_BACKOFF_MIN_MS;
	vsim_card_reset(slot->card);
	slot_set_state(slot, VSIM_SLOT_INSERTED, "connected to vpcd");
}

static void slot_connect(struct vsim_slot *slot)
{
	char reason[96];
	int one = 1;
	int fd;

	fd = socket(slot->addr.ss_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(reason, sizeof(reason), "socket: %s",
			 strerror(errno));
		slot_drop(slot, VSIM_SLOT_WAIT_RETRY, reason);
		return;
	}
	slot->fd = fd;
	/* replies go out in one write; still, no Nagle wait on any of them */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&slot->addr, slot->addr_len) == 0) {
		slot_connected(slot);
	} else if (errno == EINPROGRESS) {
		slot_set_state(slot, VSIM_SLOT_CONNECTING, "connect under way");
	} else {
		snprintf(reason, sizeof(reason), "connect: %s",
			 strerror(errno));
		slot_drop(slot, VSIM_SLOT_WAIT_RETRY, reason);
	}
}

static void slot_finish_connect(struct vsim_slot *slot)
{
	char reason[96];
	socklen_t len = sizeof(int);
	int err = 0;

	if (getsockopt(slot->fd, SOL_SOCKET, SO_ERROR, &err, &len))
		err = errno;
	if (!err) {
		slot_connected(slot);
		return;
	}
	snprintf(reason, sizeof(reason), "connect: %s", strerror(err));
	slot_drop(slot, VSIM_SLOT_WAIT_RETRY, reason);
}

/* ---- writing ------------------------------------------------------------- */

static void slot_flush(struct vsim_slot *slot)
{
	char reason[96];

	while (slot->tx_off < slot->tx_len) {
		ssize_t n = send(slot->fd, slot->tx + slot->tx_off,
				 slot->tx_len - slot->tx_off, MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (errno == EAGAIN)
				return;	/* POLLOUT brings us back */
			continue;
		}
		if (n < 0) {
			snprintf(reason, sizeof(reason), "send: %s",
				 strerror(errno));
			slot_drop(slot, VSIM_SLOT_WAIT_RETRY, reason);
			return;
		}
		slot->tx_off += (size_t)n;
	}
	slot->tx_len = 0;
	slot->tx_off = 0;
}

/* length and payload in one write: pcscd must not wait for a second one */
static void slot_send(struct vsim_slot *slot, const uint8_t *data, size_t len)
{
	slot->tx[0] = (uint8_t)(len >> 8);
	slot->tx[1] = (uint8_t)len;
	memcpy(slot->tx + 2, data, len);
	slot->tx_len = 2 + len;
	slot->tx_off = 0;
	slot_flush(slot);
}

/* ---- messages from vpcd -------------------------------------------------- */

static void slot_control_byte(struct vsim_slot *slot, uint8_t code)
{
	const struct vsim_profile *p = &slot->card->profile;

	switch (code) {
	case VPCD_POWER_OFF:
		if (slot->powered)
			LOGI(slot->who, "power off");
		slot->powered = 0;
		break;
	case VPCD_POWER_ON:
	case VPCD_RESET:
		LOGI(slot->who, "%s", code == VPCD_RESET ? "reset" :
							   "power on");
		slot->powered = 1;
		vsim_card_reset(slot->card);
		break;
	case VPCD_GET_ATR:
		/* also vpcd's presence poll, every 400 ms: answered always */
		LOGD(slot->who, "get ATR");
		slot_send(slot, p->atr, p->atr_len);
		break;
	default:
		LOGE(slot->who, "unknown vpcd control byte 0x%02x ignored",
		     code);
	}
}

static void slot_answer_apdu(struct vsim_slot *slot, const uint8_t *apdu,
			     size_t len)
{
	char in[2 * SLOT_LOG_BYTES + 1], out[2 * SLOT_LOG_BYTES + 1];
	uint8_t resp[VSIM_RESP_MAX];
	size_t n;

	n = vsim_card_process(slot->card, apdu, len, resp);
	slot->apdus++;
	if (log_get_level() >= LOG_DEBUG) {
		hex_encode(in, apdu, len < SLOT_LOG_BYTES ? len :
							    SLOT_LOG_BYTES);
		hex_encode(out, resp, n < SLOT_LOG_BYTES ? n : SLOT_LOG_BYTES);
		LOGD(slot->who, "apdu %s%s -> %s%s", in,
		     len > SLOT_LOG_BYTES ? "..." : "", out,
		     n > SLOT_LOG_BYTES ? "..." : "");
	}
	slot_send(slot, resp, n);
}

static void slot_consume(struct vsim_slot *slot, size_t n)
{
	memmove(slot->rx, slot->rx + n, slot->rx_len - n);
	slot->rx_len -= n;
}

/* Handles every complete message, unless an answer is held or unsent. */
static void slot_process(struct vsim_slot *slot)
{
	while (slot->fd >= 0 && !slot->held && slot->tx_len == 0 &&
	       slot->rx_len >= 2) {
		size_t len = (size_t)slot->rx[0] << 8 | slot->rx[1];

		if (slot->rx_len < 2 + len)
			return;
		if (len == 1) {
			slot_control_byte(slot, slot->rx[2]);
		} else if (len == 0) {
			LOGE(slot->who, "empty vpcd message ignored");
		} else if (slot->muted || slot->delay_us) {
			slot->held = 1;
			slot->due_us = slot->muted ? SLOT_NEVER :
				       vsim_now_us() + slot->delay_us;
			if (slot->muted)
				LOGI(slot->who, "muted: APDU held unanswered");
			return;
		} else {
			slot_answer_apdu(slot, slot->rx + 2, len);
		}
		if (slot->fd >= 0)
			slot_consume(slot, 2 + len);
	}
}

static void slot_release_held(struct vsim_slot *slot)
{
	size_t len = (size_t)slot->rx[0] << 8 | slot->rx[1];

	slot->held = 0;
	LOGD(slot->who, "held APDU released");
	slot_answer_apdu(slot, slot->rx + 2, len);
	if (slot->fd >= 0) {
		slot_consume(slot, 2 + len);
		slot_process(slot);
	}
}

static void slot_read(struct vsim_slot *slot)
{
	char reason[96];
	int one = 1;
	ssize_t n;

	/* not sticky: without it, every APDU waits for a delayed ACK */
	setsockopt(slot->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	n = recv(slot->fd, slot->rx + slot->rx_len,
		 sizeof(slot->rx) - slot->rx_len, 0);
	if (n == 0) {
		slot_drop(slot, VSIM_SLOT_WAIT_RETRY,
			  "vpcd closed the connection");
		return;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		snprintf(reason, sizeof(reason), "recv: %s", strerror(errno));
		slot_drop(slot, VSIM_SLOT_WAIT_RETRY, reason);
		return;
	}
	slot->rx_len += (size_t)n;
	slot_process(slot);
}

/* ---- the event loop's side ----------------------------------------------- */

short vsim_slot_poll_events(const struct vsim_slot *slot)
{
	if (slot->fd < 0)
		return 0;
	if (slot->state == VSIM_SLOT_CONNECTING)
		return POLLOUT;
	if (slot->tx_len)
		return POLLOUT | POLLRDHUP;
	/* a held APDU: read nothing more, but notice vpcd going away */
	if (slot->held)
		return POLLRDHUP;
	return POLLIN;
}

uint64_t vsim_slot_next_timer(const struct vsim_slot *slot)
{
	if (slot->state == VSIM_SLOT_WAIT_RETRY)
		return slot->retry_at_us;
	if (slot->held)
		return slot->due_us;
	return SLOT_NEVER;
}

void vsim_slot_handle_io(struct vsim_slot *slot, short revents)
{
	if (slot->fd < 0 || !revents)
		return;
	if (slot->state == VSIM_SLOT_CONNECTING) {
		slot_finish_connect(slot);
		return;
	}
	if (revents & (POLLERR | POLLHUP | POLLRDHUP)) {
		/* read what is left; the read sees the end and drops */
		if (!slot->held && !slot->tx_len)
			slot_read(slot);
		else
			slot_drop(slot, VSIM_SLOT_WAIT_RETRY,
				  "vpcd closed the connection");
		return;
	}
	if (revents & POLLOUT) {
		slot_flush(slot);
		if (slot->fd >= 0 && !slot->tx_len)
			slot_process(slot);
	}
	if ((revents & POLLIN) && slot->fd >= 0)
		slot_read(slot);
}

void vsim_slot_handle_timer(struct vsim_slot *slot, uint64_t now)
{
	if (slot->state == VSIM_SLOT_WAIT_RETRY && now >= slot->retry_at_us)
		slot_connect(slot);
	else if (slot->held && now >= slot->due_us)
		slot_release_held(slot);
}

/* ---- control ------------------------------------------------------------- */

int vsim_slot_insert(struct vsim_slot *slot, const char **why)
{
	if (slot->state != VSIM_SLOT_REMOVED) {
		*why = "card is not removed";
		return -1;
	}
	slot->failures = 0;
	slot->backoff_ms = SLOT_BACKOFF_MIN_MS;
	slot_connect(slot);
	return 0;
}

int vsim_slot_remove(struct vsim_slot *slot, const char **why)
{
	if (slot->state == VSIM_SLOT_REMOVED) {
		*why = "card is already removed";
		return -1;
	}
	slot->failures = 0;
	slot_drop(slot, VSIM_SLOT_REMOVED, "removed by control command");
	return 0;
}

void vsim_slot_set_mute(struct vsim_slot *slot, int on)
{
	if (slot->muted != on)
		LOGN(slot->who, "mute %s", on ? "on" : "off");
	slot->muted = on;
	/* the held APDU gets its answer now (vpcd would wait for it forever) */
	if (!on && slot->held && slot->due_us == SLOT_NEVER)
		slot->due_us = vsim_now_us();
}

void vsim_slot_set_delay(struct vsim_slot *slot, uint64_t usec)
{
	if (slot->delay_us != usec)
		LOGN(slot->who, "APDU delay %llu us",
		     (unsigned long long)usec);
	slot->delay_us = usec;
}

int vsim_slot_format_status(const struct vsim_slot *slot, char *buf,
			    size_t size)
{
	const struct vsim_pin *p1 = &slot->card->pins[VSIM_PIN1];
	const struct vsim_pin *p2 = &slot->card->pins[VSIM_PIN2];

	return snprintf(buf, size,
			"{\"index\": %u, \"port\": %u, \"state\": \"%s\", "
			"\"connected\": %s, \"powered\": %s, \"muted\": %s, "
			"\"delay_us\": %llu, \"apdus\": %llu, "
			"\"pin1_retries\": %u, \"puk1_retries\": %u, "
			"\"pin2_retries\": %u, \"puk2_retries\": %u, "
			"\"iccid\": \"%s\", \"imsi\": \"%s\"}",
			slot->index, slot->port, slot_state_names[slot->state],
			slot->state == VSIM_SLOT_INSERTED ? "true" : "false",
			slot->powered ? "true" : "false",
			slot->muted ? "true" : "false",
			(unsigned long long)slot->delay_us,
			(unsigned long long)slot->apdus, p1->retries,
			p1->puk_retries, p2->retries, p2->puk_retries,
			slot->card->profile.iccid, slot->card->profile.imsi);
}
