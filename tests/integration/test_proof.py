#!/usr/bin/env python3
"""test_proof.py - issue 9: deletion needs proof, titles by type, error
classification, discovery by database title. Real PostgreSQL 15, the Notion
emulator, the CLI (and, once, the FastCGI responder behind nginx).

Every scenario runs on its own PostgreSQL database (a copy of a migrated
template) with its own Notion token and user, so each runs alone
(tests/lib/scenario.py):
    PYTHONPATH=tests/lib python3 tests/integration/test_proof.py             # every scenario
    PYTHONPATH=tests/lib python3 tests/integration/test_proof.py orphaned    # one or several

Scenarios (contract items):
  deletions       (1) a database whose GET lists "data_sources": [] fails with
                  no_data_sources (404 over HTTP, exit 1 from the CLI), a full
                  sync deletes nothing, the run row ends 'error'; once access
                  is back a full sync succeeds and deletes nothing it should keep;
  orphaned        (2) one of two data sources stops being listed: a full sync
                  keeps its rows and counts them (orphaned, warning naming
                  notion-sync prune-orphans), deletes only trashed pages of the
                  listed source; listed again, its trashed pages are deleted;
                  prune-orphans deletes orphans, and refuses when no source is
                  listed;
  title           (5) a rich_text "Name" beside the title property "Title": the
                  title column is the title property's text (Characters and the
                  generic table); a text column fed by a property of another type
                  is "";
  classification  (6) NOTION_VERSION=2022-06-28: a linked database (no accessible
                  data sources) -> no_data_sources without the "set NOTION_VERSION"
                  advice; a real multi-source database -> the advice;
  discovery       (7) sync --user alone: a "Stories" database whose sources are
                  "Drafts" and "Published" is registered once and synced whole; a
                  "Characters" database listing no data sources is reported
                  (no_data_sources) and not registered; a data source named
                  "Characters" in a database titled otherwise is not a Characters
                  database.
"""

import json

import harness as h
import scenario

V22 = "2022-06-28"
V25 = "2025-09-03"
SECRET = "test-bearer-secret-proof"
SYNC_PATH = "/api/notion/sync-to-postgres"
OTHER_TABLE = "notion_other_sync"

t = h.Tap()
emu = h.Emulator()   # boots while the cluster is made
pg = h.migrated_cluster()


# --- fixtures ----------------------------------------------------------------------------

