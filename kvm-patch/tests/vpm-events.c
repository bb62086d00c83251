// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vpm-events - selftest of the fourth VPM KVM patch: write-fault and hint events on the
 * event fd and KVM_VPM_COMPLETE.
 *
 * Standalone and static like vpm-harvest, with the same real-mode guest (vpm-guest.h):
 * one entry point writes ECX to DS:BX and halts, one issues the hypercall
 * KVM_HC_VPM_HINT (vmmcall with kvm_amd, vmcall otherwise; RAX, RBX, RCX and RDX are set
 * with KVM_SET_REGS) and halts.  Real mode is CPL 0, which is all KVM asks of a caller
 * of a hypercall, so no protected-mode setup is needed.  A second thread runs KVM_RUN
 * while the main thread plays the daemon.  VPM is enabled on gfns 0x14-0x1b.  It checks:
 *
 *   - before KVM_VPM_ENABLE, COMPLETE gives ENXIO; then ENOENT for ids that are not
 *     pending (also from a forked child, another mm), EINVAL for pad or a positive
 *     status; read gives EAGAIN (also for less than a record), poll nothing; with an
 *     event pending, a read of less than a record gives EINVAL and leaves the event;
 *   - a guest write to a read-only entry gives one WRITE_FAULT event (the page, 4096
 *     bytes, vCPU 0, poll reports POLLIN), and the vCPU thread stays in KVM_RUN for
 *     50 ms; MAP writable and COMPLETE with 0: the write lands in the memfd and the guest
 *     halts; the same id again: ENOENT;
 *   - COMPLETE with -EFAULT: KVM_RUN fails with EFAULT and the memfd page is unchanged;
 *   - a signal ends the wait with EINTR, without a second event, and the next KVM_RUN
 *     waits again until COMPLETE;
 *   - a PERSIST hint and a DISCARD hint give their events (gpa, len) and block until
 *     COMPLETE, whose status (0, -ENOSPC) comes back in RAX; hints outside the range,
 *     straddling its end, with len 0 or an unknown op give -KVM_EINVAL in RAX at once
 *     and no event;
 *   - closing the VM fd while the vCPU waits makes KVM_RUN fail with EFAULT; so does
 *     closing the event fd without the re-attach patch, while with it the vCPU keeps
 *     waiting (vpm-reattach tests that further) until the VM fd is closed too; after
 *     that, hints give -KVM_EFAULT and writes EFAULT at once;
 *   - pins (/proc/vmstat) are back to their starting value at the end.
 *
 * Every wait for the vCPU thread is bounded (5 s) and fails the test instead of hanging.
 *
 * Output: one line per check, then "VPM-EVENTS: PASS", "VPM-EVENTS: FAIL <why>" or
 * "VPM-EVENTS: SKIP <why>" (no KVM_CAP_VPM or no KVM_VPM_COMPLETE).  Exit codes: 0 pass,
 * 1 fail, 77 skip.
 *
 * Build: gcc -static -O2 -Wall -o vpm-events vpm-events.c (with kvm-lib.h and vpm-guest.h
 * next to it and ../include/linux/vpm-kvm.h, the uapi of the series).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm_para.h>

#include "../include/linux/vpm-kvm.h"

#define KVM_LIB_NAME	"vpm-events"
#define KVM_LIB_VERDICT	"VPM-EVENTS"
#include "kvm-lib.h"
#include "vpm-guest.h"

#define HINT_RIP	(CODE_GPA + 0x40)
#define OFF		0x100
#define TIMEOUT_MS	5000

/* At HINT_RIP: vmmcall (or vmcall); hlt. */
static uint8_t hint_code[] = { 0x0f, 0x01, 0xd9, 0xf4 };

static uint8_t *memfd_b;
/* Does closing the event fd orphan the VPM state instead of failing the events? */
static int reattach;

static void start(struct runner *t, struct vm *v)
{
	t->v = v;
	t->done = 0;
	if (pthread_create(&t->thread, NULL, run_vcpu, t))
		fail("pthread_create");
}

/* must_return - the vCPU thread's KVM_RUN must return within TIMEOUT_MS. */
static void must_return(struct runner *t, const char *what)
{
	if (!wait_done(t, TIMEOUT_MS))
		fail("%s: KVM_RUN did not return within %u ms", what, TIMEOUT_MS);
}

