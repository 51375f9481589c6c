/*
 * remsim-loadgen: simulates N bankds and M clients speaking real RSPRO over
 * TCP (with keepalive and reconnect backoff) to one server, and reports when
 * mappings arrive and with which latency. This file holds the command line
 * and sets the agents up; the event loop is in loadgen_loop.c, the agents'
 * conversation in loadgen_agent.c, the output in loadgen_report.c.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "link.h"
#include "loadgen.h"
#include "log.h"
#include "opt.h"

#define LOADGEN_MAX_SLOTS	1023	/* numberOfSlots is 0..1023 */
#define LOADGEN_SPARE_FDS	16	/* stdio, epoll, resolver, ... */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: remsim-loadgen [OPTIONS]\n"
		"\n"
		"Simulates bankds and clients speaking RSPRO to a remsim (or\n"
		"osmo-remsim) server, each over its own TCP connection with\n"
		"keepalive and reconnect backoff, and reports when they connect and\n"
		"when their mappings arrive. Bankds answer resetStateReq,\n"
		"createMappingReq and removeMappingReq; clients answer\n"
		"configClientBankReq.\n"
		"\n"
		"  -s, --server HOST          server address (default 127.0.0.1)\n"
		"  -p, --port N               server RSPRO port (default 9998)\n"
		"  -b, --banks N              simulated bankds (default 0)\n"
		"      --first-bank ID        id of the first bankd (default 1)\n"
		"      --slots-per-bank N     numberOfSlots of each bankd, 1..1023\n"
		"                             (default 8)\n"
		"  -c, --clients N            simulated client slots (default 0)\n"
		"      --first-client ID      id of the first client (default 0)\n"
		"      --slots-per-client K   client slots per client id (default\n"
		"                             1): client slot i is id FIRST + i / K,\n"
		"                             slot i %% K\n"
		"  -d, --duration S           stop after S seconds (default 60)\n"
		"  -u, --until-mapped N       stop with status 0 as soon as N\n"
		"                             clients hold a bankd address\n"
		"                             (configClientBankReq with port != 0)\n"
		"  -r, --connect-rate N[/s]   new connections per second (default\n"
		"                             2000; 0: all at once)\n"
		"      --ping-interval MS     keepalive PING interval (default 30000)\n"
		"      --pong-timeout MS      keepalive PONG timeout (default 10000)\n"
		"  -j, --json                 one JSON object per event on stdout,\n"
		"                             then a summary object\n"
		"  -q, --quiet                no progress lines or text summary\n"
		"  -l, --log-level LEVEL      error | notice | info | debug (default\n"
		"                             error; notice logs every link and\n"
		"                             agent state change)\n"
		"  -V, --version\n"
		"  -h, --help\n"
		"\n"
		"Events (--json; t is CLOCK_REALTIME in ns): bankd_up, client_up,\n"
		"config, create, remove, reset, refused, down, all_connected,\n"
		"all_mapped, summary.\n"
		"\n"
		"Exit status: 0 goal reached (--until-mapped N, else every agent\n"
		"connected at the end), 1 not reached by --duration or a signal,\n"
		"2 usage error.\n"
		"\n"
		"Example: 100 bankds of 100 slots and 10,000 client slots (client\n"
		"ids 0..999, slots 0..9), done once all 10,000 are mapped:\n"
		"  remsim-loadgen --banks 100 --slots-per-bank 100 \\\n"
		"      --clients 10000 --slots-per-client 10 \\\n"
		"      --until-mapped 10000 --duration 60 --json\n");
}

static int bad_option(const char *opt, const char *value, const char *want)
{
	fprintf(stderr, "remsim-loadgen: invalid %s '%s' (%s)\n", opt, value,
		want);
	return -1;
}

/* Fills *out with a number in [min, max] or complains about opt. */
static int parse_uint(const char *opt, const char *s, long min, long max,
		      unsigned int *out)
{
	char want[48];
	long v = opt_number(s, min, max);

	if (v < 0) {
		snprintf(want, sizeof(want), "%ld..%ld", min, max);
		return bad_option(opt, s, want);
	}
	*out = (unsigned int)v;
	return 0;
}

static int parse_rate(const char *s, unsigned int *out)
{
	char buf[32];
	size_t n = strlen(s);

	/* "2000" and "2000/s" both mean 2000 per second */
	if (n > 2 && n < sizeof(buf) && !strcmp(s + n - 2, "/s")) {
		memcpy(buf, s, n - 2);
		buf[n - 2] = '\0';
		s = buf;
	}
	return parse_uint("--connect-rate", s, 0, 1000000, out);
}

static int parse_duration(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (!*s || *end || errno || !isfinite(v) || v <= 0 || v > 86400)
		return bad_option("--duration", s, "seconds, 0 < S <= 86400");
	*out = v;
	return 0;
}

