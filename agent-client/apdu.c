/*
 * apdu: ISO 7816-3 mapping of command APDUs onto T=0 TPDUs and the
 * optional GET RESPONSE / re-send loop (ISO 7816-4 5.3 and 3GPP TS 51.011
 * 9.4 for the SIM's 9Fxx). Used by the shell and vpcd front ends.
 */
#include "apdu.h"

#include <stdio.h>
#include <string.h>

enum apdu_case apdu_tpdu_case(const uint8_t hdr[5])
{
	uint8_t cla = hdr[0], ins = hdr[1], p1 = hdr[2], p3 = hdr[4];

	switch (ins) {
	case 0x04:	/* DEACTIVATE FILE */
	case 0x44:	/* ACTIVATE FILE */
	case 0xfa:	/* SLEEP (GSM) */
		return APDU_CASE_1;
	case 0x70:	/* MANAGE CHANNEL: open returns the channel number */
		return p1 == 0x00 ? APDU_CASE_2 : APDU_CASE_1;
	case 0xb0:	/* READ BINARY */
	case 0xb2:	/* READ RECORD */
	case 0xc0:	/* GET RESPONSE */
	case 0x84:	/* GET CHALLENGE */
	case 0x12:	/* FETCH */
		return APDU_CASE_2;
	case 0xf2:	/* STATUS; GlobalPlatform GET STATUS with CLA 8x */
		return (cla & 0xf0) == 0x80 && (p1 & 0xe0) ? APDU_CASE_4 :
							     APDU_CASE_2;
	case 0xca:	/* GET DATA */
	case 0xcb:
		return p3 == 0 ? APDU_CASE_2 : APDU_CASE_4;
	case 0xd6:	/* UPDATE BINARY */
	case 0xdc:	/* UPDATE RECORD */
	case 0x20:	/* VERIFY */
	case 0x24:	/* CHANGE PIN */
	case 0x26:	/* DISABLE PIN */
	case 0x28:	/* ENABLE PIN */
	case 0x2c:	/* UNBLOCK PIN */
	case 0x10:	/* TERMINAL PROFILE */
	case 0x14:	/* TERMINAL RESPONSE */
	case 0xe0:	/* CREATE FILE */
	case 0xe4:	/* DELETE FILE */
		return APDU_CASE_3;
	case 0xa4:	/* SELECT */
	case 0x88:	/* AUTHENTICATE / RUN GSM ALGORITHM */
	case 0x89:	/* AUTHENTICATE (odd INS) */
	case 0xc2:	/* ENVELOPE */
	case 0xa2:	/* SEARCH RECORD / SEEK */
	case 0x32:	/* INCREASE */
		return APDU_CASE_4;
	default:
		return 0;
	}
}

int apdu_to_tpdu(const uint8_t *apdu, size_t len, uint8_t *tpdu,
		 enum apdu_case *cse, char *err, size_t errlen)
{
	size_t lc;

	if (len < 4) {
		snprintf(err, errlen, "APDU of %zu bytes: at least CLA INS P1 "
			 "P2 needed", len);
		return -1;
	}
	if (len == 4) {
		memcpy(tpdu, apdu, 4);
		tpdu[4] = 0x00;
		*cse = APDU_CASE_1;
		return 5;
	}
	if (len == 5) {
		memcpy(tpdu, apdu, 5);
		*cse = APDU_CASE_2;
		return 5;
	}
	lc = apdu[4];
	if (lc == 0) {
		snprintf(err, errlen, "extended-length APDU: T=0 has no "
			 "extended lengths");
		return -1;
	}
	if (len == 5 + lc) {
		*cse = APDU_CASE_3;
	} else if (len == 6 + lc) {
		*cse = APDU_CASE_4;
	} else {
		snprintf(err, errlen, "APDU of %zu bytes does not match its "
			 "Lc %zu", len, lc);
		return -1;
	}
	memcpy(tpdu, apdu, 5 + lc);
	return (int)(5 + lc);
}

enum apdu_step apdu_xfer_begin(struct apdu_xfer *x, bool auto_get_response,
			       const uint8_t *apdu, size_t len)
{
	int n;

	memset(x, 0, sizeof(*x));
	x->auto_get_response = auto_get_response;
	n = apdu_to_tpdu(apdu, len, x->tpdu, &x->cse, x->error,
			 sizeof(x->error));
	if (n < 0)
		return APDU_STEP_ERROR;
	x->tpdu_len = (size_t)n;
	memcpy(x->header, x->tpdu, 5);
	x->rounds = 1;
	return APDU_STEP_SEND;
}

/* Appends data bytes (no SW) to what the APDU answers. */
static int apdu_collect(struct apdu_xfer *x, const uint8_t *data, size_t n)
{
	if (n > APDU_MAX_RESPONSE - x->resp_len) {
		snprintf(x->error, sizeof(x->error), "response longer than "
			 "%d bytes", APDU_MAX_RESPONSE);
		return -1;
	}
	memcpy(x->resp + x->resp_len, data, n);
	x->resp_len += n;
	return 0;
}

enum apdu_step apdu_xfer_next(struct apdu_xfer *x, const uint8_t *resp,
			      size_t len)
{
	uint8_t sw1, sw2;

	if (len < 2) {
		snprintf(x->error, sizeof(x->error), "response of %zu bytes "
			 "has no status word", len);
		return APDU_STEP_ERROR;
	}
	sw1 = resp[len - 2];
	sw2 = resp[len - 1];
	if (apdu_collect(x, resp, len - 2) < 0)
		return APDU_STEP_ERROR;

	if (x->auto_get_response && x->rounds < APDU_MAX_ROUNDS) {
		/* 61xx (ISO) and 9Fxx (GSM SIM): xx bytes wait for us */
		if (sw1 == 0x61 || sw1 == 0x9f) {
			x->tpdu[0] = x->header[0];
			x->tpdu[1] = 0xc0;
			x->tpdu[2] = 0x00;
			x->tpdu[3] = 0x00;
			x->tpdu[4] = sw2;
			x->tpdu_len = 5;
			x->rounds++;
			return APDU_STEP_SEND;
		}
		/* 6Cxx: wrong Le, repeat with P3 = xx (case 1/2 only) */
		if (sw1 == 0x6c && (x->cse == APDU_CASE_1 ||
				    x->cse == APDU_CASE_2)) {
			memcpy(x->tpdu, x->header, 4);
			x->tpdu[4] = sw2;
			x->tpdu_len = 5;
			x->rounds++;
			return APDU_STEP_SEND;
		}
	}
	x->resp[x->resp_len++] = sw1;
	x->resp[x->resp_len++] = sw2;
	return APDU_STEP_DONE;
}
