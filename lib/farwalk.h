/*
 * farwalk.h - the far end of a two-ended full walk. One data source walked
 * one request at a time is bound by Notion's latency once it exceeds the
 * pace's spacing (400 ms answers, 333 ms spacing). So a large full walk is
 * walked from both ends of created_time at once: the walker (sync.c) goes
 * ascending, and this thread goes descending with a Notion client of its
 * own, on the same token pacer, handing each answer over to the walker,
 * which processes every page (hashing, writing, marking it seen). The walk
 * is complete when the two ends have crossed (the walker's newest
 * created_time is past the far end's oldest: every page is then older than
 * one or newer than the other), or when either end reached the other end
 * of the data source by itself.
 */
#ifndef NSYNC_FARWALK_H
#define NSYNC_FARWALK_H

#include "notion.h"
#include "notionsync.h"

struct nsync_farwalk;

/* nsync__farwalk_start - start walking source_id by created_time
 * descending with token (copied) and pacer (process-wide) under a copy of
 * cfg. NULL when it cannot start (out of memory, no thread): the walker
 * then walks alone. */
struct nsync_farwalk *nsync__farwalk_start(const struct nsync_config *cfg, const char *token,
					   struct nsync_pacer *pacer, const char *source_id);

/* nsync__farwalk_take - the oldest answer handed over and not taken yet,
 * in *qp (its raw text owned by *raw: free() it after
 * nsync__query_page_clear). 0 when none is waiting; with wait, waits until
 * one comes or the far end has stopped. */
int nsync__farwalk_take(struct nsync_farwalk *f, struct nsync_query_page *qp, char **raw, int wait);

/* nsync__farwalk_near - tell the far end how far the walker got (its
 * newest created_time so far): it stops once its own pages are older. */
void nsync__farwalk_near(struct nsync_farwalk *f, const char *newest);

/* nsync__farwalk_whole - 1 once the far end has handed over its answer
 * that reached the start of the data source (after taking every answer,
 * the walk has seen every page). */
int nsync__farwalk_whole(struct nsync_farwalk *f);

/* nsync__farwalk_last_created - the created_time of the last result of a
 * far answer (its oldest page), or NULL. Borrowed from qp. */
const char *nsync__farwalk_last_created(const struct nsync_query_page *qp);

/* nsync__farwalk_stop - tell the far end to stop and wait up to wait
 * seconds for it (its request in flight); what it handed over can still be
 * taken. A far end stuck in a slow request is not waited for longer: its
 * thread finishes that request and frees what it holds by itself. */
void nsync__farwalk_stop(struct nsync_farwalk *f, double wait);

/* nsync__farwalk_free - stop it, free what was not taken, add its requests
 * and waits to stats (may be NULL; only when it has stopped), and let it
 * go. Accepts NULL. */
void nsync__farwalk_free(struct nsync_farwalk *f, struct nsync_stats *stats);

#endif
