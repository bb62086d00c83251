// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "domain-xml.h"
#include "engine.h"
#include "json-util.h"
#include "log.h"
#include "parse-util.h"
#include "pm-layout.h"
#include "policy.h"
#include "backend/kvm/kvm-backend.h"
#include "virt-vms.h"
#include "virt-worker.h"
#include "virt.h"

#define VM_NAME_MAX 64 /* as the engine's */
/* where libvirt's qemu driver (qemu:///system) keeps each running domain's QEMU pid */
#define LIBVIRT_QEMU_RUN_DIR "/run/libvirt/qemu"
/* a sim guest for a libvirt VM runs until its VM stops: a year is "until stopped" */
#define GUEST_SECONDS "31536000"
/* it paces its operations like a guest that also does other work, not one that only writes PM */
#define GUEST_PACE_USEC "50"

struct vdev {
	enum domain_pmdev_model model;
	char alias[32];
	uint64_t size, label_size, base;
	bool has_base, servable;
};

struct vvm {
	struct vvm *next;
	struct virt_vms *owner;
	char name[VM_NAME_MAX];
	char uuid[37];
	uint64_t pages; /* of the devices vpmd can serve */
	bool has_policy;
	struct domain_policy policy;
	char *problem;        /* the first device vpmd cannot serve, and why */
	struct vdev *devs;    /* the VM's PM devices as libvirt describes them */
	unsigned n_devs;
	const char *lv_state; /* libvirt's, or NULL when only a hook told of the VM */
	pid_t guest;          /* its vpm-simguest, or 0 */
	bool own_child;       /* started by this vpmd (to be reaped) */
	sd_event_source *guest_exit;
	sd_event_source *retry; /* start the guest again once the old one is gone */
	bool wanted;          /* the VM runs: it is to have a sim guest */
	bool hooked;          /* libvirt's hooks speak for it: they start and stop its service */
};

struct virt_vms {
	sd_event *event;
	bool connected; /* to libvirt, as the worker last said */
	struct engine *en;
	struct virt_worker *worker; /* the connection to libvirt, on its own thread */
	char *state_dir;
	char *guest_dir;
	char *simguest;  /* path of vpm-simguest; NULL: no sim guests */
	bool kvm;        /* the kvm backend serves libvirt's VMs (their QEMU's KVM VM) */
	struct vvm *vms;
	size_t n_vms;
	bool warned_full;
};

/* ---- the VM table ------------------------------------------------------------------------ */

static struct vvm *find_vvm(struct virt_vms *vv, const char *name)
{
	for (struct vvm *v = vv->vms; v; v = v->next)
		if (streq(v->name, name))
			return v;
	return NULL;
}

static struct vvm *get_vvm(struct virt_vms *vv, const char *name)
{
	struct vvm *v = find_vvm(vv, name);

	if (v)
		return v;
	if (strlen(name) >= VM_NAME_MAX)
		return NULL;
	if (vv->n_vms >= VIRT_VMS_MAX) {
		if (!vv->warned_full)
			log_warning("More than %d VMs with PM: VM '%s' and later ones are not served",
				    VIRT_VMS_MAX, name);
		vv->warned_full = true;
		return NULL;
	}
	v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->owner = vv;
	domain_policy_init(&v->policy);
	v->next = vv->vms;
	vv->vms = v;
	vv->n_vms++;
	return v;
}

static void drop_vvm(struct virt_vms *vv, struct vvm *v)
{
	for (struct vvm **p = &vv->vms; *p; p = &(*p)->next)
		if (*p == v) {
			*p = v->next;
			break;
		}
	sd_event_source_disable_unref(v->guest_exit);
	sd_event_source_disable_unref(v->retry);
	free(v->devs);
	free(v->problem);
	free(v);
	vv->n_vms--;
}

/* Pages of the devices vpmd can serve (their guest-visible part), and the first problem. */
static uint64_t servable_pages(const struct domain_info *d, const char **ret_problem)
{
	uint64_t bytes = 0;

	*ret_problem = NULL;
	for (unsigned i = 0; i < d->n_pmdevs; i++) {
		const struct domain_pmdev *p = &d->pmdevs[i];

		if (p->problem) {
			if (!*ret_problem)
				*ret_problem = p->problem;
			continue;
		}
		bytes += p->size - p->label_size;
	}
	return bytes / PM_PAGE_SIZE;
}

static bool policies_equal(const struct domain_policy *a, const struct domain_policy *b)
{
	return a->has_ratio == b->has_ratio && (!a->has_ratio || a->ratio == b->ratio) &&
	       a->mode == b->mode && a->policy == b->policy && a->priority == b->priority &&
	       a->epoch_interval == b->epoch_interval;
}

