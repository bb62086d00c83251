// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/kvm/kvm-backend.h"
#include "backend/sim/sim-backend.h"
#include "bitmap.h"
#include "engine.h"
#include "json-util.h"
#include "log.h"
#include "page-copy.h"
#include "pagetable.h"
#include "parse-util.h"
#include "pm-store.h"
#include "policy.h"
#include "workload.h"

#define CHECKPOINT_USEC UINT64_C(1000000)
#define SAMPLES         1024 /* pause and commit times kept per VM for percentiles */
#define MIN_HEADROOM    16   /* pages a VM may write beyond its DRAM share in an epoch */
#define SAMPLES_PER_EPOCH 8  /* accessed-bit samples between two boundaries */
#define BATCH_MIN_PAGES 512  /* 2 MiB: a demotion batch that counts for the throughput */
#define ALIGN_UP(x, a)  (((x) + (a) - 1) / (a) * (a))

struct samples {
	uint64_t v[SAMPLES];
	uint64_t n; /* taken in all; the newest SAMPLES are kept */
	uint64_t max;
};

struct vm {
	struct engine *en;
	struct vm *next;
	struct backend_vm *b;
	char name[64];
	uint64_t n_pages;
	unsigned n_vcpus;
	unsigned dev;
	sd_event_source *epoch_timer, *sample_timer;

	/* settings */
	uint64_t epoch_usec; /* its own epoch interval, or 0: the configured one */
	enum vm_mode mode;
	double ratio;
	struct policy policy;
	int priority;
	uint64_t pm_target, dram_share, headroom;
	struct workload *oracle; /* the guest's workload, for the oracle's weights */

	/* pages */
	struct pagetable pt;
	uint64_t words; /* of a bitmap over the pages */
	uint64_t *dirty, *accessed, *sample;
	uint8_t *stage;            /* address space for n_pages; stage_ready of them faulted in */
	uint64_t stage_ready;
	bool map_failed;  /* a remap failed since the flag was cleared (nothing of it changed) */
	bool maps_unsure; /* a remap failed: the hypervisor's mappings may not be the table's */
	uint64_t stage_rw; /* pages of the stage's reservation made writable */
	struct page_copy_item *copies; /* what stage_pages() copies where */
	struct pm_page *pages;
	uint64_t stage_cap;        /* entries of copies and pages */
	uint64_t *cand, n_cand;   /* pages to demote, write-protected at the pause */
	uint64_t *rank, n_rank;   /* DRAM pages, coldest first, as of the last boundary */
	uint64_t boundary_dram, boundary_pm; /* placement after the last boundary's moves */
	uint64_t *punch, n_punch; /* DRAM pages demoted: their memory goes at the next pause */
	uint64_t *pick;           /* scratch for the policy */
	const void **data;        /* scratch for demotions: the pages' DRAM copies */
	uint64_t *frames;         /* ... and the frames they get */
	struct backend_map *batch;
	size_t n_batch;
	uint64_t epoch; /* last committed */
	bool stale_reads; /* a page left for its image: checkpoint before the next first touch */
	unsigned pause_failures;      /* pauses in a row the vCPUs did not stop for */
	uint64_t pause_backoff_until; /* no regular boundary before this */
	bool converged;
	uint64_t migrating;

	/* statistics */
	uint64_t attach_usec, ops_at_attach;
	uint64_t epochs, early_epochs, dirty_pages, last_dirty, faults;
	uint64_t promotions, demotions, migrated_bytes;
	uint64_t hints_persist, hints_discard, hint_bytes;
	uint64_t batches, batch_bytes, batch_usec; /* demotion batches of 2 MiB or more */
	uint64_t log_bytes, frame_bytes;
	struct samples pause, commit;
};

struct engine {
	sd_event *event;
	struct pool *pool;
	struct pm_store *store;
	char *state_dir;
	char *image_dir;
	uint64_t epoch_usec;
	uint64_t dram_budget_pages;
	double default_ratio;
	double rate_pages; /* migration rate, pages per second */
	double tokens;
	uint64_t tokens_usec;
	sd_event_source *checkpoint;
	struct sim_backend *sim;
	struct kvm_backend *kvm;
	struct copy_crew *crew; /* stages paused VMs' pages */
	struct vm *vms;
	struct reservation *resv; /* VMs about to start */
	size_t n_resv;
	engine_settings_fn settings_fn;
	void *settings_data;
};

/* Capacity promised to a VM that is about to start (libvirt's prepare hook). */
struct reservation {
	struct reservation *next;
	char name[64]; /* as a VM's */
	uint64_t pm_target, dram;
};

#define RESERVATIONS_MAX 256

static const char *const mode_names[_VM_MODE_MAX] = {
	[VM_MODE_NATIVE] = "native",
	[VM_MODE_EPOCH] = "epoch",
	[VM_MODE_HINT] = "hint",
};

const char *vm_mode_to_string(enum vm_mode m)
{
	return m < _VM_MODE_MAX ? mode_names[m] : NULL;
}

