#!/usr/bin/env python3
"""test_cli.py - the command-line front end (cli/notion-sync) against a real
PostgreSQL 15 and the Notion emulator: usage and exit codes, migrations,
storing tokens, registering and syncing databases, failures. Prints TAP.

Scenarios, each on its own database (a clone of the migrated template, or an
empty one for migrate; tests/lib/scenario.py; PYTHONPATH=tests/lib to run
this file by hand, optionally naming scenarios):
  usage      usage and exit codes, no database needed;
  migrate    migrate an empty database, twice, and from NOTION_SYNC_SQL_DIR;
  set-token  tokens from stdin, NOTION_TOKEN, --oauth; refusals;
  register   an undashed upper-case id;
  sync       by database, --full, incremental, by user (registered);
  oauth      which of notion_access_token / notion_token is used;
  failures   unshared and unknown, PostgreSQL unreachable, bad configuration;
  worker     queued runs drained by threads.
After them: no run printed a token.
"""

import glob
import os
import re

import harness as h
import scenario

T1 = "secret_test_token_1"
T3 = "secret_test_token_3"
T4 = "secret_test_token_4"
T_BAD = "secret_test_token_invalid"  # unknown to the emulator
TOKENS = [T1, T3, T4, T_BAD]
U1 = "11111111-2222-3333-4444-555555555555"  # token via stdin
U2 = "22222222-2222-3333-4444-555555555555"  # token via NOTION_TOKEN
U3 = "33333333-2222-3333-4444-555555555555"  # OAuth valid, internal invalid
U4 = "44444444-2222-3333-4444-555555555555"  # internal valid, no OAuth
U6 = "66666666-2222-3333-4444-555555555555"  # OAuth invalid, internal valid
N = 120

t = h.Tap()
OUTPUTS = []  # (label, stdout, stderr) of every run


def cli(label, args, env, input_text=None):
    code, js, out, err = h.run_cli(args, env, input_text=input_text, timeout=60)
    OUTPUTS.append((label, out, err))
    return code, js, out, err


def show(code, out, err):
    return f"exit {code}\nstdout: {out[-1500:]}\nstderr: {err[-1500:]}"


emu = h.Emulator()   # boots while the cluster is made
pg = h.migrated_cluster()


def env_of(db):
    env = h.base_env(db, emu)
    env.pop("NOTION_TOKEN", None)
    env.pop("NOTION_SYNC_SQL_DIR", None)
    return env


def fresh(name, tokens=()):
    """(database, env): a clone of the template; tokens: (user, column, token)
    rows written into user_settings directly (what set-token would store)."""
    sql = "".join(f"insert into user_settings (user_id, {column}) values ('{user}', '{token}');"
                  for user, column, token in tokens)
    db = scenario.clone_database(pg, f"cli_{name.replace('-', '_')}", sql=sql or None)
    return db, env_of(db)


# --- the emulated Notion workspace -------------------------------------------------------
for tok in (T1, T3, T4):
    emu.control("POST", "/tokens", {"token": tok, "integration_name": "cli-it", "databases": []})
D1_DB = emu.control("POST", "/databases", {"title": "Characters", "token": T1})
D1 = D1_DB["database_id"]
emu.control("POST", "/generate", {"data_source_id": D1_DB["data_source_ids"][0], "count": N,
                                  "seed": 7, "kind": "Characters"})
for tok in (T3, T4):
    emu.control("POST", "/share", {"token": tok, "database_id": D1, "shared": True})
D_UNSHARED = emu.control("POST", "/databases", {"title": "Worlds"})["database_id"]


# ==========================================================================================

def usage():
    """Usage and exit codes (no database needed)."""
    env = env_of(pg)
    code, _, out, err = cli("--help", ["--help"], env)
    t.ok(code == 0 and out.startswith("usage: notion-sync") and "sync" in out and "migrate" in out,
         "--help -> 0 with usage on stdout", show(code, out, err))
    code, _, out, err = cli("no args", [], env)
    t.ok(code == 2 and "usage:" in err, "no arguments -> 2 with usage on stderr",
         show(code, out, err))
    code, _, out, err = cli("unknown command", ["frobnicate"], env)
    t.ok(code == 2 and "unknown command" in err, "unknown command -> 2", show(code, out, err))
    code, _, out, err = cli("sync bad user", ["sync", "--user", "not-a-uuid"], env)
    t.ok(code == 2 and "--user" in err, "sync --user not-a-uuid -> 2 naming --user",
         show(code, out, err))
    code, _, out, err = cli("sync bad database", ["sync", "--user", U1, "--database", "../x"], env)
    t.ok(code == 2 and "--database" in err, "sync --database ../x -> 2 naming --database",
         show(code, out, err))
    code, _, out, err = cli("sync stray arg", ["sync", "--user", U1, "extra"], env)
    t.eq(code, 2, "sync with a stray argument -> 2")
    code, _, out, err = cli("register bad name", ["register", "--user", U1, "--database",
                                                  "0123456789abcdef0123456789abcdef",
                                                  "--name", "Spells"], env)
    t.ok(code == 2 and "Characters" in err, "register --name Spells -> 2 listing the four kinds",
         show(code, out, err))
    code, _, out, err = cli("register missing", ["register", "--user", U1], env)
    t.eq(code, 2, "register without --database/--name -> 2")
    code, _, out, err = cli("--version", ["--version"], env)
    t.ok(code == 0 and re.match(r"notion-sync \S+", out), "--version -> 0", show(code, out, err))


