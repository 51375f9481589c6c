/*
 * usb_find: finding SIMtrace2-family boards and their card-emulation
 * interfaces (simtrace2-cardem.md 2), shared by usb_cardem's open and
 * remsim-client --list-devices, which lives here too.
 */
#include "usb_find.h"

#include <stdio.h>
#include <string.h>

#include "usb_cardem.h"

static const uint16_t usb_known_pids[] = {
	0x60e3,		/* SIMtrace2 */
	0x4004,		/* sysmoQMOD (SAM3) */
	0x4001,		/* OWHW */
	0x616d,		/* octsimtest */
	0x616e,		/* ngff-cardem */
};

static bool usb_pid_known(uint16_t pid)
{
	size_t i;

	for (i = 0; i < sizeof(usb_known_pids) / sizeof(usb_known_pids[0]); i++)
		if (usb_known_pids[i] == pid)
			return true;
	return false;
}

bool usb_id_matches(const struct usb_cardem_match *m,
		    const struct libusb_device_descriptor *d)
{
	if (d->idVendor != (m->vid ? m->vid : USB_CARDEM_VID))
		return false;
	return m->pid ? d->idProduct == m->pid : usb_pid_known(d->idProduct);
}

/* "1-1.2" from bus and port numbers. */
void usb_path(libusb_device *dev, char *out, size_t size)
{
	uint8_t ports[8];
	int n = libusb_get_port_numbers(dev, ports, sizeof(ports)), i;
	size_t off;

	off = (size_t)snprintf(out, size, "%u", libusb_get_bus_number(dev));
	for (i = 0; i < n && off < size; i++)
		off += (size_t)snprintf(out + off, size - off, "%c%u",
					i ? '.' : '-', ports[i]);
}

/* Card-emulation interfaces (class ff/02/00) of all configurations. */
size_t usb_find_ifaces(libusb_device *dev, uint8_t ncfg,
		       struct usb_iface *out, size_t max)
{
	struct libusb_config_descriptor *cfg;
	size_t n = 0;
	uint8_t c;
	int i, e;

	for (c = 0; c < ncfg; c++) {
		if (libusb_get_config_descriptor(dev, c, &cfg) < 0)
			continue;
		for (i = 0; i < cfg->bNumInterfaces && n < max; i++) {
			const struct libusb_interface_descriptor *id;
			struct usb_iface f = { .cfg = cfg->bConfigurationValue };

			if (cfg->interface[i].num_altsetting < 1)
				continue;
			id = &cfg->interface[i].altsetting[0];
			if (id->bInterfaceClass != 0xff ||
			    id->bInterfaceSubClass != 0x02 ||
			    id->bInterfaceProtocol != 0x00)
				continue;
			f.num = id->bInterfaceNumber;
			for (e = 0; e < id->bNumEndpoints; e++) {
				const struct libusb_endpoint_descriptor *ep =
					&id->endpoint[e];
				uint8_t type = ep->bmAttributes & 3;

				if (type == LIBUSB_TRANSFER_TYPE_BULK &&
				    !(ep->bEndpointAddress & 0x80))
					f.ep_out = ep->bEndpointAddress;
				else if (type == LIBUSB_TRANSFER_TYPE_BULK)
					f.ep_in = ep->bEndpointAddress;
				else if (type == LIBUSB_TRANSFER_TYPE_INTERRUPT &&
					 (ep->bEndpointAddress & 0x80))
					f.ep_irq = ep->bEndpointAddress;
			}
			if (f.ep_out && f.ep_in && f.ep_irq)
				out[n++] = f;
		}
		libusb_free_config_descriptor(cfg);
	}
	return n;
}

const char usb_udev_hint[] =
	"install a udev rule such as SUBSYSTEM==\"usb\", "
	"ATTR{idVendor}==\"1d50\", MODE=\"0660\", GROUP=\"plugdev\" "
	"(docs/client.md)";

int usb_read_string(libusb_device_handle *h, uint8_t idx, char *out,
		    size_t size)
{
	int n;

	out[0] = '\0';
	if (!idx)
		return 0;
	n = libusb_get_string_descriptor_ascii(h, idx, (unsigned char *)out,
					       (int)size);
	if (n < 0) {
		out[0] = '\0';
		return n;
	}
	out[n < (int)size ? n : (int)size - 1] = '\0';
	return 0;
}

/* ---- --list-devices ----------------------------------------------------- */

int usb_cardem_list(FILE *out, const struct usb_cardem_match *m)
{
	libusb_context *ctx;
	libusb_device **list = NULL;
	struct usb_iface ifs[8];
	char path[32], serial[80], product[80];
	ssize_t n, i;
	size_t k, nifs;
	int count = 0, rc;

	if (libusb_init(&ctx) < 0) {
		fprintf(stderr, "remsim-client: libusb cannot start\n");
		return -1;
	}
	n = libusb_get_device_list(ctx, &list);
	for (i = 0; i < n; i++) {
		struct libusb_device_descriptor d;
		libusb_device_handle *h;

		if (libusb_get_device_descriptor(list[i], &d) < 0 ||
		    !usb_id_matches(m, &d))
			continue;
		usb_path(list[i], path, sizeof(path));
		if (m->path && strcmp(m->path, path))
			continue;
		serial[0] = product[0] = '\0';
		rc = libusb_open(list[i], &h);
		if (rc == 0) {
			usb_read_string(h, d.iSerialNumber, serial,
					sizeof(serial));
			usb_read_string(h, d.iProduct, product,
					sizeof(product));
			libusb_close(h);
		}
		if (m->serial && strcmp(serial, m->serial))
			continue;
		count++;
		fprintf(out, "%s %04x:%04x serial=%s product=\"%s\"", path,
			d.idVendor, d.idProduct, serial[0] ? serial : "?",
			product);
		nifs = usb_find_ifaces(list[i], d.bNumConfigurations, ifs, 8);
		if (!nifs)
			fprintf(out, " no card-emulation interface (other "
				"firmware)");
		for (k = 0; k < nifs; k++)
			fprintf(out, "%s%u", k ? "," : " cardem-interfaces=",
				ifs[k].num);
		if (rc == LIBUSB_ERROR_ACCESS)
			fprintf(out, " (no permission: %s)", usb_udev_hint);
		else if (rc < 0)
			fprintf(out, " (cannot open: %s)", libusb_strerror(rc));
		fputc('\n', out);
	}
	libusb_free_device_list(list, 1);
	libusb_exit(ctx);
	return count;
}
