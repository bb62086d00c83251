// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <libvirt/libvirt.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "backend/kvm/kvm-backend.h"
#include "daemon.h"
#include "engine.h"
#include "hostpm.h"
#include "json-util.h"
#include "log.h"
#include "parse-util.h"
#include "policy.h"
#include "virt-vms.h"

/* ---- state directory ---------------------------------------------------------------- */

static int read_lock_holder(int fd)
{
	char buf[32] = "";
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	return n > 0 ? atoi(buf) : 0;
}

/* One vpmd per state directory: hold an flock on <state_dir>/vpmd.pid, which names us. */
static int lock_state_dir(const char *dir)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -1;
	char pid[32];
	int n;

	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		return log_error_errno(errno, "Failed to create state directory '%s': %m", dir);
	if (asprintf(&path, "%s/vpmd.pid", dir) < 0)
		return log_oom();
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0644);
	if (fd < 0)
		return log_error_errno(errno, "Failed to open lock file '%s': %m", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return log_error_errno(EBUSY,
					       "Another vpmd (pid %d) is using state directory '%s'; "
					       "stop it first or configure another state_dir",
					       read_lock_holder(fd), dir);
		return log_error_errno(errno, "Failed to lock '%s': %m", path);
	}
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		return log_error_errno(errno, "Failed to write '%s': %m", path);
	return TAKE_FD(fd);
}

/* ---- configuration pieces ------------------------------------------------------------ */

static void resolve_read_group(const struct vpmd_config *c, struct control_limits *l)
{
	struct group grp, *res = NULL;
	_cleanup_free_ char *buf = NULL;
	size_t len = 4096;
	int r;

	l->has_read_gid = false;
	if (!c->socket_group || !*c->socket_group)
		return;
	/* a group with many members needs a large buffer: grow it until the entry fits */
	for (;;) {
		char *nb = realloc(buf, len);

		if (!nb) {
			log_oom();
			return;
		}
		buf = nb;
		r = getgrnam_r(c->socket_group, &grp, buf, len, &res);
		if (r != ERANGE || len >= (1u << 24))
			break;
		len *= 4;
	}
	if (r != 0) {
		log_warning_errno(r, "Cannot look up group '%s' (socket_group), so only root may use "
				     "vpmd for now: %m",
				  c->socket_group);
		return;
	}
	if (!res) {
		log_warning("Group '%s' (socket_group) does not exist, so only root may use vpmd; "
			    "create it with 'groupadd --system %s'",
			    c->socket_group, c->socket_group);
		return;
	}
	l->has_read_gid = true;
	l->read_gid = res->gr_gid;
}

static struct control_limits limits_from_config(const struct vpmd_config *c)
{
	struct control_limits l = {
		.max_clients = c->max_clients,
		.idle_timeout_usec = c->client_idle_timeout_usec,
		.max_request_size = (size_t)c->max_request_size,
	};

	resolve_read_group(c, &l);
	return l;
}

/* ---- pools ---------------------------------------------------------------------------- */

static struct pool *find_open_pool(struct pool **pools, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (streq(pools[i]->config.name, name))
			return pools[i];
	return NULL;
}

/*
 * A section renamed in the file but naming the same file or device (and kind and size) as an
 * open pool whose old name is gone: keep that pool, under its new name.
 */
static int take_renamed_pool(const struct vpmd_config *c, struct pool **old, size_t n_old,
			     const struct pool_config *pc, struct pool **ret)
{
	struct stat st;

	*ret = NULL;
	if (stat(pc->path, &st) < 0)
		return 0;
	for (size_t i = 0; i < n_old; i++) {
		struct pool *p = old[i];
		dev_t dev = S_ISCHR(st.st_mode) ? st.st_rdev : st.st_dev;
		ino_t ino = S_ISCHR(st.st_mode) ? 0 : st.st_ino;

		if (p->dev != dev || p->ino != ino || config_find_pool(c, p->config.name) ||
		    p->config.kind != pc->kind || p->config.size != pc->size)
			continue;
		*ret = p; /* renamed by adopt_pool_names() once the whole reload succeeds */
		return 0;
	}
	return 0;
}

static void close_pools(struct pool **pools, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pool_close(pools[i]);
	free(pools);
}

/* Two pool sections naming the same file or device under different paths. */
static int check_pool_aliases(struct pool **pools, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (pools[i]->dev == pools[j]->dev && pools[i]->ino == pools[j]->ino)
				return log_error_errno(EINVAL,
						       "Pools '%s' and '%s' are the same file or "
						       "device; remove one of them",
						       pools[j]->config.name, pools[i]->config.name);
	return 0;
}

/*
 * Build the pool set for config c: keep pools from `old` whose section is unchanged, open
 * the new ones. Changing an open pool's path, kind or size needs a restart. On failure
 * nothing in `old` is touched and everything opened here is closed again.
 */
static int open_pools(const struct vpmd_config *c, struct pool **old, size_t n_old,
		      struct pool ***ret_pools, char *errbuf, size_t errlen)
{
	struct pool **pools = calloc(c->n_pools ? c->n_pools : 1, sizeof(*pools));
	bool *fresh = calloc(c->n_pools ? c->n_pools : 1, sizeof(*fresh));
	int r = 0;

