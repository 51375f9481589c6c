/*
 * fake_cardem: a simulated SIMtrace2 in card-emulation mode (umockdev) that
 * plays firmware and modem for tests and the benchmark. It runs PROGRAM
 * under libumockdev-preload and takes commands on stdin, reporting on
 * stdout, one line each (docs/client.md "Testing the simtrace2 front end").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/usbdevice_fs.h>
#include <umockdev.h>

#define SYSPATH "/devices/pci0000:00/0000:00:14.0/usb1/1-1"
#define MAXQ 64
#define MSG_MAX 1024

/*
 * A URB and the connection (one process's open node) that submitted it:
 * each process reaps only its own (two clients serve two slots of a --qmod
 * board at once).
 */
struct urb {
	UMockdevIoctlData *u, *buf;
	const void *owner;	/* the UMockdevIoctlClient; identity only */
};

struct msg {
	uint8_t ep;
	size_t len;
	uint8_t data[MSG_MAX];
};

/* options */
static int throttle_ms = -1;	/* default: 20 with --plain-node, else 0 */
static int subclass = 0x02;
static int node_mode = 0666;	/* --node-mode: e.g. 0600 for "no permission" */
static int qmod;		/* --qmod: 1d50:4004, two slots, modem on slot 2 */
static uint8_t EP_OUT = 0x04, EP_IN = 0x85, EP_IRQ = 0x86;
static int busy;
static const char *serial = "00112233445566778899aabbccddeeff";

static UMockdevTestbed *tb;
/* lock order: mlock, then lock; never mlock while holding lock */
static GMutex lock;		/* device: URB lists and queue */
static GMutex mlock;		/* modem: TPDU and firmware state */
static struct urb pend[MAXQ], done[MAXQ];
static struct msg q[MAXQ];
static unsigned int npend, ndone, nq, devnum = 2;
static int unplugged;
static GMainContext *worker;
static struct {
	UMockdevIoctlClient *c;
	UMockdevIoctlData *d;
	GSource *timer;
} held;
static unsigned long n_reaps, n_empty, n_held, n_ioctls, n_submits;
static int plain_node;		/* --plain-node: always-writable regular file */
static int fifo = -1;		/* the node as a FIFO: writable iff reapable */
static int fifo_writable = 1;

/* firmware + modem state, under mlock */
static int enabled, inserted;
static uint8_t atr[33] = { 0x3b, 0x80, 0x80, 0x81, 0x1f, 0xc7, 0x59 };
static size_t atr_len = 7;
static enum { M_IDLE, M_WAIT_PB, M_TX } mstate;
static uint8_t cmd[5 + 255], line[600];
static size_t cmd_len, line_len, chunk;

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
	va_list ap;

	flockfile(stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	funlockfile(stdout);
}

static char *hex(const uint8_t *d, size_t n)
{
	char *s = g_malloc(2 * n + 1);
	size_t i;

	for (i = 0; i < n; i++)
		sprintf(s + 2 * i, "%02x", d[i]);
	s[2 * n] = '\0';
	return s;
}

static struct usbdevfs_urb *U(struct urb *r)
{
	return (void *)r->u->data;
}

static void urb_unref(struct urb *r)
{
	g_clear_object(&r->u);
	g_clear_object(&r->buf);
}

/* ---- the device side: URBs ---------------------------------------------- */

/*
 * A usbfs fd polls writable only while a URB waits to be reaped. The node
 * is a FIFO kept full (not writable) while nothing is reapable and drained
 * a little (writable) while something is, so libusb sleeps in poll() as it
 * does on real hardware. Lock held.
 */
static void node_update(void)
{
	static const char fill[4096];
	char sink[8192];
	int want = ndone > 0 || unplugged;

	if (fifo < 0 || want == fifo_writable)
		return;
	if (want) {
		while (read(fifo, sink, sizeof(sink)) == (ssize_t)sizeof(sink))
			break;	/* one read frees PIPE_BUF and more */
	} else {
		while (write(fifo, fill, sizeof(fill)) > 0)
			;
	}
	fifo_writable = want;
}

