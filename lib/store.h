/*
 * store.h - the PostgreSQL session of a service, through libpq: the
 * connection, statements, the advisory locks it holds (re-taken after a
 * reconnect) and the heartbeat proving them. What is stored lives in the
 * modules above it: credentials.h (tokens, registry), runs.h (run rows),
 * upsert.h (sync tables), syncstate.h (watermarks), queue.h (queued runs),
 * migrate.h. Every value reaches SQL as a bound parameter; the only SQL
 * built at run time uses the static table and column names of mapping.c.
 */
#ifndef NSYNC_STORE_H
#define NSYNC_STORE_H

#include <libpq-fe.h>

#include "notionsync.h"

/* Most advisory locks one session holds at once (a worker's user lock
 * and one database lock). */
#define NSYNC_MAX_LOCKS 4

/* An advisory lock this session holds: its key text (hashed in SQL) and
 * how the log names it. */
struct nsync_held_lock {
	char user_id[37];
	char database_id[37]; /* "" for a queue worker's lock on the user */
	char label[100];      /* "user=<user> database=<database>" */
};

/* Session advisory locks die with their connection. The store keeps the
 * list of those it holds, so that a reconnect re-takes them, and proves
 * nothing else ran meanwhile (guard_run_id's row is still 'running': any
 * other sync of that database closes it first), or else refuses every
 * statement (locks_lost) until the holder has released them all. */
struct nsync_store {
	PGconn *conn;     /* owned; NULL until first use */
	char *conninfo;   /* owned; NULL = libpq defaults */
	nsync_log_fn log; /* where server notices go; may be NULL */
	void *log_data;
	struct nsync_held_lock locks[NSYNC_MAX_LOCKS];
	size_t n_locks;
	int locks_lost;    /* a reconnect could not re-take them: no statement runs */
	long guard_run_id; /* the run whose row proves the locks were not lost, or 0 */
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

/* nsync__store_run - nsync__store_exec for a statement whose result is not
 * needed: NSYNC_OK or NSYNC_ERR_DB. */
nsync_rc nsync__store_run(struct nsync_store *s, const char *what, const char *sql, int n,
			  const char *const *params, struct nsync_err *err);

/* nsync__store_long - the same, keeping the first column of the first row
 * as a number in *value (0 when there is no row or it is NULL). */
nsync_rc nsync__store_long(struct nsync_store *s, const char *what, const char *sql, int n,
			   const char *const *params, long *value, struct nsync_err *err);

/* nsync__store_count - the same, keeping in *count (count may be NULL) the
 * number of rows the statement changed or returned. */
nsync_rc nsync__store_count(struct nsync_store *s, const char *what, const char *sql, int n,
			    const char *const *params, long *count, struct nsync_err *err);

/* nsync__store_text - the same, keeping a copy of the first column of the
 * first row in *value (new; free() it, or nsync__secret_free a secret), or
 * NULL when there is no row (then *found is 0) or the value is NULL. The
 * value is wiped from libpq's result before that is freed, as a token must
 * be. NSYNC_ERR_DB, NSYNC_ERR_NOMEM. */
nsync_rc nsync__store_text(struct nsync_store *s, const char *what, const char *sql, int n,
			   const char *const *params, int *found, char **value,
			   struct nsync_err *err);

/* nsync__store_db_error - fill err (NSYNC_ERR_DB) from libpq's message for
 * the step `what`, with the SQLSTATE; returns NSYNC_ERR_DB. */
nsync_rc nsync__store_db_error(struct nsync_err *err, const char *what, const char *pgmsg,
			       const char *sqlstate);

/* nsync__store_refresh - make sure the connection is alive before a
 * request: a connection whose server restarted while we were idle still
 * says CONNECTION_OK until used, so probe it and reconnect once if the
 * probe fails. NSYNC_ERR_DB if PostgreSQL cannot be reached. */
nsync_rc nsync__store_refresh(struct nsync_store *s, struct nsync_err *err);

/* nsync__store_try_lock - take, without waiting, the session advisory lock
 * of (user_id, database_id), or with database_id "" a queue worker's lock
 * on user_id; the keys are notion_sync_lock_key() and
 * notion_sync_user_lock_key() in SQL (007_one_definition.sql), so every
 * process agrees. Remembered for re-taking after a reconnect. *got is 0
 * when another session holds it. label names it in the log. NSYNC_ERR_DB
 * on failure, NSYNC_ERR_INTERNAL past NSYNC_MAX_LOCKS. */
nsync_rc nsync__store_try_lock(struct nsync_store *s, const char *user_id, const char *database_id,
			       const char *label, int *got, struct nsync_err *err);

/* nsync__store_unlock_key - release (and forget) a lock taken with
 * nsync__store_try_lock. Once none is held, a store that lost its locks
 * works again. */
void nsync__store_unlock_key(struct nsync_store *s, const char *user_id, const char *database_id);

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

/* nsync__store_connection_ok - 0 when the connection is gone or its locks
 * were lost (a statement failure then means "PostgreSQL unavailable", not
 * "bad row"). */
int nsync__store_connection_ok(const struct nsync_store *s);

#endif
