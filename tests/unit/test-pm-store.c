// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The persistent store: layout encode/decode and checksums, format refusals, commits and
 * recovery, checkpoints and backpressure, PM frames and invariant 1, and corruption of each
 * structure (superblock, device table, frame map, log record, commit record).
 */
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check-main.h"
#include "log.h"
#include "pm-store.h"
#include "pool.h"

#define POOL_SIZE (UINT64_C(8) << 20)
#define LOG_SIZE  (UINT64_C(1) << 20)

static char dir[64];
static char pool_path[256], img_path[256], img2_path[256];

static void setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	snprintf(dir, sizeof(dir), "%s/vpm-test-store-XXXXXX", base);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(pool_path, sizeof(pool_path), "%s/pool", dir);
	snprintf(img_path, sizeof(img_path), "%s/dev0.img", dir);
	snprintf(img2_path, sizeof(img2_path), "%s/dev1.img", dir);
	log_set_max_level(LOG_CRIT);
}

static void teardown(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static struct pool *open_pool(void)
{
	char name[] = "t";
	struct pool_config pc = { .name = name, .path = pool_path, .kind = POOL_KIND_EMULATED,
				  .size = POOL_SIZE };
	struct pool *p = NULL;

	ck_assert_int_eq(pool_open(&pc, &p), 0);
	return p;
}

static struct pool *formatted_pool(void)
{
	struct pool *p = open_pool();
	struct pm_format_options o = { .log_size = LOG_SIZE };
	char err[256];

	ck_assert_int_eq(pm_store_format(p, &o, err, sizeof(err)), 0);
	return p;
}

static struct pm_store *open_store(struct pool *p, bool ro, struct pm_recovery *rep)
{
	struct pm_store *s = NULL;
	int r = pm_store_open(p, ro, &s, rep);

	ck_assert_msg(r == 0, "open failed: %s", rep->problem);
	return s;
}

static unsigned make_device(struct pm_store *s, const char *name, const char *img,
			    enum pm_device_mode mode)
{
	struct pm_device_info info = { .name = name, .size_pages = 16, .mode = mode,
				       .image_path = img };
	unsigned d;

	ck_assert_int_eq(pm_device_create(s, &info, &d), 0);
	return d;
}

static void page_of(uint8_t *buf, uint8_t v)
{
	memset(buf, v, PM_PAGE_SIZE);
}

static void commit_page(struct pm_store *s, unsigned d, uint64_t epoch, uint64_t gfn, uint8_t v)
{
	uint8_t buf[PM_PAGE_SIZE];
	struct pm_page pg = { .gfn = gfn, .data = buf };

	page_of(buf, v);
	ck_assert_int_eq(pm_commit(s, d, epoch, &pg, 1, NULL, 0), 0);
}

static uint8_t byte_at(struct pm_store *s, unsigned d, uint64_t gfn, size_t off)
{
	uint8_t buf[PM_PAGE_SIZE];

	ck_assert_int_ge(pm_device_read_page(s, d, gfn, buf), 0);
	return buf[off];
}

/* Close and reopen, recovering. */
static struct pm_store *reopen(struct pool **p, struct pm_store *s, struct pm_recovery *rep)
{
	pm_store_close(s);
	pool_close(*p);
	*p = open_pool();
	return open_store(*p, false, rep);
}

START_TEST(test_layout_checksums)
{
	uint8_t uuid[16] = { 1, 2, 3 };
	uint64_t seed = pm_pool_seed(uuid), owner;
	struct pm_superblock sb = { .magic = PM_SB_MAGIC };
	struct pm_device_entry e = { .magic = PM_DEV_MAGIC, .state = PM_DEV_ACTIVE,
				     .name = "dev", .size_pages = 4, .mode = PM_MODE_EPOCH,
				     .image_path = "/img" };
	struct pm_record r = { .magic = PM_REC_MAGIC, .type = PM_REC_COMMIT, .length = 64,
			       .lsn = 128, .first_lsn = 64 };

	pm_device_entry_seal(&e, seed);
	ck_assert_ptr_null(pm_device_entry_check(&e, seed));
	/* another pool's seed does not validate it */
	ck_assert_ptr_nonnull(pm_device_entry_check(&e, seed + 1));
	e.size_pages++;
	ck_assert_str_eq(pm_device_entry_check(&e, seed), "checksum mismatch");

	pm_record_seal(&r, seed);
	ck_assert_ptr_null(pm_record_check_header(&r, LOG_SIZE, seed));
	r.epoch = 9;
	ck_assert_str_eq(pm_record_check_header(&r, LOG_SIZE, seed), "header checksum mismatch");
	r.first_lsn = 4096;
	pm_record_seal(&r, seed);
	ck_assert_str_eq(pm_record_check_header(&r, LOG_SIZE, seed), "malformed commit record");

	pm_superblock_seal(&sb);
	ck_assert_str_eq(pm_superblock_check(&sb, POOL_SIZE), "unknown layout version");

	owner = pm_frame_owner(7, 3, 1234, 42, seed);
	ck_assert(pm_frame_is_valid(owner));
	ck_assert_uint_eq(pm_frame_device(owner), 3);
	ck_assert_uint_eq(pm_frame_gfn(owner), 1234);
	ck_assert(pm_frame_owner_check(owner, 7, 42, seed));
	ck_assert(!pm_frame_owner_check(owner, 8, 42, seed));  /* another frame */
	ck_assert(!pm_frame_owner_check(owner, 7, 43, seed));  /* another epoch */
	ck_assert(!pm_frame_owner_check(owner ^ (UINT64_C(1) << 20), 7, 42, seed));

	ck_assert_uint_eq(pm_pages_record_length(1), 64 + 64 + 4096);
	ck_assert_uint_eq(pm_ranges_record_length(3, 100), 64 + 64 + 128);
}
END_TEST

START_TEST(test_format_refusals)
{
	struct pool *p = open_pool();
	struct pm_format_options o = { .log_size = LOG_SIZE };
	struct pm_recovery rep;
	struct pm_store *s = NULL;
	char err[256];

	ck_assert_int_eq(pm_store_open(p, false, &s, &rep), -ENODATA);
	ck_assert_ptr_nonnull(strstr(rep.problem, "not formatted"));
	/* foreign data (say, a filesystem) is not overwritten without force */
	memcpy(p->addr, "\x53\xef something", 12);
	ck_assert_int_eq(pm_store_format(p, &o, err, sizeof(err)), -ENOTEMPTY);
	ck_assert_ptr_nonnull(strstr(err, "--force"));
	o.force = true;
	ck_assert_int_eq(pm_store_format(p, &o, err, sizeof(err)), 0);
	o.force = false;
	ck_assert_int_eq(pm_store_format(p, &o, err, sizeof(err)), -EEXIST);
	/* both superblocks from the start: one damaged copy leaves the other */
	((uint8_t *)p->addr)[40] ^= 0xff;
	ck_assert_int_eq(pm_store_open(p, true, &s, &rep), 0);
	ck_assert_int_eq(rep.superblock, 1);
	pm_store_close(s);
	o.force = true;
	o.log_size = POOL_SIZE;
	ck_assert_int_eq(pm_store_format(p, &o, err, sizeof(err)), -ENOSPC);
	o.log_size = 4096; /* below the minimum: refused before anything is written */
	ck_assert_int_eq(pm_store_format(p, &o, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "too small"));
	pool_close(p);
}
END_TEST

START_TEST(test_commit_recover_checkpoint)
{
	struct pool *p = formatted_pool();
	struct pm_recovery rep;
	struct pm_store *s = open_store(p, false, &rep);
	unsigned d = make_device(s, "d0", img_path, PM_MODE_EPOCH);
	uint8_t data[256];
	struct pm_range rg = { .gfn = 2, .offset = 128, .length = 256, .data = data };
	int fd;

	commit_page(s, d, 1, 1, 0x11);
	commit_page(s, d, 2, 1, 0x22);
	commit_page(s, d, 3, 2, 0x33);
	/* epochs only go forward */
	ck_assert_int_eq(pm_commit(s, d, 3, &(struct pm_page){ .gfn = 0, .data = data }, 1, NULL, 0),
			 -ESTALE);
	/* a range outside the page or unaligned is refused */
	rg.offset = 4000;
	ck_assert_int_eq(pm_commit(s, d, 4, NULL, 0, &rg, 1), -ERANGE);
	rg.offset = 128;
	memset(data, 0x44, sizeof(data));
	ck_assert_int_eq(pm_commit(s, d, 4, NULL, 0, &rg, 1), 0);
	ck_assert_uint_gt(pm_log_used(s), 0);

	/* nothing checkpointed: recovery replays all four epochs */
	s = reopen(&p, s, &rep);
	ck_assert_uint_eq(rep.committed_epochs, 4);
	ck_assert_uint_eq(rep.discarded_records, 0);
	ck_assert_uint_eq(pm_log_used(s), 0);
	ck_assert_uint_eq(pm_device_last_epoch(s, d), 4);
	ck_assert_uint_eq(byte_at(s, d, 1, 0), 0x22);
	ck_assert_uint_eq(byte_at(s, d, 2, 127), 0x33);
	ck_assert_uint_eq(byte_at(s, d, 2, 128), 0x44);
	ck_assert_uint_eq(byte_at(s, d, 2, 383), 0x44);
	ck_assert_uint_eq(byte_at(s, d, 2, 384), 0x33);
	ck_assert_uint_eq(byte_at(s, d, 0, 0), 0);

	/* the image file itself holds the data now */
	fd = open(img_path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, data, 1, PM_PAGE_SIZE), 1);
	ck_assert_uint_eq(data[0], 0x22);
	close(fd);

	/* a checkpoint empties the log; the epoch survives it */
	commit_page(s, d, 5, 3, 0x55);
	ck_assert_int_eq(pm_checkpoint(s), 0);
	ck_assert_uint_eq(pm_log_used(s), 0);
	s = reopen(&p, s, &rep);
	ck_assert_uint_eq(rep.committed_epochs, 0);
	ck_assert_uint_eq(pm_device_last_epoch(s, d), 5);
	ck_assert_uint_eq(byte_at(s, d, 3, 9), 0x55);
	pm_store_close(s);
	pool_close(p);
}
END_TEST

