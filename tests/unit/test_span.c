/*
 * test_span.c - unit tests for lib/span.c (nsync__span_covers_all,
 * nsync__span_reaches).
 *
 * Hand cases first: the layouts a split walk goes through (two ends
 * crossing strictly, meeting at one instant, ranges cut at a pivot, an
 * end that failed leaving a gap). Then an oracle that shares no code with
 * span.c: with K times t0 < ... < tK-1, the line is 2K + 1 positions (below
 * t0, t0, between t0 and t1, t1, ..., above tK-1); a span covers a set of
 * them by its bounds, and coverage, the gap and "reached" are read off
 * those sets. Random spans (a fixed seed) are checked against it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "span.h"

static const char *T[] = {"2026-01-01T00:00:00.000Z", "2026-01-01T00:01:00.000Z",
			  "2026-01-01T00:02:00.000Z", "2026-01-01T00:03:00.000Z",
			  "2026-01-02T00:00:00.000Z", "2026-02-01T00:00:00.000Z"};
#define K 6
#define POSITIONS (2 * K + 1)

/* The walker's span: everything before t. */
static struct nsync_span below(const char *t)
{
	return (struct nsync_span){NULL, t, 0, 0};
}

static void two_ends_cross_strictly(void **state)
{
	/* The walker went up to T[2], the other end down to T[1]. */
	struct nsync_span s[] = {below(T[2]), {T[1], NULL, 0, 0}};
	const char *gap = NULL;

	(void)state;
	assert_int_equal(nsync__span_covers_all(s, 2, NULL), 1);
	/* Meeting at one instant proves nothing about pages created then. */
	s[1].lo = T[2];
	assert_int_equal(nsync__span_covers_all(s, 2, &gap), 0);
	assert_string_equal(gap, T[2]);
	assert_int_equal(nsync__span_reaches(s + 1, 1, T[2], 1), 0);
	s[1].lo = T[1];
	assert_int_equal(nsync__span_reaches(s + 1, 1, T[2], 1), 1);
}

static void ranges_at_a_pivot(void **state)
{
	/* Pivot T[3]: walker up to T[1], down from the pivot (closed) to
	 * T[2], up after it to T[4], down from the top to T[5]. */
	struct nsync_span s[] = {below(T[1]),
				 {T[2], T[3], 0, 1},
				 {T[3], T[4], 0, 0},
				 {T[5], NULL, 0, 0}};
	const char *gap = NULL;

	(void)state;
	assert_int_equal(nsync__span_covers_all(s, 4, &gap), 0);
	assert_string_equal(gap, T[1]);
	/* The walker crosses the lower range's descending end. */
	s[0].hi = T[3];
	assert_int_equal(nsync__span_reaches(s + 1, 3, T[3], 1), 1);
	assert_int_equal(nsync__span_covers_all(s, 4, &gap), 0);
	assert_string_equal(gap, T[4]);
	/* The upper range's ends cross: done. */
	s[3].lo = T[3];
	assert_int_equal(nsync__span_covers_all(s, 4, NULL), 1);
	/* The pivot itself is covered by the range below it only. */
	s[1].hi_closed = 0;
	assert_int_equal(nsync__span_covers_all(s, 4, &gap), 0);
	assert_string_equal(gap, T[3]);
}

static void ends_at_the_data_sources_ends(void **state)
{
	/* An end that walked down to the start covers everything below. */
	struct nsync_span whole[] = {{NULL, T[4], 0, 1}, {T[4], NULL, 0, 0}};
	struct nsync_span none[] = {{T[0], T[1], 0, 0}};
	const char *gap = NULL;

	(void)state;
	assert_int_equal(nsync__span_covers_all(whole, 2, NULL), 1);
	assert_int_equal(nsync__span_reaches(whole, 1, NULL, 1), 1);
	assert_int_equal(nsync__span_reaches(whole + 1, 1, NULL, 0), 1);
	assert_int_equal(nsync__span_reaches(whole, 1, NULL, 0), 0);
	/* Nothing from the start: the gap is the start. */
	assert_int_equal(nsync__span_covers_all(none, 1, &gap), 0);
	assert_string_equal(gap, "");
	assert_int_equal(nsync__span_covers_all(NULL, 0, &gap), 0);
	assert_string_equal(gap, "");
}

