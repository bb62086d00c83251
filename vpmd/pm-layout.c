// SPDX-License-Identifier: LGPL-2.1-or-later
#include <stddef.h>
#include <string.h>
#include <xxhash.h>

#include "parse-util.h"
#include "pm-hash.h"
#include "pm-layout.h"

#define SEED_SUPERBLOCK UINT64_C(0x56504d5342310001)
#define SEED_DEVICE     UINT64_C(0x56504d4445560002)
#define SEED_RECORD     UINT64_C(0x56504d5245430003)
#define SEED_PAYLOAD    UINT64_C(0x56504d5041590004)
#define SEED_FRAME      UINT64_C(0x56504d4652410005)

#define ALIGN_UP(x, a) (((x) + (a) - 1) / (a) * (a))

uint64_t pm_pool_seed(const uint8_t uuid[16])
{
	return XXH64(uuid, 16, 0);
}

void pm_superblock_seal(struct pm_superblock *sb)
{
	sb->checksum = XXH64(sb, offsetof(struct pm_superblock, checksum), SEED_SUPERBLOCK);
}

void pm_device_entry_seal(struct pm_device_entry *e, uint64_t pool_seed)
{
	e->checksum = XXH64(e, offsetof(struct pm_device_entry, checksum), SEED_DEVICE ^ pool_seed);
}

void pm_record_seal(struct pm_record *r, uint64_t pool_seed)
{
	r->checksum = XXH64(r, offsetof(struct pm_record, checksum), SEED_RECORD ^ pool_seed);
}

uint64_t pm_payload_seed(uint64_t pool_seed)
{
	return SEED_PAYLOAD ^ pool_seed;
}

uint64_t pm_payload_checksum(const void *buf, size_t len, uint64_t pool_seed)
{
	return pm_hash_oneshot(buf, len, pm_payload_seed(pool_seed));
}

const char *pm_superblock_check(const struct pm_superblock *sb, uint64_t pool_size)
{
	uint64_t end;

	if (memcmp(sb->magic, PM_SB_MAGIC, sizeof(sb->magic)) != 0)
		return "no VPM superblock magic";
	if (sb->checksum != XXH64(sb, offsetof(struct pm_superblock, checksum), SEED_SUPERBLOCK))
		return "checksum mismatch";
	if (sb->layout_version != PM_LAYOUT_VERSION)
		return "unknown layout version";
	if (sb->sb_size != sizeof(*sb))
		return "unexpected superblock size";
	if (sb->pool_size != pool_size)
		return "pool size differs from the device or file";
	if (sb->devtab_offset != 2 * PM_SB_SIZE ||
	    sb->devtab_size != (uint64_t)PM_MAX_DEVICES * 2 * PM_DEV_SLOT_SIZE)
		return "device table out of place";
	if (sb->framemap_offset != sb->devtab_offset + sb->devtab_size)
		return "frame map out of place";
	/* every bound below is checked without overflow: the superblock may be hostile */
	if (sb->n_frames > pool_size / PM_PAGE_SIZE ||
	    sb->log_offset > pool_size || sb->log_size > pool_size - sb->log_offset ||
	    sb->log_offset < sb->framemap_offset + sb->n_frames * sizeof(struct pm_frame_entry) ||
	    sb->log_offset % PM_PAGE_SIZE || sb->log_size < PM_LOG_MIN_SIZE ||
	    sb->log_size % PM_PAGE_SIZE)
		return "log region out of place";
	if (sb->frames_offset > pool_size || sb->frames_offset < sb->log_offset + sb->log_size ||
	    sb->frames_offset % PM_PAGE_SIZE)
		return "frame region out of place";
	end = sb->frames_offset + sb->n_frames * PM_PAGE_SIZE;
	if (sb->n_frames > (pool_size - sb->frames_offset) / PM_PAGE_SIZE || end > pool_size)
		return "frames extend past the end of the pool";
	if (sb->tail_lsn % PM_LOG_ALIGN)
		return "checkpoint pointer misaligned";
	return NULL;
}

