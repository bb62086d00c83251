// SPDX-License-Identifier: LGPL-2.1-or-later
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/magic.h>
#include <linux/vpm-kvm.h>

#include "backend/backend.h"
#include "bitmap.h"
#include "engine.h"
#include "kvm-backend.h"
#include "log.h"
#include "macro.h"
#include "pool.h"

#define PAGE	       4096u
#define MAX_VMS	       256
#define EVENT_BATCH    32
#define MAP_BATCH      4096	  /* the engine's batches: at most this many entries */
#define HINT_MAX_BYTES (4u << 20) /* a longer persist or discard hint gets -E2BIG */

/* An entry of a VM's mapping table (NAME.map): what the kernel maps the gfn to. */
#define MAP_PRESENT  (UINT64_C(1) << 63)
#define MAP_PM	     (UINT64_C(1) << 62)
#define MAP_WRITABLE (UINT64_C(1) << 61)
#define MAP_FRAME    ((UINT64_C(1) << 48) - 1)

struct kvm_vm {
	struct backend_vm b;
	struct kvm_backend *kb;
	struct kvm_vm *next;
	pid_t pid;
	uint64_t starttime; /* of the VMM's process: a pid reused by another process is not it */
	uint64_t gpa;
	int pidfd, vm_fd, event_fd, map_fd;
	uint64_t *table; /* NAME.map, n_pages entries */
	sd_event_source *events, *exit;
	struct kvm_vpm_map_entry *entries;
	uint32_t *index;	 /* of each entry in the engine's batch */
	bool *upgrade;		 /* the entry goes read-only on PM first, then writable */
	uint64_t *seen;		 /* gfns of one map batch */
	uint64_t *dirty, *young; /* KVM_VPM_HARVEST's bitmaps */
	/* a hint over several pages is one event of the kernel and one per page of the engine */
	bool splitting;
	int split_status;
};

struct kvm_backend {
	struct engine *en;
	sd_event *event;
	char *dir;
	uint8_t *frames; /* the pool's PM frames, as vpmd maps them */
	struct kvm_vm *vms;
	unsigned n_vms;
};

static struct kvm_vm *kvm_vm_of(struct backend_vm *b)
{
	return (struct kvm_vm *)b; /* b is the first member */
}

static size_t bitmap_words(uint64_t n)
{
	return (n + 63) / 64;
}

/* ---- operations ------------------------------------------------------------------------- */

static uint64_t table_entry(const struct backend_map *m)
{
	uint64_t w = m->writable ? MAP_WRITABLE : 0;

	switch (m->tier) {
	case BACKEND_DRAM:
		return MAP_PRESENT | w | m->frame;
	case BACKEND_PM:
		return MAP_PRESENT | MAP_PM | w | m->frame;
	case BACKEND_UNMAPPED:
	default:
		return 0;
	}
}

static uint64_t map_uaddr(struct kvm_vm *k, const struct backend_map *m)
{
	if (m->tier == BACKEND_DRAM)
		return (uint64_t)(uintptr_t)(k->b.dram + m->gfn * PAGE);
	return (uint64_t)(uintptr_t)(k->kb->frames + m->frame * PAGE);
}

static int unmap_one(struct kvm_vm *k, uint64_t g)
{
	struct kvm_vpm_unmap u = {.gfn = k->gpa / PAGE + g, .n = 1};

	if (ioctl(k->vm_fd, KVM_VPM_UNMAP, &u) < 0)
		return -errno;
	k->table[g] = 0;
	return 0;
}

static bool test_and_set(uint64_t *bits, uint64_t i)
{
	bool was = bit_test(bits, i);

	bit_set(bits, i);
	return was;
}

static bool table_says_pm(const struct kvm_vm *k, uint64_t g, uint64_t frame)
{
	uint64_t e = k->table[g];

	return (e & MAP_PRESENT) && (e & MAP_PM) && (e & MAP_FRAME) == frame;
}

static int map_ioctl(struct kvm_vm *k, uint32_t n)
{
	struct kvm_vpm_map req = {.n = n, .entries = (uint64_t)(uintptr_t)k->entries};

	if (n && ioctl(k->vm_fd, KVM_VPM_MAP, &req) < 0)
		return log_warning_errno(errno, "VM '%s': KVM_VPM_MAP of %u pages failed: %m",
					 k->b.name, n);
	return 0;
}

/*
 * One KVM_VPM_MAP (one TLB flush) for the batch; a gfn queued twice takes its last mapping.
 *
 * The table is what a vpmd taking over after a crash believes; it must never lose a write
 * the guest can still make:
 *  - it never says PM while the kernel may map DRAM (the guest's writes to the DRAM page
 *    would be dropped): DRAM entries are recorded before the call, PM entries after;
 *  - it never says DRAM while the kernel maps a writable PM frame (the guest's writes to the
 *    frame would be replaced by the old DRAM copy): a page that becomes writable on PM
 *    (native mode) goes read-only on PM first, is recorded, and only then made writable.
 */
