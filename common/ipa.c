/*
 * ipa: IPA frame reassembly and construction, and the few CCM answers a
 * remsim component gives (PONG to PING, ID_ACK echo). The reader buffer
 * holds two maximum frames so that a read never has to wait for a compaction.
 */
#include "ipa.h"

#include <string.h>

void ipa_reader_init(struct ipa_reader *r)
{
	r->max_len = IPA_MAX_RX_LEN;
	r->start = 0;
	r->end = 0;
}

/* Moves unconsumed bytes to the front so the tail has room again. */
static void ipa_reader_compact(struct ipa_reader *r)
{
	if (r->start == 0)
		return;
	memmove(r->buf, r->buf + r->start, r->end - r->start);
	r->end -= r->start;
	r->start = 0;
}

uint8_t *ipa_reader_space(struct ipa_reader *r, size_t *room)
{
	if (r->end == sizeof(r->buf) || r->start > sizeof(r->buf) / 2)
		ipa_reader_compact(r);
	*room = sizeof(r->buf) - r->end;
	return r->buf + r->end;
}

void ipa_reader_commit(struct ipa_reader *r, size_t n)
{
	r->end += n;
}

int ipa_reader_feed(struct ipa_reader *r, const uint8_t *data, size_t len)
{
	size_t room;
	uint8_t *p = ipa_reader_space(r, &room);

	if (len > room)
		return IPA_ERR_FULL;
	memcpy(p, data, len);
	ipa_reader_commit(r, len);
	return 0;
}

int ipa_reader_next(struct ipa_reader *r, struct ipa_frame *f)
{
	const uint8_t *p = r->buf + r->start;
	size_t avail = r->end - r->start;
	size_t len;

	if (avail < IPA_HDR_LEN)
		return 0;
	len = (size_t)p[0] << 8 | p[1];
	if (len > r->max_len)
		return IPA_ERR_OVERSIZE;
	if (len == 0)
		return IPA_ERR_MALFORMED;
	if (avail < IPA_HDR_LEN + len)
		return 0;

	f->stream = p[2];
	f->ext = -1;
	f->data = p + IPA_HDR_LEN;
	f->len = len;
	if (f->stream == IPA_STREAM_OSMO) {
		/* len >= 1 was checked: the extension byte is there. */
		f->ext = f->data[0];
		f->data++;
		f->len--;
	}
	r->start += IPA_HDR_LEN + len;
	if (r->start == r->end)
		r->start = r->end = 0;
	return 1;
}

const char *ipa_strerror(int err)
{
	switch (err) {
	case IPA_ERR_OVERSIZE:
		return "IPA length above limit";
	case IPA_ERR_MALFORMED:
		return "malformed IPA header (length 0)";
	case IPA_ERR_FULL:
		return "IPA receive buffer full";
	default:
		return "unknown IPA error";
	}
}

size_t ipa_write_header(uint8_t *out, uint8_t stream, int ext,
			size_t payload_len)
{
	size_t len = payload_len + (ext >= 0 ? 1 : 0);

	out[0] = (uint8_t)(len >> 8);
	out[1] = (uint8_t)len;
	out[2] = stream;
	if (ext < 0)
		return IPA_HDR_LEN;
	out[3] = (uint8_t)ext;
	return IPA_HDR_LEN + 1;
}

size_t ipa_ccm_frame(uint8_t out[4], enum ipa_ccm_type type)
{
	out[0] = 0;
	out[1] = 1;
	out[2] = IPA_STREAM_CCM;
	out[3] = (uint8_t)type;
	return 4;
}

size_t ipa_ccm_reply(const struct ipa_frame *f, uint8_t reply[4])
{
	if (f->stream != IPA_STREAM_CCM || f->len < 1)
		return 0;
	switch (f->data[0]) {
	case IPA_CCM_PING:
		return ipa_ccm_frame(reply, IPA_CCM_PONG);
	case IPA_CCM_ID_ACK:
		/* osmo-remsim echoes ID_ACK; peers may expect it. */
		return ipa_ccm_frame(reply, IPA_CCM_ID_ACK);
	default:
		return 0;
	}
}

const char *ipa_ccm_name(uint8_t type)
{
	switch (type) {
	case IPA_CCM_PING:
		return "PING";
	case IPA_CCM_PONG:
		return "PONG";
	case IPA_CCM_ID_GET:
		return "ID_GET";
	case IPA_CCM_ID_RESP:
		return "ID_RESP";
	case IPA_CCM_ID_ACK:
		return "ID_ACK";
	default:
		return "unknown";
	}
}
