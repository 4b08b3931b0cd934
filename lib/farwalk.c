/*
 * farwalk.c - the descending end of a two-ended full walk (see farwalk.h).
 *
 * A queue of at most HANDOVER answers sits between the far end's thread and
 * the walker: the far end stays at most that far ahead, so memory is
 * bounded (each answer is about half a megabyte). Its text is copied out
 * of the client's buffer, which the next request reuses.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "credentials.h"
#include "error.h"
#include "farwalk.h"
#include "service.h"
#include "clock.h"
#include "stats.h"

#define HANDOVER 2
/* Cursors one window may follow (10,000 rows) before it is taken for a loop. */
#define MAX_CURSORS 200

struct answer {
	struct nsync_query_page qp;
	char *raw;
};

struct nsync_farwalk {
	struct nsync_config cfg; /* own copies: the far end may outlive its walk */
	char *token;             /* own copy, wiped when freed */
	int refs;                /* the walk and the thread: the last one frees */
	struct nsync_notion *notion;
	struct nsync_notion_ctx ctx;
	struct nsync_stats stats;
	char source_id[37];
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct answer queue[HANDOVER];
	size_t head, count;
	char near[40]; /* the walker's newest created_time */
	char low[40];  /* the oldest created_time handed over */
	int whole;     /* walked to the start of the data source */
	int running, stopping;
};

/* Drop one reference; the last frees everything (f->lock unlocked). */
static void release(struct nsync_farwalk *f)
{
	struct nsync_query_page qp;
	int last;

	pthread_mutex_lock(&f->lock);
	last = --f->refs == 0;
	pthread_mutex_unlock(&f->lock);
	if (!last)
		return;
	while (f->count) {
		qp = f->queue[f->head].qp;
		free(f->queue[f->head].raw);
		nsync__query_page_clear(&qp);
		f->head = (f->head + 1) % HANDOVER;
		f->count--;
	}
	nsync__notion_free(f->notion);
	nsync__secret_free(f->token);
	nsync_config_clear(&f->cfg);
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->changed);
	free(f);
}

/* The created_time of the last result of qp, or NULL. */
static const char *last_created(const struct nsync_query_page *qp)
{
	size_t n = json_object_array_length(qp->results);

	return n ? nsync__json_string(json_object_array_get_idx(qp->results, n - 1), "created_time")
		 : NULL;
}

/* Hand qp over (waiting while the queue is full). 0 when stopping. */
static int hand_over(struct nsync_farwalk *f, struct nsync_query_page *qp)
{
	struct answer a;
	const char *low = last_created(qp);

	a.raw = malloc(qp->raw_len + 1);
	if (!a.raw)
		return 0;
	memcpy(a.raw, qp->raw, qp->raw_len);
	a.raw[qp->raw_len] = '\0';
	a.qp = *qp;
	a.qp.raw = a.raw;
	memset(qp, 0, sizeof(*qp)); /* the tree now belongs to the answer */
	pthread_mutex_lock(&f->lock);
	while (f->count == HANDOVER && !f->stopping)
		pthread_cond_wait(&f->changed, &f->lock);
	if (f->stopping) {
		pthread_mutex_unlock(&f->lock);
		nsync__query_page_clear(&a.qp);
		free(a.raw);
		return 0;
	}
	f->queue[(f->head + f->count++) % HANDOVER] = a;
	if (low && strlen(low) < sizeof(f->low))
		strcpy(f->low, low);
	pthread_cond_broadcast(&f->changed);
	pthread_mutex_unlock(&f->lock);
	return 1;
}

/* Past the walker: every page left is older than what it has seen. */
static int crossed(struct nsync_farwalk *f)
{
	int done;

	pthread_mutex_lock(&f->lock);
	done = f->stopping || (f->near[0] && f->low[0] && strcmp(f->low, f->near) < 0);
	pthread_mutex_unlock(&f->lock);
	return done;
}

/* Windows of at most the result cap, newest first; on any failure the far
 * end just stops (the walker then walks the rest itself). */
