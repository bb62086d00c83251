// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * bench-control: round trips per second of the "status" request to a running vpmd, with N
 * concurrent clients (one thread and one libvpm context each), against a baseline measured in
 * the same process right before each N: a raw AF_UNIX stream echo with one server thread per
 * client, moving messages of the same sizes as a status request and its reply. The machine
 * may be shared and noisy, so the ratio vpmd/echo is the figure to compare between runs.
 *
 *   bench-control -s SOCKET [-d SECONDS] [-n 1,2,4]
 *
 * Exit codes: 0 done, 1 a run failed, 2 bad command line, 77 vpmd is not reachable.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "parse-util.h"
#include "vpm/libvpm.h"

#define EXIT_USAGE 2
#define EXIT_SKIP  77

#define MAX_CLIENTS  256
#define MAX_N_VALUES 32
#define WARMUP_USEC  (500 * USEC_PER_MSEC)

/* The request libvpm sends for vpm_status_get(), as vpmd receives it (plus its NUL). */
static const char status_request[] = "{\"protocol\":1,\"method\":\"status\"}";

enum mode {
	MODE_VPMD,
	MODE_ECHO,
};

/* What all clients of one run share; read-only once the clients are running. */
struct run {
	enum mode mode;
	const char *socket_path;
	const char *request; /* request_size bytes, the last one NUL */
	size_t request_size;
	const char *reply; /* reply_size bytes, the last one NUL; sent by the echo servers */
	size_t reply_size;
	uint64_t deadline_usec;
	pthread_barrier_t ready; /* clients connected and warmed up */
	pthread_barrier_t go;    /* deadline_usec set */
};

struct client {
	pthread_t thread;
	struct run *run;
	int fd;        /* echo: the client's end of the socket pair */
	uint64_t *lat; /* round trip times in ns */
	size_t n_lat, alloc_lat;
	uint64_t end_usec;
	int error; /* negative errno, or 0 */
	char errmsg[256];
};

struct echo_server {
	pthread_t thread;
	const struct run *run;
	int fd;
	bool started;
};

struct result {
	double rate; /* round trips per second, all clients together */
	double p50_usec, p99_usec;
};

static uint64_t now_nsec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static int add_latency(struct client *c, uint64_t nsec)
{
	if (c->n_lat == c->alloc_lat) {
		size_t n = c->alloc_lat ? c->alloc_lat * 2 : 65536;
		uint64_t *p = realloc(c->lat, n * sizeof(*p));

		if (!p)
			return -ENOMEM;
		c->lat = p;
		c->alloc_lat = n;
	}
	c->lat[c->n_lat++] = nsec;
	return 0;
}

