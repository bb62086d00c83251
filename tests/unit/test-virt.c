// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libvirt's event loop on sd-event, and vpmd's connection to libvirt against the test driver
 * with tests/libvirt/test-node.xml. Everything runs on a private sd_event driven from here.
 */
#include "check-main.h"
#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "engine.h"
#include "policy.h"
#include "virt-event.h"
#include "virt.h"

#ifndef VPM_TEST_NODE_XML
#error "VPM_TEST_NODE_XML must name tests/libvirt/test-node.xml"
#endif
#define NODE_URI "test://" VPM_TEST_NODE_XML

#define SHOP_UUID    "0c9af337-0f64-4b0b-b0b8-d9ab6492fd6c"
#define JOURNAL_UUID "e53a4d37-191d-4a0e-85ac-ec429af86909"
#define INDEX_UUID   "6e2b9a55-3a95-4a2c-b362-c1f24ca9bf23"
#define BATCH_UUID   "7a9f1f3d-5606-4201-b2eb-fb3ef0d1e6be"
#define WEB_UUID     "a0453344-03b2-40b3-a44c-0f4580b818b3"

static sd_event *loop;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void setup(void)
{
	log_set_max_level(getenv("VPM_TEST_DEBUG") ? LOG_DEBUG : LOG_ERR);
	ck_assert_int_eq(sd_event_new(&loop), 0);
	ck_assert_int_eq(virt_event_register(loop), 0);
}

static void teardown(void)
{
	virt_event_unbind();
	loop = sd_event_unref(loop);
}

/* Run the loop until *flag turns true or ms pass; returns *flag. */
static bool run_until(const bool *flag, unsigned ms)
{
	uint64_t end = now_ms() + ms;

	while (!*flag && now_ms() < end)
		ck_assert_int_ge(sd_event_run(loop, 10 * 1000), 0);
	return *flag;
}

/* Run the loop for about ms. */
static void run_for(unsigned ms)
{
	bool never = false;

	run_until(&never, ms);
}

/* ---- the event loop alone ---------------------------------------------------------------- */

struct tstate {
	int id;
	unsigned calls;
	unsigned remove_after; /* remove itself on this call; 0: never */
	unsigned freed;
	bool freed_inside_remove;
	uint64_t first_ms, last_ms;
	int last_events;
	int fd;
	char buf[64];
};

static void on_free(void *opaque)
{
	struct tstate *t = opaque;

	t->freed++;
}

static void on_timer(int id, void *opaque)
{
	struct tstate *t = opaque;

	ck_assert_int_eq(id, t->id);
	if (t->calls++ == 0)
		t->first_ms = now_ms();
	t->last_ms = now_ms();
	if (t->remove_after && t->calls == t->remove_after) {
		ck_assert_int_eq(virEventRemoveTimeout(id), 0);
		t->freed_inside_remove = t->freed > 0;
		/* a second removal of the same id fails */
		ck_assert_int_lt(virEventRemoveTimeout(id), 0);
	}
}

START_TEST(test_event_translation)
{
	ck_assert_uint_eq(virt_event_to_epoll(VIR_EVENT_HANDLE_READABLE), EPOLLIN);
	ck_assert_uint_eq(virt_event_to_epoll(VIR_EVENT_HANDLE_WRITABLE), EPOLLOUT);
	ck_assert_uint_eq(virt_event_to_epoll(VIR_EVENT_HANDLE_READABLE | VIR_EVENT_HANDLE_ERROR |
					      VIR_EVENT_HANDLE_HANGUP),
			  EPOLLIN | EPOLLERR | EPOLLHUP);
	ck_assert_int_eq(virt_event_from_epoll(EPOLLIN | EPOLLOUT),
			 VIR_EVENT_HANDLE_READABLE | VIR_EVENT_HANDLE_WRITABLE);
	ck_assert_int_eq(virt_event_from_epoll(EPOLLHUP), VIR_EVENT_HANDLE_HANGUP);
	ck_assert_int_eq(virt_event_from_epoll(EPOLLRDHUP), VIR_EVENT_HANDLE_HANGUP);
	ck_assert_int_eq(virt_event_from_epoll(EPOLLERR), VIR_EVENT_HANDLE_ERROR);
	ck_assert_int_eq(virt_event_from_epoll(EPOLLPRI), VIR_EVENT_HANDLE_READABLE);
}
END_TEST

