/*
 * test_ipa: the IPA reassembler with frames split at every byte boundary,
 * several frames per read, oversize and garbage headers, CCM answers, and
 * the golden frames of osmo-remsim 1.0.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "ipa.h"
#include "testdata.h"

/* PING, an RSPRO createMappingRes, a >255-byte frame, PONG */
static uint8_t stream[1024];
static size_t stream_len;
static size_t frame_len[4];

static void build_stream(void)
{
	static const uint8_t ping[] = { 0x00, 0x01, 0xfe, 0x00 };
	static const uint8_t pong[] = { 0x00, 0x01, 0xfe, 0x01 };
	static const uint8_t pdu[] = { 0x30, 0x0d, 0x80, 0x01, 0x02, 0x81, 0x01,
				       0x00, 0xa2, 0x05, 0xa5, 0x03, 0x0a, 0x01,
				       0x00 };
	size_t n = 0;

	memcpy(stream + n, ping, 4);
	frame_len[0] = 4;
	n += 4;
	n += ipa_write_header(stream + n, IPA_STREAM_OSMO, IPA_OSMO_EXT_RSPRO,
			      sizeof(pdu));
	memcpy(stream + n, pdu, sizeof(pdu));
	n += sizeof(pdu);
	frame_len[1] = 4 + sizeof(pdu);
	n += ipa_write_header(stream + n, IPA_STREAM_OSMO, IPA_OSMO_EXT_RSPRO,
			      300);
	for (int i = 0; i < 300; i++)
		stream[n++] = (uint8_t)i;
	frame_len[2] = 304;
	memcpy(stream + n, pong, 4);
	frame_len[3] = 4;
	n += 4;
	stream_len = n;
}

/* Checks the 4 frames of the stream come out in order and intact. */
static void check_frame(int idx, const struct ipa_frame *f)
{
	switch (idx) {
	case 0:
		assert_int_equal(f->stream, IPA_STREAM_CCM);
		assert_int_equal(f->ext, -1);
		assert_int_equal(f->len, 1);
		assert_int_equal(f->data[0], IPA_CCM_PING);
		break;
	case 1:
		assert_int_equal(f->stream, IPA_STREAM_OSMO);
		assert_int_equal(f->ext, IPA_OSMO_EXT_RSPRO);
		assert_int_equal(f->len, 15);
		assert_int_equal(f->data[0], 0x30);
		assert_int_equal(f->data[14], 0x00);
		break;
	case 2:
		assert_int_equal(f->ext, IPA_OSMO_EXT_RSPRO);
		assert_int_equal(f->len, 300);
		for (int i = 0; i < 300; i++)
			assert_int_equal(f->data[i], (uint8_t)i);
		break;
	case 3:
		assert_int_equal(f->data[0], IPA_CCM_PONG);
		break;
	default:
		fail_msg("too many frames");
	}
}

static int drain(struct ipa_reader *r, int *idx)
{
	struct ipa_frame f;
	int rc;

	while ((rc = ipa_reader_next(r, &f)) == 1)
		check_frame((*idx)++, &f);
	return rc;
}

static void test_split_everywhere(void **state)
{
	build_stream();
	for (size_t cut = 0; cut <= stream_len; cut++) {
		struct ipa_reader r;
		int idx = 0;

		ipa_reader_init(&r);
		assert_int_equal(ipa_reader_feed(&r, stream, cut), 0);
		assert_int_equal(drain(&r, &idx), 0);
		assert_int_equal(ipa_reader_feed(&r, stream + cut,
						 stream_len - cut), 0);
		assert_int_equal(drain(&r, &idx), 0);
		assert_int_equal(idx, 4);
	}
}

