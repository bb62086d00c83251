// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "macro.h"
#include "random-util.h"
#include "policy.h"

static const char *const names[_POLICY_MAX] = {
	[POLICY_VPM] = "vpm", [POLICY_STATIC] = "static", [POLICY_RANDOM] = "random",
	[POLICY_LRU] = "lru", [POLICY_ORACLE] = "oracle",
};

const char *policy_kind_to_string(enum policy_kind k)
{
	return k < _POLICY_MAX ? names[k] : NULL;
}

int policy_kind_from_string(const char *s)
{
	for (int k = 0; k < _POLICY_MAX; k++)
		if (streq(s, names[k]))
			return k;
	return -EINVAL;
}

uint64_t policy_dram_share(uint64_t n_pages, double ratio)
{
	uint64_t pm;

	if (!(ratio >= 1.0))
		return 0;
	pm = (uint64_t)ceil((double)n_pages / ratio);
	return n_pages - MIN(pm, n_pages);
}

struct candidate {
	double score;
	uint64_t gfn;
};

static int by_score(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;

	if (x->score != y->score)
		return x->score < y->score ? -1 : 1;
	return x->gfn < y->gfn ? -1 : x->gfn > y->gfn;
}

double policy_score(struct policy *p, const struct pagetable *pt, uint64_t g)
{
	switch (p->kind) {
	case POLICY_VPM:
		/*
		 * write-hot pages coalesce their writes in DRAM; reads cost less on PM; among
		 * pages touched every epoch, the sampled frequency tells how often
		 */
		return pt_freq(pt, g) / 8.0 + pt_access_count(pt, g) + 2.0 * pt_dirty_count(pt, g);
	case POLICY_LRU:
		/* the most recently accessed is the hottest */
		return -(double)pt_last_access(pt, g);
	case POLICY_ORACLE:
		return p->weight ? p->weight(p->weight_data, g) : 0;
	case POLICY_RANDOM:
		return (double)(splitmix64(&p->rng) >> 11);
	case POLICY_STATIC:
	default:
		/* pages whose first touch put them on PM go back there first */
		return pt_test(pt, g, PT_HOME_PM) ? 0 : 1;
	}
}

bool policy_swaps(const struct policy *p)
{
	return p->kind == POLICY_VPM || p->kind == POLICY_LRU || p->kind == POLICY_ORACLE;
}

/* The pages of a tier, sorted by score (ascending), the best max of them into out. */
static size_t pick(struct policy *p, const struct pagetable *pt, enum pt_tier tier, bool hottest,
		   size_t max, uint64_t *out)
{
	struct candidate *c;
	size_t n = 0;

	if (max == 0 || pt->count[tier] == 0)
		return 0;
	c = malloc(pt->count[tier] * sizeof(*c));
	if (!c)
		return 0;
	for (uint64_t g = 0; g < pt->n_pages && n < pt->count[tier]; g++)
		if (pt_tier(pt, g) == tier) {
			double sc = policy_score(p, pt, g);

			c[n++] = (struct candidate){ .score = hottest ? -sc : sc, .gfn = g };
		}
	qsort(c, n, sizeof(*c), by_score);
	n = MIN(n, max);
	for (size_t i = 0; i < n; i++)
		out[i] = c[i].gfn;
	free(c);
	return n;
}

size_t policy_pick_demotions(struct policy *p, const struct pagetable *pt, size_t max,
			     uint64_t *out)
{
	return pick(p, pt, PT_TIER_DRAM, false, max, out);
}

size_t policy_pick_promotions(struct policy *p, const struct pagetable *pt, size_t max,
			      uint64_t *out)
{
	return pick(p, pt, PT_TIER_PM, true, max, out);
}
