#!/usr/bin/env python3
"""test_async.py - issue 4: asynchronous runs, end to end through real nginx ->
spawn-fcgi -> notion-sync-fcgi (its worker threads) -> the Notion emulator ->
PostgreSQL 15.

Scenarios (every responder runs as ONE process, so a request answered while a
sync runs proves the request loop is not blocked):
  basic     POST {"async": true} -> 202 {"success","status":"accepted","runs"};
            GET /api/notion/sync-runs/{id} queued/running -> success with its
            statistics; 400/401/404 of the status endpoint; "full" survives
            the queue;
  big       20,000 pages behind 20 ms of emulator latency per request: 202 in
            under a second; /healthz, the status endpoint and a second user's
            async request are answered in under a second meanwhile, and the
            second user's run completes on another worker; a second and a
            third request for the running (user, database) share one queued
            run; all 20,000 rows arrive;
  dead      the responder is SIGKILLed mid-run: the run stays "running"; a new
            responder with NOTION_SYNC_STALE_AFTER=2 and a new trigger mark it
            "error" (its worker stopped) and sync the database completely;
  parallel  24 users with their own tokens, ~0.5 s per sync, 4 workers,
            NOTION_RATE_LIMIT=3 against an emulator that answers 429 to any
            token faster than 4 requests/s: one all-users async request; at
            most 4 and more than 1 runs overlap, the wall time is far below
            the sum, no 429 and no retry; a rejected token and a very slow
            database hold up nobody else;
  vercel    GET with the bearer and User-Agent vercel-cron/1.0 -> 202 and
            runs with trigger vercel_cron that complete; no or a wrong bearer
            -> 401 and nothing queued;
  logs      no bearer secret or Notion token in any responder or nginx log.
Prints TAP. Every process is stopped by the harness's cleanups.

Every scenario runs on its own PostgreSQL database (a copy of a migrated
template holding the users, tokens and registered databases) behind stacks
of its own, stopped at its end (scenario.run; all by default, or some by
name: test_async.py dead vercel). The Notion emulator is shared; each
scenario sets its latency, rate limit and faults. In parallel and vercel's
copies the 20,000-page and 3,000-page users are absent (in the one database
of old they were synced already; a fresh copy would sync them whole), and
vercel's copy has the database parallel's discovery registered. logs run
alone looks at the basic scenario's logs.
"""

import json
import os
import re
import signal
import time

import harness as h
import scenario
from client import is_error_body

SYNC = "/api/notion/sync-to-postgres"
RUNS = "/api/notion/sync-runs/"
SECRET = "async-test-bearer-secret-7f3a9c"
FINAL = ("success", "error", "skipped")

# Users. The parallel users sort before everyone else, and among them the
# slow one and the rejected one first, so that the workers claim them first
# (the queue is served oldest user first, and runs are queued in user order).
U_BASIC = "1a000000-0000-4000-8000-000000000001"
U_BIG = "1a000000-0000-4000-8000-000000000002"
U_SECOND = "1a000000-0000-4000-8000-000000000003"
U_DEAD = "1a000000-0000-4000-8000-000000000004"
P_USERS = [f"0a000000-0000-4000-8000-{i:012d}" for i in range(24)]
P_BAD, P_SLOW, P_DISCOVER = P_USERS[0], P_USERS[1], P_USERS[23]
TOKENS = {u: f"secret_async_token_{i:02d}_x9" for i, u in
          enumerate([U_BASIC, U_BIG, U_SECOND, U_DEAD] + P_USERS)}
# The rejected user's token is in user_settings but unknown to the emulator.

N_BASIC, N_BIG, N_SECOND, N_DEAD, N_P = 50, 20000, 30, 3000, 10

t = h.Tap()
STARTED = time.monotonic()
TEMPLATE = h.Postgres()
emu = h.Emulator()
h.migrate(TEMPLATE)
pg = TEMPLATE  # the running scenario's database (a copy of the template), rebound per scenario


def make_db(title, token, count, seed):
    """(database id, data source id) of a new database of count pages."""
    db = emu.make_database(title, token, count, seed)
    return db["database_id"], db["data_source_ids"][0]