int vm_mode_from_string(const char *s)
{
	for (int m = 0; m < _VM_MODE_MAX; m++)
		if (streq(s, mode_names[m]))
			return m;
	return -EINVAL;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static bool epoch_usec_valid(uint64_t usec)
{
	return usec >= USEC_PER_MSEC && usec <= 60 * USEC_PER_SEC;
}

static struct vm *find_vm(struct engine *en, const char *name);

static uint64_t vm_epoch_usec(const struct vm *vm)
{
	return vm->epoch_usec ? vm->epoch_usec : vm->en->epoch_usec;
}

static uint8_t *pm_frame_ptr(struct engine *en, uint64_t f)
{
	return (uint8_t *)en->pool->addr + pm_store_frames_offset(en->store) + f * PM_PAGE_SIZE;
}

static uint8_t *dram_ptr(struct vm *vm, uint64_t g)
{
	return vm->b->dram + g * PM_PAGE_SIZE;
}

static void sample_add(struct samples *s, uint64_t v)
{
	s->v[s->n++ % SAMPLES] = v;
	s->max = MAX(s->max, v);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The p-th percentile (0-100) of the kept samples; 0 without any. */
static uint64_t sample_percentile(const struct samples *s, double p)
{
	uint64_t n = MIN(s->n, (uint64_t)SAMPLES), v[SAMPLES];

	if (n == 0)
		return 0;
	memcpy(v, s->v, n * sizeof(v[0]));
	qsort(v, n, sizeof(v[0]), cmp_u64);
	return v[MIN(n - 1, (uint64_t)ceil(p / 100.0 * (double)n) - (p > 0))];
}

static uint64_t dram_pages(const struct vm *vm)
{
	return vm->pt.count[PT_TIER_DRAM];
}

static uint64_t pm_pages(const struct vm *vm)
{
	return vm->pt.count[PT_TIER_PM];
}

/* What a ratio gives a VM of n pages: PM frames, DRAM share, and write headroom. */
static void targets(uint64_t n, double ratio, enum vm_mode mode, uint64_t *ret_pm,
		    uint64_t *ret_share, uint64_t *ret_headroom)
{
	uint64_t share = mode == VM_MODE_NATIVE ? 0 : policy_dram_share(n, ratio);

	*ret_pm = n - share;
	*ret_share = share;
	*ret_headroom = mode == VM_MODE_NATIVE ? 0 : MIN(n - share, MAX(n / 16, MIN_HEADROOM));
}

/* ---- mappings --------------------------------------------------------------------------- */

static int flush_maps(struct vm *vm)
{
	int r = 0;

	if (vm->n_batch)
		r = vm->b->ops->map(vm->b, vm->batch, vm->n_batch);
	vm->n_batch = 0;
	if (r < 0) {
		vm->map_failed = vm->maps_unsure = true;
		log_error_errno(r, "VM '%s': remapping pages failed: %m", vm->name);
	}
	return r;
}

/* Queue a remap; the batch goes to the backend (one TLB flush) when full or flushed. */
static void queue_map(struct vm *vm, uint64_t g, enum backend_tier tier, uint64_t frame,
		      bool writable)
{
	vm->batch[vm->n_batch++] = (struct backend_map){ .gfn = g, .tier = tier, .frame = frame,
							 .writable = writable };
	if (vm->n_batch == vm->n_pages || vm->n_batch == 4096)
		(void)flush_maps(vm);
}

static bool pm_writable(const struct vm *vm)
{
	return vm->mode == VM_MODE_NATIVE; /* epoch and hint: a write promotes (invariant 2) */
}

static int ensure_stage(struct vm *vm, uint64_t n);

static void place_dram(struct vm *vm, uint64_t g, uint64_t flags)
{
	pt_place(&vm->pt, g, PT_TIER_DRAM, (uint32_t)g, flags | PT_WRITABLE);
	queue_map(vm, g, BACKEND_DRAM, g, true);
	/* its staging room too, now rather than in a pause (which tries again if this fails) */
	(void)ensure_stage(vm, dram_pages(vm));
}

static void place_pm(struct vm *vm, uint64_t g, uint64_t f)
{
	bool w = pm_writable(vm);

	pt_place(&vm->pt, g, PT_TIER_PM, (uint32_t)f, PT_COMMITTED | (w ? PT_WRITABLE : 0));
	queue_map(vm, g, BACKEND_PM, f, w);
}

/* Queue the mapping the table holds for g (the hypervisor's may differ after a failed remap). */
static void queue_table_map(struct vm *vm, uint64_t g)
{
	bool w = pt_test(&vm->pt, g, PT_WRITABLE);

	switch (pt_tier(&vm->pt, g)) {
	case PT_TIER_DRAM:
		queue_map(vm, g, BACKEND_DRAM, g, w);
		break;
	case PT_TIER_PM:
		queue_map(vm, g, BACKEND_PM, pt_frame(&vm->pt, g), w);
		break;
	default:
		if (!vm->b->ops->maps_all)
			queue_map(vm, g, BACKEND_UNMAPPED, 0, false);
	}
}

/*
 * After a remap failed, the hypervisor may map pages otherwise than the table says: a page
 * the table has on PM may still be read from its DRAM page, one promoted may still be read
 * from its old PM frame. With the vCPUs paused, before anything they may still read is freed
 * (a demoted page's DRAM, a frame a commit supersedes), every page is mapped again as the
 * table says. Returns -EIO when that fails too (the caller then frees nothing).
 */
static int resync_maps(struct vm *vm)
{
	if (!vm->maps_unsure)
		return 0;
	vm->map_failed = false;
	for (uint64_t g = 0; g < vm->n_pages; g++)
		queue_table_map(vm, g);
	(void)flush_maps(vm);
	if (vm->map_failed)
		return log_warning_errno(EIO, "VM '%s': its pages could not be mapped again; "
					      "what they may still read is kept", vm->name);
	vm->maps_unsure = false;
	log_info("VM '%s': every page mapped again after a failed remap", vm->name);
	return 0;
}

/* Drop the memory of DRAM pages demoted since the last pause (no vCPU can still use it). */
static void punch_demoted(struct vm *vm)
{
	if (vm->maps_unsure)
		return; /* one may still be mapped: kept for a pause after the mappings are right */
	for (uint64_t i = 0; i < vm->n_punch; i++) {
		uint64_t g = vm->punch[i];

		if (pt_tier(&vm->pt, g) == PT_TIER_DRAM)
			continue; /* promoted again meanwhile */
		(void)fallocate(vm->b->dram_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				(off_t)(g * PM_PAGE_SIZE), PM_PAGE_SIZE);
	}
	vm->n_punch = 0;
}

/* ---- the migration rate ------------------------------------------------------------------ */

static void refill_tokens(struct engine *en)
{
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	double burst = MAX(en->rate_pages / 4, 512.0);

	en->tokens = MIN(burst, en->tokens + (double)(now - en->tokens_usec) / 1e6 * en->rate_pages);
	en->tokens_usec = now;
}

/*
 * Pages vm may move now: the tokens, shared by priority among the VMs that have pages to
 * move (a VM of priority p weighs p + 1).
 */
static uint64_t take_tokens(struct vm *vm, uint64_t want)
{
	struct engine *en = vm->en;
	double mine = vm->priority + 1, all = mine, allowance;
	uint64_t n;

	refill_tokens(en);
	for (struct vm *o = en->vms; o; o = o->next)
		if (o != vm && o->migrating)
			all += o->priority + 1;
	allowance = en->tokens * mine / all;
	n = MIN(want, (uint64_t)allowance);
	en->tokens -= (double)n;
	return n;
}

/* ---- epochs ----------------------------------------------------------------------------- */

/*
 * Room to stage n pages. The buffer is address space for every page of the VM, reserved at
 * the first call and made writable as needed (the memory is charged then, and may be
 * refused); its memory is faulted in as the VM's DRAM pages grow (place_dram(), in the fault
 * path), so that a pause copies at memory speed instead of taking page faults. What it holds
 * is not kept from one commit to the next.
 */
static int ensure_stage(struct vm *vm, uint64_t n)
{
	struct page_copy_item *c;
	struct pm_page *p;

	n = MIN(n, vm->n_pages);
	if (!vm->stage) {
		/* inaccessible: no commit charge until a part is made writable (strict overcommit) */
		void *s = mmap(NULL, vm->n_pages * PM_PAGE_SIZE, PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (s == MAP_FAILED)
			return -ENOMEM;
		vm->stage = s;
	}
	if (n > vm->stage_rw) {
		uint64_t rw = MIN(vm->n_pages, MAX(n, vm->stage_rw * 2));

		if (mprotect(vm->stage + vm->stage_rw * PM_PAGE_SIZE,
			     (rw - vm->stage_rw) * PM_PAGE_SIZE, PROT_READ | PROT_WRITE) < 0)
			return -ENOMEM;
		vm->stage_rw = rw;
	}
	if (n > vm->stage_cap) {
		uint64_t cap = MIN(vm->n_pages, MAX(n, vm->stage_cap * 2));

		/* a copy thread late for the last pause may still read the old list */
		copy_crew_quiesce(vm->en->crew);
		p = realloc(vm->pages, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		vm->pages = p;
		c = realloc(vm->copies, cap * sizeof(*c));
		if (!c)
			return -ENOMEM;
		vm->copies = c;
		vm->stage_cap = cap;
	}
	for (; vm->stage_ready < n; vm->stage_ready++)
		vm->stage[vm->stage_ready * PM_PAGE_SIZE] = 0;
	return 0;
}

/*
 * Which DRAM pages the coming commit takes: epoch mode the dirty ones, every mode the forced
 * ones, and all of them when everything in DRAM must become durable (a clean detach, a
 * switch of mode).
 */
static bool to_commit(struct vm *vm, uint64_t g, bool all)
{
	if (pt_tier(&vm->pt, g) != PT_TIER_DRAM)
		return false;
	if (all || pt_test(&vm->pt, g, PT_FORCE))
		return true;
	return vm->mode == VM_MODE_EPOCH && bit_test(vm->dirty, g);
}

/*
 * With the VM paused: copy what the commit takes to the staging buffer. Without memory for
 * it, the pages are marked due for the next commit and -ENOMEM returned.
 */
static int64_t stage_pages(struct vm *vm, bool all)
{
	struct page_copy_moved runs[COPY_MOVED_MAX];
	uint64_t n = 0;
	size_t moved;

	/* a copy thread late for the last pause may still read copies[] */
	copy_crew_quiesce(vm->en->crew);
	if (ensure_stage(vm, dram_pages(vm)) < 0) {
		for (uint64_t g = 0; g < vm->n_pages; g++)
			if (to_commit(vm, g, all))
				pt_set_flags(&vm->pt, g, PT_FORCE, 0);
		return log_oom();
	}
	for (uint64_t g = 0; g < vm->n_pages; g++) {
		if (!to_commit(vm, g, all))
			continue;
		vm->copies[n] = (struct page_copy_item){ .dst = vm->stage + n * PM_PAGE_SIZE,
							 .src = dram_ptr(vm, g) };
		vm->pages[n] = (struct pm_page){ .gfn = g, .data = vm->stage + n * PM_PAGE_SIZE };
		n++;
	}
	moved = copy_crew_stage(vm->en->crew, vm->copies, n, runs);
	for (size_t i = 0; i < moved; i++)
		for (size_t k = 0; k < runs[i].n; k++)
			vm->pages[runs[i].first + k].data = (uint8_t *)runs[i].dst + k * PM_PAGE_SIZE;
	return n;
}

static int commit_staged(struct vm *vm, uint64_t n)
{
	struct pm_stats before, after;
	uint64_t t0 = now_usec(CLOCK_MONOTONIC);
	int r;

	if (n == 0)
		return 0;
	pm_store_get_stats(vm->en->store, &before);
	r = pm_commit(vm->en->store, vm->dev, vm->epoch + 1, vm->pages, n, NULL, 0);
	if (r < 0) {
		/* the pages stay due: the next boundary tries again */
		for (uint64_t i = 0; i < n; i++)
			pt_set_flags(&vm->pt, vm->pages[i].gfn, PT_FORCE, 0);
		return log_error_errno(r, "VM '%s': commit of epoch %" PRIu64 " failed: %m",
				       vm->name, vm->epoch + 1);
	}
	pm_store_get_stats(vm->en->store, &after);
	sample_add(&vm->commit, now_usec(CLOCK_MONOTONIC) - t0);
	vm->log_bytes += after.log_bytes - before.log_bytes;
	vm->epoch++;
	vm->epochs++;
	vm->dirty_pages += n;
	for (uint64_t i = 0; i < n; i++)
		pt_set_flags(&vm->pt, vm->pages[i].gfn, PT_COMMITTED, PT_DIRTY | PT_FORCE);
	return 0;
}

/*
 * Copy write-protected DRAM pages (committed) into PM frames, one batch for the store, and map
 * them there read-only; when the pool runs out of frames, a checkpoint frees the superseded
 * ones and the rest go in a second batch. Returns how many of gfns moved (from the first).
 */
static uint64_t demote_pages(struct vm *vm, const uint64_t *gfns, uint64_t n, int *ret_error)
{
	struct engine *en = vm->en;
	uint64_t done = 0;
	int r = 0;

	for (int attempt = 0; attempt < 2 && done < n; attempt++) {
		for (uint64_t i = done; i < n; i++)
			vm->data[i] = dram_ptr(vm, gfns[i]);
		if (attempt)
			(void)pm_checkpoint(en->store); /* superseded frames go at a checkpoint */
		r = pm_frames_demote(en->store, vm->dev, vm->epoch, n - done, gfns + done,
				     vm->data + done, vm->frames + done);
		if (r < 0)
			break;
		done += (uint64_t)r;
		r = done < n ? -ENOSPC : 0;
	}
	for (uint64_t i = 0; i < done; i++) {
		place_pm(vm, gfns[i], vm->frames[i]);
		if (vm->n_punch < vm->n_pages)
			vm->punch[vm->n_punch++] = gfns[i];
	}
	vm->demotions += done;
	vm->migrated_bytes += done * PM_PAGE_SIZE;
	vm->frame_bytes += done * PM_PAGE_SIZE;
	*ret_error = r;
	return done;
}

/* The victims write-protected at the pause move to PM. */
static void demote_victims(struct vm *vm)
{
	uint64_t t0 = now_usec(CLOCK_MONOTONIC), n = vm->n_cand, done;
	int r;

	done = demote_pages(vm, vm->cand, n, &r);
	/* what did not move stays in DRAM, writable again */
	for (uint64_t i = done; i < n; i++)
		place_dram(vm, vm->cand[i], PT_COMMITTED);
	vm->n_cand = 0;
	(void)flush_maps(vm);
	if (done >= BATCH_MIN_PAGES) {
		vm->batches++;
		vm->batch_bytes += done * PM_PAGE_SIZE;
		vm->batch_usec += now_usec(CLOCK_MONOTONIC) - t0;
	}
	if (done < n)
		log_warning_errno(r, "VM '%s': %" PRIu64 " pages could not move to PM: %m", vm->name,
				  n - done);
}

/*
 * In hint mode a DRAM page may hold stores no commit has seen, so a victim goes into the
 * boundary's commit: its frame then gets a version newer than any the frame held.
 */
static void take_victim(struct vm *vm, uint64_t g)
{
	pt_set_flags(&vm->pt, g, vm->mode == VM_MODE_HINT ? PT_FORCE : 0, PT_WRITABLE);
	queue_map(vm, g, BACKEND_DRAM, g, false);
	vm->cand[vm->n_cand++] = g;
}

/* The victims stay in DRAM, writable again, and due for the next commit. */
static void restore_victims(struct vm *vm)
{
	for (uint64_t i = 0; i < vm->n_cand; i++)
		place_dram(vm, vm->cand[i], PT_FORCE);
	vm->n_cand = 0;
	(void)flush_maps(vm);
}

/*
 * With the VM paused: choose want DRAM pages to demote and write-protect them, so their DRAM
 * copy stays what the commit under way makes durable. The coldest first, from the ranking
 * the policy made at the last boundary, skipping pages written in this epoch; if that is not
 * enough, any DRAM page (the commit under way takes a dirty one's content).
 */
static void choose_victims(struct vm *vm, uint64_t want)
{
	vm->n_cand = 0;
	vm->map_failed = false;
	for (uint64_t i = 0; i < vm->n_rank && vm->n_cand < want; i++) {
		uint64_t g = vm->rank[i];

		if (pt_tier(&vm->pt, g) == PT_TIER_DRAM && pt_test(&vm->pt, g, PT_WRITABLE) &&
		    !bit_test(vm->dirty, g))
			take_victim(vm, g);
	}
	for (uint64_t g = 0; g < vm->n_pages && vm->n_cand < want; g++)
		if (pt_tier(&vm->pt, g) == PT_TIER_DRAM && pt_test(&vm->pt, g, PT_WRITABLE))
			take_victim(vm, g);
	(void)flush_maps(vm);
	if (vm->map_failed) {
		/* some may still be writable: copied to PM, a later write would be lost */
		log_warning("VM '%s': %" PRIu64 " pages stay in DRAM this epoch", vm->name,
			    vm->n_cand);
		restore_victims(vm);
	}
}

static void promote_one(struct vm *vm, uint64_t g, uint64_t flags)
{
	memcpy(dram_ptr(vm, g), pm_frame_ptr(vm->en, pt_frame(&vm->pt, g)), PM_PAGE_SIZE);
	place_dram(vm, g, flags);
	vm->promotions++;
	vm->migrated_bytes += PM_PAGE_SIZE;
}

/* Promoted for the policy's sake: its frame goes once the forced commit supersedes it. */
static void promote_picked(struct vm *vm, uint64_t g)
{
	promote_one(vm, g, PT_FORCE);
	policy_promoted(&vm->policy, g);
}

/* The n hottest PM pages to DRAM: the VM holds more PM pages than its pm_target. */
static void promote_hottest(struct vm *vm, uint64_t n)
{
	n = policy_pick_promotions(&vm->policy, &vm->pt, n, vm->pick);
	for (uint64_t i = 0; i < n; i++)
		promote_picked(vm, vm->pick[i]);
	(void)flush_maps(vm);
}

/*
 * After a boundary's demotions: rank the DRAM pages for the next pause, note whether the VM
 * meets its ratio, and move PM pages to DRAM when the VM holds more PM pages than its
 * pm_target (the ratio went up), or, for a policy that swaps, PM pages hotter than the
 * coldest DRAM pages (the next pause demotes as many of the coldest).
 */
static void plan_migrations(struct vm *vm)
{
	uint64_t dram = dram_pages(vm), pm = pm_pages(vm);
	uint64_t over = dram > vm->dram_share ? dram - vm->dram_share : 0;
	uint64_t under = pm > vm->pm_target ? pm - vm->pm_target : 0;
	uint64_t n, k = 0;

	policy_boundary(&vm->policy, &vm->pt);
	vm->n_rank = policy_pick_demotions(&vm->policy, &vm->pt, dram, vm->rank);
	if (under)
		promote_hottest(vm, take_tokens(vm, under));
	pm = pm_pages(vm);
	under = pm > vm->pm_target ? pm - vm->pm_target : 0;
	vm->migrating = over + under;
	vm->converged = vm->migrating == 0;
	vm->boundary_dram = dram_pages(vm);
	vm->boundary_pm = pm;
	if (!vm->converged || !policy_swaps(&vm->policy) || pm == 0 || vm->n_rank == 0)
		return;
	/* a few swaps per epoch: the hottest PM pages against the coldest DRAM pages */
	n = MIN(MIN(pm, vm->n_rank), MAX(vm->n_pages / 64, 1));
	n = policy_pick_promotions(&vm->policy, &vm->pt, n, vm->pick);
	while (k < n && policy_prefers(&vm->policy, &vm->pt, vm->pick[k], vm->rank[k]))
		k++;
	k = MIN(take_tokens(vm, 2 * k) / 2, vm->headroom);
	for (uint64_t i = 0; i < k; i++)
		promote_picked(vm, vm->pick[i]);
	(void)flush_maps(vm);
}

/*
 * The accessed bits of a sample (in vm->sample) count for the frequency and the epoch, and
 * for the policy; a boundary's harvest (not timed) gives it the epoch's dirty bits too.
 */
static void account_accesses(struct vm *vm, bool timed)
{
	pt_sample_accessed(&vm->pt, vm->sample, timed);
	(void)policy_observe(&vm->policy, &vm->pt, vm->sample, timed ? NULL : vm->dirty,
			     now_usec(CLOCK_MONOTONIC));
	for (uint64_t w = 0; w < vm->words; w++)
		vm->accessed[w] |= vm->sample[w];
}

/* With the VM paused (or its guest gone): collect and clear its dirty and accessed bits. */
static void harvest_paused(struct vm *vm)
{
	memset(vm->dirty, 0, vm->words * 8);
	memset(vm->sample, 0, vm->words * 8);
	vm->b->ops->harvest(vm->b, vm->dirty, vm->sample);
	account_accesses(vm, false);
}

/* The epoch's access and dirty bits enter the page histories; the next epoch starts empty. */
static void close_epoch_history(struct vm *vm)
{
	pt_epoch_shift(&vm->pt, vm->dirty, vm->accessed);
	memset(vm->accessed, 0, vm->words * 8);
}

/*
 * Between boundaries the accessed bits are sampled several times (no pause: they are hints),
 * so that the policy tells pages touched in every epoch apart by how often they are touched.
 */
static int on_sample(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct vm *vm = userdata;

	(void)usec;
	if (vm->mode != VM_MODE_NATIVE) {
		memset(vm->sample, 0, vm->words * 8);
		vm->b->ops->sample_accessed(vm->b, vm->sample);
		account_accesses(vm, true);
	}
	return sd_event_source_set_time_relative(s, MAX(vm_epoch_usec(vm) / SAMPLES_PER_EPOCH,
							 USEC_PER_MSEC));
}

/*
 * One epoch boundary (DESIGN.md, "Epoch protocol"): pause, harvest, stage, choose and
 * write-protect the pages to demote, resume, commit; then demote them and plan the next
 * migrations. Regular boundaries demote at most what the migration rate allows; an early
 * one (a fault found the DRAM headroom used up) demotes down to the DRAM share.
 */
static int epoch_boundary(struct vm *vm, bool early)
{
	const struct backend_ops *ops = vm->b->ops;
	uint64_t t0 = now_usec(CLOCK_MONOTONIC), dram, over;
	int64_t n;
	int r;

	r = ops->pause(vm->b, vm->epoch + 1);
	if (r < 0)
		return log_warning_errno(r, "VM '%s': vCPUs did not stop for epoch %" PRIu64 ": %m",
					 vm->name, vm->epoch + 1);
	r = resync_maps(vm);
	if (r < 0) {
		/* no commit may supersede a frame a vCPU may still read: the next boundary */
		ops->resume(vm->b);
		return r;
	}
	harvest_paused(vm);
	punch_demoted(vm);
	dram = dram_pages(vm);
	over = dram > vm->dram_share ? dram - vm->dram_share : 0;
	choose_victims(vm, early ? over : take_tokens(vm, over));
	n = stage_pages(vm, false);
	if (n < 0)
		restore_victims(vm); /* nothing is committed: nothing may move */
	ops->resume(vm->b);
	sample_add(&vm->pause, now_usec(CLOCK_MONOTONIC) - t0);
	close_epoch_history(vm);
	if (n < 0)
		return (int)n;
	if (vm->mode == VM_MODE_EPOCH)
		vm->last_dirty = (uint64_t)n;
	r = commit_staged(vm, (uint64_t)n);
	if (r < 0) {
		restore_victims(vm);
		return r;
	}
	demote_victims(vm);
	plan_migrations(vm);
	if (early)
		vm->early_epochs++;
	return 0;
}

/*
 * A VM whose vCPUs did not stop for a pause is not paused again at once: the next attempts
 * back off (0.2 s, doubling, at most 6.4 s), so a stuck guest cannot take vpmd's time.
 */
static int on_epoch(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct vm *vm = userdata;
	uint64_t now = now_usec(CLOCK_MONOTONIC);

	(void)usec;
	if (vm->mode != VM_MODE_NATIVE && now >= vm->pause_backoff_until) {
		if (epoch_boundary(vm, false) == -ETIMEDOUT) {
			vm->pause_failures = MIN(vm->pause_failures + 1, 6u);
			vm->pause_backoff_until = now + (100 * USEC_PER_MSEC << vm->pause_failures);
		} else {
			vm->pause_failures = 0;
		}
	}
	return sd_event_source_set_time_relative(s, vm_epoch_usec(vm));
}

/* ---- faults ----------------------------------------------------------------------------- */

/* A DRAM frame for a page about to enter DRAM: within the share and headroom. */
static int make_dram_room(struct vm *vm)
{
	if (dram_pages(vm) < vm->dram_share + vm->headroom)
		return 0;
	(void)epoch_boundary(vm, true);
	return dram_pages(vm) < vm->dram_share + vm->headroom ? 0 : -ENOMEM;
}

/* The committed content of a page with no frame: into its DRAM frame, or a new PM frame. */
static int first_touch(struct vm *vm, uint64_t g, bool write)
{
	struct engine *en = vm->en;
	uint8_t buf[PM_PAGE_SIZE];
	uint64_t f;
	int r;

	if (vm->mode != VM_MODE_NATIVE && (write || dram_pages(vm) < vm->dram_share)) {
		r = make_dram_room(vm);
		if (r < 0)
			return r;
		r = pm_device_read_page(en->store, vm->dev, g, dram_ptr(vm, g));
		if (r < 0)
			return r;
		place_dram(vm, g, PT_COMMITTED);
		return 0;
	}
	r = pm_device_read_page(en->store, vm->dev, g, buf);
	if (r < 0)
		return r;
	r = pm_frame_demote(en->store, vm->dev, g, vm->epoch, buf, &f);
	if (r < 0)
		return r;
	vm->frame_bytes += PM_PAGE_SIZE;
	pt_set_flags(&vm->pt, g, PT_HOME_PM, 0);
	place_pm(vm, g, f);
	return 0;
}

/*
 * A page promoted for a write in hint mode may never be committed (unhinted stores need not
 * be), and its old frame would stay: it goes into the next commit, which frees the frame.
 */
static uint64_t promote_flags(const struct vm *vm)
{
	return vm->mode == VM_MODE_HINT ? PT_FORCE : 0;
}

static int resolve_fault(struct vm *vm, uint64_t g, bool write)
{
	enum pt_tier tier = pt_tier(&vm->pt, g);
	uint64_t f;
	int r;

	vm->faults++;
	if (tier == PT_TIER_DRAM) {
		/* a candidate whose demotion failed, or a race with another vCPU's fault */
		if (write && !pt_test(&vm->pt, g, PT_WRITABLE))
			place_dram(vm, g, PT_COMMITTED);
		else /* a remap that failed: the hypervisor does not map it as we do */
			queue_table_map(vm, g);
		return flush_maps(vm);
	}
	if (tier == PT_TIER_PM) {
		if (!write || pt_test(&vm->pt, g, PT_WRITABLE)) {
			queue_table_map(vm, g); /* as above */
			return flush_maps(vm);
		}
		r = make_dram_room(vm);
		if (r < 0)
			return r;
		if (pt_tier(&vm->pt, g) == PT_TIER_PM)
			promote_one(vm, g, promote_flags(vm));
		return flush_maps(vm);
	}
	if (vm->stale_reads) {
		/* a discarded page comes back: its committed version may still be in the log */
		r = pm_checkpoint(vm->en->store);
		if (r < 0)
			return r;
		vm->stale_reads = false;
	}
	if (pm_frame_lookup(vm->en->store, vm->dev, g, &f) == 0) {
		/* a frame from an earlier run or a detached life of the device */
		place_pm(vm, g, f);
		if (write && !pm_writable(vm)) {
			r = make_dram_room(vm);
			if (r < 0)
				return r;
			/* the early epoch make_dram_room may have run can have promoted it */
			if (pt_tier(&vm->pt, g) == PT_TIER_PM)
				promote_one(vm, g, promote_flags(vm));
		}
		return flush_maps(vm);
	}
	r = first_touch(vm, g, write);
	if (r < 0)
		return r;
	return flush_maps(vm);
}

/* ---- hints ------------------------------------------------------------------------------ */

/*
 * Hint mode: the named bytes, widened to cachelines, committed before the hint returns
 * (returns 1 then). Other modes: nothing to commit (0).
 */
static int persist_range(struct vm *vm, uint64_t g, uint32_t offset, uint32_t len)
{
	uint32_t start = offset & ~(PM_CACHELINE - 1);
	uint32_t end = ALIGN_UP((uint64_t)offset + len, PM_CACHELINE);
	uint8_t buf[PM_PAGE_SIZE];
	struct pm_range range;
	struct pm_stats before, after;
	int r;

	if (vm->mode == VM_MODE_NATIVE) {
		/* in place on its PM frame: flush it there */
		if (pt_tier(&vm->pt, g) == PT_TIER_PM)
			pmem2_get_persist_fn(vm->en->pool->map)(
				pm_frame_ptr(vm->en, pt_frame(&vm->pt, g)) + start, end - start);
		return 0;
	}
	if (vm->mode != VM_MODE_HINT || pt_tier(&vm->pt, g) != PT_TIER_DRAM)
		return 0; /* epoch mode: durable at the boundary; PM frames hold committed data */
	/* a private copy: other vCPUs may store to the page while the log record is written */
	memcpy(buf, dram_ptr(vm, g) + start, end - start);
	range = (struct pm_range){ .gfn = g, .offset = start, .length = end - start, .data = buf };
	pm_store_get_stats(vm->en->store, &before);
	r = pm_commit(vm->en->store, vm->dev, vm->epoch + 1, NULL, 0, &range, 1);
	if (r < 0)
		return log_error_errno(r, "VM '%s': persist hint for page %" PRIu64 " failed: %m",
				       vm->name, g);
	pm_store_get_stats(vm->en->store, &after);
	vm->log_bytes += after.log_bytes - before.log_bytes;
	vm->epoch++;
	return 1; /* the guest's hint made vpmd commit: the guest may account for that */
}

/* A whole page the guest discarded leaves DRAM; its committed version stays durable. */
static int discard_range(struct vm *vm, uint64_t g, uint32_t offset, uint32_t len)
{
	if (offset != 0 || len != PM_PAGE_SIZE || pt_tier(&vm->pt, g) != PT_TIER_DRAM ||
	    vm->mode == VM_MODE_NATIVE || vm->b->ops->maps_all)
		return 0;
	pt_place(&vm->pt, g, PT_TIER_NONE, 0, 0);
	queue_map(vm, g, BACKEND_UNMAPPED, 0, false);
	vm->stale_reads = true;
	if (vm->n_punch < vm->n_pages)
		vm->punch[vm->n_punch++] = g;
	return flush_maps(vm);
}

void engine_vm_event(struct vm *vm, const struct backend_event *ev)
{
	int r;

	if (ev->gfn >= vm->n_pages || ev->offset >= PM_PAGE_SIZE ||
	    ev->len > PM_PAGE_SIZE - ev->offset) {
		r = -ERANGE;
	} else {
		switch (ev->type) {
		case BACKEND_EVENT_FAULT:
			r = resolve_fault(vm, ev->gfn, ev->write);
			break;
		case BACKEND_EVENT_PERSIST:
			vm->hints_persist++;
			vm->hint_bytes += ev->len;
			r = persist_range(vm, ev->gfn, ev->offset, ev->len);
			break;
		case BACKEND_EVENT_DISCARD:
			vm->hints_discard++;
			r = discard_range(vm, ev->gfn, ev->offset, ev->len);
			break;
		default:
			r = -EINVAL;
		}
	}
	(void)vm->b->ops->complete(vm->b, ev, r);
}

/* ---- modes ------------------------------------------------------------------------------ */

/*
 * Switch a VM's mode, paused: everything in DRAM is committed first (so a page's durable
 * version is its current content), then native puts every DRAM page on a writable PM frame,
 * and leaving native makes the PM frames read-only again.
 */
static int switch_mode(struct vm *vm, enum vm_mode mode)
{
	const struct backend_ops *ops = vm->b->ops;
	enum vm_mode old = vm->mode;
	int64_t n;
	int r;

	r = ops->pause(vm->b, vm->epoch + 1);
	if (r < 0)
		return r;
	r = resync_maps(vm);
	if (r < 0) {
		ops->resume(vm->b);
		return r;
	}
	harvest_paused(vm);
	punch_demoted(vm);
	n = stage_pages(vm, true);
	close_epoch_history(vm);
	r = n < 0 ? (int)n : commit_staged(vm, (uint64_t)n);
	if (r < 0)
		goto out;
	vm->n_cand = 0;
	if (mode == VM_MODE_NATIVE) {
		/* every DRAM page (committed now) onto a PM frame, read-only for now */
		uint64_t k = 0;

		for (uint64_t g = 0; g < vm->n_pages; g++)
			if (pt_tier(&vm->pt, g) == PT_TIER_DRAM)
				vm->pick[k++] = g;
		if (demote_pages(vm, vm->pick, k, &r) < k)
			log_error_errno(r, "VM '%s': not every page can move to PM, it stays in "
					   "mode %s: %m",
					vm->name, vm_mode_to_string(old));
	}
	if (r >= 0)
		vm->mode = mode;
	/* PM frames writable as the mode (old or new) says */
	for (uint64_t g = 0; g < vm->n_pages; g++)
		if (pt_tier(&vm->pt, g) == PT_TIER_PM)
			place_pm(vm, g, pt_frame(&vm->pt, g));
	(void)flush_maps(vm);
	punch_demoted(vm); /* paused: no vCPU holds the old mappings */
out:
	ops->resume(vm->b);
	return r;
}

/* ---- settings --------------------------------------------------------------------------- */

static void oracle_weight_free(struct vm *vm)
{
	vm->oracle = workload_free(vm->oracle);
	vm->policy.weight = NULL;
	vm->policy.weight_data = NULL;
}

static double oracle_weight(void *userdata, uint64_t gfn)
{
	return workload_page_weight(userdata, gfn);
}

/* The oracle knows the workload a simulated guest runs; other guests have no oracle. */
static int set_policy(struct vm *vm, enum policy_kind kind, char *errbuf, size_t errlen)
{
	if (kind == POLICY_ORACLE && !vm->oracle) {
		struct workload_params p = { .kind = vm->b->wl_kind, .n_pages = vm->n_pages,
					     .theta = vm->b->wl_theta,
					     .write_pct = vm->b->wl_write_pct,
					     .seed = vm->b->wl_seed };

		if (!vm->b->has_workload || workload_new(&p, &vm->oracle) < 0) {
			snprintf(errbuf, errlen,
				 "VM '%s' cannot use the oracle policy: vpmd does not know its "
				 "workload (only simulated guests tell it)",
				 vm->name);
			return -EINVAL;
		}
	}
	vm->policy.kind = kind;
	if (kind == POLICY_ORACLE) {
		vm->policy.weight = oracle_weight;
		vm->policy.weight_data = vm->oracle;
	}
	return 0;
}

static int vm_settings_path(struct vm *vm, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/vms/%s.json", vm->en->state_dir, vm->name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* An operator's settings survive vpmd restarts: <state_dir>/vms/NAME.json, replaced whole. */
static int save_settings(struct vm *vm)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	char path[PATH_MAX], tmp[PATH_MAX + 8], dir[PATH_MAX];
	const char *text;
	_cleanup_close_ int fd = -1;
	int r = 0;

	if (!o)
		return -ENOMEM;
	r |= json_add(o, "ratio", json_object_new_double(vm->ratio));
	r |= json_add(o, "mode", json_object_new_string(vm_mode_to_string(vm->mode)));
	r |= json_add(o, "policy", json_object_new_string(policy_kind_to_string(vm->policy.kind)));
	r |= json_add(o, "priority", json_object_new_int(vm->priority));
	if (vm->epoch_usec)
		r |= json_add(o, "epoch_interval_usec", json_object_new_uint64(vm->epoch_usec));
	if (r)
		return -ENOMEM;
	snprintf(dir, sizeof(dir), "%s/vms", vm->en->state_dir);
	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		return -errno;
	if (vm_settings_path(vm, path, sizeof(path)) < 0)
		return -ENAMETOOLONG;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0)
		return -errno;
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text) || fsync(fd) < 0)
		return errno ? -errno : -EIO;
	if (rename(tmp, path) < 0)
		return -errno;
	return 0;
}

/* Saved settings override the guest's own; a damaged file is reported and ignored. */
static void load_settings(struct vm *vm, double *ratio, int *mode, int *policy, int *priority,
			  uint64_t *epoch_usec)
{
	_cleanup_json_ struct json_object *o = NULL;
	struct json_object *v;
	char path[PATH_MAX];

	if (vm_settings_path(vm, path, sizeof(path)) < 0 || access(path, F_OK) < 0)
		return;
	o = json_object_from_file(path);
	if (!o || !json_object_is_type(o, json_type_object)) {
		log_warning("VM '%s': ignoring unreadable settings in '%s'", vm->name, path);
		return;
	}
	if (json_object_object_get_ex(o, "ratio", &v) &&
	    ratio_valid(json_object_get_double(v)))
		*ratio = json_object_get_double(v);
	if (json_object_object_get_ex(o, "mode", &v) && json_object_is_type(v, json_type_string) &&
	    vm_mode_from_string(json_object_get_string(v)) >= 0)
		*mode = vm_mode_from_string(json_object_get_string(v));
	if (json_object_object_get_ex(o, "policy", &v) && json_object_is_type(v, json_type_string) &&
	    policy_kind_from_string(json_object_get_string(v)) >= 0)
		*policy = policy_kind_from_string(json_object_get_string(v));
	if (json_object_object_get_ex(o, "priority", &v) && json_object_is_type(v, json_type_int) &&
	    json_object_get_int(v) >= 0 && json_object_get_int(v) <= 100)
		*priority = json_object_get_int(v);
	if (json_object_object_get_ex(o, "epoch_interval_usec", &v) &&
	    json_object_is_type(v, json_type_int) && epoch_usec_valid(json_object_get_uint64(v)))
		*epoch_usec = json_object_get_uint64(v);
}

/* Settings kept outside vpmd (libvirt's metadata) win over saved ones and the guest's own. */
static void external_settings(struct vm *vm, double *ratio, int *mode, int *policy,
			      int *priority, uint64_t *epoch_usec)
{
	struct engine_settings s = { .mode = -1, .policy = -1, .priority = -1 };

	if (!vm->en->settings_fn || !vm->en->settings_fn(vm->en->settings_data, vm->name, &s))
		return;
	if (s.set_ratio && ratio_valid(s.ratio))
		*ratio = s.ratio;
	if (s.mode >= 0 && s.mode < _VM_MODE_MAX)
		*mode = s.mode;
	if (s.policy >= 0 && s.policy < _POLICY_MAX)
		*policy = s.policy;
	if (s.priority >= 0 && s.priority <= 100)
		*priority = s.priority;
	if (epoch_usec_valid(s.epoch_usec))
		*epoch_usec = s.epoch_usec;
}

void engine_set_settings_source(struct engine *en, engine_settings_fn fn, void *userdata)
{
	en->settings_fn = fn;
	en->settings_data = userdata;
}

/* ---- admission control ------------------------------------------------------------------ */

struct plan {
	struct vm *vm;    /* NULL: a VM being attached */
	const char *name; /* ... named this */
	uint64_t n_pages;
	uint64_t pm_target, dram_share, headroom;
};

static int check_commit_fits(struct engine *en, const char *name, const struct plan *p,
			     char *errbuf, size_t errlen)
{
	uint64_t max = pm_commit_max_pages(en->store), want = p->dram_share + p->headroom;
	char a[32];

	if (want <= max)
		return 0;
	snprintf(errbuf, errlen,
		 "VM '%s' could hold %" PRIu64 " pages in DRAM at that ratio (share and write "
		 "headroom), more than one epoch can commit to the log of pool '%s' (%" PRIu64
		 " pages, half its %s log): %" PRIu64 " short; lower the ratio or format the pool "
		 "with a larger --log-size",
		 name, want, en->pool->config.name, max,
		 format_bytes(a, sizeof(a), pm_log_size(en->store)), want - max);
	return -ENOSPC;
}

static uint64_t frame_reserve(struct engine *en)
{
	return pm_frames_total(en->store) / 32 + MIN_HEADROOM;
}

/*
 * Whether the VMs fit with the planned changes: every VM's pm_target within the pool's frames
 * (less those devices without a running VM hold, and a reserve for frames awaiting their
 * checkpoint), every VM's DRAM share and headroom within dram_budget.
 */
static int check_fit(struct engine *en, const struct plan *plans, size_t n_plans, char *errbuf,
		     size_t errlen)
{
	uint64_t total = pm_frames_total(en->store), used = total - pm_frames_free(en->store);
	uint64_t held = 0, pm = 0, dram = 0, unattached, avail;
	char a[32], b[32];

	for (struct vm *vm = en->vms; vm; vm = vm->next) {
		const struct plan *p = NULL;

		held += pm_device_frames(en->store, vm->dev);
		for (size_t i = 0; i < n_plans; i++)
			if (plans[i].vm == vm)
				p = &plans[i];
		pm += p ? p->pm_target : vm->pm_target;
		dram += p ? p->dram_share + p->headroom : vm->dram_share + vm->headroom;
	}
	for (size_t i = 0; i < n_plans; i++) {
		int r = check_commit_fits(en, plans[i].vm ? plans[i].vm->name : plans[i].name,
					  &plans[i], errbuf, errlen);

		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < n_plans; i++)
		if (!plans[i].vm) {
			unsigned dev;

			/* a VM attaching again: the frames its device holds are its own */
			if (pm_device_find(en->store, plans[i].name, &dev) == 0)
				held += pm_device_frames(en->store, dev);
			pm += plans[i].pm_target;
			dram += plans[i].dram_share + plans[i].headroom;
		}
	for (struct reservation *rv = en->resv; rv; rv = rv->next) {
		bool planned = false;
		unsigned dev;

		for (size_t i = 0; i < n_plans; i++)
			planned |= !plans[i].vm && streq(plans[i].name, rv->name);
		if (planned || find_vm(en, rv->name))
			continue; /* the VM itself is counted */
		/* a VM about to start again: the frames its device holds are its own */
		if (pm_device_find(en->store, rv->name, &dev) == 0)
			held += pm_device_frames(en->store, dev);
		pm += rv->pm_target;
		dram += rv->dram;
	}
	unattached = used > held ? used - held : 0;
	avail = total > unattached + frame_reserve(en) ? total - unattached - frame_reserve(en) : 0;
	if (pm > avail) {
		snprintf(errbuf, errlen,
			 "the VMs would need %" PRIu64 " PM frames (%s) but pool '%s' can give "
			 "%" PRIu64 " (%s; %" PRIu64 " held by devices without a running VM, %" PRIu64
			 " reserved): %" PRIu64 " short; raise a ratio or use a larger pool",
			 pm, format_bytes(a, sizeof(a), pm * PM_PAGE_SIZE), en->pool->config.name,
			 avail, format_bytes(b, sizeof(b), avail * PM_PAGE_SIZE), unattached,
			 frame_reserve(en), pm - avail);
		return -ENOSPC;
	}
	if (dram > en->dram_budget_pages) {
		snprintf(errbuf, errlen,
			 "the VMs would need %" PRIu64 " DRAM pages (%s, shares and write headroom) "
			 "but dram_budget allows %" PRIu64 " (%s): %" PRIu64 " short; lower a ratio "
			 "or raise dram_budget",
			 dram, format_bytes(a, sizeof(a), dram * PM_PAGE_SIZE), en->dram_budget_pages,
			 format_bytes(b, sizeof(b), en->dram_budget_pages * PM_PAGE_SIZE),
			 dram - en->dram_budget_pages);
		return -ENOSPC;
	}
	return 0;
}

static void apply_targets(struct vm *vm)
{
	targets(vm->n_pages, vm->ratio, vm->mode, &vm->pm_target, &vm->dram_share, &vm->headroom);
	/* until the next boundary says so; native has none, and the switch put all on PM */
	vm->converged = vm->mode == VM_MODE_NATIVE && dram_pages(vm) == 0;
	vm->migrating = vm->mode == VM_MODE_NATIVE ? dram_pages(vm) : 0;
	if (vm->converged) {
		vm->boundary_dram = 0;
		vm->boundary_pm = pm_pages(vm);
	}
}

/* ---- JSON ------------------------------------------------------------------------------- */

static int vm_summary_json(struct vm *vm, struct json_object *o)
{
	struct backend_guest_stats gs = {};
	int r = 0;

	vm->b->ops->guest_stats(vm->b, &gs);
	r |= json_add(o, "name", json_object_new_string(vm->name));
	r |= json_add(o, "backend", json_object_new_string(vm->b->ops->name));
	r |= json_add(o, "mode", json_object_new_string(vm_mode_to_string(vm->mode)));
	r |= json_add(o, "policy", json_object_new_string(policy_kind_to_string(vm->policy.kind)));
	r |= json_add(o, "priority", json_object_new_int(vm->priority));
	r |= json_add(o, "ratio", json_object_new_double(vm->ratio));
	r |= json_add(o, "pages", json_object_new_uint64(vm->n_pages));
	r |= json_add(o, "vcpus", json_object_new_int((int)vm->n_vcpus));
	r |= json_add(o, "dram_pages", json_object_new_uint64(dram_pages(vm)));
	r |= json_add(o, "pm_pages", json_object_new_uint64(pm_pages(vm)));
	r |= json_add(o, "image_pages", json_object_new_uint64(vm->pt.count[PT_TIER_NONE]));
	r |= json_add(o, "pm_target", json_object_new_uint64(vm->pm_target));
	r |= json_add(o, "dram_share", json_object_new_uint64(vm->dram_share));
	r |= json_add(o, "converged", json_object_new_boolean(vm->converged));
	r |= json_add(o, "boundary_dram_pages", json_object_new_uint64(vm->boundary_dram));
	r |= json_add(o, "boundary_pm_pages", json_object_new_uint64(vm->boundary_pm));
	r |= json_add(o, "migrating_pages", json_object_new_uint64(vm->migrating));
	r |= json_add(o, "epoch", json_object_new_uint64(vm->epoch));
	r |= json_add(o, "epochs", json_object_new_uint64(vm->epochs));
	r |= json_add(o, "dirty_pages", json_object_new_uint64(vm->dirty_pages));
	r |= json_add(o, "faults", json_object_new_uint64(vm->faults));
	r |= json_add(o, "promotions", json_object_new_uint64(vm->promotions));
	r |= json_add(o, "demotions", json_object_new_uint64(vm->demotions));
	r |= json_add(o, "pause_usec_max", json_object_new_uint64(vm->pause.max));
	r |= json_add(o, "ops", json_object_new_uint64(gs.ops));
	r |= json_add(o, "page_table_bytes", json_object_new_uint64(pt_bytes(&vm->pt)));
	r |= json_add(o, "stage_bytes", json_object_new_uint64(vm->stage_ready * PM_PAGE_SIZE));
	return r ? -ENOMEM : 0;
}

static struct json_object *vm_stats_json(struct vm *vm)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	struct json_object *pages = json_object_new_object(), *pause = json_object_new_object(),
			   *dirty = json_object_new_object(), *mig = json_object_new_object(),
			   *hints = json_object_new_object();
	struct backend_guest_stats gs = {};
	uint64_t now = now_usec(CLOCK_MONOTONIC), wall = MAX(now - vm->attach_usec, 1);
	uint64_t loss = 0;
	int r = 0;

	if (!o || json_add(o, "pages", pages) < 0 || json_add(o, "pause_usec", pause) < 0 ||
	    json_add(o, "dirty_pages_per_epoch", dirty) < 0 || json_add(o, "migrations", mig) < 0 ||
	    json_add(o, "hints", hints) < 0)
		return NULL;
	vm->b->ops->guest_stats(vm->b, &gs);
	if (vm->mode == VM_MODE_EPOCH)
		loss = vm_epoch_usec(vm) + sample_percentile(&vm->commit, 99);
	r |= json_add(pages, "dram", json_object_new_uint64(dram_pages(vm)));
	r |= json_add(pages, "pm", json_object_new_uint64(pm_pages(vm)));
	r |= json_add(pages, "image", json_object_new_uint64(vm->pt.count[PT_TIER_NONE]));
	r |= json_add(o, "epochs", json_object_new_uint64(vm->epochs));
	r |= json_add(o, "early_epochs", json_object_new_uint64(vm->early_epochs));
	r |= json_add(pause, "p50", json_object_new_uint64(sample_percentile(&vm->pause, 50)));
	r |= json_add(pause, "p99", json_object_new_uint64(sample_percentile(&vm->pause, 99)));
	r |= json_add(pause, "max", json_object_new_uint64(vm->pause.max));
	r |= json_add(pause, "samples", json_object_new_uint64(vm->pause.n));
	r |= json_add(dirty, "last", json_object_new_uint64(vm->last_dirty));
	r |= json_add(dirty, "mean", json_object_new_double(
					     vm->epochs ? (double)vm->dirty_pages / vm->epochs : 0));
	r |= json_add(o, "log_bytes", json_object_new_uint64(vm->log_bytes));
	r |= json_add(o, "pm_bytes_written", json_object_new_uint64(vm->log_bytes + vm->frame_bytes));
	r |= json_add(mig, "promotions", json_object_new_uint64(vm->promotions));
	r |= json_add(mig, "demotions", json_object_new_uint64(vm->demotions));
	r |= json_add(mig, "bytes", json_object_new_uint64(vm->migrated_bytes));
	r |= json_add(mig, "batches", json_object_new_uint64(vm->batches));
	r |= json_add(mig, "batch_bytes", json_object_new_uint64(vm->batch_bytes));
	r |= json_add(mig, "batch_usec", json_object_new_uint64(vm->batch_usec));
	r |= json_add(o, "ops", json_object_new_uint64(gs.ops));
	r |= json_add(o, "modeled_ns", json_object_new_uint64(gs.modeled_ns));
	r |= json_add(o, "modeled_ops_per_sec",
		      json_object_new_double(gs.modeled_ns ? (double)gs.ops * vm->n_vcpus * 1e9 /
								     (double)gs.modeled_ns
							   : 0));
	r |= json_add(o, "wall_ops_per_sec",
		      json_object_new_double((double)(gs.ops - MIN(gs.ops, vm->ops_at_attach)) *
					     1e6 / (double)wall));
	r |= json_add(o, "loss_window_usec", json_object_new_uint64(loss));
	r |= json_add(hints, "persist", json_object_new_uint64(vm->hints_persist));
	r |= json_add(hints, "discard", json_object_new_uint64(vm->hints_discard));
	r |= json_add(hints, "persist_bytes", json_object_new_uint64(vm->hint_bytes));
	r |= json_add(o, "faults", json_object_new_uint64(vm->faults));
	r |= json_add(o, "pm_frames_held",
		      json_object_new_uint64(pm_device_frames(vm->en->store, vm->dev)));
	return r ? NULL : TAKE_PTR(o);
}

