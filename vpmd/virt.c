// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vpmd's connection to libvirt (see virt.h): connect and reconnect with backoff on sd-event
 * timers, domain events, resynchronisation after each connect, and the domain inventory,
 * an array sorted by UUID.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include <libvirt/virterror.h>

#include "json-util.h"
#include "log.h"
#include "parse-util.h"
#include "virt-event.h"
#include "virt.h"

#define BACKOFF_MIN_USEC  (500 * 1000ULL)
#define BACKOFF_MAX_USEC  (30 * 1000 * 1000ULL)
#define KEEPALIVE_SECONDS 5
#define KEEPALIVE_COUNT	  3

enum {
	EV_LIFECYCLE,
	EV_DEVICE_ADDED,
	EV_DEVICE_REMOVED,
	EV_METADATA,
	_EV_MAX,
};

struct known {
	struct virt_domain d;
	bool seen;   /* listed by the resync in progress */
	bool parsed; /* d.info came from the domain's XML */
};

struct virt {
	sd_event *event;
	char *uri;
	struct virt_ops ops;
	void *userdata;

	virConnectPtr conn;
	bool connected; /* as last reported through connection_changed */
	bool closing;	/* libvirt reported the connection closed; teardown pending */
	bool close_cb;
	int event_ids[_EV_MAX];
	uint64_t connected_since;
	sd_event_source *connect_timer;
	sd_event_source *teardown;
	uint64_t backoff_usec;

	unsigned connects, reconnects, failed_attempts;
	char *last_error;
	bool failure_logged; /* the current run of failed attempts was logged */

	struct known **domains; /* sorted by UUID */
	size_t n_domains;
	bool overflow_logged;
};

/* A domain as libvirt describes it now. */
struct snapshot {
	struct domain_info *info;
	enum virt_dom_state state;
	int id;
	bool persistent;
	char *problem;
};

/* libvirt's last error, remembered for the status and returned for log lines. */
/* The copy stays valid across further libvirt calls, which reset libvirt's own. */
static const char *note_error(struct virt *v)
{
	if (free_and_strdup(&v->last_error, virGetLastErrorMessage()) < 0) {
		log_oom();
		return "unknown error";
	}
	return v->last_error;
}

static void on_libvirt_error(void *userdata, virErrorPtr err)
{
	(void)userdata;
	log_debug("libvirt: %s", err && err->message ? err->message : "unknown error");
}

const char *virt_dom_state_to_string(enum virt_dom_state s)
{
	static const char *const names[] = {
	    [VIRT_DOM_SHUTOFF] = "shutoff", [VIRT_DOM_RUNNING] = "running",
	    [VIRT_DOM_PAUSED] = "paused",   [VIRT_DOM_CRASHED] = "crashed",
	    [VIRT_DOM_OTHER] = "other",
	};

	return (unsigned)s < ELEMENTSOF(names) ? names[s] : "other";
}

static enum virt_dom_state state_from_libvirt(int state)
{
	switch (state) {
	case VIR_DOMAIN_RUNNING:
	case VIR_DOMAIN_BLOCKED:
	case VIR_DOMAIN_SHUTDOWN:
		return VIRT_DOM_RUNNING;
	case VIR_DOMAIN_PAUSED:
	case VIR_DOMAIN_PMSUSPENDED:
		return VIRT_DOM_PAUSED;
	case VIR_DOMAIN_SHUTOFF:
		return VIRT_DOM_SHUTOFF;
	case VIR_DOMAIN_CRASHED:
		return VIRT_DOM_CRASHED;
	default:
		return VIRT_DOM_OTHER;
	}
}

/* ---- the inventory ----------------------------------------------------------------------- */

static bool policy_equal(const struct domain_policy *a, const struct domain_policy *b)
{
	return a->has_ratio == b->has_ratio && (!a->has_ratio || a->ratio == b->ratio) &&
	       a->mode == b->mode && a->policy == b->policy && a->priority == b->priority &&
	       a->epoch_interval == b->epoch_interval;
}

static bool pmdev_equal(const struct domain_pmdev *a, const struct domain_pmdev *b)
{
	return a->model == b->model && streq_ptr(a->alias, b->alias) &&
	       streq_ptr(a->path, b->path) && a->size == b->size &&
	       a->label_size == b->label_size && a->align_size == b->align_size &&
	       a->shared == b->shared && a->readonly == b->readonly && a->pmem == b->pmem &&
	       a->node == b->node && a->has_base == b->has_base &&
	       (!a->has_base || (a->base == b->base && a->slot == b->slot)) &&
	       streq_ptr(a->problem, b->problem);
}