START_TEST(test_backpressure)
{
	struct pool *p = formatted_pool();
	struct pm_recovery rep;
	struct pm_store *s = open_store(p, false, &rep);
	unsigned d = make_device(s, "d0", img_path, PM_MODE_EPOCH);
	static uint8_t bufs[16][PM_PAGE_SIZE];
	struct pm_page pages[16];
	struct pm_stats st;

	/* 200 epochs of 16 pages: 13 MiB through a 1 MiB log */
	for (uint64_t e = 1; e <= 200; e++) {
		for (unsigned i = 0; i < 16; i++) {
			memset(bufs[i], (int)(e + i), PM_PAGE_SIZE);
			pages[i] = (struct pm_page){ .gfn = i, .data = bufs[i] };
		}
		ck_assert_int_eq(pm_commit(s, d, e, pages, 16, NULL, 0), 0);
	}
	pm_store_get_stats(s, &st);
	ck_assert_uint_gt(st.log_full_waits, 5);
	ck_assert_uint_eq(st.commits, 200);
	s = reopen(&p, s, &rep);
	for (unsigned i = 0; i < 16; i++)
		ck_assert_uint_eq(byte_at(s, d, i, 100), (uint8_t)(200 + i));
	/* a commit larger than half the log is refused, not split across checkpoints */
	{
		static uint8_t big[160][PM_PAGE_SIZE];
		struct pm_page bp[160];

		for (unsigned i = 0; i < 160; i++)
			bp[i] = (struct pm_page){ .gfn = i % 16, .data = big[i] };
		ck_assert_int_eq(pm_commit(s, d, 201, bp, 160, NULL, 0), -E2BIG);
	}
	pm_store_close(s);
	pool_close(p);
}
END_TEST