struct json_object *engine_vms_json(struct engine *en)
{
	_cleanup_json_ struct json_object *a = json_object_new_array();

	if (!a)
		return NULL;
	for (struct vm *vm = en ? en->vms : NULL; vm; vm = vm->next) {
		struct json_object *o = json_object_new_object();

		if (json_append(a, o) < 0 || vm_summary_json(vm, o) < 0)
			return NULL;
	}
	return TAKE_PTR(a);
}

static struct vm *find_vm(struct engine *en, const char *name)
{
	for (struct vm *vm = en ? en->vms : NULL; vm; vm = vm->next)
		if (streq(vm->name, name))
			return vm;
	return NULL;
}

static int no_such_vm(const char *name, char *errbuf, size_t errlen)
{
	char safe[65];

	snprintf(errbuf, errlen, "no VM named '%s'; see 'vpmctl list'",
		 sanitize_text(safe, sizeof(safe), name, 64));
	return -ENOENT;
}

int engine_vm_show(struct engine *en, const char *name, struct json_object **ret, char *errbuf,
		   size_t errlen)
{
	_cleanup_json_ struct json_object *o = NULL;
	struct json_object *v, *dev;
	struct vm *vm = find_vm(en, name);
	char image[PATH_MAX];
	int r = 0;

	if (!vm)
		return no_such_vm(name, errbuf, errlen);
	o = json_object_new_object();
	v = json_object_new_object();
	dev = json_object_new_object();
	if (!o || !v || json_add(v, "device", dev) < 0 || json_add(o, "vm", v) < 0) {
		json_object_put(o ? NULL : v);
		return -ENOMEM;
	}
	if (vm_summary_json(vm, v) < 0 || json_add(v, "stats", vm_stats_json(vm)) < 0)
		return -ENOMEM;
	snprintf(image, sizeof(image), "%s/%s.img", en->image_dir, vm->name);
	r |= json_add(v, "epoch_interval_usec", json_object_new_uint64(vm_epoch_usec(vm)));
	r |= json_add(v, "headroom_pages", json_object_new_uint64(vm->headroom));
	r |= json_add(dev, "pool", json_object_new_string(en->pool->config.name));
	r |= json_add(dev, "index", json_object_new_int((int)vm->dev));
	r |= json_add(dev, "image", json_object_new_string(image));
	if (r)
		return -ENOMEM;
	*ret = TAKE_PTR(o);
	return 0;
}

