/*
 * frontend: what sits between remsim-client and the modem (or whatever
 * plays the modem): shell, vpcd, SIMtrace2. The client core calls a
 * front end through these ops; a front end calls the client through the
 * client_*() functions of client.h and adds its fds and timers to the loop.
 */
#ifndef REMSIM_CLIENT_FRONTEND_H
#define REMSIM_CLIENT_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

struct client;
struct frontend;
struct loop;

struct frontend_ops {
	const char *name;
	/* The loop runs from now on; 0 or -errno (start-up fails). */
	int (*start)(struct frontend *fe);
	/* A mapped card with this ATR is usable now. */
	void (*card_insert)(struct frontend *fe, const uint8_t *atr,
			    size_t len);
	/* The bankd sent another ATR while the card is inserted. */
	void (*card_atr)(struct frontend *fe, const uint8_t *atr, size_t len);
	/* The card is gone (unmapped, bankd lost); a TPDU in flight failed. */
	void (*card_remove)(struct frontend *fe, const char *reason);
	/* Answer (data + SW1 SW2, >= 2 bytes) to client_send_tpdu(). */
	void (*tpdu_response)(struct frontend *fe, const uint8_t *data,
			      size_t len);
	/* The client changed state (may be NULL); called after the change. */
	void (*client_state)(struct frontend *fe, int state, const char *reason);
	/* The TPDU in flight will not be answered (card_remove follows). */
	void (*tpdu_failed)(struct frontend *fe, const char *reason);
	void (*free)(struct frontend *fe);
};

/* Embedded first in every front end's own struct. */
struct frontend {
	const struct frontend_ops *ops;
	struct loop *loop;
	struct client *client;	/* set by client_new() */
	char name[64];		/* log context, e.g. "vpcd 127.0.0.1:41200" */
};

struct frontend_options {
	const char *kind;		/* "shell", "vpcd" or "simtrace2" */
	const char *vpcd_host;
	uint16_t vpcd_port;
	int auto_get_response;
	/* simtrace2: device selection (0/NULL: any), modem reset pulse */
	uint16_t usb_vid, usb_pid;
	const char *usb_serial;
	const char *usb_path;
	int usb_interface;		/* -1: first card-emulation one */
	uint16_t modem_reset_ms;	/* 0: no MODEM_RESET pulses */
};

/* Creates the front end named by o->kind; NULL with a reason in err. */
struct frontend *frontend_new(struct loop *loop,
			      const struct frontend_options *o, char *err,
			      size_t errlen);
void frontend_free(struct frontend *fe);

struct frontend *frontend_shell_new(struct loop *loop,
				    const struct frontend_options *o);
struct frontend *frontend_vpcd_new(struct loop *loop,
				   const struct frontend_options *o);
struct frontend *frontend_simtrace2_new(struct loop *loop,
					const struct frontend_options *o);

#endif