START_TEST(test_frames_invariant1)
{
	struct pool *p = formatted_pool();
	struct pm_recovery rep;
	struct pm_store *s = open_store(p, false, &rep);
	unsigned d = make_device(s, "d0", img_path, PM_MODE_HINT);
	uint8_t buf[PM_PAGE_SIZE], data[64];
	struct pm_range rg = { .gfn = 4, .offset = 0, .length = 64, .data = data };
	uint64_t f, free0 = pm_frames_free(s);

	commit_page(s, d, 1, 4, 0x10);
	/* only committed versions may go to a frame */
	page_of(buf, 0x10);
	ck_assert_int_eq(pm_frame_demote(s, d, 4, 2, buf, &f), -ERANGE);
	ck_assert_int_eq(pm_frame_demote(s, d, 4, 1, buf, &f), 0);
	{
		uint64_t f2;

		/* the frame holds this version already: kept, nothing written */
		ck_assert_int_eq(pm_frame_demote(s, d, 4, 1, buf, &f2), 0);
		ck_assert_uint_eq(f2, f);
	}
	ck_assert_uint_eq(pm_frames_free(s), free0 - 1);
	ck_assert_uint_eq(pm_device_frames(s, d), 1);

	/* frame (epoch 1) and log record (epoch 1) agree; the frame is kept */
	s = reopen(&p, s, &rep);
	ck_assert_uint_eq(rep.frames_in_use, 1);
	ck_assert_int_eq(pm_frame_lookup(s, d, 4, &f), 0);
	ck_assert_uint_eq(byte_at(s, d, 4, 0), 0x10);

	/* a committed range on the framed page (epoch 2) wins over the frame (epoch 1) */
	memset(data, 0x2a, sizeof(data));
	ck_assert_int_eq(pm_commit(s, d, 2, NULL, 0, &rg, 1), 0);
	s = reopen(&p, s, &rep);
	ck_assert_uint_eq(rep.frames_freed, 1);
	ck_assert_int_eq(pm_frame_lookup(s, d, 4, &f), -ENOENT); /* superseded, released */
	ck_assert_uint_eq(byte_at(s, d, 4, 0), 0x2a);
	ck_assert_uint_eq(byte_at(s, d, 4, 64), 0x10); /* the frame's base under the range */

	/* a page record newer than the frame: the record wins, the frame goes */
	memset(buf, 0x2a, 64);
	memset(buf + 64, 0x10, PM_PAGE_SIZE - 64);
	ck_assert_int_eq(pm_frame_demote(s, d, 4, 2, buf, &f), 0);
	commit_page(s, d, 3, 4, 0x30);
	s = reopen(&p, s, &rep);
	ck_assert_uint_eq(byte_at(s, d, 4, 100), 0x30);
	ck_assert_int_eq(pm_frame_lookup(s, d, 4, &f), -ENOENT);
	ck_assert_uint_eq(pm_frames_free(s), free0);

	/* a frame newer than what the image has: the frame is the page */
	page_of(buf, 0x30);
	ck_assert_int_eq(pm_frame_demote(s, d, 4, 3, buf, &f), 0);
	ck_assert_int_eq(pm_checkpoint(s), 0);
	s = reopen(&p, s, &rep);
	ck_assert_int_eq(pm_frame_lookup(s, d, 4, &f), 0);
	ck_assert_uint_eq(byte_at(s, d, 4, 100), 0x30);
	/* a newer commit: the frame stays until the checkpoint that applies it frees it */
	commit_page(s, d, 4, 4, 0x40);
	ck_assert_int_eq(pm_frame_lookup(s, d, 4, &f), 0);
	ck_assert_int_eq(pm_checkpoint(s), 0);
	ck_assert_int_eq(pm_frame_lookup(s, d, 4, &f), -ENOENT);
	ck_assert_uint_eq(byte_at(s, d, 4, 100), 0x40);
	s = reopen(&p, s, &rep);
	ck_assert_uint_eq(byte_at(s, d, 4, 100), 0x40);

	/* a frame newer than the image, then a range-only commit: frame and range survive */
	commit_page(s, d, 5, 4, 0x50);
	page_of(buf, 0x50);
	ck_assert_int_eq(pm_frame_demote(s, d, 4, 5, buf, &f), 0);
	ck_assert_int_eq(pm_checkpoint(s), 0); /* the frame holds epoch 5: the image keeps 0x40 */
	memset(data, 0x66, sizeof(data));
	rg.offset = 128;
	ck_assert_int_eq(pm_commit(s, d, 6, NULL, 0, &rg, 1), 0);
	ck_assert_int_eq(pm_checkpoint(s), 0);
	s = reopen(&p, s, &rep);
	ck_assert_uint_eq(byte_at(s, d, 4, 0), 0x50);
	ck_assert_uint_eq(byte_at(s, d, 4, 128), 0x66);
	ck_assert_uint_eq(byte_at(s, d, 4, 300), 0x50);
	ck_assert_int_eq(pm_frame_lookup(s, d, 4, &f), -ENOENT);
	pm_store_close(s);
	pool_close(p);
}
END_TEST