static bool info_equal(const struct domain_info *a, const struct domain_info *b)
{
	if (!streq(a->name, b->name) || !streq(a->uuid, b->uuid) ||
	    a->has_policy != b->has_policy || a->n_pmdevs != b->n_pmdevs)
		return false;
	if (a->has_policy && !policy_equal(&a->policy, &b->policy))
		return false;
	for (unsigned i = 0; i < a->n_pmdevs; i++)
		if (!pmdev_equal(&a->pmdevs[i], &b->pmdevs[i]))
			return false;
	return true;
}

static void known_free(struct known *k)
{
	if (!k)
		return;
	domain_info_free(k->d.info);
	free(k->d.problem);
	free(k);
}

/* Index of uuid, or where it would go (*ret_found false). */
static size_t find_index(const struct virt *v, const char *uuid, bool *ret_found)
{
	size_t lo = 0, hi = v->n_domains;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v->domains[mid]->d.info->uuid, uuid);

		if (c == 0) {
			*ret_found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*ret_found = false;
	return lo;
}

static struct known *find_known(const struct virt *v, const char *uuid)
{
	bool found;
	size_t i = find_index(v, uuid, &found);

	return found ? v->domains[i] : NULL;
}

static int insert_known(struct virt *v, struct known *k)
{
	bool found;
	size_t i = find_index(v, k->d.info->uuid, &found);
	struct known **a;

	if (found)
		return -EEXIST;
	a = realloc(v->domains, (v->n_domains + 1) * sizeof(*a));
	if (!a)
		return -ENOMEM;
	v->domains = a;
	memmove(a + i + 1, a + i, (v->n_domains - i) * sizeof(*a));
	a[i] = k;
	v->n_domains++;
	return 0;
}

/* Forget a known domain and report it; k is freed. */
static void remove_known(struct virt *v, struct known *k, const char *why)
{
	bool found;
	size_t i = find_index(v, k->d.info->uuid, &found);

	if (!found)
		return;
	memmove(v->domains + i, v->domains + i + 1, (v->n_domains - i - 1) * sizeof(*v->domains));
	v->n_domains--;
	log_info("Domain '%s' (%s) is gone: %s", k->d.info->name, k->d.info->uuid, why);
	if (v->ops.domain_removed)
		v->ops.domain_removed(v->userdata, k->d.info->uuid, k->d.info->name);
	known_free(k);
}

static void report_changed(struct virt *v, const struct known *k, const char *why)
{
	log_debug("Domain '%s' (%s): %s, %s, %u PM device(s)%s%s", k->d.info->name, k->d.info->uuid,
		  why, virt_dom_state_to_string(k->d.state), k->d.info->n_pmdevs,
		  k->d.problem ? ", problem: " : "", k->d.problem ?: "");
	if (v->ops.domain_changed)
		v->ops.domain_changed(v->userdata, &k->d, why);
}

static void snapshot_done(struct snapshot *s)
{
	s->info = domain_info_free(s->info);
	free(s->problem);
	s->problem = NULL;
}

/* A placeholder info for a domain whose XML never parsed: its name and UUID only. */
static struct domain_info *empty_info(virDomainPtr dom, const char *uuid)
{
	struct domain_info *info = calloc(1, sizeof(*info));
	const char *name = virDomainGetName(dom);

	if (!info)
		return NULL;
	snprintf(info->name, sizeof(info->name), "%s", name ?: "");
	snprintf(info->uuid, sizeof(info->uuid), "%s", uuid);
	domain_policy_init(&info->policy);
	return info;
}

static void log_problem(const struct known *old, const char *name, const char *problem)
{
	if (old && streq_ptr(old->d.problem, problem))
		return; /* logged when it appeared */
	log_warning("Cannot read the XML of domain '%s', vpmd ignores its changes until it is "
		    "fixed: %s",
		    name, problem);
}

/*
 * Take a fresh snapshot into the inventory: insert or update, and report it when it is new,
 * changed, or force is set. The snapshot is consumed.
 */