class Scenario:
    """A fresh PostgreSQL database (copy of the migrated template), a Notion token
    known to the emulator and a user holding it."""

    def __init__(self, name, n):
        self.name = name
        self.user = f"0d000000-0000-4000-8000-{n:012d}"
        self.token = f"secret_test_token_proof_{name}"
        self.db = scenario.clone_database(pg, f"proof_{name}", sql=(
            f"insert into user_settings (user_id, notion_token) "
            f"values ('{self.user}', '{self.token}')"))
        self.env = h.base_env(self.db, emu)
        self.env.pop("NOTION_SYNC_FULL_INTERVAL", None)
        emu.control("POST", "/tokens", {"token": self.token, "integration_name": f"proof-{name}",
                                        "databases": []})

    # -- Notion side
    def make_db(self, title, kind=None, counts=(0,), names=None, schema=None, seed=1):
        """A database shared with the token; counts: pages generated per data source."""
        sources = []
        for i, _ in enumerate(counts):
            s = {}
            if names:
                s["name"] = names[i]
            if schema:
                s["schema"] = schema
            sources.append(s)
        db = emu.control("POST", "/databases", {"title": title, "token": self.token,
                                                "data_sources": sources})
        for i, (ds, n) in enumerate(zip(db["data_source_ids"], counts)):
            if n:
                emu.control("POST", "/generate", {
                    "data_source_id": ds, "count": n, "seed": seed + i,
                    "kind": kind if kind in h.KINDS else "generic"})
        return db

    # -- running the CLI
    def cli(self, *args, env=None):
        code, js, out, err = h.run_cli(list(args), env or self.env, timeout=120)
        return code, js or {}, out, err

    def sync(self, database_id=None, *flags, env=None):
        args = ["sync", "--user", self.user]
        if database_id:
            args += ["--database", database_id]
        return self.cli(*(args + list(flags)), env=env)

    # -- PostgreSQL side
    def rows(self, table, database_id):
        """{page_id: row} of the user's rows of one database (see h.table_rows)."""
        return {p: r for p, r in h.table_rows(self.db, table, self.user).items()
                if r["database_id"] == database_id}

    def count(self, table, database_id):
        return int(self.db.psql(f"select count(*) from {table} where user_id = '{self.user}' "
                                f"and notion_database_id = '{database_id}'", out="scalar"))

    def last_run(self, database_id):
        """The newest run row of (user, database) as a dict ({} when none). Columns the
        schema may not have yet (orphaned) read as None."""
        cols = ["status", "coalesce(error_message, '')", "finished_at is not null",
                "coalesce(mode, '')", "deleted"]
        have = {r[0] for r in self.db.psql(
            "select column_name from information_schema.columns "
            "where table_name = 'notion_sync_runs'")}
        if "orphaned" in have:
            cols.append("orphaned")
        rows = self.db.psql(f"select {', '.join(cols)} from notion_sync_runs where user_id = "
                            f"'{self.user}' and database_id = '{database_id}' "
                            f"order by id desc limit 1")
        if not rows:
            return {}
        r = rows[0]
        return {"status": r[0], "error": r[1], "finished": r[2] == "t", "mode": r[3],
                "deleted": int(r[4]), "orphaned": int(r[5]) if len(r) > 5 else None}

    def registered(self):
        return sorted(tuple(r) for r in self.db.psql(
            f"select database_name, database_id::text from notion_databases "
            f"where user_id = '{self.user}'"))


def show(code, js, out, err):
    return f"exit {code}\nstdout: {out[-1500:]}\nstderr: {err[-1500:]}"


def nodash(i):
    return (i or "").replace("-", "").lower()


def names_id(message, database_id):
    m = (message or "").lower()
    return database_id.lower() in m or nodash(database_id) in m


def truth(db, sources=None):
    """{page_id: (data_source_id, page)}: the emulator's untrashed pages, complete values."""
    return h.ground_truth(emu, db, sources)


def check_truth(s, kind, db, label, sources=None):
    """The user's rows of db equal the emulator's ground truth of its (given) data
    sources: same page ids, mapped columns, complete properties, data source."""
    rows = s.rows(h.table_of(kind), db["database_id"])
    want = truth(db, sources)
    missing, extra, bad = h.compare_rows(kind, rows, want)
    t.ok(not missing and not extra, f"{label}: the table holds exactly Notion's {len(want)} pages",
         f"rows {len(rows)}, missing {len(missing)} {missing[:3]}, extra {len(extra)} {extra[:3]}")
    checked = len(want) - len(missing)
    t.ok(not bad and (checked or not want),
         f"{label}: every row equals Notion's page (columns, properties, data source)",
         "\n".join(str(b)[:300] for b in bad[:5]) + f"\n({len(bad)} mismatches, "
         f"{checked} rows compared)")
    return rows


def is_no_sources(code, js, database_id):
    e = js.get("error") or {}
    return (code == 1 and js.get("success") is False and e.get("code") == "no_data_sources"
            and names_id(e.get("message"), database_id))


# ==========================================================================================
# deletions (item 1): data_sources: [] proves nothing, so nothing is deleted
# ==========================================================================================

