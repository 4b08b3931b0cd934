/*
 * pool.c - worker threads draining the queue of asynchronous runs (see
 * nsync_pool_* in notionsync.h).
 *
 * Each thread owns a service (its own PostgreSQL connection and HTTP
 * client): the service is not thread-safe, and the threads share nothing
 * but the wake-up condition. Parallelism is by user: a worker claims all
 * the queued runs of one user, so one token is paced by one thread, while
 * other workers take other users and a slow user holds up only its own.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "http.h"
#include "service.h"
#include "store.h"

/* Seconds between polls of the queue when nothing woke the worker, and
 * between reaps of dead runs. */
#define POLL_SECONDS 1
#define REAP_SECONDS 10.0

struct worker {
	struct nsync_pool *pool;
	pthread_t thread;
	int started;
	int index;
};

struct nsync_pool {
	struct nsync_config cfg; /* a copy (nsync__config_copy) */
	char name[64];
	int until_empty; /* threads leave when the queue is empty */
	pthread_mutex_t mu;
	pthread_cond_t wake;
	unsigned long wakeups; /* bumped by nsync_pool_wake */
	int stopping;
	double last_reap;
	struct worker *workers;
	int n_workers;
};

static void pool_log(const struct nsync_pool *pool, const char *what, const char *detail)
{
	char line[NSYNC_ERR_MSG_MAX + 64];

	if (!pool->cfg.log)
		return;
	snprintf(line, sizeof(line), "%s: %s", what, detail);
	pool->cfg.log(pool->cfg.log_data, line);
}

/* Whether this round should reap: one worker every REAP_SECONDS. */
static int reap_due(struct nsync_pool *pool)
{
	double now = nsync__monotonic();
	int due = 0;

	pthread_mutex_lock(&pool->mu);
	if (now - pool->last_reap >= REAP_SECONDS) {
		pool->last_reap = now;
		due = 1;
	}
	pthread_mutex_unlock(&pool->mu);
	return due;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct nsync_pool *pool = w->pool;
	struct nsync_service *svc;
	struct nsync_err err;
	char name[96];

	memset(&err, 0, sizeof(err));
	snprintf(name, sizeof(name), "%s:%d", pool->name, w->index);
	svc = nsync_service_new(&pool->cfg, &err);
	if (!svc) {
		pool_log(pool, "worker cannot start", err.msg);
		return NULL;
	}
	for (;;) {
		unsigned long seen;
		long ran = 0;
		nsync_rc rc;

		pthread_mutex_lock(&pool->mu);
		seen = pool->wakeups;
		if (pool->stopping) {
			pthread_mutex_unlock(&pool->mu);
			break;
		}
		pthread_mutex_unlock(&pool->mu);
		if (reap_due(pool) && nsync_service_reap(svc, NULL, &err) != NSYNC_OK)
			pool_log(pool, "reaping dead runs failed", err.msg);
		rc = nsync_service_work(svc, name, &ran, &err);
		if (rc != NSYNC_OK)
			pool_log(pool, "worker", err.msg);
		if (ran > 0)
			continue;
		/* --once: done when the queue is empty, or PostgreSQL is gone. */
		if (pool->until_empty)
			break;
		/* Nothing to do: sleep until woken or the next poll. */
		pthread_mutex_lock(&pool->mu);
		if (!pool->stopping && pool->wakeups == seen) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += POLL_SECONDS;
			pthread_cond_timedwait(&pool->wake, &pool->mu, &until);
		}
		pthread_mutex_unlock(&pool->mu);
	}
	nsync_service_free(svc);
	return NULL;
}

struct nsync_pool *nsync_pool_start(const struct nsync_config *cfg, const char *name,
				    bool until_empty, struct nsync_err *err)
{
	struct nsync_pool *pool;
	int i;

	if (!cfg || !name) {
		nsync__err(err, NSYNC_ERR_ARG,
			   "nsync_pool_start: a configuration and a name are required");
		return NULL;
	}
	pool = calloc(1, sizeof(*pool));
	if (!pool) {
		nsync__err(err, NSYNC_ERR_NOMEM, "out of memory starting workers");
		return NULL;
	}
	if (nsync__config_copy(&pool->cfg, cfg, err) != NSYNC_OK) {
		free(pool);
		return NULL;
	}
	/* A terminal progress display makes no sense from several threads. */
	pool->cfg.progress = NULL;
	snprintf(pool->name, sizeof(pool->name), "%s", name ? name : "worker");
	pool->until_empty = until_empty;
	pool->n_workers = cfg->workers > 0 ? cfg->workers : 1;
	pool->last_reap = -REAP_SECONDS;
	pool->workers = calloc((size_t)pool->n_workers, sizeof(*pool->workers));
	if (!pool->workers) {
		nsync__err(err, NSYNC_ERR_NOMEM, "out of memory starting workers");
		nsync_pool_stop(pool);
		return NULL;
	}
	pthread_mutex_init(&pool->mu, NULL);
	pthread_cond_init(&pool->wake, NULL);
	for (i = 0; i < pool->n_workers; i++) {
		pool->workers[i].pool = pool;
		pool->workers[i].index = i;
		if (pthread_create(&pool->workers[i].thread, NULL, worker_main,
				   &pool->workers[i]) != 0) {
			nsync__err(err, NSYNC_ERR_INTERNAL, "cannot start worker thread %d", i);
			nsync_pool_stop(pool);
			return NULL;
		}
		pool->workers[i].started = 1;
	}
	return pool;
}

void nsync_pool_wake(struct nsync_pool *pool)
{
	if (!pool)
		return;
	pthread_mutex_lock(&pool->mu);
	pool->wakeups++;
	pthread_cond_broadcast(&pool->wake);
	pthread_mutex_unlock(&pool->mu);
}

void nsync_pool_stop(struct nsync_pool *pool)
{
	int i;

	if (!pool)
		return;
	if (pool->workers) {
		pthread_mutex_lock(&pool->mu);
		pool->stopping = 1;
		pthread_cond_broadcast(&pool->wake);
		pthread_mutex_unlock(&pool->mu);
		for (i = 0; i < pool->n_workers; i++)
			if (pool->workers[i].started)
				pthread_join(pool->workers[i].thread, NULL);
		pthread_mutex_destroy(&pool->mu);
		pthread_cond_destroy(&pool->wake);
	}
	free(pool->workers);
	nsync_config_clear(&pool->cfg);
	free(pool);
}

void nsync_pool_join(struct nsync_pool *pool)
{
	int i;

	if (!pool || !pool->workers)
		return;
	for (i = 0; i < pool->n_workers; i++)
		if (pool->workers[i].started) {
			pthread_join(pool->workers[i].thread, NULL);
			pool->workers[i].started = 0;
		}
}
