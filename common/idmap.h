/*
 * idmap: a small open-addressing hash table from a 32-bit id (bank slot,
 * client slot, bank id: see slot_key()) to a pointer. The server
 * keeps tens of thousands of these; a flat array indexed by slot would
 * touch a page per client.
 */
#ifndef REMSIM_IDMAP_H
#define REMSIM_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap {
	uint32_t *keys;
	void **vals;		/* NULL: free bucket */
	size_t cap;		/* power of two */
	size_t count;
};

void idmap_init(struct idmap *m);
void idmap_free(struct idmap *m);
void *idmap_get(const struct idmap *m, uint32_t key);
/* Inserts or replaces; val must not be NULL. 0, or -1 without memory. */
int idmap_put(struct idmap *m, uint32_t key, void *val);
/* Removes and returns the value (NULL if absent). */
void *idmap_del(struct idmap *m, uint32_t key);

/* Calls fn for every entry; fn must not change the map. */
void idmap_foreach(const struct idmap *m,
		   void (*fn)(uint32_t key, void *val, void *arg), void *arg);

static inline uint32_t slot_key(uint32_t id, uint32_t slot)
{
	return id << 16 | slot;
}

#endif
