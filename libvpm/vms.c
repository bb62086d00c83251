// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <stdlib.h>

#include "json-util.h"
#include "libvpm-private.h"
#include "parse-util.h"
#include "protocol.h"

struct vpm_vm {
	struct vpm_vm_list *list; /* owns json */
	size_t index;
	struct json_object *json;
};

/* A libvirt VM with PM devices, from the "libvirt" member of a vms reply. */
struct vpm_libvirt_vm {
	struct vpm_vm_list *list; /* owns json */
	size_t index;
	struct json_object *json;
};

struct vpm_vm_list {
	unsigned refcount;
	struct json_object *json;
	struct vpm_vm *vms;
	size_t n;
	struct json_object *libvirt; /* borrowed from json; NULL when null or absent */
	struct vpm_libvirt_vm *libvirt_vms;
	size_t n_libvirt;
};

int vpm_vm_list_build(struct json_object *json, struct json_object *array,
		      struct vpm_vm_list **ret_list)
{
	bool is_array = array && json_object_is_type(array, json_type_array);
	struct vpm_vm_list *l;

	l = calloc(1, sizeof(*l));
	if (!l) {
		json_object_put(json);
		return -ENOMEM;
	}
	l->refcount = 1;
	l->json = json;
	if (array)
		l->n = is_array ? json_object_array_length(array) : 1;
	if (l->n) {
		l->vms = calloc(l->n, sizeof(*l->vms));
		if (!l->vms) {
			vpm_vm_list_unref(l);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < l->n; i++)
		l->vms[i] = (struct vpm_vm){
			.list = l, .index = i,
			.json = is_array ? json_object_array_get_idx(array, i) : array
		};
	*ret_list = l;
	return 0;
}

/* libvirt's view: the object under "libvirt" in the reply, if it is one, and its VMs. */
static int build_libvirt(struct vpm_vm_list *l)
{
	struct json_object *lv = vpm_json_child(l->json, "libvirt"), *a;

	if (!lv || !json_object_is_type(lv, json_type_object))
		return 0;
	l->libvirt = lv;
	l->n_libvirt = vpm_json_array(lv, "vms", &a);
	if (l->n_libvirt == 0)
		return 0;
	l->libvirt_vms = calloc(l->n_libvirt, sizeof(*l->libvirt_vms));
	if (!l->libvirt_vms)
		return -ENOMEM;
	for (size_t i = 0; i < l->n_libvirt; i++) {
		struct vpm_libvirt_vm *v = &l->libvirt_vms[i];

		v->list = l;
		v->index = i;
		v->json = json_object_array_get_idx(a, i);
	}
	return 0;
}

_public_ int vpm_vm_list_get(struct vpm_ctx *ctx, struct vpm_vm_list **ret_list)
{
	struct json_object *result = NULL, *a;
	struct vpm_vm_list *l;
	int r;

	if (!ret_list)
		return vpm_set_error(EINVAL, "vpm_vm_list_get: ret_list is NULL");
	r = vpm_call(ctx, "vms", NULL, &result);
	if (r < 0)
		return r;
	vpm_json_array(result, "vms", &a);
	if (vpm_vm_list_build(result, a, &l) < 0)
		return vpm_set_error(ENOMEM, "out of memory");
	if (build_libvirt(l) < 0) {
		vpm_vm_list_unref(l);
		return vpm_set_error(ENOMEM, "out of memory");
	}
	*ret_list = l;
	return 0;
}

_public_ struct vpm_vm_list *vpm_vm_list_ref(struct vpm_vm_list *l)
{
	if (l)
		l->refcount++;
	return l;
}

_public_ struct vpm_vm_list *vpm_vm_list_unref(struct vpm_vm_list *l)
{
	if (!l || --l->refcount > 0)
		return NULL;
	free(l->vms);
	free(l->libvirt_vms);
	json_object_put(l->json);
	free(l);
	return NULL;
}

_public_ const char *vpm_vm_list_get_json(const struct vpm_vm_list *l, bool pretty)
{
	return l ? vpm_json_text(l->json, pretty) : NULL;
}

_public_ struct vpm_vm *vpm_vm_get_first(struct vpm_vm_list *l)
{
	return l && l->n ? &l->vms[0] : NULL;
}

_public_ struct vpm_vm *vpm_vm_get_next(struct vpm_vm *vm)
{
	if (!vm || vm->index + 1 >= vm->list->n)
		return NULL;
	return &vm->list->vms[vm->index + 1];
}

_public_ struct vpm_vm *vpm_vm_ref(struct vpm_vm *vm)
{
	if (vm)
		vpm_vm_list_ref(vm->list);
	return vm;
}

_public_ struct vpm_vm *vpm_vm_unref(struct vpm_vm *vm)
{
	if (vm)
		vpm_vm_list_unref(vm->list);
	return NULL;
}

_public_ const char *vpm_vm_get_json(const struct vpm_vm *vm, bool pretty)
{
	return vm ? vpm_json_text(vm->json, pretty) : NULL;
}

/* ---- fields ---- */

/* The member key of the VM's statistics, such as "pause_usec"; NULL if absent. */
static struct json_object *stats_child(const struct vpm_vm *vm, const char *key)
{
	return vpm_json_child(vpm_json_child(vm->json, "stats"), key);
}

/*
 * A counter of the VM: from its summary (vms, vm-show, vm-set) under key, or else from its
 * statistics (vm-show, stats) under group/stat, group NULL for the statistics object itself.
 */
static uint64_t vm_u64(const struct vpm_vm *vm, const char *key, const char *group,
		       const char *stat)
{
	uint64_t v = 0;

	if (!vm)
		return 0;
	if (key && vpm_json_get_uint64(vm->json, key, &v) == 0)
		return v;
	if (!stat)
		return 0;
	return vpm_json_u64(group ? stats_child(vm, group) : vpm_json_child(vm->json, "stats"),
			    stat);
}

static double vm_double(const struct vpm_vm *vm, const char *group, const char *stat)
{
	if (!vm)
		return 0;
	return vpm_json_double(group ? stats_child(vm, group) : vpm_json_child(vm->json, "stats"),
			       stat);
}

_public_ const char *vpm_vm_get_name(const struct vpm_vm *vm)
{
	return vm ? vpm_json_str(vm->json, "name") : NULL;
}

_public_ const char *vpm_vm_get_mode(const struct vpm_vm *vm)
{
	return vm ? vpm_json_str(vm->json, "mode") : NULL;
}

_public_ const char *vpm_vm_get_backend(const struct vpm_vm *vm)
{
	return vm ? vpm_json_str(vm->json, "backend") : NULL;
}

_public_ const char *vpm_vm_get_policy(const struct vpm_vm *vm)
{
	return vm ? vpm_json_str(vm->json, "policy") : NULL;
}

_public_ const char *vpm_vm_get_libvirt_state(const struct vpm_vm *vm)
{
	return vm ? vpm_json_str(vm->json, "libvirt_state") : NULL;
}

_public_ unsigned vpm_vm_get_vcpus(const struct vpm_vm *vm)
{
	return vm ? (unsigned)vpm_json_int(vm->json, "vcpus", 0) : 0;
}

_public_ int vpm_vm_get_priority(const struct vpm_vm *vm)
{
	return vm ? vpm_json_int(vm->json, "priority", -1) : -1;
}

_public_ double vpm_vm_get_ratio(const struct vpm_vm *vm)
{
	return vm ? vpm_json_double(vm->json, "ratio") : 0;
}

_public_ bool vpm_vm_is_converged(const struct vpm_vm *vm)
{
	return vm && vpm_json_bool(vm->json, "converged");
}

_public_ bool vpm_vm_has_stats(const struct vpm_vm *vm)
{
	struct json_object *s = vm ? vpm_json_child(vm->json, "stats") : NULL;

	return s && json_object_is_type(s, json_type_object);
}

#define VM_U64(fn, key, group, stat)                                                               \
	_public_ uint64_t vpm_vm_get_##fn(const struct vpm_vm *vm)                                 \
	{                                                                                          \
		return vm_u64(vm, key, group, stat);                                               \
	}
#define VM_DOUBLE(fn, group, stat)                                                                 \
	_public_ double vpm_vm_get_##fn(const struct vpm_vm *vm)                                   \
	{                                                                                          \
		return vm_double(vm, group, stat);                                                 \
	}

/* in the summary, and for VMs from the stats method in their statistics */
VM_U64(pages, "pages", NULL, NULL)
VM_U64(dram_pages, "dram_pages", "pages", "dram")
VM_U64(pm_pages, "pm_pages", "pages", "pm")
VM_U64(image_pages, "image_pages", "pages", "image")
VM_U64(epoch, "epoch", NULL, NULL)
VM_U64(epochs, "epochs", NULL, "epochs")
VM_U64(ops, "ops", NULL, "ops")
VM_U64(faults, "faults", NULL, "faults")
VM_U64(promotions, "promotions", "migrations", "promotions")
VM_U64(demotions, "demotions", "migrations", "demotions")
VM_U64(pause_usec_max, "pause_usec_max", "pause_usec", "max")
VM_U64(pm_target, "pm_target", NULL, NULL)
VM_U64(dram_share, "dram_share", NULL, NULL)
VM_U64(migrating_pages, "migrating_pages", NULL, NULL)
VM_U64(dirty_pages, "dirty_pages", NULL, NULL)
VM_U64(page_table_bytes, "page_table_bytes", NULL, NULL)
VM_U64(stage_bytes, "stage_bytes", NULL, NULL)
VM_U64(epoch_interval_usec, "epoch_interval_usec", NULL, NULL)

/* statistics only */
VM_U64(pause_usec_p50, NULL, "pause_usec", "p50")
VM_U64(pause_usec_p99, NULL, "pause_usec", "p99")
VM_U64(pause_samples, NULL, "pause_usec", "samples")
VM_U64(dirty_pages_last_epoch, NULL, "dirty_pages_per_epoch", "last")
VM_U64(log_bytes, NULL, NULL, "log_bytes")
VM_U64(pm_bytes_written, NULL, NULL, "pm_bytes_written")
VM_U64(migrated_bytes, NULL, "migrations", "bytes")
VM_U64(loss_window_usec, NULL, NULL, "loss_window_usec")
VM_U64(hints_persist, NULL, "hints", "persist")
VM_U64(hints_discard, NULL, "hints", "discard")
VM_DOUBLE(dirty_pages_per_epoch, "dirty_pages_per_epoch", "mean")
VM_DOUBLE(modeled_ops_per_sec, NULL, "modeled_ops_per_sec")
VM_DOUBLE(wall_ops_per_sec, NULL, "wall_ops_per_sec")

_public_ const char *vpm_vm_get_device_pool(const struct vpm_vm *vm)
{
	return vm ? vpm_json_str(vpm_json_child(vm->json, "device"), "pool") : NULL;
}

_public_ int vpm_vm_get_device_index(const struct vpm_vm *vm)
{
	return vm ? vpm_json_int(vpm_json_child(vm->json, "device"), "index", -1) : -1;
}

_public_ const char *vpm_vm_get_device_image(const struct vpm_vm *vm)
{
	return vm ? vpm_json_str(vpm_json_child(vm->json, "device"), "image") : NULL;
}

/* ---- libvirt's view ---- */

_public_ bool vpm_vm_list_has_libvirt(const struct vpm_vm_list *l)
{
	return l && l->libvirt;
}

_public_ const char *vpm_vm_list_get_libvirt_uri(const struct vpm_vm_list *l)
{
	return l ? vpm_json_str(l->libvirt, "uri") : NULL;
}

_public_ bool vpm_vm_list_is_libvirt_connected(const struct vpm_vm_list *l)
{
	return l && vpm_json_bool(l->libvirt, "connected");
}

_public_ const char *vpm_vm_list_get_libvirt_error(const struct vpm_vm_list *l)
{
	return l ? vpm_json_str(l->libvirt, "last_error") : NULL;
}

_public_ struct vpm_libvirt_vm *vpm_libvirt_vm_get_first(struct vpm_vm_list *l)
{
	return l && l->n_libvirt ? &l->libvirt_vms[0] : NULL;
}

_public_ struct vpm_libvirt_vm *vpm_libvirt_vm_get_next(struct vpm_libvirt_vm *v)
{
	if (!v || v->index + 1 >= v->list->n_libvirt)
		return NULL;
	return &v->list->libvirt_vms[v->index + 1];
}

_public_ const char *vpm_libvirt_vm_get_name(const struct vpm_libvirt_vm *v)
{
	return v ? vpm_json_str(v->json, "name") : NULL;
}

_public_ const char *vpm_libvirt_vm_get_uuid(const struct vpm_libvirt_vm *v)
{
	return v ? vpm_json_str(v->json, "uuid") : NULL;
}

_public_ const char *vpm_libvirt_vm_get_state(const struct vpm_libvirt_vm *v)
{
	return v ? vpm_json_str(v->json, "state") : NULL;
}

_public_ uint64_t vpm_libvirt_vm_get_pm_pages(const struct vpm_libvirt_vm *v)
{
	return v ? vpm_json_u64(v->json, "pm_pages") : 0;
}

_public_ const char *vpm_libvirt_vm_get_problem(const struct vpm_libvirt_vm *v)
{
	return v ? vpm_json_str(v->json, "problem") : NULL;
}

_public_ bool vpm_libvirt_vm_is_attached(const struct vpm_libvirt_vm *v)
{
	return v && vpm_json_bool(v->json, "attached");
}

_public_ bool vpm_libvirt_vm_is_reserved(const struct vpm_libvirt_vm *v)
{
	return v && vpm_json_bool(v->json, "reserved");
}

_public_ double vpm_libvirt_vm_get_policy_ratio(const struct vpm_libvirt_vm *v)
{
	return v ? vpm_json_double(vpm_json_child(v->json, "policy"), "ratio") : 0;
}

_public_ const char *vpm_libvirt_vm_get_policy_mode(const struct vpm_libvirt_vm *v)
{
	return v ? vpm_json_str(vpm_json_child(v->json, "policy"), "mode") : NULL;
}

/* ---- vm-show ---- */

_public_ int vpm_vm_show(struct vpm_ctx *ctx, const char *name, struct vpm_vm **ret_vm)
{
	_cleanup_json_ struct json_object *params = NULL, *result = NULL;
	struct json_object *vm;
	struct vpm_vm_list *l;
	int r;

	if (!name || !ret_vm)
		return vpm_set_error(EINVAL, "vpm_vm_show: %s is NULL", name ? "ret_vm" : "name");
	if (!*name)
		return vpm_set_error(EINVAL, "vpm_vm_show: the VM name is empty");
	params = json_object_new_object();
	if (!params || json_add(params, "name", json_object_new_string(name)) < 0)
		return vpm_set_error(ENOMEM, "out of memory");
	r = vpm_call(ctx, "vm-show", params, &result);
	if (r < 0)
		return r;
	vm = vpm_json_child(result, "vm");
	if (!vm || !json_object_is_type(vm, json_type_object))
		return vpm_set_error(EPROTO, "bad reply from vpmd to 'vm-show': no \"vm\" object");
	/* a list of this one VM, holding the reply */
	if (vpm_vm_list_build(TAKE_PTR(result), vm, &l) < 0)
		return vpm_set_error(ENOMEM, "out of memory");
	*ret_vm = &l->vms[0];
	return 0;
}

/* ---- vm-set ---- */

/* Send vm-set for name (NULL: all VMs) with one setting, which this takes even on failure. */
static int add_attach_params(struct json_object *p, const char *name, pid_t pid, uint64_t gpa,
			     uint64_t size, double ratio, const char *mode, const char *policy)
{
	int r = 0;

	r |= json_add(p, "name", json_object_new_string(name));
	r |= json_add(p, "pid", json_object_new_uint64((uint64_t)pid));
	r |= json_add(p, "gpa", json_object_new_uint64(gpa));
	r |= json_add(p, "size", json_object_new_uint64(size));
	if (ratio > 0)
		r |= json_add(p, "ratio", json_object_new_double(ratio));
	if (mode)
		r |= json_add(p, "mode", json_object_new_string(mode));
	if (policy)
		r |= json_add(p, "policy", json_object_new_string(policy));
	return r;
}

_public_ int vpm_vm_attach_kvm(struct vpm_ctx *ctx, const char *name, pid_t pid, uint64_t gpa,
			       uint64_t size, double ratio, const char *mode, const char *policy,
			       struct vpm_vm **ret_vm)
{
	_cleanup_json_ struct json_object *params = NULL, *result = NULL;
	struct json_object *vm;
	struct vpm_vm_list *l;
	int r;

