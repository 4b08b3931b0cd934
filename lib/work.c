/*
 * work.c - the worker side of the service (nsync_service_work and
 * nsync_service_reap in notionsync.h): claim a user, run its webhook
 * events first (the priority lane, events.h), then its queued runs, up to
 * NOTION_SYNC_PER_USER of them at once on lanes that share the token's
 * pace; fail the runs of dead workers.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "credentials.h"
#include "error.h"
#include "events.h"
#include "pacer.h"
#include "plan.h"
#include "queue.h"
#include "runner.h"
#include "service.h"
#include "stats.h"

#define REQUIRE NSYNC__REQUIRE

/* Process user_id's due webhook events with its token (none: nothing to
 * do, the events wait). A rejected token fails the events, not the work. */
static nsync_rc process_events(struct nsync_service *svc, const char *user_id, long *handled,
			       struct nsync_err *err)
{
	char *token = NULL;
	struct nsync_err token_err;
	long due = 0;
	nsync_rc rc;

	*handled = 0;
	/* Most turns of a worker find no event: then the token is not read. */
	rc = nsync__events_due(&svc->store, user_id, &due, err);
	if (rc != NSYNC_OK || !due)
		return rc;
	memset(&token_err, 0, sizeof(token_err));
	rc = nsync__store_user_token(&svc->store, user_id, &token, NULL, &token_err);
	if (rc == NSYNC_ERR_NOT_FOUND) {
		/* They would wait forever, and keep this user first in line. */
		const char *params[] = {user_id};
		return nsync__store_run(&svc->store, "failing webhook events",
					"update notion_webhook_events set status = 'failed',"
					" outcome = 'the user has no Notion token',"
					" processed_at = clock_timestamp()"
					" where user_id = $1::uuid and status = 'received'",
					1, params, err);
	}
	if (rc != NSYNC_OK) {
		if (err)
			*err = token_err;
		return rc;
	}
	rc = nsync__events_process(svc, user_id, token, nsync__pacer_get(token), handled, err);
	nsync__secret_free(token);
	return rc == NSYNC_ERR_NOTION_AUTH ? NSYNC_OK : rc;
}

/* One queued run on a lane: a service of its own (PostgreSQL session,
 * Notion client) on a thread of its own. */
struct lane_run {
	struct nsync_service *svc;
	struct nsync_job job;
	const char *worker;
	struct nsync_outcome o;
	pthread_t thread;
	int started;
};

static void *run_on_lane(void *arg)
{
	struct lane_run *l = arg;

	nsync__run_job(l->svc, &l->job, l->worker, &l->o);
	return NULL;
}

/* The service of lane i (>= 1) of svc, made on first use; NULL when it
 * cannot be made (the run then goes on svc itself, after the others). */
static struct nsync_service *lane_service(struct nsync_service *svc, size_t i)
{
	struct nsync_err err;

	if (i >= svc->n_lanes) {
		struct nsync_service **grown = realloc(svc->lanes, (i + 1) * sizeof(*grown));
		if (!grown)
			return NULL;
		memset(grown + svc->n_lanes, 0, (i + 1 - svc->n_lanes) * sizeof(*grown));
		svc->lanes = grown;
		svc->n_lanes = i + 1;
	}
	memset(&err, 0, sizeof(err));
	if (!svc->lanes[i] && !(svc->lanes[i] = nsync_service_new(&svc->cfg, &err)) &&
	    svc->cfg.log) {
		char line[NSYNC_ERR_MSG_MAX + 40];
		snprintf(line, sizeof(line), "lane %zu not started: %s", i, err.msg);
		svc->cfg.log(svc->cfg.log_data, line);
	}
	return svc->lanes[i];
}

/* Run the n queued runs of user_id at once: the first on svc (whose walk
 * also runs the user's webhook events: it holds the user), the others on
 * lanes. They share the token's pace (pacer.h), so together they keep
 * requests in flight while each waits for Notion's answer. */
