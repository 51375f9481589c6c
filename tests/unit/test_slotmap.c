/*
 * test_slotmap: remsim-bankd's mapping table follows osmo-remsim-bankd's
 * rules (own bank id, slot range, identical maps, a bank slot or client slot
 * mapped anew loses its old map) and its client claims refuse a second owner.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>

#include "slotmap.h"

static const struct rspro_client_slot c23 = { 23, 0 }, c24 = { 24, 0 };

static void test_create_rules(void **state)
{
	struct slotmap m;
	struct slotmap_affected aff;
	struct rspro_client_slot c;
	uint16_t nr;

	assert_int_equal(slotmap_init(&m, 1, 4, 4), 0);
	assert_int_equal(slotmap_create(&m, &c23, &(struct rspro_bank_slot){ 2, 0 },
					&aff), ResultCode_illegalBankId);
	assert_int_equal(slotmap_create(&m, &c23, &(struct rspro_bank_slot){ 1, 4 },
					&aff), ResultCode_illegalSlotId);
	assert_int_equal(aff.n, 0);
	assert_int_equal(slotmap_create(&m, &c23, &(struct rspro_bank_slot){ 1, 0 },
					&aff), ResultCode_ok);
	assert_int_equal(aff.n, 1);
	/* identical: ok, nobody to wake */
	assert_int_equal(slotmap_create(&m, &c23, &(struct rspro_bank_slot){ 1, 0 },
					&aff), ResultCode_ok);
	assert_int_equal(aff.n, 0);
	/* another client on the same bank slot: c23 loses it */
	assert_int_equal(slotmap_create(&m, &c24, &(struct rspro_bank_slot){ 1, 0 },
					&aff), ResultCode_ok);
	assert_int_equal(aff.n, 2);
	assert_int_equal(slotmap_find_client(&m, &c23, &nr), -ENOENT);
	assert_int_equal(slotmap_find_slot(&m, 0, &c), 0);
	assert_int_equal(c.client_id, 24);
	/* the client moves to another bank slot: its old map goes */
	assert_int_equal(slotmap_create(&m, &c24, &(struct rspro_bank_slot){ 1, 3 },
					&aff), ResultCode_ok);
	assert_int_equal(slotmap_find_slot(&m, 0, &c), -ENOENT);
	assert_int_equal(slotmap_find_client(&m, &c24, &nr), 0);
	assert_int_equal(nr, 3);
	slotmap_destroy(&m);
}

static void test_remove_and_reset(void **state)
{
	struct slotmap m;
	struct slotmap_affected aff;
	uint16_t nr;

	assert_int_equal(slotmap_init(&m, 7, 2, 2), 0);
	slotmap_create(&m, &c23, &(struct rspro_bank_slot){ 7, 1 }, &aff);
	assert_int_equal(slotmap_remove(&m, &c24, &(struct rspro_bank_slot){ 7, 1 },
					&aff), ResultCode_unknownSlotmap);
	assert_int_equal(slotmap_remove(&m, &c23, &(struct rspro_bank_slot){ 7, 0 },
					&aff), ResultCode_unknownSlotmap);
	assert_int_equal(slotmap_remove(&m, &c23, &(struct rspro_bank_slot){ 8, 1 },
					&aff), ResultCode_illegalBankId);
	assert_int_equal(slotmap_remove(&m, &c23, &(struct rspro_bank_slot){ 7, 1 },
					&aff), ResultCode_ok);
	assert_int_equal(aff.n, 1);
	assert_int_equal(slotmap_find_client(&m, &c23, &nr), -ENOENT);
	slotmap_create(&m, &c23, &(struct rspro_bank_slot){ 7, 0 }, &aff);
	slotmap_create(&m, &c24, &(struct rspro_bank_slot){ 7, 1 }, &aff);
	assert_int_equal(slotmap_reset(&m), 2);
	assert_int_equal(slotmap_reset(&m), 0);
	slotmap_destroy(&m);
}

static void test_claims(void **state)
{
	struct slotmap m;
	unsigned holder = 99;

	assert_int_equal(slotmap_init(&m, 1, 2, 3), 0);
	assert_int_equal(slotmap_owner(&m, &c23), -1);
	assert_int_equal(slotmap_claim(&m, &c23, 1, &holder), 0);
	assert_int_equal(slotmap_claim(&m, &c23, 1, &holder), 0);
	assert_int_equal(slotmap_claim(&m, &c23, 2, &holder), -EBUSY);
	assert_int_equal(holder, 1);
	assert_int_equal(slotmap_claim(&m, &c24, 2, NULL), 0);
	assert_int_equal(slotmap_owner(&m, &c23), 1);
	assert_int_equal(slotmap_claim(&m, &c23, 5, NULL), -EINVAL);
	slotmap_release(&m, 1);
	assert_int_equal(slotmap_owner(&m, &c23), -1);
	assert_int_equal(slotmap_claim(&m, &c23, 0, NULL), 0);
	slotmap_destroy(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_rules),
		cmocka_unit_test(test_remove_and_reset),
		cmocka_unit_test(test_claims),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
