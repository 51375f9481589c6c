/*
 * vsim_io: the event-driven side of remsim-vsim. A slot is one card inserted
 * into one vpcd reader over TCP (vsim_slot.c); the control socket takes line
 * commands from tests (vsim_control.c). Both run in main()'s ppoll() loop.
 */
#ifndef REMSIM_VSIM_IO_H
#define REMSIM_VSIM_IO_H

#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>

#include "vsim.h"

#define VSIM_MSG_MAX	0xffff	/* vpcd's 2-byte length */

enum vsim_slot_state {
	VSIM_SLOT_REMOVED,	/* pulled through the control socket */
	VSIM_SLOT_WAIT_RETRY,	/* vpcd unreachable or gone: retry later */
	VSIM_SLOT_CONNECTING,	/* non-blocking connect() under way */
	VSIM_SLOT_INSERTED,	/* connected: the reader shows the card */
};

struct vsim_slot {
	unsigned int index;	/* card index in the profile file */
	char who[64];		/* "card 3 @127.0.0.1:41800" */
	uint16_t port;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	struct vsim_card *card;

	enum vsim_slot_state state;
	int fd;
	int powered;
	uint64_t retry_at_us;
	unsigned int backoff_ms;
	unsigned int failures;	/* connects failed in a row */

	/* fault injection */
	int muted;		/* APDUs are held, unanswered, until unmuted */
	uint64_t delay_us;	/* every APDU is answered this much later */

	/* one message from vpcd; held (not yet answered) until due_us */
	uint8_t rx[2 + VSIM_MSG_MAX];
	size_t rx_len;
	int held;
	uint64_t due_us;
	/* the reply being written */
	uint8_t tx[2 + VSIM_RESP_MAX];
	size_t tx_len, tx_off;

	uint64_t apdus;		/* answered */
};

uint64_t vsim_now_us(void);
void vsim_slot_init(struct vsim_slot *slot, unsigned int index,
		    struct vsim_card *card, const struct sockaddr *addr,
		    socklen_t addr_len, const char *host, uint16_t port);
void vsim_slot_close(struct vsim_slot *slot);
const char *vsim_slot_state_name(enum vsim_slot_state state);

/* the events to poll for, 0 if fd is -1; and when the slot's timer fires */
short vsim_slot_poll_events(const struct vsim_slot *slot);
uint64_t vsim_slot_next_timer(const struct vsim_slot *slot);
void vsim_slot_handle_io(struct vsim_slot *slot, short revents);
void vsim_slot_handle_timer(struct vsim_slot *slot, uint64_t now);

/* control: 0, or -1 with a reason in why */
int vsim_slot_insert(struct vsim_slot *slot, const char **why);
int vsim_slot_remove(struct vsim_slot *slot, const char **why);
void vsim_slot_set_mute(struct vsim_slot *slot, int on);
void vsim_slot_set_delay(struct vsim_slot *slot, uint64_t usec);
/* one JSON object (no newline) into buf */
int vsim_slot_format_status(const struct vsim_slot *slot, char *buf,
			    size_t size);

#define VSIM_CONTROL_CLIENTS	8
#define VSIM_CONTROL_LINE	256

struct vsim_control_client {
	int fd;
	char line[VSIM_CONTROL_LINE];
	size_t len;
	int discarding;		/* inside a line that was too long */
};

struct vsim_control {
	int listen_fd;
	char path[108];
	struct vsim_control_client clients[VSIM_CONTROL_CLIENTS];
	struct vsim_slot *slots;
	size_t n_slots;
};

int vsim_control_open(struct vsim_control *ctl, const char *path,
		      struct vsim_slot *slots, size_t n_slots);
void vsim_control_close(struct vsim_control *ctl);
/* fills up to 1 + VSIM_CONTROL_CLIENTS pollfds, returns how many */
size_t vsim_control_fill_pollfds(const struct vsim_control *ctl,
				 struct pollfd *pfds);
void vsim_control_handle(struct vsim_control *ctl, const struct pollfd *pfds,
			 size_t n);

#endif
