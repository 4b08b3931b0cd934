/*
 * test_retry.c - unit tests for lib/retry.c (nsync__retry_delay,
 * nsync__status_retryable).
 *
 * Covers, with the policy {max_attempts 5, max_retry_wait 60,
 * max_request_wait 100, backoff_base 1}: 429/529 honour Retry-After
 * (and back off without it); 5xx and transient transport errors back off
 * exponentially with equal jitter (cap/2 + cap/2 * jitter), capped at
 * max_retry_wait; non-transient transport errors and 4xx are final; the
 * attempt budget, a Retry-After longer than max_retry_wait (refused, not
 * shortened) and the total wait budget end the request; the table of
 * retryable statuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>

#include <cmocka.h>

#include "retry.h"

static const struct nsync_retry_policy policy = {5, 60.0, 100.0, 1.0};

/* An attempt with status s, no Retry-After, nothing waited yet. */
static struct nsync_attempt attempt(int n, long status)
{
	struct nsync_attempt a = {n, status, 0, -1.0, 0.0};

	return a;
}

/* An attempt answered status with a Retry-After of retry_after seconds. */
static struct nsync_attempt attempt_after(int n, long status, double retry_after)
{
	struct nsync_attempt a = attempt(n, status);

	a.retry_after = retry_after;
	return a;
}

static double delay(const struct nsync_retry_policy *p, struct nsync_attempt a, double jitter)
{
	return nsync__retry_delay(p, &a, jitter);
}

/* cmocka 1.1's assert_float_equal compares floats; compare doubles. */
static void near(double got, double want, const char *file, int line)
{
	if (!(fabs(got - want) <= 1e-9))
		fail_msg("%s:%d: got %.12g, want %.12g", file, line, got, want);
}

#define assert_near(got, want) near((got), (want), __FILE__, __LINE__)

static void retry_after_honoured(void **state)
{
	(void)state;
	assert_near(delay(&policy, attempt_after(1, 429, 3), 0.0), 3.0);
	/* Jitter does not change a server-given wait. */
	assert_near(delay(&policy, attempt_after(1, 429, 3), 0.999), 3.0);
	assert_near(delay(&policy, attempt_after(2, 529, 7.5), 0.5), 7.5);
	assert_near(delay(&policy, attempt_after(4, 429, 0), 0.5), 0.0);
	/* Exactly max_retry_wait is still fine. */
	assert_near(delay(&policy, attempt_after(1, 429, 60), 0.5), 60.0);
}

static void rate_limit_without_retry_after(void **state)
{
	int n;

	(void)state;
	/* Backoff in [cap/2, cap] with cap = base * 2^(n-1). */
	for (n = 1; n <= 4; n++) {
		double cap = (double)(1 << (n - 1));
		double lo = delay(&policy, attempt(n, 429), 0.0);
		double mid = delay(&policy, attempt(n, 429), 0.5);
		double hi = delay(&policy, attempt(n, 429), 0.999);
		assert_near(lo, cap / 2);
		assert_near(mid, cap * 0.75);
		assert_true(hi >= cap / 2 && hi < cap);
		assert_near(hi, cap / 2 + cap / 2 * 0.999);
		assert_near(delay(&policy, attempt(n, 529), 0.0), cap / 2);
	}
}

static void server_errors_back_off(void **state)
{
	static const long statuses[] = {500, 502, 503, 504};
	static const double caps[] = {1, 2, 4, 8};
	size_t s;
	int n;

	(void)state;
	for (s = 0; s < 4; s++) {
		for (n = 1; n <= 4; n++) {
			assert_near(delay(&policy, attempt(n, statuses[s]), 0.0), caps[n - 1] / 2);
			assert_near(delay(&policy, attempt(n, statuses[s]), 0.999),
				    caps[n - 1] * (0.5 + 0.4995));
		}
	}
	/* A Retry-After on a 503 is not used: only 429/529 honour it. */
	assert_near(delay(&policy, attempt_after(1, 503, 30), 0.0), 0.5);
}

