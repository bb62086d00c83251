// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <stdlib.h>

#include "json-util.h"
#include "libvpm-private.h"

struct vpm_status {
	unsigned refcount;
	struct json_object *json;
};

_public_ int vpm_status_get(struct vpm_ctx *ctx, struct vpm_status **ret_status)
{
	_cleanup_json_ struct json_object *result = NULL;
	struct vpm_status *s;
	int r;

	if (!ret_status)
		return vpm_set_error(EINVAL, "vpm_status_get: ret_status is NULL");
	r = vpm_call(ctx, "status", NULL, &result);
	if (r < 0)
		return r;
	s = calloc(1, sizeof(*s));
	if (!s)
		return vpm_set_error(ENOMEM, "out of memory");
	s->refcount = 1;
	s->json = TAKE_PTR(result);
	*ret_status = s;
	return 0;
}

_public_ struct vpm_status *vpm_status_ref(struct vpm_status *s)
{
	if (s)
		s->refcount++;
	return s;
}

_public_ struct vpm_status *vpm_status_unref(struct vpm_status *s)
{
	if (!s || --s->refcount > 0)
		return NULL;
	json_object_put(s->json);
	free(s);
	return NULL;
}

#define STATUS_STR(fn, key)                                                                        \
	_public_ const char *vpm_status_get_##fn(const struct vpm_status *s)                       \
	{                                                                                          \
		return s ? vpm_json_str(s->json, key) : NULL;                                      \
	}
#define STATUS_U64(fn, obj, key)                                                                   \
	_public_ uint64_t vpm_status_get_##fn(const struct vpm_status *s)                          \
	{                                                                                          \
		return s ? vpm_json_u64(obj, key) : 0;                                             \
	}

STATUS_STR(version, "version")
STATUS_STR(config_file, "config_file")
STATUS_STR(state_dir, "state_dir")
STATUS_STR(socket, "socket")
STATUS_STR(backend, "backend")
STATUS_STR(libvirt_uri, "libvirt_uri")
STATUS_STR(last_reload_error, "last_reload_error")
STATUS_U64(uptime_usec, s->json, "uptime_usec")
STATUS_U64(dram_budget, s->json, "dram_budget")
STATUS_U64(epoch_interval_usec, s->json, "epoch_interval_usec")
STATUS_U64(pool_size, vpm_json_child(s->json, "pools"), "size")
STATUS_U64(requests, vpm_json_child(s->json, "clients"), "requests")
STATUS_U64(recovery_usec, vpm_json_child(s->json, "pools"), "recovery_usec")
STATUS_U64(recovery_replayed_bytes, vpm_json_child(s->json, "pools"), "recovery_replayed_bytes")

_public_ int vpm_status_get_protocol(const struct vpm_status *s)
{
	return s ? vpm_json_int(s->json, "protocol", 0) : 0;
}

_public_ pid_t vpm_status_get_pid(const struct vpm_status *s)
{
	return s ? (pid_t)vpm_json_int(s->json, "pid", 0) : 0;
}

_public_ bool vpm_status_is_socket_activated(const struct vpm_status *s)
{
	return s && vpm_json_bool(s->json, "socket_activated");
}

_public_ unsigned vpm_status_get_pool_count(const struct vpm_status *s)
{
	return s ? (unsigned)vpm_json_int(vpm_json_child(s->json, "pools"), "count", 0) : 0;
}

_public_ unsigned vpm_status_get_emulated_pool_count(const struct vpm_status *s)
{
	return s ? (unsigned)vpm_json_int(vpm_json_child(s->json, "pools"), "emulated", 0) : 0;
}

_public_ unsigned vpm_status_get_clients(const struct vpm_status *s)
{
	return s ? (unsigned)vpm_json_int(vpm_json_child(s->json, "clients"), "connected", 0) : 0;
}

_public_ unsigned vpm_status_get_reloads(const struct vpm_status *s)
{
	return s ? (unsigned)vpm_json_int(s->json, "reloads", 0) : 0;
}

_public_ const char *vpm_status_get_json(const struct vpm_status *s, bool pretty)
{
	return s ? vpm_json_text(s->json, pretty) : NULL;
}
