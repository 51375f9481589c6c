/*
 * client: remsim-client's core state machine. It keeps a session to the
 * server, follows configClientBankReq to a bankd session, takes the ATR,
 * relays TPDUs and slot status between the front end and the bankd, and
 * fires the event script on every change a modem host cares about.
 */
#ifndef REMSIM_CLIENT_CLIENT_H
#define REMSIM_CLIENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rspro.h"

struct event_script;
struct frontend;
struct loop;

enum client_state {
	CLIENT_INIT,		/* not yet told anything by a server */
	CLIENT_UNMAPPED,	/* no bankd (never mapped, or port 0) */
	CLIENT_WAIT_BANKD,	/* bankd known, session not ready */
	CLIENT_WAIT_ATR,	/* bankd session ready, no setAtrReq yet */
	CLIENT_OPERATIONAL,	/* card usable: ATR known, TPDUs flow */
};

enum client_reset {
	CLIENT_RESET_WARM,	/* RST pulse with VCC on */
	CLIENT_RESET_COLD,	/* power cycle */
};

struct client_config {
	const char *server_host;
	uint16_t server_port;
	struct rspro_client_slot slot;
	const char *token;		/* text or NULL */
	const char *name;		/* ComponentIdentity.name */
	uint32_t ping_interval_ms;	/* 0: 30 s as osmo-remsim */
	uint32_t pong_timeout_ms;	/* 0: 10 s */
	uint32_t tpdu_timeout_ms;	/* 0: CLIENT_TPDU_TIMEOUT_MS */
	struct event_script *script;	/* or NULL */
};

#define CLIENT_TPDU_TIMEOUT_MS	20000

struct client *client_new(struct loop *loop, const struct client_config *cfg,
			  struct frontend *fe);
void client_free(struct client *c);
int client_start(struct client *c);

/*
 * Front-end side. client_send_tpdu() sends one T=0 command TPDU (5..260
 * bytes) to the card; the answer comes through the front end's
 * tpdu_response (or tpdu_failed). One TPDU at a time: -EBUSY otherwise,
 * -ENOTCONN unless OPERATIONAL, -EINVAL for a bad length.
 */
int client_send_tpdu(struct client *c, const uint8_t *tpdu, size_t len);
/* Slot status as the modem side sees it (clientSlotStatusInd). */
int client_send_slot_status(struct client *c,
			    const struct rspro_slot_status *st);
/* Resets the real card through the bankd (two status indications). */
int client_reset_card(struct client *c, enum client_reset kind);

enum client_state client_get_state(const struct client *c);
const char *client_state_name(enum client_state state);
/* The last ATR from the bankd; NULL (and *len 0) if none. */
const uint8_t *client_get_atr(const struct client *c, size_t *len);
/*
 * For front ends with their own events (simtrace2: usb-arrived, usb-removed,
 * modem-reset): runs the event script with the usual variables.
 */
void client_fire_event(struct client *c, const char *event);
/* What REMSIM_USB_DEVICE says from now on (copied; NULL or "" for none). */
void client_set_usb_device(struct client *c, const char *desc);
/* "client 23:0" */
const char *client_name(const struct client *c);

#endif
