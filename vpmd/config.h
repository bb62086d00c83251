/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VPMD_CONFIG_H
#define VPMD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

#ifndef VPMD_DEFAULT_CONFIG
#define VPMD_DEFAULT_CONFIG "/etc/vpm/vpmd.conf"
#endif
#define VPMD_MAX_POOLS      64
#define VPMD_POOL_NAME_MAX  64
#define VPMD_COPY_THREADS_MAX 16

enum pool_kind {
	POOL_KIND_AUTO,     /* devdax for a character device, fsdax for a file */
	POOL_KIND_DEVDAX,
	POOL_KIND_FSDAX,
	POOL_KIND_EMULATED, /* plain file, no persistence guarantee */
	_POOL_KIND_MAX,
};

enum backend_kind {
	BACKEND_SIM,
	BACKEND_KVM,
	_BACKEND_MAX,
};

/* What libvirt's qemu hook (vpmctl hook) does with a starting VM while vpmd is down. */
enum hook_on_vpmd_down {
	HOOK_ON_VPMD_DOWN_POLICY, /* refuse VMs that have a VPM policy, start the others */
	HOOK_ON_VPMD_DOWN_FAIL,   /* refuse every VM */
	HOOK_ON_VPMD_DOWN_PASS,   /* start every VM */
	_HOOK_ON_VPMD_DOWN_MAX,
};

struct pool_config {
	char *name;
	char *path;
	enum pool_kind kind;
	uint64_t size; /* 0 = take the size of the existing file or device */
	unsigned line; /* where its section starts, for messages */
};

struct vpmd_config {
	char *file; /* the file this came from */

	char *socket_path;
	mode_t socket_mode;
	char *socket_group; /* members may read state; NULL or "" = root only */
	char *state_dir;
	char *runtime_dir; /* tmpfs: what must outlive vpmd in memory (KVM VMs' DRAM frames) */
	enum backend_kind backend;
	char *libvirt_uri;
	uint64_t dram_budget;
	uint64_t epoch_interval_usec;
	double default_ratio;    /* of a VM whose configuration names none */
	uint64_t migration_rate; /* bytes per second moved between tiers, all VMs together */
	unsigned copy_threads;   /* that stage an epoch's pages during a pause; 0: automatic */
	unsigned max_clients;
	uint64_t client_idle_timeout_usec;
	uint64_t max_request_size;
	int log_level;

	/* [hook]: read by vpmctl hook; vpmd only checks it */
	enum hook_on_vpmd_down hook_on_vpmd_down;

	struct pool_config *pools;
	size_t n_pools;
};

/*
 * Read and validate a configuration file. On a bad file returns -EINVAL and sets
 * *ret_errors to one line per problem, each naming file, line and key.
 */
int config_load(const char *file, struct vpmd_config **ret_config, char **ret_errors);
/* Same, from a string; file names the source in messages. */
int config_load_string(const char *text, const char *file, struct vpmd_config **ret_config,
		       char **ret_errors);

struct vpmd_config *config_free(struct vpmd_config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct vpmd_config *, config_free);

const struct pool_config *config_find_pool(const struct vpmd_config *c, const char *name);
bool pool_config_equal(const struct pool_config *a, const struct pool_config *b);

const char *pool_kind_to_string(enum pool_kind k);
const char *backend_kind_to_string(enum backend_kind b);
const char *hook_on_vpmd_down_to_string(enum hook_on_vpmd_down h);

#endif
