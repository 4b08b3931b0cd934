#!/usr/bin/env python3
"""test_lockloss.py - issue 9, items 3 and 4: a sync never goes on without its
advisory locks when PostgreSQL goes away in the middle of a walk. Real
PostgreSQL 15 (restarted / stopped with pg_ctl -m immediate, which cuts every
session as a crash does), the Notion emulator with latency so that a full walk
takes ~17-20 s, the CLI and the FastCGI responder.

Who wrote what is proved inside PostgreSQL, not from timings: every sync runs
as its own login role (lockloss_a, lockloss_b, lockloss_c; superusers like the
harness's), and test-only row triggers log each row written to
notion_characters_sync and each run row written to notion_sync_runs with
session_user and clock_timestamp(). "After the lock was lost" is after
pg_postmaster_start_time() of the restarted server (a session-level advisory
lock cannot outlive the server). To make the competitor win the lock for sure,
the walk under test is stalled inside one Notion request (emulator "slow"
fault on its data source's query path, fired mid-walk) while PostgreSQL
restarts and the competitor starts.

Every scenario runs on its own database, a copy of a migrated template that
holds the logging triggers (the roles are the cluster's), with its own user and
token (scenario.run; all by default, or some by name: test_lockloss.py
competitor down). A restart or stop is the whole cluster's, as before.

Scenarios:
  restart     second full sync of an unchanged database, PostgreSQL restarted
              mid-walk, nobody competing: the sync re-takes its lock (held by
              its role again, log "re-took"/"lock re-taken"), ends success,
              wrote nothing, the table equals Notion;
  competitor  A reads 5 edited pages, stalls mid-walk; the pages are edited
              again, PostgreSQL restarts, B (same user and database) takes the
              lock and still walks when A resumes: A ends database_unavailable
              with "lock lost", its run row is never 'success', B succeeds, successful
              runs never overlap, A writes no row after the restart (the edited
              pages are written by B only, with the newest values), the next
              sync equals Notion;
  overtaken   as competitor, but B syncs the whole database (latency 0) while A
              is stalled, so the lock is free again when A resumes: A's run row
              was closed by B, so A must stop anyway; A's batch holds pages older
              than B's (edited again while A was stalled), and they must not
              replace B's;
  down        PostgreSQL stopped mid-walk and left down: the sync answers
              database_unavailable within 15 s (printed), not at the end of
              the walk; after a start, the abandoned run row is reaped
              (notion-sync worker --once, NOTION_SYNC_STALE_AFTER=2) and the
              next sync equals Notion;
  worker      an async full re-sync (5 edited pages) on a responder with
              NOTION_SYNC_WORKERS=1 stalls mid-walk, PostgreSQL restarts, a
              second worker (notion-sync worker --once, its own role) claims
              the same user: the two
              workers' writes never interleave, the stalled run does not end
              'success' and does end (not left running), the competitor's run
              succeeds, both tables equal Notion afterwards.
Set LOCKLOSS_KEEP_LOGS=1 to keep the CLI and responder output. Prints TAP and
timings. Every process a scenario starts is stopped by it (and
by the harness's cleanups on failure).
"""

import json
import os
import re
import tempfile
import time

import harness as h
import scenario

SECRET = "secret_test_lockloss_bearer_5d1e"
SYNC = "/api/notion/sync-to-postgres"
TABLE = "notion_characters_sync"
ROLES = ("lockloss_a", "lockloss_b", "lockloss_c")
N_PAGES = 4000           # 41 query requests per full walk
LATENCY_MS = 400         # -> a full walk of ~17 s
DOWN_LATENCY_MS = 500    # -> ~21 s, so that "at the end of the walk" is clearly > 15 s
STALL_MS = 7000          # the stalled request, long enough for restart + competitor
STARTED = time.monotonic()

t = h.Tap()
# no commit lost by an immediate stop
CLUSTER = h.Postgres(extra_conf=["synchronous_commit = on"])
pg = CLUSTER  # the running scenario's database (a copy of the template), rebound per scenario
emu = h.Emulator()
h.migrate(pg)
WORK = tempfile.mkdtemp(prefix="nsync-lockloss-")
if os.environ.get("LOCKLOSS_KEEP_LOGS"):
    h.note(f"CLI and responder output kept in {WORK}")
else:
    h.on_cleanup(lambda: __import__("shutil").rmtree(WORK, ignore_errors=True))

for role in ROLES:
    pg.psql(f"create role {role} login superuser")
