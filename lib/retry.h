/*
 * retry.h - when to retry a Notion request, and how long to wait first.
 *
 * A pure function, kept apart from libcurl so that the policy can be unit
 * tested. Policy (Notion's documented limits plus what peers learned):
 *  - 429 rate_limited and 529 service_overload: wait Retry-After when given
 *    (else back off);
 *  - 500, 502, 503, 504, timeouts, resets and truncated answers: exponential
 *    backoff with jitter. Queries are reads, so POST queries are retried too
 *    (the official SDKs retry POST only on 429);
 *  - everything else (400, 401, 403, 404, 409...) is final;
 *  - each request has a budget: at most max_attempts tries and at most
 *    max_request_wait seconds of waiting in all; a single Retry-After longer
 *    than max_retry_wait ends the request rather than being shortened, since
 *    retrying early only earns another 429.
 */
#ifndef NSYNC_RETRY_H
#define NSYNC_RETRY_H

struct nsync_retry_policy {
	int max_attempts;        /* tries in all, >= 1 */
	double max_retry_wait;   /* seconds, one wait */
	double max_request_wait; /* seconds, all waits of one request */
	double backoff_base;     /* seconds, first backoff */
};

/* What went wrong with one attempt. */
struct nsync_attempt {
	int attempt;             /* 1 for the first try */
	long http_status;        /* 0 when no HTTP answer arrived */
	int transient_transport; /* 1: timeout, reset, refused, truncated */
	double retry_after;      /* seconds from Retry-After, < 0 if absent */
	double waited;           /* seconds already waited for this request */
};

/* nsync__retry_delay - seconds to wait before the next try, or a negative
 * value when the request must not be retried. jitter is a number in [0,1)
 * that spreads backoffs (pass 0.5 in tests for the midpoint). */
double nsync__retry_delay(const struct nsync_retry_policy *policy, const struct nsync_attempt *a,
			  double jitter);

/* nsync__status_retryable - 1 for statuses this policy retries. */
int nsync__status_retryable(long http_status);

#endif
