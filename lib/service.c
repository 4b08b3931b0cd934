/*
 * service.c - the public calls of notionsync.h. A request goes
 * plan -> run -> answer: plan.h turns it into jobs, runner.h does each,
 * answer.h renders the JSON from the outcomes afterwards. Also the small
 * administrative calls (migrate, tokens, registry, orphans, signatures,
 * metrics) and the copy of its configuration a service keeps. The worker
 * side (nsync_service_work, reap) is work.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "answer.h"
#include "buf.h"
#include "credentials.h"
#include "error.h"
#include "fnv.h"
#include "mapping.h"
#include "metrics.h"
#include "migrate.h"
#include "pacer.h"
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
	size_t i;

	if (!svc)
		return;
	while (svc->n_lanes)
		nsync_service_free(svc->lanes[--svc->n_lanes]);
	free(svc->lanes);
	for (i = 0; i < NSYNC_PAGE_READERS - 1; i++)
		nsync__notion_free(svc->readers[i]);
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
		rc = nsync__store_user_token(&svc->store, uid, &token, NULL, err);
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
