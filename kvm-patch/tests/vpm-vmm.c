// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vpm-vmm - a tiny VMM for the VM-level tests of vpmd: one VM with a vPM region whose
 * guest writes a known sequence into the region and checks it as it goes, so that a test
 * can show that vpmd moves the guest's pages between DRAM and PM frames while the guest
 * runs with its data intact, and that vpmd's durable image of the region is a consistent
 * point-in-time snapshot (vpm-seq.h checks such an image).
 *
 *   vpm-vmm [--pm-gpa ADDR] [--pm-size BYTES] [--words-per-page W] [--report-every N]
 *           [--hint-every K] [--max-seq S] [--delay D] [--seconds T] [--wait-start]
 *           [--pid-file FILE] [--check-self]
 *
 *   --pm-gpa ADDR         guest-physical address of the vPM region (default 0x10000000;
 *                         4 KiB aligned, at least 0x10000, region below 0xfec00000)
 *   --pm-size BYTES       its size (default 8 MiB; a multiple of 4 KiB).  Both take
 *                         decimal or 0x numbers, with an optional K, M or G (binary)
 *   --words-per-page W    32-bit slots per page, 1 to 1024 (default 16)
 *   --report-every N      the guest reports its progress every N stores (default: the
 *                         number of slots)
 *   --hint-every K        after every K-th store the guest issues the persist hint
 *                         KVM_HC_VPM_HINT on the 4 bytes it stored; a negative RAX fails
 *                         the run.  Needs the VPM KVM patches with VPM enabled on the
 *                         region (stock KVM answers -KVM_ENOSYS); off by default
 *   --max-seq S           the guest stops after storing S (default 4294967295, the last
 *                         32-bit value); the VMM then waits to be stopped as usual
 *   --delay D             the guest spins D iterations of "loop" after each store
 *                         (default 0), to slow it down: at full speed it does about
 *                         27 million stores a second even under KVM in the TCG rig,
 *                         so it reaches 2^32 - 1 within minutes (and halts there)
 *   --seconds T           stop after T seconds of running (default 0: until SIGTERM or
 *                         SIGINT)
 *   --wait-start          create everything, then wait for SIGUSR1 before the first
 *                         KVM_RUN (so that vpmd can attach first)
 *   --pid-file FILE       write the pid to FILE (atomically) once the VM exists
 *   --check-self          at the end, check the VMM's own memory of the region with
 *                         seq_check_snapshot() (only meaningful without vpmd, when the
 *                         memslot memory is the guest's memory)
 *
 * The VM: slot 0 is 64 KiB of low memory at GPA 0 (parameters at 0x800, code at 0x1000,
 * stack below 0x8000), slot 1 is the region, MAP_SHARED | MAP_ANONYMOUS memory of the
 * VMM (vpmd backs its gfns with its own pages).  One vCPU in 32-bit protected mode with
 * flat 4 GiB segments, no paging, interrupts off.  No in-kernel irqchip.
 *
 * The guest (assembled below, between guest_start and guest_end) keeps:
 *
 *   ESI  the last value it stored (0 before the first store)
 *   EAX  the value being stored; at guest_commit (right after the store instruction)
 *        the store is done but ESI is not updated yet, so the number of stores is
 *        EAX there and ESI everywhere else
 *   EDI  the index of the slot of the next store, EBX its address
 *   EBP  stores left until the next progress report
 *   ECX  the value expected in the slot (before the store), the spin count (after it)
 *
 * reads its parameters from struct guest_params at 0x800, and reports on I/O ports,
 * every value a 32-bit OUT:
 *
 *   0x500  progress: s (the last value stored), every --report-every stores
 *   0x501  check failure: the slot, then the expected value, then the value found; hlt
 *   0x502  hint failure: the slot, then RAX of the hypercall (32 bits); hlt
 *   0x503  done: s = --max-seq; hlt
 *
 * The hint is RAX = KVM_HC_VPM_HINT (13), RBX = KVM_VPM_HINT_PERSIST, RCX = the slot's
 * GPA, RDX = 4, with vmmcall when kvm_amd is loaded and vmcall otherwise; being a 32-bit
 * caller, the guest gets the result in EAX.  Stock KVM, and the patched one before
 * KVM_VPM_ENABLE, answer -KVM_ENOSYS (-1000).  The guest runs with interrupts off and
 * no IDT, so an exception is a triple fault (KVM_EXIT_SHUTDOWN, a failure).
 *
 * Output (stdout, line-buffered):
 *
 *   VMM: pid=P vm-fd=F pm-gpa=0x... pm-size=B pages=P slots=N   once the VM exists
 *   VMM: waiting for SIGUSR1                                    with --wait-start
 *   VMM: running                                                before the first KVM_RUN
 *   VMM: progress seq=S         the latest progress report, at most once a second and
 *                               only when it changed
 *   VMM: guest done seq=S       the guest reached --max-seq
 *   VMM: final seq=S            after stopping: the exact number of stores, from the
 *                               guest's registers (KVM_GET_REGS after a final
 *                               KVM_RUN with immediate_exit completed any pending I/O)
 *   VMM: snapshot seq=S         with --check-self
 *   VMM: PASS
 *
 * or "VMM: FAIL <why>", e.g. "VMM: FAIL slot I holds X, expected Y" (the guest found a
 * lost or corrupt write), "VMM: FAIL KVM_RUN: <strerror>" (e.g. EFAULT when a VPM write
 * fault was failed), "VMM: FAIL hint on slot I returned R", or "VMM: SKIP <why>" when
 * /dev/kvm does not exist.
 *
 * Stopping: SIGTERM, SIGINT or the end of --seconds.  The main thread sets the stop flag
 * and sends SIGUSR2 to the vCPU thread, whose handler (no SA_RESTART) sets
 * kvm_run->immediate_exit, so KVM_RUN returns EINTR whether the signal came before or
 * during it; the guest is then at an instruction boundary.  SIGUSR2 at other times is
 * ignored.
 *
 * Exit codes: 0 pass, 1 fail, 2 usage, 77 no /dev/kvm.
 *
 * Build: gcc -static -O2 -Wall -Wextra -o vpm-vmm vpm-vmm.c -lpthread (with kvm-lib.h and
 * vpm-seq.h next to it and ../include/linux/vpm-kvm.h, the uapi of the series).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm_para.h>

