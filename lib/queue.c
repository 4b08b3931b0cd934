/*
 * queue.c - asynchronous runs in notion_sync_runs (see queue.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "queue.h"
#include "stats.h"

nsync_rc nsync__queue_add(struct nsync_store *s, const char *user_id, const char *database_id,
			  const char *name, const char *trigger, int full, long *run_id,
			  struct nsync_err *err)
{
	const char *params[] = {user_id, database_id, name, trigger, full ? "t" : "f"};

	return nsync__store_long(
		s, "queueing a run",
		"with existing as (update notion_sync_runs set full_walk = full_walk or $5::boolean"
		"   where id = (select id from notion_sync_runs where user_id = $1::uuid"
		"     and database_id is not distinct from nullif($2, '')::uuid and status = "
		"'queued'"
		"     order by id limit 1) returning id),"
		" added as (insert into notion_sync_runs (user_id, database_id, database_name, "
		"trigger,"
		"   status, queued_at, full_walk)"
		"   select $1::uuid, nullif($2, '')::uuid, nullif($3, ''), $4, 'queued', now(), "
		"$5::boolean"
		"   where not exists (select 1 from existing) returning id)"
		" select id from added union all select id from existing",
		5, params, run_id, err);
}

nsync_rc nsync__queue_claim_user(struct nsync_store *s, char user_id[37], struct nsync_err *err)
{
	PGresult *res;
	int i;

	user_id[0] = '\0';
	/* Users with due webhook events first (the priority lane), then the
	 * oldest waiting runs; a few candidates in case others are taken. */
	res = nsync__store_exec(
		s, "reading the queue",
		"select user_id::text from ("
		" select user_id, 0 as lane, min(id) as first from notion_webhook_events"
		" where status = 'received' and user_id is not null and (not_before is"
		" null or not_before <= clock_timestamp()) group by user_id"
		" union all select user_id, 1, min(id) from notion_sync_runs"
		" where status = 'queued' group by user_id) q"
		" group by user_id order by min(lane), min(first) limit 32",
		0, NULL, err);
	if (!res)
		return NSYNC_ERR_DB;
	for (i = 0; i < PQntuples(res) && !user_id[0]; i++) {
		char label[100];
		int got;

		snprintf(label, sizeof(label), "user=%s (worker)", PQgetvalue(res, i, 0));
		if (nsync__store_try_lock(s, PQgetvalue(res, i, 0), "", label, &got, err) !=
		    NSYNC_OK) {
			PQclear(res);
			return NSYNC_ERR_DB;
		}
		if (got)
			snprintf(user_id, 37, "%s", PQgetvalue(res, i, 0));
	}
	PQclear(res);
	return NSYNC_OK;
}

void nsync__queue_release_user(struct nsync_store *s, const char *user_id)
{
	nsync__store_unlock_key(s, user_id, "");
}

nsync_rc nsync__queue_next(struct nsync_store *s, const char *user_id,
			   struct nsync_queued_run *runs, size_t max, size_t *found,
			   struct nsync_err *err)
{
	char limit[24];
	const char *params[] = {user_id, limit};
	PGresult *res;
	int i;

	*found = 0;
	snprintf(limit, sizeof(limit), "%zu", max);
	res = nsync__store_exec(s, "reading the queue",
				"select id, coalesce(database_id::text, ''), "
				"coalesce(database_name, ''),"
				" trigger, full_walk from notion_sync_runs where user_id = $1::uuid"
				" and status = 'queued' order by id limit $2::int",
				2, params, err);
	if (!res)
		return NSYNC_ERR_DB;
	for (i = 0; i < PQntuples(res) && *found < max; i++) {
		struct nsync_queued_run *run = &runs[(*found)++];
		memset(run, 0, sizeof(*run));
		run->id = strtol(PQgetvalue(res, i, 0), NULL, 10);
		snprintf(run->database_id, sizeof(run->database_id), "%s", PQgetvalue(res, i, 1));
		snprintf(run->database_name, sizeof(run->database_name), "%s",
			 PQgetvalue(res, i, 2));
		snprintf(run->trigger, sizeof(run->trigger), "%s", PQgetvalue(res, i, 3));
		run->full = PQgetvalue(res, i, 4)[0] == 't';
	}
	PQclear(res);
	return NSYNC_OK;
}

