/*
 * idmap: linear probing with backward-shift deletion (no tombstones), grown
 * at half load so probes stay short.
 */
#include "idmap.h"

#include <stdlib.h>

static size_t idmap_slot(const struct idmap *m, uint32_t key)
{
	/* Fibonacci hashing spreads the structured slot keys */
	return (size_t)((key * 2654435769u) & (m->cap - 1));
}

void idmap_init(struct idmap *m)
{
	m->keys = NULL;
	m->vals = NULL;
	m->cap = 0;
	m->count = 0;
}

void idmap_free(struct idmap *m)
{
	free(m->keys);
	free(m->vals);
	idmap_init(m);
}

void *idmap_get(const struct idmap *m, uint32_t key)
{
	if (!m->cap)
		return NULL;
	for (size_t i = idmap_slot(m, key);; i = (i + 1) & (m->cap - 1)) {
		if (!m->vals[i])
			return NULL;
		if (m->keys[i] == key)
			return m->vals[i];
	}
}

static int idmap_grow(struct idmap *m)
{
	struct idmap bigger = { .cap = m->cap ? 2 * m->cap : 64 };

	bigger.keys = calloc(bigger.cap, sizeof(*bigger.keys));
	bigger.vals = calloc(bigger.cap, sizeof(*bigger.vals));
	if (!bigger.keys || !bigger.vals) {
		free(bigger.keys);
		free(bigger.vals);
		return -1;
	}
	for (size_t i = 0; i < m->cap; i++)
		if (m->vals[i])
			idmap_put(&bigger, m->keys[i], m->vals[i]);
	free(m->keys);
	free(m->vals);
	*m = bigger;
	return 0;
}

int idmap_put(struct idmap *m, uint32_t key, void *val)
{
	size_t i;

	if ((m->count + 1) * 2 > m->cap && idmap_grow(m))
		return -1;
	for (i = idmap_slot(m, key); m->vals[i]; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key) {
			m->vals[i] = val;
			return 0;
		}
	}
	m->keys[i] = key;
	m->vals[i] = val;
	m->count++;
	return 0;
}

void *idmap_del(struct idmap *m, uint32_t key)
{
	size_t i, j;
	void *val;

	if (!m->cap)
		return NULL;
	for (i = idmap_slot(m, key);; i = (i + 1) & (m->cap - 1)) {
		if (!m->vals[i])
			return NULL;
		if (m->keys[i] == key)
			break;
	}
	val = m->vals[i];
	m->vals[i] = NULL;
	m->count--;
	/* shift later members of the cluster back into the hole */
	for (j = (i + 1) & (m->cap - 1); m->vals[j]; j = (j + 1) & (m->cap - 1)) {
		size_t home = idmap_slot(m, m->keys[j]);

		/* j's entry may move to i if i lies cyclically in [home, j) */
		if ((j > i && (home <= i || home > j)) ||
		    (j < i && home <= i && home > j)) {
			m->keys[i] = m->keys[j];
			m->vals[i] = m->vals[j];
			m->vals[j] = NULL;
			i = j;
		}
	}
	return val;
}

void idmap_foreach(const struct idmap *m,
		   void (*fn)(uint32_t key, void *val, void *arg), void *arg)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->vals[i])
			fn(m->keys[i], m->vals[i], arg);
}