static int kvm_map(struct backend_vm *b, const struct backend_map *m, size_t n)
{
	struct kvm_vm *k = kvm_vm_of(b);
	uint32_t ne = 0, nu = 0;
	size_t i;
	int r = 0;

	if (k->vm_fd < 0)
		return 0; /* the VMM is gone: nothing maps any more */
	if (n > MAP_BATCH)
		return -E2BIG;
	for (i = n; i-- > 0;) {
		if (m[i].gfn >= b->n_pages) {
			r = -ERANGE;
			break;
		}
		if (test_and_set(k->seen, m[i].gfn))
			continue;
		if (m[i].tier == BACKEND_UNMAPPED) {
			r = unmap_one(k, m[i].gfn);
			if (r < 0)
				break;
			continue;
		}
		if (m[i].tier == BACKEND_DRAM)
			k->table[m[i].gfn] = table_entry(&m[i]);
		k->index[ne] = (uint32_t)i;
		k->upgrade[ne] = m[i].tier == BACKEND_PM && m[i].writable &&
				 !table_says_pm(k, m[i].gfn, m[i].frame);
		k->entries[ne] = (struct kvm_vpm_map_entry){
		    .gfn = k->gpa / PAGE + m[i].gfn,
		    .uaddr = map_uaddr(k, &m[i]),
		    .flags = m[i].writable && !k->upgrade[ne] ? KVM_VPM_MAP_WRITABLE : 0,
		};
		ne++;
	}
	for (i = 0; i < n; i++)
		if (m[i].gfn < b->n_pages)
			k->seen[m[i].gfn / 64] = 0;
	if (r < 0)
		return r;
	r = map_ioctl(k, ne);
	if (r < 0)
		return r;
	for (uint32_t j = 0; j < ne; j++) {
		struct backend_map e = m[k->index[j]];

		if (e.tier != BACKEND_PM)
			continue;
		e.writable = e.writable && !k->upgrade[j];
		k->table[e.gfn] = table_entry(&e);
		if (k->upgrade[j]) {
			k->entries[nu] = k->entries[j];
			k->entries[nu].flags = KVM_VPM_MAP_WRITABLE;
			k->index[nu++] = k->index[j];
		}
	}
	r = map_ioctl(k, nu);
	if (r < 0)
		return r;
	for (uint32_t j = 0; j < nu; j++)
		k->table[m[k->index[j]].gfn] = table_entry(&m[k->index[j]]);
	return 0;
}

static void kvm_lookup(struct backend_vm *b, uint64_t gfn, struct backend_map *ret)
{
	uint64_t e = kvm_vm_of(b)->table[gfn];

	*ret =
	    (struct backend_map){.gfn = gfn, .frame = e & MAP_FRAME, .writable = e & MAP_WRITABLE};
	if (e & MAP_PRESENT)
		ret->tier = (e & MAP_PM) ? BACKEND_PM : BACKEND_DRAM;
}

/* KVM_VPM_HOLD returns once no vCPU is in guest mode; vCPUs waiting on an event stay there. */
static int kvm_pause(struct backend_vm *b, uint64_t epoch)
{
	struct kvm_vm *k = kvm_vm_of(b);

	(void)epoch;
	if (k->vm_fd < 0)
		return 0; /* the VMM is gone: nothing runs */
	return ioctl(k->vm_fd, KVM_VPM_HOLD) < 0 ? -errno : 0;
}

static int harvest_bits(struct kvm_vm *k, bool dirty)
{
	size_t bytes = bitmap_words(k->b.n_pages) * 8;
	struct kvm_vpm_harvest h = {
	    .gfn = k->gpa / PAGE,
	    .n = k->b.n_pages,
	    .dirty_bitmap = dirty ? (uint64_t)(uintptr_t)k->dirty : 0,
	    .young_bitmap = (uint64_t)(uintptr_t)k->young,
	};

	memset(k->dirty, 0, bytes);
	memset(k->young, 0, bytes);
	if (ioctl(k->vm_fd, KVM_VPM_HARVEST, &h) < 0)
		return log_warning_errno(errno, "VM '%s': KVM_VPM_HARVEST failed: %m", k->b.name);
	return 0;
}

/* The kernel's bitmaps are bit i of byte i / 8: on x86 the same as the engine's words. */
static void or_bits(uint64_t *to, const uint64_t *from, size_t words)
{
	for (size_t w = 0; w < words; w++)
		to[w] |= from[w];
}

/* Every page dirty: what the engine must assume when the kernel cannot say. */
static void all_bits(uint64_t *bits, uint64_t n)
{
	for (uint64_t w = 0; w < n / 64; w++)
		bits[w] = UINT64_MAX;
	if (n % 64)
		bits[n / 64] |= (UINT64_C(1) << (n % 64)) - 1;
}

/*
 * A failed harvest (or a VMM that is gone) leaves no way to know what the guest wrote: every
 * page counts as dirty, so that no uncommitted write is demoted or left out of a commit.
 */
static void kvm_harvest(struct backend_vm *b, uint64_t *dirty, uint64_t *accessed)
{
	struct kvm_vm *k = kvm_vm_of(b);

	if (k->vm_fd < 0 || harvest_bits(k, true) < 0) {
		all_bits(dirty, b->n_pages);
		all_bits(accessed, b->n_pages);
		return;
	}
	or_bits(dirty, k->dirty, bitmap_words(b->n_pages));
	or_bits(accessed, k->young, bitmap_words(b->n_pages));
}

static void kvm_sample_accessed(struct backend_vm *b, uint64_t *accessed)
{
	struct kvm_vm *k = kvm_vm_of(b);

	if (k->vm_fd >= 0 && harvest_bits(k, false) == 0)
		or_bits(accessed, k->young, bitmap_words(b->n_pages));
}

static void kvm_resume(struct backend_vm *b)
{
	struct kvm_vm *k = kvm_vm_of(b);

	if (k->vm_fd >= 0 && ioctl(k->vm_fd, KVM_VPM_RESUME) < 0)
		log_warning_errno(errno, "VM '%s': KVM_VPM_RESUME failed: %m", b->name);
}

