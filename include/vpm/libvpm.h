/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvpm: the client library of vpmd, the VPM daemon.
 *
 * Every call returns 0 (or a non-negative value) on success and a negative errno on failure;
 * vpm_errormsg() then describes the failure for the calling thread. Objects are reference
 * counted: vpm_*_ref() takes a reference, vpm_*_unref() drops one and returns NULL.
 *
 * A context talks to one vpmd over its control socket. A context is not thread-safe; use one
 * per thread. See libvpm(3).
 */
#ifndef VPM_LIBVPM_H
#define VPM_LIBVPM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VPM_SOCKET_DEFAULT "/run/vpmd/vpmd.sock"
#define VPM_SOCKET_ENV     "VPM_SOCKET"

struct vpm_ctx;
struct vpm_status;
struct vpm_pool_list;
struct vpm_pool;
struct vpm_region;
struct vpm_namespace;

/* The library's version, e.g. "0.1.0". */
const char *vpm_version(void);

/* A description of the calling thread's last failure; never NULL. */
const char *vpm_errormsg(void);

/*
 * What the calling thread's last vpm_vm_set_*() call that succeeded was warned about, one
 * warning per line (e.g. a libvirt VM whose domain metadata could not be updated), or NULL.
 */
const char *vpm_warningmsg(void);

/*
 * Create a context for the vpmd listening on socket_path; NULL means $VPM_SOCKET, or
 * VPM_SOCKET_DEFAULT when that is unset. Connects lazily, on the first call that needs it.
 */
int vpm_new(const char *socket_path, struct vpm_ctx **ret_ctx);
struct vpm_ctx *vpm_ref(struct vpm_ctx *ctx);
struct vpm_ctx *vpm_unref(struct vpm_ctx *ctx);
const char *vpm_get_socket_path(const struct vpm_ctx *ctx);
/* Bound on each request's round trip (default 30 s); 0 waits forever. */
int vpm_set_timeout(struct vpm_ctx *ctx, uint64_t timeout_usec);
/* Connect now; returns -ENOENT/-ECONNREFUSED when vpmd is not running, -EACCES if refused. */
int vpm_connect(struct vpm_ctx *ctx);

/* ---- daemon status ---- */
int vpm_status_get(struct vpm_ctx *ctx, struct vpm_status **ret_status);
struct vpm_status *vpm_status_ref(struct vpm_status *status);
struct vpm_status *vpm_status_unref(struct vpm_status *status);
const char *vpm_status_get_version(const struct vpm_status *status);
int vpm_status_get_protocol(const struct vpm_status *status);
pid_t vpm_status_get_pid(const struct vpm_status *status);
uint64_t vpm_status_get_uptime_usec(const struct vpm_status *status);
const char *vpm_status_get_config_file(const struct vpm_status *status);
const char *vpm_status_get_state_dir(const struct vpm_status *status);
const char *vpm_status_get_socket(const struct vpm_status *status);
bool vpm_status_is_socket_activated(const struct vpm_status *status);
const char *vpm_status_get_backend(const struct vpm_status *status);
const char *vpm_status_get_libvirt_uri(const struct vpm_status *status);
uint64_t vpm_status_get_dram_budget(const struct vpm_status *status);
uint64_t vpm_status_get_epoch_interval_usec(const struct vpm_status *status);
unsigned vpm_status_get_pool_count(const struct vpm_status *status);
unsigned vpm_status_get_emulated_pool_count(const struct vpm_status *status);
uint64_t vpm_status_get_pool_size(const struct vpm_status *status);
unsigned vpm_status_get_clients(const struct vpm_status *status);
uint64_t vpm_status_get_requests(const struct vpm_status *status);
unsigned vpm_status_get_reloads(const struct vpm_status *status);
/* Time spent recovering the open pools (at start or when a reload added them), and the
 * committed log bytes replayed. */
