// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vpm-seq-test - unit test of seq_check_snapshot() (vpm-seq.h), the checker of an image
 * of vpm-vmm's vPM region.
 *
 * Images are built by replaying the writes 1..S one by one (not with seq_expected()), so
 * the checker is compared against an independent model.  It checks:
 *
 *   - the default layout (2048 pages, 16 words per page, N = 32768 slots): consistent
 *     images at S = 0, 1, N - 1, N, N + 1 and 5N + 3 pass with that S;
 *   - small layouts (3 pages x 2 words, 4 x 3, 1 x 5) and one with full pages (2 pages
 *     x 1024 words): every S from 0 to 5N + 3 passes with that S; for the small ones
 *     also, for every pair S1 < S2 and every page that differs between them, the image
 *     at S2 with that page from S1 passes exactly when it equals some state S (then as
 *     that S; the oracle takes S as the largest word and compares the whole image),
 *     and fails otherwise;
 *   - in the default layout at S = 5N + 3 (6N + 3 for the torn slots), with the message
 *     of the failure: one page from an older state, a torn slot (low half of the old
 *     value, high half of the new one and the reverse), a slot with a future value (its
 *     next value, S + N or more), a slot holding another slot's value, write S + 2
 *     without S + 1, a non-zero byte outside the slots, a zero slot in the middle, and
 *     random garbage all fail; the page of write S from the state at S - 1 passes as
 *     S - 1 (it is that state);
 *   - invalid layouts (size 0, not a multiple of 4096, 0 or 1025 words) fail;
 *   - the slot offsets: consecutive slots are on consecutive pages.
 *
 * Output: one line per check, then "VPM-SEQ-TEST: PASS" or "VPM-SEQ-TEST: FAIL <why>".
 * Exit codes: 0 pass, 1 fail.
 *
 * Build: gcc -O2 -Wall -Wextra -o vpm-seq-test vpm-seq-test.c (with vpm-seq.h next to
 * it).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vpm-seq.h"

static int failed, checks;

