/*
 * loadgen: what the parts of remsim-loadgen share. The program plays many
 * bankds and clients against one RSPRO server, each over its own link
 * (common/link.c), and reports when they connect and when their mappings
 * arrive. remsim-loadgen.c: options and set-up; loadgen_loop.c: the event
 * loop; loadgen_agent.c: the RSPRO conversation of one simulated agent;
 * loadgen_report.c: event lines, progress and the summary.
 */
#ifndef REMSIM_LOADGEN_H
#define REMSIM_LOADGEN_H

#include <stddef.h>
#include <stdint.h>

#include "rspro.h"

enum loadgen_exit {
	LOADGEN_EXIT_OK = 0,	/* the goal was reached */
	LOADGEN_EXIT_FAIL = 1,	/* deadline or signal before the goal */
	LOADGEN_EXIT_USAGE = 2,	/* wrong command line */
};

struct loadgen_config {
	const char *server;
	uint16_t port;
	unsigned int banks;
	unsigned int first_bank;
	unsigned int slots_per_bank;
	unsigned int clients;
	unsigned int first_client;
	unsigned int slots_per_client;
	double duration_s;
	unsigned int until_mapped;	/* 0: no such goal */
	unsigned int connect_rate;	/* new links per second, 0: no limit */
	uint32_t ping_interval_ms;	/* 0: link default */
	uint32_t pong_timeout_ms;
	int json;
	int quiet;
};

enum agent_kind { AGENT_BANKD, AGENT_CLIENT };

/*
 * One simulated agent's connection to the server. LINKING covers TCP
 * connecting and waiting for the link's backoff; the RSPRO connect request
 * goes out on link up (IDENTIFYING), a response with result ok makes the
 * agent READY.
 */
enum agent_state {
	AGENT_IDLE,		/* not started yet: connects are paced */
	AGENT_LINKING,
	AGENT_IDENTIFYING,
	AGENT_READY,
};

/* What a simulated bankd holds for one of its slots. */
struct bank_map {
	int64_t create_ns;	/* CLOCK_REALTIME of its createMappingReq */
	struct rspro_client_slot client;
	uint8_t mapped;
};

struct loadgen;

struct agent {
	struct loadgen *lg;
	struct link *link;
	enum agent_kind kind;
	enum agent_state state;
	int64_t identify_deadline;	/* IDENTIFYING: link_now_ms() time */
	union {
		struct {
			uint16_t bank_id;
			uint16_t num_slots;
			struct bank_map *maps;	/* num_slots entries */
		} bankd;
		struct {
			struct rspro_client_slot slot;
			uint8_t mapped;		/* last config had port != 0 */
			struct rspro_bank_slot bank;
		} client;
	};
};

/* Counts over the whole run; the *_up ones are the current numbers. */
struct loadgen_counts {
	unsigned int banks_up;
	unsigned int clients_up;
	unsigned int mapped;		/* clients holding a bankd address */
	uint64_t refused;		/* connect responses with result != ok */
	uint64_t downs;			/* identified links that were lost */
	uint64_t identify_timeouts;
	uint64_t configs;
	uint64_t creates;
	uint64_t removes;
	uint64_t resets;
	uint64_t bad_pdus;
};

struct loadgen {
	struct loadgen_config cfg;
	struct agent *agents;		/* bankds first, then clients */
	size_t n_agents;
	size_t n_started;
	struct loadgen_counts counts;
	int64_t start_ms;		/* link_now_ms() at start */
	int64_t start_ns;		/* CLOCK_REALTIME at start */
	int64_t all_connected_ms;	/* since start; -1: not yet */
	int64_t all_mapped_ms;
	unsigned int mapped_goal;	/* clients to be mapped for all_mapped */
	/* createMappingReq at our bankd -> configClientBankReq at our client */
	uint32_t *latency_us;
	size_t n_latency;
	size_t latency_cap;
};

/* loadgen_agent.c */
const char *agent_state_name(enum agent_state state);
/* 0, or -1 (logged) when the link cannot be set up. */
int agent_init_bankd(struct agent *a, struct loadgen *lg, uint16_t bank_id,
		     uint16_t num_slots);
int agent_init_client(struct agent *a, struct loadgen *lg,
		      const struct rspro_client_slot *slot);
void agent_free(struct agent *a);
void agent_start(struct agent *a);
/* Milliseconds until the agent's own timer (not the link's), -1: none. */
int agent_timeout_ms(const struct agent *a, int64_t now_ms);
void agent_handle_timers(struct agent *a, int64_t now_ms);
/* The simulated bankd with this bank id, or NULL. */
struct agent *loadgen_find_bankd(struct loadgen *lg, uint16_t bank_id);

/* loadgen_loop.c: runs until the goal, --duration or a signal; exit code */
int loop_run(struct loadgen *lg);

/* loadgen_report.c */
int64_t report_now_ns(void);
void report_bankd_up(struct loadgen *lg, const struct agent *a);
void report_client_up(struct loadgen *lg, const struct agent *a);
void report_refused(struct loadgen *lg, const struct agent *a, long result);
void report_down(struct loadgen *lg, const struct agent *a,
		 const char *reason);
void report_config(struct loadgen *lg, const struct agent *a,
		   const struct rspro_bank_slot *bank,
		   const struct rspro_ip_port *bankd, int64_t latency_us);
void report_mapping(struct loadgen *lg, const struct agent *a,
		    const char *ev, const struct rspro_bank_slot *bank,
		    const struct rspro_client_slot *client, long result);
void report_reset(struct loadgen *lg, const struct agent *a);
/* Checks the all-connected / all-mapped milestones after a change. */
void report_milestones(struct loadgen *lg);
void report_progress(struct loadgen *lg);
/* Final summary (JSON line or text); returns the exit code. */
int report_summary(struct loadgen *lg, int goal_met, const char *why_stop);

#endif
