/*
 * vsim_card: the APDU engine of a virtual SIM/USIM. Decodes T=0 TPDUs in the
 * UICC classes (00, 80: TS 102 221 / TS 31.102) and the GSM class (A0: GSM
 * 11.11), runs file system, authentication and T=0 GET RESPONSE commands;
 * PIN commands are in vsim_pin.c. Status words follow the class used.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "vsim.h"

/* ---- status words -------------------------------------------------------- */

static const uint16_t sw_uicc[] = {
	[SW_OK] = 0x9000,
	[SW_WRONG_LENGTH] = 0x6700,
	[SW_WRONG_P1P2] = 0x6a86,
	[SW_WRONG_OFFSET] = 0x6b00,
	[SW_INS_UNKNOWN] = 0x6d00,
	[SW_CLA_UNKNOWN] = 0x6e00,
	[SW_CHANNEL_UNSUPPORTED] = 0x6881,
	[SW_FILE_NOT_FOUND] = 0x6a82,
	[SW_RECORD_NOT_FOUND] = 0x6a83,
	[SW_NO_EF] = 0x6986,
	[SW_WRONG_STRUCTURE] = 0x6981,
	[SW_SECURITY] = 0x6982,
	[SW_PIN_BLOCKED] = 0x6983,
	[SW_PIN_DISABLED] = 0x6984,
	[SW_CONDITIONS] = 0x6985,
	[SW_WRONG_DATA] = 0x6a80,
	[SW_REF_NOT_FOUND] = 0x6a88,
	[SW_AUTH_MAC] = 0x9862,
	[SW_AUTH_CONTEXT] = 0x9864,
	[SW_TECHNICAL] = 0x6f00,
};

/* GSM 11.11 section 9.4 */
static const uint16_t sw_gsm[] = {
	[SW_OK] = 0x9000,
	[SW_WRONG_LENGTH] = 0x6700,
	[SW_WRONG_P1P2] = 0x6b00,
	[SW_WRONG_OFFSET] = 0x9402,
	[SW_INS_UNKNOWN] = 0x6d00,
	[SW_CLA_UNKNOWN] = 0x6e00,
	[SW_CHANNEL_UNSUPPORTED] = 0x6e00,
	[SW_FILE_NOT_FOUND] = 0x9404,
	[SW_RECORD_NOT_FOUND] = 0x9402,
	[SW_NO_EF] = 0x9400,
	[SW_WRONG_STRUCTURE] = 0x9408,
	[SW_SECURITY] = 0x9804,
	[SW_PIN_BLOCKED] = 0x9840,
	[SW_PIN_DISABLED] = 0x9808,
	[SW_CONDITIONS] = 0x6f00,
	[SW_WRONG_DATA] = 0x6b00,
	[SW_REF_NOT_FOUND] = 0x6b00,
	[SW_AUTH_MAC] = 0x9862,
	[SW_AUTH_CONTEXT] = 0x9864,
	[SW_TECHNICAL] = 0x6f00,
};

enum vsim_sw vsim_reply_raw(struct vsim_reply *r, uint8_t sw1, uint8_t sw2)
{
	r->sw1 = sw1;
	r->sw2 = sw2;
	return SW_RAW;
}

void vsim_reply_sw(struct vsim_reply *r, const struct vsim_apdu *a,
		   enum vsim_sw sw)
{
	uint16_t v = a->gsm ? sw_gsm[sw] : sw_uicc[sw];

	vsim_reply_raw(r, (uint8_t)(v >> 8), (uint8_t)v);
}

/* "wrong length, xx is right": 6Cxx (UICC, T=0) or 67xx (GSM 11.11) */
static enum vsim_sw card_reply_exact_length(struct vsim_reply *r,
					   const struct vsim_apdu *a,
					   size_t len)
{
	return vsim_reply_raw(r, a->gsm ? 0x67 : 0x6c, (uint8_t)len);
}