/* Index of owner's oldest reapable URB, or -1; lock held. */
static int done_of(const void *owner)
{
	unsigned int i;

	for (i = 0; i < ndone; i++)
		if (done[i].owner == owner)
			return (int)i;
	return -1;
}

/* Hands done[i] to a reap ioctl's argument; lock held. */
static void reap_done(UMockdevIoctlData *d, int i)
{
	umockdev_ioctl_data_set_ptr(d, 0, done[i].u);
	urb_unref(&done[i]);
	memmove(&done[i], &done[i + 1], (--ndone - (unsigned int)i) *
		sizeof(done[0]));
}

/* Answers a held (throttled) reap; in the worker thread, lock held. */
static void held_answer(void)
{
	int i;

	if (!held.c)
		return;
	i = done_of(held.c);
	if (i >= 0) {
		reap_done(held.d, i);
		umockdev_ioctl_client_complete(held.c, 0, 0);
	} else {
		umockdev_ioctl_client_complete(held.c, -1,
					       unplugged ? ENODEV : EAGAIN);
	}
	node_update();
	if (held.timer) {
		g_source_destroy(held.timer);
		g_source_unref(held.timer);
	}
	g_clear_object(&held.c);
	g_clear_object(&held.d);
	held.timer = NULL;
}

static gboolean held_invoke(gpointer p)
{
	g_mutex_lock(&lock);
	if (held.c && (done_of(held.c) >= 0 || unplugged))
		held_answer();
	g_mutex_unlock(&lock);
	return G_SOURCE_REMOVE;
}

static gboolean held_timeout(gpointer p)
{
	g_mutex_lock(&lock);
	if (held.timer) {
		g_source_unref(held.timer);
		held.timer = NULL;	/* destroyed by returning REMOVE */
	}
	held_answer();
	g_mutex_unlock(&lock);
	return G_SOURCE_REMOVE;
}

/* Something became reapable: wake a held reap (lock held). */
static void kick(void)
{
	GSource *s;

	if (!held.c || !worker)
		return;
	/* always deferred: a direct call would take the lock we hold */
	s = g_idle_source_new();
	g_source_set_callback(s, held_invoke, NULL, NULL);
	g_source_attach(s, worker);
	g_source_unref(s);
}

/* Gives queued messages to parked IN URBs; lock held. */
static void match(void)
{
	unsigned int i = 0, j;

	while (i < nq) {
		for (j = 0; j < npend && U(&pend[j])->endpoint != q[i].ep; j++)
			;
		if (j == npend || ndone == MAXQ) {
			i++;
			continue;
		}
		if (q[i].len > (size_t)U(&pend[j])->buffer_length) {
			U(&pend[j])->actual_length = U(&pend[j])->buffer_length;
			U(&pend[j])->status = -EOVERFLOW;
		} else {
			memcpy(pend[j].buf->data, q[i].data, q[i].len);
			U(&pend[j])->actual_length = (int)q[i].len;
			U(&pend[j])->status = 0;
		}
		done[ndone++] = pend[j];
		memmove(&pend[j], &pend[j + 1], (--npend - j) * sizeof(pend[0]));
		memmove(&q[i], &q[i + 1], (--nq - i) * sizeof(q[0]));
	}
	if (ndone)
		kick();
	node_update();
}

static void dev_send(uint8_t ep, const uint8_t *m, size_t len)
{
	g_mutex_lock(&lock);
	if (!unplugged && nq < MAXQ && len <= MSG_MAX) {
		q[nq].ep = ep;
		q[nq].len = len;
		memcpy(q[nq++].data, m, len);
		match();
	} else {
		out("error device queue full or unplugged: message dropped");
	}
	g_mutex_unlock(&lock);
}

