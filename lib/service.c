/*
 * service.c - what a front end calls: turn a sync request into the list of
 * (user, database) pairs it covers, sync each under its advisory lock with
 * a run record, and answer in the JSON shape of the design guide. Also the
 * small administrative calls (migrate, set a token, register a database).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "buf.h"
#include "error.h"
#include "http.h"
#include "mapping.h"
#include "metrics.h"
#include "notion.h"
#include "queue.h"
#include "store.h"
#include "sync.h"
#include "syncstate.h"

struct nsync_service {
	struct nsync_config cfg;        /* deep copy of the caller's */
	struct nsync_store store;
	struct nsync_notion *notion;
	struct nsync_pacer *pacers;     /* one per token seen, by hash */
	size_t n_pacers;
	struct nsync_stats last;        /* totals of the last run */
};

static char *dup_or_null(const char *s, int *failed)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*failed = 1;
	return d;
}

struct nsync_service *nsync_service_new(const struct nsync_config *cfg, struct nsync_err *err)
{
	struct nsync_service *svc = calloc(1, sizeof(*svc));
	int failed = 0;

	if (!svc) {
		nsync__err(err, NSYNC_ERR_NOMEM, "out of memory creating the service");
		return NULL;
	}
	svc->cfg = *cfg;
	svc->cfg.database_url = dup_or_null(cfg->database_url, &failed);
	svc->cfg.notion_api_url = dup_or_null(cfg->notion_api_url, &failed);
	svc->cfg.notion_version = dup_or_null(cfg->notion_version, &failed);
	if (failed || !svc->cfg.notion_api_url || !svc->cfg.notion_version) {
		nsync__err(err, failed ? NSYNC_ERR_NOMEM : NSYNC_ERR_CONFIG,
			   "the configuration needs a Notion URL and version");
		goto fail;
	}
	if (svc->cfg.batch_size < 1 || svc->cfg.max_attempts < 1) {
		nsync__err(err, NSYNC_ERR_CONFIG, "batch size and attempts must be at least 1");
		goto fail;
	}
	if (nsync__store_init(&svc->store, svc->cfg.database_url, err) != NSYNC_OK)
		goto fail;
	svc->store.log = svc->cfg.log;
	svc->store.log_data = svc->cfg.log_data;
	svc->notion = nsync__notion_new(&svc->cfg, err);
	if (!svc->notion)
		goto fail;
	return svc;
fail:
	nsync_service_free(svc);
	return NULL;
}

void nsync_service_free(struct nsync_service *svc)
{
	if (!svc)
		return;
	nsync__notion_free(svc->notion);
	nsync__store_close(&svc->store);
	free(svc->pacers);
	nsync__secret_free(svc->cfg.database_url);
	svc->cfg.database_url = NULL;
	nsync_config_clear(&svc->cfg);
	free(svc);
}

nsync_rc nsync_service_ping(struct nsync_service *svc, struct nsync_err *err)
{
	return nsync__store_refresh(&svc->store, err);
}

const struct nsync_stats *nsync_service_last_stats(const struct nsync_service *svc)
{
	return &svc->last;
}

nsync_rc nsync_migrate(struct nsync_service *svc, const char *sql_dir, int *applied,
		       struct nsync_err *err)
{
	if (nsync__store_ready(&svc->store, err) != NSYNC_OK)
		return NSYNC_ERR_DB;
	return nsync__store_migrate(&svc->store, sql_dir, applied, err);
}

nsync_rc nsync_user_set_token(struct nsync_service *svc, const char *user_id, const char *token,
			      bool oauth, struct nsync_err *err)
{
	char id[37];

	if (nsync_normalize_id(user_id, id, err) != NSYNC_OK)
		return nsync__err_prefix(err, "user id");
	if (!token || !*token)
		return nsync__err(err, NSYNC_ERR_ARG, "the token is empty");
	return nsync__store_set_token(&svc->store, id, token, oauth, err);
}

nsync_rc nsync_database_register(struct nsync_service *svc, const char *user_id,
				 const char *database_id, const char *database_name,
				 struct nsync_err *err)
{
	char uid[37], did[37];
	const struct nsync_kind *kind = nsync__kind_find(database_name);

	if (nsync_normalize_id(user_id, uid, err) != NSYNC_OK)
		return nsync__err_prefix(err, "user id");
	if (nsync_normalize_id(database_id, did, err) != NSYNC_OK)
		return nsync__err_prefix(err, "database id");
	if (!kind)
		return nsync__err(err, NSYNC_ERR_ARG, "database name must be one of %s",
				  nsync__kind_choices());
	return nsync__store_register(&svc->store, uid, did, kind->name, NULL, err);
}

/* The pacer of a token, created on first use. NULL only when out of
 * memory, in which case the request goes unpaced. */
static struct nsync_pacer *pacer_for(struct nsync_service *svc, const char *token)
{
	unsigned long h = nsync__token_hash(token);
	struct nsync_pacer *grown;
	size_t i;

	for (i = 0; i < svc->n_pacers; i++)
		if (svc->pacers[i].token_hash == h)
			return &svc->pacers[i];
	grown = realloc(svc->pacers, (svc->n_pacers + 1) * sizeof(*grown));
	if (!grown)
		return NULL;
	svc->pacers = grown;
	svc->pacers[svc->n_pacers].token_hash = h;
	svc->pacers[svc->n_pacers].next_at = 0;
	return &svc->pacers[svc->n_pacers++];
}

static void add_stats(struct nsync_stats *to, const struct nsync_stats *from)
{
	to->pages_seen += from->pages_seen;
	to->inserted += from->inserted;
	to->updated += from->updated;
	to->unchanged += from->unchanged;
	to->page_errors += from->page_errors;
	to->notion_requests += from->notion_requests;
	to->retries += from->retries;
	to->wait_seconds += from->wait_seconds;
	to->pacing_seconds += from->pacing_seconds;
	to->deleted += from->deleted;
	to->property_requests += from->property_requests;
	to->orphaned += from->orphaned;
	to->connections += from->connections;
}

