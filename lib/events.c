/*
 * events.c - processing stored webhook events (see events.h).
 *
 * One pass reads up to BATCH due events of the user, groups them by what
 * they are about (a page, or a database), does one action per group and
 * records the outcome on every event of the group: many events for one
 * page cost one fetch.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "credentials.h"
#include "error.h"
#include "events.h"
#include "hookproto.h"
#include "mapping.h"
#include "pageread.h"
#include "pagerows.h"
#include "queue.h"
#include "service.h"
#include "stats.h"
#include "sync.h"

/* Events read per pass. */
#define BATCH 200
/* Seconds an event waits when its database is being synced elsewhere. */
#define BUSY_WAIT 1
/* Tries before an event whose Notion requests keep failing is failed. */
#define MAX_TRIES 8
/* Seconds between the lane's checks for due events during a walk. */
#define LANE_EVERY 0.2
/* Pages read at once (NSYNC_PAGE_READERS in flight) before their rows are
 * written: a few, so the first row is written soon after its read. */
#define READ_AHEAD (2 * NSYNC_PAGE_READERS)

/* One group: the events (ids) about one page or one database. */
struct group {
	enum nsync_event_class cls;
	char target[37]; /* the page, or the database */
	char parent[37]; /* for pages: the database the events name, or "" */
	int parent_known;
	char ids[BATCH * 21]; /* "{1,2,...}" filled as events join */
	size_t ids_len;
	int tries;     /* most tries of its events */
	int is_source; /* target is a data source whose database the event did not name */
};

/* What came of one group. */
struct verdict {
	const char *status; /* processed, ignored, failed; NULL: wait (see delay) */
	char outcome[300];
	long run_id;
	int delay; /* seconds to wait before the next try */
};

