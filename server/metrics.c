/*
 * metrics: the counters and their Prometheus text rendering (version
 * 0.0.4 of the exposition format: # HELP, # TYPE, one sample per line).
 */
#define _GNU_SOURCE
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "db.h"
#include "feed.h"
#include "server.h"

#define MSG_TYPES (RsproPDUchoice_PR_bankSlotStatusInd + 1)
#define HTTP_CODES 600

/* DB round trip histogram buckets, in seconds (Prometheus' unit). */
static const double db_buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01,
				     0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5 };
#define DB_BUCKETS (sizeof(db_buckets) / sizeof(db_buckets[0]))

static struct {
	unsigned long long rx[MSG_TYPES];
	unsigned long long tx[MSG_TYPES];
	unsigned long long bad_input;
	unsigned long long db_bucket[DB_BUCKETS];
	unsigned long long db_count;
	double db_sum;
	unsigned long long http[HTTP_CODES];
} m;

void metrics_rspro_rx(RsproPDUchoice_PR msg)
{
	if ((unsigned)msg < MSG_TYPES)
		m.rx[msg]++;
}

void metrics_rspro_tx(RsproPDUchoice_PR msg)
{
	if ((unsigned)msg < MSG_TYPES)
		m.tx[msg]++;
}

void metrics_rspro_bad_input(void)
{
	m.bad_input++;
}

void metrics_db_rtt(double ms)
{
	double s = ms / 1000;

	for (size_t i = 0; i < DB_BUCKETS; i++)
		if (s <= db_buckets[i])
			m.db_bucket[i]++;
	m.db_count++;
	m.db_sum += s;
}

void metrics_http_status(int status)
{
	if (status >= 100 && status < HTTP_CODES)
		m.http[status]++;
}

char *metrics_render(struct server *srv, size_t *len)
{
	struct control_stats st;
	struct feed_stats fs;
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	if (!f)
		return NULL;
	control_get_stats(srv, &st);
	fprintf(f, "# HELP remsim_banks_online bankds connected and identified\n"
		   "# TYPE remsim_banks_online gauge\n"
		   "remsim_banks_online %u\n", st.banks_online);
	fprintf(f, "# HELP remsim_clients_online client slots connected\n"
		   "# TYPE remsim_clients_online gauge\n"
		   "remsim_clients_online %u\n", st.clients_online);
	fprintf(f, "# HELP remsim_slotmaps slot mappings by state\n"
		   "# TYPE remsim_slotmaps gauge\n");
	for (int s = SLOTMAP_NEW; s <= SLOTMAP_DELETING; s++)
		fprintf(f, "remsim_slotmaps{state=\"%s\"} %u\n",
			slotmap_state_name(s), st.maps[s]);
	fprintf(f, "# HELP remsim_rspro_messages_total RSPRO messages by type\n"
		   "# TYPE remsim_rspro_messages_total counter\n");
	for (int t = 1; t < MSG_TYPES; t++) {
		fprintf(f, "remsim_rspro_messages_total{direction=\"rx\","
			"type=\"%s\"} %llu\n", rspro_msg_name(t), m.rx[t]);
		fprintf(f, "remsim_rspro_messages_total{direction=\"tx\","
			"type=\"%s\"} %llu\n", rspro_msg_name(t), m.tx[t]);
	}
	fprintf(f, "# HELP remsim_rspro_bad_input_total connections closed "
		   "for malformed input\n"
		   "# TYPE remsim_rspro_bad_input_total counter\n"
		   "remsim_rspro_bad_input_total %llu\n", m.bad_input);
	fprintf(f, "# HELP remsim_db_up 1 when the database is connected\n"
		   "# TYPE remsim_db_up gauge\n"
		   "remsim_db_up %d\n", srv->db && db_is_up(srv->db));
	fprintf(f, "# HELP remsim_db_query_seconds database round trips\n"
		   "# TYPE remsim_db_query_seconds histogram\n");
	for (size_t i = 0; i < DB_BUCKETS; i++)
		fprintf(f, "remsim_db_query_seconds_bucket{le=\"%g\"} %llu\n",
			db_buckets[i], m.db_bucket[i]);
	fprintf(f, "remsim_db_query_seconds_bucket{le=\"+Inf\"} %llu\n"
		   "remsim_db_query_seconds_sum %.6f\n"
		   "remsim_db_query_seconds_count %llu\n",
		m.db_count, m.db_sum, m.db_count);
	fprintf(f, "# HELP remsim_http_requests_total HTTP answers by status\n"
		   "# TYPE remsim_http_requests_total counter\n");
	for (int c = 100; c < HTTP_CODES; c++)
		if (m.http[c])
			fprintf(f, "remsim_http_requests_total{code=\"%d\"} "
				"%llu\n", c, m.http[c]);
	feed_get_stats(srv, &fs);
	fprintf(f, "# HELP remsim_feed_subscribers authenticated /feed "
		   "subscribers\n"
		   "# TYPE remsim_feed_subscribers gauge\n"
		   "remsim_feed_subscribers %u\n"
		   "# HELP remsim_feed_messages_total /feed messages written\n"
		   "# TYPE remsim_feed_messages_total counter\n"
		   "remsim_feed_messages_total %llu\n"
		   "# HELP remsim_feed_resyncs_total /feed queues dropped and "
		   "snapshot resent\n"
		   "# TYPE remsim_feed_resyncs_total counter\n"
		   "remsim_feed_resyncs_total %llu\n"
		   "# HELP remsim_feed_drops_total /feed subscribers closed as "
		   "too slow or silent\n"
		   "# TYPE remsim_feed_drops_total counter\n"
		   "remsim_feed_drops_total %llu\n", fs.subscribers,
		(unsigned long long)fs.messages,
		(unsigned long long)fs.resyncs, (unsigned long long)fs.drops);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	*len = size;
	return buf;
}
