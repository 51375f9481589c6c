/*
 * pcsc_card: PC/SC calls for one worker. Readers are connected exclusively
 * (osmo-remsim 1.1's default; -s allows shared) with protocol T=0 only, as
 * the TPDUs RSPRO carries are T=0 TPDUs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcsc_card.h"

#define PCSC_CARD_MAX_READERS 64

void pcsc_card_init(struct pcsc_card *c)
{
	memset(c, 0, sizeof(*c));
}

static int pcsc_card_map_rv(LONG rv)
{
	switch (rv) {
	case SCARD_E_NO_SERVICE:
	case SCARD_E_SERVICE_STOPPED:
		return PCSC_CARD_ERR_SERVICE;
	case SCARD_E_NO_READERS_AVAILABLE:
		return PCSC_CARD_ERR_NO_READER;
	case SCARD_E_NO_SMARTCARD:
	case SCARD_W_REMOVED_CARD:
	case SCARD_E_UNKNOWN_READER:
	case SCARD_E_READER_UNAVAILABLE:
		return PCSC_CARD_ERR_NO_CARD;
	default:
		return PCSC_CARD_ERR_IO;
	}
}

static int pcsc_card_fail(LONG rv, const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: %s (0x%08lx)", what,
		 pcsc_stringify_error(rv), (unsigned long)rv);
	return pcsc_card_map_rv(rv);
}

static int pcsc_card_read_atr(struct pcsc_card *c, char *err, size_t errlen)
{
	BYTE atr[MAX_ATR_SIZE];
	DWORD atr_len = sizeof(atr), state, proto, rlen = 0;
	LONG rv;

	rv = SCardStatus(c->handle, NULL, &rlen, &state, &proto, atr,
			 &atr_len);
	if (rv != SCARD_S_SUCCESS)
		return pcsc_card_fail(rv, "SCardStatus", err, errlen);
	if (!atr_len || atr_len > PCSC_CARD_MAX_ATR) {
		snprintf(err, errlen, "card ATR of %lu bytes (1..%d allowed)",
			 (unsigned long)atr_len, PCSC_CARD_MAX_ATR);
		return PCSC_CARD_ERR_ATR;
	}
	memcpy(c->atr, atr, atr_len);
	c->atr_len = atr_len;
	return 0;
}

/* Reader names of the multi-string into names[]; returns the count. */
static size_t pcsc_card_split(char *multi, DWORD len, const char **names,
			      size_t max)
{
	size_t n = 0;
	char *p = multi, *end = multi + len;

	while (p < end && *p && n < max) {
		names[n++] = p;
		p += strlen(p) + 1;
	}
	return n;
}

int pcsc_card_open(struct pcsc_card *c, const struct reader_map *map,
		   uint16_t bank_id, uint16_t slot_nr, bool shared, char *err,
		   size_t errlen)
{
	const char *names[PCSC_CARD_MAX_READERS];
	char *multi = NULL;
	DWORD len = 0, proto;
	size_t n;
	LONG rv;
	int idx, rc;

	pcsc_card_close(c);
	rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &c->ctx);
	if (rv != SCARD_S_SUCCESS)
		return pcsc_card_fail(rv, "SCardEstablishContext", err, errlen);
	c->have_ctx = true;
	rv = SCardListReaders(c->ctx, NULL, NULL, &len);
	if (rv == SCARD_S_SUCCESS) {
		multi = calloc(1, len + 1);
		if (!multi) {
			snprintf(err, errlen, "out of memory");
			rc = PCSC_CARD_ERR_IO;
			goto fail;
		}
		rv = SCardListReaders(c->ctx, NULL, multi, &len);
	}
	if (rv != SCARD_S_SUCCESS) {
		rc = pcsc_card_fail(rv, "SCardListReaders", err, errlen);
		goto fail;
	}
	n = pcsc_card_split(multi, len, names, PCSC_CARD_MAX_READERS);
	idx = reader_map_select(map, bank_id, slot_nr, names, n);
	if (idx < 0) {
		char how[300];

		reader_map_describe(map, bank_id, slot_nr, how, sizeof(how));
		snprintf(err, errlen, "no reader for bank %u slot %u (%s, %zu "
			 "readers)", bank_id, slot_nr, how, n);
		rc = idx == -ENOENT ? PCSC_CARD_ERR_NO_ROW :
				      PCSC_CARD_ERR_NO_READER;
		goto fail;
	}
	snprintf(c->reader, sizeof(c->reader), "%s", names[idx]);
	free(multi);
	multi = NULL;
	rv = SCardConnect(c->ctx, c->reader,
			  shared ? SCARD_SHARE_SHARED : SCARD_SHARE_EXCLUSIVE,
			  SCARD_PROTOCOL_T0, &c->handle, &proto);
	if (rv != SCARD_S_SUCCESS) {
		char what[300];

		snprintf(what, sizeof(what), "SCardConnect(\"%s\")", c->reader);
		rc = pcsc_card_fail(rv, what, err, errlen);
		goto fail;
	}
	c->connected = true;
	rc = pcsc_card_read_atr(c, err, errlen);
	if (rc)
		goto fail;
	return 0;
