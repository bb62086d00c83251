// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
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
#define CREW_MIN_PAGES  1024
/* below this many pages the copy likely stays in the caches: plain stores are faster */
#define STREAM_MIN_PAGES 1024

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
	size_t next; /* atomic: the next chunk to take */
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
static size_t copy_chunks(struct copy_crew *c)
{
	size_t mine = 0;

	for (;;) {
		size_t i = __atomic_fetch_add(&c->next, CHUNK_PAGES, __ATOMIC_RELAXED), k;

		if (i >= c->n_items)
			return mine;
		k = MIN((size_t)CHUNK_PAGES, c->n_items - i);
		copy_range(c->items + i, k, c->stream);
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
		mine = copy_chunks(c);
		pthread_mutex_lock(&c->lock);
		c->working--;
		c->done_pages += mine;
		if (mine && c->done_pages == c->n_items)
			pthread_cond_signal(&c->done);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
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
	pthread_cond_init(&c->done, NULL);
	threads = MIN(threads ? threads : default_threads(), (unsigned)CREW_MAX);
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
	free(c);
	return NULL;
}

unsigned copy_crew_threads(const struct copy_crew *c)
{
	return c->n_threads;
}

void copy_crew_pages(struct copy_crew *c, const struct page_copy_item *items, size_t n,
		     unsigned flags)
{
	bool stream = (flags & COPY_STREAM) || n >= STREAM_MIN_PAGES;
	size_t mine;

	if (c->n_threads == 1 || n < CREW_MIN_PAGES) {
		copy_range(items, n, stream);
		return;
	}
	pthread_mutex_lock(&c->lock);
	/* a helper late for the last job must not take chunks of this one for that one */
	while (c->working > 0) {
		pthread_mutex_unlock(&c->lock);
		sched_yield();
		pthread_mutex_lock(&c->lock);
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

	mine = copy_chunks(c);

	/* done when every page is, not when every helper has woken: a late one finds nothing */
	pthread_mutex_lock(&c->lock);
	c->done_pages += mine;
	while (c->done_pages < n)
		pthread_cond_wait(&c->done, &c->lock);
	pthread_mutex_unlock(&c->lock);
}