/* The outcome of one database sync, for the log and the JSON answer. */
struct outcome {
	nsync_rc rc;
	struct nsync_err err;
	long run_id;
	const char *name;          /* kind name, or the caller's hint */
	const char *table;         /* the sync table written, or NULL */
	const char *mode;          /* "full", "incremental", or NULL before the walk */
	struct nsync_stats stats;
	double seconds;
};

static void log_outcome(struct nsync_service *svc, const char *user_id, const char *database_id,
			const struct outcome *o)
{
	char line[1024];

	if (!svc->cfg.log)
		return;
	snprintf(line, sizeof(line),
		 "sync run=%ld user=%s database=%s name=\"%s\" mode=%s status=%s pages=%ld "
		 "inserted=%ld updated=%ld unchanged=%ld deleted=%ld orphaned=%ld page_errors=%ld "
		 "requests=%ld property_requests=%ld retries=%ld connections=%ld waited=%.1fs "
		 "duration_ms=%.0f%s%s",
		 o->run_id, user_id, database_id, o->name ? o->name : "", o->mode ? o->mode : "-",
		 o->rc == NSYNC_ERR_BUSY ? "busy" : o->rc ? "error" : "success",
		 o->stats.pages_seen, o->stats.inserted, o->stats.updated, o->stats.unchanged,
		 o->stats.deleted, o->stats.orphaned, o->stats.page_errors, o->stats.notion_requests,
		 o->stats.property_requests, o->stats.retries, o->stats.connections,
		 o->stats.wait_seconds, o->seconds * 1000, o->rc ? " error=" : "",
		 o->rc ? o->err.msg : "");
	svc->cfg.log(svc->cfg.log_data, line);
}

/* What a walk's heartbeat needs (see nsync_sync_job.heartbeat). */
struct beat_target {
	struct nsync_store *store;
	long run_id;
};

static nsync_rc heartbeat(void *data, struct nsync_err *err)
{
	struct beat_target *t = data;

	return nsync__store_heartbeat(t->store, t->run_id, err);
}

/* The warning of a successful run: page errors, and rows kept because
 * their data source is no longer listed. "" when there is none. */
static void run_warning(const struct outcome *o, const char *user_id, const char *database_id,
			const char *first_page_error, char *out, size_t size)
{
	size_t used = 0;

	out[0] = '\0';
	if (o->stats.page_errors)
		used = (size_t)snprintf(out, size, "%ld page error%s; first: %s", o->stats.page_errors,
					o->stats.page_errors == 1 ? "" : "s", first_page_error);
	if (o->stats.orphaned && used < size)
		snprintf(out + used, size - used,
			 "%s%ld orphaned row%s kept: %s no longer listed by database %s (the "
			 "integration may have lost access to them); `notion-sync prune-orphans "
			 "--user %s --database %s` removes them",
			 used ? "; " : "", o->stats.orphaned, o->stats.orphaned == 1 ? "" : "s",
			 o->stats.orphaned == 1 ? "its data source is" : "their data sources are",
			 database_id, user_id, database_id);
}

/* Sync one database of one user: lock, record the run, resolve its kind
 * (by the caller's name, else by title; a title that is none of the four
 * kinds goes to the generic table), walk it, record the outcome. */