/* What the policy sets overrides s; the rest of s stays. */
static void overlay_policy(const struct domain_policy *p, struct engine_settings *s)
{
	if (p->has_ratio) {
		s->set_ratio = true;
		s->ratio = p->ratio;
	}
	if (p->mode >= 0)
		s->mode = p->mode;
	if (p->policy >= 0)
		s->policy = p->policy;
	if (p->priority >= 0)
		s->priority = p->priority;
	if (p->epoch_interval) {
		s->epoch_usec = p->epoch_interval;
		s->reset_epoch = false;
	}
}

/* The policy as a change of settings: what it leaves out stays unchanged. */
static void policy_to_settings(const struct domain_policy *p, struct engine_settings *s)
{
	*s = (struct engine_settings){ .mode = -1, .policy = -1, .priority = -1 };
	overlay_policy(p, s);
}

static void learn_devices(struct vvm *v, const struct domain_info *d)
{
	struct vdev *n = calloc(MAX(d->n_pmdevs, 1u), sizeof(*n));

	if (!n)
		return; /* keep the last ones */
	for (unsigned i = 0; i < d->n_pmdevs; i++) {
		const struct domain_pmdev *p = &d->pmdevs[i];

		n[i] = (struct vdev){ .model = p->model, .size = p->size,
				      .label_size = p->label_size, .base = p->base,
				      .has_base = p->has_base, .servable = !p->problem };
		snprintf(n[i].alias, sizeof(n[i].alias), "%s", p->alias ? p->alias : "");
	}
	free(v->devs);
	v->devs = n;
	v->n_devs = d->n_pmdevs;
}

/* Take what the domain XML says; returns whether the VM's policy changed. */
static bool learn(struct vvm *v, const struct domain_info *d)
{
	struct domain_policy none;
	const struct domain_policy *p = &d->policy;
	const char *problem;
	bool changed;

	domain_policy_init(&none);
	if (!d->has_policy)
		p = &none;
	changed = v->has_policy != d->has_policy || !policies_equal(&v->policy, p);
	v->has_policy = d->has_policy;
	v->policy = *p;
	snprintf(v->uuid, sizeof(v->uuid), "%s", d->uuid);
	v->pages = servable_pages(d, &problem);
	free(v->problem);
	v->problem = problem ? strdup(problem) : NULL;
	learn_devices(v, d);
	return changed;
}

/* ---- sim guests ------------------------------------------------------------------------- */

static int pid_file(struct virt_vms *vv, const struct vvm *v, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s.pid", vv->guest_dir, v->name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void ensure_guest(struct virt_vms *vv, struct vvm *v);

/* Nothing refers to the VM any more: neither libvirt, nor a reservation, nor a guest. */
static void drop_if_forgotten(struct virt_vms *vv, struct vvm *v)
{
	if (!v->lv_state && !v->guest && !v->wanted && !(vv->en && engine_reserved(vv->en, v->name)))
		drop_vvm(vv, v);
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct vvm *v = userdata;

	(void)usec;
	(void)s;
	v->retry = sd_event_source_disable_unref(v->retry);
	if (v->wanted)
		ensure_guest(v->owner, v);
	return 0;
}

/* The old guest's detach reaches the engine through its socket: give it a moment. */
static void retry_guest_soon(struct virt_vms *vv, struct vvm *v)
{
	if (!v->retry)
		(void)sd_event_add_time_relative(vv->event, &v->retry, CLOCK_MONOTONIC,
						 200 * USEC_PER_MSEC, 0, on_retry, v);
}

static int on_guest_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct vvm *v = userdata;
	struct virt_vms *vv = v->owner;
	char path[PATH_MAX];
	int status = 0;

	(void)s;
	(void)fd;
	(void)revents;
	if (v->own_child && waitpid(v->guest, &status, WNOHANG) > 0 &&
	    !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		log_warning("VM '%s': its sim guest (pid %d) ended with %s %d", v->name,
			    (int)v->guest, WIFEXITED(status) ? "status" : "signal",
			    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	else
		log_info("VM '%s': its sim guest (pid %d) ended", v->name, (int)v->guest);
	if (pid_file(vv, v, path, sizeof(path)) == 0)
		(void)unlink(path);
	v->guest = 0;
	v->guest_exit = sd_event_source_disable_unref(v->guest_exit);
	if (v->wanted)
		/* the VM runs again (a restart while the old guest committed its last epoch) */
		retry_guest_soon(vv, v);
	else
		drop_if_forgotten(vv, v);
	return 0;
}

static int watch_guest(struct virt_vms *vv, struct vvm *v, pid_t pid, bool own)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0), r;

	if (fd < 0)
		return -errno;
	r = sd_event_add_io(vv->event, &v->guest_exit, fd, EPOLLIN, on_guest_exit, v);
	if (r < 0) {
		close(fd);
		return r;
	}
	(void)sd_event_source_set_io_fd_own(v->guest_exit, true);
	v->guest = pid;
	v->own_child = own;
	return 0;
}

