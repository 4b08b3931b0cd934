/*
 * migrate.c - applying the numbered SQL files of sql/ (see migrate.h).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "buf.h"
#include "migrate.h"

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
		rc = nsync__store_db_error(err, name, PQresultErrorMessage(res),
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
		rc = nsync__store_db_error(err, name, PQresultErrorMessage(res), NULL);
		PQclear(res);
		res = PQexec(s->conn, "rollback");
		PQclear(res);
		goto out;
	}
	PQclear(res);
	res = PQexec(s->conn, "commit");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = nsync__store_db_error(err, name, PQresultErrorMessage(res), NULL);
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
	rc = nsync__store_run(s, "preparing migrations",
			      "select pg_advisory_lock(hashtextextended('notion-sync:migrate', 0))",
			      0, NULL, err);
	if (rc != NSYNC_OK)
		goto out;
	rc = nsync__store_run(
		s, "preparing migrations",
		"create table if not exists notion_sync_schema_migrations ("
		" version text not null, applied_at timestamptz not null default now(),"
		" constraint notion_sync_schema_migrations_pkey primary key (version))",
		0, NULL, err);
	for (i = 0; rc == NSYNC_OK && i < n; i++) {
		const char *params[] = {names[i]};
		int done;

		res = nsync__store_exec(s, "reading applied migrations",
					"select 1 from notion_sync_schema_migrations where version "
					"= $1",
					1, params, err);
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
		res = PQexec(s->conn,
			     "select pg_advisory_unlock(hashtextextended('notion-sync:migrate', "
			     "0))");
		PQclear(res);
	}
out:
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}
