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

#endif /* KVM_CAP_VPM */

#endif /* _LINUX_VPM_KVM_H */
