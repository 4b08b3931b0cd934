/*
 * metrics.h - the Prometheus metrics of GET /metrics: the text exposition
 * format (version 0.0.4) built at scrape time from notion_sync_runs and
 * notion_databases and notion_webhook_stats with three statements (see
 * metrics.c for the series).
 */
#ifndef NSYNC_METRICS_H
#define NSYNC_METRICS_H

#include "notionsync.h"
#include "store.h"

/* Largest exposition text built; past it the scrape fails with
 * NSYNC_ERR_NOMEM (about 300 bytes per registered database). */
#define NSYNC_METRICS_MAX (64u << 20)

/* nsync__metrics_text - read the run log and the registry and render them
 * as Prometheus text. On success *text is a new NUL-terminated string the
 * caller frees with free(); on failure it is NULL and err is filled:
 * NSYNC_ERR_DB when a statement fails, NSYNC_ERR_NOMEM when memory or
 * NSYNC_METRICS_MAX runs out. */
nsync_rc nsync__metrics_text(struct nsync_store *s, char **text, struct nsync_err *err);

#endif
