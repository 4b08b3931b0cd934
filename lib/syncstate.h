/*
 * syncstate.h - what one sync remembers for the next: per data source, the
 * watermark of incremental sync (newest last_edited_time seen by a
 * completed walk) and when a full walk last completed.
 * Table notion_sync_state, sql/002_completeness.sql.
 */
#ifndef NSYNC_SYNCSTATE_H
#define NSYNC_SYNCSTATE_H

#include "mapping.h"
#include "notionsync.h"
#include "store.h"

/* Where an incremental walk of one data source starts. */
struct nsync_source_state {
	int known;      /* a row exists for this source */
	int full_due;   /* no full walk yet, or the last is older than the interval */
	char since[40]; /* watermark minus 2 minutes, ISO 8601 UTC; "" when none */
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

#endif