uint64_t vpm_status_get_recovery_usec(const struct vpm_status *status);
uint64_t vpm_status_get_recovery_replayed_bytes(const struct vpm_status *status);
/* NULL when the last reload succeeded or none happened. */
const char *vpm_status_get_last_reload_error(const struct vpm_status *status);
/*
 * The whole status as JSON text (pretty when pretty is true), as vpmd sent it. The text
 * belongs to the object and stays valid until the next *_get_json() call on it or its unref;
 * the same holds for every *_get_json() below.
 */
const char *vpm_status_get_json(const struct vpm_status *status, bool pretty);

/* ---- pools and host PM ---- */
enum vpm_pool_kind {
	VPM_POOL_KIND_UNKNOWN,
	VPM_POOL_KIND_DEVDAX,
	VPM_POOL_KIND_FSDAX,
	VPM_POOL_KIND_EMULATED,
};

int vpm_pool_list_get(struct vpm_ctx *ctx, struct vpm_pool_list **ret_list);
struct vpm_pool_list *vpm_pool_list_ref(struct vpm_pool_list *list);
struct vpm_pool_list *vpm_pool_list_unref(struct vpm_pool_list *list);
const char *vpm_pool_list_get_json(const struct vpm_pool_list *list, bool pretty);
/* Message when libndctl could not enumerate host PM; NULL when it could. */
const char *vpm_pool_list_get_host_error(const struct vpm_pool_list *list);

/* Pools vpmd has open. Iterators stay valid as long as the list. */
struct vpm_pool *vpm_pool_get_first(struct vpm_pool_list *list);
struct vpm_pool *vpm_pool_get_next(struct vpm_pool *pool);
#define vpm_pool_foreach(list, pool)                                                               \
	for (pool = vpm_pool_get_first(list); pool != NULL; pool = vpm_pool_get_next(pool))

const char *vpm_pool_get_name(const struct vpm_pool *pool);
const char *vpm_pool_get_path(const struct vpm_pool *pool);
enum vpm_pool_kind vpm_pool_get_kind(const struct vpm_pool *pool);
const char *vpm_pool_kind_to_string(enum vpm_pool_kind kind);
uint64_t vpm_pool_get_size(const struct vpm_pool *pool);
uint64_t vpm_pool_get_alignment(const struct vpm_pool *pool);
/* "byte", "cache-line" or "page" (libpmem2's store granularity). */
const char *vpm_pool_get_store_granularity(const struct vpm_pool *pool);
/* False for emulated PM: data survives vpmd crashes but not power loss. */
bool vpm_pool_is_persistent(const struct vpm_pool *pool);
int vpm_pool_get_numa_node(const struct vpm_pool *pool);
/* True when the pool carries the VPM format (vpmd --init-pool); false while unformatted. */
bool vpm_pool_is_formatted(const struct vpm_pool *pool);
/* vPM devices kept in the pool, PM frames in all and free, redo log (0 when unformatted). */
unsigned vpm_pool_get_device_count(const struct vpm_pool *pool);
uint64_t vpm_pool_get_frames(const struct vpm_pool *pool);
uint64_t vpm_pool_get_frames_free(const struct vpm_pool *pool);
uint64_t vpm_pool_get_log_size(const struct vpm_pool *pool);
uint64_t vpm_pool_get_log_used(const struct vpm_pool *pool);

/* The host's NVDIMM regions and namespaces as libndctl sees them (none on hosts without PM). */
struct vpm_region *vpm_region_get_first(struct vpm_pool_list *list);
struct vpm_region *vpm_region_get_next(struct vpm_region *region);
#define vpm_region_foreach(list, region)                                                           \
	for (region = vpm_region_get_first(list); region != NULL;                                  \
	     region = vpm_region_get_next(region))

const char *vpm_region_get_name(const struct vpm_region *region);
const char *vpm_region_get_type(const struct vpm_region *region);
uint64_t vpm_region_get_size(const struct vpm_region *region);
uint64_t vpm_region_get_available_size(const struct vpm_region *region);
int vpm_region_get_numa_node(const struct vpm_region *region);

