/*
 * metrics: counters of the server, rendered as Prometheus text for
 * /metrics. Everything runs on the one event-loop thread, so plain
 * integers do.
 */
#ifndef REMSIM_METRICS_H
#define REMSIM_METRICS_H

#include <stddef.h>

#include "rspro.h"

struct server;

void metrics_rspro_rx(RsproPDUchoice_PR msg);
void metrics_rspro_tx(RsproPDUchoice_PR msg);
void metrics_rspro_bad_input(void);
void metrics_db_rtt(double ms);
void metrics_http_status(int status);

/* The whole exposition; free() it. NULL without memory. */
char *metrics_render(struct server *srv, size_t *len);

#endif
