/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The simulated backend's channel between vpmd and a vpm-simguest process.
 *
 * Transport: an AF_UNIX SOCK_SEQPACKET connection, one struct sim_msg per message; file
 * descriptors travel as SCM_RIGHTS with WELCOME (vpmd -> guest: EPT memfd, DRAM memfd, pool
 * fd) and with a re-attaching HELLO (guest -> vpmd: the EPT and DRAM memfds it runs on).
 *
 * Shared state: the EPT memfd starts with struct sim_shared; the table of n_pages 8-byte
 * entries follows at SIM_EPT_OFFSET. The guest reaches guest PM only through it: an entry
 * names a DRAM frame (in the DRAM memfd) or a PM frame (in the pool, from pm_frames_offset),
 * and whether it is present and writable. The guest sets ACCESSED and DIRTY as hardware would
 * (atomic OR). A write to a non-writable or absent entry is a FAULT the guest reports and
 * waits on. vpmd stops the vCPUs by setting pause (with the epoch it closes); each vCPU parks
 * at its next operation boundary, or counts as parked while it waits on a fault.
 */
#ifndef VPM_COMMON_SIM_PROTO_H
#define VPM_COMMON_SIM_PROTO_H

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "random-util.h"

#define SIM_MAGIC         0x564d5053u /* "SPMV" */
#define SIM_PROTO_VERSION 2u
#define SIM_EPT_OFFSET    4096u
#define SIM_NAME_MAX      64u

#define SIM_EPT_FRAME_MASK ((UINT64_C(1) << 40) - 1)
#define SIM_EPT_PM         (UINT64_C(1) << 59)
#define SIM_EPT_ACCESSED   (UINT64_C(1) << 60)
#define SIM_EPT_DIRTY      (UINT64_C(1) << 61)
#define SIM_EPT_WRITABLE   (UINT64_C(1) << 62)
#define SIM_EPT_PRESENT    (UINT64_C(1) << 63)

struct sim_shared {
	uint32_t magic;
	uint32_t version;
	uint64_t n_pages;
	uint32_t n_vcpus;
	uint32_t pause;  /* vpmd: 1 = stop at the next operation boundary */
	uint32_t parked; /* guest: vCPUs stopped, done, or waiting on a fault */
	uint32_t stop;   /* vpmd or the guest itself: the workload ends */
	uint64_t epoch;  /* vpmd: the epoch a pause closes */
	uint64_t ops;    /* guest: operations done */
	uint64_t modeled_ns; /* guest: modeled time, summed over vCPUs */
	uint64_t writes;     /* guest: writes done (the history's sequence) */
	uint32_t sleepers;   /* guest: parked vCPUs asleep on pause (vpmd wakes them) */
};

/*
 * A parked vCPU polls the pause word for a while (as KVM's halt polling does), then sleeps on
 * it (a futex shared between the two processes, sleepers counted) until vpmd clears it and
 * wakes the sleepers, or for at most timeout_ns: a guest also wakes on its own to notice that
 * it must stop. vpmd skips the wake (a system call) when nobody sleeps.
 */
static inline void sim_pause_wait(uint32_t *pause, long timeout_ns)
{
	struct timespec ts = { .tv_sec = timeout_ns / 1000000000L, .tv_nsec = timeout_ns % 1000000000L };

	(void)syscall(SYS_futex, pause, FUTEX_WAIT, 1, &ts, NULL, 0);
}

static inline void sim_pause_wake(uint32_t *pause)
{
	(void)syscall(SYS_futex, pause, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

enum sim_msg_type {
	SIM_MSG_HELLO = 1,        /* guest: who it is (and, re-attaching, its fds) */
	SIM_MSG_WELCOME = 2,      /* vpmd: the fds to run on */
	SIM_MSG_FAULT = 3,        /* guest: vcpu needs gfn (present / writable) */
	SIM_MSG_FAULT_DONE = 4,   /* vpmd: resolved (status < 0: the guest must stop) */
	SIM_MSG_PERSIST = 5,      /* guest: make gfn [offset, offset + len) durable */
	SIM_MSG_PERSIST_DONE = 6, /* vpmd: durable */
	SIM_MSG_BYE = 7,          /* either: the guest stops */
	SIM_MSG_DISCARD = 8,      /* guest: it no longer needs gfn [offset, offset + len) */
	SIM_MSG_DISCARD_DONE = 9, /* vpmd: the backing of the whole pages in it is dropped */
};

struct sim_msg {
	uint32_t type;
	uint32_t vcpu;
	uint64_t gfn;
	uint32_t offset;
	uint32_t len;
	uint32_t write;
	int32_t status;
	/* HELLO */
	char name[SIM_NAME_MAX];
	uint64_t n_pages;
	uint32_t n_vcpus;
	uint32_t reattach;
	/* HELLO: the guest's settings (its "domain configuration"); empty or 0 = vpmd's default */
	double ratio;
	char mode[16];
	char policy[16];
	/* HELLO: the workload, for the oracle policy's knowledge of true access frequencies */
	uint32_t wl_kind;
	uint32_t wl_write_pct;
	double wl_theta;
	uint64_t wl_seed;
	/* WELCOME */
	uint64_t ept_size;
	uint64_t dram_size;
	uint64_t pool_size;
	uint64_t pm_frames_offset;
};

#define SIM_MAX_FDS 3

/* Send one message with n_fds (at most SIM_MAX_FDS) fds as SCM_RIGHTS; 0 or -1 with errno. */
static inline int sim_send(int sock, const struct sim_msg *m, const int *fds, size_t n_fds)
{
	char cbuf[CMSG_SPACE(SIM_MAX_FDS * sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)m, .iov_len = sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (n_fds > SIM_MAX_FDS) {
		errno = EINVAL;
		return -1;
	}
	if (n_fds) {
		struct cmsghdr *c;

		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, n_fds * sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(*m) ? 0 : -1;
}

/*
 * A guest's write history, one file per vCPU: a record per write, and after a persist hint
 * returned, a second record of the same write with SIM_HIST_PERSISTED.
 */
#define SIM_HIST_PERSISTED 1u

struct sim_history_record {
	uint64_t seq;
	uint64_t gfn;
	uint32_t offset;
	uint32_t len;
	uint32_t flags;
	uint32_t reserved;
};

/*
 * The bytes a simulated guest writes for its write number seq: what a checker replays from
 * the guest's history must be exactly what the guest wrote. len is a multiple of 8.
 */
static inline void sim_write_pattern(uint8_t *p, uint32_t len, uint64_t seq, uint64_t seed)
{
	uint64_t x = seed ^ (seq * UINT64_C(0xd6e8feb86659fd93));

	for (uint32_t i = 0; i < len; i += 8) {
		uint64_t w = splitmix64(&x);

		memcpy(p + i, &w, 8);
	}
}

#endif