static int apply_snapshot(struct virt *v, struct snapshot *s, const char *why, bool force)
{
	struct known *k = find_known(v, s->info->uuid);
	bool parsed = !s->problem;
	bool changed;
	int r;

	if (s->problem)
		log_problem(k, s->info->name, s->problem);
	if (!k) {
		if (v->n_domains >= VIRT_DOMAINS_MAX) {
			if (!v->overflow_logged)
				log_warning(
				    "More than %u domains: vpmd ignores '%s' and any further "
				    "ones",
				    VIRT_DOMAINS_MAX, s->info->name);
			v->overflow_logged = true;
			snapshot_done(s);
			return 0;
		}
		k = calloc(1, sizeof(*k));
		if (!k) {
			snapshot_done(s);
			return log_oom();
		}
		k->d = (struct virt_domain){.info = TAKE_PTR(s->info),
					    .state = s->state,
					    .id = s->id,
					    .persistent = s->persistent,
					    .problem = TAKE_PTR(s->problem)};
		k->parsed = parsed;
		k->seen = true;
		r = insert_known(v, k);
		if (r < 0) {
			known_free(k);
			return log_oom();
		}
		report_changed(v, k, why);
		return 0;
	}

	changed = k->d.state != s->state || k->d.id != s->id || k->d.persistent != s->persistent ||
		  !streq_ptr(k->d.problem, s->problem) ||
		  (parsed && !info_equal(k->d.info, s->info));
	/* a domain that does not parse keeps the last info that did */
	if (parsed || !k->parsed) {
		domain_info_free(k->d.info);
		k->d.info = TAKE_PTR(s->info);
		k->parsed = parsed;
	}
	k->d.state = s->state;
	k->d.id = s->id;
	k->d.persistent = s->persistent;
	free(k->d.problem);
	k->d.problem = TAKE_PTR(s->problem);
	k->d.stale = false;
	k->seen = true;
	snapshot_done(s);
	if (changed || force)
		report_changed(v, k, why);
	return 0;
}

/* A libvirt call failed: -ENOENT when the domain is gone, -EIO otherwise. */
static int domain_error(void)
{
	return virGetLastErrorCode() == VIR_ERR_NO_DOMAIN ? -ENOENT : -EIO;
}

/* Read what libvirt says about dom now. Returns 0, -ENOENT (gone), -EIO or -ENOMEM. */
static int take_snapshot(virDomainPtr dom, const char *uuid, struct snapshot *ret)
{
	_cleanup_free_ char *xml = NULL;
	char errbuf[256] = "";
	unsigned id;
	int state, reason, persistent, r;

	*ret = (struct snapshot){};
	if (virDomainGetState(dom, &state, &reason, 0) < 0)
		return domain_error();
	persistent = virDomainIsPersistent(dom);
	if (persistent < 0)
		return domain_error();
	xml = virDomainGetXMLDesc(dom, 0);
	if (!xml)
		return domain_error();
	id = virDomainGetID(dom);

	ret->state = state_from_libvirt(state);
	ret->id = id == (unsigned)-1 ? -1 : (int)id;
	ret->persistent = persistent == 1;
	r = domain_xml_parse(xml, strlen(xml), &ret->info, errbuf, sizeof(errbuf));
	if (r == -ENOMEM)
		return -ENOMEM;
	if (r < 0) {
		ret->problem = strdup(errbuf[0] ? errbuf : "unreadable domain XML");
		ret->info = empty_info(dom, uuid);
		if (!ret->problem || !ret->info) {
			snapshot_done(ret);
			return -ENOMEM;
		}
	} else if (!streq(ret->info->uuid, uuid)) {
		/* cannot be, unless the parser disagrees with libvirt: trust libvirt's UUID */
		snprintf(ret->info->uuid, sizeof(ret->info->uuid), "%s", uuid);
	}
	return 0;
}

static void schedule_teardown(struct virt *v);

/* After a failed call: if the connection is what failed, start over. */
static void check_connection(struct virt *v)
{
	if (v->conn && virConnectIsAlive(v->conn) != 1)
		schedule_teardown(v);
}

