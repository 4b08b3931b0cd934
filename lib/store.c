/*
 * store.c - the PostgreSQL session of a service (see store.h): connecting
 * and reconnecting, running statements, the advisory locks the session
 * holds and their re-taking after a reconnect, and the heartbeat that
 * proves a run still holds them.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "http.h"
#include "store.h"

nsync_rc nsync__store_init(struct nsync_store *s, const char *conninfo, struct nsync_err *err)
{
	memset(s, 0, sizeof(*s));
	if (conninfo && !(s->conninfo = strdup(conninfo)))
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
	return NSYNC_OK;
}

void nsync__store_close(struct nsync_store *s)
{
	if (s->conn)
		PQfinish(s->conn);
	s->conn = NULL;
	if (s->conninfo) /* may hold a password */
		explicit_bzero(s->conninfo, strlen(s->conninfo));
	free(s->conninfo);
	s->conninfo = NULL;
}

/* Copy libpq's message without its trailing newline. */
nsync_rc nsync__store_db_error(struct nsync_err *err, const char *what, const char *pgmsg,
			       const char *sqlstate)
{
	char msg[400];
	size_t len;

	snprintf(msg, sizeof(msg), "%s", pgmsg ? pgmsg : "");
	len = strlen(msg);
	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = '\0';
	nsync__err(err, NSYNC_ERR_DB, "PostgreSQL: %s failed: %s", what, msg);
	if (err)
		snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", sqlstate ? sqlstate : "");
	return NSYNC_ERR_DB;
}

int nsync__store_connection_ok(const struct nsync_store *s)
{
	return s->conn && PQstatus(s->conn) == CONNECTION_OK && !s->locks_lost;
}