static int complete_event(struct kvm_vm *k, uint64_t id, int status)
{
	/* the engine's 1 (a persist hint made vpmd commit) is a success to the guest */
	struct kvm_vpm_complete c = {.id = id, .status = status > 0 ? 0 : MAX(status, -4095)};

	if (k->vm_fd < 0)
		return 0;

	if (ioctl(k->vm_fd, KVM_VPM_COMPLETE, &c) < 0)
		return log_warning_errno(
		    errno, "VM '%s': KVM_VPM_COMPLETE of event %" PRIu64 " failed: %m", k->b.name,
		    id);
	return 0;
}

static int kvm_complete(struct backend_vm *b, const struct backend_event *ev, int status)
{
	struct kvm_vm *k = kvm_vm_of(b);

	if (k->splitting) {
		if (status < 0 && k->split_status == 0)
			k->split_status = status;
		return 0;
	}
	return complete_event(k, ev->cookie, backend_fault_status(ev, status));
}

static void kvm_guest_stats(struct backend_vm *b, struct backend_guest_stats *ret)
{
	(void)b;
	*ret = (struct backend_guest_stats){}; /* a real guest does not report its work */
}

static const struct backend_ops kvm_ops = {
    .name = "kvm",
    .maps_all = true,
    .map = kvm_map,
    .lookup = kvm_lookup,
    .pause = kvm_pause,
    .harvest = kvm_harvest,
    .resume = kvm_resume,
    .sample_accessed = kvm_sample_accessed,
    .complete = kvm_complete,
    .guest_stats = kvm_guest_stats,
};

/* ---- events ----------------------------------------------------------------------------- */

/* A hint names a byte range of the vPM range: the engine takes it page by page. */
static void deliver_hint(struct kvm_vm *k, const struct kvm_vpm_event *e, enum backend_event_type t)
{
	uint64_t pos = e->gpa - k->gpa, end = pos + e->len;

	/* each page of a hint may be a commit, made before vpmd serves anything else */
	if (e->len > HINT_MAX_BYTES) {
		log_debug("VM '%s': a hint of %" PRIu64 " bytes, more than %u: refused", k->b.name,
			  (uint64_t)e->len, HINT_MAX_BYTES);
		(void)complete_event(k, e->id, -E2BIG);
		return;
	}

	k->splitting = true;
	k->split_status = 0;
	while (pos < end && k->b.vm) {
		uint32_t off = (uint32_t)(pos % PAGE);
		uint32_t len = (uint32_t)MIN((uint64_t)(PAGE - off), end - pos);
		struct backend_event ev = {
		    .type = t, .vcpu = e->vcpu, .gfn = pos / PAGE, .offset = off, .len = len};

		engine_vm_event(k->b.vm, &ev);
		pos += len;
	}
	k->splitting = false;
	(void)complete_event(k, e->id, k->b.vm ? k->split_status : -EIO);
}

static void deliver(struct kvm_vm *k, const struct kvm_vpm_event *e)
{
	struct backend_event ev = {.vcpu = e->vcpu, .cookie = e->id};

	if (e->gpa < k->gpa || e->gpa - k->gpa >= k->b.n_pages * PAGE ||
	    e->len > k->b.n_pages * PAGE - (e->gpa - k->gpa)) {
		log_warning("VM '%s': event %" PRIu64 " names 0x%" PRIx64 "+%" PRIu64
			    ", outside the vPM range",
			    k->b.name, (uint64_t)e->id, (uint64_t)e->gpa, (uint64_t)e->len);
		(void)complete_event(k, e->id, -EINVAL);
		return;
	}
	switch (e->type) {
	case KVM_VPM_EVENT_WRITE_FAULT:
		ev.type = BACKEND_EVENT_FAULT;
		ev.gfn = (e->gpa - k->gpa) / PAGE;
		ev.len = PAGE;
		ev.write = true;
		engine_vm_event(k->b.vm, &ev);
		break;
	case KVM_VPM_EVENT_PERSIST:
		deliver_hint(k, e, BACKEND_EVENT_PERSIST);
		break;
	case KVM_VPM_EVENT_DISCARD:
		deliver_hint(k, e, BACKEND_EVENT_DISCARD);
		break;
	default:
		log_warning("VM '%s': event %" PRIu64 " of unknown type %u", k->b.name,
			    (uint64_t)e->id, e->type);
		(void)complete_event(k, e->id, -EINVAL);
	}
}

static void kvm_vm_end(struct kvm_vm *k, const char *why, bool gone);

static int on_events(sd_event_source *es, int fd, uint32_t revents, void *userdata)
{
	struct kvm_vpm_event evs[EVENT_BATCH];
	struct kvm_vm *k = userdata;
	ssize_t n;

	(void)es;
	(void)revents;
	n = read(fd, evs, sizeof(evs));
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		log_warning_errno(
		    errno, "VM '%s': reading its VPM events failed: %m; letting it go", k->b.name);
		kvm_vm_end(k, "event channel failed", false);
		return 0;
	}
	for (size_t i = 0; i < (size_t)n / sizeof(evs[0]) && k->b.vm; i++)
		deliver(k, &evs[i]);
	return 0;
}

static int on_vmm_exit(sd_event_source *es, int fd, uint32_t revents, void *userdata)
{
	struct kvm_vm *k = userdata;

	(void)es;
	(void)fd;
	(void)revents;
	kvm_vm_end(k, "VMM exited", true);
	return 0;
}

