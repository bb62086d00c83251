// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "json-util.h"
#include "log.h"
#include "parse-util.h"
#include "pool.h"

int pmem2_error_to_errno(int r)
{
	if (r >= 0)
		return 0;
	if (r > -4096)
		return r;
	switch (r) {
	case PMEM2_E_GRANULARITY_NOT_SUPPORTED:
		return -EOPNOTSUPP;
	case PMEM2_E_LENGTH_UNALIGNED:
	case PMEM2_E_OFFSET_UNALIGNED:
	case PMEM2_E_MAP_RANGE:
		return -EINVAL;
	case PMEM2_E_INVALID_FILE_TYPE:
		return -EBADFD;
	case PMEM2_E_DAX_REGION_NOT_FOUND:
		return -ENODEV;
	default:
		return -EIO;
	}
}

const char *pool_granularity_to_string(enum pmem2_granularity g)
{
	switch (g) {
	case PMEM2_GRANULARITY_BYTE:
		return "byte";
	case PMEM2_GRANULARITY_CACHE_LINE:
		return "cache-line";
	case PMEM2_GRANULARITY_PAGE:
		return "page";
	}
	return "unknown";
}

bool pool_is_persistent(const struct pool *p)
{
	return p->kind != POOL_KIND_EMULATED && p->granularity != PMEM2_GRANULARITY_PAGE;
}