/* A cardem message: class, type, payload. */
static void dev_msg(uint8_t ep, uint8_t cls, uint8_t type, const uint8_t *p,
		    size_t len)
{
	uint8_t m[MSG_MAX];

	m[0] = cls;
	m[1] = type;
	memset(m + 2, 0, 4);
	m[6] = (uint8_t)(len + 8);
	m[7] = (uint8_t)((len + 8) >> 8);
	memcpy(m + 8, p, len);
	dev_send(ep, m, len + 8);
}

static void dev_rx_data(uint32_t flags, const uint8_t *d, size_t len)
{
	uint8_t p[6 + 255];

	p[0] = (uint8_t)flags;
	p[1] = p[2] = p[3] = 0;
	p[4] = (uint8_t)len;
	p[5] = (uint8_t)(len >> 8);
	memcpy(p + 6, d, len);
	dev_msg(EP_IN, 1, 6, p, 6 + len);
}

static void dev_status(uint8_t flags)
{
	uint8_t p[13] = { flags, 0, 0, 0, flags & 1 ? 0xe4 : 0,
			  flags & 1 ? 0x0c : 0, 1, 1, 10, 0x80, 0x25, 0, 0 };

	dev_msg(EP_IRQ, 1, 4, p, sizeof(p));
}

/* ---- the modem side ----------------------------------------------------- */

/* The modem powers up or resets the card: status events, then the ATR. */
static void modem_power_up(const char *why, int warm)
{
	char *h;

	if (!enabled) {
		out("modem %s: emulation off, modem uses its local SIM", why);
		return;
	}
	mstate = M_IDLE;
	if (!warm)
		dev_status(0x11);
	dev_status(0x13);
	dev_status(0x03);
	h = hex(atr, atr_len);
	out("atr %s inserted=%d (%s)", h, inserted, why);
	g_free(h);
}

/* One TPDU: header first; data bytes once the host sent PB_AND_RX. */
static void modem_tpdu(const uint8_t *t, size_t len, size_t chunk_size)
{
	if (mstate != M_IDLE)
		out("error modem: previous TPDU not finished");
	memcpy(cmd, t, len);
	cmd_len = len;
	line_len = 0;
	chunk = chunk_size;
	mstate = M_WAIT_PB;
	dev_rx_data(0x01, t, 5);
}

static void modem_tx_data(const uint8_t *p, size_t len)
{
	uint32_t flags;
	size_t dlen, off;
	char *h, *r;

	if (len < 6 || (dlen = (size_t)(p[4] | p[5] << 8)) != len - 6) {
		out("error TX_DATA with a bad length");
		return;
	}
	flags = p[0];
	if (mstate == M_IDLE) {
		out("error TX_DATA without a TPDU in progress: %s",
		    h = hex(p + 6, dlen));
		g_free(h);
		return;
	}
	if (flags & 0x08) {		/* PB_AND_RX */
		if (mstate != M_WAIT_PB || dlen != 1 || p[6] != cmd[1]) {
			out("error bad PB_AND_RX");
			return;
		}
		line[line_len++] = p[6];
		for (off = 5; off < cmd_len; off += chunk) {
			size_t n = cmd_len - off < chunk ? cmd_len - off : chunk;

			dev_rx_data(off + n == cmd_len ? 0x02 : 0, cmd + off, n);
		}
		mstate = M_TX;
		return;
	}
	if (line_len + dlen > sizeof(line)) {
		out("error response too long");
		return;
	}
	memcpy(line + line_len, p + 6, dlen);
	line_len += dlen;
	mstate = M_TX;
	if (!(flags & 0x02))
		return;
	/* what the modem got: drop the ACK (INS) before data or SW */
	off = line_len && line[0] == cmd[1] ? 1 : 0;
	h = hex(line + off, line_len - off);
	r = hex(line, line_len);
	out("rsp %s %s", h, r);
	g_free(h);
	g_free(r);
	mstate = M_IDLE;
}