START_TEST(test_event_register_once)
{
	sd_event *other = NULL;

	ck_assert_int_eq(virt_event_register(loop), 0);
	ck_assert_int_eq(sd_event_new(&other), 0);
	ck_assert_int_eq(virt_event_register(other), -EBUSY);
	/* after unbinding, another loop may take over */
	virt_event_unbind();
	ck_assert_int_eq(virEventAddTimeout(0, on_timer, NULL, NULL), -1);
	ck_assert_int_eq(virt_event_register(other), 0);
	virt_event_unbind();
	sd_event_unref(other);
	ck_assert_int_eq(virt_event_register(loop), 0);
}
END_TEST

START_TEST(test_timeout_zero_and_remove_inside)
{
	struct tstate t = {.remove_after = 3};
	unsigned handles, timeouts, pending;

	t.id = virEventAddTimeout(0, on_timer, &t, on_free);
	ck_assert_int_gt(t.id, 0);
	/* 0 fires on every iteration */
	for (int i = 0; i < 3; i++)
		ck_assert_int_gt(sd_event_run(loop, 0), 0);
	ck_assert_uint_eq(t.calls, 3);
	ck_assert(!t.freed_inside_remove);
	virt_event_counts(&handles, &timeouts, &pending);
	ck_assert_uint_eq(timeouts, 0);
	ck_assert_uint_eq(pending, 1);
	ck_assert_uint_eq(t.freed, 0);
	/* the free callback runs on the next iteration, once */
	run_for(20);
	ck_assert_uint_eq(t.freed, 1);
	ck_assert_uint_eq(t.calls, 3);
	virt_event_counts(&handles, &timeouts, &pending);
	ck_assert_uint_eq(pending, 0);
}
END_TEST

START_TEST(test_timeout_periodic)
{
	struct tstate t = {.remove_after = 4};
	uint64_t start = now_ms();

	t.id = virEventAddTimeout(10, on_timer, &t, on_free);
	ck_assert_int_gt(t.id, 0);
	for (uint64_t end = start + 2000; t.calls < 4 && now_ms() < end;)
		ck_assert_int_ge(sd_event_run(loop, 100 * 1000), 0);
	ck_assert_uint_eq(t.calls, 4);
	ck_assert_uint_ge(t.first_ms - start, 9);
	/* four periods of 10 ms, with some slack for a loaded machine */
	ck_assert_uint_ge(t.last_ms - start, 39);
	ck_assert_uint_lt(t.last_ms - start, 1000);
	run_for(30);
	ck_assert_uint_eq(t.calls, 4);
	ck_assert_uint_eq(t.freed, 1);
}
END_TEST

START_TEST(test_timeout_disabled_and_update)
{
	struct tstate t = {};
	int id2;

	t.id = virEventAddTimeout(-1, on_timer, &t, on_free);
	ck_assert_int_gt(t.id, 0);
	run_for(30);
	ck_assert_uint_eq(t.calls, 0);
	virEventUpdateTimeout(t.id, 5);
	run_for(30);
	ck_assert_uint_ge(t.calls, 2);
	virEventUpdateTimeout(t.id, -1);
	t.calls = 0;
	run_for(30);
	ck_assert_uint_eq(t.calls, 0);
	/* removal from outside: no callback any more, ff later, ids never reused */
	ck_assert_int_eq(virEventRemoveTimeout(t.id), 0);
	ck_assert_uint_eq(t.freed, 0);
	id2 = virEventAddTimeout(-1, on_timer, &t, NULL);
	ck_assert_int_gt(id2, t.id);
	ck_assert_int_eq(virEventRemoveTimeout(id2), 0);
	run_for(10);
	ck_assert_uint_eq(t.freed, 1);
	ck_assert_int_lt(virEventRemoveTimeout(12345), 0);
}
END_TEST

