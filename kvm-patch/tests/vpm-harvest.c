// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vpm-harvest - selftest of the third VPM KVM patch: KVM_VPM_HARVEST, KVM_VPM_HOLD and
 * KVM_VPM_RESUME.
 *
 * Standalone and static like vpm-map, with the same real-mode guest: one entry point
 * reads the word at DS:BX and reports it with "out dx, eax", one writes ECX to DS:BX, and
 * a third increments the word at DS:BX until the word after it is non-zero, then halts.
 * DS covers the data memslot (GPA 0x10000, 16 pages); VPM is enabled on gfns 0x14-0x1b,
 * of which +0..+3 are mapped writable and +4, +5 read-only from a memfd, +6 and +7 stay
 * backed by the memslot.  It checks:
 *
 *   - HARVEST reports exactly the written gfns dirty and the accessed ones young (mapped
 *     or not), a second HARVEST reports nothing, and after the guest ran again only what
 *     it touched again; a read then a write in one epoch is dirty; a write to a
 *     read-only entry (EFAULT; with the event patch once its event is completed with
 *     -EFAULT) is young, not dirty; a run of 3 gfns into unaligned
 *     bitmaps writes one byte each; a zero bitmap pointer leaves those bits alone; a
 *     remap keeps the bits; an unwritable bitmap gives EFAULT and keeps the bits;
 *   - bad arguments (n = 0, runs outside the range, n = 2^64 - 1, flags, pad): EINVAL;
 *     before KVM_VPM_ENABLE: ENXIO; a forked child (another mm) may harvest and hold;
 *   - HOLD from another thread while the vCPU thread runs the counting loop: HOLD
 *     returns, the counter does not move for 50 ms, HARVEST works while held, RESUME
 *     lets it continue; a signal makes the held KVM_RUN return EINTR and the next
 *     KVM_RUN is held again;
 *   - HOLD, then closing the event fd, the VM fd or both with the vCPU thread held
 *     releases it (the loop runs again and KVM_RUN returns at its hlt);
 *   - pins (/proc/vmstat, as in vpm-map) are back to their starting value at the end.
 *
 * Output: one line per check, then "VPM-HARVEST: PASS", "VPM-HARVEST: FAIL <why>" or
 * "VPM-HARVEST: SKIP <why>" (no KVM_CAP_VPM or no KVM_VPM_HARVEST).  Exit codes: 0 pass,
 * 1 fail, 77 skip.
 *
 * Build: gcc -static -O2 -Wall -o vpm-harvest vpm-harvest.c (with kvm-lib.h next to it
 * and ../include/linux/vpm-kvm.h, the uapi of the series).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../include/linux/vpm-kvm.h"

#define KVM_LIB_NAME	"vpm-harvest"
#define KVM_LIB_VERDICT	"VPM-HARVEST"
#include "kvm-lib.h"
#include "vpm-guest.h"

#define LOOP_RIP	(CODE_GPA + 0x20)
#define OFF		0x100
#define COUNTER_OFF	0x200			/* in data page 0, outside the range */

/*
 * Real mode.  At READ_RIP: mov eax, [bx]; out dx, eax; hlt.
 * At WRITE_RIP: mov [bx], ecx; hlt.
 * At LOOP_RIP: 1: inc dword [bx]; cmp dword [bx + 4], 0; je 1b; hlt.
 */
static const uint8_t loop_code[] = { 0x66, 0xff, 0x07, 0x66, 0x83, 0x7f, 0x04, 0x00,
				     0x74, 0xf6, 0xf4 };

static uint8_t *memfd_b;

/* new_vm_h - a new VM whose data slot holds 0x5a bytes. */
static void new_vm_h(struct vm *v)
{
	new_vm(v);
	memset(v->data, 0x5a, DATA_PAGES * PAGE_SIZE);
}