/* Messages from the host, as the firmware handles them. */
static void dev_receive(uint8_t ep, const uint8_t *m, size_t len)
{
	char *h;

	if (ep != EP_OUT) {
		/* the other slot of a --qmod board: no modem there */
		h = hex(m, len);
		out("other-slot-out %02x %s", ep, h);
		g_free(h);
		return;
	}
	if (len < 8 || (size_t)(m[6] | m[7] << 8) != len) {
		out("error host message with a bad length (%zu)", len);
		return;
	}
	h = hex(m + 8, len - 8);
	out("out %u %u %s", m[0], m[1], h);
	g_free(h);
	g_mutex_lock(&mlock);
	if (m[0] == 1 && m[1] == 8) {			/* CONFIG */
		uint8_t p[6] = { m[8] & 1, 0, 0, 0, 0, 0x02 };

		dev_msg(EP_IN, 1, 8, p, sizeof(p));
	} else if (m[0] == 1 && m[1] == 2) {		/* SET_ATR */
		if (len > 9 && m[8] <= 33 && m[8] == len - 9) {
			memcpy(atr, m + 9, m[8]);
			atr_len = m[8];
		} else {
			out("error SET_ATR refused");
		}
	} else if (m[0] == 1 && m[1] == 5 && len == 9) {	/* CARDINSERT */
		inserted = m[8];
	} else if (m[0] == 2 && m[1] == 2 && len == 9) {	/* SIM_SELECT */
		enabled = m[8];
		if (!enabled)
			mstate = M_IDLE;
	} else if (m[0] == 2 && m[1] == 1 && len == 11) {	/* MODEM_RESET */
		modem_power_up("modem reset", 0);
	} else if (m[0] == 1 && m[1] == 1) {		/* TX_DATA */
		modem_tx_data(m + 8, len - 8);
	}
	g_mutex_unlock(&mlock);
}

/* ---- usbfs ioctls ------------------------------------------------------- */

static void string_desc(uint8_t idx, uint8_t *o, size_t *n)
{
	const char *s = idx == 1 ? "sysmocom - s.f.m.c. GmbH" :
			idx == 2 ? "SIMtrace 2" : serial;
	size_t i;

	if (idx == 0) {
		memcpy(o, "\x04\x03\x09\x04", 4);
		*n = 4;
		return;
	}
	o[1] = 3;
	for (i = 0; s[i] && i < 100; i++) {
		o[2 + 2 * i] = (uint8_t)s[i];
		o[3 + 2 * i] = 0;
	}
	o[0] = (uint8_t)(2 + 2 * i);
	*n = o[0];
}

static void submit(const void *owner, UMockdevIoctlData *d, uint8_t **outp,
		   size_t *out_len, uint8_t *out_ep)
{
	struct urb r = { g_object_ref(d), NULL, owner };
	struct usbdevfs_urb *u = U(&r);

	r.buf = umockdev_ioctl_data_resolve(d, offsetof(struct usbdevfs_urb,
							buffer),
					    (gsize)u->buffer_length, NULL);
	if (u->type == USBDEVFS_URB_TYPE_CONTROL) {
		uint8_t *b = r.buf->data, s[256];
		size_t n = 0, want = (size_t)(b[6] | b[7] << 8);

		if (b[0] == 0x80 && b[1] == 6 && b[3] == 3)
			string_desc(b[2], s, &n);
		n = n < want ? n : want;
		memcpy(b + 8, s, n);
		u->actual_length = (int)n;
		u->status = n ? 0 : -EPIPE;
		done[ndone++] = r;
	} else if (u->endpoint & 0x80) {
		pend[npend++] = r;
		match();
	} else {
		/* a full last packet without a ZLP: the firmware keeps reading */
		if (u->buffer_length % 64 == 0 &&
		    !(u->flags & USBDEVFS_URB_ZERO_PACKET))
			out("error bulk OUT of %d bytes without a zero-length "
			    "packet: the firmware would glue it to the next",
			    u->buffer_length);
		*out_len = (size_t)u->buffer_length;
		*outp = g_memdup2(r.buf->data, *out_len);
		*out_ep = u->endpoint;
		u->actual_length = u->buffer_length;
		u->status = 0;
		done[ndone++] = r;
	}
}

