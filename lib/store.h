/*
 * store.h - everything the sync reads from or writes to PostgreSQL, through
 * libpq. Every value reaches SQL as a bound parameter; the only SQL built
 * at run time uses the static table and column names of mapping.c.
 */
#ifndef NSYNC_STORE_H
#define NSYNC_STORE_H

#include <libpq-fe.h>

#include "mapping.h"
#include "notionsync.h"
#include "pagemap.h"

/* Most advisory locks one session holds at once (a worker's user lock
 * and one database lock). */
#define NSYNC_MAX_LOCKS 4

/* An advisory lock this session holds: its key text (hashed in SQL) and
 * how the log names it. */
struct nsync_held_lock {
	char key[100];       /* "notion-sync:<user>:<database>" or "notion-sync:user:<user>" */
	char label[100];     /* "user=<user> database=<database>" */
};

/* Session advisory locks die with their connection. The store keeps the
 * list of those it holds, so that a reconnect re-takes them, and proves
 * nothing else ran meanwhile (guard_run_id's row is still 'running': any
 * other sync of that database closes it first), or else refuses every
 * statement (locks_lost) until the holder has released them all. */
struct nsync_store {
	PGconn *conn;        /* owned; NULL until first use */
	char *conninfo;      /* owned; NULL = libpq defaults */
	nsync_log_fn log;    /* where server notices go; may be NULL */
	void *log_data;
	struct nsync_held_lock locks[NSYNC_MAX_LOCKS];
	size_t n_locks;
	int locks_lost;      /* a reconnect could not re-take them: no statement runs */
	long guard_run_id;   /* the run whose row proves the locks were not lost, or 0 */
};

/* nsync__store_init - remember conninfo (copied; may be NULL). */
nsync_rc nsync__store_init(struct nsync_store *s, const char *conninfo, struct nsync_err *err);
void nsync__store_close(struct nsync_store *s);

/* nsync__store_ready - connect, or reconnect after a lost connection; a
 * reconnect re-takes the locks held (see struct nsync_store). NSYNC_ERR_DB
 * with libpq's reason (the password, if any, is never part of libpq's
 * messages), or saying the locks were lost. */
nsync_rc nsync__store_ready(struct nsync_store *s, struct nsync_err *err);

/* nsync__store_exec - run one statement with text parameters (connecting
 * first if needed). Returns the result, which the caller PQclears, or NULL
 * with err filled (NSYNC_ERR_DB naming `what`, with the SQLSTATE). */
PGresult *nsync__store_exec(struct nsync_store *s, const char *what, const char *sql, int n,
			    const char *const *params, struct nsync_err *err);

/* nsync__store_refresh - make sure the connection is alive before a
 * request: a connection whose server restarted while we were idle still
 * says CONNECTION_OK until used, so probe it and reconnect once if the
 * probe fails. NSYNC_ERR_DB if PostgreSQL cannot be reached. */
nsync_rc nsync__store_refresh(struct nsync_store *s, struct nsync_err *err);

/* nsync__store_user_token - the token of user_id: notion_access_token when
 * set, else notion_token. *token is new (free with nsync__secret_free).
 * NSYNC_ERR_NOT_FOUND if the user is unknown or has no token. */
nsync_rc nsync__store_user_token(struct nsync_store *s, const char *user_id, char **token,
				 struct nsync_err *err);

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
nsync_rc nsync__store_register(struct nsync_store *s, const char *user_id,
			       const char *database_id, const char *name, const char *title,
			       struct nsync_err *err);

/* nsync__store_set_token - upsert a user's token (see nsync_user_set_token). */
nsync_rc nsync__store_set_token(struct nsync_store *s, const char *user_id, const char *token,
				int oauth, struct nsync_err *err);

/* nsync__store_try_lock - take the session advisory lock named key
 * (hashed with hashtextextended in SQL, so every process agrees) without
 * waiting, and remember it. *got is 0 when another session holds it.
 * label names it in the log. NSYNC_ERR_DB on failure, NSYNC_ERR_INTERNAL
 * past NSYNC_MAX_LOCKS. */
