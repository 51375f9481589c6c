/*
 * frontend_simtrace2: the remote SIM as the card a modem sees, emulated by
 * a SIMtrace2-family board in cardem mode (docs/client.md, shared
 * simtrace2-cardem.md). Two state machines: emulation (no-device -> local
 * -> remote) and the T=0 TPDU in progress (cases 1-4, procedure bytes).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apdu.h"
#include "client.h"
#include "frontend.h"
#include "hex.h"
#include "log.h"
#include "loop.h"
#include "usb_cardem.h"

#define ST2_ATR_MAX		33	/* TS + 32: the firmware's limit */
#define ST2_TX_DATA_MAX		(USB_CARDEM_MSG_MAX - USB_CARDEM_HDR_LEN - 6)

/* RX_DATA / TX_DATA flags (simtrace2-cardem.md 5.1) */
#define CEMU_F_TPDU_HDR		0x01
#define CEMU_F_FINAL		0x02
#define CEMU_F_PB_AND_TX	0x04
#define CEMU_F_PB_AND_RX	0x08

/* STATUS flags (5.4) */
#define CEMU_S_VCC		0x01
#define CEMU_S_CLK		0x02
#define CEMU_S_RESET		0x10

enum st2_state {
	ST2_NO_DEVICE,	/* no USB device: waiting for it */
	ST2_LOCAL,	/* device up, modem on its local SIM (no card) */
	ST2_REMOTE,	/* emulating the remote card */
};

enum st2_tpdu {
	TP_IDLE,	/* waiting for a header from the modem */
	TP_WAIT_DATA,	/* PB sent, receiving P3 command bytes */
	TP_AT_CARD,	/* TPDU at the bankd */
	TP_DISCARD,	/* abandoned while at the bankd: drop the answer */
};

static const char *const st2_state_names[] = {
	[ST2_NO_DEVICE] = "no-device",
	[ST2_LOCAL] = "local",
	[ST2_REMOTE] = "remote",
};

static const char *const st2_tpdu_names[] = {
	[TP_IDLE] = "idle",
	[TP_WAIT_DATA] = "wait-data",
	[TP_AT_CARD] = "at-card",
	[TP_DISCARD] = "discard",
};

struct st2 {
	struct frontend fe;
	struct usb_cardem *usb;
	uint16_t reset_ms;
	enum st2_state state;
	enum st2_tpdu tp;
	enum apdu_case cse;
	uint8_t tpdu[APDU_MAX_TPDU];	/* header + command data so far */
	size_t tpdu_len;
	uint8_t held_hdr[5];		/* a header waiting for TP_DISCARD */
	bool held;
	uint8_t status;			/* last STATUS flags from the device */
	bool have_status;
	uint8_t atr[ST2_ATR_MAX];
	size_t atr_len;
	bool have_card;			/* client OPERATIONAL */
};

static void st2_set_state(struct st2 *s, enum st2_state new_state,
			  const char *reason)
{
	if (s->state == new_state)
		return;
	LOGN(s->fe.name, "%s -> %s (%s)", st2_state_names[s->state],
	     st2_state_names[new_state], reason);
	s->state = new_state;
}

/* Per TPDU: debug only, like the APDUs of the other front ends. */
static void st2_set_tp(struct st2 *s, enum st2_tpdu new_tp, const char *why)
{
	if (s->tp == new_tp)
		return;
	LOGD(s->fe.name, "tpdu %s -> %s (%s)", st2_tpdu_names[s->tp],
	     st2_tpdu_names[new_tp], why);
	s->tp = new_tp;
	usb_cardem_set_busy(s->usb, new_tp == TP_AT_CARD);
}

/*
 * Whatever TPDU is at the bankd is abandoned (modem reset, teardown, device
 * lost, a new header): its answer is dropped when it comes.
 */