/* Whether process pid runs with "-n name" (a pid file can outlive a reboot). */
static bool guest_serves(long pid, const char *name)
{
	char path[64], buf[4096];
	_cleanup_close_ int fd = -1;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (n = read(fd, buf, sizeof(buf) - 1)) <= 0)
		return false;
	buf[n] = '\0';
	for (char *a = buf; a < buf + n; a += strlen(a) + 1)
		if (streq(a, "-n") && a + 3 < buf + n)
			return streq(a + 3, name);
	return false;
}

/* A sim guest a previous vpmd started for the VM, still running: adopt it. */
static bool adopt_guest(struct virt_vms *vv, struct vvm *v)
{
	char path[PATH_MAX], comm[64] = "", proc[64];
	_cleanup_fclose_ FILE *f = NULL, *c = NULL;
	long pid;

	if (pid_file(vv, v, path, sizeof(path)) < 0 || !(f = fopen(path, "re")))
		return false;
	if (fscanf(f, "%ld", &pid) != 1 || pid <= 1 || pid > INT_MAX)
		return false;
	snprintf(proc, sizeof(proc), "/proc/%ld/comm", pid);
	c = fopen(proc, "re");
	if (!c || !fgets(comm, sizeof(comm), c) || strncmp(comm, "vpm-simguest", 12) != 0 ||
	    !guest_serves(pid, v->name)) {
		(void)unlink(path); /* stale: another process has the pid now */
		return false;
	}
	if (watch_guest(vv, v, (pid_t)pid, false) < 0)
		return false;
	log_info("VM '%s': adopted its running sim guest (pid %ld)", v->name, pid);
	return true;
}

static void exec_guest(struct virt_vms *vv, const struct vvm *v, const char *log_path)
{
	char pages[32], seed[32], ratio[32], sock[PATH_MAX];
	const char *argv[32];
	sigset_t none;
	size_t n = 0;
	int fd;

	(void)setsid(); /* not in vpmd's process group or session: it outlives vpmd */
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd >= 0) {
		(void)dup2(fd, STDOUT_FILENO);
		(void)dup2(fd, STDERR_FILENO);
	}
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		(void)dup2(fd, STDIN_FILENO);
	snprintf(sock, sizeof(sock), "%s/sim.sock", vv->state_dir);
	snprintf(pages, sizeof(pages), "%" PRIu64, v->pages);
	snprintf(seed, sizeof(seed), "%u", (unsigned)strlen(v->name) * 2654435761u + 7);
	argv[n++] = vv->simguest;
	argv[n++] = "-s";
	argv[n++] = sock;
	argv[n++] = "-n";
	argv[n++] = v->name;
	argv[n++] = "-p";
	argv[n++] = pages;
	argv[n++] = "-c";
	argv[n++] = "1";
	argv[n++] = "-S";
	argv[n++] = seed;
	argv[n++] = "-d";
	argv[n++] = GUEST_SECONDS;
	argv[n++] = "-i";
	argv[n++] = GUEST_PACE_USEC;
	if (v->has_policy && v->policy.has_ratio) {
		snprintf(ratio, sizeof(ratio), "%.17g", v->policy.ratio);
		argv[n++] = "-r";
		argv[n++] = ratio;
	}
	if (v->has_policy && v->policy.mode >= 0) {
		argv[n++] = "-m";
		argv[n++] = vm_mode_to_string((enum vm_mode)v->policy.mode);
	}
	if (v->has_policy && v->policy.policy >= 0) {
		argv[n++] = "-P";
		argv[n++] = policy_kind_to_string((enum policy_kind)v->policy.policy);
	}
	argv[n] = NULL;
	execv(vv->simguest, (char *const *)argv);
	fprintf(stderr, "vpmd: cannot run '%s': %s\n", vv->simguest, strerror(errno));
	_exit(127);
}

/* ---- KVM VMs ---------------------------------------------------------------------------- */

/* The one device the kvm backend serves of a VM (KVM takes one vPM range per VM), or NULL. */
static const struct vdev *kvm_device(const struct vvm *v, char *errbuf, size_t errlen)
{
	const struct vdev *dev = NULL;

	for (unsigned i = 0; i < v->n_devs; i++) {
		if (!v->devs[i].servable)
			continue;
		if (dev || v->devs[i].model != DOMAIN_PMDEV_NVDIMM) {
			snprintf(errbuf, errlen, "the kvm backend serves one nvdimm per VM; VM '%s' "
						 "has %s",
				 v->name, dev ? "more than one PM device" : "a virtio-pmem device");
			return NULL;
		}
		dev = &v->devs[i];
	}
	if (!dev)
		snprintf(errbuf, errlen, "VM '%s' has no PM device vpmd can serve", v->name);
	return dev;
}