static void backoff_capped(void **state)
{
	const struct nsync_retry_policy p = {10, 60.0, 1000.0, 1.0};
	const struct nsync_retry_policy p2 = {10, 60.0, 1000.0, 5.0};

	(void)state;
	/* cap 32 at attempt 6, 64 -> 60 at attempt 7, stays 60. */
	assert_near(delay(&p, attempt(6, 500), 0.0), 16.0);
	assert_near(delay(&p, attempt(7, 500), 0.0), 30.0);
	assert_near(delay(&p, attempt(9, 500), 0.0), 30.0);
	assert_near(delay(&p, attempt(9, 500), 0.999), 30.0 + 30.0 * 0.999);
	assert_true(delay(&p, attempt(9, 500), 0.999) <= 60.0);
	/* backoff_base scales the steps: 5, 10, 20, 40, 60. */
	assert_near(delay(&p2, attempt(1, 502), 0.0), 2.5);
	assert_near(delay(&p2, attempt(4, 502), 0.0), 20.0);
	assert_near(delay(&p2, attempt(5, 502), 0.0), 30.0);
}

static void transport_errors(void **state)
{
	struct nsync_attempt a;

	(void)state;
	a = attempt(1, 0);
	a.transient_transport = 1;
	assert_near(delay(&policy, a, 0.0), 0.5);
	a.attempt = 3;
	assert_near(delay(&policy, a, 0.5), 3.0);
	/* Not transient (bad URL, TLS failure...): final. */
	assert_true(delay(&policy, attempt(1, 0), 0.5) < 0);
	assert_true(delay(&policy, attempt_after(1, 0, 1), 0.5) < 0);
}

static void client_errors_final(void **state)
{
	static const long final[] = {400, 401, 403, 404, 409, 200, 301, 501, 505};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(final) / sizeof(final[0]); i++) {
		struct nsync_attempt a = attempt(1, final[i]);
		assert_true(delay(&policy, a, 0.5) < 0);
		/* Neither a Retry-After nor a transient flag changes that. */
		a.retry_after = 1;
		a.transient_transport = 1;
		assert_true(delay(&policy, a, 0.5) < 0);
	}
}

static void attempts_budget(void **state)
{
	(void)state;
	assert_true(delay(&policy, attempt(4, 500), 0.0) >= 0);
	assert_true(delay(&policy, attempt(5, 500), 0.0) < 0);
	assert_true(delay(&policy, attempt(6, 500), 0.0) < 0);
	assert_true(delay(&policy, attempt_after(5, 429, 1), 0.0) < 0);
	assert_near(delay(&policy, attempt_after(4, 429, 1), 0.0), 1.0);
	/* max_attempts 1: never retry. */
	{
		const struct nsync_retry_policy once = {1, 60.0, 100.0, 1.0};
		assert_true(delay(&once, attempt(1, 503), 0.0) < 0);
	}
}

static void retry_after_too_long(void **state)
{
	(void)state;
	assert_true(delay(&policy, attempt_after(1, 429, 61), 0.5) < 0);
	assert_true(delay(&policy, attempt_after(1, 429, 60.001), 0.5) < 0);
	assert_true(delay(&policy, attempt_after(1, 529, 3600), 0.5) < 0);
}

static void request_wait_budget(void **state)
{
	struct nsync_attempt a = attempt_after(2, 429, 10);

	(void)state;
	a.waited = 90;
	assert_near(delay(&policy, a, 0.0), 10.0); /* 100: still within */
	a.waited = 90.5;
	assert_true(delay(&policy, a, 0.0) < 0);
	a.retry_after = 60;
	a.waited = 41;
	assert_true(delay(&policy, a, 0.0) < 0);
	/* Backoff counts against the budget too: attempt 4 waits 4..8. */
	a = attempt(4, 500);
	a.waited = 95;
	assert_near(delay(&policy, a, 0.0), 4.0);
	a.waited = 96.5;
	assert_true(delay(&policy, a, 0.0) < 0);
	a.waited = 92;
	assert_near(delay(&policy, a, 0.999), 4.0 + 4.0 * 0.999);
	a.waited = 92.1;
	assert_true(delay(&policy, a, 0.999) < 0);
}

static void status_table(void **state)
{
	static const long yes[] = {429, 529, 500, 502, 503, 504};
	static const long no[] = {0,   100, 200, 201, 204, 301, 304, 400, 401, 403, 404, 408,
				  409, 410, 413, 422, 428, 499, 501, 505, 520, 530, 599};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		assert_int_equal(nsync__status_retryable(yes[i]), 1);
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_int_equal(nsync__status_retryable(no[i]), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(retry_after_honoured),
		cmocka_unit_test(rate_limit_without_retry_after),
		cmocka_unit_test(server_errors_back_off),
		cmocka_unit_test(backoff_capped),
		cmocka_unit_test(transport_errors),
		cmocka_unit_test(client_errors_final),
		cmocka_unit_test(attempts_budget),
		cmocka_unit_test(retry_after_too_long),
		cmocka_unit_test(request_wait_budget),
		cmocka_unit_test(status_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
