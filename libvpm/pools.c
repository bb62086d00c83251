// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "libvpm-private.h"

struct vpm_pool {
	struct vpm_pool_list *list;
	size_t index;
	struct json_object *json; /* borrowed from list->json */
};

struct vpm_namespace {
	struct vpm_region *region;
	size_t index;
	struct json_object *json;
};

struct vpm_region {
	struct vpm_pool_list *list;
	size_t index;
	struct json_object *json;
	struct vpm_namespace *namespaces;
	size_t n_namespaces;
};

struct vpm_pool_list {
	unsigned refcount;
	struct json_object *json;
	struct vpm_pool *pools;
	size_t n_pools;
	struct vpm_region *regions;
	size_t n_regions;
};

static int build_region(struct vpm_pool_list *l, size_t i, struct json_object *json)
{
	struct vpm_region *rg = &l->regions[i];
	struct json_object *nss;

	*rg = (struct vpm_region){ .list = l, .index = i, .json = json };
	rg->n_namespaces = vpm_json_array(json, "namespaces", &nss);
	if (rg->n_namespaces == 0)
		return 0;
	rg->namespaces = calloc(rg->n_namespaces, sizeof(*rg->namespaces));
	if (!rg->namespaces)
		return -ENOMEM;
	for (size_t j = 0; j < rg->n_namespaces; j++)
		rg->namespaces[j] = (struct vpm_namespace){
			.region = rg, .index = j, .json = json_object_array_get_idx(nss, j)
		};
	return 0;
}

static int build_list(struct vpm_pool_list *l)
{
	struct json_object *pools, *regions;

	l->n_pools = vpm_json_array(l->json, "pools", &pools);
	if (l->n_pools) {
		l->pools = calloc(l->n_pools, sizeof(*l->pools));
		if (!l->pools)
			return -ENOMEM;
	}
	for (size_t i = 0; i < l->n_pools; i++)
		l->pools[i] = (struct vpm_pool){
			.list = l, .index = i, .json = json_object_array_get_idx(pools, i)
		};

	l->n_regions = vpm_json_array(vpm_json_child(l->json, "host"), "regions", &regions);
	if (l->n_regions) {
		l->regions = calloc(l->n_regions, sizeof(*l->regions));
		if (!l->regions)
			return -ENOMEM;
	}
	for (size_t i = 0; i < l->n_regions; i++)
		if (build_region(l, i, json_object_array_get_idx(regions, i)) < 0)
			return -ENOMEM;
	return 0;
}

_public_ int vpm_pool_list_get(struct vpm_ctx *ctx, struct vpm_pool_list **ret_list)
{
	_cleanup_json_ struct json_object *result = NULL;
	struct vpm_pool_list *l;
	int r;

	if (!ret_list)
		return vpm_set_error(EINVAL, "vpm_pool_list_get: ret_list is NULL");
	r = vpm_call(ctx, "pools", NULL, &result);
	if (r < 0)
		return r;
	l = calloc(1, sizeof(*l));
	if (!l)
		return vpm_set_error(ENOMEM, "out of memory");
	l->refcount = 1;
	l->json = TAKE_PTR(result);
	if (build_list(l) < 0) {
		vpm_pool_list_unref(l);
		return vpm_set_error(ENOMEM, "out of memory");
	}
	*ret_list = l;
	return 0;
}

_public_ struct vpm_pool_list *vpm_pool_list_ref(struct vpm_pool_list *l)
{
	if (l)
		l->refcount++;
	return l;
}

_public_ struct vpm_pool_list *vpm_pool_list_unref(struct vpm_pool_list *l)
{
	if (!l || --l->refcount > 0)
		return NULL;
	for (size_t i = 0; i < l->n_regions; i++)
		free(l->regions[i].namespaces);
	free(l->regions);
	free(l->pools);
	json_object_put(l->json);
	free(l);
	return NULL;
}

_public_ const char *vpm_pool_list_get_json(const struct vpm_pool_list *l, bool pretty)
{
	return l ? vpm_json_text(l->json, pretty) : NULL;
}

