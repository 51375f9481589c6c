/*
 * testdata: reads the tab-separated golden files of ../shared/testdata
 * (comment lines start with '#'; with has_header, the first other line
 * names the columns and is skipped)
 * for the unit tests. Header-only: each test program includes it once.
 */
#ifndef REMSIM_TESTDATA_H
#define REMSIM_TESTDATA_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TSV_MAX_COLS 12

struct tsv_row {
	int ncols;
	char *col[TSV_MAX_COLS];
	char *line;	/* owns the storage the columns point into */
};

/* Calls fn for every data row; returns the number of rows or -1. */
static inline int tsv_foreach(const char *name, int has_header,
			      void (*fn)(const struct tsv_row *, void *),
			      void *arg)
{
	char path[512];
	char *line = NULL;
	size_t cap = 0;
	int rows = 0, header_seen = !has_header;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", TESTDATA_DIR, name);
	f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "cannot open %s\n", path);
		return -1;
	}
	while (getline(&line, &cap, f) >= 0) {
		struct tsv_row row = { .line = line };
		char *p = line, *tab;
		size_t len = strlen(line);

		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (!len || line[0] == '#')
			continue;
		if (!header_seen) {
			header_seen = 1;
			continue;
		}
		while (row.ncols < TSV_MAX_COLS) {
			row.col[row.ncols++] = p;
			tab = strchr(p, '\t');
			if (!tab)
				break;
			*tab = '\0';
			p = tab + 1;
		}
		fn(&row, arg);
		rows++;
	}
	free(line);
	fclose(f);
	return rows;
}

#endif