static void verdict(struct verdict *v, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void verdict(struct verdict *v, const char *status, const char *fmt, ...)
{
	va_list ap;

	v->status = status;
	va_start(ap, fmt);
	vsnprintf(v->outcome, sizeof(v->outcome), fmt, ap);
	va_end(ap);
}

static nsync_rc record(struct nsync_service *svc, const struct group *g, const struct verdict *v,
		       struct nsync_err *err)
{
	char run[24], delay[24];
	const char *later[] = {g->ids, v->outcome, delay};
	const char *done[] = {g->ids, v->status, v->outcome, run};

	snprintf(run, sizeof(run), "%ld", v->run_id);
	snprintf(delay, sizeof(delay), "%d", v->delay);
	if (!v->status)
		return nsync__store_run(&svc->store, "deferring webhook events",
					"update notion_webhook_events set tries = tries + 1,"
					" outcome = $2, not_before = clock_timestamp() +"
					" make_interval(secs => $3::int) where id = "
					"any($1::bigint[])",
					3, later, err);
	return nsync__store_run(&svc->store, "recording webhook events",
				"update notion_webhook_events set status = $2, outcome = $3,"
				" tries = tries + 1, processed_at = clock_timestamp(),"
				" run_id = nullif($4::bigint, 0), not_before = null"
				" where id = any($1::bigint[])",
				4, done, err);
}

static int member_true(struct json_object *obj, const char *key)
{
	struct json_object *v;

	return obj && json_object_object_get_ex(obj, key, &v) &&
	       json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

/* A Notion failure: retried later, failed after MAX_TRIES. */
static void notion_trouble(struct verdict *v, const struct group *g, const struct nsync_err *e)
{
	if (g->tries + 1 >= MAX_TRIES) {
		verdict(v, "failed", "Notion kept failing: %.250s", e->msg);
		return;
	}
	verdict(v, NULL, "will retry: %.250s", e->msg);
	v->delay = 1 << (g->tries < 6 ? g->tries : 6);
}

/* The rows of g's page (up to 5 places) and the kind of the database its
 * events name (NULL: not registered, or not named). */
static nsync_rc page_lookup(struct nsync_service *svc, const char *user_id, const struct group *g,
			    struct nsync_row_place places[5], size_t *n_places,
			    const struct nsync_kind **kind, struct nsync_err *err)
{
	nsync_rc rc = nsync__page_rows(svc, user_id, g->target, places, n_places, err);

	*kind = NULL;
	if (rc == NSYNC_OK && g->parent_known)
		rc = nsync__registered_kind(svc, user_id, g->parent, kind, err);
	return rc;
}

/* The events show a parent nobody registered, and no row of this page
 * exists: nothing to read. */
static int nothing_to_read(const struct group *g, const struct nsync_kind *kind, size_t n_places)
{
	return g->parent_known && !kind && n_places == 0;
}

/* A page's events: read the page (or take read, when it was read ahead),
 * then write, move or remove its row. */
static nsync_rc handle_page(struct nsync_service *svc, const char *user_id,
			    const struct nsync_notion_ctx *ctx, const struct group *g,
			    struct nsync_page_read *read, struct verdict *v, struct nsync_err *err)
{
	const struct nsync_kind *kind = NULL;
	struct nsync_row_place places[5];
	struct nsync_query_page qp;
	struct nsync_stats stats;
	struct nsync_err nerr;
	struct nsync_notion_ctx c = *ctx;
	char database_id[37], source_id[37], first_error[256];
	struct json_object *page;
	size_t n_places = 0, i;
	long deleted = 0;
	nsync_rc rc;

	memset(&stats, 0, sizeof(stats));
	c.stats = &stats;
	rc = page_lookup(svc, user_id, g, places, &n_places, &kind, err);
	if (rc != NSYNC_OK)
		return rc;
	if (nothing_to_read(g, kind, n_places)) {
		verdict(v, "ignored", "not in a registered database%s%s%s",
			g->parent[0] ? " (parent " : "", g->parent, g->parent[0] ? ")" : "");
		return NSYNC_OK;
	}
	memset(&nerr, 0, sizeof(nerr));
	if (read) {
		/* Its text stays with read, freed after this. */
		rc = read->rc;
		qp = read->qp;
		memset(&read->qp, 0, sizeof(read->qp));
		nerr = read->err;
		nsync__stats_add(&stats, &read->stats);
	} else {
		rc = nsync__notion_get_page(svc->notion, &c, g->target, &qp, &nerr);
	}
	if (rc == NSYNC_ERR_NOT_FOUND) {
		nsync__query_page_clear(&qp);
		if (n_places == 0) {
			verdict(v, "ignored", "the page is not readable and has no row");
			return NSYNC_OK;
		}
		/* Gone, or no longer shared: delete only where the database
		 * itself is still readable with this token and still lists the
		 * row's data source (else access was lost: keep the row). */
		for (i = 0; i < n_places; i++) {
			struct nsync_database_info info;
			nsync_rc drc =
				nsync__notion_get_database(svc->notion, &c, places[i].database_id,
							   &info, &nerr);
			int listed = 0;
			size_t k;

			for (k = 0; drc == NSYNC_OK && k < info.n_sources; k++)
				listed |= !places[i].source_id[0] ||
					  strcmp(info.sources[k], places[i].source_id) == 0;
			nsync__database_info_clear(&info);
			if (listed) {
				rc = nsync__page_row_delete(svc, user_id, g->target, &places[i],
							    &deleted, err);
				if (rc == NSYNC_ERR_BUSY)
					goto busy;
				if (rc != NSYNC_OK)
					return rc;
			} else if (drc == NSYNC_ERR_NOTION_AUTH) {
				verdict(v, "failed", "Notion rejected the token: %.250s", nerr.msg);
				return NSYNC_ERR_NOTION_AUTH;
			}
		}
		if (deleted)
			verdict(v, "processed",
				"row deleted: the page is gone and its database is readable");
		else
			verdict(v, "processed",
				"row kept: the page is not readable, and neither is its data "
				"source in its database");
		return NSYNC_OK;
	}
	if (rc == NSYNC_ERR_NOTION_AUTH) {
		nsync__query_page_clear(&qp);
		verdict(v, "failed", "Notion rejected the token: %.250s", nerr.msg);
		return NSYNC_ERR_NOTION_AUTH;
	}
	if (rc == NSYNC_ERR_NOMEM) {
		nsync__query_page_clear(&qp);
		if (err)
			*err = nerr;
		return rc;
	}
	if (rc != NSYNC_OK) {
		nsync__query_page_clear(&qp);
		notion_trouble(v, g, &nerr);
		return NSYNC_OK;
	}
	page = json_object_array_get_idx(qp.results, 0);
	if (member_true(page, "in_trash") || member_true(page, "archived")) {
		rc = nsync__page_rows_remove(svc, user_id, g->target, places, n_places, "",
					     &deleted, err);
		nsync__query_page_clear(&qp);
		if (rc == NSYNC_ERR_BUSY)
			goto busy;
		if (rc == NSYNC_OK)
			verdict(v, "processed",
				deleted ? "row deleted: the page is in the trash"
					: "the page is in the trash and had no row");
		return rc;
	}
	nsync__page_parent(page, database_id, source_id);
	rc = nsync__registered_kind(svc, user_id, database_id, &kind, err);
	if (rc == NSYNC_OK)
		rc = nsync__page_rows_remove(svc, user_id, g->target, places, n_places,
					     kind ? database_id : "", &deleted, err);
	if (rc == NSYNC_OK && !kind) {
		nsync__query_page_clear(&qp);
		verdict(v, deleted ? "processed" : "ignored",
			deleted ? "row removed: the page moved out of its registered database"
				: "the page is not in a registered database");
		return NSYNC_OK;
	}
	if (rc == NSYNC_OK) {
		first_error[0] = '\0';
		rc = nsync__page_write(svc, user_id, &c, kind, database_id, source_id, &qp, &stats,
				       first_error, sizeof(first_error), &nerr);
		if (rc == NSYNC_ERR_DB && err)
			*err = nerr;
	}
	nsync__query_page_clear(&qp);
	if (rc == NSYNC_ERR_BUSY)
		goto busy;
	if (rc == NSYNC_ERR_NOTION_AUTH) {
		verdict(v, "failed", "Notion rejected the token: %.250s", nerr.msg);
		return rc;
	}
	if (rc == NSYNC_ERR_NOTION) {
		notion_trouble(v, g, &nerr);
		return NSYNC_OK;
	}
	if (rc != NSYNC_OK && rc != NSYNC_ERR_DB) {
		verdict(v, "failed", "%.250s", nerr.msg);
		return NSYNC_OK;
	}
	if (rc != NSYNC_OK)
		return rc;
	if (stats.page_errors)
		verdict(v, "failed", "the page could not be written: %.250s", first_error);
	else
		verdict(v, "processed",
			stats.inserted  ? "row inserted into %s"
			: stats.updated ? "row updated in %s"
					: "row already current in %s",
			kind->table);
	return NSYNC_OK;
busy:
	nsync__err_clear(err);
	verdict(v, NULL, "waiting: the database is being synced by another session");
	v->delay = BUSY_WAIT;
	return NSYNC_OK;
}

/* A database's events: queue a sync of it (full for schema changes). */
static nsync_rc handle_database(struct nsync_service *svc, const char *user_id,
				const struct group *g, struct verdict *v, struct nsync_err *err)
{
	const struct nsync_kind *kind;
	char database_id[37] = "";
	nsync_rc rc;

	if (g->cls == NSYNC_EVENT_KEPT) {
		verdict(v, "processed",
			"nothing deleted: rows of a deleted data source or database are kept "
			"(notion-sync prune-orphans removes them)");
		return NSYNC_OK;
	}
	if (!g->target[0]) {
		verdict(v, "ignored", "the event names no database");
		return NSYNC_OK;
	}
	snprintf(database_id, sizeof(database_id), "%s", g->target);
	if (g->is_source) {
		/* The data source's database, as the last walk recorded it. */
		const char *params[] = {user_id, g->target};
		PGresult *res = nsync__store_exec(&svc->store, "finding a data source's database",
						  "select database_id::text from notion_sync_state"
						  " where user_id = $1::uuid and data_source_id ="
						  " $2::uuid limit 1",
						  2, params, err);
		if (!res)
			return NSYNC_ERR_DB;
		snprintf(database_id, sizeof(database_id), "%s",
			 PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
		PQclear(res);
		if (!database_id[0]) {
			verdict(v, "ignored", "data source %s is in no registered database",
				g->target);
			return NSYNC_OK;
		}
	}
	rc = nsync__registered_kind(svc, user_id, database_id, &kind, err);
	if (rc != NSYNC_OK)
		return rc;
	if (!kind) {
		verdict(v, "ignored", "database %s is not registered", database_id);
		return NSYNC_OK;
	}
	rc = nsync__queue_add(&svc->store, user_id, database_id, kind->name, "webhook",
			      g->cls == NSYNC_EVENT_FULL, &v->run_id, err);
	if (rc != NSYNC_OK)
		return rc;
	verdict(v, "processed",
		g->cls == NSYNC_EVENT_FULL ? "full walk queued (the schema changed)"
					   : "incremental sync queued");
	return NSYNC_OK;
}

/* Put event row r of res into its group (creating it). */
static struct group *join_group(struct group *groups, size_t *n, PGresult *res, int r)
{
	const char *type = PQgetvalue(res, r, 1);
	enum nsync_event_class cls = nsync__event_class(type);
	const char *entity = PQgetvalue(res, r, 2), *parent = PQgetvalue(res, r, 3);
	const char *parent_type = PQgetvalue(res, r, 4);
	char target[37] = "";
	struct group *g = NULL;
	size_t i;

	if (cls == NSYNC_EVENT_PAGE)
		snprintf(target, sizeof(target), "%s", entity);
	else if (strncmp(type, "database.", 9) == 0)
		snprintf(target, sizeof(target), "%s", entity);
	else if (strcmp(parent_type, "database") == 0)
		snprintf(target, sizeof(target), "%s", parent); /* a data source's database */
	else
		snprintf(target, sizeof(target), "%s", entity); /* resolved by the sync state */
	for (i = 0; i < *n; i++)
		if (groups[i].cls == cls && strcmp(groups[i].target, target) == 0)
			g = &groups[i];
	if (!g) {
		g = &groups[(*n)++];
		memset(g, 0, sizeof(*g));
		g->cls = cls;
		snprintf(g->target, sizeof(g->target), "%s", target);
		g->is_source = cls != NSYNC_EVENT_PAGE && strncmp(type, "database.", 9) != 0 &&
			       strcmp(parent_type, "database") != 0;
		g->ids[0] = '{';
		g->ids_len = 1;
		/* The newest event's parent counts: a page that moved names its
		 * new database. Rows are ordered by id. */
	}
	if (cls == NSYNC_EVENT_PAGE) {
		g->parent_known =
			strcmp(parent_type, "database") == 0 || strcmp(parent_type, "page") == 0 ||
			strcmp(parent_type, "workspace") == 0 || strcmp(parent_type, "space") == 0;
		snprintf(g->parent, sizeof(g->parent), "%s",
			 strcmp(parent_type, "database") == 0 ? parent : "");
		/* An event without a parent means: read the page to know. */
	}
	if (atoi(PQgetvalue(res, r, 5)) > g->tries)
		g->tries = atoi(PQgetvalue(res, r, 5));
	g->ids_len += (size_t)snprintf(g->ids + g->ids_len, sizeof(g->ids) - g->ids_len, "%s%s",
				       g->ids_len > 1 ? "," : "", PQgetvalue(res, r, 0));
	return g;
}

/* Handle one group (its page read ahead as read, or NULL) and record
 * the outcome on its events, counting them in *handled (may be NULL). */
static nsync_rc handle_group(struct nsync_service *svc, const char *user_id,
			     const struct nsync_notion_ctx *ctx, struct group *g,
			     struct nsync_page_read *read, long *handled, struct nsync_err *err)
{
	struct verdict v;
	nsync_rc hrc, rc;

	memset(&v, 0, sizeof(v));
	g->ids[g->ids_len++] = '}';
	g->ids[g->ids_len] = '\0';
	if (g->cls == NSYNC_EVENT_PAGE)
		hrc = handle_page(svc, user_id, ctx, g, read, &v, err);
	else
		hrc = handle_database(svc, user_id, g, &v, err);
	if (hrc != NSYNC_OK && hrc != NSYNC_ERR_NOTION_AUTH)
		return hrc;
	if (!v.status && !v.outcome[0])
		verdict(&v, "failed", "no outcome");
	rc = record(svc, g, &v, err);
	if (rc == NSYNC_OK && v.status && handled) {
		size_t k;
		for (k = 0; k < g->ids_len; k++)
			*handled += g->ids[k] == ',';
		(*handled)++;
	}
	if (rc == NSYNC_OK && hrc == NSYNC_ERR_NOTION_AUTH)
		rc = nsync__err(err, NSYNC_ERR_NOTION_AUTH, "%s", v.outcome);
	return rc;
}

/* Read the n pages of reads at once, on svc's clients (the extra ones
 * made on first use; without them, fewer at once). */
static nsync_rc read_pages(struct nsync_service *svc, const struct nsync_notion_ctx *ctx,
			   struct nsync_page_read *reads, size_t n, struct nsync_err *err)
{
	struct nsync_notion *clients[NSYNC_PAGE_READERS];
	size_t i, have = 1;

	(void)err;
	clients[0] = svc->notion;
	for (i = 0; i < NSYNC_PAGE_READERS - 1 && have < n; i++) {
		if (!svc->readers[i])
			svc->readers[i] = nsync__notion_new(&svc->cfg, NULL);
		if (svc->readers[i])
			clients[have++] = svc->readers[i];
	}
	nsync__pages_read(clients, have, ctx, reads, n);
	return NSYNC_OK;
}

nsync_rc nsync__events_process(struct nsync_service *svc, const char *user_id, const char *token,
			       struct nsync_pacer *pacer, long *handled, struct nsync_err *err)
{
	const char *params[] = {user_id};
	struct nsync_notion_ctx ctx;
	struct group *groups;
	nsync_rc rc = NSYNC_OK;
	int pass;

	if (handled)
		*handled = 0;
	groups = malloc(BATCH * sizeof(*groups));
	if (!groups)
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
	memset(&ctx, 0, sizeof(ctx));
	ctx.token = token;
	ctx.pacer = pacer;
	/* Bounded: events arriving meanwhile wait for the next call. */
	for (pass = 0; pass < 20 && rc == NSYNC_OK; pass++) {
		PGresult *res;
		size_t n = 0, i;
		int r, count;

		res = nsync__store_exec(
			&svc->store, "reading webhook events",
			"select id, type, coalesce(entity_id::text, ''), coalesce(parent_id::text, "
			"''),"
			" coalesce(parent_type, ''), tries from notion_webhook_events"
			" where user_id = $1::uuid and status = 'received' and (not_before is null"
			" or not_before <= clock_timestamp()) order by id limit 200",
			1, params, err);
		if (!res) {
			rc = NSYNC_ERR_DB;
			break;
		}
		count = PQntuples(res);
		for (r = 0; r < count; r++)
			join_group(groups, &n, res, r);
		PQclear(res);
		if (count == 0)
			break;
		for (i = 0; i < n && rc == NSYNC_OK;) {
			struct nsync_page_read reads[READ_AHEAD];
			int read_at[READ_AHEAD * 2];
			size_t n_reads = 0, end, k;

			/* The next groups, with the pages they will read read
			 * together; then each handled in order. */
			memset(reads, 0, sizeof(reads));
			for (end = i; end < n && end - i < READ_AHEAD * 2 && n_reads < READ_AHEAD &&
				      rc == NSYNC_OK;
			     end++) {
				struct nsync_row_place places[5];
				const struct nsync_kind *kind;
				size_t n_places = 0;

				read_at[end - i] = -1;
				if (groups[end].cls != NSYNC_EVENT_PAGE)
					continue;
				rc = page_lookup(svc, user_id, &groups[end], places, &n_places,
						 &kind, err);
				if (rc == NSYNC_OK &&
				    !nothing_to_read(&groups[end], kind, n_places)) {
					read_at[end - i] = (int)n_reads;
					snprintf(reads[n_reads++].page_id, 37, "%s",
						 groups[end].target);
				}
			}
			if (rc == NSYNC_OK && n_reads)
				rc = read_pages(svc, &ctx, reads, n_reads, err);
			for (k = i; k < end && rc == NSYNC_OK; k++)
				rc = handle_group(svc, user_id, &ctx, &groups[k],
						  read_at[k - i] >= 0 ? &reads[read_at[k - i]]
								      : NULL,
						  handled, err);
			for (k = 0; k < n_reads; k++)
				nsync__page_read_clear(&reads[k]);
			i = end;
		}
		if (count < BATCH)
			break;
	}
	free(groups);
	return rc;
}

nsync_rc nsync__events_due(struct nsync_store *store, const char *user_id, long *due,
			   struct nsync_err *err)
{
	const char *params[] = {user_id};

	return nsync__store_long(store, "checking for webhook events",
				 "select count(*) from (select 1 from notion_webhook_events where"
				 " user_id = $1::uuid and status = 'received' and (not_before is"
				 " null or not_before <= clock_timestamp()) limit 1) e",
				 1, params, due, err);
}

nsync_rc nsync__events_interject(void *data, int *busy, struct nsync_err *err)
{
	struct nsync_event_lane *lane = data;
	struct nsync_store *store = &lane->svc->store;
	double now = nsync__monotonic();
	long due = 0, handled = 0;
	nsync_rc rc;

	(void)err;
	*busy = lane->busy;
	if (now < lane->next_check)
		return NSYNC_OK;
	lane->next_check = now + LANE_EVERY;
	rc = nsync__events_due(store, lane->user_id, &due, NULL);
	*busy = lane->busy = rc == NSYNC_OK && due > 0;
	if (rc == NSYNC_OK && due)
		rc = nsync__events_process(lane->svc, lane->user_id, lane->token, lane->pacer,
					   &handled, NULL);
	lane->handled += handled;
	/* The lane never stops the walk: a rejected token fails the events,
	 * and a lost connection (with the locks it held) is the heartbeat's to
	 * find and prove, which it does before anything more is written. */
	return NSYNC_OK;
}

nsync_rc nsync__events_record_workspace(struct nsync_service *svc, const char *user_id,
					const struct nsync_notion_ctx *ctx, struct nsync_err *err)
{
	const char *params[2] = {user_id, NULL};
	char workspace[37];
	nsync_rc rc;

	rc = nsync__notion_workspace(svc->notion, ctx, workspace, err);
	if (rc != NSYNC_OK)
		return rc;
	params[1] = workspace;
	return nsync__store_run(&svc->store, "recording a user's workspace",
				"update user_settings set notion_workspace_id = $2::uuid where"
				" user_id = $1::uuid",
				2, params, err);
}
