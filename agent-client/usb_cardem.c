/*
 * usb_cardem: libusb-1.0 asynchronous transfers in remsim-client's poll()
 * loop. libusb's pollfds become loop fd sources (set_pollfd_notifiers), its
 * timeouts a loop timer; events are handled with a zero timeout when an fd
 * is ready. Four bulk-IN and one interrupt-IN transfer stay posted; a lost
 * device is closed once its transfers are back and searched for again on
 * libusb's hotplug arrival callback and, as a fallback, every second.
 */
#define _GNU_SOURCE
#include "usb_cardem.h"

#include <errno.h>
#include <libusb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "hex.h"
#include "log.h"
#include "loop.h"
#include "usb_find.h"

#define USB_BULK_IN_NUM		4
#define USB_BULK_IN_LEN		512	/* > one message: oversize is seen */
#define USB_IRQ_IN_LEN		64
#define USB_OUT_TIMEOUT_MS	2000
#define USB_RETRY_MS		1000
#define USB_CLOSE_POLL_MS	10
#define USB_CLOSE_TRIES		200
#define USB_MAX_FDS		16
#define USB_MAX_OUT		32	/* OUT transfers in flight */

enum usb_state {
	USB_ABSENT,	/* searching, retry timer armed */
	USB_UP,		/* claimed, IN transfers posted */
	USB_CLOSING,	/* lost: waiting for our transfers to come back */
};

static const char *const usb_state_names[] = {
	[USB_ABSENT] = "absent",
	[USB_UP] = "up",
	[USB_CLOSING] = "closing",
};

struct usb_fd {
	int fd;
	struct loop_source *src;
};

struct usb_cardem {
	struct loop *loop;
	struct usb_cardem_match m;
	const struct usb_cardem_ops *ops;
	void *user;
	enum usb_state state;
	char name[80];		/* log context */
	char desc[64];		/* "1-1 1d50:60e3 if 0" */
	char last_err[384];	/* to log a repeated failure quietly */

	libusb_context *ctx;
	libusb_device_handle *h;
	int iface;
	uint8_t ep_out, ep_in, ep_irq;
	struct libusb_transfer *in[USB_BULK_IN_NUM + 1];	/* last: irq */
	bool in_busy[USB_BULK_IN_NUM + 1];
	bool in_parked[USB_BULK_IN_NUM];	/* resubmit when not busy */
	bool busy;			/* usb_cardem_set_busy() */
	struct libusb_transfer *out[USB_MAX_OUT];
	unsigned int close_tries;

	struct usb_fd fds[USB_MAX_FDS];
	struct loop_timer retry, timeout, close;
	struct usb_cardem_stats st;
};

static void usb_try_open(struct usb_cardem *u);

static void usb_set_state(struct usb_cardem *u, enum usb_state new_state,
			  const char *reason)
{
	if (u->state == new_state)
		return;
	LOGN(u->name, "%s -> %s (%s)", usb_state_names[u->state],
	     usb_state_names[new_state], reason);
	u->state = new_state;
}

/* ---- libusb in the loop ------------------------------------------------- */

static void usb_arm_timeout(struct usb_cardem *u)
{
	struct timeval tv;

	if (libusb_get_next_timeout(u->ctx, &tv) == 1)
		loop_timer_start(u->loop, &u->timeout,
				 (uint32_t)(tv.tv_sec * 1000 +
					    (tv.tv_usec + 999) / 1000));
	else
		loop_timer_stop(u->loop, &u->timeout);
}

static void usb_handle_events(struct usb_cardem *u)
{
	struct timeval zero = { 0, 0 };

	libusb_handle_events_timeout_completed(u->ctx, &zero, NULL);
	usb_arm_timeout(u);
}

static void usb_on_fd(void *arg, int fd, short revents)
{
	usb_handle_events(arg);
}

static void usb_on_timeout(void *arg)
{
	usb_handle_events(arg);
}

