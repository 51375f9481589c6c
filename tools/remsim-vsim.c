/*
 * remsim-vsim: virtual SIM/USIM cards for vpcd readers. One process serves
 * any number of readers from one ppoll() loop: each --reader gets a card of
 * the profile file. Also prints generated profile files (--gen-profiles).
 * The card is in vsim_card.c, the vpcd connection in vsim_slot.c.
 */
#define _GNU_SOURCE	/* ppoll */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"
#include "vsim_io.h"

#define VSIM_EXIT_OK	0
#define VSIM_EXIT_FAIL	1
#define VSIM_EXIT_USAGE	2
#define VSIM_MAX_READERS 1024
#define VSIM_MAX_GEN	1000000

struct vsim_reader_arg {
	uint16_t port;
	long index;		/* -1: the next unused card */
};

struct vsim_config {
	const char *profiles;
	const char *host;
	const char *control;
	struct vsim_reader_arg readers[VSIM_MAX_READERS];
	size_t n_readers;
	long gen;		/* -1: not generating */
	uint64_t seed;
	int have_seed;
};

static volatile sig_atomic_t vsim_stop_signal;

static void usage(FILE *out)
{
	fprintf(out,
		"usage: remsim-vsim --profiles FILE.json [--host HOST]\n"
		"                   --reader PORT[=INDEX] [--reader ...]\n"
		"                   [--control PATH] [--log-level LEVEL]\n"
		"       remsim-vsim --gen-profiles N [--seed S]\n"
		"\n"
		"Virtual SIM/USIM cards for pcscd's vpcd readers: each card\n"
		"connects to the TCP port its vpcd reader listens on, which\n"
		"makes the reader show it as inserted. One process serves many\n"
		"readers.\n"
		"\n"
		"  -p, --profiles FILE     card profiles: {\"cards\": [{\"iccid\",\n"
		"                          \"imsi\", \"ki\", \"pin1\", \"puk1\",\n"
		"                          \"pin2\", \"puk2\", \"atr\" (optional),\n"
		"                          \"pin1_enabled\" (optional)}]}\n"
		"  -H, --host HOST         where the vpcd readers listen\n"
		"                          (default 127.0.0.1)\n"
		"  -r, --reader PORT[=INDEX]\n"
		"                          serve card INDEX of the file (default:\n"
		"                          the next unused card in file order) on\n"
		"                          the vpcd reader at HOST:PORT; repeat\n"
		"                          for more readers\n"
		"  -c, --control PATH      UNIX socket for line commands: status,\n"
		"                          remove INDEX, insert INDEX,\n"
		"                          mute INDEX on|off, delay INDEX USEC\n"
		"  -g, --gen-profiles N    print a profile file for N cards\n"
		"                          (1..%d) to stdout and exit\n"
		"  -s, --seed S            with --gen-profiles: the same S gives\n"
		"                          the same file (default: random)\n"
		"  -l, --log-level LEVEL   error | notice | info | debug (default\n"
		"                          notice; debug logs every APDU)\n"
		"  -V, --version\n"
		"  -h, --help\n"
		"\n"
		"Exit status: 0 after SIGTERM/SIGINT or --gen-profiles, 1 on a\n"
		"runtime failure, 2 on a usage error or a bad profile file.\n"
		"Details: docs/vsim.md.\n", VSIM_MAX_GEN);
}

static int bad_option(const char *opt, const char *value, const char *want)
{
	fprintf(stderr, "remsim-vsim: invalid %s '%s' (%s)\n", opt, value,
		want);
	return -1;
}

