/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Crash injection at persist points (compiled in with VPM_CRASH_INJECT: the crash tests' copy
 * of vpmd's code has it, vpmd itself does not).
 *
 * Every write that vpmd makes durable goes through crash_point_enter() before it starts and
 * crash_point_leave() once it is in place but before it is persisted. With
 * VPM_CRASH_AT=N in the environment the process dies (_exit, no cleanup) at the Nth point:
 *   VPM_CRASH_MODE=crash (default): before the write, as if power failed just before it;
 *   VPM_CRASH_MODE=torn: after only the first half of the write reached the media.
 * VPM_CRASH_REPORT=FILE receives "points N" at exit, for harnesses that count the points.
 * Without the build option both calls compile to nothing.
 */
#ifndef VPMD_CRASH_INJECT_H
#define VPMD_CRASH_INJECT_H

#include <stddef.h>
#include <stdint.h>

#include <stdbool.h>

#ifdef VPM_CRASH_INJECT
/* Bulk copies that would hide persist points go one write at a time in this build. */
static inline bool crash_points_compiled(void)
{
	return true;
}
void crash_point_enter(const char *name, void *dst, size_t len);
void crash_point_leave(void *dst, size_t len, void (*persist)(const void *, size_t));
uint64_t crash_points_passed(void);
#else
static inline bool crash_points_compiled(void)
{
	return false;
}
static inline void crash_point_enter(const char *name, void *dst, size_t len)
{
	(void)name;
	(void)dst;
	(void)len;
}
static inline void crash_point_leave(void *dst, size_t len, void (*persist)(const void *, size_t))
{
	(void)dst;
	(void)len;
	(void)persist;
}
static inline uint64_t crash_points_passed(void)
{
	return 0;
}
#endif

#endif
