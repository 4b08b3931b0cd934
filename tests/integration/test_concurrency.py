#!/usr/bin/env python3
"""test_concurrency.py - one user's databases walked at once on one token
(NOTION_SYNC_PER_USER), through the queue workers of the real responder,
against an emulator that answers after a latency and refuses (429) any
token going faster than Notion's limit.

Scenarios:
  together   four databases of one user queued together: with per-user
             concurrency 4 their runs overlap in time, every row equals the
             emulator's truth, and not one request is refused although the
             emulator allows only 10% above the configured pace (with a
             burst of two);
  unpaced    the negative control: the same walks without pacing are
             refused (429) by the same emulator, so the check above can fail;
  one        per-user concurrency 1: the runs follow one another;
  split      a full walk of a 25,000-page data source (past the 10,000-row
             cap from both ends) whose answers are slower than the pace's
             spacing goes from both ends of created_time at once: descending queries are sent, the two ends meet (no more
             queries than one end alone would send, plus the few in flight
             when they meet), the table equals the truth, and pages trashed
             meanwhile are deleted (the meeting proves the walk complete);
  ranges     the same at a latency that needs more than two requests in
             flight: the walk is cut at the median created_time of the
             stored rows, each range walked from both of its ends;
  gaps       ends that fail (the emulator refuses their queries) leave
             gaps the walker walks itself; the walk is still complete.
Prints TAP; every process is stopped by the harness's cleanups.
"""

import json
import uuid

import harness as h
import scenario

SECRET = "concurrency-test-bearer-9d41c2"
KINDS = ["Characters", "Worlds", "Stories", "Chat Sessions"]
PAGES = 250        # 3 queries a database
RATE = 4.0         # NOTION_RATE_LIMIT: starts 250 ms apart
LATENCY_MS = 600   # longer than the spacing: one request at a time would waste the pace

t = h.Tap()
TEMPLATE = h.migrated_cluster()
emu = h.Emulator()
SCOPE = []  # what the running scenario started (objects with .stop())


def make_user(pg, tag):
    user, token = str(uuid.uuid4()), f"secret_concurrency_{tag}_{uuid.uuid4().hex[:6]}"
    emu.control("POST", "/tokens", {"token": token, "integration_name": "conc-" + tag,
                                    "databases": []})
    dbs = []
    for i, kind in enumerate(KINDS):
        db = emu.control("POST", "/databases", {"title": kind, "token": token})
        emu.control("POST", "/generate", {"data_source_id": db["data_source_ids"][0],
                                          "count": PAGES, "seed": 40 + i, "kind": kind})
        dbs.append((kind, db))
    pg.psql(f"insert into user_settings (user_id, notion_token) values ('{user}', '{token}')")
    pg.psql("insert into notion_databases (user_id, database_id, database_name) values "
            + ", ".join(f"('{user}', '{db['database_id']}', '{kind}')" for kind, db in dbs))
    return user, dbs


