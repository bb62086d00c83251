// SPDX-License-Identifier: LGPL-2.1-or-later
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "macro.h"
#include "parse-util.h"

struct unit {
	const char *suffix;
	uint64_t factor;
};

static const struct unit size_units[] = {
	{ "EiB", UINT64_C(1) << 60 }, { "PiB", UINT64_C(1) << 50 }, { "TiB", UINT64_C(1) << 40 },
	{ "GiB", UINT64_C(1) << 30 }, { "MiB", UINT64_C(1) << 20 }, { "KiB", UINT64_C(1) << 10 },
	{ "E", UINT64_C(1) << 60 },   { "P", UINT64_C(1) << 50 },   { "T", UINT64_C(1) << 40 },
	{ "G", UINT64_C(1) << 30 },   { "M", UINT64_C(1) << 20 },   { "K", UINT64_C(1) << 10 },
	{ "B", 1 },		      { "", 1 },
};

static const struct unit time_units[] = {
	{ "usec", 1 },
	{ "us", 1 },
	{ "msec", USEC_PER_MSEC },
	{ "ms", USEC_PER_MSEC },
	{ "min", 60 * USEC_PER_SEC },
	{ "sec", USEC_PER_SEC },
	{ "s", USEC_PER_SEC },
	{ "h", 3600 * USEC_PER_SEC },
	{ "", USEC_PER_MSEC },
};

/* Parse "<decimal>[.<decimal>]<unit>" scaled by the unit's factor, without floating point. */
static int parse_scaled(const char *s, const struct unit *units, size_t n_units, uint64_t *ret)
{
	const char *p = s, *end;
	uint64_t whole = 0, frac = 0, frac_div = 1;

	while (isspace((unsigned char)*p))
		p++;
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		if (whole > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		whole = whole * 10 + (uint64_t)(*p - '0');
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++) {
			if (frac_div >= UINT64_C(1000000000000))
				continue; /* ignore digits beyond 12 decimals */
			frac = frac * 10 + (uint64_t)(*p - '0');
			frac_div *= 10;
		}
	}
	while (isspace((unsigned char)*p))
		p++;
	end = p + strlen(p);
	while (end > p && isspace((unsigned char)end[-1]))
		end--;

	for (size_t i = 0; i < n_units; i++) {
		size_t l = strlen(units[i].suffix);
		uint64_t f = units[i].factor, v;

		if ((size_t)(end - p) != l || strncasecmp(p, units[i].suffix, l) != 0)
			continue;
		if (whole > UINT64_MAX / f)
			return -ERANGE;
		v = whole * f;
		/* frac/frac_div * f, computed without overflow for f <= 2^60 and frac_div <= 10^12 */
		v += (uint64_t)((long double)frac * (long double)f / (long double)frac_div);
		if (v < whole * f)
			return -ERANGE;
		*ret = v;
		return 0;
	}
	return -EINVAL;
}

int parse_size(const char *s, uint64_t *ret_bytes)
{
	uint64_t v;
	int r;

	r = parse_scaled(s, size_units, ELEMENTSOF(size_units), &v);
	if (r < 0)
		return r;
	if (v > (UINT64_C(1) << 63))
		return -ERANGE;
	*ret_bytes = v;
	return 0;
}

int parse_duration(const char *s, uint64_t *ret_usec)
{
	return parse_scaled(s, time_units, ELEMENTSOF(time_units), ret_usec);
}

bool ratio_valid(double r)
{
	return isfinite(r) && r >= 1.0 && r <= VPM_RATIO_MAX;
}

int parse_ratio(const char *s, double *ret)
{
	char *end = NULL;
	double v;

	/* digits and one dot only: no "inf", "nan", hex floats, signs or exponents */
	if (!isdigit((unsigned char)*s) || strspn(s, "0123456789.") != strlen(s))
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end != '\0' || !ratio_valid(v))
		return -ERANGE;
	*ret = v;
	return 0;
}

int parse_uint_range(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	char *end = NULL;
	unsigned long long v;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (*end != '\0')
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

int parse_boolean(const char *s, bool *ret)
{
	static const char *const yes[] = { "1", "yes", "y", "true", "t", "on" };
	static const char *const no[] = { "0", "no", "n", "false", "f", "off" };

	for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

int parse_mode(const char *s, mode_t *ret)
{
	char *end = NULL;
	unsigned long v;

	if (*s < '0' || *s > '7')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 8);
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	if (v > 07777)
		return -ERANGE;
	*ret = (mode_t)v;
	return 0;
}

char *format_bytes(char *buf, size_t len, uint64_t bytes)
{
	static const char *const suffix[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	size_t i = 0;
	double v = (double)bytes;

	while (v >= 1024.0 && i + 1 < ELEMENTSOF(suffix)) {
		v /= 1024.0;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%" PRIu64 " B", bytes);
	else if (bytes % (UINT64_C(1) << (10 * i)) == 0)
		snprintf(buf, len, "%.0f %s", v, suffix[i]);
	else
		snprintf(buf, len, "%.1f %s", v, suffix[i]);
	return buf;
}

char *format_duration(char *buf, size_t len, uint64_t usec)
{
	uint64_t s = usec / USEC_PER_SEC;

	if (usec < USEC_PER_MSEC)
		snprintf(buf, len, "%" PRIu64 "us", usec);
	else if (usec < USEC_PER_SEC)
		snprintf(buf, len, "%" PRIu64 "ms", usec / USEC_PER_MSEC);
	else if (s < 60)
		snprintf(buf, len, "%" PRIu64 ".%03" PRIu64 "s", s, (usec % USEC_PER_SEC) / 1000);
	else if (s < 3600)
		snprintf(buf, len, "%" PRIu64 "min %" PRIu64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%" PRIu64 "h %" PRIu64 "min", s / 3600, (s % 3600) / 60);
	else
		snprintf(buf, len, "%" PRIu64 "d %" PRIu64 "h", s / 86400, (s % 86400) / 3600);
	return buf;
}

uint64_t now_usec(int clock_id)
{
	struct timespec ts;

	clock_gettime(clock_id, &ts);
	return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / NSEC_PER_USEC;
}

bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned n, c = *p;
		uint32_t cp;

		if (c < 0x80) {
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		for (unsigned i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		p += n + 1;
	}
	return true;
}

char *sanitize_text(char *buf, size_t len, const char *s, size_t max)
{
	size_t i = 0;

	if (len == 0)
		return buf;
	for (; s[i] && i < max && i + 1 < len; i++)
		buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

void errbuf_printf(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!errbuf || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}