struct vpm_namespace *vpm_namespace_get_first(struct vpm_region *region);
struct vpm_namespace *vpm_namespace_get_next(struct vpm_namespace *ns);
#define vpm_namespace_foreach(region, ns)                                                          \
	for (ns = vpm_namespace_get_first(region); ns != NULL; ns = vpm_namespace_get_next(ns))

const char *vpm_namespace_get_name(const struct vpm_namespace *ns);
/* "fsdax", "devdax", "sector", "raw" */
const char *vpm_namespace_get_mode(const struct vpm_namespace *ns);
uint64_t vpm_namespace_get_size(const struct vpm_namespace *ns);
/* "dax0.0" for devdax, "pmem0" for fsdax; NULL when there is none. */
const char *vpm_namespace_get_device(const struct vpm_namespace *ns);

/* ---- pool checks ---- */
struct vpm_pool_check;

/*
 * Have vpmd re-read every structure of one pool (or of all, when pool is NULL) from the
 * media, without changing anything, and report what recovery would do.
 */
int vpm_pool_check(struct vpm_ctx *ctx, const char *pool, struct vpm_pool_check **ret_check);
struct vpm_pool_check *vpm_pool_check_unref(struct vpm_pool_check *check);
/*
 * Number of pools the check found wanting: "damaged", "unsupported" (a later layout) or
 * "error" (could not be read); 0 when all are "ok" or "unformatted". The check is owned by
 * the caller alone (no _ref); vpm_pool_check_unref() frees it.
 */
unsigned vpm_pool_check_get_damaged(const struct vpm_pool_check *check);
const char *vpm_pool_check_get_json(const struct vpm_pool_check *check, bool pretty);

/* ---- VMs ---- */
struct vpm_vm_list;
struct vpm_vm;

/* The VMs vpmd serves now (simulated guests while the sim backend runs). */
int vpm_vm_list_get(struct vpm_ctx *ctx, struct vpm_vm_list **ret_list);
struct vpm_vm_list *vpm_vm_list_ref(struct vpm_vm_list *list);
struct vpm_vm_list *vpm_vm_list_unref(struct vpm_vm_list *list);
const char *vpm_vm_list_get_json(const struct vpm_vm_list *list, bool pretty);
struct vpm_vm *vpm_vm_get_first(struct vpm_vm_list *list);
struct vpm_vm *vpm_vm_get_next(struct vpm_vm *vm);
#define vpm_vm_foreach(list, vm)                                                                   \
	for (vm = vpm_vm_get_first(list); vm != NULL; vm = vpm_vm_get_next(vm))

const char *vpm_vm_get_name(const struct vpm_vm *vm);
/* "native", "epoch" or "hint" */
const char *vpm_vm_get_mode(const struct vpm_vm *vm);
unsigned vpm_vm_get_vcpus(const struct vpm_vm *vm);
/* Guest PM pages, and how many live in DRAM frames and on PM frames (the rest only in the
 * device image, untouched). */
uint64_t vpm_vm_get_pages(const struct vpm_vm *vm);
uint64_t vpm_vm_get_dram_pages(const struct vpm_vm *vm);
uint64_t vpm_vm_get_pm_pages(const struct vpm_vm *vm);
/* The last committed epoch, epochs committed since the VM attached, guest operations done. */
uint64_t vpm_vm_get_epoch(const struct vpm_vm *vm);
uint64_t vpm_vm_get_epochs(const struct vpm_vm *vm);
uint64_t vpm_vm_get_ops(const struct vpm_vm *vm);

/*
 * A VM belongs to the list, stats object or vpm_vm_show() reply it came from: vpm_vm_ref()
 * keeps all of that alive, vpm_vm_unref() drops the reference. The VM object as JSON text.
 */