/* ---- files ------------------------------------------------------------------------------ */

static int vm_path(const struct kvm_backend *kb, const char *name, const char *ext, char *buf,
		   size_t len)
{
	int n = snprintf(buf, len, "%s/%s.%s", kb->dir, name, ext);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void remove_files(const struct kvm_backend *kb, const char *name)
{
	static const char *const exts[] = {"vm", "dram", "map"};
	char p[PATH_MAX];

	for (size_t i = 0; i < ELEMENTSOF(exts); i++)
		if (vm_path(kb, name, exts[i], p, sizeof(p)) == 0)
			(void)unlink(p);
}

/* A file of size bytes, new (zeroed) unless adopting; mapped shared. */
static int open_mapped(const struct kvm_backend *kb, const char *name, const char *ext,
		       uint64_t size, bool adopt, int *ret_fd, void **ret_addr)
{
	_cleanup_close_ int fd = -1;
	char p[PATH_MAX];
	struct stat st;
	void *a;
	int r;

	r = vm_path(kb, name, ext, p, sizeof(p));
	if (r < 0)
		return r;
	fd = open(p, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (adopt ? 0 : O_CREAT), 0600);
	if (fd < 0)
		return -errno;
	if (adopt) {
		if (fstat(fd, &st) < 0)
			return -errno;
		if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != size)
			return -EBADMSG;
	} else if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)size) < 0) {
		return -errno;
	}
	a = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (a == MAP_FAILED)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	*ret_addr = a;
	return 0;
}

/* What a vpmd taking over needs: the VMM's process, the range, the VM's own settings. */
struct record {
	pid_t pid;
	uint64_t starttime, gpa, size;
	double ratio;
	char mode[16], policy[16];
};

static int write_record(const struct kvm_vm *k)
{
	char p[PATH_MAX], tmp[PATH_MAX + 8];
	_cleanup_fclose_ FILE *f = NULL;
	int r;

	r = vm_path(k->kb, k->b.name, "vm", p, sizeof(p));
	if (r < 0)
		return r;
	snprintf(tmp, sizeof(tmp), "%s.tmp", p);
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	fprintf(f,
		"pid %d\nstarttime %" PRIu64 "\ngpa %" PRIu64 "\nsize %" PRIu64 "\nratio %g\n"
		"mode %s\npolicy %s\n",
		(int)k->pid, k->starttime, k->gpa, k->b.n_pages * PAGE, k->b.ratio,
		k->b.mode[0] ? k->b.mode : "-", k->b.policy[0] ? k->b.policy : "-");
	if (fflush(f) != 0 || ferror(f) || rename(tmp, p) < 0) {
		r = errno ? -errno : -EIO;
		(void)unlink(tmp);
		return r;
	}
	return 0;
}

static int read_record(const struct kvm_backend *kb, const char *name, struct record *ret)
{
	char path[PATH_MAX];
	_cleanup_fclose_ FILE *f = NULL;
	int pid, n;

	if (vm_path(kb, name, "vm", path, sizeof(path)) < 0)
		return -ENAMETOOLONG;
	f = fopen(path, "re");
	if (!f)
		return -errno;
	*ret = (struct record){};
	n = fscanf(f,
		   "pid %d starttime %" SCNu64 " gpa %" SCNu64 " size %" SCNu64 " ratio %lf "
		   "mode %15s policy %15s",
		   &pid, &ret->starttime, &ret->gpa, &ret->size, &ret->ratio, ret->mode,
		   ret->policy);
	if (n != 7 || pid <= 0 || ret->size == 0 || ret->size % PAGE || ret->gpa % PAGE ||
	    ret->size / PAGE > KVM_VPM_MAX_PAGES || ret->gpa + ret->size < ret->gpa)
		return -EBADMSG;
	ret->pid = pid;
	if (streq(ret->mode, "-"))
		ret->mode[0] = 0;
	if (streq(ret->policy, "-"))
		ret->policy[0] = 0;
	return 0;
}

/* ---- the VMM's process ------------------------------------------------------------------ */

/* Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. */
static int process_starttime(pid_t pid, uint64_t *ret)
{
	char path[64], buf[1024], *p;
	_cleanup_close_ int fd = -1;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	buf[n] = 0;
	p = strrchr(buf, ')'); /* the command may hold spaces and parentheses */
	if (!p)
		return -EIO;
	for (int field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%" SCNu64, ret) != 1)
		return -EIO;
	return 0;
}

/* The VM fd of the process (its only "anon_inode:kvm-vm"), and how many vCPUs it has. */
static int find_vm_fd(pid_t pid, int *ret_fd, unsigned *ret_vcpus, char *errbuf, size_t errlen)
{
	char path[64], link[64];
	struct dirent *de;
	DIR *d;
	int vm_fd = -1, vms = 0;
	unsigned vcpus = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d) {
		int r = -errno;

		snprintf(errbuf, errlen, "cannot read the fds of process %d: %s", (int)pid,
			 strerror(-r));
		return r;
	}
	while ((de = readdir(d))) {
		ssize_t n = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);

		if (n <= 0)
			continue;
		link[n] = 0;
		if (streq(link, "anon_inode:kvm-vm")) {
			vm_fd = atoi(de->d_name);
			vms++;
		} else if (!strncmp(link, "anon_inode:kvm-vcpu:", 20)) {
			vcpus++;
		}
	}
	closedir(d);
	if (vms != 1) {
		snprintf(errbuf, errlen,
			 "process %d has %s KVM VM; give the pid of the VM's own "
			 "VMM (QEMU) process",
			 (int)pid, vms ? "more than one" : "no");
		return vms ? -EMLINK : -ENOENT;
	}
	*ret_fd = vm_fd;
	*ret_vcpus = MAX(vcpus, 1u);
	return 0;
}

