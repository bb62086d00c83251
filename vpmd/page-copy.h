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
