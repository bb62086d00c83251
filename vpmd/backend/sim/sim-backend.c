// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "bitmap.h"
#include "engine.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "sim-backend.h"
#include "sim-proto.h"
#include "socket-util.h"

#define PAGE             4096u
/* a vCPU parks within one guest operation (microseconds); one that does not is not waited for */
#define PAUSE_TIMEOUT_US (250 * USEC_PER_MSEC)
#define MAX_GUESTS       256

struct sim_vm {
	struct backend_vm b;
	struct sim_backend *sb;
	struct sim_vm *next;
	int conn;
	bool broken; /* an answer could not be sent: the guest is let go */
	sd_event_source *io;
	int ept_fd;
	size_t ept_size;
	struct sim_shared *shared;
	_Atomic uint64_t *ept;
	uint64_t maps; /* calls of map(), for VPM_SIM_FAIL_MAP_EVERY */
};

/*
 * Fault injection, as a simulated EPT can do and KVM's cannot on demand: with
 * VPM_SIM_FAIL_MAP_EVERY=N in vpmd's environment every Nth remap of a VM fails (EIO) and
 * changes nothing, as a failed KVM_VPM_MAP does (tests: the engine's recovery from it).
 */
static unsigned long fail_map_every;

struct sim_backend {
	struct engine *en;
	sd_event *event;
	char *sock_path;
	int listen_fd;
	sd_event_source *listen;
	struct sim_vm *vms;
	unsigned n_vms;
};

static struct sim_vm *sim_vm_of(struct backend_vm *b)
{
	return (struct sim_vm *)b; /* b is the first member */
}

/* ---- operations ------------------------------------------------------------------------- */

static uint64_t ept_entry(const struct backend_map *m)
{
	switch (m->tier) {
	case BACKEND_DRAM:
		return SIM_EPT_PRESENT | (m->writable ? SIM_EPT_WRITABLE : 0) | m->frame;
	case BACKEND_PM:
		return SIM_EPT_PRESENT | SIM_EPT_PM | (m->writable ? SIM_EPT_WRITABLE : 0) | m->frame;
	case BACKEND_UNMAPPED:
	default:
		return 0;
	}
}

/* The accessed and dirty bits the guest set survive a remap: the next harvest sees them. */
static int sim_map(struct backend_vm *b, const struct backend_map *m, size_t n)
{
	struct sim_vm *s = sim_vm_of(b);

	/* all or nothing, as KVM_VPM_MAP: every entry checked before any changes */
	for (size_t i = 0; i < n; i++)
		if (m[i].gfn >= b->n_pages)
			return -ERANGE;
	if (fail_map_every && ++s->maps % fail_map_every == 0)
		return -EIO;
	for (size_t i = 0; i < n; i++) {
		uint64_t old = atomic_load(&s->ept[m[i].gfn]), new;

		do
			new = ept_entry(&m[i]) | (old & (SIM_EPT_ACCESSED | SIM_EPT_DIRTY));
		while (!atomic_compare_exchange_weak(&s->ept[m[i].gfn], &old, new));
	}
	return 0;
}

static void sim_lookup(struct backend_vm *b, uint64_t gfn, struct backend_map *ret)
{
	struct sim_vm *s = sim_vm_of(b);
	uint64_t e = atomic_load(&s->ept[gfn]);

	*ret = (struct backend_map){ .gfn = gfn, .frame = e & SIM_EPT_FRAME_MASK,
				     .writable = e & SIM_EPT_WRITABLE };
	if (e & SIM_EPT_PRESENT)
		ret->tier = (e & SIM_EPT_PM) ? BACKEND_PM : BACKEND_DRAM;
}

/* Every vCPU at an operation boundary, waiting on an event, or done. */
static int sim_pause(struct backend_vm *b, uint64_t epoch)
{
	struct sim_vm *s = sim_vm_of(b);
	uint64_t deadline = now_usec(CLOCK_MONOTONIC) + PAUSE_TIMEOUT_US;

	s->shared->epoch = epoch;
	__atomic_store_n(&s->shared->pause, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&s->shared->parked, __ATOMIC_SEQ_CST) < b->n_vcpus) {
		if (__atomic_load_n(&s->shared->stop, __ATOMIC_ACQUIRE))
			return 0; /* the workload ended: nobody runs */
		if (now_usec(CLOCK_MONOTONIC) > deadline) {
			__atomic_store_n(&s->shared->pause, 0, __ATOMIC_SEQ_CST);
			sim_pause_wake(&s->shared->pause);
			return -ETIMEDOUT;
		}
		/* a vCPU parks within one guest operation: microseconds */
		sched_yield();
	}
	return 0;
}

