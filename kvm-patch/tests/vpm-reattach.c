// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vpm-reattach - selftest of the fifth VPM KVM patch: a daemon that goes away (closes the
 * event fd or dies) leaves the VM running on its mappings, with its pending events kept,
 * and a new daemon takes over with KVM_VPM_ENABLE of the same range.
 *
 * Standalone and static like vpm-events, with the same real-mode guest (vpm-guest.h)
 * and three vCPUs: entry points read DS:BX (and report it with "out dx, eax"), write
 * ECX to DS:BX, or issue the hypercall KVM_HC_VPM_HINT, then halt.  KVM_RUN runs in
 * other threads while the main thread plays the VMM and the daemons.  VPM is enabled on
 * gfns 0x14-0x1b.  It checks:
 *
 *   - with a daemon attached, KVM_VPM_ENABLE of the same range gives EEXIST;
 *   - vCPU 0 waits on a write fault whose event the daemon read, vCPU 1 on one it did
 *     not read, vCPU 2 is held (KVM_VPM_HOLD); closing the event fd releases vCPU 2 (its
 *     write to a writable entry lands in the daemon's page) and leaves vCPUs 0 and 1
 *     waiting, the pages pinned;
 *   - while orphaned: MAP, UNMAP, HOLD, RESUME and COMPLETE give ENXIO, HARVEST works
 *     (and reports the write); the guest reads a read-only entry and writes a writable
 *     one; a signal ends a wait with EINTR and the next KVM_RUN waits again; a hint
 *     waits; KVM_VPM_ENABLE of another range gives EEXIST, with flags EINVAL, from an
 *     unprivileged process EPERM;
 *   - KVM_VPM_ENABLE of the same range gives a new event fd (FD_CLOEXEC) from which the
 *     three events are read, oldest first, the first with its old id; a second ENABLE
 *     gives EEXIST; MAP writable of a page of the new daemon and COMPLETE: the write
 *     lands in that page; the hint's status comes back in RAX; -EFAULT fails KVM_RUN;
 *   - a daemon in a forked child reads an event and is killed with SIGKILL: the vCPU
 *     keeps waiting, the child's page stays pinned, and the next daemon reads the same
 *     id and completes it;
 *   - teardown: closing the event fd, then the VM fd, while a vCPU waits makes KVM_RUN
 *     fail with EFAULT; a forked child whose vCPU waits on an orphaned event is killed
 *     with SIGKILL and leaves no pin; pins (/proc/vmstat) are back at the end.
 *
 * Every wait is bounded (5 s) and fails the test instead of hanging.
 *
 * Output: one line per check, then "VPM-REATTACH: PASS", "VPM-REATTACH: FAIL <why>" or
 * "VPM-REATTACH: SKIP <why>" (no KVM_CAP_VPM, no KVM_VPM_COMPLETE, or KVM_VPM_ENABLE
 * gives EEXIST after the event fd was closed).  Exit codes: 0 pass, 1 fail, 77 skip.
 *
 * Build: gcc -static -O2 -Wall -o vpm-reattach vpm-reattach.c (with kvm-lib.h and
 * vpm-guest.h next to it and ../include/linux/vpm-kvm.h, the uapi of the series).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm_para.h>

#include "../include/linux/vpm-kvm.h"

#define KVM_LIB_NAME	"vpm-reattach"
#define KVM_LIB_VERDICT	"VPM-REATTACH"
#include "kvm-lib.h"
#include "vpm-guest.h"

#define HINT_RIP	(CODE_GPA + 0x40)
#define OFF		0x100
#define TIMEOUT_MS	5000
#define WAIT_MS		100		/* how long a waiting vCPU must stay waiting */
#define RANGE_GPA	(RANGE_GFN << 12)
#define RANGE_SIZE	(RANGE_PAGES * PAGE_SIZE)

/* At HINT_RIP: vmmcall (or vmcall); hlt. */
static uint8_t hint_code[] = { 0x0f, 0x01, 0xd9, 0xf4 };

/* The pages of the first daemon and of the later ones (MAP_SHARED memfds). */
static uint8_t *memfd_old, *memfd_new;

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

/* still_waits - the vCPU thread is still in KVM_RUN after WAIT_MS. */
static int still_waits(struct runner *t)
{
	msleep(WAIT_MS);
	return !__atomic_load_n(&t->done, __ATOMIC_SEQ_CST);
}

static void on_sigusr1(int sig)
{
	(void)sig;
}

/* add_vcpu - vCPU id of the VM of base, set up like new_vm()'s, as a struct vm in c. */
static void add_vcpu(struct vm *base, struct vm *c, int id)
{
	struct kvm_sregs sregs;
	int size;

	*c = *base;
	c->vcpu = xioctl(base->fd, KVM_CREATE_VCPU, (void *)(long)id, "KVM_CREATE_VCPU");
	size = xioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, NULL, "KVM_GET_VCPU_MMAP_SIZE");
	c->run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, c->vcpu, 0);
	if (c->run == MAP_FAILED)
		fail("mmap kvm_run: %s", strerror(errno));
	xioctl(c->vcpu, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	sregs.ds.base = DATA_GPA;
	sregs.ds.selector = DATA_GPA >> 4;
	xioctl(c->vcpu, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
}

static void close_vcpu(struct vm *c)
{
	munmap(c->run, ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, NULL));
	close(c->vcpu);
}