static gboolean on_ioctl(UMockdevIoctlBase *hb, UMockdevIoctlClient *c,
			 gpointer p)
{
	gulong req = umockdev_ioctl_client_get_request(c);
	UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(c), *d = NULL;
	uint8_t *o = NULL, o_ep = 0;
	size_t o_len = 0;
	long res = 0, err = 0;
	unsigned int i;

	if (_IOC_SIZE(req))
		d = umockdev_ioctl_data_resolve(arg, 0, _IOC_SIZE(req), NULL);
	g_mutex_lock(&lock);
	n_ioctls++;
	if (!worker)
		worker = g_main_context_ref_thread_default();
	if (unplugged && req != USBDEVFS_REAPURB &&
	    req != USBDEVFS_REAPURBNDELAY && req != USBDEVFS_DISCARDURB) {
		res = -1, err = ENODEV;
	} else if (req == USBDEVFS_GET_CAPABILITIES) {
		*(uint32_t *)d->data = USBDEVFS_CAP_ZERO_PACKET |
				       USBDEVFS_CAP_NO_PACKET_SIZE_LIM;
	} else if (req == USBDEVFS_CLAIMINTERFACE && busy) {
		res = -1, err = EBUSY;
	} else if (req == USBDEVFS_CLAIMINTERFACE ||
		   req == USBDEVFS_RELEASEINTERFACE ||
		   req == USBDEVFS_SETCONFIGURATION ||
		   req == USBDEVFS_SETINTERFACE) {
		;
	} else if (req == USBDEVFS_GETDRIVER) {
		res = -1, err = ENODATA;
	} else if (req == USBDEVFS_SUBMITURB) {
		n_submits++;
		if (npend == MAXQ || ndone == MAXQ)
			res = -1, err = ENOMEM;
		else
			submit(c, d, &o, &o_len, &o_ep);
	} else if (req == USBDEVFS_REAPURB || req == USBDEVFS_REAPURBNDELAY) {
		n_reaps++;
		if (done_of(c) >= 0) {
			reap_done(d, done_of(c));
		} else if (unplugged) {
			res = -1, err = ENODEV;
		} else {
			/*
			 * Not under mlock: the control thread takes mlock, then
			 * lock (dev_send); taking them the other way round here
			 * deadlocked. A stale value only delays a throttled reap.
			 */
			int idle = __atomic_load_n(&mstate, __ATOMIC_RELAXED) ==
				   M_IDLE;

			n_empty++;
			if (throttle_ms && idle && !held.c) {
				/* hold it: libusb would spin on the node */
				n_held++;
				held.c = g_object_ref(c);
				held.d = d;
				held.timer = g_timeout_source_new((guint)throttle_ms);
				g_source_set_callback(held.timer, held_timeout,
						      NULL, NULL);
				g_source_attach(held.timer, worker);
				g_mutex_unlock(&lock);
				return TRUE;
			}
			res = -1, err = EAGAIN;
		}
	} else if (req == USBDEVFS_DISCARDURB) {
		res = -1, err = EINVAL;
		for (i = 0; i < npend && res; i++) {
			if (pend[i].owner != c ||
			    pend[i].u->client_addr != *(gulong *)arg->data)
				continue;
			U(&pend[i])->status = -ENOENT;
			done[ndone++] = pend[i];
			memmove(&pend[i], &pend[i + 1],
				(--npend - i) * sizeof(pend[0]));
			res = 0, err = 0;
		}
	} else {
		res = -1, err = ENOTTY;
	}
	if (getenv("FAKE_CARDEM_DEBUG") && res < 0 && err != EAGAIN)
		fprintf(stderr, "fake_cardem: ioctl %lx -> errno %ld\n", req, err);
	node_update();
	g_mutex_unlock(&lock);
	if (o)
		dev_receive(o_ep, o, o_len);
	g_free(o);
	umockdev_ioctl_client_complete(c, res, err);
	g_clear_object(&d);
	return TRUE;
}

