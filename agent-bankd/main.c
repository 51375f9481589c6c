/*
 * remsim-bankd: command line, start-up and shutdown. The main thread owns
 * the server link and a poll() loop over it, the workers' report eventfd and
 * a signalfd; the workers (worker.c) serve clients. SIGTERM/SIGINT stop the
 * workers (cards powered off, clients closed) and exit 0.
 */
#define _GNU_SOURCE		/* strsignal, getaddrinfo */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bankd.h"
#include "link.h"
#include "log.h"
#include "opt.h"
#include "server_link.h"
#include "worker.h"

#define BANKD_DEFAULT_MAP_WAIT_MS	5000
#define BANKD_LISTEN_BACKLOG		64

static const char *const prog = "remsim-bankd";

static void usage(FILE *out)
{
	fprintf(out,
		"usage: remsim-bankd [OPTIONS]\n"
		"\n"
		"The remsim bank agent: serves the SIM cards in this host's PC/SC\n"
		"readers to remsim/osmo-remsim clients (RSPRO), as the server maps\n"
		"them. One worker thread per bank slot.\n"
		"\n"
		"  -i, --server-host HOST    remsim-server address (default 127.0.0.1)\n"
		"  -p, --server-port PORT    remsim-server RSPRO port (default %d)\n"
		"  -b, --bank-id N           this bank's id, 0..1023 (default %d)\n"
		"  -n, --num-slots N         bank slots = worker threads, 1..1023\n"
		"                            (default %d)\n"
		"  -N, --component-name NAME name sent to server and clients\n"
		"                            (default: host name)\n"
		"  -I, --bind-ip ADDR        client listener address (default: all,\n"
		"                            IPv6 and IPv4)\n"
		"  -P, --bind-port PORT      client listener port (default %d)\n"
		"  -M, --reader-map FILE     osmo-remsim reader map CSV (bank,slot,\n"
		"                            \"reader regex\"), or \"auto\": slot N is\n"
		"                            the N-th reader in name order. Default:\n"
		"                            ./%s if present, else auto\n"
		"  -s, --permit-shared-pcsc  open readers shared, not exclusive\n"
		"  -t, --token FILE          this bankd's token (remsimctl token issue\n"
		"                            --role bankd), sent to the server\n"
		"      --client-auth POLICY  client tokens: required (default),\n"
		"                            optional (osmo-remsim clients admitted)\n"
		"                            or off\n"
		"  -k, --server-pubkey FILE  server public key for client tokens\n"
		"                            (default: the key the server sends)\n"
		"      --map-wait MS         how long a client without a mapping\n"
		"                            waits for one (default %d)\n"
		"      --ping-interval MS    server keepalive PING interval (30000)\n"
		"      --pong-timeout MS     server keepalive PONG timeout (10000)\n"
		"  -l, --log-level LEVEL     error | notice | info | debug (default\n"
		"                            notice)\n"
		"      --no-timestamps       log lines without time (for journald)\n"
		"  -V, --version\n"
		"  -h, --help\n"
		"\n"
		"example:\n"
		"  remsim-bankd -i 10.0.0.1 -b 1 -n 4 -t /etc/remsim/bankd.token\n",
		BANKD_DEFAULT_SERVER_PORT, BANKD_DEFAULT_BANK_ID,
		BANKD_DEFAULT_NUM_SLOTS, BANKD_DEFAULT_BIND_PORT,
		READER_MAP_DEFAULT_FILE, BANKD_DEFAULT_MAP_WAIT_MS);
}

static int bad_arg(const char *opt, const char *val, const char *want)
{
	fprintf(stderr, "%s: invalid %s '%s' (%s)\n", prog, opt, val, want);
	return -1;
}