/* Checks that the options fit RSPRO's id ranges and each other. */
static int check_config(const struct loadgen_config *cfg)
{
	unsigned long client_ids;

	if (cfg->banks == 0 && cfg->clients == 0) {
		fprintf(stderr, "remsim-loadgen: nothing to simulate: give "
			"--banks and/or --clients\n");
		return -1;
	}
	if (cfg->banks && cfg->first_bank + cfg->banks - 1 > RSPRO_MAX_ID) {
		fprintf(stderr, "remsim-loadgen: bank ids %u..%u exceed %d\n",
			cfg->first_bank, cfg->first_bank + cfg->banks - 1,
			RSPRO_MAX_ID);
		return -1;
	}
	client_ids = (cfg->clients + cfg->slots_per_client - 1) /
		     cfg->slots_per_client;
	if (cfg->clients && cfg->first_client + client_ids - 1 > RSPRO_MAX_ID) {
		fprintf(stderr, "remsim-loadgen: %u client slots at %u per "
			"client need client ids %u..%lu, above %d; raise "
			"--slots-per-client\n", cfg->clients,
			cfg->slots_per_client, cfg->first_client,
			cfg->first_client + client_ids - 1, RSPRO_MAX_ID);
		return -1;
	}
	if (cfg->until_mapped > cfg->clients) {
		fprintf(stderr, "remsim-loadgen: --until-mapped %u is more "
			"than the %u simulated clients\n", cfg->until_mapped,
			cfg->clients);
		return -1;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct loadgen_config *cfg)
{
	enum { OPT_FIRST_BANK = 256, OPT_SLOTS_PER_BANK, OPT_FIRST_CLIENT,
	       OPT_SLOTS_PER_CLIENT, OPT_PING, OPT_PONG };
	static const struct option longopts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "port", required_argument, NULL, 'p' },
		{ "banks", required_argument, NULL, 'b' },
		{ "first-bank", required_argument, NULL, OPT_FIRST_BANK },
		{ "slots-per-bank", required_argument, NULL,
		  OPT_SLOTS_PER_BANK },
		{ "clients", required_argument, NULL, 'c' },
		{ "first-client", required_argument, NULL, OPT_FIRST_CLIENT },
		{ "slots-per-client", required_argument, NULL,
		  OPT_SLOTS_PER_CLIENT },
		{ "duration", required_argument, NULL, 'd' },
		{ "until-mapped", required_argument, NULL, 'u' },
		{ "connect-rate", required_argument, NULL, 'r' },
		{ "ping-interval", required_argument, NULL, OPT_PING },
		{ "pong-timeout", required_argument, NULL, OPT_PONG },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum log_level level;
	unsigned int v;
	int rc = 0;
	int c;

	while ((c = getopt_long(argc, argv, "s:p:b:c:d:u:r:jql:Vh", longopts,
				NULL)) != -1) {
		switch (c) {
		case 's':
			if (!*optarg)
				return bad_option("--server", optarg,
						  "a host name or address");
			cfg->server = optarg;
			break;
		case 'p':
			rc = parse_uint("--port", optarg, 1, 65535, &v);
			cfg->port = (uint16_t)v;
			break;
		case 'b':
			rc = parse_uint("--banks", optarg, 0, RSPRO_MAX_ID + 1,
					&cfg->banks);
			break;
		case OPT_FIRST_BANK:
			rc = parse_uint("--first-bank", optarg, 0, RSPRO_MAX_ID,
					&cfg->first_bank);
			break;
		case OPT_SLOTS_PER_BANK:
			rc = parse_uint("--slots-per-bank", optarg, 1,
					LOADGEN_MAX_SLOTS,
					&cfg->slots_per_bank);
			break;
		case 'c':
			rc = parse_uint("--clients", optarg, 0, 1000000,
					&cfg->clients);
			break;
		case OPT_FIRST_CLIENT:
			rc = parse_uint("--first-client", optarg, 0,
					RSPRO_MAX_ID, &cfg->first_client);
			break;
		case OPT_SLOTS_PER_CLIENT:
			rc = parse_uint("--slots-per-client", optarg, 1,
					RSPRO_MAX_ID + 1,
					&cfg->slots_per_client);
			break;
		case 'd':
			rc = parse_duration(optarg, &cfg->duration_s);
			break;
		case 'u':
			rc = parse_uint("--until-mapped", optarg, 1, 1000000,
					&cfg->until_mapped);
			break;
		case 'r':
			rc = parse_rate(optarg, &cfg->connect_rate);
			break;
		case OPT_PING:
			rc = parse_uint("--ping-interval", optarg, 10, 3600000,
					&v);
			cfg->ping_interval_ms = v;
			break;
		case OPT_PONG:
			rc = parse_uint("--pong-timeout", optarg, 10, 3600000,
					&v);
			cfg->pong_timeout_ms = v;
			break;
		case 'j':
			cfg->json = 1;
			break;
		case 'q':
			cfg->quiet = 1;
			break;
		case 'l':
			if (log_parse_level(optarg, &level))
				return bad_option("--log-level", optarg,
						  "error, notice, info, debug");
			log_set_level(level);
			break;
		case 'V':
			printf("remsim-loadgen %s\n", REMSIM_VERSION);
			exit(LOADGEN_EXIT_OK);
		case 'h':
			usage(stdout);
			exit(LOADGEN_EXIT_OK);
		default:
			fprintf(stderr, "Try 'remsim-loadgen --help'.\n");
			return -1;
		}
		if (rc)
			return rc;
	}
	if (optind < argc) {
		fprintf(stderr, "remsim-loadgen: unexpected argument '%s'\n",
			argv[optind]);
		return -1;
	}
	return check_config(cfg);
}