static void st2_abandon(struct st2 *s, const char *why)
{
	s->held = false;
	st2_set_tp(s, s->tp == TP_AT_CARD || s->tp == TP_DISCARD ? TP_DISCARD :
		   TP_IDLE, why);
}

/* ---- messages to the device --------------------------------------------- */

static void st2_send(struct st2 *s, uint8_t cls, uint8_t type,
		     const uint8_t *payload, size_t len)
{
	int rc = usb_cardem_send(s->usb, cls, type, payload, len);

	if (rc < 0 && rc != -ENODEV)
		LOGE(s->fe.name, "cannot send message %u/%u: %s", cls, type,
		     strerror(-rc));
}

static void st2_send_u8(struct st2 *s, uint8_t cls, uint8_t type, uint8_t v)
{
	st2_send(s, cls, type, &v, 1);
}

/* TX_DATA: flags, data_len, data. */
static void st2_tx_data(struct st2 *s, uint32_t flags, const uint8_t *data,
			size_t len)
{
	uint8_t p[6 + ST2_TX_DATA_MAX];

	if (len > ST2_TX_DATA_MAX)
		len = ST2_TX_DATA_MAX;
	p[0] = (uint8_t)flags;
	p[1] = (uint8_t)(flags >> 8);
	p[2] = (uint8_t)(flags >> 16);
	p[3] = (uint8_t)(flags >> 24);
	p[4] = (uint8_t)len;
	p[5] = (uint8_t)(len >> 8);
	memcpy(p + 6, data, len);
	st2_send(s, CEMU_CLASS_CARDEM, CEMU_TX_DATA, p, 6 + len);
}

static void st2_tx_sw(struct st2 *s, uint8_t sw1, uint8_t sw2)
{
	uint8_t sw[2] = { sw1, sw2 };

	st2_tx_data(s, CEMU_F_PB_AND_TX | CEMU_F_FINAL, sw, 2);
}

static void st2_modem_reset(struct st2 *s)
{
	uint8_t p[3] = { 2, (uint8_t)s->reset_ms, (uint8_t)(s->reset_ms >> 8) };

	if (s->reset_ms)
		st2_send(s, CEMU_CLASS_MODEM, MODEM_RESET, p, sizeof(p));
}

static void st2_set_atr(struct st2 *s)
{
	uint8_t p[1 + ST2_ATR_MAX];

	p[0] = (uint8_t)s->atr_len;
	memcpy(p + 1, s->atr, s->atr_len);
	st2_send(s, CEMU_CLASS_CARDEM, CEMU_SET_ATR, p, 1 + s->atr_len);
}

/* Bring-up order of simtrace2-cardem.md 9.1: ATR before emulation. */
static void st2_go_remote(struct st2 *s, const char *reason)
{
	char hex[2 * ST2_ATR_MAX + 1];

	if (s->state != ST2_LOCAL || !s->have_card)
		return;
	if (!s->atr_len) {
		LOGE(s->fe.name, "the card's ATR does not fit the emulator "
		     "(more than %d bytes): the modem stays on its local SIM",
		     ST2_ATR_MAX);
		return;
	}
	hex_encode(hex, s->atr, s->atr_len);
	LOGN(s->fe.name, "bring-up: SET_ATR %s, CARDINSERT 1, SIM_SELECT "
	     "remote, modem reset %u ms", hex, s->reset_ms);
	st2_set_atr(s);
	st2_send_u8(s, CEMU_CLASS_CARDEM, CEMU_CARDINSERT, 1);
	st2_send_u8(s, CEMU_CLASS_MODEM, MODEM_SIM_SELECT, 1);
	st2_modem_reset(s);
	st2_abandon(s, "bring-up");
	st2_set_state(s, ST2_REMOTE, reason);
}