static void on_pipe(int id, int fd, int events, void *opaque)
{
	struct tstate *t = opaque;
	ssize_t n;

	ck_assert_int_eq(id, t->id);
	ck_assert_int_eq(fd, t->fd);
	t->calls++;
	t->last_events = events;
	if (events & VIR_EVENT_HANDLE_READABLE) {
		n = read(fd, t->buf, sizeof(t->buf));
		ck_assert_int_ge(n, 0);
	}
	if (t->remove_after && t->calls == t->remove_after)
		ck_assert_int_eq(virEventRemoveHandle(id), 0);
}

START_TEST(test_handle_pipe)
{
	struct tstate t = {}, t2 = {};
	int p[2];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	t.fd = t2.fd = p[0];
	t.id = virEventAddHandle(p[0], VIR_EVENT_HANDLE_READABLE, on_pipe, &t, on_free);
	ck_assert_int_gt(t.id, 0);
	/* the same fd twice (epoll would refuse it without our duplicates) */
	t2.id = virEventAddHandle(p[0], 0, on_pipe, &t2, on_free);
	ck_assert_int_gt(t2.id, t.id);

	run_for(10);
	ck_assert_uint_eq(t.calls, 0);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	run_for(10);
	ck_assert_uint_eq(t.calls, 1);
	ck_assert_int_eq(t.last_events, VIR_EVENT_HANDLE_READABLE);
	ck_assert_uint_eq(t2.calls, 0); /* no events asked: disabled */

	/* disabled: data waits */
	virEventUpdateHandle(t.id, 0);
	ck_assert_int_eq(write(p[1], "y", 1), 1);
	run_for(10);
	ck_assert_uint_eq(t.calls, 1);
	virEventUpdateHandle(t.id, VIR_EVENT_HANDLE_READABLE);
	run_for(10);
	ck_assert_uint_eq(t.calls, 2);
	ck_assert_int_eq(t.buf[0], 'y');

	/* hangup is reported, and the watch removes itself from its callback */
	t.remove_after = 3;
	ck_assert_int_eq(virEventRemoveHandle(t2.id), 0);
	close(p[1]);
	run_for(20);
	ck_assert_uint_eq(t.calls, 3);
	ck_assert(t.last_events & VIR_EVENT_HANDLE_HANGUP);
	ck_assert_uint_eq(t.freed, 1);
	ck_assert_uint_eq(t2.freed, 1);
	ck_assert_uint_eq(t2.calls, 0);
	close(p[0]);
}
END_TEST

/* ---- the connection ---------------------------------------------------------------------- */

#define MAX_RECORDS 64

struct recorder {
	char events[MAX_RECORDS][192];
	unsigned n;
	bool connected;
	unsigned connection_changes;
	bool changed; /* something was recorded since the last clear */
	struct virt *virt;
};

static void record(struct recorder *rec, const char *fmt, ...) _printf_(2, 3);
static void record(struct recorder *rec, const char *fmt, ...)
{
	va_list ap;

	ck_assert_uint_lt(rec->n, MAX_RECORDS);
	va_start(ap, fmt);
	vsnprintf(rec->events[rec->n++], sizeof(rec->events[0]), fmt, ap);
	va_end(ap);
	rec->changed = true;
}

static void on_domain_changed(void *userdata, const struct virt_domain *d, const char *why)
{
	record(userdata, "changed %s %s %s%s%s", d->info->name, virt_dom_state_to_string(d->state),
	       why, d->persistent ? "" : " transient", d->problem ? " problem" : "");
}

static void on_domain_removed(void *userdata, const char *uuid, const char *name)
{
	(void)uuid;
	record(userdata, "removed %s", name);
}

static void on_connection_changed(void *userdata, bool connected)
{
	struct recorder *rec = userdata;

	rec->connected = connected;
	rec->connection_changes++;
	record(rec, "connection %s", connected ? "up" : "down");
}

static const struct virt_ops ops = {
    .domain_changed = on_domain_changed,
    .domain_removed = on_domain_removed,
    .connection_changed = on_connection_changed,
};

static bool recorded(const struct recorder *rec, const char *what)
{
	for (unsigned i = 0; i < rec->n; i++)
		if (streq(rec->events[i], what))
			return true;
	return false;
}

static void clear(struct recorder *rec)
{
	rec->n = 0;
	rec->changed = false;
}

static void dump(const struct recorder *rec)
{
	for (unsigned i = 0; i < rec->n; i++)
		fprintf(stderr, "  event: %s\n", rec->events[i]);
}

