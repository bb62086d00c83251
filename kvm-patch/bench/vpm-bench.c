// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vpm-bench - a benchmark of the VPM ioctls, run inside the rig's VM (run-rig.sh --bench).
 *
 * One VM, built with the real-mode guest of the selftests (vpm-guest.h), gets two more
 * memslots of BENCH_PAGES pages each (16 MiB): slot 2, the VPM range, backed by a memfd
 * through KVM_VPM_MAP, and slot 3 with KVM_MEM_LOG_DIRTY_PAGES, the plain dirty-log path.
 * DS gets a 4 GiB limit so that one guest loop ("mov [ebx], ecx; add ebx, 4096; dec ecx;
 * jnz") writes a word to every page of a slot.  Measured, each as the median of REPS runs:
 *
 *   map RO / map RW  KVM_VPM_MAP of all pages in batches of 512, read-only (fresh entries)
 *                    then writable (remap), per page;
 *   memcpy           memcpy of the same pages (memfd -> staging buffer), per page: the
 *                    bandwidth baseline;
 *   dirty log        KVM_GET_DIRTY_LOG + KVM_CLEAR_DIRTY_LOG (GET only without
 *                    KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) of slot 3 after the guest dirtied
 *                    all its pages, per dirty page;
 *   harvest          KVM_VPM_HARVEST of the range after the guest dirtied all its pages,
 *                    per dirty page;
 *   pause            with the vCPU thread spinning in the guest: HOLD + HARVEST + memcpy
 *                    of the dirty pages into a staging buffer + RESUME, against the bound
 *                    (dirty bytes / memcpy bandwidth); design target 1.5 x bound + 100 us.
 *
 * Output: "vpm-bench: info ..." lines, a table "VPM-BENCH: | ... |" with each figure as a
 * ratio to its baseline (absolute times in parentheses: under nested TCG they say little),
 * then "VPM-BENCH: DONE" (exit 0), "VPM-BENCH: FAIL <why>" (exit 1) or "VPM-BENCH: SKIP
 * <why>" (exit 77: KVM without the VPM patches).
 *
 * Build: gcc -static -O2 -Wall -o vpm-bench vpm-bench.c (with ../tests/kvm-lib.h,
 * ../tests/vpm-guest.h and ../include/linux/vpm-kvm.h).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "../include/linux/vpm-kvm.h"

#define KVM_LIB_NAME	"vpm-bench"
#define KVM_LIB_VERDICT	"VPM-BENCH"
#include "../tests/kvm-lib.h"
#include "../tests/vpm-guest.h"

#define BENCH_PAGES	4096U			/* 16 MiB */
#define BATCH		512U
#define REPS		5
#define VPM_GPA		0x1000000UL		/* slot 2: the VPM range */
#define LOG_GPA		0x2000000UL		/* slot 3: dirty logging */
#define DIRTY_RIP	(CODE_GPA + 0x40)
#define SPIN_RIP	(CODE_GPA + 0x60)
#define COUNTER_OFF	0x200			/* in data page 0 (slot 1) */

/* Helpers of vpm-guest.h this program does not need. */
static void *const unused_helpers[] __attribute__((unused)) = {
	(void *)pins, (void *)set_regs, (void *)enable,
};

/*
 * At DIRTY_RIP (ECX pages from DS:EBX): 1: mov [ebx], ecx; add ebx, 0x1000; dec ecx;
 * jnz 1b; hlt.  At SPIN_RIP: 1: inc dword [bx]; cmp dword [bx + 4], 0; je 1b; hlt.
 */
static const uint8_t dirty_code[] = { 0x67, 0x66, 0x89, 0x0b,
				      0x66, 0x81, 0xc3, 0x00, 0x10, 0x00, 0x00,
				      0x66, 0x49, 0x75, 0xf1, 0xf4 };
static const uint8_t spin_code[] = { 0x66, 0xff, 0x07, 0x66, 0x83, 0x7f, 0x04, 0x00,
				     0x74, 0xf6, 0xf4 };

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *t, int n)
{
	qsort(t, n, sizeof(*t), cmp_double);
	return t[n / 2];
}

