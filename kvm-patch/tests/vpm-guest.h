/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vpm-guest.h - the real-mode guest of the VPM selftests that run guest code (vpm-map.c,
 * vpm-harvest.c, vpm-events.c, vpm-reattach.c): a code slot, a data slot with the VPM
 * range in it, one vCPU whose DS points at the data slot, and small code snippets that
 * read or write one word of a data page; run_failing_events() runs the vCPU while a
 * thread completes every VPM event with -EFAULT; has_reattach() tells whether KVM keeps
 * an orphaned VPM state for a new daemon.  Include after kvm-lib.h and vpm-kvm.h.
 */
#ifndef VPM_GUEST_H
#define VPM_GUEST_H

#include <poll.h>
#include <pthread.h>

#define CODE_GPA	0x1000UL
#define READ_RIP	CODE_GPA
#define WRITE_RIP	(CODE_GPA + 0x10)
#define DATA_GPA	0x10000UL		/* DS base; DS = 0x1000 */
#define DATA_PAGES	16
#define DATA_GFN	(DATA_GPA >> 12)
#define RANGE_GFN	(DATA_GFN + 4)		/* VPM range: gfns 0x14-0x1b */
#define RANGE_PAGES	8
#define MEMFD_PAGES	8
#define IO_PORT		0x10

/* mov eax, [bx]; out dx, eax; hlt   and   mov [bx], ecx; hlt */
static const uint8_t read_code[] = { 0x66, 0x8b, 0x07, 0x66, 0xef, 0xf4 };
static const uint8_t write_code[] = { 0x66, 0x89, 0x0f, 0xf4 };

static int kvm;
static uint8_t *code_mem;

struct vm {
	int fd, vcpu, vpm;
	struct kvm_run *run;
	uint8_t *data;			/* the "QEMU" memory of the data slot */
};

static uint32_t *word(uint8_t *base, unsigned int page, unsigned int off)
{
	return (uint32_t *)(base + page * PAGE_SIZE + off);
}

/* new_vm - code slot, a zeroed data slot, one vCPU in real mode; no VPM yet. */
static void new_vm(struct vm *v)
{
	struct kvm_sregs sregs;
	int size;

	v->fd = xioctl(kvm, KVM_CREATE_VM, (void *)0, "KVM_CREATE_VM");
	xioctl(v->fd, KVM_SET_TSS_ADDR, (void *)0xfffbd000UL, "KVM_SET_TSS_ADDR");
	set_slot(v->fd, 0, CODE_GPA, PAGE_SIZE, code_mem);
	v->data = alloc_pages(DATA_PAGES);
	set_slot(v->fd, 1, DATA_GPA, DATA_PAGES * PAGE_SIZE, v->data);
	v->vcpu = xioctl(v->fd, KVM_CREATE_VCPU, (void *)0, "KVM_CREATE_VCPU");
	size = xioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, NULL, "KVM_GET_VCPU_MMAP_SIZE");
	v->run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu, 0);
	if (v->run == MAP_FAILED)
		fail("mmap kvm_run: %s", strerror(errno));
	xioctl(v->vcpu, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	sregs.ds.base = DATA_GPA;
	sregs.ds.selector = DATA_GPA >> 4;
	xioctl(v->vcpu, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
	v->vpm = -1;
}

static void close_vm(struct vm *v)
{
	int size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, NULL);

	munmap(v->run, size);
	close(v->vcpu);
	if (v->vpm >= 0)
		close(v->vpm);
	if (v->fd >= 0)
		close(v->fd);
	munmap(v->data, DATA_PAGES * PAGE_SIZE);
}

static void enable(struct vm *v)
{
	struct kvm_vpm_enable args = {
		.gpa = RANGE_GFN << 12, .size = RANGE_PAGES * PAGE_SIZE,
	};

	v->vpm = ioctl(v->fd, KVM_VPM_ENABLE, &args);
	if (v->vpm < 0)
		fail("KVM_VPM_ENABLE: %s", strerror(errno));
}

