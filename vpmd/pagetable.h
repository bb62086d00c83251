/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The per-VM page table: where each guest PM page lives and how it was used recently, in one
 * 8-byte entry per page (the page table's whole per-page DRAM cost; the vpm policy keeps 5 more
 * bytes a page of access history, and the engine's per-boundary work lists are sized by pages).
 *
 *   bits  0-31  frame: index of the DRAM frame or PM frame backing the page
 *   bits 32-33  tier: none (the page is only in the device image), DRAM or PM
 *   bit  34     dirty: written in the current epoch (set by harvest, cleared by commit)
 *   bit  35     writable: mapped writable in the guest's second-level page table
 *   bit  36     committed: the frame's content equals the newest committed version
 *   bit  37     force: commit the page at the next epoch boundary even if it is not dirty
 *               (its PM frame is to be superseded, or vpmd adopted it after a restart)
 *   bit  38     home PM: its first touch placed it on a PM frame (the static policy's memory;
 *               kept when the page moves)
 *   bits 40-47  access history: one bit per recent epoch, newest in bit 40
 *   bits 48-55  dirty history: one bit per recent epoch, newest in bit 48
 *   bits 56-63  access frequency: +8 for every accessed-bit sample (several per epoch, on a
 *               timer, and one at every boundary) that found the page accessed, saturating;
 *               an eighth of it is forgotten at every timed sample, so it measures time, not
 *               epochs (a page accessed at every sample settles at 64)
 */
#ifndef VPMD_PAGETABLE_H
#define VPMD_PAGETABLE_H

#include <stdbool.h>
#include <stdint.h>

enum pt_tier {
	PT_TIER_NONE = 0,
	PT_TIER_DRAM = 1,
	PT_TIER_PM = 2,
};

#define PT_FRAME_MASK     UINT64_C(0xffffffff)
#define PT_TIER_SHIFT     32
#define PT_TIER_MASK      (UINT64_C(3) << PT_TIER_SHIFT)
#define PT_DIRTY          (UINT64_C(1) << 34)
#define PT_WRITABLE       (UINT64_C(1) << 35)
#define PT_COMMITTED      (UINT64_C(1) << 36)
#define PT_FORCE          (UINT64_C(1) << 37)
#define PT_HOME_PM        (UINT64_C(1) << 38)
#define PT_FLAGS          (PT_DIRTY | PT_WRITABLE | PT_COMMITTED | PT_FORCE | PT_HOME_PM)
#define PT_ACCESS_SHIFT   40
#define PT_DIRTY_H_SHIFT  48
#define PT_FREQ_SHIFT     56
#define PT_FREQ_STEP      8
#define PT_HISTORY_EPOCHS 8
#define PT_NO_FRAME       UINT32_MAX

struct pagetable {
	uint64_t n_pages;
	uint64_t *pte;
	uint64_t count[3]; /* pages per tier */
};

int pt_init(struct pagetable *pt, uint64_t n_pages);
void pt_done(struct pagetable *pt);

/* Bytes of DRAM the table takes per guest page, and in all. */
static inline uint64_t pt_bytes(const struct pagetable *pt)
{
	return pt->n_pages * sizeof(pt->pte[0]);
}

static inline enum pt_tier pt_tier(const struct pagetable *pt, uint64_t gfn)
{
	return (enum pt_tier)((pt->pte[gfn] & PT_TIER_MASK) >> PT_TIER_SHIFT);
}

static inline uint32_t pt_frame(const struct pagetable *pt, uint64_t gfn)
{
	return pt_tier(pt, gfn) == PT_TIER_NONE ? PT_NO_FRAME
						: (uint32_t)(pt->pte[gfn] & PT_FRAME_MASK);
}

static inline bool pt_test(const struct pagetable *pt, uint64_t gfn, uint64_t flag)
{
	return pt->pte[gfn] & flag;
}

/* Move a page to a tier and frame; flags other than history and home are replaced. */
void pt_place(struct pagetable *pt, uint64_t gfn, enum pt_tier tier, uint32_t frame,
	      uint64_t flags);
void pt_set_flags(struct pagetable *pt, uint64_t gfn, uint64_t set, uint64_t clear);

/*
 * At an epoch boundary: shift every page's histories by one epoch, entering the bits of the
 * harvested bitmaps (one bit per page; NULL = none); pages dirty in this epoch get PT_DIRTY.
 */
void pt_epoch_shift(struct pagetable *pt, const uint64_t *dirty, const uint64_t *accessed);

/* Count an access sample: the bits set in accessed (one per page) raise the frequency; age
 * (timed samples) forgets an eighth of every page's frequency first. */
void pt_sample_accessed(struct pagetable *pt, const uint64_t *accessed, bool age);
static inline unsigned pt_freq(const struct pagetable *pt, uint64_t gfn)
{
	return (unsigned)(pt->pte[gfn] >> PT_FREQ_SHIFT);
}

/* Epochs, of the last PT_HISTORY_EPOCHS, in which the page was accessed / written. */
unsigned pt_access_count(const struct pagetable *pt, uint64_t gfn);
unsigned pt_dirty_count(const struct pagetable *pt, uint64_t gfn);
/* Newest epoch (0 = the last one) in which the page was accessed, or PT_HISTORY_EPOCHS. */
unsigned pt_last_access(const struct pagetable *pt, uint64_t gfn);

#endif
