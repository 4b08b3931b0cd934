/*
 * webhook.c - Notion integration webhooks, the receiving half
 * (nsync_webhook_* in notionsync.h): the subscriptions (a random URL key,
 * the verification token from Notion's handshake) and the receipt of
 * events: signature check over the raw body (hookproto.h), deduplication
 * by event id, routing to users, one row per event in
 * notion_webhook_events (sql/008_webhooks.sql). No Notion request happens
 * here; events.h does the work later, on the workers.
 *
 * The request thread does two statements per event (look the key up,
 * insert the event) and answers: Notion expects a quick 2xx and retries
 * otherwise, and the rows make the work survive the process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/rand.h>

#include "credentials.h"
#include "error.h"
#include "hookproto.h"
#include "notion.h"
#include "service.h"

#define REQUIRE NSYNC__REQUIRE

/* Random bytes of a key: 192 bits, 32 URL-safe characters. */
#define KEY_BYTES 24

/* A json-c object rendered as a new string (free()), or NULL. Puts obj. */
static char *render(struct json_object *obj)
{
	const char *text =
		obj ? json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE)
		    : NULL;
	char *copy = text ? strdup(text) : NULL;

	json_object_put(obj);
	return copy;
}

static nsync_rc rendered(char *text, char **response_json, struct nsync_err *err)
{
	*response_json = text;
	return text ? NSYNC_OK : nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
}

/* A subscription row as JSON (never its token). Columns: key, kind,
 * user_id, verified (t/f), created_at, verified_at, last_event_at. */
static struct json_object *subscription_json(PGresult *res, int row)
{
	static const char *const names[] = {"key",        "kind",        "user_id",      "verified",
					    "created_at", "verified_at", "last_event_at"};
	struct json_object *o = json_object_new_object();
	char path[128];
	int c;

	for (c = 0; o && c < 7; c++) {
		const char *v = PQgetvalue(res, row, c);
		if (c == 3)
			json_object_object_add(o, names[c], json_object_new_boolean(*v == 't'));
		else
			json_object_object_add(o, names[c],
					       PQgetisnull(res, row, c)
						       ? NULL
						       : json_object_new_string(v));
	}
	snprintf(path, sizeof(path), "/api/notion/webhooks/%s", PQgetvalue(res, row, 0));
	if (o)
		json_object_object_add(o, "path", json_object_new_string(path));
	return o;
}

#define SUBSCRIPTION_COLUMNS                                                                       \
	"key, kind, user_id::text, verification_token is not null, created_at::text,"              \
	" verified_at::text, last_event_at::text"

nsync_rc nsync_webhook_create(struct nsync_service *svc, const char *user_id, char **response_json,
			      struct nsync_err *err)
{
	static const char url_safe[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char bytes[KEY_BYTES];
	char key[KEY_BYTES * 4 / 3 + 1], uid[37];
	const char *params[2];
	struct json_object *o;
	PGresult *res;
	size_t i, o_len = 0;

	REQUIRE(svc);
	REQUIRE(response_json);

	*response_json = NULL;
	if (user_id && nsync_normalize_id(user_id, uid, err) != NSYNC_OK)
		return nsync__err_prefix(err, NSYNC_ERR_ARG, "user id");
	if (RAND_bytes(bytes, sizeof(bytes)) != 1)
		return nsync__err(err, NSYNC_ERR_INTERNAL, "no random bytes for a webhook key");
	/* Base64url without padding: 24 bytes are 32 characters. */
	for (i = 0; i < sizeof(bytes); i += 3) {
		unsigned v = (unsigned)bytes[i] << 16 | (unsigned)bytes[i + 1] << 8 | bytes[i + 2];
		key[o_len++] = url_safe[v >> 18 & 63];
		key[o_len++] = url_safe[v >> 12 & 63];
		key[o_len++] = url_safe[v >> 6 & 63];
		key[o_len++] = url_safe[v & 63];
	}
	key[o_len] = '\0';
	params[0] = key;
	params[1] = user_id ? uid : NULL;
	res = nsync__store_exec(&svc->store, "creating a webhook subscription",
				"insert into notion_webhook_subscriptions (key, kind, user_id)"
				" select $1, case when $2::uuid is null then 'oauth' else 'user' "
				"end,"
				" $2::uuid where $2::uuid is null or exists (select 1 from"
				" user_settings where user_id = $2::uuid)"
				" returning " SUBSCRIPTION_COLUMNS,
				2, params, err);
	if (!res)
		return NSYNC_ERR_DB;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return nsync__err(err, NSYNC_ERR_NOT_FOUND,
				  "user %s has no settings row; set a token first (notion-sync "
				  "set-token)",
				  uid);
	}
	o = subscription_json(res, 0);
	PQclear(res);
	if (o)
		json_object_object_add(o, "success", json_object_new_boolean(1));
	return rendered(render(o), response_json, err);
}