/* Can the kvm backend serve v once it runs? (The base address comes only then.) */
static int kvm_check(const struct vvm *v, char *errbuf, size_t errlen)
{
	if (!kvm_device(v, errbuf, errlen))
		return -EINVAL;
	if (!kvm_backend_host_has_vpm()) {
		snprintf(errbuf, errlen, "this host's KVM has no VPM support (KVM_CAP_VPM): install "
					 "the patched KVM modules (kvm-patch/install-modules.sh)");
		return -EOPNOTSUPP;
	}
	return 0;
}

static int read_qemu_pid(const char *name, pid_t *ret)
{
	char path[PATH_MAX];
	_cleanup_fclose_ FILE *f = NULL;
	int pid;

	snprintf(path, sizeof(path), "%s/%s.pid", LIBVIRT_QEMU_RUN_DIR, name);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	if (fscanf(f, "%d", &pid) != 1 || pid <= 0)
		return -EBADMSG;
	*ret = pid;
	return 0;
}

/* The VM runs under QEMU with KVM: vpmd takes its VM over (kvm backend). */
static int attach_kvm(struct virt_vms *vv, struct vvm *v, char *errbuf, size_t errlen)
{
	struct kvm_attach_request req = { .name = v->name };
	const struct vdev *dev;
	int r;

	if (engine_vm_attached(vv->en, v->name))
		return 0; /* taken over at vpmd's start, or attached already */
	dev = kvm_device(v, errbuf, errlen);
	if (!dev)
		return -EINVAL;
	if (!dev->has_base) {
		snprintf(errbuf, errlen, "VM '%s': libvirt gives no base address of its nvdimm",
			 v->name);
		return -ENODATA;
	}
	r = read_qemu_pid(v->name, &req.pid);
	if (r < 0) {
		snprintf(errbuf, errlen, "VM '%s': no QEMU pid in %s/%s.pid: %s", v->name,
			 LIBVIRT_QEMU_RUN_DIR, v->name, strerror(-r));
		return r;
	}
	/* the guest sees the nvdimm less its label area, from the base on */
	req.gpa = dev->base;
	req.size = dev->size - dev->label_size;
	return engine_attach_kvm(vv->en, &req, errbuf, errlen);
}

/* The VM runs: make sure a sim guest serves it. */
static void ensure_guest(struct virt_vms *vv, struct vvm *v)
{
	char log_path[PATH_MAX], path[PATH_MAX];
	_cleanup_fclose_ FILE *f = NULL;
	pid_t pid;
	int r;

	if (vv->kvm) {
		/*
		 * Only the started hook attaches a KVM VM, before its vCPUs run: a running guest
		 * may have written to QEMU's pages, which vpmd's frames would replace.
		 */
		if (vv->en && !engine_vm_attached(vv->en, v->name) && !v->hooked)
			log_notice("VM '%s' runs, started without vpmd's hook: its PM is QEMU's own "
				   "until it is started again",
				   v->name);
		return;
	}
	if (!vv->en || !vv->simguest || v->guest || v->pages < 4)
		return;
	/* a guest that re-attached on its own is one to adopt, not to start again */
	if (adopt_guest(vv, v) || engine_vm_attached(vv->en, v->name))
		return;
	if (snprintf(log_path, sizeof(log_path), "%s/%s.log", vv->guest_dir, v->name) >=
		    (int)sizeof(log_path) ||
	    pid_file(vv, v, path, sizeof(path)) < 0)
		return;
	pid = fork();
	if (pid < 0) {
		log_warning_errno(errno, "VM '%s': cannot start its sim guest: %m", v->name);
		return;
	}
	if (pid == 0)
		exec_guest(vv, v, log_path);
	r = watch_guest(vv, v, pid, true);
	if (r < 0) {
		log_warning_errno(r, "VM '%s': cannot watch its sim guest (pid %d): %m", v->name,
				  (int)pid);
		(void)kill(pid, SIGTERM);
		(void)waitpid(pid, NULL, 0);
		return;
	}
	f = fopen(path, "we");
	if (f)
		fprintf(f, "%d\n", (int)pid);
	log_info("VM '%s': started its sim guest (pid %d, %" PRIu64 " pages, log %s)", v->name,
		 (int)pid, v->pages, log_path);
}