/* A pool with two devices, a frame, a checkpoint and committed epochs still in the log. */
static struct pool *busy_pool(unsigned *d0, uint64_t *frame)
{
	struct pool *p = formatted_pool();
	struct pm_recovery rep;
	struct pm_store *s = open_store(p, false, &rep);
	uint8_t buf[PM_PAGE_SIZE];

	*d0 = make_device(s, "d0", img_path, PM_MODE_EPOCH);
	make_device(s, "d1", img2_path, PM_MODE_EPOCH);
	commit_page(s, *d0, 1, 0, 0x01);
	page_of(buf, 0x01);
	ck_assert_int_eq(pm_frame_demote(s, *d0, 0, 1, buf, frame), 0);
	ck_assert_int_eq(pm_checkpoint(s), 0);
	commit_page(s, *d0, 2, 1, 0x02);
	commit_page(s, *d0, 3, 2, 0x03);
	pm_store_close(s);
	return p;
}

static int open_result(struct pool *p, struct pm_recovery *rep)
{
	struct pm_store *s = NULL;
	int r = pm_store_open(p, true, &s, rep);

	pm_store_close(s);
	return r;
}

/* The superblock whose generation is highest, valid or not. */
static struct pm_superblock *newest_sb(struct pool *p)
{
	struct pm_superblock *a = p->addr, *b = (void *)((uint8_t *)p->addr + PM_SB_SIZE);