static int vpm_enable(int vm, uint64_t gpa, uint64_t size, uint32_t flags)
{
	struct kvm_vpm_enable args = { .gpa = gpa, .size = size, .flags = flags };
	int r = ioctl(vm, KVM_VPM_ENABLE, &args);

	return r < 0 ? -errno : r;
}

static int complete(int vm, uint64_t id, int32_t status)
{
	struct kvm_vpm_complete c = { .id = id, .status = status };

	return ioctl(vm, KVM_VPM_COMPLETE, &c) < 0 ? -errno : 0;
}

static int vpm_map(int vm, uint64_t gfn, const void *uaddr, uint32_t flags)
{
	struct kvm_vpm_map_entry e = { .gfn = gfn, .uaddr = (uintptr_t)uaddr, .flags = flags };
	struct kvm_vpm_map m = { .n = 1, .entries = (uintptr_t)&e };

	return ioctl(vm, KVM_VPM_MAP, &m) < 0 ? -errno : 0;
}

static void xmap(int vm, uint64_t gfn, uint8_t *mem, unsigned int page, uint32_t flags)
{
	int r = vpm_map(vm, gfn, mem + page * PAGE_SIZE, flags);

	if (r)
		fail("KVM_VPM_MAP gfn 0x%llx: %s", (unsigned long long)gfn, err_name(r));
}

static int vm_ioctl(int vm, unsigned long req, void *arg)
{
	return ioctl(vm, req, arg) < 0 ? -errno : 0;
}

