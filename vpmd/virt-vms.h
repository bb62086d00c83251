/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VPMD_VIRT_VMS_H
#define VPMD_VIRT_VMS_H

/*
 * libvirt's VMs in vpmd: what the connection to libvirt (virt.h) and libvirt's qemu hook
 * (vpmctl hook) say about each VM with persistent memory, applied to the engine.
 *
 * - A VM's policy lives in its domain metadata; it is the VM's setting when it attaches, and a
 *   change of it (virsh metadata, or vpmctl set-ratio and friends, which write it back) applies
 *   to the running VM.
 * - prepare reserves the VM's capacity (admission control: a VM that does not fit is refused
 *   before it boots); started attaches it; stopped and release detach it and free what was
 *   reserved (idempotent: they also run after a failed prepare); reconnect re-attaches.
 * - With the sim backend, a running VM is served by a vpm-simguest that vpmd starts for it
 *   (its PM size, its policy) and stops when the VM stops. Such a guest outlives vpmd like a
 *   real VM; a vpmd that starts again adopts it (pid files under <state_dir>/guests/).
 *
 * At most VIRT_VMS_MAX VMs are tracked.
 */

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "macro.h"

#define VIRT_VMS_MAX 256

struct engine;
struct engine_settings;
struct vpmd_config;
struct virt_vms;

/* en may be NULL (no formatted pool): hooks then refuse VMs that have a VPM policy. */
int virt_vms_new(sd_event *e, const struct vpmd_config *c, struct engine *en,
		 struct virt_vms **ret);
struct virt_vms *virt_vms_free(struct virt_vms *vv);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct virt_vms *, virt_vms_free);

/*
 * One call of libvirt's qemu hook: the domain's name, the operation and sub-operation and the
 * domain XML libvirt passed. Returns 0 with {"action", "message"} in *ret, or -errno with a
 * one-line reason for the user (a refused start) in errbuf.
 */
int virt_vms_hook(struct virt_vms *vv, const char *domain, const char *op, const char *subop,
		  const char *xml, struct json_object **ret, char *errbuf, size_t errlen);

/* The "libvirt" object of the vms reply: the connection and every VM with PM it knows. */
struct json_object *virt_vms_json(struct virt_vms *vv);

/* libvirt's state of a VM ("running", ...), or NULL when libvirt does not know it. */
const char *virt_vms_state(struct virt_vms *vv, const char *name);

/*
 * A VM's settings changed through vpmd (vm-set): write them into its domain metadata (live
 * and persistent), so that they travel with the domain. Returns 0 when the VM is not a
 * libvirt VM or it was written, else -errno with the reason in errbuf.
 */
int virt_vms_settings_changed(struct virt_vms *vv, const char *name,
			      const struct engine_settings *s, char *errbuf, size_t errlen);

#endif