def migrate():
    """migrate on an empty database (a copy of template0, not of the migrated template)."""
    db = scenario.clone_database(pg, "cli_migrate", template="template0")
    env = env_of(db)
    files = sorted(os.path.basename(p)
                   for p in glob.glob(os.path.join(h.SQL_DIR, "[0-9][0-9][0-9]_*.sql")))
    code, _, out, err = cli("migrate 1", ["migrate", "--sql-dir", h.SQL_DIR], env)
    m = re.search(r"migrations applied: (\d+)", out)
    t.ok(code == 0 and m and int(m.group(1)) >= 1, "first migrate -> 0, migrations applied: N >= 1",
         show(code, out, err))
    t.eq(int(m.group(1)) if m else None, len(files), "first migrate applied every sql/NNN_*.sql")
    code, _, out, err = cli("migrate 2", ["migrate", "--sql-dir", h.SQL_DIR], env)
    t.ok(code == 0 and out.strip() == "migrations applied: 0",
         "second migrate -> migrations applied: 0", show(code, out, err))
    code, _, out, err = cli("migrate env dir", ["migrate"], dict(env, NOTION_SYNC_SQL_DIR=h.SQL_DIR))
    t.ok(code == 0 and out.strip() == "migrations applied: 0",
         "migrate with NOTION_SYNC_SQL_DIR -> migrations applied: 0", show(code, out, err))
    rows = db.psql("select version, count(*) from notion_sync_schema_migrations group by version "
                   "order by version")
    t.eq(rows, [[f, "1"] for f in files], "notion_sync_schema_migrations lists each file once")
    code, _, out, err = cli("migrate missing dir", ["migrate", "--sql-dir", "/nonexistent"], env)
    t.ok(code == 2 and "/nonexistent" in err and re.search(r"cannot|no such|not", err, re.I),
         "migrate --sql-dir /nonexistent -> 2 with a message naming the folder",
         show(code, out, err))


def set_token():
    db, env = fresh("set-token")
    code, _, out, err = cli("set-token stdin", ["set-token", "--user", U1], env,
                            input_text=T1 + "\n")
    t.eq(code, 0, "set-token with the token on stdin -> 0")
    t.eq(db.psql(f"select notion_token, notion_access_token is null from user_settings "
                 f"where user_id = '{U1}'"), [[T1, "t"]], "stdin token stored in notion_token")
    t.ok(T1 not in out + err, "set-token does not echo the stdin token", show(code, out, err))
    code, _, out, err = cli("set-token env", ["set-token", "--user", U2], dict(env, NOTION_TOKEN=T1))
    t.eq(code, 0, "set-token with NOTION_TOKEN -> 0")
    t.eq(db.psql(f"select notion_token from user_settings where user_id = '{U2}'", out="scalar"),
         T1, "NOTION_TOKEN stored in notion_token")
    t.ok(T1 not in out + err, "set-token does not echo the NOTION_TOKEN token", show(code, out, err))
    code, _, out, err = cli("set-token oauth", ["set-token", "--user", U3, "--oauth"], env,
                            input_text=T3 + "\n")
    t.eq(code, 0, "set-token --oauth -> 0")
    t.eq(db.psql(f"select notion_access_token, notion_token is null from user_settings "
                 f"where user_id = '{U3}'"), [[T3, "t"]], "--oauth writes notion_access_token only")
    t.ok(T3 not in out + err, "set-token --oauth does not echo the token", show(code, out, err))
    code, _, out, err = cli("set-token empty", ["set-token", "--user", U6], env, input_text="")
    t.eq(code, 2, "set-token with nothing on stdin and no NOTION_TOKEN -> 2")
    code, _, out, err = cli("set-token bad user", ["set-token", "--user", "nope"], env,
                            input_text=T1 + "\n")
    t.eq(code, 2, "set-token --user nope -> 2")


