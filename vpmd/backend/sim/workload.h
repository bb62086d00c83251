/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Guest workloads of the simulated backend: deterministic streams of guest PM accesses that
 * vpm-simguest's vCPUs replay, and whose true per-page access frequencies the oracle policy
 * may read.
 *
 *   zipf-kv  key-value updates: keys drawn from a Zipfian distribution (theta), scrambled over
 *            the pages, each a read of the value's cachelines then (write_pct %) an update
 *   log      append-only log: 64-512 byte records written in order, each followed by a
 *            persist hint of exactly its bytes (para-virtualized guests)
 *   btree    B-tree-like random updates: a root-to-leaf walk (reads), then the leaf updated,
 *            and one split in 32 also updating the parent
 *   scan     read-mostly scans of 64 KiB runs at random starts, 2 % of lines written
 *   fill     whole-page writes in order through each vCPU's part of the device (benchmarks:
 *            every page dirty every epoch)
 */
#ifndef VPM_SIM_WORKLOAD_H
#define VPM_SIM_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>

enum workload_kind {
	WORKLOAD_ZIPF_KV,
	WORKLOAD_LOG,
	WORKLOAD_BTREE,
	WORKLOAD_SCAN,
	WORKLOAD_FILL,
	_WORKLOAD_MAX,
};

struct workload_params {
	enum workload_kind kind;
	uint64_t n_pages;
	double theta;       /* zipf-kv: skew, 0 < theta < 1 (0.99 as in YCSB) */
	unsigned write_pct; /* zipf-kv: updates per 100 operations */
	uint64_t seed;
};

/* One guest access: len bytes at (gfn, offset), within one page, cacheline aligned. */
struct workload_access {
	uint64_t gfn;
	uint32_t offset;
	uint32_t len;
	bool write;
	bool persist; /* a persist hint for exactly these bytes follows the write */
};

#define WORKLOAD_MAX_ACCESSES 16

/* One operation: the accesses a vCPU makes for it, in order. */
struct workload_op {
	unsigned n;
	struct workload_access a[WORKLOAD_MAX_ACCESSES];
};

struct workload;

int workload_new(const struct workload_params *p, struct workload **ret);
struct workload *workload_free(struct workload *w);

/* Per-vCPU generator state: each vCPU draws its own stream from (seed, vcpu). */
struct workload_cursor {
	uint64_t rng;
	uint64_t first, end; /* log: this vCPU's region of pages */
	uint64_t position;   /* log: next append (byte offset); scan: next page */
	uint64_t remaining;  /* scan: pages left in the run */
};

void workload_cursor_init(const struct workload *w, unsigned vcpu, unsigned n_vcpus,
			  struct workload_cursor *c);
void workload_next(const struct workload *w, struct workload_cursor *c, struct workload_op *op);

/* Probability that an operation touches the page (the oracle's knowledge); sums to >= 1. */
double workload_page_weight(const struct workload *w, uint64_t gfn);

const char *workload_kind_to_string(enum workload_kind k);
int workload_kind_from_string(const char *s);

#endif