struct vpm_vm *vpm_vm_ref(struct vpm_vm *vm);
struct vpm_vm *vpm_vm_unref(struct vpm_vm *vm);
const char *vpm_vm_get_json(const struct vpm_vm *vm, bool pretty);

/* "sim"; the placement policy: "vpm", "static", "random", "lru" or "oracle". */
const char *vpm_vm_get_backend(const struct vpm_vm *vm);
const char *vpm_vm_get_policy(const struct vpm_vm *vm);
/* 0..100, higher migrates first and keeps DRAM longer; -1 when vpmd did not say. */
int vpm_vm_get_priority(const struct vpm_vm *vm);
/* Guest PM pages per PM frame the VM may hold (>= 1); 0 when vpmd did not say. */
double vpm_vm_get_ratio(const struct vpm_vm *vm);
/* Pages only in the device image (never touched since the VM attached). */
uint64_t vpm_vm_get_image_pages(const struct vpm_vm *vm);
/* PM frames the ratio gives the VM, and the DRAM pages it may keep at an epoch boundary. */
uint64_t vpm_vm_get_pm_target(const struct vpm_vm *vm);
uint64_t vpm_vm_get_dram_share(const struct vpm_vm *vm);
/* True when the placement met the ratio at the last epoch boundary; else the pages to move. */
bool vpm_vm_is_converged(const struct vpm_vm *vm);
uint64_t vpm_vm_get_migrating_pages(const struct vpm_vm *vm);
/* Pages dirtied in all epochs, first-touch faults, pages moved to DRAM and to PM frames. */
uint64_t vpm_vm_get_dirty_pages(const struct vpm_vm *vm);
uint64_t vpm_vm_get_faults(const struct vpm_vm *vm);
uint64_t vpm_vm_get_promotions(const struct vpm_vm *vm);
uint64_t vpm_vm_get_demotions(const struct vpm_vm *vm);
uint64_t vpm_vm_get_pause_usec_max(const struct vpm_vm *vm);
uint64_t vpm_vm_get_page_table_bytes(const struct vpm_vm *vm);
/* DRAM of the VM's staging buffer (faulted in as its DRAM pages grew; not in dram_budget). */
uint64_t vpm_vm_get_stage_bytes(const struct vpm_vm *vm);

/*
 * Statistics: only VMs from vpm_vm_show() and vpm_stats_get() carry them (has_stats is true);
 * the getters return 0 for others.
 */
bool vpm_vm_has_stats(const struct vpm_vm *vm);
uint64_t vpm_vm_get_pause_usec_p50(const struct vpm_vm *vm);
uint64_t vpm_vm_get_pause_usec_p99(const struct vpm_vm *vm);
uint64_t vpm_vm_get_pause_samples(const struct vpm_vm *vm);
uint64_t vpm_vm_get_dirty_pages_last_epoch(const struct vpm_vm *vm);
double vpm_vm_get_dirty_pages_per_epoch(const struct vpm_vm *vm);
/* Bytes the VM's commits appended to the PM log; those plus PM frame bytes written (wear). */
uint64_t vpm_vm_get_log_bytes(const struct vpm_vm *vm);
uint64_t vpm_vm_get_pm_bytes_written(const struct vpm_vm *vm);
uint64_t vpm_vm_get_migrated_bytes(const struct vpm_vm *vm);
double vpm_vm_get_modeled_ops_per_sec(const struct vpm_vm *vm);
double vpm_vm_get_wall_ops_per_sec(const struct vpm_vm *vm);
/* Writes a crash may lose: epoch interval plus commit time p99 in epoch mode, else 0. */
uint64_t vpm_vm_get_loss_window_usec(const struct vpm_vm *vm);
uint64_t vpm_vm_get_hints_persist(const struct vpm_vm *vm);
uint64_t vpm_vm_get_hints_discard(const struct vpm_vm *vm);

/*
 * Only from vpm_vm_list_get(): libvirt's state of the VM, "running", "paused", "shutoff",
 * "crashed" or "other"; NULL when it is not a libvirt VM or vpmd does not say (older vpmd).
 */