def deletions():
    s = Scenario("deletions", 1)
    db = s.make_db("Characters", "Characters", counts=(30,), seed=101)
    did = db["database_id"]
    code, js, out, err = s.sync(did)
    t.ok(code == 0 and js.get("inserted") == 30, "deletions: the first sync stores 30 pages",
         show(code, js, out, err))
    before = s.rows("notion_characters_sync", did)

    emu.access(database_id=did)       # the integration loses access to the data source
    for flags, label in ((["--full"], "full"), ([], "incremental")):
        code, js, out, err = s.sync(did, *flags)
        t.ok(is_no_sources(code, js, did),
             f"deletions: {label} sync of a database listing no data sources -> exit 1, "
             f"error no_data_sources naming the database", show(code, js, out, err))
        t.eq(s.count("notion_characters_sync", did), 30,
             f"deletions: {label} sync: the 30 rows are all still there")
        run = s.last_run(did)
        t.ok(run.get("status") == "error" and run.get("finished") and run.get("error")
             and run.get("deleted") == 0,
             f"deletions: {label} sync: run row status 'error' with a message, deleted 0", run)
    after = s.rows("notion_characters_sync", did)
    t.eq({p: (r["xmin"], r["content_hash"]) for p, r in after.items()},
         {p: (r["xmin"], r["content_hash"]) for p, r in before.items()},
         "deletions: no row was rewritten (xmin and content_hash unchanged)")

    # over HTTP the same failure is a 404
    env = h.base_env(s.db, emu, NOTION_SYNC_SECRET=SECRET)
    responder = h.Responder(env)
    nginx = h.Nginx(responder.port)
    status, _, answer = h.request("POST", nginx.url + SYNC_PATH,
                                  json.dumps({"user_id": s.user, "database_id": did,
                                              "full": True}),
                                  {"Authorization": f"Bearer {SECRET}",
                                   "Content-Type": "application/json"}, timeout=60)
    e = (answer.get("error") or {}) if isinstance(answer, dict) else {}
    t.ok(status == 404 and e.get("code") == "no_data_sources" and answer.get("success") is False,
         "deletions: over HTTP the answer is 404 {success:false, error:{code:no_data_sources}}",
         f"HTTP {status}: {str(answer)[:800]}")
    t.eq(s.count("notion_characters_sync", did), 30, "deletions: HTTP sync: 30 rows still there")

    # a linked database (created without data sources), never synced
    linked = s.make_db("Worlds", counts=())
    code, js, out, err = s.sync(linked["database_id"], "--full")
    t.ok(is_no_sources(code, js, linked["database_id"]),
         "deletions: a linked database (no data sources at all) -> no_data_sources",
         show(code, js, out, err))
    t.eq(s.last_run(linked["database_id"]).get("status"), "error",
         "deletions: linked database: run row 'error'")

    # access back: a full sync proves the rows and deletes only what Notion trashed
    emu.access(database_id=did, accessible=True)
    gone = sorted(before)[:2]
    emu.trash(gone)
    code, js, out, err = s.sync(did, "--full")
    t.ok(code == 0 and js.get("success") is True and js.get("deleted") == 2,
         "deletions: access restored: a full sync succeeds and deletes exactly the 2 trashed pages",
         show(code, js, out, err))
    check_truth(s, "Characters", db, "deletions after restore")


# ==========================================================================================
# orphaned (item 2): rows of a data source the database no longer lists
# ==========================================================================================