static void usb_fd_added(int fd, short events, void *arg)
{
	struct usb_cardem *u = arg;
	size_t i;

	for (i = 0; i < USB_MAX_FDS; i++) {
		if (u->fds[i].src)
			continue;
		u->fds[i].fd = fd;
		u->fds[i].src = loop_add_fd(u->loop, fd, events, usb_on_fd, u);
		if (!u->fds[i].src)
			LOGE(u->name, "out of memory: libusb fd %d not polled",
			     fd);
		return;
	}
	LOGE(u->name, "more than %d libusb fds: fd %d not polled",
	     USB_MAX_FDS, fd);
}

static void usb_fd_removed(int fd, void *arg)
{
	struct usb_cardem *u = arg;
	size_t i;

	for (i = 0; i < USB_MAX_FDS; i++) {
		if (u->fds[i].src && u->fds[i].fd == fd) {
			loop_remove_source(u->loop, u->fds[i].src);
			u->fds[i].src = NULL;
		}
	}
}

/* ---- closing ------------------------------------------------------------ */

static unsigned int usb_inflight(const struct usb_cardem *u)
{
	unsigned int n = 0;
	size_t i;

	for (i = 0; i <= USB_BULK_IN_NUM; i++)
		n += u->in_busy[i];
	for (i = 0; i < USB_MAX_OUT; i++)
		n += u->out[i] != NULL;
	return n;
}

static void usb_cancel_all(struct usb_cardem *u)
{
	size_t i;

	for (i = 0; i <= USB_BULK_IN_NUM; i++)
		if (u->in_busy[i])
			libusb_cancel_transfer(u->in[i]);
	for (i = 0; i < USB_MAX_OUT; i++)
		if (u->out[i])
			libusb_cancel_transfer(u->out[i]);
}

/* Only once no transfer is in flight (or we gave up waiting). */
static void usb_release(struct usb_cardem *u)
{
	size_t i;

	if (u->h) {
		libusb_release_interface(u->h, u->iface);
		libusb_close(u->h);
		u->h = NULL;
	}
	for (i = 0; i <= USB_BULK_IN_NUM; i++) {
		libusb_free_transfer(u->in[i]);
		u->in[i] = NULL;
		u->in_busy[i] = false;
		if (i < USB_BULK_IN_NUM)
			u->in_parked[i] = false;
	}
}

static void usb_on_close(void *arg)
{
	struct usb_cardem *u = arg;

	if (usb_inflight(u) && ++u->close_tries < USB_CLOSE_TRIES) {
		loop_timer_start(u->loop, &u->close, USB_CLOSE_POLL_MS);
		return;
	}
	if (usb_inflight(u))
		LOGE(u->name, "%u transfers never came back: closing anyway",
		     usb_inflight(u));
	usb_release(u);
	usb_set_state(u, USB_ABSENT, "device closed; searching again");
	snprintf(u->name, sizeof(u->name), "simtrace2");
	u->last_err[0] = '\0';
	loop_timer_start(u->loop, &u->retry, USB_RETRY_MS);
}

/* Cancels what is in flight; the close timer finishes the job. */
static void usb_start_closing(struct usb_cardem *u, const char *reason)
{
	usb_set_state(u, USB_CLOSING, reason);
	usb_cancel_all(u);
	u->close_tries = 0;
	loop_timer_start(u->loop, &u->close, 0);
}

/* The device is gone or unusable: close it once the transfers are back. */
static void usb_lost(struct usb_cardem *u, const char *reason)
{
	if (u->state != USB_UP)
		return;
	LOGE(u->name, "device lost: %s", reason);
	usb_start_closing(u, reason);
	u->ops->down(u->user, reason);
}

/* ---- transfers ---------------------------------------------------------- */

/* Why a libusb call failed, as the log says it. */
static const char *usb_rc_reason(int rc)
{
	return rc == LIBUSB_ERROR_NO_DEVICE ? "unplugged" : libusb_strerror(rc);
}

/* Why a transfer ended badly. */
static const char *usb_status_reason(enum libusb_transfer_status st)
{
	switch (st) {
	case LIBUSB_TRANSFER_NO_DEVICE:
		return "unplugged";
	case LIBUSB_TRANSFER_STALL:
		return "endpoint stalled";
	case LIBUSB_TRANSFER_TIMED_OUT:
		return "bulk OUT timed out";
	default:
		return "transfer error";
	}
}