static void guest_read(struct vm *v, uint64_t gfn)
{
	set_regs(v, READ_RIP, gfn, OFF, 0);
	if (ioctl(v->vcpu, KVM_RUN, NULL) < 0 || v->run->exit_reason != KVM_EXIT_IO)
		fail("guest read of gfn 0x%llx: KVM_RUN %s, exit reason %u",
		     (unsigned long long)gfn, strerror(errno), v->run->exit_reason);
	if (ioctl(v->vcpu, KVM_RUN, NULL) < 0 || v->run->exit_reason != KVM_EXIT_HLT)
		fail("guest read of gfn 0x%llx: no hlt", (unsigned long long)gfn);
}

/* guest_write - 0 or -errno of KVM_RUN. */
static int guest_write(struct vm *v, uint64_t gfn, uint32_t val)
{
	set_regs(v, WRITE_RIP, gfn, OFF, val);
	if (ioctl(v->vcpu, KVM_RUN, NULL) < 0)
		return -errno;
	if (v->run->exit_reason != KVM_EXIT_HLT)
		fail("guest write to gfn 0x%llx: exit reason %u", (unsigned long long)gfn,
		     v->run->exit_reason);
	return 0;
}

static void xguest_write(struct vm *v, uint64_t gfn, uint32_t val)
{
	int r = guest_write(v, gfn, val);

	if (r)
		fail("guest write to gfn 0x%llx: KVM_RUN %s", (unsigned long long)gfn,
		     err_name(r));
}

/* harvest - KVM_VPM_HARVEST; 0 or -errno. */
static int harvest(int vm, uint64_t gfn, uint64_t n, void *dirty, void *young,
		   uint32_t flags, uint32_t pad)
{
	struct kvm_vpm_harvest args = {
		.gfn = gfn, .n = n, .dirty_bitmap = (uintptr_t)dirty,
		.young_bitmap = (uintptr_t)young, .flags = flags, .pad = pad,
	};

	return ioctl(vm, KVM_VPM_HARVEST, &args) < 0 ? -errno : 0;
}

/* expect_bits - HARVEST of the whole range gives these bitmaps (one byte each). */
static void expect_bits(struct vm *v, uint8_t want_dirty, uint8_t want_young, const char *what)
{
	uint8_t dirty = 0xee, young = 0xee;
	int r = harvest(v->fd, RANGE_GFN, RANGE_PAGES, &dirty, &young, 0, 0);

	check(r == 0 && dirty == want_dirty && young == want_young,
	      "%s: HARVEST %s, dirty 0x%02x young 0x%02x (want 0x%02x 0x%02x)", what,
	      err_name(r), dirty, young, want_dirty, want_young);
}

static int vpm_map(int vm, uint64_t gfn, const void *uaddr, uint32_t flags)
{
	struct kvm_vpm_map_entry e = { .gfn = gfn, .uaddr = (uintptr_t)uaddr, .flags = flags };
	struct kvm_vpm_map args = { .n = 1, .entries = (uintptr_t)&e };

	return ioctl(vm, KVM_VPM_MAP, &args) < 0 ? -errno : 0;
}

/* map_range - +0..+3 writable to memfd pages 0-3, +4 and +5 read-only to pages 4 and 5. */
static void map_range(struct vm *v)
{
	int i;

	for (i = 0; i < 6; i++)
		if (vpm_map(v->fd, RANGE_GFN + i, memfd_b + i * PAGE_SIZE,
			    i < 4 ? KVM_VPM_MAP_WRITABLE : 0))
			fail("KVM_VPM_MAP of gfn +%d: %s", i, strerror(errno));
}

static int vm_ioctl(int vm, unsigned long req)
{
	return ioctl(vm, req, NULL) < 0 ? -errno : 0;
}

static volatile uint32_t *counter(struct vm *v)
{
	return (volatile uint32_t *)word(v->data, 0, COUNTER_OFF);
}

static void start_loop(struct runner *t, struct vm *v, int reset)
{
	t->v = v;
	t->done = 0;
	if (reset) {
		counter(v)[0] = 0;
		counter(v)[1] = 0;
		set_regs(v, LOOP_RIP, DATA_GFN, COUNTER_OFF, 0);
	}
	if (pthread_create(&t->thread, NULL, run_vcpu, t))
		fail("pthread_create");
}

