/*
 * test_pacer.c - unit tests for lib/pacer.c: start slots reserved by many
 * threads for one token are spaced at least 1/rate apart (no slot is
 * given twice, whatever the interleaving), other tokens are not held up,
 * the first request of a token waits for nothing, and rate <= 0 is
 * unpaced.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdlib.h>

#include <cmocka.h>

#include "clock.h"
#include "pacer.h"

#define THREADS 8
#define EACH 20000
#define RATE 1e6 /* slots 1 µs apart, far ahead of the clock: every call contends */

struct worker {
	struct nsync_pacer *pacer;
	double slots[EACH];
};

static void *reserve_many(void *arg)
{
	struct worker *w = arg;
	int i;

	for (i = 0; i < EACH; i++)
		w->slots[i] = nsync__pacer_reserve(w->pacer, RATE);
	return NULL;
}

static int by_time(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void test_threads_share_one_pace(void **state)
{
	static struct worker workers[THREADS];
	static double all[THREADS * EACH];
	pthread_t threads[THREADS];
	struct nsync_pacer *p = nsync__pacer_get("secret_shared_token");
	double min_gap = 1.0;
	int i, k;

	(void)state;
	assert_non_null(p);
	assert_ptr_equal(nsync__pacer_get("secret_shared_token"), p);
	for (i = 0; i < THREADS; i++) {
		workers[i].pacer = p;
		assert_int_equal(pthread_create(&threads[i], NULL, reserve_many, &workers[i]), 0);
	}
	for (i = 0; i < THREADS; i++)
		pthread_join(threads[i], NULL);
	for (i = 0; i < THREADS; i++)
		for (k = 0; k < EACH; k++)
			all[i * EACH + k] = workers[i].slots[k];
	qsort(all, THREADS * EACH, sizeof(all[0]), by_time);
	for (i = 1; i < THREADS * EACH; i++)
		if (all[i] - all[i - 1] < min_gap)
			min_gap = all[i] - all[i - 1];
	/* Slots are exact sums of 1/rate: allow rounding only. */
	if (min_gap < 0.999 / RATE)
		fail_msg("two starts %.9f s apart, less than 1/rate = %.9f s", min_gap, 1.0 / RATE);
}

static void test_tokens_are_independent(void **state)
{
	struct nsync_pacer *a = nsync__pacer_get("secret_token_a");
	struct nsync_pacer *b = nsync__pacer_get("secret_token_b");
	double now = nsync__monotonic();
	int i;

	(void)state;
	assert_true(a != b);
	/* A first request waits for nothing. */
	assert_true(nsync__pacer_reserve(a, 1.0) - now < 0.01);
	for (i = 0; i < 3; i++)
		nsync__pacer_reserve(a, 1.0);
	/* a is now booked 3 s ahead; b is not held up by it. */
	assert_true(nsync__pacer_reserve(a, 1.0) - now > 3.5);
	assert_true(nsync__pacer_reserve(b, 1.0) - now < 0.01);
	assert_true(nsync__pacer_reserve(b, 0) == 0);
	assert_true(nsync__pacer_reserve(NULL, 3.0) == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads_share_one_pace),
		cmocka_unit_test(test_tokens_are_independent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