enum vsim_sw vsim_reply_later(struct vsim_card *card, struct vsim_reply *r,
			      const struct vsim_apdu *a, const uint8_t *data,
			      size_t len)
{
	memcpy(card->pending, data, len);
	card->pending_len = len;
	return vsim_reply_raw(r, a->gsm ? 0x9f : 0x61, (uint8_t)len);
}

/* data answered directly (case 2): Le must match exactly */
static enum vsim_sw card_reply_data(struct vsim_reply *r,
				    const struct vsim_apdu *a,
				    const uint8_t *data, size_t len)
{
	size_t le = a->p3 ? a->p3 : 256;

	if (le != len)
		return card_reply_exact_length(r, a, len);
	memcpy(r->buf, data, len);
	r->len = len;
	return SW_OK;
}

/* ---- file control parameters --------------------------------------------- */

static size_t card_count_children(int df, int want_df)
{
	size_t n = 0;

	for (int i = 0; i < (int)vsim_fs_count(); i++)
		if (vsim_fs_file(i)->parent == df &&
		    vsim_fs_is_df(i) == want_df)
			n++;
	return n;
}

/* TS 102 221 11.1.1.3: FCP template 62 */
static size_t card_build_fcp(const struct vsim_card *card, int idx,
			     uint8_t *out)
{
	const struct vsim_file *f = vsim_fs_file(idx);
	const struct vsim_pin *p1 = &card->pins[VSIM_PIN1];
	const struct vsim_pin *p2 = &card->pins[VSIM_PIN2];
	size_t n = 2, size = vsim_fs_content_size(idx);

	out[n++] = 0x82;
	if (f->type == VSIM_FILE_LINEAR_FIXED) {
		out[n++] = 5;
		out[n++] = 0x42;
		out[n++] = 0x21;
		out[n++] = 0x00;
		out[n++] = (uint8_t)f->size;
		out[n++] = f->records;
	} else {
		out[n++] = 2;
		out[n++] = f->type == VSIM_FILE_TRANSPARENT ? 0x41 : 0x78;
		out[n++] = 0x21;
	}
	out[n++] = 0x83;
	out[n++] = 2;
	out[n++] = (uint8_t)(f->fid >> 8);
	out[n++] = (uint8_t)f->fid;
	if (f->type == VSIM_FILE_ADF) {
		out[n++] = 0x84;
		out[n++] = f->aid_len;
		memcpy(out + n, f->aid, f->aid_len);
		n += f->aid_len;
	}
	out[n++] = 0x8a;	/* life cycle: operational, activated */
	out[n++] = 1;
	out[n++] = 0x05;
	if (vsim_fs_is_df(idx)) {
		/* PIN status: PS_DO (bit 8 PIN1, bit 7 PIN2 enabled), refs */
		static const uint8_t refs[] = { 0x83, 1, 0x01, 0x83, 1, 0x81 };

		out[n++] = 0xc6;
		out[n++] = 3 + sizeof(refs);
		out[n++] = 0x90;
		out[n++] = 1;
		out[n++] = (uint8_t)((p1->enabled ? 0x80 : 0) |
				     (p2->enabled ? 0x40 : 0));
		memcpy(out + n, refs, sizeof(refs));
		n += sizeof(refs);
	} else {
		out[n++] = 0x80;
		out[n++] = 2;
		out[n++] = (uint8_t)(size >> 8);
		out[n++] = (uint8_t)size;
	}
	out[0] = 0x62;
	out[1] = (uint8_t)(n - 2);
	return n;
}

static uint8_t card_gsm_access(enum vsim_access acc)
{
	return acc == VSIM_ACC_ALWAYS ? 0x0 : acc == VSIM_ACC_PIN1 ? 0x1 : 0x4;
}

static uint8_t card_gsm_chv_status(uint8_t retries)
{
	return (uint8_t)(0x80 | retries); /* b8: secret code initialised */
}

