// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vpm-map - selftest of the second VPM KVM patch: KVM_VPM_MAP, KVM_VPM_UNMAP and the
 * fault hook.
 *
 * Standalone and static like vpm-enable, for the test rig's initramfs.  A real-mode
 * guest has two entry points: one reads the 32-bit word at DS:BX, reports it with
 * "out dx, eax" and halts, the other writes ECX to DS:BX and halts.  DS covers the data
 * memslot (the "QEMU" memory, GPA 0x10000, 16 pages, pattern A); VPM is enabled on 8 of
 * its pages (gfns 0x14-0x1b); a memfd (MAP_SHARED) holds pattern B.  It checks:
 *
 *   - before KVM_VPM_MAP the guest reads A, after a read-only MAP of sparse gfns it reads
 *     B from the memfd (also after first touching a neighbour outside the range, which
 *     would prefetch the memslot's pages), gfns of the range without an entry and gfns
 *     outside it still read A; a remap to another page shows that page;
 *   - a guest write to a read-only entry makes KVM_RUN fail with EFAULT (with the event
 *     patch: once its write-fault event is completed with -EFAULT), and neither the
 *     memfd page nor the memslot page changes;
 *   - a guest write to a writable entry lands in the memfd, not in the memslot page;
 *   - after KVM_VPM_UNMAP the guest reads A again (and the memslot page never saw the
 *     write);
 *   - bad arguments: a gfn outside the range or past it, a duplicate gfn, an unaligned
 *     uaddr, a private mapping, bad entry flags or pad, bad map flags, an empty or
 *     outside UNMAP give EINVAL, n > KVM_VPM_MAP_MAX gives E2BIG, an unmapped uaddr or
 *     a PROT_NONE shared mapping EFAULT; each batch has a good entry first, which must not be mapped afterwards,
 *     and no pin may be left;
 *   - MAP before ENABLE gives ENXIO;
 *   - a forked child (another mm, as vpmd after pidfd_getfd) maps pages of its own memfd
 *     (pattern C), which the guest then reads, and unmaps them again;
 *   - pin accounting (/proc/vmstat nr_foll_pin_acquired - nr_foll_pin_released, after
 *     /proc/sys/vm/stat_refresh): +1 per mapped page, back to its starting value after UNMAP, after remaps, after 200 MAP/UNMAP rounds and after
 *     50 VMs destroyed with pages still mapped.
 *
 * Output: one line per check, then "VPM-MAP: PASS", "VPM-MAP: FAIL <why>" or
 * "VPM-MAP: SKIP <why>" (no KVM_CAP_VPM or no KVM_VPM_MAP).  Exit codes: 0 pass, 1 fail,
 * 77 skip.
 *
 * Build: gcc -static -O2 -Wall -o vpm-map vpm-map.c (with kvm-lib.h next to it and
 * ../include/linux/vpm-kvm.h, the uapi of the series).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../include/linux/vpm-kvm.h"

#define KVM_LIB_NAME	"vpm-map"
#define KVM_LIB_VERDICT	"VPM-MAP"
#include "kvm-lib.h"
#include "vpm-guest.h"

#define OFF		0x100			/* the word each page is read at */
#define OFF2		0xffc			/* a second word, at the page's end */

#define PATTERN_A(gfn, off)	(0xa0000000u | (uint32_t)(gfn) << 12 | (off))
#define PATTERN_B(pg, off)	(0xb0000000u | (uint32_t)(pg) << 12 | (off))
#define PATTERN_C(pg, off)	(0xc0000000u | (uint32_t)(pg) << 12 | (off))

/*
 * Real mode.  At READ_RIP: mov eax, [bx]; out dx, eax; hlt.
 * At WRITE_RIP: mov [bx], ecx; hlt.
 */


/* new_vm_a - a new VM whose data slot holds pattern A. */
static void new_vm_a(struct vm *v)
{
	unsigned int p;

	new_vm(v);
	for (p = 0; p < DATA_PAGES; p++) {
		*word(v->data, p, OFF) = PATTERN_A(DATA_GFN + p, OFF);
		*word(v->data, p, OFF2) = PATTERN_A(DATA_GFN + p, OFF2);
	}
}

static void expect_hlt(struct vm *v, const char *what)
{
	if (ioctl(v->vcpu, KVM_RUN, NULL) < 0)
		fail("%s: KVM_RUN: %s", what, strerror(errno));
	if (v->run->exit_reason != KVM_EXIT_HLT)
		fail("%s: exit reason %u, want KVM_EXIT_HLT", what, v->run->exit_reason);
}

/* guest_read - the word the guest reads at gfn:off. */
static uint32_t guest_read(struct vm *v, uint64_t gfn, unsigned int off)
{
	struct kvm_run *run = v->run;
	uint32_t val;

	set_regs(v, READ_RIP, gfn, off, 0);
	if (ioctl(v->vcpu, KVM_RUN, NULL) < 0)
		fail("guest read of gfn 0x%llx: KVM_RUN: %s", (unsigned long long)gfn,
		     strerror(errno));
	if (run->exit_reason != KVM_EXIT_IO || run->io.port != IO_PORT || run->io.size != 4 ||
	    run->io.direction != KVM_EXIT_IO_OUT)
		fail("guest read of gfn 0x%llx: exit reason %u, want an OUT to port 0x%x",
		     (unsigned long long)gfn, run->exit_reason, IO_PORT);
	memcpy(&val, (uint8_t *)run + run->io.data_offset, sizeof(val));
	expect_hlt(v, "guest read");
	return val;
}

/* guest_write - the guest writes val at gfn:off; 0 or -errno of KVM_RUN. */
static int guest_write(struct vm *v, uint64_t gfn, unsigned int off, uint32_t val)
{
	set_regs(v, WRITE_RIP, gfn, off, val);
	if (ioctl(v->vcpu, KVM_RUN, NULL) < 0)
		return -errno;
	if (v->run->exit_reason != KVM_EXIT_HLT)
		fail("guest write to gfn 0x%llx: exit reason %u, want KVM_EXIT_HLT",
		     (unsigned long long)gfn, v->run->exit_reason);
	return 0;
}

static void check_read(struct vm *v, uint64_t gfn, unsigned int off, uint32_t want,
		       const char *what)
{
	uint32_t got = guest_read(v, gfn, off);

	check(got == want, "%s: guest reads 0x%08x at gfn 0x%llx + 0x%x (want 0x%08x)", what,
	      got, (unsigned long long)gfn, off, want);
}

static struct kvm_vpm_map_entry ent(uint64_t gfn, const void *uaddr, uint32_t flags)
{
	return (struct kvm_vpm_map_entry){ .gfn = gfn, .uaddr = (uintptr_t)uaddr,
					   .flags = flags };
}

/* vpm_map - KVM_VPM_MAP of n entries; 0 or -errno. */
static int vpm_map(int vm, const struct kvm_vpm_map_entry *e, uint32_t n, uint32_t flags)
{
	struct kvm_vpm_map args = { .n = n, .flags = flags, .entries = (uintptr_t)e };

	return ioctl(vm, KVM_VPM_MAP, &args) < 0 ? -errno : 0;
}

static int vpm_unmap(int vm, uint64_t gfn, uint64_t n)
{
	struct kvm_vpm_unmap args = { .gfn = gfn, .n = n };

	return ioctl(vm, KVM_VPM_UNMAP, &args) < 0 ? -errno : 0;
}

/* new_memfd - n pages of a memfd mapped MAP_SHARED, word OFF of page p = pattern(p). */
static uint8_t *new_memfd(unsigned int n, uint32_t (*pattern)(unsigned int, unsigned int))
{
	uint8_t *p = shared_pages("vpm-map", n);
	unsigned int i;

	for (i = 0; i < n; i++) {
		*word(p, i, OFF) = pattern(i, OFF);
		*word(p, i, OFF2) = pattern(i, OFF2);
	}
	return p;
}

static uint32_t pattern_b(unsigned int pg, unsigned int off) { return PATTERN_B(pg, off); }
static uint32_t pattern_c(unsigned int pg, unsigned int off) { return PATTERN_C(pg, off); }

static uint8_t *memfd_b;

/* expect_map_err - a bad batch must fail with -want and change nothing. */
static void expect_map_err(struct vm *v, const struct kvm_vpm_map_entry *e, uint32_t n,
			   uint32_t flags, int want, const char *what)
{
	long p0 = pins();
	int r = vpm_map(v->fd, e, n, flags);

	check(r == -want && pins() == p0, "%s: KVM_VPM_MAP %s (want %s), pins %+ld", what,
	      err_name(r), err_name(-want), pins() - p0);
	check_read(v, e[0].gfn, OFF, PATTERN_A(e[0].gfn, OFF), "  its good first entry");
}

static void bad_arguments(struct vm *v, uint8_t *private_mem, uint8_t *none_mem)
{
	static struct kvm_vpm_map_entry big[KVM_VPM_MAP_MAX + 1];
	struct kvm_vpm_map_entry e[2];
	uint64_t g = RANGE_GFN + 1;
	uint8_t *hole;
	int r;

	e[0] = ent(g, memfd_b, 0);
	e[1] = ent(DATA_GFN + 3, memfd_b + PAGE_SIZE, 0);
	expect_map_err(v, e, 2, 0, EINVAL, "gfn just before the range");
	e[1] = ent(RANGE_GFN + RANGE_PAGES, memfd_b + PAGE_SIZE, 0);
	expect_map_err(v, e, 2, 0, EINVAL, "gfn just past the range");
	e[1] = ent(1ULL << 40, memfd_b + PAGE_SIZE, 0);
	expect_map_err(v, e, 2, 0, EINVAL, "gfn far outside");
	e[1] = ent(g, memfd_b + PAGE_SIZE, 0);
	expect_map_err(v, e, 2, 0, EINVAL, "the same gfn twice");
	e[1] = ent(g + 1, memfd_b + PAGE_SIZE + 8, 0);
	expect_map_err(v, e, 2, 0, EINVAL, "unaligned uaddr");
	e[1] = ent(g + 1, private_mem, 0);
	expect_map_err(v, e, 2, 0, EINVAL, "private mapping (MAP_PRIVATE anonymous)");
	e[1] = ent(g + 1, private_mem, KVM_VPM_MAP_WRITABLE);
	expect_map_err(v, e, 2, 0, EINVAL, "private mapping, writable");
	e[1] = ent(g + 1, memfd_b + PAGE_SIZE, 2);
	expect_map_err(v, e, 2, 0, EINVAL, "entry flags bit 1");
	e[1] = ent(g + 1, memfd_b + PAGE_SIZE, 0x80000000u);
	expect_map_err(v, e, 2, 0, EINVAL, "entry flags bit 31");
	e[1] = ent(g + 1, memfd_b + PAGE_SIZE, 0);
	e[1].pad = 1;
	expect_map_err(v, e, 2, 0, EINVAL, "entry pad 1");
	e[1] = ent(g + 1, memfd_b + PAGE_SIZE, 0);
	expect_map_err(v, e, 2, 1, EINVAL, "map flags 1");
	e[1] = ent(g + 1, none_mem, 0);
	expect_map_err(v, e, 2, 0, EFAULT, "MAP_SHARED mapping with PROT_NONE");
	/* Unmapped just before the call, so that no other mapping took its place. */
	hole = alloc_pages(1);
	munmap(hole, PAGE_SIZE);
	e[1] = ent(g + 1, hole, 0);
	expect_map_err(v, e, 2, 0, EFAULT, "uaddr not mapped");
	big[0] = e[0];
	expect_map_err(v, big, KVM_VPM_MAP_MAX + 1, 0, E2BIG, "n = KVM_VPM_MAP_MAX + 1");
	big[0] = e[0];
	expect_map_err(v, big, 0xffffffffu, 0, E2BIG, "n = 2^32 - 1");

	r = vpm_map(v->fd, e, 0, 0);
	check(r == 0, "n = 0: KVM_VPM_MAP %s (want 0, nothing to do)", err_name(r));
	r = vpm_unmap(v->fd, RANGE_GFN, 0);
	check(r == -EINVAL, "KVM_VPM_UNMAP of 0 gfns: %s (want EINVAL)", err_name(r));
	r = vpm_unmap(v->fd, RANGE_GFN - 1, 2);
	check(r == -EINVAL, "KVM_VPM_UNMAP from one gfn before the range: %s (want EINVAL)",
	      err_name(r));
	r = vpm_unmap(v->fd, RANGE_GFN, RANGE_PAGES + 1);
	check(r == -EINVAL, "KVM_VPM_UNMAP one gfn past the range: %s (want EINVAL)",
	      err_name(r));
	r = vpm_unmap(v->fd, RANGE_GFN + 1, -1ULL);
	check(r == -EINVAL, "KVM_VPM_UNMAP of 2^64 - 1 gfns: %s (want EINVAL)", err_name(r));
}

/* child_map - in a forked child (another mm): map gfns of the range to its own memfd. */
static int child_map(int vm)
{
	uint8_t *mem = new_memfd(2, pattern_c);
	struct kvm_vpm_map_entry e[2] = {
		ent(RANGE_GFN + 2, mem, 0),
		ent(RANGE_GFN + 5, mem + PAGE_SIZE, KVM_VPM_MAP_WRITABLE),
	};
	int r = vpm_map(vm, e, 2, 0);

	check(r == 0, "child (other mm): KVM_VPM_MAP of 2 pages of its memfd: %s", err_name(r));
	r = ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) < 0 ? -errno : 0;
	check(r == -EIO, "child (other mm): KVM_CHECK_EXTENSION on the VM fd: %s (want EIO)",
	      err_name(r));
	/* The pins keep the pages after the child's mm is gone. */
	return 0;
}

