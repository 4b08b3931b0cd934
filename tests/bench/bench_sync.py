"""bench_sync.py - `make bench`: how fast and how lean one database sync is.

The Notion emulator serves a database of realistic pages (about 20
properties of mixed types, 3-4 KB of JSON each) from prerendered answers at
zero latency, so that it is not the bottleneck; the CLI syncs it into a
real PostgreSQL 15. For a first sync, unchanged re-syncs and re-syncs with
1% of pages edited, each as a full walk and as an incremental sync, it
prints the walk mode, pages Notion returned, pages per second (wall clock),
CPU time of the sync process per page returned (user + system, from
wait4), rows written (pg_stat_user_tables), Notion requests and the peak
RSS of the sync process; then the same first sync at 2,000 pages, to show
that memory does not grow with the database.

Prints numbers and the targets of the sync engine issue beside them; it
does not fail on a miss (benchmarks measure, tests assert).
"""
import json
import time

import benchlib

args = benchlib.arguments(("--pages", int, 20000), ("--small", int, 2000))
import harness as h  # noqa: E402

TOKEN = "secret_bench_token"
TABLE = "notion_characters_sync"

pg = h.Postgres(extra_conf=["autovacuum = off"])
emu = h.Emulator()
h.migrate(pg)
emu.control("POST", "/tokens", {"token": TOKEN, "integration_name": "bench", "databases": []})
env = h.base_env(pg, emu, NOTION_RATE_LIMIT="0")
real_cli = benchlib.real_cli(env, h.CLI)


def make_database(user, pages, seed):
    pg.psql(f"insert into user_settings (user_id, notion_token) values ('{user}', '{TOKEN}')")
    db = emu.control("POST", "/databases", {"title": "Characters", "token": TOKEN})
    ds = db["data_source_ids"][0]
    gen = emu.control("POST", "/generate", {"data_source_id": ds, "count": pages, "seed": seed,
                                            "kind": "Characters"})
    emu.control("POST", "/prerender", {"data_source_id": ds})
    return db, ds, gen["page_ids"]


def run_sync(label, user, db, full=False):
    before = h.write_counters(pg, [TABLE])
    answer, wall, cpu, rss = benchlib.measured_sync(
        real_cli, ["sync", "--user", user, "--database", db["database_id"]]
        + (["--full"] if full else []), env)
    after = h.write_counters(pg, [TABLE])
    pages = answer["pages_seen"]
    return {
        "label": label, "mode": answer["mode"], "pages": pages, "wall_s": wall,
        "pages_per_s": pages / wall, "cpu_us_per_page": cpu / max(pages, 1) * 1e6, "rows_written": sum(after) - sum(before),
        "notion_requests": answer["notion_requests"], "peak_rss_mib": rss,
    }


def page_size(ds):
    status, _, answer = h.http("POST", f"{emu.url}/v1/data_sources/{ds}/query",
                               json.dumps({"page_size": 100}),
                               {"Authorization": f"Bearer {TOKEN}", "Notion-Version": "2025-09-03",
                                "Content-Type": "application/json"})
    sizes = [len(json.dumps(p, separators=(",", ":"), ensure_ascii=False).encode())
             for p in answer["results"]]
    props = [len(p["properties"]) for p in answer["results"]]
    return sum(sizes) / len(sizes), sum(props) / len(props)


big_user = "0d000000-0000-4000-8000-000000000001"
small_user = "0d000000-0000-4000-8000-000000000002"
t0 = time.monotonic()
big_db, big_ds, big_ids = make_database(big_user, args.pages, 1)
small_db, small_ds, _ = make_database(small_user, args.small, 2)
avg_bytes, avg_props = page_size(big_ds)
h.note(f"fixture: {args.pages} + {args.small} pages generated and prerendered in "
       f"{time.monotonic() - t0:.1f} s; average page {avg_bytes:.0f} bytes of JSON, "
       f"{avg_props:.1f} properties")

def edit(ids, tag):
    emu.control("POST", "/clock", {"advance_seconds": 120})
    for n, pid in enumerate(ids):
        emu.control("PATCH", f"/pages/{pid}", {"properties": {
            "Name": {"type": "title", "title": [{"type": "text", "text": {"content": f"{tag} {n}"}}]}}})
    emu.control("POST", "/prerender", {"data_source_id": big_ds})


results = [run_sync("first sync", big_user, big_db),
           run_sync("unchanged, full walk", big_user, big_db, full=True),
           run_sync("unchanged, incremental", big_user, big_db)]
emu.control("POST", "/clock", {"advance_seconds": 600})
edited = big_ids[:: 100][: args.pages // 100]
edit(edited, "Edited")
results.append(run_sync(f"1% edited, full walk", big_user, big_db, full=True))
edited_again = big_ids[50:: 100][: args.pages // 100]
edit(edited_again, "Again")
results.append(run_sync(f"1% edited, incremental", big_user, big_db))
small = run_sync(f"first sync, {args.small} pages", small_user, small_db)
results.append(small)

print()
print(f"notion-sync benchmark: {args.pages} pages, emulator at zero latency, "
      f"batch size {env.get('NOTION_SYNC_BATCH_SIZE', '200 (default)')}")
header = f"{'scenario':<26}{'mode':>12}{'pages':>7}{'wall s':>8}{'pages/s':>9}{'CPU µs/page':>13}" \
         f"{'rows written':>14}{'requests':>10}{'peak RSS MiB':>14}"
print(header)
print("-" * len(header))
for r in results:
    print(f"{r['label']:<26}{r['mode']:>12}{r['pages']:>7}{r['wall_s']:>8.2f}{r['pages_per_s']:>9.0f}"
          f"{r['cpu_us_per_page']:>13.1f}{r['rows_written']:>14}{r['notion_requests']:>10}"
          f"{r['peak_rss_mib']:>14.1f}")
first, unchanged, unchanged_inc, edited_run, edited_inc = results[:5]
growth = (first["peak_rss_mib"] - small["peak_rss_mib"]) / small["peak_rss_mib"] * 100
print()
print("targets (sync engine issue):")
checks = [
    ("zero rows written when nothing changed", unchanged["rows_written"] == 0,
     f"{unchanged['rows_written']} rows"),
    ("rows written for 1% edited == pages edited (full walk)",
     edited_run["rows_written"] == len(edited),
     f"{edited_run['rows_written']} rows for {len(edited)} edits"),
    ("rows written for 1% edited == pages edited (incremental)",
     edited_inc["rows_written"] == len(edited_again),
     f"{edited_inc['rows_written']} rows for {len(edited_again)} edits"),
    ("unchanged incremental sync: 1 Notion request per data source (+1 database)",
     unchanged_inc["notion_requests"] == 2, f"{unchanged_inc['notion_requests']} requests"),
    ("CPU <= 120 µs/page, first sync", first["cpu_us_per_page"] <= 120,
     f"{first['cpu_us_per_page']:.1f} µs"),
    ("CPU <= 90 µs/page, unchanged re-sync", unchanged["cpu_us_per_page"] <= 90,
     f"{unchanged['cpu_us_per_page']:.1f} µs"),
    ("peak RSS <= 48 MiB", max(r["peak_rss_mib"] for r in results) <= 48,
     f"{max(r['peak_rss_mib'] for r in results):.1f} MiB"),
    (f"peak RSS within 10% of the {args.small}-page figure", abs(growth) <= 10,
     f"{first['peak_rss_mib']:.1f} vs {small['peak_rss_mib']:.1f} MiB ({growth:+.1f}%)"),
]
for what, ok, figure in checks:
    print(f"  [{'met ' if ok else 'MISS'}] {what}: {figure}")
