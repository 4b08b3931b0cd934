/*
 * answer.c - the JSON answers, made from outcomes after the work (see
 * answer.h). Also nsync_error_json, the error body of both front ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "answer.h"
#include "error.h"
#include "mapping.h"
#include "stats.h"

nsync_rc nsync__answer_text(struct json_object *obj, char **out, struct nsync_err *err)
{
	const char *text =
		json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
							    JSON_C_TO_STRING_NOSLASHESCAPE);

	*out = text ? strdup(text) : NULL;
	json_object_put(obj);
	if (!*out)
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory building the answer");
	return NSYNC_OK;
}

static void put_counts(struct json_object *obj, const struct nsync_outcome *o)
{
	json_object_object_add(obj, "synced_count",
			       json_object_new_int64(o->stats.inserted + o->stats.updated));
	json_object_object_add(obj, "run_id", o->run_id ? json_object_new_int64(o->run_id) : NULL);
	json_object_object_add(obj, "mode", o->mode ? json_object_new_string(o->mode) : NULL);
	json_object_object_add(obj, "table", o->table ? json_object_new_string(o->table) : NULL);
	nsync__stats_to_json(obj, &o->stats);
	json_object_object_add(obj, "duration_ms",
			       json_object_new_int64((int64_t)(o->seconds * 1000)));
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
	json_object_object_add(obj, "error",
			       error_member(code_name ? code_name : "unknown_error",
					    message ? message : "", run_id));
	if (nsync__answer_text(obj, &out, NULL) != NSYNC_OK)
		return NULL;
	return out;
}

/* One entry of "results". */
static struct json_object *result_entry(const char *user_id, const char *database_id,
					const struct nsync_outcome *o)
{
	struct json_object *r = json_object_new_object();
	const char *name = o->job->kind == NSYNC_JOB_DISCOVER ? NULL : o->name;

	json_object_object_add(r, "database_name", name ? json_object_new_string(name) : NULL);
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

/* The answer entry for such a database. */
static struct json_object *empty_entry(const char *user_id, const struct nsync_candidates *c,
				       size_t i)
{
	struct json_object *r = json_object_new_object();
	char message[NSYNC_ERR_MSG_MAX];

	nsync__empty_message(c, i, message, sizeof(message));
	json_object_object_add(r, "database_name", json_object_new_string(c->kind->name));
	json_object_object_add(r, "database_id", json_object_new_string(c->empty[i]));
	json_object_object_add(r, "user_id", json_object_new_string(user_id));
	json_object_object_add(r, "status", json_object_new_string("error"));
	json_object_object_add(r, "error",
			       error_member(nsync_rc_name(NSYNC_ERR_NO_DATA_SOURCES), message, 0));
	return r;
}

/* The answer entry for a kind title that several databases share. */
static struct json_object *duplicate_entry(const char *user_id, const struct nsync_candidates *c)
{
	struct json_object *r = json_object_new_object(), *ids = json_object_new_array();
	char message[NSYNC_ERR_MSG_MAX];
	size_t i;

	for (i = 0; i < c->n && i < NSYNC_MAX_CANDIDATES; i++)
		json_object_array_add(ids, json_object_new_string(c->ids[i]));
	nsync__duplicate_message(c, message, sizeof(message));
	json_object_object_add(r, "database_name", json_object_new_string(c->kind->name));
	json_object_object_add(r, "database_id", NULL);
	json_object_object_add(r, "user_id", json_object_new_string(user_id));
	json_object_object_add(r, "status", json_object_new_string("error"));
	json_object_object_add(r, "error",
			       error_member(nsync_rc_name(NSYNC_ERR_DUPLICATE), message, 0));
	json_object_object_add(r, "candidates", ids);
	return r;
}

nsync_rc nsync__answer_one(const struct nsync_outcome *o, char **out, struct nsync_err *err)
{
	struct json_object *obj = json_object_new_object();

	json_object_object_add(obj, "success", json_object_new_boolean(1));
	json_object_object_add(obj, "database_name",
			       json_object_new_string(o->name ? o->name : ""));
	json_object_object_add(obj, "database_id", json_object_new_string(o->job->database_id));
	json_object_object_add(obj, "user_id", json_object_new_string(o->job->user_id));
	put_counts(obj, o);
	if (o->err.msg[0])
		json_object_object_add(obj, "warning", json_object_new_string(o->err.msg));
	return nsync__answer_text(obj, out, err);
}

/* The entries of one discovery: its failure, or each problem it found.
 * Returns how many. */
static int add_discovery(struct json_object *results, const struct nsync_outcome *o)
{
	const char *user_id = o->job->user_id;
	int problems = 0;
	size_t i, k;

	if (!o->searched) {
		json_object_array_add(results, result_entry(user_id, "", o));
		return 1;
	}
	for (i = 0; i < o->found.n_kinds; i++) {
		const struct nsync_candidates *c = &o->found.kinds[i];
		for (k = 0; k < c->n_empty && k < NSYNC_MAX_CANDIDATES; k++, problems++)
			json_object_array_add(results, empty_entry(user_id, c, k));
		if (c->n > 1) {
			json_object_array_add(results, duplicate_entry(user_id, c));
			problems++;
		}
	}
	return problems;
}

int nsync__outcomes_ok(const struct nsync_outcome *os, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (os[i].rc != NSYNC_OK)
			return 0; /* a discovery's problem is its rc too */
	return 1;
}

nsync_rc nsync__answer_all(const struct nsync_outcome *os, size_t n, char **out,
			   struct nsync_err *err)
{
	struct json_object *obj = json_object_new_object(), *results = json_object_new_array();
	size_t i;

	for (i = 0; i < n; i++) {
		const struct nsync_outcome *o = &os[i];
		if (o->job->kind == NSYNC_JOB_DISCOVER)
			add_discovery(results, o);
		else
			json_object_array_add(results, result_entry(o->job->user_id,
								    o->job->database_id, o));
	}
	json_object_object_add(obj, "success", json_object_new_boolean(nsync__outcomes_ok(os, n)));
	json_object_object_add(obj, "results", results);
	return nsync__answer_text(obj, out, err);
}

nsync_rc nsync__answer_queued(const struct nsync_queued *runs, size_t n, char **out,
			      struct nsync_err *err)
{
	struct json_object *obj = json_object_new_object(), *list = json_object_new_array();
	size_t i;

	for (i = 0; i < n; i++) {
		struct json_object *r = json_object_new_object();
		json_object_object_add(r, "run_id", json_object_new_int64(runs[i].run_id));
		json_object_object_add(r, "user_id", json_object_new_string(runs[i].user_id));
		json_object_object_add(r, "database_id",
				       runs[i].database_id[0]
					       ? json_object_new_string(runs[i].database_id)
					       : NULL);
		json_object_object_add(r, "database_name",
				       runs[i].database_name[0]
					       ? json_object_new_string(runs[i].database_name)
					       : NULL);
		json_object_array_add(list, r);
	}
	json_object_object_add(obj, "success", json_object_new_boolean(1));
	json_object_object_add(obj, "status", json_object_new_string("accepted"));
	json_object_object_add(obj, "runs", list);
	return nsync__answer_text(obj, out, err);
}
