/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Copying many guest pages fast, for the one copy an epoch pause must make (DESIGN.md,
 * "Epoch protocol": staging is all the work done while a VM is paused). Large sets are
 * copied with non-temporal stores (no read-for-ownership of the destination, no eviction of
 * the caches' working set) and shared with a small crew of copy threads: while a VM is paused
 * its vCPUs' cores are idle, so vpmd may use them. The threads only ever copy memory handed to
 * them; the engine stays single-threaded.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct page_copy_item {
	void *dst;        /* page-aligned */
	const void *src;  /* any alignment */
};

struct copy_crew;

/* Helpers started: threads - 1 (the caller copies too). threads 0: one per online CPU, up to 4. */
int copy_crew_new(unsigned threads, struct copy_crew **ret);
struct copy_crew *copy_crew_free(struct copy_crew *c);
unsigned copy_crew_threads(const struct copy_crew *c);

enum {
	/* always non-temporal stores: the destination is PM (no cache lines left to flush) */
	COPY_STREAM = 1 << 0,
};

/*
 * Copy n pages of PM_PAGE_SIZE; returns when all are copied (streamed stores fenced). Without
 * COPY_STREAM, small sets use plain stores (they likely stay in the caches).
 */
void copy_crew_pages(struct copy_crew *c, const struct page_copy_item *items, size_t n,
		     unsigned flags);

/* Wait until no helper copies for an earlier job (before freeing what it copied into). */
void copy_crew_quiesce(struct copy_crew *c);

/* Pages of a staging job copied elsewhere: items first..first + n - 1, one after another. */
struct page_copy_moved {
	size_t first;
	size_t n;
	void *dst;
};

#define COPY_MOVED_MAX 16 /* one per helper, at most */

/*
 * copy_crew_pages() for the copy of a pause, whose time is the guest's: the caller does not
 * wait for a helper the scheduler took off its CPU (a tick or more) but copies the chunk
 * that helper holds again, into a spare area of the crew, and returns how many such runs
 * moved[] names. Their data stays there until the next job of the crew; the helper's late
 * copy still lands where the item said, so that memory must stay allocated until
 * copy_crew_quiesce(), and what it holds is not the staged data.
 */
size_t copy_crew_stage(struct copy_crew *c, const struct page_copy_item *items, size_t n,
		       struct page_copy_moved moved[COPY_MOVED_MAX]);

/* Tests: called when the caller (helper false) or a helper takes the chunk starting at first. */
void copy_crew_set_claimed_hook(struct copy_crew *c, void (*hook)(size_t first, bool helper));
