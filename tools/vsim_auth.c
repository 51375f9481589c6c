/*
 * vsim_auth: the test algorithm of 3GPP TS 34.108 section 8.1.2 (the "XOR"
 * algorithm test USIMs use) and the commands that run it: USIM AUTHENTICATE
 * and GSM RUN GSM ALGORITHM. docs/vsim.md spells out which bytes go where.
 */
#include <string.h>

#include "vsim.h"

static void auth_xdout(const uint8_t ki[VSIM_KI_LEN],
		       const uint8_t rand[VSIM_RAND_LEN], uint8_t xdout[16])
{
	for (int i = 0; i < 16; i++)
		xdout[i] = ki[i] ^ rand[i];
}

/* left rotation by n bytes: out[i] = in[(i + n) % 16] */
static void auth_rotate(uint8_t out[16], const uint8_t in[16], int n)
{
	for (int i = 0; i < 16; i++)
		out[i] = in[(i + n) % 16];
}

enum vsim_auth_status vsim_auth_umts(const uint8_t ki[VSIM_KI_LEN],
				     const uint8_t rand[VSIM_RAND_LEN],
				     const uint8_t autn[VSIM_AUTN_LEN],
				     struct vsim_auth_result *out)
{
	uint8_t xdout[16], cdout[8];
	uint8_t diff = 0;

	auth_xdout(ki, rand, xdout);
	memcpy(out->ak, xdout + 3, 6);
	/* AUTN = SQN ^ AK (6) || AMF (2) || MAC (8) */
	for (int i = 0; i < 6; i++)
		out->sqn[i] = autn[i] ^ out->ak[i];
	memcpy(cdout, out->sqn, 6);
	memcpy(cdout + 6, autn + 6, 2);
	/* XMAC = XDOUT[0..7] ^ CDOUT; compared without an early exit */
	for (int i = 0; i < 8; i++)
		diff |= (uint8_t)((xdout[i] ^ cdout[i]) ^ autn[8 + i]);
	memcpy(out->res, xdout, 8);
	auth_rotate(out->ck, xdout, 1);
	auth_rotate(out->ik, xdout, 2);
	return diff ? VSIM_AUTH_MAC_FAILURE : VSIM_AUTH_OK;
}

void vsim_auth_gsm(const uint8_t ki[VSIM_KI_LEN],
		   const uint8_t rand[VSIM_RAND_LEN], uint8_t sres[4],
		   uint8_t kc[8])
{
	uint8_t xdout[16];

	auth_xdout(ki, rand, xdout);
	memcpy(sres, xdout, 4);
	memcpy(kc, xdout + 4, 8);
}

/* ---- authentication ------------------------------------------------------ */

static enum vsim_sw auth_run_gsm_algorithm(struct vsim_card *card,
					   const struct vsim_apdu *a,
					   struct vsim_reply *r)
{
	uint8_t out[12];

	if (a->p1 || a->p2)
		return SW_WRONG_P1P2;
	if (a->lc != VSIM_RAND_LEN)
		return SW_WRONG_LENGTH;
	if (!vsim_pin_access_granted(card, VSIM_ACC_PIN1))
		return SW_SECURITY;
	vsim_auth_gsm(card->profile.ki, a->data, out, out + 4);
	return vsim_reply_later(card, r, a, out, sizeof(out));
}

/* TS 31.102 7.1.2: 3G context (P2 81) and GSM context (P2 80) */
enum vsim_sw vsim_auth_command(struct vsim_card *card,
			       const struct vsim_apdu *a, struct vsim_reply *r)
{
	struct vsim_auth_result res;
	uint8_t out[64];
	size_t n = 0;

	if (a->gsm)
		return auth_run_gsm_algorithm(card, a, r);
	if (a->p1 != 0x00)
		return SW_WRONG_P1P2;
	if (a->p2 != 0x80 && a->p2 != 0x81)
		return a->p2 > 0x81 && a->p2 <= 0x86 ? SW_AUTH_CONTEXT :
						       SW_WRONG_P1P2;
	if (a->lc != (a->p2 == 0x81 ? 34u : 17u))
		return SW_WRONG_LENGTH;
	if (a->data[0] != VSIM_RAND_LEN ||
	    (a->p2 == 0x81 && a->data[17] != VSIM_AUTN_LEN))
		return SW_WRONG_DATA;
	if (card->cur_adf < 0)
		return SW_CONDITIONS;
	if (!vsim_pin_access_granted(card, VSIM_ACC_PIN1))
		return SW_SECURITY;
	if (a->p2 == 0x80) {
		out[n++] = 4;
		vsim_auth_gsm(card->profile.ki, a->data + 1, out + n,
			      out + n + 5);
		n += 4;
		out[n++] = 8;
		n += 8;
		return vsim_reply_later(card, r, a, out, n);
	}
	if (vsim_auth_umts(card->profile.ki, a->data + 1, a->data + 18,
			   &res) != VSIM_AUTH_OK)
		return SW_AUTH_MAC;
	out[n++] = 0xdb;
	out[n++] = sizeof(res.res);
	memcpy(out + n, res.res, sizeof(res.res));
	n += sizeof(res.res);
	out[n++] = sizeof(res.ck);
	memcpy(out + n, res.ck, sizeof(res.ck));
	n += sizeof(res.ck);
	out[n++] = sizeof(res.ik);
	memcpy(out + n, res.ik, sizeof(res.ik));
	n += sizeof(res.ik);
	return vsim_reply_later(card, r, a, out, n);
}
