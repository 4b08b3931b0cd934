/*
 * plan.h - the first step of every request: what work it asks for. A sync
 * request (HTTP, CLI), an asynchronous one (queued for the workers) and a
 * run a worker takes from the queue all become the same jobs: sync one
 * (user, database), or discover a user's databases (when the user has
 * none registered; the jobs for what discovery registers are planned
 * after it ran). runner.h does the jobs, answer.h says what came of them.
 */
#ifndef NSYNC_PLAN_H
#define NSYNC_PLAN_H

#include <stdbool.h>

#include "notionsync.h"
#include "queue.h"
#include "store.h"

enum nsync_job_kind {
	NSYNC_JOB_SYNC,     /* sync database_id of user_id */
	NSYNC_JOB_DISCOVER, /* find user_id's databases and register them */
};

struct nsync_job {
	enum nsync_job_kind kind;
	char user_id[37];
	char database_id[37];    /* "" for a discovery */
	char database_name[129]; /* the kind asked for or registered, or "" */
	char trigger[24];
	bool full;       /* a full walk was asked for */
	long queued_run; /* the queued run this job is, or 0 */
	bool events;     /* its walk runs the user's webhook events between requests */
};

/* A list of jobs; free with nsync__plan_free. */
struct nsync_plan {
	struct nsync_job *jobs;
	size_t n, cap;
};

void nsync__plan_free(struct nsync_plan *p);

/* nsync__plan_check - what every request checks first: a known
 * database_name (NSYNC_ERR_ARG), and a live PostgreSQL (NSYNC_ERR_DB). */
nsync_rc nsync__plan_check(struct nsync_store *s, const struct nsync_request *req,
			   struct nsync_err *err);

/* nsync__plan_request - append the jobs req asks for: with user and
 * database, that one (its user must have a token); otherwise the enabled
 * registered databases of the users and databases named, and a discovery
 * for each user with a token and nothing registered (all users, or the one
 * named). NSYNC_ERR_NOT_FOUND when a named user or database has nothing to
 * sync; NSYNC_ERR_DB, NSYNC_ERR_NOMEM. */
nsync_rc nsync__plan_request(struct nsync_store *s, const struct nsync_request *req,
			     struct nsync_plan *p, struct nsync_err *err);

/* nsync__plan_discovered - after the discovery job d ran: append a sync
 * job for each database its user now has registered. */
nsync_rc nsync__plan_discovered(struct nsync_store *s, const struct nsync_job *d,
				struct nsync_plan *p, struct nsync_err *err);

/* nsync__plan_queued - the job a queued run of user_id is. */
void nsync__plan_queued(const char *user_id, const struct nsync_queued_run *run,
			struct nsync_job *job);

#endif
