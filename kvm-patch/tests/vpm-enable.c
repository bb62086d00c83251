// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vpm-enable - selftest of the first VPM KVM patch: KVM_CAP_VPM and KVM_VPM_ENABLE.
 *
 * Standalone and static like kvm-smoke, for the test rig's initramfs.  It checks:
 *
 *   - KVM_CHECK_EXTENSION(KVM_CAP_VPM) > 0 on /dev/kvm and on a VM fd (else SKIP);
 *   - on a VM with memslots 0 and 1 contiguous (GPA 0x100000 and 0x110000, 16 pages
 *     each), a hole (0x120000-0x12ffff) and slot 2 (0x130000, 16 pages):
 *     bad flags, bad pad, unaligned gpa or size, size 0, ranges over the hole, outside
 *     the memslots or wrapping around give EINVAL; a huge size gives E2BIG;
 *   - KVM_VPM_ENABLE over slots 0 and 1 returns an fd with FD_CLOEXEC; reading it gives
 *     EAGAIN, poll reports nothing; a second KVM_VPM_ENABLE gives EEXIST;
 *   - from a forked child (another mm, the same VM fd, as vpmd has after pidfd_getfd):
 *     KVM_VPM_ENABLE works on a fresh VM while KVM_CHECK_EXTENSION,
 *     KVM_SET_USER_MEMORY_REGION and KVM_CREATE_VCPU on that VM fd still give EIO; a child
 *     without CAP_SYS_ADMIN (setuid to nobody) gets EPERM;
 *   - 200 VMs each closing the event fd first, then 200 closing the VM fd first (the
 *     event fd still reads EAGAIN then), with a 64 MiB range: VmallocUsed must not grow
 *     by LEAK_VMALLOC_KB nor MemAvailable fall by LEAK_AVAIL_KB (/proc/meminfo); one
 *     enabled range must show its 128 kB per-gfn array in VmallocUsed, so that a leak
 *     of it would show.
 *
 * Output: one line per check, measurements as "vpm-enable: info ...", then
 * "VPM-ENABLE: PASS", "VPM-ENABLE: FAIL <why>" or "VPM-ENABLE: SKIP <why>" (no
 * KVM_CAP_VPM).  Exit codes: 0 pass, 1 fail, 77 skip.
 *
 * Build: gcc -static -O2 -Wall -o vpm-enable vpm-enable.c (with kvm-lib.h next to it and
 * ../include/linux/vpm-kvm.h, the uapi of the series).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../include/linux/vpm-kvm.h"

#define KVM_LIB_NAME	"vpm-enable"
#define KVM_LIB_VERDICT	"VPM-ENABLE"
#include "kvm-lib.h"

#define SLOT_PAGES	16
#define SLOT0_GPA	0x100000UL
#define SLOT1_GPA	(SLOT0_GPA + SLOT_PAGES * PAGE_SIZE)
#define HOLE_GPA	(SLOT1_GPA + SLOT_PAGES * PAGE_SIZE)
#define SLOT2_GPA	(HOLE_GPA + SLOT_PAGES * PAGE_SIZE)
#define SLOT_SIZE	(SLOT_PAGES * PAGE_SIZE)

#define LOOPS		200
#define LOOP_PAGES	16384		/* 64 MiB range: 128 KiB of per-gfn state */
#define LEAK_VMALLOC_KB	4096		/* a leaked state alone would be 25 MiB */
#define LEAK_AVAIL_KB	16384

static int kvm;
static uint8_t *slot_mem;		/* backs slots 0-2 of every VM */
static uint8_t *loop_mem;		/* backs the loops' single slot */

/* new_vm - a VM with slots 0 and 1 contiguous, a hole, then slot 2. */
static int new_vm(void)
{
	int vm = xioctl(kvm, KVM_CREATE_VM, (void *)0, "KVM_CREATE_VM");

	set_slot(vm, 0, SLOT0_GPA, SLOT_SIZE, slot_mem);
	set_slot(vm, 1, SLOT1_GPA, SLOT_SIZE, slot_mem + SLOT_SIZE);
	set_slot(vm, 2, SLOT2_GPA, SLOT_SIZE, slot_mem + 2 * SLOT_SIZE);
	return vm;
}

/* vpm_enable - KVM_VPM_ENABLE; the new fd, or -errno. */
static int vpm_enable(int vm, uint64_t gpa, uint64_t size, uint32_t flags, uint32_t pad)
{
	struct kvm_vpm_enable args = {
		.gpa = gpa, .size = size, .flags = flags, .pad = pad,
	};
	int r = ioctl(vm, KVM_VPM_ENABLE, &args);

	return r < 0 ? -errno : r;
}