#define NO_VPM                                                                                     \
	"this host's KVM has no VPM support (KVM_CAP_VPM): install the patched KVM modules "       \
	"(kvm-patch/install-modules.sh)"

/*
 * Whether KVM has the VPM series: 1 or 0, or -errno without /dev/kvm. Asked of /dev/kvm: a VM
 * fd answers only the process that created the VM.
 */
static int vpm_capability(void)
{
	_cleanup_close_ int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_VPM) > 0;
}

bool kvm_backend_host_has_vpm(void)
{
	return vpm_capability() == 1;
}

/* Whether fd (ours) is a KVM VM. */
static bool is_vm_fd(int fd)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return false;
	link[n] = 0;
	return streq(link, "anon_inode:kvm-vm");
}

/*
 * The VMM's process (pidfd, then its start time: the pid is the one recorded only if both
 * match) and its VM fd.
 */
static int open_process(struct kvm_vm *k, char *errbuf, size_t errlen)
{
	int target = -1, r;

	k->pidfd = (int)syscall(SYS_pidfd_open, k->pid, 0);
	if (k->pidfd < 0) {
		r = -errno;
		snprintf(errbuf, errlen, "no process %d: %s", (int)k->pid, strerror(-r));
		return r;
	}
	r = process_starttime(k->pid, &k->starttime);
	if (r < 0) {
		snprintf(errbuf, errlen, "no process %d: %s", (int)k->pid, strerror(-r));
		return r;
	}
	r = find_vm_fd(k->pid, &target, &k->b.n_vcpus, errbuf, errlen);
	if (r < 0)
		return r;
	k->vm_fd = (int)syscall(SYS_pidfd_getfd, k->pidfd, target, 0);
	if (k->vm_fd < 0) {
		r = -errno;
		snprintf(errbuf, errlen,
			 "cannot take the VM fd of process %d: %s (vpmd needs "
			 "CAP_SYS_PTRACE over it)",
			 (int)k->pid, strerror(-r));
		return r;
	}
	if (!is_vm_fd(k->vm_fd)) { /* the process closed it and reused the number meanwhile */
		snprintf(errbuf, errlen,
			 "process %d changed its fds while vpmd took its VM's; "
			 "try again",
			 (int)k->pid);
		return -EAGAIN;
	}
	return 0;
}

/* VPM enabled on the VM's range, or the orphaned state of a previous vpmd taken over. */
static int open_vm(struct kvm_vm *k, char *errbuf, size_t errlen)
{
	struct kvm_vpm_enable en = {.gpa = k->gpa, .size = k->b.n_pages * PAGE};
	int r;

	if (vpm_capability() == 0) { /* without /dev/kvm here, the ioctl tells */
		snprintf(errbuf, errlen, "%s", NO_VPM);
		return -EOPNOTSUPP;
	}
	k->event_fd = ioctl(k->vm_fd, KVM_VPM_ENABLE, &en);
	if (k->event_fd >= 0)
		return 0;
	r = -errno;
	switch (r) {
	case -ENOTTY:
		snprintf(errbuf, errlen, "%s", NO_VPM);
		return -EOPNOTSUPP;
	case -EIO:
		snprintf(errbuf, errlen,
			 "KVM refuses VPM on the VM of process %d: it is being "
			 "destroyed, or its KVM has no VPM (which refuses other processes)",
			 (int)k->pid);
		break;
	case -EPERM:
		snprintf(errbuf, errlen,
			 "KVM refuses VPM on the VM of process %d: vpmd needs "
			 "CAP_SYS_ADMIN",
			 (int)k->pid);
		break;
	case -EINVAL:
		snprintf(errbuf, errlen,
			 "the vPM range 0x%" PRIx64 "+0x%" PRIx64 " is not guest "
			 "memory of process %d's VM (no memslots cover it all)",
			 k->gpa, (uint64_t)en.size, (int)k->pid);
		break;
	case -EEXIST:
		snprintf(errbuf, errlen,
			 "the VM of process %d has VPM enabled already, on another "
			 "range or by another daemon",
			 (int)k->pid);
		break;
	default:
		snprintf(errbuf, errlen, "KVM_VPM_ENABLE on the VM of process %d failed: %s",
			 (int)k->pid, strerror(-r));
	}
	return r;
}

/* ---- VMs -------------------------------------------------------------------------------- */

static void kvm_vm_free(struct kvm_vm *k)
{
	struct kvm_vm **p;

	for (p = &k->kb->vms; *p && *p != k; p = &(*p)->next)
		;
	if (*p) {
		*p = k->next;
		k->kb->n_vms--;
	}
	sd_event_source_disable_unref(k->events);
	sd_event_source_disable_unref(k->exit);
	/* closing the event fd leaves a running VM on its mappings for the next vpmd */
	safe_close(k->event_fd);
	safe_close(k->vm_fd);
	safe_close(k->pidfd);
	if (k->table)
		munmap(k->table, k->b.n_pages * sizeof(uint64_t));
	if (k->b.dram)
		munmap(k->b.dram, k->b.n_pages * PAGE);
	safe_close(k->map_fd);
	safe_close(k->b.dram_fd);
	free(k->entries);
	free(k->index);
	free(k->upgrade);
	free(k->seen);
	free(k->dirty);
	free(k->young);
	free(k);
}

