/*
 * vsim_pin: PIN1/PIN2 of a virtual card with their retry counters (3 PIN,
 * 10 PUK tries): VERIFY, CHANGE, DISABLE, ENABLE and UNBLOCK in the UICC
 * (TS 102 221 11.1.9-13) and GSM (11.11 9.2.9-13) flavours.
 */
#include <string.h>

#include "vsim.h"

#define PIN_BLOCK 8	/* PINs travel as 8 bytes: ASCII digits, FF padded */

void vsim_pin_init(struct vsim_card *card)
{
	const struct vsim_profile *p = &card->profile;
	struct vsim_pin *p1 = &card->pins[VSIM_PIN1];
	struct vsim_pin *p2 = &card->pins[VSIM_PIN2];

	strcpy(p1->value, p->pin1);
	strcpy(p1->puk, p->puk1);
	p1->enabled = p->pin1_enabled;
	strcpy(p2->value, p->pin2);
	strcpy(p2->puk, p->puk2);
	p2->enabled = 1;	/* PIN2 cannot be disabled */
	for (int i = 0; i < VSIM_PIN_COUNT; i++) {
		card->pins[i].retries = VSIM_PIN_TRIES;
		card->pins[i].puk_retries = VSIM_PUK_TRIES;
		card->pins[i].verified = 0;
	}
}

int vsim_pin_access_granted(const struct vsim_card *card,
			    enum vsim_access acc)
{
	const struct vsim_pin *p1 = &card->pins[VSIM_PIN1];

	switch (acc) {
	case VSIM_ACC_ALWAYS:
		return 1;
	case VSIM_ACC_PIN1:
		return !p1->enabled || p1->verified;
	case VSIM_ACC_ADM:
		break;
	}
	return 0;
}

/* P2 names the PIN: UICC 01/81, GSM 01/02 (and 00 for UNBLOCK CHV1) */
static struct vsim_pin *pin_from_ref(struct vsim_card *card,
				     const struct vsim_apdu *a)
{
	if (a->p2 == 0x01 || (a->gsm && a->p2 == 0x00 && a->ins == 0x2c))
		return &card->pins[VSIM_PIN1];
	if (a->p2 == (a->gsm ? 0x02 : 0x81))
		return &card->pins[VSIM_PIN2];
	return NULL;
}

static int pin_matches(const char *secret, const uint8_t *block)
{
	uint8_t want[PIN_BLOCK];
	size_t n = strlen(secret);

	memset(want, 0xff, sizeof(want));
	memcpy(want, secret, n);
	return !memcmp(want, block, PIN_BLOCK);
}

/* a new PIN: 4 to 8 ASCII digits, then FF padding; copied into out */
static int pin_parse_new(const uint8_t *block, char *out)
{
	size_t n = 0;

	while (n < PIN_BLOCK && block[n] >= '0' && block[n] <= '9')
		n++;
	if (n < 4)
		return -1;
	for (size_t i = n; i < PIN_BLOCK; i++)
		if (block[i] != 0xff)
			return -1;
	memcpy(out, block, n);
	out[n] = '\0';
	return 0;
}

/* a wrong PIN or PUK: one try less; 63Cx (UICC) or 9804/9840 (GSM) */
static enum vsim_sw pin_wrong(struct vsim_reply *r, const struct vsim_apdu *a,
			      uint8_t *retries)
{
	if (*retries)
		(*retries)--;
	if (a->gsm)
		return *retries ? SW_SECURITY : SW_PIN_BLOCKED;
	return vsim_reply_raw(r, 0x63, (uint8_t)(0xc0 | *retries));
}

/* UICC VERIFY/UNBLOCK without data: how many tries are left */
static enum vsim_sw pin_report(struct vsim_reply *r, const struct vsim_pin *p,
			       int puk)
{
	uint8_t left = puk ? p->puk_retries : p->retries;

	if (!left)
		return SW_PIN_BLOCKED;
	if (!puk && (p->verified || !p->enabled))
		return SW_OK;
	return vsim_reply_raw(r, 0x63, (uint8_t)(0xc0 | left));
}

