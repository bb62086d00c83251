// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vpm-pmstress: drives vpmd's persistent store (the same code vpmd runs) through a scripted,
 * seeded workload on three devices (two epoch-mode, one hint-mode): epoch commits of page
 * images and cacheline ranges over pages that may live on PM frames, demotions of committed
 * pages to PM frames, and checkpoints (which release frames superseded by newer commits). The workload is a pure function
 * of the seed, so the expected content of every device after any prefix of commits (the
 * oracle) can be recomputed after a crash.
 *
 *   vpm-pmstress format  POOL SIZE [LOG_SIZE]
 *   vpm-pmstress run     POOL DIR SEED STEPS [--background-checkpoint]   (STEPS 0 = forever)
 *   vpm-pmstress verify  POOL DIR SEED
 *   vpm-pmstress recover POOL          (what vpmd does at start, for quick runs)
 *
 * run resumes where the pool's committed state ends, so it can follow a crash and recovery.
 * verify opens the pool read-only (after vpmd recovered it), finds the committed prefix from
 * the devices' last epochs, checks it against the progress file (the last commit that
 * completed, and the one in flight), and compares every page with the oracle. Exit 0 when
 * everything matches, 1 on a mismatch, 2 on usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "random-util.h"
#include "pm-store.h"
#include "pool.h"

#define N_DEVICES 3
#define DEMOTE_EVERY 3
#define CHECKPOINT_EVERY 5

static const struct {
	const char *name;
	uint64_t pages;
	enum pm_device_mode mode;
} devices[N_DEVICES] = {
	{ "kv-store", 64, PM_MODE_EPOCH },
	{ "log-hint", 32, PM_MODE_HINT },
	{ "btree", 48, PM_MODE_EPOCH },
};

struct oracle {
	uint8_t *data[N_DEVICES];
	uint64_t *version[N_DEVICES]; /* epoch of each page's newest version */
	uint64_t epoch[N_DEVICES];
};

struct step {
	unsigned device;
	uint64_t epoch;
	size_t n_pages, n_ranges;
	struct pm_page pages[12];
	struct pm_range ranges[6];
	uint8_t buf[12 * PM_PAGE_SIZE + 6 * 512];
	unsigned n_demote;
	unsigned demote_dev;
	uint64_t demote_gfn[2];
};

static void fill(uint8_t *p, size_t len, uint64_t key)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = splitmix64(&key);

		memcpy(p + i, &v, MIN((size_t)8, len - i));
	}
}

/* Step j (from 1) of the workload, given the oracle after steps 1..j-1. */
static void make_step(uint64_t seed, uint64_t j, const struct oracle *o, struct step *st)
{
	uint64_t x = seed ^ (j * UINT64_C(0x2545f4914f6cdd1d));
	uint8_t *b = st->buf;

	memset(st, 0, offsetof(struct step, buf));
	st->device = (unsigned)(splitmix64(&x) % N_DEVICES);
	st->epoch = o->epoch[st->device] + 1;
	if (devices[st->device].mode == PM_MODE_HINT) {
		st->n_ranges = 1 + splitmix64(&x) % 6;
		for (size_t i = 0; i < st->n_ranges; i++) {
			struct pm_range *g = &st->ranges[i];

			g->gfn = splitmix64(&x) % devices[st->device].pages;
			g->length = (uint32_t)(1 + splitmix64(&x) % 8) * PM_CACHELINE;
			g->offset = (uint32_t)(splitmix64(&x) % ((PM_PAGE_SIZE - g->length) / PM_CACHELINE + 1)) *
				    PM_CACHELINE;
			fill(b, g->length, splitmix64(&x));
			g->data = b;
			b += g->length;
		}
		if (splitmix64(&x) % 4 == 0)
			st->n_pages = 1;
	} else {
		st->n_pages = 1 + splitmix64(&x) % 12;
	}
	for (size_t i = 0; i < st->n_pages; i++) {
		uint64_t gfn;
		bool dup;

		do { /* distinct pages within one epoch */
			gfn = splitmix64(&x) % devices[st->device].pages;
			dup = false;
			for (size_t k = 0; k < i; k++)
				dup |= st->pages[k].gfn == gfn;
		} while (dup);
		st->pages[i].gfn = gfn;
		fill(b, PM_PAGE_SIZE, splitmix64(&x));
		st->pages[i].data = b;
		b += PM_PAGE_SIZE;
	}
	if (j % DEMOTE_EVERY == 0) {
		st->n_demote = 2;
		st->demote_dev = (unsigned)(splitmix64(&x) % N_DEVICES);
		st->demote_gfn[0] = splitmix64(&x) % devices[st->demote_dev].pages;
		st->demote_gfn[1] = splitmix64(&x) % devices[st->demote_dev].pages;
	}
}

