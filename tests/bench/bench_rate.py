"""bench_rate.py - `make bench`: how close a sync comes to Notion's rate
bound when Notion is slow to answer.

The emulator answers every request after 0, 400 and 800 ms and refuses
(429) a token going over 3.3 requests/s; the sync paces its token at 3
requests/s. For each latency: a full walk of one 20,000-page database (the
CLI), and full walks of a user's four 5,000-page databases queued together
(the responder's worker, NOTION_SYNC_PER_USER=4). Prints the Notion
requests, the wall time, the rate bound (requests / 3 per second) and the
wall time as a percentage of it, the 429s and the CLI's peak RSS (its ends'
threads and clients included); with the target beside it
(within 110% at 400 and 800 ms). Measures; it does not fail on a miss.
"""
import json
import time

import benchlib

args = benchlib.arguments(("--pages", int, 20000), ("--user-pages", int, 5000))
import harness as h  # noqa: E402

RATE = 3.0
TOKEN = "secret_bench_rate_token"
USER = "0f000000-0000-4000-8000-0000000000f1"
MANY = "0f000000-0000-4000-8000-0000000000f4"
SECRET = "bench-rate-bearer-secret-5e2c"
KINDS = ["Characters", "Worlds", "Stories", "Chat Sessions"]

pg = h.Postgres(extra_conf=["autovacuum = off"])
emu = h.Emulator()
h.migrate(pg)
emu.control("POST", "/tokens", {"token": TOKEN, "integration_name": "bench-rate",
                                "databases": []})


def database(kind, pages, seed):
    db = emu.control("POST", "/databases", {"title": kind, "token": TOKEN})
    ds = db["data_source_ids"][0]
    emu.control("POST", "/generate", {"data_source_id": ds, "count": pages, "seed": seed,
                                      "kind": kind})
    emu.control("POST", "/prerender", {"data_source_id": ds})
    return db


big = database("Characters", args.pages, 3)
many = [database(kind, args.user_pages, 10 + i) for i, kind in enumerate(KINDS)]
for user in (USER, MANY):
    pg.psql(f"insert into user_settings (user_id, notion_token) values ('{user}', '{TOKEN}')")
pg.psql("insert into notion_databases (user_id, database_id, database_name) values "
        f"('{USER}', '{big['database_id']}', 'Characters'), "
        + ", ".join(f"('{MANY}', '{db['database_id']}', '{kind}')"
                    for db, kind in zip(many, KINDS)))
env = h.base_env(pg, emu, NOTION_RATE_LIMIT=RATE)
real_cli = benchlib.real_cli(env, h.CLI)
# First syncs, fast: the measured walks below are full walks of unchanged data.
for code, *_ in [h.run_cli(["sync", "--user", u, "--quiet"], h.base_env(pg, emu))
                 for u in (USER, MANY)]:
    if code:
        raise SystemExit("the first syncs failed")
responder = h.Responder(h.base_env(pg, emu, NOTION_SYNC_SECRET=SECRET, NOTION_SYNC_WORKERS=1,
                                   NOTION_SYNC_PER_USER=4, NOTION_RATE_LIMIT=RATE),
                        processes=1)
nginx = h.Nginx(responder.port)


def refused():
    return sum(1 for r in emu.requests() if r.get("status") == 429)


def one_database():
    answer, wall, _, rss = benchlib.measured_sync(
        real_cli, ["sync", "--user", USER, "--database", big["database_id"], "--full",
                   "--quiet"], env)
    return wall, answer["notion_requests"], f"{rss:.1f} MiB"


def four_databases():
    first = int(pg.scalar("select coalesce(max(id), 0) from notion_sync_runs"))
    start = time.monotonic()
    st, _, js = h.http("POST", nginx.url + "/api/notion/sync-to-postgres",
                       json.dumps({"user_id": MANY, "full": True, "async": True}),
                       {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"})
    if st != 202:
        raise SystemExit(f"enqueue failed: {st} {js}")
    h.wait_for(lambda: pg.scalar(f"select count(*) from notion_sync_runs where id > {first}"
                                 " and status in ('success', 'error')") == "4",
               timeout=3600, interval=0.1, what="the four walks")
    seconds = time.monotonic() - start
    return seconds, int(pg.scalar("select sum(notion_requests) from notion_sync_runs where id >"
                                  f" {first}")), "(responder)"


print(f"notion-sync at Notion's rate bound: {RATE:.0f} requests/s per token, emulator refusing"
      " over 3.3/s", flush=True)
print("| walk | latency | requests | wall | rate bound | % of bound | 429s | peak RSS | target |")
print("|---|---|---|---|---|---|---|---|---|")
emu.control("POST", "/rate_limit", {"requests_per_second": RATE * 1.1, "burst": 2})
for latency in (0, 400, 800):
    emu.control("POST", "/config", {"latency_ms": latency})
    for label, walk in ((f"one {args.pages:,}-page database", one_database),
                        (f"four {args.user_pages:,}-page databases of one user", four_databases)):
        emu.clear_requests()
        seconds, requests, rss = walk()
        bound = requests / RATE
        target = "<= 110%" if latency else "-"
        print(f"| {label} | {latency} ms | {requests} | {seconds:.1f} s | {bound:.1f} s |"
              f" {seconds / bound * 100:.0f}% | {refused()} | {rss} | {target} |", flush=True)
h.stop_responder(responder)
h.run_cleanups()
