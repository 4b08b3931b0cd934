#!/usr/bin/env python3
"""test_replay.py - the sync against REAL recorded Notion answers.

Every other integration test talks to tests/emulator, which agrees with our own
reading of the docs. Here Notion is tests/replay/replay_server.py, which serves
only answers api.notion.com really sent (the notion-sdk-py VCR cassettes in
tests/fixtures/notion-sdk-py and the notion_ruby_mapping curl answers in
tests/fixtures/notion_ruby_mapping, see SOURCE.md in each), checks requests the way Notion
does (Notion-Version, Bearer token, page_size <= 100, documented body keys) and
answers the recorded error bodies. Real PostgreSQL 15, the CLI, and once the
FastCGI responder behind nginx.

For EVERY recorded page (the expectations are computed here from the fixture
files and the README/contract, never from the C code): the row is in the right
sync table, the title column is the plain text of the property of type title,
the text column follows the contract, `properties` equals what Notion sent,
notion_created_time / notion_last_edited_time are the recorded timestamps,
notion_data_source_id is the recorded data source; a re-sync writes 0 rows.
The notion_ruby_mapping rows carry 25 property types (numbers compared as exact
decimals), come in a three-page cursor walk, and one page's relation was cut at 25
references: its recorded property-item list must be fetched once, stored complete,
and never fetched again while the page is unchanged.
Also: a 2022-06-28 recording; the recorded 401 and (recorded-shape) 404 bodies
give notion_unauthorized / not_found answers quoting Notion's message.

Scenarios, each on its own database cloned from the migrated template
(tests/lib/scenario.py; PYTHONPATH=tests/lib to run this file by hand,
optionally naming scenarios):
  corpus     the fixture files, and the replay server validating like Notion;
  cli        register every recorded database, sync them through the CLI, then
             incremental and full re-syncs that write nothing;
  byid       a sync by id with nothing registered: the generic table;
  fastcgi    the same through the FastCGI responder behind nginx;
  discovery  search answered from the recordings;
  legacy     Notion-Version 2022-06-28 (a 2023 recording);
  errors     the recorded 401 and 404 bodies.
After them: no CLI output and no replay log line holds a token.
"""
import copy
import datetime
import glob
import json
import os
from decimal import Decimal

import harness as h
import scenario

REPLAY = os.path.join(h.SRCDIR, "tests", "replay", "replay_server.py")
FIXTURE_DIRS = [os.path.join(h.SRCDIR, "tests", "fixtures", d)
                for d in ("notion-sdk-py", "notion_ruby_mapping")]
TOKEN = "secret_test_replay_token_1"
OTHER_TOKEN = "secret_test_replay_token_other"
SECRET = "secret_test_replay_endpoint"
USER = "0e000000-0000-4000-8000-000000000001"      # registers everything, CLI
USER_BYID = "0e000000-0000-4000-8000-000000000002"  # syncs by id, nothing registered
USER_HTTP = "0e000000-0000-4000-8000-000000000003"  # through FastCGI + nginx
USER_DISC = "0e000000-0000-4000-8000-000000000004"  # discovery (search)
UNKNOWN_DB = "5e1f0000-0000-4000-8000-00000000dead"
TABLES = ["notion_characters_sync", "notion_worlds_sync", "notion_stories_sync",
          "notion_chat_sessions_sync", "notion_other_sync"]

# kind -> (table, title column, text column, text properties in order) from README
# "The tables" and contract item 5.
KINDS = {
    "Characters": ("notion_characters_sync", "name", "description",
                   ["Description", "Bio", "Backstory"]),
    "Worlds": ("notion_worlds_sync", "name", "description", ["Concept/Premise"]),
    "Stories": ("notion_stories_sync", "title", "description", ["Premise"]),
    "Chat Sessions": ("notion_chat_sessions_sync", "title", "transcript", ["Raw Transcript"]),
    "Other": ("notion_other_sync", "title", "description", ["Description"]),
}
TEXT_TYPES = ("rich_text", "title", "url", "email", "phone_number")

# The recorded databases the sync walks (2025-09-03) and the kind each is registered as.
SYNCED = [  # (cassette fixture, kind)
    ("test_collect_all_data_source_rows__2c927d46", "Other"),
    ("test_async_collect_all_data_source_rows__2c927d46", "Characters"),
    ("test_iterate_all_data_source_rows__2c927d46", "Other"),
    ("test_async_iterate_all_data_source_rows__e1f9389b", "Stories"),
    ("test_data_sources_query__245f2bf3", "Other"),   # a real empty query
]
LEGACY = "test_databases_query__d6b5c1eb"               # 2022-06-28, real empty query

