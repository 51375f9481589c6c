/*
 * vsim: virtual SIM/USIM cards for vpcd readers (remsim-vsim). Profiles
 * (vsim_profile.c), the card's file system (vsim_fs.c), its APDU engine
 * (vsim_card.c, vsim_pin.c), the 3GPP test algorithm (vsim_auth.c), the
 * vpcd connection of one reader (vsim_slot.c) and the control socket.
 */
#ifndef REMSIM_VSIM_H
#define REMSIM_VSIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define VSIM_ICCID_MAX	20	/* digits */
#define VSIM_IMSI_MAX	15
#define VSIM_PIN_MAX	8
#define VSIM_ATR_MAX	33
#define VSIM_KI_LEN	16
#define VSIM_RAND_LEN	16
#define VSIM_AUTN_LEN	16
#define VSIM_APDU_MAX	(5 + 255 + 1)
#define VSIM_RESP_MAX	(256 + 2)

/* ---- profiles (vsim_profile.c) ------------------------------------------- */

struct vsim_profile {
	char iccid[VSIM_ICCID_MAX + 1];
	char imsi[VSIM_IMSI_MAX + 1];
	uint8_t ki[VSIM_KI_LEN];
	char pin1[VSIM_PIN_MAX + 1];
	char puk1[VSIM_PIN_MAX + 1];
	char pin2[VSIM_PIN_MAX + 1];
	char puk2[VSIM_PIN_MAX + 1];
	uint8_t atr[VSIM_ATR_MAX];
	size_t atr_len;
	int pin1_enabled;	/* reading EF_IMSI etc. needs VERIFY PIN1 */
};

/*
 * Loads a profile file. On success *cards is a malloc'ed array of *n
 * profiles. On failure returns -1 and writes a message naming the card index
 * and field into err.
 */
int vsim_profile_load(const char *path, struct vsim_profile **cards,
		      size_t *n, char *err, size_t err_size);
int vsim_profile_parse(const char *text, struct vsim_profile **cards,
		       size_t *n, char *err, size_t err_size);
/* Writes a profile file for n cards; the same seed gives the same file. */
int vsim_profile_generate(FILE *out, unsigned int n, uint64_t seed);
int vsim_luhn_digit(const char *digits);
void vsim_default_atr(uint8_t *atr, size_t *len);

/* ---- the 3GPP TS 34.108 test algorithm (vsim_auth.c) --------------------- */

struct vsim_auth_result {
	uint8_t res[8];
	uint8_t ck[16];
	uint8_t ik[16];
	uint8_t ak[6];
	uint8_t sqn[6];
};

enum vsim_auth_status {
	VSIM_AUTH_OK,
	VSIM_AUTH_MAC_FAILURE,
};

enum vsim_auth_status vsim_auth_umts(const uint8_t ki[VSIM_KI_LEN],
				     const uint8_t rand[VSIM_RAND_LEN],
				     const uint8_t autn[VSIM_AUTN_LEN],
				     struct vsim_auth_result *out);
void vsim_auth_gsm(const uint8_t ki[VSIM_KI_LEN],
		   const uint8_t rand[VSIM_RAND_LEN], uint8_t sres[4],
		   uint8_t kc[8]);

/* ---- file system (vsim_fs.c) --------------------------------------------- */

enum vsim_file_type {
	VSIM_FILE_MF,
	VSIM_FILE_DF,
	VSIM_FILE_ADF,
	VSIM_FILE_TRANSPARENT,
	VSIM_FILE_LINEAR_FIXED,
};

/* who may read or update a file */
enum vsim_access {
	VSIM_ACC_ALWAYS,
	VSIM_ACC_PIN1,
	VSIM_ACC_ADM,	/* no ADM key on this card: never granted */
};

struct vsim_file {
	const char *name;
	uint16_t fid;
	enum vsim_file_type type;
	int parent;		/* index into the file table, -1 for the MF */
	uint16_t size;		/* transparent: bytes; linear: record length */
	uint8_t records;	/* linear fixed only */
	enum vsim_access read;
	enum vsim_access update;
	const uint8_t *aid;	/* ADF only */
	uint8_t aid_len;
};

#define VSIM_FS_MF	0

extern const uint8_t vsim_usim_aid[16];

size_t vsim_fs_count(void);
const struct vsim_file *vsim_fs_file(int index);
int vsim_fs_is_df(int index);
/* bytes of a file's contents (records * size for linear fixed files) */
size_t vsim_fs_content_size(int index);
/* index of the child of df with that FID, or -1 */
int vsim_fs_child(int df, uint16_t fid);
/* index of the ADF whose AID starts with aid[0..len), or -1 */
int vsim_fs_find_aid(const uint8_t *aid, size_t len);
/* Fills the contents of every file from a profile; see vsim_card_new(). */
void vsim_fs_init_contents(const struct vsim_profile *p, uint8_t **contents);
void vsim_bcd_swapped(uint8_t *out, size_t out_len, const char *digits);
void vsim_encode_imsi(uint8_t out[9], const char *imsi);