int engine_stats(struct engine *en, const char *name, struct json_object **ret, char *errbuf,
		 size_t errlen)
{
	_cleanup_json_ struct json_object *o = NULL;
	struct json_object *a, *t;
	uint64_t dram = 0, migrations = 0, log_bytes = 0, pm_bytes = 0;
	struct pm_stats ps = {};
	int r = 0;

	if (name && !find_vm(en, name))
		return no_such_vm(name, errbuf, errlen);
	o = json_object_new_object();
	a = json_object_new_array();
	t = json_object_new_object();
	if (!o || json_add(o, "vms", a) < 0 || json_add(o, "totals", t) < 0)
		return -ENOMEM;
	for (struct vm *vm = en ? en->vms : NULL; vm; vm = vm->next) {
		struct json_object *e = json_object_new_object();

		dram += dram_pages(vm);
		migrations += vm->promotions + vm->demotions;
		log_bytes += vm->log_bytes;
		if (name && !streq(name, vm->name)) {
			json_object_put(e);
			continue;
		}
		if (json_append(a, e) < 0 || json_add(e, "name", json_object_new_string(vm->name)) < 0 ||
		    json_add(e, "mode", json_object_new_string(vm_mode_to_string(vm->mode))) < 0 ||
		    json_add(e, "ratio", json_object_new_double(vm->ratio)) < 0 ||
		    json_add(e, "stats", vm_stats_json(vm)) < 0)
			return -ENOMEM;
	}
	if (en)
		pm_store_get_stats(en->store, &ps);
	pm_bytes = ps.pm_bytes_written;
	r |= json_add(t, "dram_budget_pages", json_object_new_uint64(en ? en->dram_budget_pages : 0));
	r |= json_add(t, "dram_used_pages", json_object_new_uint64(dram));
	r |= json_add(t, "pm_frames_total",
		      json_object_new_uint64(en ? pm_frames_total(en->store) : 0));
	r |= json_add(t, "pm_frames_free", json_object_new_uint64(en ? pm_frames_free(en->store) : 0));
	r |= json_add(t, "log_bytes", json_object_new_uint64(log_bytes));
	r |= json_add(t, "pm_bytes_written", json_object_new_uint64(pm_bytes));
	r |= json_add(t, "migrations", json_object_new_uint64(migrations));
	if (r)
		return -ENOMEM;
	*ret = TAKE_PTR(o);
	return 0;
}

