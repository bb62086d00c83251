// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "json-util.h"
#include "log.h"
#include "pagetable.h"
#include "parse-util.h"
#include "pm-store.h"
#include "sim-proto.h"

#define CHECKPOINT_USEC  USEC_PER_SEC
#define PAUSE_TIMEOUT_US (2 * USEC_PER_SEC)

struct vm {
	struct engine *en;
	struct vm *next;
	char name[SIM_NAME_MAX];
	uint64_t n_pages;
	unsigned n_vcpus;
	unsigned dev;
	int conn;
	sd_event_source *io, *epoch_timer;
	int ept_fd, dram_fd;
	size_t ept_size;
	struct sim_shared *shared;
	_Atomic uint64_t *ept;
	uint8_t *dram; /* DRAM frame of gfn g is page g of this memfd (sparse) */
	struct pagetable pt;
	uint8_t *stage;
	struct pm_page *pages;
	uint64_t epoch; /* last committed */
	uint64_t epochs, dirty_pages, faults, promotions;
	uint64_t pause_usec_max, pause_usec_sum;
};

struct engine {
	sd_event *event;
	struct pool *pool;
	struct pm_store *store;
	char *sock_path;
	char *image_dir;
	uint64_t epoch_usec;
	int listen_fd;
	sd_event_source *listen, *checkpoint;
	struct vm *vms;
};

static uint8_t *pm_frame_ptr(struct engine *en, uint64_t f)
{
	return (uint8_t *)en->pool->addr + pm_store_frames_offset(en->store) + f * PM_PAGE_SIZE;
}

/* ---- epochs ----------------------------------------------------------------------------- */

/* Stop every vCPU (at an instruction boundary, or waiting on us for a fault). */
static int pause_vm(struct vm *vm, uint64_t epoch)
{
	uint64_t deadline = now_usec(CLOCK_MONOTONIC) + PAUSE_TIMEOUT_US;

	vm->shared->epoch = epoch;
	__atomic_store_n(&vm->shared->pause, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&vm->shared->parked, __ATOMIC_SEQ_CST) < vm->n_vcpus) {
		if (__atomic_load_n(&vm->shared->stop, __ATOMIC_ACQUIRE))
			return 0; /* the workload ended: nobody runs */
		if (now_usec(CLOCK_MONOTONIC) > deadline) {
			__atomic_store_n(&vm->shared->pause, 0, __ATOMIC_SEQ_CST);
			return log_warning_errno(ETIMEDOUT, "VM '%s': vCPUs did not stop", vm->name);
		}
		nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
	}
	return 0;
}

static void resume_vm(struct vm *vm)
{
	__atomic_store_n(&vm->shared->pause, 0, __ATOMIC_SEQ_CST);
}

/*
 * Harvest and commit one epoch: with the VM paused, collect and clear the dirty and accessed
 * bits and copy the dirty DRAM pages to the staging buffer; resume; log and commit them.
 */
static int commit_epoch(struct vm *vm, bool paused_already)
{
	uint64_t t0 = now_usec(CLOCK_MONOTONIC), pause_us, n = 0;
	uint64_t words = (vm->n_pages + 63) / 64;
	_cleanup_free_ uint64_t *dirty = calloc(words, 8), *accessed = calloc(words, 8);
	int r;

	if (!dirty || !accessed)
		return log_oom();
	if (!paused_already) {
		r = pause_vm(vm, vm->epoch + 1);
		if (r < 0)
			return r;
	}
	for (uint64_t g = 0; g < vm->n_pages; g++) {
		uint64_t e = atomic_fetch_and(&vm->ept[g], ~(SIM_EPT_DIRTY | SIM_EPT_ACCESSED));

		if (e & SIM_EPT_ACCESSED)
			accessed[g / 64] |= UINT64_C(1) << (g % 64);
		if (!(e & SIM_EPT_DIRTY) || pt_tier(&vm->pt, g) != PT_TIER_DRAM)
			continue;
		dirty[g / 64] |= UINT64_C(1) << (g % 64);
		memcpy(vm->stage + n * PM_PAGE_SIZE, vm->dram + g * PM_PAGE_SIZE, PM_PAGE_SIZE);
		vm->pages[n] = (struct pm_page){ .gfn = g, .data = vm->stage + n * PM_PAGE_SIZE };
		n++;
	}
	if (!paused_already)
		resume_vm(vm);
	pause_us = now_usec(CLOCK_MONOTONIC) - t0;
	vm->pause_usec_max = MAX(vm->pause_usec_max, pause_us);
	vm->pause_usec_sum += pause_us;
	pt_epoch_shift(&vm->pt, dirty, accessed);
	if (n == 0)
		return 0;
	r = pm_commit(vm->en->store, vm->dev, vm->epoch + 1, vm->pages, n, NULL, 0);
	if (r < 0)
		return log_error_errno(r, "VM '%s': commit of epoch %" PRIu64 " failed: %m", vm->name,
				       vm->epoch + 1);
	vm->epoch++;
	vm->epochs++;
	vm->dirty_pages += n;
	for (uint64_t i = 0; i < n; i++)
		pt_set_flags(&vm->pt, vm->pages[i].gfn, PT_COMMITTED, PT_DIRTY);
	return 0;
}

