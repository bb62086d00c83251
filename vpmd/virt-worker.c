// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "json-util.h"
#include "log.h"
#include "parse-util.h"
#include "virt-event.h"
#include "virt-worker.h"

#define STATUS_REFRESH_USEC USEC_PER_SEC

enum msg_kind {
	/* thread -> main */
	MSG_CHANGED,
	MSG_REMOVED,
	MSG_CONNECTION,
	/* main -> thread */
	MSG_SET_POLICY,
};

struct msg {
	struct msg *next;
	enum msg_kind kind;
	struct virt_domain dom; /* CHANGED: owned copies of info and problem */
	char uuid[37];          /* REMOVED, SET_POLICY */
	char *name;             /* REMOVED */
	char *why;              /* CHANGED */
	bool connected;         /* CONNECTION */
	bool has_policy;        /* SET_POLICY */
	struct domain_policy policy;
};

/* A queue one side fills and the other drains, woken through an eventfd. */
struct queue {
	pthread_mutex_t lock;
	struct msg *head, **tail;
	int efd;
};

struct virt_worker {
	sd_event *main;
	const struct virt_ops *ops;
	void *userdata;
	char *uri;
	pthread_t thread;
	bool started;
	int ready_error; /* the thread's set-up result */
	sd_event *loop;  /* the thread's */
	struct virt *virt;
	struct queue to_main, to_thread;
	sd_event_source *main_source, *thread_source, *refresh;
	pthread_mutex_t status_lock;
	char *status; /* JSON text */
	pthread_mutex_t ready_lock;
	pthread_cond_t ready_cond;
	bool ready;
	bool quit;  /* atomic: the thread is to end */
	bool ended; /* atomic: the thread's loop has ended; requests go nowhere */
};

/* ---- queues ----------------------------------------------------------------------------- */

static int queue_init(struct queue *q)
{
	pthread_mutex_init(&q->lock, NULL);
	q->head = NULL;
	q->tail = &q->head;
	q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return q->efd < 0 ? -errno : 0;
}

static void msg_free(struct msg *m)
{
	if (!m)
		return;
	domain_info_free(m->dom.info);
	free(m->dom.problem);
	free(m->name);
	free(m->why);
	free(m);
}

static void queue_push(struct queue *q, struct msg *m)
{
	uint64_t one = 1;

	pthread_mutex_lock(&q->lock);
	m->next = NULL;
	*q->tail = m;
	q->tail = &m->next;
	pthread_mutex_unlock(&q->lock);
	(void)!write(q->efd, &one, sizeof(one));
}

/* Everything queued so far, in order. */
static struct msg *queue_take(struct queue *q)
{
	struct msg *m;
	uint64_t n;

	(void)!read(q->efd, &n, sizeof(n));
	pthread_mutex_lock(&q->lock);
	m = q->head;
	q->head = NULL;
	q->tail = &q->head;
	pthread_mutex_unlock(&q->lock);
	return m;
}

static void queue_destroy(struct queue *q)
{
	struct msg *m = q->head;

	while (m) {
		struct msg *next = m->next;

		msg_free(m);
		m = next;
	}
	safe_close(q->efd);
	pthread_mutex_destroy(&q->lock);
}

/* ---- on the thread ---------------------------------------------------------------------- */

static void refresh_status(struct virt_worker *w)
{
	_cleanup_json_ struct json_object *o = w->virt ? virt_status_json(w->virt) : NULL;
	char *text = o ? strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) : NULL;

	if (!text)
		return;
	pthread_mutex_lock(&w->status_lock);
	free(w->status);
	w->status = text;
	pthread_mutex_unlock(&w->status_lock);
}

static void on_changed(void *userdata, const struct virt_domain *d, const char *why)
{
	struct virt_worker *w = userdata;
	struct msg *m = calloc(1, sizeof(*m));

	if (!m || domain_info_dup(d->info, &m->dom.info) < 0 ||
	    (d->problem && !(m->dom.problem = strdup(d->problem))) || !(m->why = strdup(why))) {
		msg_free(m);
		log_warning("libvirt: out of memory: a change of domain '%s' is lost",
			    d->info->name);
		return;
	}
	m->kind = MSG_CHANGED;
	m->dom.state = d->state;
	m->dom.id = d->id;
	m->dom.persistent = d->persistent;
	m->dom.stale = d->stale;
	queue_push(&w->to_main, m);
	refresh_status(w);
}