/* GSM 11.11 9.2.1: response to SELECT of an MF/DF (22 bytes) or EF (15) */
static size_t card_build_gsm_response(const struct vsim_card *card, int idx,
				      uint8_t *out)
{
	const struct vsim_file *f = vsim_fs_file(idx);
	size_t size = vsim_fs_content_size(idx);
	const struct vsim_pin *p1 = &card->pins[VSIM_PIN1];
	const struct vsim_pin *p2 = &card->pins[VSIM_PIN2];

	memset(out, 0, 22);
	out[4] = (uint8_t)(f->fid >> 8);
	out[5] = (uint8_t)f->fid;
	if (!vsim_fs_is_df(idx)) {
		out[2] = (uint8_t)(size >> 8);
		out[3] = (uint8_t)size;
		out[6] = 0x04;
		out[8] = (uint8_t)(card_gsm_access(f->read) << 4 |
				   card_gsm_access(f->update));
		out[9] = 0xff;	/* increase: never */
		out[10] = 0x44;	/* rehabilitate, invalidate: ADM */
		out[11] = 0x01;	/* not invalidated */
		out[12] = 2;
		out[13] = f->type == VSIM_FILE_LINEAR_FIXED ? 0x01 : 0x00;
		out[14] = f->type == VSIM_FILE_LINEAR_FIXED ? (uint8_t)f->size :
							      0;
		return 15;
	}
	out[6] = f->type == VSIM_FILE_MF ? 0x01 : 0x02;
	out[12] = 9;
	/* b8: CHV1 disabled, b1: clock stop allowed */
	out[13] = (uint8_t)((p1->enabled ? 0 : 0x80) | 0x01);
	out[14] = (uint8_t)card_count_children(idx, 1);
	out[15] = (uint8_t)card_count_children(idx, 0);
	out[16] = 4;	/* CHV1, CHV2, UNBLOCK CHV1, UNBLOCK CHV2 */
	out[18] = card_gsm_chv_status(p1->retries);
	out[19] = card_gsm_chv_status(p1->puk_retries);
	out[20] = card_gsm_chv_status(p2->retries);
	out[21] = card_gsm_chv_status(p2->puk_retries);
	return 22;
}

/* ---- SELECT -------------------------------------------------------------- */

/* TS 102 221 8.4.1: which FIDs a SELECT by FID may reach from cur_df */
static int card_find_fid(const struct vsim_card *card, uint16_t fid, int gsm)
{
	int df = card->cur_df;
	int parent = vsim_fs_file(df)->parent;
	int idx;

	if (fid == 0x3f00)
		return VSIM_FS_MF;
	if (fid == 0x7fff)
		return gsm ? -1 : card->cur_adf;
	if (fid == vsim_fs_file(df)->fid)
		return df;
	idx = vsim_fs_child(df, fid);
	if (idx >= 0)
		return idx;
	if (parent >= 0) {
		if (fid == vsim_fs_file(parent)->fid)
			return parent;
		idx = vsim_fs_child(parent, fid);
		if (idx >= 0 && vsim_fs_is_df(idx))
			return idx;
	}
	return -1;
}

/* a path of FIDs (P1 08 from the MF, 09 from the current DF) */
static int card_find_path(const struct vsim_card *card, const uint8_t *path,
			  size_t len, int start)
{
	int idx = start;

	if (len == 0 || len % 2)
		return -1;
	for (size_t i = 0; i < len; i += 2) {
		uint16_t fid = (uint16_t)(path[i] << 8 | path[i + 1]);

		if (!vsim_fs_is_df(idx))
			return -1;	/* only the last element may be an EF */
		if (i == 0 && start == VSIM_FS_MF && fid == 0x3f00)
			continue;	/* tolerate a path that names the MF */
		if (fid == 0x7fff && vsim_fs_file(idx)->type == VSIM_FILE_MF)
			idx = card->cur_adf;
		else
			idx = vsim_fs_child(idx, fid);
		if (idx < 0)
			return -1;
	}
	return idx;
}

static void card_set_selected(struct vsim_card *card, int idx)
{
	if (vsim_fs_is_df(idx)) {
		card->cur_df = idx;
		card->cur_ef = -1;
	} else {
		card->cur_ef = idx;
		card->cur_df = vsim_fs_file(idx)->parent;
	}
	if (vsim_fs_file(card->cur_df)->type == VSIM_FILE_ADF)
		card->cur_adf = card->cur_df;
	card->cur_record = 0;
}