/* guest_dirty - the guest writes one word to each of the n pages from gpa. */
static void guest_dirty(struct vm *v, uint64_t gpa, unsigned int n)
{
	struct kvm_regs regs;

	memset(&regs, 0, sizeof(regs));
	regs.rip = DIRTY_RIP;
	regs.rflags = 0x2;
	regs.rbx = gpa - DATA_GPA;
	regs.rcx = n;
	xioctl(v->vcpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");
	if (ioctl(v->vcpu, KVM_RUN, NULL) < 0 || v->run->exit_reason != KVM_EXIT_HLT)
		fail("guest loop over %u pages at 0x%llx: KVM_RUN %s, exit reason %u", n,
		     (unsigned long long)gpa, strerror(errno), v->run->exit_reason);
}

static unsigned int popcount(const uint8_t *b, size_t bytes)
{
	unsigned int n = 0;
	size_t i;

	for (i = 0; i < bytes; i++)
		n += __builtin_popcount(b[i]);
	return n;
}

/* map_all - KVM_VPM_MAP of the whole range in batches of BATCH; elapsed ns. */
static double map_all(struct vm *v, struct kvm_vpm_map_entry *e, uint8_t *mem, uint32_t flags)
{
	unsigned int i;
	double t0;

	for (i = 0; i < BENCH_PAGES; i++) {
		e[i].gfn = (VPM_GPA >> 12) + i;
		e[i].uaddr = (uintptr_t)(mem + (size_t)i * PAGE_SIZE);
		e[i].flags = flags;
		e[i].pad = 0;
	}
	t0 = now_ns();
	for (i = 0; i < BENCH_PAGES; i += BATCH) {
		struct kvm_vpm_map m = { .n = BATCH, .entries = (uintptr_t)(e + i) };

		if (ioctl(v->fd, KVM_VPM_MAP, &m) < 0)
			fail("KVM_VPM_MAP of %u pages at +%u: %s", BATCH, i, strerror(errno));
	}
	return now_ns() - t0;
}

static void unmap_all(struct vm *v)
{
	struct kvm_vpm_unmap u = { .gfn = VPM_GPA >> 12, .n = BENCH_PAGES };

	xioctl(v->fd, KVM_VPM_UNMAP, &u, "KVM_VPM_UNMAP");
}

/* harvest_all - KVM_VPM_HARVEST of the range; the number of dirty pages. */
static unsigned int harvest_all(struct vm *v, uint8_t *dirty)
{
	struct kvm_vpm_harvest h = {
		.gfn = VPM_GPA >> 12, .n = BENCH_PAGES, .dirty_bitmap = (uintptr_t)dirty,
	};

	xioctl(v->fd, KVM_VPM_HARVEST, &h, "KVM_VPM_HARVEST");
	return popcount(dirty, BENCH_PAGES / 8);
}

/* dirty_log - GET (+ CLEAR) of slot 3; the number of dirty pages. */
static unsigned int dirty_log(struct vm *v, uint64_t *bitmap, int manual)
{
	struct kvm_dirty_log g = { .slot = 3, .dirty_bitmap = bitmap };
	struct kvm_clear_dirty_log c = {
		.slot = 3, .first_page = 0, .num_pages = BENCH_PAGES, .dirty_bitmap = bitmap,
	};

	xioctl(v->fd, KVM_GET_DIRTY_LOG, &g, "KVM_GET_DIRTY_LOG");
	if (manual)
		xioctl(v->fd, KVM_CLEAR_DIRTY_LOG, &c, "KVM_CLEAR_DIRTY_LOG");
	return popcount((uint8_t *)bitmap, BENCH_PAGES / 8);
}

static volatile uint32_t *counter(struct vm *v)
{
	return (volatile uint32_t *)word(v->data, 0, COUNTER_OFF);
}

/* spin_start - the vCPU thread runs the spin loop (the vCPU is in guest mode). */
static void spin_start(struct runner *t, struct vm *v)
{
	struct kvm_regs regs;
	unsigned int i;

	counter(v)[0] = 0;
	counter(v)[1] = 0;
	memset(&regs, 0, sizeof(regs));
	regs.rip = SPIN_RIP;
	regs.rflags = 0x2;
	regs.rbx = COUNTER_OFF;
	xioctl(v->vcpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");
	t->v = v;
	t->done = 0;
	if (pthread_create(&t->thread, NULL, run_vcpu, t))
		fail("pthread_create");
	for (i = 0; i < 5000 && counter(v)[0] < 1000; i++)
		msleep(1);
	if (counter(v)[0] < 1000)
		fail("the spin loop does not run");
}

static void spin_stop(struct runner *t)
{
	counter(t->v)[1] = 1;
	if (!wait_done(t, 10000) || t->r || t->exit_reason != KVM_EXIT_HLT)
		fail("the spin loop does not halt: KVM_RUN %s, exit reason %u",
		     err_name(t->r), t->exit_reason);
}

static void row(const char *what, double ns, double base_ns, const char *base, const char *unit)
{
	printf("VPM-BENCH: | %-34s | %8.2f x %-22s | (%10.1f us%s vs %10.1f us%s) |\n", what,
	       ns / base_ns, base, ns / 1e3, unit, base_ns / 1e3, unit);
}

int main(void)
{
	double t_ro[REPS], t_rw[REPS], t_cp[REPS], t_log[REPS], t_hv[REPS], t_pause[REPS];
	double t_cp4[REPS], t_hold[REPS], t_harv2[REPS], t_copy2[REPS], t_res[REPS];
	double ro, rw, cp, cp4, lg, hv, pause, bound, per_cp;
	struct kvm_vpm_map_entry *e;
	struct kvm_sregs sregs;
	struct kvm_userspace_memory_region log_slot;
	uint8_t *memfd_mem, *stage, *vpm_slot, *log_mem, dirty[BENCH_PAGES / 8];
	uint64_t log_bitmap[BENCH_PAGES / 64];
	unsigned int i, nd, nl;
	struct runner t;
	struct vm v;
	int r, manual;

	kvm = open_kvm_vpm();
	code_mem = alloc_pages(1);
	memset(code_mem, 0xf4, PAGE_SIZE);
	memcpy(code_mem + (DIRTY_RIP - CODE_GPA), dirty_code, sizeof(dirty_code));
	memcpy(code_mem + (SPIN_RIP - CODE_GPA), spin_code, sizeof(spin_code));

	memfd_mem = shared_pages("vpm-bench", BENCH_PAGES);
	stage = alloc_pages(BENCH_PAGES);
	vpm_slot = alloc_pages(BENCH_PAGES);
	log_mem = alloc_pages(BENCH_PAGES);
	memset(memfd_mem, 0x11, (size_t)BENCH_PAGES * PAGE_SIZE);
	memset(stage, 0x22, (size_t)BENCH_PAGES * PAGE_SIZE);
	memset(vpm_slot, 0x33, (size_t)BENCH_PAGES * PAGE_SIZE);
	memset(log_mem, 0x44, (size_t)BENCH_PAGES * PAGE_SIZE);
	e = calloc(BENCH_PAGES, sizeof(*e));
	if (!e)
		fail("calloc");

	new_vm(&v);
	xioctl(v.vcpu, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
	sregs.ds.limit = 0xffffffff;		/* unreal mode: 32-bit offsets from DS */
	sregs.ds.g = 1;
	xioctl(v.vcpu, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
	set_slot(v.fd, 2, VPM_GPA, (uint64_t)BENCH_PAGES * PAGE_SIZE, vpm_slot);
	r = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
	manual = r > 0 && ioctl(v.fd, KVM_ENABLE_CAP, &(struct kvm_enable_cap){
		.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
		.args = { KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE } }) == 0;
	log_slot = (struct kvm_userspace_memory_region){
		.slot = 3, .flags = KVM_MEM_LOG_DIRTY_PAGES, .guest_phys_addr = LOG_GPA,
		.memory_size = (uint64_t)BENCH_PAGES * PAGE_SIZE,
		.userspace_addr = (uintptr_t)log_mem,
	};
	xioctl(v.fd, KVM_SET_USER_MEMORY_REGION, &log_slot, "KVM_SET_USER_MEMORY_REGION");
	{
		struct kvm_vpm_enable args = {
			.gpa = VPM_GPA, .size = (uint64_t)BENCH_PAGES * PAGE_SIZE,
		};

		v.vpm = ioctl(v.fd, KVM_VPM_ENABLE, &args);
		if (v.vpm < 0)
			fail("KVM_VPM_ENABLE: %s", strerror(errno));
	}
	{
		struct kvm_vpm_harvest h = { .gfn = VPM_GPA >> 12, .n = 1 };

		if (ioctl(v.fd, KVM_VPM_HARVEST, &h) < 0 && errno == ENOTTY)
			skip("KVM_VPM_HARVEST gives ENOTTY: KVM without the VPM harvest patch");
	}
	info("%u pages (%u MiB) per measurement, MAP batches of %u, median of %d runs; "
	     "dirty log: GET%s", BENCH_PAGES, BENCH_PAGES / 256, BATCH, REPS,
	     manual ? " + CLEAR (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2)" : " only");

	/* The guest loop works on both slots; the first run faults everything in. */
	map_all(&v, e, memfd_mem, KVM_VPM_MAP_WRITABLE);
	guest_dirty(&v, VPM_GPA, BENCH_PAGES);
	guest_dirty(&v, LOG_GPA, BENCH_PAGES);
	check(*word(memfd_mem, BENCH_PAGES - 1, 0) == 1 && *word(memfd_mem, 0, 0) == BENCH_PAGES &&
	      *word(log_mem, 7, 0) == BENCH_PAGES - 7,
	      "the guest loop wrote every page of the VPM range (memfd) and of the logged slot");
	harvest_all(&v, dirty);
	dirty_log(&v, log_bitmap, manual);
	unmap_all(&v);

	for (i = 0; i < REPS; i++) {
		double t0;

		/* 1. MAP RO (fresh entries), then RW (remap); memcpy; dirty log. */
		t_ro[i] = map_all(&v, e, memfd_mem, 0);
		t_rw[i] = map_all(&v, e, memfd_mem, KVM_VPM_MAP_WRITABLE);
		t0 = now_ns();
		memcpy(stage, memfd_mem, (size_t)BENCH_PAGES * PAGE_SIZE);
		t_cp[i] = now_ns() - t0;
		t0 = now_ns();
		for (nd = 0; nd < BENCH_PAGES; nd++)
			memcpy(stage + (size_t)nd * PAGE_SIZE, memfd_mem + (size_t)nd * PAGE_SIZE,
			       PAGE_SIZE);
		t_cp4[i] = now_ns() - t0;
		guest_dirty(&v, LOG_GPA, BENCH_PAGES);
		t0 = now_ns();
		nl = dirty_log(&v, log_bitmap, manual);
		t_log[i] = now_ns() - t0;
		if (nl != BENCH_PAGES)
			fail("dirty log: %u dirty pages, want %u", nl, BENCH_PAGES);

		/* 2. HARVEST after the guest dirtied every page of the range. */
		harvest_all(&v, dirty);
		guest_dirty(&v, VPM_GPA, BENCH_PAGES);
		t0 = now_ns();
		nd = harvest_all(&v, dirty);
		t_hv[i] = now_ns() - t0;
		if (nd != BENCH_PAGES)
			fail("HARVEST: %u dirty pages, want %u", nd, BENCH_PAGES);

		/* 3. Pause with the vCPU in guest mode. */
		guest_dirty(&v, VPM_GPA, BENCH_PAGES);
		spin_start(&t, &v);
		{
			double t1, t2, t3, t4;
			unsigned int p, c;

			t0 = now_ns();
			xioctl(v.fd, KVM_VPM_HOLD, NULL, "KVM_VPM_HOLD");
			t1 = now_ns();
			nd = harvest_all(&v, dirty);
			t2 = now_ns();
			for (p = 0, c = 0; p < BENCH_PAGES; p++)
				if (dirty[p / 8] & (1 << (p % 8)))
					memcpy(stage + (size_t)c++ * PAGE_SIZE,
					       memfd_mem + (size_t)p * PAGE_SIZE, PAGE_SIZE);
			t3 = now_ns();
			xioctl(v.fd, KVM_VPM_RESUME, NULL, "KVM_VPM_RESUME");
			t4 = now_ns();
			t_pause[i] = t4 - t0;
			t_hold[i] = t1 - t0;
			t_harv2[i] = t2 - t1;
			t_copy2[i] = t3 - t2;
			t_res[i] = t4 - t3;
		}
		spin_stop(&t);
		if (nd != BENCH_PAGES)
			fail("pause: HARVEST found %u dirty pages, want %u", nd, BENCH_PAGES);
		unmap_all(&v);
		info("run %u: map RO %.0f us, map RW %.0f us, memcpy %.0f us, dirty log %.0f us, "
		     "memcpy page by page %.0f us, harvest %.0f us, pause %.0f us (hold %.0f, harvest %.0f, copy %.0f, "
		     "resume %.0f)", i + 1, t_ro[i] / 1e3, t_rw[i] / 1e3, t_cp[i] / 1e3,
		     t_log[i] / 1e3, t_cp4[i] / 1e3, t_hv[i] / 1e3, t_pause[i] / 1e3, t_hold[i] / 1e3,
		     t_harv2[i] / 1e3, t_copy2[i] / 1e3, t_res[i] / 1e3);
	}

	ro = median(t_ro, REPS) / BENCH_PAGES;
	rw = median(t_rw, REPS) / BENCH_PAGES;
	cp = median(t_cp, REPS);
	per_cp = cp / BENCH_PAGES;
	cp4 = median(t_cp4, REPS);
	lg = median(t_log, REPS) / BENCH_PAGES;
	hv = median(t_hv, REPS) / BENCH_PAGES;
	pause = median(t_pause, REPS);
	bound = cp;			/* all BENCH_PAGES pages dirty: their bytes / bandwidth */
	info("memcpy bandwidth %.0f MB/s", (double)BENCH_PAGES * PAGE_SIZE / (cp / 1e9) / 1e6);
	printf("VPM-BENCH: bound = dirty bytes / memcpy bandwidth (one memcpy of all the pages); "
	       "page-wise memcpy = the same pages copied one memcpy per page, outside a pause\n");
	info("pause parts (median): hold %.1f us, harvest %.1f us, copy %.1f us, resume %.1f us",
	     median(t_hold, REPS) / 1e3, median(t_harv2, REPS) / 1e3,
	     median(t_copy2, REPS) / 1e3, median(t_res, REPS) / 1e3);

	printf("VPM-BENCH: %u pages of 4 KiB; ratio = figure / baseline (absolute times in "
	       "parentheses are from nested TCG and say little by themselves)\n", BENCH_PAGES);
	printf("VPM-BENCH: | %-34s | %-34s | %-37s |\n", "figure", "ratio to baseline",
	       "(figure vs baseline)");
	row("KVM_VPM_MAP RO, per page", ro, per_cp, "memcpy/page", "/p");
	row("KVM_VPM_MAP RO, per page", ro, lg, "dirty log/page", "/p");
	row("KVM_VPM_MAP RW (remap), per page", rw, per_cp, "memcpy/page", "/p");
	row("KVM_VPM_MAP RW (remap), per page", rw, lg, "dirty log/page", "/p");
	row("KVM_VPM_HARVEST, per dirty page", hv, lg, "dirty log/page", "/p");
	row("pause (HOLD+HARVEST+copy+RESUME)", pause, bound, "bound", "");
	row("design target 1.5 x bound + 100us", 1.5 * bound + 100e3, bound, "bound", "");
	row("pause (HOLD+HARVEST+copy+RESUME)", pause, cp4, "page-wise memcpy", "");
	row("pause - its copy (VPM overhead)", pause - median(t_copy2, REPS), bound, "bound", "");
	printf("VPM-BENCH: pause %s the design target (%.2f x bound, target %.2f x bound)\n",
	       pause <= 1.5 * bound + 100e3 ? "meets" : "misses", pause / bound,
	       (1.5 * bound + 100e3) / bound);

	close_vm(&v);
	close(kvm);
	printf("VPM-BENCH: DONE\n");
	return 0;
}