#include "../include/linux/vpm-kvm.h"

#define KVM_LIB_NAME	"vpm-vmm"
#define KVM_LIB_VERDICT	"VMM"
#include "kvm-lib.h"
#include "vpm-seq.h"

#define LOW_SIZE	0x10000UL
#define PARAM_GPA	0x800
#define CODE_GPA	0x1000
#define STACK_TOP	0x8000
#define PM_GPA_MIN	LOW_SIZE
#define PM_END_MAX	0xfec00000ULL

#define PORT_PROGRESS	0x500
#define PORT_FAIL	0x501
#define PORT_HINT_FAIL	0x502
#define PORT_DONE	0x503

/* The parameter block at PARAM_GPA, read by the guest. */
struct guest_params {
	uint32_t base;		/* 0x00: GPA of the region */
	uint32_t end;		/* 0x04: base + size */
	uint32_t size;		/* 0x08 */
	uint32_t slots;		/* 0x0c: N */
	uint32_t report_every;	/* 0x10 */
	uint32_t hint_every;	/* 0x14: 0 = no hints */
	uint32_t max_seq;	/* 0x18 */
	uint32_t hint_left;	/* 0x1c: stores left until the next hint (guest's) */
	uint32_t delay;		/* 0x20: iterations of a spin loop after each store */
};

