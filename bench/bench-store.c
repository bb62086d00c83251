// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * bench-store: the persistent store's two hot paths against raw baselines measured in the
 * same process on the same pool (the machine is shared and noisy: compare ratios).
 *
 *  commit  - N MiB of 4 KiB page images committed in epochs of 64 pages, and the same bytes
 *            as scattered 64-byte cacheline ranges (no two adjacent) in epochs of 1024 lines,
 *            vs. libpmem2 memcpy (non-temporal) + persist of the same bytes in the same chunks
 *            into the same pool.
 *  replay  - recovery of those committed epochs (scan, verify, apply to the image, sync) vs.
 *            a raw sequential read + copy of the same log bytes into a file like the image
 *            (same filesystem, allocated, mapped, untouched) + fdatasync.
 *
 *   bench-store [-d DIR] [-m MIB] [-r RUNS]     (defaults: /dev/shm, 64, 3; best run counts)
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "parse-util.h"
#include "pm-store.h"
#include "pool.h"

#define PAGES_PER_EPOCH 64u
#define LINES_PER_EPOCH 1024u

struct ctx {
	const char *dir;
	uint64_t bytes;
	char pool_path[512], image_path[512], scratch_path[512];
	uint8_t *src; /* the data committed, DRAM */
};

static double secs(uint64_t usec)
{
	return (double)usec / 1e6;
}

static struct pool *open_pool(struct ctx *c)
{
	char name[] = "bench";
	struct pool_config pc = { .name = name, .path = c->pool_path, .kind = POOL_KIND_EMULATED,
				  .size = 4 * c->bytes + (UINT64_C(32) << 20) };
	struct pool *p = NULL;

	if (pool_open(&pc, &p) < 0)
		exit(1);
	return p;
}

/* A freshly formatted pool whose log holds 2.5 N, and one device of N bytes. */
static struct pm_store *fresh_store(struct ctx *c, struct pool **ret_pool, unsigned *dev)
{
	struct pm_format_options o = { .log_size = c->bytes * 5 / 2 + (UINT64_C(4) << 20),
				       .force = true };
	struct pm_device_info info = { .name = "bench", .size_pages = c->bytes / PM_PAGE_SIZE,
				       .mode = PM_MODE_EPOCH, .image_path = c->image_path };
	struct pm_recovery rep;
	struct pm_store *s = NULL;
	char err[256];

	unlink(c->image_path);
	*ret_pool = open_pool(c);
	/* fault the whole pool in first: first-touch costs belong to neither side */
	memset((*ret_pool)->addr, 0, (*ret_pool)->size);
	if (pm_store_format(*ret_pool, &o, err, sizeof(err)) < 0 ||
	    pm_store_open(*ret_pool, false, &s, &rep) < 0 || pm_device_create(s, &info, dev) < 0) {
		fprintf(stderr, "bench-store: cannot set up the pool: %s\n", err);
		exit(1);
	}
	return s;
}

/*
 * Raw: the same bytes in the same chunk sizes, made durable the way libpmem2 does it for this
 * pool: non-temporal memcpy + drain on real PM, memcpy + persist (msync) where the pool can
 * only be persisted by page (emulated PM), as the store itself does.
 */
static uint64_t raw_copy(struct pool *p, const uint8_t *src, uint64_t bytes, size_t chunk)
{
	pmem2_memcpy_fn cp = pmem2_get_memcpy_fn(p->map);
	pmem2_persist_fn persist = pmem2_get_persist_fn(p->map);
	uint8_t *dst = (uint8_t *)p->addr + p->size - bytes;
	uint64_t t0 = now_usec(CLOCK_MONOTONIC);

	for (uint64_t off = 0; off < bytes; off += chunk) {
		size_t n = (size_t)MIN((uint64_t)chunk, bytes - off);

		if (p->granularity == PMEM2_GRANULARITY_PAGE) {
			memcpy(dst + off, src + off, n);
			persist(dst + off, n);
		} else {
			cp(dst + off, src + off, n, PMEM2_F_MEM_NONTEMPORAL);
		}
	}
	return now_usec(CLOCK_MONOTONIC) - t0;
}

