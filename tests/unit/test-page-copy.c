// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The copy crew: every page lands where it was asked to, whatever the count and crew size;
 * a staging job does not wait for a helper that stopped on its chunk.
 */
#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* n pages of source and destination; item i copies source page i to destination page i */
struct pages {
	size_t n;
	uint8_t *src, *dst;
	struct page_copy_item *items;
};

static struct pages pages_new(size_t n)
{
	struct pages p = { .n = n, .src = aligned_alloc(PM_PAGE_SIZE, n * PM_PAGE_SIZE),
			   .dst = aligned_alloc(PM_PAGE_SIZE, n * PM_PAGE_SIZE),
			   .items = calloc(n, sizeof(*p.items)) };

	ck_assert(p.src && p.dst && p.items);
	for (size_t i = 0; i < n; i++)
		p.items[i] = (struct page_copy_item){ .dst = p.dst + i * PM_PAGE_SIZE,
						      .src = p.src + i * PM_PAGE_SIZE };
	return p;
}

static void pages_free(struct pages *p)
{
	free(p->items);
	free(p->src);
	free(p->dst);
}

START_TEST(test_many_jobs)
{
	/* many jobs back to back: helpers late for one must not take the next one's chunks */
	struct copy_crew *c = NULL;
	size_t n = 2048;
	struct pages pg = pages_new(n);
	uint8_t *src = pg.src, *dst = pg.dst;
	struct page_copy_item *items = pg.items;

	ck_assert_int_eq(copy_crew_new(4, &c), 0);
	for (uint32_t job = 0; job < 200; job++) {
		size_t k = 1024 + job % 1000;

		memset(src, (int)job, k * PM_PAGE_SIZE);
		copy_crew_pages(c, items, k, job % 2 ? COPY_STREAM : 0);
		ck_assert_msg(memcmp(dst, src, k * PM_PAGE_SIZE) == 0, "job %u", job);
	}
	copy_crew_free(c);
	pages_free(&pg);
}
END_TEST

/*
 * The takeover test: the helper stops on its first chunk until the job has returned, and the
 * caller waits on its first chunk until the helper holds one (so that one is held each job).
 */
static pthread_mutex_t hook_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hook_cond = PTHREAD_COND_INITIALIZER;
static bool job_returned, helper_held;

static void hold_helper(size_t first, bool helper)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10; /* a job that waits for the helper ends the test instead of hanging */
	pthread_mutex_lock(&hook_lock);
	if (helper && !helper_held) {
		helper_held = true;
		pthread_cond_broadcast(&hook_cond);
		while (!job_returned)
			if (pthread_cond_timedwait(&hook_cond, &hook_lock, &until) != 0)
				break;
	} else if (!helper && first == 0) {
		while (!helper_held)
			if (pthread_cond_timedwait(&hook_cond, &hook_lock, &until) != 0)
				break;
	}
	pthread_mutex_unlock(&hook_lock);
}

START_TEST(test_stage_takes_over)
{
	/* a helper descheduled on its chunk: the staging job copies that chunk elsewhere, returns */
	struct copy_crew *c = NULL;
	size_t n = 4096, took_over = 0;
	struct pages pg = pages_new(n);
	uint8_t *src = pg.src, *dst = pg.dst;
	struct page_copy_item *items = pg.items;
	struct page_copy_moved moved[COPY_MOVED_MAX];

	ck_assert_int_eq(copy_crew_new(2, &c), 0);
	copy_crew_set_claimed_hook(c, hold_helper);
	for (uint32_t job = 0; job < 20; job++) {
		size_t k;
		bool held;

		fill(src, n, job);
		memset(dst, 0, n * PM_PAGE_SIZE);
		pthread_mutex_lock(&hook_lock);
		job_returned = helper_held = false;
		pthread_mutex_unlock(&hook_lock);

		k = copy_crew_stage(c, items, n, moved);

		pthread_mutex_lock(&hook_lock);
		held = helper_held;
		job_returned = true;
		pthread_cond_broadcast(&hook_cond);
		pthread_mutex_unlock(&hook_lock);
		ck_assert(held);
		ck_assert_uint_eq(k, 1);
		for (size_t r = 0; r < k; r++) {
			ck_assert_uint_eq(moved[r].first % 32, 0);
			ck_assert_uint_le(moved[r].first + moved[r].n, n);
			ck_assert_msg(memcmp(moved[r].dst, src + moved[r].first * PM_PAGE_SIZE,
					     moved[r].n * PM_PAGE_SIZE) == 0, "job %u: moved run", job);
		}
		for (size_t i = 0; i < n; i++) {
			bool elsewhere = false;

			for (size_t r = 0; r < k; r++)
				elsewhere |= i >= moved[r].first && i < moved[r].first + moved[r].n;
			if (!elsewhere)
				ck_assert_msg(memcmp(dst + i * PM_PAGE_SIZE, src + i * PM_PAGE_SIZE,
						     PM_PAGE_SIZE) == 0, "job %u page %zu", job, i);
		}
		took_over += k;
		copy_crew_quiesce(c); /* the held helper finishes its (now unused) copy */
	}
	ck_assert_uint_eq(took_over, 20);
	copy_crew_free(c);
	pages_free(&pg);
}
END_TEST

static bool released;

static void *release_helper(void *arg)
{
	(void)arg;
	nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
	pthread_mutex_lock(&hook_lock);
	released = job_returned = true;
	pthread_cond_broadcast(&hook_cond);
	pthread_mutex_unlock(&hook_lock);
	return NULL;
}

START_TEST(test_next_job_waits_for_late_helper)
{
	/*
	 * After a takeover the held helper still writes its chunk's destinations: the next job,
	 * however small (copied without the crew), must not write the same memory before it is
	 * done, or a commit could read what the late helper writes after it.
	 */
	struct copy_crew *c = NULL;
	size_t n = 4096;
	struct pages pg = pages_new(n);
	uint8_t *src = pg.src, *dst = pg.dst;
	struct page_copy_item *items = pg.items;
	struct page_copy_moved moved[COPY_MOVED_MAX];
	pthread_t releaser;
	bool was_released;

	ck_assert_int_eq(copy_crew_new(2, &c), 0);
	copy_crew_set_claimed_hook(c, hold_helper);
	fill(src, n, 1);
	job_returned = helper_held = released = false;
	ck_assert_uint_eq(copy_crew_stage(c, items, n, moved), 1);
	ck_assert(helper_held);
	ck_assert_int_eq(pthread_create(&releaser, NULL, release_helper, NULL), 0);

	copy_crew_pages(c, items + moved[0].first, 8, 0);

	pthread_mutex_lock(&hook_lock);
	was_released = released;
	pthread_mutex_unlock(&hook_lock);
	ck_assert_msg(was_released, "a small job ran while a helper still copied for the last one");
	pthread_join(releaser, NULL);
	ck_assert(memcmp(dst, src, n * PM_PAGE_SIZE) == 0);
	copy_crew_free(c);
	pages_free(&pg);
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
	tcase_add_test(tc, test_stage_takes_over);
	tcase_add_test(tc, test_next_job_waits_for_late_helper);
	suite_add_tcase(s, tc);
	return s;
}

VPM_CHECK_MAIN(page_copy_suite)