/* destroy_loop - VMs destroyed with pages mapped (RO and RW) unpin them all. */
static void destroy_loop(int loops)
{
	struct kvm_vpm_map_entry e[RANGE_PAGES];
	long p0 = pins();
	struct vm v;
	int i, j, bad = 0;

	for (i = 0; i < loops; i++) {
		new_vm_a(&v);
		enable(&v);
		for (j = 0; j < RANGE_PAGES; j++)
			e[j] = ent(RANGE_GFN + j, memfd_b + j * PAGE_SIZE,
				   j & 1 ? KVM_VPM_MAP_WRITABLE : 0);
		if (vpm_map(v.fd, e, RANGE_PAGES, 0))
			fail("loop %d: KVM_VPM_MAP: %s", i, strerror(errno));
		if (guest_read(&v, RANGE_GFN + 3, OFF) != PATTERN_B(3, OFF))
			bad++;
		if (i & 1) {	/* the event fd last */
			close(v.vpm);
			v.vpm = -1;
		}
		close_vm(&v);
	}
	check(!bad, "%d VMs destroyed with %d pages mapped: the guest read B in %d of them",
	      loops, RANGE_PAGES, loops - bad);
	check(pins() == p0, "%d VMs destroyed with %d pages mapped: pins %+ld", loops,
	      RANGE_PAGES, pins() - p0);
}