static void set_regs(struct vm *v, uint64_t rip, uint64_t gfn, unsigned int off, uint32_t val)
{
	struct kvm_regs regs;

	memset(&regs, 0, sizeof(regs));
	regs.rip = rip;
	regs.rflags = 0x2;
	regs.rbx = (gfn - DATA_GFN) * PAGE_SIZE + off;
	regs.rdx = IO_PORT;
	regs.rcx = val;
	xioctl(v->vcpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");
}

/*
 * pins - nr_foll_pin_acquired - nr_foll_pin_released of /proc/vmstat, after folding
 * the per-CPU deltas into them (/proc/sys/vm/stat_refresh, root only): without that,
 * a few pins do not show.
 */
static long pins(void)
{
	char name[64];
	long long v, acq = -1, rel = -1;
	FILE *f = fopen("/proc/sys/vm/stat_refresh", "w");

	if (!f || fputs("1\n", f) < 0 || fclose(f))
		fail("write /proc/sys/vm/stat_refresh: %s", strerror(errno));
	f = fopen("/proc/vmstat", "r");
	if (!f)
		fail("open /proc/vmstat: %s", strerror(errno));
	while (fscanf(f, "%63s %lld", name, &v) == 2) {
		if (!strcmp(name, "nr_foll_pin_acquired"))
			acq = v;
		else if (!strcmp(name, "nr_foll_pin_released"))
			rel = v;
	}
	fclose(f);
	if (acq < 0 || rel < 0)
		fail("/proc/vmstat has no nr_foll_pin_acquired/released");
	return acq - rel;
}

/* The helper thread of run_failing_events(). */
struct event_failer {
	int vm, vpm;
	volatile int stop;
	int events;
};

static void *fail_events(void *arg)
{
	struct event_failer *f = arg;

	while (!__atomic_load_n(&f->stop, __ATOMIC_SEQ_CST)) {
		struct pollfd p = { .fd = f->vpm, .events = POLLIN };

		if (poll(&p, 1, 10) <= 0)
			continue;
#ifdef KVM_VPM_COMPLETE
		{
			struct kvm_vpm_event ev;

			while (read(f->vpm, &ev, sizeof(ev)) == (ssize_t)sizeof(ev)) {
				struct kvm_vpm_complete c = { .id = ev.id, .status = -EFAULT };

				if (ioctl(f->vm, KVM_VPM_COMPLETE, &c) == 0)
					__atomic_add_fetch(&f->events, 1, __ATOMIC_SEQ_CST);
			}
		}
#endif
	}
	return NULL;
}

/*
 * run_failing_events - KVM_RUN while a helper thread completes every VPM event of the VM
 * with -EFAULT, as a daemon that refuses the write would: a guest write to a read-only
 * entry then makes KVM_RUN fail with EFAULT, with the event patch (one event) and
 * without it (no event).  0 or -errno of KVM_RUN; *events is the number of events.
 */
static int __attribute__((unused)) run_failing_events(struct vm *v, int *events)
{
	struct event_failer f = { .vm = v->fd, .vpm = v->vpm };
	pthread_t thread;
	int r;

	if (pthread_create(&thread, NULL, fail_events, &f))
		fail("pthread_create");
	r = ioctl(v->vcpu, KVM_RUN, NULL) < 0 ? -errno : 0;
	__atomic_store_n(&f.stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(thread, NULL);
	*events = f.events;
	return r;
}

/* has_events - do the modules have KVM_VPM_COMPLETE (the event patch)? */
static int __attribute__((unused)) has_events(struct vm *v)
{
#ifdef KVM_VPM_COMPLETE
	struct kvm_vpm_complete c = { .id = 0 };

	return ioctl(v->fd, KVM_VPM_COMPLETE, &c) == 0 || errno != ENOTTY;
#else
	(void)v;
	return 0;
#endif
}

/*
 * has_reattach - does KVM_VPM_ENABLE of the same range attach a new event fd to a VPM
 * state whose event fd was closed (the re-attach patch)?  Without it, closing the event
 * fd kills the state and the second KVM_VPM_ENABLE gives EEXIST.  Uses a VM of its own
 * (code_mem must be set up).
 */
static int __attribute__((unused)) has_reattach(void)
{
	struct kvm_vpm_enable args = {
		.gpa = RANGE_GFN << 12, .size = RANGE_PAGES * PAGE_SIZE,
	};
	struct vm v;

	new_vm(&v);
	enable(&v);
	close(v.vpm);
	v.vpm = ioctl(v.fd, KVM_VPM_ENABLE, &args);
	if (v.vpm < 0 && errno != EEXIST)
		fail("KVM_VPM_ENABLE after closing the event fd: %s", strerror(errno));
	close_vm(&v);
	return v.vpm >= 0;
}

static void __attribute__((unused)) msleep(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The vCPU thread: one KVM_RUN. */
struct runner {
	struct vm *v;
	pthread_t thread;
	volatile int done;
	int r;
	uint32_t exit_reason;
};

static __attribute__((unused)) void *run_vcpu(void *arg)
{
	struct runner *t = arg;

	t->r = ioctl(t->v->vcpu, KVM_RUN, NULL) < 0 ? -errno : 0;
	t->exit_reason = t->v->run->exit_reason;
	__atomic_store_n(&t->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* wait_done - wait up to ms milliseconds for the vCPU thread's KVM_RUN to return. */
static int __attribute__((unused)) wait_done(struct runner *t, unsigned int ms)
{
	unsigned int i;

	for (i = 0; i < ms && !__atomic_load_n(&t->done, __ATOMIC_SEQ_CST); i++)
		msleep(1);
	if (!t->done)
		return 0;
	pthread_join(t->thread, NULL);
	return 1;
}

/* shared_pages - n pages of a new memfd, mapped MAP_SHARED (what vpmd maps into a guest). */
static __attribute__((unused)) uint8_t *shared_pages(const char *name, unsigned int n)
{
	uint8_t *p;
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, n * PAGE_SIZE) < 0)
		fail("memfd: %s", strerror(errno));
	p = mmap(NULL, n * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		fail("mmap memfd: %s", strerror(errno));
	close(fd);
	return p;
}

#endif /* VPM_GUEST_H */