def orphaned():
    s = Scenario("orphaned", 2)
    db = s.make_db("Worlds", "Worlds", counts=(20, 15), names=["Kept", "Lost"], seed=201)
    did, ds_a, ds_b = db["database_id"], *db["data_source_ids"]
    table = "notion_worlds_sync"
    code, js, out, err = s.sync(did)
    t.ok(code == 0 and js.get("inserted") == 35, "orphaned: the first sync stores 20 + 15 pages",
         show(code, js, out, err))
    a_ids = sorted(truth(db, [ds_a]))
    b_ids = sorted(truth(db, [ds_b]))
    emu.trash(a_ids[:2])
    emu.trash(b_ids[:3])
    emu.access(data_source_id=ds_b)   # "Lost" is no longer listed by the database

    code, js, out, err = s.sync(did, "--full")
    warning = js.get("warning") or ""
    t.ok(code == 0 and js.get("success") is True and js.get("mode") == "full",
         "orphaned: a full sync with one source unlisted succeeds", show(code, js, out, err))
    t.eq((js.get("deleted"), js.get("orphaned")), (2, 15),
         "orphaned: deleted 2 (trashed in the listed source), orphaned 15 (the unlisted source)")
    t.ok("orphaned" in warning and "notion-sync prune-orphans" in warning,
         "orphaned: the answer's warning mentions orphaned rows and notion-sync prune-orphans",
         js)
    run = s.last_run(did)
    t.eq((run.get("status"), run.get("deleted"), run.get("orphaned")), ("success", 2, 15),
         "orphaned: run row success, deleted 2, orphaned 15")
    rows = s.rows(table, did)
    t.eq(sorted(p for p, r in rows.items() if r["data_source_id"] == ds_b), b_ids,
         "orphaned: every row of the unlisted source is kept (its 3 trashed pages too)")
    t.eq(sorted(p for p, r in rows.items() if r["data_source_id"] == ds_a), a_ids[2:],
         "orphaned: the listed source lost exactly its 2 trashed pages")

    emu.access(data_source_id=ds_b, accessible=True)   # listed again
    code, js, out, err = s.sync(did, "--full")
    t.ok(code == 0 and js.get("success") is True and js.get("deleted") == 3 and
         not js.get("orphaned") and "orphan" not in (js.get("warning") or ""),
         "orphaned: listed again, a full sync deletes its 3 trashed pages; orphaned 0, no warning",
         show(code, js, out, err))
    check_truth(s, "Worlds", db, "orphaned after the source is back")

    # prune-orphans while the source stays unlisted
    emu.access(data_source_id=ds_b)
    left_b = len(b_ids) - 3
    code, js, out, err = s.cli("prune-orphans", "--user", s.user, "--database", did)
    t.ok(code == 0 and js.get("success") is True and js.get("deleted") == left_b,
         f"orphaned: prune-orphans -> success, deleted {left_b}", show(code, js, out, err))
    rows = s.rows(table, did)
    t.eq((sorted(p for p, r in rows.items() if r["data_source_id"] == ds_b),
          sorted(p for p, r in rows.items() if r["data_source_id"] == ds_a)),
         ([], a_ids[2:]), "orphaned: prune-orphans removed the unlisted source's rows only")
    code, js, out, err = s.cli("prune-orphans", "--user", s.user, "--database", did)
    t.ok(code == 0 and js.get("deleted") == 0, "orphaned: prune-orphans again deletes 0",
         show(code, js, out, err))

    # no source listed at all: prune-orphans proves nothing and refuses
    emu.access(data_source_id=ds_a)
    code, js, out, err = s.cli("prune-orphans", "--user", s.user, "--database", did)
    t.ok(code != 0 and js.get("success") is False and
         (js.get("error") or {}).get("code") == "no_data_sources",
         "orphaned: prune-orphans with no data source listed -> refused, no_data_sources",
         show(code, js, out, err))
    t.eq(s.count(table, did), len(a_ids) - 2, "orphaned: ... and deleted nothing")


# ==========================================================================================
# title (item 5): the title column comes from the property of type title
# ==========================================================================================

TITLE_SCHEMA = {"Title": "title", "Name": "rich_text", "Description": "rich_text"}


def add_titled_pages(ds, n, tag):
    for i in range(n):
        emu.control("POST", "/pages", {"data_source_id": ds, "properties": {
            "Title": f"{tag} title {i}", "Name": f"{tag} decoy name {i}",
            "Description": f"{tag} description {i}"}})


