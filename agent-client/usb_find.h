/*
 * usb_find: the device-discovery helpers of usb_cardem (internal): ids,
 * USB port paths, card-emulation interfaces with their endpoints, string
 * descriptors, and the udev rule hint for permission errors.
 */
#ifndef REMSIM_CLIENT_USB_FIND_H
#define REMSIM_CLIENT_USB_FIND_H

#include <libusb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct usb_cardem_match;

/* One card-emulation interface (class ff/02/00) and its endpoints. */
struct usb_iface {
	uint8_t cfg, num, ep_out, ep_in, ep_irq;
};

extern const char usb_udev_hint[];

/* Vendor/product match (defaults: 1d50 and the known cardem boards). */
bool usb_id_matches(const struct usb_cardem_match *m,
		    const struct libusb_device_descriptor *d);
/* "1-1.2": bus, then port numbers. */
void usb_path(libusb_device *dev, char *out, size_t size);
/* The cardem interfaces of all ncfg configurations; how many. */
size_t usb_find_ifaces(libusb_device *dev, uint8_t ncfg,
		       struct usb_iface *out, size_t max);
/* String descriptor idx as ASCII ("" for index 0); 0 or a libusb error. */
int usb_read_string(libusb_device_handle *h, uint8_t idx, char *out,
		    size_t size);

#endif
