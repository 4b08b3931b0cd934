/*
 * runner.c - doing one job (see runner.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "credentials.h"
#include "error.h"
#include "events.h"
#include "mapping.h"
#include "pacer.h"
#include "queue.h"
#include "runner.h"
#include "runs.h"
#include "stats.h"
#include "sync.h"

/* What a walk's heartbeat needs (see nsync_sync_job.heartbeat). */
struct beat_target {
	struct nsync_store *store;
	long run_id;
};

static void log_outcome(struct nsync_service *svc, const struct nsync_outcome *o)
{
	const struct nsync_job *job = o->job;
	struct nsync_buf line;

	if (!svc->cfg.log)
		return;
	nsync__buf_init(&line, 4096);
	if (nsync__buf_printf(&line, "%s run=%ld user=%s database=%s name=\"%s\" mode=%s status=%s",
			      job->kind == NSYNC_JOB_DISCOVER ? "discovery" : "sync", o->run_id,
			      job->user_id, job->database_id[0] ? job->database_id : "-",
			      o->name ? o->name : "", o->mode ? o->mode : "-",
			      o->rc == NSYNC_ERR_BUSY ? "busy"
			      : o->rc                 ? "error"
						      : "success") == NSYNC_OK &&
	    nsync__stats_to_log(&line, &o->stats) == NSYNC_OK &&
	    nsync__buf_printf(&line, " duration_ms=%.0f%s%s", o->seconds * 1000,
			      o->rc ? " error=" : "", o->rc ? o->err.msg : "") == NSYNC_OK)
		svc->cfg.log(svc->cfg.log_data, line.data);
	nsync__buf_free(&line);
}

static nsync_rc heartbeat(void *data, struct nsync_err *err)
{
	struct beat_target *t = data;

	return nsync__store_heartbeat(t->store, t->run_id, err);
}

/* The warning of a successful run: page errors, and rows kept because
 * their data source is no longer listed. "" when there is none. */
static void run_warning(const struct nsync_outcome *o, const char *user_id, const char *database_id,
			const char *first_page_error, char *out, size_t size)
{
	size_t used = 0;

	out[0] = '\0';
	if (o->stats.page_errors)
		used = (size_t)snprintf(out, size, "%ld page error%s; first: %s",
					o->stats.page_errors, o->stats.page_errors == 1 ? "" : "s",
					first_page_error);
	if (o->stats.orphaned && used < size)
		snprintf(out + used, size - used,
			 "%s%ld orphaned row%s kept: %s no longer listed by database %s (the "
			 "integration may have lost access to them); `notion-sync prune-orphans "
			 "--user %s --database %s` removes them",
			 used ? "; " : "", o->stats.orphaned, o->stats.orphaned == 1 ? "" : "s",
			 o->stats.orphaned == 1 ? "its data source is" : "their data sources are",
			 database_id, user_id, database_id);
}

/* Sync one database of one user: lock, record the run, resolve its kind
 * (by the caller's name, else by title; a title that is none of the four
 * kinds goes to the generic table), walk it, record the outcome. */
static void sync_one(struct nsync_service *svc, const struct nsync_job *j, const char *worker,
		     struct nsync_outcome *o)
{
	const char *user_id = j->user_id, *database_id = j->database_id;
	const char *name_hint = j->database_name, *trigger = j->trigger;
	long queued_run = j->queued_run;
	struct nsync_database_info info;
	struct nsync_sync_job job;
	struct beat_target beat;
	struct nsync_event_lane lane;
	const struct nsync_kind *kind = NULL;
	char *token = NULL;
	double start = nsync__monotonic();
	int locked = 0, unplaced = 0;

	memset(&info, 0, sizeof(info));
	o->name = name_hint && *name_hint ? name_hint : NULL;
	if (o->name && !(kind = nsync__kind_find(o->name))) {
		o->rc = nsync__err(&o->err, NSYNC_ERR_ARG, "database_name \"%s\" is not one of %s",
				   o->name, nsync__kind_choices());
		o->name = NULL;
		goto out;
	}
	o->rc = nsync__store_user_token(&svc->store, user_id, &token, &unplaced, &o->err);
	if (o->rc != NSYNC_OK)
		goto out;
	o->rc = nsync__store_lock(&svc->store, user_id, database_id, &o->err);
	if (o->rc != NSYNC_OK)
		goto out;
	locked = 1;
	o->run_id = queued_run;
	o->rc = nsync__store_run_begin(&svc->store, user_id, database_id, kind ? kind->name : "",
				       trigger, worker, &o->run_id, &o->err);
	if (o->rc != NSYNC_OK) {
		o->run_id = 0;
		goto out;
	}
	/* From here on a reconnect must find this row still running. */
	svc->store.guard_run_id = o->run_id;
	beat.store = &svc->store;
	beat.run_id = o->run_id;