static void usb_in_done(struct libusb_transfer *t)
{
	struct usb_cardem *u = t->user_data;
	size_t idx = t == u->in[USB_BULK_IN_NUM] ? USB_BULK_IN_NUM : 0;
	bool irq = idx == USB_BULK_IN_NUM;
	char hex[2 * 16 + 1];
	size_t len = (size_t)t->actual_length, msg_len, i, posted = 0;
	int rc;

	while (idx < USB_BULK_IN_NUM && u->in[idx] != t)
		idx++;
	u->in_busy[idx] = false;
	switch (t->status) {
	case LIBUSB_TRANSFER_COMPLETED:
		break;
	case LIBUSB_TRANSFER_CANCELLED:
		return;
	case LIBUSB_TRANSFER_OVERFLOW:
		u->st.dropped++;
		LOGE(u->name, "%s IN: message larger than %d bytes: dropped",
		     irq ? "interrupt" : "bulk", t->length);
		len = 0;
		break;
	case LIBUSB_TRANSFER_TIMED_OUT:
		len = 0;
		break;
	default:
		usb_lost(u, usb_status_reason(t->status));
		return;
	}
	if (u->state != USB_UP)
		return;
	if (len) {
		msg_len = len >= USB_CARDEM_HDR_LEN ?
			  (size_t)(t->buffer[6] | t->buffer[7] << 8) : 0;
		if (len < USB_CARDEM_HDR_LEN || msg_len != len ||
		    len > USB_CARDEM_MSG_MAX) {
			hex_encode(hex, t->buffer, len < 16 ? len : 16);
			u->st.dropped++;
			LOGE(u->name, "malformed %s message dropped: %zu bytes, "
			     "length field %zu (%s...)", irq ? "interrupt" :
			     "bulk", len, msg_len, hex);
		} else {
			u->st.in_msgs++;
			u->ops->message(u->user, irq, t->buffer[0], t->buffer[1],
					t->buffer + USB_CARDEM_HDR_LEN,
					len - USB_CARDEM_HDR_LEN);
		}
	}
	/* the callback may have lost the device (a failed send) */
	if (u->state != USB_UP)
		return;
	for (i = 0; i < USB_BULK_IN_NUM; i++)
		posted += u->in_busy[i];
	if (!irq && u->busy && posted >= 2) {
		/* others stay posted; this one waits until the TPDU is answered */
		u->in_parked[idx] = true;
		return;
	}
	rc = libusb_submit_transfer(t);
	if (rc < 0)
		usb_lost(u, usb_rc_reason(rc));
	else
		u->in_busy[idx] = true;
}

static void usb_out_done(struct libusb_transfer *t)
{
	struct usb_cardem *u = t->user_data;
	size_t i;

	for (i = 0; i < USB_MAX_OUT; i++)
		if (u->out[i] == t)
			u->out[i] = NULL;
	if (t->status == LIBUSB_TRANSFER_COMPLETED ||
	    t->status == LIBUSB_TRANSFER_CANCELLED)
		return;
	/* a stuck OUT pipe means the firmware no longer listens */
	usb_lost(u, usb_status_reason(t->status));
}

