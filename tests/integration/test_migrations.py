"""test_migrations.py - the migrations in sql/ give one schema however they
are applied: by `notion-sync migrate`, by plain `psql -f` file after file
(what supabase/migrations, Flyway or sqitch do), or as an upgrade of a
database the previous release made (its files are kept in
tests/fixtures/release-a36ee39-sql/), whether the upgrade is applied by
`notion-sync migrate` or by psql. Compared with `pg_dump --schema-only` and
the recorded versions. Also: no migration and no SQL function changes the
grants of pg_net's tables (a stand-in `net` schema granted to PUBLIC as
pg_net grants it), and every constraint has a name given in the files.
"""
import glob
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "lib"))
import harness as h  # noqa: E402

PREVIOUS = os.path.join(h.SRCDIR, "tests", "fixtures", "release-a36ee39-sql")
FILES = sorted(glob.glob(os.path.join(h.SQL_DIR, "[0-9][0-9][0-9]_*.sql")))

t = h.Tap()
pg = h.Postgres()


def psql_file(db, path):
    out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", pg.dir,
                          "-U", pg.superuser, "-d", db, "-f", path],
                         capture_output=True, text=True)
    return out.returncode, out.stderr


def migrate(db):
    env = h.pg_env(pg)
    env["DATABASE_URL"] = f"host={pg.dir} dbname={db} user={pg.superuser}"
    return h.run_cli(["migrate", "--sql-dir", h.SQL_DIR], env)


def dump(db):
    out = subprocess.run([os.path.join(h.PG_BIN, "pg_dump"), "--schema-only", "--no-owner",
                          "-h", pg.dir, "-U", pg.superuser, "-d", db],
                         capture_output=True, text=True, check=True)
    # \restrict and \unrestrict carry a random key per dump.
    return "\n".join(line for line in out.stdout.splitlines()
                     if not line.startswith(("-- Dumped", "\\restrict", "\\unrestrict"))
                     and line.strip() != "")


def versions(db):
    return [r[0] for r in pg.psql("select version from notion_sync_schema_migrations "
                                  "order by version", db=db)]


def previous_release(db):
    """A database as the previous release's `notion-sync migrate` left it."""
    pg.psql("create table if not exists notion_sync_schema_migrations ("
            " version text primary key, applied_at timestamptz not null default now())", db=db)
    for path in sorted(glob.glob(os.path.join(PREVIOUS, "*.sql"))):
        code, err = psql_file(db, path)
        if code != 0:
            raise RuntimeError(f"previous release {os.path.basename(path)}: {err}")
        pg.psql(f"insert into notion_sync_schema_migrations (version) "
                f"values ('{os.path.basename(path)}')", db=db)


for db in ("by_migrate", "by_psql", "upgraded_migrate", "upgraded_psql", "with_net"):
    pg.psql(f"create database {db}", db="postgres")

# --- fresh: notion-sync migrate, and plain psql file by file --------------------
code, _, out, err = migrate("by_migrate")
t.ok(code == 0, "notion-sync migrate applies every file on a fresh database", out + err)
failed = []
for path in FILES:
    code, err = psql_file("by_psql", path)
    if code != 0:
        failed.append(f"{os.path.basename(path)}: {err.strip()}")
t.eq(failed, [], f"psql -f applies the {len(FILES)} files in order on a fresh database")
reference = dump("by_migrate")
t.ok(dump("by_psql") == reference, "plain psql gives exactly the schema notion-sync migrate gives "
     "(pg_dump --schema-only)")
t.eq(versions("by_psql"), [os.path.basename(p) for p in FILES],
     "each file records itself in notion_sync_schema_migrations under psql too")
t.eq(versions("by_migrate"), versions("by_psql"), "both record the same versions")
code, _, out, err = migrate("by_psql")
t.ok(code == 0 and dump("by_psql") == reference,
     "notion-sync migrate after psql finds nothing to do and changes nothing", out + err)

# --- upgrades of the previous release ---------------------------------------------
previous_release("upgraded_migrate")
previous_release("upgraded_psql")
code, _, out, err = migrate("upgraded_migrate")
t.ok(code == 0, "notion-sync migrate upgrades a database of the previous release", out + err)
done = set(versions("upgraded_psql"))
failed = []
for path in FILES:
    if os.path.basename(path) in done:
        continue
    code, err = psql_file("upgraded_psql", path)
    if code != 0:
        failed.append(f"{os.path.basename(path)}: {err.strip()}")
t.eq(failed, [], "psql -f of the new files upgrades a database of the previous release")
t.ok(dump("upgraded_migrate") == reference,
     "an upgraded database (notion-sync migrate) has exactly the fresh schema")
t.ok(dump("upgraded_psql") == reference,
     "an upgraded database (psql) has exactly the fresh schema")
t.eq(versions("upgraded_psql"), versions("by_psql"), "upgraded databases record the same versions")

# --- names: every constraint named in the files ------------------------------------
unnamed = pg.psql("select conrelid::regclass::text || ' ' || conname from pg_constraint c"
                  " join pg_namespace n on n.oid = c.connamespace"
                  " where n.nspname = 'public' and conname !~ ('^' || conrelid::regclass::text)"
                  " order by 1", db="by_psql")
t.eq(unnamed, [], "every constraint is named after its table (named in the files, not generated)")
text = "".join(open(p).read() for p in FILES)
t.ok("drop constraint" not in text.replace("drop constraint notion_sync_runs_status_check", ""),
     "constraints are dropped by their given names only")

# --- pg_net's grants are pg_net's ------------------------------------------------------
# pg_net grants its schema, tables and sequences to PUBLIC (pg_net.sql); a
# stand-in schema with the same grants shows whether anything here changes them.
pg.psql("create schema net; create table net.http_request_queue (id bigserial, headers jsonb);"
        " create unlogged table net._http_response (id bigint, status_code integer);"
        " grant usage on schema net to public;"
        " grant all on all sequences in schema net to public;"
        " grant all on all tables in schema net to public", db="with_net")
GRANTS = ("select c.relname || ':' || coalesce(c.relacl::text, '') from pg_class c"
          " join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'net'"
          " order by c.relname")
before = pg.psql(GRANTS, db="with_net")
code, _, out, err = migrate("with_net")
t.ok(code == 0, "migrations apply beside pg_net's schema", out + err)
t.eq(pg.psql(GRANTS, db="with_net"), before, "no migration changed a grant of pg_net's tables")
pg.psql("select set_sync_api_url('https://sync.example.test');"
        " select set_sync_api_secret('a-secret-of-enough-length-0123456789')", db="with_net")
t.eq(pg.psql(GRANTS, db="with_net"), before,
     "set_sync_api_url and set_sync_api_secret leave pg_net's grants alone")
t.ok(all("=arwdDxt/" in r[0] for r in pg.psql(GRANTS, db="with_net")
        if r[0].split(":")[0] in ("http_request_queue", "_http_response")),
     "PUBLIC keeps all rights on net.http_request_queue and net._http_response",
     pg.psql(GRANTS, db="with_net"))
t.eq(pg.psql("select count(*) from pg_proc where proname = 'notion_sync_close_pg_net'",
             db="upgraded_migrate"), [["0"]],
     "the function that revoked pg_net's grants is gone after an upgrade")

t.done()