static int on_epoch(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct vm *vm = userdata;

	(void)usec;
	(void)commit_epoch(vm, false);
	return sd_event_source_set_time_relative(s, vm->en->epoch_usec);
}

/* ---- faults ----------------------------------------------------------------------------- */

static void map_dram(struct vm *vm, uint64_t g)
{
	pt_place(&vm->pt, g, PT_TIER_DRAM, (uint32_t)g, PT_COMMITTED | PT_WRITABLE);
	atomic_store(&vm->ept[g], SIM_EPT_PRESENT | SIM_EPT_WRITABLE | g);
}

/* First touch, or a write to a page on a read-only PM frame (promotion). */
static int resolve_fault(struct vm *vm, uint64_t g, bool write)
{
	struct engine *en = vm->en;
	uint64_t e = atomic_load(&vm->ept[g]), f;

	vm->faults++;
	if ((e & SIM_EPT_PRESENT) && (!write || (e & SIM_EPT_WRITABLE)))
		return 0; /* another vCPU's fault resolved it */
	if (e & SIM_EPT_PRESENT) {
		/* promote: the PM frame stays until a checkpoint applies the newer version */
		memcpy(vm->dram + g * PM_PAGE_SIZE, pm_frame_ptr(en, e & SIM_EPT_FRAME_MASK),
		       PM_PAGE_SIZE);
		vm->promotions++;
		map_dram(vm, g);
		return 0;
	}
	if (pm_frame_lookup(en->store, vm->dev, g, &f) == 0 && !write) {
		pt_place(&vm->pt, g, PT_TIER_PM, (uint32_t)f, PT_COMMITTED);
		atomic_store(&vm->ept[g], SIM_EPT_PRESENT | SIM_EPT_PM | f);
		return 0;
	}
	/* the committed content: its PM frame or the device image */
	if (pm_device_read_page(en->store, vm->dev, g, vm->dram + g * PM_PAGE_SIZE) < 0)
		return -EIO;
	map_dram(vm, g);
	return 0;
}

/* ---- the guest channel ------------------------------------------------------------------ */

static void vm_free(struct vm *vm)
{
	struct vm **p;

	if (!vm)
		return;
	for (p = &vm->en->vms; *p && *p != vm; p = &(*p)->next)
		;
	if (*p)
		*p = vm->next;
	sd_event_source_disable_unref(vm->io);
	sd_event_source_disable_unref(vm->epoch_timer);
	safe_close(vm->conn);
	if (vm->shared)
		munmap(vm->shared, vm->ept_size);
	if (vm->dram)
		munmap(vm->dram, vm->n_pages * PM_PAGE_SIZE);
	safe_close(vm->ept_fd);
	safe_close(vm->dram_fd);
	pt_done(&vm->pt);
	free(vm->stage);
	free(vm->pages);
	free(vm);
}

/* The guest is gone or done: its last epoch is committed before it is let go. */
static void vm_detach(struct vm *vm, const char *why)
{
	(void)commit_epoch(vm, true);
	log_info("VM '%s' detached (%s) at epoch %" PRIu64, vm->name, why, vm->epoch);
	vm_free(vm);
}