	return b->generation > a->generation ? b : a;
}

/* The byte in the pool of the log record at lsn. */
static uint8_t *log_byte(struct pool *p, uint64_t lsn)
{
	struct pm_superblock *sb = newest_sb(p);

	return (uint8_t *)p->addr + sb->log_offset + lsn % sb->log_size;
}

START_TEST(test_corrupt_superblocks)
{
	unsigned d;
	uint64_t f;
	struct pool *p = busy_pool(&d, &f);
	struct pm_superblock *a = p->addr, *b = (void *)((uint8_t *)p->addr + PM_SB_SIZE);
	struct pm_superblock *newer = newest_sb(p);
	struct pm_recovery rep;
	struct pm_store *s;

	/* the newer superblock damaged: the older one still describes a usable log */
	newer->tail_lsn ^= 64;
	ck_assert_int_eq(open_result(p, &rep), 0);
	ck_assert(rep.superblock_fallback);
	s = open_store(p, false, &rep);
	ck_assert_uint_eq(byte_at(s, d, 2, 0), 0x03);
	ck_assert_uint_eq(byte_at(s, d, 0, 0), 0x01);
	pm_store_close(s);

	/* both damaged: refused, and nothing is written */
	a->generation ^= 1;
	b->generation ^= 1;
	ck_assert_int_eq(open_result(p, &rep), -EUCLEAN);
	ck_assert_ptr_nonnull(strstr(rep.problem, "no valid superblock"));
	ck_assert_int_eq(rep.superblock, -1);

	/* a well-formed superblock of a future layout is refused with the versions named */
	a->generation ^= 1;
	a->layout_version = 2;
	pm_superblock_seal(a);
	b->magic[0] = 'X';
	ck_assert_int_eq(open_result(p, &rep), -EPROTONOSUPPORT);
	ck_assert_ptr_nonnull(strstr(rep.problem, "layout version 2"));
	pool_close(p);
}
END_TEST

START_TEST(test_corrupt_device_table)
{
	unsigned d;
	uint64_t f;
	struct pool *p = busy_pool(&d, &f);
	struct pm_recovery rep;
	struct pm_superblock *sb = p->addr;
	uint8_t *slot0 = (uint8_t *)p->addr + sb->devtab_offset + (uint64_t)d * 2 * PM_DEV_SLOT_SIZE;
	struct pm_store *s;

	/* one copy damaged: the other serves */
	slot0[100] ^= 0xff;
	s = open_store(p, true, &rep);
	ck_assert_uint_eq(rep.devices, 2);
	ck_assert_uint_eq(byte_at(s, d, 0, 0), 0x01);
	pm_store_close(s);
	/* both damaged: the device cannot be trusted, the pool is refused */
	slot0[PM_DEV_SLOT_SIZE + 100] ^= 0xff;
	ck_assert_int_eq(open_result(p, &rep), -EUCLEAN);
	ck_assert_ptr_nonnull(strstr(rep.problem, "device table slot"));
	pool_close(p);
}
END_TEST

