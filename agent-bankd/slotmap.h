/*
 * slotmap: the bankd's mapping table (client slot -> bank slot) and the
 * client slots its workers currently serve, shared by the main thread
 * (server requests) and the workers under one mutex. The rules follow
 * osmo-remsim-bankd 1.1.2+ (rspro-protocol.md 4.2); results are ResultCodes.
 */
#ifndef BANKD_SLOTMAP_H
#define BANKD_SLOTMAP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "rspro.h"

/* At most this many client slots are touched by one create/remove. */
#define SLOTMAP_MAX_AFFECTED 2

struct slotmap_entry {
	bool used;
	struct rspro_client_slot client;
};

struct slotmap_claim {
	bool used;
	struct rspro_client_slot client;
};

struct slotmap {
	pthread_mutex_t lock;
	uint16_t bank_id;
	uint16_t num_slots;
	struct slotmap_entry *by_slot;	/* num_slots entries */
	unsigned num_owners;
	struct slotmap_claim *claims;	/* one per owner (worker) */
};

/* Client slots whose mapping changed: their workers must look again. */
struct slotmap_affected {
	unsigned n;
	struct rspro_client_slot client[SLOTMAP_MAX_AFFECTED];
};

int slotmap_init(struct slotmap *m, uint16_t bank_id, uint16_t num_slots,
		 unsigned num_owners);
void slotmap_destroy(struct slotmap *m);

/*
 * createMappingReq: ok, illegalBankId, illegalSlotId. A bank slot mapped to
 * another client, or the client mapped to another bank slot, loses that map.
 */
long slotmap_create(struct slotmap *m, const struct rspro_client_slot *c,
		    const struct rspro_bank_slot *b,
		    struct slotmap_affected *aff);
/* removeMappingReq: ok, illegalBankId, illegalSlotId, unknownSlotmap. */
long slotmap_remove(struct slotmap *m, const struct rspro_client_slot *c,
		    const struct rspro_bank_slot *b,
		    struct slotmap_affected *aff);
/* resetStateReq: forgets every mapping; returns how many there were. */
unsigned slotmap_reset(struct slotmap *m);

/* The bank slot number mapped to client c: 0, or -ENOENT. */
int slotmap_find_client(struct slotmap *m, const struct rspro_client_slot *c,
			uint16_t *slot_nr);
/* The client mapped to bank slot slot_nr: 0, or -ENOENT. */
int slotmap_find_slot(struct slotmap *m, uint16_t slot_nr,
		      struct rspro_client_slot *c);

/*
 * Marks client c as served by owner. -EBUSY (and *holder) when another
 * owner serves it already; claiming twice for the same owner is fine.
 */
int slotmap_claim(struct slotmap *m, const struct rspro_client_slot *c,
		  unsigned owner, unsigned *holder);
void slotmap_release(struct slotmap *m, unsigned owner);
/* The owner serving client c, or -1. */
int slotmap_owner(struct slotmap *m, const struct rspro_client_slot *c);

#endif