fail:
	free(multi);
	pcsc_card_close(c);
	return rc;
}

/*
 * After a failed transmit: is the card still there? Readers do not agree
 * on the error for a card pulled mid-command (vpcd: SCARD_E_NOT_TRANSACTED
 * or an empty answer), so ask.
 */
static bool pcsc_card_gone(struct pcsc_card *c)
{
	DWORD state = 0, proto = 0, atr_len = 0;
	LONG rv = SCardStatus(c->handle, NULL, NULL, &state, &proto, NULL,
			      &atr_len);

	return pcsc_card_map_rv(rv) == PCSC_CARD_ERR_NO_CARD ||
	       (rv == SCARD_S_SUCCESS && !(state & SCARD_PRESENT));
}

int pcsc_card_transmit(struct pcsc_card *c, const uint8_t *cmd, size_t len,
		       uint8_t *resp, size_t *resp_len, char *err,
		       size_t errlen)
{
	DWORD rlen = (DWORD)*resp_len;
	LONG rv;
	int rc;

	if (!c->connected) {
		snprintf(err, errlen, "card not open");
		return PCSC_CARD_ERR_IO;
	}
	rv = SCardTransmit(c->handle, SCARD_PCI_T0, cmd, (DWORD)len, NULL,
			   resp, &rlen);
	if (rv != SCARD_S_SUCCESS) {
		rc = pcsc_card_fail(rv, "SCardTransmit", err, errlen);
		return rc == PCSC_CARD_ERR_IO && pcsc_card_gone(c) ?
		       PCSC_CARD_ERR_NO_CARD : rc;
	}
	if (rlen < 2) {
		/* a client reads SW1 SW2 from the last two bytes */
		snprintf(err, errlen, "card answered %lu bytes, no status word",
			 (unsigned long)rlen);
		return pcsc_card_gone(c) ? PCSC_CARD_ERR_NO_CARD :
		       PCSC_CARD_ERR_IO;
	}
	*resp_len = rlen;
	return 0;
}

int pcsc_card_reset(struct pcsc_card *c, bool cold, bool shared, char *err,
		    size_t errlen)
{
	DWORD proto;
	LONG rv;

	if (!c->connected) {
		snprintf(err, errlen, "card not open");
		return PCSC_CARD_ERR_IO;
	}
	rv = SCardReconnect(c->handle,
			    shared ? SCARD_SHARE_SHARED : SCARD_SHARE_EXCLUSIVE,
			    SCARD_PROTOCOL_T0,
			    cold ? SCARD_UNPOWER_CARD : SCARD_RESET_CARD,
			    &proto);
	if (rv != SCARD_S_SUCCESS)
		return pcsc_card_fail(rv, "SCardReconnect", err, errlen);
	return pcsc_card_read_atr(c, err, errlen);
}

void pcsc_card_close(struct pcsc_card *c)
{
	if (c->connected)
		SCardDisconnect(c->handle, SCARD_UNPOWER_CARD);
	if (c->have_ctx)
		SCardReleaseContext(c->ctx);
	c->connected = false;
	c->have_ctx = false;
	c->atr_len = 0;
	c->reader[0] = '\0';
}

const char *pcsc_card_strerror(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case PCSC_CARD_ERR_SERVICE:
		return "PC/SC service not available";
	case PCSC_CARD_ERR_NO_ROW:
		return "no reader map row";
	case PCSC_CARD_ERR_NO_READER:
		return "no matching reader";
	case PCSC_CARD_ERR_NO_CARD:
		return "no card";
	case PCSC_CARD_ERR_ATR:
		return "unusable ATR";
	default:
		return "card I/O error";
	}
}