	if (!pools || !fresh) {
		free(pools);
		free(fresh);
		return log_oom();
	}
	for (size_t i = 0; i < c->n_pools; i++) {
		const struct pool_config *pc = &c->pools[i];
		struct pool *p = find_open_pool(old, n_old, pc->name);

		if (p && !pool_config_equal(&p->config, pc)) {
			errbuf_printf(errbuf, errlen,
				      "pool '%s' changed; an open pool's path, kind or size can only "
				      "change with a restart of vpmd",
				      pc->name);
			r = log_error_errno(EBUSY, "%s", errbuf);
			break;
		}
		if (!p) {
			r = take_renamed_pool(c, old, n_old, pc, &p);
			if (r < 0)
				break;
		}
		if (!p) {
			r = pool_open(pc, &p);
			if (r < 0) {
				errbuf_printf(errbuf, errlen, "pool '%s' could not be opened: %s",
					      pc->name, strerror(-r));
				break;
			}
			r = pool_attach_store(p, false);
			if (r < 0) {
				errbuf_printf(errbuf, errlen, "pool '%s' could not be recovered: %s",
					      pc->name, p->recovery.problem);
				pool_close(p);
				break;
			}
			fresh[i] = true;
		}
		pools[i] = p;
	}
	if (r >= 0) {
		r = check_pool_aliases(pools, c->n_pools);
		if (r < 0)
			errbuf_printf(errbuf, errlen, "two pools are the same file or device");
	}
	if (r < 0) {
		for (size_t i = 0; i < c->n_pools; i++)
			if (fresh[i])
				pool_close(pools[i]);
		free(pools);
		free(fresh);
		return r;
	}
	free(fresh);
	*ret_pools = pools;
	return 0;
}

/* After a reload applied: pools kept under a new section name take that name and path. */
static void adopt_pool_names(struct pool **pools, const struct vpmd_config *c)
{
	for (size_t i = 0; i < c->n_pools; i++) {
		struct pool *p = pools[i];

		if (streq(p->config.name, c->pools[i].name))
			continue;
		log_info("Pool '%s' is now called '%s'", p->config.name, c->pools[i].name);
		if (free_and_strdup(&p->config.name, c->pools[i].name) < 0 ||
		    free_and_strdup(&p->config.path, c->pools[i].path) < 0)
			log_oom();
	}
}

/* Close pools of the old set that the new set does not hold. */
static void close_dropped_pools(struct pool **old, size_t n_old, struct pool **new, size_t n_new)
{
	for (size_t i = 0; i < n_old; i++) {
		bool kept = false;

		for (size_t j = 0; j < n_new && !kept; j++)
			kept = old[i] == new[j];
		if (!kept) {
			log_info("Pool '%s' removed from the configuration, closing it",
				 old[i]->config.name);
			pool_close(old[i]);
		}
	}
	free(old);
}

/* ---- status --------------------------------------------------------------------------- */

/* STATUS= names what changes at start and reload only; live numbers are in vpmctl status. */
static void notify_status(struct daemon *d)
{
	uint64_t bytes = 0;
	unsigned emulated = 0;
	char size[32];

	for (size_t i = 0; i < d->n_pools; i++) {
		bytes += d->pools[i]->size;
		emulated += !pool_is_persistent(d->pools[i]);
	}
	sd_notifyf(false, "STATUS=Serving %zu pool%s (%s%s)", d->n_pools,
		   d->n_pools == 1 ? "" : "s", format_bytes(size, sizeof(size), bytes),
		   emulated ? ", emulated PM without persistence" : "");
}

/* The libvirt library vpmd runs with, "9.0.0"; NULL if libvirt cannot tell. */
static const char *libvirt_version(char *buf, size_t len)
{
	unsigned long v = 0;

	if (virGetVersion(&v, NULL, NULL) < 0)
		return NULL;
	snprintf(buf, len, "%lu.%lu.%lu", v / 1000000, (v / 1000) % 1000, v % 1000);
	return buf;
}

static struct json_object *clients_json(const struct daemon *d)
{
	const struct control_stats *st = control_server_get_stats(d->control);
	_cleanup_json_ struct json_object *o = json_object_new_object();
	int r = 0;

	if (!o)
		return NULL;
	r |= json_add(o, "connected", json_object_new_int(st->clients));
	r |= json_add(o, "max", json_object_new_int(d->config->max_clients));
	r |= json_add(o, "max_seen", json_object_new_int(st->max_clients_seen));
	r |= json_add(o, "connections", json_object_new_uint64(st->connections));
	r |= json_add(o, "requests", json_object_new_uint64(st->requests));
	r |= json_add(o, "errors", json_object_new_uint64(st->errors));
	r |= json_add(o, "refused", json_object_new_uint64(st->refused));
	r |= json_add(o, "protocol_errors", json_object_new_uint64(st->protocol_errors));
	r |= json_add(o, "idle_closed", json_object_new_uint64(st->idle_closed));
	return r ? NULL : TAKE_PTR(o);
}

static struct json_object *pools_summary_json(const struct daemon *d)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	uint64_t bytes = 0, recovery_usec = 0, replayed = 0;
	int persistent = 0, formatted = 0, r = 0;

	if (!o)
		return NULL;
	for (size_t i = 0; i < d->n_pools; i++) {
		bytes += d->pools[i]->size;
		persistent += pool_is_persistent(d->pools[i]);
	}
	for (size_t i = 0; i < d->n_pools; i++) {
		recovery_usec += d->pools[i]->recovery.usec;
		replayed += d->pools[i]->recovery.replayed_bytes;
		formatted += d->pools[i]->store != NULL;
	}
	r |= json_add(o, "count", json_object_new_int((int)d->n_pools));
	r |= json_add(o, "formatted", json_object_new_int(formatted));
	r |= json_add(o, "recovery_usec", json_object_new_uint64(recovery_usec));
	r |= json_add(o, "recovery_replayed_bytes", json_object_new_uint64(replayed));
	r |= json_add(o, "size", json_object_new_uint64(bytes));
	r |= json_add(o, "persistent", json_object_new_int(persistent));
	r |= json_add(o, "emulated", json_object_new_int((int)d->n_pools - persistent));
	return r ? NULL : TAKE_PTR(o);
}