static void sim_harvest(struct backend_vm *b, uint64_t *dirty, uint64_t *accessed)
{
	struct sim_vm *s = sim_vm_of(b);

	for (uint64_t g = 0; g < b->n_pages; g++) {
		uint64_t e;

		if (!(atomic_load_explicit(&s->ept[g], memory_order_relaxed) &
		      (SIM_EPT_ACCESSED | SIM_EPT_DIRTY)))
			continue;
		e = atomic_fetch_and(&s->ept[g], ~(SIM_EPT_DIRTY | SIM_EPT_ACCESSED));
		if (e & SIM_EPT_ACCESSED)
			bit_set(accessed, g);
		if (e & SIM_EPT_DIRTY)
			bit_set(dirty, g);
	}
}

static void sim_sample_accessed(struct backend_vm *b, uint64_t *accessed)
{
	struct sim_vm *s = sim_vm_of(b);

	for (uint64_t g = 0; g < b->n_pages; g++) {
		if (!(atomic_load_explicit(&s->ept[g], memory_order_relaxed) & SIM_EPT_ACCESSED))
			continue;
		if (atomic_fetch_and(&s->ept[g], ~SIM_EPT_ACCESSED) & SIM_EPT_ACCESSED)
			bit_set(accessed, g);
	}
}

static void sim_resume(struct backend_vm *b)
{
	struct sim_vm *s = sim_vm_of(b);

	__atomic_store_n(&s->shared->pause, 0, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&s->shared->sleepers, __ATOMIC_SEQ_CST))
		sim_pause_wake(&s->shared->pause);
}

