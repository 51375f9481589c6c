/*
 * slotmap: the bankd's mapping table and the client slots its workers serve.
 * Every function takes the mutex for its whole run, so a worker never sees
 * half of a change the main thread makes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "slotmap.h"

static bool client_eq(const struct rspro_client_slot *a,
		      const struct rspro_client_slot *b)
{
	return a->client_id == b->client_id && a->slot_nr == b->slot_nr;
}

static void affected_add(struct slotmap_affected *aff,
			 const struct rspro_client_slot *c)
{
	for (unsigned i = 0; i < aff->n; i++)
		if (client_eq(&aff->client[i], c))
			return;
	if (aff->n < SLOTMAP_MAX_AFFECTED)
		aff->client[aff->n++] = *c;
}

int slotmap_init(struct slotmap *m, uint16_t bank_id, uint16_t num_slots,
		 unsigned num_owners)
{
	memset(m, 0, sizeof(*m));
	m->bank_id = bank_id;
	m->num_slots = num_slots;
	m->num_owners = num_owners;
	m->by_slot = calloc(num_slots ? num_slots : 1, sizeof(*m->by_slot));
	m->claims = calloc(num_owners ? num_owners : 1, sizeof(*m->claims));
	if (!m->by_slot || !m->claims) {
		free(m->by_slot);
		free(m->claims);
		return -ENOMEM;
	}
	pthread_mutex_init(&m->lock, NULL);
	return 0;
}

void slotmap_destroy(struct slotmap *m)
{
	pthread_mutex_destroy(&m->lock);
	free(m->by_slot);
	free(m->claims);
	m->by_slot = NULL;
	m->claims = NULL;
}

/* Checks shared by create and remove; ok or the refusal. */
static long slotmap_check(const struct slotmap *m,
			  const struct rspro_bank_slot *b)
{
	if (b->bank_id != m->bank_id)
		return ResultCode_illegalBankId;
	if (b->slot_nr >= m->num_slots)
		return ResultCode_illegalSlotId;
	return ResultCode_ok;
}

long slotmap_create(struct slotmap *m, const struct rspro_client_slot *c,
		    const struct rspro_bank_slot *b,
		    struct slotmap_affected *aff)
{
	struct slotmap_entry *e;
	long res = slotmap_check(m, b);

	aff->n = 0;
	if (res != ResultCode_ok)
		return res;
	pthread_mutex_lock(&m->lock);
	e = &m->by_slot[b->slot_nr];
	if (e->used && client_eq(&e->client, c)) {
		/* identical: nothing changes (a server resending its maps) */
		pthread_mutex_unlock(&m->lock);
		return ResultCode_ok;
	}
	if (e->used)
		affected_add(aff, &e->client);	/* loses this bank slot */
	for (unsigned i = 0; i < m->num_slots; i++) {
		if (m->by_slot[i].used && client_eq(&m->by_slot[i].client, c))
			m->by_slot[i].used = false;	/* moved away */
	}
	e->used = true;
	e->client = *c;
	affected_add(aff, c);
	pthread_mutex_unlock(&m->lock);
	return ResultCode_ok;
}

long slotmap_remove(struct slotmap *m, const struct rspro_client_slot *c,
		    const struct rspro_bank_slot *b,
		    struct slotmap_affected *aff)
{
	struct slotmap_entry *e;
	long res = slotmap_check(m, b);

	aff->n = 0;
	if (res != ResultCode_ok)
		return res;
	pthread_mutex_lock(&m->lock);
	e = &m->by_slot[b->slot_nr];
	if (!e->used || !client_eq(&e->client, c)) {
		res = ResultCode_unknownSlotmap;
	} else {
		e->used = false;
		affected_add(aff, c);
	}
	pthread_mutex_unlock(&m->lock);
	return res;
}

unsigned slotmap_reset(struct slotmap *m)
{
	unsigned n = 0;

	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < m->num_slots; i++) {
		n += m->by_slot[i].used;
		m->by_slot[i].used = false;
	}
	pthread_mutex_unlock(&m->lock);
	return n;
}

int slotmap_find_client(struct slotmap *m, const struct rspro_client_slot *c,
			uint16_t *slot_nr)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < m->num_slots; i++) {
		if (m->by_slot[i].used && client_eq(&m->by_slot[i].client, c)) {
			*slot_nr = (uint16_t)i;
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

int slotmap_find_slot(struct slotmap *m, uint16_t slot_nr,
		      struct rspro_client_slot *c)
{
	int rc = -ENOENT;

	if (slot_nr >= m->num_slots)
		return rc;
	pthread_mutex_lock(&m->lock);
	if (m->by_slot[slot_nr].used) {
		*c = m->by_slot[slot_nr].client;
		rc = 0;
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

int slotmap_claim(struct slotmap *m, const struct rspro_client_slot *c,
		  unsigned owner, unsigned *holder)
{
	int rc = 0;

	if (owner >= m->num_owners)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < m->num_owners; i++) {
		if (i != owner && m->claims[i].used &&
		    client_eq(&m->claims[i].client, c)) {
			if (holder)
				*holder = i;
			rc = -EBUSY;
			break;
		}
	}
	if (!rc) {
		m->claims[owner].used = true;
		m->claims[owner].client = *c;
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

void slotmap_release(struct slotmap *m, unsigned owner)
{
	if (owner >= m->num_owners)
		return;
	pthread_mutex_lock(&m->lock);
	m->claims[owner].used = false;
	pthread_mutex_unlock(&m->lock);
}

int slotmap_owner(struct slotmap *m, const struct rspro_client_slot *c)
{
	int owner = -1;

	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < m->num_owners; i++) {
		if (m->claims[i].used && client_eq(&m->claims[i].client, c)) {
			owner = (int)i;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return owner;
}
