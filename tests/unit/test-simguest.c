// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vpm-simguest against a host that plays vpmd's part of the sim protocol: faults on absent
 * and read-only pages (some pages start on "PM" frames and are promoted on write), pauses that
 * must stop every vCPU, persist hints, vpmd going away and coming back (re-attach with the
 * guest's own memfds), and in the end every page equal to the guest's write history replayed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check-main.h"
#include "random-util.h"
#include "sim-proto.h"

#define PAGES 64u
#define VCPUS 3u
#define PAGE  4096u

static char dir[64], sock_path[128];
static struct sim_shared *shared;
static _Atomic uint64_t *ept;
static uint8_t *dram, *pool;
static int ept_fd, dram_fd, pool_fd, listen_fd;
static unsigned faults, promotions, persists, marks;

static int listen_on(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	unlink(sock_path);
	strcpy(sa.sun_path, sock_path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	return fd;
}

static void make_memory(void)
{
	uint64_t ept_size = SIM_EPT_OFFSET + PAGES * 8;
	char path[160];

	ept_fd = memfd_create("ept", MFD_CLOEXEC);
	dram_fd = memfd_create("dram", MFD_CLOEXEC);
	snprintf(path, sizeof(path), "%s/pool", dir);
	pool_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	ck_assert(ept_fd >= 0 && dram_fd >= 0 && pool_fd >= 0);
	ck_assert_int_eq(ftruncate(ept_fd, (off_t)ept_size), 0);
	ck_assert_int_eq(ftruncate(dram_fd, PAGES * PAGE), 0);
	ck_assert_int_eq(ftruncate(pool_fd, PAGES * PAGE), 0);
	shared = mmap(NULL, ept_size, PROT_READ | PROT_WRITE, MAP_SHARED, ept_fd, 0);
	dram = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, dram_fd, 0);
	pool = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, pool_fd, 0);
	ck_assert(shared != MAP_FAILED && dram != MAP_FAILED && pool != MAP_FAILED);
	*shared = (struct sim_shared){ .magic = SIM_MAGIC, .version = SIM_PROTO_VERSION,
				       .n_pages = PAGES, .n_vcpus = VCPUS };
	ept = (_Atomic uint64_t *)(void *)((uint8_t *)shared + SIM_EPT_OFFSET);
	/* odd pages start on "PM" frames, read-only, as committed pages would */
	for (uint64_t g = 1; g < PAGES; g += 2)
		ept[g] = SIM_EPT_PRESENT | SIM_EPT_PM | g;
}

static int welcome(int conn, bool with_fds)
{
	struct sim_msg m = { .type = SIM_MSG_WELCOME, .ept_size = SIM_EPT_OFFSET + PAGES * 8,
			     .dram_size = PAGES * PAGE, .pool_size = PAGES * PAGE };
	int fds[3] = { ept_fd, dram_fd, pool_fd };

	return sim_send(conn, &m, fds, with_fds ? 3 : 0);
}

/* Receive a HELLO; on a re-attach it must carry the guest's own EPT and DRAM memfds. */
static void expect_hello(int conn, bool reattach)
{
	struct sim_msg m;
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };

	ck_assert_int_eq(recvmsg(conn, &mh, MSG_CMSG_CLOEXEC), (ssize_t)sizeof(m));
	ck_assert_uint_eq(m.type, SIM_MSG_HELLO);
	ck_assert_str_eq(m.name, "g1");
	ck_assert_uint_eq(m.n_pages, PAGES);
	ck_assert_uint_eq(m.reattach, reattach);
	if (reattach) {
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		struct stat a, b;
		int fds[2];

		ck_assert_ptr_nonnull(c);
		memcpy(fds, CMSG_DATA(c), sizeof(fds));
		ck_assert_int_eq(fstat(fds[0], &a), 0);
		ck_assert_int_eq(fstat(ept_fd, &b), 0);
		ck_assert_uint_eq(a.st_ino, b.st_ino);
		ck_assert_int_eq(fstat(fds[1], &a), 0);
		ck_assert_int_eq(fstat(dram_fd, &b), 0);
		ck_assert_uint_eq(a.st_ino, b.st_ino);
		close(fds[0]);
		close(fds[1]);
	}
}

/* vpmd's part: map absent pages to their DRAM frame, promote PM pages on write. */
static bool serve_one(int conn, int timeout_ms)
{
	struct pollfd p = { .fd = conn, .events = POLLIN };
	struct sim_msg m;

	if (poll(&p, 1, timeout_ms) <= 0)
		return true;
	if (recv(conn, &m, sizeof(m), 0) != (ssize_t)sizeof(m))
		return false;
	if (m.type == SIM_MSG_BYE)
		return false;
	ck_assert_uint_lt(m.vcpu, VCPUS);
	if (m.type == SIM_MSG_FAULT) {
		uint64_t e = ept[m.gfn];

		ck_assert_uint_lt(m.gfn, PAGES);
		faults++;
		if ((e & SIM_EPT_PM) && m.write) {
			memcpy(dram + m.gfn * PAGE, pool + m.gfn * PAGE, PAGE);
			promotions++;
		}
		ept[m.gfn] = SIM_EPT_PRESENT | SIM_EPT_WRITABLE | m.gfn;
		m.type = SIM_MSG_FAULT_DONE;
	} else {
		ck_assert_uint_eq(m.type, SIM_MSG_PERSIST);
		ck_assert_uint_le(m.offset + m.len, PAGE);
		persists++;
		m.type = SIM_MSG_PERSIST_DONE;
	}
	m.status = 0;
	return send(conn, &m, sizeof(m), MSG_NOSIGNAL) == (ssize_t)sizeof(m);
}

