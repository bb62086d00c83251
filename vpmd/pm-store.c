// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <sys/random.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <emmintrin.h>

#include "bitmap.h"
#include "crash-inject.h"
#include "json-util.h"
#include "log.h"
#include "page-copy.h"
#include "parse-util.h"
#include "pm-hash.h"
#include "pm-store.h"
#include "pool.h"

#define MAX_PAGES_PER_RECORD  256u
#define MAX_RANGES_PER_RECORD 1024u
#define ALIGN_UP(x, a)        (((x) + (a) - 1) / (a) * (a))

struct pm_device {
	bool active;
	struct pm_device_entry entry; /* as on media */
	unsigned slot;                /* which of the two slots holds entry */
	int image_fd;
	uint8_t *image;      /* the image file, mapped shared (as QEMU maps it) */
	uint64_t image_size;
	uint64_t last_epoch;  /* newest committed epoch */
	uint32_t *frame_of;   /* gfn -> frame + 1, 0 when the page has no frame */
	bool touched;         /* images written by the running checkpoint */
	uint64_t applied_epoch_new;
};

struct pm_store {
	struct pool *pool;
	uint8_t *base;
	uint64_t size;
	bool read_only;
	struct pm_superblock sb;
	unsigned sb_slot;
	uint64_t seed;
	pmem2_memcpy_fn memcpy_fn;
	pmem2_memset_fn memset_fn;
	pmem2_persist_fn persist_fn;
	pmem2_drain_fn drain_fn;
	struct pm_hasher *hasher; /* for commits, under lock */
	bool msync_mode; /* page granularity: copy plainly, persist each record once (msync) */
	bool failed;     /* an image could not be made durable: no more commits or checkpoints */
	struct copy_crew *crew; /* copies demoted pages in bulk; NULL: one page at a time */
	struct pm_device dev[PM_MAX_DEVICES];
	uint64_t *frame_used; /* bitmap */
	uint64_t *frame_stale; /* bitmap: released by the running checkpoint once images are synced */
	uint64_t *frame_superseded; /* bitmap: a newer version of its page is committed (in the log) */
	uint64_t n_free;
	uint64_t free_hint;
	uint64_t head_lsn;
	pthread_mutex_t lock;
	struct pm_stats stats;
};

/* ---- small helpers --------------------------------------------------------------------- */

static void set_problem(struct pm_recovery *r, const char *fmt, ...) _printf_(2, 3);
static void set_problem(struct pm_recovery *r, const char *fmt, ...)
{
	va_list ap;

	if (!r || r->problem[0])
		return;
	va_start(ap, fmt);
	vsnprintf(r->problem, sizeof(r->problem), fmt, ap);
	va_end(ap);
}


/* The pool at byte offset off; every structure there is at least 8-byte aligned. */
static void *pool_at(struct pm_store *s, uint64_t off)
{
	return s->base + off;
}

static struct pm_superblock *sb_ptr(struct pm_store *s, unsigned slot)
{
	return pool_at(s, (uint64_t)slot * PM_SB_SIZE);
}

static struct pm_device_entry *dev_slot_ptr(struct pm_store *s, unsigned dev, unsigned slot)
{
	return pool_at(s, s->sb.devtab_offset + ((uint64_t)dev * 2 + slot) * PM_DEV_SLOT_SIZE);
}

static struct pm_frame_entry *frame_entry(struct pm_store *s, uint64_t frame)
{
	return (struct pm_frame_entry *)pool_at(s, s->sb.framemap_offset) + frame;
}

static uint8_t *frame_data(struct pm_store *s, uint64_t frame)
{
	return s->base + s->sb.frames_offset + frame * PM_PAGE_SIZE;
}

static void *log_at(struct pm_store *s, uint64_t lsn)
{
	return pool_at(s, s->sb.log_offset + lsn % s->sb.log_size);
}

static const struct pm_record *log_record_at(struct pm_store *s, uint64_t lsn)
{
	return log_at(s, lsn);
}

/* A durable copy into the pool: one persist point. */
static void pm_write(struct pm_store *s, const char *point, void *dst, const void *src, size_t len)
{
	crash_point_enter(point, dst, len);
	s->memcpy_fn(dst, src, len, len >= 256 ? PMEM2_F_MEM_NONTEMPORAL : 0);
	crash_point_leave(dst, len, s->persist_fn);
	s->stats.pm_bytes_written += len;
}

/* A durable 8-byte atomic store: one persist point. */
static void pm_store_u64(struct pm_store *s, const char *point, uint64_t *dst, uint64_t v)
{
	crash_point_enter(point, dst, sizeof(*dst));
	__atomic_store_n(dst, v, __ATOMIC_RELEASE);
	s->persist_fn(dst, sizeof(*dst));
	crash_point_leave(dst, sizeof(*dst), s->persist_fn);
	s->stats.pm_bytes_written += sizeof(*dst);
}

static void format_uuid(const uint8_t u[16], char buf[37])
{
	snprintf(buf, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
		 u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
		 u[14], u[15]);
}

/* ---- format ---------------------------------------------------------------------------- */

bool pm_store_is_formatted(const struct pool *pool)
{
	const uint8_t *b = pool->addr;

	return memcmp(b, PM_SB_MAGIC, 8) == 0 || memcmp(b + PM_SB_SIZE, PM_SB_MAGIC, 8) == 0;
}

static bool has_data(const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (b[i])
			return true;
	return false;
}

/* Place the regions: superblocks, device table, frame map, log, frames. */
static int compute_layout(struct pm_superblock *sb, uint64_t pool_size, uint64_t log_size)
{
	uint64_t fm_off = 2 * PM_SB_SIZE + (uint64_t)PM_MAX_DEVICES * 2 * PM_DEV_SLOT_SIZE;
	uint64_t n;

	if (log_size == 0)
		log_size = MAX(PM_LOG_MIN_SIZE, pool_size / 8);
	if (log_size < PM_LOG_MIN_SIZE)
		return -EINVAL;
	log_size = ALIGN_UP(log_size, PM_PAGE_SIZE);
	if (log_size + fm_off + PM_PAGE_SIZE > pool_size)
		return -ENOSPC;
	n = (pool_size - fm_off - log_size) / (PM_PAGE_SIZE + sizeof(struct pm_frame_entry));
	for (;; n--) {
		uint64_t log_off = ALIGN_UP(fm_off + n * sizeof(struct pm_frame_entry), PM_PAGE_SIZE);

		if (log_off + log_size + n * PM_PAGE_SIZE <= pool_size) {
			sb->log_offset = log_off;
			break;
		}
		if (n == 0)
			return -ENOSPC;
	}
	memcpy(sb->magic, PM_SB_MAGIC, 8);
	sb->layout_version = PM_LAYOUT_VERSION;
	sb->sb_size = sizeof(*sb);
	sb->pool_size = pool_size;
	sb->devtab_offset = 2 * PM_SB_SIZE;
	sb->devtab_size = (uint64_t)PM_MAX_DEVICES * 2 * PM_DEV_SLOT_SIZE;
	sb->framemap_offset = fm_off;
	sb->n_frames = n;
	sb->log_size = log_size;
	sb->frames_offset = sb->log_offset + log_size;
	return 0;
}

int pm_store_format(struct pool *pool, const struct pm_format_options *opts, char *errbuf,
		    size_t errlen)
{
	struct pm_superblock sb = {};
	pmem2_memset_fn memset_fn = pmem2_get_memset_fn(pool->map);
	pmem2_memcpy_fn memcpy_fn = pmem2_get_memcpy_fn(pool->map);
	uint8_t *b = pool->addr;
	int r;

	if (!opts->force && pm_store_is_formatted(pool)) {
		snprintf(errbuf, errlen, "pool '%s' is already formatted; use --force to erase it",
			 pool->config.name);
		return -EEXIST;
	}
	if (!opts->force && has_data(b, 2 * PM_SB_SIZE)) {
		snprintf(errbuf, errlen,
			 "pool '%s' holds data that is not a VPM pool (a filesystem?); use --force "
			 "to overwrite it",
			 pool->config.name);
		return -ENOTEMPTY;
	}
	r = compute_layout(&sb, pool->size, opts->log_size);
	if (r == -EINVAL) {
		snprintf(errbuf, errlen, "a log of %" PRIu64 " bytes is too small; it needs at least "
					 "%" PRIu64,
			 opts->log_size, PM_LOG_MIN_SIZE);
		return r;
	}
	if (r < 0) {
		snprintf(errbuf, errlen,
			 "pool '%s' (%" PRIu64 " bytes) is too small for its metadata, a %" PRIu64
			 "-byte log and at least one frame; give it more space or a smaller log",
			 pool->config.name, pool->size,
			 opts->log_size ? opts->log_size : MAX(PM_LOG_MIN_SIZE, pool->size / 8));
		return r;
	}
	if (getrandom(sb.pool_uuid, sizeof(sb.pool_uuid), 0) != sizeof(sb.pool_uuid)) {
		snprintf(errbuf, errlen, "cannot get random bytes for the pool uuid");
		return -EIO;
	}
	sb.generation = 1;
	sb.tail_lsn = 0;
	sb.created_usec = now_usec(CLOCK_REALTIME);
	pm_superblock_seal(&sb);

	/*
	 * Everything but the log is zeroed before a superblock makes the pool valid; then both
	 * slots get generation 1, so that one damaged copy leaves the other from the start.
	 */
	memset_fn(b, 0, 2 * PM_SB_SIZE, 0);
	memset_fn(b + sb.devtab_offset, 0, sb.log_offset - sb.devtab_offset, 0);
	memcpy_fn(b, &sb, sizeof(sb), 0);
	memcpy_fn(b + PM_SB_SIZE, &sb, sizeof(sb), 0);
	return 0;
}

