/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VPMD_VIRT_WORKER_H
#define VPMD_VIRT_WORKER_H

/*
 * vpmd's connection to libvirt (virt.h) on a thread of its own, so that vpmd's main loop never
 * waits for libvirtd. It must not: libvirt runs a domain's hooks holding that domain's lock,
 * the hooks (vpmctl hook) wait for vpmd, and a vpmd that asked libvirtd about that domain at
 * that moment (its XML after a lifecycle event, or the domain list after a reconnect) would
 * wait for the lock: a deadlock that only the hook's timeout breaks, failing the VM's start.
 *
 * The thread runs its own sd-event loop with libvirt's event loop on it (virt-event.h); every
 * libvirt call happens there. What virt reports (domains changed or removed, the connection
 * up or down) is handed to the main loop as copies, and the ops are called there, in order.
 * The engine and everything else stay on the main thread.
 */

#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "domain-xml.h"
#include "virt.h"

struct virt_worker;

/* Start the thread and its connection to uri; ops are called on main's thread. */
int virt_worker_new(sd_event *main, const char *uri, const struct virt_ops *ops, void *userdata,
		    struct virt_worker **ret);
/* Close the connection and end the thread; no more ops are called. Returns NULL. */
struct virt_worker *virt_worker_free(struct virt_worker *w);

/* The connection's status as virt_status_json() last said it (at most a second old). */
struct json_object *virt_worker_status_json(struct virt_worker *w);

/*
 * Write p (NULL: remove) as the policy in the domain's metadata, on the thread; a failure is
 * logged. Returns 0, -ENOTCONN when the thread has ended, or -ENOMEM.
 */
int virt_worker_set_policy(struct virt_worker *w, const char *uuid, const struct domain_policy *p);

#endif
