/*
 * service.c - the public calls of notionsync.h. A request goes
 * plan -> run -> answer: plan.h turns it into jobs, runner.h does each,
 * answer.h renders the JSON from the outcomes afterwards. Also the small
 * administrative calls (migrate, tokens, registry, orphans, signatures,
 * metrics) and the copy of its configuration a service keeps.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "answer.h"
#include "buf.h"
#include "credentials.h"
#include "error.h"
#include "pacer.h"
#include "events.h"
#include "fnv.h"
#include "mapping.h"
#include "metrics.h"
#include "migrate.h"
#include "plan.h"
#include "queue.h"
#include "runner.h"
#include "service.h"
#include "stats.h"
#include "upsert.h"

#define REQUIRE NSYNC__REQUIRE

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

nsync_rc nsync__config_copy(struct nsync_config *copy, const struct nsync_config *cfg,
			    struct nsync_err *err)
{
	int failed = 0;

	*copy = *cfg;
	copy->database_url = dup_or_null(cfg->database_url, &failed);
	copy->notion_api_url = dup_or_null(cfg->notion_api_url, &failed);
	copy->notion_version = dup_or_null(cfg->notion_version, &failed);
	if (failed) {
		nsync_config_clear(copy);
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory copying the configuration");
	}
	return NSYNC_OK;
}

struct nsync_service *nsync_service_new(const struct nsync_config *cfg, struct nsync_err *err)
{
	struct nsync_service *svc;

	if (!cfg) {
		nsync__err(err, NSYNC_ERR_ARG, "nsync_service_new: a configuration is required");
		return NULL;
	}
	svc = calloc(1, sizeof(*svc));
	if (!svc) {
		nsync__err(err, NSYNC_ERR_NOMEM, "out of memory creating the service");
		return NULL;
	}
	if (nsync__config_copy(&svc->cfg, cfg, err) != NSYNC_OK)
		goto fail;
	if (!svc->cfg.notion_api_url || !svc->cfg.notion_version) {
		nsync__err(err, NSYNC_ERR_CONFIG,
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
	while (svc->n_lanes)
		nsync_service_free(svc->lanes[--svc->n_lanes]);
	free(svc->lanes);
	nsync__notion_free(svc->notion);
	nsync__store_close(&svc->store);
	nsync_config_clear(&svc->cfg);
	free(svc);
}

nsync_rc nsync_service_ping(struct nsync_service *svc, struct nsync_err *err)
{
	REQUIRE(svc);

	return nsync__store_refresh(&svc->store, err);
}

const struct nsync_stats *nsync_service_last_stats(const struct nsync_service *svc)
{
	static const struct nsync_stats none;

	return svc ? &svc->last : &none;
}

bool nsync_service_last_succeeded(const struct nsync_service *svc)
{
	return svc && svc->last_ok;
}

nsync_rc nsync_migrate(struct nsync_service *svc, const char *sql_dir, int *applied,
		       struct nsync_err *err)
{
	REQUIRE(svc);
	REQUIRE(sql_dir);

	if (nsync__store_ready(&svc->store, err) != NSYNC_OK)
		return NSYNC_ERR_DB;
	return nsync__store_migrate(&svc->store, sql_dir, applied, err);
}

nsync_rc nsync_user_set_token(struct nsync_service *svc, const char *user_id, const char *token,
			      bool oauth, struct nsync_err *err)
{
	char id[37];
	nsync_rc rc;

	if (!svc)
		return nsync__err(err, NSYNC_ERR_ARG, "no service");
	if ((rc = nsync_normalize_id(user_id, id, err)) != NSYNC_OK)
		return nsync__err_prefix(err, rc, "user id");
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
	nsync_rc rc;

	if (!svc)
		return nsync__err(err, NSYNC_ERR_ARG, "no service");
	if ((rc = nsync_normalize_id(user_id, uid, err)) != NSYNC_OK)
		return nsync__err_prefix(err, rc, "user id");
	if ((rc = nsync_normalize_id(database_id, did, err)) != NSYNC_OK)
		return nsync__err_prefix(err, rc, "database id");
	if (!kind)
		return nsync__err(err, NSYNC_ERR_ARG, "database name must be one of %s",
				  nsync__kind_choices());
	return nsync__store_register(&svc->store, uid, did, kind->name, NULL, err);
}

nsync_rc nsync_service_run(struct nsync_service *svc, const struct nsync_request *req,
			   char **response_json, struct nsync_err *err)
{
	struct nsync_plan plan = {0};
	struct nsync_outcome *outcomes = NULL;
	size_t i;
	nsync_rc rc;

	REQUIRE(svc);
	REQUIRE(req);
	REQUIRE(response_json);

	*response_json = NULL;
	memset(&svc->last, 0, sizeof(svc->last));
	svc->last_ok = false;
	rc = nsync__plan_check(&svc->store, req, err);
	if (rc == NSYNC_OK)
		rc = nsync__plan_request(&svc->store, req, &plan, err);
	/* The plan grows while it runs: a discovery adds the syncs of what it
	 * registered. */
	for (i = 0; rc == NSYNC_OK && i < plan.n; i++) {
		struct nsync_outcome *grown = realloc(outcomes, (i + 1) * sizeof(*grown));
		if (!grown) {
			rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
			break;
		}
		outcomes = grown;
		nsync__run_job(svc, &plan.jobs[i], NULL, &outcomes[i]);
		if (plan.jobs[i].kind == NSYNC_JOB_DISCOVER && outcomes[i].searched) {
			struct nsync_err more_err;
			memset(&more_err, 0, sizeof(more_err));
			if (nsync__plan_discovered(&svc->store, &plan.jobs[i], &plan, &more_err) !=
			    NSYNC_OK) {
				outcomes[i].rc = more_err.code;
				outcomes[i].err = more_err;
				outcomes[i].searched = 0;
			}
		}
		/* The job list may have moved: outcomes point at their job by index. */
		outcomes[i].job = &plan.jobs[i];
	}
	for (i = 0; i < plan.n && outcomes; i++)
		outcomes[i].job = &plan.jobs[i];
	svc->last_ok = rc == NSYNC_OK && nsync__outcomes_ok(outcomes, plan.n);
	if (rc == NSYNC_OK && req->user_id[0] && req->database_id[0]) {
		if (outcomes[0].rc != NSYNC_OK) {
			rc = outcomes[0].rc;
			if (err)
				*err = outcomes[0].err;
		} else {
			rc = nsync__answer_one(&outcomes[0], response_json, err);
		}
	} else if (rc == NSYNC_OK) {
		rc = nsync__answer_all(outcomes, plan.n, response_json, err);
	}
	free(outcomes);
	nsync__plan_free(&plan);
	return rc;
}

