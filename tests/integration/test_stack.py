"""test_stack.py - the README's first command, from a fresh clone.

Clones this repository into a temporary folder, runs `cli/quickstart.sh`
there (install check, pg_net build check, build from scratch, PostgreSQL
with pg_cron and the real pg_net, emulator, spawn-fcgi, nginx with a
self-signed certificate, one sync over HTTPS), and checks what it printed
and what is running: the JSON answer says success for all four databases,
the row counts match the sample workspace, the endpoint answers over HTTPS
and redirects plain HTTP, and the stack's pg_net delivers
sync_all_notion_databases()'s requests (202, runs with trigger pg_net).
Then a second invocation stops everything it started.

pg_net is optional for the Quick start: when it is not installed (and
NOTION_SYNC_PG_NET is not "required", as .ci/run sets it) its checks are
skipped.

Skipped when the source tree is not a git checkout (e.g. `make distcheck`).

The clone and the quickstart run are the one shared (expensive) setup, made
at module level; the checks are named scenarios over it (all by default, or
some by name: test_stack.py https pg_net):
  quickstart  what quickstart.sh printed: exit 0, HTTPS, four successes, counts;
  https       /healthz over HTTPS with HSTS, plain HTTP redirected;
  database    the 15-minute pg_cron job, the responder's least-privilege role;
  pg_net      the stack's real pg_net delivers sync_all_notion_databases();
  stop        a second invocation stops everything it started (run last).
"""
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

import harness as h
import scenario

SAMPLE = {"notion_characters_sync": 24, "notion_worlds_sync": 6, "notion_stories_sync": 12,
          "notion_chat_sessions_sync": 9}

SCENARIO_NAMES = ("quickstart", "https", "database", "pg_net", "stop")
if any(a not in SCENARIO_NAMES for a in sys.argv[1:]):   # before the expensive setup
    print(f"usage: {sys.argv[0]} [{' | '.join(SCENARIO_NAMES)}]...", file=sys.stderr)
    sys.exit(2)

t = h.Tap()
src = os.path.abspath(os.environ.get("top_srcdir", "."))
if not os.path.isdir(os.path.join(src, ".git")):
    t.skip_all("the source tree is not a git checkout")

work = tempfile.mkdtemp(prefix="nsync-clone-")
h.on_cleanup(lambda: shutil.rmtree(work, ignore_errors=True))
os.chmod(work, 0o755)
clone = os.path.join(work, "notion-sync")
subprocess.run(["git", "clone", "-q", src, clone], check=True)
https_port, http_port, pg_net_port = h.free_port(), h.free_port(), h.free_port()
env = dict(os.environ, NOTION_SYNC_HTTPS_PORT=str(https_port), NOTION_SYNC_HTTP_PORT=str(http_port),
           NOTION_SYNC_PG_NET_PORT=str(pg_net_port))
# The clone has no ../shared beside it: cli/build-pg-net.sh gets the vendor tree's path.
vendor = os.path.join(src, "..", "shared", "vendor", "pg_net")
if os.path.isdir(vendor):
    env["NOTION_SYNC_PG_NET_SRC"] = os.path.abspath(vendor)
for k in ("NOTION_TOKEN", "DATABASE_URL", "NOTION_API_URL", "NOTION_SYNC_SECRET"):
    env.pop(k, None)
quickstart = os.path.join(clone, "cli", "quickstart.sh")
stack = os.path.join(clone, ".stack")


def stop_stack():
    if os.path.isdir(os.path.join(clone, ".stack")):
        subprocess.run([quickstart, "stop"], env=env, capture_output=True, timeout=120)


h.on_cleanup(stop_stack)
# The shared setup: the README's first command, once.
run = subprocess.run([quickstart], env=env, capture_output=True, text=True, timeout=1500)
out = run.stdout


def quickstart_output():
    t.ok(run.returncode == 0, "cli/quickstart.sh from a fresh clone exits 0",
         (run.stdout[-2000:], run.stderr[-2000:]))
    t.ok(f"POST https://localhost:{https_port}/api/notion/sync-to-postgres" in out,
         "the sync went through https://localhost:<port>/api/notion/sync-to-postgres")
    t.ok('"success": true' in out and out.count('"status": "success"') == 4
         and '"status": "error"' not in out,
         "the JSON answer says success for the four sample databases", out[-3000:])
    counts = dict(re.findall(r"^\s*(notion_\w+_sync)\s*\|\s*(\d+)\s*$", out, re.M))
    t.eq({k: int(v) for k, v in counts.items() if k in SAMPLE}, SAMPLE,
         "the table of what landed matches the sample workspace")


