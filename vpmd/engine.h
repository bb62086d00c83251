/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The consolidation engine: each VM's guest PM backed by PM frames of the pool and DRAM
 * frames, in one of three durability modes (DESIGN.md, "Durability modes"):
 *
 *   native  every page on a writable PM frame; no epochs (the ratio is 1)
 *   epoch   PM frames read-only, a write promotes the page to DRAM; every epoch_interval the
 *           VM is paused, its dirty pages staged, resumed, and the epoch committed to the log
 *   hint    as epoch, but only the ranges the guest names in persist hints are committed,
 *           each before its hint returns
 *
 * The ratio R gives a VM ceil(pages / R) PM frames (pm_target); the rest of its pages may live
 * in DRAM (dram_share). At each epoch boundary the policy picks the pages to demote to PM
 * (the coldest) or promote to DRAM (the hottest), at most as many as the migration rate
 * allows; between boundaries, pages written in the epoch may exceed the share by a bounded
 * headroom (a full headroom ends the epoch early). Admission control keeps the sum of every
 * VM's pm_target within the pool's frames and the sum of DRAM shares and headrooms within
 * dram_budget.
 *
 * Backends attach VMs and deliver their events through the calls at the end (backend.h).
 */
#ifndef VPMD_ENGINE_H
#define VPMD_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

#include <systemd/sd-event.h>

#include <json-c/json.h>

#include "config.h"
#include "pool.h"

struct engine;
struct vm;
struct backend_vm;
struct backend_event;

enum vm_mode {
	VM_MODE_NATIVE,
	VM_MODE_EPOCH,
	VM_MODE_HINT,
	_VM_MODE_MAX,
};

const char *vm_mode_to_string(enum vm_mode m);
int vm_mode_from_string(const char *s);

/* Serve VMs whose devices live in pool (formatted: its store open). */
int engine_new(sd_event *event, const struct vpmd_config *c, struct pool *pool,
	       struct engine **ret);
struct engine *engine_free(struct engine *en);
/*
 * A reload: epoch interval, DRAM budget, migration rate and default ratio. Returns how many
 * DRAM pages the running (and starting) VMs were admitted with beyond the new budget: they
 * keep them, and new VMs and changes of ratio are refused until the VMs fit again.
 */
uint64_t engine_reconfigure(struct engine *en, const struct vpmd_config *c);
/* The pool whose devices back the VMs. */
struct pool *engine_pool(struct engine *en);
uint64_t engine_pm_frames_offset(struct engine *en);

/* ---- the control plane ---- */
struct json_object *engine_vms_json(struct engine *en);
int engine_vm_show(struct engine *en, const char *name, struct json_object **ret, char *errbuf,
		   size_t errlen);
int engine_stats(struct engine *en, const char *name, struct json_object **ret, char *errbuf,
		 size_t errlen);

struct engine_settings {
	bool set_ratio;
	double ratio;
	int mode;            /* enum vm_mode, or -1: unchanged */
	int policy;          /* enum policy_kind, or -1 */
	int priority;        /* 0..100, or -1 */
	uint64_t epoch_usec; /* the VM's own epoch interval, or 0: unchanged */
	bool reset_epoch;    /* back to the configured epoch interval */
};

/* The settings of a VM that has none of its own: vpmd.conf's (ratio, mode epoch, ...). */
void engine_default_settings(struct engine *en, struct engine_settings *s);

/* Change one VM (name) or all (NULL): all or nothing; ret lists the VMs changed. */
int engine_vm_set(struct engine *en, const char *name, const struct engine_settings *s,
		  struct json_object **ret, char *errbuf, size_t errlen);

/*
 * Settings kept outside vpmd for a VM (libvirt's domain metadata): fn fills in what it knows
 * for the VM named and returns true, or returns false. They win over the settings vpmd saved
 * and the guest asked for when the VM attaches.
 */
typedef bool (*engine_settings_fn)(void *userdata, const char *name, struct engine_settings *s);
void engine_set_settings_source(struct engine *en, engine_settings_fn fn, void *userdata);

/*
 * Reserve the pool frames and DRAM a VM of n_pages will need at its settings (s: ratio and
 * mode; defaults for what is unset) before it starts: admission control for a VM that is about
 * to start. A later reservation of the same name replaces the earlier one; the VM's attach
 * consumes it. Returns 0, or -ENOSPC/-EINVAL/-ENOMEM/-EMLINK with the reason in errbuf.
 */
int engine_reserve(struct engine *en, const char *name, uint64_t n_pages,
		   const struct engine_settings *s, char *errbuf, size_t errlen);
/* Drop the reservation of name; returns whether there was one. */
bool engine_release(struct engine *en, const char *name);
bool engine_reserved(struct engine *en, const char *name);
bool engine_vm_attached(struct engine *en, const char *name);

/* Serve a running KVM VM (backend = kvm); errbuf says why not. */
struct kvm_attach_request;
int engine_attach_kvm(struct engine *en, const struct kvm_attach_request *req, char *errbuf,
		      size_t errlen);

/* ---- for backends ---- */
/* A VM name also names its image file: 1-63 letters, digits, '_', '-' and '.' (not first). */
bool engine_vm_name_valid(const char *name);
int engine_vm_attach(struct engine *en, struct backend_vm *b, char *errbuf, size_t errlen);
void engine_vm_event(struct vm *vm, const struct backend_event *ev);
/* The guest is gone (its vCPUs no longer run) or vpmd lets it go (it keeps running). */
void engine_vm_detach(struct vm *vm, const char *why, bool guest_gone);

#endif