for user, tok in TOKENS.items():
    if user != P_BAD:
        emu.control("POST", "/tokens", {"token": tok, "integration_name": "async-" + user[-2:],
                                        "databases": []})
D_BASIC, _ = make_db("Characters", TOKENS[U_BASIC], N_BASIC, 1)
D_BIG, _ = make_db("Characters", TOKENS[U_BIG], N_BIG, 2)
D_SECOND, _ = make_db("Worlds", TOKENS[U_SECOND], N_SECOND, 3)
D_DEAD, _ = make_db("Stories", TOKENS[U_DEAD], N_DEAD, 4)
P_DB = {}
P_DS = {}
for i, u in enumerate(P_USERS):
    if u == P_BAD:
        P_DB[u] = "0b0b0b0b-0000-4000-8000-000000000000"  # Notion never sees it
        continue
    P_DB[u], P_DS[u] = make_db("Characters" if u != P_DISCOVER else "Stories", TOKENS[u], N_P,
                               100 + i)

values = ", ".join(f"('{u}', '{tok}')" for u, tok in TOKENS.items())
TEMPLATE.psql(f"insert into user_settings (user_id, notion_token) values {values}")
regs = [(U_BASIC, D_BASIC, "Characters"), (U_BIG, D_BIG, "Characters"),
        (U_SECOND, D_SECOND, "Worlds"), (U_DEAD, D_DEAD, "Stories")]
regs += [(u, P_DB[u], "Characters") for u in P_USERS if u != P_DISCOVER]
TEMPLATE.psql("insert into notion_databases (user_id, database_id, database_name) values "
        + ", ".join(f"('{u}', '{d}', '{n}')" for u, d, n in regs))

LOGS = []  # (name, path) of every responder and nginx log, for the hygiene check
SCOPE = []  # the running scenario's stacks, stopped at its end
SCENARIO_DBS = []  # every scenario's database


class Stack:
    """One responder process (spawn-fcgi -n) behind one nginx."""

    def __init__(self, name, **extra):
        self.name = name
        env = h.base_env(pg, emu, NOTION_SYNC_SECRET=SECRET, **extra)  # pg: the scenario's
        self.responder = h.Responder(env, processes=1)
        self.nginx = h.Nginx(self.responder.port)
        self.url = self.nginx.url
        self.pid = self.responder.procs[0].pid
        LOGS.append((name + " responder", self.responder.log_path))
        for f in ("access.log", "error.log", "stderr.log"):
            LOGS.append((name + " nginx " + f, os.path.join(self.nginx.dir, f)))

        SCOPE.append(self)

    def stop(self):
        h.stop_responder(self.responder)
        h.stop_process(self.nginx.proc)
    def call(self, method, path, body=None, headers=None):
        """(seconds, status, parsed body)."""
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        secs, st, _, js = h.timed_http(method, self.url + path, body, headers, timeout=60)
        return secs, st, js

    def run(self, run_id):
        """The run object of GET /api/notion/sync-runs/{id}, or None."""
        _, st, js = self.call("GET", RUNS + str(run_id), None, auth())
        return js.get("run") if st == 200 and isinstance(js, dict) else None

    def wait_run(self, run_id, timeout=120.0, latencies=None):
        """Poll the status endpoint until the run ends. Returns (last run object,
        the statuses seen in order)."""
        seen, run = [], None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            secs, st, js = self.call("GET", RUNS + str(run_id), None, auth())
            if latencies is not None:
                latencies.append(secs)
            run = js.get("run") if st == 200 and isinstance(js, dict) else None
            status = run.get("status") if isinstance(run, dict) else f"http {st}"
            if not seen or seen[-1] != status:
                seen.append(status)
            if status in FINAL:
                break
            time.sleep(0.1)
        return run, seen


def auth(secret=SECRET):
    return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}


def q1(sql):
    return pg.scalar(sql)


def runs_count():
    return int(q1("select count(*) from notion_sync_runs"))


def rows_of(table, user):
    return int(q1(f"select count(*) from {table} where user_id = '{user}'"))


