// SPDX-License-Identifier: LGPL-2.1-or-later
/* libFuzzer target: vpmd.conf parsing and validation. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vpmd_config *c = NULL;
	char *errors = NULL, *text;
	int r;

	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	r = config_load_string(text, "fuzz.conf", &c, &errors);
	/* exactly one of a configuration or an explanation */
	if ((r == 0) != (c != NULL) || (r == -EINVAL) != (errors != NULL))
		abort();
	config_free(c);
	free(errors);
	free(text);
	return 0;
}