/* Read one domain again after an event, and report it (or its removal). */
static void refresh_domain(struct virt *v, virDomainPtr dom, const char *why, bool force)
{
	struct snapshot s;
	char uuid[VIR_UUID_STRING_BUFLEN];
	struct known *k;
	int r;

	if (virDomainGetUUIDString(dom, uuid) < 0)
		return;
	r = take_snapshot(dom, uuid, &s);
	if (r == -ENOENT) {
		k = find_known(v, uuid);
		if (k)
			remove_known(v, k, why);
		return;
	}
	if (r == -ENOMEM) {
		log_oom();
		return;
	}
	if (r < 0) {
		const char *msg = note_error(v);

		log_warning("Failed to read domain '%s' after event '%s': %s",
			    virDomainGetName(dom), why, msg);
		check_connection(v);
		return;
	}
	(void)apply_snapshot(v, &s, why, force);
}

/* ---- domain events ----------------------------------------------------------------------- */

static const char *lifecycle_why(int event)
{
	switch (event) {
	case VIR_DOMAIN_EVENT_DEFINED:
		return "defined";
	case VIR_DOMAIN_EVENT_UNDEFINED:
		return "undefined";
	case VIR_DOMAIN_EVENT_STARTED:
		return "started";
	case VIR_DOMAIN_EVENT_SUSPENDED:
		return "suspended";
	case VIR_DOMAIN_EVENT_RESUMED:
		return "resumed";
	case VIR_DOMAIN_EVENT_STOPPED:
		return "stopped";
	case VIR_DOMAIN_EVENT_SHUTDOWN:
		return "shutdown";
	case VIR_DOMAIN_EVENT_PMSUSPENDED:
		return "pmsuspended";
	case VIR_DOMAIN_EVENT_CRASHED:
		return "crashed";
	default:
		return "lifecycle";
	}
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
	(void)conn;
	(void)detail;
	refresh_domain(opaque, dom, lifecycle_why(event), true);
	return 0;
}

static void on_device_added(virConnectPtr conn, virDomainPtr dom, const char *alias, void *opaque)
{
	(void)conn;
	(void)alias;
	/* an nvdimm's event names its backend (memnvdimm2), not the device: read it all again */
	refresh_domain(opaque, dom, "device-added", false);
}

static void on_device_removed(virConnectPtr conn, virDomainPtr dom, const char *alias, void *opaque)
{
	(void)conn;
	(void)alias;
	refresh_domain(opaque, dom, "device-removed", false);
}

static void on_metadata_change(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri,
			       void *opaque)
{
	(void)conn;
	if (type != VIR_DOMAIN_METADATA_ELEMENT || !streq_ptr(nsuri, DOMAIN_METADATA_NS))
		return;
	refresh_domain(opaque, dom, "metadata", false);
}

static int register_events(struct virt *v)
{
	static const struct {
		int id;
		virConnectDomainEventGenericCallback cb;
	} events[_EV_MAX] = {
	    [EV_LIFECYCLE] = {VIR_DOMAIN_EVENT_ID_LIFECYCLE,
			      VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle)},
	    [EV_DEVICE_ADDED] = {VIR_DOMAIN_EVENT_ID_DEVICE_ADDED,
				 VIR_DOMAIN_EVENT_CALLBACK(on_device_added)},
	    [EV_DEVICE_REMOVED] = {VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
				   VIR_DOMAIN_EVENT_CALLBACK(on_device_removed)},
	    [EV_METADATA] = {VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
			     VIR_DOMAIN_EVENT_CALLBACK(on_metadata_change)},
	};

	for (size_t i = 0; i < _EV_MAX; i++) {
		v->event_ids[i] = virConnectDomainEventRegisterAny(v->conn, NULL, events[i].id,
								   events[i].cb, v, NULL);
		if (v->event_ids[i] < 0)
			return -EIO; /* logged by the caller */
	}
	return 0;
}

/* ---- connection -------------------------------------------------------------------------- */

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
	struct virt *v = opaque;
	static const char *const reasons[] = {
	    [VIR_CONNECT_CLOSE_REASON_ERROR] = "error",
	    [VIR_CONNECT_CLOSE_REASON_EOF] = "end of file",
	    [VIR_CONNECT_CLOSE_REASON_KEEPALIVE] = "keepalive timeout",
	    [VIR_CONNECT_CLOSE_REASON_CLIENT] = "closed by vpmd",
	};

	if (conn != v->conn || reason == VIR_CONNECT_CLOSE_REASON_CLIENT)
		return;
	log_warning("Lost the connection to libvirt '%s' (%s)", v->uri,
		    (unsigned)reason < ELEMENTSOF(reasons) ? reasons[reason] : "unknown reason");
	/* inside libvirt's dispatch: close it from the loop */
	schedule_teardown(v);
}

