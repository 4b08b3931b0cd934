/*
 * metrics.c - Prometheus metrics (text exposition format 0.0.4) computed at
 * scrape time from notion_sync_runs and notion_databases (see metrics.h).
 *
 * Three statements per scrape: one aggregate over notion_sync_runs (grouped
 * by status and trigger, plus a grand total row holding the sums and the
 * queue figures), and one row per enabled registered database (its last
 * status, and its last success found through the (user_id, database_id,
 * started_at desc) index, so it reads a row or two per database), and the
 * webhook figures of the view notion_webhook_stats (last hour's events by
 * outcome, their lag from receipt to row written, the backlog).
 *
 * Every series is a gauge. The run counts and sums are counts of rows
 * still in the log, and pruning old history (prune_notion_sync_history)
 * lowers them, which a Prometheus counter must never do (rate() would read
 * each pruning as a reset and invent a burst of runs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "metrics.h"
#include "text.h"

/* Columns of RUNS_SQL. */
enum {
	R_TOTAL,
	R_STATUS,
	R_TRIGGER,
	R_RUNS,
	R_PAGES,
	R_INSERTED,
	R_UPDATED,
	R_DELETED,
	R_PAGE_ERRORS,
	R_RETRIES,
	R_RATE_WAIT,
	R_PACING_WAIT,
	R_QUEUED,
	R_RUNNING,
	R_OLDEST,
	R__COUNT
};

static const char RUNS_SQL[] =
	"select grouping(status, trigger), status, trigger, count(*),"
	" coalesce(sum(pages_seen), 0), coalesce(sum(inserted), 0), coalesce(sum(updated), 0),"
	" coalesce(sum(deleted), 0), coalesce(sum(page_errors), 0), coalesce(sum(retries), 0),"
	" coalesce(sum(rate_limit_wait_seconds), 0), coalesce(sum(pacing_wait_seconds), 0),"
	" count(*) filter (where status = 'queued'), count(*) filter (where status = 'running'),"
	" extract(epoch from greatest(interval '0',"
	"   now() - min(coalesce(queued_at, started_at)) filter (where status = 'queued')))"
	" from notion_sync_runs group by grouping sets ((status, trigger), ())"
	" order by 1, 2, 3";

/* Columns of DATABASES_SQL. */
enum { D_USER, D_DATABASE, D_NAME, D_STATUS, D_SUCCESS, D__COUNT };

/* The last success: the newest successful run still in the log, or the
 * registry's last_synced_at when the last finished run was a success
 * (that run may have been pruned). Runs of one database never overlap
 * (its lock), so the newest started is the newest finished. */
static const char DATABASES_SQL[] =
	"select d.user_id::text, d.database_id::text, d.database_name, d.last_status,"
	" extract(epoch from greatest(s.finished_at,"
	"   case when d.last_status = 'success' then d.last_synced_at end))"
	" from notion_databases d"
	" left join lateral (select r.finished_at from notion_sync_runs r"
	"   where r.user_id = d.user_id and r.database_id = d.database_id"
	"   and r.status = 'success' and r.finished_at is not null"
	"   order by r.started_at desc limit 1) s on true"
	" where d.enabled order by d.user_id, d.database_id";

#define PRUNED "; lowered when old runs are pruned"

/* The gauges of the total row: the sums, then the queue figures. */
static const struct {
	const char *name;
	int col;
	const char *help;
} TOTALS[] = {
	{"notion_sync_pages_seen", R_PAGES,
	 "Pages read from Notion, summed over the runs in notion_sync_runs" PRUNED},
	{"notion_sync_rows_inserted", R_INSERTED,
	 "Sync-table rows inserted, summed over the runs in notion_sync_runs" PRUNED},
	{"notion_sync_rows_updated", R_UPDATED,
	 "Sync-table rows updated, summed over the runs in notion_sync_runs" PRUNED},
	{"notion_sync_rows_deleted", R_DELETED,
	 "Sync-table rows deleted by full walks, summed over the runs in notion_sync_runs" PRUNED},
	{"notion_sync_page_errors", R_PAGE_ERRORS,
	 "Pages that failed to sync, summed over the runs in notion_sync_runs" PRUNED},
	{"notion_sync_retries", R_RETRIES,
	 "Notion requests retried (429/529, 5xx, timeouts, resets), summed over the runs in "
	 "notion_sync_runs" PRUNED},
	{"notion_sync_rate_limit_wait_seconds", R_RATE_WAIT,
	 "Seconds waited on Retry-After (429/529) and retry backoff, summed over the runs in "
	 "notion_sync_runs" PRUNED},
	{"notion_sync_pacing_wait_seconds", R_PACING_WAIT,
	 "Seconds waited to stay under NOTION_RATE_LIMIT per token, summed over the runs in "
	 "notion_sync_runs" PRUNED},
	{"notion_sync_queue_depth", R_QUEUED, "Runs waiting for a worker (status queued)"},
	{"notion_sync_oldest_queued_run_age_seconds", R_OLDEST,
	 "Seconds since the oldest queued run was queued; 0 when none is queued"},
	{"notion_sync_running_runs", R_RUNNING, "Runs being synced now (status running)"},
};

