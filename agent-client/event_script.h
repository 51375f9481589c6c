/*
 * event_script: the -e hook. Each event runs "/bin/sh -c '<cmd> "$@"' sh
 * <event>" with REMSIM_* variables describing the client (docs/client.md),
 * without blocking the loop: children run one at a time in event order,
 * later events wait in a bounded queue, exits are reaped on SIGCHLD.
 */
#ifndef REMSIM_CLIENT_EVENT_SCRIPT_H
#define REMSIM_CLIENT_EVENT_SCRIPT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define EVENT_SCRIPT_QUEUE_MAX	64

struct event_script;

/*
 * How the script is called. remsim: once per event with the event as its
 * argument and REMSIM_* below (docs/client.md). osmo: as osmo-remsim-client
 * 1.1 calls its script, so an existing one works unchanged: one call per
 * osmo cause (a remsim event may mean several, in osmo's order), the cause
 * as the argument and osmo's variables added to ours.
 */
enum event_style {
	EVENT_STYLE_REMSIM,
	EVENT_STYLE_OSMO,
};

/* What an event is about; NULL strings and unknown slots become "". */
struct event_env {
	const char *event;		/* "mapped", "bankd-up", ... */
	const char *state;		/* client state name */
	int client_id, client_slot;
	int bank_id, bank_slot;		/* -1: not mapped */
	const char *bankd_host;
	int bankd_port;			/* -1: none */
	const char *server_host;
	int server_port;
	const char *atr_hex;
	const char *usb_device;		/* simtrace2: "1-1.2 1d50:60e3 if 0" */
	/* osmo style only */
	const char *cause;		/* "request-card-insert", ... */
	const char *server_state;	/* INIT, ESTABLISHED, CONNECTED, */
	const char *bankd_state;	/* REESTABLISH */
	int sim_vcc, sim_rst, sim_clk;	/* as osmo reports them; -1: unknown */
};

struct event_script *event_script_new(const char *cmd,
				      enum event_style style);
enum event_style event_script_style(const struct event_script *es);
/* Drops queued events; a running child is left to finish on its own. */
void event_script_free(struct event_script *es);
/* Queues the event (runs it at once when idle); 0 or -errno. */
int event_script_fire(struct event_script *es, const struct event_env *env);
/* Reaps exited children and starts the next queued event. SIGCHLD. */
void event_script_reap(struct event_script *es);
/* pid of the running child, 0 if none (for tests and logs). */
pid_t event_script_running(const struct event_script *es);

#endif