/* ---- changes ---------------------------------------------------------------------------- */

static int apply_settings(struct vm *vm, const struct engine_settings *s, char *errbuf,
			  size_t errlen)
{
	int r;

	if (s->policy >= 0) {
		r = set_policy(vm, (enum policy_kind)s->policy, errbuf, errlen);
		if (r < 0)
			return r;
	}
	if (s->priority >= 0)
		vm->priority = s->priority;
	if (s->reset_epoch && vm->epoch_usec) {
		vm->epoch_usec = 0;
		(void)sd_event_source_set_time_relative(vm->epoch_timer, vm_epoch_usec(vm));
	} else if (epoch_usec_valid(s->epoch_usec) && s->epoch_usec != vm->epoch_usec) {
		vm->epoch_usec = s->epoch_usec;
		(void)sd_event_source_set_time_relative(vm->epoch_timer, vm->epoch_usec);
	}
	if (s->mode >= 0 && (enum vm_mode)s->mode != vm->mode) {
		r = switch_mode(vm, (enum vm_mode)s->mode);
		if (r < 0) {
			snprintf(errbuf, errlen, "VM '%s' could not switch to mode %s: %s", vm->name,
				 vm_mode_to_string((enum vm_mode)s->mode), strerror(-r));
			return r;
		}
	}
	if (vm->mode == VM_MODE_NATIVE)
		vm->ratio = 1.0;
	else if (s->set_ratio)
		vm->ratio = s->ratio;
	apply_targets(vm);
	r = save_settings(vm);
	if (r < 0)
		log_warning_errno(r, "VM '%s': cannot save its settings under '%s': %m", vm->name,
				  vm->en->state_dir);
	log_info("VM '%s': mode %s, ratio %g (%" PRIu64 " PM frames, DRAM share %" PRIu64
		 " pages), policy %s, priority %d, epoch interval %" PRIu64 " ms",
		 vm->name, vm_mode_to_string(vm->mode), vm->ratio, vm->pm_target, vm->dram_share,
		 policy_kind_to_string(vm->policy.kind), vm->priority,
		 vm_epoch_usec(vm) / USEC_PER_MSEC);
	return 0;
}

