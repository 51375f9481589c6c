/*
 * remsim-client: command line (osmo-remsim-client's options where they
 * exist), token loading, signals through a signalfd in the one event loop,
 * and start-up/shutdown of client, front end and event script. Exit codes:
 * 0 after SIGTERM/SIGINT or the shell's end of input, 1 start-up failure,
 * 2 bad command line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "event_script.h"
#include "frontend.h"
#include "log.h"
#include "loop.h"
#include "opt.h"
#include "token.h"
#include "usb_cardem.h"

#define MAIN_CTX		"main"
#define TOKEN_FILE_MAX		4096

struct options {
	struct client_config client;
	struct frontend_options fe;
	const char *token_file;
	const char *script;
	enum event_style event_style;
	bool list_devices;
	char token[TOKEN_TEXT_MAX];
	char host_name[33];
};

struct signals {
	int fd;
	struct loop *loop;
	struct event_script *script;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: remsim-client [OPTIONS]\n"
		"\n"
		"The remsim modem agent: gets its bank slot from the server, talks\n"
		"to that bankd and gives the remote SIM to a front end.\n"
		"\n"
		"  -i, --server-host HOST    server address (default 127.0.0.1;\n"
		"                            --server-ip is the same)\n"
		"  -p, --server-port PORT    server RSPRO port (default 9998)\n"
		"  -c, --client-id N         our client id, 0..1023 (default 0)\n"
		"  -n, --client-slot N       our client slot, 0..1023 (default 0)\n"
		"  -t, --token FILE          client token (remsimctl token issue\n"
		"                            --role client); sent to server and bankd\n"
		"  -e, --event-script CMD    run '/bin/sh -c \"CMD EVENT\"' on every\n"
		"                            event (docs/client.md)\n"
		"      --event-style STYLE   remsim (default) or osmo: call the script\n"
		"                            as osmo-remsim-client does (its causes\n"
		"                            and variables)\n"
		"  -f, --frontend KIND       shell (default), vpcd or simtrace2\n"
		"      --vpcd-port PORT      vpcd: the reader's port in the local pcscd\n"
		"      --vpcd-host HOST      vpcd: pcscd's address (default 127.0.0.1)\n"
		"      --usb-vendor HEX      simtrace2: USB vendor id (default 1d50)\n"
		"      --usb-product HEX     simtrace2: product id (default: any of\n"
		"                            60e3 4004 4001 616d 616e)\n"
		"      --usb-serial SERIAL   simtrace2: the board with this serial\n"
		"      --usb-path PATH       simtrace2: the board at this USB port path,\n"
		"                            e.g. 1-1.2 (see --list-devices)\n"
		"      --usb-interface N     simtrace2: card-emulation interface (slot)\n"
		"                            number; default: the first one\n"
		"      --modem-reset-ms MS   simtrace2: modem reset pulse at card insert\n"
		"                            and removal, 0 = none (default 300)\n"
		"      --list-devices        list SIMtrace2-family boards and exit\n"
		"      --auto-get-response   answer 61xx/9Fxx with GET RESPONSE and\n"
		"                            6Cxx with a re-send (default: raw)\n"
		"  -N, --name NAME           name in our identity (default: host name)\n"
		"      --ping-interval MS    keepalive PING interval (default 30000)\n"
		"      --pong-timeout MS     keepalive PONG timeout (default 10000)\n"
		"      --tpdu-timeout MS     give up on a card answer (default %d)\n"
		"  -l, --log-level LEVEL     error | notice | info | debug (default\n"
		"                            notice)\n"
		"      --no-timestamps       log lines without time (for journald)\n"
		"  -V, --version\n"
		"  -h, --help\n"
		"\n"
		"shell front end: one hex APDU per stdin line, the response as hex\n"
		"on stdout; 'atr', 'reset', 'reset cold', 'quit'; end of input exits.\n"
		"\n"
		"examples:\n"
		"  echo 'a0a40000023f00' | remsim-client -i 10.0.0.1 -c 23 -n 0\n"
		"  remsim-client -c 23 -f simtrace2 --usb-path 1-1.2 --usb-interface 1\n"
		"  remsim-client -c 23 -t /etc/remsim/client23.token -f vpcd \\\n"
		"      --vpcd-port 35963 -e /usr/local/bin/modem-event\n",
		CLIENT_TPDU_TIMEOUT_MS);
}

/* --help ends with the boards a simtrace2 front end could use now. */
static void usage_devices(FILE *out)
{
	struct usb_cardem_match any = { .interface = -1 };

	fprintf(out, "\nSIMtrace2-family boards found (--list-devices):\n");
	fflush(out);
	if (usb_cardem_list(out, &any) == 0)
		fprintf(out, "  none\n");
}

