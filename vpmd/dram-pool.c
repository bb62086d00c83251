// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dram-pool.h"
#include "macro.h"

int dram_pool_init(struct dram_pool *d, uint64_t budget)
{
	uint64_t n = budget / DRAM_FRAME_SIZE;
	int r;

	*d = (struct dram_pool){ .fd = -1 };
	if (n == 0 || n > UINT32_MAX)
		return -EINVAL;
	d->fd = memfd_create("vpmd-dram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (d->fd < 0)
		return -errno;
	/* the size is fixed: a guest's backend that maps it cannot be truncated under */
	if (ftruncate(d->fd, (off_t)(n * DRAM_FRAME_SIZE)) < 0 ||
	    fcntl(d->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		r = -errno;
		goto fail;
	}
	d->base = mmap(NULL, n * DRAM_FRAME_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd, 0);
	if (d->base == MAP_FAILED) {
		d->base = NULL;
		r = -errno;
		goto fail;
	}
	d->used = calloc((n + 63) / 64, sizeof(uint64_t));
	if (!d->used) {
		r = -ENOMEM;
		goto fail;
	}
	d->n_frames = d->n_free = n;
	return 0;
fail:
	dram_pool_done(d);
	return r;
}

void dram_pool_done(struct dram_pool *d)
{
	if (d->base)
		munmap(d->base, d->n_frames * DRAM_FRAME_SIZE);
	free(d->used);
	d->fd = safe_close(d->fd);
	d->base = NULL;
	d->used = NULL;
	d->n_frames = d->n_free = 0;
}

int dram_frame_alloc(struct dram_pool *d, uint32_t *ret)
{
	uint64_t words = (d->n_frames + 63) / 64;

	if (d->n_free == 0)
		return -ENOSPC;
	for (uint64_t k = 0; k <= words; k++) {
		uint64_t w = (d->hint / 64 + k) % words, free_bits = ~d->used[w];
		uint64_t f;

		if (!free_bits)
			continue;
		f = w * 64 + (uint64_t)__builtin_ctzll(free_bits);
		if (f >= d->n_frames)
			continue;
		d->used[w] |= UINT64_C(1) << (f % 64);
		d->n_free--;
		d->hint = f;
		*ret = (uint32_t)f;
		return 0;
	}
	return -ENOSPC;
}

void dram_frame_free(struct dram_pool *d, uint32_t frame)
{
	uint64_t bit = UINT64_C(1) << (frame % 64);

	if (frame >= d->n_frames || !(d->used[frame / 64] & bit))
		return; /* not allocated: nothing to do, and never a double count */
	d->used[frame / 64] &= ~bit;
	d->n_free++;
}