/* Pages first, then ranges in order: what recovery must reproduce. */
static void apply_step(struct oracle *o, const struct step *st)
{
	unsigned d = st->device;

	for (size_t i = 0; i < st->n_pages; i++) {
		memcpy(o->data[d] + st->pages[i].gfn * PM_PAGE_SIZE, st->pages[i].data, PM_PAGE_SIZE);
		o->version[d][st->pages[i].gfn] = st->epoch;
	}
	for (size_t i = 0; i < st->n_ranges; i++) {
		const struct pm_range *g = &st->ranges[i];

		memcpy(o->data[d] + g->gfn * PM_PAGE_SIZE + g->offset, g->data, g->length);
		o->version[d][g->gfn] = st->epoch;
	}
	o->epoch[d] = st->epoch;
}

static void oracle_init(struct oracle *o)
{
	for (unsigned d = 0; d < N_DEVICES; d++) {
		o->data[d] = calloc(devices[d].pages, PM_PAGE_SIZE);
		o->version[d] = calloc(devices[d].pages, sizeof(uint64_t));
		o->epoch[d] = 0;
		if (!o->data[d] || !o->version[d])
			abort();
	}
}

static void oracle_free(struct oracle *o)
{
	for (unsigned d = 0; d < N_DEVICES; d++) {
		free(o->data[d]);
		free(o->version[d]);
	}
}

static int open_pool_file(const char *path, struct pool **ret)
{
	char name[] = "stress";
	struct pool_config pc = { .name = name, .path = (char *)path, .kind = POOL_KIND_EMULATED };

	return pool_open(&pc, ret);
}

static int open_store(const char *path, bool read_only, struct pool **ret_pool,
		      struct pm_store **ret_store)
{
	struct pm_recovery rep;
	int r;

	r = open_pool_file(path, ret_pool);
	if (r < 0)
		return r;
	r = pm_store_open(*ret_pool, read_only, ret_store, &rep);
	if (r < 0)
		fprintf(stderr, "pmstress: store refused: %s\n", rep.problem);
	if (r >= 0 && read_only && (rep.committed_epochs || rep.discarded_records || rep.frames_freed)) {
		fprintf(stderr,
			"pmstress: the pool was not recovered: %" PRIu64 " epochs to replay, %" PRIu64
			" records to discard, %" PRIu64 " frames to free\n",
			rep.committed_epochs, rep.discarded_records, rep.frames_freed);
		*ret_store = pm_store_close(*ret_store);
		return -EUCLEAN;
	}
	return r;
}

static int cmd_format(int argc, char **argv)
{
	struct pm_format_options o = { .force = true };
	struct pool_config pc = { .name = (char *)"stress", .path = argv[0], .kind = POOL_KIND_EMULATED };
	struct pool *p = NULL;
	char err[256];
	int r;

	if (argc < 2)
		return 2;
	pc.size = strtoull(argv[1], NULL, 0);
	o.log_size = argc > 2 ? strtoull(argv[2], NULL, 0) : 0;
	r = pool_open(&pc, &p);
	if (r < 0)
		return 1;
	r = pm_store_format(p, &o, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "pmstress: %s\n", err);
	pool_close(p);
	return r < 0 ? 1 : 0;
}

static int ensure_devices(struct pm_store *s, const char *dir, unsigned dev[N_DEVICES])
{
	for (unsigned d = 0; d < N_DEVICES; d++) {
		char img[512];
		struct pm_device_info info = { .name = devices[d].name, .size_pages = devices[d].pages,
					       .mode = devices[d].mode, .image_path = img };
		int r;

		if (pm_device_find(s, devices[d].name, &dev[d]) == 0)
			continue;
		snprintf(img, sizeof(img), "%s/%s.img", dir, devices[d].name);
		r = pm_device_create(s, &info, &dev[d]);
		if (r < 0) {
			fprintf(stderr, "pmstress: cannot create device %s: %s\n", devices[d].name,
				strerror(-r));
			return r;
		}
	}
	return 0;
}