static int method_status(struct daemon *d, struct json_object *params,
			 struct json_object **ret, char *errbuf, size_t errlen)
{
	const struct vpmd_config *c = d->config;
	_cleanup_json_ struct json_object *o = json_object_new_object();
	char lv[32];
	int r = 0;

	(void)params;
	(void)errbuf;
	(void)errlen;
	if (!o)
		return -ENOMEM;
	r |= json_add(o, "version", json_object_new_string(VPM_VERSION));
	r |= json_add(o, "protocol", json_object_new_int(VPM_PROTOCOL_VERSION));
	r |= json_add(o, "pid", json_object_new_int((int)getpid()));
	r |= json_add(o, "started_at_usec", json_object_new_uint64(d->start_realtime));
	r |= json_add(o, "uptime_usec",
		      json_object_new_uint64(now_usec(CLOCK_MONOTONIC) - d->start_monotonic));
	r |= json_add(o, "config_file", json_object_new_string(d->config_file));
	r |= json_add(o, "state_dir", json_object_new_string(c->state_dir));
	r |= json_add(o, "runtime_dir", json_object_new_string(c->runtime_dir));
	r |= json_add(o, "socket", json_object_new_string(c->socket_path));
	r |= json_add(o, "socket_activated", json_object_new_boolean(d->socket_activated));
	r |= json_add(o, "backend", json_object_new_string(backend_kind_to_string(c->backend)));
	r |= json_add(o, "libvirt_uri", json_object_new_string(c->libvirt_uri));
	r |= json_add_string_or_null(o, "libvirt_version", libvirt_version(lv, sizeof(lv)));
	r |= json_add(o, "dram_budget", json_object_new_uint64(c->dram_budget));
	r |= json_add(o, "epoch_interval_usec", json_object_new_uint64(c->epoch_interval_usec));
	r |= json_add(o, "log_level", json_object_new_string(log_level_to_string(c->log_level)));
	r |= json_add(o, "watchdog_usec", json_object_new_uint64(d->watchdog_usec));
	r |= json_add(o, "pools", pools_summary_json(d));
	r |= json_add(o, "clients", clients_json(d));
	r |= json_add(o, "reloads", json_object_new_int((int)d->reloads));
	r |= json_add_string_or_null(o, "last_reload_error", d->last_reload_error);
	if (r)
		return -ENOMEM;
	*ret = TAKE_PTR(o);
	return 0;
}

static int method_pools(struct daemon *d, struct json_object *params, struct json_object **ret,
			char *errbuf, size_t errlen)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	struct json_object *pools = json_object_new_array(), *host = NULL;
	int r;

	(void)params;
	(void)errbuf;
	(void)errlen;
	if (!o || json_add(o, "pools", pools) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < d->n_pools; i++)
		if (json_append(pools, pool_to_json(d->pools[i])) < 0)
			return -ENOMEM;

	r = hostpm_scan(&host);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		char msg[256];

		snprintf(msg, sizeof(msg), "libndctl enumeration failed: %s", strerror(-r));
		if (json_add_null(o, "host") < 0 ||
		    json_add(o, "host_error", json_object_new_string(msg)) < 0)
			return -ENOMEM;
	} else if (json_add(o, "host", host) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(o);
	return 0;
}

static int method_reload(struct daemon *d, struct json_object *params, struct json_object **ret,
			 char *errbuf, size_t errlen)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	_cleanup_free_ char *error = NULL;
	struct json_object *warnings = NULL;
	int r;

	(void)params;
	if (!o)
		return -ENOMEM;
	r = daemon_reload(d, &error, &warnings);
	if (r < 0) {
		errbuf_printf(errbuf, errlen, "reload failed, vpmd keeps its old configuration: %s",
			      error ? error : strerror(-r));
		return r;
	}
	if (json_add(o, "warnings", warnings) < 0 ||
	    json_add(o, "reloaded", json_object_new_boolean(true)) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(o);
	return 0;
}

static struct pool *find_pool(struct daemon *d, const char *name)
{
	return find_open_pool(d->pools, d->n_pools, name);
}

/* "ok"; "damaged" for broken structures; "unsupported" for a later layout; else "error". */
static const char *check_state(int r)
{
	switch (r) {
	case 0:
		return "ok";
	case -EUCLEAN:
		return "damaged";
	case -EPROTONOSUPPORT:
		return "unsupported";
	default:
		return "error";
	}
}

/* Re-read a pool's structures from the media without changing them; report what is found. */
static struct json_object *check_pool_json(struct pool *p)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	struct pm_recovery rep = {};
	struct pm_store *s = NULL;
	int r;

	if (!o || json_add(o, "name", json_object_new_string(p->config.name)) < 0)
		return NULL;
	if (!pm_store_is_formatted(p)) {
		if (json_add(o, "state", json_object_new_string("unformatted")) < 0)
			return NULL;
		return TAKE_PTR(o);
	}
	r = pm_store_open(p, true, &s, &rep);
	pm_store_close(s);
	if (json_add(o, "state", json_object_new_string(check_state(r))) < 0 ||
	    json_add(o, "check", pm_recovery_to_json(&rep)) < 0)
		return NULL;
	return TAKE_PTR(o);
}