static void on_removed(void *userdata, const char *uuid, const char *name)
{
	struct virt_worker *w = userdata;
	struct msg *m = calloc(1, sizeof(*m));

	if (!m || !(m->name = strdup(name))) {
		msg_free(m);
		log_warning("libvirt: out of memory: the removal of domain '%s' is lost", name);
		return;
	}
	m->kind = MSG_REMOVED;
	snprintf(m->uuid, sizeof(m->uuid), "%s", uuid);
	queue_push(&w->to_main, m);
	refresh_status(w);
}

static void on_connection(void *userdata, bool connected)
{
	struct virt_worker *w = userdata;
	struct msg *m = calloc(1, sizeof(*m));

	refresh_status(w);
	if (!m)
		return;
	m->kind = MSG_CONNECTION;
	m->connected = connected;
	queue_push(&w->to_main, m);
}

static int on_requests(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct virt_worker *w = userdata;
	struct msg *m = queue_take(&w->to_thread);

	(void)s;
	(void)fd;
	(void)revents;
	while (m) {
		struct msg *next = m->next;
		char err[512] = "";

		if (m->kind == MSG_SET_POLICY && w->virt &&
			 virt_set_policy(w->virt, m->uuid, m->has_policy ? &m->policy : NULL, err,
					 sizeof(err)) < 0)
			log_warning("libvirt: the policy of domain %s was not written to its "
				    "metadata: %s",
				    m->uuid, err);
		msg_free(m);
		m = next;
	}
	/* after the requests queued before it: a set-ratio just before a stop is written */
	if (__atomic_load_n(&w->quit, __ATOMIC_ACQUIRE)) {
		/* closed while the loop runs: libvirt's free callbacks need it */
		w->virt = virt_free(w->virt);
		(void)sd_event_exit(w->loop, 0);
	}
	return 0;
}

static int on_refresh(sd_event_source *s, uint64_t usec, void *userdata)
{
	(void)usec;
	refresh_status(userdata);
	return sd_event_source_set_time_relative(s, STATUS_REFRESH_USEC);
}

static void signal_ready(struct virt_worker *w, int r)
{
	pthread_mutex_lock(&w->ready_lock);
	w->ready_error = r;
	w->ready = true;
	pthread_cond_signal(&w->ready_cond);
	pthread_mutex_unlock(&w->ready_lock);
}

static int thread_setup(struct virt_worker *w)
{
	static const struct virt_ops ops = {
		.domain_changed = on_changed,
		.domain_removed = on_removed,
		.connection_changed = on_connection,
	};
	int r;

	r = sd_event_new(&w->loop);
	if (r < 0)
		return r;
	r = sd_event_add_io(w->loop, &w->thread_source, w->to_thread.efd, EPOLLIN, on_requests,
			    w);
	if (r < 0)
		return r;
	r = sd_event_add_time_relative(w->loop, &w->refresh, CLOCK_MONOTONIC, STATUS_REFRESH_USEC,
				       0, on_refresh, w);
	if (r < 0)
		return r;
	r = sd_event_source_set_enabled(w->refresh, SD_EVENT_ON);
	if (r < 0)
		return r;
	r = virt_event_register(w->loop);
	if (r < 0)
		return r;
	r = virt_new(w->loop, w->uri, &ops, w, &w->virt);
	if (r < 0)
		return r;
	refresh_status(w);
	return 0;
}

static void *worker_main(void *userdata)
{
	struct virt_worker *w = userdata;
	int r = thread_setup(w);

	signal_ready(w, r);
	if (r >= 0)
		r = sd_event_loop(w->loop);
	if (r < 0 && !__atomic_load_n(&w->quit, __ATOMIC_ACQUIRE)) {
		/* the thread ends on its own: the main loop must not think libvirt is followed */
		log_error_errno(r, "libvirt: the connection's event loop failed: %m; libvirt's VMs "
				   "are no longer followed until vpmd restarts");
		on_connection(w, false);
	}
	__atomic_store_n(&w->ended, true, __ATOMIC_RELEASE);
	w->virt = virt_free(w->virt);
	virt_event_unbind();
	w->thread_source = sd_event_source_disable_unref(w->thread_source);
	w->refresh = sd_event_source_disable_unref(w->refresh);
	w->loop = sd_event_unref(w->loop);
	return NULL;
}

