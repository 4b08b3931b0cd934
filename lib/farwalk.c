/*
 * farwalk.c - the other ends of a split full walk (see farwalk.h).
 *
 * Each end is a thread with a queue of at most HANDOVER answers between it
 * and the walker: an end stays at most that far ahead, so memory is
 * bounded (each answer is about half a megabyte). An answer's text is
 * copied out of the end's client buffer, which the next request reuses.
 * One lock guards every end of a walk: they hand over a few answers a
 * second, and the walker waits on any of them.
 *
 * Two frontiers per end: what it handed over (an end stops when that
 * reaches another end's span: the rest ahead was walked or is in a queue)
 * and what the walker took (only that proves pages seen).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "credentials.h"
#include "error.h"
#include "farwalk.h"
#include "service.h"
#include "span.h"
#include "stats.h"

#define HANDOVER 2
/* Cursors one window may follow (10,000 rows) before it is taken for a loop. */
#define MAX_CURSORS 200
#define MAX_ENDS (2 * NSYNC_FARWALK_MAX_RANGES - 1)

struct answer {
	struct nsync_query_page qp;
	char *raw;
	char front[NSYNC_FARWALK_TIME]; /* created_time of its last result, "" for none */
	int ended;                      /* it reached the data source's end */
};

struct end {
	struct nsync_farwalk *walk;
	int ascending;
	char from[NSYNC_FARWALK_TIME]; /* where it starts: after (ascending) or on or before
					  (descending) it; "" for the data source's top */
	char handed[NSYNC_FARWALK_TIME], taken[NSYNC_FARWALK_TIME]; /* frontiers, "" for none */
	int handed_whole, taken_whole; /* reached the data source's end */
	int running;
	struct nsync_notion *notion;
	struct nsync_notion_ctx ctx;
	struct nsync_stats stats;
	struct answer queue[HANDOVER];
	size_t head, count;
};

struct nsync_farwalk {
	struct nsync_config cfg; /* own copies: the ends may outlive their walk */
	char *token;             /* own copy, wiped when freed */
	int refs;                /* the walk and each thread: the last one frees */
	char source_id[37];
	pthread_mutex_t lock;
	pthread_cond_t changed;
	char near[NSYNC_FARWALK_TIME]; /* the walker's newest created_time */
	struct end ends[MAX_ENDS];
	size_t n_ends, next_take;
	int holding; /* the walker's priority lane runs: no end starts a request */
	int stopping;
};

/* Drop one reference; the last frees everything (f->lock unlocked). */
static void release(struct nsync_farwalk *f)
{
	size_t i;
	int last;

	pthread_mutex_lock(&f->lock);
	last = --f->refs == 0;
	pthread_mutex_unlock(&f->lock);
	if (!last)
		return;
	for (i = 0; i < f->n_ends; i++) {
		struct end *e = &f->ends[i];

		while (e->count) {
			nsync__query_page_clear(&e->queue[e->head].qp);
			free(e->queue[e->head].raw);
			e->head = (e->head + 1) % HANDOVER;
			e->count--;
		}
		nsync__notion_free(e->notion);
	}
	nsync__secret_free(f->token);
	nsync_config_clear(&f->cfg);
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->changed);
	free(f);
}

/* The spans walked (f->lock held): the walker's first, then each end's
 * that has one, from what was taken or what was handed over; except is
 * left out. Returns how many; their strings are borrowed from f. */
static size_t spans_of(const struct nsync_farwalk *f, int taken, const struct end *except,
		       struct nsync_span *out)
{
	size_t i, n = 0;

	/* Everything older than the walker's newest page; "" is below any. */
	out[n++] = (struct nsync_span){NULL, f->near, 0, 0};
	for (i = 0; i < f->n_ends; i++) {
		const struct end *e = &f->ends[i];
		const char *front = taken ? e->taken : e->handed;
		int whole = taken ? e->taken_whole : e->handed_whole;

		if (e == except || (!front[0] && !whole))
			continue;
		if (e->ascending)
			out[n++] = (struct nsync_span){e->from, whole ? NULL : front, 0, 0};
		else
			out[n++] = (struct nsync_span){whole ? NULL : front,
						       e->from[0] ? e->from : NULL, 0, 1};
	}
	return n;
}