def run_rows(where):
    return h.json_rows(pg, "select id, user_id::text, database_id::text, trigger, status, mode,"
                           " extract(epoch from queued_at)::float8 as q,"
                           " extract(epoch from started_at)::float8 as s,"
                           " extract(epoch from finished_at)::float8 as f,"
                           " pages_seen, inserted, retries, pacing_wait_seconds, error_message,"
                           f" worker from notion_sync_runs where {where} order by id")


def wait_idle(timeout=90.0):
    """Wait until no run is queued or running."""
    h.wait_for(lambda: q1("select count(*) from notion_sync_runs "
                          "where status in ('queued', 'running')") == "0",
               timeout=timeout, interval=0.2, what="the queue to drain")


def accepted_runs(js):
    if not (isinstance(js, dict) and js.get("success") is True and js.get("status") == "accepted"
            and isinstance(js.get("runs"), list)):
        return None
    return js["runs"]



def emulator(latency_ms=0, rate=0, burst=1):
    emu.control("DELETE", "/faults")
    emu.control("POST", "/config", {"latency_ms": latency_ms})
    emu.control("POST", "/rate_limit", {"requests_per_second": rate, "burst": burst})


def without_big_users():
    """parallel / vercel: the copy without the 20,000- and 3,000-page users (in the
    one database of old they were synced already; here they would be synced whole)."""
    for table in ("notion_databases", "user_settings"):
        pg.psql(f"delete from {table} where user_id in ('{U_BIG}', '{U_DEAD}')")
    return [r for r in regs if r[0] not in (U_BIG, U_DEAD)]


def on_its_own_database(name, fn):
    def run():
        global pg
        pg = scenario.clone_database(TEMPLATE, f"async_{name}")
        SCENARIO_DBS.append(pg)
        emulator()
        try:
            fn()
        finally:
            while SCOPE:
                try:
                    SCOPE.pop().stop()
                except Exception as exc:  # keep stopping the rest
                    h.note(f"stopping a stack failed: {exc}")
            emulator()
    return name, run