/* Close the connection, without reporting anything. */
static void close_connection(struct virt *v)
{
	int r;

	if (!v->conn)
		return;
	for (size_t i = 0; i < _EV_MAX; i++)
		if (v->event_ids[i] >= 0 &&
		    virConnectDomainEventDeregisterAny(v->conn, v->event_ids[i]) < 0)
			log_debug("Failed to unsubscribe from domain events: %s",
				  virGetLastErrorMessage());
	for (size_t i = 0; i < _EV_MAX; i++)
		v->event_ids[i] = -1;
	if (v->close_cb && virConnectUnregisterCloseCallback(v->conn, on_close) < 0)
		log_debug("Failed to unregister the close callback: %s", virGetLastErrorMessage());
	v->close_cb = false;
	r = virConnectClose(v->conn);
	if (r != 0)
		log_debug("libvirt connection closed with %d reference(s) left", r);
	v->conn = NULL;
	v->closing = false;
	(void)sd_event_source_set_enabled(v->teardown, SD_EVENT_OFF);
}

static void schedule_connect(struct virt *v, uint64_t delay)
{
	int r;

	r = sd_event_source_set_time_relative(v->connect_timer, delay);
	if (r >= 0)
		r = sd_event_source_set_enabled(v->connect_timer, SD_EVENT_ONESHOT);
	if (r < 0)
		log_error_errno(r, "Failed to schedule a connection to libvirt: %m");
}

static void mark_all_stale(struct virt *v)
{
	for (size_t i = 0; i < v->n_domains; i++)
		v->domains[i]->d.stale = true;
}

static void set_connected(struct virt *v, bool connected)
{
	if (v->connected == connected)
		return;
	v->connected = connected;
	if (v->ops.connection_changed)
		v->ops.connection_changed(v->userdata, connected);
}

/* Lost or failed connection: close it, mark the domains stale, retry after the backoff. */
static void disconnect(struct virt *v)
{
	/* a connection that lived long gets a quick retry; a flapping one keeps backing off */
	if (v->connected_since && now_usec(CLOCK_MONOTONIC) - v->connected_since >= BACKOFF_MAX_USEC)
		v->backoff_usec = BACKOFF_MIN_USEC;
	v->connected_since = 0;
	close_connection(v);
	mark_all_stale(v);
	log_info("Reconnecting to libvirt '%s' in %.1f s", v->uri, v->backoff_usec / 1e6);
	schedule_connect(v, v->backoff_usec);
	v->backoff_usec = MIN(v->backoff_usec * 2, BACKOFF_MAX_USEC);
	set_connected(v, false);
}

static int on_teardown(sd_event_source *s, void *userdata)
{
	(void)s;
	disconnect(userdata);
	return 0;
}

static void schedule_teardown(struct virt *v)
{
	v->closing = true;
	if (sd_event_source_set_enabled(v->teardown, SD_EVENT_ONESHOT) < 0)
		log_error("Failed to schedule closing the libvirt connection");
}

/* Read the whole domain list again; report what changed and what is gone. */
static int resync(struct virt *v)
{
	virDomainPtr *doms = NULL;
	int n, r = 0;

	n = virConnectListAllDomains(v->conn, &doms, 0);
	if (n < 0)
		return -EIO; /* logged by the caller */
	for (size_t i = 0; i < v->n_domains; i++)
		v->domains[i]->seen = false;
	for (int i = 0; i < n && r >= 0; i++) {
		char uuid[VIR_UUID_STRING_BUFLEN];
		struct known *k;
		struct snapshot s;

		if (virDomainGetUUIDString(doms[i], uuid) < 0)
			continue;
		k = find_known(v, uuid);
		if (!k && v->n_domains >= VIRT_DOMAINS_MAX && v->overflow_logged)
			continue; /* no room: do not even read it */
		r = take_snapshot(doms[i], uuid, &s);
		if (r == -ENOENT) {
			r = 0; /* went away since the listing */
			continue;
		}
		if (r == -EIO) {
			const char *msg = note_error(v);

			log_warning("Failed to read domain '%s': %s", virDomainGetName(doms[i]),
				    msg);
			if (virConnectIsAlive(v->conn) != 1)
				break;
			r = 0; /* this domain only: keep what we knew of it */
			if (k)
				k->seen = true;
			continue;
		}
		if (r < 0)
			break;
		r = apply_snapshot(v, &s, k ? "resync" : "discovered", false);
	}
	for (int i = 0; i < n; i++)
		virDomainFree(doms[i]);
	free(doms);
	if (r < 0)
		return r;
	if (virConnectIsAlive(v->conn) != 1)
		return -ENOTCONN;
	for (size_t i = v->n_domains; i > 0; i--)
		if (!v->domains[i - 1]->seen)
			remove_known(v, v->domains[i - 1], "vanished");
	return 0;
}