/* The VM stopped: its sim guest commits what it holds and ends (detaching cleanly). */
static bool stop_guest(struct vvm *v)
{
	if (!v->guest)
		return false;
	log_info("VM '%s': stopping its sim guest (pid %d)", v->name, (int)v->guest);
	(void)kill(v->guest, SIGTERM);
	return true;
}

/* ---- libvirt's view --------------------------------------------------------------------- */

static void apply_policy(struct virt_vms *vv, struct vvm *v)
{
	_cleanup_json_ struct json_object *o = NULL;
	struct engine_settings s;
	char err[512] = "";
	int r;

	if (!vv->en || !engine_vm_attached(vv->en, v->name))
		return;
	/* the metadata is the VM's setting: what it leaves out is vpmd.conf's */
	engine_default_settings(vv->en, &s);
	if (v->has_policy)
		overlay_policy(&v->policy, &s);
	r = engine_vm_set(vv->en, v->name, &s, &o, err, sizeof(err));
	if (r < 0)
		log_warning("VM '%s': the policy in its domain metadata cannot apply: %s", v->name,
			    err[0] ? err : strerror(-r));
}

static bool is_running(enum virt_dom_state s)
{
	return s == VIRT_DOM_RUNNING || s == VIRT_DOM_PAUSED;
}

static void on_domain_changed(void *userdata, const struct virt_domain *d, const char *why)
{
	struct virt_vms *vv = userdata;
	struct vvm *v = find_vvm(vv, d->info->name);
	bool changed;

	if (d->info->n_pmdevs == 0) {
		if (v && !v->guest)
			drop_vvm(vv, v);
		return;
	}
	if (!v && !(v = get_vvm(vv, d->info->name)))
		return;
	changed = learn(v, d->info);
	v->lv_state = virt_dom_state_to_string(d->state);
	log_debug("libvirt: VM '%s' %s (%s)", v->name, why, v->lv_state);
	if (v->problem)
		log_warning("VM '%s': %s", v->name, v->problem);
	if (changed)
		apply_policy(vv, v);
	/*
	 * What the connection reports is a snapshot that may predate a hook that ran meanwhile
	 * (libvirt holds the domain while its hooks run): once libvirt's hooks speak for a VM,
	 * they alone start and stop its service; the events keep the view current.
	 */
	if (v->hooked)
		return;
	v->wanted = is_running(d->state);
	if (v->wanted)
		ensure_guest(vv, v);
	else {
		stop_guest(v);
		if (vv->en)
			(void)engine_release(vv->en, v->name);
	}
}

static void on_domain_removed(void *userdata, const char *uuid, const char *name)
{
	struct virt_vms *vv = userdata;
	struct vvm *v = find_vvm(vv, name);

	(void)uuid;
	if (!v)
		return;
	v->lv_state = NULL;
	if (!v->hooked) {
		v->wanted = false;
		stop_guest(v);
		if (vv->en)
			(void)engine_release(vv->en, v->name);
	}
	drop_if_forgotten(vv, v);
}

static void on_connection_changed(void *userdata, bool connected)
{
	struct virt_vms *vv = userdata;

	vv->connected = connected;
	log_info("libvirt: %s", connected ? "connected, domains in sync" : "connection lost");
}

static bool settings_of(void *userdata, const char *name, struct engine_settings *s)
{
	struct vvm *v = find_vvm(userdata, name);

	if (!v || !v->has_policy)
		return false;
	policy_to_settings(&v->policy, s);
	return true;
}

/* ---- hooks ------------------------------------------------------------------------------ */

static int hook_result(struct json_object **ret, const char *action, const char *fmt, ...)
	_printf_(3, 4);
static int hook_result(struct json_object **ret, const char *action, const char *fmt, ...)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!o || json_add(o, "action", json_object_new_string(action)) < 0 ||
	    json_add(o, "message", json_object_new_string(msg)) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(o);
	return 0;
}