static void sync_one(struct nsync_service *svc, const char *user_id, const char *database_id,
		     const char *name_hint, const char *trigger, bool full, long queued_run,
		     const char *worker, struct outcome *o)
{
	struct nsync_database_info info;
	struct nsync_sync_job job;
	struct beat_target beat;
	const struct nsync_kind *kind = NULL;
	char *token = NULL;
	double start = nsync__monotonic();
	int locked = 0;

	memset(o, 0, sizeof(*o));
	memset(&info, 0, sizeof(info));
	o->name = name_hint && *name_hint ? name_hint : NULL;
	if (o->name && !(kind = nsync__kind_find(o->name))) {
		o->rc = nsync__err(&o->err, NSYNC_ERR_ARG, "database_name \"%s\" is not one of %s",
				   o->name, nsync__kind_choices());
		o->name = NULL;
		goto out;
	}
	o->rc = nsync__store_user_token(&svc->store, user_id, &token, &o->err);
	if (o->rc != NSYNC_OK)
		goto out;
	o->rc = nsync__store_lock(&svc->store, user_id, database_id, &o->err);
	if (o->rc != NSYNC_OK)
		goto out;
	locked = 1;
	o->run_id = queued_run;
	o->rc = nsync__store_run_begin(&svc->store, user_id, database_id, kind ? kind->name : "",
				       trigger, worker, &o->run_id, &o->err);
	if (o->rc != NSYNC_OK) {
		o->run_id = 0;
		goto out;
	}
	/* From here on a reconnect must find this row still running. */
	svc->store.guard_run_id = o->run_id;
	beat.store = &svc->store;
	beat.run_id = o->run_id;

	memset(&job, 0, sizeof(job));
	job.nctx.token = token;
	job.nctx.pacer = pacer_for(svc, token);
	job.nctx.stats = &o->stats;
	o->rc = nsync__notion_get_database(svc->notion, &job.nctx, database_id, &info, &o->err);
	if (o->rc == NSYNC_ERR_NOT_FOUND)
		nsync__err_prefix(&o->err, "database %s was not found or is not shared with the "
				  "integration", database_id);
	if (o->rc == NSYNC_OK && !kind && !(kind = nsync__kind_for_title(info.title)))
		kind = nsync__kind_generic();
	if (kind) {
		o->name = kind->name;
		o->table = kind->table;
	}
	if (o->rc == NSYNC_OK)
		o->rc = nsync__store_register(&svc->store, user_id, database_id, kind->name, info.title,
					      &o->err);
	if (o->rc == NSYNC_OK) {
		job.cfg = &svc->cfg;
		job.store = &svc->store;
		job.notion = svc->notion;
		job.kind = kind;
		job.user_id = user_id;
		job.database_id = database_id;
		job.info = &info;
		job.full_requested = full;
		job.heartbeat = heartbeat;
		job.heartbeat_data = &beat;
		o->rc = nsync__sync_walk(&job, &o->err);
		o->mode = job.mode;
		if (o->rc == NSYNC_OK)
			run_warning(o, user_id, database_id, job.first_page_error, o->err.msg,
				    sizeof(o->err.msg));
	}
	if (svc->store.locks_lost) {
		/* Another sync may own this database now: close our row only if
		 * nobody has, and write nothing else. */
		if (o->rc == NSYNC_OK)
			o->rc = nsync__err(&o->err, NSYNC_ERR_DB, "the lock of this sync was lost");
		nsync__store_run_abandon(&svc->store, o->run_id,
					 "the connection to PostgreSQL was lost during the sync and its "
					 "lock could not be re-taken; this run stopped without writing more");
	} else {
		struct nsync_err finish_err;
		memset(&finish_err, 0, sizeof(finish_err));
		/* Record even a failed run; a lost connection is reported by rc already. */
		if (nsync__store_run_finish(&svc->store, o->run_id, &o->stats,
					    o->rc == NSYNC_OK ? "success" : "error", o->mode, o->name,
					    o->err.msg[0] ? o->err.msg : NULL, &finish_err) != NSYNC_OK &&
		    o->rc == NSYNC_OK) {
			o->rc = finish_err.code;
			o->err = finish_err;
		}
	}
out:
	/* A queued run that never started must not stay queued: a busy
	 * database means another sync covers it. */
	if (queued_run > 0 && !o->run_id) {
		struct nsync_err finish_err;
		memset(&finish_err, 0, sizeof(finish_err));
		nsync__store_run_finish(&svc->store, queued_run, &o->stats,
					o->rc == NSYNC_ERR_BUSY ? "skipped" : "error", NULL, o->name,
					o->err.msg,
					&finish_err);
		o->run_id = queued_run;
	}
	/* The row proves this run's lock only while it runs. */
	svc->store.guard_run_id = 0;
	if (locked)
		nsync__store_unlock(&svc->store, user_id, database_id);
	nsync__secret_free(token);
	nsync__database_info_clear(&info);
	o->seconds = nsync__monotonic() - start;
	add_stats(&svc->last, &o->stats);
	log_outcome(svc, user_id, database_id, o);
}

/* --- JSON answers ------------------------------------------------------ */

static nsync_rc finish_json(struct json_object *obj, char **out, struct nsync_err *err)
{
	const char *text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
							       JSON_C_TO_STRING_NOSLASHESCAPE);

	*out = text ? strdup(text) : NULL;
	json_object_put(obj);
	if (!*out)
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory building the answer");
	return NSYNC_OK;
}

static void put_counts(struct json_object *obj, const struct outcome *o)
{
	json_object_object_add(obj, "synced_count",
			       json_object_new_int64(o->stats.inserted + o->stats.updated));
	json_object_object_add(obj, "run_id", o->run_id ? json_object_new_int64(o->run_id) : NULL);
	json_object_object_add(obj, "inserted", json_object_new_int64(o->stats.inserted));
	json_object_object_add(obj, "updated", json_object_new_int64(o->stats.updated));
	json_object_object_add(obj, "unchanged", json_object_new_int64(o->stats.unchanged));
	json_object_object_add(obj, "deleted", json_object_new_int64(o->stats.deleted));
	json_object_object_add(obj, "orphaned", json_object_new_int64(o->stats.orphaned));
	json_object_object_add(obj, "pages_seen", json_object_new_int64(o->stats.pages_seen));
	json_object_object_add(obj, "page_errors", json_object_new_int64(o->stats.page_errors));
	json_object_object_add(obj, "notion_requests", json_object_new_int64(o->stats.notion_requests));
	json_object_object_add(obj, "property_requests",
			       json_object_new_int64(o->stats.property_requests));
	json_object_object_add(obj, "mode", o->mode ? json_object_new_string(o->mode) : NULL);
	json_object_object_add(obj, "table", o->table ? json_object_new_string(o->table) : NULL);
	json_object_object_add(obj, "retries", json_object_new_int64(o->stats.retries));
	json_object_object_add(obj, "connections", json_object_new_int64(o->stats.connections));
	json_object_object_add(obj, "duration_ms", json_object_new_int64((int64_t)(o->seconds * 1000)));
}

/* The "error" member of answers: {"code","message"[,"run_id"]}. */
static struct json_object *error_member(const char *code_name, const char *message, long run_id)
{
	struct json_object *e = json_object_new_object();

	json_object_object_add(e, "code", json_object_new_string(code_name));
	json_object_object_add(e, "message", json_object_new_string(message));
	if (run_id > 0)
		json_object_object_add(e, "run_id", json_object_new_int64(run_id));
	return e;
}

static struct json_object *error_object(const struct nsync_err *err)
{
	return error_member(nsync_rc_name(err->code), err->msg,
			    err->code == NSYNC_ERR_BUSY ? err->run_id : 0);
}

char *nsync_error_json(const char *code_name, const char *message, long run_id)
{
	struct json_object *obj = json_object_new_object();
	char *out = NULL;

	json_object_object_add(obj, "success", json_object_new_boolean(0));
	json_object_object_add(obj, "error", error_member(code_name, message, run_id));
	finish_json(obj, &out, NULL);
	return out;
}

