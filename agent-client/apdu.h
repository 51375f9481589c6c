/*
 * apdu: turning a command APDU (as a PC/SC program or a shell user writes
 * it) into the T=0 command TPDUs a bankd relays, the way a modem would send
 * them: case 4 loses its Le, 61xx/9Fxx/6Cxx come back raw unless automatic
 * GET RESPONSE is on. Pure logic, no I/O.
 */
#ifndef REMSIM_CLIENT_APDU_H
#define REMSIM_CLIENT_APDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define APDU_MAX_TPDU		260	/* CLA INS P1 P2 P3 + 255 data bytes */
#define APDU_MAX_RESPONSE	4096	/* data collected over GET RESPONSEs */
#define APDU_MAX_ROUNDS		16	/* TPDUs per APDU with auto GET RESPONSE */

enum apdu_case {
	APDU_CASE_1 = 1,	/* CLA INS P1 P2 */
	APDU_CASE_2 = 2,	/* + Le */
	APDU_CASE_3 = 3,	/* + Lc data */
	APDU_CASE_4 = 4,	/* + Lc data Le */
};

enum apdu_step {
	APDU_STEP_SEND,		/* x->tpdu holds the next TPDU to send */
	APDU_STEP_DONE,		/* x->resp holds the response APDU */
	APDU_STEP_ERROR,	/* x->error says why */
};

struct apdu_xfer {
	bool auto_get_response;
	enum apdu_case cse;
	uint8_t header[5];	/* of the first TPDU, for a 6Cxx re-send */
	uint8_t tpdu[APDU_MAX_TPDU];
	size_t tpdu_len;
	uint8_t resp[APDU_MAX_RESPONSE + 2];
	size_t resp_len;	/* data collected so far, then + SW */
	unsigned int rounds;
	char error[96];
};

/*
 * Classifies a short-length APDU and writes its T=0 TPDU: case 1 gets
 * P3 = 00, case 2 is unchanged (P3 = Le), case 3 unchanged, case 4 drops
 * Le. Returns the TPDU length or -1 with a reason in err (extended
 * lengths, Lc that does not match, too short).
 */
int apdu_to_tpdu(const uint8_t *apdu, size_t len, uint8_t *tpdu,
		 enum apdu_case *cse, char *err, size_t errlen);

/*
 * The case of a T=0 command TPDU seen as a header only, as a SIM card
 * emulator must decide it (simtrace2-cardem.md 7.2): by INS (and P1/P3
 * where the INS alone does not tell). Unknown INS: 0, the caller treats it
 * as case 2 (header forwarded at once).
 */
enum apdu_case apdu_tpdu_case(const uint8_t hdr[5]);

/* Starts an exchange: APDU_STEP_SEND (first TPDU ready) or ERROR. */
enum apdu_step apdu_xfer_begin(struct apdu_xfer *x, bool auto_get_response,
			       const uint8_t *apdu, size_t len);
/* Feeds the response to the last TPDU: SEND again, DONE or ERROR. */
enum apdu_step apdu_xfer_next(struct apdu_xfer *x, const uint8_t *resp,
			      size_t len);

#endif