static int hook_prepare(struct virt_vms *vv, struct vvm *v, struct json_object **ret,
			char *errbuf, size_t errlen)
{
	struct engine_settings s;
	char err[512] = "";
	int r;

	if (v->problem && v->has_policy) {
		snprintf(errbuf, errlen, "VM '%s' has a VPM policy but %s", v->name, v->problem);
		return -EINVAL;
	}
	if (v->pages == 0)
		return hook_result(ret, "none", "VM '%s': no PM device vpmd can serve%s%s",
				   v->name, v->problem ? ": " : "", v->problem ? v->problem : "");
	if (!vv->en) {
		if (!v->has_policy)
			return hook_result(ret, "none", "VM '%s': vpmd has no formatted pool; its "
							"PM is not managed",
					   v->name);
		snprintf(errbuf, errlen, "VM '%s' has a VPM policy but vpmd has no formatted pool; "
					 "format one with 'vpmd --init-pool NAME'",
			 v->name);
		return -ENODEV;
	}
	if (vv->kvm) {
		r = kvm_check(v, err, sizeof(err));
		if (r < 0 && v->has_policy) {
			snprintf(errbuf, errlen, "VM '%s' has a VPM policy but %s", v->name, err);
			return r;
		}
		if (r < 0)
			return hook_result(ret, "none", "VM '%s': its PM is not managed: %s", v->name,
					   err);
	}
	policy_to_settings(&v->policy, &s); /* without a policy, v->policy sets nothing */
	r = engine_reserve(vv->en, v->name, v->pages, &s, err, sizeof(err));
	if (r < 0) {
		snprintf(errbuf, errlen, "VM '%s' cannot start: %s", v->name, err);
		return r;
	}
	return hook_result(ret, "reserved", "VM '%s': %" PRIu64 " pages of PM reserved", v->name,
			   v->pages);
}

/* stopped, release: what the VM held goes; idempotent */
static int hook_stop(struct virt_vms *vv, struct vvm *v, const char *op, struct json_object **ret)
{
	bool held, released = streq(op, "release");
	char name[VM_NAME_MAX];
	int r;

	v->wanted = false;
	held = stop_guest(v);
	held |= vv->en && engine_release(vv->en, v->name);
	if (!vv->connected && v->lv_state)
		v->lv_state = "shutoff"; /* nobody else tells */
	snprintf(name, sizeof(name), "%s", v->name);
	if (released && !vv->connected)
		v->lv_state = NULL; /* known from hooks only: forgotten once it is all gone */
	if (released)
		drop_if_forgotten(vv, v);
	if (!held)
		return hook_result(ret, "none", "VM '%s': nothing held", name);
	r = hook_result(ret, streq(op, "stopped") ? "detached" : "released", "VM '%s': released",
			name);
	return r;
}

int virt_vms_hook(struct virt_vms *vv, const char *domain, const char *op, const char *subop,
		  const char *xml, struct json_object **ret, char *errbuf, size_t errlen)
{
	_cleanup_(domain_info_freep) struct domain_info *d = NULL;
	bool stopping;
	struct vvm *v;
	char err[512] = "";
	int r;

	(void)subop;
	if (!streq(op, "prepare") && !streq(op, "started") && !streq(op, "stopped") &&
	    !streq(op, "release") && !streq(op, "reconnect"))
		return hook_result(ret, "none", "VM '%.64s': nothing to do at '%.32s'", domain, op);
	stopping = streq(op, "stopped") || streq(op, "release");
	r = domain_xml_parse(xml, strlen(xml), &d, err, sizeof(err));
	if (r < 0) {
		snprintf(errbuf, errlen, "VM '%.64s': its domain XML cannot be read: %s", domain,
			 err);
		/* a stop never fails for vpmd's sake, and what the VM held goes by its name */
		v = stopping ? find_vvm(vv, domain) : NULL;
		if (v)
			return hook_stop(vv, v, op, ret);
		if (stopping)
			return hook_result(ret, "none", "%s", errbuf);
		return r;
	}
	if (!streq(d->name, domain)) {
		snprintf(errbuf, errlen, "the hook names VM '%.64s' but its XML is of '%.64s'", domain,
			 d->name);
		return -EINVAL;
	}
	v = find_vvm(vv, d->name);
	if (!v && d->n_pmdevs == 0)
		return hook_result(ret, "none", "VM '%.64s' has no PM device", d->name);
	if (!v && !(v = get_vvm(vv, d->name))) {
		if (strlen(d->name) >= VM_NAME_MAX && d->has_policy && !stopping) {
			snprintf(errbuf, errlen, "VM '%.64s...' has a VPM policy but its name is "
						 "longer than %d bytes, which vpmd cannot serve; "
						 "rename it",
				 d->name, VM_NAME_MAX - 1);
			return -ENAMETOOLONG;
		}
		if (d->has_policy && !stopping) {
			snprintf(errbuf, errlen, "VM '%.64s' has a VPM policy but vpmd already follows "
						 "%d VMs with PM; stop some first",
				 d->name, VIRT_VMS_MAX);
			return -EMLINK;
		}
		return hook_result(ret, "none", "VM '%.64s' is not served by vpmd", d->name);
	}
	v->hooked = true;
	if (learn(v, d))
		apply_policy(vv, v);
	if (streq(op, "prepare"))
		return hook_prepare(vv, v, ret, errbuf, errlen);
	if (streq(op, "started") || streq(op, "reconnect")) {
		if (!vv->connected)
			v->lv_state = "running";
		v->wanted = true;
		if (vv->kvm && vv->en && streq(op, "reconnect") &&
		    !engine_vm_attached(vv->en, v->name))
			return hook_result(ret, "none", "VM '%s' is not served: it runs since before "
							"vpmd served it",
					   v->name);
		if (vv->kvm && vv->en) {
			err[0] = 0;
			r = attach_kvm(vv, v, err, sizeof(err));
			if (r < 0 && v->has_policy) {
				snprintf(errbuf, errlen, "VM '%s' has a VPM policy but cannot be "
							 "served: %s",
					 v->name, err);
				return r;
			}
			if (r < 0)
				return hook_result(ret, "none", "VM '%s' is not served: %s", v->name,
						   err);
		}
		ensure_guest(vv, v);
		return hook_result(ret, streq(op, "started") ? "attached" : "reattached",
				   "VM '%s': served by vpmd", v->name);
	}
	return hook_stop(vv, v, op, ret);
}

