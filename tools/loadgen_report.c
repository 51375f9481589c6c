/*
 * loadgen_report: what remsim-loadgen tells the world. With --json every
 * event is one JSON object per line on stdout, stamped with CLOCK_REALTIME
 * nanoseconds so a benchmark can match it against the moment it changed
 * the database; the summary closes the stream. Without --json a progress
 * line every second and a summary go to stderr.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "link.h"
#include "loadgen.h"

int64_t report_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Opens an event line: {"t":...,"ev":"..." ; the caller adds fields. */
static int report_begin(const struct loadgen *lg, const char *ev)
{
	if (!lg->cfg.json)
		return 0;
	printf("{\"t\":%" PRId64 ",\"ev\":\"%s\"", report_now_ns(), ev);
	return 1;
}

static void report_end(void)
{
	fputs("}\n", stdout);
}

/* ,"bank":N or ,"client":[c,s]: who the event is about. */
static void report_who(const struct agent *a)
{
	if (a->kind == AGENT_BANKD)
		printf(",\"bank\":%u", a->bankd.bank_id);
	else
		printf(",\"client\":[%u,%u]", a->client.slot.client_id,
		       a->client.slot.slot_nr);
}

/* ,"key":"text" with the text escaped as JSON. */
static void report_string(const char *key, const char *text)
{
	json_t *s = json_string(text ? text : "");
	char *enc = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;

	printf(",\"%s\":%s", key, enc ? enc : "\"\"");
	free(enc);
	json_decref(s);
}

static const char *report_result_name(long result)
{
	const char *name = rspro_result_name(result);

	return name ? name : "?";
}

void report_bankd_up(struct loadgen *lg, const struct agent *a)
{
	if (!report_begin(lg, "bankd_up"))
		return;
	report_who(a);
	report_end();
}

void report_client_up(struct loadgen *lg, const struct agent *a)
{
	if (!report_begin(lg, "client_up"))
		return;
	report_who(a);
	report_end();
}

void report_refused(struct loadgen *lg, const struct agent *a, long result)
{
	if (!report_begin(lg, "refused"))
		return;
	report_who(a);
	report_string("result", report_result_name(result));
	report_end();
}

void report_down(struct loadgen *lg, const struct agent *a,
		 const char *reason)
{
	if (!report_begin(lg, "down"))
		return;
	report_who(a);
	report_string("reason", reason);
	report_end();
}

