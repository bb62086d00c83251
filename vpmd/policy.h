/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Placement policy: which of a VM's DRAM-backed pages go to PM frames when its DRAM share is
 * exceeded (at an epoch boundary), given the page table's access and dirty history. The ratio
 * sets how many pages may live in DRAM; the policy picks which.
 *
 *   vpm     write-hot pages stay in DRAM (their writes coalesce per epoch); read-mostly and
 *           cold pages go to PM first: the lowest score 2 x dirty epochs + access epochs +
 *           the sampled access frequency / 8 (which separates pages touched every epoch)
 *   static  first touch decides: pages move only as the ratio requires (a baseline)
 *   random  uniformly random DRAM pages (a baseline)
 *   lru     the least recently accessed DRAM pages (a baseline)
 *   oracle  the pages the workload truly touches least (benchmarks: knows the weights)
 */
#ifndef VPMD_POLICY_H
#define VPMD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pagetable.h"

enum policy_kind {
	POLICY_VPM,
	POLICY_STATIC,
	POLICY_RANDOM,
	POLICY_LRU,
	POLICY_ORACLE,
	_POLICY_MAX,
};

const char *policy_kind_to_string(enum policy_kind k);
int policy_kind_from_string(const char *s);

/* The oracle's knowledge: expected touches of a page per operation. */
typedef double (*policy_weight_fn)(void *userdata, uint64_t gfn);

struct policy {
	enum policy_kind kind;
	uint64_t rng;
	policy_weight_fn weight; /* oracle only */
	void *weight_data;
};

/* DRAM pages a VM of n_pages may keep at ratio r (>= 1): all but the n/r on PM frames. */
uint64_t policy_dram_share(uint64_t n_pages, double ratio);

/* How much the policy wants a page in DRAM: higher is hotter. */
double policy_score(struct policy *p, const struct pagetable *pt, uint64_t gfn);

/*
 * Choose up to max DRAM pages to demote, coldest first, into out; returns how many. The
 * engine asks at an epoch boundary, after the commit, when every DRAM page may go (a page
 * written since is dropped when the next pause finds it dirty). static picks the pages whose
 * first touch put them on PM (PT_HOME_PM) before any other; random picks at random.
 */
size_t policy_pick_demotions(struct policy *p, const struct pagetable *pt, size_t max,
			     uint64_t *out);

/* Choose up to max PM pages to promote, hottest first, into out; returns how many. */
size_t policy_pick_promotions(struct policy *p, const struct pagetable *pt, size_t max,
			      uint64_t *out);

/* Whether the policy exchanges hot PM pages for cold DRAM pages once the ratio is met. */
bool policy_swaps(const struct policy *p);

#endif