static void test_byte_by_byte_and_two_cuts(void **state)
{
	struct ipa_reader r;
	int idx = 0;

	build_stream();
	ipa_reader_init(&r);
	for (size_t i = 0; i < stream_len; i++) {
		assert_int_equal(ipa_reader_feed(&r, stream + i, 1), 0);
		assert_int_equal(drain(&r, &idx), 0);
	}
	assert_int_equal(idx, 4);

	/* three pieces, cut at every pair of points inside the first frames */
	for (size_t a = 0; a < 30; a++) {
		for (size_t b = a; b < 40; b++) {
			idx = 0;
			ipa_reader_init(&r);
			ipa_reader_feed(&r, stream, a);
			drain(&r, &idx);
			ipa_reader_feed(&r, stream + a, b - a);
			drain(&r, &idx);
			ipa_reader_feed(&r, stream + b, stream_len - b);
			drain(&r, &idx);
			assert_int_equal(idx, 4);
		}
	}
}

static void test_many_frames_one_read(void **state)
{
	struct ipa_reader r;
	uint8_t buf[2 * (IPA_HDR_LEN + IPA_MAX_RX_LEN)];
	struct ipa_frame f;
	size_t n = 0;
	int count = 0;

	/* fill the reader completely with PINGs, via the zero-copy API */
	while (n + 4 <= sizeof(buf))
		n += ipa_ccm_frame(buf + n, IPA_CCM_PING);
	ipa_reader_init(&r);
	{
		size_t room;
		uint8_t *p = ipa_reader_space(&r, &room);

		assert_true(room >= n);
		memcpy(p, buf, n);
		ipa_reader_commit(&r, n);
	}
	while (ipa_reader_next(&r, &f) == 1)
		count++;
	assert_int_equal(count, (int)(n / 4));
	/* and the buffer is usable again afterwards */
	assert_int_equal(ipa_reader_feed(&r, buf, n), 0);
}

static void test_reader_full(void **state)
{
	struct ipa_reader r;
	uint8_t big[IPA_HDR_LEN + IPA_MAX_RX_LEN];

	memset(big, 0, sizeof(big));
	ipa_write_header(big, IPA_STREAM_OSMO, IPA_OSMO_EXT_RSPRO,
			 IPA_MAX_RX_LEN - 1);
	ipa_reader_init(&r);
	assert_int_equal(ipa_reader_feed(&r, big, sizeof(big)), 0);
	assert_int_equal(ipa_reader_feed(&r, big, sizeof(big)), 0);
	/* two maximum frames fill it: a third byte does not fit */
	assert_int_equal(ipa_reader_feed(&r, big, 1), IPA_ERR_FULL);
}

static void test_oversize_and_malformed(void **state)
{
	struct ipa_reader r;
	struct ipa_frame f;
	uint8_t hdr[3];

	/* the largest accepted length passes, one more is refused */
	ipa_reader_init(&r);
	hdr[0] = IPA_MAX_RX_LEN >> 8;
	hdr[1] = IPA_MAX_RX_LEN & 0xff;
	hdr[2] = IPA_STREAM_OSMO;
	ipa_reader_feed(&r, hdr, 3);
	assert_int_equal(ipa_reader_next(&r, &f), 0);

	ipa_reader_init(&r);
	hdr[1] = (IPA_MAX_RX_LEN + 1) & 0xff;
	ipa_reader_feed(&r, hdr, 3);
	assert_int_equal(ipa_reader_next(&r, &f), IPA_ERR_OVERSIZE);
	/* stays refused */
	assert_int_equal(ipa_reader_next(&r, &f), IPA_ERR_OVERSIZE);

	ipa_reader_init(&r);
	ipa_reader_feed(&r, (const uint8_t *)"\xff\xff\xee", 3);
	assert_int_equal(ipa_reader_next(&r, &f), IPA_ERR_OVERSIZE);

	ipa_reader_init(&r);
	ipa_reader_feed(&r, (const uint8_t *)"\x00\x00\xfe", 3);
	assert_int_equal(ipa_reader_next(&r, &f), IPA_ERR_MALFORMED);

	assert_string_equal(ipa_strerror(IPA_ERR_OVERSIZE),
			    "IPA length above limit");
	assert_string_not_equal(ipa_strerror(IPA_ERR_MALFORMED),
				"unknown IPA error");
}