static void st2_go_local(struct st2 *s, const char *reason)
{
	if (s->state != ST2_REMOTE)
		return;
	LOGN(s->fe.name, "teardown: CARDINSERT 0, SIM_SELECT local, modem "
	     "reset %u ms", s->reset_ms);
	st2_send_u8(s, CEMU_CLASS_CARDEM, CEMU_CARDINSERT, 0);
	st2_send_u8(s, CEMU_CLASS_MODEM, MODEM_SIM_SELECT, 0);
	st2_modem_reset(s);
	st2_abandon(s, "teardown");
	st2_set_state(s, ST2_LOCAL, reason);
}

static void st2_store_atr(struct st2 *s, const uint8_t *atr, size_t len)
{
	if (len > ST2_ATR_MAX) {
		s->atr_len = 0;
		return;
	}
	memcpy(s->atr, atr, len);
	s->atr_len = len;
}

/* ---- TPDUs from the modem ----------------------------------------------- */

static void st2_forward(struct st2 *s)
{
	int rc = client_send_tpdu(s->fe.client, s->tpdu, s->tpdu_len);

	if (rc < 0) {
		/* never leave the modem without exactly one final answer */
		LOGE(s->fe.name, "cannot send the TPDU to the card: %s",
		     strerror(-rc));
		st2_tx_sw(s, 0x6f, 0x00);
		st2_set_tp(s, TP_IDLE, "send failed");
		return;
	}
	st2_set_tp(s, TP_AT_CARD, "forwarded");
}

static void st2_on_header(struct st2 *s, const uint8_t *hdr);

/* The abandoned TPDU's answer (or failure) is in: a held header goes on. */
static void st2_discard_done(struct st2 *s, const char *why)
{
	uint8_t hdr[5];
	bool held = s->held;

	memcpy(hdr, s->held_hdr, sizeof(hdr));
	s->held = false;
	st2_set_tp(s, TP_IDLE, why);
	if (held)
		st2_on_header(s, hdr);
}

static void st2_on_header(struct st2 *s, const uint8_t *hdr)
{
	if (s->tp == TP_WAIT_DATA || s->tp == TP_AT_CARD)
		LOGE(s->fe.name, "new header while a TPDU was %s: the old one "
		     "is abandoned", st2_tpdu_names[s->tp]);
	if (s->tp == TP_AT_CARD || s->tp == TP_DISCARD) {
		/*
		 * The card still owes an answer, which must not answer this
		 * header: it waits (the firmware keeps the modem waiting with
		 * NULL procedure bytes, 8.) and goes to the card after it.
		 */
		st2_abandon(s, "new header");
		memcpy(s->held_hdr, hdr, sizeof(s->held_hdr));
		s->held = true;
		LOGI(s->fe.name, "header %02x %02x %02x %02x %02x waits until "
		     "the card has answered the abandoned TPDU", hdr[0], hdr[1],
		     hdr[2], hdr[3], hdr[4]);
		return;
	}
	memcpy(s->tpdu, hdr, 5);
	s->tpdu_len = 5;
	s->cse = apdu_tpdu_case(hdr);
	if (!s->cse) {
		LOGI(s->fe.name, "unknown INS %02x: treated as case 2", hdr[1]);
		s->cse = APDU_CASE_2;
	}
	LOGD(s->fe.name, "header %02x %02x %02x %02x %02x, case %d", hdr[0],
	     hdr[1], hdr[2], hdr[3], hdr[4], s->cse);
	if ((s->cse == APDU_CASE_3 || s->cse == APDU_CASE_4) && hdr[4]) {
		/* ACK: the modem sends the P3 command bytes next */
		st2_tx_data(s, CEMU_F_PB_AND_RX, &hdr[1], 1);
		st2_set_tp(s, TP_WAIT_DATA, "procedure byte sent");
		return;
	}
	st2_forward(s);
}