#define STR_(x)	#x
#define STR(x)	STR_(x)
#define P_BASE		STR(PARAM_GPA) "+0x00"
#define P_END		STR(PARAM_GPA) "+0x04"
#define P_SIZE		STR(PARAM_GPA) "+0x08"
#define P_SLOTS		STR(PARAM_GPA) "+0x0c"
#define P_REPORT	STR(PARAM_GPA) "+0x10"
#define P_HINT		STR(PARAM_GPA) "+0x14"
#define P_MAX		STR(PARAM_GPA) "+0x18"
#define P_HINT_LEFT	STR(PARAM_GPA) "+0x1c"
#define P_DELAY		STR(PARAM_GPA) "+0x20"

/*
 * The guest, 32-bit code copied to CODE_GPA.  Only relative jumps and absolute data
 * addresses, so it runs wherever it is copied.
 */
extern const uint8_t guest_start[], guest_commit[], guest_hypercall[], guest_end[];

asm(
	".pushsection .rodata\n"
	".code32\n"
	".globl guest_start\n"
	"guest_start:\n"
	"	movl " P_BASE ", %ebx\n"
	"	xorl %esi, %esi\n"
	"	xorl %edi, %edi\n"
	"	movl " P_REPORT ", %ebp\n"
	"	movl " P_HINT ", %eax\n"
	"	movl %eax, " P_HINT_LEFT "\n"
	"	movl $" STR(STACK_TOP) ", %esp\n"
	"1:\n"						/* the loop */
	"	cmpl " P_MAX ", %esi\n"
	"	je 20f\n"
	"	leal 1(%esi), %eax\n"			/* s */
	"	xorl %ecx, %ecx\n"			/* expected: 0 while s <= N */
	"	cmpl " P_SLOTS ", %eax\n"
	"	jbe 2f\n"
	"	movl %eax, %ecx\n"
	"	subl " P_SLOTS ", %ecx\n"		/* s - N */
	"2:\n"
	"	movl (%ebx), %edx\n"
	"	cmpl %ecx, %edx\n"
	"	jne 10f\n"
	"	movl %eax, (%ebx)\n"			/* the store */
	".globl guest_commit\n"
	"guest_commit:\n"
	"	movl %eax, %esi\n"
	"	cmpl $0, " P_HINT "\n"
	"	je 3f\n"
	"	decl " P_HINT_LEFT "\n"
	"	jnz 3f\n"
	"	movl " P_HINT ", %ecx\n"
	"	movl %ecx, " P_HINT_LEFT "\n"
	"	pushl %ebx\n"
	"	movl %ebx, %ecx\n"			/* gpa */
	"	movl $" STR(KVM_HC_VPM_HINT) ", %eax\n"
	"	movl $" STR(KVM_VPM_HINT_PERSIST) ", %ebx\n"
	"	movl $4, %edx\n"			/* len */
	".globl guest_hypercall\n"
	"guest_hypercall:\n"
	"	vmcall\n"				/* patched to vmmcall on AMD */
	"	popl %ebx\n"
	"	testl %eax, %eax\n"
	"	js 11f\n"
	"3:\n"
	"	movl " P_DELAY ", %ecx\n"		/* --delay */
	"	jecxz 6f\n"
	"7:\n"
	"	loop 7b\n"
	"6:\n"						/* progress */
	"	decl %ebp\n"
	"	jnz 4f\n"
	"	movl " P_REPORT ", %ebp\n"
	"	movl %esi, %eax\n"
	"	movl $" STR(PORT_PROGRESS) ", %edx\n"
	"	outl %eax, %dx\n"
	"4:\n"						/* the next slot */
	"	incl %edi\n"
	"	cmpl " P_SLOTS ", %edi\n"
	"	jne 5f\n"
	"	xorl %edi, %edi\n"
	"	movl " P_BASE ", %ebx\n"
	"	jmp 1b\n"
	"5:\n"
	"	addl $4096, %ebx\n"			/* the same word of the next page */
	"	cmpl " P_END ", %ebx\n"
	"	jb 1b\n"
	"	subl " P_SIZE ", %ebx\n"		/* past the last page: next word */
	"	addl $4, %ebx\n"
	"	jmp 1b\n"
	"10:\n"						/* check failure */
	"	pushl %edx\n"
	"	movl $" STR(PORT_FAIL) ", %edx\n"
	"	movl %edi, %eax\n"
	"	outl %eax, %dx\n"
	"	movl %ecx, %eax\n"
	"	outl %eax, %dx\n"
	"	popl %eax\n"
	"	outl %eax, %dx\n"
	"	jmp 21f\n"
	"11:\n"						/* hint failure */
	"	movl %eax, %ecx\n"
	"	movl $" STR(PORT_HINT_FAIL) ", %edx\n"
	"	movl %edi, %eax\n"
	"	outl %eax, %dx\n"
	"	movl %ecx, %eax\n"
	"	outl %eax, %dx\n"
	"	jmp 21f\n"
	"20:\n"						/* done */
	"	movl %esi, %eax\n"
	"	movl $" STR(PORT_DONE) ", %edx\n"
	"	outl %eax, %dx\n"
	"21:\n"
	"	hlt\n"
	"	jmp 21b\n"
	".globl guest_end\n"
	"guest_end:\n"
	".code64\n"
	".popsection\n"
);

