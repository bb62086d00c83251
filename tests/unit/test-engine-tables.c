// SPDX-License-Identifier: LGPL-2.1-or-later
/* The engine's per-VM page table: tiers, frames, flags and the access history. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check-main.h"
#include "pagetable.h"

START_TEST(test_pagetable_tiers)
{
	struct pagetable pt;

	ck_assert_int_eq(pt_init(&pt, 0), -EINVAL);
	ck_assert_int_eq(pt_init(&pt, 1000), 0);
	/* the engine's promise: 8 bytes of DRAM per guest page */
	ck_assert_uint_eq(pt_bytes(&pt), 8000);
	ck_assert_uint_eq(pt.count[PT_TIER_NONE], 1000);
	ck_assert_uint_eq(pt_frame(&pt, 5), PT_NO_FRAME);

	pt_place(&pt, 5, PT_TIER_DRAM, 77, PT_WRITABLE | PT_DIRTY);
	ck_assert_int_eq(pt_tier(&pt, 5), PT_TIER_DRAM);
	ck_assert_uint_eq(pt_frame(&pt, 5), 77);
	ck_assert(pt_test(&pt, 5, PT_WRITABLE));
	ck_assert(pt_test(&pt, 5, PT_DIRTY));
	pt_place(&pt, 6, PT_TIER_PM, UINT32_MAX - 1, PT_COMMITTED);
	ck_assert_uint_eq(pt_frame(&pt, 6), UINT32_MAX - 1);
	ck_assert_uint_eq(pt.count[PT_TIER_DRAM], 1);
	ck_assert_uint_eq(pt.count[PT_TIER_PM], 1);
	ck_assert_uint_eq(pt.count[PT_TIER_NONE], 998);

	/* moving a page keeps the counts exact and drops stale flags */
	pt_place(&pt, 5, PT_TIER_PM, 3, PT_COMMITTED);
	ck_assert(!pt_test(&pt, 5, PT_WRITABLE));
	ck_assert_uint_eq(pt.count[PT_TIER_DRAM], 0);
	ck_assert_uint_eq(pt.count[PT_TIER_PM], 2);
	pt_set_flags(&pt, 5, PT_WRITABLE, PT_COMMITTED);
	ck_assert(pt_test(&pt, 5, PT_WRITABLE));
	ck_assert(!pt_test(&pt, 5, PT_COMMITTED));
	ck_assert_uint_eq(pt_frame(&pt, 5), 3);

	/* a forced commit is a flag like the others; where a page first lived is kept */
	pt_set_flags(&pt, 7, PT_HOME_PM | PT_FORCE, 0);
	pt_place(&pt, 7, PT_TIER_DRAM, 7, PT_WRITABLE);
	ck_assert(pt_test(&pt, 7, PT_HOME_PM));
	ck_assert(!pt_test(&pt, 7, PT_FORCE));
	pt_place(&pt, 7, PT_TIER_PM, 9, PT_COMMITTED);
	ck_assert(pt_test(&pt, 7, PT_HOME_PM));
	ck_assert_uint_eq(pt.count[PT_TIER_PM] + pt.count[PT_TIER_DRAM] + pt.count[PT_TIER_NONE],
			  1000);
	pt_done(&pt);
}
END_TEST

START_TEST(test_pagetable_frequency)
{
	struct pagetable pt;
	uint64_t hot[2] = { UINT64_C(1) << 5 | UINT64_C(1) << 9, 0 }, none[2] = { 0 };

	ck_assert_int_eq(pt_init(&pt, 100), 0);
	/* page 5 sampled accessed every time, page 9 only in the first 4 samples */
	for (int i = 0; i < 40; i++) {
		if (i == 4)
			hot[0] &= ~(UINT64_C(1) << 9);
		pt_sample_accessed(&pt, hot, true);
	}
	ck_assert_uint_gt(pt_freq(&pt, 5), 40);
	ck_assert_uint_lt(pt_freq(&pt, 9), PT_FREQ_STEP); /* forgotten over time */
	ck_assert_uint_eq(pt_freq(&pt, 6), 0);
	/* boundaries do not age it; moves keep it */
	{
		unsigned f = pt_freq(&pt, 5);

		pt_epoch_shift(&pt, none, none);
		pt_place(&pt, 5, PT_TIER_DRAM, 5, PT_WRITABLE);
		pt_place(&pt, 5, PT_TIER_PM, 7, PT_COMMITTED);
		ck_assert_uint_eq(pt_freq(&pt, 5), f);
		/* an untimed sample adds without aging */
		pt_sample_accessed(&pt, hot, false);
		ck_assert_uint_eq(pt_freq(&pt, 5), f + PT_FREQ_STEP);
	}
	/* it saturates */
	for (int i = 0; i < 40; i++)
		pt_sample_accessed(&pt, hot, false);
	ck_assert_uint_eq(pt_freq(&pt, 5), 255);
	pt_done(&pt);
}
END_TEST

START_TEST(test_pagetable_history)
{
	struct pagetable pt;
	uint64_t dirty[2] = { 0 }, accessed[2] = { 0 };

	ck_assert_int_eq(pt_init(&pt, 100), 0);
	pt_place(&pt, 70, PT_TIER_DRAM, 9, 0);
	/* page 70 written in epoch 1, page 3 only read in epochs 1 and 2 */
	dirty[1] = UINT64_C(1) << 6;
	accessed[0] = 1 << 3;
	pt_epoch_shift(&pt, dirty, accessed);
	memset(dirty, 0, sizeof(dirty));
	pt_epoch_shift(&pt, dirty, accessed);
	ck_assert_uint_eq(pt_dirty_count(&pt, 70), 1);
	ck_assert_uint_eq(pt_access_count(&pt, 70), 1); /* a write is an access */
	ck_assert_uint_eq(pt_last_access(&pt, 70), 1);
	ck_assert(pt_test(&pt, 70, PT_DIRTY));
	ck_assert_uint_eq(pt_access_count(&pt, 3), 2);
	ck_assert_uint_eq(pt_dirty_count(&pt, 3), 0);
	ck_assert_uint_eq(pt_last_access(&pt, 3), 0);
	ck_assert_uint_eq(pt_last_access(&pt, 50), PT_HISTORY_EPOCHS);
	/* the history shifts out after 8 epochs; tier and frame are untouched by it */
	for (int i = 0; i < 8; i++)
		pt_epoch_shift(&pt, NULL, NULL);
	ck_assert_uint_eq(pt_access_count(&pt, 3), 0);
	ck_assert_uint_eq(pt_dirty_count(&pt, 70), 0);
	ck_assert_uint_eq(pt_frame(&pt, 70), 9);
	ck_assert_int_eq(pt_tier(&pt, 70), PT_TIER_DRAM);
	pt_done(&pt);
}
END_TEST


static Suite *tables_suite(void)
{
	Suite *s = suite_create("engine-tables");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_pagetable_tiers);
	tcase_add_test(tc, test_pagetable_history);
	tcase_add_test(tc, test_pagetable_frequency);
	suite_add_tcase(s, tc);
	return s;
}

VPM_CHECK_MAIN(tables_suite)