const char *pm_device_entry_check(const struct pm_device_entry *e, uint64_t pool_seed)
{
	if (e->magic != PM_DEV_MAGIC)
		return "no device entry magic";
	if (e->checksum !=
	    XXH64(e, offsetof(struct pm_device_entry, checksum), SEED_DEVICE ^ pool_seed))
		return "checksum mismatch";
	if (e->state != PM_DEV_FREE && e->state != PM_DEV_ACTIVE)
		return "unknown device state";
	if (e->state == PM_DEV_ACTIVE) {
		if (memchr(e->name, '\0', sizeof(e->name)) == NULL || e->name[0] == '\0')
			return "device name not terminated";
		if (memchr(e->image_path, '\0', sizeof(e->image_path)) == NULL ||
		    e->image_path[0] != '/')
			return "image path not absolute or not terminated";
		if (!utf8_valid(e->name) || !utf8_valid(e->image_path))
			return "device name or image path not UTF-8";
		if (e->size_pages == 0 || e->size_pages > PM_MAX_GFN + 1)
			return "device size out of range";
		if (e->mode < PM_MODE_NATIVE || e->mode > PM_MODE_HINT)
			return "unknown durability mode";
	}
	return NULL;
}

const char *pm_record_check_header(const struct pm_record *r, uint64_t log_size,
				   uint64_t pool_seed)
{
	if (r->magic != PM_REC_MAGIC)
		return "no record magic";
	if (r->checksum !=
	    XXH64(r, offsetof(struct pm_record, checksum), SEED_RECORD ^ pool_seed))
		return "header checksum mismatch";
	if (r->type < PM_REC_PAGES || r->type > PM_REC_PAD)
		return "unknown record type";
	if (r->length < sizeof(*r) || r->length % PM_LOG_ALIGN || r->length > log_size)
		return "record length out of range";
	if (r->lsn % PM_LOG_ALIGN)
		return "record position misaligned";
	if (r->type != PM_REC_PAD && r->device >= PM_MAX_DEVICES)
		return "device slot out of range";
	if (r->type == PM_REC_PAGES && (r->count == 0 || r->length != pm_pages_record_length(r->count)))
		return "page record length does not match its count";
	if (r->type == PM_REC_RANGES &&
	    (r->count == 0 || r->length < pm_ranges_record_length(r->count, 0)))
		return "range record shorter than its entries";
	if (r->type == PM_REC_COMMIT && (r->length != sizeof(*r) || r->first_lsn > r->lsn))
		return "malformed commit record";
	return NULL;
}

static uint64_t frame_check(uint64_t frame, unsigned device, uint64_t gfn, uint64_t epoch,
			    uint64_t pool_seed)
{
	uint64_t v[4] = { frame, device, gfn, epoch };

	return XXH64(v, sizeof(v), SEED_FRAME ^ pool_seed) & PM_FRAME_CHECK_MASK;
}

uint64_t pm_frame_owner(uint64_t frame, unsigned device, uint64_t gfn, uint64_t epoch,
			uint64_t pool_seed)
{
	return PM_FRAME_VALID | ((uint64_t)device << PM_FRAME_DEV_SHIFT) |
	       ((gfn & PM_FRAME_GFN_MASK) << PM_FRAME_GFN_SHIFT) |
	       frame_check(frame, device, gfn, epoch, pool_seed);
}

bool pm_frame_owner_check(uint64_t owner, uint64_t frame, uint64_t epoch, uint64_t pool_seed)
{
	return pm_frame_is_valid(owner) &&
	       (owner & PM_FRAME_CHECK_MASK) == frame_check(frame, pm_frame_device(owner),
							    pm_frame_gfn(owner), epoch, pool_seed);
}

uint64_t pm_pages_record_length(uint32_t count)
{
	return sizeof(struct pm_record) + ALIGN_UP((uint64_t)count * 8, PM_LOG_ALIGN) +
	       (uint64_t)count * PM_PAGE_SIZE;
}

uint64_t pm_ranges_record_length(uint32_t count, uint64_t data_bytes)
{
	return sizeof(struct pm_record) +
	       ALIGN_UP((uint64_t)count * sizeof(struct pm_range_entry), PM_LOG_ALIGN) +
	       ALIGN_UP(data_bytes, PM_LOG_ALIGN);
}
