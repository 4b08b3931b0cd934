/*
 * queue.h - the queue of asynchronous runs, kept in notion_sync_runs
 * (status 'queued'): adding runs, claiming one user's runs for a worker,
 * heartbeats, failing the runs of dead workers, and reading a run's
 * status. sql/003_scheduling.sql has the columns.
 *
 * Why a table and not memory: a queued run survives the process that
 * accepted it, any responder process can work on it, and operators see
 * the backlog with SQL.
 */
#ifndef NSYNC_QUEUE_H
#define NSYNC_QUEUE_H

#include "notionsync.h"
#include "store.h"

/* nsync__queue_add - queue a run of (user, database) ("" = discover the
 * user's databases), or return the id of one already queued for them (a
 * full walk asked for now makes that run full). name may be "".
 * NSYNC_ERR_DB on failure. */
nsync_rc nsync__queue_add(struct nsync_store *s, const char *user_id, const char *database_id,
			  const char *name, const char *trigger, int full, long *run_id,
			  struct nsync_err *err);

/* nsync__queue_claim_user - find a user with due webhook events (first) or
 * queued runs whose user lock (a session advisory lock) this session can
 * take, and take it. user_id
 * receives the user, or "" when there is none. Release with
 * nsync__queue_release_user. */
nsync_rc nsync__queue_claim_user(struct nsync_store *s, char user_id[37], struct nsync_err *err);
void nsync__queue_release_user(struct nsync_store *s, const char *user_id);

/* One queued run. */
struct nsync_queued_run {
	long id;
	char database_id[37]; /* "" for a discovery run */
	char database_name[129];
	char trigger[24];
	int full; /* a full walk was asked for */
};

/* nsync__queue_start - mark a queued discovery run running on worker.
 * (Database runs are started by nsync__store_run_begin.) */
nsync_rc nsync__queue_start(struct nsync_store *s, long run_id, const char *worker,
			    struct nsync_err *err);

/* nsync__queue_next - the oldest queued runs of user_id, at most max, in
 * runs; *found receives how many (0 when none is waiting). */
nsync_rc nsync__queue_next(struct nsync_store *s, const char *user_id,
			   struct nsync_queued_run *runs, size_t max, size_t *found,
			   struct nsync_err *err);

/* nsync__queue_reap - fail the running runs whose lock no session holds
 * (the (user, database) lock; the user lock for discovery runs) and whose last heartbeat is older than stale_after
 * seconds. *reaped receives the count. */
nsync_rc nsync__queue_reap(struct nsync_store *s, double stale_after, long *reaped,
			   struct nsync_err *err);

/* nsync__queue_status - {"success":true,"run":{...}} for run_id, as a new
 * string (free()). NSYNC_ERR_NOT_FOUND for an unknown id. */
nsync_rc nsync__queue_status(struct nsync_store *s, long run_id, char **json,
			     struct nsync_err *err);

#endif