static void log_line(const struct nsync_store *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void log_line(const struct nsync_store *s, const char *fmt, ...)
{
	char line[600];
	va_list ap;

	if (!s->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->log(s->log_data, line);
}

static nsync_rc locks_lost_error(const struct nsync_store *s, struct nsync_err *err)
{
	return nsync__err(err, NSYNC_ERR_DB,
			  "the connection to PostgreSQL was lost and the lock of %s could not be "
			  "re-taken (another sync may hold it now); this run stopped writing",
			  s->n_locks ? s->locks[0].label : "the run");
}

/* Server notices (WARNING: terminating connection...) go to the log sink
 * as one line, not to stderr behind the caller's back. */
static void on_notice(void *arg, const char *message)
{
	struct nsync_store *s = arg;
	char line[600];
	size_t i;

	if (!s->log)
		return;
	snprintf(line, sizeof(line), "postgres: %s", message);
	for (i = 0; line[i]; i++)
		if (line[i] == '\n' || line[i] == '\r' || line[i] == '\t')
			line[i] = ' ';
	while (i > 0 && line[i - 1] == ' ')
		line[--i] = '\0';
	s->log(s->log_data, line);
}

/* After a failed statement: was it the connection that failed? libpq
 * reports the first failure on a connection whose server died while it
 * still says CONNECTION_OK; only the second would mark it bad, and the
 * third would reconnect. So judge by the error itself: no SQLSTATE (libpq's
 * own "server closed the connection unexpectedly"), class 08 (connection
 * exception) or 57P01-57P03 (shutdown, crash, cannot connect now) mean the
 * session, and its advisory locks, are gone: drop it now, so that the next
 * statement reconnects and re-takes the locks before it runs. */
static void drop_if_dead(struct nsync_store *s, const PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	int dead = PQstatus(s->conn) != CONNECTION_OK || !state || !*state ||
		   strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
		   strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0;

	if (dead) {
		PQfinish(s->conn);
		s->conn = NULL;
	}
}

/* The key of a lock in SQL: $1 the user, $2 the database or "". */
#define LOCK_KEY                                                                                   \
	"(case when $2 = '' then notion_sync_user_lock_key($1::uuid)"                              \
	" else notion_sync_lock_key($1::uuid, nullif($2, '')::uuid) end)"

/* Open a new connection (the old one, if any, is gone). */
static nsync_rc connect_now(struct nsync_store *s, struct nsync_err *err)
{
	/* connect_timeout first: the caller's conninfo, expanded after it, wins. */
	const char *keys[] = {"connect_timeout", "dbname", NULL};
	const char *values[] = {"10", s->conninfo && *s->conninfo ? s->conninfo : NULL, NULL};
	PGresult *res;

	s->conn = PQconnectdbParams(keys, values, 1);
	if (!s->conn)
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory connecting to PostgreSQL");
	if (PQstatus(s->conn) != CONNECTION_OK) {
		nsync_rc rc =
			nsync__store_db_error(err, "connecting", PQerrorMessage(s->conn), NULL);
		PQfinish(s->conn);
		s->conn = NULL;
		return rc;
	}
	PQsetNoticeProcessor(s->conn, on_notice, s);
	/* Timestamps go out as UTC ISO text; clients never depend on the server's zone. */
	res = PQexec(s->conn, "set time zone 'UTC'; set application_name = 'notion-sync'");
	PQclear(res);
	return NSYNC_OK;
}

/* After a reconnect: take every remembered lock again, then check the
 * guarded run is still running. Any failure marks the locks lost. */
static nsync_rc retake_locks(struct nsync_store *s, struct nsync_err *err)
{
	size_t i;

	for (i = 0; i < s->n_locks; i++) {
		const char *params[] = {s->locks[i].user_id, s->locks[i].database_id};
		PGresult *res = PQexecParams(s->conn, "select pg_try_advisory_lock(" LOCK_KEY ")",
					     2, NULL, params, NULL, NULL, 0);
		int got = PQresultStatus(res) == PGRES_TUPLES_OK && PQgetvalue(res, 0, 0)[0] == 't';

		PQclear(res);
		if (!got) {
			log_line(s,
				 "lock lost %s: another session took it while PostgreSQL was away",
				 s->locks[i].label);
			goto lost;
		}
		log_line(s, "lock re-taken %s after reconnecting to PostgreSQL", s->locks[i].label);
	}
	if (s->guard_run_id > 0) {
		char id[24];
		const char *params[] = {id};
		PGresult *res;
		int running;

		snprintf(id, sizeof(id), "%ld", s->guard_run_id);
		res = PQexecParams(s->conn,
				   "select status = 'running' from notion_sync_runs where id = "
				   "$1::bigint",
				   1, NULL, params, NULL, NULL, 0);
		running = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
			  PQgetvalue(res, 0, 0)[0] == 't';
		PQclear(res);
		if (!running) {
			log_line(s,
				 "lock lost %s: run %ld was closed by another session while "
				 "PostgreSQL was away",
				 s->n_locks ? s->locks[0].label : "", s->guard_run_id);
			goto lost;
		}
	}
	return NSYNC_OK;
lost:
	/* Give back whatever was re-taken; the next holder must not wait on us. */
	for (i = 0; i < s->n_locks; i++) {
		const char *params[] = {s->locks[i].user_id, s->locks[i].database_id};
		PGresult *res = PQexecParams(s->conn, "select pg_advisory_unlock(" LOCK_KEY ")", 2,
					     NULL, params, NULL, NULL, 0);
		PQclear(res);
	}
	s->locks_lost = 1;
	return locks_lost_error(s, err);
}

nsync_rc nsync__store_ready(struct nsync_store *s, struct nsync_err *err)
{
	nsync_rc rc;

	if (s->locks_lost)
		return locks_lost_error(s, err);
	if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
		return NSYNC_OK;
	if (s->conn) {
		PQfinish(s->conn);
		s->conn = NULL;
	}
	rc = connect_now(s, err);
	/* Locks held and no connection: they died with the old one. */
	if (rc == NSYNC_OK && s->n_locks)
		rc = retake_locks(s, err);
	return rc;
}

PGresult *nsync__store_exec(struct nsync_store *s, const char *what, const char *sql, int n,
			    const char *const *params, struct nsync_err *err)
{
	PGresult *res;
	ExecStatusType st;

	if (nsync__store_ready(s, err) != NSYNC_OK)
		return NULL;
	res = PQexecParams(s->conn, sql, n, NULL, params, NULL, NULL, 0);
	st = PQresultStatus(res);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return res;
	nsync__store_db_error(err, what, res ? PQresultErrorMessage(res) : PQerrorMessage(s->conn),
			      res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL);
	drop_if_dead(s, res);
	PQclear(res);
	return NULL;
}

/* Run a statement and keep one number of its result in *value (value may
 * be NULL): the first column of the first row (0 when there is no row or
 * it is NULL), or with rows set the number of rows changed or returned. */
static nsync_rc run_for_number(struct nsync_store *s, const char *what, const char *sql, int n,
			       const char *const *params, int rows, long *value,
			       struct nsync_err *err)
{
	PGresult *res = nsync__store_exec(s, what, sql, n, params, err);
	const char *text;

	if (!res)
		return NSYNC_ERR_DB;
	if (rows)
		text = PQcmdTuples(res);
	else
		text = PQntuples(res) && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : "0";
	if (value)
		*value = strtol(text, NULL, 10);
	PQclear(res);
	return NSYNC_OK;
}

nsync_rc nsync__store_run(struct nsync_store *s, const char *what, const char *sql, int n,
			  const char *const *params, struct nsync_err *err)
{
	return run_for_number(s, what, sql, n, params, 0, NULL, err);
}

nsync_rc nsync__store_long(struct nsync_store *s, const char *what, const char *sql, int n,
			   const char *const *params, long *value, struct nsync_err *err)
{
	return run_for_number(s, what, sql, n, params, 0, value, err);
}

nsync_rc nsync__store_count(struct nsync_store *s, const char *what, const char *sql, int n,
			    const char *const *params, long *count, struct nsync_err *err)
{
	return run_for_number(s, what, sql, n, params, 1, count, err);
}

nsync_rc nsync__store_text(struct nsync_store *s, const char *what, const char *sql, int n,
			   const char *const *params, int *found, char **value,
			   struct nsync_err *err)
{
	PGresult *res = nsync__store_exec(s, what, sql, n, params, err);
	int null;

	*found = 0;
	*value = NULL;
	if (!res)
		return NSYNC_ERR_DB;
	*found = PQntuples(res) > 0;
	null = !*found || PQgetisnull(res, 0, 0);
	if (!null) {
		*value = strdup(PQgetvalue(res, 0, 0));
		explicit_bzero(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
	}
	PQclear(res);
	if (!null && !*value)
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
	return NSYNC_OK;
}

nsync_rc nsync__store_refresh(struct nsync_store *s, struct nsync_err *err)
{
	PGresult *res;

	if (s->conn && PQstatus(s->conn) == CONNECTION_OK) {
		res = PQexec(s->conn, "select 1");
		if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			PQclear(res);
			return NSYNC_OK;
		}
		PQclear(res);
		PQfinish(s->conn); /* dead or unusable: start over */
		s->conn = NULL;
	}
	return nsync__store_ready(s, err);
}

nsync_rc nsync__store_try_lock(struct nsync_store *s, const char *user_id, const char *database_id,
			       const char *label, int *got, struct nsync_err *err)
{
	const char *params[] = {user_id, database_id};
	struct nsync_held_lock *held;
	PGresult *res;

	*got = 0;
	if (s->n_locks == NSYNC_MAX_LOCKS)
		return nsync__err(err, NSYNC_ERR_INTERNAL, "more than %d advisory locks held",
				  NSYNC_MAX_LOCKS);
	res = nsync__store_exec(s, "taking a lock", "select pg_try_advisory_lock(" LOCK_KEY ")", 2,
				params, err);
	if (!res)
		return NSYNC_ERR_DB;
	*got = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!*got)
		return NSYNC_OK;
	held = &s->locks[s->n_locks++];
	snprintf(held->user_id, sizeof(held->user_id), "%s", user_id);
	snprintf(held->database_id, sizeof(held->database_id), "%s", database_id);
	snprintf(held->label, sizeof(held->label), "%s", label);
	log_line(s, "lock taken %s", label);
	return NSYNC_OK;
}

void nsync__store_unlock_key(struct nsync_store *s, const char *user_id, const char *database_id)
{
	const char *params[] = {user_id, database_id};
	size_t i;

	for (i = 0; i < s->n_locks && (strcmp(s->locks[i].user_id, user_id) != 0 ||
				       strcmp(s->locks[i].database_id, database_id) != 0);
	     i++)
		;
	if (i == s->n_locks)
		return;
	/* A lost session lost its locks too; a lost lock is not ours to release. */
	if (!s->locks_lost && s->conn && PQstatus(s->conn) == CONNECTION_OK) {
		PGresult *res = PQexecParams(s->conn, "select pg_advisory_unlock(" LOCK_KEY ")", 2,
					     NULL, params, NULL, NULL, 0);
		PQclear(res);
	}
	log_line(s, "lock released %s", s->locks[i].label);
	s->locks[i] = s->locks[--s->n_locks];
	if (s->n_locks == 0) {
		s->locks_lost = 0;
		s->guard_run_id = 0;
	}
}

nsync_rc nsync__store_lock(struct nsync_store *s, const char *user_id, const char *database_id,
			   struct nsync_err *err)
{
	const char *params[] = {user_id, database_id};
	char label[100];
	PGresult *res;
	int got;

	snprintf(label, sizeof(label), "user=%s database=%s", user_id, database_id);
	if (nsync__store_try_lock(s, user_id, database_id, label, &got, err) != NSYNC_OK)
		return err ? err->code : NSYNC_ERR_DB;
	if (got)
		return NSYNC_OK;
	res = nsync__store_exec(s, "finding the running sync",
				"select id from notion_sync_runs where user_id = $1::uuid and "
				"database_id = $2::uuid"
				" and status = 'running' order by id desc limit 1",
				2, params, err);
	nsync__err(err, NSYNC_ERR_BUSY, "database %s of user %s is being synced right now",
		   database_id, user_id);
	if (err)
		err->run_id = res && PQntuples(res) ? strtol(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	return NSYNC_ERR_BUSY;
}

void nsync__store_unlock(struct nsync_store *s, const char *user_id, const char *database_id)
{
	nsync__store_unlock_key(s, user_id, database_id);
}

/* Seconds a heartbeat keeps trying to reach PostgreSQL again: long enough
 * for a restart, short enough that a walk against a dead server stops. */
#define RECONNECT_FOR 5.0

nsync_rc nsync__store_heartbeat(struct nsync_store *s, long run_id, struct nsync_err *err)
{
	char id[24];
	const char *params[] = {id};
	double give_up = nsync__monotonic() + RECONNECT_FOR;
	PGresult *res;
	int alive;

	snprintf(id, sizeof(id), "%ld", run_id);
	for (;;) {
		res = nsync__store_exec(s, "heartbeat",
					"update notion_sync_runs set heartbeat_at = now()"
					" where id = $1::bigint and status = 'running' returning "
					"id",
					1, params, err);
		if (res || s->locks_lost || nsync__monotonic() >= give_up)
			break;
		if (s->conn)
			return NSYNC_ERR_DB; /* the statement itself failed, on a live session */
		/* The session died (dropped above) or reconnecting failed:
		 * PostgreSQL may be restarting; try again shortly. */
		nsync__sleep(0.25);
	}
	if (!res)
		return err ? err->code : NSYNC_ERR_DB;
	alive = PQntuples(res) == 1;
	PQclear(res);
	if (!alive) {
		s->locks_lost = 1;
		log_line(s,
			 "lock lost %s: run %ld is no longer running (another session closed it)",
			 s->n_locks ? s->locks[0].label : "", run_id);
		return locks_lost_error(s, err);
	}
	return NSYNC_OK;
}

void nsync__store_run_abandon(struct nsync_store *s, long run_id, const char *message)
{
	char id[24];
	const char *params[] = {id, message};
	int attempt;

	if (run_id <= 0)
		return;
	snprintf(id, sizeof(id), "%ld", run_id);
	/* Bypasses locks_lost on purpose: the row is closed only if it is
	 * still running, which no other run's row can be. */
	for (attempt = 0; attempt < 2; attempt++) {
		PGresult *res;
		int done;

		if (!s->conn && connect_now(s, NULL) != NSYNC_OK)
			return;
		res = PQexecParams(
			s->conn,
			"update notion_sync_runs set status = 'error', finished_at = now(),"
			" error_message = $2 where id = $1::bigint and status = 'running'",
			2, NULL, params, NULL, NULL, 0);
		done = PQresultStatus(res) == PGRES_COMMAND_OK;
		if (!done)
			drop_if_dead(s, res);
		PQclear(res);
		if (done || s->conn)
			return;
	}
}
