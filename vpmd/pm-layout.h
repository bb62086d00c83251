/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The persistent layout of a VPM pool (layout version 1). All integers are little-endian
 * (the host's order on x86-64, the only architecture vpmd supports) and every structure
 * carries an xxh64 checksum, so that a torn or corrupt write is detected and ignored.
 *
 *   offset 0        superblock A (4 KiB)
 *   offset 4 KiB    superblock B (4 KiB); the valid one with the higher generation rules
 *   devtab_offset   device table: PM_MAX_DEVICES entries x 2 slots x 512 bytes
 *   framemap_offset frame map: one 16-byte entry per PM frame
 *   log_offset      redo log ring: records of PM_LOG_ALIGN-byte multiples
 *   frames_offset   PM frames, 4 KiB each
 */
#ifndef VPMD_PM_LAYOUT_H
#define VPMD_PM_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PM_PAGE_SIZE      4096u
#define PM_CACHELINE      64u
#define PM_LAYOUT_VERSION 1u
#define PM_SB_MAGIC       "VPMPOOL1"
#define PM_SB_SIZE        4096u
#define PM_MAX_DEVICES    64u
#define PM_DEV_SLOT_SIZE  512u
#define PM_DEV_NAME_MAX   64u
#define PM_DEV_PATH_MAX   256u
#define PM_LOG_ALIGN      64u
#define PM_LOG_MIN_SIZE   (UINT64_C(1) << 20)
#define PM_MAX_GFN        ((UINT64_C(1) << 40) - 1)

struct pm_superblock {
	char magic[8];
	uint32_t layout_version;
	uint32_t sb_size; /* bytes covered by the checksum */
	uint8_t pool_uuid[16];
	uint64_t generation; /* +1 on every superblock write; the higher valid one wins */
	uint64_t pool_size;
	uint64_t devtab_offset;
	uint64_t devtab_size;
	uint64_t framemap_offset;
	uint64_t n_frames;
	uint64_t log_offset;
	uint64_t log_size;
	uint64_t frames_offset;
	uint64_t tail_lsn; /* checkpoint pointer: records before it are applied */
	uint64_t created_usec;
	uint64_t checksum; /* xxh64 of the struct with this field zero */
};

enum pm_device_mode {
	PM_MODE_NATIVE = 1,
	PM_MODE_EPOCH = 2,
	PM_MODE_HINT = 3,
};

enum pm_device_state {
	PM_DEV_FREE = 0,
	PM_DEV_ACTIVE = 1,
};

#define PM_DEV_MAGIC 0x44505056u /* "VPPD" */

/* One of the two slots of a device table entry; the valid slot with the higher seq wins. */
struct pm_device_entry {
	uint32_t magic;
	uint32_t state;
	uint64_t seq;
	uint8_t vm_uuid[16];
	char name[PM_DEV_NAME_MAX];
	uint64_t size_pages;
	uint32_t mode;
	uint32_t instance;	  /* differs between devices that use the same slot */
	uint64_t applied_epoch; /* last epoch whose records are in the image or frames */
	char image_path[PM_DEV_PATH_MAX];
	uint64_t checksum;
};

/*
 * Frame map entry. The epoch word is written first, then the owner word, each an 8-byte
 * atomic store made durable before the next; freeing clears the owner word. The owner word
 * carries a 17-bit check over (frame, device, gfn, epoch), so a corrupt entry is detected.
 */
struct pm_frame_entry {
	uint64_t owner; /* valid:1 | device:6 | gfn:40 | check:17 */
	uint64_t epoch; /* epoch of the page version the frame holds */
};

#define PM_FRAME_VALID      (UINT64_C(1) << 63)
#define PM_FRAME_DEV_SHIFT  57
#define PM_FRAME_DEV_MASK   UINT64_C(0x3f)
#define PM_FRAME_GFN_SHIFT  17
#define PM_FRAME_GFN_MASK   ((UINT64_C(1) << 40) - 1)
#define PM_FRAME_CHECK_MASK ((UINT64_C(1) << 17) - 1)

enum pm_record_type {
	PM_REC_PAGES = 1,  /* count gfns, then count 4 KiB page images */
	PM_REC_RANGES = 2, /* count {gfn, offset, length} entries, then their bytes */
	PM_REC_COMMIT = 3, /* closes the device's epoch: every record since first_lsn */
	PM_REC_PAD = 4,    /* fills the ring's end; skipped */
};

#define PM_REC_MAGIC 0x524c5056u /* "VPLR" */

struct pm_record {
	uint32_t magic;
	uint16_t type;
	uint16_t device;
	uint32_t count;
	uint32_t instance; /* the device's instance, so a reused slot never takes old records */
	uint64_t epoch;
	uint64_t lsn;       /* log sequence number: byte position since the pool was made */
	uint64_t length;    /* whole record, header included, a multiple of PM_LOG_ALIGN */
	uint64_t first_lsn; /* PM_REC_COMMIT: lsn of the epoch's first data record */
	uint64_t payload_checksum;
	uint64_t checksum; /* header, with this field zero */
};

struct pm_range_entry {
	uint64_t gfn;
	uint32_t offset; /* within the page, a multiple of PM_CACHELINE */
	uint32_t length; /* a multiple of PM_CACHELINE, offset + length <= PM_PAGE_SIZE */
};

_Static_assert(sizeof(struct pm_superblock) <= PM_SB_SIZE, "superblock too large");
_Static_assert(sizeof(struct pm_device_entry) <= PM_DEV_SLOT_SIZE, "device entry too large");
_Static_assert(sizeof(struct pm_frame_entry) == 16, "frame entry size");
_Static_assert(sizeof(struct pm_record) == PM_LOG_ALIGN, "record header is one cacheline");
_Static_assert(sizeof(struct pm_range_entry) == 16, "range entry size");

/*
 * Checksums are xxh64 seeded per structure kind and per pool (from its uuid), so that one
 * structure cannot pass for another and nothing left by an earlier format of the same media
 * (or written by a guest into its pages) passes for this pool's metadata.
 */
uint64_t pm_pool_seed(const uint8_t uuid[16]);
void pm_superblock_seal(struct pm_superblock *sb);
void pm_device_entry_seal(struct pm_device_entry *e, uint64_t pool_seed);
void pm_record_seal(struct pm_record *r, uint64_t pool_seed);
uint64_t pm_payload_checksum(const void *buf, size_t len, uint64_t pool_seed);
/* The seed pm_payload_checksum uses, for computing the same hash piece by piece. */
uint64_t pm_payload_seed(uint64_t pool_seed);

/* What is wrong with a structure, or NULL when it is valid. */
const char *pm_superblock_check(const struct pm_superblock *sb, uint64_t pool_size);
const char *pm_device_entry_check(const struct pm_device_entry *e, uint64_t pool_seed);
/* Header only: magic, checksum, type, sizes; the payload is checked separately. */
const char *pm_record_check_header(const struct pm_record *r, uint64_t log_size,
				   uint64_t pool_seed);

uint64_t pm_frame_owner(uint64_t frame, unsigned device, uint64_t gfn, uint64_t epoch,
			uint64_t pool_seed);
/* True when owner is a valid, uncorrupted entry for frame holding a version of epoch. */
bool pm_frame_owner_check(uint64_t owner, uint64_t frame, uint64_t epoch, uint64_t pool_seed);

static inline bool pm_frame_is_valid(uint64_t owner)
{
	return owner & PM_FRAME_VALID;
}

static inline unsigned pm_frame_device(uint64_t owner)
{
	return (unsigned)((owner >> PM_FRAME_DEV_SHIFT) & PM_FRAME_DEV_MASK);
}

static inline uint64_t pm_frame_gfn(uint64_t owner)
{
	return (owner >> PM_FRAME_GFN_SHIFT) & PM_FRAME_GFN_MASK;
}

/* Whole record sizes, header included. */
uint64_t pm_pages_record_length(uint32_t count);
uint64_t pm_ranges_record_length(uint32_t count, uint64_t data_bytes);

#endif