/* One entry of "results". */
static struct json_object *result_entry(const char *user_id, const char *database_id,
					const struct outcome *o)
{
	struct json_object *r = json_object_new_object();

	json_object_object_add(r, "database_name", o->name ? json_object_new_string(o->name) : NULL);
	json_object_object_add(r, "database_id", json_object_new_string(database_id));
	json_object_object_add(r, "user_id", json_object_new_string(user_id));
	json_object_object_add(r, "status",
			       json_object_new_string(o->rc == NSYNC_OK ? "success" : "error"));
	put_counts(r, o);
	if (o->rc != NSYNC_OK)
		json_object_object_add(r, "error", error_object(&o->err));
	else if (o->err.msg[0])
		json_object_object_add(r, "warning", json_object_new_string(o->err.msg));
	return r;
}


/* --- discovery --------------------------------------------------------- */

/* Most distinct databases remembered per kind title (more are counted). */
#define MAX_CANDIDATES 8
/* Most databases one kind's search may name before discovery stops
 * reading them: each costs a request. */
#define MAX_LOOKUPS 50

/* The databases whose title is one kind's, as discovery found them. */
struct candidates {
	const struct nsync_kind *kind;
	size_t n;                           /* distinct databases with that title */
	char ids[MAX_CANDIDATES][37];
	size_t n_empty;                     /* of those, listing no readable data source */
	char empty[MAX_CANDIDATES][37];
};

struct discovery {
	struct candidates kinds[4];
	size_t n_kinds;
};

/* The database ids one search named, without repeats. */
struct search_hits {
	const struct nsync_kind *kind;
	int legacy;
	size_t n;
	char ids[MAX_LOOKUPS][37];
};

/* One search result: a data source (its database is parent.database_id;
 * its own name does not matter), or under 2022-06-28 a database, whose
 * title can be compared at once. */
static nsync_rc search_hit(void *data, struct json_object *result, struct nsync_err *err)
{
	struct search_hits *h = data;
	struct json_object *parent, *v;
	const char *db = NULL;
	char id[37];
	size_t i;

	if (h->legacy) {
		struct json_object *title = NULL;
		struct nsync_buf plain;
		int match;

		json_object_object_get_ex(result, "title", &title);
		nsync__buf_init(&plain, 1 << 16);
		if (nsync__rich_text_plain(&plain, title) != NSYNC_OK && !plain.over_limit) {
			nsync__buf_free(&plain);
			return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
		}
		match = nsync__kind_for_title(plain.data ? plain.data : "") == h->kind;
		nsync__buf_free(&plain);
		if (!match)
			return NSYNC_OK;
		if (json_object_object_get_ex(result, "id", &v) && json_object_is_type(v, json_type_string))
			db = json_object_get_string(v);
	} else if (json_object_object_get_ex(result, "parent", &parent) &&
		   json_object_object_get_ex(parent, "database_id", &v) &&
		   json_object_is_type(v, json_type_string)) {
		db = json_object_get_string(v);
	}
	if (!db || nsync_normalize_id(db, id, NULL) != NSYNC_OK)
		return NSYNC_OK;
	for (i = 0; i < h->n && strcmp(h->ids[i], id) != 0; i++)
		;
	if (i == h->n && h->n < MAX_LOOKUPS)
		memcpy(h->ids[h->n++], id, sizeof(id));
	return NSYNC_OK;
}

static void remember(char (*list)[37], size_t *n, const char *id)
{
	if (*n < MAX_CANDIDATES)
		memcpy(list[*n], id, 37);
	(*n)++;
}

/* Find the databases titled kind->name: search (which matches database
 * titles), then read each database named, since under 2025-09-03 results
 * are data sources whose names may differ from their database's title. */
static nsync_rc find_kind(struct nsync_service *svc, const struct nsync_notion_ctx *ctx,
			  const struct nsync_kind *kind, struct candidates *c, struct nsync_err *err)
{
	struct search_hits *hits = calloc(1, sizeof(*hits));
	size_t i;
	nsync_rc rc;

	if (!hits)
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	hits->kind = kind;
	hits->legacy = nsync__notion_legacy(svc->notion);
	rc = nsync__notion_search(svc->notion, ctx, kind->name, search_hit, hits, err);
	for (i = 0; rc == NSYNC_OK && i < hits->n; i++) {
		struct nsync_database_info info;
		struct nsync_err db_err;
		nsync_rc db_rc;

		memset(&db_err, 0, sizeof(db_err));
		db_rc = nsync__notion_get_database(svc->notion, ctx, hits->ids[i], &info, &db_err);
		if (db_rc == NSYNC_ERR_NOMEM || db_rc == NSYNC_ERR_NOTION_AUTH) {
			if (err)
				*err = db_err;
			rc = db_rc;
		} else if (info.title && nsync__kind_for_title(info.title) != kind) {
			/* Another title that merely contains the kind's name. */
		} else if (db_rc == NSYNC_ERR_NO_DATA_SOURCES) {
			remember(c->empty, &c->n_empty, hits->ids[i]);
		} else if (db_rc == NSYNC_OK || (hits->legacy && db_rc == NSYNC_ERR_NOTION)) {
			/* A 2022-06-28 refusal of a multi-source database is said
			 * by its sync, with the advice. */
			remember(c->ids, &c->n, hits->ids[i]);
		}
		nsync__database_info_clear(&info);
	}
	free(hits);
	return rc;
}

/* Find a user's databases and register each kind whose title names exactly
 * one database with readable data sources. Kinds with several databases
 * are left in d (n > 1) for the caller to report: syncing both into one
 * table would merge two unrelated databases, picking one would be a guess.
 * Databases listing no readable data source are left in d too (n_empty):
 * registering one would sync an empty table. */
static nsync_rc discover(struct nsync_service *svc, const char *user_id, struct nsync_stats *stats,
			 struct discovery *d, struct nsync_err *err)
{
	struct nsync_notion_ctx ctx;
	const struct nsync_kind *kind;
	char *token = NULL;
	size_t i, found = 0;
	nsync_rc rc;