static void run_together(struct nsync_service *svc, const char *user_id, const char *worker,
			 const struct nsync_queued_run *runs, size_t n, struct lane_run *l)
{
	size_t i;

	for (i = 0; i < n; i++) {
		memset(&l[i], 0, sizeof(l[i]));
		nsync__plan_queued(user_id, &runs[i], &l[i].job);
		l[i].job.events = i == 0;
		l[i].worker = worker;
		l[i].svc = i ? lane_service(svc, i) : svc;
		if (i && l[i].svc)
			l[i].started = pthread_create(&l[i].thread, NULL, run_on_lane, &l[i]) == 0;
	}
	nsync__run_job(svc, &l[0].job, worker, &l[0].o);
	for (i = 1; i < n; i++) {
		if (l[i].started)
			pthread_join(l[i].thread, NULL);
		else
			nsync__run_job(svc, &l[i].job, worker, &l[i].o);
		nsync__stats_add(&svc->last, &l[i].o.stats);
	}
}

nsync_rc nsync_service_work(struct nsync_service *svc, const char *worker, long *ran,
			    struct nsync_err *err)
{
	struct lane_run *lanes = NULL;
	char user_id[37];
	long last = 0;
	nsync_rc rc;

	REQUIRE(svc);
	REQUIRE(worker);
	REQUIRE(ran);

	*ran = 0;
	if (nsync__store_refresh(&svc->store, err) != NSYNC_OK)
		return NSYNC_ERR_DB;
	rc = nsync__queue_claim_user(&svc->store, user_id, err);
	if (rc != NSYNC_OK || !user_id[0])
		return rc;
	lanes = calloc(NSYNC_MAX_PER_USER, sizeof(*lanes));
	if (!lanes)
		rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
	while (rc == NSYNC_OK) {
		struct nsync_queued_run runs[NSYNC_MAX_PER_USER];
		size_t n = 0, i, want = svc->cfg.per_user > 1 ? (size_t)svc->cfg.per_user : 1;
		long events = 0;

		if (want > NSYNC_MAX_PER_USER)
			want = NSYNC_MAX_PER_USER;
		/* The priority lane: this user's webhook events before its runs. */
		rc = process_events(svc, user_id, &events, err);
		if (rc != NSYNC_OK)
			break;
		*ran += events;
		rc = nsync__queue_next(&svc->store, user_id, runs, want, &n, err);
		if (rc != NSYNC_OK || n == 0)
			break;
		/* A run that is still queued after it was handled could not be
		 * recorded; stop rather than run it again and again. */
		if (runs[0].id == last) {
			rc = nsync__err(err, NSYNC_ERR_DB, "run %ld could not leave the queue",
					runs[0].id);
			break;
		}
		last = runs[0].id;
		/* A discovery queues the runs of what it finds: it runs alone. */
		for (i = 0; i < n && runs[i].database_id[0]; i++)
			;
		n = i == 0 ? 1 : i;
		memset(&svc->last, 0, sizeof(svc->last));
		run_together(svc, user_id, worker, runs, n, lanes);
		*ran += (long)n;
		if (!nsync__store_connection_ok(&svc->store)) {
			rc = nsync__err(err, NSYNC_ERR_DB, "the connection to PostgreSQL was lost");
			break;
		}
	}
	free(lanes);
	nsync__queue_release_user(&svc->store, user_id);
	return rc;
}

nsync_rc nsync_service_reap(struct nsync_service *svc, long *reaped, struct nsync_err *err)
{
	long n = 0;
	nsync_rc rc;

	REQUIRE(svc);

	if (reaped)
		*reaped = 0;
	if (nsync__store_refresh(&svc->store, err) != NSYNC_OK)
		return NSYNC_ERR_DB;
	rc = nsync__queue_reap(&svc->store, svc->cfg.stale_after, &n, err);
	if (rc == NSYNC_OK && n && svc->cfg.log) {
		char line[120];
		snprintf(line, sizeof(line), "marked %ld run%s failed: their worker stopped", n,
			 n == 1 ? "" : "s");
		svc->cfg.log(svc->cfg.log_data, line);
	}
	if (reaped)
		*reaped = n;
	return rc;
}