/* Create a missing pool file of the configured size, or open the existing one. */
static int open_pool_file(struct pool *p, const struct pool_config *pc)
{
	int fd;

	fd = open(pc->path, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd >= 0)
		return fd;
	if (errno != ENOENT)
		return log_error_errno(errno, "Pool '%s': cannot open '%s': %m", pc->name, pc->path);
	if (pc->kind == POOL_KIND_DEVDAX || strncmp(pc->path, "/dev/dax", 8) == 0)
		return log_error_errno(ENOENT,
				       "Pool '%s': device '%s' does not exist; list devdax devices "
				       "with 'ndctl list -N' or 'vpmctl pools'",
				       pc->name, pc->path);
	if (pc->size == 0)
		return log_error_errno(ENOENT,
				       "Pool '%s': '%s' does not exist; create it, or set size = in "
				       "its [pool %s] section so that vpmd creates it",
				       pc->name, pc->path, pc->name);

	fd = open(pc->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return log_error_errno(errno, "Pool '%s': cannot create '%s': %m", pc->name,
				       pc->path);
	p->created = true;
	return fd;
}

static int size_pool_file(struct pool *p, const struct pool_config *pc, const struct stat *st)
{
	int r;

	if (p->created) {
		r = posix_fallocate(p->fd, 0, (off_t)pc->size);
		if (r == EOPNOTSUPP || r == EINVAL)
			r = ftruncate(p->fd, (off_t)pc->size) < 0 ? errno : 0;
		if (r != 0)
			return log_error_errno(r, "Pool '%s': cannot allocate %llu bytes for '%s': %m",
					       pc->name, (unsigned long long)pc->size, pc->path);
		return 0;
	}
	if (pc->size && (uint64_t)st->st_size != pc->size)
		return log_error_errno(EINVAL,
				       "Pool '%s': '%s' is %llu bytes but size = %llu; make size "
				       "match the file or remove the size key",
				       pc->name, pc->path, (unsigned long long)st->st_size,
				       (unsigned long long)pc->size);
	return 0;
}

/* Settle the pool's kind from the file type and what the configuration asked for. */
static int resolve_kind(struct pool *p, const struct pool_config *pc, const struct stat *st)
{
	if (S_ISCHR(st->st_mode)) {
		if (pc->kind != POOL_KIND_AUTO && pc->kind != POOL_KIND_DEVDAX)
			return log_error_errno(EINVAL,
					       "Pool '%s': '%s' is a character device but kind = %s; "
					       "use kind = devdax",
					       pc->name, pc->path, pool_kind_to_string(pc->kind));
		if (pc->size)
			return log_error_errno(EINVAL,
					       "Pool '%s': '%s' is a devdax device; its size comes "
					       "from the device, remove the size key",
					       pc->name, pc->path);
		p->kind = POOL_KIND_DEVDAX;
		return 0;
	}
	if (S_ISBLK(st->st_mode))
		return log_error_errno(EINVAL,
				       "Pool '%s': '%s' is a block device; mount it with -o dax and "
				       "use a file on it, or reconfigure the namespace as devdax "
				       "(ndctl create-namespace -m devdax)",
				       pc->name, pc->path);
	if (!S_ISREG(st->st_mode))
		return log_error_errno(EINVAL,
				       "Pool '%s': '%s' is neither a devdax device nor a regular file",
				       pc->name, pc->path);
	if (pc->kind == POOL_KIND_DEVDAX)
		return log_error_errno(EINVAL,
				       "Pool '%s': '%s' is a regular file but kind = devdax; use "
				       "kind = fsdax for a file on a DAX filesystem or kind = emulated",
				       pc->name, pc->path);
	p->kind = pc->kind == POOL_KIND_EMULATED ? POOL_KIND_EMULATED : POOL_KIND_FSDAX;
	return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/*
 * An emulated pool is a file in the page cache (often tmpfs): left alone, every frame's first
 * store after a start takes a page fault that allocates or finds its page, which makes a
 * demotion several times slower than on real PM (devdax maps whole 2 MiB pages at once).
 * Fault the whole mapping in once at start instead. Best effort: kernels before 5.14 lack
 * MADV_POPULATE_WRITE, and then the faults happen as before.
 */
static void populate_emulated_pool(struct pool *p)
{
	uint64_t t0 = now_usec(CLOCK_MONOTONIC);

	if (madvise(p->addr, p->size, MADV_POPULATE_WRITE) < 0) {
		log_debug_errno(errno, "Pool '%s': not populated: %m", p->config.name);
		return;
	}
	log_debug("Pool '%s': %zu MiB populated in %" PRIu64 " ms", p->config.name,
		  p->size >> 20, (now_usec(CLOCK_MONOTONIC) - t0) / USEC_PER_MSEC);
}

static int map_pool(struct pool *p)
{
	const char *name = p->config.name, *path = p->config.path;
	struct pmem2_config *cfg = NULL;
	size_t size = 0, align = 0;
	int r;

	r = pmem2_source_from_fd(&p->source, p->fd);
	if (r < 0)
		return log_error_errno(pmem2_error_to_errno(r), "Pool '%s': libpmem2 refused '%s': %s",
				       name, path, pmem2_errormsg());
	r = pmem2_source_size(p->source, &size);
	if (r < 0)
		return log_error_errno(pmem2_error_to_errno(r),
				       "Pool '%s': cannot read the size of '%s': %s", name, path,
				       pmem2_errormsg());
	if (size < POOL_MIN_SIZE)
		return log_error_errno(EINVAL,
				       "Pool '%s': '%s' has %zu bytes; a pool needs at least %llu",
				       name, path, size, (unsigned long long)POOL_MIN_SIZE);
	r = pmem2_source_alignment(p->source, &align);
	if (r < 0)
		return log_error_errno(pmem2_error_to_errno(r),
				       "Pool '%s': cannot read the alignment of '%s': %s", name, path,
				       pmem2_errormsg());

	r = pmem2_config_new(&cfg);
	if (r < 0)
		return log_oom();
	/* Emulated pools accept msync-level persistence; real PM must do better. */
	r = pmem2_config_set_required_store_granularity(
		cfg, p->kind == POOL_KIND_EMULATED ? PMEM2_GRANULARITY_PAGE
						   : PMEM2_GRANULARITY_CACHE_LINE);
	if (r >= 0)
		r = pmem2_map_new(&p->map, cfg, p->source);
	pmem2_config_delete(&cfg);
	if (r == PMEM2_E_GRANULARITY_NOT_SUPPORTED)
		return log_error_errno(EOPNOTSUPP,
				       "Pool '%s': '%s' is not on a DAX filesystem (libpmem2 can "
				       "only persist it with msync); mount the filesystem with -o "
				       "dax, or set kind = emulated to use it without a persistence "
				       "guarantee",
				       name, path);
	if (r < 0)
		return log_error_errno(pmem2_error_to_errno(r), "Pool '%s': cannot map '%s': %s",
				       name, path, pmem2_errormsg());

	p->addr = pmem2_map_get_address(p->map);
	p->size = pmem2_map_get_size(p->map);
	if (p->kind == POOL_KIND_EMULATED)
		populate_emulated_pool(p);
	p->alignment = align;
	p->granularity = pmem2_map_get_store_granularity(p->map);
	if (pmem2_source_numa_node(p->source, &p->numa_node) < 0)
		p->numa_node = -1;
	return 0;
}

static int copy_pool_config(struct pool_config *dst, const struct pool_config *src)
{
	*dst = *src;
	dst->name = strdup(src->name);
	dst->path = strdup(src->path);
	return dst->name && dst->path ? 0 : -ENOMEM;
}

int pool_open(const struct pool_config *pc, struct pool **ret_pool)
{
	_cleanup_(pool_closep) struct pool *p = NULL;
	struct stat st;
	int r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return log_oom();
	p->fd = -1;
	p->numa_node = -1;
	if (copy_pool_config(&p->config, pc) < 0)
		return log_oom();

	p->fd = open_pool_file(p, pc);
	if (p->fd < 0)
		return p->fd;
	if (flock(p->fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return log_error_errno(EBUSY,
					       "Pool '%s': '%s' is in use by another process (another "
					       "vpmd?); each pool belongs to one vpmd",
					       pc->name, pc->path);
		return log_error_errno(errno, "Pool '%s': cannot lock '%s': %m", pc->name, pc->path);
	}
	if (fstat(p->fd, &st) < 0)
		return log_error_errno(errno, "Pool '%s': cannot stat '%s': %m", pc->name, pc->path);
	p->dev = S_ISCHR(st.st_mode) ? st.st_rdev : st.st_dev;
	p->ino = S_ISCHR(st.st_mode) ? 0 : st.st_ino;

	r = resolve_kind(p, pc, &st);
	if (r < 0)
		return r;
	if (S_ISREG(st.st_mode)) {
		r = size_pool_file(p, pc, &st);
		if (r < 0)
			return r;
	}
	r = map_pool(p);
	if (r < 0)
		return r;

	log_info("Pool '%s': %s %s, %llu MiB, %s store granularity%s", pc->name,
		 pool_kind_to_string(p->kind), pc->path, (unsigned long long)(p->size >> 20),
		 pool_granularity_to_string(p->granularity),
		 pool_is_persistent(p) ? "" : " (emulated: NOT persistent across power loss)");
	*ret_pool = TAKE_PTR(p);
	return 0;
}

int pool_attach_store(struct pool *p, bool read_only)
{
	int r;

	if (!pm_store_is_formatted(p)) {
		log_notice("Pool '%s' is not formatted; format it with 'vpmd --init-pool %s'",
			   p->config.name, p->config.name);
		return 0;
	}
	r = pm_store_open(p, read_only, &p->store, &p->recovery);
	if (r < 0)
		return log_error_errno(r, "Pool '%s': %s", p->config.name, p->recovery.problem);
	if (p->recovery.committed_epochs || p->recovery.discarded_records ||
	    p->recovery.frames_freed || p->recovery.superblock_fallback)
		log_notice("Pool '%s': recovery %s %" PRIu64 " committed epochs (%" PRIu64
			   " bytes), discarded %" PRIu64 " uncommitted records, freed %" PRIu64
			   " frames%s in %" PRIu64 " us",
			   p->config.name, read_only ? "would replay" : "replayed",
			   p->recovery.committed_epochs, p->recovery.replayed_bytes,
			   p->recovery.discarded_records, p->recovery.frames_freed,
			   p->recovery.superblock_fallback ? ", fell back to the older superblock" : "",
			   p->recovery.usec);
	else
		log_info("Pool '%s': clean, %u devices, %" PRIu64 " PM frames in use", p->config.name,
			 p->recovery.devices, p->recovery.frames_in_use);
	return 0;
}

struct pool *pool_close(struct pool *p)
{
	if (!p)
		return NULL;
	pm_store_close(p->store);
	if (p->map)
		pmem2_map_delete(&p->map);
	if (p->source)
		pmem2_source_delete(&p->source);
	/* A file we created but never mapped holds nothing: leave no half-made pool behind. */
	if (p->created && !p->addr && p->config.path)
		unlink(p->config.path);
	safe_close(p->fd);
	free(p->config.name);
	free(p->config.path);
	free(p);
	return NULL;
}

struct json_object *pool_to_json(const struct pool *p)
{
	struct json_object *o = json_object_new_object();
	bool persistent = pool_is_persistent(p);
	int r = 0;

	if (!o)
		return NULL;
	r |= json_add(o, "name", json_object_new_string(p->config.name));
	r |= json_add(o, "path", json_object_new_string(p->config.path));
	r |= json_add(o, "kind", json_object_new_string(pool_kind_to_string(p->kind)));
	r |= json_add(o, "size", json_object_new_uint64(p->size));
	r |= json_add(o, "alignment", json_object_new_uint64(p->alignment));
	r |= json_add(o, "store_granularity",
		      json_object_new_string(pool_granularity_to_string(p->granularity)));
	r |= json_add(o, "persistent", json_object_new_boolean(persistent));
	r |= json_add(o, "numa_node", json_object_new_int(p->numa_node));
	r |= json_add(o, "formatted", json_object_new_boolean(p->store != NULL));
	if (p->store) {
		r |= json_add(o, "store", pm_store_to_json(p->store));
		r |= json_add(o, "recovery", pm_recovery_to_json(&p->recovery));
	}
	if (!persistent)
		r |= json_add(o, "warning",
			      json_object_new_string(
				      p->kind == POOL_KIND_EMULATED
					      ? "emulated PM: data survives a vpmd crash but not a "
						"host crash or power loss"
					      : "no DAX: data survives a vpmd crash but not a host "
						"crash or power loss"));
	if (r) {
		json_object_put(o);
		return NULL;
	}
	return o;
}
