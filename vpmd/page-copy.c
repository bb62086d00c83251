// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "macro.h"
#include "page-copy.h"
#include "pm-layout.h"

#define CREW_MAX        16
#define CHUNK_PAGES     32
/* below this many pages a wake-up of the crew costs more than it saves */
#define CREW_MIN_PAGES  256
/* below this many pages the copy likely stays in the caches: plain stores are faster */
#define STREAM_MIN_PAGES 256
/* the least a staging job waits for a helper's chunk before copying it again */
#define TAKEOVER_GRACE_MIN_USEC 50

struct copy_crew {
	unsigned n_threads; /* helpers + the caller */
	pthread_t threads[CREW_MAX];
	pthread_mutex_t lock;
	pthread_cond_t wake, done;
	uint64_t generation;   /* one per job */
	unsigned working;      /* helpers that have not checked in from the current job */
	size_t done_pages;     /* pages of the current job copied */
	bool stop;
	/* the current job */
	const struct page_copy_item *items;
	size_t n_items;
	bool stream;
	size_t next;         /* atomic: the next chunk to take */
	uint8_t *chunk_done; /* atomic, one per chunk of the job: copied */
	size_t chunk_cap;
	uint8_t *spare;      /* where a staging job's caller copies chunks a helper holds */
	void (*claimed_hook)(size_t first, bool helper); /* tests: a chunk was taken */
};

static bool have_avx2; /* set before any copy thread starts */

#if defined(__x86_64__)
__attribute__((target("avx2"))) static void stream_page_avx2(void *dst, const void *src)
{
	__m256i *d = dst;
	const __m256i *s = src;

	for (size_t i = 0; i < PM_PAGE_SIZE / sizeof(__m256i); i += 4) {
		__m256i a = _mm256_loadu_si256(s + i), b = _mm256_loadu_si256(s + i + 1);
		__m256i c = _mm256_loadu_si256(s + i + 2), e = _mm256_loadu_si256(s + i + 3);

		_mm256_stream_si256(d + i, a);
		_mm256_stream_si256(d + i + 1, b);
		_mm256_stream_si256(d + i + 2, c);
		_mm256_stream_si256(d + i + 3, e);
	}
}

static void stream_page_sse2(void *dst, const void *src)
{
	__m128i *d = dst;
	const __m128i *s = src;

	for (size_t i = 0; i < PM_PAGE_SIZE / sizeof(__m128i); i += 4) {
		__m128i a = _mm_loadu_si128(s + i), b = _mm_loadu_si128(s + i + 1);
		__m128i c = _mm_loadu_si128(s + i + 2), e = _mm_loadu_si128(s + i + 3);

		_mm_stream_si128(d + i, a);
		_mm_stream_si128(d + i + 1, b);
		_mm_stream_si128(d + i + 2, c);
		_mm_stream_si128(d + i + 3, e);
	}
}

static void copy_range(const struct page_copy_item *items, size_t n, bool stream)
{
	if (!stream) {
		for (size_t i = 0; i < n; i++)
			memcpy(items[i].dst, items[i].src, PM_PAGE_SIZE);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (have_avx2)
			stream_page_avx2(items[i].dst, items[i].src);
		else
			stream_page_sse2(items[i].dst, items[i].src);
	}
	_mm_sfence(); /* streamed stores are weakly ordered: done before anyone reads them */
}
#else
static void copy_range(const struct page_copy_item *items, size_t n, bool stream)
{
	(void)stream;
	for (size_t i = 0; i < n; i++)
		memcpy(items[i].dst, items[i].src, PM_PAGE_SIZE);
}
#endif

/* Take chunks of the current job until none is left; returns the pages this thread copied. */
static size_t copy_chunks(struct copy_crew *c, bool helper)
{
	size_t mine = 0;

	for (;;) {
		size_t i = __atomic_fetch_add(&c->next, CHUNK_PAGES, __ATOMIC_RELAXED), k;

		if (i >= c->n_items)
			return mine;
		if (c->claimed_hook)
			c->claimed_hook(i, helper);
		k = MIN((size_t)CHUNK_PAGES, c->n_items - i);
		copy_range(c->items + i, k, c->stream);
		__atomic_store_n(&c->chunk_done[i / CHUNK_PAGES], 1, __ATOMIC_RELEASE);
		mine += k;
	}
}