static void on_sigusr1(int sig)
{
	(void)sig;
}

static int complete(int vm, uint64_t id, int32_t status, uint32_t pad)
{
	struct kvm_vpm_complete c = { .id = id, .status = status, .pad = pad };

	return ioctl(vm, KVM_VPM_COMPLETE, &c) < 0 ? -errno : 0;
}

/* In a forked child (another mm, as vpmd): COMPLETE of an id that is not pending. */
static int child_complete(int vm)
{
	return complete(vm, 12345, 0, 0) == -ENOENT ? 0 : 1;
}

static int vpm_map(int vm, uint64_t gfn, const void *uaddr, uint32_t flags)
{
	struct kvm_vpm_map_entry e = { .gfn = gfn, .uaddr = (uintptr_t)uaddr, .flags = flags };
	struct kvm_vpm_map m = { .n = 1, .entries = (uintptr_t)&e };

	return ioctl(vm, KVM_VPM_MAP, &m) < 0 ? -errno : 0;
}

static void xmap(struct vm *v, uint64_t gfn, unsigned int page, uint32_t flags)
{
	int r = vpm_map(v->fd, gfn, memfd_b + page * PAGE_SIZE, flags);

	if (r)
		fail("KVM_VPM_MAP gfn 0x%llx: %s", (unsigned long long)gfn, err_name(r));
}