	memset(d, 0, sizeof(*d));
	rc = nsync__store_user_token(&svc->store, user_id, &token, err);
	if (rc != NSYNC_OK)
		return rc;
	ctx.token = token;
	ctx.pacer = pacer_for(svc, token);
	ctx.stats = stats;
	for (i = 0; rc == NSYNC_OK && (kind = nsync__kind_at(i)) != NULL; i++) {
		struct candidates *c = &d->kinds[d->n_kinds];
		rc = find_kind(svc, &ctx, kind, c, err);
		if (rc == NSYNC_OK && (c->n || c->n_empty))
			d->n_kinds++;
	}
	nsync__secret_free(token);
	for (i = 0; rc == NSYNC_OK && i < d->n_kinds; i++) {
		found += d->kinds[i].n;
		if (d->kinds[i].n != 1)
			continue;
		rc = nsync__store_register(&svc->store, user_id, d->kinds[i].ids[0],
					   d->kinds[i].kind->name, d->kinds[i].kind->name, err);
	}
	if (rc == NSYNC_OK && found == 0 && d->n_kinds == 0)
		rc = nsync__err(err, NSYNC_ERR_NOT_FOUND,
				"no database titled %s is shared with user %s's integration",
				nsync__kind_names(), user_id);
	return rc;
}

/* The sentence for a database of a kind's title that lists no data source. */
static void empty_message(const struct candidates *c, size_t i, char *out, size_t size)
{
	snprintf(out, size,
		 "database %s titled \"%s\" lists no data source the integration can read (a "
		 "linked database, or its data sources are not shared with the integration); it "
		 "was not registered",
		 c->empty[i], c->kind->name);
}

/* The answer entry for such a database. */
static struct json_object *empty_entry(struct nsync_service *svc, const char *user_id,
				       const struct candidates *c, size_t i)
{
	struct json_object *r = json_object_new_object();
	char message[NSYNC_ERR_MSG_MAX];

	empty_message(c, i, message, sizeof(message));
	if (svc->cfg.log) {
		char line[NSYNC_ERR_MSG_MAX + 64];
		snprintf(line, sizeof(line), "discovery user=%s: %s", user_id, message);
		svc->cfg.log(svc->cfg.log_data, line);
	}
	json_object_object_add(r, "database_name", json_object_new_string(c->kind->name));
	json_object_object_add(r, "database_id", json_object_new_string(c->empty[i]));
	json_object_object_add(r, "user_id", json_object_new_string(user_id));
	json_object_object_add(r, "status", json_object_new_string("error"));
	json_object_object_add(r, "error",
			       error_member(nsync_rc_name(NSYNC_ERR_NO_DATA_SOURCES), message, 0));
	return r;
}

/* The sentence for a kind title that several databases share (c->n > 1). */
static void duplicate_message(const struct candidates *c, char *out, size_t size)
{
	snprintf(out, size,
		 "%zu databases titled \"%s\" are shared with the integration (%s, %s%s); none was "
		 "synced: register the one to sync (notion-sync register) or give its database_id",
		 c->n, c->kind->name, c->ids[0], c->ids[1], c->n > 2 ? ", ..." : "");
}

/* The answer entry for a kind title that several databases share. */
static struct json_object *duplicate_entry(struct nsync_service *svc, const char *user_id,
					   const struct candidates *c)
{
	struct json_object *r = json_object_new_object(), *ids = json_object_new_array();
	char message[NSYNC_ERR_MSG_MAX];
	size_t i;

	for (i = 0; i < c->n && i < MAX_CANDIDATES; i++)
		json_object_array_add(ids, json_object_new_string(c->ids[i]));
	duplicate_message(c, message, sizeof(message));
	if (svc->cfg.log) {
		char line[NSYNC_ERR_MSG_MAX + 64];
		snprintf(line, sizeof(line), "discovery user=%s: %s", user_id, message);
		svc->cfg.log(svc->cfg.log_data, line);
	}
	json_object_object_add(r, "database_name", json_object_new_string(c->kind->name));
	json_object_object_add(r, "database_id", NULL);
	json_object_object_add(r, "user_id", json_object_new_string(user_id));
	json_object_object_add(r, "status", json_object_new_string("error"));
	json_object_object_add(r, "error", error_member(nsync_rc_name(NSYNC_ERR_DUPLICATE), message, 0));
	json_object_object_add(r, "candidates", ids);
	return r;
}

/* --- the request ------------------------------------------------------- */

/* What every request checks first: a known database_name, and a live
 * connection to PostgreSQL. */
static nsync_rc check_request(struct nsync_service *svc, const struct nsync_request *req,
			      struct nsync_err *err)
{
	if (req->database_name[0] && !nsync__kind_find(req->database_name))
		return nsync__err(err, NSYNC_ERR_ARG, "database_name \"%s\" is not one of %s",
				  req->database_name, nsync__kind_choices());
	if (nsync__store_refresh(&svc->store, err) != NSYNC_OK)
		return NSYNC_ERR_DB;
	return NSYNC_OK;
}

/* The (user, database) pairs a request without both ids covers (see
 * nsync__store_targets). NSYNC_ERR_NOT_FOUND when a named user or
 * database has nothing to sync. *targets is new (free()) on success. */
static nsync_rc request_targets(struct nsync_service *svc, const struct nsync_request *req,
				struct nsync_target **targets, size_t *n, struct nsync_err *err)
{
	nsync_rc rc;

	rc = nsync__store_targets(&svc->store, req->user_id, req->database_id, targets, n, err);
	if (rc != NSYNC_OK || *n > 0)
		return rc;
	free(*targets);
	*targets = NULL;
	if (req->user_id[0]) {
		char *token = NULL;
		rc = nsync__store_user_token(&svc->store, req->user_id, &token, err);
		nsync__secret_free(token);
		if (rc == NSYNC_OK)
			rc = nsync__err(err, NSYNC_ERR_NOT_FOUND, "user %s has no such database registered",
					req->user_id);
		return rc;
	}
	if (req->database_id[0])
		return nsync__err(err, NSYNC_ERR_NOT_FOUND,
				  "no user has database %s registered; give user_id to sync it",
				  req->database_id);
	return NSYNC_OK;
}