static enum vsim_sw card_select_gsm(struct vsim_card *card,
				    const struct vsim_apdu *a,
				    struct vsim_reply *r)
{
	uint8_t resp[22];
	int idx;

	if (a->p1 || a->p2)
		return SW_WRONG_P1P2;
	if (a->lc != 2)
		return SW_WRONG_LENGTH;
	idx = card_find_fid(card, (uint16_t)(a->data[0] << 8 | a->data[1]),
			    1);
	if (idx < 0)
		return SW_FILE_NOT_FOUND;
	card_set_selected(card, idx);
	return vsim_reply_later(card, r, a, resp,
			 card_build_gsm_response(card, idx, resp));
}

static enum vsim_sw card_select(struct vsim_card *card,
				const struct vsim_apdu *a,
				struct vsim_reply *r)
{
	uint8_t fcp[128];
	int idx = -1;
	size_t n;

	if (a->gsm)
		return card_select_gsm(card, a, r);
	/* P2: b2-b1 occurrence (first only), b4-b3 what to return */
	if (a->p2 != 0x00 && a->p2 != 0x04 && a->p2 != 0x0c)
		return SW_WRONG_P1P2;
	switch (a->p1) {
	case 0x00:
		if (a->lc != 2)
			return SW_WRONG_LENGTH;
		idx = card_find_fid(card, (uint16_t)(a->data[0] << 8 |
						     a->data[1]), 0);
		break;
	case 0x03:
		if (a->lc != 0)
			return SW_WRONG_LENGTH;
		idx = vsim_fs_file(card->cur_df)->parent;
		break;
	case 0x04:
		if (a->lc == 0 || a->lc > 16)
			return SW_WRONG_LENGTH;
		idx = vsim_fs_find_aid(a->data, a->lc);
		break;
	case 0x08:
	case 0x09:
		if (a->lc == 0 || a->lc % 2)
			return SW_WRONG_LENGTH;
		idx = card_find_path(card, a->data, a->lc,
				     a->p1 == 0x08 ? VSIM_FS_MF : card->cur_df);
		break;
	default:
		return SW_WRONG_P1P2;
	}
	if (idx < 0)
		return SW_FILE_NOT_FOUND;
	card_set_selected(card, idx);
	if (a->p2 == 0x0c)
		return SW_OK;
	n = card_build_fcp(card, idx, fcp);
	return vsim_reply_later(card, r, a, fcp, n);
}

/* ---- transparent and record EFs ------------------------------------------ */

/* SW_OK if the current EF has that structure and the access is granted */
static enum vsim_sw card_check_ef(const struct vsim_card *card,
				  enum vsim_file_type type, int update)
{
	const struct vsim_file *f;

	if (card->cur_ef < 0)
		return SW_NO_EF;
	f = vsim_fs_file(card->cur_ef);
	if (f->type != type)
		return SW_WRONG_STRUCTURE;
	if (!vsim_pin_access_granted(card, update ? f->update : f->read))
		return SW_SECURITY;
	return SW_OK;
}

static enum vsim_sw card_binary(struct vsim_card *card,
				const struct vsim_apdu *a,
				struct vsim_reply *r)
{
	int update = a->ins == 0xd6;
	size_t offset, size;
	enum vsim_sw sw;
	uint8_t *data;

	/* P1 b8 set: a short file identifier, which this card lacks */
	if (!a->gsm && (a->p1 & 0x80))
		return SW_FILE_NOT_FOUND;
	sw = card_check_ef(card, VSIM_FILE_TRANSPARENT, update);
	if (sw != SW_OK)
		return sw;
	offset = (size_t)(a->p1 & 0x7f) << 8 | a->p2;
	size = vsim_fs_content_size(card->cur_ef);
	data = card->contents[card->cur_ef];
	if (offset >= size)
		return SW_WRONG_OFFSET;
	if (!update) {
		/* Le bytes from offset; more than the file holds: 6Cxx */
		size_t le = a->p3 ? a->p3 : 256;

		if (le > size - offset)
			return card_reply_exact_length(r, a, size - offset);
		memcpy(r->buf, data + offset, le);
		r->len = le;
		return SW_OK;
	}
	if (a->lc == 0 || offset + a->lc > size)
		return SW_WRONG_LENGTH;
	memcpy(data + offset, a->data, a->lc);
	return SW_OK;
}