static void progress(int fd, char what, uint64_t j)
{
	char line[32];
	int n = snprintf(line, sizeof(line), "%c %" PRIu64 "\n", what, j);

	if (write(fd, line, (size_t)n) != n)
		abort();
}

static volatile bool stop_bg;

static void *bg_checkpoint(void *arg)
{
	struct pm_store *s = arg;

	while (!stop_bg) {
		if (pm_checkpoint(s) < 0)
			abort();
		usleep(5000);
	}
	return NULL;
}

/* Regenerate the workload while the store says its steps are committed. */
static uint64_t replay_committed(uint64_t seed, struct pm_store *s, const unsigned dev[N_DEVICES],
				 struct oracle *o, struct step *st, bool *ret_prefix)
{
	uint64_t j = 0;

	*ret_prefix = true;
	for (;;) {
		make_step(seed, j + 1, o, st);
		if (st->epoch > pm_device_last_epoch(s, dev[st->device]))
			break;
		apply_step(o, st);
		j++;
	}
	/* nothing after the prefix may be committed */
	for (unsigned d = 0; d < N_DEVICES; d++)
		if (pm_device_last_epoch(s, dev[d]) != o->epoch[d])
			*ret_prefix = false;
	return j;
}

#define MAX_DEMOTE ELEMENTSOF(((struct step *)0)->demote_gfn)

/*
 * The step's demotions as one batch at the newest of their versions (a page that has a frame
 * keeps it, or gets a new one if a newer commit superseded it); a page listed twice goes once.
 */
static int demote_batch(struct pm_store *s, const struct oracle *o, const struct step *st,
			const unsigned *dev)
{
	unsigned d = st->demote_dev;
	uint64_t gfns[MAX_DEMOTE], version = 0;
	const void *data[MAX_DEMOTE];
	size_t n = 0;
	int r;

	for (unsigned k = 0; k < st->n_demote; k++) {
		uint64_t g = st->demote_gfn[k];
		bool seen = false;

		for (size_t i = 0; i < n; i++)
			seen |= gfns[i] == g;
		if (seen)
			continue;
		gfns[n] = g;
		data[n++] = o->data[d] + g * PM_PAGE_SIZE;
		version = MAX(version, o->version[d][g]);
	}
	if (n == 0)
		return 0;
	r = pm_frames_demote(s, dev[d], version, n, gfns, data, NULL);
	if (r < 0) {
		fprintf(stderr, "pmstress: demote failed: %s\n", strerror(-r));
		return r;
	}
	return 0;
}

static int cmd_run(int argc, char **argv)
{
	const char *pool_path = argv[0], *dir = argv[1];
	uint64_t seed, steps, start;
	struct pool *p = NULL;
	struct pm_store *s = NULL;
	struct step *st = malloc(sizeof(*st));
	struct oracle o;
	unsigned dev[N_DEVICES];
	pthread_t bg;
	bool bg_on, prefix;
	char path[512];
	int fd, r;

	if (argc < 4 || !st)
		return 2;
	seed = strtoull(argv[2], NULL, 0);
	steps = strtoull(argv[3], NULL, 0);
	bg_on = argc > 4 && strcmp(argv[4], "--background-checkpoint") == 0;
	if (open_store(pool_path, false, &p, &s) < 0 || ensure_devices(s, dir, dev) < 0)
		return 1;
	oracle_init(&o);
	start = replay_committed(seed, s, dev, &o, st, &prefix);
	if (!prefix) {
		fprintf(stderr, "pmstress: committed state is not a prefix of the workload\n");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/progress", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return 1;
	progress(fd, 'D', start); /* what recovery left is done */
	if (bg_on && pthread_create(&bg, NULL, bg_checkpoint, s) != 0)
		return 1;

	for (uint64_t j = start + 1; steps == 0 || j <= steps; j++) {
		make_step(seed, j, &o, st);
		progress(fd, 'S', j);
		r = pm_commit(s, dev[st->device], st->epoch, st->pages, st->n_pages, st->ranges,
			      st->n_ranges);
		if (r < 0) {
			fprintf(stderr, "pmstress: commit %" PRIu64 " failed: %s\n", j, strerror(-r));
			return 1;
		}
		progress(fd, 'D', j);
		apply_step(&o, st);
		if (demote_batch(s, &o, st, dev) < 0)
			return 1;
		if (!bg_on && j % CHECKPOINT_EVERY == 0 && pm_checkpoint(s) < 0)
			return 1;
	}
	if (bg_on) {
		stop_bg = true;
		pthread_join(bg, NULL);
	}
	close(fd);
	pm_store_close(s);
	pool_close(p);
	oracle_free(&o);
	free(st);
	return 0;
}

/* The last completed commit and whether the next one had started, from the progress file. */
static int read_progress(const char *dir, uint64_t *ret_done, bool *ret_started_next)
{
	char path[512], what;
	uint64_t j, done = 0, started = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/progress", dir);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fscanf(f, " %c %" SCNu64, &what, &j) == 2) {
		if (what == 'D')
			done = j;
		else
			started = j;
	}
	fclose(f);
	*ret_done = done;
	*ret_started_next = started == done + 1;
	return 0;
}

