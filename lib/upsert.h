/*
 * upsert.h - what a sync reads from and writes to a sync table: the stored
 * hashes, the batched upsert of changed pages, deletions a complete full
 * walk proved, and the removal of orphaned rows.
 */
#ifndef NSYNC_UPSERT_H
#define NSYNC_UPSERT_H

#include "mapping.h"
#include "notionsync.h"
#include "pagemap.h"
#include "store.h"

/* nsync__store_load_hashes - fill map with (page id, content hash) of the
 * rows of this user and database in kind's table. Streams the rows (single
 * row mode) so memory does not peak with the table size. */
nsync_rc nsync__store_load_hashes(struct nsync_store *s, const struct nsync_kind *kind,
				  const char *user_id, const char *database_id,
				  struct nsync_pagemap *map, struct nsync_err *err);

/* nsync__store_created_quantiles - cut the created_time of the rows of
 * this user, database and data source in kind's table into ranges parts
 * of equal rows: the ranges − 1 cut points, distinct and ascending, as
 * Notion writes times ("2026-01-02T03:04:05.000Z"), each into width bytes
 * of pivots (ranges − 1 of them); *n_pivots is how many (fewer when many
 * rows share a time; 0 without rows). NSYNC_ERR_DB when the statement
 * fails. */
nsync_rc nsync__store_created_quantiles(struct nsync_store *s, const struct nsync_kind *kind,
					const char *user_id, const char *database_id,
					const char *source_id, int ranges, char *pivots,
					size_t width, size_t *n_pivots, struct nsync_err *err);

/* nsync__store_upsert - one statement for a batch document: a JSON array
 * of {"p","s","n","x","m","h","c","e","props"} objects (see sync.c). Adds
 * the rows inserted and updated (rows whose hash did not change are not
 * written) to *inserted and *updated. NSYNC_ERR_DB with err->sqlstate when
 * the statement fails. */
nsync_rc nsync__store_upsert(struct nsync_store *s, const struct nsync_kind *kind,
			     const char *user_id, const char *database_id, const char *batch,
			     long *inserted, long *updated, struct nsync_err *err);

/* nsync__store_delete_pages - delete the rows of (user, database) in kind's
 * table whose page ids are in ids_array, a PostgreSQL array literal of
 * UUIDs ("{...,...}"), and whose data source is in sources_array (the
 * sources this walk completed; NULL: any, for 2022-06-28 where the
 * database is the source). Listed rows of other data sources (or none) are
 * kept: their source is no longer listed, which may be lost access, not
 * emptiness. Adds the rows deleted to *deleted and those kept to *orphaned. */
nsync_rc nsync__store_delete_pages(struct nsync_store *s, const struct nsync_kind *kind,
				   const char *user_id, const char *database_id,
				   const char *ids_array, const char *sources_array, long *deleted,
				   long *orphaned, struct nsync_err *err);

/* nsync__store_delete_orphans - delete the rows of (user, database) in
 * kind's table whose data source is not in sources_array (what the
 * database lists now) or is unknown: the operator's explicit removal of
 * what full walks keep as orphaned. Adds the rows deleted to *deleted. */
nsync_rc nsync__store_delete_orphans(struct nsync_store *s, const struct nsync_kind *kind,
				     const char *user_id, const char *database_id,
				     const char *sources_array, long *deleted,
				     struct nsync_err *err);

#endif
