/*
 * pcsc_card: one bank slot's card through PC/SC, used by one worker thread
 * at a time: open (list readers, pick one with the reader map, connect T=0,
 * read the ATR), transmit a TPDU, warm/cold reset, close (power off).
 */
#ifndef BANKD_PCSC_CARD_H
#define BANKD_PCSC_CARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <PCSC/winscard.h>

#include "reader_map.h"

#define PCSC_CARD_MAX_ATR	55	/* RSPRO's ATR size limit */
#define PCSC_CARD_MAX_RESP	1024

enum pcsc_card_error {
	PCSC_CARD_ERR_SERVICE = -1,	/* pcscd not reachable */
	PCSC_CARD_ERR_NO_ROW = -2,	/* reader map has no row */
	PCSC_CARD_ERR_NO_READER = -3,	/* no reader matches */
	PCSC_CARD_ERR_NO_CARD = -4,	/* reader empty or card removed */
	PCSC_CARD_ERR_IO = -5,		/* any other PC/SC failure */
	PCSC_CARD_ERR_ATR = -6,		/* ATR empty or longer than 55 */
};

struct pcsc_card {
	SCARDCONTEXT ctx;
	SCARDHANDLE handle;
	bool have_ctx;
	bool connected;
	char reader[256];
	uint8_t atr[PCSC_CARD_MAX_ATR];
	size_t atr_len;
};

void pcsc_card_init(struct pcsc_card *c);
/* 0, or a negative enum pcsc_card_error with the reason in err. */
int pcsc_card_open(struct pcsc_card *c, const struct reader_map *map,
		   uint16_t bank_id, uint16_t slot_nr, bool shared, char *err,
		   size_t errlen);
/* Sends one TPDU; *resp_len in: room, out: bytes received. */
int pcsc_card_transmit(struct pcsc_card *c, const uint8_t *cmd, size_t len,
		       uint8_t *resp, size_t *resp_len, char *err,
		       size_t errlen);
/* Warm (reset) or cold (power cycle) reset; re-reads the ATR. */
int pcsc_card_reset(struct pcsc_card *c, bool cold, bool shared, char *err,
		    size_t errlen);
/* Powers the card off and releases the PC/SC context. Idempotent. */
void pcsc_card_close(struct pcsc_card *c);

const char *pcsc_card_strerror(int err);

#endif