static void __attribute__((format(printf, 2, 3))) check(int ok, const char *fmt, ...)
{
	va_list ap;

	checks++;
	if (!ok)
		failed++;
	printf("vpm-seq-test: %-4s ", ok ? "ok" : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* A layout and an image of it. */
struct img {
	uint64_t size, pages, slots;
	unsigned int words;
	uint32_t last;		/* the writes 1..last are in buf */
	uint8_t *buf;
};

static void img_init(struct img *m, uint64_t pages, unsigned int words)
{
	m->pages = pages;
	m->words = words;
	m->size = pages * SEQ_PAGE_SIZE;
	m->slots = pages * words;
	m->last = 0;
	m->buf = calloc(1, m->size);
	if (!m->buf) {
		printf("VPM-SEQ-TEST: FAIL out of memory\n");
		exit(1);
	}
}

/* img_write_to - replay the writes up to last, as the guest does them. */
static void img_write_to(struct img *m, uint32_t last)
{
	uint64_t page = m->last % m->pages, word = m->last / m->pages % m->words;

	while (m->last < last) {
		m->last++;
		seq_store(m->buf + page * SEQ_PAGE_SIZE + word * 4, m->last);
		if (++page == m->pages) {
			page = 0;
			if (++word == m->words)
				word = 0;
		}
	}
}

static uint8_t *copy(const struct img *m)
{
	uint8_t *p = malloc(m->size);

	if (!p) {
		printf("VPM-SEQ-TEST: FAIL out of memory\n");
		exit(1);
	}
	memcpy(p, m->buf, m->size);
	return p;
}

/* run - the checker on buf; 0 or -1, with the S and the message. */
static int run(const struct img *m, const uint8_t *buf, uint32_t *last, char *why)
{
	why[0] = 0;
	*last = 12345678;
	return seq_check_snapshot(buf, m->size, m->words, last, why, 160);
}

static void consistent(struct img *m, uint32_t s, const char *name)
{
	uint32_t last;
	char why[160];
	int r;

	img_write_to(m, s);
	r = run(m, m->buf, &last, why);
	check(r == 0 && last == s, "%s: consistent image at S = %u passes with S = %u (%d%s%s)",
	      name, s, last, r, why[0] ? ": " : "", why);
}

/* must_fail - buf must be refused; print why. */
static void must_fail(const struct img *m, const uint8_t *buf, const char *what)
{
	uint32_t last;
	char why[160];
	int r = run(m, buf, &last, why);

	check(r == -1 && why[0], "%s: refused (%s)", what, why[0] ? why : "no message");
}

static uint8_t *slot_ptr(const struct img *m, uint8_t *buf, uint64_t i)
{
	return buf + seq_slot_offset(m->pages, i);
}

/* max_word - the largest 32-bit word of an image, slot or not. */
static uint32_t max_word(const uint8_t *buf, uint64_t size)
{
	uint32_t v, max = 0;
	uint64_t off;

	for (off = 0; off < size; off += 4) {
		v = seq_load(buf + off);
		if (v > max)
			max = v;
	}
	return max;
}

/*
 * exhaustive - on a small layout, every S up to 5N + 3 and, with pairs, every image
 * mixed from two states at page granularity.
 */
static void exhaustive(uint64_t pages, unsigned int words, int pairs)
{
	struct img m;
	uint32_t top, s1, s2, last;
	uint64_t p;
	uint8_t **state, *mix;
	char why[160];
	int bad_pass = 0, bad_fail = 0, bad_s = 0, mixed = 0, consistent_mixes = 0;

	img_init(&m, pages, words);
	top = 5 * m.slots + 3;
	state = calloc(top + 1, sizeof(*state));
	for (s1 = 0; s1 <= top; s1++) {
		img_write_to(&m, s1);
		state[s1] = copy(&m);
		if (run(&m, state[s1], &last, why) || last != s1)
			bad_s++;
	}
	check(!bad_s, "%llu pages x %u words: every S from 0 to 5N + 3 = %u passes with that S "
	      "(%d wrong)", (unsigned long long)pages, words, top, bad_s);

	mix = malloc(m.size);
	for (s1 = 0; pairs && s1 <= top; s1++) {
		for (s2 = s1 + 1; s2 <= top; s2++) {
			for (p = 0; p < pages; p++) {
				uint32_t k;
				int r, whole;

				if (!memcmp(state[s1] + p * SEQ_PAGE_SIZE,
					    state[s2] + p * SEQ_PAGE_SIZE, SEQ_PAGE_SIZE))
					continue;
				memcpy(mix, state[s2], m.size);
				memcpy(mix + p * SEQ_PAGE_SIZE, state[s1] + p * SEQ_PAGE_SIZE,
				       SEQ_PAGE_SIZE);
				r = run(&m, mix, &last, why);
				/*
				 * The oracle: a consistent image is the state of its largest
				 * word (undoing the last writes of a page can give one).
				 */
				k = max_word(mix, m.size);
				whole = k <= top && !memcmp(mix, state[k], m.size);
				if (whole) {
					consistent_mixes++;
					if (r != 0 || last != k)
						bad_fail++;
				} else {
					mixed++;
					if (r == 0)
						bad_pass++;
				}
			}
		}
	}
	if (pairs)
		check(!bad_pass && !bad_fail && (mixed || pages == 1),
		      "%llu pages x %u words, a page of the state at S2 replaced by the "
		      "different one of S1 < S2: %d images fail (%d passed wrongly), %d that "
		      "equal a state S pass as S (%d did not)", (unsigned long long)pages,
		      words, mixed, bad_pass, consistent_mixes, bad_fail);
	for (s1 = 0; s1 <= top; s1++)
		free(state[s1]);
	free(state);
	free(mix);
	free(m.buf);
}

int main(void)
{
	struct img m;
	uint64_t n, i, j;
	uint32_t s, v_old, v_new, last;
	uint8_t *b;
	char why[160];
	unsigned int k;

	setvbuf(stdout, NULL, _IOLBF, 0);

	/* The layout. */
	check(seq_slot_offset(2048, 0) == 0 && seq_slot_offset(2048, 1) == 4096 &&
	      seq_slot_offset(2048, 2047) == 2047 * 4096 && seq_slot_offset(2048, 2048) == 4 &&
	      seq_slot_offset(2048, 2049) == 4096 + 4,
	      "slot offsets: 0, 4096, 2047 * 4096, 4, 4100 for slots 0, 1, 2047, 2048, 2049");
	check(seq_slots(8 << 20, 16) == 32768 && seq_pages(8 << 20) == 2048,
	      "8 MiB x 16 words: 2048 pages, 32768 slots");

	/* Invalid layouts. */
	img_init(&m, 1, 1);
	check(seq_check_snapshot(m.buf, 0, 16, &last, why, sizeof(why)) == -1,
	      "pm-size 0 is refused (%s)", why);
	check(seq_check_snapshot(m.buf, 4095, 16, &last, why, sizeof(why)) == -1,
	      "pm-size 4095 is refused (%s)", why);
	check(seq_check_snapshot(m.buf, 4096, 0, &last, why, sizeof(why)) == -1,
	      "0 words per page are refused (%s)", why);
	check(seq_check_snapshot(m.buf, 4096, 1025, &last, why, sizeof(why)) == -1,
	      "1025 words per page are refused (%s)", why);
	check(seq_check_snapshot(m.buf, 4096, 1, NULL, NULL, 0) == 0,
	      "ret_last and why may be NULL");
	free(m.buf);

	/* The default layout: the S of the brief. */
	img_init(&m, 2048, 16);
	n = m.slots;
	consistent(&m, 0, "default layout");
	consistent(&m, 1, "default layout");
	consistent(&m, n - 1, "default layout");
	consistent(&m, n, "default layout");
	consistent(&m, n + 1, "default layout");
	consistent(&m, 5 * n + 3, "default layout");
	s = m.last;

	/* One page from an older state (S - 2N: every slot of the page differs). */
	{
		struct img old;

		img_init(&old, 2048, 16);
		img_write_to(&old, s - 2 * n);
		b = copy(&m);
		memcpy(b + 7 * SEQ_PAGE_SIZE, old.buf + 7 * SEQ_PAGE_SIZE, SEQ_PAGE_SIZE);
		must_fail(&m, b, "page 7 from the state at S - 2N");
		free(b);
		/* ... and from just one write back: only the page of write S differs. */
		img_write_to(&old, s - 1);
		i = seq_slot_of(n, s);
		b = copy(&m);
		memcpy(b + i % 2048 * SEQ_PAGE_SIZE, old.buf + i % 2048 * SEQ_PAGE_SIZE,
		       SEQ_PAGE_SIZE);
		check(run(&m, b, &last, why) == 0 && last == s - 1,
		      "the page of write S from the state at S - 1 is the state at S - 1 (%u)",
		      last);
		free(b);
		/* The page of write S - 1 from S - 2, with write S on its own page. */
		free(old.buf);
		img_init(&old, 2048, 16);
		img_write_to(&old, s - 2);
		j = seq_slot_of(n, s - 1);
		b = copy(&m);
		memcpy(b + j % 2048 * SEQ_PAGE_SIZE, old.buf + j % 2048 * SEQ_PAGE_SIZE,
		       SEQ_PAGE_SIZE);
		must_fail(&m, b, "the page of write S - 1 from the state at S - 2 (S is there)");
		free(b);
		free(old.buf);
	}

	/*
	 * Torn slots: the write S + 1 half done, in both orders, at S = 6N + 3, where the
	 * old value 0x28004 and the new one 0x30004 differ in both halves.
	 */
	img_write_to(&m, 6 * n + 3);
	s = m.last;
	i = seq_slot_of(n, s + 1);
	v_old = seq_load(slot_ptr(&m, m.buf, i));
	v_new = s + 1;
	check(v_old == s + 1 - n && (v_old ^ v_new) & 0xffff && (v_old ^ v_new) & 0xffff0000,
	      "S = 6N + 3: slot %llu of write S + 1 holds S + 1 - N = 0x%x, differs from "
	      "S + 1 = 0x%x in both halves", (unsigned long long)i, v_old, v_new);
	b = copy(&m);
	seq_store(slot_ptr(&m, b, i), (v_old & 0xffff) | (v_new & 0xffff0000));
	must_fail(&m, b, "a torn slot (low half old, high half new)");
	seq_store(slot_ptr(&m, b, i), (v_new & 0xffff) | (v_old & 0xffff0000));
	must_fail(&m, b, "a torn slot (low half new, high half old)");
	free(b);

	/* A value from the future. */
	b = copy(&m);
	j = 100;
	seq_store(slot_ptr(&m, b, j), seq_load(slot_ptr(&m, b, j)) + n);
	must_fail(&m, b, "slot 100 holds its next value (beyond S)");
	free(b);
	b = copy(&m);
	seq_store(slot_ptr(&m, b, i), s + 1 + n);
	must_fail(&m, b, "the slot of write S + 1 holds S + 1 + N");
	free(b);
	b = copy(&m);
	seq_store(slot_ptr(&m, b, seq_slot_of(n, s + 2)), s + 2);
	must_fail(&m, b, "write S + 2 without write S + 1");
	free(b);

	/* Values in the wrong place. */
	b = copy(&m);
	seq_store(slot_ptr(&m, b, 5), seq_load(slot_ptr(&m, b, 6)));
	must_fail(&m, b, "slot 5 holds the value of slot 6");
	free(b);
	b = copy(&m);
	seq_store(slot_ptr(&m, b, 5), 0);
	must_fail(&m, b, "slot 5 is 0");
	free(b);
	b = copy(&m);
	b[3 * SEQ_PAGE_SIZE + 16 * 4 + 1] = 0x80;
	must_fail(&m, b, "a non-zero byte outside the slots");
	free(b);
	b = copy(&m);
	b[SEQ_PAGE_SIZE - 1] = 1;
	must_fail(&m, b, "a non-zero last byte of page 0");
	free(b);

	/* Garbage. */
	b = copy(&m);
	srand(1);
	for (i = 0; i < m.size; i++)
		b[i] = (uint8_t)rand();
	must_fail(&m, b, "random garbage");
	memset(b, 0xff, m.size);
	must_fail(&m, b, "all bytes 0xff");
	free(b);
	b = copy(&m);
	for (k = 0; k < 50; k++) {
		i = (uint64_t)rand() % n;
		seq_store(slot_ptr(&m, b, i), (uint32_t)rand());
	}
	must_fail(&m, b, "50 random slots overwritten with random values");
	free(b);
	free(m.buf);

	/* Small layouts, exhaustively. */
	exhaustive(3, 2, 1);
	exhaustive(4, 3, 1);
	exhaustive(1, 5, 1);
	exhaustive(2, 1024, 0);

	if (failed) {
		printf("VPM-SEQ-TEST: FAIL %d of %d checks failed\n", failed, checks);
		return 1;
	}
	printf("VPM-SEQ-TEST: PASS (%d checks)\n", checks);
	return 0;
}