pg.psql("""
create table lockloss_rows (
    seq bigserial primary key, at timestamptz not null default clock_timestamp(),
    who text not null default session_user, op text not null,
    user_id uuid, database_id uuid, page_id uuid, content_hash text);
create function lockloss_rows_log() returns trigger language plpgsql as $$
begin
    if tg_op = 'DELETE' then
        insert into lockloss_rows (op, user_id, database_id, page_id, content_hash)
        values (tg_op, old.user_id, old.notion_database_id, old.notion_page_id, old.content_hash);
        return old;
    end if;
    insert into lockloss_rows (op, user_id, database_id, page_id, content_hash)
    values (tg_op, new.user_id, new.notion_database_id, new.notion_page_id, new.content_hash);
    return new;
end $$;
create trigger lockloss_rows after insert or update or delete on notion_characters_sync
    for each row execute function lockloss_rows_log();
create table lockloss_runs (
    seq bigserial primary key, at timestamptz not null default clock_timestamp(),
    who text not null default session_user, op text not null, run_id bigint,
    user_id uuid, database_id uuid, old_status text, status text, worker text,
    error_message text);
create function lockloss_runs_log() returns trigger language plpgsql as $$
begin
    insert into lockloss_runs (op, run_id, user_id, database_id, old_status, status, worker,
                               error_message)
    values (tg_op, new.id, new.user_id, new.database_id,
            case when tg_op = 'UPDATE' then old.status end, new.status, new.worker,
            new.error_message);
    return new;
end $$;
create trigger lockloss_runs after insert or update on notion_sync_runs
    for each row execute function lockloss_runs_log();
""")


# --- helpers ----------------------------------------------------------------------

SCOPE = []  # stop functions of the processes the running scenario started


def stop_scope():
    while SCOPE:
        try:
            SCOPE.pop()()
        except Exception as exc:  # keep stopping the rest
            h.note(f"stopping a process failed: {exc}")


def q1(sql):
    return pg.scalar(sql)


def env_for(role, **extra):
    # One end per walk (NOTION_SYNC_SPLIT_WALK=0): the stalls below hold up
    # "the walk" at its (skip+1)th query, which a second, descending end
    # could take instead. That end only reads Notion and hands its answers
    # to the walk, which alone writes, under the locks these scenarios
    # test; test_concurrency.py checks walks from both ends.
    extra.setdefault("NOTION_SYNC_SPLIT_WALK", 0)
    env = h.base_env(pg, emu, **extra)
    env["DATABASE_URL"] = f"host={pg.dir} dbname={pg.dbname} user={role}"
    env.pop("NOTION_SYNC_FULL_INTERVAL", None)
    return env


def new_user(n, label):
    user = f"0d000000-0000-4000-8000-{n:012d}"
    token = f"secret_test_lockloss_{label}_token"
    emu.control("POST", "/tokens", {"token": token, "integration_name": "lockloss-" + label,
                                    "databases": []})
    pg.psql(f"insert into user_settings (user_id, notion_token) values ('{user}', '{token}')")
    return user, token


def make_db(token, count, seed):
    """(database id, data source id) of a new Characters database of count pages."""
    db = emu.make_database("Characters", token, count, seed)
    return db["database_id"], db["data_source_ids"][0]


def query_rx(ds):
    return "^/v1/data_sources/" + ds.replace("-", "-?") + "/query$"


def queries_seen(ds):
    rx = re.compile(query_rx(ds))
    return sum(1 for r in emu.requests() if rx.match(r["path"]))


def stall(ds, skip, delay_ms=STALL_MS):
    """The (skip+1)th query of ds from now on sleeps delay_ms before answering."""
    emu.control("DELETE", "/faults")
    emu.control("POST", "/faults", {"faults": [{"path": query_rx(ds), "kind": "slow",
                                                "delay_ms": delay_ms, "skip": skip,
                                                "count": 1}]})


def stall_fired():
    faults = emu.control("GET", "/faults")["faults"]
    return bool(faults) and faults[0].get("fired", 0) >= 1