static nsync_rc run_single(struct nsync_service *svc, const struct nsync_request *req,
			   char **out, struct nsync_err *err)
{
	struct outcome o;
	struct json_object *obj;

	sync_one(svc, req->user_id, req->database_id, req->database_name, req->trigger, req->full, 0,
		 NULL, &o);
	if (o.rc != NSYNC_OK) {
		if (err)
			*err = o.err;
		return o.rc;
	}
	obj = json_object_new_object();
	json_object_object_add(obj, "success", json_object_new_boolean(1));
	json_object_object_add(obj, "database_name", json_object_new_string(o.name));
	json_object_object_add(obj, "database_id", json_object_new_string(req->database_id));
	json_object_object_add(obj, "user_id", json_object_new_string(req->user_id));
	put_counts(obj, &o);
	if (o.err.msg[0])
		json_object_object_add(obj, "warning", json_object_new_string(o.err.msg));
	return finish_json(obj, out, err);
}

/* Sync every registered database of the targets; users with nothing
 * registered are discovered first. */
static nsync_rc run_many(struct nsync_service *svc, const struct nsync_request *req, char **out,
			 struct nsync_err *err)
{
	struct nsync_target *targets = NULL, *more = NULL;
	size_t n = 0, n_more = 0, i, j;
	struct json_object *obj, *results;
	struct discovery found;
	int all_ok = 1;
	nsync_rc rc;

	rc = request_targets(svc, req, &targets, &n, err);
	if (rc != NSYNC_OK)
		return rc;
	obj = json_object_new_object();
	results = json_object_new_array();
	for (i = 0; i < n; i++) {
		struct outcome o;

		if (targets[i].database_id[0]) {
			sync_one(svc, targets[i].user_id, targets[i].database_id,
				 targets[i].database_name, req->trigger, req->full, 0, NULL, &o);
			all_ok &= o.rc == NSYNC_OK;
			json_object_array_add(results, result_entry(targets[i].user_id,
								    targets[i].database_id, &o));
			continue;
		}
		/* Nothing registered for this user yet: discover, then sync what was found. */
		memset(&o, 0, sizeof(o));
		o.rc = discover(svc, targets[i].user_id, &o.stats, &found, &o.err);
		for (j = 0; o.rc == NSYNC_OK && j < found.n_kinds; j++) {
			const struct candidates *c = &found.kinds[j];
			size_t k;

			for (k = 0; k < c->n_empty && k < MAX_CANDIDATES; k++) {
				all_ok = 0;
				json_object_array_add(results, empty_entry(svc, targets[i].user_id, c, k));
			}
			if (c->n < 2)
				continue;
			all_ok = 0;
			json_object_array_add(results, duplicate_entry(svc, targets[i].user_id, c));
		}
		if (o.rc == NSYNC_OK)
			o.rc = nsync__store_targets(&svc->store, targets[i].user_id, "", &more, &n_more,
						    &o.err);
		if (o.rc != NSYNC_OK) {
			all_ok = 0;
			add_stats(&svc->last, &o.stats);
			log_outcome(svc, targets[i].user_id, "(discovery)", &o);
			json_object_array_add(results, result_entry(targets[i].user_id, "", &o));
			continue;
		}
		for (j = 0; j < n_more; j++) {
			struct outcome mo;
			if (!more[j].database_id[0])
				continue;
			sync_one(svc, more[j].user_id, more[j].database_id, more[j].database_name,
				 req->trigger, req->full, 0, NULL, &mo);
			all_ok &= mo.rc == NSYNC_OK;
			json_object_array_add(results,
					      result_entry(more[j].user_id, more[j].database_id, &mo));
		}
		free(more);
		more = NULL;
	}
	free(targets);
	json_object_object_add(obj, "success", json_object_new_boolean(all_ok));
	json_object_object_add(obj, "results", results);
	return finish_json(obj, out, err);
}

nsync_rc nsync_service_run(struct nsync_service *svc, const struct nsync_request *req,
			   char **response_json, struct nsync_err *err)
{
	nsync_rc rc;

	*response_json = NULL;
	memset(&svc->last, 0, sizeof(svc->last));
	if ((rc = check_request(svc, req, err)) != NSYNC_OK)
		return rc;
	if (req->user_id[0] && req->database_id[0])
		return run_single(svc, req, response_json, err);
	return run_many(svc, req, response_json, err);
}

/* --- asynchronous runs ------------------------------------------------- */

/* Add one queued run to the answer's list. */
static nsync_rc queue_one(struct nsync_service *svc, const char *user_id, const char *database_id,
			  const char *name, const char *trigger, bool full, struct json_object *runs,
			  struct nsync_err *err)
{
	struct json_object *r;
	long run_id = 0;
	nsync_rc rc;

	rc = nsync__queue_add(&svc->store, user_id, database_id, name, trigger, full, &run_id, err);
	if (rc != NSYNC_OK)
		return rc;
	r = json_object_new_object();
	json_object_object_add(r, "run_id", json_object_new_int64(run_id));
	json_object_object_add(r, "user_id", json_object_new_string(user_id));
	json_object_object_add(r, "database_id",
			       database_id[0] ? json_object_new_string(database_id) : NULL);
	json_object_object_add(r, "database_name", name[0] ? json_object_new_string(name) : NULL);
	json_object_array_add(runs, r);
	return NSYNC_OK;
}