nsync_rc nsync_webhook_list(struct nsync_service *svc, char **response_json, struct nsync_err *err)
{
	struct json_object *o, *list;
	PGresult *res;
	int i;

	REQUIRE(svc);
	REQUIRE(response_json);

	*response_json = NULL;
	res = nsync__store_exec(&svc->store, "listing webhook subscriptions",
				"select " SUBSCRIPTION_COLUMNS ","
				" (select count(*) from notion_webhook_events e where"
				" e.subscription_key = s.key and e.status = 'received')"
				" from notion_webhook_subscriptions s order by created_at, key",
				0, NULL, err);
	if (!res)
		return NSYNC_ERR_DB;
	o = json_object_new_object();
	list = json_object_new_array();
	for (i = 0; list && i < PQntuples(res); i++) {
		struct json_object *s = subscription_json(res, i);
		if (s)
			json_object_object_add(s, "backlog",
					       json_object_new_int64(atoll(PQgetvalue(res, i, 7))));
		json_object_array_add(list, s);
	}
	PQclear(res);
	if (o) {
		json_object_object_add(o, "success", json_object_new_boolean(1));
		json_object_object_add(o, "subscriptions", list);
	} else {
		json_object_put(list);
	}
	return rendered(render(o), response_json, err);
}

/* The subscription row of key, selected by sql ($1 = key), in *res (the
 * caller clears it). NSYNC_ERR_NOT_FOUND (no message set: each caller
 * answers in its own way) when there is none; NSYNC_ERR_DB. */
static nsync_rc find_subscription(struct nsync_service *svc, const char *key, const char *sql,
				  PGresult **res, struct nsync_err *err)
{
	const char *params[] = {key};

	*res = nsync__store_exec(&svc->store, "reading a webhook subscription", sql, 1, params,
				 err);
	if (!*res)
		return NSYNC_ERR_DB;
	if (PQntuples(*res) == 1)
		return NSYNC_OK;
	PQclear(*res);
	*res = NULL;
	return NSYNC_ERR_NOT_FOUND;
}

nsync_rc nsync_webhook_show(struct nsync_service *svc, const char *key, char **response_json,
			    struct nsync_err *err)
{
	struct json_object *o;
	PGresult *res;
	nsync_rc rc;

	REQUIRE(svc);
	REQUIRE(key);
	REQUIRE(response_json);

	*response_json = NULL;
	rc = find_subscription(svc, key,
			       "select " SUBSCRIPTION_COLUMNS ", verification_token"
			       " from notion_webhook_subscriptions where key = $1",
			       &res, err);
	if (rc == NSYNC_ERR_NOT_FOUND)
		return nsync__err(err, rc, "no webhook subscription has this key");
	if (rc != NSYNC_OK)
		return rc;
	o = subscription_json(res, 0);
	if (o) {
		json_object_object_add(o, "success", json_object_new_boolean(1));
		/* The one place the token is shown: the operator pastes it into
		 * Notion's Webhooks tab to verify the subscription. */
		json_object_object_add(o, "verification_token",
				       PQgetisnull(res, 0, 7)
					       ? NULL
					       : json_object_new_string(PQgetvalue(res, 0, 7)));
	}
	PQclear(res);
	return rendered(render(o), response_json, err);
}

nsync_rc nsync_webhook_delete(struct nsync_service *svc, const char *key, struct nsync_err *err)
{
	const char *params[] = {key};
	long n = 0;

	REQUIRE(svc);
	REQUIRE(key);

	if (nsync__store_long(&svc->store, "deleting a webhook subscription",
			      "with d as (delete from notion_webhook_subscriptions where key = $1"
			      " returning 1) select count(*) from d",
			      1, params, &n, err) != NSYNC_OK)
		return NSYNC_ERR_DB;
	return n ? NSYNC_OK
		 : nsync__err(err, NSYNC_ERR_NOT_FOUND, "no webhook subscription has this key");
}

/* The answer of a refused delivery: status and the usual error body. */
static nsync_rc answer(int status, const char *code, const char *message, int *http_status,
		       char **response_json, struct nsync_err *err)
{
	*http_status = status;
	return rendered(nsync_error_json(code, message, 0), response_json, err);
}

static nsync_rc accepted(const char *status_word, int *http_status, char **response_json,
			 struct nsync_err *err)
{
	char text[96];

	*http_status = 200;
	snprintf(text, sizeof(text), "{\"success\":true,\"status\":\"%s\"}", status_word);
	return rendered(strdup(text), response_json, err);
}

