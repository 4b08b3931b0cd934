/*
 * credentials.h - who may sync what: users' Notion tokens (never logged, wiped after
 * use), the registry of their databases, and the signed requests already
 * accepted (so that a replay does nothing).
 */
#ifndef NSYNC_CREDENTIALS_H
#define NSYNC_CREDENTIALS_H

#include "notionsync.h"
#include "store.h"

/* nsync__store_user_token - the token of user_id: notion_access_token when
 * set, else notion_token. *token is new (free with nsync__secret_free).
 * *unplaced (may be NULL) is set when the token is an OAuth one whose
 * workspace is not recorded yet (events.h), read in the same statement.
 * NSYNC_ERR_NOT_FOUND if the user is unknown or has no token. */
nsync_rc nsync__store_user_token(struct nsync_store *s, const char *user_id, char **token,
				 int *unplaced, struct nsync_err *err);

/* nsync__secret_free - wipe and free a secret string. Accepts NULL. */
void nsync__secret_free(char *secret);

/* A (user, database, name) triple from the registry. */
struct nsync_target {
	char user_id[37];
	char database_id[37];
	char database_name[129];
};

/* nsync__store_targets - the enabled registry entries matching user_id and
 * database_id (either may be "" for any), in a stable order. When both are
 * "", every user with a token and no registered database also appears once
 * with an empty database_id (to be discovered). *list is new (free()). */
nsync_rc nsync__store_targets(struct nsync_store *s, const char *user_id, const char *database_id,
			      struct nsync_target **list, size_t *n, struct nsync_err *err);

/* nsync__store_register - insert or update a registry entry. */
nsync_rc nsync__store_register(struct nsync_store *s, const char *user_id, const char *database_id,
			       const char *name, const char *title, struct nsync_err *err);

/* nsync__store_set_token - upsert a user's token (see nsync_user_set_token). */
nsync_rc nsync__store_set_token(struct nsync_store *s, const char *user_id, const char *token,
				int oauth, struct nsync_err *err);

/* nsync__store_claim_signature - record a signed request's MAC; *first is
 * 0 when it was recorded before (a replay). NSYNC_ERR_DB on failure. */
nsync_rc nsync__store_claim_signature(struct nsync_store *s, const char *signature,
				      long long signed_at, int *first, struct nsync_err *err);

#endif
