/*
 * runs.c - the run rows of notion_sync_runs (see runs.h): starting a run
 * and recording its outcome and statistics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "buf.h"
#include "runs.h"
#include "stats.h"

nsync_rc nsync__store_run_begin(struct nsync_store *s, const char *user_id, const char *database_id,
				const char *name, const char *trigger, const char *worker,
				long *run_id, struct nsync_err *err)
{
	char id[24];
	const char *params[] = {user_id, database_id, name, trigger, id, worker};
	nsync_rc rc;

	snprintf(id, sizeof(id), "%ld", *run_id);
	rc = nsync__store_run(
		s, "closing abandoned runs",
		"update notion_sync_runs set status = 'error', finished_at = now(),"
		" error_message = 'the worker running this sync stopped before it finished'"
		" where user_id = $1::uuid and database_id = $2::uuid and status = 'running'"
		" and id <> $3::bigint",
		3, (const char *[]){user_id, database_id, id}, err);
	if (rc != NSYNC_OK)
		return rc;
	/* A queued run (id > 0) becomes running; otherwise a new row. */
	return nsync__store_long(s, "recording the run",
				 "with started as (update notion_sync_runs set status = 'running', "
				 "started_at = now(),"
				 "   heartbeat_at = now(), database_id = $2::uuid,"
				 "   database_name = coalesce(nullif($3, ''), database_name), "
				 "worker = $6"
				 "   where id = $5::bigint and $5::bigint > 0 returning id),"
				 " added as (insert into notion_sync_runs (user_id, database_id, "
				 "database_name, trigger,"
				 "   heartbeat_at, worker)"
				 "   select $1::uuid, $2::uuid, nullif($3, ''), $4, now(), $6"
				 "   where not exists (select 1 from started) returning id)"
				 " select id from started union all select id from added",
				 6, params, run_id, err);
}

nsync_rc nsync__store_run_finish(struct nsync_store *s, long run_id, const struct nsync_stats *st,
				 const char *status, const char *mode, const char *name,
				 const char *message, struct nsync_err *err)
{
	/* $1..$5 below, then one parameter per statistic (stats.h). */
	enum { FIXED = 5, MAX_PARAMS = FIXED + 32 };
	char id[24], values[MAX_PARAMS - FIXED][32];
	const char *params[MAX_PARAMS];
	size_t i, n = nsync__stats_count();
	struct nsync_buf sql;
	nsync_rc rc;

	if (n > MAX_PARAMS - FIXED)
		return nsync__err(err, NSYNC_ERR_INTERNAL, "too many statistics");
	snprintf(id, sizeof(id), "%ld", run_id);
	params[0] = id;
	params[1] = status;
	params[2] = message;
	params[3] = mode;
	params[4] = name;
	for (i = 0; i < n; i++) {
		nsync__stats_param(st, i, values[i], sizeof(values[i]));
		params[FIXED + i] = values[i];
	}
	nsync__buf_init(&sql, 8192);
	if (nsync__buf_adds(&sql, "with r as (update notion_sync_runs set status = $2,"
				  " finished_at = now(), error_message = $3, mode = $4,"
				  " database_name = coalesce(database_name, $5), ") != NSYNC_OK ||
	    nsync__stats_set_sql(&sql, FIXED + 1) != NSYNC_OK ||
	    nsync__buf_adds(&sql, " where id = $1::bigint returning user_id, database_id, status,"
				  " finished_at, id)"
				  " update notion_databases d set last_synced_at = r.finished_at,"
				  " last_status = r.status, last_run_id = r.id"
				  " from r where d.user_id = r.user_id and d.database_id = "
				  "r.database_id") != NSYNC_OK) {
		nsync__buf_free(&sql);
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
	}
	rc = nsync__store_run(s, "recording the run's outcome", sql.data, (int)(FIXED + n), params,
			      err);
	nsync__buf_free(&sql);
	return rc;
}