int engine_vm_set(struct engine *en, const char *name, const struct engine_settings *s,
		  struct json_object **ret, char *errbuf, size_t errlen)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	struct json_object *a = json_object_new_array();
	_cleanup_free_ struct plan *plans = NULL;
	size_t n = 0;
	int r;

	if (!o || json_add(o, "vms", a) < 0) /* o owns a from here on */
		return -ENOMEM;
	if (name && !find_vm(en, name))
		return no_such_vm(name, errbuf, errlen);
	if (s->set_ratio && !ratio_valid(s->ratio)) {
		snprintf(errbuf, errlen, "ratio must be a number from 1 to %d", VPM_RATIO_MAX);
		return -EINVAL;
	}
	for (struct vm *vm = en ? en->vms : NULL; vm; vm = vm->next)
		n++;
	plans = calloc(MAX(n, 1), sizeof(*plans));
	if (!plans)
		return -ENOMEM;
	n = 0;
	for (struct vm *vm = en ? en->vms : NULL; vm; vm = vm->next) {
		enum vm_mode mode = s->mode >= 0 ? (enum vm_mode)s->mode : vm->mode;
		double ratio = mode == VM_MODE_NATIVE ? 1.0 : s->set_ratio ? s->ratio : vm->ratio;

		if (name && !streq(name, vm->name))
			continue;
		if (s->policy == POLICY_ORACLE && !vm->b->has_workload) {
			snprintf(errbuf, errlen,
				 "VM '%s' cannot use the oracle policy: vpmd does not know its "
				 "workload (only simulated guests tell it)",
				 vm->name);
			return -EINVAL;
		}
		plans[n].vm = vm;
		targets(vm->n_pages, ratio, mode, &plans[n].pm_target, &plans[n].dram_share,
			&plans[n].headroom);
		n++;
	}
	r = check_fit(en, plans, n, errbuf, errlen);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_new_object();

		r = apply_settings(plans[i].vm, s, errbuf, errlen);
		if (r < 0)
			return r;
		if (json_append(a, e) < 0 || vm_summary_json(plans[i].vm, e) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(o);
	return 0;
}

