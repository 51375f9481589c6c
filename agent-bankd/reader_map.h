/*
 * reader_map: which PC/SC reader holds the card of which bank slot. Either
 * osmo-remsim's CSV (bank id, slot, POSIX extended regex of the reader name;
 * the first reader in PC/SC's order that the regex matches, unanchored) or
 * automatic: slot N is the N-th reader in natural name order.
 */
#ifndef BANKD_READER_MAP_H
#define BANKD_READER_MAP_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* osmo-remsim-bankd's file name, read from the working directory. */
#define READER_MAP_DEFAULT_FILE "bankd_pcsc_slots.csv"

struct reader_map_row {
	uint16_t bank_id;
	uint16_t slot_nr;
	unsigned line;		/* in the file, for logs */
	char *pattern;
	regex_t re;
};

struct reader_map {
	bool automatic;
	size_t n;
	struct reader_map_row *rows;
};

/* Automatic mode: no rows. */
void reader_map_init_auto(struct reader_map *m);
/*
 * Parses CSV text. Any bad row (field count, number, regex, duplicate bank
 * slot) rejects the whole text: -EINVAL with "what:line: reason" in err.
 */
int reader_map_parse(struct reader_map *m, const char *text, size_t len,
		     const char *what, char *err, size_t errlen);
/* Reads and parses a file; -errno with the reason in err. */
int reader_map_load(struct reader_map *m, const char *path, char *err,
		    size_t errlen);
void reader_map_free(struct reader_map *m);

/* The row for bank_id:slot_nr, or NULL (CSV mode only). */
const struct reader_map_row *reader_map_row(const struct reader_map *m,
					    uint16_t bank_id, uint16_t slot_nr);

/*
 * Picks the reader for bank_id:slot_nr among names[0..n) (PC/SC's order).
 * Returns its index, -ENOENT when the map has no row for the slot, or
 * -ENODEV when no reader fits.
 */
int reader_map_select(const struct reader_map *m, uint16_t bank_id,
		      uint16_t slot_nr, const char *const *names, size_t n);

/* "regex /.../ (line 3)" or "automatic (reader N in name order)". */
void reader_map_describe(const struct reader_map *m, uint16_t bank_id,
			 uint16_t slot_nr, char *out, size_t outlen);

#endif
