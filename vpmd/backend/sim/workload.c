// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "random-util.h"
#include "workload.h"

#define PAGE       4096u
#define LINE       64u
#define KV_VALUE   256u /* bytes per key-value record */
#define KV_PER_PG  (PAGE / KV_VALUE)
#define SCAN_RUN   16u  /* pages per scan */
#define ZETA_EXACT 1000000u

struct workload {
	struct workload_params p;
	/* zipf-kv (Gray et al., "Quickly generating billion-record synthetic databases") */
	uint64_t n_keys;
	double zetan, alpha, eta, half_pow_theta;
	/* btree */
	uint64_t n_internal;
	double *weight; /* per page: expected touches per operation (the oracle's view) */
};

static const char *const kind_names[_WORKLOAD_MAX] = {
	[WORKLOAD_ZIPF_KV] = "zipf-kv",
	[WORKLOAD_LOG] = "log",
	[WORKLOAD_BTREE] = "btree",
	[WORKLOAD_SCAN] = "scan",
	[WORKLOAD_FILL] = "fill",
};

const char *workload_kind_to_string(enum workload_kind k)
{
	return k < _WORKLOAD_MAX ? kind_names[k] : NULL;
}

int workload_kind_from_string(const char *s)
{
	for (int k = 0; k < _WORKLOAD_MAX; k++)
		if (streq(s, kind_names[k]))
			return k;
	return -EINVAL;
}

static double uniform(uint64_t *x)
{
	return (double)(splitmix64(x) >> 11) * 0x1.0p-53;
}

/* sum_{i=1..n} i^-theta: exact for the head, Euler-Maclaurin for the rest. */
static double zeta(uint64_t n, double theta)
{
	uint64_t head = MIN(n, (uint64_t)ZETA_EXACT);
	double z = 0;

	for (uint64_t i = 1; i <= head; i++)
		z += pow((double)i, -theta);
	if (n > head) {
		double a = (double)head, b = (double)n;

		z += (pow(b, 1 - theta) - pow(a, 1 - theta)) / (1 - theta) +
		     0.5 * (pow(b, -theta) - pow(a, -theta));
	}
	return z;
}

/* Rank 0 is the hottest key. */
static uint64_t zipf_rank(const struct workload *w, uint64_t *rng)
{
	double u = uniform(rng), uz = u * w->zetan;
	uint64_t r;

	if (uz < 1.0)
		return 0;
	if (uz < 1.0 + w->half_pow_theta)
		return 1;
	r = (uint64_t)((double)w->n_keys * pow(w->eta * u - w->eta + 1, w->alpha));
	return MIN(r, w->n_keys - 1);
}

/* Hot keys are spread over the device, not packed into its first pages. */
static uint64_t scramble(const struct workload *w, uint64_t rank)
{
	uint64_t x = rank ^ w->p.seed;

	return splitmix64(&x) % w->n_keys;
}

static int build_weights(struct workload *w)
{
	uint64_t n = w->p.n_pages;

	w->weight = calloc(n, sizeof(double));
	if (!w->weight)
		return -ENOMEM;
	switch (w->p.kind) {
	case WORKLOAD_ZIPF_KV:
		for (uint64_t r = 0; r < w->n_keys; r++)
			w->weight[scramble(w, r) / KV_PER_PG] +=
				pow((double)(r + 1), -w->p.theta) / w->zetan;
		break;
	case WORKLOAD_BTREE:
		w->weight[0] = 1.0;
		for (uint64_t g = 1; g <= w->n_internal; g++)
			w->weight[g] = (1.0 + 1.0 / 32) / (double)w->n_internal;
		for (uint64_t g = w->n_internal + 1; g < n; g++)
			w->weight[g] = 1.0 / (double)(n - 1 - w->n_internal);
		break;
	case WORKLOAD_LOG:
		/*
		 * Every page of the ring is written once a round (some 14 appends, then nothing
		 * until the round comes back): equal frequencies are the truth. No frequency
		 * tells which pages to keep; what matters is not to swap equal pages back and
		 * forth (a page the append frontier just left is the last one needed again, so
		 * LRU is the worst choice), i.e. to keep one set of pages in DRAM, which equal
		 * weights do (ties go in gfn order, and equal pages are never swapped). Knowing
		 * where the frontier is would allow promoting the pages just ahead of it; but at
		 * the latency model's ~0.4 us an append it laps a ring of this size many times
		 * an epoch: nothing a placement decided once an epoch can use.
		 */
	case WORKLOAD_SCAN:
	default:
		for (uint64_t g = 0; g < n; g++)
			w->weight[g] = 1.0 / (double)n;
		break;
	}
	return 0;
}

int workload_new(const struct workload_params *p, struct workload **ret)
{
	struct workload *w;
	int r;

	if (p->kind >= _WORKLOAD_MAX || p->n_pages < 4 || p->n_pages > (UINT64_C(1) << 32) ||
	    (p->kind == WORKLOAD_ZIPF_KV && (p->theta <= 0 || p->theta >= 1 || p->write_pct > 100)))
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->p = *p;
	if (p->kind == WORKLOAD_ZIPF_KV) {
		double zeta2 = 1 + pow(2, -p->theta);

		w->n_keys = p->n_pages * KV_PER_PG;
		w->zetan = zeta(w->n_keys, p->theta);
		w->alpha = 1 / (1 - p->theta);
		w->eta = (1 - pow(2.0 / (double)w->n_keys, 1 - p->theta)) / (1 - zeta2 / w->zetan);
		w->half_pow_theta = pow(0.5, p->theta);
	}
	w->n_internal = MAX(UINT64_C(1), MIN((uint64_t)64, p->n_pages / 64));
	r = build_weights(w);
	if (r < 0) {
		workload_free(w);
		return r;
	}
	*ret = w;
	return 0;
}

