// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <stdlib.h>

#include "bitmap.h"
#include "macro.h"
#include "pagetable.h"

#define HISTORY_MASK (UINT64_C(0xffffff) << PT_ACCESS_SHIFT) /* histories and frequency */

int pt_init(struct pagetable *pt, uint64_t n_pages)
{
	*pt = (struct pagetable){ .n_pages = n_pages };
	if (n_pages == 0 || n_pages > (UINT64_C(1) << 40))
		return -EINVAL;
	pt->pte = calloc(n_pages, sizeof(pt->pte[0]));
	if (!pt->pte)
		return -ENOMEM;
	pt->count[PT_TIER_NONE] = n_pages;
	return 0;
}

void pt_done(struct pagetable *pt)
{
	free(pt->pte);
	pt->pte = NULL;
	pt->n_pages = 0;
}

void pt_place(struct pagetable *pt, uint64_t gfn, enum pt_tier tier, uint32_t frame,
	      uint64_t flags)
{
	uint64_t old = pt->pte[gfn];

	pt->count[(old & PT_TIER_MASK) >> PT_TIER_SHIFT]--;
	pt->count[tier]++;
	pt->pte[gfn] = (old & (HISTORY_MASK | PT_HOME_PM)) | ((uint64_t)tier << PT_TIER_SHIFT) |
		       (tier == PT_TIER_NONE ? 0 : frame) |
		       (flags & PT_FLAGS);
}

void pt_set_flags(struct pagetable *pt, uint64_t gfn, uint64_t set, uint64_t clear)
{
	pt->pte[gfn] = (pt->pte[gfn] | (set & PT_FLAGS)) & ~(clear & PT_FLAGS);
}

/* bit i of an optional bitmap (none: clear) */
static bool bit(const uint64_t *bitmap, uint64_t i)
{
	return bitmap && bit_test(bitmap, i);
}

void pt_epoch_shift(struct pagetable *pt, const uint64_t *dirty, const uint64_t *accessed)
{
	for (uint64_t g = 0; g < pt->n_pages; g++) {
		uint64_t e = pt->pte[g];
		uint64_t acc = (e >> PT_ACCESS_SHIFT) & 0xff, dh = (e >> PT_DIRTY_H_SHIFT) & 0xff;
		bool d = bit(dirty, g), a = bit(accessed, g) || d;

		acc = ((acc << 1) | a) & 0xff;
		dh = ((dh << 1) | d) & 0xff;
		e &= ~(HISTORY_MASK & ~(UINT64_C(0xff) << PT_FREQ_SHIFT));
		e |= acc << PT_ACCESS_SHIFT | dh << PT_DIRTY_H_SHIFT;
		if (d)
			e |= PT_DIRTY;
		pt->pte[g] = e;
	}
}

unsigned pt_access_count(const struct pagetable *pt, uint64_t gfn)
{
	return (unsigned)__builtin_popcountll((pt->pte[gfn] >> PT_ACCESS_SHIFT) & 0xff);
}

unsigned pt_dirty_count(const struct pagetable *pt, uint64_t gfn)
{
	return (unsigned)__builtin_popcountll((pt->pte[gfn] >> PT_DIRTY_H_SHIFT) & 0xff);
}

unsigned pt_last_access(const struct pagetable *pt, uint64_t gfn)
{
	uint64_t acc = (pt->pte[gfn] >> PT_ACCESS_SHIFT) & 0xff;

	return acc ? (unsigned)__builtin_ctzll(acc) : PT_HISTORY_EPOCHS;
}

void pt_sample_accessed(struct pagetable *pt, const uint64_t *accessed, bool age)
{
	for (uint64_t g = 0; age && g < pt->n_pages; g++) {
		uint64_t freq = pt->pte[g] >> PT_FREQ_SHIFT;

		pt->pte[g] -= (freq >> 3) << PT_FREQ_SHIFT;
	}
	for (uint64_t w = 0; w < (pt->n_pages + 63) / 64; w++) {
		uint64_t bits = accessed[w];

		while (bits) {
			uint64_t g = w * 64 + (uint64_t)__builtin_ctzll(bits);

			bits &= bits - 1;
			uint64_t freq;

			if (g >= pt->n_pages)
				continue;
			freq = MIN((pt->pte[g] >> PT_FREQ_SHIFT) + PT_FREQ_STEP, UINT64_C(255));
			pt->pte[g] = (pt->pte[g] & ~(UINT64_C(0xff) << PT_FREQ_SHIFT)) |
				     freq << PT_FREQ_SHIFT;
		}
	}
}
