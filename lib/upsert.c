/*
 * upsert.c - the sync tables' side of a sync (see upsert.h): the stored
 * hashes read once, the batched upsert that writes only changed rows, and
 * the deletions a complete full walk proves (and the orphans an operator
 * removes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "upsert.h"

nsync_rc nsync__store_load_hashes(struct nsync_store *s, const struct nsync_kind *kind,
				  const char *user_id, const char *database_id,
				  struct nsync_pagemap *map, struct nsync_err *err)
{
	char sql[256];
	const char *params[] = {user_id, database_id};
	PGresult *res;
	nsync_rc rc = NSYNC_OK;

	if (nsync__store_ready(s, err) != NSYNC_OK)
		return NSYNC_ERR_DB;
	snprintf(sql, sizeof(sql),
		 "select notion_page_id::text, content_hash from %s"
		 " where user_id = $1::uuid and notion_database_id = $2::uuid",
		 kind->table);
	if (!PQsendQueryParams(s->conn, sql, 2, NULL, params, NULL, NULL, 0) ||
	    !PQsetSingleRowMode(s->conn))
		return nsync__store_db_error(err, "reading stored hashes", PQerrorMessage(s->conn),
					     NULL);
	while ((res = PQgetResult(s->conn)) != NULL) {
		ExecStatusType st = PQresultStatus(res);
		if (st == PGRES_SINGLE_TUPLE && rc == NSYNC_OK) {
			nsync_rc put_rc;
			if (!nsync__pagemap_put(map, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
						&put_rc) &&
			    put_rc == NSYNC_ERR_NOMEM)
				rc = nsync__err(err, NSYNC_ERR_NOMEM,
						"out of memory reading stored hashes");
			/* A hash that is not 32 hex digits (edited by hand) just
			 * means "changed": the page is rewritten. */
		} else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && rc == NSYNC_OK) {
			rc = nsync__store_db_error(err, "reading stored hashes",
						   PQresultErrorMessage(res),
						   PQresultErrorField(res, PG_DIAG_SQLSTATE));
		}
		PQclear(res);
	}
	return rc;
}

nsync_rc nsync__store_created_quantiles(struct nsync_store *s, const struct nsync_kind *kind,
					const char *user_id, const char *database_id,
					const char *source_id, int ranges, char *pivots,
					size_t width, size_t *n_pivots, struct nsync_err *err)
{
	char sql[768], fractions[128] = "{";
	const char *params[] = {user_id, database_id, source_id, fractions};
	PGresult *res;
	int i, n;

	*n_pivots = 0;
	for (i = 1; i < ranges && i < 16; i++)
		snprintf(fractions + strlen(fractions), sizeof(fractions) - strlen(fractions),
			 "%s%.6f", i > 1 ? "," : "", (double)i / ranges);
	strcat(fractions, "}");
	/* Rows of 2022-06-28 walks carry no data source: the database is it. */
	snprintf(sql, sizeof(sql),
		 "select distinct to_char(q at time zone 'UTC',"
		 " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') as q"
		 " from unnest((select percentile_disc($4::float8[]) within group"
		 " (order by notion_created_time) from %s"
		 " where user_id = $1::uuid and notion_database_id = $2::uuid"
		 " and (notion_data_source_id = $3::uuid or notion_data_source_id is null)"
		 " and notion_created_time is not null)) q"
		 " where q is not null order by 1",
		 kind->table);
	if (!(res = nsync__store_exec(s, "reading the created_time quantiles", sql, 4, params,
				      err)))
		return NSYNC_ERR_DB;
	n = PQntuples(res);
	for (i = 0; i < n && i < ranges - 1; i++) {
		const char *t = PQgetvalue(res, i, 0);

		if (strlen(t) >= width)
			continue;
		strcpy(pivots + *n_pivots * width, t);
		(*n_pivots)++;
	}
	PQclear(res);
	return NSYNC_OK;
}

nsync_rc nsync__store_upsert(struct nsync_store *s, const struct nsync_kind *kind,
			     const char *user_id, const char *database_id, const char *batch,
			     long *inserted, long *updated, struct nsync_err *err)
{
	char sql[2048], count_col[64] = "", count_val[64] = "", count_set[128] = "";
	const char *params[] = {user_id, database_id, batch};
	PGresult *res;
	int i, rows;

	if (kind->count_column) {
		snprintf(count_col, sizeof(count_col), ", %s", kind->count_column);
		snprintf(count_val, sizeof(count_val), ", (r->>'m')::integer");
		snprintf(count_set, sizeof(count_set), ", %s = excluded.%s", kind->count_column,
			 kind->count_column);
	}
	/* The WHERE clause makes an unchanged row cost nothing: no new tuple,
	 * no WAL, updated_at untouched. */
	snprintf(sql, sizeof(sql),
		 "insert into %s as t (user_id, notion_page_id, notion_database_id,"
		 " notion_data_source_id, %s, %s%s, properties, content_hash,"
		 " notion_created_time, notion_last_edited_time)"
		 " select $1::uuid, (r->>'p')::uuid, $2::uuid, (r->>'s')::uuid, r->>'n', r->>'x'%s,"
		 " r->'props', r->>'h', (r->>'c')::timestamptz, (r->>'e')::timestamptz"
		 " from jsonb_array_elements($3::jsonb) as r"
		 " on conflict (user_id, notion_page_id) do update set"
		 " notion_database_id = excluded.notion_database_id,"
		 " notion_data_source_id = excluded.notion_data_source_id,"
		 " %s = excluded.%s, %s = excluded.%s%s,"
		 " properties = excluded.properties, content_hash = excluded.content_hash,"
		 " notion_created_time = excluded.notion_created_time,"
		 " notion_last_edited_time = excluded.notion_last_edited_time, updated_at = now()"
		 " where t.content_hash is distinct from excluded.content_hash"
		 " returning (xmax = 0)",
		 kind->table, kind->title_column, kind->text_column, count_col, count_val,
		 kind->title_column, kind->title_column, kind->text_column, kind->text_column,
		 count_set);
	res = nsync__store_exec(s, "writing pages", sql, 3, params, err);
	if (!res)
		return NSYNC_ERR_DB;
	rows = PQntuples(res);
	for (i = 0; i < rows; i++) {
		if (PQgetvalue(res, i, 0)[0] == 't')
			(*inserted)++;
		else
			(*updated)++;
	}
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
		 "   and ($4::uuid[] is null or coalesce(notion_data_source_id = any($4::uuid[]), "
		 "false))"
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
				     const char *sources_array, long *deleted,
				     struct nsync_err *err)
{
	const char *params[] = {user_id, database_id, sources_array};
	char sql[512];
	long n = 0;
	nsync_rc rc;

	snprintf(sql, sizeof(sql),
		 "delete from %s where user_id = $1::uuid and notion_database_id = $2::uuid"
		 " and not coalesce(notion_data_source_id = any($3::uuid[]), false)",
		 kind->table);
	rc = nsync__store_count(s, "deleting orphaned rows", sql, 3, params, &n, err);
	*deleted += n;
	return rc;
}
