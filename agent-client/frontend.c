/*
 * frontend: picks the front end named on the command line. Each front end
 * lives in its own file (frontend_shell.c, frontend_vpcd.c); this file
 * only knows their names.
 */
#include "frontend.h"

#include <stdio.h>
#include <string.h>

struct frontend *frontend_new(struct loop *loop,
			      const struct frontend_options *o, char *err,
			      size_t errlen)
{
	struct frontend *fe = NULL;

	if (!strcmp(o->kind, "shell")) {
		fe = frontend_shell_new(loop, o);
	} else if (!strcmp(o->kind, "vpcd")) {
		if (!o->vpcd_port) {
			snprintf(err, errlen, "--frontend vpcd needs "
				 "--vpcd-port");
			return NULL;
		}
		fe = frontend_vpcd_new(loop, o);
	} else if (!strcmp(o->kind, "simtrace2")) {
		fe = frontend_simtrace2_new(loop, o);
	} else {
		snprintf(err, errlen, "unknown front end '%s' (shell, vpcd, simtrace2)",
			 o->kind);
		return NULL;
	}
	if (!fe)
		snprintf(err, errlen, "out of memory");
	return fe;
}

void frontend_free(struct frontend *fe)
{
	if (fe)
		fe->ops->free(fe);
}