# notion_ruby_mapping (2025-09-03): "Sample table", 5 rows in a recorded 3-page cursor
# chain, and "A parent", whose relation was cut at 25 (its database is made up by the
# replay server: MANY_RELATIONS_DB there). No property of either is named like a text
# property of a kind, so: the generic table, and Characters for the title named 名前.
SAMPLE_CHAIN = ["query_data_source_limit_2__9846ab69", "query_data_source_next_2__ff3d52d0",
                "query_data_source_last_2__9846ab69"]
SAMPLE_DB = "retrieve_database_database__9846ab69"
MANY_PAGE = "retrieve_page_with_many_relations__9846ab69"
MANY_ITEMS = "retrieve_property_relation_with_many_relations__9846ab69"
MANY_RELATIONS_DB = "db000000-0000-4000-8000-5a0c756ba0a7"
RUBY_TYPES = {"title", "rich_text", "number", "select", "multi_select", "status", "date",
              "checkbox", "url", "email", "phone_number", "people", "files", "relation",
              "rollup", "formula", "created_time", "created_by", "last_edited_time",
              "last_edited_by", "unique_id"}

t = h.Tap()


# --- the recorded workspace, read from the fixtures ----------------------------------

def load(stem):
    for d in FIXTURE_DIRS:
        path = os.path.join(d, stem + ".json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                return json.load(f)
    raise FileNotFoundError(stem)


def body(stem, i=0):
    """A recorded answer, numbers as exact decimals (Notion's digits, not a double's)."""
    return json.loads(load(stem)["interactions"][i]["response_body"], parse_float=Decimal)


def recorded_database(stem):
    """(database id, data source id, database title, [recorded pages]) of a cassette:
    the database it created, the data source it created, and the rows of its
    unfiltered recorded query (every page the sync should see)."""
    inters = load(stem)["interactions"]
    db = json.loads(next(i for i in inters if i["method"] == "POST" and
                         i["path"] == "/v1/databases")["response_body"])
    ds = json.loads(next(i for i in inters if i["method"] == "POST" and
                         i["path"] == "/v1/data_sources")["response_body"])
    q = [i for i in inters if i["path"] == f"/v1/data_sources/{ds['id']}/query"
         and i["status"] == 200 and "filter" not in json.loads(i["request_body"] or "{}")]
    assert len(q) == 1, stem
    pages = json.loads(q[0]["response_body"], parse_float=Decimal)["results"]
    title = "".join(r["plain_text"] for r in db["title"])
    return db["id"], ds["id"], title, pages


def ruby_databases():
    """The two notion_ruby_mapping databases as (stem, kind, db, ds, title, pages), and the
    properties the sync must store where they differ from the query's (the relation cut
    at 25, completed from the recorded property-item list)."""
    db = body(SAMPLE_DB)
    rows = [p for stem in SAMPLE_CHAIN for p in body(stem)["results"]]
    sample = (SAMPLE_DB, "Other", db["id"], db["data_sources"][0]["id"],
              "".join(r["plain_text"] for r in db["title"]), rows)
    page = body(MANY_PAGE)
    del page["request_id"]       # a row of a query answer carries none
    items = body(MANY_ITEMS)
    full = copy.deepcopy(page["properties"])
    name = next(k for k, v in full.items() if v["type"] == "relation" and v.get("has_more"))
    full[name]["relation"] = [i["relation"] for i in items["results"]]
    full[name]["has_more"] = False
    many = (MANY_PAGE, "Characters", MANY_RELATIONS_DB, page["parent"]["data_source_id"], "",
            [page])
    return [sample, many], {page["id"]: full}


def plain_text(value):
    items = value.get(value.get("type")) if isinstance(value, dict) else None
    if value.get("type") in ("url", "email", "phone_number"):
        return items if isinstance(items, str) else ""
    return "".join(i.get("plain_text", "") for i in items) if isinstance(items, list) else ""


def clean_text(s):
    """README: NUL characters are dropped from text columns; lone surrogates become U+FFFD."""
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s.replace("\x00", ""))


