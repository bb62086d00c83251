// SPDX-License-Identifier: LGPL-2.1-or-later
#include <stdio.h>
#include <string.h>

#include "check-main.h"
#include "json-util.h"
#include "protocol.h"

static int parse_req(const char *text, struct vpm_request *req, char *err, size_t errlen)
{
	return vpm_request_parse(text, strlen(text), req, err, errlen);
}

START_TEST(test_request_roundtrip)
{
	_cleanup_json_ struct json_object *params = json_object_new_object();
	_cleanup_json_ struct json_object *msg = NULL;
	struct vpm_request req = {};
	char err[256];
	size_t len;
	char *text;

	json_object_object_add(params, "vm", json_object_new_string("guest1"));
	msg = vpm_request_new("status", params);
	ck_assert_ptr_nonnull(msg);
	text = vpm_message_serialize(msg, &len);
	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(strlen(text), len);
	ck_assert_int_eq(vpm_request_parse(text, len, &req, err, sizeof(err)), 0);
	ck_assert_str_eq(req.method, "status");
	ck_assert_str_eq(json_object_get_string(json_object_object_get(req.params, "vm")),
			 "guest1");
	vpm_request_done(&req);
	free(text);

	/* params are optional and come back as an empty object */
	ck_assert_int_eq(parse_req("{\"protocol\":1,\"method\":\"pools\"}", &req, err, sizeof(err)),
			 0);
	ck_assert_int_eq(json_object_object_length(req.params), 0);
	vpm_request_done(&req);
}
END_TEST

START_TEST(test_request_errors)
{
	static const struct {
		const char *text;
		int error;
		const char *needle;
	} cases[] = {
		{ "", -EBADMSG, "empty" },
		{ "{\"protocol\":1,\"method\":\"status\"", -EBADMSG, "truncated" },
		{ "not json", -EBADMSG, "malformed" },
		{ "[1,2]", -EBADMSG, "not a JSON object" },
		{ "{\"protocol\":1,\"method\":\"x\"} trailing", -EBADMSG, "offset 28" },
		{ "{\"method\":\"status\"}", -EPROTO, "missing \"protocol\"" },
		{ "{\"protocol\":\"1\",\"method\":\"status\"}", -EINVAL, "must be an integer" },
		{ "{\"protocol\":2,\"method\":\"status\"}", -EPROTONOSUPPORT, "version 2" },
		{ "{\"protocol\":1}", -EINVAL, "\"method\"" },
		{ "{\"protocol\":1,\"method\":7}", -EINVAL, "\"method\"" },
		{ "{\"protocol\":1,\"method\":\"s\",\"params\":[]}", -EINVAL, "\"params\"" },
		{ "{\"protocol\":1,\"method\":\"s\",\"extra\":1}", -EINVAL, "unknown request field" },
		{ "{\"protocol\":1,\"method\":\"\xff\xfe\"}", -EBADMSG, "malformed" },
		{ "{\"protocol\":1,\"method\":\"status\\u0000x\"}", -EINVAL, "NUL" },
		{ "{\"protocol\":1,\"method\":\"s\",\"\xc3\xa9\":1}", -EINVAL, "field \"??\"" },
	};
	struct vpm_request req = {};
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		ck_assert_int_eq(parse_req(cases[i].text, &req, err, sizeof(err)), cases[i].error);
		ck_assert_msg(strstr(err, cases[i].needle), "case %zu: '%s' not in '%s'", i,
			      cases[i].needle, err);
		ck_assert_ptr_null(req.method);
	}
}
END_TEST

START_TEST(test_request_depth_and_nul)
{
	char deep[200], err[256];
	struct vpm_request req = {};
	size_t n = 0;

	n += (size_t)snprintf(deep, sizeof(deep), "{\"protocol\":1,\"method\":\"s\",\"params\":");
	for (int i = 0; i < 40; i++)
		deep[n++] = '[';
	deep[n] = '\0';
	ck_assert_int_lt(parse_req(deep, &req, err, sizeof(err)), 0);

	/* An embedded NUL is a framing error, never silently truncated. */
	ck_assert_int_eq(vpm_request_parse("{\"protocol\":1}\0xx", 17, &req, err, sizeof(err)),
			 -EBADMSG);
}
END_TEST