/* Run until `what` is recorded (events are dispatched a few iterations after the call). */
static void expect_event(struct recorder *rec, const char *what)
{
	uint64_t end = now_ms() + 3000;

	while (!recorded(rec, what) && now_ms() < end)
		ck_assert_int_ge(sd_event_run(loop, 10 * 1000), 0);
	if (!recorded(rec, what))
		dump(rec);
	ck_assert_msg(recorded(rec, what), "no '%s' event", what);
}

static struct virt *connect_node(struct recorder *rec)
{
	struct virt *v = NULL;

	*rec = (struct recorder){};
	ck_assert_int_eq(virt_new(loop, NODE_URI, &ops, rec, &v), 0);
	/* nothing happens inside virt_new() */
	ck_assert_uint_eq(rec->n, 0);
	ck_assert(!virt_is_connected(v));
	ck_assert(run_until(&rec->connected, 3000));
	rec->virt = v;
	return v;
}

static virDomainPtr lookup(struct virt *v, const char *uuid)
{
	virDomainPtr dom = virDomainLookupByUUIDString(virt_connection(v), uuid);

	ck_assert_ptr_nonnull(dom);
	return dom;
}

START_TEST(test_discovery)
{
	struct recorder rec;
	struct virt *v = connect_node(&rec);
	const struct virt_domain *d;

	ck_assert(virt_is_connected(v));
	ck_assert_uint_eq(virt_domain_count(v), 5);
	/* five discoveries, then connected: the inventory is complete by then */
	ck_assert_uint_eq(rec.n, 6);
	ck_assert_str_eq(rec.events[5], "connection up");
	ck_assert(recorded(&rec, "changed shop running discovered"));
	ck_assert(recorded(&rec, "changed journal running discovered"));
	ck_assert(recorded(&rec, "changed index running discovered"));
	ck_assert(recorded(&rec, "changed batch shutoff discovered"));
	ck_assert(recorded(&rec, "changed web running discovered"));

	/* sorted by UUID */
	for (size_t i = 1; i < virt_domain_count(v); i++)
		ck_assert_int_lt(strcmp(virt_domain_get(v, i - 1)->info->uuid,
					virt_domain_get(v, i)->info->uuid),
				 0);
	ck_assert_ptr_null(virt_domain_get(v, 5));

	d = virt_domain_find(v, SHOP_UUID);
	ck_assert_ptr_nonnull(d);
	ck_assert_str_eq(d->info->name, "shop");
	ck_assert_int_eq(d->state, VIRT_DOM_RUNNING);
	ck_assert_int_gt(d->id, 0);
	ck_assert(d->persistent);
	ck_assert(!d->stale);
	ck_assert_ptr_null(d->problem);
	ck_assert_uint_eq(d->info->n_pmdevs, 1);
	ck_assert_int_eq(d->info->pmdevs[0].model, DOMAIN_PMDEV_NVDIMM);
	ck_assert_uint_eq(d->info->pmdevs[0].size, 64u << 20);
	ck_assert_uint_eq(d->info->pmdevs[0].label_size, 128u << 10);
	ck_assert(d->info->pmdevs[0].shared);
	ck_assert_str_eq(d->info->pmdevs[0].path, "/var/lib/vpm/images/shop-pm0.img");
	ck_assert_ptr_null(d->info->pmdevs[0].problem);
	ck_assert(d->info->has_policy);
	ck_assert(d->info->policy.has_ratio);
	ck_assert(d->info->policy.ratio == 2.0);
	ck_assert_int_eq(d->info->policy.mode, VM_MODE_EPOCH);
	ck_assert_int_eq(d->info->policy.policy, POLICY_VPM);
	ck_assert_int_eq(d->info->policy.priority, 80);
	ck_assert_uint_eq(d->info->policy.epoch_interval, 100 * 1000);

	d = virt_domain_find(v, JOURNAL_UUID);
	ck_assert_uint_eq(d->info->n_pmdevs, 2);
	ck_assert_uint_eq(d->info->pmdevs[0].size, 32u << 20);
	ck_assert_uint_eq(d->info->pmdevs[1].size, 16u << 20);
	ck_assert(!d->info->has_policy);
	ck_assert_uint_eq(domain_pm_bytes(d->info), 48u << 20);

	d = virt_domain_find(v, INDEX_UUID);
	ck_assert_uint_eq(d->info->n_pmdevs, 1);
	ck_assert_int_eq(d->info->pmdevs[0].model, DOMAIN_PMDEV_VIRTIO_PMEM);
	ck_assert_uint_eq(d->info->pmdevs[0].size, 32u << 20);

	d = virt_domain_find(v, BATCH_UUID);
	ck_assert_int_eq(d->state, VIRT_DOM_SHUTOFF);
	ck_assert_int_eq(d->id, -1);
	ck_assert_uint_eq(d->info->pmdevs[0].size, 48u << 20);

	d = virt_domain_find(v, WEB_UUID);
	ck_assert_uint_eq(d->info->n_pmdevs, 0);
	ck_assert_ptr_null(virt_domain_find(v, "00000000-0000-0000-0000-000000000000"));

	virt_free(v);
	/* closing the connection leaves nothing behind in the loop */
	run_for(10);
	{
		unsigned handles, timeouts, pending;

		virt_event_counts(&handles, &timeouts, &pending);
		ck_assert_uint_eq(handles + timeouts + pending, 0);
	}
}
END_TEST