/* e reached another end's span, or the walk stops (f->lock held). */
static int reached(const struct end *e)
{
	const struct nsync_farwalk *f = e->walk;
	struct nsync_span spans[MAX_ENDS + 1];
	size_t n = spans_of(f, 0, e, spans);
	const char *point = e->handed[0] ? e->handed : e->from[0] ? e->from : NULL;

	return f->stopping || e->handed_whole || nsync__span_reaches(spans, n, point, e->ascending);
}

/* Whether e is done; while the walk is held, waits first (a request
 * held back would take a pace slot the lane wants). */
static int done(struct end *e)
{
	int stop;

	pthread_mutex_lock(&e->walk->lock);
	while (e->walk->holding && !e->walk->stopping)
		pthread_cond_wait(&e->walk->changed, &e->walk->lock);
	stop = reached(e);
	pthread_mutex_unlock(&e->walk->lock);
	return stop;
}

/* The created_time of the last result of qp, into front ("" for none). */
static void last_created(const struct nsync_query_page *qp, char front[NSYNC_FARWALK_TIME])
{
	size_t n = json_object_array_length(qp->results);
	const char *t = n ? nsync__json_string(json_object_array_get_idx(qp->results, n - 1),
					       "created_time")
			  : NULL;

	front[0] = '\0';
	if (t && strlen(t) < NSYNC_FARWALK_TIME)
		strcpy(front, t);
}

/* Hand qp over (waiting while e's queue is full). 0 when stopping. */
static int hand_over(struct end *e, struct nsync_query_page *qp, int ended)
{
	struct nsync_farwalk *f = e->walk;
	struct answer a;

	a.raw = malloc(qp->raw_len + 1);
	if (!a.raw)
		return 0;
	memcpy(a.raw, qp->raw, qp->raw_len);
	a.raw[qp->raw_len] = '\0';
	a.qp = *qp;
	a.qp.raw = a.raw;
	a.ended = ended;
	last_created(qp, a.front);
	memset(qp, 0, sizeof(*qp)); /* the tree now belongs to the answer */
	pthread_mutex_lock(&f->lock);
	while (e->count == HANDOVER && !f->stopping)
		pthread_cond_wait(&f->changed, &f->lock);
	if (f->stopping) {
		pthread_mutex_unlock(&f->lock);
		nsync__query_page_clear(&a.qp);
		free(a.raw);
		return 0;
	}
	e->queue[(e->head + e->count++) % HANDOVER] = a;
	if (a.front[0])
		memcpy(e->handed, a.front, sizeof(e->handed));
	e->handed_whole |= ended;
	pthread_cond_broadcast(&f->changed);
	pthread_mutex_unlock(&f->lock);
	return 1;
}

/* Windows of at most the result cap, each going on from the last page of
 * the one before; on any failure the end just stops (the walker then
 * walks what it leaves). */
static void *walk_end(void *arg)
{
	struct end *e = arg;
	struct nsync_farwalk *f = e->walk;
	char sorts[100], filter[200], window[NSYNC_FARWALK_TIME];
	int first = 1;

	snprintf(sorts, sizeof(sorts), "[{\"timestamp\":\"created_time\",\"direction\":\"%s\"}]",
		 e->ascending ? "ascending" : "descending");
	memcpy(window, e->from, sizeof(window));
	for (;;) {
		char *cursor = NULL;
		int cursors = 0, capped = 0;

		/* An ascending end starts after its pivot (the range below
		 * includes it) and goes on at its last page's time. */
		if (window[0])
			snprintf(filter, sizeof(filter),
				 "{\"timestamp\":\"created_time\",\"created_time\":{\"%s\":\"%s\"}"
				 "}",
				 !e->ascending ? "on_or_before"
				 : first       ? "after"
					       : "on_or_after",
				 window);
		while (!done(e) && cursors++ < MAX_CURSORS) {
			struct nsync_query_page qp;
			struct nsync_err err;
			int ended;

			memset(&err, 0, sizeof(err));
			if (nsync__notion_query(e->notion, &e->ctx, f->source_id, cursor,
						window[0] ? filter : NULL, sorts, &qp,
						&err) != NSYNC_OK) {
				nsync__query_page_clear(&qp);
				break;
			}
			free(cursor);
			cursor = NULL;
			capped = qp.incomplete;
			ended = !qp.has_more && !qp.incomplete;
			if (qp.has_more && qp.next_cursor && !(cursor = strdup(qp.next_cursor))) {
				nsync__query_page_clear(&qp);
				break;
			}
			if (!hand_over(e, &qp, ended)) {
				nsync__query_page_clear(&qp);
				break;
			}
			if (ended || capped || !cursor)
				break;
		}
		free(cursor);
		if (!capped || done(e))
			break;
		/* A new window at the last time reached; the same instant
		 * again would loop (more rows at one time than a query returns). */
		pthread_mutex_lock(&f->lock);
		if (!e->handed[0] || strcmp(e->handed, window) == 0) {
			pthread_mutex_unlock(&f->lock);
			break;
		}
		memcpy(window, e->handed, sizeof(window));
		pthread_mutex_unlock(&f->lock);
		first = 0;
	}
	pthread_mutex_lock(&f->lock);
	e->running = 0;
	pthread_cond_broadcast(&f->changed);
	pthread_mutex_unlock(&f->lock);
	release(f);
	return NULL;
}

