// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * kvm-smoke - a standalone KVM smoke test in the style of the kernel's KVM selftests,
 * without their library, built static so that it runs inside the test rig's initramfs.
 *
 * It opens /dev/kvm, checks the API version, creates a VM with two memslots:
 *
 *   slot 0  GPA 0x1000, 1 page:   real-mode guest code
 *   slot 1  GPA 0x2000, 2 pages:  data, KVM_MEM_LOG_DIRTY_PAGES
 *
 * and runs one vCPU in real mode.  The guest fills data page 1 (GPA 0x3000) with a
 * pattern and halts; the test checks the exit (KVM_EXIT_HLT), the pattern and that the
 * dirty log of slot 1 has page 1 set.  The first harvest may over-report (KVM marks a page
 * dirty when a read fault maps it writable; shadow paging may prefetch), so only the
 * written page is asserted; the other bit is printed for information.  The guest then
 * writes page 1 once more and halts again: the second harvest must show it dirty again,
 * which checks that the first harvest write-protected it.
 *
 * Output: one line per check, then "KVM-SMOKE: PASS" or "KVM-SMOKE: FAIL <why>".
 * Exit codes: 0 pass, 1 fail.
 *
 * Build: gcc -static -O2 -Wall -o kvm-smoke kvm-smoke.c (with kvm-lib.h next to it)
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

#define KVM_LIB_NAME	"kvm-smoke"
#define KVM_LIB_VERDICT	"KVM-SMOKE"
#include "kvm-lib.h"

#define CODE_GPA	0x1000UL
#define DATA_GPA	0x2000UL
#define DATA_PAGES	2
#define WRITTEN_PAGE	1		/* page of slot 1 the guest writes */
#define RUN_TIMEOUT	20		/* seconds per KVM_RUN */

/*
 * Real-mode guest code, loaded at CS:IP = 0000:1000.
 * Phase 1 fills 0300:0000 (GPA 0x3000) with the word 'V','P' and halts; phase 2 writes
 * 'M','M' at its first word and halts.
 */
static const uint8_t guest_code[] = {
	0xb8, 0x00, 0x03,		/* mov	ax, 0x0300 */
	0x8e, 0xc0,			/* mov	es, ax */
	0x31, 0xff,			/* xor	di, di */
	0xb9, 0x00, 0x08,		/* mov	cx, 0x0800 (words) */
	0xb8, 'V', 'P',			/* mov	ax, 'PV' */
	0xfc,				/* cld */
	0xf3, 0xab,			/* rep stosw */
	0xf4,				/* hlt */
	0xb8, 'M', 'M',			/* mov	ax, 'MM' */
	0x26, 0xa3, 0x00, 0x00,		/* mov	es:[0x0000], ax */
	0xf4,				/* hlt */
	0xeb, 0xfe,			/* jmp	$ */
};

static volatile sig_atomic_t timed_out;

static void on_alarm(int sig)
{
	(void)sig;
	timed_out = 1;
}

static void describe_exit(int vcpu, struct kvm_run *run, char *buf, size_t len)
{
	struct kvm_regs regs;

	if (ioctl(vcpu, KVM_GET_REGS, &regs) < 0)
		memset(&regs, 0, sizeof(regs));
	switch (run->exit_reason) {
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(buf, len, "exit reason %u (internal error, suberror %u), rip 0x%llx",
			 run->exit_reason, run->internal.suberror, regs.rip);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(buf, len, "exit reason %u (fail entry, reason 0x%llx), rip 0x%llx",
			 run->exit_reason,
			 run->fail_entry.hardware_entry_failure_reason, regs.rip);
		break;
	case KVM_EXIT_MMIO:
		snprintf(buf, len, "exit reason %u (mmio at 0x%llx), rip 0x%llx",
			 run->exit_reason, run->mmio.phys_addr, regs.rip);
		break;
	default:
		snprintf(buf, len, "exit reason %u, rip 0x%llx", run->exit_reason, regs.rip);
	}
}

/* run_to_hlt - KVM_RUN once; check that the guest halted at the expected rip. */
static void run_to_hlt(int vcpu, struct kvm_run *run, uint64_t want_rip, const char *phase)
{
	struct kvm_regs regs;
	char why[160];
	int r;

	alarm(RUN_TIMEOUT);
	r = ioctl(vcpu, KVM_RUN, NULL);
	alarm(0);
	if (r < 0 && errno == EINTR && timed_out)
		fail("%s: KVM_RUN did not return within %d s", phase, RUN_TIMEOUT);
	if (r < 0)
		fail("%s: KVM_RUN: %s", phase, strerror(errno));
	describe_exit(vcpu, run, why, sizeof(why));
	check(run->exit_reason == KVM_EXIT_HLT, "%s: KVM_RUN exits with KVM_EXIT_HLT (%s)",
	      phase, why);
	xioctl(vcpu, KVM_GET_REGS, &regs, "KVM_GET_REGS");
	check(regs.rip == want_rip, "%s: rip 0x%llx after hlt (want 0x%llx)", phase,
	      (unsigned long long)regs.rip, (unsigned long long)want_rip);
}