def walk_all(pg, tag, per_user, rate):
    """Queue the user's four databases in one request and wait for the runs;
    returns (user, dbs, runs, refused requests)."""
    user, dbs = make_user(pg, tag)
    env = h.base_env(pg, emu, NOTION_SYNC_SECRET=SECRET, NOTION_SYNC_WORKERS=1,
                     NOTION_SYNC_PER_USER=per_user, NOTION_RATE_LIMIT=rate,
                     NOTION_MAX_ATTEMPTS=1)
    responder = h.Responder(env, processes=1)
    nginx = h.Nginx(responder.port)
    SCOPE.extend([nginx, responder])
    emu.control("POST", "/config", {"latency_ms": LATENCY_MS})
    # 10% over the pace, sustained; a burst of 2 absorbs the scheduling
    # jitter of a loaded machine between a start and its arrival.
    emu.control("POST", "/rate_limit", {"requests_per_second": RATE * 1.1, "burst": 2})
    emu.clear_requests()
    st, _, js = h.http("POST", nginx.url + "/api/notion/sync-to-postgres",
                       json.dumps({"user_id": user, "async": True}),
                       {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"})
    if st != 202:
        raise RuntimeError(f"enqueue failed: {st} {js}")
    h.wait_for(lambda: pg.scalar("select count(*) from notion_sync_runs where status in"
                                 " ('success', 'error')") == str(len(KINDS)),
               timeout=180, what="the four runs")
    runs = h.json_rows(pg, "select database_id::text as db, status, error_message,"
                           " extract(epoch from started_at)::float8 as s,"
                           " extract(epoch from finished_at)::float8 as f"
                           " from notion_sync_runs order by id")
    refused = sum(1 for r in emu.requests() if r.get("status") == 429)
    emu.control("POST", "/config", {"latency_ms": 0})
    emu.control("POST", "/rate_limit", {"requests_per_second": 0})
    return user, dbs, runs, refused


def overlapping(runs):
    """Most runs running at one instant."""
    points = sorted([(r["s"], 1) for r in runs] + [(r["f"], -1) for r in runs])
    most = now = 0
    for _, d in points:
        now += d
        most = max(most, now)
    return most


def together(pg):
    user, dbs, runs, refused = walk_all(pg, "together", 4, RATE)
    t.eq([r["status"] for r in runs], ["success"] * 4, "four runs of one user succeed", )
    t.ok(overlapping(runs) >= 3, "per-user concurrency 4: the runs overlap in time",
         runs)
    t.eq(refused, 0, "one token, four walks at once: no request over Notion's limit (429)")
    for kind, db in dbs:
        truth = h.ground_truth(emu, db)
        stored = pg.scalar(f"select count(*) from {h.table_of(kind)} where user_id = '{user}'"
                           f" and notion_database_id = '{db['database_id']}'")
        t.eq(int(stored), len(truth), f"{kind}: every page stored")


def unpaced(pg):
    _, _, runs, refused = walk_all(pg, "unpaced", 4, 0)
    t.ok(refused > 0, "without pacing the same walks are refused by the emulator (the check"
         " above can fail)", refused)


def one(pg):
    _, _, runs, refused = walk_all(pg, "one", 1, RATE)
    t.eq(overlapping(runs), 1, "per-user concurrency 1: one run after another")
    t.eq(refused, 0, "... and nothing refused")


def split_source(pg, tag, pages):
    """A user with one Stories data source of pages pages, synced once (one
    end: nothing stored yet); returns (user, db, ds, env)."""
    user, token = str(uuid.uuid4()), f"secret_concurrency_{tag}_{uuid.uuid4().hex[:6]}"
    emu.control("POST", "/tokens", {"token": token, "integration_name": "conc-" + tag,
                                    "databases": []})
    db = emu.control("POST", "/databases", {"title": "Stories", "token": token})
    ds = db["data_source_ids"][0]
    emu.control("POST", "/generate", {"data_source_id": ds, "count": pages, "seed": 77,
                                      "kind": "Stories"})
    emu.control("POST", "/prerender", {"data_source_id": ds})
    pg.psql(f"insert into user_settings (user_id, notion_token) values ('{user}', '{token}')")
    env = h.base_env(pg, emu, NOTION_SYNC_SPLIT_WALK=2000)
    emu.clear_requests()
    code, js, out, err = h.run_cli(["sync", "--user", user, "--database", db["database_id"],
                                    "--name", "Stories", "--quiet"], env)
    t.ok(code == 0 and js["inserted"] == pages, "first sync (one end: nothing stored yet)",
         out + err)
    return user, db, ds, env


def trash_some(ds, every):
    trashed = [p["id"] for p in emu.control("GET", f"/pages?data_source_id={ds}")["results"][
        ::every]]
    for pid in trashed:
        emu.control("POST", f"/pages/{pid}/trash", {"emit": False})
    return trashed


def slow_full_walk(pg, user, db, env):
    """A full walk whose answers (50 ms) are slower than the pace's spacing
    (20 ms at 50 requests/s): it splits after the first answer. Returns
    (exit code, answer, output, the queries it sent)."""
    emu.clear_requests()
    emu.control("POST", "/config", {"latency_ms": 50})
    env = dict(env, NOTION_RATE_LIMIT="50")
    try:
        code, js, out, err = h.run_cli(["sync", "--user", user, "--database",
                                        db["database_id"], "--full", "--quiet"], env)
    finally:
        emu.control("POST", "/config", {"latency_ms": 0})
    t.ok(code == 0 and js.get("mode") == "full", "the full walk succeeds", out + err)
    return js, [r for r in emu.requests() if r["path"].endswith("/query")]


def equals_truth(pg, user, db, what):
    truth = h.ground_truth(emu, db)
    stored = {r["id"] for r in h.json_rows(pg, "select notion_page_id::text as id from"
                                              f" notion_stories_sync where user_id = '{user}'")}
    t.eq(stored == set(truth), True, f"the table equals the emulator's truth after {what}")


created_filter = h.query_created_filter
descending = h.query_descending


def split(pg):
    user, db, ds, env = split_source(pg, "split", 25000)
    one_end = [r for r in emu.requests() if r["path"].endswith("/query")]
    trashed = trash_some(ds, 5000)
    js, queries = slow_full_walk(pg, user, db, dict(env, NOTION_SYNC_SPLIT_RANGES="1"))
    down = [q for q in queries if descending(q)]
    t.ok(len(down) >= 10, "it walks from the other end too (descending created_time)",
         len(down))
    t.ok(not any(created_filter(q)[0] == "after" for q in queries),
         "one range (NOTION_SYNC_SPLIT_RANGES=1): no end starts at a pivot")
    t.ok(len(queries) <= len(one_end) + 4, "the two ends meet: no more queries than one end"
         " alone, but the few in flight when they meet", (len(queries), len(one_end)))
    t.eq(js.get("deleted"), len(trashed), "the pages trashed before the walk are deleted (the"
         " meeting proves the walk complete)")
    equals_truth(pg, user, db, "the split walk")


def ranges(pg):
    user, db, ds, env = split_source(pg, "ranges", 12000)
    one_end = [r for r in emu.requests() if r["path"].endswith("/query")]
    trashed = trash_some(ds, 1000)
    js, queries = slow_full_walk(pg, user, db, env)
    ups = [q for q in queries if created_filter(q)[0] == "after"]
    pivots = sorted({created_filter(q)[1] for q in ups})
    downs = {created_filter(q)[1] for q in queries if descending(q) and
             created_filter(q)[0] in (None, "on_or_before") and created_filter(q)[1] in
             pivots + [None]}
    t.ok(len(pivots) >= 1, "answers at 50 ms against 20 ms spacing cut the walk at a pivot:"
         " an end walks up after it", pivots)
    t.ok(set(pivots) | {None} <= downs, "and each range is walked down from its top (the"
         " last from the data source's)", (pivots, downs))
    median = pg.scalar("select to_char(percentile_disc(0.5) within group (order by"
                       " notion_created_time) at time zone 'UTC',"
                       " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') from notion_stories_sync"
                       f" where user_id = '{user}'")
    t.ok(len(pivots) != 1 or pivots[0] == median, "one pivot: the median created_time of the"
         " stored rows", (pivots, median))
    t.ok(len(queries) <= len(one_end) + 4 * (2 * len(pivots) + 1), "the ends meet: no more"
         " queries than one end alone, but the few in flight where they meet",
         (len(queries), len(one_end)))
    t.eq(js.get("deleted"), len(trashed), "the pages trashed before the walk are deleted (the"
         " ranges covered prove the walk complete)")
    equals_truth(pg, user, db, "a walk cut into ranges")


def gaps(pg):
    """Ends that fail leave gaps, which the walker walks itself."""
    user, db, ds, env = split_source(pg, "gaps", 12000)
    trashed = trash_some(ds, 1000)
    # Every end walking up from a pivot fails at once; every descending one
    # after its first answers (400: not retried).
    emu.control("POST", "/faults", {"faults": [
        {"path": "/query$", "body": '"after"', "kind": "status", "status": 400, "count": 0},
        {"path": "/query$", "body": '"descending"', "kind": "status", "status": 400,
         "skip": 3, "count": 0}]})
    try:
        js, queries = slow_full_walk(pg, user, db, env)
    finally:
        emu.control("DELETE", "/faults")
    pivots = sorted({created_filter(q)[1] for q in queries if created_filter(q)[0] == "after"})
    t.ok(len(pivots) >= 1, "the walk was cut at a pivot", pivots)
    resumed = [q for q in queries if not descending(q) and created_filter(q)[0] == "on_or_after"
               and created_filter(q)[1] in pivots]
    t.ok(len(resumed) >= 1, "the walker walks on from the gap a failed end left (at the"
         " pivot)", [created_filter(q) for q in queries if not descending(q)][:12])
    t.eq(js.get("deleted"), len(trashed), "the pages trashed before the walk are deleted: the"
         " spans walked still cover every page")
    equals_truth(pg, user, db, "ends failed")


scenario.run(t, [scenario.on_own_database(TEMPLATE, "conc", n, f, SCOPE) for n, f in
                 [("together", together), ("unpaced", unpaced), ("one", one),
                  ("split", split), ("ranges", ranges), ("gaps", gaps)]])