static int send_full(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read exactly len bytes ending in a NUL; 0 on success, 1 on EOF before any byte. */
static int recv_message(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(fd, buf + got, len - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return got == 0 ? 1 : -ECONNRESET;
		got += (size_t)n;
	}
	return buf[len - 1] == '\0' ? 0 : -EBADMSG;
}

static void *echo_server_main(void *userdata)
{
	struct echo_server *s = userdata;
	char *buf = malloc(s->run->request_size);

	/* Answer each request with a reply; stop when the client closes its end. */
	while (buf && recv_message(s->fd, buf, s->run->request_size) == 0 &&
	       send_full(s->fd, s->run->reply, s->run->reply_size) == 0)
		;
	free(buf);
	return NULL;
}

static int client_fail(struct client *c, int r, const char *msg)
{
	c->error = r;
	snprintf(c->errmsg, sizeof(c->errmsg), "%s", msg);
	return r;
}

/* One status round trip over libvpm. */
static int vpmd_round_trip(struct vpm_ctx *ctx, struct client *c)
{
	struct vpm_status *st = NULL;
	int r;

	r = vpm_status_get(ctx, &st);
	if (r < 0)
		return client_fail(c, r, vpm_errormsg());
	vpm_status_unref(st);
	return 0;
}

/* One round trip over the raw echo socket. */
static int echo_round_trip(char *buf, struct client *c)
{
	const struct run *run = c->run;
	int r;

	r = send_full(c->fd, run->request, run->request_size);
	if (r < 0)
		return client_fail(c, r, strerror(-r));
	r = recv_message(c->fd, buf, run->reply_size);
	if (r > 0)
		return client_fail(c, -ECONNRESET, "echo server closed the connection");
	if (r < 0)
		return client_fail(c, r, strerror(-r));
	return 0;
}

static int round_trip(struct vpm_ctx *ctx, char *buf, struct client *c)
{
	return c->run->mode == MODE_VPMD ? vpmd_round_trip(ctx, c) : echo_round_trip(buf, c);
}

static void *client_main(void *userdata)
{
	struct client *c = userdata;
	struct run *run = c->run;
	struct vpm_ctx *ctx = NULL;
	char *buf = NULL;
	int r = 0;

	/* Set up and warm up outside the timed part; reach both barriers even after a failure. */
	if (run->mode == MODE_VPMD) {
		r = vpm_new(run->socket_path, &ctx);
		if (r >= 0)
			r = vpm_connect(ctx);
		if (r < 0)
			client_fail(c, r, vpm_errormsg());
	} else {
		buf = malloc(run->reply_size);
		if (!buf)
			r = client_fail(c, -ENOMEM, "out of memory");
	}
	if (r >= 0)
		r = round_trip(ctx, buf, c);

	pthread_barrier_wait(&run->ready);
	pthread_barrier_wait(&run->go);

	while (r >= 0) {
		uint64_t t0 = now_nsec(), t1;

		r = round_trip(ctx, buf, c);
		if (r < 0)
			break;
		t1 = now_nsec();
		r = add_latency(c, t1 - t0);
		if (r < 0) {
			client_fail(c, r, "out of memory");
			break;
		}
		if (now_usec(CLOCK_MONOTONIC) >= run->deadline_usec)
			break;
	}
	c->end_usec = now_usec(CLOCK_MONOTONIC);

	free(buf);
	vpm_unref(ctx);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted values, in microseconds. */
static double percentile_usec(const uint64_t *v, size_t n, unsigned pct)
{
	size_t rank = (n * pct + 99) / 100;

	return n ? (double)v[rank ? rank - 1 : 0] / 1000.0 : 0.0;
}

static int summarize(struct client *clients, unsigned n, uint64_t start_usec, struct result *ret)
{
	_cleanup_free_ uint64_t *all = NULL;
	uint64_t end_usec = start_usec;
	size_t total = 0, k = 0;

	for (unsigned i = 0; i < n; i++) {
		total += clients[i].n_lat;
		end_usec = MAX(end_usec, clients[i].end_usec);
	}
	if (total == 0 || end_usec == start_usec)
		return -ENODATA;
	all = malloc(total * sizeof(*all));
	if (!all)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		memcpy(all + k, clients[i].lat, clients[i].n_lat * sizeof(*all));
		k += clients[i].n_lat;
	}
	qsort(all, total, sizeof(*all), cmp_u64);

	ret->rate = (double)total * 1e6 / (double)(end_usec - start_usec);
	ret->p50_usec = percentile_usec(all, total, 50);
	ret->p99_usec = percentile_usec(all, total, 99);
	return 0;
}

/* Run n clients for duration_usec in the given mode; 0 on success, -1 after printing why not. */
static int measure(struct run *run, unsigned n, uint64_t duration_usec, struct result *ret)
{
	struct client *clients = calloc(n, sizeof(*clients));
	struct echo_server *servers = calloc(n, sizeof(*servers));
	const char *what = run->mode == MODE_VPMD ? "vpmd" : "echo";
	unsigned started = 0;
	uint64_t start_usec;
	int r = 0;

	if (!clients || !servers) {
		fprintf(stderr, "bench-control: out of memory\n");
		free(clients);
		free(servers);
		return -1;
	}
	for (unsigned i = 0; i < n; i++)
		clients[i].fd = servers[i].fd = -1;

	if (run->mode == MODE_ECHO)
		for (unsigned i = 0; i < n; i++) {
			int sv[2];

			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
				fprintf(stderr, "bench-control: socketpair: %m\n");
				r = -1;
				goto out;
			}
			clients[i].fd = sv[0];
			servers[i].fd = sv[1];
			servers[i].run = run;
			errno =
			    pthread_create(&servers[i].thread, NULL, echo_server_main, &servers[i]);
			if (errno) {
				fprintf(stderr, "bench-control: cannot start a thread: %m\n");
				r = -1;
				goto out;
			}
			servers[i].started = true;
		}

	pthread_barrier_init(&run->ready, NULL, n + 1);
	pthread_barrier_init(&run->go, NULL, n + 1);
	for (; started < n; started++) {
		clients[started].run = run;
		errno =
		    pthread_create(&clients[started].thread, NULL, client_main, &clients[started]);
		if (errno) {
			fprintf(stderr, "bench-control: cannot start a thread: %m\n");
			/* The barriers expect n clients; without them nothing can run. */
			exit(EXIT_FAILURE);
		}
	}

	pthread_barrier_wait(&run->ready);
	start_usec = now_usec(CLOCK_MONOTONIC);
	run->deadline_usec = start_usec + duration_usec;
	pthread_barrier_wait(&run->go);

	for (unsigned i = 0; i < started; i++)
		pthread_join(clients[i].thread, NULL);
	pthread_barrier_destroy(&run->ready);
	pthread_barrier_destroy(&run->go);

	for (unsigned i = 0; i < n; i++)
		if (clients[i].error < 0) {
			fprintf(stderr, "bench-control: %s client %u of %u failed: %s\n", what,
				i + 1, n, clients[i].errmsg);
			r = -1;
			goto out;
		}
	r = summarize(clients, n, start_usec, ret);
	if (r < 0) {
		fprintf(stderr, "bench-control: %s run with %u clients: %s\n", what, n,
			strerror(-r));
		r = -1;
	}

out:
	for (unsigned i = 0; i < n; i++) {
		/* Closing the client's end ends its echo server. */
		safe_close(clients[i].fd);
		if (servers[i].started)
			pthread_join(servers[i].thread, NULL);
		safe_close(servers[i].fd);
		free(clients[i].lat);
	}
	free(clients);
	free(servers);
	return r;
}

