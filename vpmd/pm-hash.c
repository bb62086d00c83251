// SPDX-License-Identifier: LGPL-2.1-or-later
#include <stdlib.h>

#define PM_HASH_IMPL_NAME pm_hash_generic
#include "pm-hash-impl.h"

struct pm_hasher {
	const struct pm_hash_impl *impl;
	void *state;
};

static const struct pm_hash_impl *pick(void)
{
	static const struct pm_hash_impl *impl;

	if (!impl)
		impl = __builtin_cpu_supports("avx2") ? &pm_hash_avx2 : &pm_hash_generic;
	return impl;
}

struct pm_hasher *pm_hasher_new(void)
{
	struct pm_hasher *h = malloc(sizeof(*h));

	if (!h)
		return NULL;
	h->impl = pick();
	/* XXH3_state_t wants 64-byte alignment */
	h->state = aligned_alloc(64, (h->impl->state_size + 63) / 64 * 64);
	if (!h->state) {
		free(h);
		return NULL;
	}
	return h;
}

void pm_hasher_free(struct pm_hasher *h)
{
	if (h) {
		free(h->state);
		free(h);
	}
}

void pm_hasher_reset(struct pm_hasher *h, uint64_t seed)
{
	h->impl->reset(h->state, seed);
}

void pm_hasher_update(struct pm_hasher *h, const void *buf, size_t len)
{
	h->impl->update(h->state, buf, len);
}

uint64_t pm_hasher_digest(struct pm_hasher *h)
{
	return h->impl->digest(h->state);
}

uint64_t pm_hash_oneshot(const void *buf, size_t len, uint64_t seed)
{
	return pick()->oneshot(buf, len, seed);
}
