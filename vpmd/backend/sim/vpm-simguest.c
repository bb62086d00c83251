// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vpm-simguest: one simulated VM of the sim backend. Its vCPU threads run a workload against
 * guest PM that they reach only through the EPT table shared with vpmd (see sim-proto.h):
 * absent or read-only entries are faults that vpmd resolves, a pause request stops every
 * vCPU at an operation boundary, and persist hints go to vpmd as messages. Each write takes
 * the page's lock, gets the next number of the guest-wide write sequence, and fills its bytes
 * with a pattern derived from that number, so a history of (sequence, gfn, offset, length)
 * records, kept per vCPU, lets a test rebuild the image after any prefix of writes.
 *
 *   vpm-simguest -s SOCKET -n NAME -p PAGES [-c VCPUS] [-w WORKLOAD] [-t THETA] [-W WRITE%]
 *                [-S SEED] [-o OPS | -d SECONDS] [-H HISTORY_DIR] [-l LATENCY]
 *                [-R REATTACH_SECONDS] [-r RATIO] [-m MODE] [-P POLICY] [-i PACE_USEC]
 *                [-L HALT_POLL_USEC] [-V]
 *
 * RATIO, MODE and POLICY are the VM's own settings (what a domain's configuration would say);
 * vpmd's saved settings for the VM override them. PACE_USEC is a think time after each
 * operation, for tests that want bounded histories. HALT_POLL_USEC is how long a vCPU stopped
 * by a pause polls for its end before it sleeps (default 200, KVM's default halt_poll_ns). -V
 * checks every read against what the guest wrote there (a private copy of its writes; tests).
 *
 * SIGTERM or SIGINT ends the workload early, cleanly (history complete, vpmd told).
 * If vpmd goes away the vCPUs go on with their mappings and the guest re-attaches when vpmd
 * is back (giving up after REATTACH_SECONDS, default 60). It prints one JSON line of results
 * at the end. Exit 0 when the workload ran to its end, 1 when it could not.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <stdatomic.h>
#include <unistd.h>

#include "bitmap.h"
#include "latency.h"
#include "macro.h"
#include "parse-util.h"
#include "random-util.h"
#include "sim-proto.h"
#include "workload.h"

#define PAGE 4096u

struct vcpu {
	struct guest *g;
	unsigned id;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool fault_done;
	int fault_status;
	bool pending;           /* a request waits for vpmd's answer */
	struct sim_msg request; /* ...this one: sent again after a re-attach */
	FILE *history;
	uint64_t ops, modeled_ns, sink;
	uint64_t reported_ns; /* of modeled_ns, what is in the shared table already */
	uint64_t last_seq;    /* of this vCPU's last write */
};

struct guest {
	const char *socket_path, *name, *history_dir;
	uint64_t n_pages, max_ops, seconds, seed;
	uint64_t reattach_seconds; /* how long to wait for a vpmd that went away */
	unsigned n_vcpus;
	uint64_t pace_usec;       /* think time after each operation (tests: bounded histories) */
	uint64_t halt_poll_usec;  /* a parked vCPU polls this long, then sleeps */
	double ratio;             /* the settings it asks for; 0 / "" = vpmd's defaults */
	const char *mode, *policy;
	struct workload_params wp;
	struct workload *wl;
	struct latency_model lat;
	int sock;
	int ept_fd, dram_fd; /* kept: a restarted vpmd adopts them on re-attach */
	struct sim_shared *shared;
	_Atomic uint64_t *ept;
	uint8_t *dram, *pool;
	uint64_t ept_size, dram_size, pool_size, pm_frames_offset;
	uint8_t *shadow;   /* -V: what this guest wrote, byte for byte */
	uint64_t *written; /* -V: a bit per cacheline this guest wrote */
	bool verify;
	uint8_t *page_lock;
	struct vcpu *vcpus;
	pthread_mutex_t send_lock;
	volatile bool failed;
};

/* SIGTERM or SIGINT: the workload ends at the next operation, as if its time were up. */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void die(const char *what)
{
	fprintf(stderr, "vpm-simguest: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int send_msg(struct guest *g, const struct sim_msg *m)
{
	ssize_t n;

	pthread_mutex_lock(&g->send_lock);
	n = send(g->sock, m, sizeof(*m), MSG_NOSIGNAL);
	pthread_mutex_unlock(&g->send_lock);
	return n == (ssize_t)sizeof(*m) ? 0 : -EPIPE;
}

/* Who the guest is, what it asks for, and (for the oracle policy) what it runs. */
static void fill_hello(const struct guest *g, struct sim_msg *m, bool reattach)
{
	*m = (struct sim_msg){ .type = SIM_MSG_HELLO, .n_pages = g->n_pages,
			       .n_vcpus = g->n_vcpus, .reattach = reattach, .ratio = g->ratio,
			       .wl_kind = g->wp.kind + 1, .wl_write_pct = g->wp.write_pct,
			       .wl_theta = g->wp.theta, .wl_seed = g->wp.seed };
	snprintf(m->name, sizeof(m->name), "%s", g->name);
	snprintf(m->mode, sizeof(m->mode), "%s", g->mode ? g->mode : "");
	snprintf(m->policy, sizeof(m->policy), "%s", g->policy ? g->policy : "");
}

/* HELLO, then WELCOME with three fds: the EPT table, the DRAM frames, the pool. */
static void attach(struct guest *g)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct sim_msg m;
	char cbuf[CMSG_SPACE(3 * sizeof(int))];
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	int fds[3];

	g->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (g->sock < 0)
		die("socket");
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", g->socket_path);
	if (connect(g->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die(g->socket_path);
	fill_hello(g, &m, false);
	if (send_msg(g, &m) < 0)
		die("hello");
	if (recvmsg(g->sock, &mh, MSG_CMSG_CLOEXEC) != (ssize_t)sizeof(m) || m.type != SIM_MSG_WELCOME)
		die("welcome");
	if (m.status < 0) {
		errno = -m.status;
		die("vpmd refused the guest");
	}
	c = CMSG_FIRSTHDR(&mh);
	if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(fds))) {
		errno = EPROTO;
		die("welcome without its three fds");
	}
	memcpy(fds, CMSG_DATA(c), sizeof(fds));
	g->ept_size = m.ept_size;
	g->dram_size = m.dram_size;
	g->pool_size = m.pool_size;
	g->pm_frames_offset = m.pm_frames_offset;
	g->shared = mmap(NULL, g->ept_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
	g->dram = g->dram_size ? mmap(NULL, g->dram_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[1], 0)
			       : NULL;
	g->pool = g->pool_size ? mmap(NULL, g->pool_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[2], 0)
			       : NULL;
	if (g->shared == MAP_FAILED || g->dram == MAP_FAILED || g->pool == MAP_FAILED)
		die("mmap");
	g->ept_fd = fds[0];
	g->dram_fd = fds[1];
	close(fds[2]); /* the pool stays mapped; a re-attaching vpmd opens it again */
	if (g->shared->magic != SIM_MAGIC || g->shared->version != SIM_PROTO_VERSION ||
	    g->shared->n_pages != g->n_pages) {
		errno = EPROTO;
		die("shared table");
	}
	g->ept = (_Atomic uint64_t *)(void *)((uint8_t *)g->shared + SIM_EPT_OFFSET);
}

/* The bytes behind an EPT entry, or NULL if it points outside the mappings. */
static uint8_t *frame_of(struct guest *g, uint64_t e)
{
	uint64_t f = e & SIM_EPT_FRAME_MASK;

	if (e & SIM_EPT_PM) {
		if (g->pm_frames_offset + (f + 1) * PAGE > g->pool_size)
			return NULL;
		return g->pool + g->pm_frames_offset + f * PAGE;
	}
	if ((f + 1) * PAGE > g->dram_size)
		return NULL;
	return g->dram + f * PAGE;
}

#define HALT_POLL_USEC_DEFAULT 200

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Stopped by a pause: the time counts as the vCPU's (modeled time includes stalls). */
static void park(struct vcpu *v)
{
	struct guest *g = v->g;
	uint64_t t0 = now_usec(CLOCK_MONOTONIC);

	if (v->history)
		fflush(v->history);
	__atomic_add_fetch(&g->shared->parked, 1, __ATOMIC_SEQ_CST);
	/* polled for a short pause; then asleep, not to take CPU time from a long pause's copy */
	while (__atomic_load_n(&g->shared->pause, __ATOMIC_ACQUIRE) && !g->failed &&
	       now_usec(CLOCK_MONOTONIC) - t0 < g->halt_poll_usec)
		cpu_relax();
	if (__atomic_load_n(&g->shared->pause, __ATOMIC_ACQUIRE) && !g->failed) {
		__atomic_add_fetch(&g->shared->sleepers, 1, __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&g->shared->pause, __ATOMIC_SEQ_CST) && !g->failed)
			sim_pause_wait(&g->shared->pause, 10000000L);
		__atomic_sub_fetch(&g->shared->sleepers, 1, __ATOMIC_SEQ_CST);
	}
	__atomic_sub_fetch(&g->shared->parked, 1, __ATOMIC_SEQ_CST);
	v->modeled_ns += (now_usec(CLOCK_MONOTONIC) - t0) * NSEC_PER_USEC;
}

/* Send a request (a fault or a persist hint) and wait for vpmd's answer; counts as parked. */
static int call_vpmd(struct vcpu *v, struct sim_msg *m)
{
	struct guest *g = v->g;
	int r;

	m->vcpu = v->id;
	/* a pause may close the epoch while this vCPU waits: its writes are in the history */
	if (v->history)
		fflush(v->history);
	pthread_mutex_lock(&v->lock);
	v->fault_done = false;
	v->request = *m;
	v->pending = true;
	pthread_mutex_unlock(&v->lock);
	__atomic_add_fetch(&g->shared->parked, 1, __ATOMIC_SEQ_CST);
	/* if vpmd is gone, the request goes again when it is back: wait either way */
	(void)send_msg(g, m);
	pthread_mutex_lock(&v->lock);
	while (!v->fault_done && !g->failed)
		pthread_cond_wait(&v->cond, &v->lock);
	v->pending = false;
	r = g->failed ? -EPIPE : v->fault_status;
	pthread_mutex_unlock(&v->lock);
	__atomic_sub_fetch(&g->shared->parked, 1, __ATOMIC_SEQ_CST);
	return r;
}

static void lock_page(struct guest *g, uint64_t gfn)
{
	while (__atomic_test_and_set(&g->page_lock[gfn], __ATOMIC_ACQUIRE))
		;
}

static void unlock_page(struct guest *g, uint64_t gfn)
{
	__atomic_clear(&g->page_lock[gfn], __ATOMIC_RELEASE);
}

/* -V: a write's bytes in the shadow copy, its cachelines marked written (page locked). */
static void remember_write(struct guest *g, const struct workload_access *a, const uint8_t *p)
{
	uint64_t base = a->gfn * PAGE;

	memcpy(g->shadow + base + a->offset, p + a->offset, a->len);
	for (uint64_t l = a->offset / 64; l <= (a->offset + a->len - 1) / 64; l++)
		bit_set(g->written, base / 64 + l);
}

/*
 * -V: a read sees every byte this guest wrote there last (page locked, so no write of its own
 * races it), whatever tier vpmd moved the page to meanwhile. 1: retry (the mapping went).
 */
static int verify_read(struct guest *g, const struct workload_access *a)
{
	uint64_t base = a->gfn * PAGE, e;
	const uint8_t *p;
	int r = 0;

	lock_page(g, a->gfn);
	e = atomic_load_explicit(&g->ept[a->gfn], memory_order_acquire);
	if (!(e & SIM_EPT_PRESENT) || !(p = frame_of(g, e))) {
		unlock_page(g, a->gfn);
		return 1;
	}
	for (uint64_t l = a->offset / 64; l <= (a->offset + a->len - 1) / 64 && !r; l++) {
		uint64_t line = base / 64 + l;

		if (!bit_test(g->written, line))
			continue;
		if (memcmp(p + l * 64, g->shadow + line * 64, 64) != 0) {
			fprintf(stderr, "vpm-simguest: %s: gfn %" PRIu64 " bytes %" PRIu64
				"..%" PRIu64 " (%s frame %" PRIu64 ") differ from what it wrote\n",
				g->name, a->gfn, l * 64, l * 64 + 63, (e & SIM_EPT_PM) ? "PM" : "DRAM",
				e & SIM_EPT_FRAME_MASK);
			r = -EIO;
		}
	}
	atomic_fetch_or_explicit(&g->ept[a->gfn], SIM_EPT_ACCESSED, memory_order_relaxed);
	unlock_page(g, a->gfn);
	return r;
}

static int access_page(struct vcpu *v, const struct workload_access *a)
{
	struct guest *g = v->g;
	uint64_t e;
	uint8_t *p;

	for (;;) {
		/* an access is an instruction: a pause stops the vCPU before it, even mid-op */
		if (__atomic_load_n(&g->shared->pause, __ATOMIC_ACQUIRE))
			park(v);
		e = atomic_load_explicit(&g->ept[a->gfn], memory_order_acquire);
		if ((e & SIM_EPT_PRESENT) && (!a->write || (e & SIM_EPT_WRITABLE)))
			break;
		struct sim_msg m = { .type = SIM_MSG_FAULT, .gfn = a->gfn, .write = a->write };
		int r = call_vpmd(v, &m);

		/* EAGAIN: not resolved for now, the access is tried again (KVM_RUN's EAGAIN) */
		if (r < 0 && r != -EAGAIN)
			return -EPIPE;
		if (r == -EAGAIN)
			nanosleep(&(struct timespec){ .tv_nsec = 50000 }, NULL);
		v->modeled_ns += g->lat.fault_ns;
	}
	p = frame_of(g, e);
	if (!p)
		return -EFAULT;
	if (a->write) {
		struct sim_history_record h = { .gfn = a->gfn, .offset = a->offset, .len = a->len };

		lock_page(g, a->gfn);
		/* the mapping may have moved while we waited for the lock */
		e = atomic_load_explicit(&g->ept[a->gfn], memory_order_acquire);
		if (!(e & SIM_EPT_WRITABLE) || !(p = frame_of(g, e))) {
			unlock_page(g, a->gfn);
			return 1; /* retry the access */
		}
		h.seq = __atomic_fetch_add(&g->shared->writes, 1, __ATOMIC_SEQ_CST);
		v->last_seq = h.seq;
		sim_write_pattern(p + a->offset, a->len, h.seq, g->seed);
		if (g->verify)
			remember_write(g, a, p);
		atomic_fetch_or_explicit(&g->ept[a->gfn], SIM_EPT_DIRTY | SIM_EPT_ACCESSED,
					 memory_order_release);
		unlock_page(g, a->gfn);
		if (v->history && fwrite(&h, sizeof(h), 1, v->history) != 1)
			return -EIO;
	} else if (g->verify) {
		int r = verify_read(g, a);

		if (r != 0)
			return r;
	} else {
		for (uint32_t i = 0; i < a->len; i += 64)
			v->sink += p[a->offset + i];
		atomic_fetch_or_explicit(&g->ept[a->gfn], SIM_EPT_ACCESSED, memory_order_relaxed);
	}
	v->modeled_ns += latency_cost(&g->lat, e & SIM_EPT_PM, a->write, a->len);
	if (a->persist) {
		struct sim_msg m = { .type = SIM_MSG_PERSIST, .vcpu = v->id, .gfn = a->gfn,
				     .offset = a->offset, .len = a->len };
		int r;

		if (v->history)
			fflush(v->history); /* a persisted write is in the history first */
		r = call_vpmd(v, &m);
		if (r < 0)
			return -EPIPE;
		/* vpmd committed it (hint mode): a hypercall, the log record, the commit record */
		if (r > 0)
			v->modeled_ns += g->lat.fault_ns + latency_cost(&g->lat, true, true, a->len) +
					 g->lat.pm_write_ns;
		if (v->history) {
			struct sim_history_record mark = { .seq = v->last_seq, .gfn = a->gfn,
							   .offset = a->offset, .len = a->len,
							   .flags = SIM_HIST_PERSISTED };

			if (fwrite(&mark, sizeof(mark), 1, v->history) != 1 ||
			    fflush(v->history) != 0)
				return -EIO;
		}
	}
	return 0;
}

/* Modeled time goes to the shared table as it accrues, so vpmd's stats see it live. */
static void report_modeled(struct vcpu *v)
{
	__atomic_add_fetch(&v->g->shared->modeled_ns, v->modeled_ns - v->reported_ns,
			   __ATOMIC_RELAXED);
	v->reported_ns = v->modeled_ns;
}

static void *vcpu_main(void *arg)
{
	struct vcpu *v = arg;
	struct guest *g = v->g;
	struct workload_cursor cur;
	struct workload_op op;
	uint64_t deadline = g->seconds ? now_usec(CLOCK_MONOTONIC) + g->seconds * USEC_PER_SEC : 0;

	workload_cursor_init(g->wl, v->id, g->n_vcpus, &cur);
	while (!__atomic_load_n(&g->shared->stop, __ATOMIC_ACQUIRE) && !g->failed &&
	       !stop_requested) {
		if (__atomic_load_n(&g->shared->pause, __ATOMIC_ACQUIRE))
			park(v);
		if ((g->max_ops && v->ops >= g->max_ops) ||
		    (deadline && (v->ops & 255) == 0 && now_usec(CLOCK_MONOTONIC) >= deadline))
			break;
		workload_next(g->wl, &cur, &op);
		for (unsigned i = 0; i < op.n; i++) {
			int r;

			while ((r = access_page(v, &op.a[i])) == 1)
				;
			if (r < 0) {
				g->failed = true;
				break;
			}
		}
		v->ops++;
		__atomic_add_fetch(&g->shared->ops, 1, __ATOMIC_RELAXED);
		if ((v->ops & 255) == 0)
			report_modeled(v);
		if (g->pace_usec)
			nanosleep(&(struct timespec){ .tv_sec = (time_t)(g->pace_usec / USEC_PER_SEC),
						      .tv_nsec = (long)(g->pace_usec % USEC_PER_SEC) *
								 1000 },
				  NULL);
	}
	if (v->history)
		fflush(v->history);
	report_modeled(v);
	/* a vCPU that is done stays stopped: vpmd's pauses must not wait for it */
	__atomic_add_fetch(&g->shared->parked, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void wake_all(struct guest *g)
{
	for (unsigned i = 0; i < g->n_vcpus; i++) {
		pthread_mutex_lock(&g->vcpus[i].lock);
		pthread_cond_signal(&g->vcpus[i].cond);
		pthread_mutex_unlock(&g->vcpus[i].lock);
	}
}

/*
 * vpmd went away: the vCPUs go on with the mappings they have; the ones waiting for an
 * answer keep waiting. Reconnect, hand the EPT and DRAM memfds to the new vpmd, and send the
 * waiting requests again. Returns false when the workload ended meanwhile.
 */
static bool reattach(struct guest *g)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct sim_msg m;
	int fds[2] = { g->ept_fd, g->dram_fd };

	fill_hello(g, &m, true);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", g->socket_path);
	uint64_t give_up = now_usec(CLOCK_MONOTONIC) + g->reattach_seconds * USEC_PER_SEC;

	while (!__atomic_load_n(&g->shared->stop, __ATOMIC_ACQUIRE)) {
		int s;

		if (stop_requested) {
			fprintf(stderr, "vpm-simguest: %s: stopped while vpmd is away; its last "
					"writes may not be committed\n",
				g->name);
			return false;
		}
		if (now_usec(CLOCK_MONOTONIC) >= give_up) {
			fprintf(stderr, "vpm-simguest: %s: vpmd did not come back within %" PRIu64
					" s; stopping\n",
				g->name, g->reattach_seconds);
			return false;
		}
		s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

		if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		    sim_send(s, &m, fds, 2) == 0 &&
		    recv(s, &m, sizeof(m), 0) == (ssize_t)sizeof(m) && m.type == SIM_MSG_WELCOME &&
		    m.status >= 0) {
			pthread_mutex_lock(&g->send_lock);
			close(g->sock);
			g->sock = s;
			pthread_mutex_unlock(&g->send_lock);
			for (unsigned i = 0; i < g->n_vcpus; i++) {
				struct vcpu *v = &g->vcpus[i];

				pthread_mutex_lock(&v->lock);
				if (v->pending && !v->fault_done)
					(void)send_msg(g, &v->request);
				pthread_mutex_unlock(&v->lock);
			}
			return true;
		}
		if (s >= 0)
			close(s);
		nanosleep(&(struct timespec){ .tv_nsec = 100000000 }, NULL);
	}
	return false;
}

/* Answers from vpmd, handed to the vCPU that waits for them. */
static void *reader_main(void *arg)
{
	struct guest *g = arg;
	struct sim_msg m;

	for (;;) {
		ssize_t n = recv(g->sock, &m, sizeof(m), 0);
		struct vcpu *v;

		if (n == (ssize_t)sizeof(m) && m.type == SIM_MSG_BYE) {
			/* vpmd ends this guest */
			__atomic_store_n(&g->shared->stop, 1, __ATOMIC_RELEASE);
			g->failed = true;
			wake_all(g);
			return NULL;
		}
		if (n != (ssize_t)sizeof(m)) {
			if (__atomic_load_n(&g->shared->stop, __ATOMIC_ACQUIRE) || !reattach(g)) {
				g->failed = !__atomic_load_n(&g->shared->stop, __ATOMIC_ACQUIRE);
				wake_all(g);
				return NULL;
			}
			continue;
		}
		if (m.vcpu >= g->n_vcpus)
			continue;
		v = &g->vcpus[m.vcpu];
		pthread_mutex_lock(&v->lock);
		v->fault_status = m.status;
		v->fault_done = true;
		pthread_cond_signal(&v->cond);
		pthread_mutex_unlock(&v->lock);
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: vpm-simguest -s SOCKET -n NAME -p PAGES [-c VCPUS] [-w zipf-kv|log|btree|scan]\n"
		"                    [-t THETA] [-W WRITE%%] [-S SEED] [-o OPS | -d SECONDS]\n"
		"                    [-H HISTORY_DIR] [-l dram_read=N,pm_read=N,...]\n"
		"                    [-R REATTACH_SECONDS] [-r RATIO] [-m native|epoch|hint]\n"
		"                    [-P vpm|static|random|lru|oracle] [-i PACE_USEC]\n"
		"                    [-L HALT_POLL_USEC] [-V]\n");
	exit(2);
}

static void parse_args(struct guest *g, int argc, char **argv)
{
	int c, k;

	g->n_vcpus = 2;
	g->wp = (struct workload_params){ .kind = WORKLOAD_ZIPF_KV, .theta = 0.99, .write_pct = 50 };
	g->lat = LATENCY_MODEL_DEFAULT;
	g->seed = 1;
	g->reattach_seconds = 60;
	g->halt_poll_usec = HALT_POLL_USEC_DEFAULT;
	while ((c = getopt(argc, argv, "s:n:p:c:w:t:W:S:o:d:H:l:R:r:m:P:i:L:V")) >= 0) {
		switch (c) {
		case 's': g->socket_path = optarg; break;
		case 'n': g->name = optarg; break;
		case 'p': g->n_pages = strtoull(optarg, NULL, 0); break;
		case 'c': g->n_vcpus = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'w':
			k = workload_kind_from_string(optarg);
			if (k < 0)
				usage();
			g->wp.kind = (enum workload_kind)k;
			break;
		case 't': g->wp.theta = strtod(optarg, NULL); break;
		case 'W': g->wp.write_pct = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'S': g->seed = strtoull(optarg, NULL, 0); break;
		case 'o': g->max_ops = strtoull(optarg, NULL, 0); break;
		case 'd': g->seconds = strtoull(optarg, NULL, 0); break;
		case 'H': g->history_dir = optarg; break;
		case 'R': g->reattach_seconds = strtoull(optarg, NULL, 0); break;
		case 'r':
			if (parse_ratio(optarg, &g->ratio) < 0)
				usage();
			break;
		case 'm': g->mode = optarg; break;
		case 'P': g->policy = optarg; break;
		case 'i': g->pace_usec = strtoull(optarg, NULL, 0); break;
		case 'L': g->halt_poll_usec = strtoull(optarg, NULL, 0); break;
		case 'V': g->verify = true; break;
		case 'l':
			if (latency_model_parse(optarg, &g->lat) < 0)
				usage();
			break;
		default: usage();
		}
	}
	if (!g->socket_path || !g->name || strlen(g->name) >= SIM_NAME_MAX || g->n_pages < 4 ||
	    g->n_vcpus == 0 || g->n_vcpus > 64 || (!g->max_ops && !g->seconds))
		usage();
	g->wp.n_pages = g->n_pages;
	g->wp.seed = g->seed;
}

int main(int argc, char **argv)
{
	struct guest g = {};
	pthread_t reader;
	uint64_t t0, wall;
	double modeled;

	parse_args(&g, argc, argv);
	{
		struct sigaction sa = { .sa_handler = on_stop_signal };

		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
	}
	if (workload_new(&g.wp, &g.wl) < 0) {
		fprintf(stderr, "vpm-simguest: bad workload parameters\n");
		return 2;
	}
	pthread_mutex_init(&g.send_lock, NULL);
	g.page_lock = calloc(g.n_pages, 1);
	if (g.verify) {
		g.shadow = malloc(g.n_pages * PAGE);
		g.written = calloc((g.n_pages * (PAGE / 64) + 63) / 64, sizeof(uint64_t));
	}
	g.vcpus = calloc(g.n_vcpus, sizeof(*g.vcpus));
	if (!g.page_lock || !g.vcpus || (g.verify && (!g.shadow || !g.written)))
		die("calloc");
	attach(&g);
	for (unsigned i = 0; i < g.n_vcpus; i++) {
		struct vcpu *v = &g.vcpus[i];

		v->g = &g;
		v->id = i;
		pthread_mutex_init(&v->lock, NULL);
		pthread_cond_init(&v->cond, NULL);
		if (g.history_dir) {
			char path[512];

			snprintf(path, sizeof(path), "%s/%s.vcpu%u.hist", g.history_dir, g.name, i);
			v->history = fopen(path, "we");
			if (!v->history)
				die(path);
		}
	}
	if (pthread_create(&reader, NULL, reader_main, &g) != 0)
		die("thread");
	t0 = now_usec(CLOCK_MONOTONIC);
	for (unsigned i = 0; i < g.n_vcpus; i++)
		if (pthread_create(&g.vcpus[i].thread, NULL, vcpu_main, &g.vcpus[i]) != 0)
			die("thread");
	for (unsigned i = 0; i < g.n_vcpus; i++)
		pthread_join(g.vcpus[i].thread, NULL);
	wall = now_usec(CLOCK_MONOTONIC) - t0;
	__atomic_store_n(&g.shared->stop, 1, __ATOMIC_RELEASE);
	send_msg(&g, &(struct sim_msg){ .type = SIM_MSG_BYE });
	pthread_mutex_lock(&g.send_lock);
	shutdown(g.sock, SHUT_RDWR);
	pthread_mutex_unlock(&g.send_lock);
	pthread_join(reader, NULL);
	for (unsigned i = 0; i < g.n_vcpus; i++)
		if (g.vcpus[i].history)
			fclose(g.vcpus[i].history);
	modeled = (double)g.shared->modeled_ns / g.n_vcpus / 1e9;
	printf("{\"name\": \"%s\", \"ops\": %" PRIu64 ", \"writes\": %" PRIu64
	       ", \"wall_ops_per_sec\": %.0f, \"modeled_ops_per_sec\": %.0f}\n",
	       g.name, g.shared->ops, g.shared->writes, (double)g.shared->ops / ((double)wall / 1e6),
	       modeled > 0 ? (double)g.shared->ops / modeled : 0.0);
	workload_free(g.wl);
	for (unsigned i = 0; i < g.n_vcpus; i++) {
		pthread_mutex_destroy(&g.vcpus[i].lock);
		pthread_cond_destroy(&g.vcpus[i].cond);
	}
	free(g.vcpus);
	free(g.page_lock);
	free(g.shadow);
	free(g.written);
	safe_close(g.sock);
	safe_close(g.ept_fd);
	safe_close(g.dram_fd);
	return g.failed ? 1 : 0;
}
