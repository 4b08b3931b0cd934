"""bench_queue.py - `make bench`: how fast the queue drains a 15-minute tick.

USERS users with four small databases each (Characters, Worlds, Stories,
Chat Sessions), each user with its own token, all synced once; then one
all-users asynchronous request queues every database again (unchanged:
incremental syncs, two Notion requests each) and the responder's workers
drain the queue against an emulator answering every request after 400 ms,
each token paced at 3 requests/s. Prints the drain time, the Notion
requests, the responder's threads, its PostgreSQL connections and peak
RSS, and the drain time extrapolated to 10,000 users (the work is per
user and the workers are the bound, so it scales linearly), with the
target beside it (10,000 users within one 15-minute tick). Measures; it
does not fail on a miss.
"""
import json
import sys
import threading
import time

import benchlib

args = benchlib.arguments(("--users", int, 1000), ("--workers", int, 48),
                          ("--per-user", int, 2), ("--latency-ms", int, 400))
import harness as h  # noqa: E402

SECRET = "bench-queue-bearer-secret-77a0"
KINDS = ["Characters", "Worlds", "Stories", "Chat Sessions"]

pg = h.Postgres(extra_conf=["autovacuum = off", "max_connections = 400"])
emu = h.Emulator()
h.migrate(pg)
users, settings, registry = [], [], []
for i in range(args.users):
    user, token = f"c0000000-0000-4000-8000-{i:012d}", f"secret_bench_queue_{i:05d}"
    emu.control("POST", "/tokens", {"token": token, "integration_name": f"q{i}",
                                    "databases": []})
    for k, kind in enumerate(KINDS):
        db = emu.control("POST", "/databases", {"title": kind, "token": token})
        emu.control("POST", "/generate", {"data_source_id": db["data_source_ids"][0],
                                          "count": 3, "seed": i * 4 + k, "kind": kind})
        registry.append(f"('{user}', '{db['database_id']}', '{kind}')")
    settings.append(f"('{user}', '{token}')")
    users.append(user)
for i in range(0, len(settings), 500):  # one statement per 500 rows: argv has a limit
    pg.psql("insert into user_settings (user_id, notion_token) values "
            + ", ".join(settings[i:i + 500]))
for i in range(0, len(registry), 500):
    pg.psql("insert into notion_databases (user_id, database_id, database_name) values "
            + ", ".join(registry[i:i + 500]))

env = h.base_env(pg, emu, NOTION_SYNC_SECRET=SECRET, NOTION_SYNC_WORKERS=args.workers,
                 NOTION_SYNC_PER_USER=args.per_user, NOTION_RATE_LIMIT=3)
responder = h.Responder(env, processes=1)
nginx = h.Nginx(responder.port)
pid = responder.procs[0].pid
# spawn-fcgi -n execs the responder: its pid is the responder's.


def enqueue_all():
    st, _, js = h.http("POST", nginx.url + "/api/notion/sync-to-postgres",
                       json.dumps({"async": True}),
                       {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"},
                       timeout=600)
    if st != 202:
        sys.exit(f"enqueue failed: {st} {str(js)[:300]}")
    return len(js["runs"])


def drain(what):
    start = time.monotonic()
    queued = enqueue_all()
    peak = {"threads": 0, "connections": 0}
    done = threading.Event()

    def watch():
        while not done.is_set():
            try:
                status = open(f"/proc/{pid}/status").read()
                threads = int(status.split("Threads:")[1].split()[0])
                peak["threads"] = max(peak["threads"], threads)
                conns = int(pg.scalar("select count(*) from pg_stat_activity where"
                                      " backend_type = 'client backend' and application_name"
                                      " <> 'psql'"))
                peak["connections"] = max(peak["connections"], conns)
            except (OSError, ValueError, IndexError, RuntimeError):
                pass
            time.sleep(0.5)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    while pg.scalar("select count(*) from notion_sync_runs where status in ('queued',"
                    " 'running')") != "0":
        time.sleep(0.2)
    seconds = time.monotonic() - start
    done.set()
    watcher.join()
    stats = h.json_rows(pg, "select count(*) filter (where status = 'success') as ok,"
                            " count(*) filter (where status <> 'success') as bad,"
                            " sum(notion_requests) as requests from notion_sync_runs"
                            " where queued_at > now() - make_interval(secs => "
                            f"{seconds + 5})")[0]
    rss = int(open(f"/proc/{pid}/status").read().split("VmHWM:")[1].split()[0]) / 1024
    return dict(what=what, queued=queued, seconds=seconds, peak=peak, rss=rss, **stats)


print(f"notion-sync queue benchmark: {args.users} users x 4 databases, {args.workers} workers,"
      f" {args.per_user} runs per user at once, 3 requests/s per token", flush=True)
first = drain("first sync (0 ms latency)")
print(f"(first sync of every database: {first['seconds']:.1f} s, {first['ok']} runs)", flush=True)
emu.control("POST", "/config", {"latency_ms": args.latency_ms})
r = drain(f"unchanged, {args.latency_ms} ms latency")
per_10k = r["seconds"] * 10000 / args.users
print("| users | databases | drain | Notion requests | failed runs | threads | PostgreSQL"
      " connections | peak RSS | 10,000 users (extrapolated) | target |")
print("|---|---|---|---|---|---|---|---|---|---|")
print(f"| {args.users:,} | {r['queued']:,} | {r['seconds']:.1f} s | {r['requests']:,} |"
      f" {r['bad']} | {r['peak']['threads']} | {r['peak']['connections']} |"
      f" {r['rss']:.1f} MiB | {per_10k / 60:.1f} min | 15 min |", flush=True)
h.stop_responder(responder)
h.run_cleanups()
