// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <stdlib.h>

#include "json-util.h"
#include "libvpm-private.h"

struct vpm_vm {
	struct vpm_vm_list *list;
	size_t index;
	struct json_object *json;
};

struct vpm_vm_list {
	unsigned refcount;
	struct json_object *json;
	struct vpm_vm *vms;
	size_t n;
};

_public_ int vpm_vm_list_get(struct vpm_ctx *ctx, struct vpm_vm_list **ret_list)
{
	_cleanup_json_ struct json_object *result = NULL;
	struct json_object *a;
	struct vpm_vm_list *l;
	int r;

	if (!ret_list)
		return vpm_set_error(EINVAL, "vpm_vm_list_get: ret_list is NULL");
	r = vpm_call(ctx, "vms", NULL, &result);
	if (r < 0)
		return r;
	l = calloc(1, sizeof(*l));
	if (!l)
		return vpm_set_error(ENOMEM, "out of memory");
	l->refcount = 1;
	l->json = TAKE_PTR(result);
	l->n = vpm_json_array(l->json, "vms", &a);
	if (l->n) {
		l->vms = calloc(l->n, sizeof(*l->vms));
		if (!l->vms) {
			vpm_vm_list_unref(l);
			return vpm_set_error(ENOMEM, "out of memory");
		}
	}
	for (size_t i = 0; i < l->n; i++)
		l->vms[i] = (struct vpm_vm){ .list = l, .index = i,
					     .json = json_object_array_get_idx(a, i) };
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

_public_ const char *vpm_vm_get_name(const struct vpm_vm *vm)
{
	return vm ? vpm_json_str(vm->json, "name") : NULL;
}

_public_ const char *vpm_vm_get_mode(const struct vpm_vm *vm)
{
	return vm ? vpm_json_str(vm->json, "mode") : NULL;
}

_public_ unsigned vpm_vm_get_vcpus(const struct vpm_vm *vm)
{
	return vm ? (unsigned)vpm_json_int(vm->json, "vcpus", 0) : 0;
}

#define VM_U64(fn, key)                                                                            \
	_public_ uint64_t vpm_vm_get_##fn(const struct vpm_vm *vm)                                 \
	{                                                                                          \
		return vm ? vpm_json_u64(vm->json, key) : 0;                                       \
	}

VM_U64(pages, "pages")
VM_U64(dram_pages, "dram_pages")
VM_U64(pm_pages, "pm_pages")
VM_U64(epoch, "epoch")
VM_U64(epochs, "epochs")
VM_U64(ops, "ops")