nsync_rc nsync_service_enqueue(struct nsync_service *svc, const struct nsync_request *req,
			       char **response_json, struct nsync_err *err)
{
	struct nsync_plan plan = {0};
	struct nsync_queued *runs = NULL;
	size_t i;
	nsync_rc rc;

	REQUIRE(svc);
	REQUIRE(req);
	REQUIRE(response_json);

	*response_json = NULL;
	rc = nsync__plan_check(&svc->store, req, err);
	/* A trigger is where dead runs are noticed, so that this one re-runs them. */
	if (rc == NSYNC_OK &&
	    nsync__queue_reap(&svc->store, svc->cfg.stale_after, NULL, err) != NSYNC_OK)
		rc = NSYNC_ERR_DB;
	if (rc == NSYNC_OK)
		rc = nsync__plan_request(&svc->store, req, &plan, err);
	if (rc == NSYNC_OK && plan.n && !(runs = calloc(plan.n, sizeof(*runs))))
		rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
	for (i = 0; rc == NSYNC_OK && i < plan.n; i++) {
		const struct nsync_job *j = &plan.jobs[i];
		rc = nsync__queue_add(&svc->store, j->user_id, j->database_id, j->database_name,
				      j->trigger, j->full, &runs[i].run_id, err);
		snprintf(runs[i].user_id, sizeof(runs[i].user_id), "%s", j->user_id);
		snprintf(runs[i].database_id, sizeof(runs[i].database_id), "%s", j->database_id);
		snprintf(runs[i].database_name, sizeof(runs[i].database_name), "%s",
			 j->database_name);
	}
	if (rc == NSYNC_OK && svc->cfg.log) {
		char line[160];
		snprintf(line, sizeof(line), "queued runs=%zu trigger=%s", plan.n, req->trigger);
		svc->cfg.log(svc->cfg.log_data, line);
	}
	if (rc == NSYNC_OK)
		rc = nsync__answer_queued(runs, plan.n, response_json, err);
	free(runs);
	nsync__plan_free(&plan);
	return rc;
}

