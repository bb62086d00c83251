// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "json-util.h"
#include "macro.h"
#include "parse-util.h"
#include "protocol.h"

void vpm_request_done(struct vpm_request *req)
{
	free(req->method);
	req->method = NULL;
	if (req->params)
		json_object_put(req->params);
	req->params = NULL;
}

/* Parse exactly one JSON value spanning the whole buffer, with bounded depth. */
static int parse_json_message(const char *buf, size_t len, struct json_object **ret, char *errbuf,
			      size_t errlen)
{
	struct json_tokener *tok;
	struct json_object *obj;
	enum json_tokener_error jerr;
	size_t parsed;

	if (len == 0) {
		errbuf_printf(errbuf, errlen, "empty message");
		return -EBADMSG;
	}
	if (len > INT32_MAX || memchr(buf, '\0', len)) {
		errbuf_printf(errbuf, errlen, "message contains a NUL byte before its end");
		return -EBADMSG;
	}

	tok = json_tokener_new_ex(VPM_JSON_MAX_DEPTH);
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	parsed = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);

	if (jerr == json_tokener_continue) {
		json_object_putp(&obj);
		errbuf_printf(errbuf, errlen, "truncated JSON message");
		return -EBADMSG;
	}
	if (jerr != json_tokener_success || !obj) {
		json_object_putp(&obj);
		errbuf_printf(errbuf, errlen, "malformed JSON at offset %zu: %s", parsed,
			json_tokener_error_desc(jerr));
		return jerr == json_tokener_error_depth ? -ELOOP : -EBADMSG;
	}
	/* Only whitespace may follow the value. */
	for (size_t i = parsed; i < len; i++)
		if (!strchr(" \t\r\n", buf[i])) {
			json_object_put(obj);
			errbuf_printf(errbuf, errlen, "trailing data after JSON object at offset %zu", i);
			return -EBADMSG;
		}
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		errbuf_printf(errbuf, errlen, "message is not a JSON object");
		return -EBADMSG;
	}
	*ret = obj;
	return 0;
}

static int check_protocol(struct json_object *msg, char *errbuf, size_t errlen)
{
	struct json_object *v;
	int64_t p;

	if (!json_object_object_get_ex(msg, "protocol", &v)) {
		errbuf_printf(errbuf, errlen, "missing \"protocol\" field (this vpmd speaks %d)",
			VPM_PROTOCOL_VERSION);
		return -EPROTO;
	}
	if (!json_object_is_type(v, json_type_int)) {
		errbuf_printf(errbuf, errlen, "\"protocol\" must be an integer");
		return -EINVAL;
	}
	p = json_object_get_int64(v);
	if (p != VPM_PROTOCOL_VERSION) {
		errbuf_printf(errbuf, errlen, "protocol version %" PRId64 " not supported (speaking %d)",
			p, VPM_PROTOCOL_VERSION);
		return -EPROTONOSUPPORT;
	}
	return 0;
}

int vpm_request_parse(const char *buf, size_t len, struct vpm_request *ret_req, char *errbuf,
		      size_t errlen)
{
	_cleanup_json_ struct json_object *msg = NULL;
	struct json_object *method = NULL, *params = NULL;
	int r;

	/* json-c cuts strings and keys at an escaped NUL: refuse rather than act on a prefix */
	if (memmem(buf, len, "\\u0000", 6)) {
		errbuf_printf(errbuf, errlen, "NUL characters (\\u0000) are not allowed in requests");
		return -EINVAL;
	}
	r = parse_json_message(buf, len, &msg, errbuf, errlen);
	if (r < 0)
		return r;
	r = check_protocol(msg, errbuf, errlen);
	if (r < 0)
		return r;

	json_object_object_foreach(msg, key, val)
	{
		if (streq(key, "protocol"))
			continue;
		if (streq(key, "method"))
			method = val;
		else if (streq(key, "params"))
			params = val;
		else {
			char safe[65];

			errbuf_printf(errbuf, errlen, "unknown request field \"%s\"",
				sanitize_text(safe, sizeof(safe), key, 64));
			return -EINVAL;
		}
	}
	if (!method || !json_object_is_type(method, json_type_string)) {
		errbuf_printf(errbuf, errlen, "\"method\" must be present and a string");
		return -EINVAL;
	}
	if (params && !json_object_is_type(params, json_type_object)) {
		errbuf_printf(errbuf, errlen, "\"params\" must be a JSON object");
		return -EINVAL;
	}

	ret_req->method = strdup(json_object_get_string(method));
	if (!ret_req->method)
		return -ENOMEM;
	ret_req->params = params ? json_object_get(params) : json_object_new_object();
	if (!ret_req->params) {
		vpm_request_done(ret_req);
		return -ENOMEM;
	}
	return 0;
}

static struct json_object *message_new(void)
{
	struct json_object *o = json_object_new_object();

