/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VPM_COMMON_PARSE_UTIL_H
#define VPM_COMMON_PARSE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define USEC_PER_SEC  UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)
#define NSEC_PER_USEC UINT64_C(1000)

/* Format into errbuf (one line for the user), if there is one. */
void errbuf_printf(char *errbuf, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* "4096", "64K", "1.5G", "2TiB": binary multiples, at most 2^63. */
int parse_size(const char *s, uint64_t *ret_bytes);
/* "100ms", "30s", "2min", "250us", plain number = milliseconds. */
int parse_duration(const char *s, uint64_t *ret_usec);
/* Decimal unsigned integer within [min, max]. */
int parse_uint_range(const char *s, uint64_t min, uint64_t max, uint64_t *ret);
/* A consolidation ratio: "2", "1.5"; finite, from 1 to VPM_RATIO_MAX. */
#define VPM_RATIO_MAX 65536
int parse_ratio(const char *s, double *ret);
bool ratio_valid(double r);
/* yes/no/true/false/on/off/1/0 */
int parse_boolean(const char *s, bool *ret);
/* Octal file mode, at most 07777. */
int parse_mode(const char *s, mode_t *ret);

/* Human-readable sizes ("1.5 GiB") and durations ("2h 3min"). */
char *format_bytes(char *buf, size_t len, uint64_t bytes);
char *format_duration(char *buf, size_t len, uint64_t usec);

uint64_t now_usec(int clock_id);

/* True when s is valid UTF-8 (no overlongs, no surrogates). */
bool utf8_valid(const char *s);
/*
 * Copy at most max bytes of untrusted text into buf for a message: bytes that are not
 * printable ASCII become '?', so a message never carries invalid UTF-8 or control characters.
 */
char *sanitize_text(char *buf, size_t len, const char *s, size_t max);

#endif