/* expect_enable_err - KVM_VPM_ENABLE must fail with -want. */
static void expect_enable_err(int vm, uint64_t gpa, uint64_t size, uint32_t flags,
			      uint32_t pad, int want, const char *what)
{
	int r = vpm_enable(vm, gpa, size, flags, pad);

	if (r >= 0)
		close(r);
	check(r == -want, "%s (gpa 0x%llx size 0x%llx flags %u pad %u): %s (want %s)", what,
	      (unsigned long long)gpa, (unsigned long long)size, flags, pad, err_name(r),
	      err_name(-want));
}

/* check_event_fd - FD_CLOEXEC, read gives EAGAIN, poll reports nothing. */
static void check_event_fd(int fd, const char *who)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN | POLLOUT | POLLPRI };
	uint64_t buf[4];
	ssize_t n;
	int r;

	r = fcntl(fd, F_GETFD);
	check(r >= 0 && (r & FD_CLOEXEC), "%s: event fd %d has FD_CLOEXEC", who, fd);
	n = read(fd, buf, sizeof(buf));
	check(n < 0 && errno == EAGAIN, "%s: read on the event fd: %s (want EAGAIN)", who,
	      n < 0 ? err_name(-errno) : "data");
	r = poll(&pfd, 1, 0);
	check(r == 0, "%s: poll on the event fd reports nothing (poll %d, revents 0x%x)", who,
	      r, r > 0 ? pfd.revents : 0);
}

/* vm_ioctl_err - an ordinary VM ioctl's result as -errno or its value. */
static int vm_ioctl_err(int vm, unsigned long req, void *arg)
{
	int r = ioctl(vm, req, arg);

	return r < 0 ? -errno : r;
}

/* child_vpmd - in a forked child (another mm): what vpmd does with a pidfd_getfd'd fd. */
static int child_vpmd(int vm)
{
	struct kvm_userspace_memory_region region = {
		.slot = 3,
		.guest_phys_addr = 0x400000,
		.memory_size = PAGE_SIZE,
		.userspace_addr = (uintptr_t)loop_mem,
	};
	int fd, r;

	fd = vpm_enable(vm, SLOT0_GPA, 2 * SLOT_SIZE, 0, 0);
	check(fd >= 0, "child (other mm): KVM_VPM_ENABLE over slots 0-1: %s", err_name(fd));
	check_event_fd(fd, "child (other mm)");
	r = vm_ioctl_err(vm, KVM_CHECK_EXTENSION, (void *)(long)KVM_CAP_USER_MEMORY);
	check(r == -EIO, "child (other mm): KVM_CHECK_EXTENSION on the VM fd: %s (want EIO)",
	      err_name(r));
	r = vm_ioctl_err(vm, KVM_SET_USER_MEMORY_REGION, &region);
	check(r == -EIO, "child (other mm): KVM_SET_USER_MEMORY_REGION: %s (want EIO)",
	      err_name(r));
	r = vm_ioctl_err(vm, KVM_CREATE_VCPU, (void *)0);
	check(r == -EIO, "child (other mm): KVM_CREATE_VCPU: %s (want EIO)", err_name(r));
	close(fd);
	return 0;
}

/* child_unprivileged - another mm without CAP_SYS_ADMIN must get EPERM. */
static int child_unprivileged(int vm)
{
	int r;

	if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
	    setresuid(65534, 65534, 65534) < 0) {
		info("cannot become nobody (%s): EPERM not tested", strerror(errno));
		return KVM_LIB_SKIP;
	}
	r = vpm_enable(vm, SLOT0_GPA, SLOT_SIZE, 0, 0);
	if (r >= 0)
		close(r);
	check(r == -EPERM, "child (other mm, uid nobody, no CAP_SYS_ADMIN): KVM_VPM_ENABLE: %s "
	      "(want EPERM)", err_name(r));
	return 0;
}

