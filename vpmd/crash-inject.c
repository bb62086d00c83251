// SPDX-License-Identifier: LGPL-2.1-or-later
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crash-inject.h"

#ifdef VPM_CRASH_INJECT

static uint64_t passed;
static uint64_t crash_at;
static bool torn;
static bool loaded;
static void *saved; /* the old bytes of the part a torn write never wrote */
static size_t saved_off, saved_len;

static void report(void)
{
	const char *f = getenv("VPM_CRASH_REPORT");
	FILE *out;

	if (!f)
		return;
	out = fopen(f, "we");
	if (out) {
		fprintf(out, "points %llu\n", (unsigned long long)passed);
		fclose(out);
	}
}

static void load(void)
{
	const char *at = getenv("VPM_CRASH_AT"), *mode = getenv("VPM_CRASH_MODE");

	loaded = true;
	crash_at = at ? strtoull(at, NULL, 10) : 0;
	torn = mode && strcmp(mode, "torn") == 0;
	atexit(report);
}

void crash_point_enter(const char *name, void *dst, size_t len)
{
	if (!loaded)
		load();
	passed++;
	if (crash_at == 0 || passed != crash_at)
		return;
	if (getenv("VPM_CRASH_VERBOSE"))
		fprintf(stderr, "crash-inject: %s at point %llu (%s, %zu bytes)\n",
			torn ? "torn write" : "crash", (unsigned long long)passed, name, len);
	if (!torn || len < 16) {
		report();
		_exit(99);
	}
	/* keep what the second half holds now; leave() puts it back after the write */
	saved_off = (len / 2) & ~(size_t)7;
	saved_len = len - saved_off;
	saved = malloc(saved_len);
	if (!saved)
		_exit(98);
	memcpy(saved, (char *)dst + saved_off, saved_len);
}

void crash_point_leave(void *dst, size_t len, void (*persist)(const void *, size_t))
{
	if (!saved)
		return;
	memcpy((char *)dst + saved_off, saved, saved_len);
	if (persist)
		persist(dst, len);
	report();
	_exit(99);
}

uint64_t crash_points_passed(void)
{
	return passed;
}

#endif
