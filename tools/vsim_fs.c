/*
 * vsim_fs: the file system every virtual card carries (ISO 7816-4 / ETSI
 * TS 102 221 / 3GPP TS 31.102 / GSM 11.11): MF with EF_DIR and EF_ICCID,
 * DF_TELECOM, DF_GSM, and ADF_USIM, plus the contents built from a profile.
 */
#include <string.h>

#include "vsim.h"

/* RID A000000087 (3GPP), application 1002 (USIM), then our own extension */
const uint8_t vsim_usim_aid[16] = {
	0xa0, 0x00, 0x00, 0x00, 0x87, 0x10, 0x02, 0xff,
	0x34, 0xff, 0x07, 0x89, 0x31, 0x50, 0x00, 0x01,
};

#define T VSIM_FILE_TRANSPARENT
#define L VSIM_FILE_LINEAR_FIXED
#define ALW VSIM_ACC_ALWAYS
#define PIN VSIM_ACC_PIN1
#define ADM VSIM_ACC_ADM

enum {
	F_MF, F_DIR, F_ICCID,
	F_TELECOM, F_ADN, F_MSISDN,
	F_GSM, F_GSM_IMSI, F_GSM_KC, F_GSM_LOCI, F_GSM_AD,
	F_USIM, F_USIM_IMSI, F_USIM_KEYS, F_USIM_LOCI, F_USIM_AD,
	F_COUNT,
};

static const struct vsim_file fs_files[F_COUNT] = {
	[F_MF] = { "MF", 0x3f00, VSIM_FILE_MF, -1, 0, 0, ALW, ADM, NULL, 0 },
	[F_DIR] = { "EF_DIR", 0x2f00, L, F_MF, 32, 2, ALW, ADM, NULL, 0 },
	[F_ICCID] = { "EF_ICCID", 0x2fe2, T, F_MF, 10, 0, ALW, ADM, NULL, 0 },
	[F_TELECOM] = { "DF_TELECOM", 0x7f10, VSIM_FILE_DF, F_MF, 0, 0, ALW,
			ADM, NULL, 0 },
	[F_ADN] = { "EF_ADN", 0x6f3a, L, F_TELECOM, 30, 10, PIN, PIN, NULL,
		    0 },
	[F_MSISDN] = { "EF_MSISDN", 0x6f40, L, F_TELECOM, 30, 2, PIN, PIN,
		       NULL, 0 },
	[F_GSM] = { "DF_GSM", 0x7f20, VSIM_FILE_DF, F_MF, 0, 0, ALW, ADM,
		    NULL, 0 },
	[F_GSM_IMSI] = { "EF_IMSI", 0x6f07, T, F_GSM, 9, 0, PIN, ADM, NULL,
			 0 },
	[F_GSM_KC] = { "EF_Kc", 0x6f20, T, F_GSM, 9, 0, PIN, PIN, NULL, 0 },
	[F_GSM_LOCI] = { "EF_LOCI", 0x6f7e, T, F_GSM, 11, 0, PIN, PIN, NULL,
			 0 },
	[F_GSM_AD] = { "EF_AD", 0x6fad, T, F_GSM, 4, 0, ALW, ADM, NULL, 0 },
	/* an ADF has no FID of its own; 7FFF names the current ADF */
	[F_USIM] = { "ADF_USIM", 0x7fff, VSIM_FILE_ADF, F_MF, 0, 0, ALW, ADM,
		     vsim_usim_aid, sizeof(vsim_usim_aid) },
	[F_USIM_IMSI] = { "EF_IMSI", 0x6f07, T, F_USIM, 9, 0, PIN, ADM, NULL,
			  0 },
	[F_USIM_KEYS] = { "EF_Keys", 0x6f08, T, F_USIM, 33, 0, PIN, PIN, NULL,
			  0 },
	[F_USIM_LOCI] = { "EF_LOCI", 0x6f7e, T, F_USIM, 11, 0, PIN, PIN, NULL,
			  0 },
	[F_USIM_AD] = { "EF_AD", 0x6fad, T, F_USIM, 4, 0, ALW, ADM, NULL, 0 },
};

_Static_assert(F_COUNT <= sizeof(((struct vsim_card *)0)->contents) /
			  sizeof(uint8_t *), "vsim_card.contents too small");

size_t vsim_fs_count(void)
{
	return F_COUNT;
}

const struct vsim_file *vsim_fs_file(int index)
{
	if (index < 0 || index >= F_COUNT)
		return NULL;
	return &fs_files[index];
}

int vsim_fs_is_df(int index)
{
	enum vsim_file_type t = fs_files[index].type;

	return t == VSIM_FILE_MF || t == VSIM_FILE_DF || t == VSIM_FILE_ADF;
}

