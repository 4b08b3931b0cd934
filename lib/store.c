/*
 * store.c - PostgreSQL access for the sync (see store.h).
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
	nsync__secret_free(s->conninfo); /* may hold a password */
	s->conninfo = NULL;
}

void nsync__secret_free(char *secret)
{
	if (!secret)
		return;
	explicit_bzero(secret, strlen(secret));
	free(secret);
}

/* Copy libpq's message without its trailing newline. */
static nsync_rc db_error(struct nsync_err *err, const char *what, const char *pgmsg,
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
		nsync_rc rc = db_error(err, "connecting", PQerrorMessage(s->conn), NULL);
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
		const char *params[] = {s->locks[i].key};
		PGresult *res = PQexecParams(s->conn, "select pg_try_advisory_lock(hashtextextended($1, 0))",
					     1, NULL, params, NULL, NULL, 0);
		int got = PQresultStatus(res) == PGRES_TUPLES_OK && PQgetvalue(res, 0, 0)[0] == 't';

		PQclear(res);
		if (!got) {
			log_line(s, "lock lost %s: another session took it while PostgreSQL was away",
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
		res = PQexecParams(s->conn, "select status = 'running' from notion_sync_runs where id = $1::bigint",
				   1, NULL, params, NULL, NULL, 0);
		running = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
			  PQgetvalue(res, 0, 0)[0] == 't';
		PQclear(res);
		if (!running) {
			log_line(s, "lock lost %s: run %ld was closed by another session while "
				    "PostgreSQL was away",
				 s->n_locks ? s->locks[0].label : "", s->guard_run_id);
			goto lost;
		}
	}
	return NSYNC_OK;
lost:
	/* Give back whatever was re-taken; the next holder must not wait on us. */
	for (i = 0; i < s->n_locks; i++) {
		const char *params[] = {s->locks[i].key};
		PGresult *res = PQexecParams(s->conn, "select pg_advisory_unlock(hashtextextended($1, 0))",
					     1, NULL, params, NULL, NULL, 0);
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
	db_error(err, what, res ? PQresultErrorMessage(res) : PQerrorMessage(s->conn),
		 res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL);
	drop_if_dead(s, res);
	PQclear(res);
	return NULL;
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

nsync_rc nsync__store_user_token(struct nsync_store *s, const char *user_id, char **token,
				 struct nsync_err *err)
{
	const char *params[] = {user_id};
	PGresult *res;

	*token = NULL;
	res = nsync__store_exec(s, "reading the user's token",
		   "select coalesce(nullif(notion_access_token, ''), nullif(notion_token, ''))"
		   " from user_settings where user_id = $1::uuid",
		   1, params, err);
	if (!res)
		return NSYNC_ERR_DB;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return nsync__err(err, NSYNC_ERR_NOT_FOUND, "unknown user %s", user_id);
	}
	if (PQgetisnull(res, 0, 0)) {
		PQclear(res);
		return nsync__err(err, NSYNC_ERR_NOT_FOUND, "user %s has no Notion token", user_id);
	}
	*token = strdup(PQgetvalue(res, 0, 0));
	explicit_bzero(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
	PQclear(res);
	if (!*token)
		return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
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
		"   and coalesce(nullif(u.notion_access_token, ''), nullif(u.notion_token, '')) is not null"
		" union all "
		"select u.user_id::text, '', ''"
		"  from user_settings u"
		" where $2 = ''"
		"   and ($1 = '' or u.user_id = $1::uuid)"
		"   and coalesce(nullif(u.notion_access_token, ''), nullif(u.notion_token, '')) is not null"
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

nsync_rc nsync__store_register(struct nsync_store *s, const char *user_id,
			       const char *database_id, const char *name, const char *title,
			       struct nsync_err *err)
{
	const char *params[] = {user_id, database_id, name, title};
	PGresult *res = nsync__store_exec(s, "registering a database",
			     "insert into notion_databases (user_id, database_id, database_name, notion_title)"
			     " values ($1::uuid, $2::uuid, $3, $4)"
			     " on conflict (user_id, database_id) do update"
			     "   set database_name = excluded.database_name,"
			     "       notion_title = coalesce(excluded.notion_title, notion_databases.notion_title)",
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
	PGresult *res = nsync__store_exec(s, "saving the user's token",
			     oauth ? "insert into user_settings (user_id, notion_access_token) values ($1::uuid, $2)"
				     " on conflict (user_id) do update set notion_access_token = excluded.notion_access_token,"
				     " updated_at = now()"
				   : "insert into user_settings (user_id, notion_token) values ($1::uuid, $2)"
				     " on conflict (user_id) do update set notion_token = excluded.notion_token,"
				     " updated_at = now()",
			     2, params, err);

	if (!res)
		return NSYNC_ERR_DB;
	PQclear(res);
	return NSYNC_OK;
}

nsync_rc nsync__store_try_lock(struct nsync_store *s, const char *key, const char *label,
			       int *got, struct nsync_err *err)
{
	const char *params[] = {key};
	PGresult *res;

	*got = 0;
	if (s->n_locks == NSYNC_MAX_LOCKS)
		return nsync__err(err, NSYNC_ERR_INTERNAL, "more than %d advisory locks held",
				  NSYNC_MAX_LOCKS);
	res = nsync__store_exec(s, "taking a lock", "select pg_try_advisory_lock(hashtextextended($1, 0))",
				1, params, err);
	if (!res)
		return NSYNC_ERR_DB;
	*got = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!*got)
		return NSYNC_OK;
	snprintf(s->locks[s->n_locks].key, sizeof(s->locks[0].key), "%s", key);
	snprintf(s->locks[s->n_locks].label, sizeof(s->locks[0].label), "%s", label);
	s->n_locks++;
	log_line(s, "lock taken %s", label);
	return NSYNC_OK;
}

void nsync__store_unlock_key(struct nsync_store *s, const char *key)
{
	const char *params[] = {key};
	size_t i;

	for (i = 0; i < s->n_locks && strcmp(s->locks[i].key, key) != 0; i++)
		;
	if (i == s->n_locks)
		return;
	/* A lost session lost its locks too; a lost lock is not ours to release. */
	if (!s->locks_lost && s->conn && PQstatus(s->conn) == CONNECTION_OK) {
		PGresult *res = PQexecParams(s->conn, "select pg_advisory_unlock(hashtextextended($1, 0))",
					     1, NULL, params, NULL, NULL, 0);
		PQclear(res);
	}
	log_line(s, "lock released %s", s->locks[i].label);
	s->locks[i] = s->locks[--s->n_locks];
	if (s->n_locks == 0) {
		s->locks_lost = 0;
		s->guard_run_id = 0;
	}
}

static void db_lock_key(const char *user_id, const char *database_id, char key[100],
			char label[100])
{
	snprintf(key, 100, "notion-sync:%s:%s", user_id, database_id);
	snprintf(label, 100, "user=%s database=%s", user_id, database_id);
}

nsync_rc nsync__store_lock(struct nsync_store *s, const char *user_id, const char *database_id,
			   struct nsync_err *err)
{
	const char *params[] = {user_id, database_id};
	char key[100], label[100];
	PGresult *res;
	int got;

	db_lock_key(user_id, database_id, key, label);
	if (nsync__store_try_lock(s, key, label, &got, err) != NSYNC_OK)
		return err ? err->code : NSYNC_ERR_DB;
	if (got)
		return NSYNC_OK;
	res = nsync__store_exec(s, "finding the running sync",
		   "select id from notion_sync_runs where user_id = $1::uuid and database_id = $2::uuid"
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
	char key[100], label[100];

	db_lock_key(user_id, database_id, key, label);
	nsync__store_unlock_key(s, key);
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
					" where id = $1::bigint and status = 'running' returning id",
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
		log_line(s, "lock lost %s: run %ld is no longer running (another session closed it)",
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
		res = PQexecParams(s->conn,
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

nsync_rc nsync__store_run_begin(struct nsync_store *s, const char *user_id,
				const char *database_id, const char *name, const char *trigger,
				const char *worker, long *run_id, struct nsync_err *err)
{
	char id[24];
	const char *params[] = {user_id, database_id, name, trigger, id, worker};
	PGresult *res;

	snprintf(id, sizeof(id), "%ld", *run_id);
	res = nsync__store_exec(s, "closing abandoned runs",
		   "update notion_sync_runs set status = 'error', finished_at = now(),"
		   " error_message = 'the worker running this sync stopped before it finished'"
		   " where user_id = $1::uuid and database_id = $2::uuid and status = 'running'"
		   " and id <> $3::bigint",
		   3, (const char *[]){user_id, database_id, id}, err);
	if (!res)
		return NSYNC_ERR_DB;
	PQclear(res);
	/* A queued run (id > 0) becomes running; otherwise a new row. */
	res = nsync__store_exec(s, "recording the run",
		   "with started as (update notion_sync_runs set status = 'running', started_at = now(),"
		   "   heartbeat_at = now(), database_id = $2::uuid,"
		   "   database_name = coalesce(nullif($3, ''), database_name), worker = $6"
		   "   where id = $5::bigint and $5::bigint > 0 returning id),"
		   " added as (insert into notion_sync_runs (user_id, database_id, database_name, trigger,"
		   "   heartbeat_at, worker)"
		   "   select $1::uuid, $2::uuid, nullif($3, ''), $4, now(), $6"
		   "   where not exists (select 1 from started) returning id)"
		   " select id from started union all select id from added",
		   6, params, err);
	if (!res)
		return NSYNC_ERR_DB;
	*run_id = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return NSYNC_OK;
}

nsync_rc nsync__store_run_finish(struct nsync_store *s, long run_id, const struct nsync_stats *st,
				 const char *status, const char *mode, const char *name,
				 const char *message, struct nsync_err *err)
{
	char id[24], seen[24], ins[24], upd[24], unch[24], perr[24], req[24], retr[24], wait[32],
		pacing[32], del[24], preq[24], orph[24], conns[24];
	const char *params[18];
	PGresult *res;

	snprintf(id, sizeof(id), "%ld", run_id);
	snprintf(seen, sizeof(seen), "%ld", st->pages_seen);
	snprintf(ins, sizeof(ins), "%ld", st->inserted);
	snprintf(upd, sizeof(upd), "%ld", st->updated);
	snprintf(unch, sizeof(unch), "%ld", st->unchanged);
	snprintf(perr, sizeof(perr), "%ld", st->page_errors);
	snprintf(req, sizeof(req), "%ld", st->notion_requests);
	snprintf(retr, sizeof(retr), "%ld", st->retries);
	snprintf(wait, sizeof(wait), "%.3f", st->wait_seconds);
	snprintf(pacing, sizeof(pacing), "%.3f", st->pacing_seconds);
	snprintf(del, sizeof(del), "%ld", st->deleted);
	snprintf(preq, sizeof(preq), "%ld", st->property_requests);
	snprintf(orph, sizeof(orph), "%ld", st->orphaned);
	snprintf(conns, sizeof(conns), "%ld", st->connections);
	params[0] = id;
	params[1] = status;
	params[2] = seen;
	params[3] = ins;
	params[4] = upd;
	params[5] = unch;
	params[6] = perr;
	params[7] = req;
	params[8] = retr;
	params[9] = wait;
	params[10] = pacing;
	params[11] = message;
	params[12] = mode;
	params[13] = del;
	params[14] = preq;
	params[15] = name;
	params[16] = orph;
	params[17] = conns;
	res = nsync__store_exec(s, "recording the run's outcome",
		   "with r as (update notion_sync_runs set status = $2, finished_at = now(),"
		   " pages_seen = $3, inserted = $4, updated = $5, unchanged = $6, page_errors = $7,"
		   " notion_requests = $8, retries = $9, rate_limit_wait_seconds = $10,"
		   " pacing_wait_seconds = $11, error_message = $12, mode = $13,"
		   " deleted = $14, property_requests = $15,"
		   " database_name = coalesce(database_name, $16), orphaned = $17, connections = $18"
		   " where id = $1::bigint returning user_id, database_id, status, finished_at, id)"
		   " update notion_databases d set last_synced_at = r.finished_at,"
		   " last_status = r.status, last_run_id = r.id"
		   " from r where d.user_id = r.user_id and d.database_id = r.database_id",
		   18, params, err);
	if (!res)
		return NSYNC_ERR_DB;
	PQclear(res);
	return NSYNC_OK;
}

nsync_rc nsync__store_load_hashes(struct nsync_store *s, const struct nsync_kind *kind,
				  const char *user_id, const char *database_id,
				  struct nsync_pagemap *map, struct nsync_err *err)
{
	char sql[256];
	const char *params[] = {user_id, database_id};
	PGresult *res;
	nsync_rc rc = NSYNC_OK;

	if (nsync__store_ready(s, err) != NSYNC_OK)
		return NSYNC_ERR_DB;
	snprintf(sql, sizeof(sql),
		 "select notion_page_id::text, content_hash from %s"
		 " where user_id = $1::uuid and notion_database_id = $2::uuid",
		 kind->table);
	if (!PQsendQueryParams(s->conn, sql, 2, NULL, params, NULL, NULL, 0) ||
	    !PQsetSingleRowMode(s->conn))
		return db_error(err, "reading stored hashes", PQerrorMessage(s->conn), NULL);
	while ((res = PQgetResult(s->conn)) != NULL) {
		ExecStatusType st = PQresultStatus(res);
		if (st == PGRES_SINGLE_TUPLE && rc == NSYNC_OK) {
			nsync_rc put_rc;
			if (!nsync__pagemap_put(map, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), &put_rc) &&
			    put_rc == NSYNC_ERR_NOMEM)
				rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory reading stored hashes");
			/* A hash that is not 32 hex digits (edited by hand) just
			 * means "changed": the page is rewritten. */
		} else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && rc == NSYNC_OK) {
			rc = db_error(err, "reading stored hashes", PQresultErrorMessage(res),
				      PQresultErrorField(res, PG_DIAG_SQLSTATE));
		}
		PQclear(res);
	}
	return rc;
}

nsync_rc nsync__store_upsert(struct nsync_store *s, const struct nsync_kind *kind,
			     const char *user_id, const char *database_id, const char *batch,
			     long *inserted, long *updated, struct nsync_err *err)
{
	char sql[2048], count_col[64] = "", count_val[64] = "", count_set[128] = "";
	const char *params[] = {user_id, database_id, batch};
	PGresult *res;
	int i, rows;

	if (kind->count_column) {
		snprintf(count_col, sizeof(count_col), ", %s", kind->count_column);
		snprintf(count_val, sizeof(count_val), ", (r->>'m')::integer");
		snprintf(count_set, sizeof(count_set), ", %s = excluded.%s", kind->count_column,
			 kind->count_column);
	}
	/* The WHERE clause makes an unchanged row cost nothing: no new tuple,
	 * no WAL, updated_at untouched. */
	snprintf(sql, sizeof(sql),
		 "insert into %s as t (user_id, notion_page_id, notion_database_id,"
		 " notion_data_source_id, %s, %s%s, properties, content_hash,"
		 " notion_created_time, notion_last_edited_time)"
		 " select $1::uuid, (r->>'p')::uuid, $2::uuid, (r->>'s')::uuid, r->>'n', r->>'x'%s,"
		 " r->'props', r->>'h', (r->>'c')::timestamptz, (r->>'e')::timestamptz"
		 " from jsonb_array_elements($3::jsonb) as r"
		 " on conflict (user_id, notion_page_id) do update set"
		 " notion_database_id = excluded.notion_database_id,"
		 " notion_data_source_id = excluded.notion_data_source_id,"
		 " %s = excluded.%s, %s = excluded.%s%s,"
		 " properties = excluded.properties, content_hash = excluded.content_hash,"
		 " notion_created_time = excluded.notion_created_time,"
		 " notion_last_edited_time = excluded.notion_last_edited_time, updated_at = now()"
		 " where t.content_hash is distinct from excluded.content_hash"
		 " returning (xmax = 0)",
		 kind->table, kind->title_column, kind->text_column, count_col, count_val,
		 kind->title_column, kind->title_column, kind->text_column, kind->text_column,
		 count_set);
	res = nsync__store_exec(s, "writing pages", sql, 3, params, err);
	if (!res)
		return NSYNC_ERR_DB;
	rows = PQntuples(res);
	for (i = 0; i < rows; i++) {
		if (PQgetvalue(res, i, 0)[0] == 't')
			(*inserted)++;
		else
			(*updated)++;
	}
	PQclear(res);
	return NSYNC_OK;
}

nsync_rc nsync__store_claim_signature(struct nsync_store *s, const char *signature,
				      long long signed_at, int *first, struct nsync_err *err)
{
	char t[24];
	const char *params[] = {signature, t};
	PGresult *res;

	snprintf(t, sizeof(t), "%lld", signed_at);
	/* Forget what is past the window (no replay of it can pass the age
	 * check any more), then claim this one. */
	res = nsync__store_exec(s, "checking a signed request",
				"with old as (delete from notion_sync_seen_signatures"
				"   where signed_at < now() - interval '10 minutes'),"
				" claimed as (insert into notion_sync_seen_signatures (signature, signed_at)"
				"   values ($1, to_timestamp($2::bigint)) on conflict (signature) do nothing"
				"   returning 1)"
				" select count(*) from claimed",
				2, params, err);
	if (!res)
		return NSYNC_ERR_DB;
	*first = strcmp(PQgetvalue(res, 0, 0), "1") == 0;
	PQclear(res);
	return NSYNC_OK;
}

/* --- migrations ------------------------------------------------------- */

static int is_migration_name(const char *name)
{
	size_t len = strlen(name);

	return len > 8 && name[0] >= '0' && name[0] <= '9' && name[1] >= '0' && name[1] <= '9' &&
	       name[2] >= '0' && name[2] <= '9' && name[3] == '_' &&
	       strcmp(name + len - 4, ".sql") == 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static nsync_rc read_file(const char *path, struct nsync_buf *out, struct nsync_err *err)
{
	FILE *f = fopen(path, "rb");
	char chunk[8192];
	size_t n;

	if (!f)
		return nsync__err(err, NSYNC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (nsync__buf_add(out, chunk, n) != NSYNC_OK) {
			fclose(f);
			return nsync__err(err, NSYNC_ERR_NOMEM, "out of memory reading %s", path);
		}
	if (ferror(f)) {
		fclose(f);
		return nsync__err(err, NSYNC_ERR_IO, "cannot read %s", path);
	}
	fclose(f);
	return NSYNC_OK;
}

/* Run one script in its own transaction and record it. */
static nsync_rc apply_one(struct nsync_store *s, const char *dir, const char *name,
			  struct nsync_err *err)
{
	struct nsync_buf path, script;
	const char *params[] = {name};
	PGresult *res;
	nsync_rc rc;

	nsync__buf_init(&path, 4096);
	nsync__buf_init(&script, 16u << 20);
	if (nsync__buf_printf(&path, "%s/%s", dir, name) != NSYNC_OK) {
		rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
		goto out;
	}
	rc = read_file(path.data, &script, err);
	if (rc != NSYNC_OK)
		goto out;
	res = PQexec(s->conn, "begin");
	PQclear(res);
	res = PQexec(s->conn, script.data ? script.data : "");
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = db_error(err, name, PQresultErrorMessage(res),
			      PQresultErrorField(res, PG_DIAG_SQLSTATE));
		PQclear(res);
		res = PQexec(s->conn, "rollback");
		PQclear(res);
		goto out;
	}
	PQclear(res);
	/* The file records itself too (so that plain psql works): no conflict. */
	res = PQexecParams(s->conn,
			   "insert into notion_sync_schema_migrations (version) values ($1)"
			   " on conflict (version) do nothing",
			   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		rc = db_error(err, name, PQresultErrorMessage(res), NULL);
		PQclear(res);
		res = PQexec(s->conn, "rollback");
		PQclear(res);
		goto out;
	}
	PQclear(res);
	res = PQexec(s->conn, "commit");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = db_error(err, name, PQresultErrorMessage(res), NULL);
	PQclear(res);
out:
	nsync__buf_free(&path);
	nsync__buf_free(&script);
	return rc;
}

nsync_rc nsync__store_migrate(struct nsync_store *s, const char *sql_dir, int *applied,
			      struct nsync_err *err)
{
	DIR *d;
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0, i;
	PGresult *res;
	nsync_rc rc = NSYNC_OK;

	if (applied)
		*applied = 0;
	d = opendir(sql_dir);
	if (!d)
		return nsync__err(err, NSYNC_ERR_IO, "cannot read the migrations folder %s: %s",
				  sql_dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		if (!is_migration_name(e->d_name))
			continue;
		if (n == cap) {
			char **grown = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof(*names));
			if (!grown) {
				rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
				break;
			}
			names = grown;
		}
		if (!(names[n] = strdup(e->d_name))) {
			rc = nsync__err(err, NSYNC_ERR_NOMEM, "out of memory");
			break;
		}
		n++;
	}
	closedir(d);
	if (rc == NSYNC_OK && n == 0)
		rc = nsync__err(err, NSYNC_ERR_IO, "no NNN_name.sql migrations in %s", sql_dir);
	if (rc != NSYNC_OK)
		goto out;
	qsort(names, n, sizeof(*names), cmp_names);

	/* One migrator at a time: a second waits, then finds nothing to do. */
	res = nsync__store_exec(s, "preparing migrations",
		   "select pg_advisory_lock(hashtextextended('notion-sync:migrate', 0))", 0, NULL, err);
	if (!res) {
		rc = NSYNC_ERR_DB;
		goto out;
	}
	PQclear(res);
	res = nsync__store_exec(s, "preparing migrations",
		   "create table if not exists notion_sync_schema_migrations ("
		   " version text not null, applied_at timestamptz not null default now(),"
		   " constraint notion_sync_schema_migrations_pkey primary key (version))",
		   0, NULL, err);
	if (!res)
		rc = NSYNC_ERR_DB;
	PQclear(res);
	for (i = 0; rc == NSYNC_OK && i < n; i++) {
		const char *params[] = {names[i]};
		int done;

		res = nsync__store_exec(s, "reading applied migrations",
			   "select 1 from notion_sync_schema_migrations where version = $1", 1, params,
			   err);
		if (!res) {
			rc = NSYNC_ERR_DB;
			break;
		}
		done = PQntuples(res) > 0;
		PQclear(res);
		if (done)
			continue;
		rc = apply_one(s, sql_dir, names[i], err);
		if (rc == NSYNC_OK && applied)
			(*applied)++;
	}
	if (nsync__store_connection_ok(s)) {
		res = PQexec(s->conn, "select pg_advisory_unlock(hashtextextended('notion-sync:migrate', 0))");
		PQclear(res);
	}
out:
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}
