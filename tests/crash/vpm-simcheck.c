// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vpm-simcheck: compare a simulated VM's device, as the pool holds it after recovery, with
 * the guest's write history (the files vpm-simguest -H writes).
 *
 *   vpm-simcheck POOL NAME HISTORY_DIR SEED final    every write must be there
 *   vpm-simcheck POOL NAME HISTORY_DIR SEED prefix   the device must equal the image after
 *                                                   some prefix of the writes (a consistent
 *                                                   cut: what a crash may leave)
 *
 * It opens the pool read-write, so recovery runs first, as vpmd's start would. Exit 0 on a
 * match, 1 otherwise.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pm-store.h"
#include "pool.h"
#include "random-util.h"
#include "sim-proto.h"

struct rec {
	uint64_t seq, gfn;
	uint32_t offset, len;
};

static int by_seq(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * All history records, in write order. complete: a gap is an error; otherwise the history
 * ends at the first gap (a guest still running has writes in its buffers, but everything
 * before its last pause is on disk).
 */
static struct rec *load_history(const char *dir, const char *name, bool complete, size_t *ret_n)
{
	size_t n = 0, alloc = 1 << 16, prefix = strlen(name);
	struct rec *all = malloc(alloc * sizeof(*all));
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d || !all)
		return NULL;
	while ((de = readdir(d))) {
		char path[1024];
		FILE *f;

		if (strncmp(de->d_name, name, prefix) != 0 || strncmp(de->d_name + prefix, ".vcpu", 5))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = fopen(path, "re");
		if (!f)
			return NULL;
		for (;;) {
			if (n == alloc) {
				alloc *= 2;
				all = realloc(all, alloc * sizeof(*all));
				if (!all)
					return NULL;
			}
			if (fread(&all[n], sizeof(*all), 1, f) != 1)
				break;
			n++;
		}
		fclose(f);
	}
	closedir(d);
	qsort(all, n, sizeof(*all), by_seq);
	for (size_t i = 0; i < n; i++)
		if (all[i].seq != i) {
			if (!complete) {
				n = i;
				break;
			}
			fprintf(stderr, "vpm-simcheck: history has a gap at write %zu\n", i);
			return NULL;
		}
	*ret_n = n;
	return all;
}

static int check(const struct rec *h, size_t n, const uint8_t *dev, uint8_t *img, uint64_t pages,
		 uint64_t seed, bool prefix, const char *name)
{
	uint64_t mismatched = 0;

	for (uint64_t g = 0; g < pages; g++)
		mismatched += memcmp(dev + g * PM_PAGE_SIZE, img + g * PM_PAGE_SIZE, PM_PAGE_SIZE) != 0;
	if (prefix && mismatched == 0) {
		printf("vpm-simcheck: %s matches the first 0 of %zu writes\n", name, n);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t g = h[i].gfn;
		bool before, after;

		if (g >= pages || h[i].offset + h[i].len > PM_PAGE_SIZE)
			return 1;
		before = memcmp(dev + g * PM_PAGE_SIZE, img + g * PM_PAGE_SIZE, PM_PAGE_SIZE) != 0;
		sim_write_pattern(img + g * PM_PAGE_SIZE + h[i].offset, h[i].len, h[i].seq, seed);
		after = memcmp(dev + g * PM_PAGE_SIZE, img + g * PM_PAGE_SIZE, PM_PAGE_SIZE) != 0;
		mismatched += after - before;
		if (prefix && mismatched == 0) {
			printf("vpm-simcheck: %s matches the first %zu of %zu writes\n", name, i + 1, n);
			return 0;
		}
	}
	if (!prefix && mismatched == 0) {
		printf("vpm-simcheck: %s holds all %zu writes\n", name, n);
		return 0;
	}
	fprintf(stderr, "vpm-simcheck: %s: %" PRIu64 " of %" PRIu64 " pages match no %s\n", name,
		mismatched, pages, prefix ? "prefix of the writes" : "replay of all writes");
	return 1;
}

int main(int argc, char **argv)
{
	char pname[] = "check";
	struct pool_config pc = { .name = pname, .kind = POOL_KIND_EMULATED };
	struct pool *p = NULL;
	struct pm_store *s = NULL;
	struct pm_recovery rep;
	struct rec *h;
	uint8_t *dev, *img;
	uint64_t pages, seed;
	size_t n;
	unsigned d;
	bool prefix;
	int r;

	log_set_max_level(LOG_WARNING);
	if (argc != 6)
		return 2;
	pc.path = argv[1];
	seed = strtoull(argv[4], NULL, 0);
	prefix = strcmp(argv[5], "prefix") == 0;
	if (pool_open(&pc, &p) < 0 || pm_store_open(p, false, &s, &rep) < 0) {
		fprintf(stderr, "vpm-simcheck: cannot recover the pool: %s\n", rep.problem);
		return 1;
	}
	if (pm_device_find(s, argv[2], &d) < 0) {
		fprintf(stderr, "vpm-simcheck: no device '%s'\n", argv[2]);
		return 1;
	}
	h = load_history(argv[3], argv[2], !prefix, &n);
	if (!h)
		return 1;
	pages = pm_device_size_pages(s, d);
	dev = malloc(pages * PM_PAGE_SIZE);
	img = calloc(pages, PM_PAGE_SIZE);
	if (!dev || !img)
		return 1;
	for (uint64_t g = 0; g < pages; g++)
		if (pm_device_read_page(s, d, g, dev + g * PM_PAGE_SIZE) < 0)
			return 1;

	/* mismatched counts the pages where the replayed image differs from the device */
	r = check(h, n, dev, img, pages, seed, prefix, argv[2]);
	free(h);
	free(dev);
	free(img);
	pm_store_close(s);
	pool_close(p);
	return r;
}