/* meminfo_kb - a /proc/meminfo field in KiB, or -1. */
static long meminfo_kb(const char *field)
{
	char line[256];
	size_t len = strlen(field);
	long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, len) && line[len] == ':') {
			kb = strtol(line + len + 1, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

/*
 * leak_loop - LOOPS VMs with a LOOP_PAGES range enabled; vm_first: close the VM fd
 * before the event fd (the event fd keeps the VM alive and still reads EAGAIN).
 */
static void leak_loop(int vm_first, int loops)
{
	int i, vm, fd, eagain = 0;
	uint64_t buf;

	for (i = 0; i < loops; i++) {
		vm = xioctl(kvm, KVM_CREATE_VM, (void *)0, "KVM_CREATE_VM");
		set_slot(vm, 0, SLOT0_GPA, LOOP_PAGES * PAGE_SIZE, loop_mem);
		fd = vpm_enable(vm, SLOT0_GPA, LOOP_PAGES * PAGE_SIZE, 0, 0);
		if (fd < 0)
			fail("loop %d: KVM_VPM_ENABLE: %s", i, err_name(fd));
		if (vm_first) {
			close(vm);
			if (read(fd, &buf, sizeof(buf)) < 0 && errno == EAGAIN)
				eagain++;
			close(fd);
		} else {
			close(fd);
			close(vm);
		}
	}
	if (vm_first)
		check(eagain == loops, "%d/%d event fds read EAGAIN after their VM fd was closed",
		      eagain, loops);
}

/*
 * measure_state - the per-gfn state of one LOOP_PAGES range shows in VmallocUsed, so a
 * leak of it in the loops would too.
 */
static void measure_state(void)
{
	long want_kb = LOOP_PAGES * 8 / 1024, before, during, after;
	int vm, fd;

	vm = xioctl(kvm, KVM_CREATE_VM, (void *)0, "KVM_CREATE_VM");
	set_slot(vm, 0, SLOT0_GPA, LOOP_PAGES * PAGE_SIZE, loop_mem);
	before = meminfo_kb("VmallocUsed");
	fd = vpm_enable(vm, SLOT0_GPA, LOOP_PAGES * PAGE_SIZE, 0, 0);
	if (fd < 0)
		fail("KVM_VPM_ENABLE of %d pages: %s", LOOP_PAGES, err_name(fd));
	during = meminfo_kb("VmallocUsed");
	close(fd);
	close(vm);
	after = meminfo_kb("VmallocUsed");
	info("VmallocUsed %ld -> %ld -> %ld kB: before, with a %d-page range enabled, after "
	     "closing it and its VM", before, during, after, LOOP_PAGES);
	check(during - before >= want_kb,
	      "VmallocUsed grows by %+ld kB with a %d-page range enabled (its per-gfn array is "
	      "%ld kB)", during - before, LOOP_PAGES, want_kb);
}

static void measure_loop(int vm_first)
{
	const char *order = vm_first ? "VM fd, then event fd" : "event fd, then VM fd";
	long avail0, vmalloc0, avail1, vmalloc1;
	struct timespec t0, t1;

	avail0 = meminfo_kb("MemAvailable");
	vmalloc0 = meminfo_kb("VmallocUsed");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	leak_loop(vm_first, LOOPS);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	avail1 = meminfo_kb("MemAvailable");
	vmalloc1 = meminfo_kb("VmallocUsed");
	info("%d VMs closing the %s in %ld ms: MemAvailable %ld -> %ld kB (%+ld), "
	     "VmallocUsed %ld -> %ld kB (%+ld)", LOOPS, order,
	     (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000,
	     avail0, avail1, avail1 - avail0, vmalloc0, vmalloc1, vmalloc1 - vmalloc0);
	check(avail0 > 0 && vmalloc0 >= 0, "/proc/meminfo has MemAvailable and VmallocUsed");
	check(vmalloc1 - vmalloc0 < LEAK_VMALLOC_KB,
	      "%d VMs closing the %s: VmallocUsed grew %+ld kB (limit %d)", LOOPS, order,
	      vmalloc1 - vmalloc0, LEAK_VMALLOC_KB);
	check(avail0 - avail1 < LEAK_AVAIL_KB,
	      "%d VMs closing the %s: MemAvailable fell %ld kB (limit %d)", LOOPS, order,
	      avail0 - avail1, LEAK_AVAIL_KB);
}

int main(void)
{
	int vm, fd, r;

	kvm = open_kvm_vpm();

	slot_mem = alloc_pages(3 * SLOT_PAGES);
	loop_mem = alloc_pages(LOOP_PAGES);

	vm = new_vm();
	r = ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_VPM);
	check(r > 0, "KVM_CHECK_EXTENSION(KVM_CAP_VPM) on the VM fd = %d", r);
	check(1, "VM with slots 0-1 at 0x%lx-0x%lx, hole to 0x%lx, slot 2 to 0x%lx",
	      SLOT0_GPA, HOLE_GPA - 1, SLOT2_GPA - 1, SLOT2_GPA + SLOT_SIZE - 1);

	/* Invalid arguments, before any range is enabled. */
	expect_enable_err(vm, SLOT0_GPA, SLOT_SIZE, 1, 0, EINVAL, "flags 1");
	expect_enable_err(vm, SLOT0_GPA, SLOT_SIZE, 0x80000000, 0, EINVAL, "flags bit 31");
	expect_enable_err(vm, SLOT0_GPA, SLOT_SIZE, 0, 1, EINVAL, "pad 1");
	expect_enable_err(vm, SLOT0_GPA + 0x800, SLOT_SIZE, 0, 0, EINVAL, "unaligned gpa");
	expect_enable_err(vm, SLOT0_GPA + 1, SLOT_SIZE, 0, 0, EINVAL, "gpa + 1");
	expect_enable_err(vm, SLOT0_GPA, PAGE_SIZE + 0x800, 0, 0, EINVAL, "unaligned size");
	expect_enable_err(vm, SLOT0_GPA, 0, 0, 0, EINVAL, "size 0");
	expect_enable_err(vm, SLOT1_GPA, 3 * SLOT_SIZE, 0, 0, EINVAL, "over the hole");
	expect_enable_err(vm, HOLE_GPA, PAGE_SIZE, 0, 0, EINVAL, "inside the hole");
	expect_enable_err(vm, SLOT1_GPA, SLOT_SIZE + PAGE_SIZE, 0, 0, EINVAL,
			  "one page into the hole");
	expect_enable_err(vm, SLOT0_GPA - PAGE_SIZE, 2 * PAGE_SIZE, 0, 0, EINVAL,
			  "one page before slot 0");
	expect_enable_err(vm, SLOT2_GPA, SLOT_SIZE + PAGE_SIZE, 0, 0, EINVAL,
			  "one page past slot 2");
	expect_enable_err(vm, 0x40000000UL, PAGE_SIZE, 0, 0, EINVAL, "outside the memslots");
	expect_enable_err(vm, 0, PAGE_SIZE, 0, 0, EINVAL, "GPA 0, no memslot");
	expect_enable_err(vm, SLOT0_GPA, 1ULL << 60, 0, 0, E2BIG, "huge size");
	expect_enable_err(vm, SLOT0_GPA, (KVM_VPM_MAX_PAGES + 1) * PAGE_SIZE, 0, 0, E2BIG,
			  "KVM_VPM_MAX_PAGES + 1 pages");
	expect_enable_err(vm, -PAGE_SIZE * 2, 4 * PAGE_SIZE, 0, 0, EINVAL, "wrapping range");

	/* A good range over two contiguous memslots. */
	fd = vpm_enable(vm, SLOT0_GPA, 2 * SLOT_SIZE, 0, 0);
	check(fd >= 0, "KVM_VPM_ENABLE over slots 0-1 (gpa 0x%lx size 0x%lx): %s", SLOT0_GPA,
	      2 * SLOT_SIZE, err_name(fd));
	check_event_fd(fd, "creator");
	expect_enable_err(vm, SLOT0_GPA, 2 * SLOT_SIZE, 0, 0, EEXIST, "same range again");
	expect_enable_err(vm, SLOT2_GPA, SLOT_SIZE, 0, 0, EEXIST, "a second range");
	close(fd);
	expect_enable_err(vm, SLOT2_GPA, SLOT_SIZE, 0, 0, EEXIST,
			  "a second range after the event fd was closed");
	close(vm);

	/* From another mm, as vpmd after pidfd_getfd(). */
	vm = new_vm();
	r = in_child(child_vpmd, vm, "child (other mm)");
	check(r == 0, "child (other mm) passed (exit %d)", r);
	expect_enable_err(vm, SLOT2_GPA, SLOT_SIZE, 0, 0, EEXIST,
			  "creator, after the child enabled a range");
	r = vm_ioctl_err(vm, KVM_CHECK_EXTENSION, (void *)(long)KVM_CAP_USER_MEMORY);
	check(r > 0, "creator: KVM_CHECK_EXTENSION on the VM fd still works (returns %d)", r);
	close(vm);

	vm = new_vm();
	r = in_child(child_unprivileged, vm, "child (nobody)");
	check(r == 0 || r == KVM_LIB_SKIP, "child (other mm, nobody) done (exit %d)", r);
	fd = vpm_enable(vm, SLOT2_GPA, SLOT_SIZE, 0, 0);
	check(fd >= 0, "creator: KVM_VPM_ENABLE over slot 2 after the EPERM: %s",
	      err_name(fd));
	close(fd);
	close(vm);

	/* Lifetime: either fd may be closed last; nothing may leak. */
	leak_loop(0, 5);
	leak_loop(1, 5);
	measure_state();
	measure_loop(0);
	measure_loop(1);

	close(kvm);
	if (checks_failed)
		fail("%d checks failed", checks_failed);
	printf("VPM-ENABLE: PASS\n");
	return 0;
}
