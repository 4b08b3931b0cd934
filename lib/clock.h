/*
 * clock.h - monotonic time for pacing, timeouts and heartbeats, and a
 * sleep that survives signals.
 */
#ifndef NSYNC_CLOCK_H
#define NSYNC_CLOCK_H

/* nsync__monotonic - seconds on a monotonic clock. */
double nsync__monotonic(void);

/* nsync__sleep - sleep for seconds (fractions allowed, <= 0 returns). */
void nsync__sleep(double seconds);

#endif