_public_ const char *vpm_pool_list_get_host_error(const struct vpm_pool_list *l)
{
	return l ? vpm_json_str(l->json, "host_error") : NULL;
}

/* ---- pools ---- */

_public_ struct vpm_pool *vpm_pool_get_first(struct vpm_pool_list *l)
{
	return l && l->n_pools ? &l->pools[0] : NULL;
}

_public_ struct vpm_pool *vpm_pool_get_next(struct vpm_pool *p)
{
	if (!p || p->index + 1 >= p->list->n_pools)
		return NULL;
	return &p->list->pools[p->index + 1];
}

static const char *const kind_names[] = {
	[VPM_POOL_KIND_UNKNOWN] = "unknown",
	[VPM_POOL_KIND_DEVDAX] = "devdax",
	[VPM_POOL_KIND_FSDAX] = "fsdax",
	[VPM_POOL_KIND_EMULATED] = "emulated",
};

_public_ const char *vpm_pool_kind_to_string(enum vpm_pool_kind kind)
{
	return (size_t)kind < ELEMENTSOF(kind_names) ? kind_names[kind] : "unknown";
}

_public_ enum vpm_pool_kind vpm_pool_get_kind(const struct vpm_pool *p)
{
	const char *k = p ? vpm_json_str(p->json, "kind") : NULL;

	for (size_t i = 1; k && i < ELEMENTSOF(kind_names); i++)
		if (streq(k, kind_names[i]))
			return (enum vpm_pool_kind)i;
	return VPM_POOL_KIND_UNKNOWN;
}

_public_ const char *vpm_pool_get_name(const struct vpm_pool *p)
{
	return p ? vpm_json_str(p->json, "name") : NULL;
}

_public_ const char *vpm_pool_get_path(const struct vpm_pool *p)
{
	return p ? vpm_json_str(p->json, "path") : NULL;
}

_public_ uint64_t vpm_pool_get_size(const struct vpm_pool *p)
{
	return p ? vpm_json_u64(p->json, "size") : 0;
}

_public_ uint64_t vpm_pool_get_alignment(const struct vpm_pool *p)
{
	return p ? vpm_json_u64(p->json, "alignment") : 0;
}

_public_ const char *vpm_pool_get_store_granularity(const struct vpm_pool *p)
{
	return p ? vpm_json_str(p->json, "store_granularity") : NULL;
}

_public_ bool vpm_pool_is_persistent(const struct vpm_pool *p)
{
	return p && vpm_json_bool(p->json, "persistent");
}

_public_ int vpm_pool_get_numa_node(const struct vpm_pool *p)
{
	return p ? vpm_json_int(p->json, "numa_node", -1) : -1;
}

_public_ bool vpm_pool_is_formatted(const struct vpm_pool *p)
{
	return p && vpm_json_bool(p->json, "formatted");
}

static struct json_object *pool_store(const struct vpm_pool *p)
{
	return p ? vpm_json_child(p->json, "store") : NULL;
}

_public_ unsigned vpm_pool_get_device_count(const struct vpm_pool *p)
{
	struct json_object *devs = vpm_json_child(pool_store(p), "devices");

	return devs && json_object_is_type(devs, json_type_array)
		       ? (unsigned)json_object_array_length(devs)
		       : 0;
}

_public_ uint64_t vpm_pool_get_frames(const struct vpm_pool *p)
{
	return vpm_json_u64(pool_store(p), "frames");
}

_public_ uint64_t vpm_pool_get_frames_free(const struct vpm_pool *p)
{
	return vpm_json_u64(pool_store(p), "frames_free");
}

_public_ uint64_t vpm_pool_get_log_size(const struct vpm_pool *p)
{
	return vpm_json_u64(pool_store(p), "log_size");
}

_public_ uint64_t vpm_pool_get_log_used(const struct vpm_pool *p)
{
	return vpm_json_u64(pool_store(p), "log_used");
}

/* ---- pool checks ---- */

struct vpm_pool_check {
	struct json_object *json;
};

_public_ int vpm_pool_check(struct vpm_ctx *ctx, const char *pool,
			    struct vpm_pool_check **ret_check)
{
	_cleanup_json_ struct json_object *params = NULL, *result = NULL;
	struct vpm_pool_check *c;
	int r;