nsync_rc nsync__queue_start(struct nsync_store *s, long run_id, const char *worker,
			    struct nsync_err *err)
{
	char id[24];
	const char *params[] = {id, worker};

	snprintf(id, sizeof(id), "%ld", run_id);
	return nsync__store_run(s, "starting a run",
				"update notion_sync_runs set status = 'running', started_at = "
				"now(),"
				" heartbeat_at = now(), worker = $2 where id = $1::bigint",
				2, params, err);
}

nsync_rc nsync__queue_reap(struct nsync_store *s, double stale_after, long *reaped,
			   struct nsync_err *err)
{
	char secs[32];
	const char *params[] = {secs};

	snprintf(secs, sizeof(secs), "%.3f", stale_after);
	/* A live run holds its (user, database) advisory lock for its whole
	 * length; pg_locks shows a bigint key as classid (high half) and
	 * objid (low half) with objsubid 1. */
	return nsync__store_count(
		s, "failing runs of dead workers",
		"with keys as (select r.id, case when r.database_id is null"
		"   then notion_sync_user_lock_key(r.user_id)"
		"   else notion_sync_lock_key(r.user_id, r.database_id) end as k"
		"   from notion_sync_runs r where r.status = 'running'"
		"   and coalesce(r.heartbeat_at, r.started_at) < now() - make_interval(secs => "
		"$1::float8))"
		" update notion_sync_runs r set status = 'error', finished_at = now(),"
		"   error_message = 'the worker running this sync stopped (no heartbeat since '"
		"     || to_char(coalesce(r.heartbeat_at, r.started_at) at time zone 'UTC',"
		"                'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') || '); the next trigger runs it "
		"again'"
		"  from keys where r.id = keys.id and r.status = 'running'"
		"   and not exists (select 1 from pg_locks l where l.locktype = 'advisory' and "
		"l.granted"
		"     and l.database = (select oid from pg_database where datname = "
		"current_database())"
		"     and l.classid = ((keys.k >> 32) & 4294967295)::oid"
		"     and l.objid = (keys.k & 4294967295)::oid and l.objsubid = 1)",
		1, params, reaped, err);
}

nsync_rc nsync__queue_status(struct nsync_store *s, long run_id, char **json, struct nsync_err *err)
{
	char id[24];
	const char *params[] = {id};
	struct nsync_buf sql;
	int found;
	nsync_rc rc;

	*json = NULL;
	snprintf(id, sizeof(id), "%ld", run_id);
	nsync__buf_init(&sql, 8192);
	if (nsync__buf_adds(&sql,
			    "select json_build_object('success', true, 'run', json_build_object("
			    " 'run_id', id, 'user_id', user_id, 'database_id', database_id,"
			    " 'database_name', database_name, 'trigger', trigger, 'status', status,"
			    " 'mode', mode, 'queued_at', queued_at, 'started_at', started_at,"
			    " 'finished_at', finished_at, 'heartbeat_at', heartbeat_at, "
			    "'duration_ms',"
			    "   case when status not in ('queued') then round(extract(epoch from"
			    "     coalesce(finished_at, now()) - started_at) * 1000) end,"
			    " 'error_message', error_message") != NSYNC_OK ||
	    nsync__stats_json_sql(&sql) != NSYNC_OK ||
	    nsync__buf_adds(&sql, "))::text from notion_sync_runs where id = $1::bigint") !=
		    NSYNC_OK) {
		nsync__buf_free(&sql);
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
	}
	rc = nsync__store_text(s, "reading a run", sql.data, 1, params, &found, json, err);
	nsync__buf_free(&sql);
	if (rc == NSYNC_OK && !found)
		rc = nsync__err(err, NSYNC_ERR_NOT_FOUND, "there is no run %ld", run_id);
	return rc;
}