/* ---- plugging ----------------------------------------------------------- */

/*
 * Everything the client needs is in place before the device record makes
 * it visible (adding it sends the "add" uevent libusb's hotplug acts on):
 * the node (a FIFO unless --plain-node), the ioctl handler, its socket.
 */
static int plug(void)
{
	char node[64], rec[2048], ifaces[512], *path, *dir;
	UMockdevIoctlBase *h = umockdev_ioctl_base_new();
	GError *e = NULL;

	/* one slot: EPs 04/85/86; QMOD: slot 2 on 01/82/83 as well */
	snprintf(ifaces, sizeof(ifaces), "%s0904000003FF%02X0000"
		 "070504024000000705850240000007058603400001%s",
		 qmod ? "090245000201008032" : "090227000101008032",
		 subclass, qmod ? "0904010003FF020000070501024000000705820240"
		 "000007058303400001" : "");
	snprintf(node, sizeof(node), "/dev/bus/usb/001/%03u", devnum);
	path = g_strdup_printf("%s%s", umockdev_testbed_get_root_dir(tb), node);
	dir = g_path_get_dirname(path);
	g_mkdir_with_parents(dir, 0755);
	g_free(dir);
	if (fifo >= 0)
		close(fifo);
	fifo = -1;
	unlink(path);
	if (plain_node ? !g_file_set_contents(path, "", 0, NULL) :
	    mkfifo(path, 0666) < 0 || chmod(path, (mode_t)node_mode) < 0 ||
	    (fifo = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)) < 0) {
		fprintf(stderr, "fake_cardem: node %s: %s\n", path,
			strerror(errno));
		g_free(path);
		return -1;
	}
	g_free(path);
	g_mutex_lock(&lock);
	fifo_writable = 1;
	node_update();
	g_mutex_unlock(&lock);
	g_signal_connect(h, "handle-ioctl", G_CALLBACK(on_ioctl), NULL);
	if (!umockdev_testbed_attach_ioctl(tb, node, h, &e)) {
		fprintf(stderr, "fake_cardem: %s\n", e->message);
		return -1;
	}
	if (node_mode != 0666) {
		/* the preload library must reach the socket (or it ends the
		 * client): only the node itself says "no permission" */
		path = g_strdup_printf("%s/ioctl%s",
				       umockdev_testbed_get_root_dir(tb), node);
		chmod(path, 0666);
		for (dir = g_path_get_dirname(path); strlen(dir) >
		     strlen(umockdev_testbed_get_root_dir(tb));) {
			char *up = g_path_get_dirname(dir);

			chmod(dir, 0755);
			g_free(dir);
			dir = up;
		}
		g_free(dir);
		g_free(path);
	}
	snprintf(rec, sizeof(rec),
		 "P: " SYSPATH "\n"
		 "E: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\nE: DEVNAME=%s\n"
		 "E: BUSNUM=001\nE: DEVNUM=%03u\n"
		 "A: busnum=1\\n\nA: devnum=%u\\n\nA: speed=12\\n\n"
		 "A: bConfigurationValue=1\\n\n"
		 "H: descriptors=1201000200000040501D%s020001020301%s\n",
		 node, devnum, devnum, qmod ? "0440" : "E360", ifaces);
	if (!umockdev_testbed_add_from_string(tb, rec, &e)) {
		fprintf(stderr, "fake_cardem: %s\n", e->message);
		return -1;
	}
	return 0;
}

