/*
 * bankd: what remsim-bankd's parts share. The main thread owns the server
 * link and fills in the slot map; the workers serve clients; both read the
 * configuration, the reader map and the client key, and post slot reports.
 */
#ifndef BANKD_BANKD_H
#define BANKD_BANKD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "client_auth.h"
#include "reader_map.h"
#include "rspro.h"
#include "slot_report.h"
#include "slotmap.h"

#define BANKD_DEFAULT_SERVER_PORT	9998
#define BANKD_DEFAULT_BIND_PORT		9999
#define BANKD_DEFAULT_BANK_ID		1
#define BANKD_DEFAULT_NUM_SLOTS		8

struct bankd_config {
	const char *server_host;
	uint16_t server_port;
	uint16_t bank_id;
	uint16_t num_slots;
	const char *bind_addr;		/* NULL: all (IPv6 and IPv4) */
	uint16_t bind_port;
	const char *name;		/* ComponentIdentity name */
	const char *token_path;
	const char *pubkey_path;
	const char *reader_map_path;	/* NULL: default file or automatic */
	bool shared_pcsc;
	uint32_t ping_interval_ms;
	uint32_t pong_timeout_ms;
	uint32_t map_wait_ms;		/* client waits this long for a map */
	enum client_auth_policy client_auth;
};

struct worker;

struct bankd {
	struct bankd_config cfg;
	struct rspro_identity identity;
	char hostname[33];
	char *token;			/* our own token, or NULL */
	struct slotmap map;
	struct reader_map readers;
	struct client_auth auth;
	struct slot_report report;
	int listen_fd;
	unsigned num_workers;
	struct worker **workers;
	atomic_bool stopping;
};

#endif