static int method_pool_check(struct daemon *d, struct json_object *params,
			     struct json_object **ret, char *errbuf, size_t errlen)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	struct json_object *pools = json_object_new_array();
	const char *name = NULL;

	if (!o || json_add(o, "pools", pools) < 0)
		return -ENOMEM;
	if (vpm_json_get_string(params, "pool", &name) == -EINVAL) {
		errbuf_printf(errbuf, errlen, "parameter 'pool' must be a string");
		return -EINVAL;
	}
	if (name && !find_pool(d, name)) {
		char safe[65];

		errbuf_printf(errbuf, errlen, "no pool named '%s'; see 'vpmctl pools'",
			      sanitize_text(safe, sizeof(safe), name, 64));
		return -ENOENT;
	}
	for (size_t i = 0; i < d->n_pools; i++)
		if (!name || streq(name, d->pools[i]->config.name))
			if (json_append(pools, check_pool_json(d->pools[i])) < 0)
				return -ENOMEM;
	*ret = TAKE_PTR(o);
	return 0;
}

struct method {
	const char *name;
	enum vpm_access access;
	int (*fn)(struct daemon *d, struct json_object *params, struct json_object **ret,
		  char *errbuf, size_t errlen);
	const char *const *params; /* the parameters it takes, NULL-terminated */
};

/* Each attached VM's state as libvirt sees it ("libvirt_state"; null: not a libvirt VM). */
static int add_libvirt_states(struct daemon *d, struct json_object *vms)
{
	for (size_t i = 0; vms && i < json_object_array_length(vms); i++) {
		struct json_object *vm = json_object_array_get_idx(vms, i), *n;
		const char *state = NULL;

		if (d->virt_vms && json_object_object_get_ex(vm, "name", &n))
			state = virt_vms_state(d->virt_vms, json_object_get_string(n));
		if (json_add_string_or_null(vm, "libvirt_state", state) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int method_vms(struct daemon *d, struct json_object *params, struct json_object **ret,
		      char *errbuf, size_t errlen)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();

	(void)params;
	(void)errbuf;
	(void)errlen;
	if (!o ||
	    json_add(o, "vms", d->engine ? engine_vms_json(d->engine) : json_object_new_array()) <
		    0 ||
	    (d->virt_vms ? json_add(o, "libvirt", virt_vms_json(d->virt_vms))
			 : json_add_null(o, "libvirt")) < 0 ||
	    add_libvirt_states(d, json_object_object_get(o, "vms")) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(o);
	return 0;
}

static int method_vm_show(struct daemon *d, struct json_object *params,
			  struct json_object **ret, char *errbuf, size_t errlen)
{
	const char *name = NULL;

	if (vpm_json_get_string(params, "name", &name) < 0) {
		errbuf_printf(errbuf, errlen, "parameter 'name' (a string) names the VM to show");
		return -EINVAL;
	}
	return engine_vm_show(d->engine, name, ret, errbuf, errlen);
}

static int method_stats(struct daemon *d, struct json_object *params, struct json_object **ret,
			char *errbuf, size_t errlen)
{
	const char *name = NULL;

	if (vpm_json_get_string(params, "name", &name) == -EINVAL) {
		errbuf_printf(errbuf, errlen, "parameter 'name' must be a string");
		return -EINVAL;
	}
	return engine_stats(d->engine, name, ret, errbuf, errlen);
}

/* "ratio": a JSON number (NaN and infinities are refused by the range check). */
static int get_ratio(struct json_object *params, struct engine_settings *s, char *errbuf,
		     size_t errlen)
{
	struct json_object *v;

	if (!json_object_object_get_ex(params, "ratio", &v))
		return 0;
	if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int)) {
		errbuf_printf(errbuf, errlen, "parameter 'ratio' must be a number from 1 to %d",
			      VPM_RATIO_MAX);
		return -EINVAL;
	}
	s->set_ratio = true;
	s->ratio = json_object_get_double(v);
	if (!ratio_valid(s->ratio)) {
		errbuf_printf(errbuf, errlen, "ratio %g is out of range; use a number from 1 (all "
					      "pages on PM) to %d",
			      s->ratio, VPM_RATIO_MAX);
		return -EINVAL;
	}
	return 0;
}

static int get_enum(struct json_object *params, const char *key, int (*from)(const char *),
		    const char *choices, int *ret, char *errbuf, size_t errlen)
{
	const char *v = NULL;
	char safe[65];
	int r = vpm_json_get_string(params, key, &v);

	if (r == -ENOENT)
		return 0;
	if (r < 0 || (*ret = from(v)) < 0) {
		errbuf_printf(errbuf, errlen, "parameter '%s' must be one of %s%s%s%s", key,
			      choices, v ? " (not '" : "", v ? sanitize_text(safe, sizeof(safe), v, 64) : "",
			      v ? "')" : "");
		return -EINVAL;
	}
	return 0;
}

/* "ratio", "mode" and "policy" of vm-set and attach, each optional. */
static int get_placement(struct json_object *params, struct engine_settings *s, char *errbuf,
			 size_t errlen)
{
	int r = get_ratio(params, s, errbuf, errlen);

	if (r >= 0)
		r = get_enum(params, "mode", vm_mode_from_string, "native, epoch, hint", &s->mode,
			     errbuf, errlen);
	if (r >= 0)
		r = get_enum(params, "policy", policy_kind_from_string,
			     "vpm, static, random, lru, oracle", &s->policy, errbuf, errlen);
	return r;
}

static int record_settings_in_libvirt(struct daemon *d, const char *name,
				      const struct engine_settings *s, struct json_object *result);

static int method_vm_set(struct daemon *d, struct json_object *params, struct json_object **ret,
			 char *errbuf, size_t errlen)
{
	struct engine_settings s = { .mode = -1, .policy = -1, .priority = -1 };
	const char *name = NULL;
	bool all = false;
	uint64_t prio;
	int r;

	r = vpm_json_get_string(params, "name", &name);
	if (r == -EINVAL || vpm_json_get_bool(params, "all", &all) == -EINVAL || (!name == !all)) {
		errbuf_printf(errbuf, errlen, "name one VM ('name': string) or all of them "
					      "('all': true), not both");
		return -EINVAL;
	}
	r = get_placement(params, &s, errbuf, errlen);
	if (r < 0)
		return r;
	r = vpm_json_get_uint64(params, "priority", &prio);
	if (r == 0 && prio <= 100)
		s.priority = (int)prio;
	else if (r != -ENOENT) {
		errbuf_printf(errbuf, errlen, "parameter 'priority' must be an integer from 0 to 100");
		return -EINVAL;
	}
	if (!s.set_ratio && s.mode < 0 && s.policy < 0 && s.priority < 0) {
		errbuf_printf(errbuf, errlen, "nothing to change: give ratio, mode, policy or "
					      "priority");
		return -EINVAL;
	}
	if (!d->engine) {
		errbuf_printf(errbuf, errlen, "no VMs: the engine is not running (no formatted pool)");
		return name ? -ENOENT : -ENODEV;
	}
	r = engine_vm_set(d->engine, name, &s, ret, errbuf, errlen);
	if (r < 0)
		return r;
	return record_settings_in_libvirt(d, name, &s, *ret);
}

/*
 * libvirt VMs keep their settings in their domain metadata: write what changed there. The
 * change applies either way; a VM whose metadata could not be written is named in the reply.
 */
static int record_settings_in_libvirt(struct daemon *d, const char *name,
				      const struct engine_settings *s, struct json_object *result)
{
	struct json_object *vms, *failed = NULL;

	if (!d->virt_vms || !json_object_object_get_ex(result, "vms", &vms))
		return 0;
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		struct json_object *vm = json_object_array_get_idx(vms, i), *n;
		char err[512] = "", msg[640];

		if (!json_object_object_get_ex(vm, "name", &n))
			continue;
		if (virt_vms_settings_changed(d->virt_vms, json_object_get_string(n), s, err,
					      sizeof(err)) >= 0)
			continue;
		snprintf(msg, sizeof(msg), "VM '%s': the change applies but its domain metadata "
					   "was not updated: %s",
			 json_object_get_string(n), err);
		log_warning("%s", msg);
		if (!failed && (!(failed = json_object_new_array()) ||
				json_add(result, "warnings", failed) < 0))
			return -ENOMEM;
		if (json_append(failed, json_object_new_string(msg)) < 0)
			return -ENOMEM;
	}
	(void)name;
	return 0;
}