# ====================================================================== basic
def basic():
    h.note("--- basic: one asynchronous run, the status endpoint")
    A = Stack("A", NOTION_SYNC_WORKERS=2)
    body = {"user_id": U_BASIC, "database_id": D_BASIC, "async": True}

    _, st, js = A.call("POST", SYNC, body, {"Content-Type": "application/json"})
    t.ok(st == 401 and is_error_body(js, "unauthorized"), "async POST without a bearer -> 401",
         (st, js))
    _, st, js = A.call("POST", SYNC, body, auth("async-test-bearer-secret-WRONG"))
    t.ok(st == 401 and is_error_body(js, "unauthorized"), "async POST with a wrong bearer -> 401",
         (st, js))
    t.eq(runs_count(), 0, "no run recorded for the rejected requests")
    _, st, js = A.call("POST", SYNC, dict(body, **{"async": "yes"}), auth())
    t.ok(st == 400 and is_error_body(js, "invalid_request"), '{"async": "yes"} -> 400', (st, js))
    _, st, js = A.call("POST", SYNC, {"user_id": "1a000000-0000-4000-8000-0000000000ff",
                                      "async": True}, auth())
    t.ok(st == 404 and is_error_body(js, "not_found"), "async POST for an unknown user -> 404",
         (st, js))

    secs, st, js = A.call("POST", SYNC, body, auth())
    runs = accepted_runs(js)
    t.ok(st == 202 and runs is not None and len(runs) == 1,
         'async POST -> 202 {"success":true,"status":"accepted","runs":[one run]}', (st, js))
    run0 = runs[0] if runs else {}
    t.ok(isinstance(run0.get("run_id"), int) and run0.get("user_id") == U_BASIC
         and run0.get("database_id") == D_BASIC, "the accepted run names run_id, user_id, database_id",
         run0)
    t.ok(secs < 1.0, f"the 202 came in {secs:.3f}s (< 1 s)")
    rid_basic = run0.get("run_id") or 0
    run, seen = A.wait_run(rid_basic, timeout=60)
    t.ok(seen and seen[-1] == "success" and all(s in ("queued", "running", "success") for s in seen)
         and seen == sorted(seen, key=["queued", "running", "success"].index),
         "status endpoint: queued/running, then success", seen)
    run = run or {}
    t.eq((run.get("run_id"), run.get("user_id"), run.get("database_id"), run.get("trigger"),
          run.get("mode"), run.get("pages_seen"), run.get("inserted"), run.get("updated"),
          run.get("page_errors"), run.get("error_message")),
         (rid_basic, U_BASIC, D_BASIC, "http", "full", N_BASIC, N_BASIC, 0, 0, None),
         "the finished run: trigger http, mode full, 50 pages seen and inserted, no error")
    t.ok(isinstance(run.get("notion_requests"), int) and run["notion_requests"] >= 2
         and isinstance(run.get("duration_ms"), (int, float)) and run["duration_ms"] >= 0
         and run.get("started_at") and run.get("finished_at") and run.get("queued_at")
         and run["queued_at"] <= run["started_at"] <= run["finished_at"],
         "the run carries notion_requests, duration_ms and queued <= started <= finished times", run)
    t.eq(rows_of("notion_characters_sync", U_BASIC), N_BASIC, "the sync table has the 50 pages")

    for path, hdrs, want, code, desc in [
            (RUNS + "999999999", auth(), 404, "not_found", "unknown run id -> 404"),
            (RUNS + "abc", auth(), 400, "invalid_request", "non-numeric run id -> 400"),
            (RUNS + "12abc", auth(), 400, "invalid_request", "run id '12abc' -> 400"),
            (RUNS + "0", auth(), 400, "invalid_request", "run id 0 -> 400"),
            (RUNS + "-1", auth(), 400, "invalid_request", "run id -1 -> 400"),
            (RUNS + "99999999999999999999999", auth(), 400, "invalid_request",
             "run id beyond 64 bits -> 400"),
            (RUNS, auth(), 400, "invalid_request", "empty run id -> 400"),
            (RUNS + str(rid_basic), {}, 401, "unauthorized", "status without a bearer -> 401"),
            (RUNS + str(rid_basic), auth("nope-nope-nope-nope"), 401, "unauthorized",
             "status with a wrong bearer -> 401")]:
        _, st, js = A.call("GET", path, None, hdrs)
        t.ok(st == want and is_error_body(js, code), desc, (st, js))
    _, st, js = A.call("POST", RUNS + str(rid_basic), b"", auth())
    t.ok(st == 405 and is_error_body(js, "method_not_allowed"), "POST on the status path -> 405",
         (st, js))

    # "full": true must reach the worker: the second sync would otherwise be incremental.
    _, st, js = A.call("POST", SYNC, dict(body, full=True), auth())
    runs = accepted_runs(js) or [{}]
    run, _ = A.wait_run(runs[0].get("run_id") or 0, timeout=60)
    t.eq((st, (run or {}).get("status"), (run or {}).get("mode")), (202, "success", "full"),
         'async {"full": true} runs a full walk (mode full), as the synchronous request does')