class Cli:
    """`notion-sync ARGS` in the background, output in files."""

    def __init__(self, name, args, env):
        self.name = name
        self.out_path = os.path.join(WORK, name + ".out")
        self.err_path = os.path.join(WORK, name + ".err")
        self.out, self.err = open(self.out_path, "w"), open(self.err_path, "w")
        self.started = time.monotonic()
        self.proc = h.start_process([h.CLI] + list(args), env=env, stdout=self.out,
                                    stderr=self.err)
        SCOPE.append(lambda: h.stop_process(self.proc))
        self.ended = None

    def alive(self):
        if self.proc.poll() is None:
            return True
        if self.ended is None:
            self.ended = time.monotonic()
        return False

    def wait(self, timeout=120.0):
        """(exit code or None on timeout, parsed JSON or {}, stdout, stderr)."""
        try:
            self.proc.wait(timeout=timeout)
        except Exception:
            pass
        self.alive()
        code = self.proc.poll()
        h.stop_process(self.proc)
        self.out.flush()
        self.err.flush()
        out = open(self.out_path, errors="replace").read()
        err = open(self.err_path, errors="replace").read()
        js = {}
        try:
            js = json.loads(out) if out.strip().startswith("{") else {}
        except json.JSONDecodeError:
            pass
        return code, js, out, err


def sync_cli(name, role, user, db, full=True, **extra):
    args = ["sync", "--user", user, "--database", db] + (["--full"] if full else [])
    return Cli(name, args, env_for(role, **extra))


def show(code, js, out, err):
    return f"exit {code}\nstdout: {out[-1200:]}\nstderr: {err[-1500:]}"


def err_code(js):
    return (js.get("error") or {}).get("code") if isinstance(js, dict) else None


def locks_of(role):
    """Advisory locks granted to sessions of role right now."""
    return int(q1("select count(*) from pg_locks l join pg_stat_activity a on a.pid = l.pid "
                  f"where l.locktype = 'advisory' and l.granted and a.usename = '{role}'") or 0)


def epoch(ts_sql):
    v = q1(f"select extract(epoch from {ts_sql})::float8")
    return float(v) if v else None


def last_run_id(user, db):
    v = q1(f"select max(id) from notion_sync_runs where user_id = '{user}' "
           f"and database_id = '{db}'")
    return int(v) if v else None


def run_row(run_id):
    rows = h.json_rows(pg, "select id, status, worker, error_message, trigger,"
                           " extract(epoch from started_at)::float8 as s,"
                           " extract(epoch from finished_at)::float8 as f"
                           f" from notion_sync_runs where id = {int(run_id or 0)}")
    return rows[0] if rows else {}


def successful_overlaps(user, db):
    """Pairs of successful runs of (user, db) whose [started_at, finished_at] overlap."""
    runs = h.json_rows(pg, "select id, extract(epoch from started_at)::float8 as s,"
                           " extract(epoch from finished_at)::float8 as f from notion_sync_runs"
                           f" where user_id = '{user}' and database_id = '{db}'"
                           " and status = 'success' order by started_at")
    return [(a["id"], b["id"]) for i, a in enumerate(runs) for b in runs[i + 1:]
            if b["s"] < a["f"] and a["s"] < b["f"]]


def truth(ds):
    return {p["id"]: p for p in emu.control("GET", f"/pages?data_source_id={ds}")["results"]}


def check_truth(user, db, ds, label):
    """The (user, database) rows equal the emulator's ground truth: same pages, same
    columns, same complete properties, data source and times."""
    want = h.ground_truth(emu, None, [ds])
    rows = {pid: r for pid, r in h.table_rows(pg, TABLE, user).items()
            if r["database_id"] == db}
    missing, extra, bad = h.compare_rows("Characters", rows, want, times=True)
    return t.ok(not missing and not extra and not bad,
                f"{label}: the table equals Notion ({len(want)} pages, columns, properties, times)",
                f"rows {len(rows)}, missing {len(missing)} {missing[:3]}, extra {len(extra)} "
                f"{extra[:3]}, mismatches {len(bad)} {bad[:3]}")


def writes_by(role, user, db=None, after_sql=None):
    where = f"who = '{role}' and user_id = '{user}'"
    if db:
        where += f" and database_id = '{db}'"
    if after_sql:
        where += f" and at > {after_sql}"
    return int(q1(f"select count(*) from lockloss_rows where {where}") or 0)


def settle_latency(ms):
    emu.control("POST", "/config", {"latency_ms": ms})


def initial_sync(label, user, db, ds):
    settle_latency(0)
    c = sync_cli(label + "-initial", "lockloss_c", user, db, full=False)
    code, js, out, err = c.wait(120)
    t.ok(code == 0 and js.get("success") is True and js.get("inserted") == N_PAGES,
         f"{label}: the first sync inserts the {N_PAGES} pages", show(code, js, out, err))