START_TEST(test_corrupt_frame_map)
{
	unsigned d;
	uint64_t f;
	struct pool *p = busy_pool(&d, &f);
	struct pm_recovery rep;
	struct pm_superblock *sb = p->addr;
	struct pm_frame_entry *e = (void *)((uint8_t *)p->addr + sb->framemap_offset);

	e[f].epoch ^= 4; /* the check over (frame, device, gfn, epoch) catches it */
	ck_assert_int_eq(open_result(p, &rep), -EUCLEAN);
	ck_assert_ptr_nonnull(strstr(rep.problem, "frame map entry"));
	e[f].epoch ^= 4;
	e[f].owner ^= UINT64_C(1) << 30; /* another gfn */
	ck_assert_int_eq(open_result(p, &rep), -EUCLEAN);
	e[f].owner ^= UINT64_C(1) << 30;
	ck_assert_int_eq(open_result(p, &rep), 0);
	pool_close(p);
}
END_TEST

START_TEST(test_corrupt_log)
{
	unsigned d;
	uint64_t f, tail, rec2, commit2;
	struct pool *p = busy_pool(&d, &f);
	struct pm_recovery rep;
	struct pm_store *s;
	uint8_t saved;

	/* log after the checkpoint: [pages e2][commit e2][pages e3][commit e3] */
	tail = newest_sb(p)->tail_lsn;
	commit2 = tail + pm_pages_record_length(1);
	rec2 = commit2 + 64;
	ck_assert_int_eq(open_result(p, &rep), 0);
	ck_assert_uint_eq(rep.committed_epochs, 2);

	/* the last commit record torn: that epoch is ignored, the one before is kept */
	saved = *log_byte(p, rec2 + pm_pages_record_length(1) + 8);
	*log_byte(p, rec2 + pm_pages_record_length(1) + 8) ^= 0x5a;
	ck_assert_int_eq(open_result(p, &rep), 0);
	ck_assert_uint_eq(rep.committed_epochs, 1);
	ck_assert_uint_eq(rep.discarded_records, 1);
	*log_byte(p, rec2 + pm_pages_record_length(1) + 8) = saved;

	/* a damaged data record of a committed epoch, followed by valid records: refused */
	*log_byte(p, tail + 64 + 100) ^= 0x01;
	ck_assert_int_eq(open_result(p, &rep), -EUCLEAN);
	ck_assert_ptr_nonnull(strstr(rep.problem, "later commits are valid"));
	*log_byte(p, tail + 64 + 100) ^= 0x01;

	/* a damaged commit record in the middle: refused as well */
	*log_byte(p, commit2 + 24) ^= 0x10;
	ck_assert_int_eq(open_result(p, &rep), -EUCLEAN);
	*log_byte(p, commit2 + 24) ^= 0x10;

	/* the last data record torn (its commit never written): dropped, older state kept */
	memset(log_byte(p, rec2 + pm_pages_record_length(1)), 0, 64);
	*log_byte(p, rec2 + 64 + 4000) ^= 0xff;
	s = open_store(p, false, &rep);
	ck_assert_uint_eq(rep.committed_epochs, 1);
	ck_assert_uint_eq(byte_at(s, d, 1, 0), 0x02);
	ck_assert_uint_eq(byte_at(s, d, 2, 0), 0x00);
	ck_assert_uint_eq(pm_device_last_epoch(s, d), 2);
	pm_store_close(s);
	pool_close(p);
}
END_TEST