/* record number for READ/UPDATE RECORD mode P2 b3-b1; 0 if none */
static int card_record_number(struct vsim_card *card,
			      const struct vsim_apdu *a, int records)
{
	switch (a->p2 & 0x07) {
	case 0x04:	/* absolute, or current with P1 = 0 */
		return a->p1 ? (a->p1 <= records ? a->p1 : 0) :
			       card->cur_record;
	case 0x02:	/* next */
		if (card->cur_record >= records)
			return 0;
		return card->cur_record = card->cur_record + 1;
	case 0x03:	/* previous */
		if (card->cur_record == 1)
			return 0;
		card->cur_record = card->cur_record ? card->cur_record - 1 :
						      records;
		return card->cur_record;
	}
	return -1;
}

static enum vsim_sw card_record(struct vsim_card *card,
				const struct vsim_apdu *a,
				struct vsim_reply *r)
{
	int update = a->ins == 0xdc;
	const struct vsim_file *f;
	enum vsim_sw sw;
	uint8_t *rec;
	int nr;

	/* P2 b8-b4: short file identifier, which this card lacks */
	if (a->p2 >> 3)
		return SW_FILE_NOT_FOUND;
	if ((a->p2 & 0x07) < 0x02 || (a->p2 & 0x07) > 0x04 ||
	    (a->p1 && (a->p2 & 0x07) != 0x04))
		return SW_WRONG_P1P2;
	sw = card_check_ef(card, VSIM_FILE_LINEAR_FIXED, update);
	if (sw != SW_OK)
		return sw;
	f = vsim_fs_file(card->cur_ef);
	if (update && a->lc != f->size)
		return SW_WRONG_LENGTH;
	nr = card_record_number(card, a, f->records);
	if (nr <= 0)
		return SW_RECORD_NOT_FOUND;
	rec = card->contents[card->cur_ef] + (size_t)(nr - 1) * f->size;
	if (!update)
		return card_reply_data(r, a, rec, f->size);
	memcpy(rec, a->data, a->lc);
	return SW_OK;
}

/* ---- STATUS, GET RESPONSE, GET CHALLENGE --------------------------------- */

static enum vsim_sw card_status(struct vsim_card *card,
				const struct vsim_apdu *a,
				struct vsim_reply *r)
{
	const struct vsim_file *f;
	uint8_t buf[128];
	size_t n;

	if (a->gsm) {
		if (a->p1 || a->p2)
			return SW_WRONG_P1P2;
		n = card_build_gsm_response(card, card->cur_df, buf);
		/* GSM 11.11: the first P3 bytes of the DF response */
		if (a->p3 == 0 || a->p3 > n)
			return card_reply_exact_length(r, a, n);
		memcpy(r->buf, buf, a->p3);
		r->len = a->p3;
		return SW_OK;
	}
	/* P1: 00 no indication, 01 app initialised, 02 app terminating */
	if (a->p1 > 0x02)
		return SW_WRONG_P1P2;
	switch (a->p2) {
	case 0x00:
		return card_reply_data(r, a, buf,
				       card_build_fcp(card, card->cur_df, buf));
	case 0x01:
		if (card->cur_adf < 0)
			return SW_CONDITIONS;
		f = vsim_fs_file(card->cur_adf);
		buf[0] = 0x84;
		buf[1] = f->aid_len;
		memcpy(buf + 2, f->aid, f->aid_len);
		return card_reply_data(r, a, buf, 2 + (size_t)f->aid_len);
	case 0x0c:
		return SW_OK;
	}
	return SW_WRONG_P1P2;
}