static int sim_complete(struct backend_vm *b, const struct backend_event *ev, int status)
{
	static const uint32_t done[] = {
		[BACKEND_EVENT_FAULT] = SIM_MSG_FAULT_DONE,
		[BACKEND_EVENT_PERSIST] = SIM_MSG_PERSIST_DONE,
		[BACKEND_EVENT_DISCARD] = SIM_MSG_DISCARD_DONE,
	};
	struct sim_msg m = { .type = done[ev->type], .vcpu = ev->vcpu, .gfn = ev->gfn,
			     .offset = ev->offset, .len = ev->len,
			     .status = backend_fault_status(ev, status) };
	struct sim_vm *s = sim_vm_of(b);

	/* a guest has one request per vCPU in flight: a full socket means it does not read */
	if (send(s->conn, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof(m)) {
		s->broken = true;
		return -EPIPE;
	}
	return 0;
}

static void sim_guest_stats(struct backend_vm *b, struct backend_guest_stats *ret)
{
	struct sim_shared *sh = sim_vm_of(b)->shared;

	ret->ops = __atomic_load_n(&sh->ops, __ATOMIC_RELAXED);
	ret->modeled_ns = __atomic_load_n(&sh->modeled_ns, __ATOMIC_RELAXED);
	ret->writes = __atomic_load_n(&sh->writes, __ATOMIC_RELAXED);
}

static const struct backend_ops sim_ops = {
	.name = "sim",
	.map = sim_map,
	.lookup = sim_lookup,
	.pause = sim_pause,
	.harvest = sim_harvest,
	.resume = sim_resume,
	.sample_accessed = sim_sample_accessed,
	.complete = sim_complete,
	.guest_stats = sim_guest_stats,
};

/* ---- guests ----------------------------------------------------------------------------- */

static void sim_vm_free(struct sim_vm *s)
{
	struct sim_vm **p;

	for (p = &s->sb->vms; *p && *p != s; p = &(*p)->next)
		;
	if (*p) {
		*p = s->next;
		s->sb->n_vms--;
	}
	sd_event_source_disable_unref(s->io);
	safe_close(s->conn);
	if (s->shared)
		munmap(s->shared, s->ept_size);
	if (s->b.dram)
		munmap(s->b.dram, s->b.n_pages * PAGE);
	safe_close(s->ept_fd);
	safe_close(s->b.dram_fd);
	free(s);
}

/* The guest is gone (gone = its vCPUs no longer run) or vpmd lets it go. */
static void sim_vm_end(struct sim_vm *s, const char *why, bool gone)
{
	if (s->b.vm)
		engine_vm_detach(s->b.vm, why, gone);
	sim_vm_free(s);
}

static int on_guest(sd_event_source *es, int fd, uint32_t revents, void *userdata)
{
	struct sim_vm *s = userdata;
	struct backend_event ev = {};
	struct sim_msg m;
	ssize_t n;

	(void)es;
	(void)revents;
	n = recv(fd, &m, sizeof(m), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n != (ssize_t)sizeof(m) || m.type == SIM_MSG_BYE) {
		bool bye = n == (ssize_t)sizeof(m);

		/* a guest that said BYE has stopped its vCPUs; one that hung up has exited */
		sim_vm_end(s, bye ? "guest finished" : "connection lost", true);
		return 0;
	}
	switch (m.type) {
	case SIM_MSG_FAULT:
		ev.type = BACKEND_EVENT_FAULT;
		break;
	case SIM_MSG_PERSIST:
		ev.type = BACKEND_EVENT_PERSIST;
		break;
	case SIM_MSG_DISCARD:
		ev.type = BACKEND_EVENT_DISCARD;
		break;
	default:
		log_warning("VM '%s': unexpected message type %u from its guest; detaching", s->b.name,
			    m.type);
		sim_vm_end(s, "protocol error", false);
		return 0;
	}
	if (m.vcpu >= s->b.n_vcpus) {
		log_warning("VM '%s': event from vCPU %u of %u; detaching", s->b.name, m.vcpu,
			    s->b.n_vcpus);
		sim_vm_end(s, "protocol error", false);
		return 0;
	}
	ev.vcpu = m.vcpu;
	ev.gfn = m.gfn;
	ev.offset = m.offset;
	ev.len = m.len;
	ev.write = m.write;
	engine_vm_event(s->b.vm, &ev);
	if (s->broken) {
		log_warning("VM '%s': its guest does not take vpmd's answers; detaching", s->b.name);
		sim_vm_end(s, "guest not reading", false);
	}
	return 0;
}

/*
 * Sealed against shrinking and growing: the guest gets these fds read-write, and a guest that
 * truncated one would make vpmd's next access to it a SIGBUS.
 */
#define SIM_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

static int make_memfd(const char *name, uint64_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd >= 0 && (ftruncate(fd, (off_t)size) < 0 || fcntl(fd, F_ADD_SEALS, SIM_SEALS) < 0))
		fd = safe_close(fd);
	return fd;
}

static int map_memory(struct sim_vm *s)
{
	s->shared = mmap(NULL, s->ept_size, PROT_READ | PROT_WRITE, MAP_SHARED, s->ept_fd, 0);
	if (s->shared == MAP_FAILED) {
		s->shared = NULL;
		return -errno;
	}
	s->b.dram = mmap(NULL, s->b.n_pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
			 s->b.dram_fd, 0);
	if (s->b.dram == MAP_FAILED) {
		s->b.dram = NULL;
		return -errno;
	}
	s->ept = (_Atomic uint64_t *)(void *)((uint8_t *)s->shared + SIM_EPT_OFFSET);
	return 0;
}

static int create_memory(struct sim_vm *s)
{
	int r;

	s->ept_fd = make_memfd("vpmd-ept", s->ept_size);
	s->b.dram_fd = make_memfd("vpmd-vm-dram", s->b.n_pages * PAGE);
	if (s->ept_fd < 0 || s->b.dram_fd < 0)
		return -errno;
	r = map_memory(s);
	if (r < 0)
		return r;
	*s->shared = (struct sim_shared){ .magic = SIM_MAGIC, .version = SIM_PROTO_VERSION,
					  .n_pages = s->b.n_pages, .n_vcpus = s->b.n_vcpus };
	return 0;
}

/* One of our memfds: the size expected, and sealed so that it stays that size. */
static bool fd_is_sealed_memfd(int fd, uint64_t size)
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);

	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == size &&
	       seals >= 0 && (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_SHRINK | F_SEAL_GROW);
}

