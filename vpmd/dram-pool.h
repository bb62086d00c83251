/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The DRAM tier: a memfd of dram_budget bytes, mapped shared by vpmd (and, through its fd, by
 * the guests' backends), handed out in 4 KiB frames.
 */
#ifndef VPMD_DRAM_POOL_H
#define VPMD_DRAM_POOL_H

#include <stdint.h>

#define DRAM_FRAME_SIZE 4096u

struct dram_pool {
	int fd;
	uint8_t *base;
	uint64_t n_frames;
	uint64_t n_free;
	uint64_t *used; /* bitmap */
	uint64_t hint;
};

int dram_pool_init(struct dram_pool *d, uint64_t budget_bytes);
void dram_pool_done(struct dram_pool *d);

/* A free frame, or -ENOSPC when the budget is used up. */
int dram_frame_alloc(struct dram_pool *d, uint32_t *ret_frame);
void dram_frame_free(struct dram_pool *d, uint32_t frame);

static inline void *dram_frame_data(const struct dram_pool *d, uint32_t frame)
{
	return d->base + (uint64_t)frame * DRAM_FRAME_SIZE;
}

#endif
