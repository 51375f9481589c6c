/*
 * reader_map: osmo-remsim's bankd_pcsc_slots.csv (quoted CSV, three fields
 * per row) and the automatic slot -> reader assignment. Unlike osmo-remsim,
 * a malformed row rejects the file with its line number instead of being
 * skipped or crashing (rspro-protocol.md 6.1).
 */
#define _GNU_SOURCE		/* strverscmp */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reader_map.h"

#define READER_MAP_MAX_FILE	(1024 * 1024)
#define READER_MAP_MAX_FIELD	1024
#define READER_MAP_FIELDS	3

void reader_map_init_auto(struct reader_map *m)
{
	memset(m, 0, sizeof(*m));
	m->automatic = true;
}

void reader_map_free(struct reader_map *m)
{
	for (size_t i = 0; i < m->n; i++) {
		regfree(&m->rows[i].re);
		free(m->rows[i].pattern);
	}
	free(m->rows);
	memset(m, 0, sizeof(*m));
}

/*
 * Splits one line into fields: quoted ("a ""b""") or bare (blanks around
 * them trimmed). Returns the field count, or -1 with a reason.
 */
static int csv_split_line(const char *line, size_t len,
			  char fields[READER_MAP_FIELDS][READER_MAP_MAX_FIELD],
			  const char **why)
{
	size_t i = 0;
	int nf = 0;

	for (;;) {
		size_t o = 0;
		char *f;

		if (nf == READER_MAP_FIELDS) {
			*why = "more than 3 fields";
			return -1;
		}
		f = fields[nf];
		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i < len && line[i] == '"') {
			for (i++;; i++) {
				if (i >= len) {
					*why = "unterminated quote";
					return -1;
				}
				if (line[i] == '"') {
					if (i + 1 < len && line[i + 1] == '"') {
						i++;
					} else {
						i++;
						break;
					}
				}
				if (o + 1 >= READER_MAP_MAX_FIELD) {
					*why = "field too long";
					return -1;
				}
				f[o++] = line[i];
			}
			while (i < len && (line[i] == ' ' || line[i] == '\t'))
				i++;
		} else {
			while (i < len && line[i] != ',') {
				if (line[i] == '"') {
					*why = "quote inside an unquoted field";
					return -1;
				}
				if (o + 1 >= READER_MAP_MAX_FIELD) {
					*why = "field too long";
					return -1;
				}
				f[o++] = line[i++];
			}
			while (o && (f[o - 1] == ' ' || f[o - 1] == '\t'))
				o--;
		}
		f[o] = '\0';
		nf++;
		if (i >= len)
			return nf;
		if (line[i] != ',') {
			*why = "text after a closing quote";
			return -1;
		}
		i++;
	}
}

/* Strict decimal 0..1023 (osmo-remsim's atoi() turned junk into 0). */
static int csv_parse_id(const char *s, uint16_t *out)
{
	unsigned long v = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > 1023)
			return -1;
	}
	*out = (uint16_t)v;
	return 0;
}

static int reader_map_add_row(struct reader_map *m, unsigned line,
			      char fields[READER_MAP_FIELDS][READER_MAP_MAX_FIELD],
			      const char *what, char *err, size_t errlen)
{
	struct reader_map_row row = { .line = line }, *rows;
	char rerr[160];
	int rc;

	if (csv_parse_id(fields[0], &row.bank_id) ||
	    csv_parse_id(fields[1], &row.slot_nr)) {
		snprintf(err, errlen, "%s:%u: bank id and slot must be "
			 "numbers 0..1023, not \"%s\", \"%s\"", what, line,
			 fields[0], fields[1]);
		return -EINVAL;
	}
	if (!fields[2][0]) {
		snprintf(err, errlen, "%s:%u: empty reader name regex", what,
			 line);
		return -EINVAL;
	}
	if (reader_map_row(m, row.bank_id, row.slot_nr)) {
		snprintf(err, errlen, "%s:%u: bank %u slot %u is already "
			 "mapped on line %u", what, line, row.bank_id,
			 row.slot_nr,
			 reader_map_row(m, row.bank_id, row.slot_nr)->line);
		return -EINVAL;
	}
	rc = regcomp(&row.re, fields[2], REG_EXTENDED | REG_NOSUB);
	if (rc) {
		regerror(rc, &row.re, rerr, sizeof(rerr));
		snprintf(err, errlen, "%s:%u: bad regex \"%s\": %s", what,
			 line, fields[2], rerr);
		return -EINVAL;
	}
	row.pattern = strdup(fields[2]);
	rows = realloc(m->rows, (m->n + 1) * sizeof(*rows));
	if (!row.pattern || !rows) {
		regfree(&row.re);
		free(row.pattern);
		if (rows)
			m->rows = rows;
		snprintf(err, errlen, "%s: out of memory", what);
		return -ENOMEM;
	}
	m->rows = rows;
	m->rows[m->n++] = row;
	return 0;
}

