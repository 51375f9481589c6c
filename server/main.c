/*
 * remsim-server: command line, start-up and shutdown. One libwebsockets
 * context owns the event loop; every part of the server (RSPRO listener,
 * database, HTTP) lives in it. SIGTERM/SIGINT close the listeners and end
 * the loop; the exit code is 0 after a clean stop.
 */
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth.h"
#include "control.h"
#include "db.h"
#include "feed.h"
#include "http.h"
#include "link.h"
#include "log.h"
#include "opt.h"
#include "server.h"
#include "static.h"

#include <uv.h>

static struct server server;

static const char *const auth_policy_names[] = {
	[AUTH_REQUIRED] = "required",
	[AUTH_OPTIONAL] = "optional",
	[AUTH_OFF] = "off",
};

const char *auth_policy_name(enum auth_policy p)
{
	return auth_policy_names[p];
}

int auth_policy_parse(const char *s, enum auth_policy *p)
{
	for (unsigned i = 0; i <= AUTH_OFF; i++) {
		if (!strcasecmp(s, auth_policy_names[i])) {
			*p = i;
			return 0;
		}
	}
	return -1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: remsim-server [OPTIONS]\n"
		"\n"
		"The remsim mapping service: keeps banks, clients and slot mappings\n"
		"in PostgreSQL and tells bankds and clients (RSPRO) what to do.\n"
		"\n"
		"  -p, --rspro-port PORT     RSPRO listener port (default %d)\n"
		"      --rspro-bind ADDR     RSPRO listener address (default: all)\n"
		"  -H, --http-port PORT      REST/dashboard port (default %d)\n"
		"      --http-bind ADDR      REST listener address (default: all)\n"
		"      --v1-access POLICY    who may use the osmo-remsim compatible\n"
		"                            /api/backend/v1: loopback (default),\n"
		"                            any or off\n"
		"      --web-root DIR        dashboard files served at / (default\n"
		"                            %s)\n"
		"  -D, --db CONNINFO         PostgreSQL connection string (default:\n"
		"                            libpq's PGHOST, PGPORT, ... variables)\n"
		"  -k, --key FILE            server secret key (remsimctl keygen)\n"
		"      --rspro-auth POLICY   required | optional | off (default\n"
		"                            required); optional admits osmo-remsim\n"
		"                            agents, marked unauthenticated\n"
		"      --bankd-port PORT     bankd port told to clients when the bankd\n"
		"                            does not say (default %d)\n"
		"      --ping-interval MS    keepalive PING interval (default 30000)\n"
		"      --pong-timeout MS     keepalive PONG timeout (default 10000)\n"
		"      --feed-heartbeat MS   /feed heartbeat and WebSocket ping\n"
		"                            interval (default 15000); a subscriber\n"
		"                            silent for two intervals is dropped,\n"
		"                            a new one without its auth message\n"
		"                            after min(5 s, two intervals)\n"
		"      --feed-queue N        /feed messages queued per subscriber\n"
		"                            before it is resynced (default 10000)\n"
		"  -l, --log-level LEVEL     error | notice | info | debug (default\n"
		"                            notice)\n"
		"      --no-timestamps       log lines without time (for journald)\n"
		"  -V, --version\n"
		"  -h, --help\n"
		"\n"
		"example:\n"
		"  remsim-server --db 'host=/run/postgresql dbname=remsim' \\\n"
		"      --key /etc/remsim/server.key\n",
		SERVER_DEFAULT_RSPRO_PORT, SERVER_DEFAULT_HTTP_PORT,
		static_default_root(), SERVER_DEFAULT_BANKD_PORT);
}

