"""bench_webhooks.py - `make bench`: how fresh webhooks keep PostgreSQL.

One user, one token, paced at 3 requests/s (NOTION_RATE_LIMIT=3) against an
emulator answering every request after 400 ms and delivering its webhook
events (tests/emulator/webhooks.py) to nginx -> the responder -> workers.
200 pages of the user's Characters database are edited through the
emulator's admin API, one every EDIT_EVERY seconds, first alone, then while
a full walk of the same user's 20,000-page Stories database runs on the
same token. For each phase it prints the lag from delivery (the event's
receipt) to its row written (p50, p95, max), the Notion requests per
edited page, the 429s Notion answered, and whether every row equals the
emulator's truth; with the targets beside them. It measures, it does not
fail on a miss.
"""
import json
import sys
import time

import benchlib

args = benchlib.arguments(("--edits", int, 200), ("--walk-pages", int, 20000),
                          ("--latency-ms", int, 400), ("--edit-every", float, 0.5))
import harness as h  # noqa: E402

USER = "b0000000-0000-4000-8000-0000000000b1"
TOKEN = "secret_bench_webhooks_token"
SECRET = "bench-webhooks-bearer-secret-31f9"

pg = h.Postgres(extra_conf=["autovacuum = off"])
emu = h.Emulator()
h.migrate(pg)
emu.control("POST", "/tokens", {"token": TOKEN, "integration_name": "bench-hooks",
                                "databases": []})
schema = {"Name": "title", "Description": "rich_text"}
chars = emu.control("POST", "/databases", {"title": "Characters", "token": TOKEN,
                                           "data_sources": [{"schema": schema}]})
pages = [emu.control("POST", "/pages", {"data_source_id": chars["data_source_ids"][0],
                                        "properties": {"Name": f"Character {i}",
                                                       "Description": "as written"},
                                        "emit": False})["id"] for i in range(args.edits)]
stories = emu.control("POST", "/databases", {"title": "Stories", "token": TOKEN})
emu.control("POST", "/generate", {"data_source_id": stories["data_source_ids"][0],
                                  "count": args.walk_pages, "seed": 12, "kind": "Stories"})
emu.control("POST", "/prerender", {"data_source_id": stories["data_source_ids"][0]})
pg.psql(f"insert into user_settings (user_id, notion_token) values ('{USER}', '{TOKEN}')")
for db, name in ((chars, "Characters"), (stories, "Stories")):
    pg.psql("insert into notion_databases (user_id, database_id, database_name) values"
            f" ('{USER}', '{db['database_id']}', '{name}')")
env = h.base_env(pg, emu)
for db in (chars, stories):
    code, _, out, err = h.run_cli(["sync", "--user", USER, "--database", db["database_id"],
                                   "--quiet"], env)
    if code:
        sys.exit(f"first sync failed: {out}{err}")

responder = h.Responder(h.base_env(pg, emu, NOTION_SYNC_SECRET=SECRET, NOTION_SYNC_WORKERS=2,
                                   NOTION_RATE_LIMIT=3), processes=1)
nginx = h.TlsNginx(responder.port, rate="100r/s")
code, made, out, err = h.run_cli(["webhook", "create", "--user", USER], env)
if code:
    sys.exit(f"webhook create failed: {out}{err}")
sub = emu.control("POST", "/webhooks", {"url": nginx.url + made["path"], "token": TOKEN,
                                        "cafile": nginx.cert, "delay_ms": 0})
sub_id = sub["subscription_id"]
for _ in range(200):
    _, shown, _, _ = h.run_cli(["webhook", "show", made["key"]], env)
    if shown and shown.get("verification_token"):
        break
    time.sleep(0.05)
emu.control("POST", f"/webhooks/{sub_id}/verify",
            {"verification_token": shown["verification_token"]})
emu.control("POST", "/config", {"latency_ms": args.latency_ms})
# Notion's own limit, enforced: a request over 3/s (burst 3) is answered 429.
emu.control("POST", "/rate_limit", {"requests_per_second": 3.3, "burst": 3})