static void test_garbage(void **state)
{
	/* random bytes: frames or an error, never a crash or a bad frame */
	srand(1234);
	for (int round = 0; round < 2000; round++) {
		struct ipa_reader r;
		struct ipa_frame f;
		uint8_t junk[600];
		int rc;

		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (uint8_t)rand();
		if (round % 2)
			junk[0] = 0;	/* make small lengths likely */
		ipa_reader_init(&r);
		ipa_reader_feed(&r, junk, sizeof(junk));
		while ((rc = ipa_reader_next(&r, &f)) == 1) {
			assert_true(f.data >= r.buf);
			assert_true(f.data + f.len <= r.buf + sizeof(r.buf));
		}
		assert_true(rc <= 0);
	}
}

static void test_ccm_replies(void **state)
{
	static const uint8_t types[] = { IPA_CCM_PING, IPA_CCM_PONG,
					 IPA_CCM_ID_GET, IPA_CCM_ID_RESP,
					 IPA_CCM_ID_ACK, 0x42 };
	static const uint8_t want[] = { IPA_CCM_PONG, 0, 0, 0, IPA_CCM_ID_ACK,
					0 };

	for (size_t i = 0; i < sizeof(types); i++) {
		uint8_t frame[4], reply[4];
		struct ipa_frame f = { .stream = IPA_STREAM_CCM, .ext = -1,
				       .data = &types[i], .len = 1 };
		size_t n = ipa_ccm_reply(&f, reply);

		if (!want[i]) {
			assert_int_equal(n, 0);
			continue;
		}
		assert_int_equal(n, 4);
		ipa_ccm_frame(frame, want[i]);
		assert_memory_equal(reply, frame, 4);
	}
	assert_string_equal(ipa_ccm_name(IPA_CCM_PING), "PING");
	assert_string_equal(ipa_ccm_name(IPA_CCM_ID_ACK), "ID_ACK");
	assert_string_equal(ipa_ccm_name(0x42), "unknown");
}

struct golden_stats {
	int ccm, rspro;
};

static void check_golden_frame(const struct tsv_row *row, void *arg)
{
	struct golden_stats *st = arg;
	uint8_t bytes[1024], reply[4];
	struct ipa_reader r;
	struct ipa_frame f;
	ssize_t n = hex_decode(bytes, sizeof(bytes), row->col[2]);

	assert_true(n > 0);
	ipa_reader_init(&r);
	ipa_reader_feed(&r, bytes, (size_t)n);
	assert_int_equal(ipa_reader_next(&r, &f), 1);
	assert_int_equal(ipa_reader_next(&r, &f) , 0);
	/* re-read: the check above consumed it */
	ipa_reader_init(&r);
	ipa_reader_feed(&r, bytes, (size_t)n);
	ipa_reader_next(&r, &f);
	assert_int_equal(IPA_HDR_LEN + (f.ext >= 0) + f.len, (size_t)n);
	if (f.stream == IPA_STREAM_CCM) {
		st->ccm++;
		/* what osmo-remsim answered in the probe, we answer too */
		if (strstr(row->col[0], "ID_ACK (probe)")) {
			assert_int_equal(ipa_ccm_reply(&f, reply), 4);
			assert_memory_equal(reply, "\x00\x01\xfe\x06", 4);
		}
		if (strstr(row->col[0], "ID_GET"))
			assert_int_equal(ipa_ccm_reply(&f, reply), 0);
		return;
	}
	assert_int_equal(f.stream, IPA_STREAM_OSMO);
	assert_int_equal(f.ext, IPA_OSMO_EXT_RSPRO);
	st->rspro++;
}

static void test_golden_frames(void **state)
{
	struct golden_stats st = { 0 };
	int rows = tsv_foreach("rspro-ipa-frames.tsv", 1, check_golden_frame,
			       &st);

	assert_int_equal(rows, st.ccm + st.rspro);
	assert_true(st.ccm >= 8);
	assert_true(st.rspro >= 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_everywhere),
		cmocka_unit_test(test_byte_by_byte_and_two_cuts),
		cmocka_unit_test(test_many_frames_one_read),
		cmocka_unit_test(test_reader_full),
		cmocka_unit_test(test_oversize_and_malformed),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_ccm_replies),
		cmocka_unit_test(test_golden_frames),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