/* ---- the control plane ------------------------------------------------------------------ */

static struct json_object *policy_json(const struct domain_policy *p)
{
	struct json_object *o = json_object_new_object();
	int r = 0;

	if (!o)
		return NULL;
	if (p->has_ratio)
		r |= json_add(o, "ratio", json_object_new_double(p->ratio));
	if (p->mode >= 0)
		r |= json_add(o, "mode",
			      json_object_new_string(vm_mode_to_string((enum vm_mode)p->mode)));
	if (p->policy >= 0)
		r |= json_add(o, "policy", json_object_new_string(policy_kind_to_string(
						   (enum policy_kind)p->policy)));
	if (p->priority >= 0)
		r |= json_add(o, "priority", json_object_new_int(p->priority));
	if (p->epoch_interval)
		r |= json_add(o, "epoch_interval_usec", json_object_new_uint64(p->epoch_interval));
	if (r) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static struct json_object *devices_json(const struct vvm *v)
{
	_cleanup_json_ struct json_object *a = json_object_new_array();

	if (!a)
		return NULL;
	for (unsigned i = 0; i < v->n_devs; i++) {
		const struct vdev *d = &v->devs[i];
		struct json_object *o = json_object_new_object();
		int r;

		if (!o || json_append(a, o) < 0)
			return NULL;
		r = json_add(o, "model", json_object_new_string(d->model == DOMAIN_PMDEV_NVDIMM
									 ? "nvdimm"
									 : "virtio-pmem"));
		r |= json_add_string_or_null(o, "alias", d->alias[0] ? d->alias : NULL);
		r |= json_add(o, "size", json_object_new_uint64(d->size));
		r |= json_add(o, "label_size", json_object_new_uint64(d->label_size));
		r |= d->has_base ? json_add(o, "base", json_object_new_uint64(d->base))
				 : json_add_null(o, "base");
		r |= json_add(o, "servable", json_object_new_boolean(d->servable));
		if (r)
			return NULL;
	}
	return TAKE_PTR(a);
}

static int vvm_json(struct virt_vms *vv, const struct vvm *v, struct json_object *o)
{
	int r = 0;

	r |= json_add(o, "name", json_object_new_string(v->name));
	r |= json_add(o, "uuid", json_object_new_string(v->uuid));
	r |= json_add_string_or_null(o, "state", v->lv_state);
	r |= json_add(o, "pm_pages", json_object_new_uint64(v->pages));
	r |= json_add_string_or_null(o, "problem", v->problem);
	r |= json_add(o, "devices", devices_json(v));
	r |= v->has_policy ? json_add(o, "policy", policy_json(&v->policy))
			   : json_add_null(o, "policy");
	r |= v->guest ? json_add(o, "sim_guest_pid", json_object_new_int(v->guest))
		      : json_add_null(o, "sim_guest_pid");
	r |= json_add(o, "attached",
		      json_object_new_boolean(vv->en && engine_vm_attached(vv->en, v->name)));
	r |= json_add(o, "reserved",
		      json_object_new_boolean(vv->en && engine_reserved(vv->en, v->name)));
	return r ? -ENOMEM : 0;
}

struct json_object *virt_vms_json(struct virt_vms *vv)
{
	_cleanup_json_ struct json_object *o = NULL;
	struct json_object *a = json_object_new_array();