/* counter_moves - does the counter move past its value within ms milliseconds? */
static int counter_moves(struct vm *v, unsigned int ms)
{
	uint32_t c0 = *counter(v);
	unsigned int i;

	for (i = 0; i < ms; i++) {
		if (*counter(v) != c0)
			return 1;
		msleep(1);
	}
	return 0;
}

/* stop_loop - let the guest loop halt; its KVM_RUN must return KVM_EXIT_HLT. */
static void stop_loop(struct runner *t, const char *what)
{
	int done;

	counter(t->v)[1] = 1;
	done = wait_done(t, 10000);
	check(done && t->r == 0 && t->exit_reason == KVM_EXIT_HLT,
	      "%s: the loop halts, KVM_RUN returns %s, exit reason %u (want KVM_EXIT_HLT)",
	      what, done ? err_name(t->r) : "nothing", t->exit_reason);
}

static void on_sigusr1(int sig)
{
	(void)sig;
}

static void hold_tests(struct vm *v)
{
	struct runner t;
	uint32_t c1, c2;
	uint8_t dirty, young;
	int r, ok;

	r = vm_ioctl(v->fd, KVM_VPM_HOLD);
	check(r == 0, "HOLD without a vCPU in KVM_RUN: %s", err_name(r));
	r = vm_ioctl(v->fd, KVM_VPM_RESUME);
	check(r == 0, "RESUME: %s", err_name(r));
	r = vm_ioctl(v->fd, KVM_VPM_RESUME);
	check(r == 0, "RESUME without a hold: %s", err_name(r));

	start_loop(&t, v, 1);
	ok = counter_moves(v, 5000);
	check(ok, "the vCPU thread runs the counting loop (counter %u)", *counter(v));
	r = vm_ioctl(v->fd, KVM_VPM_HOLD);
	c1 = *counter(v);
	msleep(50);
	c2 = *counter(v);
	ok = !t.done;
	check(r == 0 && c1 == c2 && ok,
	      "HOLD from another thread: %s; counter %u, %u after 50 ms; KVM_RUN not returned",
	      err_name(r), c1, c2);
	msleep(50);
	check(*counter(v) == c2, "held: counter still %u after 100 ms", *counter(v));
	r = harvest(v->fd, RANGE_GFN, RANGE_PAGES, &dirty, &young, 0, 0);
	check(r == 0, "HARVEST while held: %s", err_name(r));
	r = vm_ioctl(v->fd, KVM_VPM_HOLD);
	check(r == 0 && *counter(v) == c2, "HOLD again: %s", err_name(r));
	r = vm_ioctl(v->fd, KVM_VPM_RESUME);
	ok = counter_moves(v, 5000);
	check(r == 0 && ok, "RESUME: %s, the counter moves again (%u)", err_name(r),
	      *counter(v));

	/* A signal ends the held KVM_RUN; the next one is held again. */
	r = vm_ioctl(v->fd, KVM_VPM_HOLD);
	c1 = *counter(v);
	pthread_kill(t.thread, SIGUSR1);
	ok = wait_done(&t, 5000);
	check(r == 0 && ok && t.r == -EINTR && t.exit_reason == KVM_EXIT_INTR,
	      "HOLD, then a signal: the held KVM_RUN returns %s (want EINTR), exit reason %u "
	      "(want KVM_EXIT_INTR)", ok ? err_name(t.r) : "nothing", t.exit_reason);
	check(*counter(v) == c1, "the counter did not move (%u)", *counter(v));
	start_loop(&t, v, 0);
	msleep(50);
	ok = !t.done;
	check(*counter(v) == c1 && ok, "the next KVM_RUN is held (counter %u)", *counter(v));
	r = vm_ioctl(v->fd, KVM_VPM_RESUME);
	ok = counter_moves(v, 5000);
	check(r == 0 && ok, "RESUME: %s, the counter moves again (%u)", err_name(r),
	      *counter(v));
	stop_loop(&t, "after RESUME");
}