static struct {
	uint64_t pm_gpa, pm_size;
	unsigned int words;
	uint32_t report_every, hint_every, max_seq, delay;
	double seconds;
	int wait_start, check_self;
	const char *pid_file;
} opt = {
	.pm_gpa = 0x10000000,
	.pm_size = 8 << 20,
	.words = 16,
	.max_seq = SEQ_MAX,
};

static int kvm, vm, vcpu;
static struct kvm_run *run;
static uint8_t *low, *pm;
static uint64_t pages, slots;

static volatile int stop;		/* set by the main thread before the kick */
static uint32_t progress;		/* the latest progress report */
static pthread_t vcpu_thread;

static void __attribute__((noreturn)) usage(const char *why)
{
	if (why)
		fprintf(stderr, "vpm-vmm: %s\n", why);
	fprintf(stderr,
		"usage: vpm-vmm [--pm-gpa ADDR] [--pm-size BYTES] [--words-per-page W]\n"
		"               [--report-every N] [--hint-every K] [--max-seq S] [--delay D]\n"
		"               [--seconds T] [--wait-start] [--pid-file FILE] [--check-self]\n");
	exit(2);
}

/* number - a decimal or 0x number; with sizes, K, M or G (binary) may follow. */
static uint64_t number(const char *s, const char *name, uint64_t max, int size)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (size && end != s && *end && !end[1]) {
		shift = *end == 'K' || *end == 'k' ? 10 : *end == 'M' || *end == 'm' ? 20 :
			*end == 'G' || *end == 'g' ? 30 : 0;
		if (shift)
			end++;
	}
	if (!errno && v > max >> shift)
		errno = ERANGE;
	v <<= shift;
	if (errno || end == s || *end || *s == '-' || v > max) {
		char why[128];

		snprintf(why, sizeof(why), "bad %s: %s", name, s);
		usage(why);
	}
	return v;
}

