/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * vpm-kvm.h - the user API of the VPM KVM patch series (kvm-patch/patches), for vpmd and
 * the selftests, so that they build without the patched kernel headers.
 *
 * The series adds the same definitions to include/uapi/linux/kvm.h: keep the two
 * identical (kvm-patch/tests/test-rig.sh compares them).  With a patched <linux/kvm.h>
 * this header adds nothing.
 */
#ifndef _LINUX_VPM_KVM_H
#define _LINUX_VPM_KVM_H

#include <linux/kvm.h>

#ifndef KVM_CAP_VPM

/*
 * KVM_CAP_VPM: far above the last capability of 6.1 (223) and of later
 * kernels (in the 240s), so that upstream does not reach it for years.
 */
#define KVM_CAP_VPM 1024

/*
 * KVM_VPM_ENABLE (vm ioctl, struct kvm_vpm_enable): enable VPM on the
 * guest-physical range [gpa, gpa + size) and return a new file descriptor
 * (O_CLOEXEC) that carries the VM's VPM events.  gpa and size must be 4 KiB
 * aligned, size non-zero, the range covered by user memslots of address
 * space 0 without holes, flags and pad zero (EINVAL otherwise).  A VM has at
 * most one range (EEXIST) of at most KVM_VPM_MAX_PAGES pages (E2BIG).  A
 * process other than the VM's creator, e.g. one that got the VM fd with
 * pidfd_getfd(), may issue it if it has CAP_SYS_ADMIN (EPERM otherwise).
 *
 * The VPM ioctls use KVMIO numbers 0xe8-0xef: 0xd2 and up are handed out in
 * order by later kernels (KVM_SET_MEMORY_ATTRIBUTES is 0xd2,
 * KVM_PRE_FAULT_MEMORY 0xd5), 0xe0-0xe3 are the device ioctls, and
 * out-of-tree patches often use 0xf0 and up.
 */
#define KVM_VPM_MAX_PAGES (1ULL << 32)

struct kvm_vpm_enable {
	__u64 gpa;
	__u64 size;
	__u32 flags;
	__u32 pad;
};

#define KVM_VPM_ENABLE _IOW(KVMIO, 0xe8, struct kvm_vpm_enable)

/*
 * KVM_VPM_MAP (vm ioctl, struct kvm_vpm_map): back the gfns of n entries of
 * the VPM range with pages of the caller's address space.  Each entry names
 * a gfn of the range and a page-aligned address of a MAP_SHARED mapping
 * (memfd/shmem or device DAX) of the caller; the page is pinned for as long
 * as the gfn stays mapped, and the guest may write to it only with
 * KVM_VPM_MAP_WRITABLE.  A gfn already mapped is remapped.  Every entry is
 * checked before anything changes: flags or pad not valid, a gfn outside
 * the range, a gfn twice in one call, an unaligned address or a private
 * mapping give EINVAL, n > KVM_VPM_MAP_MAX gives E2BIG, and a page that
 * cannot be pinned gives the pinning error (EFAULT for no mapping).
 * Without an enabled range, or after its event fd was closed: ENXIO.  For
 * now a guest write to a read-only entry makes KVM_RUN fail with EFAULT.
 *
 * KVM_VPM_UNMAP (vm ioctl, struct kvm_vpm_unmap): drop the entries of
 * [gfn, gfn + n), which must be inside the range with n > 0 (EINVAL); the
 * gfns are backed by their memslot again and the pages are unpinned.  gfns
 * without an entry are skipped.
 *
 * Both may be issued by the same callers as KVM_VPM_ENABLE.
 */
#define KVM_VPM_MAP_WRITABLE (1U << 0)
#define KVM_VPM_MAP_MAX 65536

struct kvm_vpm_map_entry {
	__u64 gfn;
	__u64 uaddr;
	__u32 flags;
	__u32 pad;
};

struct kvm_vpm_map {
	__u32 n;
	__u32 flags;
	__u64 entries;	/* user pointer to n struct kvm_vpm_map_entry */
};

struct kvm_vpm_unmap {
	__u64 gfn;
	__u64 n;
};

#define KVM_VPM_MAP _IOW(KVMIO, 0xe9, struct kvm_vpm_map)
#define KVM_VPM_UNMAP _IOW(KVMIO, 0xea, struct kvm_vpm_unmap)

/*
 * KVM_VPM_HARVEST (vm ioctl, struct kvm_vpm_harvest): report and clear the
 * dirty and young bits of the gfns [gfn, gfn + n) of the VPM range, mapped
 * or not.  A gfn is young once the guest accessed it and dirty once it
 * wrote to it since the harvest that last cleared the bit.  dirty_bitmap
 * and young_bitmap are user pointers to bitmaps of n bits, bit i (bit
 * i % 8 of byte i / 8, no alignment required) for gfn + i; all
 * DIV_ROUND_UP(n, 8) bytes are written.  A zero pointer leaves that bit of
 * the gfns neither reported nor cleared.  The gfns' SPTEs are then zapped,
 * so that the next access faults and sets the bits again.  n must be
 * non-zero, the run inside the range, flags and pad zero (EINVAL); a
 * bitmap that cannot be written gives EFAULT, and the bits not reported
 * stay set.  Allowed with or without a hold, and after the event fd was
 * closed.
 *
 * KVM_VPM_HOLD (vm ioctl, no argument): kick every vCPU out of guest mode
 * and keep it out until KVM_VPM_RESUME; it returns once no vCPU is in guest
 * mode.  A vCPU thread in KVM_RUN waits in the kernel meanwhile; a signal
 * makes KVM_RUN return EINTR (KVM_EXIT_INTR) as usual, and the next
 * KVM_RUN waits again.  Closing the event fd or the last reference to the
 * VM fd releases the hold.  ENXIO after the event fd was closed.
 *
 * KVM_VPM_RESUME (vm ioctl, no argument): release the hold; nothing to do
 * without one.
 *
 * The three give ENXIO without an enabled range and may be issued by the
 * same callers as KVM_VPM_ENABLE.
 */