/* ---- open: superblock, devices, frames ------------------------------------------------ */

static int load_superblock(struct pm_store *s, struct pm_recovery *rep)
{
	const char *why[2];
	int best = -1;

	for (unsigned i = 0; i < 2; i++) {
		why[i] = pm_superblock_check(sb_ptr(s, i), s->size);
		if (!why[i] && (best < 0 || sb_ptr(s, i)->generation > sb_ptr(s, (unsigned)best)->generation))
			best = (int)i;
	}
	if (best < 0) {
		if (memcmp(sb_ptr(s, 0)->magic, PM_SB_MAGIC, 8) != 0 &&
		    memcmp(sb_ptr(s, 1)->magic, PM_SB_MAGIC, 8) != 0) {
			set_problem(rep, "pool '%s' is not formatted; format it with 'vpmd "
					 "--init-pool %s'",
				    s->pool->config.name, s->pool->config.name);
			return -ENODATA;
		}
		/* a later layout may lay out (and checksum) its superblock differently */
		for (unsigned i = 0; i < 2; i++)
			if (memcmp(sb_ptr(s, i)->magic, PM_SB_MAGIC, 8) == 0 &&
			    sb_ptr(s, i)->layout_version > PM_LAYOUT_VERSION) {
				set_problem(rep, "pool '%s' has layout version %u; this vpmd reads "
						 "version %u only: use a vpmd that matches the pool",
					    s->pool->config.name, sb_ptr(s, i)->layout_version,
					    PM_LAYOUT_VERSION);
				return -EPROTONOSUPPORT;
			}
		set_problem(rep, "pool '%s' has no valid superblock (A: %s; B: %s); it is damaged",
			    s->pool->config.name, why[0], why[1]);
		return -EUCLEAN;
	}
	s->sb_slot = (unsigned)best;
	s->sb = *sb_ptr(s, s->sb_slot);
	s->seed = pm_pool_seed(s->sb.pool_uuid);
	rep->superblock = (int)s->sb_slot;
	/*
	 * The other slot is broken (whatever part was hit): it may have been the newer one, from
	 * a torn checkpoint or from damage. recover() checks that the log agrees with this one.
	 */
	if (why[1 - s->sb_slot] && has_data((const uint8_t *)sb_ptr(s, 1 - s->sb_slot), PM_SB_SIZE))
		rep->superblock_fallback = true;
	return 0;
}