/* ---- attach and detach ------------------------------------------------------------------ */

static int find_or_create_device(struct engine *en, struct vm *vm, char *errbuf, size_t errlen)
{
	char image[PATH_MAX];
	struct pm_device_info info = { .name = vm->name, .size_pages = vm->n_pages,
				       .mode = PM_MODE_EPOCH, .image_path = image };
	int r;

	if (pm_device_find(en->store, vm->name, &vm->dev) == 0) {
		if (pm_device_size_pages(en->store, vm->dev) != vm->n_pages) {
			snprintf(errbuf, errlen,
				 "VM '%s' asks for %" PRIu64 " pages but its device in pool '%s' "
				 "has %" PRIu64,
				 vm->name, vm->n_pages, en->pool->config.name,
				 pm_device_size_pages(en->store, vm->dev));
			return -EINVAL;
		}
		return 0;
	}
	snprintf(image, sizeof(image), "%s/%s.img", en->image_dir, vm->name);
	r = pm_device_create(en->store, &info, &vm->dev);
	if (r < 0)
		snprintf(errbuf, errlen, "no device for VM '%s' in pool '%s': %s", vm->name,
			 en->pool->config.name, strerror(-r));
	return r;
}

static int alloc_tables(struct vm *vm)
{
	vm->words = (vm->n_pages + 63) / 64;
	vm->dirty = calloc(vm->words, 8);
	vm->accessed = calloc(vm->words, 8);
	vm->sample = calloc(vm->words, 8);
	vm->cand = calloc(vm->n_pages, sizeof(uint64_t));
	vm->rank = calloc(vm->n_pages, sizeof(uint64_t));
	vm->punch = calloc(vm->n_pages, sizeof(uint64_t));
	vm->pick = calloc(vm->n_pages, sizeof(uint64_t));
	vm->data = calloc(vm->n_pages, sizeof(void *));
	vm->frames = calloc(vm->n_pages, sizeof(uint64_t));
	vm->batch = calloc(MIN(vm->n_pages, 4096), sizeof(*vm->batch));
	if (!vm->dirty || !vm->accessed || !vm->sample || !vm->cand || !vm->rank || !vm->punch ||
	    !vm->pick || !vm->batch || !vm->data || !vm->frames)
		return -ENOMEM;
	return pt_init(&vm->pt, vm->n_pages);
}

static void vm_free(struct vm *vm)
{
	struct vm **p;

	if (!vm)
		return;
	for (p = &vm->en->vms; *p && *p != vm; p = &(*p)->next)
		;
	if (*p)
		*p = vm->next;
	if (vm->b)
		vm->b->vm = NULL;
	sd_event_source_disable_unref(vm->epoch_timer);
	sd_event_source_disable_unref(vm->sample_timer);
	oracle_weight_free(vm);
	policy_done(&vm->policy);
	pt_done(&vm->pt);
	free(vm->dirty);
	free(vm->accessed);
	free(vm->sample);
	free(vm->cand);
	free(vm->rank);
	free(vm->punch);
	free(vm->pick);
	free(vm->data);
	free(vm->frames);
	free(vm->batch);
	copy_crew_quiesce(vm->en->crew); /* a late copy thread may still use these */
	if (vm->stage)
		munmap(vm->stage, vm->n_pages * PM_PAGE_SIZE);
	free(vm->pages);
	free(vm->copies);
	free(vm);
}

/*
 * A backend without absent-page faults (maps_all): every page gets its frame now, as a first
 * touch would give it (its committed content; DRAM while within the share, else PM).
 */
static int map_every_page(struct vm *vm)
{
	uint64_t f;
	int r;

	for (uint64_t g = 0; g < vm->n_pages; g++) {
		if (pt_tier(&vm->pt, g) != PT_TIER_NONE)
			continue;
		if (pm_frame_lookup(vm->en->store, vm->dev, g, &f) == 0) {
			place_pm(vm, g, f);
			continue;
		}
		r = first_touch(vm, g, false);
		if (r < 0)
			return r;
	}
	return flush_maps(vm);
}

/*
 * A guest vpmd did not start (it ran on while vpmd restarted): take over the mappings it runs
 * on. A DRAM page is committed at the first boundary (it may hold writes of the epoch vpmd
 * lost, or of the time vpmd was away); a PM page stays if the store says its frame is the
 * page's, and otherwise gets its committed content in DRAM.
 */
static int adopt_mappings(struct vm *vm)
{
	const struct backend_ops *ops = vm->b->ops;
	uint64_t dram = 0, pm = 0, moved = 0;
	int r;

	r = ops->pause(vm->b, vm->epoch + 1);
	if (r < 0)
		return r;
	for (uint64_t g = 0; g < vm->n_pages && r >= 0; g++) {
		struct backend_map m;
		uint64_t f;

		ops->lookup(vm->b, g, &m);
		if (m.tier == BACKEND_DRAM && m.frame == g) {
			place_dram(vm, g, PT_FORCE);
			dram++;
		} else if (m.tier == BACKEND_PM &&
			   pm_frame_lookup(vm->en->store, vm->dev, g, &f) == 0 && f == m.frame) {
			place_pm(vm, g, f);
			pm++;
		} else if (m.tier != BACKEND_UNMAPPED) {
			r = pm_device_read_page(vm->en->store, vm->dev, g, dram_ptr(vm, g));
			if (r >= 0)
				place_dram(vm, g, PT_COMMITTED);
			moved++;
		}
	}
	if (r >= 0)
		r = flush_maps(vm);
	/* pages the guest ran on no frame of vpmd's get theirs before it runs again */
	if (r >= 0 && ops->maps_all && !vm->b->finished)
		r = map_every_page(vm);
	ops->resume(vm->b);
	if (r < 0)
		return r;
	log_info("VM '%s' adopted: %" PRIu64 " DRAM pages (to commit), %" PRIu64 " PM pages, "
		 "%" PRIu64 " remapped to their committed content",
		 vm->name, dram, pm, moved);
	return 0;
}

