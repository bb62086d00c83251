/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Bitmaps of uint64_t words: bit i is bit i % 64 of word i / 64. */
#ifndef VPM_COMMON_BITMAP_H
#define VPM_COMMON_BITMAP_H

#include <stdbool.h>
#include <stdint.h>

static inline bool bit_test(const uint64_t *b, uint64_t i)
{
	return (b[i / 64] >> (i % 64)) & 1;
}

static inline void bit_set(uint64_t *b, uint64_t i)
{
	b[i / 64] |= UINT64_C(1) << (i % 64);
}

static inline void bit_clear(uint64_t *b, uint64_t i)
{
	b[i / 64] &= ~(UINT64_C(1) << (i % 64));
}

#endif
