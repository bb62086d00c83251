/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VPMD_POOL_H
#define VPMD_POOL_H

#include <libpmem2.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "config.h"
#include "pm-store.h"

/* Smallest pool vpmd accepts: room for its metadata and at least a few frames. */
#define POOL_MIN_SIZE (UINT64_C(2) << 20)

/* One opened PM pool: the file or device, its libpmem2 mapping and what we learned of it. */
struct pool {
	struct pool_config config; /* copy of the section it came from */
	enum pool_kind kind;       /* resolved: devdax, fsdax or emulated */
	int fd;                    /* holds an exclusive flock for our lifetime */
	dev_t dev;
	ino_t ino;
	struct pmem2_source *source;
	struct pmem2_map *map;
	void *addr;
	uint64_t size;
	uint64_t alignment;
	enum pmem2_granularity granularity;
	bool created; /* vpmd created the file at open */
	int numa_node; /* -1 when unknown */
	struct pm_store *store; /* the VPM pool format on it; NULL while unformatted */
	struct pm_recovery recovery; /* what opening the store found and did */
};

/* Open (and for a missing file with a configured size, create) the pool; logs its errors. */
int pool_open(const struct pool_config *pc, struct pool **ret_pool);
/* If the pool is formatted, open its store: recover it (or only check it). Logs its errors. */
int pool_attach_store(struct pool *p, bool read_only);
struct pool *pool_close(struct pool *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct pool *, pool_close);

/* True when a store made durable through libpmem2 survives host power loss. */
bool pool_is_persistent(const struct pool *p);
const char *pool_granularity_to_string(enum pmem2_granularity g);

/* The pool as it appears in replies to "pools". */
struct json_object *pool_to_json(const struct pool *p);

/* Map a libpmem2 return code to a negative errno. */
int pmem2_error_to_errno(int r);

#endif
