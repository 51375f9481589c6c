/*
 * bench_codec: cost of the RSPRO codec on the APDU path. Measures ns per
 * encode and per decode of tpduModemToCard and tpduCardToModem carrying a
 * 261-byte payload, and the IPA reassembler's throughput. Prints one JSON
 * object (scripts/bench turns it into a table and a results file).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ipa.h"
#include "rspro.h"

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

struct codec_result {
	double encode_ns;	/* build-free: encode of an existing PDU */
	double decode_ns;	/* decode + constraint check + free */
	size_t pdu_len;
};

/* Best of several rounds: the least disturbed by the rest of the machine. */
static struct codec_result bench_pdu(RsproPDU_t *pdu, long iters, int rounds)
{
	struct codec_result best = { 1e18, 1e18, 0 };
	uint8_t buf[RSPRO_MAX_PDU];
	ssize_t n = 0;

	for (int r = 0; r < rounds; r++) {
		double t0 = now_ns();

		for (long i = 0; i < iters; i++) {
			n = rspro_encode(pdu, buf, sizeof(buf), NULL, 0);
			if (n < 0) {
				fprintf(stderr, "encode failed\n");
				exit(1);
			}
		}
		double t1 = now_ns();

		for (long i = 0; i < iters; i++) {
			RsproPDU_t *out;

			if (rspro_decode(buf, (size_t)n, &out, NULL, 0)) {
				fprintf(stderr, "decode failed\n");
				exit(1);
			}
			rspro_pdu_free(out);
		}
		double t2 = now_ns();

		if ((t1 - t0) / iters < best.encode_ns)
			best.encode_ns = (t1 - t0) / iters;
		if ((t2 - t1) / iters < best.decode_ns)
			best.decode_ns = (t2 - t1) / iters;
	}
	best.pdu_len = (size_t)n;
	return best;
}

/* MB/s through ipa_reader: a stream of TPDU-sized frames in 1460-byte reads. */
static double bench_ipa(long total_bytes, double *frames_per_s)
{
	static uint8_t stream[64 * 1024];
	size_t len = 0, frame = IPA_HDR_LEN + 1 + 312, count = 0;
	struct ipa_reader r;
	struct ipa_frame f;
	double t0, t1;
	long done = 0;

	while (len + frame <= sizeof(stream)) {
		ipa_write_header(stream + len, IPA_STREAM_OSMO,
				 IPA_OSMO_EXT_RSPRO, frame - 4);
		memset(stream + len + 4, 0x5a, frame - 4);
		len += frame;
	}
	ipa_reader_init(&r);
	t0 = now_ns();
	while (done < total_bytes) {
		for (size_t off = 0; off < len; off += 1460) {
			size_t n = len - off < 1460 ? len - off : 1460;

			if (ipa_reader_feed(&r, stream + off, n)) {
				fprintf(stderr, "reader full\n");
				exit(1);
			}
			while (ipa_reader_next(&r, &f) == 1)
				count++;
		}
		done += (long)len;
	}
	t1 = now_ns();
	*frames_per_s = (double)count / ((t1 - t0) / 1e9);
	return (double)done / ((t1 - t0) / 1e3);	/* bytes per us = MB/s */
}

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 200000;
	struct rspro_client_slot c = { 23, 0 };
	struct rspro_bank_slot b = { 1, 0 };
	uint8_t payload[261];
	struct codec_result m2c, c2m;
	RsproPDU_t *p1, *p2;
	double mbps, fps;

	if (iters < 1) {
		fprintf(stderr, "usage: bench_codec [ITERATIONS]\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7);
	p1 = rspro_gen_tpdu_modem2card(&c, &b, NULL, payload, sizeof(payload));
	p2 = rspro_gen_tpdu_card2modem(&b, &c, NULL, payload, sizeof(payload));
	m2c = bench_pdu(p1, iters, 5);
	c2m = bench_pdu(p2, iters, 5);
	mbps = bench_ipa(iters * 2000L, &fps);
	rspro_pdu_free(p1);
	rspro_pdu_free(p2);

	printf("{\"iterations\":%ld,"
	       "\"tpduModemToCard\":{\"pdu_bytes\":%zu,\"encode_ns\":%.1f,"
	       "\"decode_ns\":%.1f,\"encode_decode_ns\":%.1f},"
	       "\"tpduCardToModem\":{\"pdu_bytes\":%zu,\"encode_ns\":%.1f,"
	       "\"decode_ns\":%.1f,\"encode_decode_ns\":%.1f},"
	       "\"ipa_framing\":{\"mb_per_s\":%.1f,\"frames_per_s\":%.0f}}\n",
	       iters, m2c.pdu_len, m2c.encode_ns, m2c.decode_ns,
	       m2c.encode_ns + m2c.decode_ns, c2m.pdu_len, c2m.encode_ns,
	       c2m.decode_ns, c2m.encode_ns + c2m.decode_ns, mbps, fps);
	return 0;
}