	if (!name || !*name || !ret_vm)
		return vpm_set_error(EINVAL, "vpm_vm_attach_kvm: %s", !ret_vm ? "ret_vm is NULL"
								 : "the VM name is empty");
	if (pid <= 0 || size == 0 || gpa % 4096 || size % 4096)
		return vpm_set_error(EINVAL,
				     "vpm_vm_attach_kvm: VM '%s' needs its VMM's pid and a vPM range "
				     "of whole 4 KiB pages (got pid %d, 0x%llx+0x%llx)",
				     name, (int)pid, (unsigned long long)gpa,
				     (unsigned long long)size);
	if (ratio != 0 && !ratio_valid(ratio))
		return vpm_set_error(EINVAL, "ratio %g is out of range: use a finite number from 1 "
					     "to %d (or 0 for vpmd's default)",
				     ratio, VPM_RATIO_MAX);
	params = json_object_new_object();
	if (!params || add_attach_params(params, name, pid, gpa, size, ratio, mode, policy) < 0)
		return vpm_set_error(ENOMEM, "out of memory");
	r = vpm_call(ctx, "attach", params, &result);
	if (r < 0)
		return r;
	vm = vpm_json_child(result, "vm");
	if (!vm || !json_object_is_type(vm, json_type_object))
		return vpm_set_error(EPROTO, "bad reply from vpmd to 'attach': no \"vm\" object");
	if (vpm_vm_list_build(TAKE_PTR(result), vm, &l) < 0)
		return vpm_set_error(ENOMEM, "out of memory");
	*ret_vm = &l->vms[0];
	return 0;
}

static int vm_set(struct vpm_ctx *ctx, const char *fn, const char *name, const char *key,
		  struct json_object *value)
{
	_cleanup_json_ struct json_object *params = NULL, *result = NULL;
	int r;

