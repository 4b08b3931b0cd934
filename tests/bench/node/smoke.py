"""smoke.py - does the Node.js reference sync (sync.js) sync correctly?

On a throwaway PostgreSQL (migrated with the built CLI) and the Notion
emulator: 2,000 generated Characters pages; a first sync writes them all,
a second writes none, and after 10 pages are edited a third writes those
10. Then the table's row count and the name and description of a few rows
are checked against the emulator's ground truth, and a sync with an
unknown token must fail with a message that does not show the token.

Run from the worktree root after building the project once:
  top_srcdir=$PWD top_builddir=$PWD PYTHONPATH=$PWD/tests/lib \\
      python3 tests/bench/node/smoke.py
Prints PASS/FAIL lines; exits non-zero on any failure.
"""
import json
import os
import subprocess
import sys

import harness as h

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = "secret_node_smoke_token"
USER = "0e000000-0000-4000-8000-000000000001"
PAGES = 2000
EDITS = 10
failures = []


def check(ok, what):
    print(f"{'PASS' if ok else 'FAIL'}: {what}")
    if not ok:
        failures.append(what)


def pg_vars(conninfo):
    """The libpq conninfo of h.Postgres as the standard PG* variables."""
    names = {"host": "PGHOST", "dbname": "PGDATABASE", "user": "PGUSER", "port": "PGPORT"}
    return {names[k]: v for k, v in (item.split("=", 1) for item in conninfo.split())}


def run_sync(label, env, extra=(), token=TOKEN):
    argv = ["node", os.path.join(HERE, "sync.js"), "--notion-url", emu.url, "--token", token,
            "--database", db["database_id"], "--user", USER, *extra]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    check(token not in out.stdout + out.stderr, f"{label}: the token is not printed")
    if out.returncode != 0:
        return out.returncode, None, out.stderr
    lines = out.stdout.splitlines()
    check(len(lines) == 1, f"{label}: one line on stdout")
    answer = json.loads(lines[-1])
    h.note(f"{label}: {lines[-1]}")
    return 0, answer, out.stderr


def expect(label, answer, pages, written, unchanged, requests):
    got = {k: answer and answer.get(k) for k in ("pages", "written", "unchanged", "requests")}
    want = {"pages": pages, "written": written, "unchanged": unchanged, "requests": requests}
    check(got == want, f"{label}: {want} (got {got})")


installed = subprocess.run([os.path.join(HERE, "install.sh")], capture_output=True, text=True)
check(installed.returncode == 0, f"install.sh: {(installed.stdout + installed.stderr).strip()}")
if installed.returncode != 0:
    sys.exit(1)

pg = h.Postgres()
emu = h.Emulator()
h.migrate(pg)
emu.control("POST", "/tokens", {"token": TOKEN, "integration_name": "node smoke", "databases": []})
db = emu.control("POST", "/databases", {"title": "Characters", "token": TOKEN})
ds = db["data_source_ids"][0]
ids = emu.control("POST", "/generate", {"data_source_id": ds, "count": PAGES, "seed": 7,
                                        "kind": "Characters"})["page_ids"]
conninfo = pg.env()["DATABASE_URL"]
env = dict(os.environ)
env.pop("DATABASE_URL", None)
env_pgvars = {**env, **pg_vars(conninfo)}
requests = 1 + -(-PAGES // 100)  # GET database + one query per 100 pages

emu.clear_requests()
_, first, _ = run_sync("first sync (PG* variables)", env_pgvars)
expect("first sync", first, PAGES, PAGES, 0, requests)
log = emu.requests()
queries = [r for r in log if r["path"].endswith("/query")]
check([r["method"] for r in log[:1]] == ["GET"] and all(r["path"] == f"/v1/data_sources/{ds}/query"
                                                        for r in queries),
      "GET the database, then query its data source")
check(all(r["notion_version"] == "2025-09-03" for r in log), "Notion-Version 2025-09-03")
check(all(r["body"]["page_size"] == 100 and r["body"]["sorts"] ==
          [{"timestamp": "created_time", "direction": "ascending"}] for r in queries),
      "page_size 100, created_time ascending")
check([bool(r["body"].get("start_cursor")) for r in queries] == [False] + [True] * (len(queries) - 1),
      "the walk follows next_cursor")
_, second, _ = run_sync("second sync (--pg conninfo, --full)", env, ["--pg", conninfo, "--full"])
expect("second sync", second, PAGES, 0, PAGES, requests)

emu.control("POST", "/clock", {"advance_seconds": 120})
edited = ids[:: PAGES // EDITS][:EDITS]
for n, pid in enumerate(edited):
    emu.control("PATCH", f"/pages/{pid}", {"properties": {
        "Name": {"type": "title", "title": [{"type": "text", "text": {"content": f"Edited {n}"}}]}}})
_, third, _ = run_sync("third sync, 10 pages edited", env_pgvars)
expect("third sync", third, PAGES, EDITS, PAGES - EDITS, requests)
for key in ("wall_s", "cpu_user_s", "cpu_sys_s", "cpu_sync_s", "rss_peak_mib"):
    check(isinstance(third and third.get(key), (int, float)), f"the answer has {key}")

count = pg.scalar(f"select count(*) from notion_characters_sync where user_id = '{USER}'"
                  f" and notion_database_id = '{db['database_id']}'"
                  f" and notion_data_source_id = '{ds}'")
check(count == str(PAGES), f"{PAGES} rows in notion_characters_sync (got {count})")


def plain(value):
    return "".join(t.get("plain_text", "") for t in value[value["type"]]) if value else None


def truth_description(props):
    present = [props[n] for n in ("Description", "Bio", "Backstory") if n in props]
    texts = [plain(v) for v in present if plain(v)]
    return texts[0] if texts else ("" if present else None)


# Edited pages, pages whose Description is empty (Bio or Backstory instead), and others.
truth_all = emu.control("GET", f"/pages?data_source_id={ds}")["results"]
fallback = [p["id"] for p in truth_all if not plain(p["properties"].get("Description"))]
sample = edited[:3] + fallback[:4] + ids[1:PAGES:PAGES // 5]
check(len(fallback) >= 4, f"pages without a Description to check ({len(fallback)})")
rows = h.json_rows(pg, "select notion_page_id, name, description from notion_characters_sync"
                       f" where notion_page_id in ({', '.join(repr(i) for i in sample)})")
by_id = {r["notion_page_id"]: r for r in rows}
for pid in sample:
    truth = emu.control("GET", f"/pages/{pid}")["properties"]
    row = by_id.get(pid, {})
    want = (plain(truth["Name"]), truth_description(truth))
    got = (row.get("name"), row.get("description"))
    check(got == want, f"page {pid}: name {want[0]!r} and its description as in Notion")

code, _, err = run_sync("unknown token", env_pgvars, token="secret_not_a_token")
check(code != 0 and "unauthorized" in err, f"an unknown token fails clearly: {err.strip()}")

print(f"{'FAIL' if failures else 'PASS'}: node reference smoke check "
      f"({len(failures)} failure{'s' if len(failures) != 1 else ''})")
sys.exit(1 if failures else 0)