/*
 * teardown - HOLD with the vCPU thread held in the loop, then close the event fd (1), the
 * VM fd (2) or both (3): the hold is released and the thread's KVM_RUN returns.
 */
static void teardown(int how)
{
	static const char *const names[] = { "", "the event fd", "the VM fd", "both" };
	struct runner t;
	struct vm v;
	uint32_t c1;
	int r, ok;

	new_vm_h(&v);
	enable(&v);
	map_range(&v);
	start_loop(&t, &v, 1);
	if (!counter_moves(&v, 5000))
		fail("teardown: the loop does not run");
	r = vm_ioctl(v.fd, KVM_VPM_HOLD);
	c1 = *counter(&v);
	msleep(20);
	check(r == 0 && *counter(&v) == c1, "teardown: HOLD %s, counter stopped at %u",
	      err_name(r), c1);
	if (how & 1) {
		close(v.vpm);
		v.vpm = -1;
	}
	if (how & 2) {
		close(v.fd);
		v.fd = -1;
	}
	ok = counter_moves(&v, 5000);
	check(ok, "HOLD, then closing %s: the vCPU runs again (counter %u)", names[how],
	      *counter(&v));
	stop_loop(&t, "closed");
	close_vm(&v);
}

static int child_ops(int vm)
{
	uint8_t dirty, young;
	int r1 = harvest(vm, RANGE_GFN, RANGE_PAGES, &dirty, &young, 0, 0);
	int r2 = vm_ioctl(vm, KVM_VPM_HOLD);
	int r3 = vm_ioctl(vm, KVM_VPM_RESUME);

	check(!r1 && !r2 && !r3, "child (other mm): HARVEST %s, HOLD %s, RESUME %s",
	      err_name(r1), err_name(r2), err_name(r3));
	return 0;
}

