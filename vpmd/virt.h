/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VPMD_VIRT_H
#define VPMD_VIRT_H

/*
 * vpmd's connection to libvirt: keeps an inventory of the host's domains (name, UUID, state,
 * persistent memory devices and vpmd policy, from each domain's XML) in step with libvirt's
 * domain events, and survives libvirtd restarts.
 *
 * - The connection is opened read-write on the sd-event loop (first attempt on the loop's
 *   next iteration, never inside virt_new()), with keepalive (5 s, 3 probes) where the driver
 *   has it. When it closes, vpmd reports connection_changed(false), keeps the known domains
 *   marked stale and reconnects after 0.5 s, doubling up to 30 s while attempts fail (a
 *   connection that lived less than 30 s does not reset the delay).
 * - After every (re)connect, the domain list is read again: domain_changed() for every domain
 *   that is new or differs from what was known (state, libvirt id, persistence, devices,
 *   policy, problem), domain_removed() for known domains that are gone, then
 *   connection_changed(true): once connected is reported, the inventory is in sync.
 * - Lifecycle events are always reported (a stop and start is a new QEMU process even when
 *   nothing else changed; "why" names the event: defined, undefined, started, stopped,
 *   suspended, resumed, shutdown, pmsuspended, crashed); device and vpmd metadata events only
 *   when the domain changed ("device-added", "device-removed", "metadata"); resyncs use
 *   "discovered" and "resync". Each report is the domain as libvirt describes it now (the
 *   live XML of a running domain), so events that arrive late never roll the state back.
 * - Undefining a running domain leaves it running as a transient domain: it stays known
 *   (persistent false) and is removed when it stops, as is any transient domain.
 * - A domain whose XML cannot be parsed (a bad vpmd policy element, typically) stays known
 *   with ->problem set, logged once per distinct reason. Its ->info stays the last one that
 *   parsed, so that a bad edit never takes devices away from a running guest; a domain that
 *   never parsed has an info with its name and UUID only (no devices, no policy).
 * - At most VIRT_DOMAINS_MAX domains are tracked; more are ignored with one warning.
 *
 * libvirt calls are synchronous: a libvirtd that hangs without closing the connection stalls
 * the loop until keepalive gives up on it, which is why vpmd runs this on a thread of its own
 * (virt-worker.h). Callbacks must not call virt_free().
 */

#include <stdbool.h>
#include <stddef.h>
#include <libvirt/libvirt.h>
#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "domain-xml.h"
#include "macro.h"

#define VIRT_DOMAINS_MAX 4096

enum virt_dom_state {
	VIRT_DOM_SHUTOFF,
	VIRT_DOM_RUNNING, /* also blocked, and being shut down */
	VIRT_DOM_PAUSED,  /* also suspended to RAM by the guest (pmsuspended) */
	VIRT_DOM_CRASHED,
	VIRT_DOM_OTHER,
};

/* A known domain, read-only for users; valid until the next loop iteration. */
struct virt_domain {
	struct domain_info *info; /* never NULL; see above for domains that do not parse */
	enum virt_dom_state state;
	int id;		 /* libvirt's domain id, new on every start; -1 when not running */
	bool persistent; /* false for a transient domain */
	bool stale;	 /* not confirmed since the connection was lost */
	char *problem;	 /* NULL, or why the domain's XML could not be parsed */
};

struct virt_ops {
	/* a domain appeared or changed; d is valid during the call only */
	void (*domain_changed)(void *userdata, const struct virt_domain *d, const char *why);
	/* a domain was undefined, a transient domain stopped, or one vanished while disconnected */
	void (*domain_removed)(void *userdata, const char *uuid, const char *name);
	void (*connection_changed)(void *userdata, bool connected);
};

struct virt;

/*
 * Start connecting to uri on e (binds libvirt's event loop to e, see virt-event.h). ops may
 * leave callbacks NULL. Returns 0 or -errno; a libvirtd that is not there is not an error.
 */
int virt_new(sd_event *e, const char *uri, const struct virt_ops *ops, void *userdata,
	     struct virt **ret);
/*
 * Close the connection; no callbacks are called. Returns NULL. libvirt's free callbacks for the
 * watches it drops run on a later loop iteration: before freeing the loop, run it once more or
 * call virt_event_unbind().
 */
struct virt *virt_free(struct virt *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct virt *, virt_free);

bool virt_is_connected(const struct virt *v);

/*
 * Write p as vpmd's metadata element into the domain's live definition (when it runs) and its
 * persistent one (when it has one); p NULL removes the element. The domain_changed report
 * follows with libvirt's METADATA_CHANGE event. Returns 0, or -ENOTCONN, -ENOENT (no such
 * domain), -EINVAL, -ENOMEM or -EIO with a one-line reason in errbuf.
 */
int virt_set_policy(struct virt *v, const char *uuid, const struct domain_policy *p, char *errbuf,
		    size_t errlen);

/* {uri, connected, connects, reconnects, failed_attempts, last_error, domains}; NULL: ENOMEM */
struct json_object *virt_status_json(const struct virt *v);

/* Known domains in UUID order, for listing: index 0 .. virt_domain_count() - 1. */
size_t virt_domain_count(const struct virt *v);
const struct virt_domain *virt_domain_get(const struct virt *v, size_t i);
const struct virt_domain *virt_domain_find(const struct virt *v, const char *uuid);

/* "shutoff", "running", "paused", "crashed", "other" */
const char *virt_dom_state_to_string(enum virt_dom_state s);

/* The open connection, or NULL; for tests that drive domains through the same connection. */
virConnectPtr virt_connection(const struct virt *v);

#endif /* VPMD_VIRT_H */
