/*
 * cardem_echo: the least a cardem host can do, for scripts/bench-usb's
 * floor. It answers every TPDU header from the fake modem at once with
 * P3 zero bytes and 90 00 (PB + data, then SW: the messages remsim-client
 * sends), with no bankd behind it. Runs inside tests/usb/fake_cardem.
 */
#include <libusb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static libusb_device_handle *h;

static void out_done(struct libusb_transfer *t)
{
}

static void send_tx(uint32_t flags, const uint8_t *d, size_t n)
{
	struct libusb_transfer *t = libusb_alloc_transfer(0);
	uint8_t *m = malloc(14 + n);
	size_t len = 14 + n;

	if (!t || !m)
		exit(1);
	memcpy(m, (uint8_t[]){ 1, 1, 0, 0, 0, 0, (uint8_t)len,
			       (uint8_t)(len >> 8), (uint8_t)flags, 0, 0, 0,
			       (uint8_t)n, (uint8_t)(n >> 8) }, 14);
	memcpy(m + 14, d, n);
	libusb_fill_bulk_transfer(t, h, 0x04, m, (int)len, out_done, NULL, 0);
	t->flags = LIBUSB_TRANSFER_FREE_BUFFER | LIBUSB_TRANSFER_FREE_TRANSFER;
	if (len % 64 == 0)
		t->flags |= LIBUSB_TRANSFER_ADD_ZERO_PACKET;
	if (libusb_submit_transfer(t) < 0)
		exit(1);
}

static void in_done(struct libusb_transfer *t)
{
	uint8_t *b = t->buffer, resp[1 + 256] = { 0 };

	if (t->status != LIBUSB_TRANSFER_COMPLETED)
		exit(1);
	if (t->actual_length == 19 && b[0] == 1 && b[1] == 6 && (b[8] & 1)) {
		resp[0] = b[15];			/* ACK = INS */
		if (b[18])
			send_tx(0x04, resp, 1 + (size_t)b[18]);
		send_tx(0x06, (const uint8_t *)"\x90\x00", 2);
	}
	if (libusb_submit_transfer(t) < 0)
		exit(1);
}

int main(void)
{
	struct libusb_transfer *t;

	if (libusb_init(NULL) < 0)
		return 1;
	h = libusb_open_device_with_vid_pid(NULL, 0x1d50, 0x60e3);
	if (!h || libusb_claim_interface(h, 0) < 0) {
		fprintf(stderr, "cardem_echo: no device\n");
		return 1;
	}
	t = libusb_alloc_transfer(0);
	libusb_fill_bulk_transfer(t, h, 0x85, malloc(512), 512, in_done, NULL, 0);
	t->flags = LIBUSB_TRANSFER_FREE_BUFFER;
	if (libusb_submit_transfer(t) < 0)
		return 1;
	for (;;)
		libusb_handle_events(NULL);
}