/* Serve a running KVM VM: its VMM's pid and the vPM range (guest-physical). */
static int method_attach(struct daemon *d, struct json_object *params, struct json_object **ret,
			 char *errbuf, size_t errlen)
{
	struct kvm_attach_request req = {};
	struct engine_settings s = { .mode = -1, .policy = -1 };
	uint64_t pid = 0;
	int r;

	if (vpm_json_get_string(params, "name", &req.name) < 0 ||
	    vpm_json_get_uint64(params, "pid", &pid) < 0 || pid == 0 || pid > INT32_MAX ||
	    vpm_json_get_uint64(params, "gpa", &req.gpa) < 0 ||
	    vpm_json_get_uint64(params, "size", &req.size) < 0 ||
	    vpm_json_get_string(params, "mode", &req.mode) == -EINVAL ||
	    vpm_json_get_string(params, "policy", &req.policy) == -EINVAL) {
		errbuf_printf(errbuf, errlen, "an attach needs 'name' (string), 'pid' (the VMM's "
					      "process), 'gpa' and 'size' (the vPM range, bytes) and "
					      "may give 'ratio', 'mode' and 'policy'");
		return -EINVAL;
	}
	req.pid = (pid_t)pid;
	r = get_placement(params, &s, errbuf, errlen);
	if (r < 0)
		return r;
	req.ratio = s.set_ratio ? s.ratio : 0;
	if (!d->engine) {
		errbuf_printf(errbuf, errlen, "vpmd serves no VMs: no formatted pool (vpmd "
					      "--init-pool NAME)");
		return -ENODEV;
	}
	r = engine_attach_kvm(d->engine, &req, errbuf, errlen);
	if (r < 0)
		return r;
	return engine_vm_show(d->engine, req.name, ret, errbuf, errlen);
}

static int method_hook(struct daemon *d, struct json_object *params, struct json_object **ret,
		       char *errbuf, size_t errlen)
{
	const char *domain = NULL, *op = NULL, *subop = "-", *xml = NULL;

	if (vpm_json_get_string(params, "domain", &domain) < 0 ||
	    vpm_json_get_string(params, "op", &op) < 0 ||
	    vpm_json_get_string(params, "xml", &xml) < 0 ||
	    vpm_json_get_string(params, "subop", &subop) == -EINVAL) {
		errbuf_printf(errbuf, errlen, "a hook call needs 'domain', 'op' and 'xml' strings "
					      "(and 'subop')");
		return -EINVAL;
	}
	if (!d->virt_vms) {
		errbuf_printf(errbuf, errlen, "vpmd is not set up for libvirt's VMs");
		return -ENODEV;
	}
	return virt_vms_hook(d->virt_vms, domain, op, subop, xml, ret, errbuf, errlen);
}

