/*
 * test_idmap: the id -> pointer table against a plain array model, with
 * random inserts, replacements and deletions (deletion shifts clusters,
 * the part most likely to go wrong), and the slot_key() layout.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "idmap.h"

#define KEYSPACE 4096

struct walk {
	void **model;
	size_t seen;
};

static void count_entry(uint32_t key, void *val, void *arg)
{
	struct walk *w = arg;

	assert_ptr_equal(w->model[key], val);
	w->seen++;
}

static void test_random_against_model(void **state)
{
	static void *model[KEYSPACE];
	static int values[KEYSPACE];
	struct idmap m;
	size_t count = 0;

	idmap_init(&m);
	srand(42);
	for (int round = 0; round < 200000; round++) {
		/* keys clustered like bank slots: few banks, many slots */
		uint32_t key = (uint32_t)(rand() % KEYSPACE);
		int op = rand() % 3;

		if (op < 2) {
			void *v = &values[rand() % KEYSPACE];

			assert_int_equal(idmap_put(&m, key, v), 0);
			if (!model[key])
				count++;
			model[key] = v;
		} else {
			assert_ptr_equal(idmap_del(&m, key), model[key]);
			if (model[key])
				count--;
			model[key] = NULL;
		}
		assert_int_equal(m.count, count);
		if (round % 1000 == 0) {
			for (uint32_t k = 0; k < KEYSPACE; k++)
				assert_ptr_equal(idmap_get(&m, k), model[k]);
		}
	}
	struct walk w = { model, 0 };

	idmap_foreach(&m, count_entry, &w);
	assert_int_equal(w.seen, count);
	idmap_free(&m);
}

static void test_empty_and_slot_key(void **state)
{
	struct idmap m;
	int x;

	idmap_init(&m);
	assert_null(idmap_get(&m, 1));
	assert_null(idmap_del(&m, 1));
	assert_int_equal(idmap_put(&m, slot_key(1023, 1023), &x), 0);
	assert_ptr_equal(idmap_get(&m, slot_key(1023, 1023)), &x);
	assert_null(idmap_get(&m, slot_key(1023, 1022)));
	assert_int_not_equal(slot_key(1, 0), slot_key(0, 1));
	idmap_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_against_model),
		cmocka_unit_test(test_empty_and_slot_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
