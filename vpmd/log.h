/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VPMD_LOG_H
#define VPMD_LOG_H

#include <syslog.h>

#include "macro.h"

/*
 * Daemon logging. Messages go to stderr; under systemd (JOURNAL_STREAM set) each line carries
 * a <N> priority prefix that journald understands. The *_errno variants set errno to the
 * given error so that "%m" prints it, and return the negative error so that a caller can
 * log and return in one statement.
 */
void log_set_max_level(int level);
int log_get_max_level(void);
int log_level_from_string(const char *s);
const char *log_level_to_string(int level);
void log_open(void);
/* Send messages to syslog instead of stderr (a detached daemon without a terminal). */
void log_use_syslog(void);

int log_internal(int level, int error, const char *file, int line, const char *fmt, ...)
	_printf_(5, 6);

#define log_full_errno(level, error, ...)                                                          \
	({                                                                                         \
		int _l = (level), _e = (error);                                                    \
		(log_get_max_level() >= _l) ? log_internal(_l, _e, __FILE__, __LINE__, __VA_ARGS__) \
					     : -abs(_e);                                          \
	})

#define log_full(level, ...) (void)log_full_errno(level, 0, __VA_ARGS__)

#define log_debug(...)   log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)    log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...)  log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...)   log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...)   log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...)    log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_ERR, e, __VA_ARGS__)

/* Out of memory is logged the same way everywhere. */
#define log_oom() log_error_errno(ENOMEM, "Out of memory.")

#endif /* VPMD_LOG_H */