int engine_vm_attach(struct engine *en, struct backend_vm *b, char *errbuf, size_t errlen)
{
	struct vm *vm;
	double ratio = b->ratio > 0 ? b->ratio : en->default_ratio;
	int mode = b->mode[0] ? vm_mode_from_string(b->mode) : VM_MODE_EPOCH;
	int policy = b->policy[0] ? policy_kind_from_string(b->policy) : POLICY_VPM;
	int priority = 50, r;
	struct plan plan = { .name = b->name };

	if (find_vm(en, b->name)) {
		snprintf(errbuf, errlen, "a VM named '%s' is attached already", b->name);
		return -EEXIST;
	}
	if (mode < 0 || policy < 0 || !ratio_valid(ratio)) {
		snprintf(errbuf, errlen, "VM '%s' asks for mode '%s', policy '%s', ratio %g: not "
					 "all are known",
			 b->name, b->mode, b->policy, ratio);
		return -EINVAL;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->en = en;
	vm->b = b;
	snprintf(vm->name, sizeof(vm->name), "%s", b->name);
	vm->n_pages = b->n_pages;
	vm->n_vcpus = b->n_vcpus;
	vm->policy.rng = 0x9e3779b97f4a7c15 ^ b->n_pages;
	load_settings(vm, &ratio, &mode, &policy, &priority, &vm->epoch_usec);
	external_settings(vm, &ratio, &mode, &policy, &priority, &vm->epoch_usec);
	vm->mode = (enum vm_mode)mode;
	vm->ratio = vm->mode == VM_MODE_NATIVE ? 1.0 : ratio;
	vm->priority = priority;
	targets(vm->n_pages, vm->ratio, vm->mode, &plan.pm_target, &plan.dram_share,
		&plan.headroom);
	r = check_fit(en, &plan, 1, errbuf, errlen);
	if (r < 0) {
		free(vm);
		return r;
	}
	vm->next = en->vms;
	en->vms = vm;
	b->vm = vm;
	apply_targets(vm);
	r = alloc_tables(vm);
	if (r < 0) {
		snprintf(errbuf, errlen, "out of memory for VM '%s'", vm->name);
		goto fail;
	}
	r = set_policy(vm, (enum policy_kind)policy, errbuf, errlen);
	if (r < 0)
		goto fail;
	r = find_or_create_device(en, vm, errbuf, errlen);
	if (r < 0)
		goto fail;
	/*
	 * First touches read frames and images: a device's earlier life may have commits that
	 * no checkpoint applied yet (a guest back within a second).
	 */
	r = pm_checkpoint(en->store);
	if (r < 0) {
		snprintf(errbuf, errlen, "checkpoint of pool '%s' failed: %s", en->pool->config.name,
			 strerror(-r));
		goto fail;
	}
	vm->epoch = pm_device_last_epoch(en->store, vm->dev);
	if (b->reattached) {
		r = adopt_mappings(vm);
		if (r < 0) {
			snprintf(errbuf, errlen, "cannot adopt the mappings of VM '%s': %s",
				 vm->name, strerror(-r));
			goto fail;
		}
		if (vm->mode == VM_MODE_NATIVE && dram_pages(vm) > 0)
			(void)switch_mode(vm, VM_MODE_NATIVE);
	}
	if (!b->reattached && b->ops->maps_all) {
		/* held: a vCPU must not see a page change under it */
		r = b->ops->pause(b, vm->epoch + 1);
		if (r >= 0) {
			r = map_every_page(vm);
			b->ops->resume(b);
		}
		if (r < 0) {
			snprintf(errbuf, errlen, "cannot map the pages of VM '%s': %s", vm->name,
				 strerror(-r));
			goto fail;
		}
	}
	/* accuracy 1 us: sd-event's default would coalesce the epochs to 250 ms */
	r = sd_event_add_time_relative(en->event, &vm->epoch_timer, CLOCK_MONOTONIC,
				       vm_epoch_usec(vm), 1, on_epoch, vm);
	if (r >= 0)
		r = sd_event_source_set_enabled(vm->epoch_timer, SD_EVENT_ON);
	if (r >= 0)
		r = sd_event_add_time_relative(en->event, &vm->sample_timer, CLOCK_MONOTONIC,
					       MAX(vm_epoch_usec(vm) / SAMPLES_PER_EPOCH, USEC_PER_MSEC),
					       1, on_sample, vm);
	if (r >= 0)
		r = sd_event_source_set_enabled(vm->sample_timer, SD_EVENT_ON);
	if (r < 0) {
		snprintf(errbuf, errlen, "cannot start the epochs of VM '%s': %s", vm->name,
			 strerror(-r));
		goto fail;
	}
	vm->attach_usec = now_usec(CLOCK_MONOTONIC);
	{
		struct backend_guest_stats gs = {};

		b->ops->guest_stats(b, &gs);
		vm->ops_at_attach = gs.ops;
	}
	log_info("VM '%s' %s: %" PRIu64 " pages, %u vCPUs, device %u from epoch %" PRIu64
		 ", mode %s, ratio %g, policy %s",
		 vm->name, b->reattached ? "re-attached" : "attached", vm->n_pages, vm->n_vcpus,
		 vm->dev, vm->epoch, vm_mode_to_string(vm->mode), vm->ratio,
		 policy_kind_to_string(vm->policy.kind));
	(void)engine_release(en, vm->name); /* its capacity is the VM's own now */
	return 0;
fail:
	vm_free(vm);
	return r;
}

int engine_reserve(struct engine *en, const char *name, uint64_t n_pages,
		   const struct engine_settings *s, char *errbuf, size_t errlen)
{
	int mode = s->mode >= 0 ? s->mode : VM_MODE_EPOCH;
	double ratio = mode == VM_MODE_NATIVE ? 1.0 : s->set_ratio ? s->ratio : en->default_ratio;
	struct plan plan = { .name = name };
	struct reservation *rv;
	bool replacing;
	int r;

	if (strlen(name) >= sizeof(rv->name) || n_pages == 0 || !ratio_valid(ratio) ||
	    mode >= _VM_MODE_MAX) {
		snprintf(errbuf, errlen, "cannot reserve for VM '%.64s': name longer than %zu bytes, "
					 "no pages or settings out of range",
			 name, sizeof(rv->name) - 1);
		return -EINVAL;
	}
	replacing = engine_reserved(en, name);
	if (!replacing && en->n_resv >= RESERVATIONS_MAX) {
		snprintf(errbuf, errlen, "%d VMs are starting already; retry when some have",
			 RESERVATIONS_MAX);
		return -EMLINK;
	}
	plan.n_pages = n_pages;
	targets(n_pages, ratio, (enum vm_mode)mode, &plan.pm_target, &plan.dram_share,
		&plan.headroom);
	/* the plan stands in for an earlier reservation of the name: a refusal keeps that one */
	r = check_fit(en, &plan, 1, errbuf, errlen);
	if (r < 0)
		return r;
	(void)engine_release(en, name);
	rv = calloc(1, sizeof(*rv));
	if (!rv)
		return -ENOMEM;
	snprintf(rv->name, sizeof(rv->name), "%s", name);
	rv->pm_target = plan.pm_target;
	rv->dram = plan.dram_share + plan.headroom;
	rv->next = en->resv;
	en->resv = rv;
	en->n_resv++;
	log_info("VM '%s': %" PRIu64 " PM frames and %" PRIu64 " DRAM pages reserved for its start",
		 name, rv->pm_target, rv->dram);
	return 0;
}

bool engine_release(struct engine *en, const char *name)
{
	for (struct reservation **p = &en->resv; *p; p = &(*p)->next)
		if (streq((*p)->name, name)) {
			struct reservation *rv = *p;

			*p = rv->next;
			free(rv);
			en->n_resv--;
			return true;
		}
	return false;
}

void engine_default_settings(struct engine *en, struct engine_settings *s)
{
	*s = (struct engine_settings){ .set_ratio = true,
				       .ratio = en->default_ratio,
				       .mode = VM_MODE_EPOCH,
				       .policy = POLICY_VPM,
				       .priority = 50,
				       .reset_epoch = true };
}

bool engine_reserved(struct engine *en, const char *name)
{
	for (struct reservation *rv = en->resv; rv; rv = rv->next)
		if (streq(rv->name, name))
			return true;
	return false;
}

bool engine_vm_attached(struct engine *en, const char *name)
{
	return find_vm(en, name) != NULL;
}

/*
 * A guest that is gone or finished gets everything in DRAM committed (as a passed-through
 * NVDIMM keeps every store when its VM stops); a guest that keeps running while vpmd stops
 * gets a last regular epoch, and the next vpmd adopts it.
 */
void engine_vm_detach(struct vm *vm, const char *why, bool guest_gone)
{
	const struct backend_ops *ops = vm->b->ops;
	int64_t n;

	if (vm->mode != VM_MODE_NATIVE) {
		if (guest_gone || ops->pause(vm->b, vm->epoch + 1) >= 0) {
			harvest_paused(vm);
			n = stage_pages(vm, guest_gone || vm->mode == VM_MODE_HINT);
			if (!guest_gone)
				ops->resume(vm->b);
			if (n >= 0)
				(void)commit_staged(vm, (uint64_t)n);
		}
	}
	log_info("VM '%s' detached (%s) at epoch %" PRIu64, vm->name, why, vm->epoch);
	vm_free(vm);
}

/* ---- the engine ------------------------------------------------------------------------- */

static int on_checkpoint(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct engine *en = userdata;
	int r;

	(void)usec;
	r = pm_checkpoint(en->store);
	if (r < 0)
		log_error_errno(r, "Checkpoint of pool '%s' failed: %m", en->pool->config.name);
	return sd_event_source_set_time_relative(s, CHECKPOINT_USEC);
}

uint64_t engine_reconfigure(struct engine *en, const struct vpmd_config *c)
{
	uint64_t dram = 0;

	en->epoch_usec = c->epoch_interval_usec; /* each VM's timer takes it when it next fires */
	en->dram_budget_pages = c->dram_budget / PM_PAGE_SIZE;
	en->default_ratio = c->default_ratio;
	en->rate_pages = (double)c->migration_rate / PM_PAGE_SIZE;
	/* running VMs keep what they were admitted with; the new budget binds what comes next */
	for (struct vm *vm = en->vms; vm; vm = vm->next)
		dram += vm->dram_share + vm->headroom;
	for (struct reservation *rv = en->resv; rv; rv = rv->next)
		dram += rv->dram;
	return dram > en->dram_budget_pages ? dram - en->dram_budget_pages : 0;
}

int engine_new(sd_event *event, const struct vpmd_config *c, struct pool *pool,
	       struct engine **ret)
{
	_cleanup_free_ char *sock = NULL;
	struct engine *en;
	int r;

	if (!pool->store)
		return log_error_errno(ENODATA, "Pool '%s' is not formatted; the sim backend needs a "
						"formatted pool (vpmd --init-pool %s)",
				       pool->config.name, pool->config.name);
	en = calloc(1, sizeof(*en));
	if (!en)
		return log_oom();
	en->event = event;
	en->pool = pool;
	en->store = pool->store;
	(void)engine_reconfigure(en, c);
	en->tokens_usec = now_usec(CLOCK_MONOTONIC);
	r = copy_crew_new(c->copy_threads, &en->crew);
	if (r < 0) {
		engine_free(en);
		return log_error_errno(r, "Cannot start the copy threads: %m");
	}
	pm_store_set_copy_crew(en->store, en->crew);
	if (asprintf(&sock, "%s/sim.sock", c->state_dir) < 0 ||
	    asprintf(&en->image_dir, "%s/images", c->state_dir) < 0 ||
	    !(en->state_dir = strdup(c->state_dir))) {
		engine_free(en);
		return log_oom();
	}
	if (mkdir(en->image_dir, 0750) < 0 && errno != EEXIST) {
		r = log_error_errno(errno, "Cannot create '%s': %m", en->image_dir);
		engine_free(en);
		return r;
	}
	r = sd_event_add_time_relative(event, &en->checkpoint, CLOCK_MONOTONIC, CHECKPOINT_USEC, 0,
				       on_checkpoint, en);
	if (r >= 0)
		r = sd_event_source_set_enabled(en->checkpoint, SD_EVENT_ON);
	if (r < 0) {
		engine_free(en);
		return log_error_errno(r, "Cannot set up the engine: %m");
	}
	if (c->backend == BACKEND_KVM) {
		r = kvm_backend_new(en, event, c->runtime_dir, &en->kvm);
		if (r < 0) {
			engine_free(en);
			return r;
		}
		log_info("KVM backend: VMs attach with 'vpmctl attach'; devices in pool '%s'; "
			 "%u copy thread(s)",
			 pool->config.name, copy_crew_threads(en->crew));
	} else {
		r = sim_backend_new(en, event, sock, &en->sim);
		if (r < 0) {
			engine_free(en);
			return r;
		}
		log_info("Sim backend: guests attach on %s; devices in pool '%s'; %u copy thread(s)",
			 sock, pool->config.name, copy_crew_threads(en->crew));
	}
	*ret = en;
	return 0;
}

struct engine *engine_free(struct engine *en)
{
	if (!en)
		return NULL;
	while (en->resv)
		(void)engine_release(en, en->resv->name);
	sim_backend_free(en->sim); /* detaches every VM */
	kvm_backend_free(en->kvm);
	while (en->vms)
		vm_free(en->vms);
	sd_event_source_disable_unref(en->checkpoint);
	if (en->store)
		pm_store_set_copy_crew(en->store, NULL);
	copy_crew_free(en->crew);
	free(en->state_dir);
	free(en->image_dir);
	free(en);
	return NULL;
}

bool engine_vm_name_valid(const char *n)
{
	if (!n[0] || n[0] == '.' || strlen(n) >= sizeof(((struct vm *)0)->name))
		return false;
	for (const char *p = n; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'))
			return false;
	return true;
}

int engine_attach_kvm(struct engine *en, const struct kvm_attach_request *req, char *errbuf,
		      size_t errlen)
{
	if (!en->kvm) {
		snprintf(errbuf, errlen, "vpmd serves simulated guests (backend = sim): set "
					 "backend = kvm in its configuration and restart it to serve "
					 "KVM VMs");
		return -EOPNOTSUPP;
	}
	return kvm_backend_attach(en->kvm, req, errbuf, errlen);
}

struct pool *engine_pool(struct engine *en)
{
	return en ? en->pool : NULL;
}

uint64_t engine_pm_frames_offset(struct engine *en)
{
	return pm_store_frames_offset(en->store);
}
