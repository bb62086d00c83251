// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * bench-memcpy: memcpy bandwidth on large buffers (MiB/s), the baseline of the engine benches
 * that copy guest pages: pause.sh bounds an epoch pause by dirty bytes / this bandwidth, and
 * migration.sh compares demotion batches with it. Both buffers are touched before the first
 * run, so page faults are not measured; each run copies the whole buffer (in CHUNK-byte
 * memcpy calls when -c is given, e.g. -c 4096 as page-sized copies), alternating direction.
 *
 *   bench-memcpy [-m MIB] [-r RUNS] [-c CHUNK] [-j]      (defaults: 256, 7, whole buffer)
 *
 * Prints best and median bandwidth over the runs; -j prints one JSON line instead.
 * Exit codes: 0 done, 1 out of memory, 2 bad command line.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_USAGE 2
#define MAX_RUNS   1000

static uint64_t now_nsec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void copy(uint8_t *dst, const uint8_t *src, size_t bytes, size_t chunk)
{
	for (size_t off = 0; off < bytes; off += chunk)
		memcpy(dst + off, src + off, bytes - off < chunk ? bytes - off : chunk);
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-memcpy [-m MIB] [-r RUNS] [-c CHUNK] [-j]\n");
	exit(EXIT_USAGE);
}

int main(int argc, char **argv)
{
	unsigned long mib = 256, runs = 7;
	size_t bytes, chunk = 0;
	double mbs[MAX_RUNS], best, median;
	volatile uint8_t sink = 0;
	uint8_t *a, *b;
	bool json = false;
	char *end;
	int c;

	while ((c = getopt(argc, argv, "m:r:c:j")) >= 0) {
		switch (c) {
		case 'm':
			mib = strtoul(optarg, &end, 10);
			if (*end || mib == 0 || mib > 65536)
				usage();
			break;
		case 'r':
			runs = strtoul(optarg, &end, 10);
			if (*end || runs == 0 || runs > MAX_RUNS)
				usage();
			break;
		case 'c':
			chunk = strtoul(optarg, &end, 10);
			if (*end || chunk == 0)
				usage();
			break;
		case 'j':
			json = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	bytes = (size_t)mib << 20;
	if (chunk == 0 || chunk > bytes)
		chunk = bytes;
	a = malloc(bytes);
	b = malloc(bytes);
	if (!a || !b) {
		fprintf(stderr, "bench-memcpy: cannot allocate 2 x %lu MiB\n", mib);
		return 1;
	}
	/* touch every page of both buffers, and warm up once */
	memset(a, 0x5a, bytes);
	memset(b, 0xa5, bytes);
	copy(b, a, bytes, chunk);
	for (unsigned long i = 0; i < runs; i++) {
		uint8_t *dst = i % 2 ? a : b, *src = i % 2 ? b : a;
		uint64_t t0 = now_nsec(), dt;

		copy(dst, src, bytes, chunk);
		dt = now_nsec() - t0;
		sink ^= dst[(i * 4099) % bytes];
		mbs[i] = (double)bytes / (1 << 20) / ((double)(dt ? dt : 1) / 1e9);
	}
	qsort(mbs, runs, sizeof(mbs[0]), cmp_double);
	best = mbs[runs - 1];
	median = runs % 2 ? mbs[runs / 2] : (mbs[runs / 2 - 1] + mbs[runs / 2]) / 2;
	if (json)
		printf("{\"buffer_mib\": %lu, \"chunk_bytes\": %zu, \"runs\": %lu, "
		       "\"best_mib_per_sec\": %.0f, \"median_mib_per_sec\": %.0f}\n",
		       mib, chunk, runs, best, median);
	else
		printf("bench-memcpy: %lu MiB buffers, %zu-byte copies, %lu runs: best %.0f MiB/s, "
		       "median %.0f MiB/s\n",
		       mib, chunk, runs, best, median);
	free(a);
	free(b);
	(void)sink; /* read from each copy: the copies stay observable */
	return 0;
}
