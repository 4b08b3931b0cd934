"""test_migrations.py - the migrations in sql/ give one schema however they
are applied: by `notion-sync migrate`, by plain `psql -f` file after file
(what supabase/migrations, Flyway or sqitch do), or as an upgrade of a
database the previous release made (its files are kept in
tests/fixtures/release-a36ee39-sql/), whether the upgrade is applied by
`notion-sync migrate` or by psql. Compared with `pg_dump --schema-only` and
the recorded versions. Also: no migration and no SQL function changes the
grants of pg_net's tables (a stand-in `net` schema granted to PUBLIC as
pg_net grants it), and every constraint has a name given in the files.

Scenarios, each on databases of its own (or alone by name:
test_migrations.py upgrade):
  fresh     notion-sync migrate and psql -f on fresh databases: the same
            schema and versions; migrate after psql changes nothing;
  upgrade   a database of the previous release upgraded by notion-sync
            migrate and by psql: exactly the fresh schema, the same versions,
            the function that revoked pg_net's grants gone;
  names     every constraint named after its table (read in fresh's psql-made
            database, or in one of its own when run alone); dropped by name only;
  pg_net    beside a stand-in of pg_net's schema, neither the migrations nor
            set_sync_api_url / set_sync_api_secret change its grants.
The reference schema (a fresh `notion-sync migrate`) is made once, by the
first scenario that needs it; it is only read.
"""
import glob
import os
import subprocess

import harness as h
import scenario

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


def new_db(name):
    """A new empty database of the test's own cluster (each name made once)."""
    pg.psql(f"create database {name}", db="postgres")
    return name


def psql_files(db, skip=()):
    """psql -f every file of sql/ not in skip, in order; the failures."""
    failed = []
    for path in FILES:
        if os.path.basename(path) in skip:
            continue
        code, err = psql_file(db, path)
        if code != 0:
            failed.append(f"{os.path.basename(path)}: {err.strip()}")
    return failed


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


_REFERENCE = {}
_PSQL_APPLIED = {}  # a database made by psql -f alone (by fresh), read by names


def reference():
    """pg_dump --schema-only of a fresh `notion-sync migrate` (made once, then only read)."""
    if "dump" not in _REFERENCE:
        db = new_db("reference")
        code, _, out, err = migrate(db)
        if code != 0:
            raise RuntimeError(f"migrate of the reference database failed: {out}{err}")
        _REFERENCE["dump"] = dump(db)
        _REFERENCE["versions"] = versions(db)
    return _REFERENCE["dump"]


# --- fresh: notion-sync migrate, and plain psql file by file --------------------
def fresh():
    by_migrate, by_psql = new_db("by_migrate"), new_db("by_psql")
    code, _, out, err = migrate(by_migrate)
    t.ok(code == 0, "notion-sync migrate applies every file on a fresh database", out + err)
    failed = psql_files(by_psql)
    t.eq(failed, [], f"psql -f applies the {len(FILES)} files in order on a fresh database")
    if not failed:
        _PSQL_APPLIED["db"] = by_psql
    ref = dump(by_migrate)
    _REFERENCE.setdefault("dump", ref)
    _REFERENCE.setdefault("versions", versions(by_migrate))
    t.ok(dump(by_psql) == ref, "plain psql gives exactly the schema notion-sync migrate gives "
         "(pg_dump --schema-only)")
    t.eq(versions(by_psql), [os.path.basename(p) for p in FILES],
         "each file records itself in notion_sync_schema_migrations under psql too")
    t.eq(versions(by_migrate), versions(by_psql), "both record the same versions")
    code, _, out, err = migrate(by_psql)
    t.ok(code == 0 and dump(by_psql) == ref,
         "notion-sync migrate after psql finds nothing to do and changes nothing", out + err)


# --- upgrades of the previous release ---------------------------------------------
def upgrade():
    ref = reference()
    up_migrate, up_psql = new_db("upgraded_migrate"), new_db("upgraded_psql")
    previous_release(up_migrate)
    previous_release(up_psql)
    code, _, out, err = migrate(up_migrate)
    t.ok(code == 0, "notion-sync migrate upgrades a database of the previous release", out + err)
    t.eq(psql_files(up_psql, skip=set(versions(up_psql))), [],
         "psql -f of the new files upgrades a database of the previous release")
    t.ok(dump(up_migrate) == ref,
         "an upgraded database (notion-sync migrate) has exactly the fresh schema")
    t.ok(dump(up_psql) == ref,
         "an upgraded database (psql) has exactly the fresh schema")
    t.eq(versions(up_psql), _REFERENCE["versions"],
         "upgraded databases record the same versions")
    t.eq(pg.psql("select count(*) from pg_proc where proname = 'notion_sync_close_pg_net'",
                 db=up_migrate), [["0"]],
         "the function that revoked pg_net's grants is gone after an upgrade")


# --- names: every constraint named in the files ------------------------------------
def names():
    db = _PSQL_APPLIED.get("db")
    if db is None:
        db = new_db("named")
        failed = psql_files(db)
        if failed:
            raise RuntimeError(f"psql -f of sql/ failed: {failed}")
    unnamed = pg.psql("select conrelid::regclass::text || ' ' || conname from pg_constraint c"
                      " join pg_namespace n on n.oid = c.connamespace"
                      " where n.nspname = 'public' and conname !~ ('^' || conrelid::regclass::text)"
                      " order by 1", db=db)
    t.eq(unnamed, [],
         "every constraint is named after its table (named in the files, not generated)")
    text = "".join(open(p).read() for p in FILES)
    t.ok("drop constraint" not in text.replace("drop constraint notion_sync_runs_status_check", ""),
         "constraints are dropped by their given names only")


# --- pg_net's grants are pg_net's ------------------------------------------------------
# pg_net grants its schema, tables and sequences to PUBLIC (pg_net.sql); a
# stand-in schema with the same grants shows whether anything here changes them.
GRANTS = ("select c.relname || ':' || coalesce(c.relacl::text, '') from pg_class c"
          " join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'net'"
          " order by c.relname")


def pg_net():
    db = new_db("with_net")
    pg.psql("create schema net; create table net.http_request_queue (id bigserial, headers jsonb);"
            " create unlogged table net._http_response (id bigint, status_code integer);"
            " grant usage on schema net to public;"
            " grant all on all sequences in schema net to public;"
            " grant all on all tables in schema net to public", db=db)
    before = pg.psql(GRANTS, db=db)
    code, _, out, err = migrate(db)
    t.ok(code == 0, "migrations apply beside pg_net's schema", out + err)
    t.eq(pg.psql(GRANTS, db=db), before, "no migration changed a grant of pg_net's tables")
    pg.psql("select set_sync_api_url('https://sync.example.test');"
            " select set_sync_api_secret('a-secret-of-enough-length-0123456789')", db=db)
    t.eq(pg.psql(GRANTS, db=db), before,
         "set_sync_api_url and set_sync_api_secret leave pg_net's grants alone")
    t.ok(all("=arwdDxt/" in r[0] for r in pg.psql(GRANTS, db=db)
            if r[0].split(":")[0] in ("http_request_queue", "_http_response")),
         "PUBLIC keeps all rights on net.http_request_queue and net._http_response",
         pg.psql(GRANTS, db=db))


scenario.run(t, [("fresh", fresh), ("upgrade", upgrade), ("names", names), ("pg_net", pg_net)])