/* The VMM is gone (gone: its files go too), or vpmd lets the VM go (it runs on). */
static void kvm_vm_end(struct kvm_vm *k, const char *why, bool gone)
{
	if (k->b.vm)
		engine_vm_detach(k->b.vm, why, gone);
	if (gone)
		remove_files(k->kb, k->b.name);
	kvm_vm_free(k);
}

static struct kvm_vm *kvm_vm_new(struct kvm_backend *kb, const char *name, pid_t pid, uint64_t gpa,
				 uint64_t size)
{
	struct kvm_vm *k = calloc(1, sizeof(*k));
	uint64_t n = size / PAGE;

	if (!k)
		return NULL;
	k->kb = kb;
	k->pid = pid;
	k->gpa = gpa;
	k->pidfd = k->vm_fd = k->event_fd = k->map_fd = k->b.dram_fd = -1;
	k->b.ops = &kvm_ops;
	k->b.n_pages = n;
	k->b.n_vcpus = 1;
	snprintf(k->b.name, sizeof(k->b.name), "%s", name);
	k->entries = calloc(MAP_BATCH, sizeof(*k->entries));
	k->index = calloc(MAP_BATCH, sizeof(*k->index));
	k->upgrade = calloc(MAP_BATCH, sizeof(*k->upgrade));
	k->seen = calloc(bitmap_words(n), 8);
	k->dirty = calloc(bitmap_words(n), 8);
	k->young = calloc(bitmap_words(n), 8);
	if (!k->entries || !k->index || !k->upgrade || !k->seen || !k->dirty || !k->young) {
		kvm_vm_free(k);
		return NULL;
	}
	k->next = kb->vms;
	kb->vms = k;
	kb->n_vms++;
	return k;
}

static void settings_from(struct kvm_vm *k, double ratio, const char *mode, const char *policy)
{
	k->b.ratio = ratio;
	snprintf(k->b.mode, sizeof(k->b.mode), "%s", mode ? mode : "");
	snprintf(k->b.policy, sizeof(k->b.policy), "%s", policy ? policy : "");
}

static int open_files(struct kvm_vm *k, bool adopt, char *errbuf, size_t errlen)
{
	uint64_t n = k->b.n_pages;
	const char *what = "DRAM frames";
	void *a;
	int r;

	r = open_mapped(k->kb, k->b.name, "dram", n * PAGE, adopt, &k->b.dram_fd, &a);
	if (r >= 0) {
		k->b.dram = a;
		what = "mapping table";
		r = open_mapped(k->kb, k->b.name, "map", n * sizeof(uint64_t), adopt, &k->map_fd,
				&a);
	}
	if (r < 0) {
		snprintf(errbuf, errlen, "cannot %s the %s of VM '%s' in '%s': %s",
			 adopt ? "take over" : "create", what, k->b.name, k->kb->dir, strerror(-r));
		return r;
	}
	k->table = a;
	return 0;
}

static int watch(struct kvm_vm *k, char *errbuf, size_t errlen)
{
	int r;

	r = sd_event_add_io(k->kb->event, &k->events, k->event_fd, EPOLLIN, on_events, k);
	if (r >= 0)
		r = sd_event_add_io(k->kb->event, &k->exit, k->pidfd, EPOLLIN, on_vmm_exit, k);
	if (r < 0)
		snprintf(errbuf, errlen, "cannot watch VM '%s': %s", k->b.name, strerror(-r));
	return r;
}

/* The DRAM file's pages of gfns the kernel maps to PM go back to the system (runs of them). */
static void punch_pm_pages(struct kvm_vm *k)
{
	uint64_t g = 0, n = k->b.n_pages;

	while (g < n) {
		uint64_t start;

		while (g < n && !(k->table[g] & MAP_PM))
			g++;
		start = g;
		while (g < n && (k->table[g] & MAP_PM))
			g++;
		if (g > start)
			(void)fallocate(k->b.dram_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					(off_t)(start * PAGE), (off_t)((g - start) * PAGE));
	}
}

/*
 * Serve k: its VMM's VM, VPM enabled (or taken over), the files, the engine. On failure the
 * caller frees k; a fresh attach's pages are unmapped first (the guest is back on its own
 * memory), an adopted VM keeps its mappings and files for a later try.
 */
static int start_vm(struct kvm_vm *k, bool adopt, char *errbuf, size_t errlen)
{
	int r;

	r = open_process(k, errbuf, errlen);
	if (r >= 0)
		r = open_vm(k, errbuf, errlen);
	if (r >= 0 && fcntl(k->event_fd, F_SETFL, O_NONBLOCK) < 0)
		r = -errno;
	if (r >= 0)
		r = open_files(k, adopt, errbuf, errlen);
	if (r >= 0 && !adopt) {
		r = write_record(k);
		if (r < 0)
			snprintf(errbuf, errlen, "cannot record VM '%s' in '%s': %s", k->b.name,
				 k->kb->dir, strerror(-r));
	}
	if (r >= 0)
		r = watch(k, errbuf, errlen);
	if (r >= 0) {
		k->b.reattached = adopt;
		r = engine_vm_attach(k->kb->en, &k->b, errbuf, errlen);
	}
	if (r < 0 && !adopt && k->event_fd >= 0) {
		struct kvm_vpm_unmap u = {.gfn = k->gpa / PAGE, .n = k->b.n_pages};

		if (ioctl(k->vm_fd, KVM_VPM_UNMAP, &u) < 0)
			log_warning_errno(errno,
					  "VM '%s': cannot unmap vpmd's pages after the failed "
					  "attach: %m",
					  k->b.name);
	}
	if (r >= 0 && adopt)
		punch_pm_pages(k);
	return r;
}

