/*
 * usb_cardem: one card-emulation interface of a SIMtrace2-family board
 * (SIMtrace2, sysmoQMOD, OWHW, octsimtest, ngff-cardem) over libusb-1.0,
 * driven by the client's poll() loop: device selection, open/claim, IN
 * transfers kept posted, message framing, re-open after an unplug.
 */
#ifndef REMSIM_CLIENT_USB_CARDEM_H
#define REMSIM_CLIENT_USB_CARDEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct loop;
struct usb_cardem;

#define USB_CARDEM_VID		0x1d50
#define USB_CARDEM_MSG_MAX	280	/* one message, header included */
#define USB_CARDEM_HDR_LEN	8

/* Message classes and types (simtrace2-cardem.md section 4). */
enum {
	CEMU_CLASS_GENERIC = 0,
	CEMU_CLASS_CARDEM = 1,
	CEMU_CLASS_MODEM = 2,
};

enum {
	CEMU_TX_DATA = 1,
	CEMU_SET_ATR = 2,
	CEMU_STATUS = 4,
	CEMU_CARDINSERT = 5,
	CEMU_RX_DATA = 6,
	CEMU_PTS = 7,
	CEMU_CONFIG = 8,
	MODEM_RESET = 1,
	MODEM_SIM_SELECT = 2,
};

/* Which device and interface; zero/NULL fields match anything. */
struct usb_cardem_match {
	uint16_t vid;		/* 0: 0x1d50 */
	uint16_t pid;		/* 0: any known cardem board */
	const char *serial;
	const char *path;	/* "1-1.2": bus, then port numbers */
	int interface;		/* bInterfaceNumber; -1: first cardem one */
};

struct usb_cardem_ops {
	/* Interface claimed, IN transfers posted; desc e.g. "1-1 1d50:60e3 if 0". */
	void (*up)(void *user, const char *desc);
	/* The device went away (unplug, error); re-opened automatically. */
	void (*down)(void *user, const char *reason);
	/* One well-framed message (length checked); irq: interrupt endpoint. */
	void (*message)(void *user, bool irq, uint8_t cls, uint8_t type,
			const uint8_t *payload, size_t len);
};

struct usb_cardem *usb_cardem_new(struct loop *loop,
				  const struct usb_cardem_match *m,
				  const struct usb_cardem_ops *ops, void *user);
/* Starts looking for the device (retries every second); 0 or -errno. */
int usb_cardem_start(struct usb_cardem *u);
/* Sends goodbye messages (if open, synchronously), closes, frees. */
void usb_cardem_free(struct usb_cardem *u, const uint8_t *const *bye,
		     size_t nbye);
bool usb_cardem_is_up(const struct usb_cardem *u);
/*
 * While busy (a TPDU at the bankd), a completed bulk-IN transfer is
 * resubmitted later if at least one other stays posted: its submit would
 * sit between the bankd's answer and the modem. Not busy: all go back.
 */
void usb_cardem_set_busy(struct usb_cardem *u, bool busy);
const char *usb_cardem_name(const struct usb_cardem *u);

/*
 * Queues one message (header built here) on bulk OUT; payload + 8 must
 * not exceed USB_CARDEM_MSG_MAX. 0 or -errno (-ENODEV when not up).
 */
int usb_cardem_send(struct usb_cardem *u, uint8_t cls, uint8_t type,
		    const uint8_t *payload, size_t len);

/* --list-devices: one line per matching device; returns how many. */
int usb_cardem_list(FILE *out, const struct usb_cardem_match *m);

/* Counters for logs and tests. */
struct usb_cardem_stats {
	unsigned long in_msgs, out_msgs, dropped, reopens;
};
void usb_cardem_get_stats(const struct usb_cardem *u,
			  struct usb_cardem_stats *st);

#endif