static int reply(struct vm *vm, struct sim_msg *m, uint32_t type, int status)
{
	m->type = type;
	m->status = status;
	return send(vm->conn, m, sizeof(*m), MSG_NOSIGNAL) == (ssize_t)sizeof(*m) ? 0 : -EPIPE;
}

static int on_guest(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct vm *vm = userdata;
	struct sim_msg m;
	ssize_t n;
	int r = 0;

	(void)s;
	(void)revents;
	n = recv(fd, &m, sizeof(m), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n != (ssize_t)sizeof(m) || m.type == SIM_MSG_BYE) {
		vm_detach(vm, n == (ssize_t)sizeof(m) ? "guest finished" : "connection lost");
		return 0;
	}
	switch (m.type) {
	case SIM_MSG_FAULT:
		r = m.gfn < vm->n_pages ? resolve_fault(vm, m.gfn, m.write) : -ERANGE;
		r = reply(vm, &m, SIM_MSG_FAULT_DONE, r);
		break;
	case SIM_MSG_PERSIST:
		/* epoch mode: stores become durable at the next epoch boundary */
		r = reply(vm, &m, SIM_MSG_PERSIST_DONE, 0);
		break;
	default:
		log_warning("VM '%s': unexpected message type %u, detaching", vm->name, m.type);
		r = -EPROTO;
	}
	if (r < 0)
		vm_detach(vm, "protocol error");
	return 0;
}

static int make_memfd(const char *name, uint64_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd >= 0 && ftruncate(fd, (off_t)size) < 0)
		fd = safe_close(fd);
	return fd;
}

static int find_or_create_device(struct engine *en, struct vm *vm)
{
	char image[PATH_MAX];
	struct pm_device_info info = { .name = vm->name, .size_pages = vm->n_pages,
				       .mode = PM_MODE_EPOCH, .image_path = image };

	if (pm_device_find(en->store, vm->name, &vm->dev) == 0) {
		if (pm_device_size_pages(en->store, vm->dev) != vm->n_pages)
			return log_error_errno(EINVAL,
					       "VM '%s' asks for %" PRIu64 " pages but its device "
					       "has %" PRIu64,
					       vm->name, vm->n_pages,
					       pm_device_size_pages(en->store, vm->dev));
		return 0;
	}
	snprintf(image, sizeof(image), "%s/%s.img", en->image_dir, vm->name);
	return pm_device_create(en->store, &info, &vm->dev);
}

static int setup_vm(struct engine *en, struct vm *vm)
{
	int r;

	vm->ept_size = SIM_EPT_OFFSET + vm->n_pages * sizeof(uint64_t);
	vm->ept_fd = make_memfd("vpmd-ept", vm->ept_size);
	vm->dram_fd = make_memfd("vpmd-vm-dram", vm->n_pages * PM_PAGE_SIZE);
	if (vm->ept_fd < 0 || vm->dram_fd < 0)
		return log_error_errno(errno, "VM '%s': cannot create its memory: %m", vm->name);
	vm->shared = mmap(NULL, vm->ept_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->ept_fd, 0);
	vm->dram = mmap(NULL, vm->n_pages * PM_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
			vm->dram_fd, 0);
	if (vm->shared == MAP_FAILED || vm->dram == MAP_FAILED) {
		vm->shared = NULL;
		vm->dram = NULL;
		return log_error_errno(errno, "VM '%s': cannot map its memory: %m", vm->name);
	}
	*vm->shared = (struct sim_shared){ .magic = SIM_MAGIC, .version = SIM_PROTO_VERSION,
					   .n_pages = vm->n_pages, .n_vcpus = vm->n_vcpus };
	vm->ept = (_Atomic uint64_t *)(void *)((uint8_t *)vm->shared + SIM_EPT_OFFSET);
	vm->stage = malloc(vm->n_pages * PM_PAGE_SIZE);
	vm->pages = calloc(vm->n_pages, sizeof(*vm->pages));
	if (!vm->stage || !vm->pages || pt_init(&vm->pt, vm->n_pages) < 0)
		return log_oom();
	r = find_or_create_device(en, vm);
	if (r < 0)
		return log_error_errno(r, "VM '%s': no device for it in pool '%s': %m", vm->name,
				       en->pool->config.name);
	vm->epoch = pm_device_last_epoch(en->store, vm->dev);
	return 0;
}