# ======================================================================== big
def big():
    h.note("--- big: 20,000 pages, 20 ms emulator latency per request, one responder process")
    A = Stack("big", NOTION_SYNC_WORKERS=2)
    emu.control("POST", "/config", {"latency_ms": 20})
    latencies = []
    secs, st, js = A.call("POST", SYNC, {"user_id": U_BIG, "database_id": D_BIG, "async": True}, auth())
    runs = accepted_runs(js) or [{}]
    R1 = runs[0].get("run_id") or 0
    t.ok(st == 202 and R1 > 0, "20,000 pages: async POST -> 202 with a run id", (st, js))
    t.ok(secs < 1.0, f"20,000 pages: the 202 came in {secs:.3f}s (< 1 s)")
    first = (A.run(R1) or {}).get("status")
    t.ok(first in ("queued", "running"), f"right after the 202 the run is queued or running ({first})")
    h.wait_for(lambda: (A.run(R1) or {}).get("status") != "queued", timeout=20,
               what="the big run to start")
    t.eq((A.run(R1) or {}).get("status"), "running", "the big run is running")

    worst = 0.0
    for _ in range(3):
        secs, st, js = A.call("GET", "/healthz")
        worst = max(worst, secs)
        t.ok(st == 200 and isinstance(js, dict) and js.get("status") == "ok",
             "GET /healthz while the big run runs -> 200", (st, js))
    t.ok(worst < 1.0, f"/healthz answered in at most {worst:.3f}s (< 1 s) while the worker syncs")

    secs, st, js = A.call("POST", SYNC, {"user_id": U_SECOND, "database_id": D_SECOND, "async": True},
                          auth())
    runs = accepted_runs(js) or [{}]
    R_SECOND = runs[0].get("run_id") or 0
    t.ok(st == 202 and R_SECOND > 0 and secs < 1.0,
         f"a second user's async request meanwhile -> 202 in {secs:.3f}s (< 1 s)", (st, js))
    run2, _ = A.wait_run(R_SECOND, timeout=60, latencies=latencies)
    t.ok((run2 or {}).get("status") == "success" and (run2 or {}).get("inserted") == N_SECOND,
         "the second user's run succeeds (30 rows) on another worker", run2)
    t.eq((A.run(R1) or {}).get("status"), "running",
         "... while the big run is still running (the user did not wait for it)")

    # Reuse: a run of a running (user, database) queues one more run; asking
    # again while that one is still queued returns it instead of a duplicate.
    again = {"user_id": U_BIG, "database_id": D_BIG, "async": True}
    _, st2, js2 = A.call("POST", SYNC, again, auth())
    _, st3, js3 = A.call("POST", SYNC, again, auth())
    R2 = ((accepted_runs(js2) or [{}])[0]).get("run_id")
    R3 = ((accepted_runs(js3) or [{}])[0]).get("run_id")
    t.ok(st2 == 202 and st3 == 202 and R2 not in (None, R1) and R3 == R2,
         "two more requests for the running (user, database): one new queued run, reused",
         (R1, R2, R3, js2, js3))
    t.eq(q1(f"select count(*) from notion_sync_runs where user_id = '{U_BIG}' "
            f"and database_id = '{D_BIG}' and status = 'queued'"), "1",
         "exactly one queued run for that (user, database)")

    run1, seen1 = A.wait_run(R1, timeout=150, latencies=latencies)
    run1 = run1 or {}
    t.eq((run1.get("status"), run1.get("mode"), run1.get("pages_seen"), run1.get("inserted")),
         ("success", "full", N_BIG, N_BIG), "the big run succeeds: full walk, 20,000 pages inserted")
    t.ok(latencies and max(latencies) < 1.0,
         f"{len(latencies)} status requests during the big run, slowest "
         f"{max(latencies or [0]):.3f}s (< 1 s)")
    t.eq(q1(f"select count(*) || '/' || count(distinct notion_page_id) from notion_characters_sync "
            f"where user_id = '{U_BIG}'"), f"{N_BIG}/{N_BIG}", "20,000 rows, 20,000 distinct pages")
    run_r2, _ = A.wait_run(R2 or 0, timeout=60)
    t.eq(((run_r2 or {}).get("status"), (run_r2 or {}).get("mode"), (run_r2 or {}).get("inserted")),
         ("success", "incremental", 0), "the reused queued run ran after it: incremental, nothing new")
    t.ok(A.responder.alive(), "the responder process is alive")
    h.note(f"big section done at {time.monotonic() - STARTED:.1f}s; big run "
           f"{(run1.get('duration_ms') or 0) / 1000:.1f}s")