/* Process user_id's due webhook events with its token (none: nothing to
 * do, the events wait). A rejected token fails the events, not the work. */
static nsync_rc process_events(struct nsync_service *svc, const char *user_id, long *handled,
			       struct nsync_err *err)
{
	char *token = NULL;
	struct nsync_err token_err;
	nsync_rc rc;

	*handled = 0;
	memset(&token_err, 0, sizeof(token_err));
	rc = nsync__store_user_token(&svc->store, user_id, &token, &token_err);
	if (rc == NSYNC_ERR_NOT_FOUND) {
		/* They would wait forever, and keep this user first in line. */
		const char *params[] = {user_id};
		return nsync__store_run(&svc->store, "failing webhook events",
					"update notion_webhook_events set status = 'failed',"
					" outcome = 'the user has no Notion token',"
					" processed_at = clock_timestamp()"
					" where user_id = $1::uuid and status = 'received'",
					1, params, err);
	}
	if (rc != NSYNC_OK) {
		if (err)
			*err = token_err;
		return rc;
	}
	rc = nsync__events_process(svc, user_id, token, nsync__pacer_get(token), handled, err);
	nsync__secret_free(token);
	return rc == NSYNC_ERR_NOTION_AUTH ? NSYNC_OK : rc;
}

/* One queued run on a lane: a service of its own (PostgreSQL session,
 * Notion client) on a thread of its own. */
struct lane_run {
	struct nsync_service *svc;
	struct nsync_job job;
	const char *worker;
	struct nsync_outcome o;
	pthread_t thread;
	int started;
};

static void *run_on_lane(void *arg)
{
	struct lane_run *l = arg;

	nsync__run_job(l->svc, &l->job, l->worker, &l->o);
	return NULL;
}

/* The service of lane i (>= 1) of svc, made on first use; NULL when it
 * cannot be made (the run then goes on svc itself, after the others). */
static struct nsync_service *lane_service(struct nsync_service *svc, size_t i)
{
	struct nsync_err err;

	if (i >= svc->n_lanes) {
		struct nsync_service **grown = realloc(svc->lanes, (i + 1) * sizeof(*grown));
		if (!grown)
			return NULL;
		memset(grown + svc->n_lanes, 0, (i + 1 - svc->n_lanes) * sizeof(*grown));
		svc->lanes = grown;
		svc->n_lanes = i + 1;
	}
	memset(&err, 0, sizeof(err));
	if (!svc->lanes[i] && !(svc->lanes[i] = nsync_service_new(&svc->cfg, &err)) &&
	    svc->cfg.log) {
		char line[NSYNC_ERR_MSG_MAX + 40];
		snprintf(line, sizeof(line), "lane %zu not started: %s", i, err.msg);
		svc->cfg.log(svc->cfg.log_data, line);
	}
	return svc->lanes[i];
}

/* Run the n queued runs of user_id at once: the first on svc (whose walk
 * also runs the user's webhook events: it holds the user), the others on
 * lanes. They share the token's pace (pacer.h), so together they keep
 * requests in flight while each waits for Notion's answer. */
static void run_together(struct nsync_service *svc, const char *user_id, const char *worker,
			 const struct nsync_queued_run *runs, size_t n, struct lane_run *l)
{
	size_t i;

	for (i = 0; i < n; i++) {
		memset(&l[i], 0, sizeof(l[i]));
		nsync__plan_queued(user_id, &runs[i], &l[i].job);
		l[i].job.events = i == 0;
		l[i].worker = worker;
		l[i].svc = i ? lane_service(svc, i) : svc;
		if (i && l[i].svc)
			l[i].started = pthread_create(&l[i].thread, NULL, run_on_lane, &l[i]) == 0;
	}
	nsync__run_job(svc, &l[0].job, worker, &l[0].o);
	for (i = 1; i < n; i++) {
		if (l[i].started)
			pthread_join(l[i].thread, NULL);
		else
			nsync__run_job(svc, &l[i].job, worker, &l[i].o);
		nsync__stats_add(&svc->last, &l[i].o.stats);
	}
}