/* poll_in - does the event fd report POLLIN within ms milliseconds? */
static int poll_in(struct vm *v, int ms)
{
	struct pollfd p = { .fd = v->vpm, .events = POLLIN };

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* read_events - read into ev (room for n); the number of events or -errno. */
static int read_events(struct vm *v, struct kvm_vpm_event *ev, unsigned int n)
{
	ssize_t r = read(v->vpm, ev, n * sizeof(*ev));

	if (r < 0)
		return -errno;
	if (r % sizeof(*ev))
		fail("read of the event fd: %zd bytes, not whole records", r);
	return r / sizeof(*ev);
}

/* next_event - wait (bounded) for exactly one event and read it. */
static void next_event(struct vm *v, struct kvm_vpm_event *ev, const char *what)
{
	struct kvm_vpm_event evs[2];
	int n;

	if (!poll_in(v, TIMEOUT_MS))
		fail("%s: no POLLIN on the event fd within %u ms", what, TIMEOUT_MS);
	n = read_events(v, evs, 2);
	check(n == 1, "%s: poll reports POLLIN, a read for two records gives %s (want 1)",
	      what, err_name(n));
	*ev = evs[0];
}

static void no_event(struct vm *v, const char *what)
{
	struct kvm_vpm_event ev;
	int n = read_events(v, &ev, 1);

	check(n == -EAGAIN && !poll_in(v, 0), "%s: no event (read %s, want EAGAIN; no POLLIN)",
	      what, err_name(n));
}

static void set_hint_regs(struct vm *v, uint64_t op, uint64_t gpa, uint64_t len)
{
	struct kvm_regs regs;

	memset(&regs, 0, sizeof(regs));
	regs.rip = HINT_RIP;
	regs.rflags = 0x2;
	regs.rax = KVM_HC_VPM_HINT;
	regs.rbx = op;
	regs.rcx = gpa;
	regs.rdx = len;
	xioctl(v->vcpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");
}

static uint64_t rax(struct vm *v)
{
	struct kvm_regs regs;

	xioctl(v->vcpu, KVM_GET_REGS, &regs, "KVM_GET_REGS");
	return regs.rax;
}

/* A hint refused at once: the guest halts with want in EAX, no event. */
static void hint_refused(struct vm *v, uint64_t op, uint64_t gpa, uint64_t len, int32_t want,
			 const char *what)
{
	struct runner t;
	uint64_t a;

	set_hint_regs(v, op, gpa, len);
	start(&t, v);
	must_return(&t, what);
	a = rax(v);
	check(t.r == 0 && t.exit_reason == KVM_EXIT_HLT && (uint32_t)a == (uint32_t)want,
	      "%s (op %llu, gpa 0x%llx, len 0x%llx): KVM_RUN %s, exit %u, RAX 0x%llx (want %d)",
	      what, (unsigned long long)op, (unsigned long long)gpa, (unsigned long long)len,
	      err_name(t.r), t.exit_reason, (unsigned long long)a, want);
	no_event(v, what);
}

/* A hint that gives an event; completed with status, which must come back in RAX. */
static void hint_completed(struct vm *v, uint64_t op, uint64_t gpa, uint64_t len,
			   uint32_t type, int32_t status, const char *what)
{
	struct kvm_vpm_event ev;
	struct runner t;
	uint64_t a;
	int r;

	set_hint_regs(v, op, gpa, len);
	start(&t, v);
	next_event(v, &ev, what);
	check(ev.type == type && ev.gpa == gpa && ev.len == len && ev.vcpu == 0 && ev.id,
	      "%s: event id %llu type %u (want %u) vcpu %u gpa 0x%llx len 0x%llx", what,
	      (unsigned long long)ev.id, ev.type, type, ev.vcpu, (unsigned long long)ev.gpa,
	      (unsigned long long)ev.len);
	msleep(50);
	check(!t.done, "%s: the vCPU waits (KVM_RUN not returned after 50 ms)", what);
	r = complete(v->fd, ev.id, status, 0);
	must_return(&t, what);
	a = rax(v);
	check(r == 0 && t.r == 0 && t.exit_reason == KVM_EXIT_HLT &&
	      (uint32_t)a == (uint32_t)status,
	      "%s: COMPLETE with %d: %s; KVM_RUN %s, exit %u, RAX 0x%llx", what, status,
	      err_name(r), err_name(t.r), t.exit_reason, (unsigned long long)a);
}

/* A write to gfn that waits for an event; returns with the event read, thread running. */
static void blocked_write(struct vm *v, struct runner *t, uint64_t gfn, uint32_t val,
			  struct kvm_vpm_event *ev, const char *what)
{
	uint8_t small[sizeof(*ev) - 1];
	int r;

	set_regs(v, WRITE_RIP, gfn, OFF, val);
	start(t, v);
	if (!poll_in(v, TIMEOUT_MS))
		fail("%s: no POLLIN on the event fd within %u ms", what, TIMEOUT_MS);
	r = read(v->vpm, small, sizeof(small)) < 0 ? -errno : 0;
	check(r == -EINVAL, "%s: a read of less than one record: %s (want EINVAL)", what,
	      err_name(r));
	next_event(v, ev, what);
	check(ev->type == KVM_VPM_EVENT_WRITE_FAULT && ev->gpa == gfn << 12 &&
	      ev->len == PAGE_SIZE && ev->vcpu == 0 && ev->id,
	      "%s: WRITE_FAULT event id %llu type %u vcpu %u gpa 0x%llx (want 0x%llx) len %llu",
	      what, (unsigned long long)ev->id, ev->type, ev->vcpu,
	      (unsigned long long)ev->gpa, (unsigned long long)(gfn << 12),
	      (unsigned long long)ev->len);
	msleep(50);
	check(!t->done, "%s: the vCPU waits (KVM_RUN not returned after 50 ms)", what);
}

static void write_tests(struct vm *v)
{
	struct kvm_vpm_event ev;
	struct runner t;
	uint64_t id;
	int r;

	/* Write fault, MAP writable, COMPLETE 0: the write lands. */
	xmap(v, RANGE_GFN + 0, 0, 0);
	*word(memfd_b, 0, OFF) = 0x11111111;
	blocked_write(v, &t, RANGE_GFN + 0, 0xcafe0001, &ev, "write to a RO entry");
	no_event(v, "while it waits");
	xmap(v, RANGE_GFN + 0, 0, KVM_VPM_MAP_WRITABLE);
	check(!t.done && *word(memfd_b, 0, OFF) == 0x11111111,
	      "MAP writable meanwhile: still waiting, memfd unchanged");
	r = complete(v->fd, ev.id, 0, 0);
	must_return(&t, "COMPLETE 0");
	check(r == 0 && t.r == 0 && t.exit_reason == KVM_EXIT_HLT &&
	      *word(memfd_b, 0, OFF) == 0xcafe0001,
	      "COMPLETE with 0: %s; KVM_RUN %s, exit %u (want HLT), memfd 0x%x (want 0xcafe0001)",
	      err_name(r), err_name(t.r), t.exit_reason, *word(memfd_b, 0, OFF));
	r = complete(v->fd, ev.id, 0, 0);
	check(r == -ENOENT, "COMPLETE of the same id again: %s (want ENOENT)", err_name(r));
	no_event(v, "after it");

	/* COMPLETE with -EFAULT: KVM_RUN fails. */
	xmap(v, RANGE_GFN + 1, 1, 0);
	*word(memfd_b, 1, OFF) = 0x22222222;
	blocked_write(v, &t, RANGE_GFN + 1, 0xcafe0002, &ev, "write to another RO entry");
	r = complete(v->fd, ev.id, -EFAULT, 0);
	must_return(&t, "COMPLETE -EFAULT");
	check(r == 0 && t.r == -EFAULT && *word(memfd_b, 1, OFF) == 0x22222222,
	      "COMPLETE with -EFAULT: %s; KVM_RUN %s (want EFAULT), memfd unchanged",
	      err_name(r), err_name(t.r));
	no_event(v, "after it");

	/* A signal ends the wait; the event stays; the next KVM_RUN waits again. */
	blocked_write(v, &t, RANGE_GFN + 1, 0xcafe0003, &ev, "write to the RO entry again");
	id = ev.id;
	pthread_kill(t.thread, SIGUSR1);
	must_return(&t, "signal");
	check(t.r == -EINTR && t.exit_reason == KVM_EXIT_INTR,
	      "a signal: KVM_RUN %s (want EINTR), exit %u (want KVM_EXIT_INTR)",
	      err_name(t.r), t.exit_reason);
	start(&t, v);
	msleep(50);
	check(!t.done, "the next KVM_RUN waits again (not returned after 50 ms)");
	no_event(v, "no second event");
	xmap(v, RANGE_GFN + 1, 1, KVM_VPM_MAP_WRITABLE);
	r = complete(v->fd, id, 0, 0);
	must_return(&t, "COMPLETE after the signal");
	check(r == 0 && t.r == 0 && t.exit_reason == KVM_EXIT_HLT &&
	      *word(memfd_b, 1, OFF) == 0xcafe0003,
	      "COMPLETE of the first event with 0: %s; KVM_RUN %s, exit %u, memfd 0x%x",
	      err_name(r), err_name(t.r), t.exit_reason, *word(memfd_b, 1, OFF));
}

static void hint_tests(struct vm *v)
{
	uint64_t base = RANGE_GFN << 12, size = RANGE_PAGES * PAGE_SIZE;

	hint_completed(v, KVM_VPM_HINT_PERSIST, base + 2 * PAGE_SIZE + 0x40, 0x200,
		       KVM_VPM_EVENT_PERSIST, 0, "PERSIST hint");
	hint_completed(v, KVM_VPM_HINT_DISCARD, base, size, KVM_VPM_EVENT_DISCARD, -ENOSPC,
		       "DISCARD hint of the whole range");
	hint_refused(v, KVM_VPM_HINT_PERSIST, base + size, 1, -KVM_EINVAL, "hint past the range");
	hint_refused(v, KVM_VPM_HINT_PERSIST, base - 1, 1, -KVM_EINVAL, "hint before the range");
	hint_refused(v, KVM_VPM_HINT_PERSIST, base + size - 8, 16, -KVM_EINVAL,
		     "hint over the end of the range");
	hint_refused(v, KVM_VPM_HINT_PERSIST, base, 0, -KVM_EINVAL, "hint with len 0");
	hint_refused(v, 3, base, 8, -KVM_EINVAL, "hint with op 3");
	hint_refused(v, 0, base, 8, -KVM_EINVAL, "hint with op 0");
}

/*
 * Close the VM fd, or the event fd, while the vCPU waits: KVM_RUN fails with EFAULT.
 * With the re-attach patch, closing the event fd leaves the vCPU waiting for a new
 * daemon, and closing the VM fd then fails the event.
 */
static void close_test(int close_vm_fd)
{
	const char *what = close_vm_fd ? "close the VM fd" :
			   reattach ? "close the event fd, then the VM fd" : "close the event fd";
	struct kvm_vpm_event ev;
	struct runner t;
	struct vm v;

	new_vm(&v);
	enable(&v);
	xmap(&v, RANGE_GFN + 3, 3, 0);
	blocked_write(&v, &t, RANGE_GFN + 3, 0xcafe0004, &ev, what);
	if (!close_vm_fd) {
		close(v.vpm);
		v.vpm = -1;
	}
	if (!close_vm_fd && reattach) {
		msleep(100);
		check(!t.done, "close the event fd while the vCPU waits: it keeps waiting "
		      "(KVM_RUN not returned after 100 ms)");
	}
	if (close_vm_fd || reattach) {
		close(v.fd);
		v.fd = -1;
	}
	must_return(&t, what);
	check(t.r == -EFAULT, "%s while the vCPU waits: KVM_RUN %s (want EFAULT)", what,
	      err_name(t.r));
	if (!close_vm_fd) {
		/* Later events fail at once. */
		set_regs(&v, WRITE_RIP, RANGE_GFN + 3, OFF, 0xcafe0005);
		start(&t, &v);
		must_return(&t, "write after the close");
		check(t.r == -EFAULT, "a write to the RO entry after the close: KVM_RUN %s "
		      "(want EFAULT at once)", err_name(t.r));
		set_hint_regs(&v, KVM_VPM_HINT_PERSIST, RANGE_GFN << 12, 8);
		start(&t, &v);
		must_return(&t, "hint after the close");
		check(t.r == 0 && t.exit_reason == KVM_EXIT_HLT &&
		      (uint32_t)rax(&v) == (uint32_t)-KVM_EFAULT,
		      "a hint after the close: KVM_RUN %s, exit %u, RAX 0x%llx (want -KVM_EFAULT)",
		      err_name(t.r), t.exit_reason, (unsigned long long)rax(&v));
	}
	check(*word(memfd_b, 3, OFF) == 0, "the memfd page was not written");
	close_vm(&v);
}

int main(void)
{
	struct kvm_vpm_event ev;
	struct sigaction sa;
	struct vm v;
	long p0;
	int r;

	kvm = open_kvm_vpm();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1;	/* no SA_RESTART */
	sigaction(SIGUSR1, &sa, NULL);

	/* vmmcall on AMD (kvm_amd), vmcall on Intel. */
	if (access("/sys/module/kvm_amd", F_OK))
		hint_code[2] = 0xc1;
	code_mem = alloc_pages(1);
	memset(code_mem, 0xf4, PAGE_SIZE);
	memcpy(code_mem + (WRITE_RIP - CODE_GPA), write_code, sizeof(write_code));
	memcpy(code_mem + (HINT_RIP - CODE_GPA), hint_code, sizeof(hint_code));
	memfd_b = shared_pages("vpm-events", MEMFD_PAGES);
	p0 = pins();

	new_vm(&v);
	r = complete(v.fd, 1, 0, 0);
	if (r == -ENOTTY)
		skip("KVM_VPM_COMPLETE gives ENOTTY: KVM without the VPM event patch");
	check(r == -ENXIO, "COMPLETE before KVM_VPM_ENABLE: %s (want ENXIO)", err_name(r));
	enable(&v);
	r = complete(v.fd, 0, 0, 0);
	check(r == -ENOENT, "COMPLETE of id 0 (never used): %s (want ENOENT)", err_name(r));
	r = complete(v.fd, 12345, 0, 0);
	check(r == -ENOENT, "COMPLETE of an unknown id: %s (want ENOENT)", err_name(r));
	r = in_child(child_complete, v.fd, "child COMPLETE");
	check(r == 0, "a forked child (other mm) may COMPLETE: ENOENT for an unknown id "
	      "(exit %d)", r);
	r = complete(v.fd, 1, 0, 1);
	check(r == -EINVAL, "COMPLETE with pad 1: %s (want EINVAL)", err_name(r));
	r = complete(v.fd, 1, 1, 0);
	check(r == -EINVAL, "COMPLETE with status 1: %s (want EINVAL)", err_name(r));
	r = read(v.vpm, &ev, sizeof(ev) - 1) < 0 ? -errno : 0;
	check(r == -EAGAIN, "read of less than one record, none pending: %s (want EAGAIN)",
	      err_name(r));
	no_event(&v, "after ENABLE");

	write_tests(&v);
	hint_tests(&v);
	close_vm(&v);

	reattach = has_reattach();
	close_test(0);
	close_test(1);

	r = (int)(pins() - p0);
	check(r == 0, "every VM closed: pins %+d (want +0)", r);

	if (checks_failed)
		fail("%d checks failed", checks_failed);
	printf("VPM-EVENTS: PASS\n");
	return 0;
}
