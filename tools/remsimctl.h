/*
 * remsimctl: the admin command line tool. remsimctl.c dispatches to the
 * subcommand files (remsimctl_<group>.c); each cmd_* returns the exit code.
 */
#ifndef REMSIMCTL_H
#define REMSIMCTL_H

/* Exit codes shared by every subcommand. */
enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_FAIL = 1,	/* the operation failed (bad input, refused) */
	CTL_EXIT_USAGE = 2,	/* wrong command line */
};

int cmd_rspro(int argc, char **argv);	/* rspro decode | encode */
int cmd_keygen(int argc, char **argv);	/* keygen */
int cmd_token(int argc, char **argv);	/* token issue | verify */

#endif