def wait_until(pred, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def synced_database(n, label, seed):
    """(user, database id, data source id): scenario n's user and its Characters
    database of N_PAGES pages, synced once."""
    user, token = new_user(n, label)
    db, ds = make_db(token, N_PAGES, seed)
    initial_sync(label, user, db, ds)
    return user, db, ds


def start_walking_a(label, user, db, ds, latency_ms, queries):
    """(A, mid-walk): A's full sync of db with Notion answering after latency_ms,
    once A holds its lock and has sent `queries` query requests (mid-walk False
    when that did not happen within 40 s)."""
    emu.clear_requests()
    emu.control("DELETE", "/faults")
    settle_latency(latency_ms)
    a = sync_cli(label + "-A", "lockloss_a", user, db)
    ok = wait_until(lambda: not a.alive() or (locks_of("lockloss_a") >= 1
                                              and queries_seen(ds) >= queries), 40)
    return a, ok


# --- scenarios ---------------------------------------------------------------------

def restart():
    """a. PostgreSQL restarts mid-walk, nobody competes: re-take and go on."""
    h.note("--- restart: second full sync of an unchanged database, PostgreSQL restarted "
           "mid-walk, no competitor")
    user, db, ds = synced_database(1, "restart", 11)
    a, ok = start_walking_a("restart", user, db, ds, LATENCY_MS, 12)
    t.ok(ok and a.alive() and locks_of("lockloss_a") >= 1,
         f"restart: A is mid-walk ({queries_seen(ds)} of ~41 queries) holding its lock")
    run_id = last_run_id(user, db)
    at_restart = time.monotonic() - a.started
    secs = pg.restart()
    after = time.monotonic()
    h.note(f"restart: PostgreSQL restarted {at_restart:.1f}s into the walk, in {secs:.2f}s")
    h.note(f"restart: right after the restart A's role holds {locks_of('lockloss_a')} "
           "advisory locks")
    retaken = wait_until(lambda: locks_of("lockloss_a") >= 1 or not a.alive(), 10, 0.1)
    retaken = retaken and a.alive()
    took = time.monotonic() - after
    h.note(f"restart: A's lock held again after {took:.1f}s" if retaken
           else f"restart: A did not hold its lock again within {took:.1f}s of the restart "
                f"(A {'still running' if a.alive() else 'ended'})")
    t.ok(retaken, "restart: A re-takes its advisory lock within 10 s of the restart "
                  "(a session of its role holds it again while it walks)")
    code, js, out, err = a.wait(120)
    total = (a.ended or time.monotonic()) - a.started
    h.note(f"restart: A ended after {total:.1f}s (exit {code})")
    t.ok(code == 0 and js.get("success") is True and js.get("pages_seen") == N_PAGES
         and js.get("deleted") == 0 and js.get("mode") == "full",
         "restart: A ends success: full walk, all pages seen, nothing deleted",
         show(code, js, out, err))
    t.ok(re.search(r"re-took|lock re-taken", err) is not None,
         'restart: A\'s stderr says it re-took its lock ("re-took" / "lock re-taken")',
         err[-1500:])
    row = run_row(run_id)
    t.ok(row.get("status") == "success" and row.get("f") is not None,
         "restart: A's run row is 'success' with a finished_at", row)
    t.eq(writes_by("lockloss_a", user, db), 0, "restart: A wrote no row (nothing changed)")
    t.eq(q1(f"select count(*) from {TABLE} where user_id = '{user}'"), str(N_PAGES),
         f"restart: still {N_PAGES} rows (none lost)")
    check_truth(user, db, ds, "restart")
    t.eq(locks_of("lockloss_a"), 0, "restart: A released its lock")


def competitor_setup(n, label):
    user, db, ds = synced_database(n, label, 20 + n)
    pages = sorted(truth(ds).values(), key=lambda p: (p["created_time"], p["id"]))
    # Early pages: A reads them (edited, "v1") in its first answer, before it stalls,
    # and keeps them in its batch (5 changed rows: flushed at the end of its walk).
    edited = [p["id"] for p in pages[40:45]]
    edit(edited, 1000)
    return user, db, ds, edited


def edit(pages, base):
    for i, pid in enumerate(pages):
        emu.control("PATCH", f"/pages/{pid}", {"properties": {
            "Rating": {"type": "number", "number": base + i}}})


def start_stalled_a(label, user, db, ds):
    emu.clear_requests()
    settle_latency(LATENCY_MS)
    stall(ds, skip=8)
    a = sync_cli(label + "-A", "lockloss_a", user, db)
    fired = wait_until(lambda: stall_fired() or not a.alive(), 40)
    t.ok(fired and a.alive() and locks_of("lockloss_a") >= 1,
         f"{label}: A is mid-walk (stalled in its 9th query of ~41) holding its lock")
    return a, last_run_id(user, db), time.monotonic() - a.started


def start_b(label, user, db, a, at_stall):
    secs = pg.restart()
    b = sync_cli(label + "-B", "lockloss_b", user, db)
    b_locked = wait_until(lambda: locks_of("lockloss_b") >= 1 or not b.alive(), 10, 0.02)
    b_locked = b_locked and locks_of("lockloss_b") >= 1
    stall_left = STALL_MS / 1000.0 - (time.monotonic() - a.started - at_stall)
    h.note(f"{label}: A stalled {at_stall:.1f}s into its walk; restart took {secs:.2f}s; B holds "
           f"the lock with {stall_left:.1f}s of A's stall left")
    t.ok(b_locked and a.alive() and stall_left > 0,
         f"{label}: B holds the lock of (user, database) while A is still stalled")
    return b, last_run_id(user, db)


def check_a_stopped(label, a, at_stall, code_a, js_a, out_a, err_a):
    end_a = (a.ended or time.monotonic()) - a.started
    h.note(f"{label}: A ended {end_a:.1f}s after its start (exit {code_a}, "
           f"{err_code(js_a) or js_a.get('success')}); its stall ended at "
           f"{at_stall + STALL_MS / 1000.0:.1f}s")
    t.ok(code_a not in (0, None) and js_a.get("success") is False
         and err_code(js_a) == "database_unavailable",
         f"{label}: A ends with an error: non-zero exit, database_unavailable",
         show(code_a, js_a, out_a, err_a))
    t.ok("lock lost" in err_a, f'{label}: A\'s stderr says "lock lost"', err_a[-1500:])
    t.ok(end_a < at_stall + STALL_MS / 1000.0 + 5,
         f"{label}: A stopped within 5 s of its stall's end ({end_a:.1f}s), not at the end "
         "of its walk")


def check_runs(label, user, db, run_a, run_b, code_b, js_b, out_b, err_b):
    ra, rb = run_row(run_a), run_row(run_b)
    t.ok(run_a != run_b and ra.get("status") == "error",
         f"{label}: A's run row ends 'error'", (run_a, ra))
    hist = [r[0] for r in pg.psql("select who || ':' || coalesce(old_status, '-') || '>' || status"
                                  f" from lockloss_runs where run_id = {int(run_a or 0)}"
                                  " and old_status is distinct from status order by seq")]
    t.ok(all(not x.endswith(">success") for x in hist),
         f"{label}: A's run row was never written as 'success'", hist)
    t.ok(code_b == 0 and js_b.get("success") is True and rb.get("status") == "success",
         f"{label}: B ends success, its run row 'success'", show(code_b, js_b, out_b, err_b))
    t.eq(successful_overlaps(user, db), [],
         f"{label}: no two successful runs of (user, database) overlap in time")


def check_a_writes(label, user, db, run_b):
    late_a = writes_by("lockloss_a", user, db, "pg_postmaster_start_time()")
    t.eq(late_a, 0, f"{label}: A wrote no row after the restart (after its lock was lost)")
    after_b = writes_by("lockloss_a", user, db,
                        f"(select started_at from notion_sync_runs where id = {int(run_b or 0)})")
    t.eq(after_b, 0, f"{label}: A wrote no row after B started")


def check_edited(label, user, ds, edited, base, when):
    want = truth(ds)
    rows = h.table_rows(pg, TABLE, user)
    got = [(rows.get(p) or {}).get("properties", {}).get("Rating", {}).get("number")
           for p in edited]
    t.ok(got == [base + i for i in range(len(edited))]
         and all(rows[p]["last_edited_time"] == want[p]["last_edited_time"][:19]
                 for p in edited),
         f"{label}: {when}, the 5 pages edited while A was stalled hold Notion's newest "
         f"values (Rating {base}..), not A's older ones", got)


def next_sync(label, user, db, ds):
    settle_latency(0)
    emu.control("DELETE", "/faults")
    c = sync_cli(label + "-next", "lockloss_c", user, db)
    code, js, out, err = c.wait(120)
    t.ok(code == 0 and js.get("success") is True, f"{label}: the next full sync succeeds",
         show(code, js, out, err))
    check_truth(user, db, ds, f"{label}, next sync")
    t.eq(locks_of("lockloss_a") + locks_of("lockloss_b"), 0, f"{label}: no lock left behind")


def competitor():
    """b. PostgreSQL restarts mid-walk and a second sync takes the lock and still holds it
    when the first one's stalled request returns."""
    label = "competitor"
    h.note(f"--- {label}: A stalls mid-walk, PostgreSQL restarts, B takes the lock and walks "
           "on while A resumes")
    user, db, ds, edited = competitor_setup(2, label)
    a, run_a, at_stall = start_stalled_a(label, user, db, ds)
    edit(edited, 2000)  # newer than what A read: B reads these
    b, run_b = start_b(label, user, db, a, at_stall)
    wait_until(lambda: time.monotonic() - a.started > at_stall + STALL_MS / 1000.0 + 0.2, 30)
    t.ok(b.alive(), f"{label}: B is still walking (holding the lock) when A's stall ends")
    code_a, js_a, out_a, err_a = a.wait(120)
    b_alive_at_a_end = b.alive()
    code_b, js_b, out_b, err_b = b.wait(120)
    h.note(f"{label}: B took {(b.ended or time.monotonic()) - b.started:.1f}s (exit {code_b}); "
           f"B was {'still' if b_alive_at_a_end else 'no longer'} running when A ended")
    check_a_stopped(label, a, at_stall, code_a, js_a, out_a, err_a)
    check_runs(label, user, db, run_a, run_b, code_b, js_b, out_b, err_b)
    check_a_writes(label, user, db, run_b)
    last_writer = {r[0]: r[1] for r in pg.psql(
        "select distinct on (page_id) page_id::text, who from lockloss_rows "
        f"where user_id = '{user}' order by page_id, seq desc")}
    t.ok(all(last_writer.get(p) == "lockloss_b" for p in edited),
         f"{label}: the 5 edited pages were last written by B",
         {p: last_writer.get(p) for p in edited})
    check_edited(label, user, ds, edited, 2000, "before the next sync")
    next_sync(label, user, db, ds)


def overtaken():
    """b'. As competitor, but B finishes while A is stalled: A may re-take the (free) lock,
    but its run row was closed by B's run_begin, so it must stop and write nothing; its
    batch holds pages older than B's."""
    label = "overtaken"
    h.note(f"--- {label}: A stalls mid-walk, PostgreSQL restarts, B syncs the database "
           "completely while A is stalled")
    user, db, ds, edited = competitor_setup(5, label)
    a, run_a, at_stall = start_stalled_a(label, user, db, ds)
    edit(edited, 2000)
    settle_latency(0)  # B walks fast; A's stalled request already paid its latency
    b, run_b = start_b(label, user, db, a, at_stall)
    code_b, js_b, out_b, err_b = b.wait(60)
    stall_left = STALL_MS / 1000.0 - (time.monotonic() - a.started - at_stall)
    t.ok(code_b is not None and a.alive() and stall_left > 0,
         f"{label}: B finished with {stall_left:.1f}s of A's stall left")
    check_edited(label, user, ds, edited, 2000, "after B")
    code_a, js_a, out_a, err_a = a.wait(120)
    check_a_stopped(label, a, at_stall, code_a, js_a, out_a, err_a)
    t.ok(re.search(r"lock lost.*(run|closed|no longer running)", err_a) is not None,
         f"{label}: A's stderr says its run was closed by another session", err_a[-1500:])
    check_runs(label, user, db, run_a, run_b, code_b, js_b, out_b, err_b)
    check_a_writes(label, user, db, run_b)
    check_edited(label, user, ds, edited, 2000, "after A ended (before the next sync)")
    next_sync(label, user, db, ds)


def down():
    """c. PostgreSQL stops mid-walk and stays down."""
    h.note("--- down: PostgreSQL stopped mid-walk and left down")
    user, db, ds = synced_database(3, "down", 33)
    a, ok = start_walking_a("down", user, db, ds, DOWN_LATENCY_MS, 3)
    t.ok(ok and a.alive(), f"down: A is mid-walk ({queries_seen(ds)} of ~41 queries)")
    run_id = last_run_id(user, db)
    before = queries_seen(ds)
    pg.stop_server()
    stopped = time.monotonic()
    h.note(f"down: PostgreSQL stopped {stopped - a.started:.1f}s into the walk")
    code, js, out, err = a.wait(90)
    answered = (a.ended or time.monotonic()) - stopped
    calls = queries_seen(ds) - before
    h.note(f"down: A answered {answered:.1f}s after PostgreSQL stopped, having sent "
           f"{calls} more query requests to Notion (exit {code}, {err_code(js)})")
    t.ok(answered < 15.0, f"down: A answers within 15 s of the stop ({answered:.1f}s)")
    t.ok(code not in (0, None) and js.get("success") is False
         and err_code(js) == "database_unavailable",
         "down: A fails with database_unavailable", show(code, js, out, err))
    settle_latency(0)
    pg.start_server()
    status = q1(f"select status from notion_sync_runs where id = {int(run_id or 0)}")
    h.note(f"down: after the start, A's run row {run_id} says {status!r}")
    # A dead run's row can only be closed once PostgreSQL is back: by the reaper
    # (no heartbeat for NOTION_SYNC_STALE_AFTER and nobody holding its lock).
    time.sleep(2.2)
    w = Cli("down-reaper", ["worker", "--once", "--workers", "1"],
            env_for("lockloss_c", NOTION_SYNC_STALE_AFTER=2))
    wcode, _, wout, werr = w.wait(30)
    row = run_row(run_id)
    t.ok(wcode == 0 and row.get("status") == "error" and row.get("f") is not None,
         "down: the abandoned run row does not stay 'running': the reaper marks it error",
         (row, wcode, werr[-600:]))
    next_sync("down", user, db, ds)
    t.eq(q1(f"select count(*) from notion_sync_runs where user_id = '{user}' "
            "and status = 'running'"), "0", "down: no run of the user is left running")


def worker():
    """d. The per-user worker lock of asynchronous runs."""
    h.note("--- worker: async run on a responder (NOTION_SYNC_WORKERS=1) stalls, PostgreSQL "
           "restarts, a second worker claims the same user")
    n2 = 600
    user, token = new_user(4, "worker")
    d1, ds1 = make_db(token, N_PAGES, 44)
    d2, ds2 = make_db(token, n2, 45)
    initial_sync("worker", user, d1, ds1)
    # Database 1's queued run is a full re-sync with 5 edited pages: its only writes
    # come at the end of its walk, long after the restart.
    pages = sorted(truth(ds1).values(), key=lambda p: (p["created_time"], p["id"]))
    edit([p["id"] for p in pages[40:45]], 1000)
    settle_latency(LATENCY_MS)
    emu.clear_requests()
    stall(ds1, skip=4)
    env = env_for("lockloss_a", NOTION_SYNC_SECRET=SECRET, NOTION_SYNC_WORKERS=1)
    responder = h.Responder(env, processes=1)
    SCOPE.append(lambda: h.stop_responder(responder))
    nginx = h.Nginx(responder.port)
    SCOPE.append(lambda: h.stop_process(nginx.proc))
    hdrs = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}

    def enqueue(db):
        st, _, js = h.http("POST", nginx.url + SYNC, json.dumps(
            {"user_id": user, "database_id": db, "async": True, "full": True}), hdrs,
            timeout=30)
        runs = js.get("runs") if isinstance(js, dict) else None
        return st, (runs[0].get("run_id") if runs else None), js

    st, r1, js = enqueue(d1)
    t.ok(st == 202 and r1, "worker: async run of database 1 accepted (202)", (st, js))
    fired = wait_until(stall_fired, 60)
    t.ok(fired and locks_of("lockloss_a") >= 2,
         "worker: the responder's worker is mid-walk (stalled), holding the user lock and "
         "the database lock", locks_of("lockloss_a"))
    secs = pg.restart()
    st, r2, js = enqueue(d2)
    t.ok(st == 202 and r2, "worker: after the restart, an async run of database 2 (same user) "
                           "is accepted", (st, js))
    comp = Cli("worker-B", ["worker", "--once", "--workers", "1"], env_for("lockloss_b"))
    claimed = wait_until(lambda: locks_of("lockloss_b") >= 1 or not comp.alive(), 10, 0.02)
    claimed = claimed and locks_of("lockloss_b") >= 1
    h.note(f"worker: restart took {secs:.2f}s; the second worker "
           f"{'claimed the user' if claimed else 'did not claim the user'}")
    t.ok(claimed, "worker: the second worker claims the user while the first is stalled "
                  "(the first lost its user lock with its session)")

    def ended(rid):
        return (run_row(rid).get("status") or "queued") not in ("queued", "running")

    done = wait_until(lambda: ended(r1) and ended(r2), 60, 0.2)
    comp_code, _, _, comp_err = comp.wait(60)
    row1, row2 = run_row(r1), run_row(r2)
    h.note(f"worker: run 1 {row1.get('status')} ({(row1.get('error_message') or '')[:120]}), "
           f"run 2 {row2.get('status')} by {row2.get('worker')}; "
           f"{time.monotonic() - STARTED:.0f}s since the test started")
    t.ok(row1.get("status") in ("error", "success") and row1.get("f") is not None,
         "worker: the stalled run ends (error or success), it is not left running", row1)
    h.note(f"worker: both runs ended within 60 s: {done}")
    t.ok(row2.get("status") == "success",
         "worker: the run of database 2 ends success", (row2, comp_code, comp_err[-600:]))
    t.ok(row1.get("status") == "error" and "lock" in (row1.get("error_message") or ""),
         "worker: the run that lost its user lock is not 'success': error, message names "
         "the lock", row1)
    t.ok("lock lost" in responder.log_text(), 'worker: the responder logs "lock lost"',
         responder.log_text()[-1500:])
    first_b = q1(f"select min(at) from lockloss_rows where who = 'lockloss_b' "
                 f"and user_id = '{user}'")
    late = writes_by("lockloss_a", user, None, f"'{first_b}'::timestamptz") if first_b else 0
    t.ok(first_b is not None and late == 0,
         "worker: the two workers' writes for the user never interleave (the first wrote "
         "nothing after the second began writing)", f"first B write {first_b}, A rows after: "
                                                     f"{late}")
    t.eq(writes_by("lockloss_a", user, None, "pg_postmaster_start_time()"), 0,
         "worker: the first worker wrote no row after the restart (after its locks were lost)")
    started_again = int(q1("select count(*) from lockloss_runs where who = 'lockloss_a' "
                           f"and user_id = '{user}' and status = 'running' "
                           "and old_status is distinct from 'running' "
                           "and at > pg_postmaster_start_time()") or 0)
    t.eq(started_again, 0, "worker: the first worker started no run of the user after the restart")
    t.eq(q1(f"select count(*) from notion_sync_runs where user_id = '{user}' "
            "and status in ('queued', 'running')"), "0", "worker: nothing of the user is left "
                                                         "queued or running")
    t.ok(responder.alive(), "worker: the responder is alive")
    with open(os.path.join(WORK, "worker-responder.log"), "w") as f:
        f.write(responder.log_text())
    h.stop_process(nginx.proc)
    h.stop_responder(responder)
    emu.control("DELETE", "/faults")
    settle_latency(0)
    runs = h.json_rows(pg, "select id, worker, extract(epoch from started_at)::float8 as s,"
                           " extract(epoch from finished_at)::float8 as f from notion_sync_runs"
                           f" where user_id = '{user}' and status = 'success'"
                           " and worker is not null order by id")
    both = [(a["id"], b["id"]) for i, a in enumerate(runs) for b in runs[i + 1:]
            if a["worker"] != b["worker"] and b["s"] < a["f"] and a["s"] < b["f"]]
    t.eq(both, [], "worker: no two successful runs of the user by different workers overlap "
                   "in time")
    for db, ds, label in ((d1, ds1, "database 1"), (d2, ds2, "database 2")):
        c = sync_cli("worker-next-" + label[-1], "lockloss_c", user, db)
        code, js, out, err = c.wait(120)
        t.ok(code == 0 and js.get("success") is True,
             f"worker: the next full sync of {label} succeeds", show(code, js, out, err))
        check_truth(user, db, ds, f"worker, {label}")


def on_its_own_database(name, fn):
    """fn on a fresh copy of the migrated template (triggers included); afterwards
    every process it started is stopped, the emulator reset, PostgreSQL up."""
    def run():
        global pg
        if not CLUSTER.running():
            CLUSTER.start_server()
        pg = scenario.clone_database(CLUSTER, f"lockloss_{name}")
        try:
            fn()
        finally:
            stop_scope()
            emu.control("DELETE", "/faults")
            settle_latency(0)
            if not pg.running():
                pg.start_server()
    return name, run


scenario.run(t, [on_its_own_database(n, f) for n, f in (
    ("restart", restart), ("competitor", competitor), ("overtaken", overtaken),
    ("down", down), ("worker", worker))])
