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

	return nsync__store_run(s, "saving the sync state",
				"insert into notion_sync_state as st (user_id, database_id, "
				"data_source_id, watermark,"
				" last_full_walk_at, last_walk_at)"
				" values ($1::uuid, $2::uuid, $3::uuid, $4::timestamptz,"
				" case when $5::boolean then now() end, now())"
				" on conflict (user_id, database_id, data_source_id) do update set"
				" watermark = greatest(st.watermark, excluded.watermark),"
				" last_full_walk_at = coalesce(excluded.last_full_walk_at, "
				"st.last_full_walk_at),"
				" last_walk_at = excluded.last_walk_at",
				5, params, err);
}
