// SPDX-License-Identifier: LGPL-2.1-or-later
/* The copy crew: every page lands where it was asked to, whatever the count and crew size. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check-main.h"
#include "page-copy.h"
#include "pm-layout.h"

static void fill(uint8_t *p, size_t pages, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < pages * PM_PAGE_SIZE; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

/* Copy n pages from a shuffled source order into dst (reversed), with the given crew. */
static void check_copy(unsigned threads, size_t n, unsigned flags, size_t src_misalign)
{
	struct copy_crew *c = NULL;
	struct page_copy_item *items = calloc(n ? n : 1, sizeof(*items));
	uint8_t *src_mem = malloc(n * PM_PAGE_SIZE + 64), *src = src_mem + src_misalign;
	uint8_t *dst = aligned_alloc(PM_PAGE_SIZE, (n ? n : 1) * PM_PAGE_SIZE);

	ck_assert_ptr_nonnull(items);
	ck_assert_ptr_nonnull(src_mem);
	ck_assert_ptr_nonnull(dst);
	ck_assert_int_eq(copy_crew_new(threads, &c), 0);
	ck_assert_uint_ge(copy_crew_threads(c), 1);
	fill(src, n, (uint32_t)(n + threads));
	memset(dst, 0xa5, (n ? n : 1) * PM_PAGE_SIZE);
	for (size_t i = 0; i < n; i++)
		items[i] = (struct page_copy_item){ .dst = dst + (n - 1 - i) * PM_PAGE_SIZE,
						    .src = src + i * PM_PAGE_SIZE };
	/* twice: the second job must not be disturbed by the first one's helpers */
	for (int round = 0; round < 2; round++) {
		copy_crew_pages(c, items, n, flags);
		for (size_t i = 0; i < n; i++)
			ck_assert_msg(memcmp(dst + (n - 1 - i) * PM_PAGE_SIZE, src + i * PM_PAGE_SIZE,
					     PM_PAGE_SIZE) == 0,
				      "page %zu of %zu differs (threads %u, round %d)", i, n, threads,
				      round);
	}
	copy_crew_free(c);
	free(items);
	free(src_mem);
	free(dst);
}

START_TEST(test_sizes_and_crews)
{
	static const size_t counts[] = { 0, 1, 31, 32, 33, 255, 256, 1023, 1024, 1025, 4099 };
	static const unsigned crews[] = { 1, 2, 3, 4 };

	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
		for (size_t k = 0; k < sizeof(crews) / sizeof(crews[0]); k++) {
			check_copy(crews[k], counts[i], 0, 0);
			check_copy(crews[k], counts[i], COPY_STREAM, 0);
		}
}
END_TEST

START_TEST(test_unaligned_source)
{
	check_copy(2, 300, COPY_STREAM, 8);
	check_copy(2, 2000, 0, 24);
	check_copy(1, 3, COPY_STREAM, 1);
}
END_TEST

START_TEST(test_default_crew)
{
	struct copy_crew *c = NULL;

	ck_assert_int_eq(copy_crew_new(0, &c), 0);
	ck_assert_uint_ge(copy_crew_threads(c), 1);
	ck_assert_uint_le(copy_crew_threads(c), 4);
	copy_crew_free(c);
	ck_assert_ptr_null(copy_crew_free(NULL));
}
END_TEST

START_TEST(test_many_jobs)
{
	/* many jobs back to back: helpers late for one must not take the next one's chunks */
	struct copy_crew *c = NULL;
	size_t n = 2048;
	uint8_t *src = aligned_alloc(PM_PAGE_SIZE, n * PM_PAGE_SIZE);
	uint8_t *dst = aligned_alloc(PM_PAGE_SIZE, n * PM_PAGE_SIZE);
	struct page_copy_item *items = calloc(n, sizeof(*items));

	ck_assert_int_eq(copy_crew_new(4, &c), 0);
	for (size_t i = 0; i < n; i++)
		items[i] = (struct page_copy_item){ .dst = dst + i * PM_PAGE_SIZE,
						    .src = src + i * PM_PAGE_SIZE };
	for (uint32_t job = 0; job < 200; job++) {
		size_t k = 1024 + job % 1000;

		memset(src, (int)job, k * PM_PAGE_SIZE);
		copy_crew_pages(c, items, k, job % 2 ? COPY_STREAM : 0);
		ck_assert_msg(memcmp(dst, src, k * PM_PAGE_SIZE) == 0, "job %u", job);
	}
	copy_crew_free(c);
	free(items);
	free(src);
	free(dst);
}
END_TEST

static Suite *page_copy_suite(void)
{
	Suite *s = suite_create("page-copy");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_sizes_and_crews);
	tcase_add_test(tc, test_unaligned_source);
	tcase_add_test(tc, test_default_crew);
	tcase_add_test(tc, test_many_jobs);
	suite_add_tcase(s, tc);
	return s;
}

VPM_CHECK_MAIN(page_copy_suite)