/* Set up end e; 0 when its client cannot be made. */
static int add_end(struct nsync_farwalk *f, struct nsync_pacer *pacer, int ascending,
		   const char *from)
{
	struct end *e = &f->ends[f->n_ends];

	e->walk = f;
	e->ascending = ascending;
	snprintf(e->from, sizeof(e->from), "%s", from);
	if (!(e->notion = nsync__notion_new(&f->cfg, NULL)))
		return 0;
	e->ctx.token = f->token;
	e->ctx.pacer = pacer;
	e->ctx.stats = &e->stats;
	f->n_ends++;
	return 1;
}

struct nsync_farwalk *nsync__farwalk_start(const struct nsync_config *cfg, const char *token,
					   struct nsync_pacer *pacer, const char *source_id,
					   const char (*pivots)[NSYNC_FARWALK_TIME],
					   size_t n_pivots)
{
	struct nsync_farwalk *f = calloc(1, sizeof(*f));
	size_t i, started = 0;

	if (!f)
		return NULL;
	if (nsync__config_copy(&f->cfg, cfg, NULL) != NSYNC_OK || !(f->token = strdup(token))) {
		nsync_config_clear(&f->cfg);
		free(f);
		return NULL;
	}
	/* The ends log nothing of their own: the walk reports. */
	f->cfg.log = NULL;
	f->cfg.progress = NULL;
	snprintf(f->source_id, sizeof(f->source_id), "%s", source_id);
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->changed, NULL);
	f->refs = 1;
	if (n_pivots > NSYNC_FARWALK_MAX_RANGES - 1)
		n_pivots = NSYNC_FARWALK_MAX_RANGES - 1;
	/* Range i lies above pivot i − 1 and up to pivot i: the walker goes
	 * up the first, each other is walked up from its start, and each is
	 * walked down from its end (the last from the top). */
	for (i = 0; i <= n_pivots; i++) {
		if (i > 0 && !add_end(f, pacer, 1, pivots[i - 1]))
			break;
		if (!add_end(f, pacer, 0, i < n_pivots ? pivots[i] : ""))
			break;
	}
	pthread_mutex_lock(&f->lock);
	for (i = 0; i < f->n_ends; i++) {
		pthread_t thread;

		f->ends[i].running = 1;
		f->refs++;
		if (pthread_create(&thread, NULL, walk_end, &f->ends[i]) != 0) {
			f->ends[i].running = 0;
			f->refs--;
			continue;
		}
		pthread_detach(thread);
		started++;
	}
	pthread_mutex_unlock(&f->lock);
	if (!started) {
		release(f);
		return NULL;
	}
	return f;
}

/* Take e's oldest answer (f->lock held). */
static void take_from(struct end *e, struct nsync_query_page *qp, char **raw)
{
	struct answer *a = &e->queue[e->head];

	*qp = a->qp;
	*raw = a->raw;
	if (a->front[0])
		memcpy(e->taken, a->front, sizeof(e->taken));
	e->taken_whole |= a->ended;
	e->head = (e->head + 1) % HANDOVER;
	e->count--;
}

static int any_running(const struct nsync_farwalk *f)
{
	size_t i;

	for (i = 0; i < f->n_ends; i++)
		if (f->ends[i].running)
			return 1;
	return 0;
}

