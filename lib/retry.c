/*
 * retry.c - the retry policy for Notion requests (see retry.h).
 */
#include <math.h>

#include "retry.h"

int nsync__status_retryable(long s)
{
	return s == 429 || s == 529 || s == 500 || s == 502 || s == 503 || s == 504;
}

double nsync__retry_delay(const struct nsync_retry_policy *p, const struct nsync_attempt *a,
			  double jitter)
{
	double delay, cap;

	if (a->attempt >= p->max_attempts)
		return -1;
	if (a->http_status == 0 && !a->transient_transport)
		return -1;
	if (a->http_status != 0 && !nsync__status_retryable(a->http_status))
		return -1;

	if ((a->http_status == 429 || a->http_status == 529) && a->retry_after >= 0) {
		if (a->retry_after > p->max_retry_wait)
			return -1;
		delay = a->retry_after;
	} else {
		/* Equal jitter: half fixed, half random, so waits never collapse
		 * to zero yet callers do not retry in lockstep. */
		cap = p->backoff_base * pow(2.0, a->attempt - 1);
		if (cap > p->max_retry_wait)
			cap = p->max_retry_wait;
		delay = cap / 2 + cap / 2 * jitter;
	}
	if (a->waited + delay > p->max_request_wait)
		return -1;
	return delay;
}