START_TEST(test_lifecycle)
{
	struct recorder rec;
	struct virt *v = connect_node(&rec);
	virDomainPtr shop = lookup(v, SHOP_UUID), batch = lookup(v, BATCH_UUID);
	virDomainPtr journal = lookup(v, JOURNAL_UUID), dom;
	int old_id = virt_domain_find(v, SHOP_UUID)->id;

	clear(&rec);
	ck_assert_int_eq(virDomainDestroy(shop), 0);
	expect_event(&rec, "changed shop shutoff stopped");
	ck_assert_int_eq(virt_domain_find(v, SHOP_UUID)->id, -1);
	ck_assert_int_eq(virDomainCreate(shop), 0);
	expect_event(&rec, "changed shop running started");
	ck_assert_int_ne(virt_domain_find(v, SHOP_UUID)->id, old_id);
	ck_assert_int_eq(virDomainSuspend(shop), 0);
	expect_event(&rec, "changed shop paused suspended");
	ck_assert_int_eq(virDomainResume(shop), 0);
	expect_event(&rec, "changed shop running resumed");

	/* undefine a shut-off domain: gone */
	ck_assert_int_eq(virDomainUndefine(batch), 0);
	expect_event(&rec, "removed batch");
	ck_assert_ptr_null(virt_domain_find(v, BATCH_UUID));
	ck_assert_uint_eq(virt_domain_count(v), 4);

	/* undefine a running one: it runs on as a transient domain, and goes when it stops */
	ck_assert_int_eq(virDomainUndefine(journal), 0);
	expect_event(&rec, "changed journal running undefined transient");
	ck_assert(!virt_domain_find(v, JOURNAL_UUID)->persistent);
	ck_assert_int_eq(virDomainDestroy(journal), 0);
	expect_event(&rec, "removed journal");
	ck_assert_uint_eq(virt_domain_count(v), 3);

	/* define a new domain */
	dom = virDomainDefineXML(virt_connection(v),
				 "<domain type='test'><name>ledger</name>"
				 "<uuid>ae9ddeba-d95a-4c71-a13e-06c6ad3efe8b</uuid>"
				 "<maxMemory slots='2' unit='MiB'>2048</maxMemory>"
				 "<memory unit='MiB'>1056</memory><vcpu>1</vcpu>"
				 "<os><type arch='x86_64'>hvm</type></os>"
				 "<cpu><numa><cell id='0' cpus='0' memory='1024' unit='MiB'/>"
				 "</numa></cpu><devices>"
				 "<memory model='nvdimm' access='shared'><source>"
				 "<path>/var/lib/vpm/images/ledger.img</path></source><target>"
				 "<size unit='MiB'>32</size><node>0</node></target></memory>"
				 "</devices></domain>");
	ck_assert_ptr_nonnull(dom);
	expect_event(&rec, "changed ledger shutoff defined");
	ck_assert_uint_eq(
	    virt_domain_find(v, "ae9ddeba-d95a-4c71-a13e-06c6ad3efe8b")->info->pmdevs[0].size,
	    32u << 20);
	/* a transient domain that stops disappears */
	ck_assert_int_eq(virDomainUndefine(dom), 0);
	expect_event(&rec, "removed ledger");
	ck_assert_uint_eq(virt_domain_count(v), 3);

	virDomainFree(dom);
	virDomainFree(shop);
	virDomainFree(batch);
	virDomainFree(journal);
	virt_free(v);
}
END_TEST

