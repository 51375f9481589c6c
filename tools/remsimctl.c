/*
 * remsimctl: remsim's admin command line. This file only dispatches; each
 * group of subcommands lives in tools/remsimctl_<group>.c.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "remsimctl.h"

struct ctl_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct ctl_command ctl_commands[] = {
	{ "rspro", cmd_rspro, "decode / encode RSPRO PDUs (hex <-> JSON)" },
	{ "keygen", cmd_keygen, "create the server's Ed25519 key pair" },
	{ "token", cmd_token, "issue / verify / list / revoke access tokens" },
	{ "status", cmd_server, "server health and counts" },
	{ "banks", cmd_server, "list banks" },
	{ "clients", cmd_server, "list client slots" },
	{ "slotmaps", cmd_server, "list slot mappings" },
	{ "map", cmd_server, "map BANK:SLOT CLIENT:SLOT" },
	{ "unmap", cmd_server, "unmap BANK:SLOT" },
	{ "move", cmd_server, "move CLIENT:SLOT to another BANK:SLOT" },
	{ "events", cmd_server, "the event log" },
};

static void ctl_usage(FILE *out)
{
	fprintf(out,
		"usage: remsimctl [--version] [--help] COMMAND [ARGS]\n"
		"\n"
		"remsim's admin tool. Commands:\n");
	for (size_t i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]);
	     i++)
		fprintf(out, "  %-9s %s\n", ctl_commands[i].name,
			ctl_commands[i].summary);
	fprintf(out, "\n'remsimctl COMMAND --help' shows a command's options.\n");
}

int main(int argc, char **argv)
{
	log_init("remsimctl");
	if (argc < 2) {
		ctl_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		ctl_usage(stdout);
		return CTL_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("remsimctl %s\n", REMSIM_VERSION);
		return CTL_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]);
	     i++)
		if (!strcmp(argv[1], ctl_commands[i].name))
			return ctl_commands[i].run(argc - 1, argv + 1);

	fprintf(stderr, "remsimctl: unknown command '%s'\n\n", argv[1]);
	ctl_usage(stderr);
	return CTL_EXIT_USAGE;
}
