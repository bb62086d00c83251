/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VPM_COMMON_RANDOM_UTIL_H
#define VPM_COMMON_RANDOM_UTIL_H

#include <stdint.h>

/* splitmix64: a fast, well-mixed deterministic stream from a 64-bit state (not for secrets). */
static inline uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

#endif