int usb_cardem_send(struct usb_cardem *u, uint8_t cls, uint8_t type,
		    const uint8_t *payload, size_t len)
{
	size_t total = USB_CARDEM_HDR_LEN + len, i;
	struct libusb_transfer *t;
	uint8_t *buf;
	int rc;

	if (u->state != USB_UP)
		return -ENODEV;
	if (total > USB_CARDEM_MSG_MAX)
		return -EMSGSIZE;
	for (i = 0; i < USB_MAX_OUT && u->out[i]; i++)
		;
	if (i == USB_MAX_OUT)
		return -ENOBUFS;
	t = libusb_alloc_transfer(0);
	buf = malloc(total);
	if (!t || !buf) {
		libusb_free_transfer(t);
		free(buf);
		return -ENOMEM;
	}
	buf[0] = cls;
	buf[1] = type;
	memset(buf + 2, 0, 4);		/* seq, slot (unused: 2.3), reserved */
	buf[6] = (uint8_t)total;
	buf[7] = (uint8_t)(total >> 8);
	if (len)
		memcpy(buf + USB_CARDEM_HDR_LEN, payload, len);
	libusb_fill_bulk_transfer(t, u->h, u->ep_out, buf, (int)total,
				  usb_out_done, u, USB_OUT_TIMEOUT_MS);
	t->flags = LIBUSB_TRANSFER_FREE_BUFFER | LIBUSB_TRANSFER_FREE_TRANSFER;
	/* a full last packet would glue this message to the next one (3) */
	if (total % 64 == 0)
		t->flags |= LIBUSB_TRANSFER_ADD_ZERO_PACKET;
	rc = libusb_submit_transfer(t);
	if (rc < 0) {
		libusb_free_transfer(t);	/* FREE_BUFFER frees buf */
		usb_lost(u, usb_rc_reason(rc));
		return -ENODEV;
	}
	u->out[i] = t;
	u->st.out_msgs++;
	usb_arm_timeout(u);
	return 0;
}

/* ---- finding and opening ------------------------------------------------ */