# ======================================================================= dead
def dead():
    h.note("--- dead: SIGKILL the responder mid-run")
    A = Stack("dead A", NOTION_SYNC_WORKERS=2)
    emu.control("POST", "/config", {"latency_ms": 50})
    _, st, js = A.call("POST", SYNC, {"user_id": U_DEAD, "database_id": D_DEAD, "async": True}, auth())
    R_OLD = ((accepted_runs(js) or [{}])[0]).get("run_id") or 0
    t.eq(st, 202, "slow sync of 3,000 pages accepted")
    h.wait_for(lambda: rows_of("notion_stories_sync", U_DEAD) >= 200, timeout=60, interval=0.05,
               what="the first rows of the slow sync")
    t.eq(q1(f"select status from notion_sync_runs where id = {R_OLD}"), "running",
         "the slow run is running")
    os.kill(A.pid, signal.SIGKILL)
    h.wait_for(lambda: not h.pid_running(A.pid), timeout=10, what="the responder to die")
    killed_at = time.monotonic()
    partial = rows_of("notion_stories_sync", U_DEAD)
    t.ok(0 < partial < N_DEAD, f"killed mid-run: {partial} of {N_DEAD} rows written")
    # PostgreSQL ends the dead process's sessions, and their advisory locks go.
    h.wait_for(lambda: q1("select count(*) from pg_locks where locktype = 'advisory'") == "0",
               timeout=15, what="the dead sessions' advisory locks to go")
    time.sleep(max(0.0, 2.5 - (time.monotonic() - killed_at)))
    t.eq(q1(f"select status from notion_sync_runs where id = {R_OLD}"), "running",
         "with no live responder the dead run still says running")
    emu.control("POST", "/config", {"latency_ms": 0})
    B = Stack("B", NOTION_SYNC_WORKERS=2, NOTION_SYNC_STALE_AFTER=2)
    _, st, js = B.call("POST", SYNC, {"user_id": U_DEAD, "database_id": D_DEAD, "async": True}, auth())
    R_NEW = ((accepted_runs(js) or [{}])[0]).get("run_id") or 0
    t.ok(st == 202 and R_NEW not in (0, R_OLD), "a new trigger on a new responder -> 202, a new run",
         (st, js))
    run_new, _ = B.wait_run(R_NEW, timeout=60)
    old = B.run(R_OLD) or {}
    t.ok(old.get("status") == "error" and re.search(r"worker.*stopped", old.get("error_message") or ""),
         "the dead run is now error: its worker stopped", old)
    t.ok(old.get("finished_at") is not None, "the dead run has a finished_at", old)
    t.eq(((run_new or {}).get("status"), (run_new or {}).get("pages_seen")), ("success", N_DEAD),
         "the new run succeeds over all 3,000 pages")
    t.eq(q1(f"select count(*) || '/' || count(distinct notion_page_id) from notion_stories_sync "
            f"where user_id = '{U_DEAD}'"), f"{N_DEAD}/{N_DEAD}", "the table is complete: 3,000 rows")
    t.eq(q1("select count(*) from notion_sync_runs where status in ('queued', 'running')"), "0",
         "no run is left queued or running")
    # Stop B cleanly (SIGTERM: libfcgi stops accepting, the workers finish) before C starts,
    # so that C's four workers are the only ones.
    os.kill(B.pid, signal.SIGTERM)
    try:
        B.responder.procs[0].wait(timeout=15)
    except Exception:
        pass
    t.ok(not h.pid_running(B.pid), "responder B stops on SIGTERM when idle")

def count_429(stats):
    return sum(int(per.get("429", 0)) for per in (stats or {}).get("endpoints", {}).values())