	if (!value)
		return vpm_set_error(ENOMEM, "out of memory");
	params = json_object_new_object();
	if (!params || json_add(params, key, value) < 0)
		return vpm_set_error(ENOMEM, "out of memory");
	if (name) {
		if (!*name)
			return vpm_set_error(EINVAL,
					     "%s: the VM name is empty (NULL means all VMs)", fn);
		r = json_add(params, "name", json_object_new_string(name));
	} else
		r = json_add(params, "all", json_object_new_boolean(true));
	if (r < 0)
		return vpm_set_error(ENOMEM, "out of memory");
	vpm_set_warnings(NULL);
	r = vpm_call(ctx, "vm-set", params, &result);
	if (r >= 0)
		vpm_set_warnings(result);
	return r;
}

_public_ int vpm_vm_set_ratio(struct vpm_ctx *ctx, const char *name, double ratio)
{
	if (!ratio_valid(ratio))
		return vpm_set_error(EINVAL,
				     "ratio %g is out of range: use a finite number from 1 (every "
				     "page on PM) to %d",
				     ratio, VPM_RATIO_MAX);
	return vm_set(ctx, "vpm_vm_set_ratio", name, "ratio", json_object_new_double(ratio));
}

_public_ int vpm_vm_set_mode(struct vpm_ctx *ctx, const char *name, const char *mode)
{
	if (!mode || !*mode)
		return vpm_set_error(EINVAL,
				     "vpm_vm_set_mode: mode is %s; use native, epoch or hint",
				     mode ? "empty" : "NULL");
	return vm_set(ctx, "vpm_vm_set_mode", name, "mode", json_object_new_string(mode));
}

_public_ int vpm_vm_set_policy(struct vpm_ctx *ctx, const char *name, const char *policy)
{
	if (!policy || !*policy)
		return vpm_set_error(EINVAL,
				     "vpm_vm_set_policy: policy is %s; use vpm, static, random, "
				     "lru or oracle",
				     policy ? "empty" : "NULL");
	return vm_set(ctx, "vpm_vm_set_policy", name, "policy", json_object_new_string(policy));
}

_public_ int vpm_vm_set_priority(struct vpm_ctx *ctx, const char *name, int priority)
{
	if (priority < 0 || priority > 100)
		return vpm_set_error(EINVAL,
				     "priority %d is out of range: use an integer from 0 "
				     "to 100 (higher migrates first and keeps DRAM longer)",
				     priority);
	return vm_set(ctx, "vpm_vm_set_priority", name, "priority", json_object_new_int(priority));
}