static void parse(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pm-gpa", required_argument, NULL, 'g' },
		{ "pm-size", required_argument, NULL, 's' },
		{ "words-per-page", required_argument, NULL, 'w' },
		{ "report-every", required_argument, NULL, 'r' },
		{ "hint-every", required_argument, NULL, 'h' },
		{ "max-seq", required_argument, NULL, 'm' },
		{ "delay", required_argument, NULL, 'd' },
		{ "seconds", required_argument, NULL, 't' },
		{ "wait-start", no_argument, NULL, 'W' },
		{ "pid-file", required_argument, NULL, 'p' },
		{ "check-self", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, '?' },
		{ NULL, 0, NULL, 0 },
	};
	int c, report_set = 0;
	char *end;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'g':
			opt.pm_gpa = number(optarg, "--pm-gpa", PM_END_MAX, 1);
			break;
		case 's':
			opt.pm_size = number(optarg, "--pm-size", PM_END_MAX, 1);
			break;
		case 'w':
			opt.words = number(optarg, "--words-per-page", SEQ_MAX_WORDS, 0);
			break;
		case 'r':
			opt.report_every = number(optarg, "--report-every", UINT32_MAX, 0);
			report_set = 1;
			break;
		case 'h':
			opt.hint_every = number(optarg, "--hint-every", UINT32_MAX, 0);
			break;
		case 'm':
			opt.max_seq = number(optarg, "--max-seq", UINT32_MAX, 0);
			break;
		case 'd':
			opt.delay = number(optarg, "--delay", UINT32_MAX, 0);
			break;
		case 't':
			errno = 0;
			opt.seconds = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(opt.seconds >= 0) ||
			    opt.seconds > 1e9)
				usage("bad --seconds");
			break;
		case 'W':
			opt.wait_start = 1;
			break;
		case 'p':
			opt.pid_file = optarg;
			break;
		case 'c':
			opt.check_self = 1;
			break;
		default:
			usage(NULL);
		}
	}
	if (optind != argc)
		usage("unexpected argument");
	if (!seq_layout_ok(opt.pm_size, opt.words))
		usage("--pm-size must be a non-zero multiple of 4096, --words-per-page 1 to 1024");
	if (opt.pm_gpa % PAGE_SIZE || opt.pm_gpa < PM_GPA_MIN ||
	    opt.pm_gpa + opt.pm_size > PM_END_MAX)
		usage("--pm-gpa must be 4 KiB aligned, the region within [0x10000, 0xfec00000)");
	pages = seq_pages(opt.pm_size);
	slots = seq_slots(opt.pm_size, opt.words);
	if (!report_set)
		opt.report_every = slots;
	if (!opt.report_every)
		usage("--report-every must be at least 1");
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void flat_segment(struct kvm_segment *seg, uint16_t selector, uint8_t type)
{
	memset(seg, 0, sizeof(*seg));
	seg->base = 0;
	seg->limit = 0xffffffff;
	seg->selector = selector;
	seg->type = type;
	seg->present = 1;
	seg->dpl = 0;
	seg->db = 1;
	seg->s = 1;
	seg->g = 1;
}