# =================================================================== parallel
def parallel():
    h.note("--- parallel: 24 users, 4 workers, NOTION_RATE_LIMIT=3, one all-users request")
    regs = without_big_users()
    emu.control("POST", "/config", {"latency_ms": 100})
    emu.control("POST", "/rate_limit", {"requests_per_second": 4, "burst": 1})
    slow_rx = "^/v1/data_sources/" + P_DS[P_SLOW].replace("-", "-?") + "/query$"
    emu.control("POST", "/faults", {"faults": [{"path": slow_rx, "kind": "slow", "delay_ms": 6000,
                                                "count": 0}]})
    stats_before = emu.control("GET", "/stats")
    C = Stack("C", NOTION_SYNC_WORKERS=4, NOTION_RATE_LIMIT=3)
    first_id = int(q1("select coalesce(max(id), 0) from notion_sync_runs")) + 1
    secs, st, js = C.call("POST", SYNC, {"async": True}, auth())
    runs = accepted_runs(js) or []
    t.ok(st == 202 and secs < 1.0, f"all-users async request -> 202 in {secs:.3f}s", (st, js))
    want_pairs = sorted([(u, d) for u, d, _ in regs] + [(P_DISCOVER, None)])
    t.eq(sorted((r.get("user_id"), r.get("database_id")) for r in runs), want_pairs,
         f"{len(want_pairs)} runs: every registered database of every user, one discovery run")
    wait_idle(timeout=90)
    batch = run_rows(f"id >= {first_id}")
    by_user = {}
    for r in batch:
        by_user.setdefault(r["user_id"], []).append(r)
    bad = [r for r in batch if r["status"] != "success" and r["user_id"] != P_BAD]
    t.eq(bad, [], "every run of every other user succeeded")
    bad_runs = by_user.get(P_BAD, [])
    t.ok(len(bad_runs) == 1 and bad_runs[0]["status"] == "error"
         and re.search(r"token|unauthori[sz]ed|rejected", bad_runs[0]["error_message"] or "", re.I),
         "the user whose token Notion rejects: one run, error, saying so", bad_runs)
    disc = by_user.get(P_DISCOVER, [])
    t.eq(sorted((r["database_id"] or "", r["status"]) for r in disc),
         sorted([("", "success"), (P_DB[P_DISCOVER], "success")]),
         "the unregistered user: a discovery run, then a run of the database it found")
    t.eq([u for u in P_USERS if u != P_BAD
          and rows_of("notion_stories_sync" if u == P_DISCOVER else "notion_characters_sync", u)
          != N_P], [], "every other parallel user's 10 pages are in PostgreSQL")
    dbruns = [r for r in batch if r["database_id"] and r["s"] and r["f"]]
    events = sorted([(r["s"], 1) for r in dbruns] + [(r["f"], -1) for r in dbruns])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    t.ok(1 < peak <= 4, f"at most 4 runs overlap (NOTION_SYNC_WORKERS=4), and more than 1: {peak}")
    wall = max(r["f"] for r in dbruns) - min(r["s"] for r in dbruns)
    total = sum(r["f"] - r["s"] for r in dbruns)
    t.ok(wall < 0.45 * total, f"wall time {wall:.1f}s is far below the sum of run times {total:.1f}s")
    quick = [r for r in dbruns if r["user_id"] in P_USERS and r["user_id"] not in (P_SLOW, P_BAD)]
    h.note("parallel run durations: " + ", ".join(f"{r['f'] - r['s']:.2f}" for r in quick))
    t.ok(quick and 0.3 <= sorted(r["f"] - r["s"] for r in quick)[len(quick) // 2] <= 1.5,
         "a parallel user's sync takes about half a second (median)")
    t.eq([(r["id"], r["retries"]) for r in batch if r["retries"]], [],
         "no run needed a retry: each token was paced below Notion's limit")
    stats_after = emu.control("GET", "/stats")

    t.eq(count_429(stats_after) - count_429(stats_before), 0, "the emulator answered no 429")
    t.ok(quick and all(r["pacing_wait_seconds"] > 0 for r in quick),
         "every parallel run waited on its token's pacing (NOTION_RATE_LIMIT=3)",
         [(r["id"], r["pacing_wait_seconds"]) for r in quick])
    slow = [r for r in dbruns if r["user_id"] == P_SLOW]
    slow = slow[0] if slow else {"s": 0, "f": 0}
    during = [r for r in dbruns if r["user_id"] != P_SLOW and slow["s"] <= r["s"] and r["f"] <= slow["f"]]
    t.ok(slow["f"] - slow["s"] >= 6.0 and len(during) >= 12,
         f"the very slow user ({slow['f'] - slow['s']:.1f}s) held up nobody: "
         f"{len(during)} other runs started and finished meanwhile")
    t.ok(disc and all(r["worker"] for r in disc) and all(r["s"] > r["q"] for r in disc if r["s"]),
         "the discovery run records its worker and a start time after it was queued",
         [(r["id"], r["database_id"], r["worker"], r["q"], r["s"]) for r in disc])
    emu.control("DELETE", "/faults")

# ===================================================================== vercel
def vercel():
    h.note("--- vercel: GET with the bearer, User-Agent vercel-cron/1.0")
    without_big_users()
    # As parallel left it: the unregistered user's database found by discovery.
    pg.psql(f"insert into notion_databases (user_id, database_id, database_name) "
            f"values ('{P_DISCOVER}', '{P_DB[P_DISCOVER]}', 'Stories')")
    emulator(latency_ms=100, rate=4, burst=1)
    C = Stack("vercel", NOTION_SYNC_WORKERS=4, NOTION_RATE_LIMIT=3)
    before = runs_count()
    _, st, js = C.call("GET", SYNC, None, {"User-Agent": "vercel-cron/1.0"})
    t.ok(st == 401 and is_error_body(js, "unauthorized"), "Vercel GET without a bearer -> 401",
         (st, js))
    _, st, js = C.call("GET", SYNC, None, {"User-Agent": "vercel-cron/1.0",
                                           "Authorization": "Bearer wrong-cron-secret-123456"})
    t.ok(st == 401 and is_error_body(js, "unauthorized"), "Vercel GET with a wrong bearer -> 401",
         (st, js))
    time.sleep(0.3)
    t.eq(runs_count(), before, "nothing queued by the rejected GETs")
    first_id = int(q1("select coalesce(max(id), 0) from notion_sync_runs")) + 1
    secs, st, js = C.call("GET", SYNC, None, {"User-Agent": "vercel-cron/1.0",
                                              "Authorization": f"Bearer {SECRET}"})
    runs = accepted_runs(js) or []
    all_pairs = sorted((r["u"], r["d"]) for r in h.json_rows(
        pg, "select user_id::text as u, database_id::text as d from notion_databases where enabled"))
    t.ok(st == 202 and secs < 1.0, f"Vercel GET with the bearer -> 202 in {secs:.3f}s", (st, js))
    t.eq(sorted((r.get("user_id"), r.get("database_id")) for r in runs), all_pairs,
         "the Vercel GET queued every registered database of every user")
    wait_idle(timeout=90)
    batch = run_rows(f"id >= {first_id}")
    t.eq(sorted({r["trigger"] for r in batch}), ["vercel_cron"], "their trigger is vercel_cron")
    t.eq(sorted((r["user_id"], r["status"]) for r in batch if r["status"] != "success"),
         [(P_BAD, "error")], "all complete: success, except the rejected token's run (error)")
    t.ok(C.responder.alive(), "responder C is alive")

# ======================================================================= logs
def logs():
    if not LOGS:   # run alone: the basic scenario's logs to look at
        h.note("logs: run alone, so first the basic scenario")
        on_its_own_database("basic", basic)[1]()
    time.sleep(0.3)
    secrets = [SECRET] + list(TOKENS.values())
    leaks = []
    for name, path in LOGS:
        if os.path.exists(path):
            text = open(path, errors="replace").read()
            leaks += [(name, s[:12] + "...") for s in secrets if s in text]
    t.eq(leaks, [], "no bearer secret or Notion token in any responder or nginx log")
    n = sum(1 for name, _ in LOGS if name.endswith("responder"))
    t.ok(sum(1 for name, p in LOGS if name.endswith("responder") and os.path.exists(p)
             and "status=202" in open(p, errors="replace").read()) == n,
         f"the {n} responder logs were read (they log the 202s)")
    left = [(db.dbname, q) for db in SCENARIO_DBS for q in [db.scalar(
        "select count(*) from notion_sync_runs where status in ('queued', 'running')")]
        if q != "0"]
    t.eq(left, [], "finally no run is queued or running")


scenario.run(t, [on_its_own_database("basic", basic), on_its_own_database("big", big),
                 on_its_own_database("dead", dead), on_its_own_database("parallel", parallel),
                 on_its_own_database("vercel", vercel), ("logs", logs)])
