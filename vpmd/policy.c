// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "macro.h"
#include "random-util.h"
#include "policy.h"

/*
 * vpm's heat: a page's events (accessed-bit samples that found it accessed, epochs that
 * found it written) decayed with time constant HEAT_TAU_USEC, i.e. about the events of the
 * last 2 s: long enough that a page touched ~50 times a second is ranked within ~10 %, short
 * enough to follow a workload that changes in seconds. Kept scaled by exp((t - t0) / tau)
 * so that a sample adds to the pages it found and no pass over all pages decays them;
 * rebased when the scale grows large.
 */
#define HEAT_TAU_USEC 2e6
#define HEAT_REBASE   1e30
/* clearly hotter: by more than NOISE_Z standard deviations of the difference of two counts */
#define NOISE_Z 3.0

enum {
	SEEN_TIER = 3,    /* the page's tier at the last boundary */
	SEEN_VISITOR = 4, /* in DRAM because a write fault brought it there */
};

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
	int cls; /* sorted by cls, then score, then tie */
	double score;
	uint64_t tie;
	uint64_t gfn;
};

static int by_score(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;

	if (x->cls != y->cls)
		return x->cls < y->cls ? -1 : 1;
	if (x->score != y->score)
		return x->score < y->score ? -1 : 1;
	return x->tie < y->tie ? -1 : x->tie > y->tie;
}

/* A page's heat now, in events (about those of the last HEAT_TAU_USEC). */
static double heat(const struct policy *p, uint64_t g)
{
	return p->heat && g < p->n_pages ? (double)p->heat[g] / p->scale : 0;
}

static bool visitor(const struct policy *p, uint64_t g)
{
	return p->seen && g < p->n_pages && (p->seen[g] & SEEN_VISITOR);
}

/* Whether count a is higher than count b by more than their sampling noise. */
static bool clearly_above(double a, double b)
{
	return a - b > NOISE_Z * sqrt(a + b);
}

double policy_score(struct policy *p, const struct pagetable *pt, uint64_t g)
{
	switch (p->kind) {
	case POLICY_VPM:
		return heat(p, g);
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

bool policy_prefers(struct policy *p, const struct pagetable *pt, uint64_t hot, uint64_t cold)
{
	if (p->kind == POLICY_VPM)
		return clearly_above(heat(p, hot), heat(p, cold));
	return policy_score(p, pt, hot) > policy_score(p, pt, cold);
}

/*
 * Where a page ranks: its score; for vpm its heat, except that a count below NOISE_Z^2 is not
 * clearly above none (the noise of a count is its square root): such pages are all equally
 * cold, and among them the order is the gfn's, the same at every boundary, so that noise does
 * not reshuffle which of them stay in DRAM (the highest gfns go first).
 */
static double rank_score(struct policy *p, const struct pagetable *pt, uint64_t g)
{
	double h;

	if (p->kind != POLICY_VPM)
		return policy_score(p, pt, g);
	h = heat(p, g);
	return h < NOISE_Z * NOISE_Z ? 0 : h;
}

/*
 * vpm's DRAM ranking: visitors first (a write fault brought them; back to PM they go, where
 * they were), unless clearly hotter than the coldest page the policy placed in DRAM, which
 * makes them residents; then by heat.
 */
static void rank_visitors(struct policy *p, struct candidate *c, size_t n)
{
	double coldest = INFINITY;

	for (size_t i = 0; i < n; i++)
		if (!visitor(p, c[i].gfn))
			coldest = MIN(coldest, heat(p, c[i].gfn));
	for (size_t i = 0; i < n; i++) {
		if (!visitor(p, c[i].gfn))
			continue;
		if (coldest < INFINITY && clearly_above(heat(p, c[i].gfn), coldest))
			p->seen[c[i].gfn] &= (uint8_t)~SEEN_VISITOR;
		else
			c[i].cls = -1;
	}
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
			double sc = rank_score(p, pt, g);

			/*
			 * equals go in gfn order; vpm's keep the low gfns in DRAM (where a
			 * device's metadata tends to be), whichever the direction
			 */
			uint64_t tie = p->kind == POLICY_VPM && !hottest ? UINT64_MAX - g : g;

			c[n++] = (struct candidate){ .score = hottest ? -sc : sc, .tie = tie,
						     .gfn = g };
		}
	if (p->kind == POLICY_VPM && tier == PT_TIER_DRAM && !hottest)
		rank_visitors(p, c, n);
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

void policy_done(struct policy *p)
{
	free(p->heat);
	free(p->seen);
	p->heat = NULL;
	p->seen = NULL;
	p->n_pages = 0;
}

/* The state of a policy that starts observing: every page where it is, no visitors. */
static int observe_start(struct policy *p, const struct pagetable *pt, uint64_t now)
{
	policy_done(p);
	p->heat = calloc(pt->n_pages, sizeof(p->heat[0]));
	p->seen = calloc(pt->n_pages, sizeof(p->seen[0]));
	if (!p->heat || !p->seen) {
		policy_done(p);
		return -ENOMEM;
	}
	p->n_pages = pt->n_pages;
	for (uint64_t g = 0; g < pt->n_pages; g++)
		p->seen[g] = (uint8_t)pt_tier(pt, g);
	p->t0_usec = now;
	p->scale = 1;
	return 0;
}

int policy_observe(struct policy *p, const struct pagetable *pt, const uint64_t *accessed,
		   const uint64_t *dirty, uint64_t now)
{
	float one, two;

	if (p->kind != POLICY_VPM) {
		policy_done(p); /* the VM changed its policy */
		return 0;
	}
	if (!p->heat || p->n_pages != pt->n_pages) {
		int r = observe_start(p, pt, now);

		if (r < 0)
			return r;
	}
	if (now > p->t0_usec) {
		p->scale = exp((double)(now - p->t0_usec) / HEAT_TAU_USEC);
		if (p->scale > HEAT_REBASE) {
			for (uint64_t g = 0; g < p->n_pages; g++)
				p->heat[g] = (float)(p->heat[g] / p->scale);
			p->t0_usec = now;
			p->scale = 1;
		}
	}
	/* accessed: one event; written: two */
	one = (float)p->scale;
	two = (float)(2 * p->scale);
	for (uint64_t w = 0; w < (p->n_pages + 63) / 64; w++) {
		uint64_t a = accessed ? accessed[w] : 0, d = dirty ? dirty[w] : 0, bits = a | d;

		while (bits) {
			unsigned b = (unsigned)__builtin_ctzll(bits);
			uint64_t g = w * 64 + b;

			bits &= bits - 1;
			if (g < p->n_pages)
				p->heat[g] += (d >> b) & 1 ? two : one;
		}
	}
	return 0;
}

void policy_boundary(struct policy *p, const struct pagetable *pt)
{
	if (!p->seen || p->n_pages != pt->n_pages)
		return;
	for (uint64_t g = 0; g < p->n_pages; g++) {
		uint8_t tier = (uint8_t)pt_tier(pt, g), s = p->seen[g];
		uint8_t vis = s & SEEN_VISITOR;

		if (tier != PT_TIER_DRAM)
			vis = 0;
		else if ((s & SEEN_TIER) == PT_TIER_PM)
			vis = SEEN_VISITOR; /* not policy_promoted(): a write fault */
		p->seen[g] = tier | vis;
	}
}

void policy_promoted(struct policy *p, uint64_t g)
{
	if (p->seen && g < p->n_pages)
		p->seen[g] = PT_TIER_DRAM;
}
