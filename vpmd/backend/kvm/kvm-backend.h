/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The kvm backend: VMs of the patched KVM (kvm-patch/), whose VM fd vpmd takes from the VMM's
 * process (QEMU or any other) with pidfd_open() + pidfd_getfd(). VPM is enabled on the VM's
 * vPM range (KVM_VPM_ENABLE); the range's gfns are then backed by vpmd's pages: DRAM frames
 * from a file per VM in <runtime_dir>/kvm (tmpfs, so that the pages the guest runs on outlive
 * vpmd) and the pool's PM frames. Epochs hold the vCPUs (KVM_VPM_HOLD), harvest the dirty and
 * young bits (KVM_VPM_HARVEST) and resume them; write faults on read-only pages and the
 * guest's persist and discard hints arrive on the event fd.
 *
 * When vpmd stops, the VMs keep running on their last mappings (the kernel keeps the pages
 * pinned; a write to a read-only page waits) and the next vpmd takes them over: each VM's
 * record (<runtime_dir>/kvm/NAME.vm), DRAM file (NAME.dram) and mapping table (NAME.map)
 * tell it which process, range and mappings.
 */
#ifndef VPMD_KVM_BACKEND_H
#define VPMD_KVM_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

struct engine;
struct kvm_backend;

struct kvm_attach_request {
	const char *name;
	pid_t pid;    /* the VMM's process */
	uint64_t gpa; /* the vPM range, 4 KiB aligned */
	uint64_t size;
	/* the VM's own settings (0 / NULL: vpmd's) */
	double ratio;
	const char *mode, *policy;
};

/* Set up <runtime_dir>/kvm and take over the VMs a previous vpmd served. */
int kvm_backend_new(struct engine *en, sd_event *event, const char *runtime_dir,
		    struct kvm_backend **ret);
/* Serve a running VM; errbuf says why not (a one-line reason for the operator). */
int kvm_backend_attach(struct kvm_backend *kb, const struct kvm_attach_request *req, char *errbuf,
		       size_t errlen);
/* Whether this host's KVM (/dev/kvm) has the VPM series. */
bool kvm_backend_host_has_vpm(void);
/* Let every VM go: they keep running on their mappings until the next vpmd takes over. */
struct kvm_backend *kvm_backend_free(struct kvm_backend *kb);

#endif
