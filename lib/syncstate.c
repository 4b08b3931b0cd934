/*
 * syncstate.c - incremental sync state and deletions (see syncstate.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "syncstate.h"

nsync_rc nsync__state_load(struct nsync_store *s, const char *user_id, const char *database_id,
			   const char (*sources)[37], size_t n, double full_interval,
			   struct nsync_source_state *states, struct nsync_err *err)
{
	char interval[32];
	const char *params[] = {user_id, database_id, interval};
	PGresult *res;
	size_t i;
	int row;

	for (i = 0; i < n; i++) {
		states[i].known = 0;
		states[i].full_due = 1;
		states[i].since[0] = '\0';
	}
	snprintf(interval, sizeof(interval), "%.3f", full_interval);
	/* Two minutes back: Notion rounds last_edited_time down to the minute
	 * and orders pages edited in one minute arbitrarily. */
	res = nsync__store_exec(
		s, "reading the sync state",
		"select data_source_id::text,"
		" coalesce(to_char((watermark - interval '2 minutes') at time zone 'UTC',"
		" 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), ''),"
		" last_full_walk_at is null"
		" or last_full_walk_at <= now() - make_interval(secs => $3::double precision)"
		" from notion_sync_state where user_id = $1::uuid and database_id = $2::uuid",
		3, params, err);
	if (!res)
		return NSYNC_ERR_DB;
	for (row = 0; row < PQntuples(res); row++) {
		for (i = 0; i < n && strcmp(sources[i], PQgetvalue(res, row, 0)) != 0; i++)
			;
		if (i == n)
			continue; /* a data source the database no longer has */
		states[i].known = 1;
		snprintf(states[i].since, sizeof(states[i].since), "%s", PQgetvalue(res, row, 1));
		states[i].full_due = PQgetvalue(res, row, 2)[0] == 't';
	}
	PQclear(res);
	return NSYNC_OK;
}

nsync_rc nsync__state_save(struct nsync_store *s, const char *user_id, const char *database_id,
			   const char *source_id, const char *watermark, int full,
			   struct nsync_err *err)
{
	const char *params[] = {user_id, database_id, source_id, watermark, full ? "t" : "f"};
	PGresult *res;

	res = nsync__store_exec(
		s, "saving the sync state",
		"insert into notion_sync_state as st (user_id, database_id, data_source_id, watermark,"
		" last_full_walk_at, last_walk_at)"
		" values ($1::uuid, $2::uuid, $3::uuid, $4::timestamptz,"
		" case when $5::boolean then now() end, now())"
		" on conflict (user_id, database_id, data_source_id) do update set"
		" watermark = greatest(st.watermark, excluded.watermark),"
		" last_full_walk_at = coalesce(excluded.last_full_walk_at, st.last_full_walk_at),"
		" last_walk_at = excluded.last_walk_at",
		5, params, err);
	if (!res)
		return NSYNC_ERR_DB;
	PQclear(res);
	return NSYNC_OK;
}

nsync_rc nsync__store_delete_pages(struct nsync_store *s, const struct nsync_kind *kind,
				   const char *user_id, const char *database_id,
				   const char *ids_array, const char *sources_array, long *deleted,
				   long *orphaned, struct nsync_err *err)
{
	const char *params[] = {user_id, database_id, ids_array, sources_array};
	char sql[1024];
	PGresult *res;

	/* Both parts see the rows as they were before the DELETE. A row whose
	 * data source was not walked (NULL included) is kept and counted. */
	snprintf(sql, sizeof(sql),
		 "with gone as (delete from %s where user_id = $1::uuid"
		 "   and notion_database_id = $2::uuid and notion_page_id = any($3::uuid[])"
		 "   and ($4::uuid[] is null or coalesce(notion_data_source_id = any($4::uuid[]), false))"
		 "   returning 1)"
		 " select (select count(*) from gone),"
		 "   (select count(*) from %s where user_id = $1::uuid"
		 "     and notion_database_id = $2::uuid and notion_page_id = any($3::uuid[])"
		 "     and $4::uuid[] is not null"
		 "     and not coalesce(notion_data_source_id = any($4::uuid[]), false))",
		 kind->table, kind->table);
	res = nsync__store_exec(s, "deleting pages Notion no longer has", sql, 4, params, err);
	if (!res)
		return NSYNC_ERR_DB;
	*deleted += strtol(PQgetvalue(res, 0, 0), NULL, 10);
	*orphaned += strtol(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	return NSYNC_OK;
}

nsync_rc nsync__store_delete_orphans(struct nsync_store *s, const struct nsync_kind *kind,
				     const char *user_id, const char *database_id,
				     const char *sources_array, long *deleted, struct nsync_err *err)
{
	const char *params[] = {user_id, database_id, sources_array};
	char sql[512];
	PGresult *res;

	snprintf(sql, sizeof(sql),
		 "delete from %s where user_id = $1::uuid and notion_database_id = $2::uuid"
		 " and not coalesce(notion_data_source_id = any($3::uuid[]), false)",
		 kind->table);
	res = nsync__store_exec(s, "deleting orphaned rows", sql, 3, params, err);
	if (!res)
		return NSYNC_ERR_DB;
	*deleted += strtol(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return NSYNC_OK;
}