static enum vsim_sw card_get_response(struct vsim_card *card,
				      const struct vsim_apdu *a,
				      struct vsim_reply *r)
{
	size_t want = a->p3 ? a->p3 : 256;
	size_t rest;

	if (a->p1 || a->p2)
		return SW_WRONG_P1P2;
	if (card->pending_len == 0)
		return SW_CONDITIONS;
	if (want > card->pending_len)
		return card_reply_exact_length(r, a, card->pending_len);
	memcpy(r->buf, card->pending, want);
	r->len = want;
	rest = card->pending_len - want;
	if (rest) {
		/* the terminal asked for less: the rest waits for the next */
		memmove(card->pending, card->pending + want, rest);
		card->pending_len = rest;
		return vsim_reply_raw(r, a->gsm ? 0x9f : 0x61, (uint8_t)rest);
	}
	card->pending_len = 0;
	return SW_OK;
}

static void card_random_default(uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = getrandom(buf + done, len - done, 0);

		if (n <= 0)
			abort();	/* the kernel's RNG is always there */
		done += (size_t)n;
	}
}

static enum vsim_sw card_get_challenge(struct vsim_card *card,
				       const struct vsim_apdu *a,
				       struct vsim_reply *r)
{
	size_t n = a->p3 ? a->p3 : 256;

	if (a->p1 || a->p2)
		return SW_WRONG_P1P2;
	card->random(r->buf, n);
	r->len = n;
	return SW_OK;
}

/* TERMINAL PROFILE, TERMINAL CAPABILITY, SLEEP: nothing to do */
static enum vsim_sw card_accept(struct vsim_card *card,
				const struct vsim_apdu *a,
				struct vsim_reply *r)
{
	return SW_OK;
}

/* ---- dispatch ------------------------------------------------------------ */

enum card_class {
	CLASS_ISO = 1,		/* 0X: interindustry */
	CLASS_PROP = 2,		/* 8X: TS 102 221 proprietary */
	CLASS_GSM = 4,		/* A0: GSM 11.11 */
};

struct card_command {
	uint8_t ins;
	uint8_t classes;
	uint8_t data_in;	/* case 3/4: P3 is Lc; else case 1/2: Le */
	enum vsim_sw (*run)(struct vsim_card *card, const struct vsim_apdu *a,
			    struct vsim_reply *r);
};

#define ISO_GSM (CLASS_ISO | CLASS_GSM)

static const struct card_command card_commands[] = {
	{ 0xa4, ISO_GSM, 1, card_select },
	{ 0xf2, CLASS_PROP | CLASS_GSM, 0, card_status },
	{ 0xb0, ISO_GSM, 0, card_binary },
	{ 0xd6, ISO_GSM, 1, card_binary },
	{ 0xb2, ISO_GSM, 0, card_record },
	{ 0xdc, ISO_GSM, 1, card_record },
	{ 0xc0, ISO_GSM, 0, card_get_response },
	{ 0x84, CLASS_ISO, 0, card_get_challenge },
	{ 0x88, ISO_GSM, 1, vsim_auth_command },
	{ 0x20, ISO_GSM, 1, vsim_pin_command },
	{ 0x24, ISO_GSM, 1, vsim_pin_command },
	{ 0x26, ISO_GSM, 1, vsim_pin_command },
	{ 0x28, ISO_GSM, 1, vsim_pin_command },
	{ 0x2c, ISO_GSM, 1, vsim_pin_command },
	{ 0x10, CLASS_PROP | CLASS_GSM, 1, card_accept },
	{ 0xaa, CLASS_PROP, 1, card_accept },
	{ 0xfa, CLASS_GSM, 0, card_accept },
};

static const struct card_command *card_find_command(uint8_t ins)
{
	for (size_t i = 0; i < sizeof(card_commands) / sizeof(card_commands[0]);
	     i++)
		if (card_commands[i].ins == ins)
			return &card_commands[i];
	return NULL;
}