static int parse_args(int argc, char **argv, struct server_config *cfg)
{
	enum { OPT_RSPRO_BIND = 256, OPT_HTTP_BIND, OPT_AUTH, OPT_BANKD_PORT,
	       OPT_PING, OPT_PONG, OPT_NO_TS, OPT_V1_ACCESS, OPT_FEED_HB,
	       OPT_FEED_QUEUE,
	       OPT_WEB_ROOT };
	static const struct option longopts[] = {
		{ "rspro-port", required_argument, NULL, 'p' },
		{ "rspro-bind", required_argument, NULL, OPT_RSPRO_BIND },
		{ "http-port", required_argument, NULL, 'H' },
		{ "http-bind", required_argument, NULL, OPT_HTTP_BIND },
		{ "v1-access", required_argument, NULL, OPT_V1_ACCESS },
		{ "web-root", required_argument, NULL, OPT_WEB_ROOT },
		{ "db", required_argument, NULL, 'D' },
		{ "key", required_argument, NULL, 'k' },
		{ "rspro-auth", required_argument, NULL, OPT_AUTH },
		{ "bankd-port", required_argument, NULL, OPT_BANKD_PORT },
		{ "ping-interval", required_argument, NULL, OPT_PING },
		{ "pong-timeout", required_argument, NULL, OPT_PONG },
		{ "feed-heartbeat", required_argument, NULL, OPT_FEED_HB },
		{ "feed-queue", required_argument, NULL, OPT_FEED_QUEUE },
		{ "log-level", required_argument, NULL, 'l' },
		{ "no-timestamps", no_argument, NULL, OPT_NO_TS },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum log_level level;
	long v;
	int c;

	while ((c = getopt_long(argc, argv, "p:H:D:k:l:Vh", longopts, NULL)) !=
	       -1) {
		switch (c) {
		case 'p':
		case 'H':
		case OPT_BANKD_PORT:
			v = opt_number(optarg, 1, 65535);
			if (v < 0) {
				fprintf(stderr, "remsim-server: invalid port "
					"'%s' (1..65535)\n", optarg);
				return -1;
			}
			if (c == 'p')
				cfg->rspro_port = (int)v;
			else if (c == 'H')
				cfg->http_port = (int)v;
			else
				cfg->bankd_port = (int)v;
			break;
		case OPT_RSPRO_BIND:
			cfg->rspro_bind = optarg;
			break;
		case OPT_HTTP_BIND:
			cfg->http_bind = optarg;
			break;
		case OPT_V1_ACCESS:
			if (strcmp(optarg, "loopback") && strcmp(optarg, "any") &&
			    strcmp(optarg, "off")) {
				fprintf(stderr, "remsim-server: invalid "
					"--v1-access '%s' (loopback, any, "
					"off)\n", optarg);
				return -1;
			}
			cfg->v1_access = optarg;
			break;
		case OPT_WEB_ROOT:
			cfg->web_root = optarg;
			break;
		case 'D':
			cfg->db_conninfo = optarg;
			break;
		case 'k':
			cfg->key_path = optarg;
			break;
		case OPT_AUTH:
			if (auth_policy_parse(optarg, &cfg->rspro_auth)) {
				fprintf(stderr, "remsim-server: invalid "
					"--rspro-auth '%s' (required, "
					"optional, off)\n", optarg);
				return -1;
			}
			break;
		case OPT_PING:
		case OPT_PONG:
			v = opt_number(optarg, 10, 3600000);
			if (v < 0) {
				fprintf(stderr, "remsim-server: invalid "
					"time '%s' (10..3600000 ms)\n", optarg);
				return -1;
			}
			if (c == OPT_PING)
				cfg->ping_interval_ms = (uint32_t)v;
			else
				cfg->pong_timeout_ms = (uint32_t)v;
			break;
		case OPT_FEED_HB:
			v = opt_number(optarg, 100, 3600000);
			if (v < 0) {
				fprintf(stderr, "remsim-server: invalid "
					"--feed-heartbeat '%s' (100..3600000 "
					"ms)\n", optarg);
				return -1;
			}
			cfg->feed_heartbeat_ms = (uint32_t)v;
			break;
		case OPT_FEED_QUEUE:
			v = opt_number(optarg, 10, 1000000);
			if (v < 0) {
				fprintf(stderr, "remsim-server: invalid "
					"--feed-queue '%s' (10..1000000)\n",
					optarg);
				return -1;
			}
			cfg->feed_queue_max = (unsigned)v;
			break;
		case 'l':
			if (log_parse_level(optarg, &level)) {
				fprintf(stderr, "remsim-server: invalid log "
					"level '%s'\n", optarg);
				return -1;
			}
			log_set_level(level);
			break;
		case OPT_NO_TS:
			log_set_timestamps(0);
			break;
		case 'V':
			printf("remsim-server %s\n", REMSIM_VERSION);
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
		fprintf(stderr, "remsim-server: unexpected argument '%s'\n",
			argv[optind]);
		return -1;
	}
	return 0;
}

static const char *const db_channels[] = {
	"remsim_slotmaps", "remsim_tokens", NULL,
};

static void on_db_up(struct db *db, void *user)
{
	LOGN("db", "database ready");
	auth_db_up(&server);
	control_db_up(&server);
	feed_db_up(&server);
}

static void on_db_down(struct db *db, const char *reason, void *user)
{
	LOGE("db", "database lost (%s): serving connected agents from memory",
	     reason);
	feed_db_down(&server);
}

static void on_db_notify(struct db *db, const char *channel,
			 const char *payload, void *user)
{
	/* feed payloads are rows, up to 8 kB each: not for the log */
	if (!strcmp(channel, FEED_CHANNEL)) {
		feed_db_notify(&server, payload);
		return;
	}
	LOGI("db", "notification on %s: %s", channel, payload);
	if (!strcmp(channel, "remsim_tokens"))
		auth_db_notify_revoked(&server, payload);
	else
		control_db_notify(&server, channel, payload);
}

/* A vhost without a listener: the database socket is adopted into it. */
static int start_internal_vhost(struct server *srv)
{
	static const struct lws_protocols *pprotocols[] = { &db_protocol, NULL };
	struct lws_context_creation_info info;

	memset(&info, 0, sizeof(info));
	info.vhost_name = "internal";
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	info.pprotocols = pprotocols;
	srv->internal_vh = lws_create_vhost(srv->ctx, &info);
	return srv->internal_vh ? 0 : -1;
}

static int start_db(struct server *srv)
{
	static const struct db_callbacks cb = {
		.on_up = on_db_up,
		.on_down = on_db_down,
		.on_notify = on_db_notify,
	};

	srv->db = db_new(srv, srv->cfg.db_conninfo, db_channels, &cb);
	if (!srv->db)
		return -1;
	return db_start(srv->db);
}

/*
 * The loop is libuv's (epoll), not lws' built-in poll(): with 10,000 agents
 * connected, poll() over every descriptor on each wake-up was two thirds of
 * the server's CPU time and added milliseconds to every REST answer. lws
 * joins this loop as a "foreign" loop; signals and the shutdown timer are
 * plain libuv handles in it, so nothing happens in a signal handler.
 */
static uv_loop_t loop;
static uv_signal_t sig_term, sig_int;
static uv_timer_t shutdown_timer;
static int64_t shutdown_deadline_ms;

/*
 * lws arms its own timer for the earliest lws_sul only after lws I/O; a
 * sul scheduled from one of our libuv callbacks is noticed once we wake
 * lws up through its event pipe.
 */
static void kick_lws(void)
{
	if (server.ctx)
		lws_cancel_service(server.ctx);
}

static void close_handle(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* every 10 ms after a signal: end the loop once the last writes are done */
static void on_shutdown_timer(uv_timer_t *t)
{
	(void)t;
	if ((!db_is_idle(server.db) || feed_is_busy(&server)) &&
	    link_now_ms() < shutdown_deadline_ms)
		return;
	if (!db_is_idle(server.db))
		LOGE(NULL, "database writes still pending after 2 s; "
		     "exiting without them");
	uv_timer_stop(&shutdown_timer);
	uv_stop(&loop);
}

static void on_signal(uv_signal_t *h, int sig)
{
	(void)h;
	if (server.stopping)
		return;
	server.stopping = sig;
	LOGN(NULL, "%s: shutting down", strsignal(sig));
	control_shutdown(&server);
	feed_shutdown(&server);
	/* let the last database writes through, for at most 2 s */
	shutdown_deadline_ms = link_now_ms() + 2000;
	uv_timer_start(&shutdown_timer, on_shutdown_timer, 0, 10);
	kick_lws();
}

/* libwebsockets' own messages: warnings and errors only, through our log. */
static void lws_log_emit(int level, const char *line)
{
	size_t n = strlen(line);

	while (n && line[n - 1] == '\n')
		n--;
	log_msg(level & LLL_ERR ? LOG_ERROR : LOG_NOTICE, "lws", "%.*s",
		(int)n, line);
}

int main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	void *foreign_loops[1] = { &loop };
	int rc = 0;

	log_init("remsim-server");
	server.cfg = (struct server_config){
		.rspro_port = SERVER_DEFAULT_RSPRO_PORT,
		.http_port = SERVER_DEFAULT_HTTP_PORT,
		.rspro_auth = AUTH_REQUIRED,
		.bankd_port = SERVER_DEFAULT_BANKD_PORT,
		.ping_interval_ms = 30000,
		.pong_timeout_ms = 10000,
		.connect_timeout_ms = 10000,
		.feed_heartbeat_ms = FEED_HEARTBEAT_MS,
		.feed_queue_max = FEED_QUEUE_MAX,
	};
	if (parse_args(argc, argv, &server.cfg))
		return 2;

	if (gethostname(server.hostname, sizeof(server.hostname) - 1) ||
	    !server.hostname[0])
		strcpy(server.hostname, "remsim-server");
	server.identity = (struct rspro_identity){
		.type = ComponentType_remsimServer,
		.name = server.hostname,
		.software = "remsim-server",
		.sw_version = REMSIM_VERSION,
	};

	if (token_init()) {
		LOGE(NULL, "libsodium failed to initialise");
		return 1;
	}
	if (server.cfg.key_path) {
		char err[256];

		if (token_keypair_load(server.cfg.key_path, &server.keypair, err,
				       sizeof(err))) {
			LOGE(NULL, "%s", err);
			return 1;
		}
		server.have_key = 1;
	} else if (server.cfg.rspro_auth == AUTH_REQUIRED) {
		LOGE(NULL, "--rspro-auth required needs the server key "
		     "(--key FILE, made by 'remsimctl keygen'); or run with "
		     "--rspro-auth optional|off");
		return 2;
	}

	signal(SIGPIPE, SIG_IGN);
	/*
	 * Large answers (GET /api/backend/v1/clients at 10,000 clients is
	 * 1.7 MB) would each get fresh mmap()ed pages from glibc and pay a
	 * page fault per 4 KiB on every request; keep them on the heap and
	 * keep up to 16 MB of freed heap for the next one.
	 */
	mallopt(M_MMAP_THRESHOLD, 8 << 20);
	mallopt(M_TRIM_THRESHOLD, 16 << 20);
	if (uv_loop_init(&loop)) {
		LOGE(NULL, "cannot create the event loop");
		return 1;
	}
	uv_signal_init(&loop, &sig_term);
	uv_signal_init(&loop, &sig_int);
	uv_timer_init(&loop, &shutdown_timer);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	uv_signal_start(&sig_int, on_signal, SIGINT);

	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
		       LWS_SERVER_OPTION_LIBUV;
	info.foreign_loops = foreign_loops;
	info.user = &server;
	server.ctx = lws_create_context(&info);
	if (!server.ctx) {
		LOGE(NULL, "cannot create the event loop");
		rc = 1;
		goto out;
	}
	if (static_init(server.cfg.web_root ? server.cfg.web_root :
			static_default_root(), server.cfg.web_root != NULL)) {
		rc = 2;
		goto out;
	}
	if (auth_init(&server) || control_init(&server) || feed_init(&server) ||
	    start_internal_vhost(&server) ||
	    start_db(&server) ||
	    rspro_server_start(&server) || http_start(&server)) {
		rc = 1;
		goto out;
	}
	LOGN(NULL, "remsim-server %s running (RSPRO auth %s)", REMSIM_VERSION,
	     auth_policy_name(server.cfg.rspro_auth));

	uv_run(&loop, UV_RUN_DEFAULT);
out:
	db_free(server.db);
	server.db = NULL;
	if (server.ctx)
		lws_context_destroy(server.ctx);
	server.ctx = NULL;
	close_handle((uv_handle_t *)&sig_term);
	close_handle((uv_handle_t *)&sig_int);
	close_handle((uv_handle_t *)&shutdown_timer);
	/* lws closes its handles asynchronously: run the loop until they are */
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop))
		LOGE(NULL, "event loop still had open handles at exit");
	http_free(&server);
	feed_free(&server);
	control_free(&server);
	auth_free(&server);
	token_keypair_wipe(&server.keypair);
	if (rc)
		return rc;
	LOGN(NULL, "stopped");
	return 0;
}