static void usb_fail(struct usb_cardem *u, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Logs why opening failed (loudly once, then quietly) and retries. */
static void usb_fail(struct usb_cardem *u, const char *fmt, ...)
{
	char text[sizeof(u->last_err)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (strcmp(text, u->last_err))
		LOGE(u->name, "%s; retrying every %d ms", text, USB_RETRY_MS);
	else
		LOGD(u->name, "%s", text);
	memcpy(u->last_err, text, sizeof(text));
	loop_timer_start(u->loop, &u->retry, USB_RETRY_MS);
}

/* Claims f on the opened h; 0 or a libusb error (logged through usb_fail). */
static int usb_claim(struct usb_cardem *u, libusb_device_handle *h,
		     const struct usb_iface *f, const char *path)
{
	int cur = -1, rc;

	if (libusb_get_configuration(h, &cur) == 0 && cur != f->cfg) {
		rc = libusb_set_configuration(h, f->cfg);
		if (rc < 0) {
			usb_fail(u, "%s: cannot select configuration %u: %s",
				 path, f->cfg, libusb_strerror(rc));
			return rc;
		}
	}
	rc = libusb_claim_interface(h, f->num);
	if (rc == LIBUSB_ERROR_BUSY)
		usb_fail(u, "%s: interface %u is busy: another program "
			 "(remsim-client, simtrace2-cardem-pcsc) holds it",
			 path, f->num);
	else if (rc < 0)
		usb_fail(u, "%s: cannot claim interface %u: %s", path, f->num,
			 libusb_strerror(rc));
	return rc;
}

static int usb_post_in(struct usb_cardem *u)
{
	size_t i;
	int rc;

	for (i = 0; i <= USB_BULK_IN_NUM; i++) {
		bool irq = i == USB_BULK_IN_NUM;
		size_t len = irq ? USB_IRQ_IN_LEN : USB_BULK_IN_LEN;
		/* heap buffers: libusb_dev_mem_alloc breaks under umockdev */
		uint8_t *buf = malloc(len);

		u->in[i] = libusb_alloc_transfer(0);
		if (!u->in[i] || !buf) {
			free(buf);
			return LIBUSB_ERROR_NO_MEM;
		}
		if (irq)
			libusb_fill_interrupt_transfer(u->in[i], u->h, u->ep_irq,
						       buf, (int)len,
						       usb_in_done, u, 0);
		else
			libusb_fill_bulk_transfer(u->in[i], u->h, u->ep_in, buf,
						  (int)len, usb_in_done, u, 0);
		u->in[i]->flags = LIBUSB_TRANSFER_FREE_BUFFER;
		rc = libusb_submit_transfer(u->in[i]);
		if (rc < 0)
			return rc;
		u->in_busy[i] = true;
	}
	return 0;
}

static void usb_try_open(struct usb_cardem *u)
{
	libusb_device **list = NULL;
	struct usb_iface ifs[8], *f = NULL;
	char path[32], serial[80], other[320] = "";
	libusb_device_handle *h = NULL;
	ssize_t n, i;
	size_t k, nifs;
	int rc, matches = 0;

	n = libusb_get_device_list(u->ctx, &list);
	for (i = 0; i < n && !h; i++) {
		struct libusb_device_descriptor d;

		if (libusb_get_device_descriptor(list[i], &d) < 0 ||
		    !usb_id_matches(&u->m, &d))
			continue;
		usb_path(list[i], path, sizeof(path));
		if (u->m.path && strcmp(u->m.path, path))
			continue;
		nifs = usb_find_ifaces(list[i], d.bNumConfigurations, ifs, 8);
		if (!nifs) {
			snprintf(other, sizeof(other), "%s (%04x:%04x) has no "
				 "card-emulation interface: it runs other "
				 "firmware (sniffer or DFU); flash the cardem "
				 "firmware", path, d.idVendor, d.idProduct);
			continue;
		}
		for (k = 0, f = NULL; k < nifs && !f; k++)
			if (u->m.interface < 0 || ifs[k].num == u->m.interface)
				f = &ifs[k];
		if (!f) {
			snprintf(other, sizeof(other), "%s has no cardem "
				 "interface %d (it has %zu)", path,
				 u->m.interface, nifs);
			continue;
		}
		rc = libusb_open(list[i], &h);
		if (rc < 0) {
			h = NULL;
			if (rc == LIBUSB_ERROR_ACCESS)
				snprintf(other, sizeof(other), "%s: no "
					 "permission to open the device: %s",
					 path, usb_udev_hint);
			else
				snprintf(other, sizeof(other), "%s: cannot "
					 "open: %s", path, libusb_strerror(rc));
			continue;
		}
		if (u->m.serial) {
			usb_read_string(h, d.iSerialNumber, serial,
					sizeof(serial));
			if (strcmp(serial, u->m.serial)) {
				libusb_close(h);
				h = NULL;
				continue;
			}
		}
		matches++;
		snprintf(u->desc, sizeof(u->desc), "%s %04x:%04x if %u", path,
			 d.idVendor, d.idProduct, f->num);
	}
	libusb_free_device_list(list, 1);
	if (!h) {
		if (other[0])
			usb_fail(u, "%s", other);
		else
			usb_fail(u, "no SIMtrace2/sysmoQMOD card-emulation "
				 "device found%s%s%s%s (remsim-client "
				 "--list-devices shows what is there)",
				 u->m.path ? " at " : "",
				 u->m.path ? u->m.path : "",
				 u->m.serial ? " with serial " : "",
				 u->m.serial ? u->m.serial : "");
		return;
	}
	if (usb_claim(u, h, f, u->desc) < 0) {
		libusb_close(h);
		return;
	}
	u->h = h;
	u->iface = f->num;
	u->ep_out = f->ep_out;
	u->ep_in = f->ep_in;
	u->ep_irq = f->ep_irq;
	snprintf(u->name, sizeof(u->name), "simtrace2 %s", u->desc);
	rc = usb_post_in(u);
	if (rc < 0) {
		/* never announced: no down() for it */
		LOGE(u->name, "cannot post IN transfers: %s", usb_rc_reason(rc));
		usb_start_closing(u, usb_rc_reason(rc));
		return;
	}
	u->last_err[0] = '\0';
	usb_set_state(u, USB_UP, "interface claimed, IN transfers posted");
	usb_arm_timeout(u);
	u->ops->up(u->user, u->desc);
}

/* libusb hotplug (udev): look at once instead of at the next retry tick. */
static int usb_on_arrival(libusb_context *ctx, libusb_device *dev,
			  libusb_hotplug_event ev, void *arg)
{
	struct usb_cardem *u = arg;
	char path[32];

	if (u->state != USB_ABSENT)
		return 0;
	usb_path(dev, path, sizeof(path));
	LOGI(u->name, "USB device arrived at %s: looking", path);
	loop_timer_start(u->loop, &u->retry, 0);
	return 0;
}

static void usb_on_retry(void *arg)
{
	struct usb_cardem *u = arg;

	if (u->state == USB_ABSENT)
		usb_try_open(u);
}

/* ---- life cycle --------------------------------------------------------- */

struct usb_cardem *usb_cardem_new(struct loop *loop,
				  const struct usb_cardem_match *m,
				  const struct usb_cardem_ops *ops, void *user)
{
	struct usb_cardem *u = calloc(1, sizeof(*u));

	if (!u)
		return NULL;
	u->loop = loop;
	u->m = *m;
	u->ops = ops;
	u->user = user;
	u->iface = -1;
	snprintf(u->name, sizeof(u->name), "simtrace2");
	loop_timer_init(&u->retry, usb_on_retry, u);
	loop_timer_init(&u->timeout, usb_on_timeout, u);
	loop_timer_init(&u->close, usb_on_close, u);
	return u;
}

int usb_cardem_start(struct usb_cardem *u)
{
	const struct libusb_pollfd **pfds;
	int rc, i;

	rc = libusb_init(&u->ctx);
	if (rc < 0) {
		LOGE(u->name, "libusb: %s", libusb_strerror(rc));
		u->ctx = NULL;
		return -EIO;
	}
	libusb_set_pollfd_notifiers(u->ctx, usb_fd_added, usb_fd_removed, u);
	pfds = libusb_get_pollfds(u->ctx);
	for (i = 0; pfds && pfds[i]; i++)
		usb_fd_added(pfds[i]->fd, pfds[i]->events, u);
	libusb_free_pollfds(pfds);
	if (libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG))
		libusb_hotplug_register_callback(u->ctx,
			LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED, 0,
			u->m.vid ? u->m.vid : USB_CARDEM_VID,
			u->m.pid ? u->m.pid : LIBUSB_HOTPLUG_MATCH_ANY,
			LIBUSB_HOTPLUG_MATCH_ANY, usb_on_arrival, u, NULL);
	usb_try_open(u);
	return 0;
}

void usb_cardem_free(struct usb_cardem *u, const uint8_t *const *bye,
		     size_t nbye)
{
	struct timeval tv = { 0, 100000 };
	size_t i;
	int tries, sent;

	if (!u)
		return;
	if (u->state == USB_UP) {
		for (i = 0; i < nbye; i++) {
			size_t len = (size_t)(bye[i][6] | bye[i][7] << 8);

			libusb_bulk_transfer(u->h, u->ep_out, (uint8_t *)bye[i],
					     (int)len, &sent, 500);
		}
	}
	if (u->ctx) {
		usb_cancel_all(u);
		for (tries = 0; usb_inflight(u) && tries < 20; tries++)
			libusb_handle_events_timeout_completed(u->ctx, &tv,
							       NULL);
		usb_release(u);
		libusb_set_pollfd_notifiers(u->ctx, NULL, NULL, NULL);
		for (i = 0; i < USB_MAX_FDS; i++)
			loop_remove_source(u->loop, u->fds[i].src);
		libusb_exit(u->ctx);
	}
	loop_timer_stop(u->loop, &u->retry);
	loop_timer_stop(u->loop, &u->timeout);
	loop_timer_stop(u->loop, &u->close);
	free(u);
}

void usb_cardem_set_busy(struct usb_cardem *u, bool busy)
{
	size_t i;
	int rc;

	u->busy = busy;
	for (i = 0; !busy && i < USB_BULK_IN_NUM && u->state == USB_UP; i++) {
		if (!u->in_parked[i])
			continue;
		u->in_parked[i] = false;
		rc = libusb_submit_transfer(u->in[i]);
		if (rc < 0) {
			usb_lost(u, usb_rc_reason(rc));
			return;
		}
		u->in_busy[i] = true;
	}
}

bool usb_cardem_is_up(const struct usb_cardem *u)
{
	return u->state == USB_UP;
}

const char *usb_cardem_name(const struct usb_cardem *u)
{
	return u->name;
}

void usb_cardem_get_stats(const struct usb_cardem *u,
			  struct usb_cardem_stats *st)
{
	*st = u->st;
}