static void log_connect_failure(struct virt *v, const char *what)
{
	const char *msg = note_error(v);

	v->failed_attempts++;
	if (v->failure_logged) {
		log_debug("%s libvirt '%s' failed again: %s", what, v->uri, msg);
		return;
	}
	log_warning("%s libvirt '%s' failed, retrying in %.1f s: %s", what, v->uri,
		    v->backoff_usec / 1e6, msg);
	v->failure_logged = true;
}

/* Keepalive and close detection; drivers without them (test:///) are fine. */
static void setup_liveness(struct virt *v)
{
	if (virConnectSetKeepAlive(v->conn, KEEPALIVE_SECONDS, KEEPALIVE_COUNT) < 0)
		log_debug("No keepalive on '%s': %s", v->uri, virGetLastErrorMessage());
	if (virConnectRegisterCloseCallback(v->conn, on_close, v, NULL) < 0)
		log_debug("No close callback on '%s': %s", v->uri, virGetLastErrorMessage());
	else
		v->close_cb = true;
}

static void try_connect(struct virt *v)
{
	v->conn = virConnectOpen(v->uri);
	if (!v->conn) {
		log_connect_failure(v, "Connecting to");
		goto retry;
	}
	virConnSetErrorFunc(v->conn, v, on_libvirt_error);
	setup_liveness(v);
	if (register_events(v) < 0 || resync(v) < 0) {
		log_connect_failure(v, "Reading domains from");
		close_connection(v);
		mark_all_stale(v);
		goto retry;
	}
	v->connected_since = now_usec(CLOCK_MONOTONIC);
	v->failure_logged = false;
	if (v->connects++ > 0)
		v->reconnects++;
	log_info("Connected to libvirt '%s', %zu domain(s)", v->uri, v->n_domains);
	set_connected(v, true);
	return;
retry:
	schedule_connect(v, v->backoff_usec);
	v->backoff_usec = MIN(v->backoff_usec * 2, BACKOFF_MAX_USEC);
}

static int on_connect_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	(void)s;
	(void)usec;
	try_connect(userdata);
	return 0;
}

/* ---- public ------------------------------------------------------------------------------ */

int virt_new(sd_event *e, const char *uri, const struct virt_ops *ops, void *userdata,
	     struct virt **ret)
{
	_cleanup_(virt_freep) struct virt *v = NULL;
	int r;

	if (!e || !uri || !ret)
		return -EINVAL;
	r = virt_event_register(e);
	if (r < 0)
		return log_error_errno(r, "Failed to bind libvirt's event loop: %m");
	virSetErrorFunc(NULL, on_libvirt_error);

	v = calloc(1, sizeof(*v));
	if (!v)
		return log_oom();
	v->event = sd_event_ref(e);
	v->userdata = userdata;
	if (ops)
		v->ops = *ops;
	v->backoff_usec = BACKOFF_MIN_USEC;
	for (size_t i = 0; i < _EV_MAX; i++)
		v->event_ids[i] = -1;
	v->uri = strdup(uri);
	if (!v->uri)
		return log_oom();
	/* the first attempt on the next iteration: no callback runs inside virt_new() */
	r = sd_event_add_time_relative(e, &v->connect_timer, CLOCK_MONOTONIC, 0, 0,
				       on_connect_timer, v);
	if (r < 0)
		return log_error_errno(r, "Failed to add the libvirt connection timer: %m");
	(void)sd_event_source_set_description(v->connect_timer, "libvirt-connect");
	r = sd_event_add_defer(e, &v->teardown, on_teardown, v);
	if (r < 0)
		return log_error_errno(r, "Failed to add the libvirt teardown source: %m");
	(void)sd_event_source_set_enabled(v->teardown, SD_EVENT_OFF);
	*ret = TAKE_PTR(v);
	return 0;
}

