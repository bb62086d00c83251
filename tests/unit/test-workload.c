// SPDX-License-Identifier: LGPL-2.1-or-later
/* The simulated guests' workloads and latency model. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check-main.h"
#include "latency.h"
#include "workload.h"

static struct workload *make(enum workload_kind k, uint64_t pages)
{
	struct workload_params p = { .kind = k, .n_pages = pages, .theta = 0.99, .write_pct = 50,
				     .seed = 42 };
	struct workload *w = NULL;

	ck_assert_int_eq(workload_new(&p, &w), 0);
	return w;
}

/* Every access stays inside the device and its page, cacheline aligned. */
static void check_bounds(const struct workload_op *op, uint64_t pages)
{
	ck_assert_uint_gt(op->n, 0);
	for (unsigned i = 0; i < op->n; i++) {
		const struct workload_access *a = &op->a[i];

		ck_assert_uint_lt(a->gfn, pages);
		ck_assert_uint_eq(a->offset % 64, 0);
		ck_assert_uint_eq(a->len % 64, 0);
		ck_assert_uint_gt(a->len, 0);
		ck_assert_uint_le(a->offset + a->len, 4096);
		ck_assert(!a->persist || a->write);
	}
}

static bool same_op(const struct workload_op *x, const struct workload_op *y)
{
	if (x->n != y->n)
		return false;
	for (unsigned i = 0; i < x->n; i++)
		if (x->a[i].gfn != y->a[i].gfn || x->a[i].offset != y->a[i].offset ||
		    x->a[i].len != y->a[i].len || x->a[i].write != y->a[i].write ||
		    x->a[i].persist != y->a[i].persist)
			return false;
	return true;
}

START_TEST(test_refusals)
{
	struct workload_params p = { .kind = WORKLOAD_ZIPF_KV, .n_pages = 100, .theta = 1.5 };
	struct workload *w = NULL;

	ck_assert_int_eq(workload_new(&p, &w), -EINVAL);
	p.theta = 0.9;
	p.n_pages = 2;
	ck_assert_int_eq(workload_new(&p, &w), -EINVAL);
	p.n_pages = 100;
	p.kind = _WORKLOAD_MAX;
	ck_assert_int_eq(workload_new(&p, &w), -EINVAL);
	ck_assert_int_eq(workload_kind_from_string("btree"), WORKLOAD_BTREE);
	ck_assert_int_eq(workload_kind_from_string("nosql"), -EINVAL);
}
END_TEST

START_TEST(test_deterministic_and_bounded)
{
	for (int k = 0; k < _WORKLOAD_MAX; k++) {
		struct workload *w = make(k, 256);
		struct workload_cursor a, b, other;
		struct workload_op x, y, z;
		bool differs = false;

		workload_cursor_init(w, 1, 4, &a);
		workload_cursor_init(w, 1, 4, &b);
		workload_cursor_init(w, 2, 4, &other);
		for (int i = 0; i < 5000; i++) {
			workload_next(w, &a, &x);
			workload_next(w, &b, &y);
			workload_next(w, &other, &z);
			check_bounds(&x, 256);
			check_bounds(&z, 256);
			ck_assert(same_op(&x, &y));
			differs |= !same_op(&x, &z);
		}
		ck_assert_msg(differs, "vCPUs of %s replay the same stream",
			      workload_kind_to_string(k));
		workload_free(w);
	}
}
END_TEST

START_TEST(test_zipf_skew_matches_weights)
{
	const uint64_t pages = 1024;
	struct workload *w = make(WORKLOAD_ZIPF_KV, pages);
	struct workload_cursor c;
	struct workload_op op;
	uint64_t *hits = calloc(pages, sizeof(uint64_t)), ops = 200000, hottest = 0, top10 = 0;
	double sum = 0, weight_top = 0;

	workload_cursor_init(w, 0, 1, &c);
	for (uint64_t i = 0; i < ops; i++) {
		workload_next(w, &c, &op);
		hits[op.a[0].gfn]++;
	}
	for (uint64_t g = 0; g < pages; g++) {
		sum += workload_page_weight(w, g);
		if (workload_page_weight(w, g) > workload_page_weight(w, hottest))
			hottest = g;
	}
	/* an operation touches one page: the weights are a distribution */
	ck_assert_double_eq_tol(sum, 1.0, 1e-6);
	/* skewed: the hottest page alone takes far more than its 1/1024 share... */
	weight_top = workload_page_weight(w, hottest);
	ck_assert_double_gt(weight_top, 20.0 / (double)pages);
	/* ...and the observed frequency matches the oracle's weight */
	ck_assert_double_eq_tol((double)hits[hottest] / (double)ops, weight_top, 0.01);
	for (uint64_t g = 0; g < pages; g++)
		top10 += workload_page_weight(w, g) > weight_top / 10 ? hits[g] : 0;
	ck_assert_uint_gt(top10, ops / 4);
	free(hits);
	workload_free(w);
}
END_TEST

