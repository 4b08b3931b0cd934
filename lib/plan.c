/*
 * plan.c - requests into jobs (see plan.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "credentials.h"
#include "error.h"
#include "mapping.h"
#include "plan.h"

void nsync__plan_free(struct nsync_plan *p)
{
	free(p->jobs);
	memset(p, 0, sizeof(*p));
}

static nsync_rc add_job(struct nsync_plan *p, enum nsync_job_kind kind, const char *user_id,
			const char *database_id, const char *name, const char *trigger, bool full,
			long queued_run, struct nsync_err *err)
{
	struct nsync_job *j;

	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 8;
		struct nsync_job *grown = realloc(p->jobs, cap * sizeof(*grown));
		if (!grown)
			return nsync__err(err, NSYNC_ERR_NOMEM,
					  "out of memory planning the request");
		p->jobs = grown;
		p->cap = cap;
	}
	j = &p->jobs[p->n++];
	memset(j, 0, sizeof(*j));
	j->kind = kind;
	snprintf(j->user_id, sizeof(j->user_id), "%s", user_id);
	snprintf(j->database_id, sizeof(j->database_id), "%s", database_id);
	snprintf(j->database_name, sizeof(j->database_name), "%s", name ? name : "");
	snprintf(j->trigger, sizeof(j->trigger), "%s", trigger);
	j->full = full;
	j->queued_run = queued_run;
	return NSYNC_OK;
}

nsync_rc nsync__plan_check(struct nsync_store *s, const struct nsync_request *req,
			   struct nsync_err *err)
{
	if (req->database_name[0] && !nsync__kind_find(req->database_name))
		return nsync__err(err, NSYNC_ERR_ARG, "database_name \"%s\" is not one of %s",
				  req->database_name, nsync__kind_choices());
	if (nsync__store_refresh(s, err) != NSYNC_OK)
		return NSYNC_ERR_DB;
	return NSYNC_OK;
}

/* NSYNC_OK when user_id exists and has a token. */
static nsync_rc has_token(struct nsync_store *s, const char *user_id, struct nsync_err *err)
{
	char *token = NULL;
	nsync_rc rc = nsync__store_user_token(s, user_id, &token, NULL, err);

	nsync__secret_free(token);
	return rc;
}

/* Append a job for each target of user_id and database_id (either may be
 * "": all; see nsync__store_targets): a sync of each registered database,
 * and when discover is set a discovery of each user with none. *found
 * (found may be NULL) is the number of targets, jobs or not. NSYNC_ERR_DB,
 * NSYNC_ERR_NOMEM. */
static nsync_rc add_targets(struct nsync_store *s, struct nsync_plan *p, const char *user_id,
			    const char *database_id, const char *trigger, bool full, bool discover,
			    size_t *found, struct nsync_err *err)
{
	struct nsync_target *targets = NULL;
	size_t n = 0, i;
	nsync_rc rc = nsync__store_targets(s, user_id, database_id, &targets, &n, err);

	for (i = 0; rc == NSYNC_OK && i < n; i++) {
		const struct nsync_target *t = &targets[i];

		if (t->database_id[0] || discover)
			rc = add_job(p, t->database_id[0] ? NSYNC_JOB_SYNC : NSYNC_JOB_DISCOVER,
				     t->user_id, t->database_id, t->database_name, trigger, full, 0,
				     err);
	}
	free(targets);
	if (found)
		*found = n;
	return rc;
}

nsync_rc nsync__plan_request(struct nsync_store *s, const struct nsync_request *req,
			     struct nsync_plan *p, struct nsync_err *err)
{
	size_t n;
	nsync_rc rc;

	if (req->user_id[0] && req->database_id[0]) {
		const struct nsync_kind *kind = nsync__kind_find(req->database_name);
		rc = has_token(s, req->user_id, err);
		if (rc == NSYNC_OK)
			rc = add_job(p, NSYNC_JOB_SYNC, req->user_id, req->database_id,
				     kind ? kind->name : "", req->trigger, req->full, 0, err);
		return rc;
	}
	rc = add_targets(s, p, req->user_id, req->database_id, req->trigger, req->full, true, &n,
			 err);
	if (rc != NSYNC_OK || n > 0)
		return rc;
	if (req->user_id[0]) {
		rc = has_token(s, req->user_id, err);
		if (rc == NSYNC_OK)
			rc = nsync__err(err, NSYNC_ERR_NOT_FOUND,
					"user %s has no such database registered", req->user_id);
		return rc;
	}
	if (req->database_id[0])
		return nsync__err(err, NSYNC_ERR_NOT_FOUND,
				  "no user has database %s registered; give user_id to sync it",
				  req->database_id);
	return NSYNC_OK;
}

nsync_rc nsync__plan_discovered(struct nsync_store *s, const struct nsync_job *d,
				struct nsync_plan *p, struct nsync_err *err)
{
	return add_targets(s, p, d->user_id, "", d->trigger, d->full, false, NULL, err);
}

void nsync__plan_queued(const char *user_id, const struct nsync_queued_run *run,
			struct nsync_job *job)
{
	memset(job, 0, sizeof(*job));
	job->kind = run->database_id[0] ? NSYNC_JOB_SYNC : NSYNC_JOB_DISCOVER;
	snprintf(job->user_id, sizeof(job->user_id), "%s", user_id);
	snprintf(job->database_id, sizeof(job->database_id), "%s", run->database_id);
	snprintf(job->database_name, sizeof(job->database_name), "%s", run->database_name);
	snprintf(job->trigger, sizeof(job->trigger), "%s", run->trigger);
	job->full = run->full;
	job->queued_run = run->id;
}