def register():
    db, env = fresh("register", [(U2, "notion_token", T1)])
    code, _, out, err = cli("register", ["register", "--user", U2, "--database",
                                         D1.replace("-", "").upper(), "--name", "Characters"], env)
    t.eq(code, 0, "register (undashed upper-case id) -> 0")
    t.eq(db.psql(f"select database_id::text, database_name from notion_databases "
                 f"where user_id = '{U2}'"), [[D1, "Characters"]], "register wrote notion_databases")


def sync():
    db, env = fresh("sync", [(U1, "notion_token", T1), (U2, "notion_token", T1)])
    db.psql(f"insert into notion_databases (user_id, database_id, database_name) "
            f"values ('{U2}', '{D1}', 'Characters')")
    code, js, out, err = cli("sync 1", ["sync", "--user", U1, "--database", D1], env)
    js = js or {}
    t.ok(code == 0 and js.get("success") is True, "sync --user --database -> 0, success true",
         show(code, out, err))
    t.ok(all(k in js for k in ("success", "synced_count", "database_name", "database_id",
                               "user_id", "run_id", "inserted", "updated", "unchanged")),
         "sync prints the HTTP endpoint's JSON shape", js)
    stored = int(db.psql(f"select count(*) from notion_characters_sync where user_id = '{U1}'",
                         out="scalar"))
    t.eq((js.get("synced_count"), js.get("database_name"), stored), (N, "Characters", N),
         "synced_count N, database_name Characters, N rows in PostgreSQL")
    run_id = js.get("run_id") if isinstance(js.get("run_id"), int) else 0
    t.eq(db.psql(f"select status, trigger from notion_sync_runs where id = {run_id}"),
         [["success", "cli"]], "run_id names a success run with trigger cli")
    code, js, out, err = cli("sync 2", ["sync", "--user", U1, "--database", D1, "--full"], env)
    js = js or {}
    t.ok(code == 0 and js.get("synced_count") == 0 and js.get("unchanged") == N and
         js.get("mode") == "full",
         "unchanged re-run with --full -> 0, synced_count 0, unchanged N, mode full",
         show(code, out, err))
    code, js, out, err = cli("sync 2b", ["sync", "--user", U1, "--database", D1], env)
    js = js or {}
    t.ok(code == 0 and js.get("synced_count") == 0 and js.get("mode") == "incremental" and
         js.get("notion_requests") == 2,
         "unchanged re-run without --full -> incremental: 2 Notion requests, nothing written",
         show(code, out, err))
    code, js, out, err = cli("sync user only", ["sync", "--user", U2], env)
    js = js or {}
    res = js.get("results") or []
    t.ok(code == 0 and js.get("success") is True and [(r.get("database_id"), r.get("status"))
                                                       for r in res] == [(D1, "success")],
         "sync --user (registered database) -> 0 with one successful result",
         show(code, out, err))


def oauth():
    db, env = fresh("oauth", [(U3, "notion_access_token", T3)])
    cli("set-token U3 internal", ["set-token", "--user", U3], dict(env, NOTION_TOKEN=T_BAD))
    cli("set-token U4 internal", ["set-token", "--user", U4], dict(env, NOTION_TOKEN=T4))
    cli("set-token U6 internal", ["set-token", "--user", U6], dict(env, NOTION_TOKEN=T4))
    cli("set-token U6 oauth", ["set-token", "--user", U6, "--oauth"], dict(env, NOTION_TOKEN=T_BAD))
    t.eq(db.psql(f"select user_id::text, coalesce(notion_access_token, 'NULL'), notion_token "
                 f"from user_settings where user_id in ('{U3}', '{U4}', '{U6}') order by 1"),
         [[U3, T3, T_BAD], [U4, "NULL", T4], [U6, T_BAD, T4]], "precedence fixtures stored")
    code, js, out, err = cli("sync U3", ["sync", "--user", U3, "--database", D1], env)
    t.ok(code == 0 and (js or {}).get("synced_count") == N,
         "valid notion_access_token + invalid notion_token: syncs (OAuth token used)",
         show(code, out, err))
    code, js, out, err = cli("sync U4", ["sync", "--user", U4, "--database", D1], env)
    t.ok(code == 0 and (js or {}).get("synced_count") == N,
         "valid notion_token, notion_access_token NULL: syncs", show(code, out, err))
    code, js, out, err = cli("sync U6", ["sync", "--user", U6, "--database", D1], env)
    t.ok(code == 1 and (js or {}).get("success") is False
         and ((js or {}).get("error") or {}).get("code") == "notion_unauthorized",
         "invalid notion_access_token wins over a valid notion_token: exit 1 notion_unauthorized",
         show(code, out, err))