int reader_map_parse(struct reader_map *m, const char *text, size_t len,
		     const char *what, char *err, size_t errlen)
{
	char fields[READER_MAP_FIELDS][READER_MAP_MAX_FIELD];
	size_t pos = 0;
	unsigned line = 0;
	const char *why;
	int rc;

	memset(m, 0, sizeof(*m));
	while (pos < len) {
		const char *l = text + pos;
		const char *nl = memchr(l, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - l) : len - pos;
		size_t blank = 0;

		pos += n + (nl ? 1 : 0);
		line++;
		if (n && l[n - 1] == '\r')
			n--;
		while (blank < n && (l[blank] == ' ' || l[blank] == '\t'))
			blank++;
		if (blank == n || l[blank] == '#')
			continue;	/* empty line or comment */
		if (memchr(l, '\0', n)) {
			snprintf(err, errlen, "%s:%u: NUL byte", what, line);
			goto fail;
		}
		rc = csv_split_line(l, n, fields, &why);
		if (rc >= 0 && rc != READER_MAP_FIELDS)
			why = "fewer than 3 fields (bank id, slot, regex)";
		if (rc != READER_MAP_FIELDS) {
			snprintf(err, errlen, "%s:%u: %s", what, line, why);
			goto fail;
		}
		if (reader_map_add_row(m, line, fields, what, err, errlen))
			goto fail;
	}
	if (!m->n) {
		snprintf(err, errlen, "%s: no rows", what);
		goto fail;
	}
	return 0;
fail:
	reader_map_free(m);
	return -EINVAL;
}

int reader_map_load(struct reader_map *m, const char *path, char *err,
		    size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t len;
	int rc;

	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	buf = malloc(READER_MAP_MAX_FILE + 1);
	if (!buf) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	len = fread(buf, 1, READER_MAP_MAX_FILE + 1, f);
	rc = ferror(f) ? -EIO : 0;
	fclose(f);
	if (!rc && len > READER_MAP_MAX_FILE) {
		snprintf(err, errlen, "%s: larger than %d bytes", path,
			 READER_MAP_MAX_FILE);
		rc = -EFBIG;
	} else if (rc) {
		snprintf(err, errlen, "%s: read error", path);
	} else {
		rc = reader_map_parse(m, buf, len, path, err, errlen);
	}
	free(buf);
	return rc;
}

const struct reader_map_row *reader_map_row(const struct reader_map *m,
					    uint16_t bank_id, uint16_t slot_nr)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->rows[i].bank_id == bank_id &&
		    m->rows[i].slot_nr == slot_nr)
			return &m->rows[i];
	return NULL;
}

int reader_map_select(const struct reader_map *m, uint16_t bank_id,
		      uint16_t slot_nr, const char *const *names, size_t n)
{
	const struct reader_map_row *row;
	size_t rank;

	if (m->automatic) {
		/* the reader with exactly slot_nr names before it */
		for (size_t i = 0; i < n; i++) {
			rank = 0;
			for (size_t j = 0; j < n; j++)
				if (strverscmp(names[j], names[i]) < 0 ||
				    (!strverscmp(names[j], names[i]) && j < i))
					rank++;
			if (rank == slot_nr)
				return (int)i;
		}
		return -ENODEV;
	}
	row = reader_map_row(m, bank_id, slot_nr);
	if (!row)
		return -ENOENT;
	for (size_t i = 0; i < n; i++)
		if (!regexec(&row->re, names[i], 0, NULL, 0))
			return (int)i;
	return -ENODEV;
}

void reader_map_describe(const struct reader_map *m, uint16_t bank_id,
			 uint16_t slot_nr, char *out, size_t outlen)
{
	const struct reader_map_row *row;

	if (m->automatic) {
		snprintf(out, outlen, "reader %u in name order", slot_nr);
		return;
	}
	row = reader_map_row(m, bank_id, slot_nr);
	if (row)
		snprintf(out, outlen, "regex /%s/ (line %u)", row->pattern,
			 row->line);
	else
		snprintf(out, outlen, "no row for bank %u slot %u", bank_id,
			 slot_nr);
}