/* A UUID member as dashed lowercase in out, or NULL when absent/invalid. */
static const char *uuid_at(struct json_object *obj, const char *key, char out[37])
{
	const char *v = nsync__json_string(obj, key);

	return v && nsync_normalize_id(v, out, NULL) == NSYNC_OK ? out : NULL;
}

/* An ISO 8601 timestamp as Notion writes them, or NULL (so that a bad one
 * cannot fail the insert, which Notion would retry for a day). */
static const char *time_at(struct json_object *obj, const char *key)
{
	const char *v = nsync__json_string(obj, key);

	if (!v || strlen(v) < 20 || strlen(v) > 35 || strspn(v, "0123456789-:.TZ+") != strlen(v) ||
	    v[4] != '-' || v[10] != 'T')
		return NULL;
	return v;
}

/* The first handshake stores its token; later ones keep the stored one. */
static nsync_rc handshake(struct nsync_service *svc, const char *key, const char *token,
			  int verified, int *http_status, char **response_json,
			  struct nsync_err *err)
{
	const char *params[] = {key, token};
	long stored = 0;

	if (verified)
		return accepted("already_verified", http_status, response_json, err);
	if (strlen(token) > 512)
		return answer(400, "invalid_request", "the verification token is too long",
			      http_status, response_json, err);
	if (nsync__store_long(&svc->store, "storing a verification token",
			      "with u as (update notion_webhook_subscriptions set"
			      " verification_token = $2, verified_at = now() where key = $1"
			      " and verification_token is null returning 1) select count(*) from u",
			      2, params, &stored, err) != NSYNC_OK)
		return NSYNC_ERR_DB;
	return accepted(stored ? "verification_token_stored" : "already_verified", http_status,
			response_json, err);
}

/* Insert the event: one row per user it concerns (the subscription's
 * user, or the OAuth users of its workspace; a row without a user when
 * none is known, recorded as ignored). */
static nsync_rc store_event(struct nsync_service *svc, const char *key, struct json_object *ev,
			    int *http_status, char **response_json, int *wake,
			    struct nsync_err *err)
{
	struct json_object *entity = NULL, *data = NULL, *parent = NULL, *v;
	char event_id[37], entity_id[37], parent_id[37], parent_ds[37], workspace[37];
	char attempt[16] = "";
	const char *type = nsync__json_string(ev, "type");
	const char *ignore_why = "";
	char why[160];
	const char *params[13];
	PGresult *res;
	long received;

	if (!uuid_at(ev, "id", event_id) || !type || strlen(type) > 100)
		return answer(400, "invalid_request", "the event has no valid \"id\" or \"type\"",
			      http_status, response_json, err);
	json_object_object_get_ex(ev, "entity", &entity);
	json_object_object_get_ex(ev, "data", &data);
	if (data)
		json_object_object_get_ex(data, "parent", &parent);
	if (json_object_object_get_ex(ev, "attempt_number", &v) &&
	    json_object_is_type(v, json_type_int))
		snprintf(attempt, sizeof(attempt), "%d", json_object_get_int(v));
	if (nsync__event_class(type) == NSYNC_EVENT_IGNORED) {
		snprintf(why, sizeof(why), "event type %.100s is not synced", type);
		ignore_why = why;
	} else if (!uuid_at(entity, "id", entity_id)) {
		ignore_why = "the event names no entity id";
	}
	params[0] = key;
	params[1] = event_id;
	params[2] = type;
	params[3] = uuid_at(entity, "id", entity_id);
	params[4] = nsync__json_string(entity, "type");
	params[5] = uuid_at(parent, "id", parent_id);
	params[6] = nsync__json_string(parent, "type");
	params[7] = uuid_at(ev, "workspace_id", workspace);
	params[8] = uuid_at(parent, "data_source_id", parent_ds);
	params[9] = time_at(ev, "timestamp");
	params[10] = attempt[0] ? attempt : NULL;
	params[11] = ignore_why;
	params[12] = NULL;
	if (params[4] && strlen(params[4]) > 40)
		params[4] = NULL;
	if (params[6] && strlen(params[6]) > 40)
		params[6] = NULL;
	res = nsync__store_exec(
		&svc->store, "storing a webhook event",
		"with sub as (select key, kind, user_id from notion_webhook_subscriptions"
		" where key = $1),"
		" targets as (select s.user_id from sub s where s.kind = 'user'"
		"  union select u.user_id from sub s join user_settings u on s.kind = 'oauth'"
		"  and u.notion_workspace_id = $8::uuid and u.notion_access_token is not null),"
		" rcpt as (select user_id from targets union all select null::uuid"
		"  where not exists (select 1 from targets)),"
		" ins as (insert into notion_webhook_events (subscription_key, event_id, user_id,"
		"  type, entity_id, entity_type, parent_id, parent_type, workspace_id,"
		"  parent_data_source_id, event_time, attempt_number, status, outcome)"
		"  select $1, $2::uuid, r.user_id, $3, $4::uuid, $5, $6::uuid, $7, $8::uuid,"
		"  $9::uuid, $10::timestamptz, $11::int,"
		"  case when r.user_id is null or $12 <> '' then 'ignored' else 'received' end,"
		"  case when $12 <> '' then $12 when r.user_id is null then"
		"  'no user with an OAuth token is known for this workspace' end"
		"  from rcpt r on conflict do nothing returning status),"
		" touch as (update notion_webhook_subscriptions set last_event_at = now()"
		"  where key = $1)"
		" select count(*), count(*) filter (where status = 'received') from ins",
		12, params, err);
	if (!res)
		return NSYNC_ERR_DB;
	received = strtol(PQgetvalue(res, 0, 1), NULL, 10);
	*wake = received > 0;
	if (strtol(PQgetvalue(res, 0, 0), NULL, 10) == 0) {
		PQclear(res);
		return accepted("duplicate", http_status, response_json, err);
	}
	PQclear(res);
	return accepted(received ? "stored" : "ignored", http_status, response_json, err);
}

