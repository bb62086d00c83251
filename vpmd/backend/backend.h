/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The backend interface: what the engine needs from a hypervisor to run a VM's guest PM on
 * host PM and DRAM frames. The kvm backend (the patched KVM's vPM ioctls) and the sim backend
 * (vpm-simguest processes) implement the same operations:
 *
 *   map      back gfns with frames, read-only or writable, or unmap them; a batch is one
 *            TLB flush
 *   pause    stop every vCPU at an instruction boundary (vCPUs waiting on an event count as
 *            stopped); harvest then returns and clears the dirty and accessed bits
 *   resume   let the vCPUs run again
 *   sample   collect and clear the accessed bits without a pause (they are hints), several
 *            times an epoch, for the policy's access frequencies
 *   complete answer an event (write fault, persist hint, discard hint) the backend delivered
 *            with engine_vm_event()
 *
 * The events of a backend that maps all pages (maps_all) are write faults and hints only.
 *
 * A backend attaches a VM with engine_vm_attach(), delivers its events with engine_vm_event()
 * and reports its end with engine_vm_detach(); the engine calls the operations below. DRAM
 * frames are the pages of the VM's DRAM memfd (frame g backs gfn g, so the memfd is sparse and
 * holds only pages that are in DRAM); PM frames are the pool's frames.
 */
#ifndef VPMD_BACKEND_H
#define VPMD_BACKEND_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct backend_vm;
struct vm;

enum backend_tier {
	BACKEND_UNMAPPED = 0,
	BACKEND_DRAM = 1,
	BACKEND_PM = 2,
};

struct backend_map {
	uint64_t gfn;
	enum backend_tier tier;
	uint64_t frame; /* DRAM: the gfn itself; PM: the pool's frame number */
	bool writable;
};

enum backend_event_type {
	BACKEND_EVENT_FAULT,   /* a vCPU touched an absent page, or wrote a read-only one */
	BACKEND_EVENT_PERSIST, /* hint: make [offset, offset + len) of gfn durable */
	BACKEND_EVENT_DISCARD, /* hint: the guest no longer needs [offset, offset + len) of gfn */
};

struct backend_event {
	enum backend_event_type type;
	unsigned vcpu;
	uint64_t gfn;
	uint32_t offset, len;
	bool write;
	uint64_t cookie; /* the backend's, for complete() */
};

/* What the guest reports about itself (zero where a backend cannot know). */
struct backend_guest_stats {
	uint64_t ops;
	uint64_t modeled_ns; /* summed over vCPUs */
	uint64_t writes;
};

struct backend_ops {
	const char *name;
	/*
	 * Every gfn must stay mapped: the hypervisor backs an unmapped gfn with memory of its
	 * own instead of raising a fault (kvm). The engine maps every page at attach and keeps
	 * discarded pages mapped.
	 */
	bool maps_all;
	/*
	 * On an error, pages of the batch may keep their old mappings (a failed KVM_VPM_MAP
	 * changes none): the engine then calls off demotions whose write-protection failed, and
	 * a fault on a page it believes mapped maps it again.
	 */
	int (*map)(struct backend_vm *b, const struct backend_map *m, size_t n);
	/* The current mapping of a gfn (for adopting a running guest after a restart). */
	void (*lookup)(struct backend_vm *b, uint64_t gfn, struct backend_map *ret);
	int (*pause)(struct backend_vm *b, uint64_t epoch);
	/* With the VM paused: OR the dirty and accessed bits into the bitmaps, clearing them. */
	void (*harvest)(struct backend_vm *b, uint64_t *dirty, uint64_t *accessed);
	void (*resume)(struct backend_vm *b);
	/* No pause needed (accessed bits are hints): OR accessed bits into the bitmap, clearing. */
	void (*sample_accessed)(struct backend_vm *b, uint64_t *accessed);
	int (*complete)(struct backend_vm *b, const struct backend_event *ev, int status);
	void (*guest_stats)(struct backend_vm *b, struct backend_guest_stats *ret);
	/* Let the guest go: it keeps running on its mappings when stay_mapped (vpmd stops). */
	void (*release)(struct backend_vm *b, bool stay_mapped);
};

/*
 * What a vCPU is told of a write fault vpmd could not resolve: for now (no DRAM room, a pause
 * that did not happen, a remap that failed) -EAGAIN, on which it tries again (KVM_RUN returns
 * EAGAIN, which VMMs such as QEMU take as "enter again"); a bad request stays what it is and
 * stops the VM.
 */
static inline int backend_fault_status(const struct backend_event *ev, int status)
{
	if (ev->type == BACKEND_EVENT_FAULT && status < 0 && status != -EFAULT &&
	    status != -ERANGE && status != -EINVAL)
		return -EAGAIN;
	return status;
}

/* The part of a backend's VM the engine reads. */
struct backend_vm {
	const struct backend_ops *ops;
	struct vm *vm; /* the engine's, once attached */
	char name[64];
	uint64_t n_pages;
	unsigned n_vcpus;
	int dram_fd;
	uint8_t *dram;   /* n_pages * 4 KiB, shared with the guest */
	bool reattached; /* a running guest adopted after a vpmd restart */
	bool finished;   /* its guest is gone: adopted only to commit what it left, then detached */
	/* the guest's own settings, as its configuration gives them (0 / "" = default) */
	double ratio;
	char mode[16], policy[16];
	/* the oracle's knowledge (sim only): the workload the guest runs */
	bool has_workload;
	uint32_t wl_kind, wl_write_pct;
	double wl_theta;
	uint64_t wl_seed;
};

#endif