static void *crew_thread(void *userdata)
{
	struct copy_crew *c = userdata;
	uint64_t seen = 0;
	size_t mine;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->stop && c->generation == seen)
			pthread_cond_wait(&c->wake, &c->lock);
		if (c->stop)
			break;
		seen = c->generation;
		pthread_mutex_unlock(&c->lock);
		mine = copy_chunks(c, true);
		pthread_mutex_lock(&c->lock);
		c->working--;
		c->done_pages += mine;
		if (mine && c->done_pages == c->n_items)
			pthread_cond_signal(&c->done);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void init_monotonic_cond(pthread_cond_t *cond)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &a);
	pthread_condattr_destroy(&a);
}

static unsigned default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : (unsigned)MIN(n, 4L);
}

int copy_crew_new(unsigned threads, struct copy_crew **ret)
{
	struct copy_crew *c;
	int r;

#if defined(__x86_64__)
	have_avx2 = __builtin_cpu_supports("avx2");
#endif
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->n_threads = 1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->wake, NULL);
	init_monotonic_cond(&c->done);
	threads = MIN(threads ? threads : default_threads(), (unsigned)CREW_MAX);
	if (threads > 1) {
		/* one chunk per helper: a helper holds at most one at a time */
		size_t spare = (size_t)(threads - 1) * CHUNK_PAGES * PM_PAGE_SIZE;

		if (posix_memalign((void **)&c->spare, PM_PAGE_SIZE, spare) != 0) {
			copy_crew_free(c);
			return -ENOMEM;
		}
		memset(c->spare, 0, spare); /* faulted in now, not in a pause */
	}
	while (c->n_threads < threads) {
		r = pthread_create(&c->threads[c->n_threads - 1], NULL, crew_thread, c);
		if (r != 0) {
			copy_crew_free(c);
			return -r;
		}
		c->n_threads++;
	}
	*ret = c;
	return 0;
}

struct copy_crew *copy_crew_free(struct copy_crew *c)
{
	if (!c)
		return NULL;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_broadcast(&c->wake);
	pthread_mutex_unlock(&c->lock);
	for (unsigned i = 0; i + 1 < c->n_threads; i++)
		pthread_join(c->threads[i], NULL);
	pthread_cond_destroy(&c->done);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	free(c->chunk_done);
	free(c->spare);
	free(c);
	return NULL;
}

void copy_crew_set_claimed_hook(struct copy_crew *c, void (*hook)(size_t first, bool helper))
{
	c->claimed_hook = hook;
}

unsigned copy_crew_threads(const struct copy_crew *c)
{
	return c->n_threads;
}

/* Wait until no helper is still on the last job (its pages, its chunk flags). */
static void wait_helpers_locked(struct copy_crew *c)
{
	while (c->working > 0) {
		pthread_mutex_unlock(&c->lock);
		sched_yield();
		pthread_mutex_lock(&c->lock);
	}
}

void copy_crew_quiesce(struct copy_crew *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	wait_helpers_locked(c);
	pthread_mutex_unlock(&c->lock);
}

/* A flag per chunk of an n-page job; called with no helper working. */
static int ensure_chunk_flags(struct copy_crew *c, size_t n)
{
	size_t chunks = (n + CHUNK_PAGES - 1) / CHUNK_PAGES;
	uint8_t *f;

	if (chunks > c->chunk_cap) {
		f = realloc(c->chunk_done, chunks);
		if (!f)
			return -ENOMEM;
		c->chunk_done = f;
		c->chunk_cap = chunks;
	}
	memset(c->chunk_done, 0, chunks);
	return 0;
}

static uint64_t monotonic_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Wait for every page until deadline (usec, CLOCK_MONOTONIC; 0: no deadline). */
static bool wait_done_locked(struct copy_crew *c, size_t n, uint64_t deadline)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline / 1000000),
			       .tv_nsec = (long)(deadline % 1000000) * 1000 };

	while (c->done_pages < n) {
		if (!deadline)
			pthread_cond_wait(&c->done, &c->lock);
		else if (pthread_cond_timedwait(&c->done, &c->lock, &ts) == ETIMEDOUT)
			return c->done_pages >= n;
	}
	return true;
}

