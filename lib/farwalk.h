/*
 * farwalk.h - the other ends of a split full walk. One data source walked
 * one request at a time is bound by Notion's latency once it exceeds the
 * pace's spacing (400 ms answers, 333 ms spacing). So a large full walk is
 * split: created_time is cut at pivots (quantiles of the last walk's rows)
 * into ranges, and each range is walked from both of its ends at once.
 * The walker (sync.c) goes up the first range from the data source's
 * start; these threads take the other ends, each with a Notion client of
 * its own on the same token pacer, and hand every answer to the walker,
 * which processes every page (hashing, writing, marking it seen). With no
 * pivot there is one range and one other end, going down from the top.
 *
 * What was walked is tracked as spans (span.h) of the answers the walker
 * took: the walk is complete when they cover all of created_time. An end
 * stops when it reaches another end's span. When an end fails, the walker
 * walks the gap it leaves itself.
 */
#ifndef NSYNC_FARWALK_H
#define NSYNC_FARWALK_H

#include "notion.h"
#include "notionsync.h"

/* Ranges of one walk at most: 2 × ranges − 1 threads, each with a client
 * and up to two answers (about half a megabyte each) waiting. */
#define NSYNC_FARWALK_MAX_RANGES NSYNC_MAX_SPLIT_RANGES
/* A created_time as Notion writes it, with room to spare. */
#define NSYNC_FARWALK_TIME 40

struct nsync_farwalk;

/* nsync__farwalk_start - start the other ends of a walk of source_id cut
 * at n_pivots ascending created_times (at most NSYNC_FARWALK_MAX_RANGES −
 * 1; none: one end going down from the top), with token (copied) and
 * pacer (process-wide) under a copy of cfg. NULL when it cannot start
 * (out of memory, no thread): the walker then walks alone. */
struct nsync_farwalk *nsync__farwalk_start(const struct nsync_config *cfg, const char *token,
					   struct nsync_pacer *pacer, const char *source_id,
					   const char (*pivots)[NSYNC_FARWALK_TIME],
					   size_t n_pivots);

/* nsync__farwalk_take - the oldest answer handed over by any end and not
 * taken yet, in *qp (its raw text owned by *raw: free() it after
 * nsync__query_page_clear). Taking it counts its span as walked, so
 * process it before asking nsync__farwalk_covered. 0 when none is
 * waiting after up to wait seconds (0: no wait; also no wait once no end
 * runs). */
int nsync__farwalk_take(struct nsync_farwalk *f, struct nsync_query_page *qp, char **raw,
			double wait);

/* nsync__farwalk_hold - hold (1) the ends back from starting requests,
 * or let them go (0): the webhook lane's page reads, between the walker's
 * requests, get the whole pace and do not queue behind the walk's. The
 * requests in flight finish; answers can still be taken. */
void nsync__farwalk_hold(struct nsync_farwalk *f, int hold);

/* nsync__farwalk_near - tell the ends how far the walker got (its newest
 * created_time so far: every page older than it was seen). */
void nsync__farwalk_near(struct nsync_farwalk *f, const char *newest);

/* nsync__farwalk_covered - 1 when the spans of the walker and of the
 * answers taken cover every created_time: every page was seen. */
int nsync__farwalk_covered(struct nsync_farwalk *f);

/* nsync__farwalk_parked - 1 when the walker's frontier reached another
 * end's span: walking on would read what was read. */
int nsync__farwalk_parked(struct nsync_farwalk *f);

/* nsync__farwalk_busy - 1 while an end still runs or an answer waits. */
int nsync__farwalk_busy(struct nsync_farwalk *f);

/* nsync__farwalk_gap - the lowest created_time not covered, for the
 * walker to walk from when no end is busy ("" for the start). */
void nsync__farwalk_gap(struct nsync_farwalk *f, char gap[NSYNC_FARWALK_TIME]);

/* nsync__farwalk_stop - tell every end to stop and wait up to wait
 * seconds for them (their requests in flight); what they handed over can
 * still be taken. An end stuck in a slow request is not waited for
 * longer: its thread finishes that request and frees what it holds. */
void nsync__farwalk_stop(struct nsync_farwalk *f, double wait);

/* nsync__farwalk_free - stop them, free what was not taken, add the
 * requests and waits of the ends that stopped to stats (may be NULL), and
 * let them go. Accepts NULL. */
void nsync__farwalk_free(struct nsync_farwalk *f, struct nsync_stats *stats);

#endif
