/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The body of one xxhash build; included by pm-hash.c and pm-hash-avx2.c with their flags. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "pm-hash.h"

static void impl_reset(void *state, uint64_t seed)
{
	XXH3_64bits_reset_withSeed(state, seed);
}

static void impl_update(void *state, const void *buf, size_t len)
{
	XXH3_64bits_update(state, buf, len);
}

static uint64_t impl_digest(void *state)
{
	return XXH3_64bits_digest(state);
}

static uint64_t impl_oneshot(const void *buf, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(buf, len, seed);
}

const struct pm_hash_impl PM_HASH_IMPL_NAME = {
	.state_size = sizeof(XXH3_state_t),
	.reset = impl_reset,
	.update = impl_update,
	.digest = impl_digest,
	.oneshot = impl_oneshot,
};