/* a decimal number in [0, max]; -1 on anything else */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_reader(const char *arg, struct vsim_config *cfg)
{
	char buf[64];
	char *eq;
	uint64_t port, index;

	if (cfg->n_readers == VSIM_MAX_READERS)
		return bad_option("--reader", arg, "at most 1024 readers");
	if (strlen(arg) >= sizeof(buf))
		return bad_option("--reader", arg, "PORT or PORT=INDEX");
	strcpy(buf, arg);
	eq = strchr(buf, '=');
	if (eq)
		*eq = '\0';
	if (parse_u64(buf, 65535, &port) || port == 0)
		return bad_option("--reader", arg, "PORT 1..65535, "
				  "optionally =INDEX");
	if (eq && parse_u64(eq + 1, VSIM_MAX_GEN, &index))
		return bad_option("--reader", arg, "INDEX is a card number "
				  "from 0");
	cfg->readers[cfg->n_readers].port = (uint16_t)port;
	cfg->readers[cfg->n_readers].index = eq ? (long)index : -1;
	cfg->n_readers++;
	return 0;
}

static int check_config(const struct vsim_config *cfg)
{
	if (cfg->gen >= 0) {
		if (cfg->profiles || cfg->n_readers || cfg->control) {
			fprintf(stderr, "remsim-vsim: --gen-profiles does not "
				"go with --profiles, --reader or --control\n");
			return -1;
		}
		return 0;
	}
	if (cfg->have_seed) {
		fprintf(stderr, "remsim-vsim: --seed needs --gen-profiles\n");
		return -1;
	}
	if (!cfg->profiles || !cfg->n_readers) {
		fprintf(stderr, "remsim-vsim: need --profiles FILE and at "
			"least one --reader PORT (or --gen-profiles N)\n");
		return -1;
	}
	for (size_t i = 0; i < cfg->n_readers; i++)
		for (size_t k = 0; k < i; k++)
			if (cfg->readers[i].port == cfg->readers[k].port) {
				fprintf(stderr, "remsim-vsim: reader port %u "
					"given twice\n", cfg->readers[i].port);
				return -1;
			}
	return 0;
}

