/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The simulated guest's latency model: modeled nanoseconds per cacheline touched, by tier and
 * direction. Defaults are published Optane DC PMM figures (Izraelevitz et al., "Basic
 * Performance Measurements of the Intel Optane DC Persistent Memory Module", 2019): random
 * cacheline reads 81 ns from DRAM and 305 ns from PM; writes made durable (clwb + fence)
 * 86 ns to DRAM and 94 ns to PM, which the write-pending queue absorbs. A fault (an EPT
 * violation: VM exit, vpmd's handling, a 4 KiB copy, VM entry) costs 4 us, the order of a
 * userfaultfd round trip on current hardware. A persist hint vpmd commits (hint mode) costs a
 * hypercall (as a fault) plus the log record and its commit record written to PM. Time a vCPU
 * spends stopped by a pause is counted as it is measured.
 */
#ifndef VPM_SIM_LATENCY_H
#define VPM_SIM_LATENCY_H

#include <stdbool.h>
#include <stdint.h>

struct latency_model {
	uint32_t dram_read_ns, dram_write_ns, pm_read_ns, pm_write_ns;
	uint32_t fault_ns;
};

#define LATENCY_MODEL_DEFAULT                                                                      \
	((struct latency_model){ .dram_read_ns = 81, .dram_write_ns = 86, .pm_read_ns = 305,       \
				 .pm_write_ns = 94, .fault_ns = 4000 })

/* Modeled cost of touching len bytes (rounded up to cachelines) on one tier. */
static inline uint64_t latency_cost(const struct latency_model *m, bool pm, bool write,
				    uint32_t len)
{
	uint64_t lines = (len + 63) / 64;

	if (pm)
		return lines * (write ? m->pm_write_ns : m->pm_read_ns);
	return lines * (write ? m->dram_write_ns : m->dram_read_ns);
}

/* Parse "dram_read=81,dram_write=86,pm_read=305,pm_write=94,fault=4000" (any subset). */
int latency_model_parse(const char *s, struct latency_model *m);

#endif
