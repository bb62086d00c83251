// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libFuzzer target: damaged pool images through open and recovery. A real pool (devices,
 * committed epochs in the log, a PM frame, a checkpoint) is built once; each input is a list
 * of patches {u32 offset, u8 length, bytes} applied to a fresh copy of its metadata and log.
 * The pool is then checked read-only and, when its device table still names the original
 * image files, recovered read-write. Nothing may crash, hang or read out of bounds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pm-store.h"
#include "pool.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define POOL_SIZE (UINT64_C(4) << 20)

static struct pool *pool;
static uint8_t *base;
static uint64_t meta_end, devtab_off, devtab_size;
static char dir[64];

static void die(const char *what)
{
	fprintf(stderr, "fuzz-pool: setup failed: %s\n", what);
	abort();
}

static void build_pool(void)
{
	struct pm_format_options o = { .log_size = UINT64_C(1) << 20 };
	struct pm_recovery rep;
	struct pm_store *s = NULL;
	char img[2][128], err[256];
	uint8_t page[4096], line[128];
	unsigned d[2];

	if (pm_store_format(pool, &o, err, sizeof(err)) < 0 ||
	    pm_store_open(pool, false, &s, &rep) < 0)
		die("format");
	for (unsigned i = 0; i < 2; i++) {
		struct pm_device_info info = { .name = i ? "hint" : "epoch", .size_pages = 8,
					       .mode = i ? PM_MODE_HINT : PM_MODE_EPOCH,
					       .image_path = img[i] };

		snprintf(img[i], sizeof(img[i]), "%s/dev%u.img", dir, i);
		if (pm_device_create(s, &info, &d[i]) < 0)
			die("device");
	}
	for (uint64_t e = 1; e <= 6; e++) {
		struct pm_page pg = { .gfn = e % 8, .data = page };
		struct pm_range rg = { .gfn = e % 8, .offset = 64 * (unsigned)e, .length = 128,
				       .data = line };

		memset(page, (int)e, sizeof(page));
		memset(line, (int)(0x80 + e), sizeof(line));
		if (pm_commit(s, d[0], e, &pg, 1, NULL, 0) < 0 ||
		    pm_commit(s, d[1], e, &pg, e % 2, &rg, 1) < 0)
			die("commit");
		if (e == 2 && pm_frame_demote(s, d[0], 2, 2, page, NULL) < 0)
			die("demote");
		if (e == 3 && pm_checkpoint(s) < 0)
			die("checkpoint");
	}
	pm_store_close(s);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char name[] = "fuzz", path[128];
	struct pool_config pc = { .name = name, .path = path, .kind = POOL_KIND_EMULATED,
				  .size = POOL_SIZE };
	const struct pm_superblock *sb;

	(void)argc;
	(void)argv;
	log_set_max_level(LOG_EMERG);
	snprintf(dir, sizeof(dir), "%s/vpm-fuzz-pool.XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(dir))
		die("mkdtemp");
	snprintf(path, sizeof(path), "%s/pool", dir);
	if (pool_open(&pc, &pool) < 0)
		die("pool");
	build_pool();
	sb = pool->addr;
	meta_end = sb->log_offset + sb->log_size;
	devtab_off = sb->devtab_offset;
	devtab_size = sb->devtab_size;
	base = malloc(meta_end);
	if (!base)
		die("malloc");
	memcpy(base, pool->addr, meta_end);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p = pool->addr;
	struct pm_recovery rep;
	struct pm_store *s = NULL;
	uint8_t page[4096];

	memcpy(p, base, meta_end);
	while (size >= 5) {
		uint32_t off;
		size_t n = data[4];

		memcpy(&off, data, 4);
		data += 5;
		size -= 5;
		n = n < size ? n : size;
		/* most of the bytes that matter are in the first pages of each region */
		off %= (uint32_t)meta_end;
		if (off + n > meta_end)
			n = meta_end - off;
		memcpy(p + off, data, n);
		data += n;
		size -= n;
	}
	if (pm_store_open(pool, true, &s, &rep) == 0)
		pm_store_close(s);
	/* recover for real only while the device table names our own image files */
	if (memcmp(p + devtab_off, base + devtab_off, devtab_size) == 0 &&
	    pm_store_open(pool, false, &s, &rep) == 0) {
		for (unsigned d = 0; d < 2; d++)
			for (uint64_t g = 0; g < 8; g++)
				(void)pm_device_read_page(s, d, g, page);
		pm_store_close(s);
	}
	return 0;
}