const char *vpm_vm_get_libvirt_state(const struct vpm_vm *vm);

/* Only from vpm_vm_show(): the epoch interval and the VM's device (index -1 when absent). */
uint64_t vpm_vm_get_epoch_interval_usec(const struct vpm_vm *vm);
const char *vpm_vm_get_device_pool(const struct vpm_vm *vm);
int vpm_vm_get_device_index(const struct vpm_vm *vm);
const char *vpm_vm_get_device_image(const struct vpm_vm *vm);

/* One VM with its statistics and device; -ENOENT when vpmd serves no VM of that name. */
int vpm_vm_show(struct vpm_ctx *ctx, const char *name, struct vpm_vm **ret_vm);

/*
 * Serve a running VM of the patched KVM (vpmd with backend = kvm; root only): pid is its VMM's
 * process (QEMU's), [gpa, gpa + size) its vPM range, guest-physical, in whole 4 KiB pages.
 * ratio 0, mode NULL and policy NULL take vpmd's defaults (or the settings saved for name).
 * On success *ret_vm is the VM as vpm_vm_show() gives it (unref it).
 */
int vpm_vm_attach_kvm(struct vpm_ctx *ctx, const char *name, pid_t pid, uint64_t gpa,
		      uint64_t size, double ratio, const char *mode, const char *policy,
		      struct vpm_vm **ret_vm);

/*
 * Change the VM called name, or every VM when name is NULL (root only). vpmd applies the
 * change to all of them or to none. A ratio must be finite, from 1 to 65536; mode "native"
 * forces ratio 1. The new placement is reached over the next epoch boundaries: poll
 * vpm_vm_is_converged().
 */
int vpm_vm_set_ratio(struct vpm_ctx *ctx, const char *name, double ratio);
int vpm_vm_set_mode(struct vpm_ctx *ctx, const char *name, const char *mode);
int vpm_vm_set_policy(struct vpm_ctx *ctx, const char *name, const char *policy);
int vpm_vm_set_priority(struct vpm_ctx *ctx, const char *name, int priority);

/* ---- libvirt's view ---- */
struct vpm_libvirt_vm;

/*
 * Whether vpmd follows libvirt's VMs (false when it serves none, or is older and does not
 * say). Its connection: the URI, whether it is connected now, and the last error of the
 * connection (NULL when there was none).
 */
bool vpm_vm_list_has_libvirt(const struct vpm_vm_list *list);
const char *vpm_vm_list_get_libvirt_uri(const struct vpm_vm_list *list);
bool vpm_vm_list_is_libvirt_connected(const struct vpm_vm_list *list);
const char *vpm_vm_list_get_libvirt_error(const struct vpm_vm_list *list);

/*
 * The libvirt VMs with PM devices, attached or not. They belong to the VM list and stay
 * valid as long as it does (vpm_vm_list_ref(), or vpm_vm_ref() on one of its VMs).
 */
struct vpm_libvirt_vm *vpm_libvirt_vm_get_first(struct vpm_vm_list *list);
struct vpm_libvirt_vm *vpm_libvirt_vm_get_next(struct vpm_libvirt_vm *lvm);
#define vpm_libvirt_vm_foreach(list, lvm)                                                          \
	for (lvm = vpm_libvirt_vm_get_first(list); lvm != NULL; lvm = vpm_libvirt_vm_get_next(lvm))