/*
 * The chunks helpers took and have not finished (one at most per helper: descheduled, most
 * likely) are copied again by the caller into the spare area; moved[] says which. The
 * helper's own copy still lands, later, where the job said, and nobody reads it there.
 */
static size_t take_over_chunks(struct copy_crew *c, struct page_copy_moved *moved)
{
	size_t chunks = (c->n_items + CHUNK_PAGES - 1) / CHUNK_PAGES, k = 0, left = 0;
	struct page_copy_item redo[CHUNK_PAGES];

	for (size_t ch = 0; ch < chunks; ch++)
		left += !__atomic_load_n(&c->chunk_done[ch], __ATOMIC_ACQUIRE);
	if (left > c->n_threads - 1) {
		/* more than the helpers can hold: not a descheduled helper; wait for them */
		wait_done_locked(c, c->n_items, 0);
		return 0;
	}
	for (size_t ch = 0; ch < chunks && k < left; ch++) {
		size_t first = ch * CHUNK_PAGES, n = MIN((size_t)CHUNK_PAGES, c->n_items - first);
		uint8_t *dst = c->spare + k * CHUNK_PAGES * PM_PAGE_SIZE;

		if (__atomic_load_n(&c->chunk_done[ch], __ATOMIC_ACQUIRE))
			continue;
		for (size_t i = 0; i < n; i++)
			redo[i] = (struct page_copy_item){ .dst = dst + i * PM_PAGE_SIZE,
							   .src = c->items[first + i].src };
		copy_range(redo, n, c->stream);
		moved[k++] = (struct page_copy_moved){ .first = first, .n = n, .dst = dst };
	}
	return k;
}

static size_t run_job(struct copy_crew *c, const struct page_copy_item *items, size_t n,
		      unsigned flags, struct page_copy_moved *moved)
{
	bool stream = (flags & COPY_STREAM) || n >= STREAM_MIN_PAGES;
	uint64_t t0, grace, mine_chunks;
	size_t mine, k = 0;

	if (c->n_threads == 1 || n < CREW_MIN_PAGES) {
		/* a helper late for the last job may still write where this one copies */
		copy_crew_quiesce(c);
		copy_range(items, n, stream);
		return 0;
	}
	pthread_mutex_lock(&c->lock);
	/* a helper late for the last job must not take chunks of this one for that one */
	wait_helpers_locked(c);
	if (ensure_chunk_flags(c, n) < 0) {
		pthread_mutex_unlock(&c->lock);
		copy_range(items, n, stream); /* alone, then */
		return 0;
	}
	c->items = items;
	c->n_items = n;
	c->stream = stream;
	c->next = 0;
	c->done_pages = 0;
	c->working = c->n_threads - 1;
	c->generation++;
	pthread_cond_broadcast(&c->wake);
	pthread_mutex_unlock(&c->lock);

	t0 = monotonic_usec();
	mine = copy_chunks(c, false);
	mine_chunks = MAX((mine + CHUNK_PAGES - 1) / CHUNK_PAGES, (uint64_t)1);
	/* a helper on its CPU finishes its chunk in about the time the caller took for one */
	grace = MAX((monotonic_usec() - t0) / mine_chunks * 4, (uint64_t)TAKEOVER_GRACE_MIN_USEC);

	/* done when every page is, not when every helper has woken: a late one finds nothing */
	pthread_mutex_lock(&c->lock);
	c->done_pages += mine;
	if (!wait_done_locked(c, n, moved ? monotonic_usec() + grace : 0))
		k = take_over_chunks(c, moved);
	pthread_mutex_unlock(&c->lock);
	return k;
}

void copy_crew_pages(struct copy_crew *c, const struct page_copy_item *items, size_t n,
		     unsigned flags)
{
	(void)run_job(c, items, n, flags, NULL);
}

size_t copy_crew_stage(struct copy_crew *c, const struct page_copy_item *items, size_t n,
		       struct page_copy_moved moved[COPY_MOVED_MAX])
{
	return run_job(c, items, n, 0, moved);
}