/* The names of the registry's families. */
#define LAST_SUCCESS "notion_sync_database_last_success_timestamp_seconds"
#define LAST_STATUS "notion_sync_database_last_status"

/* States of LAST_STATUS; "none": never finished. */
static const char *const STATES[] = {"success", "error", "skipped", "none"};

/* Append the HELP and TYPE lines of a gauge. help holds neither a
 * backslash nor a newline, so it needs no escaping. */
static nsync_rc family(struct nsync_buf *b, const char *name, const char *help)
{
	return nsync__buf_printf(b, "# HELP %s %s.\n# TYPE %s gauge\n", name, help, name);
}

/* Append s as the inside of a quoted label value: backslash, double quote
 * and newline escaped, invalid UTF-8 replaced by U+FFFD (the format is
 * UTF-8; a database with SQL_ASCII encoding could hand us anything). */
static nsync_rc add_label_value(struct nsync_buf *b, const char *s)
{
	size_t len = strlen(s), i = 0, n;
	nsync_rc rc = NSYNC_OK;

	while (i < len && rc == NSYNC_OK) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\' || c == '"') {
			rc = nsync__buf_addc(b, '\\');
			if (rc == NSYNC_OK)
				rc = nsync__buf_addc(b, (char)c);
			i++;
		} else if (c == '\n') {
			rc = nsync__buf_adds(b, "\\n");
			i++;
		} else if (c < 0x80) {
			rc = nsync__buf_addc(b, (char)c);
			i++;
		} else if ((n = nsync__utf8_seq_len((const unsigned char *)s + i, len - i)) > 0) {
			rc = nsync__buf_add(b, s + i, n);
			i += n;
		} else {
			rc = nsync__buf_adds(b, "\xef\xbf\xbd");
			i++;
		}
	}
	return rc;
}

/* Append one label, name="value", preceded by a comma unless first. */
static nsync_rc add_label(struct nsync_buf *b, const char *name, const char *value, int first)
{
	nsync_rc rc = nsync__buf_printf(b, "%s%s=\"", first ? "" : ",", name);

	if (rc == NSYNC_OK)
		rc = add_label_value(b, value);
	if (rc == NSYNC_OK)
		rc = nsync__buf_addc(b, '"');
	return rc;
}

/* Append " value\n" for a number PostgreSQL printed (integer, numeric or
 * float8 text), with float8's infinities spelled as the format wants. */
static nsync_rc add_value(struct nsync_buf *b, const char *v)
{
	if (strcmp(v, "Infinity") == 0)
		v = "+Inf";
	else if (strcmp(v, "-Infinity") == 0)
		v = "-Inf";
	else if (!*v)
		v = "0";
	return nsync__buf_printf(b, " %s\n", v);
}

/* The labels {user_id,database_id,database_name of row i} without the
 * closing brace. */
static nsync_rc add_database_labels(struct nsync_buf *b, const PGresult *res, int i)
{
	nsync_rc rc = add_label(b, "user_id", PQgetvalue(res, i, D_USER), 1);

	if (rc == NSYNC_OK)
		rc = add_label(b, "database_id", PQgetvalue(res, i, D_DATABASE), 0);
	if (rc == NSYNC_OK)
		rc = add_label(b, "database_name", PQgetvalue(res, i, D_NAME), 0);
	return rc;
}

/* Append the series name{the labels of database row i[,status]} value;
 * status may be NULL (no such label). */