static const char *const no_params[] = { NULL };
static const char *const pool_param[] = { "pool", NULL };
static const char *const name_param[] = { "name", NULL };
static const char *const set_params[] = { "name", "all", "ratio", "mode", "policy", "priority",
					  NULL };
static const char *const attach_params[] = { "name", "pid", "gpa", "size", "ratio", "mode",
					     "policy", NULL };
static const char *const hook_params[] = { "domain", "op", "subop", "xml", NULL };

static const struct method methods[] = {
	{ "status", VPM_ACCESS_READ, method_status, no_params },
	{ "pools", VPM_ACCESS_READ, method_pools, no_params },
	{ "pool-check", VPM_ACCESS_READ, method_pool_check, pool_param },
	{ "vms", VPM_ACCESS_READ, method_vms, no_params },
	{ "vm-show", VPM_ACCESS_READ, method_vm_show, name_param },
	{ "stats", VPM_ACCESS_READ, method_stats, name_param },
	{ "vm-set", VPM_ACCESS_CHANGE, method_vm_set, set_params },
	{ "reload", VPM_ACCESS_CHANGE, method_reload, no_params },
	{ "hook", VPM_ACCESS_CHANGE, method_hook, hook_params },
	{ "attach", VPM_ACCESS_CHANGE, method_attach, attach_params },
};

static bool method_takes(const struct method *m, const char *key)
{
	for (const char *const *p = m->params; *p; p++)
		if (streq(*p, key))
			return true;
	return false;
}

int daemon_dispatch(void *userdata, const struct control_peer *peer, const char *method,
		    struct json_object *params, struct json_object **ret_result, char *errbuf,
		    size_t errlen)
{
	struct daemon *d = userdata;
	char safe[65];

	for (size_t i = 0; i < ELEMENTSOF(methods); i++) {
		const struct method *m = &methods[i];

		if (!streq(m->name, method))
			continue;
		if (peer->access < m->access) {
			errbuf_printf(errbuf, errlen,
				      "'%s' changes vpmd's state and needs root; uid %u may only "
				      "read",
				      m->name, (unsigned)peer->uid);
			return -EPERM;
		}
		/* refuse what would otherwise be ignored */
		json_object_object_foreach(params, key, val)
		{
			(void)val;
			if (method_takes(m, key))
				continue;
			errbuf_printf(errbuf, errlen, "method '%s' takes no parameter '%s'", m->name,
				      sanitize_text(safe, sizeof(safe), key, 64));
			return -EINVAL;
		}
		return m->fn(d, params, ret_result, errbuf, errlen);
	}
	errbuf_printf(errbuf, errlen, "unknown method '%s'; this vpmd %s speaks protocol %d",
		      sanitize_text(safe, sizeof(safe), method, 64), VPM_VERSION,
		      VPM_PROTOCOL_VERSION);
	return -EOPNOTSUPP;
}

/* ---- reload --------------------------------------------------------------------------- */

static int warn_restart(struct json_object *warnings, const char *key, const char *old,
			const char *new)
{
	char msg[512];

	if (streq_ptr(old, new))
		return 0;
	snprintf(msg, sizeof(msg), "%s changed from '%s' to '%s'; this takes effect when vpmd "
				   "restarts",
		 key, old, new);
	log_warning("%s", msg);
	return json_append(warnings, json_object_new_string(msg));
}

/* Keep settings that only a restart can change at their running values, with a warning. */
static int keep_restart_settings(const struct vpmd_config *old, struct vpmd_config *new,
				 struct json_object *warnings)
{
	char om[8], nm[8];
	int r = 0;

	snprintf(om, sizeof(om), "%04o", (unsigned)old->socket_mode);
	snprintf(nm, sizeof(nm), "%04o", (unsigned)new->socket_mode);
	r |= warn_restart(warnings, "socket", old->socket_path, new->socket_path);
	r |= warn_restart(warnings, "socket_mode", om, nm);
	r |= warn_restart(warnings, "socket_group", old->socket_group, new->socket_group);
	r |= warn_restart(warnings, "state_dir", old->state_dir, new->state_dir);
	r |= warn_restart(warnings, "runtime_dir", old->runtime_dir, new->runtime_dir);
	r |= warn_restart(warnings, "backend", backend_kind_to_string(old->backend),
			  backend_kind_to_string(new->backend));
	r |= warn_restart(warnings, "libvirt_uri", old->libvirt_uri, new->libvirt_uri);
	snprintf(om, sizeof(om), "%u", old->copy_threads);
	snprintf(nm, sizeof(nm), "%u", new->copy_threads);
	r |= warn_restart(warnings, "copy_threads", om, nm);
	if (r)
		return -ENOMEM;
	new->socket_mode = old->socket_mode;
	new->copy_threads = old->copy_threads;
	new->backend = old->backend;
	if (free_and_strdup(&new->socket_path, old->socket_path) < 0 ||
	    free_and_strdup(&new->socket_group, old->socket_group) < 0 ||
	    free_and_strdup(&new->state_dir, old->state_dir) < 0 ||
	    free_and_strdup(&new->runtime_dir, old->runtime_dir) < 0 ||
	    free_and_strdup(&new->libvirt_uri, old->libvirt_uri) < 0)
		return -ENOMEM;
	return 0;
}