/* The process's start time equals the recorded one: 1; it is gone or another: 0; unknown: <0. */
static int same_process(const struct record *rec)
{
	uint64_t now;
	int r = process_starttime(rec->pid, &now);

	if (r == -ENOENT || r == -ESRCH)
		return 0;
	if (r < 0)
		return r;
	return now == rec->starttime;
}

/* Another VM's record names the same process: its KVM VM is served under that name. */
static const char *served_as(struct kvm_backend *kb, const char *name, pid_t pid)
{
	for (struct kvm_vm *k = kb->vms; k; k = k->next)
		if (k->pid == pid && !streq(k->b.name, name))
			return k->b.name;
	return NULL;
}

/*
 * A VM whose VMM exited while no vpmd served it: what it left in DRAM (NAME.dram, the mapping
 * table) is committed, as it would have been at its exit, and its files go.
 */
static void finish_gone(struct kvm_backend *kb, const char *name, const struct record *rec)
{
	char errbuf[512] = "";
	struct kvm_vm *k = kvm_vm_new(kb, name, rec->pid, rec->gpa, rec->size);
	int r;

	if (!k) {
		log_oom();
		return;
	}
	settings_from(k, rec->ratio, rec->mode, rec->policy);
	r = open_files(k, true, errbuf, sizeof(errbuf));
	if (r >= 0) {
		k->b.reattached = k->b.finished = true;
		r = engine_vm_attach(kb->en, &k->b, errbuf, sizeof(errbuf));
	}
	if (r < 0) {
		log_error_errno(r,
				"VM '%s': its VMM (process %d) exited while vpmd was away, and "
				"what it left in DRAM cannot be committed: %s; its files stay in "
				"'%s'",
				name, (int)rec->pid, errbuf, kb->dir);
		kvm_vm_free(k);
		return;
	}
	log_info("VM '%s': its VMM (process %d) exited while vpmd was away; committing what it "
		 "left",
		 name, (int)rec->pid);
	kvm_vm_end(k, "VMM exited while vpmd was away", true);
}

/* Take over the VM of a record whose process runs. */
static int adopt_vm(struct kvm_backend *kb, const char *name, const struct record *rec,
		    char *errbuf, size_t errlen)
{
	struct kvm_vm *k = kvm_vm_new(kb, name, rec->pid, rec->gpa, rec->size);
	int r;

	if (!k) {
		snprintf(errbuf, errlen, "out of memory for VM '%s'", name);
		return -ENOMEM;
	}
	settings_from(k, rec->ratio, rec->mode, rec->policy);
	r = start_vm(k, true, errbuf, errlen);
	if (r < 0)
		kvm_vm_free(k);
	return r;
}

int kvm_backend_attach(struct kvm_backend *kb, const struct kvm_attach_request *req, char *errbuf,
		       size_t errlen)
{
	struct record rec;
	const char *other;
	struct kvm_vm *k;
	int r;

	if (!engine_vm_name_valid(req->name)) {
		snprintf(errbuf, errlen,
			 "'%.64s' is not a VM name vpmd takes: 1-63 letters, digits, "
			 "'_', '-' and '.' (not first)",
			 req->name);
		return -EINVAL;
	}
	if (req->pid <= 0 || req->size == 0 || req->gpa % PAGE || req->size % PAGE ||
	    req->size / PAGE > KVM_VPM_MAX_PAGES || req->gpa + req->size < req->gpa) {
		snprintf(errbuf, errlen,
			 "VM '%s': a pid, and a vPM range of whole 4 KiB pages are "
			 "needed (got pid %d, 0x%" PRIx64 "+0x%" PRIx64 ")",
			 req->name, (int)req->pid, req->gpa, req->size);
		return -EINVAL;
	}
	if (engine_vm_attached(kb->en, req->name)) {
		snprintf(errbuf, errlen, "a VM named '%s' is attached already", req->name);
		return -EEXIST;
	}
	other = served_as(kb, req->name, req->pid);
	if (other) {
		snprintf(errbuf, errlen, "the VM of process %d is served already, as '%s'",
			 (int)req->pid, other);
		return -EEXIST;
	}
	if (kb->n_vms >= MAX_VMS) {
		snprintf(errbuf, errlen, "vpmd serves %u KVM VMs already, its limit", MAX_VMS);
		return -EMLINK;
	}
	/*
	 * A record of that name: the VM a previous vpmd served, running on vpmd's pages. A fresh
	 * attach would replace what its guest wrote since the last commit: take it over instead.
	 */
	r = read_record(kb, req->name, &rec);
	if (r == 0 && same_process(&rec) == 1) {
		if (rec.pid != req->pid || rec.gpa != req->gpa || rec.size != req->size) {
			snprintf(errbuf, errlen,
				 "VM '%s' is process %d's VM with the vPM range "
				 "0x%" PRIx64 "+0x%" PRIx64 " (its record in '%s')",
				 req->name, (int)rec.pid, rec.gpa, rec.size, kb->dir);
			return -EEXIST;
		}
		return adopt_vm(kb, req->name, &rec, errbuf, errlen);
	}
	if (r == 0 && same_process(&rec) == 0)
		finish_gone(kb, req->name, &rec);
	else if (r != -ENOENT) {
		snprintf(errbuf, errlen,
			 "VM '%s' has a record in '%s' vpmd cannot use (%s); see "
			 "the log, remove it if its VM is gone",
			 req->name, kb->dir, strerror(r == 0 ? ESRCH : -r));
		return -EEXIST;
	}
	k = kvm_vm_new(kb, req->name, req->pid, req->gpa, req->size);
	if (!k) {
		snprintf(errbuf, errlen, "out of memory for VM '%s'", req->name);
		return -ENOMEM;
	}
	settings_from(k, req->ratio, req->mode, req->policy);
	r = start_vm(k, false, errbuf, errlen);
	if (r < 0) {
		bool created = k->b.dram_fd >= 0 || k->map_fd >= 0;

		kvm_vm_free(k);
		if (created)
			remove_files(kb, req->name);
		return r;
	}
	log_info("VM '%s': KVM VM of process %d, vPM 0x%" PRIx64 "+0x%" PRIx64 ", %u vCPUs",
		 req->name, (int)req->pid, req->gpa, req->size, k->b.n_vcpus);
	return 0;
}

