// SPDX-License-Identifier: LGPL-2.1-or-later
/* Placement policy and its baselines. */
#include <errno.h>
#include <math.h>
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

#define SAMPLE_USEC 12500 /* the engine's: 8 samples in a 100 ms epoch */

/*
 * What vpm sees of setup_table()'s 8 epochs: 8 samples an epoch (each of them a boundary's
 * harvest: short epochs that a fault ended early). Pages 0-3 written in every epoch, 4-7 read
 * in every sample, 8-11 read once at the start, 12-15 never touched. Returns the time after.
 */
static uint64_t observe_epochs(struct policy *p, const struct pagetable *pt, uint64_t t)
{
	for (int e = 0; e < 8; e++)
		for (int s = 0; s < 8; s++) {
			uint64_t accessed[1] = { 0xff | (e == 0 && s == 0 ? 0xf00 : 0) };
			uint64_t dirty[1] = { 0xf };

			t += SAMPLE_USEC;
			ck_assert_int_eq(policy_observe(p, pt, accessed, dirty, t), 0);
		}
	return t;
}

START_TEST(test_vpm_keeps_hot_pages)
{
	struct pagetable pt;
	struct policy p = { .kind = POLICY_VPM };
	uint64_t out[16];
	size_t n;

	setup_table(&pt);
	observe_epochs(&p, &pt, 1000);
	policy_boundary(&p, &pt);
	n = policy_pick_demotions(&p, &pt, 12, out);
	ck_assert_uint_eq(n, 12);
	/*
	 * cold first (8-15: one sample long ago is no evidence of heat, so read-once and
	 * untouched pages are equals, highest gfn first), then read-mostly (4-7); never 0-3
	 */
	for (int i = 0; i < 8; i++)
		ck_assert_uint_eq(out[i], 15 - (uint64_t)i);
	for (int i = 8; i < 12; i++)
		ck_assert(out[i] >= 4 && out[i] < 8);
	/* written pages count their writes too */
	ck_assert_double_gt(policy_score(&p, &pt, 0), policy_score(&p, &pt, 4));
	ck_assert_double_gt(policy_score(&p, &pt, 8), policy_score(&p, &pt, 12));
	policy_done(&p);
	pt_done(&pt);
}
END_TEST

START_TEST(test_vpm_heat_decays)
{
	struct pagetable pt;
	struct policy p = { .kind = POLICY_VPM };
	uint64_t a[1] = { 0x1 }, b[1] = { 0x2 }, t = 0;
	double h0, h1;

	ck_assert_int_eq(pt_init(&pt, 4), 0);
	/* page 0: 100 samples now; page 1: 100 samples 4 s (two time constants) later */
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(policy_observe(&p, &pt, a, NULL, t += 1000), 0);
	h0 = policy_score(&p, &pt, 0);
	ck_assert_double_eq_tol(h0, 100 * 0.975, 2.5); /* the last 0.1 s: hardly decayed */
	t += 4000000;
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(policy_observe(&p, &pt, b, NULL, t += 1000), 0);
	h1 = policy_score(&p, &pt, 1);
	ck_assert_double_eq_tol(policy_score(&p, &pt, 0), h0 * exp(-2.05), 1.0);
	ck_assert_double_gt(h1, 4 * policy_score(&p, &pt, 0));
	/* long quiet times rebase the scale (exp of 140 s / 2 s overflows a float): page 1
	 * stays hotter than page 0, both decayed to nothing, and new samples count as before */
	t += 140000000;
	ck_assert_int_eq(policy_observe(&p, &pt, b, NULL, t), 0);
	ck_assert_double_eq_tol(policy_score(&p, &pt, 1), 1.0, 1e-3);
	ck_assert_double_eq_tol(policy_score(&p, &pt, 0), 0.0, 1e-3);
	ck_assert(isfinite(policy_score(&p, &pt, 2)));
	/* another policy drops the state; vpm again starts afresh */
	p.kind = POLICY_LRU;
	ck_assert_int_eq(policy_observe(&p, &pt, b, NULL, t), 0);
	ck_assert_ptr_null(p.heat);
	p.kind = POLICY_VPM;
	ck_assert_double_eq(policy_score(&p, &pt, 1), 0);
	policy_done(&p);
	pt_done(&pt);
}
END_TEST