/* ---- on the main thread ----------------------------------------------------------------- */

static int on_reports(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct virt_worker *w = userdata;
	struct msg *m = queue_take(&w->to_main);

	(void)s;
	(void)fd;
	(void)revents;
	while (m) {
		struct msg *next = m->next;

		switch (m->kind) {
		case MSG_CHANGED:
			if (w->ops->domain_changed)
				w->ops->domain_changed(w->userdata, &m->dom, m->why);
			break;
		case MSG_REMOVED:
			if (w->ops->domain_removed)
				w->ops->domain_removed(w->userdata, m->uuid, m->name);
			break;
		case MSG_CONNECTION:
			if (w->ops->connection_changed)
				w->ops->connection_changed(w->userdata, m->connected);
			break;
		case MSG_SET_POLICY:
			break;
		}
		msg_free(m);
		m = next;
	}
	return 0;
}

int virt_worker_set_policy(struct virt_worker *w, const char *uuid, const struct domain_policy *p)
{
	struct msg *m;

	if (__atomic_load_n(&w->ended, __ATOMIC_ACQUIRE))
		return -ENOTCONN;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->kind = MSG_SET_POLICY;
	snprintf(m->uuid, sizeof(m->uuid), "%s", uuid);
	m->has_policy = p != NULL;
	if (p)
		m->policy = *p;
	queue_push(&w->to_thread, m);
	return 0;
}

struct json_object *virt_worker_status_json(struct virt_worker *w)
{
	struct json_object *o = NULL;

	pthread_mutex_lock(&w->status_lock);
	if (w->status)
		o = json_tokener_parse(w->status);
	pthread_mutex_unlock(&w->status_lock);
	if (o)
		return o;
	o = json_object_new_object();
	if (o && (json_add(o, "uri", json_object_new_string(w->uri)) < 0 ||
		  json_add(o, "connected", json_object_new_boolean(false)) < 0)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int virt_worker_new(sd_event *main, const char *uri, const struct virt_ops *ops, void *userdata,
		    struct virt_worker **ret)
{
	struct virt_worker *w = calloc(1, sizeof(*w));
	sigset_t all, old;
	int r;

	if (!w)
		return -ENOMEM;
	w->main = main;
	w->ops = ops;
	w->userdata = userdata;
	w->to_main.efd = w->to_thread.efd = -1;
	pthread_mutex_init(&w->status_lock, NULL);
	pthread_mutex_init(&w->ready_lock, NULL);
	pthread_cond_init(&w->ready_cond, NULL);
	w->uri = strdup(uri);
	if (!w->uri || queue_init(&w->to_main) < 0 || queue_init(&w->to_thread) < 0) {
		virt_worker_free(w);
		return -ENOMEM;
	}
	r = sd_event_add_io(main, &w->main_source, w->to_main.efd, EPOLLIN, on_reports, w);
	if (r < 0) {
		virt_worker_free(w);
		return r;
	}
	/* the thread takes no signals: they are the main loop's (signalfd) */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&w->thread, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		virt_worker_free(w);
		return r;
	}
	w->started = true;
	pthread_mutex_lock(&w->ready_lock);
	while (!w->ready)
		pthread_cond_wait(&w->ready_cond, &w->ready_lock);
	pthread_mutex_unlock(&w->ready_lock);
	if (w->ready_error < 0) {
		r = w->ready_error;
		virt_worker_free(w);
		return r;
	}
	*ret = w;
	return 0;
}

struct virt_worker *virt_worker_free(struct virt_worker *w)
{
	if (!w)
		return NULL;
	if (w->started) {
		uint64_t one = 1;

		/* the loop is the thread's (sd-event is not thread-safe): ask it to stop */
		__atomic_store_n(&w->quit, true, __ATOMIC_RELEASE);
		(void)!write(w->to_thread.efd, &one, sizeof(one));
		pthread_join(w->thread, NULL);
	}
	sd_event_source_disable_unref(w->main_source);
	queue_destroy(&w->to_main);
	queue_destroy(&w->to_thread);
	free(w->status);
	free(w->uri);
	pthread_mutex_destroy(&w->status_lock);
	pthread_mutex_destroy(&w->ready_lock);
	pthread_cond_destroy(&w->ready_cond);
	free(w);
	return NULL;
}