static int parse_args(int argc, char **argv, struct vsim_config *cfg)
{
	static const struct option longopts[] = {
		{ "profiles", required_argument, NULL, 'p' },
		{ "host", required_argument, NULL, 'H' },
		{ "reader", required_argument, NULL, 'r' },
		{ "control", required_argument, NULL, 'c' },
		{ "gen-profiles", required_argument, NULL, 'g' },
		{ "seed", required_argument, NULL, 's' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum log_level level;
	uint64_t v;
	int rc = 0;
	int c;

	while ((c = getopt_long(argc, argv, "p:H:r:c:g:s:l:Vh", longopts,
				NULL)) != -1) {
		switch (c) {
		case 'p':
			cfg->profiles = optarg;
			break;
		case 'H':
			if (!*optarg)
				rc = bad_option("--host", optarg,
						"a host name or address");
			cfg->host = optarg;
			break;
		case 'r':
			rc = parse_reader(optarg, cfg);
			break;
		case 'c':
			if (!*optarg)
				rc = bad_option("--control", optarg,
						"a socket path");
			cfg->control = optarg;
			break;
		case 'g':
			if (parse_u64(optarg, VSIM_MAX_GEN, &v) || v == 0)
				rc = bad_option("--gen-profiles", optarg,
						"1..1000000 cards");
			cfg->gen = (long)v;
			break;
		case 's':
			if (parse_u64(optarg, UINT64_MAX, &cfg->seed))
				rc = bad_option("--seed", optarg,
						"a number 0..2^64-1");
			cfg->have_seed = 1;
			break;
		case 'l':
			if (log_parse_level(optarg, &level))
				rc = bad_option("--log-level", optarg,
						"error, notice, info, debug");
			else
				log_set_level(level);
			break;
		case 'V':
			printf("remsim-vsim %s\n", REMSIM_VERSION);
			exit(VSIM_EXIT_OK);
		case 'h':
			usage(stdout);
			exit(VSIM_EXIT_OK);
		default:
			fprintf(stderr, "Try 'remsim-vsim --help'.\n");
			return -1;
		}
		if (rc)
			return rc;
	}
	if (optind < argc) {
		fprintf(stderr, "remsim-vsim: unexpected argument '%s'\n",
			argv[optind]);
		return -1;
	}
	return check_config(cfg);
}

/* Explicit =INDEX first, then the others take the unused cards in order. */
static int assign_cards(struct vsim_config *cfg, size_t n_cards)
{
	unsigned char *used = calloc(n_cards, 1);
	size_t next = 0;
	int rc = -1;

	if (!used)
		return -1;
	for (size_t i = 0; i < cfg->n_readers; i++) {
		long idx = cfg->readers[i].index;

		if (idx < 0)
			continue;
		if ((size_t)idx >= n_cards) {
			fprintf(stderr, "remsim-vsim: --reader %u=%ld: no card "
				"%ld, %s has %zu cards (0..%zu)\n",
				cfg->readers[i].port, idx, idx, cfg->profiles,
				n_cards, n_cards - 1);
			goto out;
		}
		if (used[idx]) {
			fprintf(stderr, "remsim-vsim: card %ld is given to two "
				"readers\n", idx);
			goto out;
		}
		used[idx] = 1;
	}
	for (size_t i = 0; i < cfg->n_readers; i++) {
		if (cfg->readers[i].index >= 0)
			continue;
		while (next < n_cards && used[next])
			next++;
		if (next == n_cards) {
			fprintf(stderr, "remsim-vsim: %zu readers, but %s has "
				"only %zu cards\n", cfg->n_readers,
				cfg->profiles, n_cards);
			goto out;
		}
		used[next] = 1;
		cfg->readers[i].index = (long)next;
	}
	rc = 0;
out:
	free(used);
	return rc;
}

static int resolve_host(const char *host, struct sockaddr_storage *addr,
			socklen_t *len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	struct addrinfo *res, *pick;
	int rc = getaddrinfo(host, "1", &hints, &res);

	if (rc) {
		fprintf(stderr, "remsim-vsim: --host %s: %s\n", host,
			gai_strerror(rc));
		return -1;
	}
	/* vpcd listens on 0.0.0.0: "localhost" must not end up as ::1 */
	pick = res;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
		if (ai->ai_family == AF_INET) {
			pick = ai;
			break;
		}
	memcpy(addr, pick->ai_addr, pick->ai_addrlen);
	*len = pick->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static void set_port(struct sockaddr_storage *addr, uint16_t port)
{
	if (addr->ss_family == AF_INET6)
		((struct sockaddr_in6 *)addr)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)addr)->sin_port = htons(port);
}

static void on_signal(int sig)
{
	vsim_stop_signal = sig;
}

/* SIGTERM/SIGINT only get through inside ppoll(): no lost wake-ups */
static int setup_signals(sigset_t *run_mask)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t block;

	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	if (sigprocmask(SIG_BLOCK, &block, run_mask))
		return -1;
	sigdelset(run_mask, SIGTERM);
	sigdelset(run_mask, SIGINT);
	signal(SIGPIPE, SIG_IGN);
	return sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL);
}

static int run_loop(struct vsim_slot *slots, size_t n, struct vsim_control *ctl,
		    const sigset_t *run_mask)
{
	size_t cap = n + 1 + VSIM_CONTROL_CLIENTS;
	struct pollfd *pfds = calloc(cap, sizeof(*pfds));

	if (!pfds) {
		LOGE(NULL, "out of memory");
		return VSIM_EXIT_FAIL;
	}
	while (!vsim_stop_signal) {
		uint64_t now = vsim_now_us(), next = UINT64_MAX;
		struct timespec ts, *tsp = NULL;
		size_t nctl;

		for (size_t i = 0; i < n; i++) {
			uint64_t t;

			vsim_slot_handle_timer(&slots[i], now);
			t = vsim_slot_next_timer(&slots[i]);
			if (t < next)
				next = t;
			pfds[i] = (struct pollfd){
				.fd = slots[i].fd,
				.events = vsim_slot_poll_events(&slots[i]),
			};
		}
		nctl = vsim_control_fill_pollfds(ctl, pfds + n);
		if (next != UINT64_MAX) {
			uint64_t wait = next > now ? next - now : 0;

			ts.tv_sec = (time_t)(wait / 1000000u);
			ts.tv_nsec = (long)(wait % 1000000u) * 1000;
			tsp = &ts;
		}
		if (ppoll(pfds, n + nctl, tsp, run_mask) < 0) {
			if (errno == EINTR)
				continue;
			LOGE(NULL, "ppoll: %s", strerror(errno));
			free(pfds);
			return VSIM_EXIT_FAIL;
		}
		for (size_t i = 0; i < n; i++)
			if (pfds[i].fd >= 0 && pfds[i].fd == slots[i].fd)
				vsim_slot_handle_io(&slots[i],
						    pfds[i].revents);
		vsim_control_handle(ctl, pfds + n, nctl);
	}
	LOGN(NULL, "stopping (%s)", strsignal(vsim_stop_signal));
	free(pfds);
	return VSIM_EXIT_OK;
}