static void create_vm(void)
{
	struct guest_params params;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	int size;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		if (errno == ENOENT || errno == ENODEV || errno == ENXIO)
			skip("open /dev/kvm: %s", strerror(errno));
		fail("open /dev/kvm: %s", strerror(errno));
	}
	vm = xioctl(kvm, KVM_CREATE_VM, (void *)0, "KVM_CREATE_VM");
	xioctl(vm, KVM_SET_TSS_ADDR, (void *)0xfffbd000UL, "KVM_SET_TSS_ADDR");

	low = alloc_pages(LOW_SIZE / PAGE_SIZE);
	memcpy(low + CODE_GPA, guest_start, guest_end - guest_start);
	/* vmmcall on AMD (kvm_amd), vmcall on Intel; KVM fixes up the other one anyway. */
	if (!access("/sys/module/kvm_amd", F_OK))
		low[CODE_GPA + (guest_hypercall - guest_start) + 2] = 0xd9;
	params = (struct guest_params){
		.base = opt.pm_gpa,
		.end = opt.pm_gpa + opt.pm_size,
		.size = opt.pm_size,
		.slots = slots,
		.report_every = opt.report_every,
		.hint_every = opt.hint_every,
		.max_seq = opt.max_seq,
		.delay = opt.delay,
	};
	memcpy(low + PARAM_GPA, &params, sizeof(params));
	set_slot(vm, 0, 0, LOW_SIZE, low);

	pm = mmap(NULL, opt.pm_size, PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (pm == MAP_FAILED)
		fail("mmap %llu bytes for the region: %s", (unsigned long long)opt.pm_size,
		     strerror(errno));
	set_slot(vm, 1, opt.pm_gpa, opt.pm_size, pm);

	vcpu = xioctl(vm, KVM_CREATE_VCPU, (void *)0, "KVM_CREATE_VCPU");
	size = xioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, NULL, "KVM_GET_VCPU_MMAP_SIZE");
	run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		fail("mmap kvm_run: %s", strerror(errno));

	xioctl(vcpu, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
	flat_segment(&sregs.cs, 0x08, 0xb);	/* execute/read, accessed */
	flat_segment(&sregs.ds, 0x10, 0x3);	/* read/write, accessed */
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.cr0 = 0x31;			/* PE, ET, NE; caches on, no paging */
	sregs.cr4 = 0;
	sregs.efer = 0;
	xioctl(vcpu, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");

	memset(&regs, 0, sizeof(regs));
	regs.rip = CODE_GPA;
	regs.rflags = 0x2;
	xioctl(vcpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");
}

static void on_kick(int sig)
{
	(void)sig;
	if (stop)
		run->immediate_exit = 1;
}

/* io_value - the 32-bit value of an OUT exit on one of the guest's ports. */
static uint32_t io_value(void)
{
	uint32_t v;

	if (run->io.direction != KVM_EXIT_IO_OUT || run->io.size != 4 || run->io.count != 1)
		fail("unexpected I/O exit: port 0x%x direction %u size %u count %u",
		     run->io.port, run->io.direction, run->io.size, run->io.count);
	memcpy(&v, (uint8_t *)run + run->io.data_offset, sizeof(v));
	return v;
}

static void *vcpu_main(void *arg)
{
	uint32_t check_report[3], hint_report[2];
	unsigned int nchecks = 0, nhints = 0;
	int done = 0;

	(void)arg;
	while (!stop) {
		if (ioctl(vcpu, KVM_RUN, NULL) < 0) {
			/* EAGAIN: the daemon could not resolve a fault yet; enter again */
			if (errno == EINTR || errno == EAGAIN)
				continue;
			fail("KVM_RUN: %s", strerror(errno));
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			switch (run->io.port) {
			case PORT_PROGRESS:
				__atomic_store_n(&progress, io_value(), __ATOMIC_RELAXED);
				break;
			case PORT_FAIL:
				check_report[nchecks++] = io_value();
				if (nchecks == 3)
					fail("slot %u holds %u, expected %u", check_report[0],
					     check_report[2], check_report[1]);
				break;
			case PORT_HINT_FAIL:
				hint_report[nhints++] = io_value();
				if (nhints == 2)
					fail("hint on slot %u returned %d%s", hint_report[0],
					     (int32_t)hint_report[1],
					     (int32_t)hint_report[1] == -KVM_ENOSYS ?
					     " (-KVM_ENOSYS: no VPM range enabled, or KVM "
					     "without the VPM patches)" : "");
				break;
			case PORT_DONE:
				printf("VMM: guest done seq=%u\n", io_value());
				done = 1;
				break;
			default:
				fail("unexpected I/O exit: port 0x%x", run->io.port);
			}
			break;
		case KVM_EXIT_HLT:
			if (!done)
				fail("the guest halted unexpectedly");
			return NULL;		/* the guest stays halted at --max-seq */
		case KVM_EXIT_INTR:
			break;
		case KVM_EXIT_MMIO:
			fail("MMIO exit: %s of %u bytes at GPA 0x%llx (memory the guest cannot use)",
			     run->mmio.is_write ? "write" : "read", run->mmio.len,
			     (unsigned long long)run->mmio.phys_addr);
		case KVM_EXIT_SHUTDOWN:
			fail("KVM_EXIT_SHUTDOWN: the guest triple-faulted");
		case KVM_EXIT_FAIL_ENTRY:
			fail("KVM_EXIT_FAIL_ENTRY, reason 0x%llx",
			     (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		case KVM_EXIT_INTERNAL_ERROR:
			fail("KVM_EXIT_INTERNAL_ERROR, suberror %u", run->internal.suberror);
		default:
			fail("unexpected exit reason %u", run->exit_reason);
		}
	}
	return NULL;
}

/*
 * final_seq - the number of stores the guest did, once the vCPU thread is gone: one
 * KVM_RUN with immediate_exit completes a pending OUT (its RIP then moves past it)
 * without entering the guest, then the registers tell.
 */
static uint32_t final_seq(void)
{
	struct kvm_regs regs;
	uint64_t commit = CODE_GPA + (guest_commit - guest_start);

	run->immediate_exit = 1;
	if (ioctl(vcpu, KVM_RUN, NULL) == 0 || errno != EINTR)
		fail("KVM_RUN with immediate_exit: %s, want EINTR", strerror(errno));
	run->immediate_exit = 0;
	xioctl(vcpu, KVM_GET_REGS, &regs, "KVM_GET_REGS");
	return regs.rip == commit ? (uint32_t)regs.rax : (uint32_t)regs.rsi;
}

static void write_pid_file(void)
{
	char tmp[4096];
	FILE *f;

	if (!opt.pid_file)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", opt.pid_file);
	f = fopen(tmp, "w");
	if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) ||
	    rename(tmp, opt.pid_file))
		fail("write %s: %s", opt.pid_file, strerror(errno));
}

int main(int argc, char **argv)
{
	sigset_t waitset;
	struct sigaction sa;
	uint32_t last_printed = 0, seq;
	double deadline = 0, next_progress;
	int sig;

	setvbuf(stdout, NULL, _IOLBF, 0);
	parse(argc, argv);

	/* SIGTERM, SIGINT and SIGUSR1 are taken with sigtimedwait by the main thread. */
	sigemptyset(&waitset);
	sigaddset(&waitset, SIGTERM);
	sigaddset(&waitset, SIGINT);
	sigaddset(&waitset, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &waitset, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_kick;	/* no SA_RESTART */
	sigaction(SIGUSR2, &sa, NULL);

	create_vm();
	printf("VMM: pid=%d vm-fd=%d pm-gpa=0x%llx pm-size=%llu pages=%llu slots=%llu\n",
	       (int)getpid(), vm, (unsigned long long)opt.pm_gpa,
	       (unsigned long long)opt.pm_size, (unsigned long long)pages,
	       (unsigned long long)slots);
	write_pid_file();

	if (opt.wait_start) {
		printf("VMM: waiting for SIGUSR1\n");
		do
			sig = sigwaitinfo(&waitset, NULL);
		while (sig < 0 && errno == EINTR);
		if (sig != SIGUSR1)
			goto stopped;
	}

	printf("VMM: running\n");
	if (pthread_create(&vcpu_thread, NULL, vcpu_main, NULL))
		fail("pthread_create");
	next_progress = now() + 1;
	if (opt.seconds > 0)
		deadline = now() + opt.seconds;
	for (;;) {
		double t = now(), until = next_progress;
		struct timespec ts;

		if (deadline && t >= deadline)
			break;
		if (t >= next_progress) {
			seq = __atomic_load_n(&progress, __ATOMIC_RELAXED);
			if (seq != last_printed)
				printf("VMM: progress seq=%u\n", seq);
			last_printed = seq;
			next_progress += 1;
			if (next_progress < t)
				next_progress = t + 1;
			continue;
		}
		if (deadline && deadline < until)
			until = deadline;
		ts.tv_sec = (time_t)(until - t);
		ts.tv_nsec = (long)((until - t - ts.tv_sec) * 1e9);
		sig = sigtimedwait(&waitset, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT)
			break;
	}
	__atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
	pthread_kill(vcpu_thread, SIGUSR2);
	pthread_join(vcpu_thread, NULL);

stopped:
	seq = final_seq();
	printf("VMM: final seq=%u\n", seq);
	if (opt.check_self) {
		char why[160];
		uint32_t snap;

		if (seq_check_snapshot(pm, opt.pm_size, opt.words, &snap, why, sizeof(why)))
			fail("snapshot of the region: %s", why);
		printf("VMM: snapshot seq=%u\n", snap);
		if (snap != seq)
			fail("snapshot seq %u differs from the final seq %u", snap, seq);
	}
	printf("VMM: PASS\n");
	return 0;
}
