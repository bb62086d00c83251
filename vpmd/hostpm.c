// SPDX-License-Identifier: LGPL-2.1-or-later
#include <daxctl/libdaxctl.h>
#include <errno.h>
#include <ndctl/libndctl.h>

#include "hostpm.h"
#include "json-util.h"
#include "log.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct ndctl_ctx *, ndctl_unref);

static const char *namespace_mode_name(enum ndctl_namespace_mode m)
{
	switch (m) {
	case NDCTL_NS_MODE_FSDAX:
		return "fsdax";
	case NDCTL_NS_MODE_SECTOR:
		return "sector";
	case NDCTL_NS_MODE_RAW:
		return "raw";
	case NDCTL_NS_MODE_DEVDAX:
		return "devdax";
	default:
		return "unknown";
	}
}

/* The /dev node an operator puts in a [pool] section for this namespace, if any. */
static int add_namespace_devices(struct json_object *o, struct ndctl_namespace *ndns)
{
	const char *blk = NULL;
	struct ndctl_pfn *pfn;
	struct ndctl_dax *dax;
	int r = 0;

	switch (ndctl_namespace_get_mode(ndns)) {
	case NDCTL_NS_MODE_FSDAX:
		pfn = ndctl_namespace_get_pfn(ndns);
		blk = pfn ? ndctl_pfn_get_block_device(pfn) : ndctl_namespace_get_block_device(ndns);
		break;
	case NDCTL_NS_MODE_RAW:
		blk = ndctl_namespace_get_block_device(ndns);
		break;
	case NDCTL_NS_MODE_DEVDAX:
		dax = ndctl_namespace_get_dax(ndns);
		if (dax) {
			struct daxctl_region *dr = ndctl_dax_get_daxctl_region(dax);
			struct daxctl_dev *dev;

			if (dr)
				daxctl_dev_foreach(dr, dev)
				{
					r |= json_add(o, "chardev",
						      json_object_new_string(
							      daxctl_dev_get_devname(dev)));
					break;
				}
		}
		break;
	default:
		break;
	}
	if (blk && *blk)
		r |= json_add(o, "blockdev", json_object_new_string(blk));
	return r;
}

static struct json_object *namespace_to_json(struct ndctl_namespace *ndns)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	int r = 0;

	if (!o)
		return NULL;
	r |= json_add(o, "name", json_object_new_string(ndctl_namespace_get_devname(ndns)));
	r |= json_add(o, "mode",
		      json_object_new_string(namespace_mode_name(ndctl_namespace_get_mode(ndns))));
	r |= json_add(o, "size", json_object_new_uint64(ndctl_namespace_get_size(ndns)));
	r |= json_add(o, "enabled",
		      json_object_new_boolean(ndctl_namespace_is_active(ndns) > 0));
	r |= json_add(o, "numa_node", json_object_new_int(ndctl_namespace_get_numa_node(ndns)));
	r |= add_namespace_devices(o, ndns);
	return r ? NULL : TAKE_PTR(o);
}

static struct json_object *region_to_json(struct ndctl_bus *bus, struct ndctl_region *region)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	struct json_object *nss = json_object_new_array();
	struct ndctl_namespace *ndns;
	int r = 0;

	if (!o || json_add(o, "namespaces", nss) < 0)
		return NULL;
	r |= json_add(o, "name", json_object_new_string(ndctl_region_get_devname(region)));
	r |= json_add(o, "bus", json_object_new_string(ndctl_bus_get_provider(bus)));
	r |= json_add(o, "type", json_object_new_string(ndctl_region_get_type_name(region)));
	r |= json_add(o, "size", json_object_new_uint64(ndctl_region_get_size(region)));
	r |= json_add(o, "available_size",
		      json_object_new_uint64(ndctl_region_get_available_size(region)));
	r |= json_add(o, "enabled", json_object_new_boolean(ndctl_region_is_enabled(region) > 0));
	r |= json_add(o, "numa_node", json_object_new_int(ndctl_region_get_numa_node(region)));
	ndctl_namespace_foreach(region, ndns)
	{
		/* Idle seed namespaces (size 0) are not storage; ndctl list hides them too. */
		if (ndctl_namespace_get_size(ndns) == 0)
			continue;
		r |= json_append(nss, namespace_to_json(ndns));
	}
	return r ? NULL : TAKE_PTR(o);
}

int hostpm_scan(struct json_object **ret)
{
	_cleanup_(ndctl_unrefp) struct ndctl_ctx *ctx = NULL;
	_cleanup_json_ struct json_object *o = json_object_new_object();
	struct json_object *regions = json_object_new_array();
	struct ndctl_region *region;
	struct ndctl_bus *bus;
	int r;

	if (!o || json_add(o, "regions", regions) < 0)
		return -ENOMEM;
	r = ndctl_new(&ctx);
	if (r < 0)
		return log_warning_errno(r, "Cannot enumerate host PM with libndctl: %m");
	ndctl_set_log_priority(ctx, log_get_max_level() >= LOG_DEBUG ? LOG_DEBUG : LOG_ERR);

	ndctl_bus_foreach(ctx, bus)
		ndctl_region_foreach(bus, region)
		{
			r = json_append(regions, region_to_json(bus, region));
			if (r < 0)
				return r;
		}
	*ret = TAKE_PTR(o);
	return 0;
}
