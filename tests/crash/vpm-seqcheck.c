// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vpm-seqcheck: is a KVM VM's device, as the pool holds it after recovery, a state the guest
 * of vpm-vmm (kvm-patch/tests/vpm-vmm.c) was in? That guest stores the sequence 1, 2, 3, ...
 * into slots spread over its vPM pages (kvm-patch/tests/vpm-seq.h): a consistent
 * point-in-time image is exactly the state after the stores 1..S for some S.
 *
 *   vpm-seqcheck POOL NAME WORDS_PER_PAGE [--expect S]
 *   vpm-seqcheck POOL NAME WORDS_PER_PAGE --hinted K --through S
 *
 * Prints "consistent at seq S" and exits 0 when the image is such a state (and, with
 * --expect, S is the one given); prints the first slot that is not and exits 1 otherwise;
 * 2 for bad arguments.
 *
 * --hinted: a guest in hint mode (vpm-vmm --hint-every K) had every K-th store followed by a
 * persist hint of its slot, and the hints of the stores up to S returned: each slot must hold
 * a value of its own (or 0), no older than the last hinted store up to S into it. Other
 * stores may or may not be durable. It opens the pool read-write, so recovery runs first, as vpmd's
 * start would.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "pm-store.h"
#include "pool.h"
#include "vpm-seq.h"

static int read_device(const char *path, const char *name, uint8_t **ret, uint64_t *ret_size)
{
	char pname[] = "check";
	struct pool_config pc = { .name = pname, .path = (char *)path, .kind = POOL_KIND_AUTO };
	struct pm_recovery rep = {};
	struct pool *p = NULL;
	struct pm_store *s = NULL;
	struct stat st;
	uint64_t pages;
	uint8_t *img;
	unsigned d;

	if (stat(path, &st) == 0 && !S_ISCHR(st.st_mode))
		pc.kind = POOL_KIND_EMULATED;
	if (pool_open(&pc, &p) < 0 || pm_store_open(p, false, &s, &rep) < 0) {
		fprintf(stderr, "vpm-seqcheck: cannot recover pool '%s': %s\n", path, rep.problem);
		return -1;
	}
	if (pm_device_find(s, name, &d) < 0) {
		fprintf(stderr, "vpm-seqcheck: pool '%s' has no device '%s'\n", path, name);
		return -1;
	}
	pages = pm_device_size_pages(s, d);
	img = malloc(pages * PM_PAGE_SIZE);
	if (!img)
		return -1;
	for (uint64_t g = 0; g < pages; g++)
		if (pm_device_read_page(s, d, g, img + g * PM_PAGE_SIZE) < 0) {
			fprintf(stderr, "vpm-seqcheck: cannot read page %" PRIu64 " of '%s'\n", g,
				name);
			free(img);
			return -1;
		}
	*ret = img;
	*ret_size = pages * PM_PAGE_SIZE;
	return 0;
}

/* The durability of hinted stores: see above. */
static int check_hinted(const uint8_t *img, uint64_t size, unsigned wpp, uint64_t k,
			uint32_t through)
{
	uint64_t pages = seq_pages(size), slots = seq_slots(size, wpp), seen = 0;
	uint32_t *need = calloc(slots, sizeof(*need));

	if (!need)
		return -1;
	/* the newest hinted store up to through, slot by slot */
	for (uint64_t h = through / k * k; h >= k && seen < slots; h -= k) {
		uint64_t i = seq_slot_of(slots, (uint32_t)h);

		if (!need[i]) {
			need[i] = (uint32_t)h;
			seen++;
		}
	}
	for (uint64_t i = 0; i < slots; i++) {
		uint32_t v = seq_load(img + seq_slot_offset(pages, i));

		if (v && seq_slot_of(slots, v) != i) {
			printf("NOT durable: slot %" PRIu64 " holds %" PRIu32 ", a value of slot %" PRIu64
			       "\n",
			       i, v, seq_slot_of(slots, v));
			free(need);
			return -1;
		}
		if (v < need[i]) {
			printf("NOT durable: slot %" PRIu64 " holds %" PRIu32 ", older than the hinted "
			       "store %" PRIu32 "\n",
			       i, v, need[i]);
			free(need);
			return -1;
		}
	}
	printf("every hinted store up to seq %" PRIu32 " durable (%" PRIu64 " slots checked)\n",
	       through, seen);
	free(need);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t size, expect = 0;
	bool has_expect = false;
	unsigned long wpp;
	uint32_t last;
	char why[256] = "";
	uint8_t *img;
	char *end;

	log_set_max_level(LOG_WARNING);
	if (argc == 8 && strcmp(argv[4], "--hinted") == 0 && strcmp(argv[6], "--through") == 0) {
		uint64_t k = strtoull(argv[5], &end, 10), through;

		if (!*argv[5] || *end || k == 0)
			return 2;
		through = strtoull(argv[7], &end, 10);
		if (!*argv[7] || *end || through > SEQ_MAX)
			return 2;
		wpp = strtoul(argv[3], &end, 10);
		if (!*argv[3] || *end || wpp == 0 || wpp > SEQ_MAX_WORDS)
			return 2;
		if (read_device(argv[1], argv[2], &img, &size) < 0)
			return 1;
		if (check_hinted(img, size, (unsigned)wpp, k, (uint32_t)through) < 0)
			return 1;
		free(img);
		return 0;
	}
	if (argc == 6 && strcmp(argv[4], "--expect") == 0) {
		expect = strtoull(argv[5], &end, 10);
		has_expect = *argv[5] && !*end;
		if (!has_expect)
			return 2;
	} else if (argc != 4) {
		fprintf(stderr, "usage: vpm-seqcheck POOL NAME WORDS_PER_PAGE [--expect S]\n"
				"       vpm-seqcheck POOL NAME WORDS_PER_PAGE --hinted K --through S\n");
		return 2;
	}
	wpp = strtoul(argv[3], &end, 10);
	if (!*argv[3] || *end || wpp == 0 || wpp > SEQ_MAX_WORDS)
		return 2;
	if (read_device(argv[1], argv[2], &img, &size) < 0)
		return 1;
	if (seq_check_snapshot(img, size, (unsigned)wpp, &last, why, sizeof(why)) < 0) {
		printf("NOT consistent (compared at seq %" PRIu32 "): %s\n", last, why);
		return 1;
	}
	if (has_expect && last != expect) {
		printf("consistent at seq %" PRIu32 ", but the guest's last store was %" PRIu64
		       "\n",
		       last, expect);
		return 1;
	}
	printf("consistent at seq %" PRIu32 "\n", last);
	free(img);
	return 0;
}