static int welcome(struct vm *vm, int pool_fd)
{
	struct sim_msg m = { .type = SIM_MSG_WELCOME, .ept_size = vm->ept_size,
			     .dram_size = vm->n_pages * PM_PAGE_SIZE,
			     .pool_size = vm->en->pool->size,
			     .pm_frames_offset = pm_store_frames_offset(vm->en->store) };
	char cbuf[CMSG_SPACE(3 * sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	int fds[3] = { vm->ept_fd, vm->dram_fd, pool_fd };

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	return sendmsg(vm->conn, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(m) ? 0 : -EPIPE;
}

/* A VM name also names its image file: letters, digits, '_', '-' and '.' (not first). */
static bool valid_vm_name(const char *n)
{
	if (!n[0] || n[0] == '.')
		return false;
	for (const char *p = n; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'))
			return false;
	return true;
}

static void refuse(int conn, int error)
{
	struct sim_msg m = { .type = SIM_MSG_WELCOME, .status = -abs(error) };

	(void)!send(conn, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT);
}

static int on_connect(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct engine *en = userdata;
	_cleanup_close_ int conn = -1, pool_fd = -1;
	struct sim_msg m;
	struct vm *vm;
	int r;

	(void)s;
	(void)revents;
	conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	if (conn < 0)
		return 0;
	/* a guest introduces itself at once; bounded so a silent peer cannot stall vpmd */
	if (setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ .tv_sec = 1 },
		       sizeof(struct timeval)) < 0 ||
	    recv(conn, &m, sizeof(m), 0) != (ssize_t)sizeof(m) || m.type != SIM_MSG_HELLO)
		return 0;
	m.name[SIM_NAME_MAX - 1] = '\0';
	if (m.reattach) {
		/* adopting a running guest's memory after a restart is not supported yet */
		log_warning("Guest '%s' asks to re-attach; not supported yet, refusing", m.name);
		refuse(conn, EOPNOTSUPP);
		return 0;
	}
	if (m.n_pages < 4 || m.n_pages > (UINT64_C(1) << 24) || m.n_vcpus == 0 ||
	    m.n_vcpus > 64 || !valid_vm_name(m.name)) {
		refuse(conn, EINVAL);
		return 0;
	}
	for (vm = en->vms; vm; vm = vm->next)
		if (streq(vm->name, m.name)) {
			log_warning("Guest '%s' is attached already; refusing a second one", m.name);
			refuse(conn, EEXIST);
			return 0;
		}
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return log_oom(), 0;
	vm->en = en;
	vm->conn = -1;
	vm->ept_fd = vm->dram_fd = -1;
	snprintf(vm->name, sizeof(vm->name), "%s", m.name);
	vm->n_pages = m.n_pages;
	vm->n_vcpus = m.n_vcpus;
	vm->next = en->vms;
	en->vms = vm;
	r = setup_vm(en, vm);
	/*
	 * A fresh open, not a dup: the guest's mapping keeps its open file alive, and vpmd's
	 * lock on the pool belongs to vpmd's own open file, which must die with vpmd.
	 */
	pool_fd = open(en->pool->config.path, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (r >= 0 && pool_fd < 0)
		r = -errno;
	if (r >= 0) {
		vm->conn = TAKE_FD(conn);
		r = welcome(vm, pool_fd);
	}
	if (r >= 0)
		r = sd_event_add_io(en->event, &vm->io, vm->conn, EPOLLIN, on_guest, vm);
	if (r >= 0)
		r = sd_event_add_time_relative(en->event, &vm->epoch_timer, CLOCK_MONOTONIC,
					       en->epoch_usec, 0, on_epoch, vm);
	if (r >= 0)
		r = sd_event_source_set_enabled(vm->epoch_timer, SD_EVENT_ON);
	if (r < 0) {
		if (conn >= 0)
			refuse(conn, -r);
		vm_free(vm);
		return 0;
	}
	log_info("VM '%s' attached: %" PRIu64 " pages, %u vCPUs, device %u, from epoch %" PRIu64,
		 vm->name, vm->n_pages, vm->n_vcpus, vm->dev, vm->epoch);
	return 0;
}

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

int engine_new(sd_event *event, const struct vpmd_config *c, struct pool *pool,
	       struct engine **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
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
	en->epoch_usec = c->epoch_interval_usec;
	en->listen_fd = -1;
	if (asprintf(&en->sock_path, "%s/sim.sock", c->state_dir) < 0 ||
	    asprintf(&en->image_dir, "%s/images", c->state_dir) < 0) {
		engine_free(en);
		return log_oom();
	}
	if (mkdir(en->image_dir, 0750) < 0 && errno != EEXIST) {
		r = log_error_errno(errno, "Cannot create '%s': %m", en->image_dir);
		engine_free(en);
		return r;
	}
	(void)unlink(en->sock_path); /* ours: the state directory is locked by this vpmd */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", en->sock_path);
	en->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (en->listen_fd < 0 || bind(en->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(en->listen_fd, 16) < 0 || chmod(en->sock_path, 0600) < 0) {
		r = log_error_errno(errno, "Cannot listen on '%s': %m", en->sock_path);
		engine_free(en);
		return r;
	}
	r = sd_event_add_io(event, &en->listen, en->listen_fd, EPOLLIN, on_connect, en);
	if (r >= 0)
		r = sd_event_add_time_relative(event, &en->checkpoint, CLOCK_MONOTONIC,
					       CHECKPOINT_USEC, 0, on_checkpoint, en);
	if (r >= 0)
		r = sd_event_source_set_enabled(en->checkpoint, SD_EVENT_ON);
	if (r < 0) {
		engine_free(en);
		return log_error_errno(r, "Cannot set up the sim backend: %m");
	}
	log_info("Sim backend: guests attach on %s; devices in pool '%s'", en->sock_path,
		 pool->config.name);
	*ret = en;
	return 0;
}

struct engine *engine_free(struct engine *en)
{
	if (!en)
		return NULL;
	while (en->vms)
		vm_detach(en->vms, "vpmd stopping");
	sd_event_source_disable_unref(en->listen);
	sd_event_source_disable_unref(en->checkpoint);
	safe_close(en->listen_fd);
	if (en->sock_path)
		(void)unlink(en->sock_path);
	free(en->sock_path);
	free(en->image_dir);
	free(en);
	return NULL;
}

void engine_set_epoch_interval(struct engine *en, uint64_t usec)
{
	en->epoch_usec = usec; /* each VM's timer picks it up when it next fires */
}

struct pool *engine_pool(struct engine *en)
{
	return en ? en->pool : NULL;
}

struct json_object *engine_vms_json(struct engine *en)
{
	_cleanup_json_ struct json_object *a = json_object_new_array();

	if (!a)
		return NULL;
	for (struct vm *vm = en ? en->vms : NULL; vm; vm = vm->next) {
		struct json_object *o = json_object_new_object();
		int r = 0;

		if (json_append(a, o) < 0)
			return NULL;
		r |= json_add(o, "name", json_object_new_string(vm->name));
		r |= json_add(o, "backend", json_object_new_string("sim"));
		r |= json_add(o, "mode", json_object_new_string("epoch"));
		r |= json_add(o, "pages", json_object_new_uint64(vm->n_pages));
		r |= json_add(o, "vcpus", json_object_new_int((int)vm->n_vcpus));
		r |= json_add(o, "dram_pages", json_object_new_uint64(vm->pt.count[PT_TIER_DRAM]));
		r |= json_add(o, "pm_pages", json_object_new_uint64(vm->pt.count[PT_TIER_PM]));
		r |= json_add(o, "epoch", json_object_new_uint64(vm->epoch));
		r |= json_add(o, "epochs", json_object_new_uint64(vm->epochs));
		r |= json_add(o, "dirty_pages", json_object_new_uint64(vm->dirty_pages));
		r |= json_add(o, "faults", json_object_new_uint64(vm->faults));
		r |= json_add(o, "promotions", json_object_new_uint64(vm->promotions));
		r |= json_add(o, "pause_usec_max", json_object_new_uint64(vm->pause_usec_max));
		r |= json_add(o, "ops", json_object_new_uint64(vm->shared->ops));
		r |= json_add(o, "page_table_bytes", json_object_new_uint64(pt_bytes(&vm->pt)));
		if (r)
			return NULL;
	}
	return TAKE_PTR(a);
}
