/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Placement policy: which of a VM's DRAM-backed pages go to PM frames when its DRAM share is
 * exceeded (at an epoch boundary), given the pages' access and dirty history (the page table's,
 * or for vpm its own, from the samples the engine gives it). The ratio sets how many pages may
 * live in DRAM; the policy picks which.
 *
 *   vpm     the pages with the highest access rate stay in DRAM. A page's heat counts the
 *           accessed-bit samples that found it accessed and the epochs that found it written
 *           (a write counts twice: on PM it costs a fault and a promotion), decayed with a
 *           time constant of 2 s: the rate of the last seconds, not of the last few epochs.
 *           Hysteresis: a page a write fault brought to DRAM (a visitor) goes back to PM
 *           first unless its heat is clearly higher than that of the coldest page the
 *           policy placed in DRAM, and a PM page takes a DRAM page's place only when clearly
 *           hotter; clearly = by more than three times the sampling noise (the square root
 *           of the two counts). So pages of equal rate (an append-only log's, the uniform
 *           leaves of a B-tree) are not exchanged back and forth; and a page whose count is
 *           not clearly above none ranks as cold as an untouched page, equals in gfn order
 *           (the same at every boundary). Its state: 5 bytes a page.
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
	/* vpm: what policy_observe() saw of each page, allocated at the first observation */
	uint64_t n_pages;
	float *heat;      /* events, each counted as exp((t - t0) / tau) at its time t */
	uint8_t *seen;    /* per page: its tier at the last boundary, whether it is a visitor */
	uint64_t t0_usec; /* of the heat's scale */
	double scale;     /* exp((now - t0) / tau), now = the last observation */
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

/*
 * Whether putting PM page hot in DRAM in place of DRAM page cold is worth a swap (both
 * migrations): hot scores higher, for vpm by more than the sampling noise.
 */
bool policy_prefers(struct policy *p, const struct pagetable *pt, uint64_t hot, uint64_t cold);

/*
 * An accessed-bit sample (one bit per page) taken at now_usec, with the pages written in the
 * epoch when the sample is an epoch boundary's harvest (dirty, else NULL). vpm keeps its
 * heat from these; other policies keep nothing (a VM that leaves vpm frees its state here).
 * -ENOMEM when the state cannot be allocated (the policy then ranks pages as if unseen).
 */
int policy_observe(struct policy *p, const struct pagetable *pt, const uint64_t *accessed,
		   const uint64_t *dirty, uint64_t now_usec);

/*
 * At an epoch boundary, before the rankings: pages that came to DRAM from PM since the last
 * boundary without policy_promoted() (a write fault brought them) are visitors.
 */
void policy_boundary(struct policy *p, const struct pagetable *pt);

/* The engine moved gfn to DRAM because the policy picked it: it is no visitor. */
void policy_promoted(struct policy *p, uint64_t gfn);

/* Free the policy's state (the policy stays usable: a new observation starts it again). */
void policy_done(struct policy *p);

#endif