START_TEST(test_set_policy)
{
	struct recorder rec;
	struct virt *v = connect_node(&rec);
	struct domain_policy p;
	const struct virt_domain *d;
	char err[256] = "";

	domain_policy_init(&p);
	p.has_ratio = true;
	p.ratio = 4;
	p.mode = VM_MODE_HINT;
	p.priority = 10;
	clear(&rec);
	ck_assert_int_eq(virt_set_policy(v, SHOP_UUID, &p, err, sizeof(err)), 0);
	expect_event(&rec, "changed shop running metadata");
	d = virt_domain_find(v, SHOP_UUID);
	ck_assert(d->info->has_policy);
	ck_assert(d->info->policy.ratio == 4.0);
	ck_assert_int_eq(d->info->policy.mode, VM_MODE_HINT);
	ck_assert_int_eq(d->info->policy.policy, -1);
	ck_assert_int_eq(d->info->policy.priority, 10);
	/* the persistent definition has it too */
	{
		virDomainPtr dom = lookup(v, SHOP_UUID);
		char *md = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
						DOMAIN_METADATA_NS, VIR_DOMAIN_AFFECT_CONFIG);

		ck_assert_ptr_nonnull(md);
		ck_assert_ptr_nonnull(strstr(md, "ratio=\"4\""));
		free(md);
		virDomainFree(dom);
	}

	/* a shut-off domain: its persistent definition */
	clear(&rec);
	ck_assert_int_eq(virt_set_policy(v, BATCH_UUID, &p, err, sizeof(err)), 0);
	expect_event(&rec, "changed batch shutoff metadata");
	ck_assert(virt_domain_find(v, BATCH_UUID)->info->has_policy);

	/* removal */
	clear(&rec);
	ck_assert_int_eq(virt_set_policy(v, SHOP_UUID, NULL, err, sizeof(err)), 0);
	expect_event(&rec, "changed shop running metadata");
	ck_assert(!virt_domain_find(v, SHOP_UUID)->info->has_policy);

	/* the same policy again changes nothing: no report */
	clear(&rec);
	ck_assert_int_eq(virt_set_policy(v, BATCH_UUID, &p, err, sizeof(err)), 0);
	run_for(50);
	ck_assert_uint_eq(rec.n, 0);

	ck_assert_int_eq(
	    virt_set_policy(v, "00000000-0000-0000-0000-000000000000", &p, err, sizeof(err)),
	    -ENOENT);
	ck_assert_int_eq(virt_set_policy(v, "not-a-uuid", &p, err, sizeof(err)), -EINVAL);
	p.priority = 1000;
	ck_assert_int_eq(virt_set_policy(v, SHOP_UUID, &p, err, sizeof(err)), -EINVAL);
	virt_free(v);
}
END_TEST