def page_requests():
    return [r for r in emu.requests() if r["method"] == "GET" and "/v1/pages/" in r["path"]]


def phase(label, tag):
    emu.clear_requests()
    first = int(pg.scalar("select coalesce(max(id), 0) from notion_webhook_events"))
    start = time.monotonic()
    for i, page in enumerate(pages):
        emu.control("PATCH", f"/pages/{page}", {"properties": {"Name": f"{tag} {i}"}})
        time.sleep(max(0.0, start + (i + 1) * args.edit_every - time.monotonic()))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = int(pg.scalar("select count(*) from notion_webhook_events where id >"
                             f" {first} and status <> 'received'"))
        if done >= len(pages):
            break
        time.sleep(0.1)
    emu.control("POST", "/webhooks/drain", {"timeout_ms": 10000})
    lag = h.json_rows(pg, "select percentile_cont(0.5) within group (order by l) as p50,"
                          " percentile_cont(0.95) within group (order by l) as p95,"
                          " max(l) as max, count(*) as n from (select extract(epoch from"
                          " processed_at - received_at) as l from notion_webhook_events"
                          f" where id > {first} and status = 'processed') e")[0]
    names = dict((r["id"], r["name"]) for r in h.json_rows(
        pg, "select notion_page_id::text as id, name from notion_characters_sync"))
    correct = sum(1 for i, p in enumerate(pages) if names.get(p) == f"{tag} {i}")
    reqs = emu.requests()
    gets = len([r for r in reqs if r["method"] == "GET" and "/v1/pages/" in r["path"]])
    limited = len([r for r in reqs if r.get("status") == 429])
    events = int(pg.scalar(f"select count(*) from notion_webhook_events where id > {first}"))
    walk_queries = len([r for r in reqs if r["method"] == "POST" and r["path"].endswith("/query")])
    return dict(label=label, lag=lag, correct=correct, gets=gets, events=events,
                limited=limited, requests=len(reqs), walk_queries=walk_queries)


def row(r, target):
    lag = r["lag"]
    fmt = lambda v: f"{v:.2f} s" if v is not None else "-"  # noqa: E731
    print(f"| {r['label']} | {r['events']} | {fmt(lag['p50'])} | {fmt(lag['p95'])} |"
          f" {fmt(lag['max'])} | {r['gets'] / max(1, len(pages)):.2f} | {r['limited']} |"
          f" {r['correct']}/{len(pages)} | p95 < {target} s, <= 1 request/page |", flush=True)


print(f"notion-sync webhook benchmark: {len(pages)} edited pages, one every {args.edit_every} s,"
      f" 3 requests/s pacing, {args.latency_ms} ms emulator latency", flush=True)
print("| phase | events | lag p50 | lag p95 | lag max | page GETs per edited page | 429s |"
      " rows right | target |")
print("|---|---|---|---|---|---|---|---|---|")
row(phase("alone", "Alone"), 2)
# A full walk of the 20,000-page database of the same user and token.
st, _, js = nginx.request("POST", "/api/notion/sync-to-postgres",
                          json.dumps({"user_id": USER, "database_id": stories["database_id"],
                                      "full": True, "async": True}),
                          {"Authorization": f"Bearer {SECRET}",
                           "Content-Type": "application/json"})
run_id = js["runs"][0]["run_id"]
h.wait_for(lambda: pg.scalar(f"select status from notion_sync_runs where id = {run_id}")
           == "running", timeout=60, what="the walk to start")
during = phase("during a 20,000-page full walk", "Walking")
walk = pg.scalar(f"select status from notion_sync_runs where id = {run_id}")
row(during, 5)
print(f"(the walk was still {walk} when the last edit was written; it made"
      f" {during['walk_queries']} query requests during the phase, the edits"
      f" {during['gets']} page reads, on the same token's 3 requests/s)", flush=True)
h.stop_responder(responder)
h.run_cleanups()