static void st2_on_data(struct st2 *s, uint32_t flags, const uint8_t *data,
			size_t len)
{
	if (s->tp != TP_WAIT_DATA) {
		LOGE(s->fe.name, "%zu command bytes without a header waiting "
		     "for them: dropped", len);
		return;
	}
	if (s->tpdu_len + len > 5u + s->tpdu[4]) {
		LOGE(s->fe.name, "%zu command bytes, header announced %u: "
		     "answered 67 00", s->tpdu_len - 5 + len, s->tpdu[4]);
		st2_tx_sw(s, 0x67, 0x00);
		st2_set_tp(s, TP_IDLE, "wrong length");
		return;
	}
	memcpy(s->tpdu + s->tpdu_len, data, len);
	s->tpdu_len += len;
	if (!(flags & CEMU_F_FINAL))
		return;		/* partial data: more follows */
	if (s->tpdu_len != 5u + s->tpdu[4]) {
		LOGE(s->fe.name, "%zu command bytes, header announced %u: "
		     "answered 67 00", s->tpdu_len - 5, s->tpdu[4]);
		st2_tx_sw(s, 0x67, 0x00);
		st2_set_tp(s, TP_IDLE, "wrong length");
		return;
	}
	st2_forward(s);
}

static void st2_on_rx_data(struct st2 *s, const uint8_t *p, size_t len)
{
	uint32_t flags;
	size_t dlen;

	if (len < 6 || (dlen = (size_t)(p[4] | p[5] << 8)) != len - 6) {
		LOGE(s->fe.name, "RX_DATA with a wrong length (%zu bytes): "
		     "dropped", len);
		return;
	}
	flags = p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		(uint32_t)p[3] << 24;
	if (s->state != ST2_REMOTE) {
		LOGI(s->fe.name, "RX_DATA while %s: dropped",
		     st2_state_names[s->state]);
		return;
	}
	if (flags & CEMU_F_TPDU_HDR) {
		if (dlen != 5) {
			LOGE(s->fe.name, "TPDU header of %zu bytes: dropped",
			     dlen);
			return;
		}
		st2_on_header(s, p + 6);
		return;
	}
	st2_on_data(s, flags, p + 6, dlen);
}

/* ---- status from the modem side ----------------------------------------- */

static void st2_on_status(struct st2 *s, const uint8_t *p, size_t len)
{
	uint8_t old = s->status, now;
	bool reset;
	struct rspro_slot_status st;

	if (len < 6) {
		LOGE(s->fe.name, "STATUS of %zu bytes: dropped", len);
		return;
	}
	now = p[0];
	if (s->have_status && now == old)
		return;
	LOGI(s->fe.name, "modem: VCC %s (%u mV), CLK %s, RST %s",
	     now & CEMU_S_VCC ? "on" : "off", p[4] | p[5] << 8,
	     now & CEMU_S_CLK ? "on" : "off",
	     now & CEMU_S_RESET ? "active" : "inactive");
	/* VCC falling or RST rising with VCC on: the card is reset */
	reset = s->have_status &&
		(((old & CEMU_S_VCC) && !(now & CEMU_S_VCC)) ||
		 (!(old & CEMU_S_RESET) && (now & CEMU_S_RESET) &&
		  (now & CEMU_S_VCC)));
	s->status = now;
	s->have_status = true;
	if (s->state != ST2_REMOTE)
		return;
	if (reset) {
		st2_abandon(s, "modem reset");
		LOGN(s->fe.name, "the modem resets the card (%s)",
		     now & CEMU_S_VCC ? "warm" : "power off");
		client_fire_event(s->fe.client, "modem-reset");
	}
	st = (struct rspro_slot_status){
		.reset_active = (now & CEMU_S_RESET) != 0,
		.vcc_present = (now & CEMU_S_VCC) != 0,
		.clk_active = (now & CEMU_S_CLK) != 0,
		.card_present = -1,
	};
	client_send_slot_status(s->fe.client, &st);
}

/* ---- usb_cardem callbacks ----------------------------------------------- */

