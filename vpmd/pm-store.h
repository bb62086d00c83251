/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The persistent half of vpmd: a formatted PM pool holding the device table, the frame map
 * and the redo log of epoch commits (see pm-layout.h), and the operations on it: format,
 * open with recovery, epoch commits, PM frames, checkpoints and a read-only check.
 *
 * Durability rules this code keeps (DESIGN.md, "Invariants"):
 *  - a commit is durable when its commit record is; recovery applies exactly the committed
 *    epochs, in log order, and ignores torn or uncommitted records;
 *  - for every page, the newest committed full-page version (image, PM frame or page record,
 *    by epoch) plus every later committed byte range is the page's content;
 *  - nothing is freed before its successor is durable: a PM frame is freed only once a newer
 *    version is committed, and the log tail advances only after the images are fdatasync'ed.
 */
#ifndef VPMD_PM_STORE_H
#define VPMD_PM_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "pm-layout.h"

struct pool;

struct pm_store;

struct pm_page {
	uint64_t gfn;
	const void *data; /* PM_PAGE_SIZE bytes */
};

struct pm_range {
	uint64_t gfn;
	uint32_t offset; /* multiples of PM_CACHELINE */
	uint32_t length;
	const void *data;
};

struct pm_device_info {
	const char *name;
	const uint8_t *vm_uuid; /* 16 bytes, may be NULL */
	uint64_t size_pages;
	enum pm_device_mode mode;
	const char *image_path;
};

/* What recovery (or a check) found and did. */
struct pm_recovery {
	int superblock;            /* slot in use: 0 = A, 1 = B; -1 when neither is valid */
	bool superblock_fallback;  /* the other slot is newer but invalid */
	unsigned devices;
	uint64_t frames_in_use;
	uint64_t log_records;      /* valid records between the checkpoint and the end */
	uint64_t committed_epochs; /* epochs replayed (or to replay) */
	uint64_t replayed_bytes;   /* bytes of committed records */
	uint64_t discarded_records; /* uncommitted records dropped */
	uint64_t discarded_bytes;
	uint64_t torn_records;     /* invalid record where the log ends (a torn write) */
	uint64_t frames_freed;     /* stale, duplicate, orphaned or superseded frames released */
	unsigned unfinished_devices; /* device creations a crash interrupted, cleared */
	unsigned short_images;     /* images shorter than their device (a check only) */
	uint64_t usec;
	char problem[512];         /* why the pool was refused, if it was */
};

struct pm_stats {
	uint64_t commits;
	uint64_t commit_bytes; /* page and range bytes committed */
	uint64_t log_bytes;    /* bytes appended to the log, headers and padding included */
	uint64_t log_full_waits;
	uint64_t log_full_wait_usec;
	uint64_t checkpoints;
	uint64_t checkpoint_bytes;
	uint64_t frames_assigned;
	uint64_t frames_freed;
	uint64_t frames_replaced; /* superseded frames a demotion replaced by a new one */
	uint64_t pm_bytes_written; /* all bytes vpmd made durable in the pool (wear) */
};

struct pm_format_options {
	uint64_t log_size; /* 0: an eighth of the pool, at least PM_LOG_MIN_SIZE */
	bool force;        /* overwrite a formatted pool or foreign data */
};

/* Format the pool; refuses a formatted pool or one with foreign data unless forced. */
int pm_store_format(struct pool *pool, const struct pm_format_options *opts, char *errbuf,
		    size_t errlen);

/*
 * Open a formatted pool. Unless read_only, recover first: replay committed epochs into
 * images and frames, release stale frames, discard the rest of the log. read_only only
 * checks and reports what recovery would do. On refusal -errno and report->problem says why.
 */
int pm_store_open(struct pool *pool, bool read_only, struct pm_store **ret_store,
		  struct pm_recovery *report);
struct pm_store *pm_store_close(struct pm_store *s);

/* True when the pool's first bytes hold a VPM superblock (valid or not). */
bool pm_store_is_formatted(const struct pool *pool);

int pm_device_create(struct pm_store *s, const struct pm_device_info *info,
		     unsigned *ret_device);
int pm_device_find(struct pm_store *s, const char *name, unsigned *ret_device);
uint64_t pm_device_last_epoch(struct pm_store *s, unsigned device);
uint64_t pm_device_size_pages(struct pm_store *s, unsigned device);

/*
 * Commit one epoch of one device: page images and byte ranges (ranges apply after pages, in
 * order). Epochs of a device must increase. Returns once the commit record is durable,
 * waiting for checkpoints when the log is full.
 */
int pm_commit(struct pm_store *s, unsigned device, uint64_t epoch, const struct pm_page *pages,
	      size_t n_pages, const struct pm_range *ranges, size_t n_ranges);

/* The most pages one commit may take (a commit takes at most half the log). */
uint64_t pm_commit_max_pages(struct pm_store *s);

/* Apply committed records to images (and release stale frames); advance the log tail. */
int pm_checkpoint(struct pm_store *s);

/*
 * PM frames. demote copies a committed page version (as of epoch, which must be committed)
 * into a new frame and records it. A page whose frame still holds its newest committed
 * version keeps that frame as it is; one whose frame a newer commit superseded gets a new
 * frame, and the old one is freed once the new one is durable. There is no explicit release:
 * once a newer version of the page (a page or a byte range) is committed, the checkpoint that
 * applies it writes the page to the image and then frees the frame, so that nothing is freed
 * before its successor is durable.
 */
int pm_frame_demote(struct pm_store *s, unsigned device, uint64_t gfn, uint64_t epoch,
		    const void *data, uint64_t *ret_frame);
/*
 * The same for n distinct pages at once, made durable in three steps (data, epochs, owners)
 * for the whole batch. Returns how many of the pages (from the first) are on frames, fewer than n
 * when the pool ran out of frames, or -errno.
 */
int pm_frames_demote(struct pm_store *s, unsigned device, uint64_t epoch, size_t n,
		     const uint64_t *gfns, const void *const *data, uint64_t *ret_frames);
/*
 * Let the copy threads of crew copy demoted pages' data (with non-temporal stores), or, with
 * NULL, copy one page at a time. The crew must outlive its use here.
 */
struct copy_crew;
void pm_store_set_copy_crew(struct pm_store *s, struct copy_crew *crew);
/* The frame holding the page, or -ENOENT. */
int pm_frame_lookup(struct pm_store *s, unsigned device, uint64_t gfn, uint64_t *ret_frame);
uint64_t pm_frames_free(struct pm_store *s);
uint64_t pm_frames_total(struct pm_store *s);
/* Frames that hold pages of the device now (mapped by its VM or not). */
uint64_t pm_device_frames(struct pm_store *s, unsigned device);

/* Read a page as a guest would see it after recovery: its frame if it has one, else image. */
int pm_device_read_page(struct pm_store *s, unsigned device, uint64_t gfn, void *buf);

void pm_store_get_stats(struct pm_store *s, struct pm_stats *ret);
uint64_t pm_log_used(struct pm_store *s);
uint64_t pm_log_size(struct pm_store *s);
/* Byte offset of PM frame 0 in the pool (frame f is at + f * PM_PAGE_SIZE). */
uint64_t pm_store_frames_offset(struct pm_store *s);
/* Whole-store description for replies: layout, devices, log and frame usage, stats. */
struct json_object *pm_store_to_json(struct pm_store *s);
struct json_object *pm_recovery_to_json(const struct pm_recovery *r);

#endif
