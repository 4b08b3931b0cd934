/*
 * pacer.h - one pacer per Notion token for the whole process: Notion
 * allows about 3 requests per second per token, however many threads send
 * them. A pacer spaces the *starts* of requests (a slot is reserved when a
 * request is about to be sent), so requests may overlap while their
 * latency runs: with 400 ms answers and 333 ms spacing two are in flight.
 *
 * Pacers live until the process ends (one per token seen, 64 bytes each:
 * 10,000 users take 640 KB). They are keyed by a hash of the token, so the
 * token itself is not kept. Across processes nothing is shared: the queue
 * gives one user to one process at a time (queue.h).
 */
#ifndef NSYNC_PACER_H
#define NSYNC_PACER_H

struct nsync_pacer;

/* nsync__pacer_get - the process's pacer of token, made on first use.
 * Thread-safe. NULL only when out of memory (the requests then go
 * unpaced). */
struct nsync_pacer *nsync__pacer_get(const char *token);

/* nsync__pacer_reserve - reserve the next start slot of pacer at rate
 * (requests per second) and return it: the monotonic time (clock.h) at
 * which the request may be sent, now or later. 0 when unpaced (rate <= 0
 * or pacer NULL). Thread-safe. */
double nsync__pacer_reserve(struct nsync_pacer *pacer, double rate);

#endif