int main(void)
{
	struct kvm_vpm_map_entry e[8];
	uint8_t *private_mem, *none_mem;
	long p0, p1;
	struct vm v;
	int r, i, n;

	kvm = open_kvm_vpm();

	code_mem = alloc_pages(1);
	memset(code_mem, 0xf4, PAGE_SIZE);
	memcpy(code_mem + (READ_RIP - CODE_GPA), read_code, sizeof(read_code));
	memcpy(code_mem + (WRITE_RIP - CODE_GPA), write_code, sizeof(write_code));
	memfd_b = new_memfd(MEMFD_PAGES, pattern_b);
	private_mem = alloc_pages(1);
	memset(private_mem, 0x55, PAGE_SIZE);
	none_mem = mmap(NULL, PAGE_SIZE, PROT_NONE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (none_mem == MAP_FAILED)
		fail("mmap PROT_NONE: %s", strerror(errno));

	new_vm_a(&v);
	/* KVM with patch 1 only has no KVM_VPM_MAP: ENOTTY from kvm_arch_vm_ioctl. */
	r = vpm_unmap(v.fd, RANGE_GFN, 1);
	if (r == -ENOTTY)
		skip("KVM_VPM_UNMAP gives ENOTTY: KVM without the VPM map patch");
	check(r == -ENXIO, "KVM_VPM_UNMAP before KVM_VPM_ENABLE: %s (want ENXIO)", err_name(r));
	e[0] = ent(RANGE_GFN, memfd_b, 0);
	r = vpm_map(v.fd, e, 1, 0);
	check(r == -ENXIO, "KVM_VPM_MAP before KVM_VPM_ENABLE: %s (want ENXIO)", err_name(r));

	check_read(&v, RANGE_GFN, OFF, PATTERN_A(RANGE_GFN, OFF), "before ENABLE");
	enable(&v);
	check(v.vpm >= 0, "KVM_VPM_ENABLE on gfns 0x%lx-0x%lx of the data slot (0x%lx-0x%lx)",
	      RANGE_GFN, RANGE_GFN + RANGE_PAGES - 1, DATA_GFN, DATA_GFN + DATA_PAGES - 1);
	p0 = pins();
	info("pins (nr_foll_pin_acquired - nr_foll_pin_released) at the start: %ld", p0);
	for (i = 0; i < RANGE_PAGES; i++)
		check_read(&v, RANGE_GFN + i, OFF, PATTERN_A(RANGE_GFN + i, OFF), "before MAP");

	/* Read-only, sparse, unsorted; gfn +1 and +3 stay unmapped. */
	e[0] = ent(RANGE_GFN + 4, memfd_b + 2 * PAGE_SIZE, 0);
	e[1] = ent(RANGE_GFN + 0, memfd_b + 0 * PAGE_SIZE, 0);
	e[2] = ent(RANGE_GFN + 2, memfd_b + 1 * PAGE_SIZE, 0);
	e[3] = ent(RANGE_GFN + 5, memfd_b + 3 * PAGE_SIZE, 0);
	r = vpm_map(v.fd, e, 4, 0);
	check(r == 0, "KVM_VPM_MAP read-only of gfns +4, +0, +2, +5 to memfd pages 2, 0, 1, 3: "
	      "%s", err_name(r));
	check(pins() - p0 == 4, "pins %+ld after mapping 4 pages (want +4)", pins() - p0);
	/* A neighbour outside the range first: prefetching must not fill the range. */
	check_read(&v, RANGE_GFN - 1, OFF, PATTERN_A(RANGE_GFN - 1, OFF), "MAP RO, neighbour");
	check_read(&v, RANGE_GFN + 0, OFF, PATTERN_B(0, OFF), "MAP RO");
	check_read(&v, RANGE_GFN + 0, OFF2, PATTERN_B(0, OFF2), "MAP RO");
	check_read(&v, RANGE_GFN + 1, OFF, PATTERN_A(RANGE_GFN + 1, OFF), "MAP RO, no entry");
	check_read(&v, RANGE_GFN + 2, OFF, PATTERN_B(1, OFF), "MAP RO");
	check_read(&v, RANGE_GFN + 3, OFF, PATTERN_A(RANGE_GFN + 3, OFF), "MAP RO, no entry");
	check_read(&v, RANGE_GFN + 4, OFF, PATTERN_B(2, OFF), "MAP RO");
	check_read(&v, RANGE_GFN + 5, OFF2, PATTERN_B(3, OFF2), "MAP RO");
	check_read(&v, RANGE_GFN + RANGE_PAGES, OFF, PATTERN_A(RANGE_GFN + RANGE_PAGES, OFF),
		   "MAP RO, past the range");

	/* A write to a read-only entry. */
	set_regs(&v, WRITE_RIP, RANGE_GFN + 2, OFF, 0xdeadbeef);
	r = run_failing_events(&v, &n);
	check(r == -EFAULT && n == has_events(&v),
	      "guest write to a read-only entry, its event (if any) completed with -EFAULT: "
	      "KVM_RUN %s (want EFAULT), %d event(s) (want %d)", err_name(r), n, has_events(&v));
	check(*word(memfd_b, 1, OFF) == PATTERN_B(1, OFF) &&
	      *word(v.data, RANGE_GFN + 2 - DATA_GFN, OFF) == PATTERN_A(RANGE_GFN + 2, OFF),
	      "after it neither the memfd page nor the memslot page changed");
	check_read(&v, RANGE_GFN + 2, OFF, PATTERN_B(1, OFF), "after the EFAULT");

	/* Remap a mapped gfn (its SPTE is present) to another page. */
	e[0] = ent(RANGE_GFN + 0, memfd_b + 5 * PAGE_SIZE, 0);
	r = vpm_map(v.fd, e, 1, 0);
	check(r == 0 && pins() - p0 == 4, "remap gfn +0 to memfd page 5: %s, pins %+ld (want +4)",
	      err_name(r), pins() - p0);
	check_read(&v, RANGE_GFN + 0, OFF, PATTERN_B(5, OFF), "remapped");

	/* Writable. */
	e[0] = ent(RANGE_GFN + 6, memfd_b + 4 * PAGE_SIZE, KVM_VPM_MAP_WRITABLE);
	r = vpm_map(v.fd, e, 1, 0);
	check(r == 0, "KVM_VPM_MAP writable of gfn +6 to memfd page 4: %s", err_name(r));
	check_read(&v, RANGE_GFN + 6, OFF, PATTERN_B(4, OFF), "MAP RW, before the write");
	r = guest_write(&v, RANGE_GFN + 6, OFF, 0x12345678);
	check(r == 0, "guest write to the writable entry: %s", err_name(r));
	check(*word(memfd_b, 4, OFF) == 0x12345678, "the write is in the memfd page (0x%08x)",
	      *word(memfd_b, 4, OFF));
	check(*word(v.data, RANGE_GFN + 6 - DATA_GFN, OFF) == PATTERN_A(RANGE_GFN + 6, OFF),
	      "the memslot page did not see it (0x%08x)",
	      *word(v.data, RANGE_GFN + 6 - DATA_GFN, OFF));
	r = guest_write(&v, RANGE_GFN + 7, OFF, 0x9abcdef0);
	check(r == 0 && *word(v.data, RANGE_GFN + 7 - DATA_GFN, OFF) == 0x9abcdef0,
	      "guest write to gfn +7 (no entry) lands in the memslot page: %s", err_name(r));
	check(pins() - p0 == 5, "pins %+ld with 5 pages mapped", pins() - p0);

	/* Unmap all. */
	r = vpm_unmap(v.fd, RANGE_GFN, RANGE_PAGES);
	check(r == 0, "KVM_VPM_UNMAP of the whole range: %s", err_name(r));
	check(pins() == p0, "pins %+ld after UNMAP", pins() - p0);
	for (i = 0; i < 7; i++)
		check_read(&v, RANGE_GFN + i, OFF, PATTERN_A(RANGE_GFN + i, OFF), "after UNMAP");
	check_read(&v, RANGE_GFN + 7, OFF, 0x9abcdef0, "after UNMAP");
	r = vpm_unmap(v.fd, RANGE_GFN, RANGE_PAGES);
	check(r == 0, "KVM_VPM_UNMAP again (no entries): %s", err_name(r));

	/* Bad arguments change nothing. */
	bad_arguments(&v, private_mem, none_mem);
	check(pins() == p0, "pins %+ld after the refused batches", pins() - p0);

	/* From another mm, as vpmd. */
	r = in_child(child_map, v.fd, "child_map");
	check(r == 0, "child (other mm) passed (exit %d)", r);
	check(pins() - p0 == 2, "pins %+ld after the child's MAP and exit (want +2)",
	      pins() - p0);
	check_read(&v, RANGE_GFN + 2, OFF, PATTERN_C(0, OFF), "child's MAP RO");
	check_read(&v, RANGE_GFN + 5, OFF2, PATTERN_C(1, OFF2), "child's MAP RW");
	r = guest_write(&v, RANGE_GFN + 5, OFF, 0x5a5a5a5a);
	check(r == 0, "guest write to the child's writable page: %s", err_name(r));
	check_read(&v, RANGE_GFN + 5, OFF, 0x5a5a5a5a, "child's MAP RW");
	r = vpm_unmap(v.fd, RANGE_GFN + 2, 4);
	check(r == 0 && pins() == p0, "KVM_VPM_UNMAP of the child's pages: %s, pins %+ld",
	      err_name(r), pins() - p0);
	check_read(&v, RANGE_GFN + 5, OFF, PATTERN_A(RANGE_GFN + 5, OFF), "after UNMAP");

	/* Rounds of MAP and UNMAP with the guest touching the pages. */
	p1 = pins();
	for (i = 0; i < 200; i++) {
		uint32_t want = PATTERN_B(i % MEMFD_PAGES, OFF2);

		e[0] = ent(RANGE_GFN + i % RANGE_PAGES, memfd_b + (i % MEMFD_PAGES) * PAGE_SIZE,
			   i & 1 ? KVM_VPM_MAP_WRITABLE : 0);
		e[1] = ent(RANGE_GFN + (i + 3) % RANGE_PAGES, memfd_b, 0);
		if (vpm_map(v.fd, e, 2, 0))
			fail("round %d: KVM_VPM_MAP: %s", i, strerror(errno));
		if (guest_read(&v, e[0].gfn, OFF2) != want)
			fail("round %d: guest read 0x%08x at gfn 0x%llx, want 0x%08x", i,
			     guest_read(&v, e[0].gfn, OFF2), (unsigned long long)e[0].gfn, want);
		if (vpm_unmap(v.fd, RANGE_GFN, RANGE_PAGES))
			fail("round %d: KVM_VPM_UNMAP: %s", i, strerror(errno));
	}
	check(pins() == p1, "200 rounds of MAP (2 pages) + guest read + UNMAP: pins %+ld",
	      pins() - p1);

	/* Destroying a VM unpins what is mapped. */
	e[0] = ent(RANGE_GFN, memfd_b, 0);
	e[1] = ent(RANGE_GFN + 1, memfd_b + PAGE_SIZE, KVM_VPM_MAP_WRITABLE);
	r = vpm_map(v.fd, e, 2, 0);
	check(r == 0 && pins() - p0 == 2, "KVM_VPM_MAP of 2 pages before closing the VM: %s, "
	      "pins %+ld", err_name(r), pins() - p0);
	close_vm(&v);
	check(pins() == p0, "pins %+ld after the VM was destroyed", pins() - p0);
	destroy_loop(50);

	close(kvm);
	if (checks_failed)
		fail("%d checks failed", checks_failed);
	printf("VPM-MAP: PASS\n");
	return 0;
}