START_TEST(test_bad_xml)
{
	struct recorder rec;
	struct virt *v = connect_node(&rec);
	const struct virt_domain *d;
	virDomainPtr dom;

	/* a known domain whose policy goes bad keeps its devices, with a problem */
	clear(&rec);
	dom = lookup(v, JOURNAL_UUID);
	ck_assert_int_eq(virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
					      "<policy ratio='lots'/>", DOMAIN_METADATA_PREFIX,
					      DOMAIN_METADATA_NS, VIR_DOMAIN_AFFECT_LIVE),
			 0);
	expect_event(&rec, "changed journal running metadata problem");
	d = virt_domain_find(v, JOURNAL_UUID);
	ck_assert_ptr_nonnull(d->problem);
	ck_assert_ptr_nonnull(strstr(d->problem, "ratio"));
	ck_assert_uint_eq(d->info->n_pmdevs, 2);
	ck_assert(!d->info->has_policy);
	/* fixed: the problem goes */
	clear(&rec);
	ck_assert_int_eq(virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
					      "<policy ratio='3'/>", DOMAIN_METADATA_PREFIX,
					      DOMAIN_METADATA_NS, VIR_DOMAIN_AFFECT_LIVE),
			 0);
	expect_event(&rec, "changed journal running metadata");
	d = virt_domain_find(v, JOURNAL_UUID);
	ck_assert_ptr_null(d->problem);
	ck_assert(d->info->policy.ratio == 3.0);
	virDomainFree(dom);

	/* a new domain that never parses: known by name and UUID, no devices */
	clear(&rec);
	dom = virDomainDefineXML(virt_connection(v),
				 "<domain type='test'><name>broken</name>"
				 "<uuid>ae9ddeba-d95a-4c71-a13e-06c6ad3efe8b</uuid>"
				 "<metadata><vpm:policy xmlns:vpm='" DOMAIN_METADATA_NS
				 "' mode='turbo'/></metadata>"
				 "<memory unit='MiB'>512</memory><vcpu>1</vcpu>"
				 "<os><type arch='x86_64'>hvm</type></os></domain>");
	ck_assert_ptr_nonnull(dom);
	expect_event(&rec, "changed broken shutoff defined problem");
	d = virt_domain_find(v, "ae9ddeba-d95a-4c71-a13e-06c6ad3efe8b");
	ck_assert_str_eq(d->info->name, "broken");
	ck_assert_uint_eq(d->info->n_pmdevs, 0);
	ck_assert_ptr_nonnull(strstr(d->problem, "mode"));
	virDomainFree(dom);
	virt_free(v);
}
END_TEST

START_TEST(test_status_json)
{
	struct recorder rec;
	struct virt *v = connect_node(&rec);
	struct json_object *o = virt_status_json(v), *x;

	ck_assert_ptr_nonnull(o);
	ck_assert(json_object_object_get_ex(o, "uri", &x));
	ck_assert_str_eq(json_object_get_string(x), NODE_URI);
	ck_assert(json_object_object_get_ex(o, "connected", &x));
	ck_assert(json_object_get_boolean(x));
	ck_assert(json_object_object_get_ex(o, "domains", &x));
	ck_assert_int_eq(json_object_get_int(x), 5);
	ck_assert(json_object_object_get_ex(o, "reconnects", &x));
	ck_assert_int_eq(json_object_get_int(x), 0);
	ck_assert(json_object_object_get_ex(o, "last_error", &x));
	json_object_put(o);
	virt_free(v);
}
END_TEST

START_TEST(test_unreachable)
{
	struct recorder rec = {};
	struct virt *v = NULL;
	struct json_object *o, *x;
	char err[256] = "";
	uint64_t start = now_ms();

	ck_assert_int_eq(virt_new(loop, "test:///nonexistent/vpm-node.xml", &ops, &rec, &v), 0);
	run_for(100);
	ck_assert(!virt_is_connected(v));
	ck_assert_uint_eq(rec.n, 0);
	ck_assert_int_eq(virt_set_policy(v, SHOP_UUID, NULL, err, sizeof(err)), -ENOTCONN);
	ck_assert_ptr_nonnull(strstr(err, "not connected"));
	o = virt_status_json(v);
	ck_assert(json_object_object_get_ex(o, "failed_attempts", &x));
	ck_assert_int_eq(json_object_get_int(x), 1);
	ck_assert(json_object_object_get_ex(o, "last_error", &x));
	ck_assert_ptr_nonnull(json_object_get_string(x));
	json_object_put(o);
	/* retried after 0.5 s, then after 1 s more */
	while (now_ms() - start < 1000)
		ck_assert_int_ge(sd_event_run(loop, 100 * 1000), 0);
	o = virt_status_json(v);
	ck_assert(json_object_object_get_ex(o, "failed_attempts", &x));
	ck_assert_int_eq(json_object_get_int(x), 2);
	json_object_put(o);
	virt_free(v);
}
END_TEST

/*
 * Reconnection against a real libvirtd, run by tests/libvirt/test-libvirt-reconnect.sh only (it
 * sets VPM_TEST_RECONNECT_URI, e.g. test+unix:///default?socket=..., and restarts libvirtd
 * once VPM_TEST_READY_FILE appears). The daemon's test driver starts afresh on restart: the
 * domain defined here vanishes, its built-in domain "test" stays, known once.
 */
