/*
 * remsimctl rspro: turn RSPRO bytes into JSON and back, for debugging
 * captures and for writing test cases. Input is hex (an RsproPDU, or a whole
 * IPA frame, detected by its 0xEE 0x07 header), one PDU per argument or per
 * line of standard input.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "ipa.h"
#include "remsimctl.h"
#include "rspro.h"

#define RSPRO_HEX_MAX	8192

struct rspro_opts {
	int ipa;	/* encode: frame the output for the wire */
	int pretty;	/* decode: indented JSON */
};

static void rspro_usage(FILE *out)
{
	fprintf(out,
		"usage: remsimctl rspro decode [--pretty] [HEX ...]\n"
		"       remsimctl rspro encode [--ipa] [JSON ...]\n"
		"\n"
		"decode: each HEX argument (or each line of stdin when none is\n"
		"        given) is an RsproPDU or a complete IPA frame; prints\n"
		"        one JSON object per PDU.\n"
		"encode: each JSON argument (or each line of stdin) is a PDU in\n"
		"        the form decode prints; prints its DER bytes as hex\n"
		"        (--ipa: with the IPA header, as sent on the wire).\n"
		"\n"
		"example:\n"
		"  remsimctl rspro decode 300d800102810100a205a5030a0100\n"
		"  remsimctl rspro decode --pretty < frames.txt\n"
		"  remsimctl rspro encode '{\"version\":2,\"tag\":0,\"msg\":"
		"{\"resetStateReq\":{}}}'\n"
		"\n"
		"exit status: 0 ok, 1 some input was invalid, 2 usage error\n");
}

/* Strips an IPA header (LL LL EE 07) when the bytes are a whole frame. */
static const uint8_t *rspro_strip_ipa(const uint8_t *b, size_t *len)
{
	if (*len >= 4 && b[2] == IPA_STREAM_OSMO && b[3] == IPA_OSMO_EXT_RSPRO &&
	    ((size_t)b[0] << 8 | b[1]) == *len - IPA_HDR_LEN) {
		*len -= 4;
		return b + 4;
	}
	return b;
}

static int rspro_decode_one(const char *what, const char *text,
			    const struct rspro_opts *o)
{
	static uint8_t buf[RSPRO_HEX_MAX];
	char err[256] = "";
	const uint8_t *pdu_bytes;
	RsproPDU_t *pdu;
	ssize_t n;
	size_t len;
	json_t *j;
	char *s;
	int rc;

	n = hex_decode(buf, sizeof(buf), text);
	if (n < 0) {
		fprintf(stderr, "remsimctl: %s: not a hex string\n", what);
		return -1;
	}
	len = (size_t)n;
	pdu_bytes = rspro_strip_ipa(buf, &len);
	rc = rspro_decode(pdu_bytes, len, &pdu, err, sizeof(err));
	if (rc && rc != RSPRO_ERR_VERSION) {
		fprintf(stderr, "remsimctl: %s: %s (%s)\n", what,
			rspro_strerror(rc), err);
		return -1;
	}
	if (rc == RSPRO_ERR_VERSION)
		fprintf(stderr, "remsimctl: %s: warning: %s\n", what, err);
	j = rspro_to_json(pdu);
	s = j ? json_dumps(j, o->pretty ? JSON_INDENT(2) : JSON_COMPACT) : NULL;
	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(j);
	rspro_pdu_free(pdu);
	return s ? 0 : -1;
}

static int rspro_encode_one(const char *what, const char *text,
			    const struct rspro_opts *o)
{
	static uint8_t buf[IPA_MAX_TX_FRAME];
	static char hex[2 * IPA_MAX_TX_FRAME + 1];
	char err[256] = "";
	json_error_t jerr;
	RsproPDU_t *pdu;
	ssize_t n;
	json_t *j;

	j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		fprintf(stderr, "remsimctl: %s: invalid JSON at column %d: %s\n",
			what, jerr.column, jerr.text);
		return -1;
	}
	if (rspro_from_json(j, &pdu, err, sizeof(err))) {
		fprintf(stderr, "remsimctl: %s: %s\n", what, err);
		json_decref(j);
		return -1;
	}
	json_decref(j);
	if (o->ipa)
		n = rspro_encode_ipa(pdu, buf, sizeof(buf), err, sizeof(err));
	else
		n = rspro_encode(pdu, buf, sizeof(buf), err, sizeof(err));
	rspro_pdu_free(pdu);
	if (n < 0) {
		fprintf(stderr, "remsimctl: %s: cannot encode: %s\n", what, err);
		return -1;
	}
	hex_encode(hex, buf, (size_t)n);
	printf("%s\n", hex);
	return 0;
}

/* Runs fn on each argument, or on each non-empty stdin line. */
static int rspro_each_input(int argc, char **argv, const struct rspro_opts *o,
			    int (*fn)(const char *, const char *,
				      const struct rspro_opts *))
{
	char *line = NULL;
	size_t cap = 0;
	int failed = 0;
	unsigned lineno = 0;

	if (optind < argc) {
		for (int i = optind; i < argc; i++) {
			char what[32];

			snprintf(what, sizeof(what), "argument %d", i - optind + 1);
			failed |= fn(what, argv[i], o) != 0;
		}
		return failed ? CTL_EXIT_FAIL : CTL_EXIT_OK;
	}
	while (getline(&line, &cap, stdin) >= 0) {
		char what[32];
		size_t len = strlen(line);

		lineno++;
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (!len || line[0] == '#')
			continue;
		snprintf(what, sizeof(what), "line %u", lineno);
		failed |= fn(what, line, o) != 0;
	}
	free(line);
	return failed ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}

int cmd_rspro(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "ipa", no_argument, NULL, 'i' },
		{ "pretty", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct rspro_opts o = { 0 };
	const char *verb;
	int c;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		rspro_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
	}
	verb = argv[1];
	argc--;
	argv++;
	optind = 1;
	while ((c = getopt_long(argc, argv, "iph", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			o.ipa = 1;
			break;
		case 'p':
			o.pretty = 1;
			break;
		case 'h':
			rspro_usage(stdout);
			return CTL_EXIT_OK;
		default:
			rspro_usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (!strcmp(verb, "decode"))
		return rspro_each_input(argc, argv, &o, rspro_decode_one);
	if (!strcmp(verb, "encode"))
		return rspro_each_input(argc, argv, &o, rspro_encode_one);
	fprintf(stderr, "remsimctl rspro: unknown action '%s'\n\n", verb);
	rspro_usage(stderr);
	return CTL_EXIT_USAGE;
}
