// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vpm-simcheck: compare a simulated VM's device, as the pool holds it after recovery, with
 * the guest's write history (the files vpm-simguest -H writes).
 *
 *   vpm-simcheck POOL NAME HISTORY_DIR SEED final    every write must be there
 *   vpm-simcheck POOL NAME HISTORY_DIR SEED prefix   the device must equal the image after
 *                                                   some prefix of the writes (a consistent
 *                                                   cut: what a crash may leave)
 *   vpm-simcheck POOL NAME HISTORY_DIR SEED hint     every write whose persist hint returned
 *                                                   is there, or a later write over it (hint
 *                                                   mode: other writes may or may not be)
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

#define rec sim_history_record

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
enum gaps { GAPS_ARE_ERRORS, GAPS_END_IT, GAPS_KEPT };

static struct rec *load_history(const char *dir, const char *name, enum gaps gaps, size_t *ret_n,
			       struct rec **ret_persisted, size_t *ret_n_persisted)
{
	size_t n_persisted = 0, n = 0, alloc = 1 << 16, prefix = strlen(name);
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
			if (all[n].flags & SIM_HIST_PERSISTED)
				n_persisted++;
			n++;
		}
		fclose(f);
	}
	closedir(d);
	/* the persisted marks go to their own array; the writes stay, in order */
	struct rec *marks = malloc((n_persisted + 1) * sizeof(*marks));
	size_t w = 0, m = 0;

	if (!marks)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (all[i].flags & SIM_HIST_PERSISTED)
			marks[m++] = all[i];
		else
			all[w++] = all[i];
	}
	n = w;
	*ret_persisted = marks;
	*ret_n_persisted = m;
	qsort(all, n, sizeof(*all), by_seq);
	for (size_t i = 0; i < n && gaps != GAPS_KEPT; i++)
		if (all[i].seq != i) {
			if (gaps == GAPS_END_IT) {
				n = i;
				break;
			}
			fprintf(stderr, "vpm-simcheck: history has a gap at write %zu\n", i);
			return NULL;
		}
	*ret_n = n;
	return all;
}

/* Words of [off, off + len) of a page where the replayed image differs from the device. */
static uint64_t differing_words(const uint8_t *dev, const uint8_t *img, uint32_t off, uint32_t len)
{
	uint64_t n = 0;

	for (uint32_t i = off; i < off + len; i += 8)
		n += memcmp(dev + i, img + i, 8) != 0;
	return n;
}

/*
 * Replay the writes in order onto a zero image, keeping the count of words where image and
 * device differ (each write changes only its own words): prefix mode stops at the first
 * prefix with none, final mode wants none after all.
 */
static int check(const struct rec *h, size_t n, const uint8_t *dev, uint8_t *img, uint64_t pages,
		 uint64_t seed, bool prefix, const char *name)
{
	uint64_t mismatched = differing_words(dev, img, 0, 0), pages_bad = 0;

	for (uint64_t g = 0; g < pages; g++)
		mismatched += differing_words(dev + g * PM_PAGE_SIZE, img + g * PM_PAGE_SIZE, 0,
					      PM_PAGE_SIZE);
	if (prefix && mismatched == 0) {
		printf("vpm-simcheck: %s matches the first 0 of %zu writes\n", name, n);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t g = h[i].gfn;
		const uint8_t *d = dev + g * PM_PAGE_SIZE;
		uint8_t *m = img + g * PM_PAGE_SIZE;

		if (g >= pages || h[i].offset + h[i].len > PM_PAGE_SIZE || h[i].len % 8)
			return 1;
		mismatched -= differing_words(d, m, h[i].offset, h[i].len);
		sim_write_pattern(m + h[i].offset, h[i].len, h[i].seq, seed);
		mismatched += differing_words(d, m, h[i].offset, h[i].len);
		if (prefix && mismatched == 0) {
			printf("vpm-simcheck: %s matches the first %zu of %zu writes\n", name, i + 1, n);
			return 0;
		}
	}
	if (!prefix && mismatched == 0) {
		printf("vpm-simcheck: %s holds all %zu writes\n", name, n);
		return 0;
	}
	for (uint64_t g = 0; g < pages; g++)
		pages_bad += memcmp(dev + g * PM_PAGE_SIZE, img + g * PM_PAGE_SIZE, PM_PAGE_SIZE) != 0;
	fprintf(stderr, "vpm-simcheck: %s: %" PRIu64 " of %" PRIu64 " pages match no %s\n", name,
		pages_bad, pages, prefix ? "prefix of the writes" : "replay of all writes");
	return 1;
}