static int parse_bad(const char *what, const char *arg, const char *range)
{
	fprintf(stderr, "remsim-client: invalid %s '%s' (%s)\n", what, arg,
		range);
	return -1;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	enum { OPT_VPCD_HOST = 256, OPT_VPCD_PORT, OPT_AUTO_GR, OPT_PING,
	       OPT_PONG, OPT_TPDU, OPT_NO_TS, OPT_USB_VID, OPT_USB_PID,
	       OPT_USB_SERIAL, OPT_USB_PATH, OPT_USB_IF, OPT_RESET_MS,
	       OPT_LIST, OPT_EVENT_STYLE };
	static const struct option longopts[] = {
		{ "server-host", required_argument, NULL, 'i' },
		{ "server-ip", required_argument, NULL, 'i' },
		{ "server-port", required_argument, NULL, 'p' },
		{ "client-id", required_argument, NULL, 'c' },
		{ "client-slot", required_argument, NULL, 'n' },
		{ "token", required_argument, NULL, 't' },
		{ "event-script", required_argument, NULL, 'e' },
		{ "event-style", required_argument, NULL, OPT_EVENT_STYLE },
		{ "frontend", required_argument, NULL, 'f' },
		{ "vpcd-host", required_argument, NULL, OPT_VPCD_HOST },
		{ "vpcd-port", required_argument, NULL, OPT_VPCD_PORT },
		{ "auto-get-response", no_argument, NULL, OPT_AUTO_GR },
		{ "usb-vendor", required_argument, NULL, OPT_USB_VID },
		{ "usb-product", required_argument, NULL, OPT_USB_PID },
		{ "usb-serial", required_argument, NULL, OPT_USB_SERIAL },
		{ "usb-path", required_argument, NULL, OPT_USB_PATH },
		{ "usb-interface", required_argument, NULL, OPT_USB_IF },
		{ "modem-reset-ms", required_argument, NULL, OPT_RESET_MS },
		{ "list-devices", no_argument, NULL, OPT_LIST },
		{ "name", required_argument, NULL, 'N' },
		{ "ping-interval", required_argument, NULL, OPT_PING },
		{ "pong-timeout", required_argument, NULL, OPT_PONG },
		{ "tpdu-timeout", required_argument, NULL, OPT_TPDU },
		{ "log-level", required_argument, NULL, 'l' },
		{ "no-timestamps", no_argument, NULL, OPT_NO_TS },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool vpcd_opts = false, usb_opts = false;
	enum log_level level;
	char *end;
	long v;
	int c;

	while ((c = getopt_long(argc, argv, "i:p:c:n:t:e:f:N:l:Vh", longopts,
				NULL)) != -1) {
		switch (c) {
		case 'i':
			if (!*optarg)
				return parse_bad("server host", optarg,
						 "empty");
			o->client.server_host = optarg;
			break;
		case 'p':
		case OPT_VPCD_PORT:
			v = opt_number(optarg, 1, 65535);
			if (v < 0)
				return parse_bad("port", optarg, "1..65535");
			if (c == 'p') {
				o->client.server_port = (uint16_t)v;
			} else {
				o->fe.vpcd_port = (uint16_t)v;
				vpcd_opts = true;
			}
			break;
		case 'c':
		case 'n':
			v = opt_number(optarg, 0, RSPRO_MAX_ID);
			if (v < 0)
				return parse_bad(c == 'c' ? "client id" :
							    "client slot",
						 optarg, "0..1023");
			if (c == 'c')
				o->client.slot.client_id = (uint16_t)v;
			else
				o->client.slot.slot_nr = (uint16_t)v;
			break;
		case 't':
			o->token_file = optarg;
			break;
		case 'e':
			if (!*optarg)
				return parse_bad("event script", optarg,
						 "empty");
			o->script = optarg;
			break;
		case OPT_EVENT_STYLE:
			if (!strcmp(optarg, "remsim"))
				o->event_style = EVENT_STYLE_REMSIM;
			else if (!strcmp(optarg, "osmo"))
				o->event_style = EVENT_STYLE_OSMO;
			else
				return parse_bad("event style", optarg,
						 "remsim or osmo");
			break;
		case 'f':
			o->fe.kind = optarg;
			break;
		case OPT_VPCD_HOST:
			if (!*optarg)
				return parse_bad("vpcd host", optarg, "empty");
			o->fe.vpcd_host = optarg;
			vpcd_opts = true;
			break;
		case OPT_AUTO_GR:
			o->fe.auto_get_response = 1;
			break;
		case OPT_USB_VID:
		case OPT_USB_PID:
			errno = 0;
			v = strtol(optarg, &end, 16);
			if (errno || end == optarg || *end || v < 1 || v > 0xffff)
				return parse_bad("USB id", optarg,
						 "hex 1..ffff");
			if (c == OPT_USB_VID)
				o->fe.usb_vid = (uint16_t)v;
			else
				o->fe.usb_pid = (uint16_t)v;
			usb_opts = true;
			break;
		case OPT_USB_SERIAL:
		case OPT_USB_PATH:
			if (!*optarg || strlen(optarg) > 64)
				return parse_bad(c == OPT_USB_PATH ? "USB path" :
						 "USB serial", optarg,
						 "1..64 characters");
			if (c == OPT_USB_PATH)
				o->fe.usb_path = optarg;
			else
				o->fe.usb_serial = optarg;
			usb_opts = true;
			break;
		case OPT_USB_IF:
			v = opt_number(optarg, 0, 255);
			if (v < 0)
				return parse_bad("USB interface", optarg,
						 "0..255");
			o->fe.usb_interface = (int)v;
			usb_opts = true;
			break;
		case OPT_RESET_MS:
			v = opt_number(optarg, 0, 65535);
			if (v < 0)
				return parse_bad("modem reset pulse", optarg,
						 "0..65535 ms");
			o->fe.modem_reset_ms = (uint16_t)v;
			usb_opts = true;
			break;
		case OPT_LIST:
			o->list_devices = true;
			break;
		case 'N':
			if (!*optarg || strlen(optarg) > 32)
				return parse_bad("name", optarg,
						 "1..32 characters");
			o->client.name = optarg;
			break;
		case OPT_PING:
		case OPT_PONG:
		case OPT_TPDU:
			v = opt_number(optarg, 100, 3600000);
			if (v < 0)
				return parse_bad("time", optarg,
						 "100..3600000 ms");
			if (c == OPT_PING)
				o->client.ping_interval_ms = (uint32_t)v;
			else if (c == OPT_PONG)
				o->client.pong_timeout_ms = (uint32_t)v;
			else
				o->client.tpdu_timeout_ms = (uint32_t)v;
			break;
		case 'l':
			if (log_parse_level(optarg, &level) < 0)
				return parse_bad("log level", optarg,
						 "error, notice, info, debug");
			log_set_level(level);
			break;
		case OPT_NO_TS:
			log_set_timestamps(0);
			break;
		case 'V':
			printf("remsim-client %s\n", REMSIM_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			usage_devices(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "remsim-client: unexpected argument '%s'\n",
			argv[optind]);
		return -1;
	}
	if (strcmp(o->fe.kind, "shell") && strcmp(o->fe.kind, "vpcd") &&
	    strcmp(o->fe.kind, "simtrace2")) {
		fprintf(stderr, "remsim-client: unknown front end '%s' "
			"(shell, vpcd, simtrace2)\n", o->fe.kind);
		return -1;
	}
	if (strcmp(o->fe.kind, "simtrace2") && usb_opts && !o->list_devices) {
		fprintf(stderr, "remsim-client: --usb-* and --modem-reset-ms "
			"need --frontend simtrace2\n");
		return -1;
	}
	if (!strcmp(o->fe.kind, "vpcd") && !o->fe.vpcd_port) {
		fprintf(stderr, "remsim-client: --frontend vpcd needs "
			"--vpcd-port\n");
		return -1;
	}
	if (strcmp(o->fe.kind, "vpcd") && vpcd_opts) {
		fprintf(stderr, "remsim-client: --vpcd-host/--vpcd-port need "
			"--frontend vpcd\n");
		return -1;
	}
	return 0;
}

/*
 * Reads the token file and checks what can be checked without the
 * server's key, so a wrong file fails here and not at every connect.
 */
static int load_token(struct options *o)
{
	struct token_claims claims;
	char buf[TOKEN_FILE_MAX];
	size_t n, start = 0;
	FILE *f;
	int rc;

	f = fopen(o->token_file, "r");
	if (!f) {
		LOGE(MAIN_CTX, "token file %s: %s", o->token_file,
		     strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (start < n && strchr(" \t\r\n", buf[start]))
		start++;
	while (n > start && strchr(" \t\r\n", buf[n - 1]))
		buf[--n] = '\0';
	if (n - start >= sizeof(o->token) || n - start > RSPRO_TOKEN_MAX) {
		LOGE(MAIN_CTX, "token file %s: too long for a token",
		     o->token_file);
		return -1;
	}
	memcpy(o->token, buf + start, n - start + 1);
	rc = token_parse_unverified(o->token, &claims);
	if (rc != TOKEN_OK) {
		LOGE(MAIN_CTX, "token file %s: %s", o->token_file,
		     token_strerror(rc));
		return -1;
	}
	if (claims.role != TOKEN_ROLE_CLIENT) {
		LOGE(MAIN_CTX, "token file %s: a %s token, not a client token",
		     o->token_file, token_role_name(claims.role));
		return -1;
	}
	if (claims.subject != o->client.slot.client_id) {
		LOGE(MAIN_CTX, "token file %s: issued for client %u, we are "
		     "client %u", o->token_file, claims.subject,
		     o->client.slot.client_id);
		return -1;
	}
	if (claims.expires < (int64_t)time(NULL))
		LOGE(MAIN_CTX, "token file %s: the token has expired; the "
		     "server will refuse it", o->token_file);
	o->client.token = o->token;
	return 0;
}

/* ---- signals ------------------------------------------------------------ */

static void signals_on_read(void *arg, int fd, short revents)
{
	struct signals *s = arg;
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			if (s->script)
				event_script_reap(s->script);
			else
				while (waitpid(-1, NULL, WNOHANG) > 0)
					;
			break;
		default:
			LOGN(MAIN_CTX, "%s: exiting", strsignal((int)si.ssi_signo));
			loop_quit(s->loop, 0);
			break;
		}
	}
}

static int signals_setup(struct signals *s)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	s->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->fd < 0)
		return -errno;
	/* stdout (shell answers) may be a pipe whose reader is gone */
	signal(SIGPIPE, SIG_IGN);
	return loop_add_fd(s->loop, s->fd, POLLIN, signals_on_read, s) ?
		       0 : -ENOMEM;
}

int main(int argc, char **argv)
{
	struct options o = {
		.client = {
			.server_host = "127.0.0.1",
			.server_port = 9998,
		},
		.fe = {
			.kind = "shell",
			.vpcd_host = "127.0.0.1",
			.usb_interface = -1,
			.modem_reset_ms = 300,
		},
	};
	struct signals sig = { .fd = -1 };
	struct event_script *script = NULL;
	struct frontend *fe = NULL;
	struct client *client = NULL;
	struct loop *loop = NULL;
	char err[160];
	int rc = 1;

	log_init("remsim-client");
	if (parse_args(argc, argv, &o) < 0) {
		fprintf(stderr, "try 'remsim-client --help'\n");
		return 2;
	}
	if (o.list_devices) {
		struct usb_cardem_match m = {
			.vid = o.fe.usb_vid, .pid = o.fe.usb_pid,
			.path = o.fe.usb_path, .serial = o.fe.usb_serial,
			.interface = -1,
		};
		int n = usb_cardem_list(stdout, &m);

		if (n == 0)
			fprintf(stderr, "remsim-client: no SIMtrace2-family "
				"board (vendor %04x) found\n",
				o.fe.usb_vid ? o.fe.usb_vid : USB_CARDEM_VID);
		return n > 0 ? 0 : 1;
	}
	if (!o.client.name) {
		if (gethostname(o.host_name, sizeof(o.host_name) - 1) < 0 ||
		    !o.host_name[0])
			snprintf(o.host_name, sizeof(o.host_name),
				 "remsim-client");
		o.client.name = o.host_name;
	}
	if (o.token_file && load_token(&o) < 0)
		return 1;

	loop = loop_new();
	if (!loop)
		goto out;
	sig.loop = loop;
	if (o.script) {
		script = event_script_new(o.script, o.event_style);
		if (!script)
			goto out;
		sig.script = script;
		o.client.script = script;
	}
	if (signals_setup(&sig) < 0) {
		LOGE(MAIN_CTX, "cannot set up signal handling: %s",
		     strerror(errno));
		goto out;
	}
	fe = frontend_new(loop, &o.fe, err, sizeof(err));
	if (!fe) {
		LOGE(MAIN_CTX, "%s", err);
		goto out;
	}
	client = client_new(loop, &o.client, fe);
	if (!client)
		goto out;
	if (fe->ops->start(fe) < 0 || client_start(client) < 0) {
		LOGE(MAIN_CTX, "start-up failed");
		goto out;
	}
	rc = loop_run(loop);
	LOGN(client_name(client), "stopped");
out:
	client_free(client);
	frontend_free(fe);
	event_script_free(script);
	loop_free(loop);
	if (sig.fd >= 0)
		close(sig.fd);
	return rc;
}