static nsync_rc add_database_series(struct nsync_buf *b, const char *name, const PGresult *res,
				    int i, const char *status, const char *value)
{
	nsync_rc rc = nsync__buf_printf(b, "%s{", name);

	if (rc == NSYNC_OK)
		rc = add_database_labels(b, res, i);
	if (rc == NSYNC_OK && status)
		rc = add_label(b, "status", status, 0);
	if (rc == NSYNC_OK)
		rc = nsync__buf_addc(b, '}');
	if (rc == NSYNC_OK)
		rc = add_value(b, value);
	return rc;
}

/* The families read from the run log. */
static nsync_rc render_runs(struct nsync_buf *b, const PGresult *res)
{
	int i, total = -1;
	size_t k;
	nsync_rc rc;

	rc = family(b, "notion_sync_runs",
		    "Runs in notion_sync_runs by status (queued, running, success, error, skipped) "
		    "and trigger; a gauge, not a counter: pruning old history lowers it");
	for (i = 0; i < PQntuples(res) && rc == NSYNC_OK; i++) {
		if (strcmp(PQgetvalue(res, i, R_TOTAL), "0") != 0) {
			total = i;
			continue;
		}
		rc = nsync__buf_adds(b, "notion_sync_runs{");
		if (rc == NSYNC_OK)
			rc = add_label(b, "status", PQgetvalue(res, i, R_STATUS), 1);
		if (rc == NSYNC_OK)
			rc = add_label(b, "trigger", PQgetvalue(res, i, R_TRIGGER), 0);
		if (rc == NSYNC_OK)
			rc = nsync__buf_addc(b, '}');
		if (rc == NSYNC_OK)
			rc = add_value(b, PQgetvalue(res, i, R_RUNS));
	}
	for (k = 0; k < sizeof(TOTALS) / sizeof(TOTALS[0]) && rc == NSYNC_OK; k++) {
		rc = family(b, TOTALS[k].name, TOTALS[k].help);
		if (rc == NSYNC_OK)
			rc = nsync__buf_adds(b, TOTALS[k].name);
		if (rc == NSYNC_OK)
			rc = add_value(b, total >= 0 ? PQgetvalue(res, total, TOTALS[k].col) : "0");
	}
	return rc;
}

/* The families of the registry, one series (or state set) per database. */
static nsync_rc render_databases(struct nsync_buf *b, const PGresult *res)
{
	int i, n = PQntuples(res);
	size_t k;
	nsync_rc rc;

	rc = family(b, LAST_SUCCESS,
		    "Unix time of the last successful sync of each enabled registered database; "
		    "absent until its first success");
	for (i = 0; i < n && rc == NSYNC_OK; i++)
		if (!PQgetisnull(res, i, D_SUCCESS))
			rc = add_database_series(b, LAST_SUCCESS, res, i, NULL,
						 PQgetvalue(res, i, D_SUCCESS));
	if (rc == NSYNC_OK)
		rc = family(b, LAST_STATUS,
			    "Outcome of the last finished run of each enabled registered database: "
			    "1 "
			    "for its status, 0 for the others (none: no run has finished)");
	for (i = 0; i < n && rc == NSYNC_OK; i++) {
		const char *status =
			PQgetisnull(res, i, D_STATUS) ? "none" : PQgetvalue(res, i, D_STATUS);
		int known = 0;

		for (k = 0; k < sizeof(STATES) / sizeof(STATES[0]) && rc == NSYNC_OK; k++) {
			int is = strcmp(status, STATES[k]) == 0;

			known |= is;
			rc = add_database_series(b, LAST_STATUS, res, i, STATES[k], is ? "1" : "0");
		}
		/* A status this code does not know yet is shown, not hidden. */
		if (!known && rc == NSYNC_OK)
			rc = add_database_series(b, LAST_STATUS, res, i, status, "1");
	}
	return rc;
}

static const char WEBHOOKS_SQL[] =
	"select backlog, processed, ignored, failed, coalesce(lag_p50_seconds, 0),"
	" coalesce(lag_p95_seconds, 0), coalesce(lag_max_seconds, 0),"
	" coalesce(oldest_pending_seconds, 0) from notion_webhook_stats";

/* The webhook series: name, help, label, label value, WEBHOOKS_SQL column.
 * Rows of one family follow each other. */