/* Connect once and fetch one status: proves vpmd answers and gives the reply size. */
static int probe(const char *socket_path, size_t *ret_reply_size)
{
	struct vpm_ctx *ctx = NULL;
	struct vpm_status *st = NULL;
	const char *json;
	int r;

	r = vpm_new(socket_path, &ctx);
	if (r < 0) {
		fprintf(stderr, "bench-control: %s\n", vpm_errormsg());
		return EXIT_USAGE;
	}
	r = vpm_connect(ctx);
	if (r < 0) {
		fprintf(stderr, "bench-control: %s\n", vpm_errormsg());
		vpm_unref(ctx);
		return EXIT_SKIP;
	}
	r = vpm_status_get(ctx, &st);
	if (r < 0) {
		fprintf(stderr, "bench-control: status request failed: %s\n", vpm_errormsg());
		vpm_unref(ctx);
		return r == -EACCES || r == -EPERM ? EXIT_SKIP : EXIT_FAILURE;
	}
	json = vpm_status_get_json(st, false);
	*ret_reply_size = json ? strlen(json) + 1 : 0;
	vpm_status_unref(st);
	vpm_unref(ctx);
	if (*ret_reply_size <= 1) {
		fprintf(stderr, "bench-control: vpmd sent an empty status\n");
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}

static void help(FILE *f)
{
	fprintf(f, "Usage: bench-control -s SOCKET [-d SECONDS] [-n 1,2,4]\n"
		   "Measure status round trips per second to vpmd against a raw AF_UNIX echo.\n\n"
		   "  -s, --socket SOCKET  vpmd's control socket\n"
		   "  -d, --duration SECS  length of each run (default 2)\n"
		   "  -n, --clients LIST   comma-separated client counts (default 1,2,4,8,16)\n"
		   "  -h, --help           show this help\n");
}

static int parse_clients(const char *arg, unsigned *v, unsigned *ret_n)
{
	_cleanup_free_ char *copy = strdup(arg);
	char *rest = copy, *tok;
	unsigned n = 0;

	if (!copy)
		return -ENOMEM;
	/* strsep() keeps empty fields, so "1,,2" and "1," are rejected. */
	while ((tok = strsep(&rest, ","))) {
		uint64_t x;

		if (n == MAX_N_VALUES || parse_uint_range(tok, 1, MAX_CLIENTS, &x) < 0)
			return -EINVAL;
		v[n++] = (unsigned)x;
	}
	if (n == 0)
		return -EINVAL;
	*ret_n = n;
	return 0;
}

static int parse_seconds(const char *arg, uint64_t *ret_usec)
{
	char *end = NULL;
	double d;

	errno = 0;
	d = strtod(arg, &end);
	if (errno || end == arg || *end || !isfinite(d) || d < 0.01 || d > 3600.0)
		return -EINVAL;
	*ret_usec = (uint64_t)(d * 1e6);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "duration", required_argument, NULL, 'd' },
		{ "clients", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	unsigned counts[MAX_N_VALUES] = { 1, 2, 4, 8, 16 }, n_counts = 5;
	uint64_t duration_usec = 2 * USEC_PER_SEC;
	const char *socket_path = NULL;
	_cleanup_free_ char *reply = NULL;
	size_t reply_size = 0;
	double ratio_1 = -1.0;
	struct run run;
	int c, r;

	while ((c = getopt_long(argc, argv, "s:d:n:h", options, NULL)) >= 0) {
		switch (c) {
		case 's':
			socket_path = optarg;
			break;
		case 'd':
			if (parse_seconds(optarg, &duration_usec) < 0) {
				fprintf(stderr, "bench-control: bad duration '%s' (seconds, "
						"0.01 to 3600)\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'n':
			if (parse_clients(optarg, counts, &n_counts) < 0) {
				fprintf(stderr,
					"bench-control: bad client counts '%s' (up to %d values, "
					"each 1 to %d, separated by commas)\n",
					optarg, MAX_N_VALUES, MAX_CLIENTS);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			help(stdout);
			return EXIT_SUCCESS;
		default:
			help(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "bench-control: unexpected argument '%s'\n", argv[optind]);
		help(stderr);
		return EXIT_USAGE;
	}
	if (!socket_path || !*socket_path) {
		fprintf(stderr, "bench-control: -s SOCKET is required\n");
		help(stderr);
		return EXIT_USAGE;
	}

	r = probe(socket_path, &reply_size);
	if (r != EXIT_SUCCESS)
		return r;

	/* What the echo servers send: reply_size bytes of JSON-like text ending in a NUL. */
	reply = malloc(reply_size);
	if (!reply) {
		fprintf(stderr, "bench-control: out of memory\n");
		return EXIT_FAILURE;
	}
	memset(reply, 'x', reply_size - 1);
	reply[reply_size - 1] = '\0';

	run = (struct run){
		.socket_path = socket_path,
		.request = status_request,
		.request_size = sizeof(status_request),
		.reply = reply,
		.reply_size = reply_size,
	};

	/*
	 * An untimed warm-up: the first runs after start-up are often several times slower
	 * (CPU clocks, scheduler placement, a freshly started vpmd) and would skew the first row.
	 */
	for (int m = MODE_ECHO; m >= MODE_VPMD; m--) {
		struct result ignored;

		run.mode = (enum mode)m;
		if (measure(&run, 1, MIN(duration_usec, WARMUP_USEC), &ignored) < 0)
			return EXIT_FAILURE;
	}

	printf("bench-control: vpmd at %s, %.2f s per run, request %zu B, reply %zu B\n",
	       socket_path, (double)duration_usec / 1e6, run.request_size, run.reply_size);
	printf("%4s %14s %10s %10s %14s %10s\n", "N", "vpmd RTT/s", "p50 us", "p99 us",
	       "echo RTT/s", "vpmd/echo");
	fflush(stdout);

	for (unsigned i = 0; i < n_counts; i++) {
		struct result echo, vpmd;
		double ratio;

		run.mode = MODE_ECHO;
		if (measure(&run, counts[i], duration_usec, &echo) < 0)
			return EXIT_FAILURE;
		run.mode = MODE_VPMD;
		if (measure(&run, counts[i], duration_usec, &vpmd) < 0)
			return EXIT_FAILURE;

		ratio = vpmd.rate / echo.rate;
		if (counts[i] == 1 && ratio_1 < 0)
			ratio_1 = ratio;
		printf("%4u %14.0f %10.1f %10.1f %14.0f %10.2f\n", counts[i], vpmd.rate,
		       vpmd.p50_usec, vpmd.p99_usec, echo.rate, ratio);
		fflush(stdout);
	}
	if (ratio_1 >= 0)
		printf("bench-control: ratio at N=1: %.2f\n", ratio_1);
	return EXIT_SUCCESS;
}