static uint64_t commit_pages(struct ctx *c, struct pm_store *s, unsigned dev)
{
	uint64_t n = c->bytes / PM_PAGE_SIZE, epoch = 0, t0;
	struct pm_page *pages = malloc(n * sizeof(*pages));

	if (!pages)
		exit(1);
	for (uint64_t g = 0; g < n; g++)
		pages[g] = (struct pm_page){ .gfn = g, .data = c->src + g * PM_PAGE_SIZE };
	t0 = now_usec(CLOCK_MONOTONIC);
	for (uint64_t g = 0; g < n; g += PAGES_PER_EPOCH)
		if (pm_commit(s, dev, ++epoch, pages + g, PAGES_PER_EPOCH, NULL, 0) < 0)
			exit(1);
	t0 = now_usec(CLOCK_MONOTONIC) - t0;
	free(pages);
	return t0;
}

/* The descriptors are the caller's input, built before the clock starts, as for pages. */
static uint64_t commit_lines(struct ctx *c, struct pm_store *s, unsigned dev)
{
	uint64_t n = c->bytes / PM_CACHELINE, epoch = 0, t0;
	struct pm_range *lines = malloc(n * sizeof(*lines));

	if (!lines)
		exit(1);
	/* scattered lines (a permutation of all lines of the device): none adjacent in an epoch */
	for (uint64_t l = 0; l < n; l++) {
		uint64_t at = (l * UINT64_C(0x9e3779b97f4a7c15)) & (n - 1);

		lines[l] = (struct pm_range){ .gfn = at / 64, .offset = (uint32_t)(at % 64) * 64,
					      .length = 64, .data = c->src + l * 64 };
	}
	t0 = now_usec(CLOCK_MONOTONIC);
	for (uint64_t l = 0; l < n; l += LINES_PER_EPOCH)
		if (pm_commit(s, dev, ++epoch, NULL, 0, lines + l, LINES_PER_EPOCH) < 0)
			exit(1);
	t0 = now_usec(CLOCK_MONOTONIC) - t0;
	free(lines);
	return t0;
}

/*
 * A file like a device image (same filesystem, allocated, mapped shared, not yet touched):
 * the raw baseline copies the log bytes into it, as recovery copies them into the image.
 */
