// SPDX-License-Identifier: LGPL-2.1-or-later
/* libFuzzer target: control protocol messages, as vpmd parses requests and libvpm replies. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "json-util.h"
#include "protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vpm_request req = {};
	struct json_object *result = NULL;
	char err[512];

	if (vpm_request_parse((const char *)data, size, &req, err, sizeof(err)) == 0) {
		/* whatever parses must serialize again and parse to the same method */
		_cleanup_json_ struct json_object *again = vpm_request_new(req.method, req.params);
		char *text = again ? vpm_message_serialize(again, NULL) : NULL;

		if (text) {
			struct vpm_request req2 = {};
			size_t len = 0;

			while (text[len])
				len++;
			if (vpm_request_parse(text, len, &req2, err, sizeof(err)) != 0)
				abort();
			vpm_request_done(&req2);
		}
		free(text);
		vpm_request_done(&req);
	}
	int remote = 0;

	if (vpm_reply_parse((const char *)data, size, &result, &remote, err, sizeof(err)) == 0 &&
	    remote == 0)
		json_object_put(result);
	return 0;
}