const char *vpm_libvirt_vm_get_name(const struct vpm_libvirt_vm *lvm);
const char *vpm_libvirt_vm_get_uuid(const struct vpm_libvirt_vm *lvm);
/* "running", "paused", "shutoff", "crashed" or "other"; NULL when libvirt did not say. */
const char *vpm_libvirt_vm_get_state(const struct vpm_libvirt_vm *lvm);
/* The pages of the PM devices vpmd can serve. */
uint64_t vpm_libvirt_vm_get_pm_pages(const struct vpm_libvirt_vm *lvm);
/* The first device vpmd cannot serve and why; NULL when there is none. */
const char *vpm_libvirt_vm_get_problem(const struct vpm_libvirt_vm *lvm);
/* The VM is attached; capacity is reserved for its start. */
bool vpm_libvirt_vm_is_attached(const struct vpm_libvirt_vm *lvm);
bool vpm_libvirt_vm_is_reserved(const struct vpm_libvirt_vm *lvm);
/* From the policy in its domain metadata: the ratio (0 when unset) and mode (NULL). */
double vpm_libvirt_vm_get_policy_ratio(const struct vpm_libvirt_vm *lvm);
const char *vpm_libvirt_vm_get_policy_mode(const struct vpm_libvirt_vm *lvm);

/* ---- statistics ---- */
struct vpm_stats;

/* Statistics of the VM called name, or of every VM when name is NULL, and host totals. */
int vpm_stats_get(struct vpm_ctx *ctx, const char *name, struct vpm_stats **ret_stats);
struct vpm_stats *vpm_stats_ref(struct vpm_stats *stats);
struct vpm_stats *vpm_stats_unref(struct vpm_stats *stats);
const char *vpm_stats_get_json(const struct vpm_stats *stats, bool pretty);
/*
 * The VMs, iterated with vpm_vm_get_next(); each carries name, mode, ratio and statistics
 * (vpm_vm_has_stats() is true). They stay valid as long as the stats object.
 */
struct vpm_vm *vpm_stats_get_first_vm(struct vpm_stats *stats);
#define vpm_stats_foreach_vm(stats, vm)                                                            \
	for (vm = vpm_stats_get_first_vm(stats); vm != NULL; vm = vpm_vm_get_next(vm))

/* Totals over the host: DRAM pages allowed and in use, PM frames, log and PM bytes, moves. */
uint64_t vpm_stats_get_dram_budget_pages(const struct vpm_stats *stats);
uint64_t vpm_stats_get_dram_used_pages(const struct vpm_stats *stats);
uint64_t vpm_stats_get_pm_frames_total(const struct vpm_stats *stats);
uint64_t vpm_stats_get_pm_frames_free(const struct vpm_stats *stats);
uint64_t vpm_stats_get_log_bytes(const struct vpm_stats *stats);
uint64_t vpm_stats_get_pm_bytes_written(const struct vpm_stats *stats);
uint64_t vpm_stats_get_migrations(const struct vpm_stats *stats);

/* ---- control ---- */
/*
 * Ask vpmd to re-read its configuration (root only). It applies all of it or nothing. If
 * ret_warnings is not NULL it receives the settings that wait for a restart, one per line,
 * or NULL when there are none; free() it.
 */
int vpm_reload(struct vpm_ctx *ctx, char **ret_warnings);

/* ---- libvirt hook ---- */
/*
 * Tell vpmd what libvirt's qemu hook was called for (root only): the domain's name, the
 * hook's op and subop ("prepare" "begin", "started" "begin", "stopped" "end", "release"
 * "end", "reconnect" "begin") and the full domain XML it got on stdin. vpmd reserves, attaches,
 * detaches or releases the VM's persistent memory, or refuses, e.g. with -ENOSPC when the
 * VM's PM does not fit; vpm_errormsg() then says why in one line. On success *ret_action
 * receives what vpmd did ("none", "reserved", "attached", "detached", "released" or
 * "reattached") and *ret_message a sentence saying so, NULL when vpmd sent none; free() both.
 * Either pointer may be NULL when the caller does not want it. A hook runs inside libvirtd:
 * bound the wait with vpm_set_timeout().
 */
int vpm_hook_run(struct vpm_ctx *ctx, const char *domain, const char *op, const char *subop,
		 const char *xml, char **ret_action, char **ret_message);

#ifdef __cplusplus
}
#endif

#endif /* VPM_LIBVPM_H */