static void *walk_down(void *arg)
{
	static const char sorts[] =
		"[{\"timestamp\":\"created_time\",\"direction\":\"descending\"}]";
	struct nsync_farwalk *f = arg;
	char filter[200], window_end[40] = "";

	for (;;) {
		char *cursor = NULL;
		int cursors = 0, capped = 0, ended = 0;

		if (window_end[0])
			snprintf(filter, sizeof(filter),
				 "{\"timestamp\":\"created_time\",\"created_time\":"
				 "{\"on_or_before\":\"%s\"}}",
				 window_end);
		while (!crossed(f) && cursors++ < MAX_CURSORS) {
			struct nsync_query_page qp;
			struct nsync_err err;
			nsync_rc rc;

			memset(&err, 0, sizeof(err));
			rc = nsync__notion_query(f->notion, &f->ctx, f->source_id, cursor,
						 window_end[0] ? filter : NULL, sorts, &qp, &err);
			free(cursor);
			cursor = NULL;
			if (rc != NSYNC_OK) {
				nsync__query_page_clear(&qp);
				break;
			}
			capped = qp.incomplete;
			ended = !qp.has_more && !qp.incomplete;
			if (qp.has_more && qp.next_cursor && !(cursor = strdup(qp.next_cursor))) {
				nsync__query_page_clear(&qp);
				break;
			}
			if (!hand_over(f, &qp)) {
				nsync__query_page_clear(&qp);
				break;
			}
			if (ended || capped)
				break;
		}
		free(cursor);
		if (ended) {
			pthread_mutex_lock(&f->lock);
			f->whole = 1;
			pthread_mutex_unlock(&f->lock);
		}
		if (!capped || crossed(f))
			break;
		/* A new window at the oldest time reached; the same instant
		 * again would loop (more rows at one time than a query returns). */
		pthread_mutex_lock(&f->lock);
		if (!f->low[0] || strcmp(f->low, window_end) == 0) {
			pthread_mutex_unlock(&f->lock);
			break;
		}
		memcpy(window_end, f->low, sizeof(window_end));
		pthread_mutex_unlock(&f->lock);
	}
	pthread_mutex_lock(&f->lock);
	f->running = 0;
	pthread_cond_broadcast(&f->changed);
	pthread_mutex_unlock(&f->lock);
	release(f);
	return NULL;
}

struct nsync_farwalk *nsync__farwalk_start(const struct nsync_config *cfg, const char *token,
					   struct nsync_pacer *pacer, const char *source_id)
{
	struct nsync_farwalk *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	if (nsync__config_copy(&f->cfg, cfg, NULL) != NSYNC_OK || !(f->token = strdup(token))) {
		nsync_config_clear(&f->cfg);
		free(f);
		return NULL;
	}
	/* The far end logs nothing of its own: the walk reports. */
	f->cfg.log = NULL;
	f->cfg.progress = NULL;
	f->notion = nsync__notion_new(&f->cfg, NULL);
	f->ctx.token = f->token;
	f->ctx.pacer = pacer;
	f->ctx.stats = &f->stats;
	snprintf(f->source_id, sizeof(f->source_id), "%s", source_id);
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->changed, NULL);
	f->running = 1;
	f->refs = 2;
	if (!f->notion || pthread_create(&f->thread, NULL, walk_down, f) != 0) {
		f->refs = 1;
		release(f);
		return NULL;
	}
	pthread_detach(f->thread);
	return f;
}

int nsync__farwalk_take(struct nsync_farwalk *f, struct nsync_query_page *qp, char **raw, int wait)
{
	int got = 0;

	pthread_mutex_lock(&f->lock);
	while (wait && f->count == 0 && f->running)
		pthread_cond_wait(&f->changed, &f->lock);
	if (f->count) {
		*qp = f->queue[f->head].qp;
		*raw = f->queue[f->head].raw;
		f->head = (f->head + 1) % HANDOVER;
		f->count--;
		got = 1;
		pthread_cond_broadcast(&f->changed);
	}
	pthread_mutex_unlock(&f->lock);
	return got;
}

void nsync__farwalk_near(struct nsync_farwalk *f, const char *newest)
{
	pthread_mutex_lock(&f->lock);
	if (newest && strlen(newest) < sizeof(f->near) && strcmp(newest, f->near) > 0)
		strcpy(f->near, newest);
	pthread_mutex_unlock(&f->lock);
}

int nsync__farwalk_whole(struct nsync_farwalk *f)
{
	int whole;

	pthread_mutex_lock(&f->lock);
	whole = f->whole;
	pthread_mutex_unlock(&f->lock);
	return whole;
}

const char *nsync__farwalk_last_created(const struct nsync_query_page *qp)
{
	return last_created(qp);
}

void nsync__farwalk_stop(struct nsync_farwalk *f, double wait)
{
	double until = nsync__monotonic() + wait;

	pthread_mutex_lock(&f->lock);
	f->stopping = 1;
	pthread_cond_broadcast(&f->changed);
	/* Its request in flight ends within the latency; a stalled one is
	 * not waited for (the thread finishes it and frees itself). */
	while (f->running && nsync__monotonic() < until) {
		pthread_mutex_unlock(&f->lock);
		nsync__sleep(0.005);
		pthread_mutex_lock(&f->lock);
	}
	pthread_mutex_unlock(&f->lock);
}

void nsync__farwalk_free(struct nsync_farwalk *f, struct nsync_stats *stats)
{
	if (!f)
		return;
	nsync__farwalk_stop(f, 0);
	pthread_mutex_lock(&f->lock);
	/* Its requests count once it has stopped; a far end still in flight
	 * adds nothing more. */
	if (stats && !f->running)
		nsync__stats_add(stats, &f->stats);
	pthread_mutex_unlock(&f->lock);
	release(f);
}