/* The 8-byte word at byte offset off of write w's pattern. */
static uint64_t pattern_word(const struct rec *w, uint32_t off, uint64_t seed)
{
	uint8_t buf[PM_PAGE_SIZE];

	sim_write_pattern(buf, off - w->offset + 8, w->seq, seed);
	return *(uint64_t *)(void *)(buf + off - w->offset);
}

/*
 * Hint mode: for every word of every write whose hint returned, the device holds that write's
 * word or the word of a later write to the same place. The writes are indexed by page (in
 * seq order) so that each word looks only at its own page's later writes.
 */
static int check_hints(const struct rec *h, size_t n, const struct rec *marks, size_t n_marks,
		       const uint8_t *dev, uint64_t pages, uint64_t seed, const char *name)
{
	uint64_t bad = 0, words = 0;
	size_t *start = calloc(pages + 1, sizeof(size_t)), *idx = malloc((n + 1) * sizeof(size_t));
	size_t *fill = calloc(pages + 1, sizeof(size_t));

	if (!start || !idx || !fill)
		return 1;
	for (size_t i = 0; i < n; i++)
		if (h[i].gfn < pages)
			start[h[i].gfn + 1]++;
	for (uint64_t g = 0; g < pages; g++)
		start[g + 1] += start[g];
	for (size_t i = 0; i < n; i++)
		if (h[i].gfn < pages)
			idx[start[h[i].gfn] + fill[h[i].gfn]++] = i;
	for (size_t i = 0; i < n_marks; i++) {
		const struct rec *p = &marks[i];
		size_t first, last;

		if (p->gfn >= pages || p->offset + p->len > PM_PAGE_SIZE)
			return 1;
		first = start[p->gfn];
		last = start[p->gfn + 1];
		/* the page's writes from p's own on (binary search by seq) */
		while (first < last) {
			size_t mid = first + (last - first) / 2;

			if (h[idx[mid]].seq < p->seq)
				first = mid + 1;
			else
				last = mid;
		}
		for (uint32_t off = p->offset; off < p->offset + p->len; off += 8) {
			uint64_t have = *(const uint64_t *)(const void *)(dev + p->gfn * PM_PAGE_SIZE + off);
			bool ok = false;

			for (size_t j = first; j < start[p->gfn + 1] && !ok; j++) {
				const struct rec *w = &h[idx[j]];

				if (w->offset <= off && off < w->offset + w->len)
					ok = pattern_word(w, off, seed) == have;
			}
			words++;
			bad += !ok;
		}
	}
	free(start);
	free(idx);
	free(fill);
	if (bad) {
		fprintf(stderr, "vpm-simcheck: %s: %" PRIu64 " of %" PRIu64 " persisted words lost\n",
			name, bad, words);
		return 1;
	}
	printf("vpm-simcheck: %s holds all %zu persisted writes (%" PRIu64 " words)\n", name,
	       n_marks, words);
	return 0;
}

int main(int argc, char **argv)
{
	char pname[] = "check";
	struct pool_config pc = { .name = pname, .kind = POOL_KIND_EMULATED };
	struct pool *p = NULL;
	struct pm_store *s = NULL;
	struct pm_recovery rep;
	struct rec *h, *marks = NULL;
	size_t n_marks = 0;
	bool hint;
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
	hint = strcmp(argv[5], "hint") == 0;
	if (pool_open(&pc, &p) < 0 || pm_store_open(p, false, &s, &rep) < 0) {
		fprintf(stderr, "vpm-simcheck: cannot recover the pool: %s\n", rep.problem);
		return 1;
	}
	if (pm_device_find(s, argv[2], &d) < 0) {
		fprintf(stderr, "vpm-simcheck: no device '%s'\n", argv[2]);
		return 1;
	}
	h = load_history(argv[3], argv[2], hint ? GAPS_KEPT : prefix ? GAPS_END_IT : GAPS_ARE_ERRORS,
			 &n, &marks, &n_marks);
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
	if (hint)
		r = check_hints(h, n, marks, n_marks, dev, pages, seed, argv[2]);
	else
		r = check(h, n, dev, img, pages, seed, prefix, argv[2]);
	free(h);
	free(marks);
	free(dev);
	free(img);
	pm_store_close(s);
	pool_close(p);
	return r;
}
