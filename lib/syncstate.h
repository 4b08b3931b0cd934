/*
 * syncstate.h - what one sync remembers for the next: per data source, the
 * watermark of incremental sync (newest last_edited_time seen by a
 * completed walk) and when a full walk last completed; and removing the
 * rows of pages a complete full walk no longer found.
 * Table notion_sync_state, sql/002_completeness.sql.
 */
#ifndef NSYNC_SYNCSTATE_H
#define NSYNC_SYNCSTATE_H

#include "mapping.h"
#include "notionsync.h"
#include "store.h"

/* Where an incremental walk of one data source starts. */
struct nsync_source_state {
	int known;             /* a row exists for this source */
	int full_due;          /* no full walk yet, or the last is older than the interval */
	char since[40];        /* watermark minus 2 minutes, ISO 8601 UTC; "" when none */
};

/* nsync__state_load - fill states[i] for each of the n sources of (user,
 * database). full_interval is in seconds. Sources without a row get
 * known = 0 and full_due = 1. NSYNC_ERR_DB on failure. */
nsync_rc nsync__state_load(struct nsync_store *s, const char *user_id, const char *database_id,
			   const char (*sources)[37], size_t n, double full_interval,
			   struct nsync_source_state *states, struct nsync_err *err);

/* nsync__state_save - record a completed walk of one source: watermark (an
 * ISO time; NULL keeps the stored one) only ever moves forward; full sets
 * last_full_walk_at to now. NSYNC_ERR_DB on failure. */
nsync_rc nsync__state_save(struct nsync_store *s, const char *user_id, const char *database_id,
			   const char *source_id, const char *watermark, int full,
			   struct nsync_err *err);

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
				     const char *sources_array, long *deleted, struct nsync_err *err);

#endif