static int open_image(struct pm_store *s, struct pm_device *d, bool create,
		      struct pm_recovery *rep)
{
	int flags = (s->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY;
	uint64_t bytes = d->entry.size_pages * PM_PAGE_SIZE;
	struct stat st;

	d->image_fd = open(d->entry.image_path, flags | (create ? O_CREAT : 0), 0600);
	if (d->image_fd < 0) {
		set_problem(rep, "device '%s': cannot open image '%s': %s", d->entry.name,
			    d->entry.image_path, strerror(errno));
		return -errno;
	}
	if (fstat(d->image_fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		set_problem(rep, "device '%s': image '%s' is not a regular file", d->entry.name,
			    d->entry.image_path);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size < bytes) {
		if (s->read_only) {
			/* recovery would extend it; a check reads what is there, zeros past it */
			rep->short_images++;
			bytes = (uint64_t)st.st_size / PM_PAGE_SIZE * PM_PAGE_SIZE;
		} else if (ftruncate(d->image_fd, (off_t)bytes) < 0) {
			set_problem(rep, "device '%s': cannot extend image '%s' to %" PRIu64
					 " bytes: %s",
				    d->entry.name, d->entry.image_path, bytes, strerror(errno));
			return -errno;
		}
	}
	d->image_size = bytes;
	if (bytes == 0)
		return 0;
	/* blocks for the whole image at creation, so that writing it through the mapping cannot
	 * fail for want of space (an image QEMU made is allocated already) */
	if (create) {
		int r = posix_fallocate(d->image_fd, 0, (off_t)bytes);

		if (r != 0 && r != EOPNOTSUPP && r != EINVAL) {
			set_problem(rep, "device '%s': cannot allocate image '%s': %s", d->entry.name,
				    d->entry.image_path, strerror(r));
			return -r;
		}
	}
	d->image = mmap(NULL, bytes, PROT_READ | (s->read_only ? 0 : PROT_WRITE), MAP_SHARED,
			d->image_fd, 0);
	if (d->image == MAP_FAILED) {
		d->image = NULL;
		set_problem(rep, "device '%s': cannot map image '%s': %s", d->entry.name,
			    d->entry.image_path, strerror(errno));
		return -errno;
	}
	return 0;
}

static void close_image(struct pm_device *d)
{
	if (d->image && d->image_size)
		munmap(d->image, d->image_size);
	d->image = NULL;
	d->image_fd = safe_close(d->image_fd);
}

static int write_device_entry(struct pm_store *s, unsigned i, const struct pm_device_entry *e);

static int load_devices(struct pm_store *s, struct pm_recovery *rep)
{
	for (unsigned i = 0; i < PM_MAX_DEVICES; i++) {
		struct pm_device *d = &s->dev[i];
		const char *why[2];
		int best = -1, r;

		d->image_fd = -1;
		for (unsigned k = 0; k < 2; k++) {
			struct pm_device_entry *e = dev_slot_ptr(s, i, k);

			why[k] = pm_device_entry_check(e, s->seed);
			if (!why[k] && (best < 0 || e->seq > dev_slot_ptr(s, i, (unsigned)best)->seq))
				best = (int)k;
		}
		if (best < 0) {
			bool zero0 = !has_data((uint8_t *)dev_slot_ptr(s, i, 0), PM_DEV_SLOT_SIZE);
			bool zero1 = !has_data((uint8_t *)dev_slot_ptr(s, i, 1), PM_DEV_SLOT_SIZE);

			/*
			 * Creation writes slot 0, then slot 1; afterwards both always hold an
			 * entry. So garbage next to a zero slot is a creation that never finished.
			 */
			if (zero0 || zero1) {
				if (!(zero0 && zero1)) {
					static const struct pm_device_entry none;

					rep->unfinished_devices++;
					if (!s->read_only)
						pm_write(s, "devtab", dev_slot_ptr(s, i, zero0), &none,
							 sizeof(none));
				}
				continue;
			}
			set_problem(rep, "device table slot %u is damaged (%s; %s)", i, why[0], why[1]);
			return -EUCLEAN;
		}
		d->slot = (unsigned)best;
		d->entry = *dev_slot_ptr(s, i, d->slot);
		/* a crash between the two writes of a creation: write the second copy now */
		if (!s->read_only &&
		    !has_data((const uint8_t *)dev_slot_ptr(s, i, 1 - d->slot), PM_DEV_SLOT_SIZE)) {
			struct pm_device_entry e = d->entry;

			write_device_entry(s, i, &e);
		}
		if (d->entry.state != PM_DEV_ACTIVE)
			continue;
		d->active = true;
		d->last_epoch = d->entry.applied_epoch;
		d->frame_of = calloc(d->entry.size_pages, sizeof(*d->frame_of));
		if (!d->frame_of)
			return -ENOMEM;
		r = open_image(s, d, false, rep);
		if (r < 0)
			return r;
		rep->devices++;
	}
	return 0;
}

static void frame_release_now(struct pm_store *s, uint64_t f)
{
	pm_store_u64(s, "frame-free", &frame_entry(s, f)->owner, 0);
	bit_clear(s->frame_used, f);
	bit_clear(s->frame_superseded, f);
	s->n_free++;
	s->stats.frames_freed++;
}

/* Frames of missing devices or pages, and older duplicates, are released. */
static int load_frames(struct pm_store *s, struct pm_recovery *rep)
{
	uint64_t words = (s->sb.n_frames + 63) / 64;

	s->frame_used = calloc(words ? words : 1, sizeof(uint64_t));
	s->frame_stale = calloc(words ? words : 1, sizeof(uint64_t));
	s->frame_superseded = calloc(words ? words : 1, sizeof(uint64_t));
	if (!s->frame_used || !s->frame_stale || !s->frame_superseded)
		return -ENOMEM;
	s->n_free = s->sb.n_frames;

	for (uint64_t f = 0; f < s->sb.n_frames; f++) {
		struct pm_frame_entry *e = frame_entry(s, f);
		uint64_t owner = e->owner, gfn;
		struct pm_device *d;
		uint32_t *slot;
		bool drop;

		if (!pm_frame_is_valid(owner))
			continue;
		if (!pm_frame_owner_check(owner, f, e->epoch, s->seed)) {
			set_problem(rep, "frame map entry %" PRIu64 " is damaged; the page it holds "
					 "cannot be trusted",
				    f);
			return -EUCLEAN;
		}
		d = &s->dev[pm_frame_device(owner)];
		gfn = pm_frame_gfn(owner);
		drop = !d->active || gfn >= d->entry.size_pages;
		slot = drop ? NULL : &d->frame_of[gfn];
		if (slot && *slot) {
			/* two frames for one page: a crash between demote and release */
			uint64_t other = *slot - 1;

			if (frame_entry(s, other)->epoch >= e->epoch) {
				drop = true;
			} else {
				rep->frames_freed++;
				if (!s->read_only)
					frame_release_now(s, other);
				rep->frames_in_use--;
			}
		}
		if (drop || !slot) {
			rep->frames_freed++;
			if (!s->read_only)
				pm_store_u64(s, "frame-free", &e->owner, 0);
			continue;
		}
		*slot = (uint32_t)(f + 1);
		bit_set(s->frame_used, f);
		s->n_free--;
		rep->frames_in_use++;
	}
	return 0;
}

/* ---- the log --------------------------------------------------------------------------- */

struct scan_commit {
	unsigned device;
	uint64_t epoch;
	uint64_t first_lsn; /* first data record */
	uint64_t end_lsn;   /* just past the commit record */
	uint32_t n_records;
};

struct scan {
	struct scan_commit *commits;
	size_t n_commits, alloc;
	uint64_t end_lsn;       /* where the valid log ends */
	uint64_t pending_first[PM_MAX_DEVICES]; /* uncommitted records, per device; 0 = none */
	uint32_t pending_count[PM_MAX_DEVICES];
	uint64_t pending_bytes[PM_MAX_DEVICES];
	uint64_t records;
	uint64_t data_bytes;
};

/* The record at lsn, if it is valid and whole (header and payload); NULL otherwise. */
static const struct pm_record *record_at(struct pm_store *s, uint64_t lsn)
{
	const struct pm_record *r = log_record_at(s, lsn);

	if (pm_record_check_header(r, s->sb.log_size, s->seed) || r->lsn != lsn ||
	    lsn % s->sb.log_size + r->length > s->sb.log_size)
		return NULL;
	if ((r->type == PM_REC_PAGES || r->type == PM_REC_RANGES) &&
	    pm_payload_checksum(r + 1, r->length - sizeof(*r), s->seed) != r->payload_checksum)
		return NULL;
	return r;
}

static bool record_is_current(struct pm_store *s, const struct pm_record *r)
{
	const struct pm_device *d = &s->dev[r->device];

	return d->active && d->entry.instance == r->instance;
}

static int scan_add_commit(struct scan *sc, const struct scan_commit *c)
{
	if (sc->n_commits == sc->alloc) {
		size_t na = sc->alloc ? sc->alloc * 2 : 64;
		struct scan_commit *p = realloc(sc->commits, na * sizeof(*p));

		if (!p)
			return -ENOMEM;
		sc->commits = p;
		sc->alloc = na;
	}
	sc->commits[sc->n_commits++] = *c;
	return 0;
}

/*
 * The longest record a commit writes: a full record of pages, or one of ranges (whose data is
 * bounded by the same page count, plus its entries); a pad is shorter than the record after it.
 */
static uint64_t max_record_length(struct pm_store *s)
{
	uint64_t n = MAX(UINT64_C(1), MIN(s->sb.log_size / 8 / PM_PAGE_SIZE,
					  (uint64_t)MAX_PAGES_PER_RECORD));

	return MAX(pm_pages_record_length((uint32_t)n),
		   pm_ranges_record_length(MAX_RANGES_PER_RECORD, n * PM_PAGE_SIZE));
}

/*
 * The log ends at the first invalid record. A torn write ends it too, but only ever inside the
 * commit in flight, whose commit record is written after all its data is durable: so after a
 * torn record no valid commit record can follow. If one does, the record at end is damage,
 * not a torn write, and committed data would be lost by stopping there. The next record after
 * a damaged one starts within one maximal record length, so that is where to look.
 */
static bool committed_record_beyond(struct pm_store *s, uint64_t end, uint64_t tail)
{
	uint64_t stop = MIN(tail + s->sb.log_size, end + max_record_length(s) + PM_LOG_ALIGN);

	for (uint64_t lsn = end + PM_LOG_ALIGN; lsn < stop; lsn += PM_LOG_ALIGN) {
		const struct pm_record *r = log_record_at(s, lsn);

		if (r->magic != PM_REC_MAGIC || r->lsn != lsn || !record_at(s, lsn))
			continue;
		/* follow the chain of valid records from here */
		for (uint64_t l = lsn; l < tail + s->sb.log_size;) {
			const struct pm_record *c = record_at(s, l);

			if (!c)
				break;
			if (c->type == PM_REC_COMMIT)
				return true;
			l += c->length;
		}
		return false;
	}
	return false;
}

/*
 * Walk the log from `from` until limit (or until it stops being valid when limit is 0):
 * collect committed epochs in order, and what is left uncommitted per device.
 */
static int log_scan(struct pm_store *s, uint64_t from, uint64_t limit, struct scan *sc,
		    struct pm_recovery *rep)
{
	uint64_t lsn = from;
	int r;

	memset(sc, 0, sizeof(*sc));
	while (!limit || lsn < limit) {
		const struct pm_record *rec;

		if (lsn - from >= s->sb.log_size)
			break;
		rec = record_at(s, lsn);
		if (!rec)
			break;
		sc->records++;
		if (rec->type == PM_REC_PAD) {
			lsn += rec->length;
			continue;
		}
		if (!record_is_current(s, rec)) {
			lsn += rec->length; /* a removed device's leftovers */
			continue;
		}
		if (rec->type == PM_REC_COMMIT) {
			unsigned dv = rec->device;
			struct scan_commit c = { .device = dv, .epoch = rec->epoch,
						 .first_lsn = rec->first_lsn,
						 .end_lsn = lsn + rec->length,
						 .n_records = rec->count };

			if (sc->pending_first[dv] != rec->first_lsn + 1 ||
			    sc->pending_count[dv] != rec->count) {
				set_problem(rep, "commit record at %" PRIu64 " for device %u epoch %" PRIu64
						 " does not match its %u data records",
					    lsn, dv, rec->epoch, sc->pending_count[dv]);
				free(sc->commits);
				return -EUCLEAN;
			}
			r = scan_add_commit(sc, &c);
			if (r < 0)
				return r;
			sc->data_bytes += sc->pending_bytes[dv];
			sc->pending_first[dv] = 0;
			sc->pending_count[dv] = 0;
			sc->pending_bytes[dv] = 0;
		} else {
			if (!sc->pending_first[rec->device])
				sc->pending_first[rec->device] = lsn + 1;
			sc->pending_count[rec->device]++;
			sc->pending_bytes[rec->device] += rec->length;
		}
		lsn += rec->length;
	}
	sc->end_lsn = lsn;
	return 0;
}

/* Anywhere in the ring, a valid record written after lsn end? */
static bool record_newer_than(struct pm_store *s, uint64_t end)
{
	for (uint64_t off = 0; off < s->sb.log_size; off += PM_LOG_ALIGN) {
		const struct pm_record *r = log_at(s, off);

		if (r->magic == PM_REC_MAGIC && r->lsn > end && r->lsn % s->sb.log_size == off &&
		    record_at(s, r->lsn))
			return true;
	}
	return false;
}

/* ---- applying committed records -------------------------------------------------------- */

/* The page's frame, unless it is being released by this checkpoint. */
static bool live_frame(struct pm_store *s, struct pm_device *d, uint64_t gfn, uint64_t *ret)
{
	uint32_t f = gfn < d->entry.size_pages ? d->frame_of[gfn] : 0;

	if (!f || bit_test(s->frame_stale, f - 1))
		return false;
	*ret = f - 1;
	return true;
}

/* Into the page cache through the mapping; fdatasync makes it durable before the tail moves. */
static int image_write(struct pm_device *d, const void *buf, size_t len, uint64_t off)
{
	if (off + len > d->image_size)
		return -ERANGE;
	memcpy(d->image + off, buf, len);
	return 0;
}

static void mark_stale(struct pm_store *s, uint64_t f)
{
	bit_set(s->frame_stale, f);
}

static int apply_pages(struct pm_store *s, struct pm_device *d, const struct pm_record *rec)
{
	const uint64_t *gfns = (const uint64_t *)(rec + 1);
	const uint8_t *data = (const uint8_t *)(rec + 1) + ALIGN_UP((uint64_t)rec->count * 8, PM_LOG_ALIGN);

	for (uint32_t i = 0; i < rec->count; i++) {
		uint64_t f;
		int r;

		if (gfns[i] >= d->entry.size_pages)
			continue; /* checked at commit; a damaged gfn is never written outside */
		if (live_frame(s, d, gfns[i], &f)) {
			if (frame_entry(s, f)->epoch >= rec->epoch)
				continue; /* the frame holds this version or a newer one */
			mark_stale(s, f);
		}
		r = image_write(d, data + (uint64_t)i * PM_PAGE_SIZE, PM_PAGE_SIZE, gfns[i] * PM_PAGE_SIZE);
		if (r < 0)
			return r;
	}
	return 0;
}

static int apply_ranges(struct pm_store *s, struct pm_device *d, const struct pm_record *rec)
{
	const struct pm_range_entry *e = (const struct pm_range_entry *)(rec + 1);
	const uint8_t *data = (const uint8_t *)(rec + 1) +
			      ALIGN_UP((uint64_t)rec->count * sizeof(*e), PM_LOG_ALIGN);
	const uint8_t *end = (const uint8_t *)rec + rec->length;

	for (uint32_t i = 0; i < rec->count; i++) {
		uint64_t f;
		int r;

		if (e[i].gfn >= d->entry.size_pages || e[i].offset + (uint64_t)e[i].length > PM_PAGE_SIZE ||
		    data + e[i].length > end)
			return -EUCLEAN;
		if (live_frame(s, d, e[i].gfn, &f)) {
			uint8_t page[PM_PAGE_SIZE];

			if (frame_entry(s, f)->epoch >= rec->epoch) {
				data += e[i].length;
				continue;
			}
			/* the page's base is on the frame: the image gets base and range */
			memcpy(page, frame_data(s, f), PM_PAGE_SIZE);
			memcpy(page + e[i].offset, data, e[i].length);
			r = image_write(d, page, PM_PAGE_SIZE, e[i].gfn * PM_PAGE_SIZE);
			mark_stale(s, f);
		} else {
			r = image_write(d, data, e[i].length, e[i].gfn * PM_PAGE_SIZE + e[i].offset);
		}
		if (r < 0)
			return r;
		data += e[i].length;
	}
	return 0;
}

static int apply_commit(struct pm_store *s, const struct scan_commit *c)
{
	struct pm_device *d = &s->dev[c->device];
	uint64_t lsn = c->first_lsn;
	uint32_t seen = 0;

	while (seen < c->n_records) {
		/* the scan that found this commit verified its records, payloads included */
		const struct pm_record *rec = log_record_at(s, lsn);
		int r = 0;

		if (pm_record_check_header(rec, s->sb.log_size, s->seed) || rec->lsn != lsn)
			return -EUCLEAN;
		if (rec->type != PM_REC_PAD && rec->device == c->device && rec->type != PM_REC_COMMIT &&
		    record_is_current(s, rec)) {
			crash_point_enter("image-apply", NULL, 0);
			r = rec->type == PM_REC_PAGES ? apply_pages(s, d, rec) : apply_ranges(s, d, rec);
			if (r < 0)
				return r;
			s->stats.checkpoint_bytes += rec->length;
			seen++;
		}
		lsn += rec->length;
	}
	d->touched = true;
	d->applied_epoch_new = MAX(d->applied_epoch_new, c->epoch);
	return 0;
}

static int write_device_entry(struct pm_store *s, unsigned i, const struct pm_device_entry *e)
{
	struct pm_device *d = &s->dev[i];
	unsigned slot = d->entry.magic == PM_DEV_MAGIC ? 1 - d->slot : 0;
	struct pm_device_entry ne = *e;

	ne.magic = PM_DEV_MAGIC;
	ne.seq = d->entry.magic == PM_DEV_MAGIC ? d->entry.seq + 1 : 1;
	pm_device_entry_seal(&ne, s->seed);
	pm_write(s, "devtab", dev_slot_ptr(s, i, slot), &ne, sizeof(ne));
	d->entry = ne;
	d->slot = slot;
	return 0;
}

static void write_superblock(struct pm_store *s, uint64_t tail)
{
	struct pm_superblock sb = s->sb;
	unsigned slot = 1 - s->sb_slot;

	sb.generation++;
	sb.tail_lsn = tail;
	pm_superblock_seal(&sb);
	pm_write(s, "superblock", sb_ptr(s, slot), &sb, sizeof(sb));
	s->sb = sb;
	s->sb_slot = slot;
}

/*
 * Apply the scanned commits, make the images durable, release the frames they superseded,
 * record each device's applied epoch, and only then move the log tail to new_tail.
 */
/* A checkpoint that could not finish: nothing it decided about frames stands. */
static int abort_checkpoint(struct pm_store *s, int r)
{
	memset(s->frame_stale, 0, (s->sb.n_frames + 63) / 64 * sizeof(uint64_t));
	for (unsigned i = 0; i < PM_MAX_DEVICES; i++) {
		s->dev[i].touched = false;
		s->dev[i].applied_epoch_new = 0;
	}
	return r;
}

static int apply_and_advance(struct pm_store *s, const struct scan *sc, uint64_t new_tail)
{
	int r;

	for (size_t i = 0; i < sc->n_commits; i++) {
		r = apply_commit(s, &sc->commits[i]);
		if (r < 0)
			return abort_checkpoint(s, r);
	}
	for (unsigned i = 0; i < PM_MAX_DEVICES; i++) {
		struct pm_device *d = &s->dev[i];

		if (!d->touched)
			continue;
		crash_point_enter("image-sync", NULL, 0);
		if (fdatasync(d->image_fd) < 0) {
			/*
			 * After a failed fdatasync the kernel may have dropped the dirty pages and
			 * a retry can "succeed" without them: only the log is trustworthy now. The
			 * store refuses further work; the next start replays the log.
			 */
			s->failed = true;
			r = log_error_errno(errno, "Device '%s': fdatasync of '%s' failed, the store "
						   "stops until vpmd restarts and replays the log: %m",
					    d->entry.name, d->entry.image_path);
			return abort_checkpoint(s, r);
		}
	}
	for (uint64_t f = 0; f < s->sb.n_frames; f++) {
		if (!bit_test(s->frame_stale, f))
			continue;
		bit_clear(s->frame_stale, f);
		for (unsigned i = 0; i < PM_MAX_DEVICES; i++) {
			struct pm_device *d = &s->dev[i];
			uint64_t gfn = pm_frame_gfn(frame_entry(s, f)->owner);

			if (d->active && i == pm_frame_device(frame_entry(s, f)->owner) &&
			    gfn < d->entry.size_pages && d->frame_of[gfn] == f + 1)
				d->frame_of[gfn] = 0;
		}
		frame_release_now(s, f);
	}
	for (unsigned i = 0; i < PM_MAX_DEVICES; i++) {
		struct pm_device *d = &s->dev[i];

		if (!d->touched)
			continue;
		d->touched = false;
		if (d->applied_epoch_new > d->entry.applied_epoch) {
			struct pm_device_entry e = d->entry;

			e.applied_epoch = d->applied_epoch_new;
			r = write_device_entry(s, i, &e);
			if (r < 0)
				return r;
		}
	}
	if (new_tail != s->sb.tail_lsn)
		write_superblock(s, new_tail);
	return 0;
}

static int checkpoint_locked(struct pm_store *s)
{
	struct scan sc;
	uint64_t new_tail;
	int r;

	r = log_scan(s, s->sb.tail_lsn, s->head_lsn, &sc, NULL);
	if (r < 0)
		return r;
	/* records of an epoch still being written pin the tail */
	new_tail = sc.n_commits ? sc.commits[sc.n_commits - 1].end_lsn : s->sb.tail_lsn;
	for (unsigned i = 0; i < PM_MAX_DEVICES; i++)
		if (sc.pending_first[i])
			new_tail = MIN(new_tail, sc.pending_first[i] - 1);
	if (sc.end_lsn == s->head_lsn && sc.n_commits == 0)
		new_tail = s->sb.tail_lsn;
	r = apply_and_advance(s, &sc, MAX(new_tail, s->sb.tail_lsn));
	free(sc.commits);
	if (r >= 0)
		s->stats.checkpoints++;
	return r;
}

int pm_checkpoint(struct pm_store *s)
{
	int r;

	if (s->read_only)
		return -EROFS;
	pthread_mutex_lock(&s->lock);
	r = s->failed ? -EIO : checkpoint_locked(s);
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* ---- recovery -------------------------------------------------------------------------- */

static int recover(struct pm_store *s, struct pm_recovery *rep)
{
	struct scan sc;
	uint64_t freed;
	int r;

	r = log_scan(s, s->sb.tail_lsn, 0, &sc, rep);
	if (r < 0)
		return r;
	/*
	 * With the other superblock broken, this one may be older than the log: if anything in
	 * the ring is newer than where the scan from its checkpoint ended, the log has moved on
	 * past it and replaying from here would silently drop commits.
	 */
	if (rep->superblock_fallback && record_newer_than(s, sc.end_lsn)) {
		set_problem(rep, "the newer superblock is damaged and the log has moved past the "
				 "older one's checkpoint; committed data would be lost");
		free(sc.commits);
		return -EUCLEAN;
	}
	if (committed_record_beyond(s, sc.end_lsn, s->sb.tail_lsn)) {
		set_problem(rep, "log record at lsn %" PRIu64 " is damaged but later commits are "
				 "valid; the log is corrupt, not torn",
			    sc.end_lsn);
		free(sc.commits);
		return -EUCLEAN;
	}
	rep->log_records = sc.records;
	rep->committed_epochs = sc.n_commits;
	rep->replayed_bytes = sc.data_bytes;
	for (unsigned i = 0; i < PM_MAX_DEVICES; i++) {
		if (sc.pending_count[i]) {
			rep->discarded_records += sc.pending_count[i];
			rep->discarded_bytes += sc.pending_bytes[i];
		}
	}
	if ((log_record_at(s, sc.end_lsn))->magic == PM_REC_MAGIC &&
	    (log_record_at(s, sc.end_lsn))->lsn == sc.end_lsn)
		rep->torn_records = 1;
	for (size_t i = 0; i < sc.n_commits; i++) {
		struct pm_device *d = &s->dev[sc.commits[i].device];

		d->last_epoch = MAX(d->last_epoch, sc.commits[i].epoch);
	}
	if (s->read_only) {
		free(sc.commits);
		s->head_lsn = sc.end_lsn;
		return 0;
	}
	freed = s->stats.frames_freed;
	r = apply_and_advance(s, &sc, sc.end_lsn);
	free(sc.commits);
	if (r < 0) {
		set_problem(rep, "applying the log failed: %s", strerror(-r));
		return r;
	}
	rep->frames_freed += s->stats.frames_freed - freed;
	rep->frames_in_use = s->sb.n_frames - s->n_free;
	s->head_lsn = sc.end_lsn;
	return 0;
}

int pm_store_open(struct pool *pool, bool read_only, struct pm_store **ret_store,
		  struct pm_recovery *rep)
{
	struct pm_store *s;
	uint64_t t0 = now_usec(CLOCK_MONOTONIC);
	int r;

	memset(rep, 0, sizeof(*rep));
	rep->superblock = -1;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->pool = pool;
	s->base = pool->addr;
	s->size = pool->size;
	s->read_only = read_only;
	s->memcpy_fn = pmem2_get_memcpy_fn(pool->map);
	s->memset_fn = pmem2_get_memset_fn(pool->map);
	s->persist_fn = pmem2_get_persist_fn(pool->map);
	s->drain_fn = pmem2_get_drain_fn(pool->map);
	s->msync_mode = pool->granularity == PMEM2_GRANULARITY_PAGE;
	s->hasher = pm_hasher_new();
	if (!s->hasher) {
		free(s);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	for (unsigned i = 0; i < PM_MAX_DEVICES; i++)
		s->dev[i].image_fd = -1;

	r = load_superblock(s, rep);
	if (r >= 0)
		r = load_devices(s, rep);
	if (r >= 0)
		r = load_frames(s, rep);
	if (r >= 0)
		r = recover(s, rep);
	rep->usec = now_usec(CLOCK_MONOTONIC) - t0;
	if (r < 0) {
		if (r == -ENOMEM)
			set_problem(rep, "out of memory");
		pm_store_close(s);
		return r;
	}
	*ret_store = s;
	return 0;
}

struct pm_store *pm_store_close(struct pm_store *s)
{
	if (!s)
		return NULL;
	for (unsigned i = 0; i < PM_MAX_DEVICES; i++) {
		close_image(&s->dev[i]);
		free(s->dev[i].frame_of);
	}
	free(s->frame_used);
	free(s->frame_stale);
	free(s->frame_superseded);
	pm_hasher_free(s->hasher);
	pthread_mutex_destroy(&s->lock);
	free(s);
	return NULL;
}

/* ---- devices --------------------------------------------------------------------------- */

int pm_device_find(struct pm_store *s, const char *name, unsigned *ret_device)
{
	for (unsigned i = 0; i < PM_MAX_DEVICES; i++)
		if (s->dev[i].active && strcmp(s->dev[i].entry.name, name) == 0) {
			*ret_device = i;
			return 0;
		}
	return -ENOENT;
}

int pm_device_create(struct pm_store *s, const struct pm_device_info *info, unsigned *ret_device)
{
	struct pm_device_entry e = {};
	struct pm_recovery rep = {};
	struct pm_device *d = NULL;
	unsigned i, dummy;
	int r;

	if (s->read_only)
		return -EROFS;
	if (!info->name || !*info->name || strlen(info->name) >= PM_DEV_NAME_MAX ||
	    !utf8_valid(info->name) || !info->image_path || !utf8_valid(info->image_path) ||
	    !info->image_path || info->image_path[0] != '/' ||
	    strlen(info->image_path) >= PM_DEV_PATH_MAX || info->size_pages == 0 ||
	    info->size_pages > PM_MAX_GFN + 1 || info->mode < PM_MODE_NATIVE ||
	    info->mode > PM_MODE_HINT)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	if (pm_device_find(s, info->name, &dummy) == 0) {
		r = -EEXIST;
		goto out;
	}
	for (i = 0; i < PM_MAX_DEVICES && s->dev[i].active; i++)
		;
	if (i == PM_MAX_DEVICES) {
		r = -ENOSPC;
		goto out;
	}
	d = &s->dev[i];
	e.state = PM_DEV_ACTIVE;
	if (info->vm_uuid)
		memcpy(e.vm_uuid, info->vm_uuid, 16);
	strcpy(e.name, info->name);
	e.size_pages = info->size_pages;
	e.mode = info->mode;
	e.instance = d->entry.magic == PM_DEV_MAGIC ? d->entry.instance + 1 : 1;
	strcpy(e.image_path, info->image_path);
	d->frame_of = calloc(info->size_pages, sizeof(*d->frame_of));
	if (!d->frame_of) {
		r = -ENOMEM;
		goto out;
	}
	d->entry.size_pages = e.size_pages;
	strcpy(d->entry.name, e.name);
	strcpy(d->entry.image_path, e.image_path);
	r = open_image(s, d, true, &rep);
	if (r < 0) {
		close_image(d);
		free(d->frame_of);
		d->frame_of = NULL;
		goto out;
	}
	/* both slots: from now on one damaged copy still leaves the other */
	r = write_device_entry(s, i, &e);
	if (r >= 0)
		r = write_device_entry(s, i, &e);
	if (r < 0)
		goto out;
	d->active = true;
	d->last_epoch = 0;
	*ret_device = i;
out:
	pthread_mutex_unlock(&s->lock);
	return r;
}

uint64_t pm_device_last_epoch(struct pm_store *s, unsigned device)
{
	return device < PM_MAX_DEVICES ? s->dev[device].last_epoch : 0;
}

uint64_t pm_device_size_pages(struct pm_store *s, unsigned device)
{
	return device < PM_MAX_DEVICES && s->dev[device].active ? s->dev[device].entry.size_pages : 0;
}

int pm_device_read_page(struct pm_store *s, unsigned device, uint64_t gfn, void *buf)
{
	struct pm_device *d;
	uint64_t f;
	int r = 0;

	if (device >= PM_MAX_DEVICES)
		return -ENODEV;
	pthread_mutex_lock(&s->lock); /* not while a checkpoint moves the page */
	d = &s->dev[device];
	if (!d->active)
		r = -ENODEV;
	else if (gfn >= d->entry.size_pages)
		r = -ERANGE;
	else if (live_frame(s, d, gfn, &f)) {
		memcpy(buf, frame_data(s, f), PM_PAGE_SIZE);
		r = 1;
	} else if ((gfn + 1) * PM_PAGE_SIZE > d->image_size)
		memset(buf, 0, PM_PAGE_SIZE); /* past a short image (read-only check) */
	else
		memcpy(buf, d->image + gfn * PM_PAGE_SIZE, PM_PAGE_SIZE);
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* ---- commits --------------------------------------------------------------------------- */

static uint32_t max_pages_per_record(struct pm_store *s)
{
	uint64_t n = s->sb.log_size / 8 / PM_PAGE_SIZE;

	return (uint32_t)MAX(UINT64_C(1), MIN(n, (uint64_t)MAX_PAGES_PER_RECORD));
}

static void write_pad(struct pm_store *s, uint64_t len)
{
	struct pm_record pad = { .magic = PM_REC_MAGIC, .type = PM_REC_PAD, .lsn = s->head_lsn,
				 .length = len };

	pm_record_seal(&pad, s->seed);
	pm_write(s, "log-pad", log_at(s, s->head_lsn), &pad, sizeof(pad));
	s->head_lsn += len;
	s->stats.log_bytes += len;
}

/* Make room for a record of len bytes at the head, padding the ring's end if needed. */
static int reserve(struct pm_store *s, uint64_t len)
{
	uint64_t off = s->head_lsn % s->sb.log_size;
	uint64_t pad = off + len > s->sb.log_size ? s->sb.log_size - off : 0;

	if (s->head_lsn - s->sb.tail_lsn + pad + len > s->sb.log_size)
		return -ENOSPC; /* pm_commit reserved the whole commit; this is a bug */
	if (pad)
		write_pad(s, pad);
	return 0;
}

/* Before a commit of total bytes: checkpoint until it fits, with room for one pad. */
static int wait_for_space(struct pm_store *s, uint64_t total)
{
	uint64_t need = total + (uint64_t)max_pages_per_record(s) * PM_PAGE_SIZE + 4096;
	uint64_t t0;
	int r;

	if (s->head_lsn - s->sb.tail_lsn + need <= s->sb.log_size)
		return 0;
	t0 = now_usec(CLOCK_MONOTONIC);
	s->stats.log_full_waits++;
	r = checkpoint_locked(s);
	s->stats.log_full_wait_usec += now_usec(CLOCK_MONOTONIC) - t0;
	if (r < 0)
		return r;
	return s->head_lsn - s->sb.tail_lsn + need <= s->sb.log_size ? 0 : -ENOSPC;
}

/*
 * A record is written piece by piece without draining: on real PM each piece is flushed
 * (non-temporal stores) and one drain before the commit record orders them all; on msync-
 * persisted (emulated) pools the pieces are copied plainly and the record is persisted once.
 */
/* Non-temporal copy for 16-byte aligned destinations: no read-for-ownership of the log. */
static void nt_copy(uint8_t *dst, const uint8_t *src, size_t len)
{
	size_t i = 0;

	if (((uintptr_t)dst & 15) == 0)
		for (; i + 64 <= len; i += 64) {
			__m128i a = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
			__m128i b = _mm_loadu_si128((const __m128i *)(const void *)(src + i + 16));
			__m128i c = _mm_loadu_si128((const __m128i *)(const void *)(src + i + 32));
			__m128i d = _mm_loadu_si128((const __m128i *)(const void *)(src + i + 48));

			_mm_stream_si128((__m128i *)(void *)(dst + i), a);
			_mm_stream_si128((__m128i *)(void *)(dst + i + 16), b);
			_mm_stream_si128((__m128i *)(void *)(dst + i + 32), c);
			_mm_stream_si128((__m128i *)(void *)(dst + i + 48), d);
		}
	memcpy(dst + i, src + i, len - i);
}

/* Copy staged bytes to the pool: libpmem2's flushing copy on PM, plain streaming stores
 * where msync persists the record afterwards. */
static void copy_out(struct pm_store *s, uint8_t *dst, const uint8_t *stage, size_t n)
{
	if (s->msync_mode)
		nt_copy(dst, stage, n);
	else
		s->memcpy_fn(dst, stage, n,
			     PMEM2_F_MEM_NODRAIN | (n >= 256 ? PMEM2_F_MEM_NONTEMPORAL : 0));
}

static void write_piece(struct pm_store *s, struct pm_hasher *h, uint8_t *dst, const void *src,
			size_t len)
{
	/*
	 * The checksum must cover exactly the bytes written, even if the source (a guest's page)
	 * changes meanwhile; else a racing guest would make its record look damaged. So each
	 * chunk is staged in DRAM (cache-hot), hashed there and written from there.
	 */
	for (size_t done = 0; done < len;) {
		uint8_t stage[PM_PAGE_SIZE] __attribute__((aligned(64)));
		size_t n = MIN(len - done, sizeof(stage));

		memcpy(stage, (const uint8_t *)src + done, n);
		pm_hasher_update(h, stage, n);
		copy_out(s, dst + done, stage, n);
		done += n;
	}
}

static void write_zeros(struct pm_store *s, struct pm_hasher *h, uint8_t *dst, size_t len)
{
	static const uint8_t zeros[PM_LOG_ALIGN];

	if (!len)
		return;
	write_piece(s, h, dst, zeros, len);
}

static void seal_and_place_header(struct pm_store *s, struct pm_record *hdr, struct pm_hasher *h,
				  uint8_t *dst)
{
	hdr->payload_checksum = pm_hasher_digest(h);
	pm_record_seal(hdr, s->seed);
	if (s->msync_mode) {
		_mm_sfence(); /* the streamed payload is ordered before the header */
		memcpy(dst, hdr, sizeof(*hdr));
		s->persist_fn(dst, hdr->length);
	} else {
		s->memcpy_fn(dst, hdr, sizeof(*hdr), PMEM2_F_MEM_NODRAIN);
	}
}

static void write_pages_record(struct pm_store *s, unsigned dv, uint64_t epoch,
			       const struct pm_page *pages, uint32_t n, struct pm_hasher *h)
{
	struct pm_record hdr = { .magic = PM_REC_MAGIC, .type = PM_REC_PAGES, .device = (uint16_t)dv,
				 .count = n, .instance = s->dev[dv].entry.instance, .epoch = epoch,
				 .lsn = s->head_lsn, .length = pm_pages_record_length(n) };
	uint64_t gfns[MAX_PAGES_PER_RECORD];
	uint64_t gfn_bytes = (uint64_t)n * 8, gfn_area = ALIGN_UP(gfn_bytes, PM_LOG_ALIGN);
	uint8_t *dst = log_at(s, s->head_lsn), *p = dst + sizeof(hdr);

	for (uint32_t i = 0; i < n; i++)
		gfns[i] = pages[i].gfn;
	crash_point_enter("log-data", dst, hdr.length);
	pm_hasher_reset(h, pm_payload_seed(s->seed));
	write_piece(s, h, p, gfns, gfn_bytes);
	write_zeros(s, h, p + gfn_bytes, gfn_area - gfn_bytes);
	p += gfn_area;
	for (uint32_t i = 0; i < n; i++, p += PM_PAGE_SIZE)
		write_piece(s, h, p, pages[i].data, PM_PAGE_SIZE);
	seal_and_place_header(s, &hdr, h, dst);
	crash_point_leave(dst, hdr.length, s->persist_fn);
	s->head_lsn += hdr.length;
	s->stats.log_bytes += hdr.length;
	s->stats.pm_bytes_written += hdr.length;
}

static void write_ranges_record(struct pm_store *s, unsigned dv, uint64_t epoch,
				const struct pm_range *ranges, uint32_t n, uint64_t data_bytes,
				struct pm_hasher *h)
{
	struct pm_record hdr = { .magic = PM_REC_MAGIC, .type = PM_REC_RANGES,
				 .device = (uint16_t)dv, .count = n,
				 .instance = s->dev[dv].entry.instance, .epoch = epoch,
				 .lsn = s->head_lsn,
				 .length = pm_ranges_record_length(n, data_bytes) };
	struct pm_range_entry entries[MAX_RANGES_PER_RECORD];
	uint64_t ebytes = (uint64_t)n * sizeof(entries[0]), earea = ALIGN_UP(ebytes, PM_LOG_ALIGN);
	uint8_t *dst = log_at(s, s->head_lsn), *p = dst + sizeof(hdr);

	for (uint32_t i = 0; i < n; i++)
		entries[i] = (struct pm_range_entry){ .gfn = ranges[i].gfn, .offset = ranges[i].offset,
						      .length = ranges[i].length };
	crash_point_enter("log-data", dst, hdr.length);
	pm_hasher_reset(h, pm_payload_seed(s->seed));
	write_piece(s, h, p, entries, ebytes);
	write_zeros(s, h, p + ebytes, earea - ebytes);
	p += earea;
	/* gather small ranges: one copy to PM and one hash update per staging buffer */
	for (uint32_t i = 0; i < n;) {
		uint8_t stage[16384] __attribute__((aligned(64)));
		size_t fill = 0;

		if (ranges[i].length >= sizeof(stage) / 4) {
			write_piece(s, h, p, ranges[i].data, ranges[i].length);
			p += ranges[i].length;
			i++;
			continue;
		}
		while (i < n && fill + ranges[i].length <= sizeof(stage)) {
			/* single cachelines dominate hint commits: copy them inline */
			if (ranges[i].length == PM_CACHELINE)
				__builtin_memcpy(stage + fill, ranges[i].data, PM_CACHELINE);
			else
				memcpy(stage + fill, ranges[i].data, ranges[i].length);
			fill += ranges[i].length;
			i++;
		}
		pm_hasher_update(h, stage, fill);
		copy_out(s, p, stage, fill);
		p += fill;
	}
	write_zeros(s, h, p, ALIGN_UP(data_bytes, PM_LOG_ALIGN) - data_bytes);
	seal_and_place_header(s, &hdr, h, dst);
	crash_point_leave(dst, hdr.length, s->persist_fn);
	s->head_lsn += hdr.length;
	s->stats.log_bytes += hdr.length;
	s->stats.pm_bytes_written += hdr.length;
}

/* Log bytes a commit of pages only needs beyond its page records (see check_commit_args). */
static uint64_t commit_fixed_bytes(void)
{
	return pm_ranges_record_length(0, 0) * 2 + sizeof(struct pm_record);
}

uint64_t pm_commit_max_pages(struct pm_store *s)
{
	uint32_t per = max_pages_per_record(s);
	uint64_t half = s->sb.log_size / 2, k;

	if (half <= commit_fixed_bytes())
		return 0;
	/* (n / per + 1) full records must fit: n <= k * per - 1 */
	k = (half - commit_fixed_bytes()) / pm_pages_record_length(per);
	return k ? k * per - 1 : 0;
}

static int check_commit_args(struct pm_store *s, unsigned dv, uint64_t epoch,
			     const struct pm_page *pages, size_t n_pages,
			     const struct pm_range *ranges, size_t n_ranges, uint64_t *ret_total)
{
	const struct pm_device *d = dv < PM_MAX_DEVICES ? &s->dev[dv] : NULL;
	uint64_t total = 0;
	uint32_t per = max_pages_per_record(s);

	if (s->read_only)
		return -EROFS;
	if (s->failed)
		return -EIO;
	if (!d || !d->active)
		return -ENODEV;
	if (d->entry.mode == PM_MODE_NATIVE)
		return -EOPNOTSUPP; /* native devices have no epochs */
	if (epoch <= d->last_epoch)
		return -ESTALE;
	if (n_pages + n_ranges == 0)
		return -ENODATA;
	for (size_t i = 0; i < n_pages; i++)
		if (pages[i].gfn >= d->entry.size_pages || !pages[i].data)
			return -ERANGE;
	for (size_t i = 0; i < n_ranges; i++) {
		const struct pm_range *g = &ranges[i];

		if (g->gfn >= d->entry.size_pages || !g->data || g->length == 0 ||
		    g->offset % PM_CACHELINE || g->length % PM_CACHELINE ||
		    g->offset + (uint64_t)g->length > PM_PAGE_SIZE)
			return -ERANGE;
		total += g->length + sizeof(struct pm_range_entry);
	}
	total += (n_pages / per + 1) * pm_pages_record_length(per) +
		 (n_ranges / MAX_RANGES_PER_RECORD + 1) * pm_ranges_record_length(0, 0) * 2 +
		 sizeof(struct pm_record);
	if (total > s->sb.log_size / 2)
		return -E2BIG;
	*ret_total = total;
	return 0;
}

static void supersede(struct pm_store *s, struct pm_device *d, uint64_t gfn, uint64_t epoch)
{
	uint64_t f;

	if (gfn < d->entry.size_pages && d->frame_of[gfn]) {
		f = d->frame_of[gfn] - 1;
		if (frame_entry(s, f)->epoch < epoch)
			bit_set(s->frame_superseded, f);
	}
}

/* Frames whose page the commit gave a newer version (demote may rewrite those in place). */
static void mark_superseded(struct pm_store *s, struct pm_device *d, uint64_t epoch,
			    const struct pm_page *pages, size_t n_pages, const struct pm_range *ranges,
			    size_t n_ranges)
{
	for (size_t i = 0; i < n_pages; i++)
		supersede(s, d, pages[i].gfn, epoch);
	for (size_t i = 0; i < n_ranges; i++)
		supersede(s, d, ranges[i].gfn, epoch);
}

int pm_commit(struct pm_store *s, unsigned dv, uint64_t epoch, const struct pm_page *pages,
	      size_t n_pages, const struct pm_range *ranges, size_t n_ranges)
{
	struct pm_record commit = { .magic = PM_REC_MAGIC, .type = PM_REC_COMMIT,
				    .device = (uint16_t)dv, .epoch = epoch,
				    .length = sizeof(struct pm_record) };
	uint32_t per = max_pages_per_record(s), records = 0;
	uint64_t total = 0, first = 0, bytes = 0;
	struct pm_hasher *h = s->hasher;
	int r;

	pthread_mutex_lock(&s->lock);
	r = check_commit_args(s, dv, epoch, pages, n_pages, ranges, n_ranges, &total);
	if (r < 0)
		goto out;
	r = wait_for_space(s, total);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < n_pages; i += per) {
		uint32_t n = (uint32_t)MIN((size_t)per, n_pages - i);

		r = reserve(s, pm_pages_record_length(n));
		if (r < 0)
			goto out;
		if (!records++)
			first = s->head_lsn;
		write_pages_record(s, dv, epoch, pages + i, n, h);
		bytes += (uint64_t)n * PM_PAGE_SIZE;
	}
	for (size_t i = 0; i < n_ranges;) {
		uint64_t data = 0;
		uint32_t n = 0;

		while (i + n < n_ranges && n < MAX_RANGES_PER_RECORD &&
		       data + ranges[i + n].length <= (uint64_t)per * PM_PAGE_SIZE)
			data += ranges[i + n++].length;
		r = reserve(s, pm_ranges_record_length(n, data));
		if (r < 0)
			goto out;
		if (!records++)
			first = s->head_lsn;
		write_ranges_record(s, dv, epoch, ranges + i, n, data, h);
		bytes += data;
		i += n;
	}
	/* every data record is durable before the commit record is written */
	s->drain_fn();
	r = reserve(s, sizeof(commit));
	if (r < 0)
		goto out;
	commit.instance = s->dev[dv].entry.instance;
	commit.lsn = s->head_lsn;
	commit.first_lsn = first;
	commit.count = records;
	pm_record_seal(&commit, s->seed);
	pm_write(s, "log-commit", log_at(s, s->head_lsn), &commit, sizeof(commit));
	s->head_lsn += sizeof(commit);
	s->stats.log_bytes += sizeof(commit);
	s->stats.commits++;
	s->stats.commit_bytes += bytes;
	s->dev[dv].last_epoch = epoch;
	mark_superseded(s, &s->dev[dv], epoch, pages, n_pages, ranges, n_ranges);
out:
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* ---- frames ---------------------------------------------------------------------------- */

static int frame_alloc(struct pm_store *s, uint64_t *ret)
{
	uint64_t n = s->sb.n_frames;

	if (s->n_free == 0)
		return -ENOSPC;
	for (uint64_t k = 0; k < n; k++) {
		uint64_t f = (s->free_hint + k) % n;

		if (!bit_test(s->frame_used, f)) {
			s->free_hint = f + 1;
			bit_clear(s->frame_stale, f);
			*ret = f;
			return 0;
		}
	}
	return -ENOSPC;
}

/* One page of a demotion batch. */
struct demote_slot {
	uint64_t gfn, frame, old;
	bool keep;      /* its frame holds this version already */
	bool replacing; /* old is a superseded frame, freed once frame is durable */
};

/*
 * Persist what was written for the slots: one call per run of consecutive frames, or, where
 * persisting is msync (page granularity), one call over the span from the lowest frame to the
 * highest (an msync costs a system call; its clean pages cost next to nothing).
 */
static void persist_frames(struct pm_store *s, const struct demote_slot *sl, size_t n,
			   bool entries)
{
	size_t i = 0;

	if (s->msync_mode) {
		uint64_t lo = UINT64_MAX, hi = 0;

		for (size_t k = 0; k < n; k++)
			if (!sl[k].keep) {
				lo = MIN(lo, sl[k].frame);
				hi = MAX(hi, sl[k].frame);
			}
		if (lo > hi)
			return;
		if (entries)
			s->persist_fn(frame_entry(s, lo), (hi - lo + 1) * sizeof(struct pm_frame_entry));
		else
			s->persist_fn(frame_data(s, lo), (hi - lo + 1) * PM_PAGE_SIZE);
		return;
	}
	while (i < n) {
		size_t j = i + 1;

		if (sl[i].keep) {
			i++;
			continue;
		}
		while (j < n && !sl[j].keep && sl[j].frame == sl[j - 1].frame + 1)
			j++;
		if (entries)
			s->persist_fn(frame_entry(s, sl[i].frame),
				      (j - i) * sizeof(struct pm_frame_entry));
		else
			s->persist_fn(frame_data(s, sl[i].frame), (j - i) * PM_PAGE_SIZE);
		i = j;
	}
}

/* The new frames' data, not yet persisted: with the copy crew when there is one. */
static int copy_frames_data(struct pm_store *s, const struct demote_slot *sl, size_t m,
			    const void *const *data)
{
	_cleanup_free_ struct page_copy_item *items = NULL;
	size_t k = 0;

	if (s->crew && !crash_points_compiled())
		items = malloc(MAX(m, (size_t)1) * sizeof(*items));
	for (size_t i = 0; i < m; i++) {
		void *dst = frame_data(s, sl[i].frame);

		if (sl[i].keep)
			continue;
		s->stats.pm_bytes_written += PM_PAGE_SIZE;
		if (items) {
			items[k++] = (struct page_copy_item){ .dst = dst, .src = data[i] };
			continue;
		}
		crash_point_enter("frame-data", dst, PM_PAGE_SIZE);
		s->memcpy_fn(dst, data[i], PM_PAGE_SIZE,
			     PMEM2_F_MEM_NONTEMPORAL | PMEM2_F_MEM_NOFLUSH);
		crash_point_leave(dst, PM_PAGE_SIZE, s->persist_fn);
	}
	if (items)
		copy_crew_pages(s->crew, items, k, COPY_STREAM);
	return 0;
}

void pm_store_set_copy_crew(struct pm_store *s, struct copy_crew *crew)
{
	s->crew = crew;
}

/* Choose each page's frame: its own (kept), or a new one; stops when frames run out. */
static size_t assign_frames(struct pm_store *s, struct pm_device *d, uint64_t epoch,
			    const uint64_t *gfns, size_t n, struct demote_slot *sl)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t g = gfns[i];

		sl[i] = (struct demote_slot){ .gfn = g };
		if (d->frame_of[g]) {
			/*
			 * While no newer version of the page is committed, its frame holds the
			 * page's version: it is kept as it is. Once one is, the new version goes
			 * to a new frame and the old one is freed only after the new one's entry
			 * is durable: a crash in between leaves two frames for the page, and
			 * recovery keeps the newer. (Rewriting the old frame in place could lose
			 * the base that committed byte ranges of the page apply to.)
			 */
			sl[i].old = d->frame_of[g] - 1;
			if (!bit_test(s->frame_superseded, sl[i].old) ||
			    frame_entry(s, sl[i].old)->epoch >= epoch) {
				sl[i].keep = true;
				sl[i].frame = sl[i].old;
				continue;
			}
			sl[i].replacing = true;
		}
		if (frame_alloc(s, &sl[i].frame) < 0)
			return i;
		bit_set(s->frame_used, sl[i].frame);
		s->n_free--;
	}
	return n;
}

/*
 * Demote a batch: every frame's data, then every entry's epoch, then every owner, each group
 * made durable before the next starts (a page is on PM once its owner is), then the frames
 * the new ones replace are freed. Returns how many pages it placed (fewer when frames ran
 * out), or -errno.
 */
int pm_frames_demote(struct pm_store *s, unsigned dv, uint64_t epoch, size_t n,
		     const uint64_t *gfns, const void *const *data, uint64_t *ret_frames)
{
	struct pm_device *d = dv < PM_MAX_DEVICES ? &s->dev[dv] : NULL;
	struct demote_slot *sl;
	size_t m;
	int r = 0;

	if (s->read_only)
		return -EROFS;
	sl = calloc(MAX(n, (size_t)1), sizeof(*sl));
	if (!sl)
		return -ENOMEM;
	pthread_mutex_lock(&s->lock);
	if (!d || !d->active)
		r = -ENODEV;
	else if (epoch > d->last_epoch)
		r = -ERANGE; /* only committed versions go to PM frames */
	for (size_t i = 0; i < n && r == 0; i++)
		if (gfns[i] >= d->entry.size_pages)
			r = -ERANGE;
	if (r < 0)
		goto out;
	m = assign_frames(s, d, epoch, gfns, n, sl);
	r = copy_frames_data(s, sl, m, data);
	if (r < 0)
		goto out;
	persist_frames(s, sl, m, false);
	for (size_t i = 0; i < m; i++) {
		struct pm_frame_entry *e = frame_entry(s, sl[i].frame);

		if (sl[i].keep)
			continue;
		crash_point_enter("frame-epoch", &e->epoch, sizeof(e->epoch));
		__atomic_store_n(&e->epoch, epoch, __ATOMIC_RELEASE);
		crash_point_leave(&e->epoch, sizeof(e->epoch), s->persist_fn);
	}
	persist_frames(s, sl, m, true);
	for (size_t i = 0; i < m; i++) {
		struct pm_frame_entry *e = frame_entry(s, sl[i].frame);

		if (sl[i].keep)
			continue;
		crash_point_enter("frame-owner", &e->owner, sizeof(e->owner));
		__atomic_store_n(&e->owner, pm_frame_owner(sl[i].frame, dv, sl[i].gfn, epoch, s->seed),
				 __ATOMIC_RELEASE);
		crash_point_leave(&e->owner, sizeof(e->owner), s->persist_fn);
		s->stats.pm_bytes_written += 2 * sizeof(uint64_t);
	}
	persist_frames(s, sl, m, true);
	for (size_t i = 0; i < m; i++) {
		if (ret_frames)
			ret_frames[i] = sl[i].frame;
		if (sl[i].keep)
			continue;
		d->frame_of[sl[i].gfn] = (uint32_t)(sl[i].frame + 1);
		s->stats.frames_assigned++;
		if (sl[i].replacing) {
			frame_release_now(s, sl[i].old);
			s->stats.frames_replaced++;
		}
	}
	r = (int)m;
out:
	pthread_mutex_unlock(&s->lock);
	free(sl);
	return r;
}

int pm_frame_demote(struct pm_store *s, unsigned dv, uint64_t gfn, uint64_t epoch,
		    const void *data, uint64_t *ret_frame)
{
	int r = pm_frames_demote(s, dv, epoch, 1, &gfn, &data, ret_frame);

	return r < 0 ? r : r == 1 ? 0 : -ENOSPC;
}

int pm_frame_lookup(struct pm_store *s, unsigned dv, uint64_t gfn, uint64_t *ret_frame)
{
	struct pm_device *d = dv < PM_MAX_DEVICES ? &s->dev[dv] : NULL;
	int r = 0;

	pthread_mutex_lock(&s->lock);
	if (!d || !d->active || gfn >= d->entry.size_pages || !d->frame_of[gfn])
		r = -ENOENT;
	else
		*ret_frame = d->frame_of[gfn] - 1;
	pthread_mutex_unlock(&s->lock);
	return r;
}

uint64_t pm_frames_free(struct pm_store *s)
{
	return s->n_free;
}

uint64_t pm_frames_total(struct pm_store *s)
{
	return s->sb.n_frames;
}

uint64_t pm_device_frames(struct pm_store *s, unsigned dv)
{
	struct pm_device *d = dv < PM_MAX_DEVICES ? &s->dev[dv] : NULL;
	uint64_t n = 0;

	pthread_mutex_lock(&s->lock);
	if (d && d->active)
		for (uint64_t g = 0; g < d->entry.size_pages; g++)
			n += d->frame_of[g] != 0;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* ---- reporting ------------------------------------------------------------------------- */

void pm_store_get_stats(struct pm_store *s, struct pm_stats *ret)
{
	pthread_mutex_lock(&s->lock);
	*ret = s->stats;
	pthread_mutex_unlock(&s->lock);
}

uint64_t pm_log_used(struct pm_store *s)
{
	return s->head_lsn - s->sb.tail_lsn;
}

uint64_t pm_store_frames_offset(struct pm_store *s)
{
	return s->sb.frames_offset;
}

uint64_t pm_log_size(struct pm_store *s)
{
	return s->sb.log_size;
}

static const char *mode_name(uint32_t m)
{
	return m == PM_MODE_NATIVE ? "native" : m == PM_MODE_EPOCH ? "epoch" : "hint";
}

static struct json_object *device_to_json(struct pm_store *s, unsigned i)
{
	const struct pm_device *d = &s->dev[i];
	_cleanup_json_ struct json_object *o = json_object_new_object();
	uint64_t frames = 0;
	char uuid[37];
	int r = 0;

	if (!o)
		return NULL;
	for (uint64_t g = 0; g < d->entry.size_pages; g++)
		frames += d->frame_of[g] != 0;
	format_uuid(d->entry.vm_uuid, uuid);
	r |= json_add(o, "slot", json_object_new_int((int)i));
	r |= json_add(o, "name", json_object_new_string(d->entry.name));
	r |= json_add(o, "vm_uuid", json_object_new_string(uuid));
	r |= json_add(o, "size", json_object_new_uint64(d->entry.size_pages * PM_PAGE_SIZE));
	r |= json_add(o, "mode", json_object_new_string(mode_name(d->entry.mode)));
	r |= json_add(o, "image", json_object_new_string(d->entry.image_path));
	r |= json_add(o, "last_epoch", json_object_new_uint64(d->last_epoch));
	r |= json_add(o, "applied_epoch", json_object_new_uint64(d->entry.applied_epoch));
	r |= json_add(o, "pm_frames", json_object_new_uint64(frames));
	return r ? NULL : TAKE_PTR(o);
}

struct json_object *pm_store_to_json(struct pm_store *s)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	struct json_object *devs = json_object_new_array();
	char uuid[37];
	int r = 0;

	if (!o || json_add(o, "devices", devs) < 0)
		return NULL;
	pthread_mutex_lock(&s->lock);
	format_uuid(s->sb.pool_uuid, uuid);
	r |= json_add(o, "uuid", json_object_new_string(uuid));
	r |= json_add(o, "layout_version", json_object_new_int((int)s->sb.layout_version));
	r |= json_add(o, "generation", json_object_new_uint64(s->sb.generation));
	r |= json_add(o, "frames", json_object_new_uint64(s->sb.n_frames));
	r |= json_add(o, "frames_free", json_object_new_uint64(s->n_free));
	r |= json_add(o, "log_size", json_object_new_uint64(s->sb.log_size));
	r |= json_add(o, "log_used", json_object_new_uint64(s->head_lsn - s->sb.tail_lsn));
	r |= json_add(o, "log_head", json_object_new_uint64(s->head_lsn));
	r |= json_add(o, "log_tail", json_object_new_uint64(s->sb.tail_lsn));
	r |= json_add(o, "commits", json_object_new_uint64(s->stats.commits));
	r |= json_add(o, "commit_bytes", json_object_new_uint64(s->stats.commit_bytes));
	r |= json_add(o, "log_bytes", json_object_new_uint64(s->stats.log_bytes));
	r |= json_add(o, "log_full_waits", json_object_new_uint64(s->stats.log_full_waits));
	r |= json_add(o, "log_full_wait_usec", json_object_new_uint64(s->stats.log_full_wait_usec));
	r |= json_add(o, "checkpoints", json_object_new_uint64(s->stats.checkpoints));
	r |= json_add(o, "pm_bytes_written", json_object_new_uint64(s->stats.pm_bytes_written));
	for (unsigned i = 0; i < PM_MAX_DEVICES; i++)
		if (s->dev[i].active)
			r |= json_append(devs, device_to_json(s, i));
	pthread_mutex_unlock(&s->lock);
	return r ? NULL : TAKE_PTR(o);
}

struct json_object *pm_recovery_to_json(const struct pm_recovery *rep)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	int r = 0;

	if (!o)
		return NULL;
	r |= json_add_string_or_null(o, "superblock",
				     rep->superblock < 0 ? NULL : rep->superblock ? "B" : "A");
	r |= json_add(o, "superblock_fallback", json_object_new_boolean(rep->superblock_fallback));
	r |= json_add(o, "devices", json_object_new_int((int)rep->devices));
	r |= json_add(o, "frames_in_use", json_object_new_uint64(rep->frames_in_use));
	r |= json_add(o, "log_records", json_object_new_uint64(rep->log_records));
	r |= json_add(o, "committed_epochs", json_object_new_uint64(rep->committed_epochs));
	r |= json_add(o, "replayed_bytes", json_object_new_uint64(rep->replayed_bytes));
	r |= json_add(o, "discarded_records", json_object_new_uint64(rep->discarded_records));
	r |= json_add(o, "discarded_bytes", json_object_new_uint64(rep->discarded_bytes));
	r |= json_add(o, "torn_records", json_object_new_uint64(rep->torn_records));
	r |= json_add(o, "frames_freed", json_object_new_uint64(rep->frames_freed));
	r |= json_add(o, "unfinished_devices", json_object_new_int((int)rep->unfinished_devices));
	r |= json_add(o, "short_images", json_object_new_int((int)rep->short_images));
	r |= json_add(o, "usec", json_object_new_uint64(rep->usec));
	r |= json_add_string_or_null(o, "problem", rep->problem[0] ? rep->problem : NULL);
	return r ? NULL : TAKE_PTR(o);
}
