// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libvirt's event loop implemented over sd-event (see virt-event.h). Each watch or timeout is
 * a record on one list, found by id. A removed record leaves the list at once and waits on the
 * graveyard list, with its sd-event source already gone, until a defer source (the reaper)
 * runs its free callback on a later iteration. sd-event dispatches one source per iteration,
 * so a record is never freed while its own callback is still on the stack.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "log.h"
#include "virt-event.h"

/* sd-event's default accuracy (250 ms) would coalesce libvirt's short timeouts */
#define TIMEOUT_ACCURACY_USEC 1000

struct watch {
	struct watch *prev, *next;
	int id;
	bool is_timeout;
	sd_event_source *source; /* NULL once removed or unbound */
	void *opaque;
	virFreeCallback ff;

	/* handles */
	int fd;	    /* libvirt's fd, passed back to its callback */
	int dup_fd; /* our duplicate, the one registered with epoll */
	int events; /* VIR_EVENT_HANDLE_* */
	virEventHandleCallback handle_cb;

	/* timeouts */
	int frequency; /* ms; -1: disabled, 0: every iteration */
	virEventTimeoutCallback timeout_cb;
};

static struct {
	bool registered; /* with libvirt, for the life of the process */
	sd_event *event; /* bound loop, or NULL */
	pthread_t thread;
	sd_event_source *reaper;
	struct watch *live;
	struct watch *graveyard;
	int last_id;
} ev;

static void list_push(struct watch **head, struct watch *w)
{
	w->prev = NULL;
	w->next = *head;
	if (*head)
		(*head)->prev = w;
	*head = w;
}

static void list_unlink(struct watch **head, struct watch *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		*head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
}

static struct watch *find_live(int id, bool is_timeout)
{
	for (struct watch *w = ev.live; w; w = w->next)
		if (w->id == id && w->is_timeout == is_timeout)
			return w;
	return NULL;
}

/* sd-event is not thread-safe: refuse libvirt calls from other threads (and while unbound). */
static bool usable(const char *what)
{
	if (!ev.event) {
		log_debug("libvirt event loop: %s while no loop is bound", what);
		return false;
	}
	if (!pthread_equal(pthread_self(), ev.thread)) {
		log_error("libvirt event loop: %s from a thread other than the loop's, refused",
			  what);
		return false;
	}
	return true;
}

uint32_t virt_event_to_epoll(int events)
{
	uint32_t e = 0;

	if (events & VIR_EVENT_HANDLE_READABLE)
		e |= EPOLLIN;
	if (events & VIR_EVENT_HANDLE_WRITABLE)
		e |= EPOLLOUT;
	if (events & VIR_EVENT_HANDLE_ERROR)
		e |= EPOLLERR;
	if (events & VIR_EVENT_HANDLE_HANGUP)
		e |= EPOLLHUP;
	return e;
}

int virt_event_from_epoll(uint32_t revents)
{
	int e = 0;

	if (revents & (EPOLLIN | EPOLLPRI))
		e |= VIR_EVENT_HANDLE_READABLE;
	if (revents & EPOLLOUT)
		e |= VIR_EVENT_HANDLE_WRITABLE;
	if (revents & EPOLLERR)
		e |= VIR_EVENT_HANDLE_ERROR;
	if (revents & (EPOLLHUP | EPOLLRDHUP))
		e |= VIR_EVENT_HANDLE_HANGUP;
	return e;
}

static int next_id(void)
{
	if (ev.last_id == INT_MAX)
		return -1; /* ids are never reused */
	return ++ev.last_id;
}

/* ---- the reaper: free callbacks on a later iteration ------------------------------------- */

static int on_reap(sd_event_source *s, void *userdata)
{
	struct watch *list = TAKE_PTR(ev.graveyard);

	(void)s;
	(void)userdata;
	/* a free callback may remove more: those land on the new graveyard and rearm us */
	while (list) {
		struct watch *w = list;

		list_unlink(&list, w);
		if (w->ff)
			w->ff(w->opaque);
		free(w);
	}
	return 0;
}

static void bury(struct watch *w)
{
	list_unlink(&ev.live, w);
	w->source = sd_event_source_disable_unref(w->source);
	w->dup_fd = safe_close(w->dup_fd);
	list_push(&ev.graveyard, w);
	if (ev.reaper && sd_event_source_set_enabled(ev.reaper, SD_EVENT_ONESHOT) < 0)
		log_error("libvirt event loop: cannot schedule free callbacks");
}