	if (o && json_object_object_add(o, "protocol", json_object_new_int(VPM_PROTOCOL_VERSION))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

struct json_object *vpm_request_new(const char *method, struct json_object *params)
{
	_cleanup_json_ struct json_object *o = message_new();

	if (!o || json_add(o, "method", json_object_new_string(method)) < 0)
		return NULL;
	if (params && json_add(o, "params", json_object_get(params)) < 0)
		return NULL;
	return TAKE_PTR(o);
}

struct json_object *vpm_reply_new_result(struct json_object *result)
{
	_cleanup_json_ struct json_object *o = message_new();

	if (!o || json_add(o, "result", json_object_get(result)) < 0)
		return NULL;
	return TAKE_PTR(o);
}

struct json_object *vpm_reply_new_error(int error, const char *message)
{
	_cleanup_json_ struct json_object *o = message_new();
	_cleanup_json_ struct json_object *e = json_object_new_object();
	char name[32];

	error = abs(error);
	if (!o || !e)
		return NULL;
	if (json_add(e, "errno", json_object_new_int(error)) < 0 ||
	    json_add(e, "name", json_object_new_string(vpm_errno_name(error, name, sizeof(name)))) <
		    0 ||
	    json_add(e, "message", json_object_new_string(message ? message : strerror(error))) <
		    0)
		return NULL;
	if (json_add(o, "error", TAKE_PTR(e)) < 0)
		return NULL;
	return TAKE_PTR(o);
}

int vpm_reply_parse(const char *buf, size_t len, struct json_object **ret_result, int *ret_error,
		    char *errbuf, size_t errlen)
{
	_cleanup_json_ struct json_object *msg = NULL;
	struct json_object *result, *error, *v;
	int r;

	r = parse_json_message(buf, len, &msg, errbuf, errlen);
	if (r < 0)
		return -EBADMSG;
	r = check_protocol(msg, errbuf, errlen);
	if (r < 0)
		return r == -EPROTONOSUPPORT ? r : -EBADMSG;

	if (json_object_object_get_ex(msg, "error", &error)) {
		int64_t e = 0;
		const char *m = NULL;

		if (!json_object_is_type(error, json_type_object) ||
		    !json_object_object_get_ex(error, "errno", &v) ||
		    !json_object_is_type(v, json_type_int)) {
			errbuf_printf(errbuf, errlen, "malformed error reply from vpmd");
			return -EBADMSG;
		}
		e = json_object_get_int64(v);
		if (e <= 0 || e > 4095)
			e = EIO;
		if (json_object_object_get_ex(error, "message", &v) &&
		    json_object_is_type(v, json_type_string))
			m = json_object_get_string(v);
		errbuf_printf(errbuf, errlen, "%s", m ? m : strerror((int)e));
		*ret_error = -(int)e;
		return 0;
	}
	if (!json_object_object_get_ex(msg, "result", &result) ||
	    !json_object_is_type(result, json_type_object)) {
		errbuf_printf(errbuf, errlen, "reply from vpmd has neither a result object nor an error");
		return -EBADMSG;
	}
	*ret_result = json_object_get(result);
	*ret_error = 0;
	return 0;
}

char *vpm_message_serialize(struct json_object *msg, size_t *ret_len)
{
	size_t len = 0;
	const char *s = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN, &len);
	char *out;

	if (!s)
		return NULL;
	out = malloc(len + 1);
	if (!out)
		return NULL;
	memcpy(out, s, len + 1);
	if (ret_len)
		*ret_len = len;
	return out;
}

int vpm_json_get_string(struct json_object *obj, const char *key, const char **ret)
{
	struct json_object *v;

	if (!obj || !json_object_object_get_ex(obj, key, &v))
		return -ENOENT;
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	*ret = json_object_get_string(v);
	return 0;
}

int vpm_json_get_uint64(struct json_object *obj, const char *key, uint64_t *ret)
{
	struct json_object *v;

	if (!obj || !json_object_object_get_ex(obj, key, &v))
		return -ENOENT;
	if (!json_object_is_type(v, json_type_int))
		return -EINVAL;
	errno = 0;
	*ret = json_object_get_uint64(v);
	if (errno != 0 || (json_object_get_int64(v) < 0 && *ret == 0))
		return -ERANGE;
	return 0;
}

int vpm_json_get_bool(struct json_object *obj, const char *key, bool *ret)
{
	struct json_object *v;

	if (!obj || !json_object_object_get_ex(obj, key, &v))
		return -ENOENT;
	if (!json_object_is_type(v, json_type_boolean))
		return -EINVAL;
	*ret = json_object_get_boolean(v);
	return 0;
}

const char *vpm_errno_name(int error, char *buf, size_t len)
{
	const char *n = strerrorname_np(abs(error));

	if (n)
		return n;
	snprintf(buf, len, "%d", abs(error));
	return buf;
}