nsync_rc nsync_webhook_receive(struct nsync_service *svc, const char *key, const char *body,
			       size_t len, const char *signature, int *http_status,
			       char **response_json, bool *wake, struct nsync_err *err)
{
	struct json_object *root = NULL;
	enum json_tokener_error jerr = json_tokener_success;
	enum nsync_webhook_signature check;
	const char *handshake_token;
	char *token = NULL;
	int verified, woke = 0;
	nsync_rc rc;

	REQUIRE(svc);
	REQUIRE(key);
	REQUIRE(body || len == 0);
	REQUIRE(http_status);
	REQUIRE(response_json);

	*response_json = NULL;
	*http_status = 500;
	if (wake)
		*wake = false;
	if (strlen(key) > 64 ||
	    strspn(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			"0123456789-_") != strlen(key) ||
	    strlen(key) < 22)
		return answer(404, "not_found", "no webhook subscription has this key", http_status,
			      response_json, err);
	{
		const char *params[] = {key};
		int found = 0;
		/* The token is copied and wiped from libpq's result. */
		rc = nsync__store_text(&svc->store, "reading a webhook subscription",
				       "select verification_token from notion_webhook_subscriptions"
				       " where key = $1",
				       1, params, &found, &token, err);
		if (rc != NSYNC_OK)
			return rc;
		if (!found)
			return answer(404, "not_found", "no webhook subscription has this key",
				      http_status, response_json, err);
	}
	verified = token != NULL;

	if (len > 0 && len < 0x7fffffff) {
		json_tokener *tok = json_tokener_new_ex(16);
		if (tok) {
			root = json_tokener_parse_ex(tok, body, (int)len);
			jerr = json_tokener_get_error(tok);
			json_tokener_free(tok);
		}
	}
	if (!root || jerr != json_tokener_success || !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		nsync__secret_free(token);
		return answer(verified ? 400 : 401, verified ? "invalid_request" : "unauthorized",
			      verified ? "the body is not a JSON object"
				       : "this subscription is not verified yet: only Notion's "
					 "verification request is accepted",
			      http_status, response_json, err);
	}
	handshake_token = nsync__json_string(root, "verification_token");
	if (handshake_token && !json_object_object_get_ex(root, "type", NULL)) {
		/* Signed with its own token when Notion signs it; unsigned is
		 * accepted (nothing to check it against yet), a wrong MAC not. */
		check = nsync__webhook_signature(signature, handshake_token, body, len);
		if (check == NSYNC_SIGNATURE_MISSING || check == NSYNC_SIGNATURE_VALID)
			rc = handshake(svc, key, handshake_token, verified, http_status,
				       response_json, err);
		else
			rc = answer(401, "unauthorized", nsync__webhook_signature_problem(check),
				    http_status, response_json, err);
	} else if (!verified) {
		rc = answer(401, "unauthorized",
			    "this subscription is not verified yet: only Notion's verification "
			    "request is accepted",
			    http_status, response_json, err);
	} else if ((check = nsync__webhook_signature(signature, token, body, len)) !=
		   NSYNC_SIGNATURE_VALID) {
		rc = answer(401, "unauthorized", nsync__webhook_signature_problem(check),
			    http_status, response_json, err);
	} else {
		rc = store_event(svc, key, root, http_status, response_json, &woke, err);
	}
	json_object_put(root);
	nsync__secret_free(token);
	if (wake)
		*wake = woke != 0;
	return rc;
}
