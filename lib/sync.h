/*
 * sync.h - one database, end to end: walk every data source page by page,
 * hash each page, skip what has not changed, complete values Notion
 * truncated, and upsert the rest in batches. Pages are handled as each
 * Notion answer arrives; nothing is collected across answers except the
 * pending batch.
 *
 * A walk is full (every page, sorted by created_time; afterwards the rows
 * of pages Notion no longer returned are deleted, but only rows of the
 * data sources this walk completed: rows of a source the database no
 * longer lists are kept and counted as orphaned) or incremental (pages
 * edited since the source's watermark minus two minutes, sorted by
 * last_edited_time; never deletes).
 */
#ifndef NSYNC_SYNC_H
#define NSYNC_SYNC_H

#include "mapping.h"
#include "notion.h"
#include "notionsync.h"
#include "store.h"

/* Seconds between heartbeats of a walk: how soon a lost PostgreSQL (and so
 * a lost lock) is noticed while only Notion is being called. */
#define NSYNC_HEARTBEAT_EVERY 2.0

struct nsync_sync_job {
	const struct nsync_config *cfg; /* borrowed */
	struct nsync_store *store;      /* borrowed; connected */
	struct nsync_notion *notion;    /* borrowed */
	struct nsync_notion_ctx nctx;   /* token, pacer, stats (borrowed) */
	const struct nsync_kind *kind;  /* static */
	const char *user_id;            /* dashed lowercase UUIDs */
	const char *database_id;
	const struct nsync_database_info *info; /* data sources to walk */
	int full_requested;                     /* the caller asked for a full walk */
	/* Called at most every NSYNC_HEARTBEAT_EVERY seconds while the walk
	 * runs (may be NULL): records that the run is alive and proves it
	 * still holds its lock. Anything but NSYNC_OK stops the walk at once,
	 * with nothing more written or deleted. */
	nsync_rc (*heartbeat)(void *data, struct nsync_err *err);
	void *heartbeat_data;
	/* Called between Notion answers of a walk (may be NULL), after the
	 * pending batch is written: the priority lane, in which webhook work
	 * for the same token goes ahead of the walk's next request (events.h).
	 * Anything but NSYNC_OK stops the walk as a heartbeat failure does.
	 * *busy: 1 while the lane has work (events were due when it last
	 * looked): the walk then goes on with one request at a time, leaving
	 * the rest of the pace to the lane. */
	nsync_rc (*interject)(void *data, int *busy, struct nsync_err *err);
	void *interject_data;
	const char *mode;           /* out: "full" or "incremental" (static) */
	char first_page_error[256]; /* out: first page error, "" if none */
};

/* nsync__sync_walk - sync every data source of job->info into the kind's
 * table, adding counts to job->nctx.stats. The walk is full when asked,
 * when a source has no state yet or its last full walk is older than
 * cfg->full_interval; else incremental. Page errors (a row PostgreSQL
 * refuses even after cleaning, a truncated value that could not be
 * fetched) are counted and the walk goes on; such a source's watermark
 * does not move, so the next sync tries those pages again. Returns
 * NSYNC_ERR_NOTION*, NSYNC_ERR_PROTOCOL, NSYNC_ERR_DB (connection or lock
 * lost, or the heartbeat's failure) or NSYNC_ERR_NOMEM for what stops the
 * walk; rows written before stay, and nothing is deleted. */
nsync_rc nsync__sync_walk(struct nsync_sync_job *job, struct nsync_err *err);

/* nsync__sync_pages - write the pages of one answer (a query page, or a
 * single page fetched by nsync__notion_get_page) of data source source_id
 * exactly as a walk does: same mapping, hash and completion of truncated
 * values, in one batch. Pages whose stored hash is the same are not
 * rewritten (the upsert compares). Nothing is deleted and no watermark
 * moves. Counts go to job->nctx.stats. Failures as nsync__sync_walk. */
nsync_rc nsync__sync_pages(struct nsync_sync_job *job, const char *source_id,
			   const struct nsync_query_page *qp, struct nsync_err *err);

#endif