static void st2_usb_up(void *arg, const char *desc)
{
	struct st2 *s = arg;
	/* CONFIG: STATUS_IRQ on, mux slot 0, pres_pol not given (5.8) */
	static const uint8_t config[6] = { 0x01, 0, 0, 0, 0, 0 };

	client_set_usb_device(s->fe.client, desc);
	snprintf(s->fe.name, sizeof(s->fe.name), "simtrace2 %s", desc);
	s->have_status = false;
	st2_send(s, CEMU_CLASS_CARDEM, CEMU_CONFIG, config, sizeof(config));
	st2_set_state(s, ST2_LOCAL, "device up, status events on");
	client_fire_event(s->fe.client, "usb-arrived");
	st2_go_remote(s, "card already mapped");
}

static void st2_usb_down(void *arg, const char *reason)
{
	struct st2 *s = arg;

	st2_abandon(s, "device lost");
	st2_set_state(s, ST2_NO_DEVICE, reason);
	client_fire_event(s->fe.client, "usb-removed");
}

static void st2_usb_message(void *arg, bool irq, uint8_t cls, uint8_t type,
			    const uint8_t *p, size_t len)
{
	struct st2 *s = arg;

	if (cls == CEMU_CLASS_CARDEM && type == CEMU_RX_DATA && !irq) {
		st2_on_rx_data(s, p, len);
	} else if (cls == CEMU_CLASS_CARDEM && type == CEMU_STATUS) {
		st2_on_status(s, p, len);
	} else if (cls == CEMU_CLASS_CARDEM && type == CEMU_CONFIG) {
		LOGI(s->fe.name, "device config: features 0x%02x%s", len ? p[0] :
		     0, len >= 4 && (p[0] & 1) ? " (status events on)" : "");
	} else if (cls == CEMU_CLASS_CARDEM && type == CEMU_PTS) {
		LOGI(s->fe.name, "the modem negotiated PPS (%zu bytes): the "
		     "firmware answered it", len);
	} else if (cls == CEMU_CLASS_GENERIC && type == 0) {
		LOGE(s->fe.name, "the device reports an error (%zu bytes)",
		     len);
	} else {
		LOGE(s->fe.name, "unknown message class %u type %u (%zu "
		     "bytes) on the %s endpoint: dropped", cls, type, len,
		     irq ? "interrupt" : "bulk");
	}
}

static const struct usb_cardem_ops st2_usb_ops = {
	.up = st2_usb_up,
	.down = st2_usb_down,
	.message = st2_usb_message,
};

/* ---- front-end ops ------------------------------------------------------ */

static int st2_start(struct frontend *fe)
{
	struct st2 *s = (struct st2 *)fe;

	LOGN(fe->name, "looking for the card-emulation device; the modem "
	     "gets the card once %s is mapped", client_name(fe->client));
	return usb_cardem_start(s->usb);
}

static void st2_card_insert(struct frontend *fe, const uint8_t *atr,
			    size_t len)
{
	struct st2 *s = (struct st2 *)fe;

	s->have_card = true;
	st2_store_atr(s, atr, len);
	st2_go_remote(s, "card inserted");
}

static void st2_card_atr(struct frontend *fe, const uint8_t *atr, size_t len)
{
	struct st2 *s = (struct st2 *)fe;

	st2_store_atr(s, atr, len);
	if (s->state == ST2_LOCAL) {
		/* e.g. the last ATR was too long: this one may do */
		st2_go_remote(s, "new ATR");
		return;
	}
	if (s->state != ST2_REMOTE)
		return;
	if (!s->atr_len) {
		st2_go_local(s, "new ATR too long for the emulator");
		return;
	}
	/* SET_ATR only acts at the next reset: re-insert and reset */
	LOGN(fe->name, "new ATR: card re-inserted, modem reset");
	st2_set_atr(s);
	st2_send_u8(s, CEMU_CLASS_CARDEM, CEMU_CARDINSERT, 0);
	st2_send_u8(s, CEMU_CLASS_CARDEM, CEMU_CARDINSERT, 1);
	st2_modem_reset(s);
}