/* --- the oracle ------------------------------------------------------ */

static int index_of(const char *t)
{
	int i;

	for (i = 0; i < K; i++)
		if (t == T[i])
			return i;
	return -1;
}

/* Position p (0 .. 2K) covered by s: time T[i] is position 2i + 1. */
static int covers(const struct nsync_span *s, int p)
{
	if (s->lo) {
		int at = 2 * index_of(s->lo) + 1;
		if (p < at || (p == at && !s->lo_closed))
			return 0;
	}
	if (s->hi) {
		int at = 2 * index_of(s->hi) + 1;
		if (p > at || (p == at && !s->hi_closed))
			return 0;
	}
	return 1;
}

static int covered_by_any(const struct nsync_span *s, size_t n, int p)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (covers(&s[i], p))
			return 1;
	return 0;
}

/* "Reached" as positions: the point and the position just ahead of it
 * are covered; an end at the data source's own end (t < 0) has reached
 * a span unbounded on the other side. */
static int oracle_reaches(const struct nsync_span *s, size_t n, int t, int ascending)
{
	size_t i;

	if (t >= 0)
		return covered_by_any(s, n, 2 * t + 1) &&
		       covered_by_any(s, n, 2 * t + 1 + (ascending ? 1 : -1));
	for (i = 0; i < n; i++)
		if (ascending ? !s[i].lo : !s[i].hi)
			return 1;
	return 0;
}

static uint32_t seed = 20261203u;

static int roll(int n)
{
	seed = seed * 1664525u + 1013904223u;
	return (int)((seed >> 8) % (uint32_t)n);
}

static void random_span(struct nsync_span *s)
{
	int a = roll(K + 1), b = roll(K + 1); /* K: unbounded */

	if (a < K && b < K && a > b) {
		int c = a;
		a = b;
		b = c;
	}
	s->lo = a < K && roll(4) ? T[a] : NULL;
	s->hi = b < K && roll(4) ? T[b] : NULL;
	s->lo_closed = roll(2);
	s->hi_closed = roll(2);
}

static void agrees_with_the_oracle(void **state)
{
	int trial, covered_seen = 0, gaps_seen = 0;

	(void)state;
	for (trial = 0; trial < 20000; trial++) {
		struct nsync_span s[5];
		size_t n = (size_t)roll(5) + 1, i;
		const char *gap = NULL;
		int p, first_gap = -1, got, t = roll(K + 1) - 1, up = roll(2);
		char what[64];

		for (i = 0; i < n; i++)
			random_span(&s[i]);
		for (p = 0; p < POSITIONS && first_gap < 0; p++)
			if (!covered_by_any(s, n, p))
				first_gap = p;
		got = nsync__span_covers_all(s, n, &gap);
		snprintf(what, sizeof(what), "trial %d", trial);
		if (got != (first_gap < 0))
			fail_msg("%s: covers_all says %d", what, got);
		if (!got) {
			/* The gap at T[i] itself or just after it: the walk
			 * goes on from T[i]; below everything: from the start. */
			const char *want = first_gap == 0 ? "" : T[(first_gap - 1) / 2];
			if (strcmp(gap, want) != 0)
				fail_msg("%s: gap %s, want %s", what, gap, want);
			gaps_seen++;
		} else {
			covered_seen++;
		}
		if (nsync__span_reaches(s, n, t < 0 ? NULL : T[t], up) !=
		    oracle_reaches(s, n, t, up))
			fail_msg("%s: reaches(%d, %s) disagrees", what, t, up ? "up" : "down");
	}
	/* Both outcomes were exercised. */
	assert_true(covered_seen > 1000 && gaps_seen > 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(two_ends_cross_strictly),
		cmocka_unit_test(ranges_at_a_pivot),
		cmocka_unit_test(ends_at_the_data_sources_ends),
		cmocka_unit_test(agrees_with_the_oracle),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
