/*
 * pagerows.h - one page's rows in the sync tables, for the webhook worker
 * (events.h): which registered database it belongs to, where its rows are
 * (a page has at most one row per kind table), removing a row under its
 * database's lock, and writing a fetched page exactly as a sync does
 * (nsync__sync_pages) under that lock. A lock this session already holds
 * (the walk the priority lane runs inside) is used as it is.
 */
#ifndef NSYNC_PAGEROWS_H
#define NSYNC_PAGEROWS_H

#include <json-c/json.h>

#include "mapping.h"
#include "notion.h"
#include "service.h"

/* Where one of the user's rows of a page is. */
struct nsync_row_place {
	const struct nsync_kind *kind;
	char database_id[37];
	char source_id[37]; /* "" when the row has none (2022-06-28) */
};

/* nsync__registered_kind - *kind: the kind of user_id's registered,
 * enabled database_id, or NULL when it is not registered (or
 * database_id is ""). NSYNC_ERR_DB. */
nsync_rc nsync__registered_kind(struct nsync_service *svc, const char *user_id,
				const char *database_id, const struct nsync_kind **kind,
				struct nsync_err *err);

/* nsync__page_rows - the user's rows of page_id, in places (at most 5, one
 * per kind table); *n receives how many. NSYNC_ERR_DB. */
nsync_rc nsync__page_rows(struct nsync_service *svc, const char *user_id, const char *page_id,
			  struct nsync_row_place places[5], size_t *n, struct nsync_err *err);

/* nsync__page_row_delete - delete the row at place, holding its database's
 * lock; *deleted grows by the rows removed. NSYNC_ERR_BUSY when another
 * session syncs that database (nothing deleted), NSYNC_ERR_DB. */
nsync_rc nsync__page_row_delete(struct nsync_service *svc, const char *user_id, const char *page_id,
				const struct nsync_row_place *place, long *deleted,
				struct nsync_err *err);

/* nsync__page_rows_remove - delete the page's rows of places (n) outside
 * keep_database ("" = all of them). Fails as nsync__page_row_delete, at the
 * first failure. */
nsync_rc nsync__page_rows_remove(struct nsync_service *svc, const char *user_id,
				 const char *page_id, const struct nsync_row_place *places,
				 size_t n, const char *keep_database, long *deleted,
				 struct nsync_err *err);

/* nsync__page_parent - the database (and data source) a fetched page object
 * is in, from its parent; "" for a page in no database. */
void nsync__page_parent(struct json_object *page, char database_id[37], char source_id[37]);

/* nsync__page_write - write the fetched page (qp, from nsync__notion_get_page)
 * into kind's table for database_id under that database's lock, with ctx's
 * token and pacer; counts go to stats and the first page error (a row that
 * could not be written) to first_error. NSYNC_ERR_BUSY, or the failures of
 * nsync__sync_pages. */
nsync_rc nsync__page_write(struct nsync_service *svc, const char *user_id,
			   const struct nsync_notion_ctx *ctx, const struct nsync_kind *kind,
			   const char *database_id, const char *source_id,
			   const struct nsync_query_page *qp, struct nsync_stats *stats,
			   char *first_error, size_t first_error_size, struct nsync_err *err);

#endif