int daemon_reload(struct daemon *d, char **ret_error, struct json_object **ret_warnings)
{
	_cleanup_(config_freep) struct vpmd_config *c = NULL;
	_cleanup_json_ struct json_object *warnings = json_object_new_array();
	struct control_limits limits;
	struct pool **pools = NULL;
	char errbuf[512] = "";
	char *errors = NULL;
	int r;

	sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=Reloading %s",
		   now_usec(CLOCK_MONOTONIC), d->config_file);
	log_info("Reloading configuration from %s", d->config_file);
	if (!warnings) {
		r = log_oom();
		goto done;
	}

	r = config_load(d->config_file, &c, &errors);
	if (r < 0) {
		if (!errors && asprintf(&errors, "%s: %s", d->config_file, strerror(-r)) < 0)
			errors = NULL;
		log_error("Reload failed, keeping the running configuration: %s",
			  errors ? errors : strerror(-r));
		goto done;
	}
	r = keep_restart_settings(d->config, c, warnings);
	if (r < 0)
		goto done;
	r = open_pools(c, d->pools, d->n_pools, &pools, errbuf, sizeof(errbuf));
	if (r < 0) {
		errors = strdup(errbuf);
		goto done;
	}
	if (d->engine) {
		bool kept = false;

		for (size_t i = 0; i < c->n_pools; i++)
			kept |= pools[i] == engine_pool(d->engine);
		if (!kept) {
			/* give back what open_pools opened, keep the old set */
			close_dropped_pools(pools, c->n_pools, d->pools, d->n_pools);
			r = -EBUSY;
			errors = strdup("the pool that holds the running VMs' devices cannot be "
					"removed by a reload");
			goto done;
		}
	}

	/* Nothing can fail from here on: apply. */
	close_dropped_pools(d->pools, d->n_pools, pools, c->n_pools);
	adopt_pool_names(pools, c);
	d->pools = pools;
	d->n_pools = c->n_pools;
	log_set_max_level(c->log_level);
	limits = limits_from_config(c);
	control_server_set_limits(d->control, &limits);
	if (d->engine) {
		uint64_t over = engine_reconfigure(d->engine, c);
		char msg[256];

		if (over > 0) {
			snprintf(msg, sizeof(msg),
				 "dram_budget is %" PRIu64 " pages below what the running VMs were "
				 "admitted with; they keep it, and new VMs and changes of ratio are "
				 "refused until they fit",
				 over);
			log_warning("%s", msg);
			if (json_append(warnings, json_object_new_string(msg)) < 0)
				log_oom();
		}
	}
	config_free(d->config);
	d->config = TAKE_PTR(c);
	d->reloads++;
	log_info("Configuration reloaded");

done:
	free(d->last_reload_error);
	d->last_reload_error = r < 0 ? (errors ? strdup(errors) : strdup(strerror(-r))) : NULL;
	sd_notify(false, "READY=1");
	notify_status(d);
	if (r < 0) {
		sd_notifyf(false, "STATUS=Reload failed, running the previous configuration: %s",
			   d->last_reload_error ? d->last_reload_error : "");
		if (ret_error)
			*ret_error = errors;
		else
			free(errors);
		return r;
	}
	if (ret_warnings)
		*ret_warnings = TAKE_PTR(warnings);
	return 0;
}

/* ---- offline pool administration ------------------------------------------------------ */

/*
 * Open one configured pool by name for an offline action; the pool lock keeps vpmd away.
 * Unless create, a missing pool file is an error rather than made from the size key.
 */
static int open_configured_pool(const char *config_file, const char *name, bool create,
				struct pool **ret)
{
	struct pool_config pc_copy;
	_cleanup_(config_freep) struct vpmd_config *c = NULL;
	_cleanup_free_ char *errors = NULL;
	const struct pool_config *pc;
	int r;

	r = config_load(config_file, &c, &errors);
	if (r < 0) {
		if (errors)
			log_error("Invalid configuration:\n%s", errors);
		else
			log_error_errno(r, "Failed to read configuration '%s': %m", config_file);
		return r;
	}
	pc = config_find_pool(c, name);
	if (!pc)
		return log_error_errno(ENOENT, "No [pool %s] section in %s", name, config_file);
	pc_copy = *pc;
	if (!create) {
		if (access(pc->path, F_OK) < 0)
			return log_error_errno(errno, "Pool '%s': cannot check '%s': %m", name,
					       pc->path);
		pc_copy.size = 0;
	}
	return pool_open(&pc_copy, ret);
}

int daemon_init_pool(const char *config_file, const char *name, uint64_t log_size, bool force)
{
	_cleanup_(pool_closep) struct pool *p = NULL;
	struct pm_format_options o = { .log_size = log_size, .force = force };
	struct pm_recovery rep;
	struct pm_store *s = NULL;
	char err[512];
	int r;

	r = open_configured_pool(config_file, name, true, &p);
	if (r < 0)
		return r;
	r = pm_store_format(p, &o, err, sizeof(err));
	if (r < 0)
		return log_error_errno(r, "%s", err);
	r = pm_store_open(p, true, &s, &rep);
	if (r < 0)
		return log_error_errno(r, "Pool '%s' does not read back after formatting: %s", name,
				       rep.problem);
	log_info("Pool '%s' formatted: %" PRIu64 " PM frames, %" PRIu64 " MiB log", name,
		 pm_frames_free(s), pm_log_size(s) >> 20);
	pm_store_close(s);
	return 0;
}

int daemon_check_pool(const char *config_file, const char *name)
{
	_cleanup_(pool_closep) struct pool *p = NULL;
	_cleanup_json_ struct json_object *o = NULL;
	int r;

	r = open_configured_pool(config_file, name, false, &p);
	if (r < 0)
		return r;
	o = check_pool_json(p);
	if (!o)
		return log_oom();
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
								 JSON_C_TO_STRING_SPACED));
	return streq(json_object_get_string(json_object_object_get(o, "state")), "ok") ||
			       streq(json_object_get_string(json_object_object_get(o, "state")),
				     "unformatted")
		       ? 0
		       : -EUCLEAN;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static int on_terminate(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	(void)userdata;
	log_info("Received %s, stopping", strsignal((int)si->ssi_signo));
	sd_notify(false, "STOPPING=1\nSTATUS=Stopping");
	return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int on_reload_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	(void)s;
	(void)si;
	(void)daemon_reload(userdata, NULL, NULL);
	return 0;
}

