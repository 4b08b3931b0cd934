/*
 * events.h - the worker half of webhooks: the stored events of one user
 * (webhook.c) turned into Notion reads and writes. Events are signals;
 * every action reads Notion's current state, so duplicates, retries and
 * any order of delivery converge:
 *   page events      GET the page (one request for all events of a page
 *                    waiting together) and write its row as a sync would,
 *                    or remove it where Notion shows it gone or moved out;
 *   database events  queue a sync of that database (full when the schema
 *                    changed); deleted data sources delete nothing.
 * Events for databases the user did not register are dropped without a
 * Notion request when the event's parent shows it.
 *
 * The priority lane: the worker holding a user processes that user's
 * events first, and between the answers of its walks (nsync_sync_job's
 * interject), under the same token pacer.
 */
#ifndef NSYNC_EVENTS_H
#define NSYNC_EVENTS_H

#include "notion.h"
#include "service.h"

/* What the lane needs between the requests of a walk. Borrowed pointers. */
struct nsync_event_lane {
	struct nsync_service *svc;
	const char *user_id;
	const char *token;
	struct nsync_pacer *pacer;
	double next_check; /* monotonic seconds: the pending check is throttled */
	long handled;      /* events finished through this lane */
	int busy;          /* the last look found events due */
};

/* nsync__events_process - finish the due events of user_id (whose user
 * lock the caller holds), with token and pacer. *handled (may be NULL)
 * receives how many events were finished. Events whose database is being
 * synced by another session wait (not_before) and are retried; a Notion
 * failure other than a rejected token is retried with backoff, then
 * recorded as failed. Returns NSYNC_ERR_DB when PostgreSQL fails and
 * NSYNC_ERR_NOTION_AUTH when Notion rejects the token (the events are
 * recorded as failed first); other failures are the events' own. */
nsync_rc nsync__events_process(struct nsync_service *svc, const char *user_id, const char *token,
			       struct nsync_pacer *pacer, long *handled, struct nsync_err *err);

/* nsync__events_due - *due: 1 when user_id has an event due now (an
 * indexed lookup of one row), else 0. NSYNC_ERR_DB. */
nsync_rc nsync__events_due(struct nsync_store *store, const char *user_id, long *due,
			   struct nsync_err *err);

/* nsync__events_interject - the sync job's interject callback (data is a
 * struct nsync_event_lane): at most every 0.2 s, process the user's due
 * events; *busy is 1 when that last look found any due. Always
 * NSYNC_OK: what fails stays with the events (they are
 * retried), and a lost PostgreSQL is left to the walk's heartbeat, which
 * reconnects and proves its locks before anything more is written. */
nsync_rc nsync__events_interject(void *lane, int *busy, struct nsync_err *err);

/* nsync__events_record_workspace - read the workspace of user_id's OAuth
 * token (GET /v1/users/me) and record it, so that the OAuth subscription's
 * events reach this user. For a token nsync__store_user_token reports
 * unplaced. Failures are returned but harmless to the caller's sync. */
nsync_rc nsync__events_record_workspace(struct nsync_service *svc, const char *user_id,
					const struct nsync_notion_ctx *ctx, struct nsync_err *err);

#endif