static int generate(const struct vsim_config *cfg)
{
	uint64_t seed = cfg->seed;

	if (!cfg->have_seed && getrandom(&seed, sizeof(seed), 0) !=
				       (ssize_t)sizeof(seed)) {
		fprintf(stderr, "remsim-vsim: getrandom: %s\n",
			strerror(errno));
		return VSIM_EXIT_FAIL;
	}
	if (vsim_profile_generate(stdout, (unsigned int)cfg->gen, seed)) {
		fprintf(stderr, "remsim-vsim: writing stdout: %s\n",
			strerror(errno));
		return VSIM_EXIT_FAIL;
	}
	return VSIM_EXIT_OK;
}

static int serve(struct vsim_config *cfg, const struct vsim_profile *cards,
		 size_t n_cards)
{
	static struct vsim_control ctl = { .listen_fd = -1 };
	struct sockaddr_storage addr;
	struct vsim_slot *slots;
	sigset_t run_mask;
	socklen_t addr_len;
	size_t n = 0;
	int rc = VSIM_EXIT_FAIL;

	if (assign_cards(cfg, n_cards) ||
	    resolve_host(cfg->host, &addr, &addr_len))
		return VSIM_EXIT_USAGE;
	slots = calloc(cfg->n_readers, sizeof(*slots));
	if (!slots || setup_signals(&run_mask)) {
		LOGE(NULL, "start-up failed: %s", strerror(errno));
		goto out;
	}
	for (; n < cfg->n_readers; n++) {
		size_t idx = (size_t)cfg->readers[n].index;
		struct vsim_card *card = vsim_card_new(&cards[idx]);

		if (!card) {
			LOGE(NULL, "out of memory for card %zu", idx);
			goto out;
		}
		set_port(&addr, cfg->readers[n].port);
		vsim_slot_init(&slots[n], (unsigned int)idx, card,
			       (struct sockaddr *)&addr, addr_len, cfg->host,
			       cfg->readers[n].port);
	}
	if (cfg->control &&
	    vsim_control_open(&ctl, cfg->control, slots, n)) {
		rc = VSIM_EXIT_USAGE;
		goto out;
	}
	LOGN(NULL, "serving %zu cards of %s on vpcd readers at %s", n,
	     cfg->profiles, cfg->host);
	rc = run_loop(slots, n, &ctl, &run_mask);
out:
	vsim_control_close(&ctl);
	for (size_t i = 0; i < n; i++) {
		vsim_slot_close(&slots[i]);
		vsim_card_free(slots[i].card);
	}
	free(slots);
	return rc;
}

int main(int argc, char **argv)
{
	static struct vsim_config cfg = { .host = "127.0.0.1", .gen = -1 };
	struct vsim_profile *cards = NULL;
	size_t n_cards = 0;
	char err[512];
	int rc;

	log_init("remsim-vsim");
	if (parse_args(argc, argv, &cfg))
		return VSIM_EXIT_USAGE;
	if (cfg.gen >= 0)
		return generate(&cfg);
	if (vsim_profile_load(cfg.profiles, &cards, &n_cards, err,
			      sizeof(err))) {
		LOGE(NULL, "bad profile file %s", err);
		return VSIM_EXIT_USAGE;
	}
	rc = serve(&cfg, cards, n_cards);
	free(cards);
	return rc;
}
