/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef LIBVPM_PRIVATE_H
#define LIBVPM_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "macro.h"
#include "vpm/libvpm.h"

/* Record the calling thread's error message; returns -abs(error). */
/* Keep the "warnings" of a successful reply for vpm_warningmsg(). */
struct json_object;
void vpm_set_warnings(struct json_object *result);
int vpm_set_error(int error, const char *fmt, ...) _printf_(2, 3);

/* Send one request and wait for its reply; on success *ret_result is a new reference. */
int vpm_call(struct vpm_ctx *ctx, const char *method, struct json_object *params,
	     struct json_object **ret_result);

/* Lenient field access for reply objects: missing or mistyped fields read as 0/NULL. */
const char *vpm_json_str(struct json_object *o, const char *key);
uint64_t vpm_json_u64(struct json_object *o, const char *key);
int vpm_json_int(struct json_object *o, const char *key, int fallback);
bool vpm_json_bool(struct json_object *o, const char *key);
/* A JSON number (integer or not) as a double; 0 when missing or of another type. */
double vpm_json_double(struct json_object *o, const char *key);
struct json_object *vpm_json_child(struct json_object *o, const char *key);
/* The array under key in o and its length; NULL and 0 when o has no such array. */
size_t vpm_json_array(struct json_object *o, const char *key, struct json_object **ret_array);
const char *vpm_json_text(struct json_object *o, bool pretty);

/*
 * A VM list over the objects of array, which is a JSON array, one VM object or NULL (no VMs),
 * and lives in json. Takes the caller's reference to json, even on failure. 0 or -ENOMEM.
 */
int vpm_vm_list_build(struct json_object *json, struct json_object *array,
		      struct vpm_vm_list **ret_list);

#endif