def clean_props(v):
    """README: NUL becomes U+FFFD in properties; lone surrogates become U+FFFD."""
    if isinstance(v, str):
        return "".join("\ufffd" if c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF else c for c in v)
    if isinstance(v, list):
        return [clean_props(x) for x in v]
    if isinstance(v, dict):
        return {clean_props(k): clean_props(x) for k, x in v.items()}
    return v


def expected_row(kind, page):
    """The mapped columns of contract item 5 / README, from the recorded page only."""
    _, title_col, text_col, text_props = KINDS[kind]
    props = page["properties"]
    title = next((v for v in props.values() if v.get("type") == "title"), None)
    text = None
    for name in text_props:
        if name in props:
            v = props[name]
            t_ = plain_text(v) if v.get("type") in TEXT_TYPES else ""
            if text is None or (not text and t_):
                text = t_
            if t_:
                break
    return {title_col: h.cap_title(clean_text(plain_text(title) if title else "")),
            text_col: None if text is None else clean_text(text)}


def epoch(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


# --- the replay server -----------------------------------------------------------------

class Replay(h.PortFileServer):
    """tests/replay/replay_server.py on a loopback port (port 0 + port file)."""

    def __init__(self, tokens):
        args = []
        for tok in tokens:
            args += ["--token", tok]
        super().__init__(REPLAY, args, name="replay")

    def control(self, method, path, body=None):
        status, _, js = h.request(method, self.url + "/_replay" + path,
                                  None if body is None else json.dumps(body),
                                  {"Content-Type": "application/json"}, timeout=30)
        if status != 200:
            raise RuntimeError(f"replay control {method} {path}: {status} {js}")
        return js

    def requests(self):
        return self.control("GET", "/requests")["requests"]

    def clear(self):
        self.control("DELETE", "/requests")

    def notion(self, method, path, body=None, version="2025-09-03", token=TOKEN):
        headers = {"Content-Type": "application/json"}
        if version:
            headers["Notion-Version"] = version
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return h.request(method, self.url + path, body, headers, timeout=30)


def show(code, js, out, err):
    return f"exit {code}\nstdout: {out[-1500:]}\nstderr: {err[-1500:]}"


rp = Replay([TOKEN])   # boots while the cluster is made
pg = h.migrated_cluster()
OUTPUTS = []
CHECKED = []   # row checks done (CLI, by id, FastCGI)


def fresh(name, users=()):
    """(database, env): a clone of the template; users hold TOKEN (written directly)."""
    sql = "".join(f"insert into user_settings (user_id, notion_token) values ('{u}', '{TOKEN}');"
                  for u in users)
    db = scenario.clone_database(pg, f"replay_{name}", sql=sql or None)
    env = h.base_env(db, rp)
    env.pop("NOTION_SYNC_FULL_INTERVAL", None)
    env.pop("NOTION_TOKEN", None)
    return db, env


def cli(env, args, e=None, input_text=None):
    code, js, out, err = h.run_cli(args, e or env, input_text=input_text, timeout=120)
    OUTPUTS.append((args, out, err))
    return code, js or {}, out, err


def set_token(env, user, check=True):
    code, _, out, err = cli(env, ["set-token", "--user", user], dict(env, NOTION_TOKEN=TOKEN))
    if check:
        t.ok(code == 0, f"set-token for {user[-1]}", show(code, None, out, err))


# --- the recorded workspace ---------------------------------------------------------------
DBS = []   # (stem, kind, database id, data source id, title, pages)
for _stem, _kind in SYNCED:
    DBS.append((_stem, _kind) + recorded_database(_stem))
RUBY_DBS, EXPECTED_PROPS = ruby_databases()
DBS += RUBY_DBS
SAMPLE_DS = RUBY_DBS[0][3]
MANY_ID = RUBY_DBS[1][5][0]["id"]
RUBY_PAGES = [p for _, _, _, _, _, pages in RUBY_DBS for p in pages]
ALL_PAGES = [(kind, db, ds, p) for _, kind, db, ds, _, pages in DBS for p in pages]


# ==========================================================================================
# corpus: the fixtures and the replay server themselves
# ==========================================================================================

def corpus():
    files, bad = [], []
    for fdir in FIXTURE_DIRS:
        source_md = open(os.path.join(fdir, "SOURCE.md"), encoding="utf-8").read()
        files += [(p, source_md) for p in sorted(glob.glob(os.path.join(fdir, "*.json")))]
    for path, source_md in files:
        doc = json.load(open(path, encoding="utf-8"))
        stem = os.path.basename(path)[:-5]
        if stem not in source_md or doc["source"]["commit"] not in source_md:
            bad.append((stem, "not in SOURCE.md"))
        for it in doc["interactions"]:
            try:
                json.loads(it["response_body"])
            except ValueError:
                bad.append((stem, it["index"], "body not JSON"))
            if any(s in json.dumps(it) for s in ("Bearer ", "ntn_", "secret_")):
                bad.append((stem, it["index"], "token-like text"))
    t.ok(len(files) >= 25 and not bad,
         f"{len(files)} fixture files: every body is JSON, listed in its SOURCE.md, "
         "no token-like text", bad[:5])
    t.ok(len(ALL_PAGES) >= 12 and len({p["id"] for _, _, _, p in ALL_PAGES}) == len(ALL_PAGES),
         f"{len(ALL_PAGES)} distinct recorded pages in {len(DBS)} recorded databases")

    # The replay server validates like Notion; these answers make the later
    # "every request of the sync was valid" checks meaningful.
    ds0 = DBS[0][3]
    qpath = f"/v1/data_sources/{ds0}/query"
    status, _, js = rp.notion("POST", qpath, '{"page_size":101}')
    t.ok(status == 400 and js.get("code") == "validation_error" and
         "page_size" in js.get("message", ""), "replay: page_size 101 -> 400 validation_error", js)
    status, _, js = rp.notion("POST", qpath, '{"page_size":100,"sort":[]}')
    t.ok(status == 400 and js.get("code") == "validation_error" and
         "body.sort " in js.get("message", ""),
         "replay: an undocumented body key -> 400 validation_error naming it", js)
    status, _, js = rp.notion("POST", qpath, '{"page_size":100}', version=None)
    t.ok(status == 400 and js.get("code") == "missing_version",
         "replay: no Notion-Version -> 400 missing_version", js)
    status, _, js = rp.notion("POST", qpath, '{"page_size":100}', token=None)
    t.ok(status == 401 and js == json.loads(load("test_api_response_error__15196fc3")
                                            ["interactions"][1]["response_body"]),
         "replay: no Authorization -> the recorded 401 body", js)
    status, _, js = rp.notion("POST", qpath, '{"page_size":100')
    t.ok(status == 400 and js.get("code") == "invalid_json",
         "replay: broken JSON -> 400 invalid_json", js)
    rec400 = body("retrieve_page_wrong_format__42b81f32")
    status, _, js = rp.notion("GET", "/v1/pages/AAA")
    t.ok(status == 400 and {k: js.get(k) for k in rec400} == rec400,
         "replay: GET /v1/pages/AAA -> the recorded 400 validation_error wording", js)
    status, _, js = rp.notion("POST", qpath, json.dumps({
        "page_size": 100, "filter": {"timestamp": "last_edited_time",
                                     "last_edited_time": {"on_or_after": "2026-01-01T00:00:00Z"}},
        "sorts": [{"timestamp": "last_edited_time", "direction": "ascending"}]}))
    t.ok(status == 200 and len(js.get("results", [])) == len(DBS[0][5]),
         "replay: a valid filtered query is served the recorded rows", status)
    rp.clear()

    # The notion_ruby_mapping recordings themselves.
    filtered = [p["id"] for p in body("query_data_source_filter_properties__9846ab69")["results"]]
    t.eq([p["id"] for p in RUBY_DBS[0][5]], filtered,
         "Sample table: the recorded 3-page cursor chain holds exactly the rows of the recorded "
         "page_size-100 query (filter_properties), in its order")
    types = {v["type"] for p in RUBY_PAGES for v in p["properties"].values()}
    t.ok(RUBY_TYPES <= types, f"notion_ruby_mapping rows: {len(RUBY_PAGES)} pages, "
         f"{len(types)} property types: {', '.join(sorted(types))}", sorted(RUBY_TYPES - types))
    t.ok(len(body(MANY_PAGE)["properties"]["Children"]["relation"]) == 25 and
         len(body(MANY_ITEMS)["results"]) == 26,
         "A parent: the page shows 25 of its 26 recorded relation items (has_more true)")


def check_rows(db, user, kind_of, label):
    """Every recorded page is one row of the right table, field by field."""
    mismatches, checked = [], 0
    for kind, dbid, ds, page in ALL_PAGES:
        kind = kind_of.get(dbid, kind)
        if kind is None:
            continue
        table, title_col, text_col, _ = KINDS[kind]
        rows = db.psql(
            f"select notion_database_id::text as db, notion_data_source_id::text as ds, "
            f"{title_col} as title, {text_col} as text, properties::text as properties, "
            f"extract(epoch from notion_created_time)::float8 as created, "
            f"extract(epoch from notion_last_edited_time)::float8 as edited "
            f"from {table} where user_id = '{user}' and notion_page_id = '{page['id']}'",
            out="json")
        checked += 1
        if len(rows) != 1:
            mismatches.append((page["id"], f"{len(rows)} rows in {table}"))
            continue
        row = rows[0]
        want = expected_row(kind, page)
        if row["title"] != want[title_col]:
            mismatches.append((page["id"], title_col, row["title"], want[title_col]))
        if row["text"] != want[text_col]:
            mismatches.append((page["id"], text_col, row["text"], want[text_col]))
        stored = json.loads(row["properties"], parse_float=Decimal)
        want_props = clean_props(EXPECTED_PROPS.get(page["id"], page["properties"]))
        if stored != want_props:
            diff = sorted(k for k in set(stored) | set(want_props)
                          if stored.get(k) != want_props.get(k))
            mismatches.append((page["id"], "properties differ in", diff[:5],
                               [stored.get(k) for k in diff[:1]],
                               [want_props.get(k) for k in diff[:1]]))
        if abs(row["created"] - epoch(page["created_time"])) > 0.0005 or \
                abs(row["edited"] - epoch(page["last_edited_time"])) > 0.0005:
            mismatches.append((page["id"], "timestamps", row["created"], page["created_time"]))
        if row["ds"] != page["parent"]["data_source_id"] or row["ds"] != ds:
            mismatches.append((page["id"], "data source", row["ds"], ds))
        if row["db"] != page["parent"].get("database_id", dbid) or row["db"] != dbid:
            mismatches.append((page["id"], "database", row["db"], dbid))
    t.ok(checked and not mismatches,
         f"{label}: all {checked} recorded pages stored exactly (table, title by type, "
         f"text column, properties as exact decimals, timestamps, data source, database)",
         mismatches[:4])
    CHECKED.append(checked)
    return checked


# ==========================================================================================
# cli: register and sync through the CLI; re-syncs write nothing
# ==========================================================================================

def cli_sync():
    db, env = fresh("cli")
    rp.clear()
    set_token(env, USER)
    for stem, kind, dbid, ds, title, pages in DBS:
        code, _, out, err = cli(env, ["register", "--user", USER, "--database", dbid,
                                      "--name", kind])
        t.ok(code == 0, f"register {dbid} ({stem}) as {kind}", show(code, None, out, err))

    before = h.write_counters(db, TABLES)
    code, js, out, err = cli(env, ["sync", "--user", USER])
    results = {r.get("database_id"): r for r in js.get("results") or []}
    t.ok(code == 0 and js.get("success") is True and len(results) == len(DBS),
         f"sync --user: exit 0, success, {len(DBS)} results", show(code, js, out, err))
    for stem, kind, dbid, ds, title, pages in DBS:
        r = results.get(dbid) or {}
        t.ok(r.get("status") == "success" and r.get("synced_count") == len(pages),
             f"{stem}: success, synced_count {len(pages)} (the recorded rows)", r)
    after = h.write_counters(db, TABLES)
    t.eq(after[0] - before[0], len(ALL_PAGES), "first sync inserted exactly the recorded pages")

    log = rp.requests()
    v1 = [r for r in log if r["path"].startswith("/v1/")]
    t.ok(v1 and all(r["status"] == 200 for r in v1),
         f"all {len(v1)} Notion requests of the sync were valid and answered from recordings",
         [(r["method"], r["path"], r["status"], r["served"]) for r in v1 if r["status"] != 200][:5])
    t.ok(all(r["notion_version"] == "2025-09-03" and r["auth"] == "ok" for r in v1),
         "every request carried Notion-Version 2025-09-03 and the user's Bearer token")
    queries = [r for r in v1 if r["path"].endswith("/query")]
    t.eq(sorted({r["path"] for r in queries}),
         sorted(f"/v1/data_sources/{ds}/query" for _, _, _, ds, _, _ in DBS),
         "one query walk per recorded data source (found through GET /v1/databases)")
    t.ok(all(isinstance(r["body"], dict) and r["body"].get("page_size", 100) <= 100
             for r in queries),
         "query bodies are JSON objects with page_size <= 100",
         [r["body"] for r in queries][:3])
    walk = [(r["body"].get("start_cursor"), r["served"]) for r in queries
            if r["path"] == f"/v1/data_sources/{SAMPLE_DS}/query"]
    t.eq(walk, [(None, SAMPLE_CHAIN[0] + "#0"),
                ("6601e719-a39a-460c-908e-8909467fcccf", SAMPLE_CHAIN[1] + "#0"),
                ("dcdc805c-85fa-4155-a55c-20fc28771af7", SAMPLE_CHAIN[2] + "#0")],
         "Sample table: the walk followed both recorded next_cursors, one query per recorded page")
    props_reqs = [(r["method"], r["path"], r["query"], r["status"], r["served"]) for r in v1
                  if "/properties/" in r["path"]]
    t.eq(props_reqs, [("GET", f"/v1/pages/{MANY_ID}/properties/%60%5B%3E%7B", "page_size=100",
                       200, MANY_ITEMS + "#0")],
         "the relation cut at 25 (has_more true) cost exactly one property-item request, "
         "answered by the recorded list; no other page asked for one")
    t.eq(db.psql(f"select d.database_id::text, r.property_requests from notion_sync_runs r "
                 f"join notion_databases d on d.user_id = r.user_id "
                 f"and d.database_id = r.database_id "
                 f"where r.user_id = '{USER}' and r.database_id in ('{RUBY_DBS[0][2]}', "
                 f"'{MANY_RELATIONS_DB}') order by 1"),
         sorted([[RUBY_DBS[0][2], "0"], [MANY_RELATIONS_DB, "1"]]),
         "run rows: property_requests 1 for A parent's database, 0 for Sample table")

    check_rows(db, USER, {}, "CLI")
    for stem, kind, dbid, ds, title, pages in DBS:
        table = KINDS[kind][0]
        n = int(db.psql(f"select count(*) from {table} where user_id = '{USER}' "
                        f"and notion_database_id = '{dbid}'", out="scalar"))
        t.eq(n, len(pages), f"{stem}: {table} holds exactly the {len(pages)} recorded rows")
    t.eq(db.psql(f"select database_id::text, coalesce(notion_title, '') from notion_databases "
                 f"where user_id = '{USER}' order by 1"),
         sorted([dbid, title] for _, _, dbid, _, title, _ in DBS),
         "notion_databases.notion_title = the plain text of each recorded database title")
    t.eq(db.psql(f"select count(*) from notion_sync_runs where user_id = '{USER}' "
                 f"and status <> 'success'", out="scalar"), "0",
         "every run row of the first sync is 'success'")

    # --- re-syncs write nothing
    for flags, label in (([], "incremental"), (["--full"], "full")):
        rp.clear()
        before = h.write_counters(db, TABLES)
        code, js, out, err = cli(env, ["sync", "--user", USER] + flags)
        after = h.write_counters(db, TABLES)
        res = js.get("results") or []
        t.ok(code == 0 and js.get("success") is True and
             all(r.get("synced_count") == 0 for r in res) and len(res) == len(DBS),
             f"{label} re-sync: success, synced_count 0 everywhere", show(code, js, out, err))
        t.eq((after[0] - before[0]) + (after[1] - before[1]), 0,
             f"{label} re-sync wrote 0 rows (inserted + updated)")
        t.eq(after[2] - before[2], 0, f"{label} re-sync deleted nothing")
        bad = [(r["path"], r["status"], r["served"]) for r in rp.requests()
               if r["path"].startswith("/v1/") and r["status"] != 200]
        t.ok(not bad, f"{label} re-sync: every request (with its own filter/sorts) valid", bad[:3])
        t.eq([r["path"] for r in rp.requests() if "/properties/" in r["path"]], [],
             f"{label} re-sync: A parent unchanged, so its relation is not fetched again")
        if label == "incremental":
            # Data sources with recorded rows have a watermark now: their incremental
            # query carries a last_edited_time filter (README "Incremental").
            with_rows = {f"/v1/data_sources/{ds}/query" for _, _, _, ds, _, p in DBS if p}
            bodies = {r["path"]: r["body"] for r in rp.requests() if r["path"] in with_rows}
            t.ok(len(bodies) == len(with_rows) and
                 all((b.get("filter") or {}).get("timestamp") == "last_edited_time"
                     for b in bodies.values()),
                 "incremental re-sync: each data source with rows is queried with a "
                 "last_edited_time filter (accepted by the Notion validation)", bodies)


# ==========================================================================================
# byid: by id, nothing registered: the generic table
# ==========================================================================================

def byid():
    db, env = fresh("byid")
    set_token(env, USER_BYID)
    stem, _, db0, ds0, title0, pages0 = DBS[0]
    code, js, out, err = cli(env, ["sync", "--user", USER_BYID, "--database", db0])
    t.ok(code == 0 and js.get("success") is True and js.get("database_name") == "Other" and
         js.get("table") == "notion_other_sync" and js.get("inserted") == len(pages0),
         f"sync by id of '{title0}' (no kind) -> notion_other_sync, {len(pages0)} inserted",
         show(code, js, out, err))
    check_rows(db, USER_BYID, {d: ("Other" if d == db0 else None) for _, _, d, _, _, _ in DBS},
               "by id")


# ==========================================================================================
# fastcgi: the FastCGI responder behind nginx
# ==========================================================================================

def fastcgi():
    db, env = fresh("fastcgi")
    set_token(env, USER_HTTP, check=False)
    stem_b, kind_b, db_b, ds_b, title_b, pages_b = DBS[1]
    responder = h.Responder(dict(env, NOTION_SYNC_SECRET=SECRET))
    nginx = h.Nginx(responder.port)
    status, _, js = h.request("POST", nginx.url + "/api/notion/sync-to-postgres",
                              json.dumps({"user_id": USER_HTTP, "database_id": db_b,
                                          "database_name": kind_b}),
                              {"Authorization": f"Bearer {SECRET}",
                               "Content-Type": "application/json"}, timeout=120)
    t.ok(status == 200 and isinstance(js, dict) and js.get("success") is True and
         js.get("synced_count") == len(pages_b) and js.get("table") == KINDS[kind_b][0],
         f"FastCGI: POST sync-to-postgres ({kind_b}) -> 200, synced_count {len(pages_b)}",
         f"{status} {js}")
    check_rows(db, USER_HTTP, {d: (kind_b if d == db_b else None) for _, _, d, _, _, _ in DBS},
               "FastCGI")
    status, _, js = h.request("POST", nginx.url + "/api/notion/sync-to-postgres",
                              json.dumps({"user_id": USER_HTTP, "database_id": db_b,
                                          "database_name": kind_b, "full": True}),
                              {"Authorization": f"Bearer {SECRET}"}, timeout=120)
    t.ok(status == 200 and isinstance(js, dict) and js.get("synced_count") == 0 and
         js.get("unchanged") == len(pages_b),
         "FastCGI: full re-sync -> synced_count 0, every recorded page unchanged", f"{status} {js}")
    responder_log = responder.log_text()
    t.ok(TOKEN not in responder_log and SECRET not in responder_log,
         "the responder log holds no token")


# ==========================================================================================
# discovery: search answered from the recordings
# ==========================================================================================

def discovery():
    db, env = fresh("discovery")
    set_token(env, USER_DISC)
    rp.clear()
    code, js, out, err = cli(env, ["sync", "--user", USER_DISC])
    searches = [r for r in rp.requests() if r["path"] == "/v1/search"]
    t.ok(searches and all(r["status"] == 200 for r in searches) and
         all(isinstance(r["body"], dict) and
             r["body"].get("filter", {}).get("value") == "data_source" for r in searches),
         f"discovery: {len(searches)} searches with the data_source filter, valid, answered "
         "from the recorded search", [(r["body"], r["status"], r["served"]) for r in searches][:2])
    res = js.get("results") or [{}]
    t.ok(code == 1 and js.get("success") is False and len(res) == 1 and
         (res[0].get("error") or {}).get("code") == "not_found" and
         "Characters" in (res[0].get("error") or {}).get("message", ""),
         "discovery: the recorded empty search answers -> not_found naming the kinds searched for",
         show(code, js, out, err))
    t.eq(db.psql(f"select count(*) from notion_databases where user_id = '{USER_DISC}'",
                 out="scalar"), "0", "discovery registered nothing")


# ==========================================================================================
# legacy: Notion-Version 2022-06-28 (a 2023 recording)
# ==========================================================================================

def legacy():
    db, env = fresh("legacy", users=[USER])
    interactions = load(LEGACY)["interactions"]
    legacy_db = json.loads(interactions[1]["response_body"])
    legacy_id = legacy_db["id"]
    code, _, out, err = cli(env, ["register", "--user", USER, "--database", legacy_id,
                                  "--name", "Other"])
    rp.clear()
    code, js, out, err = cli(env, ["sync", "--user", USER, "--database", legacy_id],
                             dict(env, NOTION_VERSION="2022-06-28"))
    t.ok(code == 0 and js.get("success") is True and js.get("synced_count") == 0 and
         js.get("pages_seen", 0) == 0,
         "2022-06-28: the recorded database syncs (recorded empty query): success, 0 rows",
         show(code, js, out, err))
    reqs = [(r["method"], r["path"], r["notion_version"], r["status"]) for r in rp.requests()]
    t.eq(reqs, [("GET", f"/v1/databases/{legacy_id}", "2022-06-28", 200),
                ("POST", f"/v1/databases/{legacy_id}/query", "2022-06-28", 200)],
         "2022-06-28: GET database then POST /v1/databases/{id}/query, both valid")
    t.eq(db.psql(f"select coalesce(notion_title, '') from notion_databases "
                 f"where user_id = '{USER}' and database_id = '{legacy_id}'", out="scalar"),
         "".join(r["plain_text"] for r in legacy_db["title"]),
         "2022-06-28: notion_title from the recorded (2022-shaped) database object")


# ==========================================================================================
# errors: the recorded 401 and 404 bodies
# ==========================================================================================

def errors():
    db, env = fresh("errors", users=[USER])
    _, _, db0, _, _, pages0 = DBS[0]
    # the rows a rejected token must not delete
    code, js, out, err = cli(env, ["sync", "--user", USER, "--database", db0])
    rec401 = json.loads(load("test_api_response_error__15196fc3")
                        ["interactions"][1]["response_body"])
    rp.control("POST", "/tokens", {"tokens": [OTHER_TOKEN]})   # the user's token is now rejected
    try:
        before = h.write_counters(db, TABLES)
        code, js, out, err = cli(env, ["sync", "--user", USER, "--database", db0, "--full"])
        after = h.write_counters(db, TABLES)
    finally:
        rp.control("POST", "/tokens", {"tokens": [TOKEN]})
    e = js.get("error") or {}
    t.ok(code == 1 and js.get("success") is False and e.get("code") == "notion_unauthorized",
         "401 (recorded body): exit 1, notion_unauthorized", show(code, js, out, err))
    t.ok(rec401["message"] in (e.get("message") or ""),
         f"401: the message quotes Notion's {rec401['message']!r}", e)
    t.eq(after[2] - before[2], 0, "401: nothing deleted")
    t.eq(db.psql(f"select status, position('{rec401['message']}' in "
                 f"coalesce(error_message,'')) > 0 from notion_sync_runs "
                 f"where user_id = '{USER}' and database_id = '{db0}' order by id desc limit 1"),
         [["error", "t"]], "401: the run row is 'error' and its message quotes Notion")

    rec404 = json.loads(load("test_build_request_error_integration__0e329fa2")
                        ["interactions"][0]["response_body"])
    code, js, out, err = cli(env, ["sync", "--user", USER, "--database", UNKNOWN_DB])
    e = js.get("error") or {}
    want404 = rec404["message"].replace("page with ID: 00000000-0000-0000-0000-000000000000",
                                        f"database with ID: {UNKNOWN_DB}")
    t.ok(code == 1 and js.get("success") is False and e.get("code") == "not_found",
         "404 object_not_found (recorded shape): exit 1, not_found", show(code, js, out, err))
    t.ok(f"Could not find database with ID: {UNKNOWN_DB}" in (e.get("message") or "") and
         "shared with your integration" in (e.get("message") or ""),
         f"404: the message quotes Notion's {want404[:60]!r}...", e)


def no_token_anywhere():
    leaks = [a for a, o, er in OUTPUTS for tok in (TOKEN, OTHER_TOKEN) if tok in o + er]
    leaks += [r for r in rp.requests() if TOKEN in json.dumps(r)]
    t.eq(leaks, [], f"no CLI output ({len(OUTPUTS)} runs) and no replay log line holds a token")
    h.note(f"recorded pages checked: {len(ALL_PAGES)} distinct, {sum(CHECKED)} row checks "
           f"(CLI, by id, FastCGI)")


SCENARIOS = [("corpus", corpus), ("cli", cli_sync), ("byid", byid), ("fastcgi", fastcgi),
             ("discovery", discovery), ("legacy", legacy), ("errors", errors)]

if __name__ == "__main__":
    scenario.run(t, SCENARIOS, note=h.note, after=no_token_anywhere)
