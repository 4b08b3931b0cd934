/*
 * credentials.c - who may sync what (see credentials.h): users' Notion
 * tokens, the registry of their databases, and the signed requests already
 * accepted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "credentials.h"

void nsync__secret_free(char *secret)
{
	if (!secret)
		return;
	explicit_bzero(secret, strlen(secret));
	free(secret);
}

nsync_rc nsync__store_user_token(struct nsync_store *s, const char *user_id, char **token,
				 int *unplaced, struct nsync_err *err)
{
	const char *params[] = {user_id};
	PGresult *res;
	int found;

	*token = NULL;
	if (unplaced)
		*unplaced = 0;
	res = nsync__store_exec(s, "reading the user's token",
				"select notion_sync_token(u), u.notion_access_token is not null and"
				" u.notion_workspace_id is null from user_settings u where user_id "
				"="
				" $1::uuid",
				1, params, err);
	if (!res)
		return NSYNC_ERR_DB;
	found = PQntuples(res) == 1;
	if (found && !PQgetisnull(res, 0, 0)) {
		char *value = PQgetvalue(res, 0, 0);
		*token = strdup(value);
		explicit_bzero(value, strlen(value));
		if (!*token) {
			PQclear(res);
			return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
		}
	}
	if (found && unplaced)
		*unplaced = PQgetvalue(res, 0, 1)[0] == 't';
	PQclear(res);
	if (!found)
		return nsync__err(err, NSYNC_ERR_NOT_FOUND, "unknown user %s", user_id);
	if (!*token)
		return nsync__err(err, NSYNC_ERR_NOT_FOUND, "user %s has no Notion token", user_id);
	return NSYNC_OK;
}

nsync_rc nsync__store_targets(struct nsync_store *s, const char *user_id, const char *database_id,
			      struct nsync_target **list, size_t *n, struct nsync_err *err)
{
	/* Registered databases first; then users with a token but nothing
	 * registered (discovery), only for all-users or one-user requests. */
	static const char sql[] =
		"select d.user_id::text, d.database_id::text, d.database_name"
		"  from notion_databases d join user_settings u using (user_id)"
		" where d.enabled"
		"   and ($1 = '' or d.user_id = $1::uuid)"
		"   and ($2 = '' or d.database_id = $2::uuid)"
		"   and notion_sync_token(u) is not null"
		" union all "
		"select u.user_id::text, '', ''"
		"  from user_settings u"
		" where $2 = ''"
		"   and ($1 = '' or u.user_id = $1::uuid)"
		"   and notion_sync_token(u) is not null"
		"   and not exists (select 1 from notion_databases d where d.user_id = u.user_id)"
		" order by 1, 2";
	const char *params[] = {user_id, database_id};
	PGresult *res;
	int i, rows;

	*list = NULL;
	*n = 0;
	res = nsync__store_exec(s, "listing databases to sync", sql, 2, params, err);
	if (!res)
		return NSYNC_ERR_DB;
	rows = PQntuples(res);
	*list = calloc(rows ? (size_t)rows : 1, sizeof(**list));
	if (!*list) {
		PQclear(res);
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
	}
	for (i = 0; i < rows; i++) {
		struct nsync_target *t = &(*list)[i];
		snprintf(t->user_id, sizeof(t->user_id), "%s", PQgetvalue(res, i, 0));
		snprintf(t->database_id, sizeof(t->database_id), "%s", PQgetvalue(res, i, 1));
		snprintf(t->database_name, sizeof(t->database_name), "%s", PQgetvalue(res, i, 2));
	}
	*n = (size_t)rows;
	PQclear(res);
	return NSYNC_OK;
}

nsync_rc nsync__store_register(struct nsync_store *s, const char *user_id, const char *database_id,
			       const char *name, const char *title, struct nsync_err *err)
{
	const char *params[] = {user_id, database_id, name, title};
	PGresult *res = nsync__store_exec(s, "registering a database",
					  "insert into notion_databases (user_id, database_id, "
					  "database_name, notion_title)"
					  " values ($1::uuid, $2::uuid, $3, $4)"
					  " on conflict (user_id, database_id) do update"
					  "   set database_name = excluded.database_name,"
					  "       notion_title = coalesce(excluded.notion_title, "
					  "notion_databases.notion_title)",
					  4, params, err);

	if (!res) {
		if (err && strcmp(err->sqlstate, "23503") == 0)
			return nsync__err(err, NSYNC_ERR_NOT_FOUND, "unknown user %s", user_id);
		return NSYNC_ERR_DB;
	}
	PQclear(res);
	return NSYNC_OK;
}

nsync_rc nsync__store_set_token(struct nsync_store *s, const char *user_id, const char *token,
				int oauth, struct nsync_err *err)
{
	const char *params[] = {user_id, token};
	return nsync__store_run(
		s, "saving the user's token",
		oauth ? "insert into user_settings (user_id, notion_access_token) values "
			"($1::uuid, $2)"
			" on conflict (user_id) do update set notion_access_token = "
			"excluded.notion_access_token,"
			" updated_at = now()"
		      : "insert into user_settings (user_id, notion_token) values ($1::uuid, $2)"
			" on conflict (user_id) do update set notion_token = excluded.notion_token,"
			" updated_at = now()",
		2, params, err);
}

nsync_rc nsync__store_claim_signature(struct nsync_store *s, const char *signature,
				      long long signed_at, int *first, struct nsync_err *err)
{
	char t[24];
	const char *params[] = {signature, t};
	long claimed = 0;
	nsync_rc rc;

	snprintf(t, sizeof(t), "%lld", signed_at);
	/* Forget what is past the window (no replay of it can pass the age
	 * check any more), then claim this one. */
	rc = nsync__store_long(
		s, "checking a signed request",
		"with old as (delete from notion_sync_seen_signatures"
		"   where signed_at < now() - interval '10 minutes'),"
		" claimed as (insert into notion_sync_seen_signatures (signature, signed_at)"
		"   values ($1, to_timestamp($2::bigint)) on conflict (signature) do nothing"
		"   returning 1)"
		" select count(*) from claimed",
		2, params, &claimed, err);
	*first = claimed == 1;
	return rc;
}