def https():
    """The stack is up: HTTPS with the generated certificate, HTTP redirects."""
    ctx = ssl.create_default_context(cafile=os.path.join(stack, "nginx", "cert.pem"))
    try:
        with urllib.request.urlopen(f"https://localhost:{https_port}/healthz", context=ctx,
                                    timeout=10) as r:
            health = (r.status, r.headers.get("Strict-Transport-Security"))
    except Exception as e:  # noqa: BLE001 - reported by the assertion
        health = repr(e)
    t.ok(isinstance(health, tuple) and health[0] == 200 and health[1],
         "the stack answers /healthz over HTTPS with HSTS", health)
    with socket.create_connection(("127.0.0.1", http_port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        head = s.recv(4096).decode("latin-1")
    t.ok(head.startswith("HTTP/1.1 301") and f"https://localhost:{https_port}/healthz" in head,
         "plain HTTP is redirected to HTTPS", head[:300])


def database():
    job = subprocess.run(["psql", "-X", "-At", "-h", stack, "-U", "postgres", "-d", "notion_sync",
                          "-c", "select schedule from cron.job "
                                "where jobname = 'sync-notion-databases'"],
                         capture_output=True, text=True)
    t.eq(job.stdout.strip(), "*/15 * * * *",
         "the stack's PostgreSQL has the 15-minute pg_cron job")
    who = subprocess.run(["psql", "-X", "-At", "-h", stack, "-U", "postgres", "-d", "notion_sync",
                          "-c", "select count(*) from pg_stat_activity "
                                "where usename = 'notion_sync_responder'"],
                         capture_output=True, text=True)
    t.ok(who.stdout.strip().isdigit() and int(who.stdout.strip()) >= 1,
         "the responder is connected as the least-privilege role notion_sync_responder",
         who.stdout)


def stack_sql(sql):
    out = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", stack, "-U",
                          "postgres", "-d", "notion_sync", "-c", sql],
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else "error: " + out.stderr.strip()


def pg_net():
    """The stack's pg_net (real, built by cli/build-pg-net.sh) delivers what the
    SQL functions queue, through nginx's loopback server for it."""
    pg_net_missing = h.pg_net_missing()
    if pg_net_missing and env.get("NOTION_SYNC_PG_NET") == "required":
        t.ok(False, "pg_net is installed (NOTION_SYNC_PG_NET=required)", pg_net_missing)
        return
    if pg_net_missing:
        t.skip(pg_net_missing, 4)
        return
    t.ok(f"pg_net sends the 15-minute job to http://127.0.0.1:{pg_net_port}" in out,
         "quickstart.sh says where pg_net sends the job", out[-1500:])
    t.eq(stack_sql("select e.extversion || ' ' || (select count(*) from pg_stat_activity "
                   "where backend_type ilike '%pg_net%') from pg_extension e "
                   "where e.extname = 'pg_net'"), "0.20.4 1",
         "the stack's PostgreSQL has pg_net 0.20.4 and its background worker")
    runs0 = stack_sql("select coalesce(max(id), 0) from notion_sync_runs")
    ids = stack_sql("select request_id from sync_all_notion_databases("
                    "'00000000-0000-4000-8000-000000000001')").split()
    codes = []
    for _ in range(200):
        codes = stack_sql("select coalesce(string_agg(status_code::text, ',' order by id), '') "
                          f"from net._http_response where id in ({','.join(ids) or '0'})")
        if len(codes.split(",")) == len(ids) and codes:
            break
        time.sleep(0.1)
    t.ok(len(ids) == 4 and codes == "202,202,202,202",
         "pg_net delivers sync_all_notion_databases()'s four requests: 202 each", (ids, codes))
    runs = ""
    for _ in range(300):
        runs = stack_sql(f"select string_agg(trigger || ':' || status, ',') from notion_sync_runs "
                         f"where id > {runs0 if runs0.isdigit() else 0}")
        if runs and "queued" not in runs and "running" not in runs and runs.count(":") >= 4:
            break
        time.sleep(0.1)
    t.eq(sorted(runs.split(",")), ["pg_net:success"] * 4,
         "... and the four runs: trigger pg_net, success")


def stop():
    """A second invocation stops everything it started."""
    pids = {}
    for name in ("nginx", "responder", "emulator"):
        try:
            pids[name] = int(open(os.path.join(stack, name + ".pid")).read())
        except (OSError, ValueError):
            pids[name] = None
    second = subprocess.run([quickstart], env=env, capture_output=True, text=True, timeout=120)
    t.ok(second.returncode == 0 and "stopped" in second.stdout,
         "a second invocation stops the stack", (second.stdout, second.stderr))
    t.ok(all(p and not h.pid_running(p) for p in pids.values()),
         "nginx, the responder and the emulator are gone", pids)
    t.ok(not os.path.exists(os.path.join(stack, "pg", "postmaster.pid")), "PostgreSQL is stopped")


scenario.run(t, [("quickstart", quickstart_output), ("https", https), ("database", database),
                 ("pg_net", pg_net), ("stop", stop)])
