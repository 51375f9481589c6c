/*
 * fuzz_rspro: arbitrary bytes through the IPA reassembler (in chunks the
 * input chooses) and every RSPRO frame through the decoder. A PDU that
 * decodes must render as JSON, re-encode, and decode again to the same
 * content; anything else must be refused with an error, never a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipa.h"
#include "rspro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_pdu(const uint8_t *bytes, size_t len)
{
	uint8_t again[RSPRO_MAX_PDU];
	RsproPDU_t *pdu, *pdu2;
	json_t *j, *j2;
	char err[256];
	ssize_t n;
	int rc = rspro_decode(bytes, len, &pdu, err, sizeof(err));

	if (rc && rc != RSPRO_ERR_VERSION) {
		if (pdu || !err[0])
			abort();	/* an error must say why, and own nothing */
		return;
	}
	j = rspro_to_json(pdu);
	if (!j)
		abort();
	n = rspro_encode(pdu, again, sizeof(again), err, sizeof(err));
	if (n == RSPRO_ERR_TOO_BIG) {
		/* BER input larger than anything we may send: fine */
	} else if (n < 0) {
		fprintf(stderr, "decoded but cannot re-encode: %s\n", err);
		abort();
	} else {
		rc = rspro_decode(again, (size_t)n, &pdu2, err, sizeof(err));
		if (rc && rc != RSPRO_ERR_VERSION)
			abort();
		j2 = rspro_to_json(pdu2);
		if (!json_equal(j, j2))
			abort();
		json_decref(j2);
		rspro_pdu_free(pdu2);
	}
	json_decref(j);
	rspro_pdu_free(pdu);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipa_reader r;
	struct ipa_frame f;
	size_t off = 0, chunk;
	uint8_t reply[4];
	int rc;

	/* the raw input as one PDU */
	check_pdu(data, size);

	/* the input as a byte stream, fed in chunks of 1..16 bytes */
	if (size < 1)
		return 0;
	chunk = (data[0] & 0x0f) + 1;
	ipa_reader_init(&r);
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;

		if (ipa_reader_feed(&r, data + off, n))
			break;
		off += n;
		while ((rc = ipa_reader_next(&r, &f)) == 1) {
			if (f.stream == IPA_STREAM_CCM)
				ipa_ccm_reply(&f, reply);
			else if (f.ext == IPA_OSMO_EXT_RSPRO)
				check_pdu(f.data, f.len);
		}
		if (rc < 0)
			break;	/* the connection would be closed */
	}
	return 0;
}
