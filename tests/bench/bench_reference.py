"""bench_reference.py - `make bench`: this project's CPU per page next to a
plain Node.js sync of the design guide (tests/bench/node: the official
@notionhq/client and pg from npm), in the same run, on the same emulator
data (one 20,000-page Characters database at zero latency), each syncing
it for its own user: a first sync, then an unchanged full walk. For each it
prints the client's CPU per page returned (user + system of the process,
from wait4), PostgreSQL's server CPU per page written and per page
returned (the postmaster's children, reaped or not), the peak RSS, and the
ratio of the two clients; with the target beside it (at least 3x less CPU
per page than the reference). Measures; it does not fail on a miss.
"""
import json
import os
import subprocess
import sys
import time

import benchlib

args = benchlib.arguments(("--pages", int, 20000))
import harness as h  # noqa: E402

TOKEN = "secret_bench_reference_token"
C_USER = "0e000000-0000-4000-8000-0000000000c1"
NODE_USER = "0e000000-0000-4000-8000-0000000000a2"
NODE_DIR = os.path.join(os.environ["top_srcdir"], "tests", "bench", "node")

install = subprocess.run([os.path.join(NODE_DIR, "install.sh")], capture_output=True, text=True)
if install.returncode:
    sys.exit("the Node.js reference could not be installed: " + install.stderr.strip())

pg = h.Postgres(extra_conf=["autovacuum = off"])
emu = h.Emulator()
h.migrate(pg)
emu.control("POST", "/tokens", {"token": TOKEN, "integration_name": "bench-ref",
                                "databases": []})
db = emu.control("POST", "/databases", {"title": "Characters", "token": TOKEN})
ds = db["data_source_ids"][0]
emu.control("POST", "/generate", {"data_source_id": ds, "count": args.pages, "seed": 7,
                                  "kind": "Characters"})
emu.control("POST", "/prerender", {"data_source_id": ds})
for user in (C_USER, NODE_USER):
    pg.psql(f"insert into user_settings (user_id, notion_token) values ('{user}', '{TOKEN}')")
pg.psql("insert into notion_databases (user_id, database_id, database_name) values"
        f" ('{C_USER}', '{db['database_id']}', 'Characters')")
env = h.base_env(pg, emu, NOTION_RATE_LIMIT="0")
real_cli = benchlib.real_cli(env, h.CLI)


def postmaster_cpu():
    """Seconds of CPU of PostgreSQL: the postmaster, its live children, and
    the children it has reaped (cutime/cstime)."""
    tick = os.sysconf("SC_CLK_TCK")
    master = int(open(os.path.join(pg.data, "postmaster.pid")).readline())

    def fields(pid):
        text = open(f"/proc/{pid}/stat").read()
        return text[text.rindex(")") + 2:].split()
    f = fields(master)
    total = sum(int(x) for x in f[11:15])  # utime stime cutime cstime
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                g = fields(entry)
                if int(g[1]) == master:
                    total += int(g[11]) + int(g[12])
            except (OSError, ValueError):
                pass
    return total / tick


def measure(argv, run_env):
    """Run argv as a child; (its stdout, CPU seconds, peak RSS MiB, wall, PG CPU)."""
    pg_before = postmaster_cpu()
    out, wall, cpu, rss = benchlib.measured_run(argv, run_env)
    time.sleep(0.3)  # the backend of a closed connection exits and is reaped
    return out, cpu, rss, wall, postmaster_cpu() - pg_before


def c_sync(full):
    argv = [real_cli, "sync", "--user", C_USER, "--database", db["database_id"]] + \
        (["--full"] if full else [])
    out, cpu, rss, wall, pg_cpu = measure(argv, env)
    answer = json.loads(out)
    return dict(pages=answer["pages_seen"], written=answer["inserted"] + answer["updated"],
                cpu=cpu, rss=rss, wall=wall, pg_cpu=pg_cpu, requests=answer["notion_requests"])


def node_sync():
    argv = ["node", os.path.join(NODE_DIR, "sync.js"), "--notion-url", emu.url, "--token", TOKEN,
            "--database", db["database_id"], "--user", NODE_USER, "--full"]
    node_env = dict(env)
    node_env.update(pg.env())
    out, cpu, rss, wall, pg_cpu = measure(argv, node_env)
    answer = json.loads(out.decode().strip().splitlines()[-1])
    return dict(pages=answer["pages"], written=answer["written"], cpu=cpu, rss=rss, wall=wall,
                pg_cpu=pg_cpu, requests=answer["requests"])


rows = []
for label, full in (("first sync", False), ("unchanged, full walk", True)):
    c = c_sync(full)
    n = node_sync()
    rows.append((label, c, n))

print(f"notion-sync vs a Node.js sync of the design guide (@notionhq/client + pg), {args.pages}"
      " pages, emulator at zero latency, same run", flush=True)
print("| scenario | client | pages | rows written | requests | wall | client CPU µs/page |"
      " PostgreSQL CPU µs/page written | peak RSS |")
print("|---|---|---|---|---|---|---|---|---|")
for label, c, n in rows:
    for name, r in (("notion-sync (C)", c), ("Node.js reference", n)):
        per_written = f"{r['pg_cpu'] / r['written'] * 1e6:.0f}" if r["written"] else \
            f"- ({r['pg_cpu'] / max(1, r['pages']) * 1e6:.0f} per page returned)"
        print(f"| {label} | {name} | {r['pages']:,} | {r['written']:,} | {r['requests']} |"
              f" {r['wall']:.2f} s | {r['cpu'] / max(1, r['pages']) * 1e6:.1f} |"
              f" {per_written} | {r['rss']:.1f} MiB |")
print()
for label, c, n in rows:
    ratio = (n["cpu"] / max(1, n["pages"])) / max(1e-9, c["cpu"] / max(1, c["pages"]))
    print(f"  [{'met ' if ratio >= 3 else 'MISS'}] {label}: the reference spends {ratio:.2f}x"
          " this project's CPU per page (target: at least 3x)", flush=True)
h.run_cleanups()