/* checks the PIN in data; SW_OK if right */
static enum vsim_sw pin_check(struct vsim_pin *p, const struct vsim_apdu *a,
			      struct vsim_reply *r)
{
	if (!p->retries)
		return SW_PIN_BLOCKED;
	if (!pin_matches(p->value, a->data)) {
		p->verified = 0;
		return pin_wrong(r, a, &p->retries);
	}
	p->retries = VSIM_PIN_TRIES;
	p->verified = 1;
	return SW_OK;
}

static enum vsim_sw pin_change(struct vsim_pin *p, const struct vsim_apdu *a,
			       struct vsim_reply *r)
{
	char next[VSIM_PIN_MAX + 1];
	enum vsim_sw sw;

	if (a->lc != 2 * PIN_BLOCK)
		return SW_WRONG_LENGTH;
	if (!p->enabled)
		return SW_PIN_DISABLED;
	if (pin_parse_new(a->data + PIN_BLOCK, next))
		return SW_WRONG_DATA;
	sw = pin_check(p, a, r);
	if (sw == SW_OK)
		strcpy(p->value, next);
	return sw;
}

/* DISABLE (enable = 0) and ENABLE (1) verification of PIN1 */
static enum vsim_sw pin_set_enabled(struct vsim_card *card,
				    struct vsim_pin *p,
				    const struct vsim_apdu *a,
				    struct vsim_reply *r, int enable)
{
	enum vsim_sw sw;

	if (p != &card->pins[VSIM_PIN1])
		return SW_REF_NOT_FOUND;
	if (a->lc != PIN_BLOCK)
		return SW_WRONG_LENGTH;
	if (p->enabled == enable)
		return a->gsm ? SW_PIN_DISABLED : SW_CONDITIONS;
	sw = pin_check(p, a, r);
	if (sw == SW_OK)
		p->enabled = enable;
	return sw;
}

static enum vsim_sw pin_unblock(struct vsim_pin *p, const struct vsim_apdu *a,
				struct vsim_reply *r)
{
	char next[VSIM_PIN_MAX + 1];

	if (a->lc == 0 && !a->gsm)
		return pin_report(r, p, 1);
	if (a->lc != 2 * PIN_BLOCK)
		return SW_WRONG_LENGTH;
	if (!p->puk_retries)
		return SW_PIN_BLOCKED;
	if (!pin_matches(p->puk, a->data))
		return pin_wrong(r, a, &p->puk_retries);
	if (pin_parse_new(a->data + PIN_BLOCK, next))
		return SW_WRONG_DATA;
	strcpy(p->value, next);
	p->puk_retries = VSIM_PUK_TRIES;
	p->retries = VSIM_PIN_TRIES;
	p->verified = 1;
	return SW_OK;
}

enum vsim_sw vsim_pin_command(struct vsim_card *card,
			      const struct vsim_apdu *a, struct vsim_reply *r)
{
	struct vsim_pin *p;

	if (a->p1 != 0x00)
		return SW_WRONG_P1P2;
	p = pin_from_ref(card, a);
	if (!p)
		return SW_REF_NOT_FOUND;
	switch (a->ins) {
	case 0x20:	/* VERIFY */
		if (a->lc == 0 && !a->gsm)
			return pin_report(r, p, 0);
		if (a->lc != PIN_BLOCK)
			return SW_WRONG_LENGTH;
		return pin_check(p, a, r);
	case 0x24:	/* CHANGE */
		return pin_change(p, a, r);
	case 0x26:	/* DISABLE */
		return pin_set_enabled(card, p, a, r, 0);
	case 0x28:	/* ENABLE */
		return pin_set_enabled(card, p, a, r, 1);
	case 0x2c:	/* UNBLOCK */
		return pin_unblock(p, a, r);
	}
	return SW_INS_UNKNOWN;
}