static void st2_card_remove(struct frontend *fe, const char *reason)
{
	struct st2 *s = (struct st2 *)fe;

	s->have_card = false;
	st2_go_local(s, reason);
}

static void st2_tpdu_response(struct frontend *fe, const uint8_t *data,
			      size_t len)
{
	struct st2 *s = (struct st2 *)fe;
	uint8_t buf[1 + 256];
	size_t n = len - 2;

	if (s->tp == TP_DISCARD) {
		LOGI(fe->name, "answer to a TPDU the modem abandoned: dropped");
		st2_discard_done(s, "stale answer dropped");
		return;
	}
	if (s->tp != TP_AT_CARD || s->state != ST2_REMOTE)
		return;
	if (n && (s->cse == APDU_CASE_3 || s->cse == APDU_CASE_4)) {
		/* T=0 has no data phase after command data (7.3) */
		LOGE(fe->name, "the card returned %zu data bytes to a case %d "
		     "command: only the status word goes to the modem", n,
		     s->cse);
		n = 0;
	}
	if (n > 256) {
		LOGE(fe->name, "%zu response bytes: cut to 256", n);
		n = 256;
	}
	if (n) {
		buf[0] = s->tpdu[1];	/* ACK = INS, then the data */
		memcpy(buf + 1, data, n);
		st2_tx_data(s, CEMU_F_PB_AND_TX, buf, 1 + n);
	}
	st2_tx_sw(s, data[len - 2], data[len - 1]);
	st2_set_tp(s, TP_IDLE, "answered");
}

static void st2_tpdu_failed(struct frontend *fe, const char *reason)
{
	struct st2 *s = (struct st2 *)fe;

	if (s->tp == TP_DISCARD) {
		st2_discard_done(s, reason);
		return;
	}
	if (s->tp != TP_AT_CARD)
		return;
	/* "no precise diagnosis": one final answer, as T=0 requires */
	st2_tx_sw(s, 0x6f, 0x00);
	st2_set_tp(s, TP_IDLE, reason);
}

static void st2_free(struct frontend *fe)
{
	struct st2 *s = (struct st2 *)fe;
	/* leave the modem on its local SIM (9.1 teardown) */
	static const uint8_t ins0[] = { 1, 5, 0, 0, 0, 0, 9, 0, 0 };
	static const uint8_t local[] = { 2, 2, 0, 0, 0, 0, 9, 0, 0 };
	const uint8_t *bye[] = { ins0, local };

	usb_cardem_free(s->usb, bye, s->state == ST2_REMOTE ? 2 : 0);
	free(s);
}

static const struct frontend_ops st2_ops = {
	.name = "simtrace2",
	.start = st2_start,
	.card_insert = st2_card_insert,
	.card_atr = st2_card_atr,
	.card_remove = st2_card_remove,
	.tpdu_response = st2_tpdu_response,
	.tpdu_failed = st2_tpdu_failed,
	.free = st2_free,
};

struct frontend *frontend_simtrace2_new(struct loop *loop,
					const struct frontend_options *o)
{
	struct st2 *s = calloc(1, sizeof(*s));
	struct usb_cardem_match m = {
		.vid = o->usb_vid,
		.pid = o->usb_pid,
		.serial = o->usb_serial,
		.path = o->usb_path,
		.interface = o->usb_interface,
	};

	if (!s)
		return NULL;
	s->fe.ops = &st2_ops;
	s->fe.loop = loop;
	s->reset_ms = o->modem_reset_ms;
	snprintf(s->fe.name, sizeof(s->fe.name), "simtrace2");
	s->usb = usb_cardem_new(loop, &m, &st2_usb_ops, s);
	if (!s->usb) {
		free(s);
		return NULL;
	}
	return &s->fe;
}
