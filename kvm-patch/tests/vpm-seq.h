/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vpm-seq.h - the write pattern of vpm-vmm's guest and the checker of an image of its vPM
 * region, for vpm-vmm.c, vpm-seq-test.c and any program that reads vpmd's durable image
 * of the region as a byte array.  Header only, plain C99, no dependencies.
 *
 * Layout: the region has P = pm_size / 4096 pages and W = words_per_page (1 to 1024)
 * 32-bit slots per page, N = P * W slots in all.  Slot i (0 <= i < N) is the
 * little-endian 32-bit word at byte offset
 *
 *	(i % P) * 4096 + (i / P) * 4
 *
 * so consecutive slots are on consecutive pages, and words W..1023 of every page are
 * never written (they stay 0).
 *
 * Sequence: the guest stores s = 1, 2, 3, ... into slot (s - 1) % N, one 32-bit store
 * each, in that order.  Before storing s it checks that the slot holds s - N (0 while
 * s <= N).  So after the writes 1..S slot i holds the largest s <= S with
 * (s - 1) % N == i, or 0 if there is none (S < i + 1): seq_expected().  s never wraps:
 * the guest stops at 2^32 - 1.
 *
 * seq_check_snapshot() decides whether an image is exactly that state for some S.  S is
 * then the largest value in the image (slot (S - 1) % N holds S), so it is unique, and
 * every slot and every byte outside the slots must match; there is no tolerance.  An
 * image whose pages come from different moments fails unless those pages did not change
 * in between (then it is the later state), and so do torn slots, values from the future,
 * values in the wrong slot and garbage.
 */
#ifndef VPM_SEQ_H
#define VPM_SEQ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SEQ_PAGE_SIZE	4096u
#define SEQ_MAX_WORDS	(SEQ_PAGE_SIZE / 4)	/* words per page */
#define SEQ_MAX		0xffffffffu		/* the last value the guest stores */

/* seq_layout_ok - are pm_size and words_per_page a valid layout? */
static inline int seq_layout_ok(uint64_t pm_size, unsigned int words_per_page)
{
	return pm_size && pm_size % SEQ_PAGE_SIZE == 0 && words_per_page >= 1 &&
	       words_per_page <= SEQ_MAX_WORDS;
}

/* seq_pages - P, the number of pages of the region. */
static inline uint64_t seq_pages(uint64_t pm_size)
{
	return pm_size / SEQ_PAGE_SIZE;
}

/* seq_slots - N, the number of slots. */
static inline uint64_t seq_slots(uint64_t pm_size, unsigned int words_per_page)
{
	return seq_pages(pm_size) * words_per_page;
}

/* seq_slot_offset - the byte offset of slot i in a region of `pages` pages. */
static inline uint64_t seq_slot_offset(uint64_t pages, uint64_t i)
{
	return (i % pages) * SEQ_PAGE_SIZE + (i / pages) * 4;
}

/* seq_slot_of - the slot that value s (>= 1) is stored in. */
static inline uint64_t seq_slot_of(uint64_t slots, uint32_t s)
{
	return ((uint64_t)s - 1) % slots;
}

/* seq_expected - what slot i holds after the writes 1..last. */
static inline uint32_t seq_expected(uint64_t slots, uint64_t i, uint32_t last)
{
	if ((uint64_t)last < i + 1)
		return 0;
	return (uint32_t)(i + 1 + ((uint64_t)last - (i + 1)) / slots * slots);
}

/* seq_load, seq_store - a little-endian 32-bit word, at any alignment. */
static inline uint32_t seq_load(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline void seq_store(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/*
 * seq_check_snapshot - is region (pm_size bytes) exactly the state after the writes
 * 1..S for some S?  0 if so, with S in *ret_last; -1 if not, with *ret_last the S it was
 * compared against (the largest value found, 0 if it was refused before that) and, if
 * why is not NULL, a description of the first bad slot (lowest slot index) or byte in
 * why (why_size bytes, 128 are enough).  An invalid layout gives -1 too.  ret_last may
 * be NULL.
 *
 * Three passes: every non-zero slot must hold a value of that slot ((v - 1) % N == i);
 * every byte outside the slots must be 0; every slot must hold seq_expected(N, i, S)
 * with S the largest value.
 */
static inline int seq_check_snapshot(const uint8_t *region, uint64_t pm_size,
				     unsigned int words_per_page, uint32_t *ret_last,
				     char *why, size_t why_size)
{
	uint64_t pages, slots, i, p, off;
	uint32_t v, want, last = 0;

	if (ret_last)
		*ret_last = 0;
	if (!seq_layout_ok(pm_size, words_per_page)) {
		if (why)
			snprintf(why, why_size, "invalid layout: pm-size %llu, %u words per page",
				 (unsigned long long)pm_size, words_per_page);
		return -1;
	}
	pages = seq_pages(pm_size);
	slots = seq_slots(pm_size, words_per_page);

	for (i = 0; i < slots; i++) {
		off = seq_slot_offset(pages, i);
		v = seq_load(region + off);
		if (v && seq_slot_of(slots, v) != i) {
			if (why)
				snprintf(why, why_size, "slot %llu (offset 0x%llx) holds %u, "
					 "a value of slot %llu", (unsigned long long)i,
					 (unsigned long long)off, v,
					 (unsigned long long)seq_slot_of(slots, v));
			return -1;
		}
		if (v > last)
			last = v;
	}
	if (words_per_page < SEQ_MAX_WORDS) {
		for (p = 0; p < pages; p++) {
			for (off = words_per_page * 4; off < SEQ_PAGE_SIZE; off++) {
				if (region[p * SEQ_PAGE_SIZE + off]) {
					if (why)
						snprintf(why, why_size, "byte at offset 0x%llx, "
							 "outside the slots, is 0x%02x (want 0)",
							 (unsigned long long)(p * SEQ_PAGE_SIZE + off),
							 region[p * SEQ_PAGE_SIZE + off]);
					return -1;
				}
			}
		}
	}
	if (ret_last)
		*ret_last = last;
	for (i = 0; i < slots; i++) {
		off = seq_slot_offset(pages, i);
		v = seq_load(region + off);
		want = seq_expected(slots, i, last);
		if (v != want) {
			if (why)
				snprintf(why, why_size, "slot %llu (offset 0x%llx) holds %u, "
					 "expected %u (seq %u)", (unsigned long long)i,
					 (unsigned long long)off, v, want, last);
			return -1;
		}
	}
	return 0;
}

#endif /* VPM_SEQ_H */