struct workload *workload_free(struct workload *w)
{
	if (w) {
		free(w->weight);
		free(w);
	}
	return NULL;
}

void workload_cursor_init(const struct workload *w, unsigned vcpu, unsigned n_vcpus,
			  struct workload_cursor *c)
{
	uint64_t per = w->p.n_pages / MAX(1u, n_vcpus);

	*c = (struct workload_cursor){ .rng = w->p.seed ^ ((uint64_t)vcpu << 32 | 0x5eed) };
	/* each vCPU appends to its own part of the log, as a per-CPU log would */
	c->first = per ? (uint64_t)vcpu * per : 0;
	c->end = per ? c->first + per : w->p.n_pages;
	c->position = c->first * PAGE;
}

static void add(struct workload_op *op, uint64_t gfn, uint32_t off, uint32_t len, bool write,
		bool persist)
{
	if (op->n < WORKLOAD_MAX_ACCESSES)
		op->a[op->n++] = (struct workload_access){ .gfn = gfn, .offset = off, .len = len,
							   .write = write, .persist = persist };
}

static void next_kv(const struct workload *w, struct workload_cursor *c, struct workload_op *op)
{
	uint64_t slot = scramble(w, zipf_rank(w, &c->rng));
	uint64_t gfn = slot / KV_PER_PG;
	uint32_t off = (uint32_t)(slot % KV_PER_PG) * KV_VALUE;

	add(op, gfn, off, KV_VALUE, false, false);
	if (splitmix64(&c->rng) % 100 < w->p.write_pct)
		add(op, gfn, off, KV_VALUE, true, false);
}

static void next_log(struct workload_cursor *c, struct workload_op *op)
{
	uint32_t len = (uint32_t)(1 + splitmix64(&c->rng) % 8) * LINE;
	uint64_t page_end = (c->position / PAGE + 1) * PAGE;

	if (c->position + len > page_end)
		c->position = page_end; /* records do not straddle pages */
	if (c->position / PAGE >= c->end)
		c->position = c->first * PAGE; /* wrap: the log is a ring */
	add(op, c->position / PAGE, (uint32_t)(c->position % PAGE), len, true, true);
	c->position += len;
}

static void next_btree(const struct workload *w, struct workload_cursor *c, struct workload_op *op)
{
	uint64_t leaves = w->p.n_pages - 1 - w->n_internal;
	uint64_t leaf = 1 + w->n_internal + splitmix64(&c->rng) % leaves;
	uint64_t parent = 1 + (leaf - 1 - w->n_internal) % w->n_internal;
	uint32_t line = (uint32_t)(splitmix64(&c->rng) % (PAGE / LINE)) * LINE;

	add(op, 0, (uint32_t)(leaf % (PAGE / LINE)) * LINE, LINE, false, false);
	add(op, parent, line, LINE, false, false);
	add(op, leaf, 0, LINE, false, false);
	add(op, leaf, line & ~(2 * LINE - 1), 2 * LINE, true, false);
	if (splitmix64(&c->rng) % 32 == 0)
		add(op, parent, line, LINE, true, false);
}

static void next_scan(const struct workload *w, struct workload_cursor *c, struct workload_op *op)
{
	uint64_t gfn;

	if (c->remaining == 0) {
		c->position = splitmix64(&c->rng) % w->p.n_pages;
		c->remaining = SCAN_RUN;
	}
	gfn = c->position % w->p.n_pages;
	c->position++;
	c->remaining--;
	add(op, gfn, 0, PAGE, false, false);
	if (splitmix64(&c->rng) % 50 == 0)
		add(op, gfn, (uint32_t)(splitmix64(&c->rng) % (PAGE / LINE)) * LINE, LINE, true,
		    false);
}

/* Whole pages, one after the other through the vCPU's part of the device. */
static void next_fill(struct workload_cursor *c, struct workload_op *op)
{
	uint64_t gfn = c->first + c->position % (c->end - c->first);

	c->position++;
	add(op, gfn, 0, PAGE, true, false);
}

void workload_next(const struct workload *w, struct workload_cursor *c, struct workload_op *op)
{
	op->n = 0;
	switch (w->p.kind) {
	case WORKLOAD_ZIPF_KV:
		next_kv(w, c, op);
		break;
	case WORKLOAD_LOG:
		next_log(c, op);
		break;
	case WORKLOAD_BTREE:
		next_btree(w, c, op);
		break;
	case WORKLOAD_FILL:
		next_fill(c, op);
		break;
	case WORKLOAD_SCAN:
	default:
		next_scan(w, c, op);
		break;
	}
}

double workload_page_weight(const struct workload *w, uint64_t gfn)
{
	return gfn < w->p.n_pages ? w->weight[gfn] : 0;
}