static int setup_event_loop(struct daemon *d)
{
	sigset_t mask;
	int r;

	r = sd_event_default(&d->event);
	if (r < 0)
		return log_error_errno(r, "Failed to create the event loop: %m");

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return log_error_errno(errno, "Failed to block signals: %m");
	signal(SIGPIPE, SIG_IGN);

	r = sd_event_add_signal(d->event, NULL, SIGTERM, on_terminate, d);
	if (r >= 0)
		r = sd_event_add_signal(d->event, NULL, SIGINT, on_terminate, d);
	if (r >= 0)
		r = sd_event_add_signal(d->event, NULL, SIGHUP, on_reload_signal, d);
	if (r < 0)
		return log_error_errno(r, "Failed to watch signals: %m");

	/* Sends WATCHDOG=1 at half of WatchdogSec= when systemd asks for it. */
	r = sd_event_set_watchdog(d->event, true);
	if (r < 0)
		return log_error_errno(r, "Failed to enable the watchdog: %m");
	if (sd_watchdog_enabled(false, &d->watchdog_usec) <= 0)
		d->watchdog_usec = 0;
	return 0;
}

static int setup_control(struct daemon *d)
{
	struct control_limits limits = limits_from_config(d->config);
	gid_t group = limits.has_read_gid ? limits.read_gid : (gid_t)-1;
	int fd, r;

	fd = control_socket_open(d->config->socket_path, d->config->socket_mode, group,
				 &d->socket_activated);
	if (fd < 0)
		return fd;
	if (!d->socket_activated) {
		d->bound_socket = strdup(d->config->socket_path);
		if (!d->bound_socket) {
			safe_close(fd);
			return log_oom();
		}
	}
	r = control_server_new(d->event, fd, &limits, daemon_dispatch, d, &d->control);
	if (r < 0) {
		safe_close(fd);
		return log_error_errno(r, "Failed to set up the control server: %m");
	}
	return 0;
}

/* The engine (and its backend) serves VMs from the first formatted pool. */
static int setup_engine(struct daemon *d)
{
	for (size_t i = 0; i < d->n_pools; i++)
		if (d->pools[i]->store)
			return engine_new(d->event, d->config, d->pools[i], &d->engine);
	log_notice("%s backend idle: no formatted pool to keep the VMs' devices in",
		   d->config->backend == BACKEND_KVM ? "KVM" : "Sim");
	return 0;
}

int daemon_new(const char *config_file, struct daemon **ret_daemon)
{
	_cleanup_(daemon_freep) struct daemon *d = NULL;
	_cleanup_free_ char *errors = NULL;
	char errbuf[512];
	int r;

	d = calloc(1, sizeof(*d));
	if (!d)
		return log_oom();
	d->lock_fd = -1;
	d->start_monotonic = now_usec(CLOCK_MONOTONIC);
	d->start_realtime = now_usec(CLOCK_REALTIME);
	d->config_file = strdup(config_file);
	if (!d->config_file)
		return log_oom();

	r = config_load(config_file, &d->config, &errors);
	if (r < 0) {
		if (errors) {
			log_error("Invalid configuration:\n%s", errors);
			return -EINVAL;
		}
		return log_error_errno(r, "Failed to read configuration '%s': %m", config_file);
	}
	log_set_max_level(d->config->log_level);

	d->lock_fd = lock_state_dir(d->config->state_dir);
	if (d->lock_fd < 0)
		return d->lock_fd;
	r = open_pools(d->config, NULL, 0, &d->pools, errbuf, sizeof(errbuf));
	if (r < 0)
		return r;
	d->n_pools = d->config->n_pools;
	if (d->n_pools == 0)
		log_notice("No [pool] sections in %s: vpmd has no PM to manage yet", config_file);

	r = setup_event_loop(d);
	if (r < 0)
		return r;
	r = setup_control(d);
	if (r < 0)
		return r;
	r = setup_engine(d);
	if (r < 0)
		return r;
	r = virt_vms_new(d->event, d->config, d->engine, &d->virt_vms);
	if (r < 0)
		return r;
	*ret_daemon = TAKE_PTR(d);
	return 0;
}

int daemon_run(struct daemon *d)
{
	int r;

	sd_notifyf(false, "READY=1\nMAINPID=%d", (int)getpid());
	notify_status(d);
	log_info("vpmd %s ready: %zu pool(s), socket %s", VPM_VERSION, d->n_pools,
		 d->config->socket_path);
	r = sd_event_loop(d->event);
	if (r < 0)
		return log_error_errno(r, "Event loop failed: %m");
	return 0;
}

struct daemon *daemon_free(struct daemon *d)
{
	if (!d)
		return NULL;
	virt_vms_free(d->virt_vms);
	engine_free(d->engine);
	control_server_free(d->control);
	if (d->bound_socket)
		(void)unlink(d->bound_socket);
	free(d->bound_socket);
	if (d->pools)
		close_pools(d->pools, d->n_pools);
	sd_event_unref(d->event);
	safe_close(d->lock_fd);
	config_free(d->config);
	free(d->config_file);
	free(d->last_reload_error);
	free(d);
	return NULL;
}
