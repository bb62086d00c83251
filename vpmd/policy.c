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

static bool demotable(const struct pagetable *pt, uint64_t g)
{
	return pt_tier(pt, g) == PT_TIER_DRAM && pt_test(pt, g, PT_COMMITTED) &&
	       !pt_test(pt, g, PT_DIRTY);
}

struct candidate {
	double score; /* lower goes first */
	uint64_t gfn;
};

static int by_score(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;

	if (x->score != y->score)
		return x->score < y->score ? -1 : 1;
	return x->gfn < y->gfn ? -1 : x->gfn > y->gfn;
}

static double score(struct policy *p, const struct pagetable *pt, uint64_t g)
{
	switch (p->kind) {
	case POLICY_VPM:
		return 4.0 * pt_dirty_count(pt, g) + pt_access_count(pt, g);
	case POLICY_LRU:
		/* older last access first: invert the "epochs since" count */
		return -(double)pt_last_access(pt, g);
	case POLICY_ORACLE:
		return p->weight ? p->weight(p->weight_data, g) : 0;
	case POLICY_RANDOM:
		return (double)(splitmix64(&p->rng) >> 11);
	case POLICY_STATIC:
	default:
		return 0;
	}
}

size_t policy_pick_demotions(struct policy *p, const struct pagetable *pt, size_t max,
			     uint64_t *out)
{
	struct candidate *c;
	size_t n = 0;

	if (p->kind == POLICY_STATIC || max == 0)
		return 0;
	c = malloc(pt->count[PT_TIER_DRAM] * sizeof(*c) + sizeof(*c));
	if (!c)
		return 0;
	for (uint64_t g = 0; g < pt->n_pages; g++)
		if (demotable(pt, g))
			c[n++] = (struct candidate){ .score = score(p, pt, g), .gfn = g };
	qsort(c, n, sizeof(*c), by_score);
	n = MIN(n, max);
	for (size_t i = 0; i < n; i++)
		out[i] = c[i].gfn;
	free(c);
	return n;
}