int nsync__farwalk_take(struct nsync_farwalk *f, struct nsync_query_page *qp, char **raw,
			double wait)
{
	struct timespec until;
	int got = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)wait;
	until.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&f->lock);
	for (;;) {
		size_t i;

		/* Round robin: no end's queue waits behind another's. */
		for (i = 0; i < f->n_ends && !got; i++) {
			struct end *e = &f->ends[(f->next_take + i) % f->n_ends];

			if (e->count) {
				take_from(e, qp, raw);
				f->next_take = (f->next_take + i + 1) % f->n_ends;
				got = 1;
			}
		}
		if (got || wait <= 0 || !any_running(f) ||
		    pthread_cond_timedwait(&f->changed, &f->lock, &until) != 0)
			break;
	}
	if (got)
		pthread_cond_broadcast(&f->changed);
	pthread_mutex_unlock(&f->lock);
	return got;
}

void nsync__farwalk_hold(struct nsync_farwalk *f, int hold)
{
	pthread_mutex_lock(&f->lock);
	f->holding = hold;
	pthread_cond_broadcast(&f->changed);
	pthread_mutex_unlock(&f->lock);
}

void nsync__farwalk_near(struct nsync_farwalk *f, const char *newest)
{
	pthread_mutex_lock(&f->lock);
	if (newest && strlen(newest) < sizeof(f->near) && strcmp(newest, f->near) > 0)
		strcpy(f->near, newest);
	pthread_mutex_unlock(&f->lock);
}

int nsync__farwalk_covered(struct nsync_farwalk *f)
{
	struct nsync_span spans[MAX_ENDS + 1];
	int covered;

	pthread_mutex_lock(&f->lock);
	covered = nsync__span_covers_all(spans, spans_of(f, 1, NULL, spans), NULL);
	pthread_mutex_unlock(&f->lock);
	return covered;
}

int nsync__farwalk_parked(struct nsync_farwalk *f)
{
	struct nsync_span spans[MAX_ENDS + 1];
	int parked;

	pthread_mutex_lock(&f->lock);
	/* The walker's own span comes first: leave it out. */
	parked = nsync__span_reaches(spans + 1, spans_of(f, 1, NULL, spans) - 1,
				     f->near[0] ? f->near : NULL, 1);
	pthread_mutex_unlock(&f->lock);
	return parked;
}

int nsync__farwalk_busy(struct nsync_farwalk *f)
{
	size_t i;
	int busy;

	pthread_mutex_lock(&f->lock);
	busy = any_running(f);
	for (i = 0; i < f->n_ends && !busy; i++)
		busy = f->ends[i].count > 0;
	pthread_mutex_unlock(&f->lock);
	return busy;
}

void nsync__farwalk_gap(struct nsync_farwalk *f, char gap[NSYNC_FARWALK_TIME])
{
	struct nsync_span spans[MAX_ENDS + 1];
	const char *at = "";

	pthread_mutex_lock(&f->lock);
	if (nsync__span_covers_all(spans, spans_of(f, 1, NULL, spans), &at))
		at = "";
	snprintf(gap, NSYNC_FARWALK_TIME, "%s", at);
	pthread_mutex_unlock(&f->lock);
}

void nsync__farwalk_stop(struct nsync_farwalk *f, double wait)
{
	double until = nsync__monotonic() + wait;

	pthread_mutex_lock(&f->lock);
	f->stopping = 1;
	pthread_cond_broadcast(&f->changed);
	/* Requests in flight end within the latency; a stalled one is not
	 * waited for (its thread finishes it and frees itself). */
	while (any_running(f) && nsync__monotonic() < until) {
		pthread_mutex_unlock(&f->lock);
		nsync__sleep(0.005);
		pthread_mutex_lock(&f->lock);
	}
	pthread_mutex_unlock(&f->lock);
}

void nsync__farwalk_free(struct nsync_farwalk *f, struct nsync_stats *stats)
{
	size_t i;

	if (!f)
		return;
	nsync__farwalk_stop(f, 0);
	pthread_mutex_lock(&f->lock);
	/* An end's requests count once it has stopped; one still in flight
	 * adds nothing more. */
	for (i = 0; stats && i < f->n_ends; i++)
		if (!f->ends[i].running)
			nsync__stats_add(stats, &f->ends[i].stats);
	pthread_mutex_unlock(&f->lock);
	release(f);
}