/* poll_in - does the event fd report POLLIN within ms milliseconds? */
static int poll_in(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* read_events - read into ev (room for n); the number of events or -errno. */
static int read_events(int fd, struct kvm_vpm_event *ev, unsigned int n)
{
	ssize_t r = read(fd, ev, n * sizeof(*ev));

	if (r < 0)
		return -errno;
	if (r % sizeof(*ev))
		fail("read of the event fd: %zd bytes, not whole records", r);
	return r / sizeof(*ev);
}

/* next_event - wait (bounded) for an event and read exactly one. */
static void next_event(int fd, struct kvm_vpm_event *ev, const char *what)
{
	int n;

	if (!poll_in(fd, TIMEOUT_MS))
		fail("%s: no POLLIN on the event fd within %u ms", what, TIMEOUT_MS);
	n = read_events(fd, ev, 1);
	if (n != 1)
		fail("%s: read of the event fd: %s", what, err_name(n));
}

static void set_hint_regs(struct vm *c, uint64_t op, uint64_t gpa, uint64_t len)
{
	struct kvm_regs regs;

	memset(&regs, 0, sizeof(regs));
	regs.rip = HINT_RIP;
	regs.rflags = 0x2;
	regs.rax = KVM_HC_VPM_HINT;
	regs.rbx = op;
	regs.rcx = gpa;
	regs.rdx = len;
	xioctl(c->vcpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");
}

static uint64_t rax(struct vm *c)
{
	struct kvm_regs regs;

	xioctl(c->vcpu, KVM_GET_REGS, &regs, "KVM_GET_REGS");
	return regs.rax;
}

/* start_write - vCPU c starts writing val to gfn in a thread. */
static void start_write(struct vm *c, struct runner *t, uint64_t gfn, uint32_t val)
{
	set_regs(c, WRITE_RIP, gfn, OFF, val);
	start(t, c);
}

/* run_to_hlt - the vCPU thread's KVM_RUN must return (bounded) at the hlt. */
static void run_to_hlt(struct runner *t, const char *what)
{
	must_return(t, what);
	if (t->r || t->exit_reason != KVM_EXIT_HLT)
		fail("%s: KVM_RUN %s, exit %u (want KVM_EXIT_HLT)", what, err_name(t->r),
		     t->exit_reason);
}

/* guest_read - vCPU c reads the word at OFF of gfn; bounded. */
static uint32_t guest_read(struct vm *c, uint64_t gfn, const char *what)
{
	struct runner t;
	uint32_t val;

	set_regs(c, READ_RIP, gfn, OFF, 0);
	start(&t, c);
	must_return(&t, what);
	if (t.r || t.exit_reason != KVM_EXIT_IO)
		fail("%s: KVM_RUN %s, exit %u (want KVM_EXIT_IO)", what, err_name(t.r),
		     t.exit_reason);
	memcpy(&val, (uint8_t *)c->run + c->run->io.data_offset, sizeof(val));
	start(&t, c);
	run_to_hlt(&t, what);
	return val;
}

static int harvest_dirty(int vm, uint8_t *dirty)
{
	struct kvm_vpm_harvest h = {
		.gfn = RANGE_GFN, .n = RANGE_PAGES, .dirty_bitmap = (uintptr_t)dirty,
	};

	*dirty = 0xff;
	return vm_ioctl(vm, KVM_VPM_HARVEST, &h);
}

/* read_pipe - n bytes from fd within ms milliseconds, or 0. */
static int read_pipe(int fd, void *buf, size_t n, int ms)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, ms) != 1)
			return 0;
		r = read(fd, (uint8_t *)buf + got, n - got);
		if (r <= 0)
			return 0;
		got += r;
	}
	return 1;
}