def failures():
    db, env = fresh("failures", [(U1, "notion_token", T1)])
    code, js, out, err = cli("sync unshared", ["sync", "--user", U1, "--database", D_UNSHARED],
                             env)
    e = (js or {}).get("error") or {}
    t.ok(code == 1 and (js or {}).get("success") is False and e.get("code") == "not_found"
         and isinstance(e.get("message"), str) and e["message"],
         "database not shared -> exit 1, {success:false, error:{code:not_found, message}}",
         show(code, out, err))
    code, js, out, err = cli("sync unknown user",
                             ["sync", "--user", "99999999-2222-3333-4444-555555555555",
                              "--database", D1], env)
    t.ok(code == 1 and ((js or {}).get("error") or {}).get("code") == "not_found",
         "unknown user -> exit 1 not_found", show(code, out, err))
    code, _, out, err = cli("health", ["health"], env)
    t.eq(code, 0, "health with PostgreSQL up -> 0")

    down = dict(env, DATABASE_URL="host=/nonexistent dbname=x")
    code, js, out, err = cli("sync pg down", ["sync", "--user", U1, "--database", D1], down)
    t.ok(code == 1 and ((js or {}).get("error") or {}).get("code") == "database_unavailable"
         and (js or {}).get("success") is False,
         "PostgreSQL unreachable: sync -> exit 1, code database_unavailable", show(code, out, err))
    code, _, out, err = cli("health pg down", ["health"], down)
    t.eq(code, 1, "PostgreSQL unreachable: health -> 1")
    code, _, out, err = cli("migrate pg down", ["migrate", "--sql-dir", h.SQL_DIR], down)
    t.eq(code, 1, "PostgreSQL unreachable: migrate -> 1")

    for var, value in (("NOTION_RATE_LIMIT", "abc"), ("NOTION_MAX_ATTEMPTS", "0"),
                       ("NOTION_SYNC_BATCH_SIZE", "12x")):
        code, _, out, err = cli(f"config {var}", ["sync", "--user", U1, "--database", D1],
                                dict(env, **{var: value}))
        t.ok(code == 2 and var in err, f"{var}={value} -> exit 2 naming {var}",
             show(code, out, err))
    code, _, out, err = cli("config health", ["health"], dict(env, NOTION_RATE_LIMIT="abc"))
    t.ok(code == 2 and "NOTION_RATE_LIMIT" in err, "configuration error on health -> 2",
         show(code, out, err))


def worker():
    """Queued runs drained by threads; U1 synced D1 once before, so the queued full
    walk finds every page unchanged."""
    db, env = fresh("worker", [(U1, "notion_token", T1)])
    cli("worker: the first sync", ["sync", "--user", U1, "--database", D1], env)
    db.psql(f"insert into notion_sync_runs (user_id, database_id, trigger, status, queued_at, "
            f"full_walk) values ('{U1}', '{D1}', 'cli', 'queued', now(), true)")
    queued = int(db.psql("select max(id) from notion_sync_runs", out="scalar"))
    code, _, out, err = cli("worker --once", ["worker", "--once", "--workers", "2"], env)
    t.ok(code == 0, "worker --once exits 0 once the queue is empty", show(code, out, err))
    t.eq(db.psql(f"select status, mode, unchanged from notion_sync_runs where id = {queued}"),
         [["success", "full", str(N)]], "worker ran the queued run as a full walk (full_walk kept)")
    t.eq(db.psql("select count(*) from notion_sync_runs where status in ('queued', 'running')",
                 out="scalar"), "0", "nothing is left queued or running")
    code, _, out, err = cli("worker bad option", ["worker", "--workers", "0"], env)
    t.ok(code == 2 and "--workers" in err, "worker --workers 0 -> usage error 2",
         show(code, out, err))


def no_token_printed():
    leaks = [(label, tok) for label, out, err in OUTPUTS for tok in TOKENS if tok in out + err]
    t.eq(leaks, [], f"no stdout/stderr of {len(OUTPUTS)} runs contains a token")


SCENARIOS = [("usage", usage), ("migrate", migrate), ("set-token", set_token),
             ("register", register), ("sync", sync), ("oauth", oauth), ("failures", failures),
             ("worker", worker)]

if __name__ == "__main__":
    scenario.run(t, SCENARIOS, note=h.note, after=no_token_printed)