static void report_latency_add(struct loadgen *lg, int64_t us)
{
	uint32_t *grown;
	size_t cap;

	if (lg->n_latency == lg->latency_cap) {
		cap = lg->latency_cap ? 2 * lg->latency_cap : 1024;
		grown = realloc(lg->latency_us, cap * sizeof(*grown));
		if (!grown)
			return;	/* the statistics get thinner, nothing worse */
		lg->latency_us = grown;
		lg->latency_cap = cap;
	}
	lg->latency_us[lg->n_latency++] =
		us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

void report_config(struct loadgen *lg, const struct agent *a,
		   const struct rspro_bank_slot *bank,
		   const struct rspro_ip_port *bankd, int64_t latency_us)
{
	char ip[INET6_ADDRSTRLEN];

	if (latency_us >= 0)
		report_latency_add(lg, latency_us);
	if (!report_begin(lg, "config"))
		return;
	if (!inet_ntop(bankd->family, bankd->addr, ip, sizeof(ip)))
		strcpy(ip, "?");
	report_who(a);
	printf(",\"bank\":[%u,%u],\"ip\":\"%s\",\"port\":%u", bank->bank_id,
	       bank->slot_nr, ip, bankd->port);
	if (latency_us >= 0)
		printf(",\"create_to_config_us\":%" PRId64, latency_us);
	report_end();
}

void report_mapping(struct loadgen *lg, const struct agent *a,
		    const char *ev, const struct rspro_bank_slot *bank,
		    const struct rspro_client_slot *client, long result)
{
	if (!report_begin(lg, ev))
		return;
	printf(",\"bank\":[%u,%u],\"client\":[%u,%u]", bank->bank_id,
	       bank->slot_nr, client->client_id, client->slot_nr);
	report_string("result", report_result_name(result));
	report_end();
}

void report_reset(struct loadgen *lg, const struct agent *a)
{
	if (!report_begin(lg, "reset"))
		return;
	report_who(a);
	report_end();
}

static int64_t report_elapsed_ms(const struct loadgen *lg)
{
	return link_now_ms() - lg->start_ms;
}

void report_milestones(struct loadgen *lg)
{
	const struct loadgen_counts *c = &lg->counts;

	if (lg->all_connected_ms < 0 && c->banks_up == lg->cfg.banks &&
	    c->clients_up == lg->cfg.clients) {
		lg->all_connected_ms = report_elapsed_ms(lg);
		if (report_begin(lg, "all_connected")) {
			printf(",\"banks\":%u,\"clients\":%u,\"elapsed_s\":%.3f",
			       c->banks_up, c->clients_up,
			       lg->all_connected_ms / 1000.0);
			report_end();
		}
	}
	if (lg->all_mapped_ms < 0 && lg->mapped_goal &&
	    c->mapped >= lg->mapped_goal) {
		lg->all_mapped_ms = report_elapsed_ms(lg);
		if (report_begin(lg, "all_mapped")) {
			printf(",\"mapped\":%u,\"elapsed_s\":%.3f", c->mapped,
			       lg->all_mapped_ms / 1000.0);
			report_end();
		}
	}
}

void report_progress(struct loadgen *lg)
{
	const struct loadgen_counts *c = &lg->counts;

	if (lg->cfg.json || lg->cfg.quiet)
		return;
	fprintf(stderr, "remsim-loadgen: %5.1f s: bankds %u/%u, clients %u/%u "
		"up, %u mapped, %" PRIu64 " refused, %" PRIu64 " lost\n",
		report_elapsed_ms(lg) / 1000.0, c->banks_up, lg->cfg.banks,
		c->clients_up, lg->cfg.clients, c->mapped, c->refused,
		c->downs);
}

static int report_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static uint32_t report_percentile(const uint32_t *v, size_t n, unsigned int p)
{
	size_t rank = (n * p + 99) / 100;

	return v[rank ? rank - 1 : 0];
}

/* null or the value, for JSON */
static void report_json_seconds(const char *key, int64_t ms)
{
	if (ms < 0)
		printf(",\"%s\":null", key);
	else
		printf(",\"%s\":%.3f", key, ms / 1000.0);
}

static void report_text_seconds(const char *what, int64_t ms)
{
	if (ms < 0)
		fprintf(stderr, " (%s: never)", what);
	else
		fprintf(stderr, " (%s after %.3f s)", what, ms / 1000.0);
}

int report_summary(struct loadgen *lg, int goal_met, const char *why_stop)
{
	const struct loadgen_counts *c = &lg->counts;
	uint64_t reconnects = 0, attempts = 0, connects = 0;
	uint32_t p50 = 0, p99 = 0, max = 0;
	int64_t elapsed = report_elapsed_ms(lg);
	size_t n = lg->n_latency;

	for (size_t i = 0; i < lg->n_agents; i++) {
		const struct link_stats *st =
			link_get_stats(lg->agents[i].link);

		reconnects += st->reconnects;
		attempts += st->attempts;
		connects += st->connects;
	}
	if (n) {
		qsort(lg->latency_us, n, sizeof(*lg->latency_us),
		      report_cmp_u32);
		p50 = report_percentile(lg->latency_us, n, 50);
		p99 = report_percentile(lg->latency_us, n, 99);
		max = lg->latency_us[n - 1];
	}

	if (lg->cfg.json) {
		printf("{\"t\":%" PRId64 ",\"ev\":\"summary\",\"start_t\":%"
		       PRId64 ",\"banks\":%u,\"clients\":%u,\"banks_up\":%u,"
		       "\"clients_up\":%u,\"mapped\":%u,\"elapsed_s\":%.3f",
		       report_now_ns(), lg->start_ns, lg->cfg.banks,
		       lg->cfg.clients, c->banks_up, c->clients_up, c->mapped,
		       elapsed / 1000.0);
		report_json_seconds("all_connected_s", lg->all_connected_ms);
		report_json_seconds("all_mapped_s", lg->all_mapped_ms);
		printf(",\"reconnects\":%" PRIu64 ",\"connects\":%" PRIu64
		       ",\"refused\":%" PRIu64 ",\"downs\":%" PRIu64
		       ",\"identify_timeouts\":%" PRIu64 ",\"configs\":%"
		       PRIu64 ",\"creates\":%" PRIu64 ",\"removes\":%" PRIu64
		       ",\"resets\":%" PRIu64 ",\"bad_pdus\":%" PRIu64,
		       reconnects, connects, c->refused, c->downs,
		       c->identify_timeouts, c->configs, c->creates,
		       c->removes, c->resets, c->bad_pdus);
		printf(",\"create_to_config_us\":{\"n\":%zu,\"p50\":%u,"
		       "\"p99\":%u,\"max\":%u}", n, p50, p99, max);
		printf(",\"goal_met\":%s", goal_met ? "true" : "false");
		report_string("stop", why_stop);
		report_end();
		fflush(stdout);
	} else if (!lg->cfg.quiet) {
		fprintf(stderr, "remsim-loadgen: %.3f s, stopped by %s\n"
			"  bankds  %u/%u up, clients %u/%u up",
			elapsed / 1000.0, why_stop, c->banks_up, lg->cfg.banks,
			c->clients_up, lg->cfg.clients);
		report_text_seconds("all", lg->all_connected_ms);
		fprintf(stderr, "\n  mapped  %u clients", c->mapped);
		if (lg->mapped_goal)
			report_text_seconds("goal", lg->all_mapped_ms);
		fprintf(stderr, "\n  links   %" PRIu64 " connects, %" PRIu64
			" reconnects, %" PRIu64 " refused, %" PRIu64 " lost\n"
			"  RSPRO   %" PRIu64 " configClientBankReq, %" PRIu64
			" createMappingReq, %" PRIu64 " removeMappingReq\n",
			connects, reconnects, c->refused, c->downs, c->configs,
			c->creates, c->removes);
		if (n)
			fprintf(stderr, "  createMappingReq -> configClientBankReq:"
				" p50 %.3f ms, p99 %.3f ms, max %.3f ms "
				"(%zu)\n", p50 / 1000.0, p99 / 1000.0,
				max / 1000.0, n);
	}

	if (goal_met)
		return LOADGEN_EXIT_OK;
	/* the one line a person or a test log needs, even with --quiet */
	if (connects == 0)
		fprintf(stderr, "remsim-loadgen: FAILED: no connection to the "
			"server %s port %u came up in %" PRIu64 " attempts "
			"(%" PRIu64 " reconnects) within %.1f s; is "
			"remsim-server running there?\n", lg->cfg.server,
			lg->cfg.port, attempts, reconnects, elapsed / 1000.0);
	else if (lg->cfg.until_mapped)
		fprintf(stderr, "remsim-loadgen: FAILED: %u of %u clients "
			"mapped when stopped by %s\n", c->mapped,
			lg->cfg.until_mapped, why_stop);
	else
		fprintf(stderr, "remsim-loadgen: FAILED: %u/%u bankds and "
			"%u/%u clients connected when stopped by %s (%" PRIu64
			" refused, %" PRIu64 " reconnects)\n", c->banks_up,
			lg->cfg.banks, c->clients_up, lg->cfg.clients,
			why_stop, c->refused, reconnects);
	return LOADGEN_EXIT_FAIL;
}