	memset(&job, 0, sizeof(job));
	job.nctx.token = token;
	job.nctx.pacer = nsync__pacer_get(token);
	job.nctx.stats = &o->stats;
	if (unplaced) {
		/* Where an OAuth user's webhook events come from; best effort. */
		struct nsync_err ws_err;
		memset(&ws_err, 0, sizeof(ws_err));
		if (nsync__events_record_workspace(svc, user_id, &job.nctx, &ws_err) != NSYNC_OK &&
		    svc->cfg.log) {
			char line[NSYNC_ERR_MSG_MAX + 80];
			snprintf(line, sizeof(line), "workspace user=%s not recorded: %s", user_id,
				 ws_err.msg);
			svc->cfg.log(svc->cfg.log_data, line);
		}
	}
	o->rc = nsync__notion_get_database(svc->notion, &job.nctx, database_id, &info, &o->err);
	if (o->rc == NSYNC_ERR_NOT_FOUND)
		nsync__err_prefix(&o->err, o->rc,
				  "database %s was not found or is not shared with the "
				  "integration",
				  database_id);
	if (o->rc == NSYNC_OK && !kind && !(kind = nsync__kind_for_title(info.title)))
		kind = nsync__kind_generic();
	if (kind) {
		o->name = kind->name;
		o->table = kind->table;
	}
	if (o->rc == NSYNC_OK)
		o->rc = nsync__store_register(&svc->store, user_id, database_id, kind->name,
					      info.title, &o->err);
	if (o->rc == NSYNC_OK) {
		job.cfg = &svc->cfg;
		job.store = &svc->store;
		job.notion = svc->notion;
		job.kind = kind;
		job.user_id = user_id;
		job.database_id = database_id;
		job.info = &info;
		job.full_requested = j->full;
		job.heartbeat = heartbeat;
		job.heartbeat_data = &beat;
		if (queued_run > 0) {
			/* A worker's walk: the user's webhook work goes first. */
			memset(&lane, 0, sizeof(lane));
			lane.svc = svc;
			lane.user_id = user_id;
			lane.token = token;
			lane.pacer = job.nctx.pacer;
			job.interject = nsync__events_interject;
			job.interject_data = &lane;
		}
		o->rc = nsync__sync_walk(&job, &o->err);
		o->mode = job.mode;
		if (o->rc == NSYNC_OK)
			run_warning(o, user_id, database_id, job.first_page_error, o->err.msg,
				    sizeof(o->err.msg));
	}
	if (svc->store.locks_lost) {
		/* Another sync may own this database now: close our row only if
		 * nobody has, and write nothing else. */
		if (o->rc == NSYNC_OK)
			o->rc = nsync__err(&o->err, NSYNC_ERR_DB, "the lock of this sync was lost");
		nsync__store_run_abandon(
			&svc->store, o->run_id,
			"the connection to PostgreSQL was lost during the sync and its "
			"lock could not be re-taken; this run stopped without writing more");
	} else {
		struct nsync_err finish_err;
		memset(&finish_err, 0, sizeof(finish_err));
		/* Record even a failed run; a lost connection is reported by rc already. */
		if (nsync__store_run_finish(&svc->store, o->run_id, &o->stats,
					    o->rc == NSYNC_OK ? "success" : "error", o->mode,
					    o->name, o->err.msg[0] ? o->err.msg : NULL,
					    &finish_err) != NSYNC_OK &&
		    o->rc == NSYNC_OK) {
			o->rc = finish_err.code;
			o->err = finish_err;
		}
	}
out:
	/* A queued run that never started must not stay queued: a busy
	 * database means another sync covers it. */
	if (queued_run > 0 && !o->run_id) {
		struct nsync_err finish_err;
		memset(&finish_err, 0, sizeof(finish_err));
		nsync__store_run_finish(&svc->store, queued_run, &o->stats,
					o->rc == NSYNC_ERR_BUSY ? "skipped" : "error", NULL,
					o->name, o->err.msg, &finish_err);
		o->run_id = queued_run;
	}
	/* The row proves this run's lock only while it runs. */
	svc->store.guard_run_id = 0;
	if (locked)
		nsync__store_unlock(&svc->store, user_id, database_id);
	nsync__secret_free(token);
	nsync__database_info_clear(&info);
	o->seconds = nsync__monotonic() - start;
}