	if (vv->worker)
		o = virt_worker_status_json(vv->worker);
	else if ((o = json_object_new_object()))
		(void)json_add(o, "connected", json_object_new_boolean(false));
	if (!o || !a || json_add(o, "vms", a) < 0) {
		json_object_put(o ? NULL : a);
		return NULL;
	}
	for (struct vvm *v = vv->vms; v; v = v->next) {
		struct json_object *e = json_object_new_object();

		if (json_append(a, e) < 0 || vvm_json(vv, v, e) < 0)
			return NULL;
	}
	return TAKE_PTR(o);
}

const char *virt_vms_state(struct virt_vms *vv, const char *name)
{
	struct vvm *v = vv ? find_vvm(vv, name) : NULL;

	return v ? v->lv_state : NULL;
}

int virt_vms_settings_changed(struct virt_vms *vv, const char *name,
			      const struct engine_settings *s, char *errbuf, size_t errlen)
{
	struct vvm *v = vv ? find_vvm(vv, name) : NULL;
	struct domain_policy p;
	int r;

	/* libvirt VMs only (a hook alone does not make one) */
	if (!v || !v->uuid[0] || !vv->worker || !v->lv_state)
		return 0;
	if (!vv->connected) {
		snprintf(errbuf, errlen, "vpmd is not connected to libvirt now");
		return -ENOTCONN;
	}
	p = v->policy;
	if (s->set_ratio) {
		p.has_ratio = true;
		p.ratio = s->ratio;
	}
	if (s->mode >= 0)
		p.mode = s->mode;
	if (s->policy >= 0)
		p.policy = s->policy;
	if (s->priority >= 0)
		p.priority = s->priority;
	if (s->epoch_usec)
		p.epoch_interval = s->epoch_usec;
	/* known before libvirt's event comes back: that event then changes nothing */
	v->policy = p;
	v->has_policy = true;
	r = virt_worker_set_policy(vv->worker, v->uuid, &p);
	if (r < 0)
		snprintf(errbuf, errlen, "%s", r == -ENOTCONN ? "vpmd no longer follows libvirt"
							      : "out of memory");
	return r;
}

/* ---- set-up ----------------------------------------------------------------------------- */

/* vpm-simguest: VPM_SIMGUEST, next to vpmd in a build tree, or where it is installed. */
static char *find_simguest(void)
{
	char exe[PATH_MAX], path[PATH_MAX + 32];
	const char *env = secure_getenv("VPM_SIMGUEST");
	ssize_t n;

	if (env && env[0])
		return strdup(env);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		*strrchr(exe, '/') = '\0';
		snprintf(path, sizeof(path), "%s/backend/sim/vpm-simguest", exe);
		if (access(path, X_OK) == 0)
			return strdup(path);
	}
	if (access(VPM_SIMGUEST_PATH, X_OK) == 0)
		return strdup(VPM_SIMGUEST_PATH);
	return NULL;
}

int virt_vms_new(sd_event *e, const struct vpmd_config *c, struct engine *en,
		 struct virt_vms **ret)
{
	static const struct virt_ops ops = {
		.domain_changed = on_domain_changed,
		.domain_removed = on_domain_removed,
		.connection_changed = on_connection_changed,
	};
	_cleanup_(virt_vms_freep) struct virt_vms *vv = calloc(1, sizeof(*vv));
	int r;

	if (!vv)
		return log_oom();
	vv->event = e;
	vv->en = en;
	if (asprintf(&vv->guest_dir, "%s/guests", c->state_dir) < 0 ||
	    !(vv->state_dir = strdup(c->state_dir)))
		return log_oom();
	vv->kvm = c->backend == BACKEND_KVM;
	if (c->backend == BACKEND_SIM && en) {
		vv->simguest = find_simguest();
		if (!vv->simguest)
			log_warning("vpm-simguest not found (set VPM_SIMGUEST or install it at %s): "
				    "libvirt VMs get no sim guests",
				    VPM_SIMGUEST_PATH);
		if (mkdir(vv->guest_dir, 0750) < 0 && errno != EEXIST)
			return log_error_errno(errno, "Cannot create '%s': %m", vv->guest_dir);
	}
	if (en)
		engine_set_settings_source(en, settings_of, vv);
	if (c->libvirt_uri && c->libvirt_uri[0]) {
		r = virt_worker_new(e, c->libvirt_uri, &ops, vv, &vv->worker);
		if (r < 0)
			return log_error_errno(r, "Cannot set up the connection to libvirt at '%s': %m",
					       c->libvirt_uri);
		log_info("libvirt: following the VMs of %s", c->libvirt_uri);
	}
	*ret = TAKE_PTR(vv);
	return 0;
}

struct virt_vms *virt_vms_free(struct virt_vms *vv)
{
	if (!vv)
		return NULL;
	if (vv->en)
		engine_set_settings_source(vv->en, NULL, NULL);
	virt_worker_free(vv->worker);
	/* sim guests keep running, as VMs do when vpmd stops; the next vpmd adopts them */
	while (vv->vms)
		drop_vvm(vv, vv->vms);
	free(vv->simguest);
	free(vv->guest_dir);
	free(vv->state_dir);
	free(vv);
	return NULL;
}