struct virt *virt_free(struct virt *v)
{
	if (!v)
		return NULL;
	close_connection(v);
	sd_event_source_disable_unref(v->connect_timer);
	sd_event_source_disable_unref(v->teardown);
	for (size_t i = 0; i < v->n_domains; i++)
		known_free(v->domains[i]);
	free(v->domains);
	free(v->last_error);
	free(v->uri);
	sd_event_unref(v->event);
	free(v);
	return NULL;
}

bool virt_is_connected(const struct virt *v)
{
	return v && v->connected;
}

virConnectPtr virt_connection(const struct virt *v)
{
	return v && !v->closing ? v->conn : NULL;
}

size_t virt_domain_count(const struct virt *v)
{
	return v ? v->n_domains : 0;
}

const struct virt_domain *virt_domain_get(const struct virt *v, size_t i)
{
	return v && i < v->n_domains ? &v->domains[i]->d : NULL;
}

const struct virt_domain *virt_domain_find(const struct virt *v, const char *uuid)
{
	struct known *k = v && uuid ? find_known(v, uuid) : NULL;

	return k ? &k->d : NULL;
}

/* Where the metadata goes: the live definition when running, the persistent one if any. */
static unsigned metadata_flags(virDomainPtr dom)
{
	unsigned flags = 0;

	if (virDomainIsActive(dom) == 1)
		flags |= VIR_DOMAIN_AFFECT_LIVE;
	if (virDomainIsPersistent(dom) == 1)
		flags |= VIR_DOMAIN_AFFECT_CONFIG;
	return flags ?: VIR_DOMAIN_AFFECT_CURRENT;
}

static int set_metadata(struct virt *v, virDomainPtr dom, const char *xml, char *errbuf,
			size_t errlen)
{
	int r;

	for (int attempt = 0;; attempt++) {
		if (virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, xml,
					 DOMAIN_METADATA_PREFIX, DOMAIN_METADATA_NS,
					 metadata_flags(dom)) == 0)
			return 0;
		/* it stopped or started between the check and the call: once more */
		if (attempt == 0 && virGetLastErrorCode() == VIR_ERR_OPERATION_INVALID)
			continue;
		r = domain_error();
		errbuf_printf(errbuf, errlen, "libvirt refused the policy: %s", note_error(v));
		check_connection(v);
		return r;
	}
}

int virt_set_policy(struct virt *v, const char *uuid, const struct domain_policy *p, char *errbuf,
		    size_t errlen)
{
	_cleanup_free_ char *xml = NULL;
	virDomainPtr dom;
	int r;

	if (!v || !uuid)
		return -EINVAL;
	if (!virt_connection(v)) {
		errbuf_printf(errbuf, errlen, "not connected to libvirt '%s'", v->uri);
		return -ENOTCONN;
	}
	if (p) {
		xml = domain_policy_format(p);
		if (!xml && errno == EINVAL) {
			errbuf_printf(errbuf, errlen, "invalid policy");
			return -EINVAL;
		}
		if (!xml)
			return -ENOMEM;
	}
	dom = virDomainLookupByUUIDString(v->conn, uuid);
	if (!dom) {
		r = virGetLastErrorCode() == VIR_ERR_INVALID_ARG ? -EINVAL : domain_error();
		errbuf_printf(errbuf, errlen, "%s",
			      r == -ENOENT ? "no such domain" : note_error(v));
		if (r == -EIO)
			check_connection(v);
		return r;
	}
	r = set_metadata(v, dom, xml, errbuf, errlen);
	virDomainFree(dom);
	return r;
}

struct json_object *virt_status_json(const struct virt *v)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	int r = 0;

	if (!o)
		return NULL;
	r |= json_add(o, "uri", json_object_new_string(v->uri));
	r |= json_add(o, "connected", json_object_new_boolean(v->connected));
	r |= json_add(o, "connects", json_object_new_int64(v->connects));
	r |= json_add(o, "reconnects", json_object_new_int64(v->reconnects));
	r |= json_add(o, "failed_attempts", json_object_new_int64(v->failed_attempts));
	r |= json_add_string_or_null(o, "last_error", v->last_error);
	r |= json_add(o, "domains", json_object_new_int64((int64_t)v->n_domains));
	return r < 0 ? NULL : TAKE_PTR(o);
}