/* ---- handles ----------------------------------------------------------------------------- */

static int on_handle_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct watch *w = userdata;

	(void)s;
	(void)fd;
	/* w must not be touched after the callback: it may have removed it */
	w->handle_cb(w->id, w->fd, virt_event_from_epoll(revents), w->opaque);
	return 0;
}

static int handle_apply_events(struct watch *w)
{
	int r;

	if (!w->source)
		return 0;
	if (w->events == 0)
		return sd_event_source_set_enabled(w->source, SD_EVENT_OFF);
	r = sd_event_source_set_io_events(w->source, virt_event_to_epoll(w->events));
	if (r < 0)
		return r;
	return sd_event_source_set_enabled(w->source, SD_EVENT_ON);
}

static int add_handle(int fd, int events, virEventHandleCallback cb, void *opaque,
		      virFreeCallback ff)
{
	struct watch *w;
	int r;

	if (!usable("add handle") || fd < 0 || !cb)
		return -1;
	w = calloc(1, sizeof(*w));
	if (!w) {
		log_oom();
		return -1;
	}
	*w = (struct watch){.fd = fd, .events = events, .handle_cb = cb, .opaque = opaque};
	/* epoll takes an fd once; libvirt may watch one fd twice, so each watch has its own */
	w->dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (w->dup_fd < 0) {
		r = log_error_errno(errno, "libvirt event loop: cannot duplicate fd %d: %m", fd);
		goto fail;
	}
	r = sd_event_add_io(ev.event, &w->source, w->dup_fd, virt_event_to_epoll(events),
			    on_handle_io, w);
	if (r < 0) {
		log_error_errno(r, "libvirt event loop: cannot watch fd %d: %m", fd);
		goto fail;
	}
	(void)sd_event_source_set_description(w->source, "libvirt-handle");
	r = handle_apply_events(w);
	if (r < 0) {
		log_error_errno(r, "libvirt event loop: cannot set events of fd %d: %m", fd);
		goto fail;
	}
	w->id = next_id();
	if (w->id < 0) {
		log_error("libvirt event loop: out of watch ids");
		goto fail;
	}
	w->ff = ff; /* only on success: libvirt frees opaque itself when the add fails */
	list_push(&ev.live, w);
	return w->id;
fail:
	sd_event_source_disable_unref(w->source);
	safe_close(w->dup_fd);
	free(w);
	return -1;
}

static void update_handle(int id, int events)
{
	struct watch *w;
	int r;

	if (!usable("update handle"))
		return;
	w = find_live(id, false);
	if (!w) {
		log_debug("libvirt event loop: update of unknown watch %d", id);
		return;
	}
	w->events = events;
	r = handle_apply_events(w);
	if (r < 0)
		log_error_errno(r, "libvirt event loop: cannot update watch %d: %m", id);
}

static int remove_handle(int id)
{
	struct watch *w;

	if (!usable("remove handle"))
		return -1;
	w = find_live(id, false);
	if (!w) {
		log_debug("libvirt event loop: removal of unknown watch %d", id);
		return -1;
	}
	bury(w);
	return 0;
}

/* ---- timeouts ---------------------------------------------------------------------------- */

/* Arm for the next expiry: frequency ms from now, at once for 0, never for -1. */
static int timeout_arm(struct watch *w)
{
	uint64_t now;
	int r;

	if (!w->source)
		return 0;
	if (w->frequency < 0)
		return sd_event_source_set_enabled(w->source, SD_EVENT_OFF);
	r = sd_event_now(ev.event, CLOCK_MONOTONIC, &now);
	if (r < 0)
		return r;
	r = sd_event_source_set_time(w->source, now + (uint64_t)w->frequency * 1000);
	if (r < 0)
		return r;
	return sd_event_source_set_enabled(w->source, SD_EVENT_ONESHOT);
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct watch *w = userdata;
	int r;

	(void)s;
	(void)usec;
	/* rearm first: the callback may update or remove the timeout */
	r = timeout_arm(w);
	if (r < 0)
		log_error_errno(r, "libvirt event loop: cannot rearm timeout %d: %m", w->id);
	w->timeout_cb(w->id, w->opaque);
	return 0;
}

