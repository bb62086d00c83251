// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "latency.h"
#include "macro.h"
#include "parse-util.h"

int latency_model_parse(const char *s, struct latency_model *m)
{
	struct latency_model n = *m;
	_cleanup_free_ char *copy = strdup(s);
	char *save = NULL;

	if (!copy)
		return -ENOMEM;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		uint64_t v;
		uint32_t *field;

		if (!eq)
			return -EINVAL;
		*eq = '\0';
		if (streq(tok, "dram_read"))
			field = &n.dram_read_ns;
		else if (streq(tok, "dram_write"))
			field = &n.dram_write_ns;
		else if (streq(tok, "pm_read"))
			field = &n.pm_read_ns;
		else if (streq(tok, "pm_write"))
			field = &n.pm_write_ns;
		else if (streq(tok, "fault"))
			field = &n.fault_ns;
		else
			return -EINVAL;
		if (parse_uint_range(eq + 1, 1, 100000, &v) < 0)
			return -ERANGE;
		*field = (uint32_t)v;
	}
	*m = n;
	return 0;
}
