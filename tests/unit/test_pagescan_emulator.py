"""test_pagescan_emulator.py - the scanner's tape against json-c's tree on
every page the emulator generates.

For each kind the generator knows (Characters, Worlds, Stories, Chat
Sessions, generic), generates pages (some with more than 25 people,
relations or mentions), and keeps the exact bytes the emulator answers:
every query answer of a walk under 2025-09-03 (live, then prerendered, as
`make bench` serves them) and under 2022-06-28, and a retrieved page per
answer wrapped as the walk wraps it. tests/unit/test_pagescan, given that
directory, compares the content hash, the mapped columns of every kind,
the truncation check and the members of every page (tape vs json-c) and
prints how many it compared; every page must be compared in full, and some
of them must be pages whose values Notion may have truncated.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import harness as h

KINDS = ("Characters", "Worlds", "Stories", "Chat Sessions", "generic")
PAGES = 1000
TOKEN = "secret_pagescan"

t = h.Tap()
binary = os.path.join(h.BUILDDIR, "tests", "unit", "test_pagescan")
if not os.path.exists(binary):
    t.skip_all("tests/unit/test_pagescan is not built (cmocka missing?)")
emu = h.Emulator()
emu.control("POST", "/tokens", {"token": TOKEN, "integration_name": "pagescan", "databases": []})
out = tempfile.mkdtemp(prefix="pagescan-")
h.on_cleanup(lambda: shutil.rmtree(out, ignore_errors=True))


def call(method, path, body, version):
    resp = h.request(method, emu.url + path, json.dumps(body) if body is not None else None,
                     {"Authorization": f"Bearer {TOKEN}", "Notion-Version": version,
                      "Content-Type": "application/json"})
    return resp.status, resp.raw


def walk(path, version, label):
    """Every answer of one query walk, kept as sent; returns (answers, pages, ids)."""
    cursor, n, pages, ids = None, 0, 0, []
    while True:
        body = {"page_size": 100}
        if cursor:
            body["start_cursor"] = cursor
        status, raw = call("POST", path, body, version)
        if status != 200:
            raise RuntimeError(f"{path}: {status} {raw[:300]!r}")
        with open(os.path.join(out, f"{label}-{n:03d}.json"), "wb") as f:
            f.write(raw)
        answer = json.loads(raw)
        pages += len(answer["results"])
        ids.append(answer["results"][0]["id"])
        n += 1
        if not answer.get("has_more"):
            return n, pages, ids
        cursor = answer["next_cursor"]


def retrieved(ids, label):
    """GET /v1/pages/{id}, wrapped as the one result of a list (notion.c)."""
    for n, pid in enumerate(ids):
        status, raw = call("GET", f"/v1/pages/{pid}", None, "2025-09-03")
        if status != 200:
            raise RuntimeError(f"page {pid}: {status}")
        with open(os.path.join(out, f"{label}-page-{n:03d}.json"), "wb") as f:
            f.write(b'{"object":"list","results":[' + raw + b'],"has_more":false}')
    return len(ids)


expected = 0
for seed, kind in enumerate(KINDS, 1):
    label = re.sub(r"\W", "_", kind.lower())
    db = emu.control("POST", "/databases", {"title": kind, "token": TOKEN})
    ds = db["data_source_ids"][0]
    emu.control("POST", "/generate", {"data_source_id": ds, "count": PAGES, "seed": seed,
                                      "kind": kind})
    answers, pages, ids = walk(f"/v1/data_sources/{ds}/query", "2025-09-03", label)
    t.eq(pages, PAGES, f"{kind}: {answers} answers of the walk kept")
    expected += pages + retrieved(ids, label)
    legacy, pages, _ = walk(f"/v1/databases/{db['database_id']}/query", "2022-06-28",
                            label + "-2022")
    t.eq(pages, PAGES, f"{kind}: {legacy} answers under 2022-06-28 kept")
    expected += pages
    emu.control("POST", "/prerender", {"data_source_id": ds})
    _, pages, _ = walk(f"/v1/data_sources/{ds}/query", "2025-09-03", label + "-prerendered")
    t.eq(pages, PAGES, f"{kind}: prerendered answers kept")
    expected += pages

env = dict(os.environ, CMOCKA_MESSAGE_OUTPUT="TAP")
run = subprocess.run([binary, out], env=env, capture_output=True, text=True, timeout=600)
compared = re.search(r"# (\d+) answers, (\d+) pages compared, (\d+) of them may be truncated",
                     run.stdout)
t.ok(run.returncode == 0 and "not ok" not in run.stdout,
     "test_pagescan: every page's hash, columns and members are the same from the tape "
     "and from json-c", run.stdout + run.stderr)
t.eq(int(compared.group(2)) if compared else None, expected,
     f"every page of every kept answer compared in full ({expected})")
t.ok(compared and int(compared.group(3)) > 0,
     "some of them may be truncated (people, relations, mentions past 25)",
     run.stdout)
t.done()