/* A running guest's own memfds: checked before anything of them is believed. */
static int adopt_memory(struct sim_vm *s, int ept_fd, int dram_fd)
{
	int r;

	s->ept_fd = ept_fd;
	s->b.dram_fd = dram_fd;
	if (!fd_is_sealed_memfd(ept_fd, s->ept_size) ||
	    !fd_is_sealed_memfd(dram_fd, s->b.n_pages * PAGE))
		return -EBADF;
	r = map_memory(s);
	if (r < 0)
		return r;
	if (s->shared->magic != SIM_MAGIC || s->shared->version != SIM_PROTO_VERSION ||
	    s->shared->n_pages != s->b.n_pages || s->shared->n_vcpus != s->b.n_vcpus)
		return -EPROTO;
	return 0;
}

static int welcome(struct sim_vm *s, int pool_fd)
{
	struct engine *en = s->sb->en;
	struct sim_msg m = { .type = SIM_MSG_WELCOME, .ept_size = s->ept_size,
			     .dram_size = s->b.n_pages * PAGE,
			     .pool_size = engine_pool(en)->size,
			     .pm_frames_offset = engine_pm_frames_offset(en) };
	int fds[3] = { s->ept_fd, s->b.dram_fd, pool_fd };

	/* a re-attaching guest runs on its own memfds and has the pool mapped */
	return sim_send(s->conn, &m, fds, s->b.reattached ? 0 : 3) < 0 ? -EPIPE : 0;
}


static void refuse(int conn, int error)
{
	struct sim_msg m = { .type = SIM_MSG_WELCOME, .status = -abs(error) };

	(void)!send(conn, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* HELLO: who the guest is; a re-attaching guest's two memfds come with it. */
static int read_hello(int conn, struct sim_msg *m, int *ret_ept_fd, int *ret_dram_fd)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;

	*ret_ept_fd = *ret_dram_fd = -1;
	/* a guest introduces itself at once; bounded so a silent peer cannot stall vpmd */
	if (setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ .tv_usec = 200000 },
		       sizeof(struct timeval)) < 0)
		return -errno;
	if (recvmsg(conn, &mh, MSG_CMSG_CLOEXEC) != (ssize_t)sizeof(*m) || m->type != SIM_MSG_HELLO)
		return -EPROTO;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int fds[2] = { -1, -1 };

		memcpy(fds, CMSG_DATA(c), MIN(n, 2) * sizeof(int));
		for (size_t i = 2; i < n; i++) {
			int extra;

			memcpy(&extra, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			safe_close(extra);
		}
		if (n >= 2 && *ret_ept_fd < 0) {
			*ret_ept_fd = fds[0];
			*ret_dram_fd = fds[1];
		} else {
			safe_close(fds[0]);
			safe_close(fds[1]);
		}
	}
	m->name[SIM_NAME_MAX - 1] = '\0';
	m->mode[sizeof(m->mode) - 1] = '\0';
	m->policy[sizeof(m->policy) - 1] = '\0';
	return 0;
}

static void fill_backend_vm(struct sim_vm *s, const struct sim_msg *m)
{
	snprintf(s->b.name, sizeof(s->b.name), "%s", m->name);
	s->b.n_pages = m->n_pages;
	s->b.n_vcpus = m->n_vcpus;
	s->b.reattached = m->reattach;
	s->b.ratio = m->ratio;
	snprintf(s->b.mode, sizeof(s->b.mode), "%s", m->mode);
	snprintf(s->b.policy, sizeof(s->b.policy), "%s", m->policy);
	s->b.has_workload = m->wl_kind != 0;
	s->b.wl_kind = m->wl_kind ? m->wl_kind - 1 : 0;
	s->b.wl_write_pct = m->wl_write_pct;
	s->b.wl_theta = m->wl_theta;
	s->b.wl_seed = m->wl_seed;
	s->ept_size = SIM_EPT_OFFSET + m->n_pages * sizeof(uint64_t);
}

