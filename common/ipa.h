/*
 * ipa: the IPA multiplex that carries RSPRO over TCP.
 *
 * Every message is "LEN(2, big endian) STREAM(1) PAYLOAD(LEN)". RSPRO uses
 * the Osmocom extension stream 0xEE with extension byte 0x07; connection
 * management (CCM: PING, PONG, ID_ACK, ...) uses stream 0xFE. The reader
 * reassembles frames from arbitrary partial reads and refuses oversize or
 * malformed headers with an error, never a crash.
 */
#ifndef REMSIM_IPA_H
#define REMSIM_IPA_H

#include <stddef.h>
#include <stdint.h>

#define IPA_HDR_LEN		3
#define IPA_STREAM_CCM		0xfe
#define IPA_STREAM_OSMO		0xee
#define IPA_OSMO_EXT_RSPRO	0x07

/*
 * Largest IPA length (bytes after the 3-byte header) accepted on receive:
 * the limit of osmo-remsim 1.0's receivers (3 + length <= 1200).
 */
#define IPA_MAX_RX_LEN		1197
/* Largest frame we send: an RSPRO PDU of at most 1016 bytes, framed. */
#define IPA_MAX_TX_FRAME	1020
#define RSPRO_MAX_PDU		(IPA_MAX_TX_FRAME - IPA_HDR_LEN - 1)

enum ipa_ccm_type {
	IPA_CCM_PING = 0x00,
	IPA_CCM_PONG = 0x01,
	IPA_CCM_ID_GET = 0x04,
	IPA_CCM_ID_RESP = 0x05,
	IPA_CCM_ID_ACK = 0x06,
};

/* One received frame; data points into the reader's buffer. */
struct ipa_frame {
	uint8_t stream;		/* IPA_STREAM_* or anything else seen */
	int ext;		/* extension byte for IPA_STREAM_OSMO, else -1 */
	const uint8_t *data;	/* payload after stream (and extension) byte */
	size_t len;
};

/* Errors (negative return values) of the reader. */
enum ipa_error {
	IPA_ERR_OVERSIZE = -1,	/* length field above the limit */
	IPA_ERR_MALFORMED = -2,	/* length 0, or an extension frame w/o ext */
	IPA_ERR_FULL = -3,	/* fed more than the buffer holds */
};

struct ipa_reader {
	size_t max_len;		/* largest accepted length field */
	size_t start;		/* first unconsumed byte */
	size_t end;		/* one past the last received byte */
	uint8_t buf[2 * (IPA_HDR_LEN + IPA_MAX_RX_LEN)];
};

void ipa_reader_init(struct ipa_reader *r);

/* Where to read() into, and how much fits there. */
uint8_t *ipa_reader_space(struct ipa_reader *r, size_t *room);
/* Account for n bytes read into ipa_reader_space(). */
void ipa_reader_commit(struct ipa_reader *r, size_t n);
/* Copies len bytes in; IPA_ERR_FULL if they do not fit (take frames first). */
int ipa_reader_feed(struct ipa_reader *r, const uint8_t *data, size_t len);

/*
 * Takes the next complete frame: 1 and *f filled, 0 when more bytes are
 * needed, or a negative enum ipa_error (the stream is then unusable: close
 * the connection). *f stays valid until the next call on r.
 */
int ipa_reader_next(struct ipa_reader *r, struct ipa_frame *f);

const char *ipa_strerror(int err);

/* Writes a 3-byte header (+ extension byte when ext >= 0); returns bytes. */
size_t ipa_write_header(uint8_t *out, uint8_t stream, int ext,
			size_t payload_len);

/* Writes a complete 4-byte CCM frame of the given type into out. */
size_t ipa_ccm_frame(uint8_t out[4], enum ipa_ccm_type type);

/*
 * What a CCM frame asks of us: PING is answered PONG, ID_ACK is echoed (as
 * osmo-remsim does), everything else gets no answer. Returns the length of
 * the reply written into reply (0: none).
 */
size_t ipa_ccm_reply(const struct ipa_frame *f, uint8_t reply[4]);

const char *ipa_ccm_name(uint8_t type);

#endif