/* ---- the card (vsim_card.c, vsim_pin.c) ---------------------------------- */

enum vsim_pin_ref {
	VSIM_PIN1,
	VSIM_PIN2,
	VSIM_PIN_COUNT,
};

#define VSIM_PIN_TRIES	3
#define VSIM_PUK_TRIES	10

struct vsim_pin {
	char value[VSIM_PIN_MAX + 1];
	char puk[VSIM_PIN_MAX + 1];
	uint8_t retries;	/* 0: blocked */
	uint8_t puk_retries;	/* 0: blocked for good */
	int enabled;
	int verified;		/* since the last reset */
};

struct vsim_card {
	struct vsim_profile profile;
	uint8_t *contents[32];	/* per file, see vsim_fs_init_contents() */
	struct vsim_pin pins[VSIM_PIN_COUNT];

	/* selection, cleared by a reset */
	int cur_df;		/* MF, DF or ADF */
	int cur_ef;		/* -1: none */
	int cur_adf;		/* -1: none selected since the reset */
	int cur_record;		/* 0: none */

	/* T=0: data waiting for GET RESPONSE */
	uint8_t pending[256];
	size_t pending_len;

	/* fills GET CHALLENGE; getrandom() unless a test sets it */
	void (*random)(uint8_t *buf, size_t len);
};

struct vsim_card *vsim_card_new(const struct vsim_profile *profile);
void vsim_card_free(struct vsim_card *card);
/* power on or warm reset: PINs unverified, MF selected */
void vsim_card_reset(struct vsim_card *card);
/*
 * Answers one command APDU (T=0 TPDU). Writes response data + SW1 SW2 into
 * resp (VSIM_RESP_MAX bytes) and returns its length (always >= 2).
 */
size_t vsim_card_process(struct vsim_card *card, const uint8_t *apdu,
			 size_t len, uint8_t *resp);

/* status words, by meaning; vsim_card.c maps them to UICC or GSM values */
enum vsim_sw {
	SW_OK,
	SW_WRONG_LENGTH,	/* 6700 / 6700 */
	SW_WRONG_P1P2,		/* 6A86 / 6B00 */
	SW_WRONG_OFFSET,	/* 6B00 / 9402 */
	SW_INS_UNKNOWN,		/* 6D00 */
	SW_CLA_UNKNOWN,		/* 6E00 */
	SW_CHANNEL_UNSUPPORTED,	/* 6881 */
	SW_FILE_NOT_FOUND,	/* 6A82 / 9404 */
	SW_RECORD_NOT_FOUND,	/* 6A83 / 9402 */
	SW_NO_EF,		/* 6986 / 9400 */
	SW_WRONG_STRUCTURE,	/* 6981 / 9408 */
	SW_SECURITY,		/* 6982 / 9804 */
	SW_PIN_BLOCKED,		/* 6983 / 9840 */
	SW_PIN_DISABLED,	/* 6984 / 9808 */
	SW_CONDITIONS,		/* 6985 / 9808 */
	SW_WRONG_DATA,		/* 6A80 / 6B00 */
	SW_REF_NOT_FOUND,	/* 6A88 / 6B00 */
	SW_AUTH_MAC,		/* 9862 */
	SW_AUTH_CONTEXT,	/* 9864 */
	SW_TECHNICAL,		/* 6F00 */
	SW_RAW,			/* SW1 SW2 already set in the reply */
};

/* one decoded command; lc/data valid for commands that carry data */
struct vsim_apdu {
	uint8_t cla, ins, p1, p2, p3;
	const uint8_t *data;
	size_t lc;
	int gsm;		/* CLA A0: GSM 11.11 status words */
};

/* a response under construction */
struct vsim_reply {
	uint8_t *buf;
	size_t len;		/* data bytes so far */
	uint8_t sw1, sw2;
};

/*
 * Command handlers return the status word by meaning; these set SW1 SW2
 * directly and return SW_RAW.
 */
void vsim_reply_sw(struct vsim_reply *r, const struct vsim_apdu *a,
		   enum vsim_sw sw);
enum vsim_sw vsim_reply_raw(struct vsim_reply *r, uint8_t sw1, uint8_t sw2);
/* data for the terminal: T=0 makes it wait for GET RESPONSE (61xx/9Fxx) */
enum vsim_sw vsim_reply_later(struct vsim_card *card, struct vsim_reply *r,
			      const struct vsim_apdu *a, const uint8_t *data,
			      size_t len);

/* vsim_auth.c: AUTHENTICATE (UICC class) and RUN GSM ALGORITHM (GSM class) */
enum vsim_sw vsim_auth_command(struct vsim_card *card,
			       const struct vsim_apdu *a, struct vsim_reply *r);

/* vsim_pin.c: VERIFY, CHANGE, DISABLE, ENABLE, UNBLOCK */
void vsim_pin_init(struct vsim_card *card);
enum vsim_sw vsim_pin_command(struct vsim_card *card,
			      const struct vsim_apdu *a, struct vsim_reply *r);
int vsim_pin_access_granted(const struct vsim_card *card,
			    enum vsim_access acc);

#endif
