/*
 * server_link: the bankd's control link to remsim-server (or
 * osmo-remsim-server), run by the main thread: connectBankReq, the server's
 * mapping requests, and a bankSlotStatusInd for every slot change.
 */
#ifndef BANKD_SERVER_LINK_H
#define BANKD_SERVER_LINK_H

#include <poll.h>
#include <stdint.h>

#include "bankd.h"

struct server_link;

struct server_link *server_link_new(struct bankd *bd);
void server_link_free(struct server_link *sl);
int server_link_start(struct server_link *sl);

/* poll() integration for the main loop (see link.h). */
int server_link_pollfd(struct server_link *sl, struct pollfd *pfd);
void server_link_handle_io(struct server_link *sl, short revents);
int server_link_timeout_ms(struct server_link *sl, int64_t now);
void server_link_handle_timers(struct server_link *sl, int64_t now);

/* Sends the queued slot changes (drops them while not registered). */
void server_link_flush_reports(struct server_link *sl);

#endif
