/*
 * opt: command line helpers shared by remsim-server, remsim-bankd,
 * remsim-client and the tools.
 */
#include "opt.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

long opt_number(const char *s, long min, long max)
{
	char *end;
	long v;

	/* digits only: no sign, no blanks strtol() would skip */
	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	return v;
}