/* reap - waitpid for pid within TIMEOUT_MS; its status, or -1 (then it is killed). */
static int reap(pid_t pid)
{
	int status, i;

	for (i = 0; i < TIMEOUT_MS; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return status;
		msleep(1);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/* pins_back - pins() reaches want within TIMEOUT_MS; the last value read. */
static long pins_back(long want)
{
	long p = pins();
	int i;

	for (i = 0; p != want && i < TIMEOUT_MS / 10; i++) {
		msleep(10);
		p = pins();
	}
	return p;
}

/* In a forked child (another mm, uid nobody): KVM_VPM_ENABLE of the orphaned range. */
static int child_unprivileged(int vm)
{
	int r;

	if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
	    setresuid(65534, 65534, 65534) < 0) {
		info("cannot become nobody (%s): EPERM not tested", strerror(errno));
		return KVM_LIB_SKIP;
	}
	r = vpm_enable(vm, RANGE_GPA, RANGE_SIZE, 0);
	if (r >= 0)
		close(r);
	return r == -EPERM ? 0 : 1;
}

/*
 * The daemon of the dying-daemon test, in a forked child (another mm): attach, map gfn
 * +3 read-only from its own mapping of memfd_new, say 'm' on the pipe, read one event,
 * send its id, then wait to be killed.
 */
static void __attribute__((noreturn)) daemon_child(int vm, int out)
{
	struct kvm_vpm_event ev;
	int fd = vpm_enable(vm, RANGE_GPA, RANGE_SIZE, 0);
	char c = 'm';

	if (fd < 0 || vpm_map(vm, RANGE_GFN + 3, memfd_new + 3 * PAGE_SIZE, 0))
		c = 'e';
	if (write(out, &c, 1) != 1 || c != 'm')
		_exit(1);
	if (!poll_in(fd, TIMEOUT_MS) || read_events(fd, &ev, 1) != 1 ||
	    write(out, &ev.id, sizeof(ev.id)) != sizeof(ev.id))
		_exit(1);
	for (;;)
		pause();
}

/*
 * The VMM of the killed-VMM test, in a forked child: a VM of its own with gfn +0 mapped
 * read-only, a vCPU waiting on its write, the event fd closed; say 'r' on the pipe
 * (another letter if something went wrong), then wait to be killed.
 */
static void __attribute__((noreturn)) vmm_child(int out)
{
	struct runner t;
	struct vm v;
	char c = 'r';

	new_vm(&v);
	enable(&v);
	xmap(v.fd, RANGE_GFN, memfd_old, 0, 0);
	start_write(&v, &t, RANGE_GFN, 0xdead0001);
	if (!poll_in(v.vpm, TIMEOUT_MS))
		c = 'e';
	close(v.vpm);
	v.vpm = -1;
	if (!still_waits(&t))
		c = 'd';
	if (write(out, &c, 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

/* Close the event fd, then the VM fd, while a vCPU waits on an orphaned event. */
static void close_all_test(struct vm *v, struct vm *v1, struct vm *v2, long p0)
{
	struct runner t;
	int w;

	close(v->vpm);
	v->vpm = -1;
	start_write(v1, &t, RANGE_GFN + 2, 0xcafe0009);
	w = still_waits(&t);
	check(w, "orphaned again, a write to a RO entry: the vCPU waits (not returned after "
	      "%u ms)", WAIT_MS);
	close(v->fd);
	v->fd = -1;
	must_return(&t, "close the VM fd");
	check(t.r == -EFAULT, "then closing the VM fd: KVM_RUN %s (want EFAULT)",
	      err_name(t.r));
	close_vcpu(v1);
	close_vcpu(v2);
	close_vm(v);
	w = (int)(pins_back(p0) - p0);
	check(w == 0, "the VM closed: pins %+d (want +0)", w);
}

/* A forked child holds a VM whose vCPU waits on an orphaned event; SIGKILL it. */
static void killed_vmm_test(long p0)
{
	int pfd[2], status;
	pid_t pid;
	char c = 0;
	long p;

	if (pipe(pfd))
		fail("pipe: %s", strerror(errno));
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		fail("fork: %s", strerror(errno));
	if (pid == 0) {
		close(pfd[0]);
		vmm_child(pfd[1]);
	}
	close(pfd[1]);
	if (!read_pipe(pfd[0], &c, 1, TIMEOUT_MS))
		c = 0;
	p = pins() - p0;
	check(c == 'r' && p == 1, "a child VMM: vCPU waits on an orphaned event ('%c', want "
	      "'r'), its page pinned (pins %+ld, want +1)", c ? c : '-', p);
	kill(pid, SIGKILL);
	status = reap(pid);
	check(status >= 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	      "SIGKILL to the child VMM: it is gone within %u ms (status 0x%x)", TIMEOUT_MS,
	      status);
	p = pins_back(p0) - p0;
	check(p == 0, "the killed VMM's VM is torn down: pins %+ld (want +0)", p);
	close(pfd[0]);
}

/* A daemon in a forked child reads an event and is killed; the next one completes it. */
static void dying_daemon_test(struct vm *v, long p0)
{
	struct kvm_vpm_event ev;
	uint64_t id = 0;
	int pfd[2], status, r, w;
	struct runner t;
	pid_t pid;
	char c = 0;
	long p;

	if (pipe(pfd))
		fail("pipe: %s", strerror(errno));
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		fail("fork: %s", strerror(errno));
	if (pid == 0) {
		close(pfd[0]);
		daemon_child(v->fd, pfd[1]);
	}
	close(pfd[1]);
	if (!read_pipe(pfd[0], &c, 1, TIMEOUT_MS) || c != 'm')
		fail("a child daemon (other mm): KVM_VPM_ENABLE or MAP failed ('%c')",
		     c ? c : '-');
	check(1, "a child daemon (other mm) attached to the orphaned range and mapped +3 RO");
	*word(memfd_new, 3, OFF) = 0x33333333;
	start_write(v, &t, RANGE_GFN + 3, 0xcafe0008);
	r = read_pipe(pfd[0], &id, sizeof(id), TIMEOUT_MS);
	check(r && id, "the child daemon read the write fault: id %llu",
	      (unsigned long long)id);
	kill(pid, SIGKILL);
	status = reap(pid);
	close(pfd[0]);
	check(status >= 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	      "SIGKILL to the child daemon: it is gone (status 0x%x)", status);
	w = still_waits(&t);
	p = pins() - p0;
	check(w && p == 4, "the daemon died: the vCPU waits (not returned after %u ms), its page "
	      "stays pinned (pins %+ld, want +4)", WAIT_MS, p);

	v->vpm = vpm_enable(v->fd, RANGE_GPA, RANGE_SIZE, 0);
	if (v->vpm < 0)
		fail("KVM_VPM_ENABLE after the daemon died: %s", err_name(v->vpm));
	next_event(v->vpm, &ev, "after the daemon died");
	check(ev.id == id && ev.type == KVM_VPM_EVENT_WRITE_FAULT && ev.vcpu == 0 &&
	      ev.gpa == (RANGE_GFN + 3) << 12,
	      "the next daemon reads the dead one's event again: id %llu (want %llu) type %u "
	      "vcpu %u gpa 0x%llx", (unsigned long long)ev.id, (unsigned long long)id,
	      ev.type, ev.vcpu, (unsigned long long)ev.gpa);
	xmap(v->fd, RANGE_GFN + 3, memfd_new, 3, KVM_VPM_MAP_WRITABLE);
	r = complete(v->fd, ev.id, 0);
	run_to_hlt(&t, "COMPLETE after the daemon died");
	check(r == 0 && *word(memfd_new, 3, OFF) == 0xcafe0008,
	      "MAP writable and COMPLETE: %s, the write landed (0x%x)", err_name(r),
	      *word(memfd_new, 3, OFF));
}

int main(void)
{
	struct kvm_vpm_unmap unmap = { .gfn = RANGE_GFN, .n = 1 };
	struct kvm_vpm_event ev[4], ev0;
	struct runner t0, t1, t2;
	struct sigaction sa;
	struct vm v, v1, v2;
	uint8_t dirty;
	long p0, p;
	uint64_t a;
	int r, n, w;

	kvm = open_kvm_vpm();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1;	/* no SA_RESTART */
	sigaction(SIGUSR1, &sa, NULL);

	/* vmmcall on AMD (kvm_amd), vmcall on Intel. */
	if (access("/sys/module/kvm_amd", F_OK))
		hint_code[2] = 0xc1;
	code_mem = alloc_pages(1);
	memset(code_mem, 0xf4, PAGE_SIZE);
	memcpy(code_mem + (READ_RIP - CODE_GPA), read_code, sizeof(read_code));
	memcpy(code_mem + (WRITE_RIP - CODE_GPA), write_code, sizeof(write_code));
	memcpy(code_mem + (HINT_RIP - CODE_GPA), hint_code, sizeof(hint_code));
	memfd_old = shared_pages("vpm-reattach-old", MEMFD_PAGES);
	memfd_new = shared_pages("vpm-reattach-new", MEMFD_PAGES);
	p0 = pins();

	new_vm(&v);
	if (complete(v.fd, 1, 0) == -ENOTTY)
		skip("KVM_VPM_COMPLETE gives ENOTTY: KVM without the VPM event patch");
	if (!has_reattach())
		skip("KVM_VPM_ENABLE gives EEXIST after the event fd was closed: KVM without "
		     "the re-attach patch");
	check(1, "KVM_VPM_ENABLE of the same range after the event fd was closed gives an fd");
	add_vcpu(&v, &v1, 1);
	add_vcpu(&v, &v2, 2);

	/* The first daemon: three mappings, two vCPUs waiting, one held. */
	enable(&v);
	r = vpm_enable(v.fd, RANGE_GPA, RANGE_SIZE, 0);
	check(r == -EEXIST, "KVM_VPM_ENABLE of the same range with a daemon attached: %s "
	      "(want EEXIST)", err_name(r));
	xmap(v.fd, RANGE_GFN + 0, memfd_old, 0, 0);
	xmap(v.fd, RANGE_GFN + 1, memfd_old, 1, KVM_VPM_MAP_WRITABLE);
	xmap(v.fd, RANGE_GFN + 2, memfd_old, 2, 0);
	*word(memfd_old, 0, OFF) = 0x10101010;
	*word(memfd_old, 2, OFF) = 0x12121212;
	p = pins() - p0;
	check(p == 3, "the first daemon maps +0 RO, +1 RW, +2 RO: pins %+ld (want +3)", p);

	start_write(&v, &t0, RANGE_GFN + 0, 0xcafe0000);
	next_event(v.vpm, &ev0, "vCPU 0 writes +0");
	check(ev0.id && ev0.type == KVM_VPM_EVENT_WRITE_FAULT && ev0.vcpu == 0 &&
	      ev0.gpa == RANGE_GPA, "vCPU 0 writes the RO entry +0: the daemon reads event id "
	      "%llu (type %u, vcpu %u, gpa 0x%llx) and does not complete it",
	      (unsigned long long)ev0.id, ev0.type, ev0.vcpu, (unsigned long long)ev0.gpa);
	start_write(&v1, &t1, RANGE_GFN + 2, 0xcafe0102);
	check(poll_in(v.vpm, TIMEOUT_MS), "vCPU 1 writes the RO entry +2: its event is pending, "
	      "not read");
	r = vm_ioctl(v.fd, KVM_VPM_HOLD, NULL);
	start_write(&v2, &t2, RANGE_GFN + 1, 0xcafe0201);
	w = still_waits(&t2);
	check(r == 0 && w && *word(memfd_old, 1, OFF) == 0,
	      "HOLD: %s, vCPU 2's write to the RW entry +1 is held", err_name(r));

	/* The daemon goes away. */
	close(v.vpm);
	v.vpm = -1;
	run_to_hlt(&t2, "closing the event fd with a hold");
	check(*word(memfd_old, 1, OFF) == 0xcafe0201, "closing the event fd releases the hold: "
	      "vCPU 2's write landed in the daemon's page (0x%x)", *word(memfd_old, 1, OFF));
	w = still_waits(&t0) && !t1.done;
	p = pins() - p0;
	check(w && p == 3, "closing the event fd: vCPUs 0 and 1 keep waiting (not returned "
	      "after %u ms), the mappings stay pinned (pins %+ld, want +3)", WAIT_MS, p);
	check(*word(memfd_old, 0, OFF) == 0x10101010 && *word(memfd_old, 2, OFF) == 0x12121212 &&
	      *word(v.data, 4, OFF) == 0 && *word(v.data, 6, OFF) == 0,
	      "the waiting writes landed nowhere");

	/* Orphaned: the daemon's ioctls give ENXIO, HARVEST works, the guest runs. */
	r = vpm_map(v.fd, RANGE_GFN + 4, memfd_new + 4 * PAGE_SIZE, 0);
	check(r == -ENXIO, "orphaned: MAP %s (want ENXIO)", err_name(r));
	r = vm_ioctl(v.fd, KVM_VPM_UNMAP, &unmap);
	check(r == -ENXIO, "orphaned: UNMAP %s (want ENXIO)", err_name(r));
	r = vm_ioctl(v.fd, KVM_VPM_HOLD, NULL);
	check(r == -ENXIO, "orphaned: HOLD %s (want ENXIO)", err_name(r));
	r = vm_ioctl(v.fd, KVM_VPM_RESUME, NULL);
	check(r == -ENXIO, "orphaned: RESUME %s (want ENXIO)", err_name(r));
	r = complete(v.fd, ev0.id, 0);
	check(r == -ENXIO, "orphaned: COMPLETE of the pending id %llu: %s (want ENXIO)",
	      (unsigned long long)ev0.id, err_name(r));
	r = harvest_dirty(v.fd, &dirty);
	check(r == 0 && dirty == 0x02, "orphaned: HARVEST %s, dirty 0x%02x (want 0x02: the "
	      "write to +1)", err_name(r), dirty);
	p = pins() - p0;
	check(p == 3 && !t0.done && !t1.done, "after them: pins %+ld (want +3), vCPUs 0 and 1 "
	      "still wait", p);
	a = guest_read(&v2, RANGE_GFN + 0, "orphaned: read of +0");
	check(a == 0x10101010, "orphaned: vCPU 2 reads the RO entry +0 (0x%llx, want "
	      "0x10101010)", (unsigned long long)a);
	start_write(&v2, &t2, RANGE_GFN + 1, 0xcafe0211);
	run_to_hlt(&t2, "orphaned: write to +1");
	r = harvest_dirty(v.fd, &dirty);
	check(*word(memfd_old, 1, OFF) == 0xcafe0211 && r == 0 && dirty == 0x02,
	      "orphaned: vCPU 2 writes the RW entry +1: landed (0x%x), HARVEST dirty 0x%02x",
	      *word(memfd_old, 1, OFF), dirty);
	pthread_kill(t0.thread, SIGUSR1);
	must_return(&t0, "signal while orphaned");
	check(t0.r == -EINTR && t0.exit_reason == KVM_EXIT_INTR,
	      "orphaned: a signal ends vCPU 0's wait: KVM_RUN %s (want EINTR), exit %u",
	      err_name(t0.r), t0.exit_reason);
	start(&t0, &v);
	check(still_waits(&t0), "the next KVM_RUN of vCPU 0 waits again");
	set_hint_regs(&v2, KVM_VPM_HINT_PERSIST, RANGE_GPA + 0x40, 0x100);
	start(&t2, &v2);
	check(still_waits(&t2), "orphaned: vCPU 2's PERSIST hint waits (not returned after "
	      "%u ms)", WAIT_MS);

	/* Only the same range attaches, with the same checks as a first ENABLE. */
	r = vpm_enable(v.fd, RANGE_GPA + PAGE_SIZE, RANGE_SIZE - PAGE_SIZE, 0);
	check(r == -EEXIST, "orphaned: KVM_VPM_ENABLE of another range (one page in): %s "
	      "(want EEXIST)", err_name(r));
	r = vpm_enable(v.fd, RANGE_GPA, RANGE_SIZE - PAGE_SIZE, 0);
	check(r == -EEXIST, "orphaned: KVM_VPM_ENABLE of a smaller range at the same gpa: %s "
	      "(want EEXIST)", err_name(r));
	r = vpm_enable(v.fd, RANGE_GPA, RANGE_SIZE + PAGE_SIZE, 0);
	check(r == -EEXIST, "orphaned: KVM_VPM_ENABLE of a larger range at the same gpa: %s "
	      "(want EEXIST)", err_name(r));
	r = vpm_enable(v.fd, RANGE_GPA, RANGE_SIZE, 1);
	check(r == -EINVAL, "orphaned: KVM_VPM_ENABLE of the range with flags 1: %s "
	      "(want EINVAL)", err_name(r));
	r = in_child(child_unprivileged, v.fd, "child (nobody)");
	check(r == 0 || r == KVM_LIB_SKIP, "orphaned: KVM_VPM_ENABLE of the range from another "
	      "mm without CAP_SYS_ADMIN: EPERM (child exit %d)", r);
	check(!t0.done && !t1.done && !t2.done, "the three vCPUs still wait");

	/* A new daemon attaches: the same state, every pending event again. */
	v.vpm = vpm_enable(v.fd, RANGE_GPA, RANGE_SIZE, 0);
	r = v.vpm >= 0 ? fcntl(v.vpm, F_GETFD) : 0;
	check(v.vpm >= 0 && (r & FD_CLOEXEC), "KVM_VPM_ENABLE of the same range: a new event "
	      "fd (%s), FD_CLOEXEC", err_name(v.vpm));
	if (!poll_in(v.vpm, TIMEOUT_MS))
		fail("no POLLIN on the new event fd within %u ms", TIMEOUT_MS);
	n = read_events(v.vpm, ev, 4);
	check(n == 3, "the new daemon reads the pending events: %s (want 3)", err_name(n));
	check(ev[0].id == ev0.id && ev[0].type == KVM_VPM_EVENT_WRITE_FAULT && ev[0].vcpu == 0 &&
	      ev[0].gpa == RANGE_GPA && ev[0].len == PAGE_SIZE,
	      "first, vCPU 0's write fault read by the first daemon, with its id %llu (want "
	      "%llu)", (unsigned long long)ev[0].id, (unsigned long long)ev0.id);
	check(ev[1].id > ev[0].id && ev[1].type == KVM_VPM_EVENT_WRITE_FAULT &&
	      ev[1].vcpu == 1 && ev[1].gpa == RANGE_GPA + 2 * PAGE_SIZE,
	      "then vCPU 1's write fault, never read: id %llu type %u vcpu %u gpa 0x%llx",
	      (unsigned long long)ev[1].id, ev[1].type, ev[1].vcpu,
	      (unsigned long long)ev[1].gpa);
	check(ev[2].id > ev[1].id && ev[2].type == KVM_VPM_EVENT_PERSIST && ev[2].vcpu == 2 &&
	      ev[2].gpa == RANGE_GPA + 0x40 && ev[2].len == 0x100,
	      "then vCPU 2's hint raised while orphaned: id %llu type %u vcpu %u gpa 0x%llx "
	      "len 0x%llx", (unsigned long long)ev[2].id, ev[2].type, ev[2].vcpu,
	      (unsigned long long)ev[2].gpa, (unsigned long long)ev[2].len);
	r = vpm_enable(v.fd, RANGE_GPA, RANGE_SIZE, 0);
	check(r == -EEXIST, "KVM_VPM_ENABLE again with the new daemon attached: %s (want "
	      "EEXIST)", err_name(r));
	xmap(v.fd, RANGE_GFN + 0, memfd_new, 0, KVM_VPM_MAP_WRITABLE);
	r = complete(v.fd, ev[0].id, 0);
	run_to_hlt(&t0, "COMPLETE of vCPU 0's event");
	check(r == 0 && *word(memfd_new, 0, OFF) == 0xcafe0000 &&
	      *word(memfd_old, 0, OFF) == 0x10101010 && *word(v.data, 4, OFF) == 0,
	      "MAP +0 writable to the new daemon's page, COMPLETE 0: %s; the write landed in "
	      "that page (0x%x), not in the old one or the memslot", err_name(r),
	      *word(memfd_new, 0, OFF));
	r = complete(v.fd, ev[2].id, -ENOSPC);
	run_to_hlt(&t2, "COMPLETE of the hint");
	a = rax(&v2);
	check(r == 0 && (uint32_t)a == (uint32_t)-ENOSPC, "COMPLETE of the hint with -ENOSPC: "
	      "%s, RAX 0x%llx", err_name(r), (unsigned long long)a);
	r = complete(v.fd, ev[1].id, -EFAULT);
	must_return(&t1, "COMPLETE of vCPU 1's event");
	check(r == 0 && t1.r == -EFAULT && *word(memfd_old, 2, OFF) == 0x12121212,
	      "COMPLETE of vCPU 1's event with -EFAULT: %s; KVM_RUN %s (want EFAULT)",
	      err_name(r), err_name(t1.r));
	n = read_events(v.vpm, ev, 1);
	p = pins() - p0;
	check(n == -EAGAIN && p == 3, "no event left (read %s), pins %+ld (want +3: the remap "
	      "released the old page)", err_name(n), p);

	/* The next daemon dies with an event read; a third one completes it. */
	close(v.vpm);
	v.vpm = -1;
	dying_daemon_test(&v, p0);

	/* Teardown with orphaned waiting vCPUs. */
	close_all_test(&v, &v1, &v2, p0);
	killed_vmm_test(p0);

	r = (int)(pins() - p0);
	check(r == 0, "at the end: pins %+d (want +0)", r);
	close(kvm);
	if (checks_failed)
		fail("%d checks failed", checks_failed);
	printf("VPM-REATTACH: PASS\n");
	return 0;
}