size_t vsim_fs_content_size(int index)
{
	const struct vsim_file *f = &fs_files[index];

	if (f->type == VSIM_FILE_TRANSPARENT)
		return f->size;
	if (f->type == VSIM_FILE_LINEAR_FIXED)
		return (size_t)f->size * f->records;
	return 0;
}

int vsim_fs_child(int df, uint16_t fid)
{
	for (int i = 0; i < F_COUNT; i++)
		if (fs_files[i].parent == df && fs_files[i].fid == fid &&
		    fs_files[i].type != VSIM_FILE_ADF)
			return i;
	return -1;
}

int vsim_fs_find_aid(const uint8_t *aid, size_t len)
{
	/* a right-truncated AID selects too (ISO 7816-4 partial DF name) */
	for (int i = 0; i < F_COUNT; i++)
		if (fs_files[i].type == VSIM_FILE_ADF &&
		    len <= fs_files[i].aid_len &&
		    !memcmp(fs_files[i].aid, aid, len))
			return i;
	return -1;
}

/* digits as swapped-nibble BCD, padded with F (EF_ICCID, TS 102 221 13.2) */
void vsim_bcd_swapped(uint8_t *out, size_t out_len, const char *digits)
{
	size_t n = strlen(digits);

	memset(out, 0xff, out_len);
	for (size_t i = 0; i < n && i / 2 < out_len; i++) {
		uint8_t d = (uint8_t)(digits[i] - '0');

		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(0xf0 | d);
		else
			out[i / 2] = (uint8_t)((out[i / 2] & 0x0f) | d << 4);
	}
}

/*
 * EF_IMSI (TS 31.102 4.2.2): length byte, then the first digit in the high
 * nibble next to a parity nibble (9 odd, 1 even digit count), then the
 * remaining digits as swapped-nibble BCD.
 */
void vsim_encode_imsi(uint8_t out[9], const char *imsi)
{
	size_t n = strlen(imsi);
	char rest[VSIM_IMSI_MAX + 1];

	memset(out, 0xff, 9);
	out[0] = (uint8_t)((n + 2) / 2);
	out[1] = (uint8_t)((imsi[0] - '0') << 4 | (n % 2 ? 0x9 : 0x1));
	strcpy(rest, imsi + 1);
	vsim_bcd_swapped(out + 2, 7, rest);
}

/* EF_DIR record: application template 61 { 4F AID, 50 label } */
static void fs_fill_dir(uint8_t *rec)
{
	static const char label[] = "USIM";
	size_t n = 0;

	rec[n++] = 0x61;
	rec[n++] = (uint8_t)(2 + sizeof(vsim_usim_aid) + 2 + 4);
	rec[n++] = 0x4f;
	rec[n++] = sizeof(vsim_usim_aid);
	memcpy(rec + n, vsim_usim_aid, sizeof(vsim_usim_aid));
	n += sizeof(vsim_usim_aid);
	rec[n++] = 0x50;
	rec[n++] = 4;
	memcpy(rec + n, label, 4);
}

/* LOCI: TMSI FFFFFFFF, LAI 00F110 FFFE (MCC 001 MNC 01), RFU, not updated */
static const uint8_t fs_loci[11] = {
	0xff, 0xff, 0xff, 0xff, 0x00, 0xf1, 0x10, 0xff, 0xfe, 0xff, 0x01,
};
/* AD: normal operation, MNC of 2 digits */
static const uint8_t fs_ad[4] = { 0x00, 0x00, 0x00, 0x02 };

void vsim_fs_init_contents(const struct vsim_profile *p, uint8_t **contents)
{
	for (int i = 0; i < F_COUNT; i++)
		if (contents[i])
			memset(contents[i], 0xff, vsim_fs_content_size(i));
	fs_fill_dir(contents[F_DIR]);
	vsim_bcd_swapped(contents[F_ICCID], 10, p->iccid);
	vsim_encode_imsi(contents[F_GSM_IMSI], p->imsi);
	vsim_encode_imsi(contents[F_USIM_IMSI], p->imsi);
	contents[F_GSM_KC][8] = 0x07;	/* key sequence number: none */
	memcpy(contents[F_GSM_LOCI], fs_loci, sizeof(fs_loci));
	memcpy(contents[F_USIM_LOCI], fs_loci, sizeof(fs_loci));
	memcpy(contents[F_GSM_AD], fs_ad, sizeof(fs_ad));
	memcpy(contents[F_USIM_AD], fs_ad, sizeof(fs_ad));
	contents[F_USIM_KEYS][0] = 0x07;
}
