/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * XXH3-64 for log payloads, picked at run time: the AVX2 build of xxhash where the CPU has
 * it (about twice the throughput), the baseline x86-64 build elsewhere. Both compute the
 * same function, so pools move freely between hosts.
 */
#ifndef VPMD_PM_HASH_H
#define VPMD_PM_HASH_H

#include <stddef.h>
#include <stdint.h>

struct pm_hasher;

struct pm_hasher *pm_hasher_new(void);
void pm_hasher_free(struct pm_hasher *h);
void pm_hasher_reset(struct pm_hasher *h, uint64_t seed);
void pm_hasher_update(struct pm_hasher *h, const void *buf, size_t len);
uint64_t pm_hasher_digest(struct pm_hasher *h);
uint64_t pm_hash_oneshot(const void *buf, size_t len, uint64_t seed);

/* One implementation; pm-hash.c and pm-hash-avx2.c each provide one. */
struct pm_hash_impl {
	size_t state_size;
	void (*reset)(void *state, uint64_t seed);
	void (*update)(void *state, const void *buf, size_t len);
	uint64_t (*digest)(void *state);
	uint64_t (*oneshot)(const void *buf, size_t len, uint64_t seed);
};

extern const struct pm_hash_impl pm_hash_generic;
extern const struct pm_hash_impl pm_hash_avx2;

#endif