static uint64_t get_dirty_log(int vm, uint32_t slot)
{
	uint64_t bitmap = 0;
	struct kvm_dirty_log log = { .slot = slot, .dirty_bitmap = &bitmap };

	xioctl(vm, KVM_GET_DIRTY_LOG, &log, "KVM_GET_DIRTY_LOG");
	return bitmap;
}

int main(void)
{
	struct kvm_userspace_memory_region region;
	struct sigaction sa = { .sa_handler = on_alarm };
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_run *run;
	uint8_t *code, *data, *page;
	uint64_t dirty, hlt1_rip, hlt2_rip;
	int kvm, vm, vcpu, r, mmap_size;
	size_t i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	sigaction(SIGALRM, &sa, NULL);

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		fail("open /dev/kvm: %s", strerror(errno));
	check(1, "open /dev/kvm");

	r = xioctl(kvm, KVM_GET_API_VERSION, NULL, "KVM_GET_API_VERSION");
	check(r == KVM_API_VERSION, "KVM_GET_API_VERSION = %d (want %d)", r, KVM_API_VERSION);

	r = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY);
	check(r > 0, "KVM_CAP_USER_MEMORY = %d", r);

	vm = xioctl(kvm, KVM_CREATE_VM, (void *)0, "KVM_CREATE_VM");
	check(vm >= 0, "KVM_CREATE_VM");

	/* Needed on Intel without unrestricted guest; harmless elsewhere. */
	xioctl(vm, KVM_SET_TSS_ADDR, (void *)0xfffbd000UL, "KVM_SET_TSS_ADDR");

	code = alloc_pages(1);
	memset(code, 0xf4, PAGE_SIZE);	/* hlt everywhere */
	memcpy(code, guest_code, sizeof(guest_code));
	region = (struct kvm_userspace_memory_region){
		.slot = 0,
		.guest_phys_addr = CODE_GPA,
		.memory_size = PAGE_SIZE,
		.userspace_addr = (uintptr_t)code,
	};
	xioctl(vm, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION 0");
	check(1, "memslot 0: code at GPA 0x%lx, 1 page", CODE_GPA);

	data = alloc_pages(DATA_PAGES);
	memset(data, 0, DATA_PAGES * PAGE_SIZE);
	region = (struct kvm_userspace_memory_region){
		.slot = 1,
		.flags = KVM_MEM_LOG_DIRTY_PAGES,
		.guest_phys_addr = DATA_GPA,
		.memory_size = DATA_PAGES * PAGE_SIZE,
		.userspace_addr = (uintptr_t)data,
	};
	xioctl(vm, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION 1");
	check(1, "memslot 1: data at GPA 0x%lx, %d pages, KVM_MEM_LOG_DIRTY_PAGES",
	      DATA_GPA, DATA_PAGES);

	vcpu = xioctl(vm, KVM_CREATE_VCPU, (void *)0, "KVM_CREATE_VCPU");
	mmap_size = xioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, NULL, "KVM_GET_VCPU_MMAP_SIZE");
	run = mmap(NULL, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		fail("mmap kvm_run: %s", strerror(errno));
	check(1, "KVM_CREATE_VCPU, kvm_run mapped (%d bytes)", mmap_size);

	/* Real mode, CS:IP = 0000:CODE_GPA. */
	xioctl(vcpu, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	xioctl(vcpu, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
	memset(&regs, 0, sizeof(regs));
	regs.rip = CODE_GPA;
	regs.rflags = 0x2;
	xioctl(vcpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");

	/* Phase 1: fill data page 1 and halt. */
	hlt1_rip = CODE_GPA + 17;
	run_to_hlt(vcpu, run, hlt1_rip, "phase 1");

	page = data + WRITTEN_PAGE * PAGE_SIZE;
	for (i = 0; i < PAGE_SIZE; i += 2)
		if (page[i] != 'V' || page[i + 1] != 'P')
			break;
	check(i == PAGE_SIZE, "phase 1: pattern in data page %d (first bad byte at %zu)",
	      WRITTEN_PAGE, i);
	for (i = 0; i < PAGE_SIZE; i++)
		if (data[i])
			break;
	check(i == PAGE_SIZE, "phase 1: data page 0 untouched");

	dirty = get_dirty_log(vm, 1);
	check(dirty & (1ULL << WRITTEN_PAGE),
	      "phase 1: dirty log of slot 1 has page %d (bitmap 0x%llx; other bits may over-report)",
	      WRITTEN_PAGE, (unsigned long long)dirty);

	/* Phase 2: write page 1 again after the harvest and halt. */
	hlt2_rip = hlt1_rip + 8;
	run_to_hlt(vcpu, run, hlt2_rip, "phase 2");
	check(page[0] == 'M' && page[1] == 'M' && page[2] == 'V',
	      "phase 2: second write visible in data page %d", WRITTEN_PAGE);
	dirty = get_dirty_log(vm, 1);
	check(dirty & (1ULL << WRITTEN_PAGE),
	      "phase 2: dirty log of slot 1 has page %d again (bitmap 0x%llx)",
	      WRITTEN_PAGE, (unsigned long long)dirty);

	close(vcpu);
	close(vm);
	close(kvm);
	if (checks_failed)
		fail("%d checks failed", checks_failed);
	printf("KVM-SMOKE: PASS\n");
	return 0;
}