/* Log each problem discovery found (duplicates, databases without
 * readable data sources): they are not registered. */
static void log_problems(struct nsync_service *svc, const struct nsync_outcome *o)
{
	char message[NSYNC_ERR_MSG_MAX], line[NSYNC_ERR_MSG_MAX + 64];
	size_t i, k;

	if (!svc->cfg.log)
		return;
	for (i = 0; i < o->found.n_kinds; i++) {
		const struct nsync_candidates *c = &o->found.kinds[i];
		for (k = 0; k < c->n_empty && k < NSYNC_MAX_CANDIDATES; k++) {
			nsync__empty_message(c, k, message, sizeof(message));
			snprintf(line, sizeof(line), "discovery user=%s: %s", o->job->user_id,
				 message);
			svc->cfg.log(svc->cfg.log_data, line);
		}
		if (c->n > 1) {
			nsync__duplicate_message(c, message, sizeof(message));
			snprintf(line, sizeof(line), "discovery user=%s: %s", o->job->user_id,
				 message);
			svc->cfg.log(svc->cfg.log_data, line);
		}
	}
}

/* Discover the user's databases. A queued discovery run records its row
 * and queues a run for each database found (the worker holding this user
 * runs them next); a synchronous one leaves that to the planner. Either
 * way a duplicate or an empty database is the run's problem (not
 * registered, the others go on). */
static void discover_job(struct nsync_service *svc, const struct nsync_job *j, const char *worker,
			 struct nsync_outcome *o)
{
	struct nsync_plan found = {0};
	double start = nsync__monotonic();
	size_t i;

	o->name = "(discovery)";
	o->run_id = j->queued_run;
	if (j->queued_run)
		o->rc = nsync__queue_start(&svc->store, j->queued_run, worker, &o->err);
	if (o->rc == NSYNC_OK)
		o->rc = nsync__discover(svc, j->user_id, &o->stats, &o->found, &o->err);
	o->searched = o->rc == NSYNC_OK;
	if (o->rc == NSYNC_OK && j->queued_run)
		o->rc = nsync__plan_discovered(&svc->store, j, &found, &o->err);
	for (i = 0; o->rc == NSYNC_OK && i < found.n; i++) {
		long id;
		o->rc = nsync__queue_add(&svc->store, j->user_id, found.jobs[i].database_id,
					 found.jobs[i].database_name, j->trigger, j->full, &id,
					 &o->err);
	}
	nsync__plan_free(&found);
	if (o->rc == NSYNC_OK) {
		o->rc = nsync__discovery_problem(&o->found, o->err.msg, sizeof(o->err.msg));
		o->err.code = o->rc;
		log_problems(svc, o);
	}
	if (j->queued_run) {
		struct nsync_err finish_err;
		memset(&finish_err, 0, sizeof(finish_err));
		nsync__store_run_finish(&svc->store, j->queued_run, &o->stats,
					o->rc == NSYNC_OK ? "success" : "error", NULL, NULL,
					o->rc == NSYNC_OK ? NULL : o->err.msg, &finish_err);
	}
	o->seconds = nsync__monotonic() - start;
}

void nsync__run_job(struct nsync_service *svc, const struct nsync_job *job, const char *worker,
		    struct nsync_outcome *o)
{
	memset(o, 0, sizeof(*o));
	o->job = job;
	if (job->kind == NSYNC_JOB_DISCOVER)
		discover_job(svc, job, worker, o);
	else
		sync_one(svc, job, worker, o);
	nsync__stats_add(&svc->last, &o->stats);
	log_outcome(svc, o);
}