/* Compare the recovered devices with the oracle; 0 when they match. */
static int verify_devices(uint64_t seed, struct pm_store *s, const char *dir, struct step *st)
{
	struct oracle o;
	unsigned dev[N_DEVICES];
	uint64_t committed, done = 0, bad = 0;
	uint8_t page[PM_PAGE_SIZE];
	bool started_next = false, prefix;

	if (read_progress(dir, &done, &started_next) < 0)
		done = 0; /* died before its first commit */
	for (unsigned d = 0; d < N_DEVICES; d++)
		if (pm_device_find(s, devices[d].name, &dev[d]) < 0) {
			if (done == 0 && !started_next) {
				printf("verify: died while creating devices, before any commit\n");
				return 0;
			}
			fprintf(stderr, "pmstress: device %s is missing\n", devices[d].name);
			return 1;
		}
	oracle_init(&o);
	committed = replay_committed(seed, s, dev, &o, st, &prefix);
	if (!prefix) {
		fprintf(stderr, "pmstress: recovered epochs are not a prefix of the workload\n");
		bad = 1;
	} else if (committed != done && !(started_next && committed == done + 1)) {
		fprintf(stderr,
			"pmstress: recovered %" PRIu64 " commits, but %" PRIu64
			" had completed%s\n",
			committed, done, started_next ? " (and one more was in flight)" : "");
		bad = 1;
	} else {
		for (unsigned d = 0; d < N_DEVICES; d++)
			for (uint64_t g = 0; g < devices[d].pages; g++)
				if (pm_device_read_page(s, dev[d], g, page) < 0 ||
				    memcmp(page, o.data[d] + g * PM_PAGE_SIZE, PM_PAGE_SIZE) != 0) {
					if (bad++ < 5)
						fprintf(stderr,
							"pmstress: device %s page %" PRIu64
							" differs from the oracle (version epoch %" PRIu64
							")\n",
							devices[d].name, g, o.version[d][g]);
				}
		printf("verify: %" PRIu64 " commits recovered (%" PRIu64 " completed%s), %" PRIu64
		       " mismatching pages\n",
		       committed, done, started_next ? ", 1 in flight" : "", bad);
	}
	oracle_free(&o);
	return bad ? 1 : 0;
}

static int cmd_verify(int argc, char **argv)
{
	struct pool *p = NULL;
	struct pm_store *s = NULL;
	struct step *st;
	int r;

	if (argc < 3)
		return 2;
	if (open_store(argv[0], true, &p, &s) < 0) {
		pool_close(p);
		return 1;
	}
	st = malloc(sizeof(*st));
	r = st ? verify_devices(strtoull(argv[2], NULL, 0), s, argv[1], st) : 1;
	free(st);
	pm_store_close(s);
	pool_close(p);
	return r;
}

int main(int argc, char **argv)
{
	log_set_max_level(LOG_WARNING);
	if (argc < 2) {
		fprintf(stderr, "usage: vpm-pmstress format|run|verify ...\n");
		return 2;
	}
	if (strcmp(argv[1], "format") == 0)
		return cmd_format(argc - 2, argv + 2);
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 2, argv + 2);
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 2, argv + 2);
	if (strcmp(argv[1], "recover") == 0 && argc == 3) {
		struct pool *p = NULL;
		struct pm_store *s = NULL;

		if (open_store(argv[2], false, &p, &s) < 0)
			return 1;
		pm_store_close(s);
		pool_close(p);
		return 0;
	}
	fprintf(stderr, "vpm-pmstress: unknown command '%s'\n", argv[1]);
	return 2;
}