static int on_connect(sd_event_source *es, int fd, uint32_t revents, void *userdata)
{
	struct sim_backend *sb = userdata;
	_cleanup_close_ int conn = -1, pool_fd = -1, ept_fd = -1, dram_fd = -1;
	char err[256] = "";
	struct sim_msg m;
	struct sim_vm *s;
	int r;

	(void)es;
	(void)revents;
	conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	if (conn < 0)
		return 0;
	if (read_hello(conn, &m, &ept_fd, &dram_fd) < 0)
		return 0;
	if (m.n_pages < 4 || m.n_pages > (UINT64_C(1) << 24) || m.n_vcpus == 0 ||
	    m.n_vcpus > 64 || !engine_vm_name_valid(m.name) || (m.reattach && ept_fd < 0)) {
		refuse(conn, EINVAL);
		return 0;
	}
	if (sb->n_vms >= MAX_GUESTS) {
		log_warning("Guest '%s' refused: %u guests are attached already", m.name, sb->n_vms);
		refuse(conn, EMFILE);
		return 0;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return log_oom(), 0;
	s->sb = sb;
	s->conn = -1;
	s->ept_fd = s->b.dram_fd = -1;
	s->b.ops = &sim_ops;
	fill_backend_vm(s, &m);
	s->next = sb->vms;
	sb->vms = s;
	sb->n_vms++;
	if (m.reattach)
		r = adopt_memory(s, TAKE_FD(ept_fd), TAKE_FD(dram_fd));
	else
		r = create_memory(s);
	if (r < 0) {
		log_warning_errno(r, "Guest '%s': cannot %s its memory: %m", m.name,
				  m.reattach ? "adopt" : "create");
		refuse(conn, -r);
		sim_vm_free(s);
		return 0;
	}
	r = engine_vm_attach(sb->en, &s->b, err, sizeof(err));
	if (r < 0) {
		log_warning_errno(r, "Guest '%s' refused: %s", m.name, err);
		refuse(conn, -r);
		sim_vm_free(s);
		return 0;
	}
	/*
	 * A fresh open, not a dup: the guest's mapping keeps its open file alive, and vpmd's
	 * lock on the pool belongs to vpmd's own open file, which must die with vpmd.
	 */
	pool_fd = open(engine_pool(sb->en)->config.path, O_RDWR | O_CLOEXEC | O_NOCTTY);
	r = pool_fd < 0 ? -errno : 0;
	if (r >= 0) {
		s->conn = TAKE_FD(conn);
		r = welcome(s, pool_fd);
	}
	if (r >= 0)
		r = sd_event_add_io(sb->event, &s->io, s->conn, EPOLLIN, on_guest, s);
	if (r < 0) {
		log_warning_errno(r, "Guest '%s': cannot set up its channel: %m", m.name);
		if (conn >= 0)
			refuse(conn, -r);
		sim_vm_end(s, "set-up failed", false);
	}
	return 0;
}

int sim_backend_new(struct engine *en, sd_event *event, const char *sock_path,
		    struct sim_backend **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct sim_backend *sb;
	const char *fail;
	int r;

	if (strlen(sock_path) >= sizeof(sa.sun_path))
		return log_error_errno(ENAMETOOLONG, "Sim socket path '%s' is too long", sock_path);
	sb = calloc(1, sizeof(*sb));
	if (!sb)
		return log_oom();
	sb->en = en;
	sb->event = event;
	sb->listen_fd = -1;
	fail = getenv("VPM_SIM_FAIL_MAP_EVERY");
	if (fail) {
		fail_map_every = strtoul(fail, NULL, 10);
		log_warning("Sim backend: every %lu-th remap fails (VPM_SIM_FAIL_MAP_EVERY)",
			    fail_map_every);
	}
	sb->sock_path = strdup(sock_path);
	if (!sb->sock_path) {
		sim_backend_free(sb);
		return log_oom();
	}
	/* a socket left at the path is ours to replace: this vpmd holds the state directory */
	sb->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	r = sb->listen_fd < 0 ? -errno : socket_listen_at(sb->listen_fd, sock_path, 0600,
							   (gid_t)-1, 16);
	if (r < 0) {
		log_error_errno(r, "Cannot listen on '%s': %m", sock_path);
		sim_backend_free(sb);
		return r;
	}
	r = sd_event_add_io(event, &sb->listen, sb->listen_fd, EPOLLIN, on_connect, sb);
	if (r < 0) {
		sim_backend_free(sb);
		return log_error_errno(r, "Cannot watch '%s': %m", sock_path);
	}
	*ret = sb;
	return 0;
}

struct sim_backend *sim_backend_free(struct sim_backend *sb)
{
	if (!sb)
		return NULL;
	while (sb->vms)
		sim_vm_end(sb->vms, "vpmd stopping", false);
	sd_event_source_disable_unref(sb->listen);
	safe_close(sb->listen_fd);
	if (sb->sock_path)
		(void)unlink(sb->sock_path);
	free(sb->sock_path);
	free(sb);
	return NULL;
}