static void unplug(void)
{
	unsigned int i;

	g_mutex_lock(&lock);
	unplugged = 1;
	for (i = 0; i < npend; i++) {	/* the kernel ends them: -ESHUTDOWN */
		U(&pend[i])->status = -ESHUTDOWN;
		U(&pend[i])->actual_length = 0;
		done[ndone++] = pend[i];
	}
	npend = 0;
	nq = 0;
	kick();
	node_update();
	g_mutex_unlock(&lock);
	/*
	 * The node and its ioctl socket stay until the next plug: a client
	 * that opens the device before it has seen this uevent gets ENODEV
	 * from every ioctl, as from a vanished usbfs node (without the socket
	 * the preload library would end the client).
	 */
	umockdev_testbed_uevent(tb, "/sys" SYSPATH, "remove");
	g_mutex_lock(&mlock);
	enabled = inserted = 0;
	mstate = M_IDLE;
	g_mutex_unlock(&mlock);
}

static void replug(void)
{
	unsigned int i;

	g_mutex_lock(&lock);
	for (i = 0; i < ndone; i++)	/* never reaped: the fd is gone */
		urb_unref(&done[i]);
	ndone = 0;
	g_mutex_unlock(&lock);
	umockdev_testbed_remove_device(tb, "/sys" SYSPATH);
	g_mutex_lock(&lock);
	unplugged = 0;
	devnum++;
	g_mutex_unlock(&lock);
	plug();
}

/* ---- control ------------------------------------------------------------ */

static size_t unhex(const char *s, uint8_t *o, size_t max)
{
	size_t n = 0;
	unsigned int b;

	for (;;) {
		while (*s == ' ')
			s++;
		if (n == max || sscanf(s, "%2x", &b) != 1)
			return n;
		o[n++] = (uint8_t)b;
		s += s[1] && s[1] != ' ' ? 2 : 1;
	}
}

