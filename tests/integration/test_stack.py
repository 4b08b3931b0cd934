"""test_stack.py - the README's first command, from a fresh clone.

Clones this repository into a temporary folder, runs `cli/quickstart.sh`
there (install check, build from scratch, PostgreSQL with pg_cron, emulator,
spawn-fcgi, nginx with a self-signed certificate, one sync over HTTPS), and
checks what it printed and what is running: the JSON answer says success
for all four databases, the row counts match the sample workspace, the
endpoint answers over HTTPS and redirects plain HTTP. Then a second
invocation stops everything it started.

Skipped when the source tree is not a git checkout (e.g. `make distcheck`).
"""
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "lib"))
import harness as h  # noqa: E402

SAMPLE = {"notion_characters_sync": 24, "notion_worlds_sync": 6, "notion_stories_sync": 12,
          "notion_chat_sessions_sync": 9}

t = h.Tap()
src = os.path.abspath(os.environ.get("top_srcdir", "."))
if not os.path.isdir(os.path.join(src, ".git")):
    t.skip_all("the source tree is not a git checkout")

work = tempfile.mkdtemp(prefix="nsync-clone-")
h.on_cleanup(lambda: shutil.rmtree(work, ignore_errors=True))
os.chmod(work, 0o755)
clone = os.path.join(work, "notion-sync")
subprocess.run(["git", "clone", "-q", src, clone], check=True)
https_port, http_port = h.free_port(), h.free_port()
env = dict(os.environ, NOTION_SYNC_HTTPS_PORT=str(https_port), NOTION_SYNC_HTTP_PORT=str(http_port))
for k in ("NOTION_TOKEN", "DATABASE_URL", "NOTION_API_URL", "NOTION_SYNC_SECRET"):
    env.pop(k, None)
quickstart = os.path.join(clone, "cli", "quickstart.sh")


def stop_stack():
    if os.path.isdir(os.path.join(clone, ".stack")):
        subprocess.run([quickstart, "stop"], env=env, capture_output=True, timeout=120)


h.on_cleanup(stop_stack)
run = subprocess.run([quickstart], env=env, capture_output=True, text=True, timeout=1500)
out = run.stdout
t.ok(run.returncode == 0, "cli/quickstart.sh from a fresh clone exits 0",
     (run.stdout[-2000:], run.stderr[-2000:]))
t.ok(f"POST https://localhost:{https_port}/api/notion/sync-to-postgres" in out,
     "the sync went through https://localhost:<port>/api/notion/sync-to-postgres")
t.ok('"success": true' in out and out.count('"status": "success"') == 4 and '"status": "error"' not in out,
     "the JSON answer says success for the four sample databases", out[-3000:])
counts = dict(re.findall(r"^\s*(notion_\w+_sync)\s*\|\s*(\d+)\s*$", out, re.M))
t.eq({k: int(v) for k, v in counts.items() if k in SAMPLE}, SAMPLE,
     "the table of what landed matches the sample workspace")

# The stack is up: HTTPS with the generated certificate, HTTP redirects.
stack = os.path.join(clone, ".stack")
ctx = ssl.create_default_context(cafile=os.path.join(stack, "nginx", "cert.pem"))
try:
    with urllib.request.urlopen(f"https://localhost:{https_port}/healthz", context=ctx, timeout=10) as r:
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
job = subprocess.run(["psql", "-X", "-At", "-h", stack, "-U", "postgres", "-d", "notion_sync", "-c",
                      "select schedule from cron.job where jobname = 'sync-notion-databases'"],
                     capture_output=True, text=True)
t.eq(job.stdout.strip(), "*/15 * * * *", "the stack's PostgreSQL has the 15-minute pg_cron job")
who = subprocess.run(["psql", "-X", "-At", "-h", stack, "-U", "postgres", "-d", "notion_sync", "-c",
                      "select count(*) from pg_stat_activity where usename = 'notion_sync_responder'"],
                     capture_output=True, text=True)
t.ok(who.stdout.strip().isdigit() and int(who.stdout.strip()) >= 1,
     "the responder is connected as the least-privilege role notion_sync_responder", who.stdout)

# A second invocation stops everything it started.
pids = {}
for name in ("nginx", "responder", "emulator"):
    try:
        pids[name] = int(open(os.path.join(stack, name + ".pid")).read())
    except (OSError, ValueError):
        pids[name] = None
second = subprocess.run([quickstart], env=env, capture_output=True, text=True, timeout=120)
t.ok(second.returncode == 0 and "stopped" in second.stdout, "a second invocation stops the stack",
     (second.stdout, second.stderr))
t.ok(all(p and not h.pid_running(p) for p in pids.values()),
     "nginx, the responder and the emulator are gone", pids)
t.ok(not os.path.exists(os.path.join(stack, "pg", "postmaster.pid")), "PostgreSQL is stopped")
t.done()
