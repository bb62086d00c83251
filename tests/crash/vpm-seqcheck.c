// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vpm-seqcheck: is a KVM VM's device, as the pool holds it after recovery, a state the guest
 * of vpm-vmm (kvm-patch/tests/vpm-vmm.c) was in? That guest stores the sequence 1, 2, 3, ...
 * into slots spread over its vPM pages (kvm-patch/tests/vpm-seq.h): a consistent
 * point-in-time image is exactly the state after the stores 1..S for some S.
 *
 *   vpm-seqcheck POOL NAME WORDS_PER_PAGE [--expect S]
 *
 * Prints "consistent at seq S" and exits 0 when the image is such a state (and, with
 * --expect, S is the one given); prints the first slot that is not and exits 1 otherwise;
 * 2 for bad arguments. It opens the pool read-write, so recovery runs first, as vpmd's
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
	if (argc == 6 && strcmp(argv[4], "--expect") == 0) {
		expect = strtoull(argv[5], &end, 10);
		has_expect = *argv[5] && !*end;
		if (!has_expect)
			return 2;
	} else if (argc != 4) {
		fprintf(stderr, "usage: vpm-seqcheck POOL NAME WORDS_PER_PAGE [--expect S]\n");
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
