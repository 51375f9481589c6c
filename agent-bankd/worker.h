/*
 * worker: one thread per bank slot, blocking I/O. Every worker waits in
 * accept() on the shared listen socket, takes the next client, looks up its
 * mapping, opens the mapped card and relays TPDUs until something fails; then
 * it closes both and starts over (INIT).
 */
#ifndef BANKD_WORKER_H
#define BANKD_WORKER_H

#include "bankd.h"
#include "rspro.h"

/* Starts bd->num_workers threads; 0 or -errno (started ones are stopped). */
int workers_start(struct bankd *bd);
/* Sets bd->stopping, wakes every worker and joins them. */
void workers_stop(struct bankd *bd);

/* The worker serving client c (if any) looks at its mapping again. */
void workers_wake_client(struct bankd *bd, const struct rspro_client_slot *c);
void workers_wake_all(struct bankd *bd);

#endif