/* One descriptor per agent must fit; raise the soft limit if it helps. */
static int check_fd_limit(size_t n_agents)
{
	rlim_t need = (rlim_t)n_agents + LOADGEN_SPARE_FDS;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 0;
	if (rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max >= need) {
		rl.rlim_cur = need;
		if (!setrlimit(RLIMIT_NOFILE, &rl))
			return 0;
	}
	fprintf(stderr, "remsim-loadgen: %zu agents need %llu file "
		"descriptors, but the limit is %llu (ulimit -n)\n", n_agents,
		(unsigned long long)need, (unsigned long long)rl.rlim_max);
	return -1;
}

/* ---- agents ------------------------------------------------------------ */

struct agent *loadgen_find_bankd(struct loadgen *lg, uint16_t bank_id)
{
	unsigned int first = lg->cfg.first_bank;

	if (bank_id < first || bank_id - first >= lg->cfg.banks)
		return NULL;
	return &lg->agents[bank_id - first];
}

static void loadgen_free_agents(struct loadgen *lg)
{
	for (size_t i = 0; i < lg->n_agents; i++)
		agent_free(&lg->agents[i]);
	free(lg->agents);
	lg->agents = NULL;
	lg->n_agents = 0;
}

static int loadgen_make_agents(struct loadgen *lg)
{
	const struct loadgen_config *cfg = &lg->cfg;
	size_t n = (size_t)cfg->banks + cfg->clients;
	struct rspro_client_slot slot;
	int rc = 0;

	lg->agents = calloc(n, sizeof(*lg->agents));
	if (!lg->agents) {
		LOGE(NULL, "out of memory for %zu agents", n);
		return -1;
	}
	for (unsigned int i = 0; i < cfg->banks && !rc; i++) {
		rc = agent_init_bankd(&lg->agents[lg->n_agents],
				      lg, (uint16_t)(cfg->first_bank + i),
				      (uint16_t)cfg->slots_per_bank);
		lg->n_agents++;
	}
	for (unsigned int i = 0; i < cfg->clients && !rc; i++) {
		slot.client_id = (uint16_t)(cfg->first_client +
					    i / cfg->slots_per_client);
		slot.slot_nr = (uint16_t)(i % cfg->slots_per_client);
		rc = agent_init_client(&lg->agents[lg->n_agents], lg, &slot);
		lg->n_agents++;
	}
	if (rc)
		loadgen_free_agents(lg);
	return rc;
}

int main(int argc, char **argv)
{
	static struct loadgen lg;
	int rc;

	log_init("remsim-loadgen");
	/* thousands of links: their state changes only on request */
	log_set_level(LOG_ERROR);
	lg.cfg = (struct loadgen_config){
		.server = "127.0.0.1",
		.port = 9998,
		.first_bank = 1,
		.slots_per_bank = 8,
		.slots_per_client = 1,
		.duration_s = 60,
		.connect_rate = 2000,
	};
	if (parse_args(argc, argv, &lg.cfg))
		return LOADGEN_EXIT_USAGE;
	if (check_fd_limit((size_t)lg.cfg.banks + lg.cfg.clients))
		return LOADGEN_EXIT_USAGE;

	/* events leave once per loop round, not per line */
	setvbuf(stdout, NULL, _IOFBF, 1 << 20);
	lg.all_connected_ms = -1;
	lg.all_mapped_ms = -1;
	lg.mapped_goal = lg.cfg.until_mapped ? lg.cfg.until_mapped :
					       lg.cfg.clients;
	if (loadgen_make_agents(&lg))
		return LOADGEN_EXIT_FAIL;
	lg.start_ms = link_now_ms();
	lg.start_ns = report_now_ns();
	rc = loop_run(&lg);
	loadgen_free_agents(&lg);
	free(lg.latency_us);
	return rc;
}
