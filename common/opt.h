/*
 * opt: what every remsim program's command line parsing shares.
 */
#ifndef REMSIM_OPT_H
#define REMSIM_OPT_H

/*
 * A decimal number in [min, max] (min >= 0); -1 for anything else: empty,
 * trailing characters, out of range, overflow.
 */
long opt_number(const char *s, long min, long max);

#endif