/* Pause: every vCPU stops; no write happens until the resume. */
static void check_pause(int conn)
{
	uint64_t writes;

	__atomic_store_n(&shared->pause, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < 2000 && __atomic_load_n(&shared->parked, __ATOMIC_SEQ_CST) < VCPUS; i++)
		serve_one(conn, 1); /* a vCPU may be waiting for a fault: that counts as parked */
	ck_assert_uint_eq(__atomic_load_n(&shared->parked, __ATOMIC_SEQ_CST), VCPUS);
	writes = __atomic_load_n(&shared->writes, __ATOMIC_SEQ_CST);
	usleep(30000);
	ck_assert_uint_eq(__atomic_load_n(&shared->writes, __ATOMIC_SEQ_CST), writes);
	__atomic_store_n(&shared->pause, 0, __ATOMIC_SEQ_CST);
}

static pid_t start_guest(const char *workload, const char *ops)
{
	char bin[512];
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/vpmd/backend/sim/vpm-simguest", getenv("VPM_BUILD"));
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
		execl(bin, bin, "-s", sock_path, "-n", "g1", "-p", "64", "-c", "3", "-w", workload,
		      "-o", ops, "-S", "9", "-H", dir, "-R", "20", (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Replay the per-vCPU histories in write order; every page must match the guest memory. */
static void check_history(void)
{
	struct sim_history_record *all = malloc(sizeof(*all) * 4000000);
	static uint8_t image[PAGES * PAGE];
	size_t n = 0, w = 0;

	ck_assert_ptr_nonnull(all);
	for (unsigned v = 0; v < VCPUS; v++) {
		char path[200];
		FILE *f;

		snprintf(path, sizeof(path), "%s/g1.vcpu%u.hist", dir, v);
		f = fopen(path, "re");
		ck_assert_ptr_nonnull(f);
		n += fread(all + n, sizeof(*all), 4000000 - n, f);
		fclose(f);
	}
	/* persisted marks repeat a write that is in the history already */
	for (size_t i = 0; i < n; i++) {
		if (all[i].flags & SIM_HIST_PERSISTED)
			marks++;
		else
			all[w++] = all[i];
	}
	n = w;
	ck_assert_uint_eq(n, shared->writes);
	/* the sequence numbers are exactly 0..n-1 */
	{
		uint8_t *seen = calloc(n, 1);

		for (size_t i = 0; i < n; i++) {
			ck_assert_uint_lt(all[i].seq, n);
			ck_assert(!seen[all[i].seq]);
			seen[all[i].seq] = 1;
		}
		free(seen);
	}
	memcpy(image, pool, sizeof(image)); /* PM frames' initial content (zeros here) */
	for (uint64_t s = 0; s < n; s++)
		for (size_t i = 0; i < n; i++) {
			if (all[i].seq != s)
				continue;
			sim_write_pattern(image + all[i].gfn * PAGE + all[i].offset, all[i].len, s, 9);
			break;
		}
	for (uint64_t g = 0; g < PAGES; g++) {
		uint64_t e = ept[g];
		uint8_t *mem = (e & SIM_EPT_PM) ? pool + g * PAGE : dram + g * PAGE;

		if (!(e & SIM_EPT_PRESENT))
			mem = pool + g * PAGE;
		ck_assert_msg(memcmp(mem, image + g * PAGE, PAGE) == 0, "page %llu differs",
			      (unsigned long long)g);
	}
	free(all);
}

START_TEST(test_protocol_and_history)
{
	int conn, status;
	pid_t pid;

	snprintf(dir, sizeof(dir), "/tmp/vpm-simguest.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%s/sim.sock", dir);
	make_memory();
	listen_fd = listen_on();
	pid = start_guest("zipf-kv", "3000");
	conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(conn, 0);
	expect_hello(conn, false);
	ck_assert_int_eq(welcome(conn, true), 0);
	for (int i = 0; i < 50; i++)
		serve_one(conn, 1);
	check_pause(conn);

	/* vpmd goes away: the guest must not stop, and must come back with its memfds */
	close(conn);
	close(listen_fd);
	usleep(200000);
	ck_assert_int_eq(waitpid(pid, &status, WNOHANG), 0);
	listen_fd = listen_on();
	conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(conn, 0);
	expect_hello(conn, true);
	ck_assert_int_eq(welcome(conn, false), 0);
	while (serve_one(conn, 2000))
		;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_uint_gt(faults, 0);
	ck_assert_uint_gt(promotions, 0);
	check_history();
	close(conn);
	close(listen_fd);
}
END_TEST

START_TEST(test_persist_hints)
{
	int conn, status;
	pid_t pid;

	snprintf(dir, sizeof(dir), "/tmp/vpm-simguest.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%s/sim.sock", dir);
	make_memory();
	listen_fd = listen_on();
	pid = start_guest("log", "500");
	conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	expect_hello(conn, false);
	ck_assert_int_eq(welcome(conn, true), 0);
	while (serve_one(conn, 2000))
		;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* every append of the log workload is followed by a persist hint */
	ck_assert_uint_eq(persists, VCPUS * 500);
	marks = 0;
	check_history();
	/* ... and, once it returned, marked persisted in the history */
	ck_assert_uint_eq(marks, VCPUS * 500);
}
END_TEST

static Suite *simguest_suite(void)
{
	Suite *s = suite_create("simguest");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_protocol_and_history);
	tcase_add_test(tc, test_persist_hints);
	suite_add_tcase(s, tc);
	return s;
}

VPM_CHECK_MAIN(simguest_suite)