START_TEST(test_reconnect)
{
	const char *uri = getenv("VPM_TEST_RECONNECT_URI");
	const char *ready = getenv("VPM_TEST_READY_FILE");
	struct recorder rec = {};
	struct virt *v = NULL;
	struct json_object *o, *x;
	virDomainPtr dom;
	size_t known;
	FILE *f;

	ck_assert_ptr_nonnull(uri);
	ck_assert_ptr_nonnull(ready);
	ck_assert_int_eq(virt_new(loop, uri, &ops, &rec, &v), 0);
	ck_assert(run_until(&rec.connected, 10000));
	dom = virDomainDefineXML(virt_connection(v),
				 "<domain type='test'><name>scratch</name>"
				 "<uuid>ae9ddeba-d95a-4c71-a13e-06c6ad3efe8b</uuid>"
				 "<memory unit='MiB'>512</memory><vcpu>1</vcpu>"
				 "<os><type arch='x86_64'>hvm</type></os></domain>");
	ck_assert_ptr_nonnull(dom);
	virDomainFree(dom);
	expect_event(&rec, "changed scratch shutoff defined");
	known = virt_domain_count(v);
	ck_assert_uint_ge(known, 2);

	f = fopen(ready, "we");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	clear(&rec);
	/* libvirtd is stopped now: close detected, domains kept but stale */
	{
		uint64_t end = now_ms() + 60000;

		while (rec.connected && now_ms() < end)
			ck_assert_int_ge(sd_event_run(loop, 100 * 1000), 0);
	}
	ck_assert(!rec.connected);
	ck_assert(!virt_is_connected(v));
	ck_assert_uint_eq(virt_domain_count(v), known);
	for (size_t i = 0; i < known; i++)
		ck_assert(virt_domain_get(v, i)->stale);
	fprintf(stderr, "reconnect: connection down, %zu domains kept stale\n", known);

	/* and back once libvirtd is up again */
	ck_assert(run_until(&rec.connected, 120000));
	dump(&rec);
	ck_assert(recorded(&rec, "removed scratch"));
	ck_assert_ptr_null(virt_domain_find(v, "ae9ddeba-d95a-4c71-a13e-06c6ad3efe8b"));
	ck_assert_uint_eq(virt_domain_count(v), known - 1);
	for (size_t i = 0; i < virt_domain_count(v); i++)
		ck_assert(!virt_domain_get(v, i)->stale);
	ck_assert_uint_eq(rec.connection_changes, 3);
	o = virt_status_json(v);
	ck_assert(json_object_object_get_ex(o, "reconnects", &x));
	ck_assert_int_eq(json_object_get_int(x), 1);
	fprintf(stderr, "reconnect: %s\n", json_object_to_json_string(o));
	json_object_put(o);
	virt_free(v);
}
END_TEST

static Suite *virt_suite(void)
{
	Suite *s = suite_create("virt");
	TCase *tc = tcase_create("event-loop");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_event_translation);
	tcase_add_test(tc, test_event_register_once);
	tcase_add_test(tc, test_timeout_zero_and_remove_inside);
	tcase_add_test(tc, test_timeout_periodic);
	tcase_add_test(tc, test_timeout_disabled_and_update);
	tcase_add_test(tc, test_handle_pipe);
	suite_add_tcase(s, tc);

	tc = tcase_create("connection");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_discovery);
	tcase_add_test(tc, test_lifecycle);
	tcase_add_test(tc, test_set_policy);
	tcase_add_test(tc, test_bad_xml);
	tcase_add_test(tc, test_status_json);
	tcase_add_test(tc, test_unreachable);
	suite_add_tcase(s, tc);

	if (getenv("VPM_TEST_RECONNECT_URI")) {
		tc = tcase_create("reconnect");
		tcase_add_checked_fixture(tc, setup, teardown);
		tcase_set_timeout(tc, 300);
		tcase_add_test(tc, test_reconnect);
		suite_add_tcase(s, tc);
	}
	return s;
}

VPM_CHECK_MAIN(virt_suite)