static const struct {
	const char *name, *help, *label, *value;
	int column;
} WEBHOOK_SERIES[] = {
	{"notion_sync_webhook_backlog", "Webhook events received and not processed yet", NULL, NULL,
	 0},
	{"notion_sync_webhook_oldest_pending_seconds",
	 "Age of the oldest webhook event waiting, 0 when none", NULL, NULL, 7},
	{"notion_sync_webhook_events", "Webhook events of the last hour by outcome", "outcome",
	 "processed", 1},
	{"notion_sync_webhook_events", NULL, "outcome", "ignored", 2},
	{"notion_sync_webhook_events", NULL, "outcome", "failed", 3},
	{"notion_sync_webhook_lag_seconds",
	 "Seconds from an event's receipt to its row written (last hour; quantile 1 is the "
	 "maximum)",
	 "quantile", "0.5", 4},
	{"notion_sync_webhook_lag_seconds", NULL, "quantile", "0.95", 5},
	{"notion_sync_webhook_lag_seconds", NULL, "quantile", "1", 6},
};

static nsync_rc render_webhooks(struct nsync_buf *b, const PGresult *res)
{
	nsync_rc rc = NSYNC_OK;
	size_t i;

	if (PQntuples(res) != 1)
		return NSYNC_OK;
	for (i = 0; rc == NSYNC_OK && i < sizeof(WEBHOOK_SERIES) / sizeof(WEBHOOK_SERIES[0]); i++) {
		const char *v = PQgetvalue(res, 0, WEBHOOK_SERIES[i].column);
		if (WEBHOOK_SERIES[i].help)
			rc = family(b, WEBHOOK_SERIES[i].name, WEBHOOK_SERIES[i].help);
		if (rc == NSYNC_OK && WEBHOOK_SERIES[i].label)
			rc = nsync__buf_printf(b, "%s{%s=\"%s\"} %s\n", WEBHOOK_SERIES[i].name,
					       WEBHOOK_SERIES[i].label, WEBHOOK_SERIES[i].value, v);
		else if (rc == NSYNC_OK)
			rc = nsync__buf_printf(b, "%s %s\n", WEBHOOK_SERIES[i].name, v);
	}
	return rc;
}

nsync_rc nsync__metrics_text(struct nsync_store *s, char **text, struct nsync_err *err)
{
	struct nsync_buf b;
	PGresult *runs = NULL, *dbs = NULL, *hooks = NULL;
	nsync_rc rc;

	*text = NULL;
	nsync__buf_init(&b, NSYNC_METRICS_MAX);
	runs = nsync__store_exec(s, "reading the run totals for /metrics", RUNS_SQL, 0, NULL, err);
	if (!runs) {
		rc = NSYNC_ERR_DB;
		goto out;
	}
	dbs = nsync__store_exec(s, "reading the databases for /metrics", DATABASES_SQL, 0, NULL,
				err);
	if (!dbs) {
		rc = NSYNC_ERR_DB;
		goto out;
	}
	hooks = nsync__store_exec(s, "reading the webhook figures for /metrics", WEBHOOKS_SQL, 0,
				  NULL, err);
	if (!hooks) {
		rc = NSYNC_ERR_DB;
		goto out;
	}
	if (PQnfields(runs) != R__COUNT || PQnfields(dbs) != D__COUNT) {
		rc = nsync__err(err, NSYNC_ERR_INTERNAL,
				"the /metrics statements returned %d and %d "
				"columns",
				PQnfields(runs), PQnfields(dbs));
		goto out;
	}
	rc = render_runs(&b, runs);
	if (rc == NSYNC_OK)
		rc = render_databases(&b, dbs);
	if (rc == NSYNC_OK)
		rc = render_webhooks(&b, hooks);
	if (rc != NSYNC_OK) {
		if (b.over_limit)
			rc = nsync__err(err, NSYNC_ERR_NOMEM, "the metrics text exceeds %u MiB",
					NSYNC_METRICS_MAX >> 20);
		else
			rc = nsync__err(err, NSYNC_ERR_NOMEM,
					"out of memory building the metrics text");
		goto out;
	}
	*text = nsync__buf_take(&b);
	if (!*text)
		rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory building the metrics text");
out:
	PQclear(runs);
	PQclear(dbs);
	PQclear(hooks);
	nsync__buf_free(&b);
	return rc;
}
