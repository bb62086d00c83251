// SPDX-License-Identifier: LGPL-2.1-or-later
/* Placement policy and its baselines. */
#include <errno.h>
#include <string.h>

#include "check-main.h"
#include "policy.h"

/* 16 pages in DRAM, committed; page histories set by epochs below. */
static void setup_table(struct pagetable *pt)
{
	uint64_t dirty[1], accessed[1];

	ck_assert_int_eq(pt_init(pt, 16), 0);
	for (uint32_t g = 0; g < 16; g++)
		pt_place(pt, g, PT_TIER_DRAM, g, PT_COMMITTED | PT_WRITABLE);
	/* 8 epochs: pages 0-3 written every epoch, 4-7 read every epoch, 8-11 read once long
	 * ago, 12-15 never touched */
	for (int e = 0; e < 8; e++) {
		dirty[0] = 0xf;
		accessed[0] = 0xff | (e == 0 ? 0xf00 : 0);
		pt_epoch_shift(pt, dirty, accessed);
	}
	for (uint32_t g = 0; g < 16; g++)
		pt_set_flags(pt, g, 0, PT_DIRTY); /* the epoch committed */
}

static double weight_by_gfn(void *userdata, uint64_t gfn)
{
	(void)userdata;
	return 16.0 - (double)gfn; /* the oracle knows low gfns are hot */
}

START_TEST(test_dram_share)
{
	ck_assert_uint_eq(policy_dram_share(1000, 1.0), 0);
	ck_assert_uint_eq(policy_dram_share(1000, 2.0), 500);
	ck_assert_uint_eq(policy_dram_share(1000, 3.0), 666);
	ck_assert_uint_eq(policy_dram_share(1000, 8.0), 875);
	ck_assert_uint_eq(policy_dram_share(1000, 0.5), 0); /* below 1 means nothing valid */
	ck_assert_uint_eq(policy_dram_share(1000, 0.0 / 0.0), 0);
	ck_assert_int_eq(policy_kind_from_string("lru"), POLICY_LRU);
	ck_assert_int_eq(policy_kind_from_string("magic"), -EINVAL);
}
END_TEST

START_TEST(test_vpm_keeps_write_hot_pages)
{
	struct pagetable pt;
	struct policy p = { .kind = POLICY_VPM };
	uint64_t out[16];
	size_t n;

	setup_table(&pt);
	n = policy_pick_demotions(&p, &pt, 12, out);
	ck_assert_uint_eq(n, 12);
	/* cold first (12-15), then read-once (8-11), then read-mostly (4-7); never 0-3 */
	for (int i = 0; i < 4; i++)
		ck_assert_uint_ge(out[i], 12);
	for (int i = 4; i < 8; i++)
		ck_assert(out[i] >= 8 && out[i] < 12);
	for (int i = 8; i < 12; i++)
		ck_assert(out[i] >= 4 && out[i] < 8);
	pt_done(&pt);
}
END_TEST

START_TEST(test_only_its_tier)
{
	struct pagetable pt;
	struct policy p = { .kind = POLICY_LRU };
	uint64_t out[16];
	size_t n;

	setup_table(&pt);
	pt_place(&pt, 15, PT_TIER_PM, 3, PT_COMMITTED); /* already on PM */
	pt_place(&pt, 14, PT_TIER_NONE, 0, 0);           /* only in the image */
	n = policy_pick_demotions(&p, &pt, 16, out);
	ck_assert_uint_eq(n, 14);
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_lt(out[i], 14); /* not 14 or 15 */
	/* lru: the least recently used first (12 and 13 were never touched) */
	ck_assert(out[0] == 12 || out[0] == 13);
	/* promotions come from PM only: page 15 is the one there */
	ck_assert_uint_eq(policy_pick_promotions(&p, &pt, 16, out), 1);
	ck_assert_uint_eq(out[0], 15);
	pt_done(&pt);
}
END_TEST

START_TEST(test_promotions_hottest_first)
{
	struct pagetable pt;
	struct policy p = { .kind = POLICY_VPM };
	uint64_t out[16];

	setup_table(&pt);
	/* move everything to PM: the vpm policy brings back the write-hot pages first */
	for (uint32_t g = 0; g < 16; g++)
		pt_place(&pt, g, PT_TIER_PM, g, PT_COMMITTED);
	ck_assert_uint_eq(policy_pick_promotions(&p, &pt, 8, out), 8);
	for (int i = 0; i < 4; i++)
		ck_assert_uint_lt(out[i], 4);
	for (int i = 4; i < 8; i++)
		ck_assert(out[i] >= 4 && out[i] < 8);
	ck_assert(policy_swaps(&p));
	/* among pages read in every epoch, the sampled frequency decides */
	{
		uint64_t often[1] = { UINT64_C(1) << 6 };

		for (int i = 0; i < 20; i++)
			pt_sample_accessed(&pt, often, true);
		ck_assert_uint_eq(policy_pick_promotions(&p, &pt, 5, out), 5);
		ck_assert_uint_eq(out[4], 6); /* after the four written pages */
	}
	pt_done(&pt);
}
END_TEST

START_TEST(test_baselines)
{
	struct pagetable pt;
	struct policy st = { .kind = POLICY_STATIC }, rnd = { .kind = POLICY_RANDOM, .rng = 1 },
		      rnd2 = { .kind = POLICY_RANDOM, .rng = 2 },
		      orc = { .kind = POLICY_ORACLE, .weight = weight_by_gfn };
	uint64_t a[16], b[16];

	setup_table(&pt);
	/* static: pages whose first touch was on PM go back there first, then gfn order */
	pt_set_flags(&pt, 9, PT_HOME_PM, 0);
	pt_set_flags(&pt, 3, PT_HOME_PM, 0);
	ck_assert_uint_eq(policy_pick_demotions(&st, &pt, 3, a), 3);
	ck_assert_uint_eq(a[0], 3);
	ck_assert_uint_eq(a[1], 9);
	ck_assert_uint_eq(a[2], 0);
	ck_assert(!policy_swaps(&st) && !policy_swaps(&rnd));
	ck_assert_uint_eq(policy_pick_demotions(&rnd, &pt, 8, a), 8);
	ck_assert_uint_eq(policy_pick_demotions(&rnd2, &pt, 8, b), 8);
	ck_assert_int_ne(memcmp(a, b, sizeof(a[0]) * 8), 0);
	ck_assert_uint_eq(policy_pick_demotions(&orc, &pt, 4, a), 4);
	for (int i = 0; i < 4; i++)
		ck_assert_uint_eq(a[i], 15 - (uint64_t)i); /* the truly coldest */
	pt_done(&pt);
}
END_TEST

static Suite *policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_dram_share);
	tcase_add_test(tc, test_vpm_keeps_write_hot_pages);
	tcase_add_test(tc, test_only_its_tier);
	tcase_add_test(tc, test_promotions_hottest_first);
	tcase_add_test(tc, test_baselines);
	suite_add_tcase(s, tc);
	return s;
}

VPM_CHECK_MAIN(policy_suite)
