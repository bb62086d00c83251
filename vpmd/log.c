// SPDX-License-Identifier: LGPL-2.1-or-later
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

static int max_level = LOG_INFO;
static bool prefix_priority;
static bool use_syslog;

static const char *const level_names[] = {
	[LOG_EMERG] = "emerg",	 [LOG_ALERT] = "alert",	  [LOG_CRIT] = "crit",
	[LOG_ERR] = "err",	 [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
	[LOG_INFO] = "info",	 [LOG_DEBUG] = "debug",
};

void log_open(void)
{
	/* journald connects stderr to a stream that understands <N> prefixes. */
	prefix_priority = getenv("JOURNAL_STREAM") != NULL;
}

void log_use_syslog(void)
{
	openlog("vpmd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	use_syslog = true;
}

void log_set_max_level(int level)
{
	max_level = level;
}

int log_get_max_level(void)
{
	return max_level;
}

int log_level_from_string(const char *s)
{
	for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return (int)i;
	if (strcasecmp(s, "error") == 0)
		return LOG_ERR;
	return -EINVAL;
}

const char *log_level_to_string(int level)
{
	if (level < 0 || (size_t)level >= ELEMENTSOF(level_names))
		return NULL;
	return level_names[level];
}

int log_internal(int level, int error, const char *file, int line, const char *fmt, ...)
{
	int saved = errno;
	char buf[2048];
	va_list ap;

	errno = abs(error);
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);

	if (use_syslog)
		syslog(level, "%s", buf);
	else if (prefix_priority)
		fprintf(stderr, "<%d>%s\n", level, buf);
	else if (max_level >= LOG_DEBUG)
		fprintf(stderr, "vpmd[%s:%d]: %s\n", file, line, buf);
	else
		fprintf(stderr, "vpmd: %s\n", buf);

	errno = saved;
	return -abs(error);
}
