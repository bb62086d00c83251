// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <stdlib.h>

#include "json-util.h"
#include "libvpm-private.h"

/* The reply lives in the VM list of its entries, so that a VM can outlive the stats object. */
struct vpm_stats {
	unsigned refcount;
	struct vpm_vm_list *vms;
	struct json_object *json; /* borrowed from vms */
};

_public_ int vpm_stats_get(struct vpm_ctx *ctx, const char *name, struct vpm_stats **ret_stats)
{
	_cleanup_json_ struct json_object *params = NULL, *result = NULL;
	struct json_object *a;
	struct vpm_stats *s;
	int r;

	if (!ret_stats)
		return vpm_set_error(EINVAL, "vpm_stats_get: ret_stats is NULL");
	if (name) {
		if (!*name)
			return vpm_set_error(EINVAL, "vpm_stats_get: the VM name is empty (NULL "
						     "means all VMs)");
		params = json_object_new_object();
		if (!params || json_add(params, "name", json_object_new_string(name)) < 0)
			return vpm_set_error(ENOMEM, "out of memory");
	}
	r = vpm_call(ctx, "stats", params, &result);
	if (r < 0)
		return r;
	s = calloc(1, sizeof(*s));
	if (!s)
		return vpm_set_error(ENOMEM, "out of memory");
	s->refcount = 1;
	s->json = result;
	vpm_json_array(result, "vms", &a);
	if (vpm_vm_list_build(TAKE_PTR(result), a, &s->vms) < 0) {
		free(s);
		return vpm_set_error(ENOMEM, "out of memory");
	}
	*ret_stats = s;
	return 0;
}

_public_ struct vpm_stats *vpm_stats_ref(struct vpm_stats *s)
{
	if (s)
		s->refcount++;
	return s;
}

_public_ struct vpm_stats *vpm_stats_unref(struct vpm_stats *s)
{
	if (!s || --s->refcount > 0)
		return NULL;
	vpm_vm_list_unref(s->vms);
	free(s);
	return NULL;
}

_public_ const char *vpm_stats_get_json(const struct vpm_stats *s, bool pretty)
{
	return s ? vpm_json_text(s->json, pretty) : NULL;
}

_public_ struct vpm_vm *vpm_stats_get_first_vm(struct vpm_stats *s)
{
	return s ? vpm_vm_get_first(s->vms) : NULL;
}

#define STATS_U64(fn)                                                                              \
	_public_ uint64_t vpm_stats_get_##fn(const struct vpm_stats *s)                            \
	{                                                                                          \
		return s ? vpm_json_u64(vpm_json_child(s->json, "totals"), #fn) : 0;               \
	}

STATS_U64(dram_budget_pages)
STATS_U64(dram_used_pages)
STATS_U64(pm_frames_total)
STATS_U64(pm_frames_free)
STATS_U64(log_bytes)
STATS_U64(pm_bytes_written)
STATS_U64(migrations)