START_TEST(test_reply_roundtrip)
{
	_cleanup_json_ struct json_object *result = json_object_new_object();
	_cleanup_json_ struct json_object *reply = NULL, *err_reply = NULL, *got = NULL;
	char err[256], *text;
	size_t len;

	json_object_object_add(result, "answer", json_object_new_int(42));
	int remote = 1;

	reply = vpm_reply_new_result(result);
	text = vpm_message_serialize(reply, &len);
	ck_assert_int_eq(vpm_reply_parse(text, len, &got, &remote, err, sizeof(err)), 0);
	ck_assert_int_eq(remote, 0);
	ck_assert_int_eq(json_object_get_int(json_object_object_get(got, "answer")), 42);
	free(text);

	err_reply = vpm_reply_new_error(EACCES, "go away");
	text = vpm_message_serialize(err_reply, &len);
	ck_assert_ptr_nonnull(strstr(text, "\"name\":\"EACCES\""));
	ck_assert_int_eq(vpm_reply_parse(text, len, &got, &remote, err, sizeof(err)), 0);
	ck_assert_int_eq(remote, -EACCES);
	ck_assert_str_eq(err, "go away");
	free(text);

	/* vpmd reporting EBADMSG for a request is not a malformed reply */
	json_object_put(err_reply);
	err_reply = vpm_reply_new_error(EBADMSG, "your request was bad");
	text = vpm_message_serialize(err_reply, &len);
	ck_assert_int_eq(vpm_reply_parse(text, len, &got, &remote, err, sizeof(err)), 0);
	ck_assert_int_eq(remote, -EBADMSG);
	free(text);
}
END_TEST

START_TEST(test_reply_errors)
{
	struct json_object *got = NULL;
	char err[256];
	const char *t;
	int remote = 0;

	t = "{\"protocol\":1}";
	ck_assert_int_eq(vpm_reply_parse(t, strlen(t), &got, &remote, err, sizeof(err)), -EBADMSG);
	t = "{\"protocol\":3,\"result\":{}}";
	ck_assert_int_eq(vpm_reply_parse(t, strlen(t), &got, &remote, err, sizeof(err)),
			 -EPROTONOSUPPORT);
	t = "{\"protocol\":1,\"error\":{\"errno\":\"x\"}}";
	ck_assert_int_eq(vpm_reply_parse(t, strlen(t), &got, &remote, err, sizeof(err)), -EBADMSG);
	/* An out-of-range errno from a confused server does not leak through. */
	t = "{\"protocol\":1,\"error\":{\"errno\":-5,\"message\":\"m\"}}";
	ck_assert_int_eq(vpm_reply_parse(t, strlen(t), &got, &remote, err, sizeof(err)), 0);
	ck_assert_int_eq(remote, -EIO);
	ck_assert_ptr_null(got);
}
END_TEST

START_TEST(test_errno_name)
{
	char buf[16];

	ck_assert_str_eq(vpm_errno_name(EACCES, buf, sizeof(buf)), "EACCES");
	ck_assert_str_eq(vpm_errno_name(-EPERM, buf, sizeof(buf)), "EPERM");
	ck_assert_str_eq(vpm_errno_name(4000, buf, sizeof(buf)), "4000");
}
END_TEST

static Suite *protocol_suite(void)
{
	Suite *s = suite_create("protocol");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_request_roundtrip);
	tcase_add_test(tc, test_request_errors);
	tcase_add_test(tc, test_request_depth_and_nul);
	tcase_add_test(tc, test_reply_roundtrip);
	tcase_add_test(tc, test_reply_errors);
	tcase_add_test(tc, test_errno_name);
	suite_add_tcase(s, tc);
	return s;
}

VPM_CHECK_MAIN(protocol_suite)