START_TEST(test_damage_after_long_range_record)
{
	/* a ranges record longer than any page record, damaged: later commits must be found */
	struct pool *p = formatted_pool();
	struct pm_recovery rep;
	struct pm_store *s = open_store(p, false, &rep);
	struct pm_device_info info = { .name = "h", .size_pages = 64, .mode = PM_MODE_HINT,
				       .image_path = img_path };
	static uint8_t data[256][512];
	struct pm_range rg[256];
	uint64_t tail = newest_sb(p)->tail_lsn;
	unsigned d;

	ck_assert_int_eq(pm_device_create(s, &info, &d), 0);
	for (unsigned i = 0; i < 256; i++) {
		memset(data[i], (int)i, 512);
		rg[i] = (struct pm_range){ .gfn = i / 8, .offset = (i % 8) * 512, .length = 512,
					   .data = data[i] };
	}
	ck_assert_int_eq(pm_commit(s, d, 1, NULL, 0, rg, 256), 0);
	commit_page(s, d, 2, 40, 0x22);
	pm_store_close(s);
	*log_byte(p, tail + 64 + 5000) ^= 1;
	ck_assert_int_eq(open_result(p, &rep), -EUCLEAN);
	ck_assert_ptr_nonnull(strstr(rep.problem, "later commits are valid"));
	pool_close(p);
}
END_TEST

START_TEST(test_fallback_after_wrap)
{
	/* the newest superblock damaged after the log lapped the older one's checkpoint */
	struct pool *p = formatted_pool();
	struct pm_recovery rep;
	struct pm_store *s = open_store(p, false, &rep);
	unsigned d = make_device(s, "e", img_path, PM_MODE_EPOCH);
	uint8_t line[64];
	struct pm_range rg = { .gfn = 0, .offset = 0, .length = 64, .data = line };
	uint64_t e = 0, t1, t2;

	memset(line, 1, sizeof(line));
	ck_assert_int_eq(pm_commit(s, d, ++e, NULL, 0, &rg, 1), 0);
	ck_assert_int_eq(pm_checkpoint(s), 0);
	t1 = newest_sb(p)->tail_lsn;
	for (int i = 0; i < 120; i++) {
		e++;
		commit_page(s, d, e, 1 + (uint64_t)i % 8, (uint8_t)e);
	}
	ck_assert_int_eq(pm_checkpoint(s), 0);
	t2 = newest_sb(p)->tail_lsn;
	while (pm_log_used(s) + t2 < t1 + LOG_SIZE + 140000) {
		e++;
		commit_page(s, d, e, 10 + e % 4, (uint8_t)e);
	}
	pm_store_close(s);
	newest_sb(p)->tail_lsn ^= 64;
	ck_assert_int_eq(open_result(p, &rep), -EUCLEAN);
	ck_assert(rep.superblock_fallback);
	ck_assert_ptr_nonnull(strstr(rep.problem, "moved past"));
	pool_close(p);
}
END_TEST

START_TEST(test_hostile_superblock)
{
	/* checksum-valid, but its regions wrap around 2^64 or overlap: refused, no crash */
	struct pool *p = formatted_pool();
	struct pm_superblock *a = p->addr, saved = *a;

	a->log_offset = 0 - a->log_size;
	a->frames_offset = (a->framemap_offset + 4 * 4096 + 4095) / 4096 * 4096;
	a->n_frames = 4;
	pm_superblock_seal(a);
	ck_assert_str_eq(pm_superblock_check(a, POOL_SIZE), "log region out of place");
	*a = saved;
	a->n_frames = UINT64_MAX / 4096;
	pm_superblock_seal(a);
	ck_assert_ptr_nonnull(pm_superblock_check(a, POOL_SIZE));
	*a = saved;
	a->frames_offset = UINT64_MAX - 4095;
	pm_superblock_seal(a);
	ck_assert_ptr_nonnull(pm_superblock_check(a, POOL_SIZE));
	pool_close(p);
}
END_TEST

START_TEST(test_check_is_read_only)
{
	unsigned d;
	uint64_t f;
	struct pool *p = busy_pool(&d, &f);
	struct pm_recovery rep;
	uint8_t *before = malloc(POOL_SIZE);
	struct stat st;

	ck_assert_ptr_nonnull(before);
	memcpy(before, p->addr, POOL_SIZE);
	ck_assert_int_eq(open_result(p, &rep), 0);
	ck_assert_uint_eq(rep.committed_epochs, 2);
	ck_assert_uint_eq(rep.replayed_bytes, 2 * pm_pages_record_length(1));
	ck_assert_int_eq(memcmp(before, p->addr, POOL_SIZE), 0);
	ck_assert_int_eq(stat(img_path, &st), 0);
	free(before);
	pool_close(p);
}
END_TEST