static int parse_args(int argc, char **argv, struct bankd_config *cfg)
{
	enum { OPT_AUTH = 256, OPT_PING, OPT_PONG, OPT_NO_TS, OPT_MAP_WAIT };
	static const struct option longopts[] = {
		{ "server-host", required_argument, NULL, 'i' },
		{ "server-port", required_argument, NULL, 'p' },
		{ "bank-id", required_argument, NULL, 'b' },
		{ "num-slots", required_argument, NULL, 'n' },
		{ "component-name", required_argument, NULL, 'N' },
		{ "bind-ip", required_argument, NULL, 'I' },
		{ "bind-port", required_argument, NULL, 'P' },
		{ "reader-map", required_argument, NULL, 'M' },
		{ "permit-shared-pcsc", no_argument, NULL, 's' },
		{ "token", required_argument, NULL, 't' },
		{ "client-auth", required_argument, NULL, OPT_AUTH },
		{ "server-pubkey", required_argument, NULL, 'k' },
		{ "map-wait", required_argument, NULL, OPT_MAP_WAIT },
		{ "ping-interval", required_argument, NULL, OPT_PING },
		{ "pong-timeout", required_argument, NULL, OPT_PONG },
		{ "log-level", required_argument, NULL, 'l' },
		{ "no-timestamps", no_argument, NULL, OPT_NO_TS },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum log_level level;
	long v;
	int c;

	while ((c = getopt_long(argc, argv, "i:p:b:n:N:I:P:M:st:k:l:Vh",
				longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			cfg->server_host = optarg;
			break;
		case 'p':
		case 'P':
			v = opt_number(optarg, 1, 65535);
			if (v < 0)
				return bad_arg("port", optarg, "1..65535");
			if (c == 'p')
				cfg->server_port = (uint16_t)v;
			else
				cfg->bind_port = (uint16_t)v;
			break;
		case 'b':
			v = opt_number(optarg, 0, RSPRO_MAX_ID);
			if (v < 0)
				return bad_arg("bank id", optarg, "0..1023");
			cfg->bank_id = (uint16_t)v;
			break;
		case 'n':
			v = opt_number(optarg, 1, RSPRO_MAX_ID);
			if (v < 0)
				return bad_arg("number of slots", optarg,
					       "1..1023");
			cfg->num_slots = (uint16_t)v;
			break;
		case 'N':
			if (!*optarg || strlen(optarg) > 32)
				return bad_arg("component name", optarg,
					       "1..32 characters");
			cfg->name = optarg;
			break;
		case 'I':
			cfg->bind_addr = optarg;
			break;
		case 'M':
			cfg->reader_map_path = optarg;
			break;
		case 's':
			cfg->shared_pcsc = true;
			break;
		case 't':
			cfg->token_path = optarg;
			break;
		case 'k':
			cfg->pubkey_path = optarg;
			break;
		case OPT_AUTH:
			if (client_auth_policy_parse(optarg, &cfg->client_auth))
				return bad_arg("client auth policy", optarg,
					       "required, optional or off");
			break;
		case OPT_MAP_WAIT:
		case OPT_PING:
		case OPT_PONG:
			v = opt_number(optarg, 1, 3600000);
			if (v < 0)
				return bad_arg("time", optarg,
					       "1..3600000 ms");
			if (c == OPT_MAP_WAIT)
				cfg->map_wait_ms = (uint32_t)v;
			else if (c == OPT_PING)
				cfg->ping_interval_ms = (uint32_t)v;
			else
				cfg->pong_timeout_ms = (uint32_t)v;
			break;
		case 'l':
			if (log_parse_level(optarg, &level))
				return bad_arg("log level", optarg,
					       "error, notice, info, debug");
			log_set_level(level);
			break;
		case OPT_NO_TS:
			log_set_timestamps(0);
			break;
		case 'V':
			printf("remsim-bankd %s\n", REMSIM_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", prog,
			argv[optind]);
		return -1;
	}
	return 0;
}

/* ---- start-up ----------------------------------------------------------- */

/* The token file: one line, printable, at most RSPRO_TOKEN_MAX characters. */
static int bankd_read_token(struct bankd *bd, const char *path)
{
	char buf[RSPRO_TOKEN_MAX + 2];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f) {
		LOGE("bankd", "token file %s: %s", path, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
		     buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = '\0';
	if (!n || n > RSPRO_TOKEN_MAX) {
		LOGE("bankd", "token file %s: %s", path,
		     n ? "longer than 512 characters" : "empty");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (buf[i] < 0x21 || buf[i] > 0x7e) {
			LOGE("bankd", "token file %s: not a token (character "
			     "%zu)", path, i + 1);
			return -1;
		}
	}
	bd->token = strdup(buf);
	return bd->token ? 0 : -1;
}

static int bankd_load_readers(struct bankd *bd)
{
	const char *path = bd->cfg.reader_map_path;
	char err[400];

	if (path && !strcmp(path, "auto")) {
		reader_map_init_auto(&bd->readers);
	} else if (path || !access(READER_MAP_DEFAULT_FILE, F_OK)) {
		if (!path)
			path = READER_MAP_DEFAULT_FILE;
		if (reader_map_load(&bd->readers, path, err, sizeof(err))) {
			LOGE("bankd", "reader map: %s", err);
			return -1;
		}
		LOGN("bankd", "reader map %s: %zu row%s", path,
		     bd->readers.n, bd->readers.n == 1 ? "" : "s");
		for (size_t i = 0; i < bd->readers.n; i++)
			if (bd->readers.rows[i].bank_id != bd->cfg.bank_id)
				LOGI("bankd", "reader map line %u is for bank %u, "
				     "not ours: unused",
				     bd->readers.rows[i].line,
				     bd->readers.rows[i].bank_id);
		return 0;
	} else {
		reader_map_init_auto(&bd->readers);
	}
	LOGN("bankd", "reader map: automatic (slot N = N-th reader in name "
	     "order)");
	return 0;
}

/* The client listener: all of IPv6 and IPv4 unless an address is given. */
static int bankd_listen(struct bankd *bd)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE,
	}, *res = NULL, *ai;
	char port[8];
	int fd = -1, one = 1, zero = 0, rc;

	snprintf(port, sizeof(port), "%u", bd->cfg.bind_port);
	if (!bd->cfg.bind_addr)
		hints.ai_family = AF_INET6;	/* [::] takes IPv4 too */
	rc = getaddrinfo(bd->cfg.bind_addr, port, &hints, &res);
	if (rc && !bd->cfg.bind_addr) {
		hints.ai_family = AF_INET;	/* a host without IPv6 */
		rc = getaddrinfo(NULL, port, &hints, &res);
	}
	if (rc) {
		LOGE("bankd", "bind address %s: %s",
		     bd->cfg.bind_addr ? bd->cfg.bind_addr : "(any)",
		     gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
			    SOCK_NONBLOCK, 0);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6 && !bd->cfg.bind_addr)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero,
				   sizeof(zero));
		if (!bind(fd, ai->ai_addr, ai->ai_addrlen) &&
		    !listen(fd, BANKD_LISTEN_BACKLOG))
			break;
		LOGE("bankd", "cannot listen on %s port %s: %s",
		     bd->cfg.bind_addr ? bd->cfg.bind_addr : "(any)", port,
		     strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return -1;
	bd->listen_fd = fd;
	return 0;
}

static int bankd_init(struct bankd *bd)
{
	char err[300];

	if (gethostname(bd->hostname, sizeof(bd->hostname) - 1) ||
	    !bd->hostname[0])
		snprintf(bd->hostname, sizeof(bd->hostname), "remsim-bankd");
	bd->identity.type = ComponentType_remsimBankd;
	bd->identity.name = bd->cfg.name ? bd->cfg.name : bd->hostname;
	bd->identity.software = "remsim-bankd";
	bd->identity.sw_version = REMSIM_VERSION;
	bd->num_workers = bd->cfg.num_slots;
	bd->listen_fd = -1;

	client_auth_init(&bd->auth, bd->cfg.client_auth);
	if (bd->cfg.pubkey_path &&
	    client_auth_load_key(&bd->auth, bd->cfg.pubkey_path, err,
				 sizeof(err))) {
		LOGE("bankd", "server public key: %s", err);
		return -1;
	}
	if (bd->cfg.client_auth != CLIENT_AUTH_OFF && !bd->cfg.pubkey_path)
		LOGN("bankd", "client tokens: waiting for the server's public "
		     "key (connect with --token, or give --server-pubkey)");
	if (bd->cfg.token_path && bankd_read_token(bd, bd->cfg.token_path))
		return -1;
	if (bankd_load_readers(bd))
		return -1;
	if (slotmap_init(&bd->map, bd->cfg.bank_id, bd->cfg.num_slots,
			 bd->num_workers) ||
	    slot_report_init(&bd->report, bd->cfg.num_slots)) {
		LOGE("bankd", "out of memory");
		return -1;
	}
	return bankd_listen(bd);
}

/* ---- main loop ---------------------------------------------------------- */

static int bankd_signalfd(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	/* blocked before the workers start, so only the signalfd sees them */
	if (pthread_sigmask(SIG_BLOCK, &set, NULL))
		return -1;
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static void bankd_run(struct bankd *bd, struct server_link *sl, int sfd)
{
	struct signalfd_siginfo si;
	struct pollfd pfd[3];
	int64_t now;
	int rc;

	for (;;) {
		pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = bd->report.wake_fd,
					  .events = POLLIN };
		server_link_pollfd(sl, &pfd[2]);
		rc = poll(pfd, 3, server_link_timeout_ms(sl, link_now_ms()));
		if (rc < 0 && errno != EINTR) {
			LOGE("bankd", "poll: %s", strerror(errno));
			return;
		}
		if (rc > 0 && pfd[0].revents &&
		    read(sfd, &si, sizeof(si)) == sizeof(si)) {
			LOGN("bankd", "%s: stopping", strsignal((int)si.ssi_signo));
			return;
		}
		if (rc > 0 && pfd[1].revents)
			server_link_flush_reports(sl);
		if (rc > 0 && pfd[2].fd >= 0 && pfd[2].revents)
			server_link_handle_io(sl, pfd[2].revents);
		now = link_now_ms();
		if (server_link_timeout_ms(sl, now) == 0)
			server_link_handle_timers(sl, now);
	}
}

static void bankd_cleanup(struct bankd *bd)
{
	workers_stop(bd);
	if (bd->listen_fd >= 0)
		close(bd->listen_fd);
	if (bd->report.current)
		slot_report_destroy(&bd->report);
	if (bd->map.by_slot)
		slotmap_destroy(&bd->map);
	reader_map_free(&bd->readers);
	client_auth_destroy(&bd->auth);
	free(bd->token);
}

int main(int argc, char **argv)
{
	static struct bankd bd = {
		.cfg = {
			.server_host = "127.0.0.1",
			.server_port = BANKD_DEFAULT_SERVER_PORT,
			.bank_id = BANKD_DEFAULT_BANK_ID,
			.num_slots = BANKD_DEFAULT_NUM_SLOTS,
			.bind_port = BANKD_DEFAULT_BIND_PORT,
			.map_wait_ms = BANKD_DEFAULT_MAP_WAIT_MS,
			.client_auth = CLIENT_AUTH_REQUIRED,
		},
		.listen_fd = -1,
	};
	struct server_link *sl = NULL;
	int sfd, rc = 1;

	log_init(prog);
	if (parse_args(argc, argv, &bd.cfg))
		return 2;
	if (token_init() != TOKEN_OK) {
		LOGE("bankd", "libsodium failed to start");
		return 1;
	}
	sfd = bankd_signalfd();
	if (sfd < 0) {
		LOGE("bankd", "signalfd: %s", strerror(errno));
		return 1;
	}
	if (bankd_init(&bd))
		goto out;
	sl = server_link_new(&bd);
	if (!sl)
		goto out;
	if (workers_start(&bd))
		goto out;
	LOGN("bankd", "remsim-bankd %s: bank %u, %u slots, clients on %s port "
	     "%u, server %s:%u, client auth %s", REMSIM_VERSION,
	     bd.cfg.bank_id, bd.cfg.num_slots,
	     bd.cfg.bind_addr ? bd.cfg.bind_addr : "(any)", bd.cfg.bind_port,
	     bd.cfg.server_host, bd.cfg.server_port,
	     client_auth_policy_name(bd.cfg.client_auth));
	server_link_start(sl);
	bankd_run(&bd, sl, sfd);
	rc = 0;
out:
	bankd_cleanup(&bd);
	server_link_free(sl);
	close(sfd);
	if (!rc)
		LOGN("bankd", "stopped");
	return rc;
}
