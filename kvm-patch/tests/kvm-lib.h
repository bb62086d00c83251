/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kvm-lib.h - helpers shared by the rig's standalone KVM tests (kvm-smoke.c, vpm-enable.c,
 * vpm-map.c, vpm-harvest.c, vpm-events.c, vpm-reattach.c).
 *
 * Each test is one static program built from one .c file, so the helpers are static
 * functions in this header.  Define before including it:
 *
 *   KVM_LIB_NAME     prefix of the check lines, e.g. "kvm-smoke"
 *   KVM_LIB_VERDICT  prefix of the verdict line, e.g. "KVM-SMOKE"
 *
 * Output: "NAME: ok   what" / "NAME: FAIL what" per check, "NAME: info what" for
 * measurements, and one verdict line: "VERDICT: PASS", "VERDICT: FAIL <why>" or
 * "VERDICT: SKIP <why>".  Exit codes: 0 pass, 1 fail, 77 skip.
 */
#ifndef KVM_LIB_H
#define KVM_LIB_H

#if !defined(KVM_LIB_NAME) || !defined(KVM_LIB_VERDICT)
#error "define KVM_LIB_NAME and KVM_LIB_VERDICT before including kvm-lib.h"
#endif

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#define PAGE_SIZE	4096UL
#define KVM_LIB_SKIP	77

static int checks_failed;

/* fail - print the FAIL verdict and exit 1. */
static void __attribute__((unused, noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;

	printf(KVM_LIB_VERDICT ": FAIL ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(1);
}

/* skip - print the SKIP verdict and exit 77. */
static void __attribute__((unused, noreturn, format(printf, 1, 2))) skip(const char *fmt, ...)
{
	va_list ap;

	printf(KVM_LIB_VERDICT ": SKIP ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(KVM_LIB_SKIP);
}

/* check - print one line for a check; a failed check ends the test. */
static void __attribute__((unused, format(printf, 2, 3))) check(int ok, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	printf(KVM_LIB_NAME ": %-4s %s\n", ok ? "ok" : "FAIL", what);
	fflush(stdout);
	if (!ok) {
		checks_failed++;
		fail("%s", what);
	}
}

/* info - print a measurement or other information; not a check. */
static void __attribute__((unused, format(printf, 1, 2))) info(const char *fmt, ...)
{
	va_list ap;

	printf(KVM_LIB_NAME ": info ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* xioctl - an ioctl that must succeed. */
static int __attribute__((unused)) xioctl(int fd, unsigned long req, void *arg, const char *name)
{
	int r = ioctl(fd, req, arg);

	if (r < 0)
		fail("%s: %s", name, strerror(errno));
	return r;
}

/* alloc_pages - n anonymous private pages (not populated). */
static void * __attribute__((unused)) alloc_pages(size_t n)
{
	void *p = mmap(NULL, n * PAGE_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		fail("mmap %zu pages: %s", n, strerror(errno));
	return p;
}

/* set_slot - KVM_SET_USER_MEMORY_REGION for slot at gpa, backed by hva. */
static void __attribute__((unused)) set_slot(int vm, uint32_t slot, uint64_t gpa, uint64_t size,
					     void *hva)
{
	struct kvm_userspace_memory_region region = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};

	xioctl(vm, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");
}

/* err_name - a -errno result by name (an fd or count otherwise), for check lines. */
static __attribute__((unused)) const char *err_name(int r)
{
	static char buf[32];

	switch (r) {
	case -EINVAL: return "EINVAL";
	case -EEXIST: return "EEXIST";
	case -E2BIG: return "E2BIG";
	case -EFAULT: return "EFAULT";
	case -ENXIO: return "ENXIO";
	case -EPERM: return "EPERM";
	case -EIO: return "EIO";
	case -EAGAIN: return "EAGAIN";
	case -ENOTTY: return "ENOTTY";
	case -EINTR: return "EINTR";
	case -ENOENT: return "ENOENT";
	}
	if (r >= 0)
		snprintf(buf, sizeof(buf), "%d", r);
	else
		snprintf(buf, sizeof(buf), "errno %d", -r);
	return buf;
}

/* in_child - run fn(vm) in a forked child (another mm, as vpmd is); its exit status. */
static int __attribute__((unused)) in_child(int (*fn)(int), int vm, const char *what)
{
	pid_t pid;
	int status;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		fail("fork: %s", strerror(errno));
	if (pid == 0)
		_exit(fn(vm));
	if (waitpid(pid, &status, 0) < 0)
		fail("waitpid: %s", strerror(errno));
	if (!WIFEXITED(status))
		fail("%s: child did not exit (status 0x%x)", what, status);
	return WEXITSTATUS(status);
}

#ifdef KVM_CAP_VPM
/* open_kvm_vpm - /dev/kvm, skipping the test when KVM lacks the VPM patches. */
static int __attribute__((unused)) open_kvm_vpm(void)
{
	int fd, r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		fail("open /dev/kvm: %s", strerror(errno));
	check(1, "open /dev/kvm");
	r = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_VPM);
	if (r <= 0)
		skip("KVM_CHECK_EXTENSION(KVM_CAP_VPM) = %d: KVM without the VPM patches", r);
	check(r > 0, "KVM_CHECK_EXTENSION(KVM_CAP_VPM) on /dev/kvm = %d", r);
	return fd;
}
#endif

#endif /* KVM_LIB_H */