nsync_rc nsync_service_enqueue(struct nsync_service *svc, const struct nsync_request *req,
			       char **response_json, struct nsync_err *err)
{
	struct nsync_target *targets = NULL;
	struct json_object *obj, *runs;
	size_t n = 0, i;
	nsync_rc rc;

	*response_json = NULL;
	if ((rc = check_request(svc, req, err)) != NSYNC_OK)
		return rc;
	/* A trigger is where dead runs are noticed, so that this one re-runs them. */
	if (nsync__queue_reap(&svc->store, svc->cfg.stale_after, NULL, err) != NSYNC_OK)
		return NSYNC_ERR_DB;
	runs = json_object_new_array();
	if (req->user_id[0] && req->database_id[0]) {
		const struct nsync_kind *kind = nsync__kind_find(req->database_name);
		char *token = NULL;

		rc = nsync__store_user_token(&svc->store, req->user_id, &token, err);
		nsync__secret_free(token);
		if (rc == NSYNC_OK)
			rc = queue_one(svc, req->user_id, req->database_id, kind ? kind->name : "",
				       req->trigger, req->full, runs, err);
	} else {
		rc = request_targets(svc, req, &targets, &n, err);
		for (i = 0; rc == NSYNC_OK && i < n; i++)
			rc = queue_one(svc, targets[i].user_id, targets[i].database_id,
				       targets[i].database_name, req->trigger, req->full, runs, err);
		free(targets);
	}
	if (rc != NSYNC_OK) {
		json_object_put(runs);
		return rc;
	}
	if (svc->cfg.log) {
		char line[160];
		snprintf(line, sizeof(line), "queued runs=%zu trigger=%s",
			 json_object_array_length(runs), req->trigger);
		svc->cfg.log(svc->cfg.log_data, line);
	}
	obj = json_object_new_object();
	json_object_object_add(obj, "success", json_object_new_boolean(1));
	json_object_object_add(obj, "status", json_object_new_string("accepted"));
	json_object_object_add(obj, "runs", runs);
	return finish_json(obj, response_json, err);
}

/* A discovery run: find the user's databases, register them, and queue a
 * run for each (the worker holding this user runs them next). */
static void work_discovery(struct nsync_service *svc, const char *user_id,
			   const struct nsync_queued_run *run, const char *worker)
{
	struct nsync_target *found = NULL;
	struct discovery d;
	struct outcome o;
	size_t n = 0, i;
	struct nsync_err finish_err;

	memset(&o, 0, sizeof(o));
	o.name = "(discovery)";
	o.run_id = run->id;
	memset(&d, 0, sizeof(d));
	o.rc = nsync__queue_start(&svc->store, run->id, worker, &o.err);
	if (o.rc == NSYNC_OK)
		o.rc = discover(svc, user_id, &o.stats, &d, &o.err);
	if (o.rc == NSYNC_OK)
		o.rc = nsync__store_targets(&svc->store, user_id, "", &found, &n, &o.err);
	for (i = 0; o.rc == NSYNC_OK && i < n; i++) {
		long id;
		if (found[i].database_id[0])
			o.rc = nsync__queue_add(&svc->store, user_id, found[i].database_id,
						found[i].database_name, run->trigger, run->full, &id,
						&o.err);
	}
	free(found);
	for (i = 0; o.rc == NSYNC_OK && i < d.n_kinds; i++)
		if (d.kinds[i].n > 1) {
			duplicate_message(&d.kinds[i], o.err.msg, sizeof(o.err.msg));
			o.rc = o.err.code = NSYNC_ERR_DUPLICATE;
		} else if (d.kinds[i].n_empty) {
			empty_message(&d.kinds[i], 0, o.err.msg, sizeof(o.err.msg));
			o.rc = o.err.code = NSYNC_ERR_NO_DATA_SOURCES;
		}
	memset(&finish_err, 0, sizeof(finish_err));
	nsync__store_run_finish(&svc->store, run->id, &o.stats, o.rc == NSYNC_OK ? "success" : "error",
				NULL, NULL, o.rc == NSYNC_OK ? NULL : o.err.msg, &finish_err);
	log_outcome(svc, user_id, "(discovery)", &o);
}

nsync_rc nsync_service_work(struct nsync_service *svc, const char *worker, long *ran,
			    struct nsync_err *err)
{
	char user_id[37];
	long last = 0;
	nsync_rc rc;

	*ran = 0;
	if (nsync__store_refresh(&svc->store, err) != NSYNC_OK)
		return NSYNC_ERR_DB;
	rc = nsync__queue_claim_user(&svc->store, user_id, err);
	if (rc != NSYNC_OK || !user_id[0])
		return rc;
	for (;;) {
		struct nsync_queued_run run;
		struct outcome o;
		int found;

		rc = nsync__queue_next(&svc->store, user_id, &run, &found, err);
		if (rc != NSYNC_OK || !found)
			break;
		/* A run that is still queued after it was handled could not be
		 * recorded; stop rather than run it again and again. */
		if (run.id == last) {
			rc = nsync__err(err, NSYNC_ERR_DB, "run %ld could not leave the queue", run.id);
			break;
		}
		last = run.id;
		memset(&svc->last, 0, sizeof(svc->last));
		if (!run.database_id[0])
			work_discovery(svc, user_id, &run, worker);
		else
			sync_one(svc, user_id, run.database_id, run.database_name, run.trigger, run.full,
				 run.id, worker, &o);
		(*ran)++;
		if (!nsync__store_connection_ok(&svc->store)) {
			rc = nsync__err(err, NSYNC_ERR_DB, "the connection to PostgreSQL was lost");
			break;
		}
	}
	nsync__queue_release_user(&svc->store, user_id);
	return rc;
}