def title():
    s = Scenario("title", 3)
    for kind, title_text, table, col in (("Characters", "Characters", "notion_characters_sync",
                                          "name"),
                                         ("Other", "Reading List", OTHER_TABLE, "title")):
        db = s.make_db(title_text, counts=(0,), schema=TITLE_SCHEMA)
        add_titled_pages(db["data_source_ids"][0], 4, kind)
        code, js, out, err = s.sync(db["database_id"])
        t.ok(code == 0 and js.get("inserted") == 4 and js.get("table") == table,
             f"title: {title_text} with title 'Title' and rich_text 'Name' syncs into {table}",
             show(code, js, out, err))
        rows = s.rows(table, db["database_id"])
        t.eq(sorted(r.get(col) for r in rows.values()), [f"{kind} title {i}" for i in range(4)],
             f"title: {table}.{col} holds the title property's text, not the rich_text Name")
        check_truth(s, kind, db, f"title {kind}")
    # a named text property of another type gives ""
    db = s.make_db("Worlds", counts=(0,), schema={"World Name": "title",
                                                  "Concept/Premise": "number"})
    emu.control("POST", "/pages", {"data_source_id": db["data_source_ids"][0], "properties": {
        "World Name": "Atlantis", "Concept/Premise": 42}})
    code, js, out, err = s.sync(db["database_id"])
    rows = list(s.rows("notion_worlds_sync", db["database_id"]).values())
    t.ok(code == 0 and [(r["name"], r["description"]) for r in rows] == [("Atlantis", "")],
         "title: Worlds whose Concept/Premise is a number: description '' (value kept in "
         "properties)", show(code, js, out, err) + f"\nrows {[(r['name'], r['description']) for r in rows]}")
    t.ok(rows and rows[0]["properties"].get("Concept/Premise", {}).get("number") == 42,
         "title: ... the number stays in properties")


# ==========================================================================================
# classification (item 6): 2022-06-28 errors by code and additional_data
# ==========================================================================================

def classification():
    s = Scenario("classification", 4)
    e22 = dict(s.env, NOTION_VERSION=V22)
    linked = s.make_db("Worlds", counts=())                       # no data sources at all
    revoked = s.make_db("Characters", "Characters", counts=(5,), seed=401)
    emu.access(database_id=revoked["database_id"])               # sources lost
    multi = s.make_db("Stories", "Stories", counts=(3, 2), names=["Drafts", "Published"],
                      seed=402)
    for db, label in ((linked, "a linked database"), (revoked, "a database whose sources were "
                                                                "revoked")):
        emu.clear_requests()
        code, js, out, err = s.sync(db["database_id"], env=e22)
        msg = (js.get("error") or {}).get("message") or ""
        t.ok(is_no_sources(code, js, db["database_id"]),
             f"classification: 2022-06-28, {label} -> no_data_sources", show(code, js, out, err))
        t.ok("NOTION_VERSION" not in msg and "2025-09-03" not in msg,
             f"classification: ... without the 'set NOTION_VERSION to 2025-09-03' advice", msg)
        reread = [r for r in emu.requests() if r["method"] == "GET" and
                  nodash(r["path"]) == nodash(f"/v1/databases/{db['database_id']}") and
                  r["notion_version"] == V25]
        t.ok(reread, "classification: ... after re-reading the database with Notion-Version "
                     "2025-09-03", [(r["method"], r["path"], r["notion_version"])
                                    for r in emu.requests()])
        t.eq(s.last_run(db["database_id"]).get("status"), "error",
             f"classification: {label}: run row 'error'")
    code, js, out, err = s.sync(multi["database_id"], env=e22)
    e = js.get("error") or {}
    t.ok(code == 1 and e.get("code") == "notion_error" and
         "set NOTION_VERSION to 2025-09-03" in (e.get("message") or ""),
         "classification: 2022-06-28, a multi-source database -> notion_error with the advice",
         show(code, js, out, err))
    t.eq(s.count("notion_stories_sync", multi["database_id"]), 0,
         "classification: nothing synced from the multi-source database under 2022-06-28")
    code, js, out, err = s.sync(multi["database_id"])
    t.ok(code == 0 and js.get("inserted") == 5,
         "classification: the same database syncs under 2025-09-03", show(code, js, out, err))