nsync_rc nsync__store_try_lock(struct nsync_store *s, const char *key, const char *label,
			       int *got, struct nsync_err *err);

/* nsync__store_unlock_key - release (and forget) a lock taken with
 * nsync__store_try_lock. Once none is held, a store that lost its locks
 * works again. */
void nsync__store_unlock_key(struct nsync_store *s, const char *key);

/* nsync__store_lock - take the lock of (user, database) without waiting.
 * NSYNC_ERR_BUSY with err->run_id = the running run when another session
 * holds it. */
nsync_rc nsync__store_lock(struct nsync_store *s, const char *user_id, const char *database_id,
			   struct nsync_err *err);
void nsync__store_unlock(struct nsync_store *s, const char *user_id, const char *database_id);

/* nsync__store_heartbeat - note that run_id is alive, and prove it still
 * holds its locks: a lost connection is re-established (for up to a few
 * seconds while PostgreSQL restarts) and the locks re-taken. NSYNC_ERR_DB
 * when PostgreSQL stays away, or when the run's locks or row were lost (a
 * second sync took over): the caller must stop writing. */
nsync_rc nsync__store_heartbeat(struct nsync_store *s, long run_id, struct nsync_err *err);

/* nsync__store_run_abandon - after the locks were lost: mark run_id
 * 'error' with message, only if its row is still 'running' (no other run
 * has closed it). Best effort, on a fresh connection if need be. */
void nsync__store_run_abandon(struct nsync_store *s, long run_id, const char *message);

/* nsync__store_run_begin - start a run (status running) and return its id.
 * With *run_id > 0 that queued run is started; otherwise a new row is
 * added and *run_id receives its id. Runs of the same user and database
 * still marked running are closed as errors first: we hold the lock, so
 * their worker is gone. worker (may be NULL) names the worker thread. */
nsync_rc nsync__store_run_begin(struct nsync_store *s, const char *user_id,
				const char *database_id, const char *name, const char *trigger,
				const char *worker, long *run_id, struct nsync_err *err);

/* nsync__store_run_finish - record the outcome of a run ("success",
 * "error", "skipped") and update the registry's last_synced_at and
 * last_status. mode ("full", "incremental"), name (the kind, recorded when
 * the run had none yet) and message may be NULL. */
nsync_rc nsync__store_run_finish(struct nsync_store *s, long run_id, const struct nsync_stats *st,
				 const char *status, const char *mode, const char *name,
				 const char *message, struct nsync_err *err);

/* nsync__store_load_hashes - fill map with (page id, content hash) of the
 * rows of this user and database in kind's table. Streams the rows (single
 * row mode) so memory does not peak with the table size. */
nsync_rc nsync__store_load_hashes(struct nsync_store *s, const struct nsync_kind *kind,
				  const char *user_id, const char *database_id,
				  struct nsync_pagemap *map, struct nsync_err *err);

/* nsync__store_upsert - one statement for a batch document: a JSON array
 * of {"p","s","n","x","m","h","c","e","props"} objects (see sync.c). Adds
 * the rows inserted and updated (rows whose hash did not change are not
 * written) to *inserted and *updated. NSYNC_ERR_DB with err->sqlstate when
 * the statement fails. */
nsync_rc nsync__store_upsert(struct nsync_store *s, const struct nsync_kind *kind,
			     const char *user_id, const char *database_id, const char *batch,
			     long *inserted, long *updated, struct nsync_err *err);

/* nsync__store_connection_ok - 0 when the connection is gone or its locks
 * were lost (a statement failure then means "PostgreSQL unavailable", not
 * "bad row"). */
int nsync__store_connection_ok(const struct nsync_store *s);

/* nsync__store_claim_signature - record a signed request's MAC; *first is
 * 0 when it was recorded before (a replay). NSYNC_ERR_DB on failure. */
nsync_rc nsync__store_claim_signature(struct nsync_store *s, const char *signature,
				      long long signed_at, int *first, struct nsync_err *err);

/* nsync__store_migrate - see nsync_migrate. */
nsync_rc nsync__store_migrate(struct nsync_store *s, const char *sql_dir, int *applied,
			      struct nsync_err *err);

#endif
