/*
 * runner.h - the second step: do one job of a plan and record what came of
 * it. A sync job takes the (user, database) lock, records its run row,
 * reads the database from Notion (its kind from the name asked for, else
 * from its title; other titles go to the generic table), walks it
 * (sync.h) with a heartbeat that proves the lock, and records the
 * outcome. A discovery job runs discover.h and, when it is a queued run,
 * queues a run for each database found. Every outcome is logged once.
 */
#ifndef NSYNC_RUNNER_H
#define NSYNC_RUNNER_H

#include "discover.h"
#include "plan.h"
#include "service.h"

/* What came of one job: for the log and for answer.h. */
struct nsync_outcome {
	nsync_rc rc;
	struct nsync_err err; /* the failure; or, on success, the warning ("" if none) */
	long run_id;
	const char *name;  /* kind name, or the name asked for; static */
	const char *table; /* the sync table written, or NULL */
	const char *mode;  /* "full", "incremental", or NULL before the walk */
	struct nsync_stats stats;
	double seconds;
	const struct nsync_job *job; /* borrowed: the job this is the outcome of */
	int searched;                /* discovery: the search completed (found is valid) */
	struct nsync_discovery found;
};

/* nsync__run_job - do job (worker names the thread in run rows; may be
 * NULL) and fill o. Never fails as such: every failure is o->rc. The
 * statistics are added to svc->last. */
void nsync__run_job(struct nsync_service *svc, const struct nsync_job *job, const char *worker,
		    struct nsync_outcome *o);

#endif