static gpointer control(gpointer p)
{
	char buf[4096];
	uint8_t b[MSG_MAX];
	size_t n;
	unsigned int a;

	while (fgets(buf, sizeof(buf), stdin)) {
		buf[strcspn(buf, "\n")] = '\0';
		if (!strncmp(buf, "apdu ", 5) ||
		    (sscanf(buf, "apdu-chunked %u ", &a) == 1 && a)) {
			size_t ck = buf[4] == '-' ? a : 255;
			const char *text = buf[4] == '-' ?
					   strchr(buf + 13, ' ') : buf + 4;

			n = text ? unhex(text, b, sizeof(cmd)) : 0;
			if (n < 5 || (n > 5 && n != 5u + b[4])) {
				out("error apdu: header + P3 data bytes needed");
				continue;
			}
			g_mutex_lock(&mlock);
			modem_tpdu(b, n, ck);
			g_mutex_unlock(&mlock);
		} else if (!strcmp(buf, "reset")) {
			g_mutex_lock(&mlock);
			modem_power_up("warm reset by the modem", 1);
			g_mutex_unlock(&mlock);
		} else if (!strcmp(buf, "power-off")) {
			dev_status(0x00);
		} else if (sscanf(buf, "status %x", &a) == 1) {
			dev_status((uint8_t)a);
		} else if (!strncmp(buf, "raw-bulk ", 9)) {
			n = unhex(buf + 9, b, sizeof(b));
			dev_send(EP_IN, b, n);
		} else if (!strncmp(buf, "raw-irq ", 8)) {
			n = unhex(buf + 8, b, sizeof(b));
			dev_send(EP_IRQ, b, n);
		} else if (!strcmp(buf, "unplug")) {
			unplug();
			out("unplugged");
		} else if (!strcmp(buf, "plug")) {
			replug();
			out("plugged devnum %u", devnum);
		} else if (!strcmp(buf, "stats")) {
			g_mutex_lock(&lock);
			out("stats reaps=%lu empty=%lu held=%lu done=%u "
			    "parked=%u queued=%u node-writable=%d ioctls=%lu "
			    "submits=%lu", n_reaps, n_empty, n_held, ndone,
			    npend, nq, fifo_writable, n_ioctls, n_submits);
			g_mutex_unlock(&lock);
		} else if (buf[0]) {
			out("error unknown command: %s", buf);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	sigset_t set;
	const char *asan = getenv("ASAN_OPTIONS");
	char *asan_opts;
	siginfo_t si;
	pid_t child;
	int i, status;

	for (i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--throttle-ms") && i + 1 < argc)
			throttle_ms = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--sniffer"))
			subclass = 0x01;
		else if (!strcmp(argv[i], "--plain-node"))
			plain_node = 1;
		else if (!strcmp(argv[i], "--node-mode") && i + 1 < argc)
			node_mode = (int)strtol(argv[++i], NULL, 8);
		else if (!strcmp(argv[i], "--qmod"))
			qmod = 1, EP_OUT = 0x01, EP_IN = 0x82, EP_IRQ = 0x83;
		else if (!strcmp(argv[i], "--busy"))
			busy = 1;
		else if (!strcmp(argv[i], "--serial") && i + 1 < argc)
			serial = argv[++i];
		else
			break;
	}
	if (throttle_ms < 0)
		throttle_ms = plain_node ? 20 : 0;
	if (i + 1 >= argc || strcmp(argv[i], "--")) {
		fprintf(stderr, "usage: fake_cardem [--throttle-ms N] "
			"[--plain-node] [--qmod] [--sniffer] [--busy] [--serial S] "
			"[--node-mode OCTAL] -- "
			"PROGRAM "
			"[ARGS]\n");
		return 2;
	}
	/*
	 * umockdev_testbed_uevent() looks the device up through libudev, so
	 * this process needs the preload library as well (it only redirects
	 * /sys and /dev once $UMOCKDEV_DIR exists): re-run under it.
	 */
	if (!getenv("FAKE_CARDEM_PRELOADED")) {
		asan_opts = g_strdup_printf("%s%sverify_asan_link_order=0",
					    asan ? asan : "", asan ? ":" : "");
		setenv("ASAN_OPTIONS", asan_opts, 1);
		setenv("FAKE_CARDEM_PRELOADED", "1", 1);
		setenv("LD_PRELOAD", "libumockdev-preload.so.0", 1);
		execv("/proc/self/exe", argv);
		fprintf(stderr, "fake_cardem: re-exec: %s\n", strerror(errno));
		return 2;
	}
	unsetenv("FAKE_CARDEM_PRELOADED");
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	tb = umockdev_testbed_new();	/* sets $UMOCKDEV_DIR */
	/* a client under another uid must get as far as the node itself */
	chmod(umockdev_testbed_get_root_dir(tb), 01777);
	if (plug() < 0)
		return 2;
	child = fork();
	if (child == 0) {
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
		dup2(2, 1);
		close(0);
		execvp(argv[i + 1], argv + i + 1);
		fprintf(stderr, "fake_cardem: %s: %s\n", argv[i + 1],
			strerror(errno));
		_exit(127);
	}
	out("ready pid %d", (int)child);
	g_thread_unref(g_thread_new("control", control, NULL));
	for (;;) {
		if (sigwaitinfo(&set, &si) < 0)
			continue;
		if (si.si_signo != SIGCHLD) {
			kill(child, si.si_signo);
			continue;
		}
		if (waitpid(child, &status, WNOHANG) != child)
			continue;
		status = WIFEXITED(status) ? WEXITSTATUS(status) :
					     128 + WTERMSIG(status);
		out("exit %d", status);
		/* the testbed directory goes with the object */
		g_object_unref(tb);
		/*
		 * _exit: libumockdev keeps a copy of each attached node's name
		 * for good, which LeakSanitizer would report for this helper
		 * (not under test) in the client's log.
		 */
		_exit(status);
	}
}
