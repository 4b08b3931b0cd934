/*
 * runs.h - one row of notion_sync_runs per database sync: starting it and
 * recording its outcome and statistics (the list of stats.h).
 */
#ifndef NSYNC_RUNS_H
#define NSYNC_RUNS_H

#include "notionsync.h"
#include "store.h"

/* nsync__store_run_begin - start a run (status running) and return its id.
 * With *run_id > 0 that queued run is started; otherwise a new row is
 * added and *run_id receives its id. Runs of the same user and database
 * still marked running are closed as errors first: we hold the lock, so
 * their worker is gone. worker (may be NULL) names the worker thread. */
nsync_rc nsync__store_run_begin(struct nsync_store *s, const char *user_id, const char *database_id,
				const char *name, const char *trigger, const char *worker,
				long *run_id, struct nsync_err *err);

/* nsync__store_run_finish - record the outcome of a run ("success",
 * "error", "skipped") and update the registry's last_synced_at and
 * last_status. mode ("full", "incremental"), name (the kind, recorded when
 * the run had none yet) and message may be NULL. */
nsync_rc nsync__store_run_finish(struct nsync_store *s, long run_id, const struct nsync_stats *st,
				 const char *status, const char *mode, const char *name,
				 const char *message, struct nsync_err *err);

#endif