struct kvm_vpm_harvest {
	__u64 gfn;
	__u64 n;
	__u64 dirty_bitmap;	/* user pointers, n bits each, may be 0 */
	__u64 young_bitmap;
	__u32 flags;
	__u32 pad;
};

#define KVM_VPM_HARVEST _IOW(KVMIO, 0xeb, struct kvm_vpm_harvest)
#define KVM_VPM_HOLD _IO(KVMIO, 0xec)
#define KVM_VPM_RESUME _IO(KVMIO, 0xed)

/*
 * Events (read from the event fd): a whole number of struct kvm_vpm_event
 * records per read, EAGAIN when none is pending (EINVAL if one is and the
 * buffer cannot hold it); poll reports POLLIN while some are.  The vCPU that
 * raised an event waits until the daemon completes it with
 * KVM_VPM_COMPLETE and its id (ids start at 1 and never repeat in a VM);
 * vcpu is the vCPU id.
 *
 * KVM_VPM_EVENT_WRITE_FAULT: the guest wrote to a read-only entry; gpa is
 * the page, len 4096.  Status 0 retries the access (typically after a
 * KVM_VPM_MAP of the page writable), a negative errno makes KVM_RUN fail
 * with it.
 *
 * KVM_VPM_EVENT_PERSIST, KVM_VPM_EVENT_DISCARD: the guest issued the
 * hypercall KVM_HC_VPM_HINT (13; KVM_HC_* 1-12 are taken in 6.1) at CPL 0
 * with RAX = 13, RBX = op (KVM_VPM_HINT_PERSIST or KVM_VPM_HINT_DISCARD),
 * RCX = gpa, RDX = len; [gpa, gpa + len) must be a non-empty part of the
 * range, else RAX = -KVM_EINVAL and no event.  The status of the
 * completion (0 or a negative errno) is returned in RAX.
 *
 * A signal ends the wait (KVM_RUN returns EINTR); the event stays pending
 * and the next KVM_RUN waits again.  Closing the event fd, or the last
 * reference to the VM fd, fails the pending and all later events: a write
 * fault makes KVM_RUN fail with EFAULT, a hint returns -KVM_EFAULT.
 *
 * KVM_VPM_COMPLETE (vm ioctl, struct kvm_vpm_complete): complete the
 * pending event id with status 0 or a negative errno (>= -4095).  ENOENT
 * if no pending event has that id, EINVAL for a bad status or pad, ENXIO
 * without a range.  Same callers as KVM_VPM_ENABLE.
 */
#define KVM_HC_VPM_HINT 13
#define KVM_VPM_HINT_PERSIST 1
#define KVM_VPM_HINT_DISCARD 2

#define KVM_VPM_EVENT_WRITE_FAULT 1
#define KVM_VPM_EVENT_PERSIST 2
#define KVM_VPM_EVENT_DISCARD 3

struct kvm_vpm_event {
	__u64 id;
	__u32 type;
	__u32 vcpu;
	__u64 gpa;
	__u64 len;
};

struct kvm_vpm_complete {
	__u64 id;
	__s32 status;
	__u32 pad;
};

#define KVM_VPM_COMPLETE _IOW(KVMIO, 0xee, struct kvm_vpm_complete)

/*
 * Daemon restart: closing the event fd (the daemon exits or dies) orphans
 * the VPM state instead of failing it, and this replaces what is said
 * above about closing it.  The mappings stay (their pages stay pinned and
 * the guest keeps running on them), a hold is released, and the pending
 * events stay pending: their vCPUs keep waiting, as do the vCPUs that
 * raise new write faults or hints meanwhile (a signal still makes KVM_RUN
 * return EINTR, and the next KVM_RUN waits again).  While the state is
 * orphaned, KVM_VPM_MAP, KVM_VPM_UNMAP, KVM_VPM_HOLD, KVM_VPM_RESUME and
 * KVM_VPM_COMPLETE give ENXIO; KVM_VPM_HARVEST works.
 *
 * A new daemon takes over with KVM_VPM_ENABLE of exactly the same range
 * (gpa and size, flags and pad zero; the same callers as before): it
 * returns a new event fd bound to the existing state, mappings and bits
 * kept, from which every pending event is read again with its id, the
 * ones the previous daemon read but did not complete included.  The
 * memslots are not checked again.  Another range gives EEXIST, and so
 * does KVM_VPM_ENABLE while a daemon's event fd is open.
 *
 * Only the last reference to the VM fd going away fails the pending and
 * all later events (a write fault makes KVM_RUN fail with EFAULT, a hint
 * returns -KVM_EFAULT) and releases a hold, orphaned or not, so that no
 * vCPU is left waiting.
 */

#endif /* KVM_CAP_VPM */

#endif /* _LINUX_VPM_KVM_H */
