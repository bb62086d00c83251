/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VPM_COMMON_JSON_UTIL_H
#define VPM_COMMON_JSON_UTIL_H

#include <errno.h>
#include <json-c/json.h>

static inline void json_object_putp(struct json_object **o)
{
	if (*o)
		json_object_put(*o);
}
#define _cleanup_json_ __attribute__((cleanup(json_object_putp)))

/* Add v under key, taking ownership of v even on failure; -ENOMEM if v is NULL. */
static inline int json_add(struct json_object *o, const char *key, struct json_object *v)
{
	if (!v || json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

/* Add a JSON null under key (json-c represents null as a NULL pointer). */
static inline int json_add_null(struct json_object *o, const char *key)
{
	return json_object_object_add(o, key, NULL) < 0 ? -ENOMEM : 0;
}

/* Add a string, or null when s is NULL. */
static inline int json_add_string_or_null(struct json_object *o, const char *key, const char *s)
{
	return s ? json_add(o, key, json_object_new_string(s)) : json_add_null(o, key);
}

/* Append v to array a, taking ownership of v even on failure. */
static inline int json_append(struct json_object *a, struct json_object *v)
{
	if (!v || json_object_array_add(a, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

#endif
