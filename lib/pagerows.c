/*
 * pagerows.c - one page's rows in the sync tables (see pagerows.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "pagerows.h"
#include "sync.h"

nsync_rc nsync__registered_kind(struct nsync_service *svc, const char *user_id,
				const char *database_id, const struct nsync_kind **kind,
				struct nsync_err *err)
{
	const char *params[] = {user_id, database_id};
	PGresult *res;

	*kind = NULL;
	if (!database_id[0])
		return NSYNC_OK;
	res = nsync__store_exec(&svc->store, "reading the registry",
				"select database_name from notion_databases where user_id = "
				"$1::uuid"
				" and database_id = $2::uuid and enabled",
				2, params, err);
	if (!res)
		return NSYNC_ERR_DB;
	if (PQntuples(res) == 1)
		*kind = nsync__kind_find(PQgetvalue(res, 0, 0));
	if (PQntuples(res) == 1 && !*kind)
		*kind = nsync__kind_generic();
	PQclear(res);
	return NSYNC_OK;
}

static const struct nsync_kind *kind_index(size_t i)
{
	return i < 4 ? nsync__kind_at(i) : nsync__kind_generic();
}

nsync_rc nsync__page_rows(struct nsync_service *svc, const char *user_id, const char *page_id,
			  struct nsync_row_place places[5], size_t *n, struct nsync_err *err)
{
	const char *params[] = {user_id, page_id};
	char sql[1400];
	size_t i, used = 0;
	PGresult *res;
	int r;

	*n = 0;
	for (i = 0; i < 5; i++)
		used += (size_t)
			snprintf(sql + used, sizeof(sql) - used,
				 "%sselect %zu, notion_database_id::text,"
				 " coalesce(notion_data_source_id::text, '') from %s where user_id"
				 " = $1::uuid and notion_page_id = $2::uuid",
				 i ? " union all " : "", i, kind_index(i)->table);
	res = nsync__store_exec(&svc->store, "finding a page's rows", sql, 2, params, err);
	if (!res)
		return NSYNC_ERR_DB;
	for (r = 0; r < PQntuples(res) && *n < 5; r++) {
		places[*n].kind = kind_index(strtoul(PQgetvalue(res, r, 0), NULL, 10));
		snprintf(places[*n].database_id, 37, "%s", PQgetvalue(res, r, 1));
		snprintf(places[*n].source_id, 37, "%s", PQgetvalue(res, r, 2));
		(*n)++;
	}
	PQclear(res);
	return NSYNC_OK;
}

/* Take the lock of (user, database) unless this session holds it already
 * (the walk this lane runs inside). *taken says whether to release it. */
static nsync_rc lock_database(struct nsync_service *svc, const char *user_id,
			      const char *database_id, int *taken, struct nsync_err *err)
{
	size_t i;

	*taken = 0;
	for (i = 0; i < svc->store.n_locks; i++)
		if (strcmp(svc->store.locks[i].user_id, user_id) == 0 &&
		    strcmp(svc->store.locks[i].database_id, database_id) == 0)
			return NSYNC_OK;
	if (nsync__store_lock(&svc->store, user_id, database_id, err) != NSYNC_OK)
		return err ? err->code : NSYNC_ERR_BUSY;
	*taken = 1;
	return NSYNC_OK;
}

nsync_rc nsync__page_row_delete(struct nsync_service *svc, const char *user_id, const char *page_id,
				const struct nsync_row_place *place, long *deleted,
				struct nsync_err *err)
{
	const char *params[] = {user_id, page_id, place->database_id};
	char sql[300];
	long n = 0;
	int taken;
	nsync_rc rc;

	rc = lock_database(svc, user_id, place->database_id, &taken, err);
	if (rc != NSYNC_OK)
		return rc;
	snprintf(sql, sizeof(sql),
		 "with d as (delete from %s where user_id = $1::uuid and notion_page_id = $2::uuid"
		 " and notion_database_id = $3::uuid returning 1) select count(*) from d",
		 place->kind->table);
	rc = nsync__store_long(&svc->store, "removing a page's row", sql, 3, params, &n, err);
	*deleted += n;
	if (taken)
		nsync__store_unlock(&svc->store, user_id, place->database_id);
	return rc;
}

void nsync__page_parent(struct json_object *page, char database_id[37], char source_id[37])
{
	struct json_object *parent = NULL;
	const char *type, *db, *ds;

	database_id[0] = source_id[0] = '\0';
	json_object_object_get_ex(page, "parent", &parent);
	type = nsync__json_string(parent, "type");
	db = nsync__json_string(parent, "database_id");
	ds = nsync__json_string(parent, "data_source_id");
	if (!type || (strcmp(type, "data_source_id") && strcmp(type, "database_id")))
		return;
	if (!db || nsync_normalize_id(db, database_id, NULL) != NSYNC_OK)
		database_id[0] = '\0';
	if (ds && nsync_normalize_id(ds, source_id, NULL) != NSYNC_OK)
		source_id[0] = '\0';
}

nsync_rc nsync__page_rows_remove(struct nsync_service *svc, const char *user_id,
				 const char *page_id, const struct nsync_row_place *places,
				 size_t n, const char *keep_database, long *deleted,
				 struct nsync_err *err)
{
	size_t i;
	nsync_rc rc;

	for (i = 0; i < n; i++) {
		if (strcmp(places[i].database_id, keep_database) == 0)
			continue;
		rc = nsync__page_row_delete(svc, user_id, page_id, &places[i], deleted, err);
		if (rc != NSYNC_OK)
			return rc;
	}
	return NSYNC_OK;
}

nsync_rc nsync__page_write(struct nsync_service *svc, const char *user_id,
			   const struct nsync_notion_ctx *ctx, const struct nsync_kind *kind,
			   const char *database_id, const char *source_id,
			   const struct nsync_query_page *qp, struct nsync_stats *stats,
			   char *first_error, size_t first_error_size, struct nsync_err *err)
{
	struct nsync_sync_job job;
	int taken;
	nsync_rc rc;

	rc = lock_database(svc, user_id, database_id, &taken, err);
	if (rc != NSYNC_OK)
		return rc;
	memset(&job, 0, sizeof(job));
	job.cfg = &svc->cfg;
	job.store = &svc->store;
	job.notion = svc->notion;
	job.nctx = *ctx;
	job.nctx.stats = stats;
	job.kind = kind;
	job.user_id = user_id;
	job.database_id = database_id;
	rc = nsync__sync_pages(&job, source_id[0] ? source_id : database_id, qp, err);
	snprintf(first_error, first_error_size, "%s", job.first_page_error);
	if (taken)
		nsync__store_unlock(&svc->store, user_id, database_id);
	return rc;
}