/*
 * Batched demotion: a page whose frame holds its newest version keeps it; one whose frame a
 * newer commit (page or byte range) superseded gets a new frame, the old one freed; every
 * page reads back its newest version after recovery, ranges on top of their base included.
 */
START_TEST(test_frames_batch)
{
	struct pool *p = formatted_pool();
	struct pm_recovery rep;
	struct pm_store *s = open_store(p, false, &rep);
	unsigned d = make_device(s, "d0", img_path, PM_MODE_HINT);
	uint8_t a[PM_PAGE_SIZE], b[PM_PAGE_SIZE], c[PM_PAGE_SIZE], line[64];
	uint64_t gfns[3] = { 1, 2, 3 }, f1[3], f2[3], free0 = pm_frames_free(s);
	const void *data[3] = { a, b, c };
	struct pm_range rg = { .gfn = 2, .offset = 128, .length = 64, .data = line };

	commit_page(s, d, 1, 1, 0x11);
	commit_page(s, d, 2, 2, 0x22);
	commit_page(s, d, 3, 3, 0x33);
	page_of(a, 0x11);
	page_of(b, 0x22);
	page_of(c, 0x33);
	ck_assert_int_eq(pm_frames_demote(s, d, 3, 3, gfns, data, f1), 3);
	ck_assert_uint_eq(pm_frames_free(s), free0 - 3);
	/* nothing newer: the same frames, nothing written */
	ck_assert_int_eq(pm_frames_demote(s, d, 3, 3, gfns, data, f2), 3);
	ck_assert_int_eq(memcmp(f1, f2, sizeof(f1)), 0);
	/* page 1 gets a newer page, page 2 a newer range over its frame's base */
	commit_page(s, d, 4, 1, 0x44);
	memset(line, 0x55, sizeof(line));
	ck_assert_int_eq(pm_commit(s, d, 5, NULL, 0, &rg, 1), 0);
	page_of(a, 0x44);
	memcpy(b + 128, line, sizeof(line));
	ck_assert_int_eq(pm_frames_demote(s, d, 5, 3, gfns, data, f2), 3);
	ck_assert_uint_ne(f2[0], f1[0]);
	ck_assert_uint_ne(f2[1], f1[1]);
	ck_assert_uint_eq(f2[2], f1[2]);
	ck_assert_uint_eq(pm_frames_free(s), free0 - 3); /* the superseded two are free */
	ck_assert_uint_eq(pm_device_frames(s, d), 3);
	/* out of range: nothing happens */
	{
		uint64_t bad[2] = { 4, 99 };

		ck_assert_int_eq(pm_frames_demote(s, d, 5, 2, bad, data, f2), -ERANGE);
		ck_assert_int_eq(pm_frames_demote(s, d, 6, 1, gfns, data, f2), -ERANGE);
	}
	s = reopen(&p, s, &rep);
	ck_assert_uint_eq(rep.frames_in_use, 3);
	ck_assert_uint_eq(byte_at(s, d, 1, 0), 0x44);
	ck_assert_uint_eq(byte_at(s, d, 2, 0), 0x22);
	ck_assert_uint_eq(byte_at(s, d, 2, 128), 0x55);
	ck_assert_uint_eq(byte_at(s, d, 3, 4095), 0x33);
	pm_store_close(s);
	pool_close(p);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("pm-store");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_layout_checksums);
	tcase_add_test(tc, test_format_refusals);
	tcase_add_test(tc, test_commit_recover_checkpoint);
	tcase_add_test(tc, test_backpressure);
	tcase_add_test(tc, test_frames_invariant1);
	tcase_add_test(tc, test_frames_batch);
	tcase_add_test(tc, test_corrupt_superblocks);
	tcase_add_test(tc, test_corrupt_device_table);
	tcase_add_test(tc, test_corrupt_frame_map);
	tcase_add_test(tc, test_corrupt_log);
	tcase_add_test(tc, test_damage_after_long_range_record);
	tcase_add_test(tc, test_fallback_after_wrap);
	tcase_add_test(tc, test_hostile_superblock);
	tcase_add_test(tc, test_check_is_read_only);
	suite_add_tcase(s, tc);
	return s;
}

VPM_CHECK_MAIN(store_suite)
