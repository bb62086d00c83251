/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Small helpers shared by vpmd, libvpm and vpmctl: cleanup attributes,
 * TAKE_PTR/TAKE_FD, array sizes and errno helpers.
 */
#ifndef VPM_COMMON_MACRO_H
#define VPM_COMMON_MACRO_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_     __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _pure_       __attribute__((pure))
#define _public_     __attribute__((visibility("default")))
#define _noreturn_   __attribute__((noreturn))
#define _likely_(x)   __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Hand over ownership of a pointer or fd: return its value, leave the variable empty. */
#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _tp = (p);                                                           \
		(p) = NULL;                                                                        \
		_tp;                                                                               \
	})

#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _tf = (fd);                                                                    \
		(fd) = -1;                                                                         \
		_tf;                                                                               \
	})

/* Define a cleanup helper that calls func(*p) when *p is set. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                    \
	static inline void func##p(type *p)                                                        \
	{                                                                                          \
		if (*p)                                                                            \
			func(*p);                                                                  \
	}

static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return -1;
}

static inline void closep(int *fd)
{
	safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Replace *p with a copy of s (or NULL); returns 0 or -ENOMEM. */
static inline int free_and_strdup(char **p, const char *s)
{
	char *t = NULL;

	if (s) {
		t = strdup(s);
		if (!t)
			return -ENOMEM;
	}
	free(*p);
	*p = t;
	return 0;
}

static inline int negative_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}

static inline int streq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

static inline int streq_ptr(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

#endif /* VPM_COMMON_MACRO_H */