static int add_timeout(int frequency, virEventTimeoutCallback cb, void *opaque, virFreeCallback ff)
{
	struct watch *w;
	int r;

	if (!usable("add timeout") || !cb)
		return -1;
	w = calloc(1, sizeof(*w));
	if (!w) {
		log_oom();
		return -1;
	}
	*w = (struct watch){.is_timeout = true,
			    .fd = -1,
			    .dup_fd = -1,
			    .frequency = frequency,
			    .timeout_cb = cb,
			    .opaque = opaque};
	/* armed for real below, before the loop can run */
	r = sd_event_add_time(ev.event, &w->source, CLOCK_MONOTONIC, 0, TIMEOUT_ACCURACY_USEC,
			      on_timeout, w);
	if (r < 0) {
		log_error_errno(r, "libvirt event loop: cannot add timeout: %m");
		goto fail;
	}
	(void)sd_event_source_set_description(w->source, "libvirt-timeout");
	r = timeout_arm(w);
	if (r < 0) {
		log_error_errno(r, "libvirt event loop: cannot arm timeout: %m");
		goto fail;
	}
	w->id = next_id();
	if (w->id < 0) {
		log_error("libvirt event loop: out of timeout ids");
		goto fail;
	}
	w->ff = ff;
	list_push(&ev.live, w);
	return w->id;
fail:
	sd_event_source_disable_unref(w->source);
	free(w);
	return -1;
}

static void update_timeout(int id, int frequency)
{
	struct watch *w;
	int r;

	if (!usable("update timeout"))
		return;
	w = find_live(id, true);
	if (!w) {
		log_debug("libvirt event loop: update of unknown timeout %d", id);
		return;
	}
	w->frequency = frequency;
	r = timeout_arm(w);
	if (r < 0)
		log_error_errno(r, "libvirt event loop: cannot update timeout %d: %m", id);
}

static int remove_timeout(int id)
{
	struct watch *w;

	if (!usable("remove timeout"))
		return -1;
	w = find_live(id, true);
	if (!w) {
		log_debug("libvirt event loop: removal of unknown timeout %d", id);
		return -1;
	}
	bury(w);
	return 0;
}

/* ---- binding ----------------------------------------------------------------------------- */

/* Records left from a previous binding stay without sources: they never fire again. */
static int bind_loop(sd_event *e)
{
	int r;

	r = sd_event_add_defer(e, &ev.reaper, on_reap, NULL);
	if (r < 0)
		return log_error_errno(r, "Failed to add libvirt event reaper: %m");
	(void)sd_event_source_set_description(ev.reaper, "libvirt-reaper");
	r = sd_event_source_set_enabled(ev.reaper, ev.graveyard ? SD_EVENT_ONESHOT : SD_EVENT_OFF);
	if (r < 0) {
		ev.reaper = sd_event_source_disable_unref(ev.reaper);
		return log_error_errno(r, "Failed to set up libvirt event reaper: %m");
	}
	ev.event = sd_event_ref(e);
	ev.thread = pthread_self();
	return 0;
}

int virt_event_register(sd_event *e)
{
	int r;

	if (!e)
		return -EINVAL;
	if (ev.event)
		return ev.event == e ? 0 : -EBUSY;
	r = bind_loop(e);
	if (r < 0)
		return r;
	if (!ev.registered) {
		if (virInitialize() < 0) {
			virt_event_unbind();
			return log_error_errno(EIO, "Failed to initialize libvirt: %s",
					       virGetLastErrorMessage());
		}
		virEventRegisterImpl(add_handle, update_handle, remove_handle, add_timeout,
				     update_timeout, remove_timeout);
		ev.registered = true;
	}
	return 0;
}

void virt_event_unbind(void)
{
	if (!ev.event)
		return;
	for (struct watch *w = ev.live; w; w = w->next) {
		w->source = sd_event_source_disable_unref(w->source);
		w->dup_fd = safe_close(w->dup_fd);
	}
	ev.reaper = sd_event_source_disable_unref(ev.reaper);
	on_reap(NULL, NULL);
	ev.event = sd_event_unref(ev.event);
}

void virt_event_counts(unsigned *ret_handles, unsigned *ret_timeouts, unsigned *ret_pending)
{
	unsigned handles = 0, timeouts = 0, pending = 0;

	for (struct watch *w = ev.live; w; w = w->next)
		if (w->is_timeout)
			timeouts++;
		else
			handles++;
	for (struct watch *w = ev.graveyard; w; w = w->next)
		pending++;
	if (ret_handles)
		*ret_handles = handles;
	if (ret_timeouts)
		*ret_timeouts = timeouts;
	if (ret_pending)
		*ret_pending = pending;
}