nsync_rc nsync_service_reap(struct nsync_service *svc, long *reaped, struct nsync_err *err)
{
	long n = 0;
	nsync_rc rc;

	if (reaped)
		*reaped = 0;
	if (nsync__store_refresh(&svc->store, err) != NSYNC_OK)
		return NSYNC_ERR_DB;
	rc = nsync__queue_reap(&svc->store, svc->cfg.stale_after, &n, err);
	if (rc == NSYNC_OK && n && svc->cfg.log) {
		char line[120];
		snprintf(line, sizeof(line), "marked %ld run%s failed: their worker stopped", n,
			 n == 1 ? "" : "s");
		svc->cfg.log(svc->cfg.log_data, line);
	}
	if (reaped)
		*reaped = n;
	return rc;
}

nsync_rc nsync_service_run_status(struct nsync_service *svc, long run_id, char **response_json,
				  struct nsync_err *err)
{
	*response_json = NULL;
	if (nsync__store_refresh(&svc->store, err) != NSYNC_OK)
		return NSYNC_ERR_DB;
	return nsync__queue_status(&svc->store, run_id, response_json, err);
}

nsync_rc nsync_service_metrics(struct nsync_service *svc, char **text, struct nsync_err *err)
{
	*text = NULL;
	if (nsync__store_refresh(&svc->store, err) != NSYNC_OK)
		return NSYNC_ERR_DB;
	return nsync__metrics_text(&svc->store, text, err);
}

nsync_rc nsync_service_prune_orphans(struct nsync_service *svc, const char *user_id,
				     const char *database_id, char **response_json,
				     struct nsync_err *err)
{
	struct nsync_database_info info;
	struct nsync_notion_ctx ctx;
	struct nsync_target *targets = NULL;
	const struct nsync_kind *kind = NULL;
	struct nsync_stats stats;
	struct nsync_buf sources;
	struct json_object *obj, *list;
	char uid[37], did[37], *token = NULL;
	size_t n = 0, i;
	long deleted = 0;
	int locked = 0;
	nsync_rc rc;

	*response_json = NULL;
	memset(&info, 0, sizeof(info));
	memset(&stats, 0, sizeof(stats));
	nsync__buf_init(&sources, 1 << 20);
	if (nsync_normalize_id(user_id, uid, err) != NSYNC_OK ||
	    nsync_normalize_id(database_id, did, err) != NSYNC_OK)
		return NSYNC_ERR_ARG;
	if (nsync__notion_legacy(svc->notion))
		return nsync__err(err, NSYNC_ERR_CONFIG,
				  "prune-orphans needs NOTION_VERSION 2025-09-03 or later: "
				  "Notion-Version %s lists no data sources",
				  svc->cfg.notion_version);
	rc = nsync__store_refresh(&svc->store, err);
	if (rc == NSYNC_OK)
		rc = nsync__store_targets(&svc->store, uid, did, &targets, &n, err);
	if (rc == NSYNC_OK && (n == 0 || !(kind = nsync__kind_find(targets[0].database_name))))
		rc = nsync__err(err, NSYNC_ERR_NOT_FOUND, "user %s has no database %s registered",
				uid, did);
	free(targets);
	if (rc == NSYNC_OK)
		rc = nsync__store_user_token(&svc->store, uid, &token, err);
	if (rc == NSYNC_OK && (rc = nsync__store_lock(&svc->store, uid, did, err)) == NSYNC_OK)
		locked = 1;
	if (rc == NSYNC_OK) {
		ctx.token = token;
		ctx.pacer = pacer_for(svc, token);
		ctx.stats = &stats;
		/* Fails with NSYNC_ERR_NO_DATA_SOURCES when none is listed:
		 * then every row would be an orphan, and that is no proof. */
		rc = nsync__notion_get_database(svc->notion, &ctx, did, &info, err);
	}
	for (i = 0; rc == NSYNC_OK && i < info.n_sources; i++)
		if (nsync__buf_printf(&sources, "%c%s", i ? ',' : '{', info.sources[i]) != NSYNC_OK)
			rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
	if (rc == NSYNC_OK && nsync__buf_addc(&sources, '}') != NSYNC_OK)
		rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
	if (rc == NSYNC_OK)
		rc = nsync__store_delete_orphans(&svc->store, kind, uid, did, sources.data, &deleted,
						 err);
	if (locked)
		nsync__store_unlock(&svc->store, uid, did);
	nsync__secret_free(token);
	if (rc == NSYNC_OK) {
		obj = json_object_new_object();
		list = json_object_new_array();
		for (i = 0; i < info.n_sources; i++)
			json_object_array_add(list, json_object_new_string(info.sources[i]));
		json_object_object_add(obj, "success", json_object_new_boolean(1));
		json_object_object_add(obj, "user_id", json_object_new_string(uid));
		json_object_object_add(obj, "database_id", json_object_new_string(did));
		json_object_object_add(obj, "database_name", json_object_new_string(kind->name));
		json_object_object_add(obj, "table", json_object_new_string(kind->table));
		json_object_object_add(obj, "data_sources", list);
		json_object_object_add(obj, "deleted", json_object_new_int64(deleted));
		rc = finish_json(obj, response_json, err);
	}
	if (svc->cfg.log) {
		char line[300];
		snprintf(line, sizeof(line), "prune-orphans user=%s database=%s deleted=%ld status=%s",
			 uid, did, deleted, rc == NSYNC_OK ? "success" : "error");
		svc->cfg.log(svc->cfg.log_data, line);
	}
	nsync__database_info_clear(&info);
	nsync__buf_free(&sources);
	return rc;
}

nsync_rc nsync_service_claim_signature(struct nsync_service *svc, const char *signature,
				       long long signed_at, bool *first, struct nsync_err *err)
{
	int claimed = 0;
	nsync_rc rc;

	*first = false;
	if (!signature || strlen(signature) != 64 || strspn(signature, "0123456789abcdef") != 64)
		return nsync__err(err, NSYNC_ERR_ARG, "a signature is 64 lowercase hex digits");
	rc = nsync__store_claim_signature(&svc->store, signature, signed_at, &claimed, err);
	*first = claimed != 0;
	return rc;
}
