/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The vpmd control protocol, shared by vpmd and libvpm.
 *
 * Transport: AF_UNIX stream socket. Each message is one JSON object followed by a NUL byte
 * (the framing varlink uses). A client sends one request and reads one reply before it
 * sends the next.
 *
 *   request: {"protocol": 1, "method": "status", "params": {...}}      params optional
 *   reply:   {"protocol": 1, "result": {...}}
 *        or: {"protocol": 1, "error": {"errno": 13, "name": "EACCES", "message": "..."}}
 */
#ifndef VPM_COMMON_PROTOCOL_H
#define VPM_COMMON_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#define VPM_PROTOCOL_VERSION 1

/* Requests larger than this are refused (vpmd's max_request_size may lower it). */
#define VPM_REQUEST_MAX_DEFAULT (256u * 1024u) /* a hook's domain XML fits */
#define VPM_REQUEST_MAX_LIMIT   (1024u * 1024u)
/* Replies larger than this are refused by clients. */
#define VPM_REPLY_MAX (16u * 1024u * 1024u)
/* Maximum JSON nesting accepted in either direction. */
#define VPM_JSON_MAX_DEPTH 16

#define VPM_DEFAULT_SOCKET "/run/vpmd/vpmd.sock"

enum vpm_access {
	VPM_ACCESS_NONE,   /* may not talk to vpmd at all */
	VPM_ACCESS_READ,   /* may query state */
	VPM_ACCESS_CHANGE, /* may change state (root) */
};

struct vpm_request {
	char *method;             /* owned */
	struct json_object *params; /* owned reference; an empty object when absent */
};

void vpm_request_done(struct vpm_request *req);

/*
 * Parse one request message (without its NUL terminator). On failure returns -errno and
 * writes a message fit for the peer into errbuf.
 */
int vpm_request_parse(const char *buf, size_t len, struct vpm_request *ret_req, char *errbuf,
		      size_t errlen);

/* Build request and replies; each returns a new reference or NULL on OOM. */
struct json_object *vpm_request_new(const char *method, struct json_object *params);
struct json_object *vpm_reply_new_result(struct json_object *result);
struct json_object *vpm_reply_new_error(int error, const char *message);

/*
 * Parse one reply message. A well-formed reply returns 0: either *ret_error is 0 and
 * *ret_result holds a new reference to the result, or *ret_error is vpmd's negative errno
 * and errbuf its message. A malformed reply returns -EBADMSG, another protocol version
 * -EPROTONOSUPPORT, each with errbuf saying why.
 */
int vpm_reply_parse(const char *buf, size_t len, struct json_object **ret_result, int *ret_error,
		    char *errbuf, size_t errlen);

/* Serialize a message into a newly allocated NUL-terminated string; *ret_len excludes NUL. */
char *vpm_message_serialize(struct json_object *msg, size_t *ret_len);

/* Typed getters for params and results: -ENOENT when missing (and !required -> 0). */
int vpm_json_get_string(struct json_object *obj, const char *key, const char **ret);
int vpm_json_get_uint64(struct json_object *obj, const char *key, uint64_t *ret);
int vpm_json_get_bool(struct json_object *obj, const char *key, bool *ret);

/* "EACCES" for 13; a decimal string for unknown values. */
const char *vpm_errno_name(int error, char *buf, size_t len);

#endif