	if (!ret_check)
		return vpm_set_error(EINVAL, "vpm_pool_check: ret_check is NULL");
	if (pool) {
		params = json_object_new_object();
		if (!params || json_add(params, "pool", json_object_new_string(pool)) < 0)
			return vpm_set_error(ENOMEM, "out of memory");
	}
	r = vpm_call(ctx, "pool-check", params, &result);
	if (r < 0)
		return r;
	c = calloc(1, sizeof(*c));
	if (!c)
		return vpm_set_error(ENOMEM, "out of memory");
	c->json = TAKE_PTR(result);
	*ret_check = c;
	return 0;
}

_public_ struct vpm_pool_check *vpm_pool_check_unref(struct vpm_pool_check *c)
{
	if (c) {
		json_object_put(c->json);
		free(c);
	}
	return NULL;
}

_public_ unsigned vpm_pool_check_get_damaged(const struct vpm_pool_check *c)
{
	struct json_object *pools;
	unsigned n = 0;
	size_t len = c ? vpm_json_array(c->json, "pools", &pools) : 0;

	for (size_t i = 0; i < len; i++) {
		const char *st = vpm_json_str(json_object_array_get_idx(pools, i), "state");

		n += !st || !(streq(st, "ok") || streq(st, "unformatted"));
	}
	return n;
}

_public_ const char *vpm_pool_check_get_json(const struct vpm_pool_check *c, bool pretty)
{
	return c ? vpm_json_text(c->json, pretty) : NULL;
}

/* ---- host regions and namespaces ---- */

_public_ struct vpm_region *vpm_region_get_first(struct vpm_pool_list *l)
{
	return l && l->n_regions ? &l->regions[0] : NULL;
}

_public_ struct vpm_region *vpm_region_get_next(struct vpm_region *rg)
{
	if (!rg || rg->index + 1 >= rg->list->n_regions)
		return NULL;
	return &rg->list->regions[rg->index + 1];
}

_public_ const char *vpm_region_get_name(const struct vpm_region *rg)
{
	return rg ? vpm_json_str(rg->json, "name") : NULL;
}

_public_ const char *vpm_region_get_type(const struct vpm_region *rg)
{
	return rg ? vpm_json_str(rg->json, "type") : NULL;
}

_public_ uint64_t vpm_region_get_size(const struct vpm_region *rg)
{
	return rg ? vpm_json_u64(rg->json, "size") : 0;
}

_public_ uint64_t vpm_region_get_available_size(const struct vpm_region *rg)
{
	return rg ? vpm_json_u64(rg->json, "available_size") : 0;
}

_public_ int vpm_region_get_numa_node(const struct vpm_region *rg)
{
	return rg ? vpm_json_int(rg->json, "numa_node", -1) : -1;
}

_public_ struct vpm_namespace *vpm_namespace_get_first(struct vpm_region *rg)
{
	return rg && rg->n_namespaces ? &rg->namespaces[0] : NULL;
}

_public_ struct vpm_namespace *vpm_namespace_get_next(struct vpm_namespace *ns)
{
	if (!ns || ns->index + 1 >= ns->region->n_namespaces)
		return NULL;
	return &ns->region->namespaces[ns->index + 1];
}

_public_ const char *vpm_namespace_get_name(const struct vpm_namespace *ns)
{
	return ns ? vpm_json_str(ns->json, "name") : NULL;
}

_public_ const char *vpm_namespace_get_mode(const struct vpm_namespace *ns)
{
	return ns ? vpm_json_str(ns->json, "mode") : NULL;
}

_public_ uint64_t vpm_namespace_get_size(const struct vpm_namespace *ns)
{
	return ns ? vpm_json_u64(ns->json, "size") : 0;
}

_public_ const char *vpm_namespace_get_device(const struct vpm_namespace *ns)
{
	const char *d;

	if (!ns)
		return NULL;
	d = vpm_json_str(ns->json, "chardev");
	return d ? d : vpm_json_str(ns->json, "blockdev");
}