nsync_rc nsync_service_work(struct nsync_service *svc, const char *worker, long *ran,
			    struct nsync_err *err)
{
	struct lane_run *lanes = NULL;
	char user_id[37];
	long last = 0;
	nsync_rc rc;

	REQUIRE(svc);
	REQUIRE(worker);
	REQUIRE(ran);

	*ran = 0;
	if (nsync__store_refresh(&svc->store, err) != NSYNC_OK)
		return NSYNC_ERR_DB;
	rc = nsync__queue_claim_user(&svc->store, user_id, err);
	if (rc != NSYNC_OK || !user_id[0])
		return rc;
	lanes = calloc(NSYNC_MAX_PER_USER, sizeof(*lanes));
	if (!lanes)
		rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
	while (rc == NSYNC_OK) {
		struct nsync_queued_run runs[NSYNC_MAX_PER_USER];
		size_t n = 0, i, want = svc->cfg.per_user > 1 ? (size_t)svc->cfg.per_user : 1;
		long events = 0;

		if (want > NSYNC_MAX_PER_USER)
			want = NSYNC_MAX_PER_USER;
		/* The priority lane: this user's webhook events before its runs. */
		rc = process_events(svc, user_id, &events, err);
		if (rc != NSYNC_OK)
			break;
		*ran += events;
		rc = nsync__queue_next(&svc->store, user_id, runs, want, &n, err);
		if (rc != NSYNC_OK || n == 0)
			break;
		/* A run that is still queued after it was handled could not be
		 * recorded; stop rather than run it again and again. */
		if (runs[0].id == last) {
			rc = nsync__err(err, NSYNC_ERR_DB, "run %ld could not leave the queue",
					runs[0].id);
			break;
		}
		last = runs[0].id;
		/* A discovery queues the runs of what it finds: it runs alone. */
		for (i = 0; i < n && runs[i].database_id[0]; i++)
			;
		n = i == 0 ? 1 : i;
		memset(&svc->last, 0, sizeof(svc->last));
		run_together(svc, user_id, worker, runs, n, lanes);
		*ran += (long)n;
		if (!nsync__store_connection_ok(&svc->store)) {
			rc = nsync__err(err, NSYNC_ERR_DB, "the connection to PostgreSQL was lost");
			break;
		}
	}
	free(lanes);
	nsync__queue_release_user(&svc->store, user_id);
	return rc;
}

nsync_rc nsync_service_reap(struct nsync_service *svc, long *reaped, struct nsync_err *err)
{
	long n = 0;
	nsync_rc rc;

	REQUIRE(svc);

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
	REQUIRE(svc);
	REQUIRE(response_json);

	*response_json = NULL;
	if (nsync__store_refresh(&svc->store, err) != NSYNC_OK)
		return NSYNC_ERR_DB;
	return nsync__queue_status(&svc->store, run_id, response_json, err);
}

nsync_rc nsync_service_metrics(struct nsync_service *svc, char **text, struct nsync_err *err)
{
	REQUIRE(svc);
	REQUIRE(text);

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

	REQUIRE(svc);
	REQUIRE(response_json);

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
		ctx.pacer = nsync__pacer_get(token);
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
		rc = nsync__store_delete_orphans(&svc->store, kind, uid, did, sources.data,
						 &deleted, err);
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
		rc = nsync__answer_text(obj, response_json, err);
	}
	if (svc->cfg.log) {
		char line[300];
		snprintf(line, sizeof(line),
			 "prune-orphans user=%s database=%s deleted=%ld status=%s", uid, did,
			 deleted, rc == NSYNC_OK ? "success" : "error");
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

	REQUIRE(svc);
	REQUIRE(first);

	*first = false;
	if (!signature || strlen(signature) != 64 || strspn(signature, "0123456789abcdef") != 64)
		return nsync__err(err, NSYNC_ERR_ARG, "a signature is 64 lowercase hex digits");
	rc = nsync__store_claim_signature(&svc->store, signature, signed_at, &claimed, err);
	*first = claimed != 0;
	return rc;
}