/* A VM the previous vpmd served: take it over if its VMM still runs, else finish it. */
static void adopt_one(struct kvm_backend *kb, const char *name)
{
	char errbuf[512] = "";
	struct record rec;
	int r, same;

	r = read_record(kb, name, &rec);
	if (r < 0 || !engine_vm_name_valid(name)) {
		log_warning("Ignoring the record of '%s' in '%s': not one vpmd wrote; removing it",
			    name, kb->dir);
		remove_files(kb, name);
		return;
	}
	same = same_process(&rec);
	if (same < 0) {
		log_error_errno(same,
				"VM '%s': cannot tell whether process %d runs: %m; its files "
				"stay in '%s'",
				name, (int)rec.pid, kb->dir);
		return;
	}
	if (!same) {
		finish_gone(kb, name, &rec);
		return;
	}
	r = adopt_vm(kb, name, &rec, errbuf, sizeof(errbuf));
	if (r < 0) {
		log_error_errno(r,
				"VM '%s' (process %d) not taken over: %s; it runs on its last "
				"mappings, and a write to a read-only page waits: fix the cause "
				"and run 'vpmctl attach %s --pid %d --gpa 0x%" PRIx64
				" --size %" PRIu64 "'",
				name, (int)rec.pid, errbuf, name, (int)rec.pid, rec.gpa, rec.size);
		return;
	}
	log_info("VM '%s': took over the KVM VM of process %d", name, (int)rec.pid);
}

static void adopt_all(struct kvm_backend *kb)
{
	_cleanup_free_ char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	DIR *d = opendir(kb->dir);

	if (!d)
		return;
	while ((de = readdir(d)) && n < MAX_VMS) {
		size_t l = strlen(de->d_name);
		char **nn;

		if (l <= 3 || strcmp(de->d_name + l - 3, ".vm"))
			continue;
		nn = realloc(names, (n + 1) * sizeof(*names));
		if (!nn || !(nn[n] = strndup(de->d_name, l - 3))) {
			names = nn ? nn : names;
			break;
		}
		names = nn;
		n++;
	}
	closedir(d);
	for (size_t i = 0; i < n; i++) {
		adopt_one(kb, names[i]);
		free(names[i]);
	}
}

static bool in_memory_fs(const char *dir)
{
	struct statfs s;

	return statfs(dir, &s) == 0 && (s.f_type == TMPFS_MAGIC || s.f_type == RAMFS_MAGIC);
}

int kvm_backend_new(struct engine *en, sd_event *event, const char *runtime_dir,
		    struct kvm_backend **ret)
{
	struct kvm_backend *kb;
	struct pool *pool = engine_pool(en);

	kb = calloc(1, sizeof(*kb));
	if (!kb)
		return log_oom();
	kb->en = en;
	kb->event = event;
	if (pool->kind == POOL_KIND_FSDAX) {
		free(kb);
		return log_error_errno(EOPNOTSUPP,
				       "Pool '%s' is a file on fsdax: KVM cannot pin "
				       "its pages for long (FOLL_LONGTERM); the kvm backend "
				       "needs a devdax pool (or an emulated one for tests)",
				       pool->config.name);
	}
	kb->frames = (uint8_t *)pool->addr + engine_pm_frames_offset(en);
	if (asprintf(&kb->dir, "%s/kvm", runtime_dir) < 0) {
		free(kb);
		return log_oom();
	}
	if ((mkdir(runtime_dir, 0755) < 0 && errno != EEXIST) ||
	    (mkdir(kb->dir, 0700) < 0 && errno != EEXIST)) {
		int r = log_error_errno(errno, "Cannot create '%s': %m", kb->dir);

		kvm_backend_free(kb);
		return r;
	}
	if (!in_memory_fs(kb->dir)) {
		kvm_backend_free(kb);
		return log_error_errno(EXDEV,
				       "runtime_dir '%s' is not a tmpfs: the DRAM frames KVM "
				       "VMs run on must stay in memory when vpmd restarts; "
				       "mount a tmpfs there or set runtime_dir to one (/run/vpmd)",
				       runtime_dir);
	}
	adopt_all(kb);
	*ret = kb;
	return 0;
}

struct kvm_backend *kvm_backend_free(struct kvm_backend *kb)
{
	if (!kb)
		return NULL;
	while (kb->vms)
		kvm_vm_end(kb->vms, "vpmd stopping", false);
	free(kb->dir);
	free(kb);
	return NULL;
}