static uint8_t *map_scratch(struct ctx *c, uint64_t bytes, int *ret_fd)
{
	int fd = open(c->scratch_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	void *m;

	if (fd < 0 || posix_fallocate(fd, 0, (off_t)bytes) != 0)
		exit(1);
	m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		exit(1);
	*ret_fd = fd;
	return m;
}

/* Recovery of what was committed, and the raw read + copy of the same log bytes. */
static void replay(struct ctx *c, struct pool **p, struct pm_store *s, uint64_t *ret_usec,
		   uint64_t *ret_raw_usec, uint64_t *ret_bytes)
{
	const struct pm_superblock *sb;
	struct pm_recovery rep;
	uint8_t *sink;
	uint64_t t0;
	int fd;

	pm_store_close(s);
	pool_close(*p);
	*p = open_pool(c);
	sb = (*p)->addr;
	t0 = now_usec(CLOCK_MONOTONIC);
	if (pm_store_open(*p, false, &s, &rep) < 0)
		exit(1);
	*ret_usec = now_usec(CLOCK_MONOTONIC) - t0;
	*ret_bytes = rep.replayed_bytes;
	pm_store_close(s);
	/*
	 * The records are still in the log ring: read + copy them raw, through a fresh mapping
	 * of the pool as recovery had (so page faults count on both sides).
	 */
	pool_close(*p);
	*p = open_pool(c);
	sb = (*p)->addr;
	/* the raw side is noisy (page faults on a fresh file): its best of three counts */
	*ret_raw_usec = UINT64_MAX;
	for (int i = 0; i < 3; i++) {
		sink = map_scratch(c, rep.replayed_bytes, &fd);
		t0 = now_usec(CLOCK_MONOTONIC);
		memcpy(sink, (uint8_t *)(*p)->addr + sb->log_offset, rep.replayed_bytes);
		if (fdatasync(fd) < 0)
			exit(1);
		*ret_raw_usec = MIN(*ret_raw_usec, now_usec(CLOCK_MONOTONIC) - t0);
		munmap(sink, rep.replayed_bytes);
		close(fd);
		unlink(c->scratch_path);
	}
	pool_close(*p);
	*p = NULL;
}

struct result {
	double commit_ratio, replay_ratio, commit_mbs, raw_mbs, replay_mbs, raw_replay_mbs;
};

static void run_kind(struct ctx *c, bool lines, struct result *best)
{
	struct pool *p;
	unsigned dev;
	struct pm_store *s = fresh_store(c, &p, &dev);
	uint64_t raw, vpm, rep_usec, raw_rep, bytes;
	double mb = (double)c->bytes / (1 << 20);
	struct result r;

	raw = raw_copy(p, c->src, c->bytes, lines ? LINES_PER_EPOCH * 64 : PAGES_PER_EPOCH * PM_PAGE_SIZE);
	vpm = lines ? commit_lines(c, s, dev) : commit_pages(c, s, dev);
	replay(c, &p, s, &rep_usec, &raw_rep, &bytes);
	r.commit_mbs = mb / secs(vpm);
	r.raw_mbs = mb / secs(raw);
	r.commit_ratio = r.commit_mbs / r.raw_mbs;
	r.replay_mbs = (double)bytes / (1 << 20) / secs(rep_usec);
	r.raw_replay_mbs = (double)bytes / (1 << 20) / secs(MAX(raw_rep, UINT64_C(1)));
	r.replay_ratio = r.replay_mbs / r.raw_replay_mbs;
	if (r.commit_ratio > best->commit_ratio) {
		best->commit_ratio = r.commit_ratio;
		best->commit_mbs = r.commit_mbs;
		best->raw_mbs = r.raw_mbs;
	}
	if (r.replay_ratio > best->replay_ratio) {
		best->replay_ratio = r.replay_ratio;
		best->replay_mbs = r.replay_mbs;
		best->raw_replay_mbs = r.raw_replay_mbs;
	}
}

int main(int argc, char **argv)
{
	struct ctx c = { .dir = "/dev/shm", .bytes = UINT64_C(64) << 20 };
	struct result pages = {}, lines = {};
	unsigned runs = 3;
	int opt;

	log_set_max_level(LOG_WARNING);
	while ((opt = getopt(argc, argv, "d:m:r:")) >= 0) {
		switch (opt) {
		case 'd':
			c.dir = optarg;
			break;
		case 'm':
			c.bytes = strtoull(optarg, NULL, 10) << 20;
			break;
		case 'r':
			runs = (unsigned)strtoul(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: bench-store [-d DIR] [-m MIB] [-r RUNS]\n");
			return 2;
		}
	}
	if (c.bytes < (UINT64_C(4) << 20) || (c.bytes & (c.bytes - 1)) || runs == 0) {
		fprintf(stderr, "bench-store: -m must be a power of two of at least 4, -r at least 1\n");
		return 2;
	}
	snprintf(c.pool_path, sizeof(c.pool_path), "%s/vpm-bench-store.%d.pool", c.dir, (int)getpid());
	snprintf(c.image_path, sizeof(c.image_path), "%s/vpm-bench-store.%d.img", c.dir, (int)getpid());
	c.src = malloc(c.bytes);
	snprintf(c.scratch_path, sizeof(c.scratch_path), "%s/vpm-bench-store.%d.raw", c.dir,
		 (int)getpid());
	if (!c.src)
		return 1;
	for (uint64_t i = 0; i < c.bytes; i += 8) {
		uint64_t v = i * UINT64_C(0x9e3779b97f4a7c15);

		memcpy(c.src + i, &v, 8);
	}

	for (unsigned i = 0; i < runs; i++) {
		run_kind(&c, false, &pages);
		run_kind(&c, true, &lines);
	}
	unlink(c.pool_path);
	unlink(c.image_path);

	printf("bench-store: %" PRIu64 " MiB per run, best of %u runs, pool in %s\n",
	       c.bytes >> 20, runs, c.dir);
	printf("%-22s %12s %12s %8s %8s\n", "", "vpm MiB/s", "raw MiB/s", "ratio", "target");
	printf("%-22s %12.0f %12.0f %8.2f %8s\n", "commit, 4K pages", pages.commit_mbs, pages.raw_mbs,
	       pages.commit_ratio, ">=0.80");
	printf("%-22s %12.0f %12.0f %8.2f %8s\n", "commit, 64B lines", lines.commit_mbs,
	       lines.raw_mbs, lines.commit_ratio, ">=0.80");
	printf("%-22s %12.0f %12.0f %8.2f %8s\n", "replay, 4K pages", pages.replay_mbs,
	       pages.raw_replay_mbs, pages.replay_ratio, ">=0.70");
	printf("%-22s %12.0f %12.0f %8.2f %8s\n", "replay, 64B lines", lines.replay_mbs,
	       lines.raw_replay_mbs, lines.replay_ratio, ">=0.70");
	free(c.src);
	return 0;
}