/* class of CLA, or a status word why it is refused */
static int card_classify(uint8_t cla, enum vsim_sw *why)
{
	if (cla == 0xa0)
		return CLASS_GSM;
	if ((cla & 0xf0) != 0x00 && (cla & 0xf0) != 0x80) {
		*why = SW_CLA_UNKNOWN;
		return 0;
	}
	if (cla & 0x0c) {	/* secure messaging */
		*why = SW_CLA_UNKNOWN;
		return 0;
	}
	if (cla & 0x03) {	/* logical channels 1-3 */
		*why = SW_CHANNEL_UNSUPPORTED;
		return 0;
	}
	return cla & 0x80 ? CLASS_PROP : CLASS_ISO;
}

/* T=0: header (4), P3, then Lc data bytes; a trailing Le is tolerated */
static int card_decode_lengths(struct vsim_apdu *a, const uint8_t *apdu,
			       size_t len, int data_in)
{
	a->p3 = len >= 5 ? apdu[4] : 0;
	a->data = apdu + 5;
	a->lc = 0;
	if (len == 4)
		return 0;
	if (!data_in)
		return len == 5 ? 0 : -1;
	a->lc = a->p3;
	return len == 5 + a->lc || len == 6 + a->lc ? 0 : -1;
}

static enum vsim_sw card_dispatch(struct vsim_card *card,
				  const uint8_t *apdu, size_t len,
				  struct vsim_apdu *a, struct vsim_reply *r)
{
	const struct card_command *cmd;
	enum vsim_sw why = SW_OK;
	int cls;

	if (len < 4)
		return SW_WRONG_LENGTH;
	a->cla = apdu[0];
	a->ins = apdu[1];
	a->p1 = apdu[2];
	a->p2 = apdu[3];
	cls = card_classify(a->cla, &why);
	a->gsm = cls == CLASS_GSM;
	if (!cls)
		return why;
	cmd = card_find_command(a->ins);
	if (!cmd)
		return SW_INS_UNKNOWN;
	if (!(cmd->classes & cls))
		return SW_CLA_UNKNOWN;
	if (card_decode_lengths(a, apdu, len, cmd->data_in))
		return SW_WRONG_LENGTH;
	/* data for GET RESPONSE is only there for the very next command */
	if (a->ins != 0xc0)
		card->pending_len = 0;
	return cmd->run(card, a, r);
}

size_t vsim_card_process(struct vsim_card *card, const uint8_t *apdu,
			 size_t len, uint8_t *resp)
{
	struct vsim_reply r = { .buf = resp };
	struct vsim_apdu a = { 0 };
	enum vsim_sw sw;

	sw = card_dispatch(card, apdu, len, &a, &r);
	if (sw != SW_RAW)
		vsim_reply_sw(&r, &a, sw);
	resp[r.len] = r.sw1;
	resp[r.len + 1] = r.sw2;
	return r.len + 2;
}

/* ---- life cycle ---------------------------------------------------------- */

void vsim_card_reset(struct vsim_card *card)
{
	card->cur_df = VSIM_FS_MF;
	card->cur_ef = -1;
	card->cur_adf = -1;
	card->cur_record = 0;
	card->pending_len = 0;
	for (int i = 0; i < VSIM_PIN_COUNT; i++)
		card->pins[i].verified = 0;
}

struct vsim_card *vsim_card_new(const struct vsim_profile *profile)
{
	struct vsim_card *card = calloc(1, sizeof(*card));

	if (!card)
		return NULL;
	card->profile = *profile;
	card->random = card_random_default;
	for (size_t i = 0; i < vsim_fs_count(); i++) {
		size_t n = vsim_fs_content_size((int)i);

		if (!n)
			continue;
		card->contents[i] = malloc(n);
		if (!card->contents[i]) {
			vsim_card_free(card);
			return NULL;
		}
	}
	vsim_fs_init_contents(profile, card->contents);
	vsim_pin_init(card);
	vsim_card_reset(card);
	return card;
}

void vsim_card_free(struct vsim_card *card)
{
	if (!card)
		return;
	for (size_t i = 0; i < vsim_fs_count(); i++)
		free(card->contents[i]);
	free(card);
}