# ==========================================================================================
# discovery (item 7): database titles decide, data source names do not
# ==========================================================================================

def discovery():
    s = Scenario("discovery", 5)
    stories = s.make_db("Stories", "Stories", counts=(6, 4), names=["Drafts", "Published"],
                        seed=501)
    worlds = s.make_db("Worlds", "Worlds", counts=(5,), seed=502)
    linked = s.make_db("Characters", "Characters", counts=(3,), seed=503)
    # search still returns its data source, but the database lists none
    emu.access(database_id=linked["database_id"], in_search=True)
    decoy = s.make_db("Scratchpad", counts=(2,), names=["Characters"], seed=504)
    emu.clear_requests()
    code, js, out, err = s.sync()
    results = js.get("results") or []
    by_id = {}
    for r in results:
        by_id.setdefault(r.get("database_id"), []).append(r)
    st = by_id.get(stories["database_id"]) or []
    t.ok(len(st) == 1 and st[0].get("status") == "success" and st[0].get("inserted") == 10 and
         st[0].get("database_name") == "Stories",
         "discovery: the two-source Stories database (sources Drafts, Published) is found and "
         "synced once, all 10 pages", show(code, js, out, err))
    wd = by_id.get(worlds["database_id"]) or []
    t.ok(len(wd) == 1 and wd[0].get("status") == "success" and wd[0].get("inserted") == 5,
         "discovery: Worlds is found and synced", results)
    ch = [r for r in results if r.get("database_name") == "Characters"]
    t.ok(len(ch) == 1 and ch[0].get("status") == "error" and
         (ch[0].get("error") or {}).get("code") == "no_data_sources" and
         nodash(ch[0].get("database_id")) == nodash(linked["database_id"]),
         "discovery: the Characters database listing no data sources is reported: one entry, "
         "error no_data_sources, its database_id", results)
    t.ok(not any(nodash(decoy["database_id"]) in
                 [nodash(r.get("database_id"))] + [nodash(c) for c in r.get("candidates") or []]
                 for r in results),
         "discovery: 'Scratchpad' (its data source is named Characters) is not a candidate",
         results)
    t.eq(s.registered(), sorted([("Stories", stories["database_id"]),
                                 ("Worlds", worlds["database_id"])]),
         "discovery: notion_databases holds Stories once and Worlds; neither Characters nor "
         "Scratchpad")
    t.eq(int(s.db.psql(f"select count(*) from notion_characters_sync "
                       f"where user_id = '{s.user}'", out="scalar")), 0,
         "discovery: no Characters rows")
    check_truth(s, "Stories", stories, "discovery Stories (both sources)")
    check_truth(s, "Worlds", worlds, "discovery Worlds")
    searches = [r for r in emu.requests() if r["path"] == "/v1/search"]
    queries = {(r["body"] or {}).get("query") for r in searches}
    t.ok(searches and {"Characters", "Worlds", "Stories", "Chat Sessions"} <= queries and
         all(((r["body"] or {}).get("filter") or {}).get("value") == "data_source"
             for r in searches),
         "discovery: searched data sources with each kind title as the query",
         [(r["body"] or {}) for r in searches][:6])

    code, js, out, err = s.sync()
    t.eq(s.registered(), sorted([("Stories", stories["database_id"]),
                                 ("Worlds", worlds["database_id"])]),
         "discovery: a second discovery registers nothing more")
    check_truth(s, "Stories", stories, "discovery Stories after the second run")


# ==========================================================================================

SCENARIOS = [("deletions", deletions), ("orphaned", orphaned), ("title", title),
             ("classification", classification), ("discovery", discovery)]

if __name__ == "__main__":
    scenario.run(t, SCENARIOS, note=h.note)