int main(void)
{
	uint8_t buf[3], dirty, young;
	struct sigaction sa;
	uint8_t *hole;
	long p0;
	struct vm v;
	int r, i;

	kvm = open_kvm_vpm();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1;	/* no SA_RESTART */
	sigaction(SIGUSR1, &sa, NULL);

	code_mem = alloc_pages(1);
	memset(code_mem, 0xf4, PAGE_SIZE);
	memcpy(code_mem + (READ_RIP - CODE_GPA), read_code, sizeof(read_code));
	memcpy(code_mem + (WRITE_RIP - CODE_GPA), write_code, sizeof(write_code));
	memcpy(code_mem + (LOOP_RIP - CODE_GPA), loop_code, sizeof(loop_code));
	memfd_b = shared_pages("vpm-harvest", MEMFD_PAGES);
	p0 = pins();

	new_vm_h(&v);
	r = harvest(v.fd, RANGE_GFN, 1, &dirty, &young, 0, 0);
	if (r == -ENOTTY)
		skip("KVM_VPM_HARVEST gives ENOTTY: KVM without the VPM harvest patch");
	check(r == -ENXIO, "HARVEST before KVM_VPM_ENABLE: %s (want ENXIO)", err_name(r));
	r = vm_ioctl(v.fd, KVM_VPM_HOLD);
	check(r == -ENXIO, "HOLD before KVM_VPM_ENABLE: %s (want ENXIO)", err_name(r));
	r = vm_ioctl(v.fd, KVM_VPM_RESUME);
	check(r == -ENXIO, "RESUME before KVM_VPM_ENABLE: %s (want ENXIO)", err_name(r));
	enable(&v);
	map_range(&v);
	check(pins() - p0 == 6, "ENABLE on gfns 0x%lx-0x%lx, MAP +0..+3 RW, +4, +5 RO: pins %+ld",
	      RANGE_GFN, RANGE_GFN + RANGE_PAGES - 1, pins() - p0);
	r = harvest(v.fd, RANGE_GFN, RANGE_PAGES, &dirty, &young, 0, 0);
	check(r == 0, "first HARVEST (whatever was there): %s, dirty 0x%02x young 0x%02x",
	      err_name(r), dirty, young);

	/* Reads of +0 (RW), +3 (RW), +4 (RO), +6 (memslot); writes of +1, +2, +7. */
	guest_read(&v, RANGE_GFN + 0);
	guest_read(&v, RANGE_GFN + 3);
	guest_read(&v, RANGE_GFN + 4);
	guest_read(&v, RANGE_GFN + 6);
	xguest_write(&v, RANGE_GFN + 1, 1);
	xguest_write(&v, RANGE_GFN + 2, 2);
	xguest_write(&v, RANGE_GFN + 7, 7);
	expect_bits(&v, 0x86, 0xdf, "reads of +0 +3 +4 +6, writes of +1 +2 +7");
	expect_bits(&v, 0, 0, "right after");
	/* Again: the SPTEs were zapped, so the accesses fault again. */
	guest_read(&v, RANGE_GFN + 1);
	xguest_write(&v, RANGE_GFN + 3, 3);
	guest_read(&v, RANGE_GFN + 5);
	expect_bits(&v, 0x08, 0x2a, "the guest ran again: read +1, write +3, read +5");
	guest_read(&v, RANGE_GFN + 0);
	xguest_write(&v, RANGE_GFN + 0, 0x100);
	expect_bits(&v, 0x01, 0x01, "read then write of +0 (RW entry)");
	guest_read(&v, RANGE_GFN + 7);
	xguest_write(&v, RANGE_GFN + 7, 0x107);
	expect_bits(&v, 0x80, 0x80, "read then write of +7 (memslot)");
	set_regs(&v, WRITE_RIP, RANGE_GFN + 4, OFF, 4);
	r = run_failing_events(&v, &i);
	check(r == -EFAULT && i == has_events(&v),
	      "write to the read-only entry +4, its event (if any) completed with -EFAULT: "
	      "KVM_RUN %s (want EFAULT), %d event(s)", err_name(r), i);
	expect_bits(&v, 0, 0x10, "after the refused write");
	check(*word(memfd_b, 1, OFF) == 1 && *word(memfd_b, 3, OFF) == 3 &&
	      *word(v.data, RANGE_GFN + 7 - DATA_GFN, OFF) == 0x107,
	      "the writes are in the memfd and the memslot");

	/* A run of 3 gfns into unaligned bitmaps. */
	xguest_write(&v, RANGE_GFN + 3, 3);
	xguest_write(&v, RANGE_GFN + 6, 6);
	guest_read(&v, RANGE_GFN + 4);
	memset(buf, 0xff, sizeof(buf));
	young = 0xee;
	r = harvest(v.fd, RANGE_GFN + 2, 3, buf + 1, &young, 0, 0);
	check(r == 0 && buf[1] == 0x02 && young == 0x06 && buf[0] == 0xff && buf[2] == 0xff,
	      "HARVEST of +2..+4 into an unaligned bitmap: %s, dirty 0x%02x young 0x%02x "
	      "(want 0x02 0x06), bytes around it 0x%02x 0x%02x", err_name(r), buf[1], young,
	      buf[0], buf[2]);
	expect_bits(&v, 0x40, 0x40, "the rest of the range");

	/* Zero pointers leave the bits alone. */
	xguest_write(&v, RANGE_GFN + 1, 1);
	young = 0;
	r = harvest(v.fd, RANGE_GFN, RANGE_PAGES, NULL, &young, 0, 0);
	check(r == 0 && young == 0x02, "HARVEST without a dirty bitmap: %s, young 0x%02x",
	      err_name(r), young);
	expect_bits(&v, 0x02, 0, "then with both");
	xguest_write(&v, RANGE_GFN + 1, 1);
	r = harvest(v.fd, RANGE_GFN, RANGE_PAGES, NULL, NULL, 0, 0);
	check(r == 0, "HARVEST without bitmaps: %s", err_name(r));
	expect_bits(&v, 0x02, 0x02, "then with both");

	/* A remap keeps the bits; so does an EFAULT. */
	xguest_write(&v, RANGE_GFN + 2, 2);
	r = vpm_map(v.fd, RANGE_GFN + 2, memfd_b + 6 * PAGE_SIZE, KVM_VPM_MAP_WRITABLE);
	check(r == 0, "remap of the written gfn +2: %s", err_name(r));
	expect_bits(&v, 0x04, 0x04, "after the remap");
	r = vpm_map(v.fd, RANGE_GFN + 2, memfd_b + 2 * PAGE_SIZE, KVM_VPM_MAP_WRITABLE);
	check(r == 0, "and back: %s", err_name(r));
	xguest_write(&v, RANGE_GFN + 6, 6);
	hole = alloc_pages(1);
	munmap(hole, PAGE_SIZE);
	r = harvest(v.fd, RANGE_GFN, RANGE_PAGES, hole, &young, 0, 0);
	check(r == -EFAULT, "HARVEST into an unmapped dirty bitmap: %s (want EFAULT)",
	      err_name(r));
	expect_bits(&v, 0x40, 0x40, "the bits are kept");

	/* Bad arguments. */
	r = harvest(v.fd, RANGE_GFN, 0, &dirty, &young, 0, 0);
	check(r == -EINVAL, "HARVEST of 0 gfns: %s (want EINVAL)", err_name(r));
	r = harvest(v.fd, RANGE_GFN - 1, 2, &dirty, &young, 0, 0);
	check(r == -EINVAL, "HARVEST from one gfn before the range: %s (want EINVAL)",
	      err_name(r));
	r = harvest(v.fd, RANGE_GFN, RANGE_PAGES + 1, &dirty, &young, 0, 0);
	check(r == -EINVAL, "HARVEST one gfn past the range: %s (want EINVAL)", err_name(r));
	r = harvest(v.fd, RANGE_GFN + RANGE_PAGES, 1, &dirty, &young, 0, 0);
	check(r == -EINVAL, "HARVEST of the gfn after the range: %s (want EINVAL)",
	      err_name(r));
	r = harvest(v.fd, RANGE_GFN + 1, -1ULL, &dirty, &young, 0, 0);
	check(r == -EINVAL, "HARVEST of 2^64 - 1 gfns: %s (want EINVAL)", err_name(r));
	r = harvest(v.fd, RANGE_GFN, 1, &dirty, &young, 1, 0);
	check(r == -EINVAL, "HARVEST with flags 1: %s (want EINVAL)", err_name(r));
	r = harvest(v.fd, RANGE_GFN, 1, &dirty, &young, 0x80000000u, 0);
	check(r == -EINVAL, "HARVEST with flags bit 31: %s (want EINVAL)", err_name(r));
	r = harvest(v.fd, RANGE_GFN, 1, &dirty, &young, 0, 1);
	check(r == -EINVAL, "HARVEST with pad 1: %s (want EINVAL)", err_name(r));

	r = in_child(child_ops, v.fd, "child_ops");
	check(r == 0, "child (other mm) passed (exit %d)", r);

	hold_tests(&v);
	close_vm(&v);
	for (i = 1; i <= 3; i++)
		teardown(i);
	check(pins() == p0, "pins %+ld after all VMs were closed", pins() - p0);

	/* HOLD after the event fd was closed. */
	new_vm_h(&v);
	enable(&v);
	close(v.vpm);
	v.vpm = -1;
	r = vm_ioctl(v.fd, KVM_VPM_HOLD);
	check(r == -ENXIO, "HOLD after the event fd was closed: %s (want ENXIO)", err_name(r));
	r = harvest(v.fd, RANGE_GFN, RANGE_PAGES, &dirty, &young, 0, 0);
	check(r == 0, "HARVEST after the event fd was closed: %s", err_name(r));
	close_vm(&v);

	close(kvm);
	if (checks_failed)
		fail("%d checks failed", checks_failed);
	printf("VPM-HARVEST: PASS\n");
	return 0;
}