START_TEST(test_log_appends_in_order)
{
	struct workload *w = make(WORKLOAD_LOG, 64);
	struct workload_cursor c;
	struct workload_op op;
	uint64_t last = 0, wraps = 0;

	workload_cursor_init(w, 1, 2, &c); /* vCPU 1 of 2 owns pages 32..63 */
	for (int i = 0; i < 20000; i++) {
		uint64_t at;

		workload_next(w, &c, &op);
		ck_assert_uint_eq(op.n, 1);
		ck_assert(op.a[0].write && op.a[0].persist);
		ck_assert_uint_ge(op.a[0].gfn, 32);
		ck_assert_uint_lt(op.a[0].gfn, 64);
		at = op.a[0].gfn * 4096 + op.a[0].offset;
		if (at < last)
			wraps++;
		last = at;
	}
	/* 20000 records of 288 bytes on average through a 128 KiB region: about 44 laps */
	ck_assert_uint_gt(wraps, 30);
	ck_assert_uint_lt(wraps, 60);
	workload_free(w);
}
END_TEST

START_TEST(test_btree_and_scan_shapes)
{
	struct workload *b = make(WORKLOAD_BTREE, 4096), *s = make(WORKLOAD_SCAN, 512);
	struct workload_cursor c;
	struct workload_op op;
	uint64_t prev = 0;
	int seq = 0;

	workload_cursor_init(b, 0, 1, &c);
	for (int i = 0; i < 1000; i++) {
		workload_next(b, &c, &op);
		ck_assert_uint_eq(op.a[0].gfn, 0); /* every walk starts at the root */
		ck_assert(!op.a[0].write);
		ck_assert(op.a[3].write);
	}
	ck_assert_double_eq_tol(workload_page_weight(b, 0), 1.0, 1e-9);
	workload_cursor_init(s, 0, 1, &c);
	for (int i = 0; i < 1600; i++) {
		workload_next(s, &c, &op);
		ck_assert_uint_eq(op.a[0].len, 4096);
		seq += i && op.a[0].gfn == (prev + 1) % 512;
		prev = op.a[0].gfn;
	}
	ck_assert_int_gt(seq, 1400); /* runs of 16 sequential pages */
	workload_free(b);
	workload_free(s);
}
END_TEST

START_TEST(test_latency_model)
{
	struct latency_model m = LATENCY_MODEL_DEFAULT;

	ck_assert_uint_eq(latency_cost(&m, true, false, 64), 305);
	ck_assert_uint_eq(latency_cost(&m, false, false, 4096), 64 * 81);
	ck_assert_uint_eq(latency_cost(&m, true, true, 65), 2 * 94);
	ck_assert_int_eq(latency_model_parse("pm_read=500,dram_write=90", &m), 0);
	ck_assert_uint_eq(m.pm_read_ns, 500);
	ck_assert_uint_eq(m.dram_write_ns, 90);
	ck_assert_uint_eq(m.dram_read_ns, 81);
	ck_assert_int_eq(latency_model_parse("pm_read=0", &m), -ERANGE);
	ck_assert_int_eq(latency_model_parse("flash=3", &m), -EINVAL);
	ck_assert_uint_eq(m.pm_read_ns, 500); /* unchanged by a refused string */
}
END_TEST

static Suite *workload_suite(void)
{
	Suite *s = suite_create("workload");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_refusals);
	tcase_add_test(tc, test_deterministic_and_bounded);
	tcase_add_test(tc, test_zipf_skew_matches_weights);
	tcase_add_test(tc, test_log_appends_in_order);
	tcase_add_test(tc, test_btree_and_scan_shapes);
	tcase_add_test(tc, test_latency_model);
	suite_add_tcase(s, tc);
	return s;
}

VPM_CHECK_MAIN(workload_suite)