START_TEST(test_vpm_hysteresis)
{
	struct pagetable pt;
	struct policy p = { .kind = POLICY_VPM };
	uint64_t all[1] = { 0xff }, some[1] = { 0x0f }, out[8], t = 0;

	/* 8 pages: 0-3 in DRAM, 4-7 on PM, all of equal rate */
	ck_assert_int_eq(pt_init(&pt, 8), 0);
	for (uint32_t g = 0; g < 8; g++)
		pt_place(&pt, g, g < 4 ? PT_TIER_DRAM : PT_TIER_PM, g,
			 PT_COMMITTED | (g < 4 ? PT_WRITABLE : 0));
	for (int i = 0; i < 400; i++)
		ck_assert_int_eq(policy_observe(&p, &pt, all, NULL, t += SAMPLE_USEC), 0);
	policy_boundary(&p, &pt);
	/* equal counts: no swap either way */
	ck_assert(!policy_prefers(&p, &pt, 4, 0));
	ck_assert(!policy_prefers(&p, &pt, 0, 4));
	/* a write fault brings page 5 to DRAM: at the next boundary, a visitor, the first to go
	 * back, even though its heat (one more sample) is as high as the others' */
	pt_place(&pt, 5, PT_TIER_DRAM, 5, PT_COMMITTED | PT_WRITABLE);
	ck_assert_int_eq(policy_observe(&p, &pt, (uint64_t[]){ 0x20 }, (uint64_t[]){ 0x20 },
					t += SAMPLE_USEC),
			 0);
	/* ... and the policy promotes page 6: no visitor */
	pt_place(&pt, 6, PT_TIER_DRAM, 6, PT_COMMITTED | PT_WRITABLE | PT_FORCE);
	policy_promoted(&p, 6);
	policy_boundary(&p, &pt);
	ck_assert_uint_eq(policy_pick_demotions(&p, &pt, 6, out), 6);
	ck_assert_uint_eq(out[0], 5);
	/* pages 0-3 stay as hot; 5 and 6 go cold: the visitor still goes first */
	for (int i = 0; i < 400; i++)
		ck_assert_int_eq(policy_observe(&p, &pt, some, NULL, t += SAMPLE_USEC), 0);
	policy_boundary(&p, &pt);
	ck_assert_uint_eq(policy_pick_demotions(&p, &pt, 6, out), 6);
	ck_assert_uint_eq(out[0], 5);
	ck_assert_uint_eq(out[1], 6);
	/* a clear difference: page 7 (PM) is now hotter than cold page 6 in DRAM */
	ck_assert(policy_prefers(&p, &pt, 7, 6) == false); /* 7 went cold too */
	for (int i = 0; i < 400; i++)
		ck_assert_int_eq(policy_observe(&p, &pt, (uint64_t[]){ 0xa0 }, NULL,
						t += SAMPLE_USEC),
				 0);
	ck_assert(policy_prefers(&p, &pt, 7, 6));
	ck_assert(!policy_prefers(&p, &pt, 7, 5)); /* 5 was as hot */
	/* the visitor, clearly hotter than the coldest resident (6), stays: not first any more */
	policy_boundary(&p, &pt);
	ck_assert_uint_eq(policy_pick_demotions(&p, &pt, 6, out), 6);
	ck_assert_uint_eq(out[0], 6);
	policy_done(&p);
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
	uint64_t out[16], t;

	setup_table(&pt);
	t = observe_epochs(&p, &pt, 1000);
	/* move everything to PM: the vpm policy brings back the write-hot pages first */
	for (uint32_t g = 0; g < 16; g++)
		pt_place(&pt, g, PT_TIER_PM, g, PT_COMMITTED);
	policy_boundary(&p, &pt);
	ck_assert_uint_eq(policy_pick_promotions(&p, &pt, 8, out), 8);
	for (int i = 0; i < 4; i++)
		ck_assert_uint_lt(out[i], 4);
	for (int i = 4; i < 8; i++)
		ck_assert(out[i] >= 4 && out[i] < 8);
	ck_assert(policy_swaps(&p));
	/* among pages read at every sample, how often decides: page 6 read 8 more times */
	{
		uint64_t often[1] = { UINT64_C(1) << 6 };

		for (int i = 0; i < 8; i++)
			ck_assert_int_eq(policy_observe(&p, &pt, often, NULL, t += SAMPLE_USEC / 8),
					 0);
		ck_assert_uint_eq(policy_pick_promotions(&p, &pt, 5, out), 5);
		ck_assert_uint_eq(out[4], 6); /* after the four written pages */
	}
	policy_done(&p);
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
	tcase_add_test(tc, test_vpm_keeps_hot_pages);
	tcase_add_test(tc, test_vpm_heat_decays);
	tcase_add_test(tc, test_vpm_hysteresis);
	tcase_add_test(tc, test_only_its_tier);
	tcase_add_test(tc, test_promotions_hottest_first);
	tcase_add_test(tc, test_baselines);
	suite_add_tcase(s, tc);
	return s;
}

VPM_CHECK_MAIN(policy_suite)
