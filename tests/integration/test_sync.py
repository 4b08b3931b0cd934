"""test_sync.py - the sync engine against a real PostgreSQL 15 and the
Notion emulator, through the CLI.

Every sync here is a full walk (NOTION_SYNC_FULL_INTERVAL=0): these checks
are about hashing and mapping. Incremental sync, deletions, truncated
values and the result cap are in test_complete.py.

Scenarios, each on its own database cloned from the migrated template
(tests/lib/scenario.py; PYTHONPATH=tests/lib to run this file by hand,
optionally naming scenarios):
  kinds     the first sync of each of the four kinds matches what Notion
            returns, field by field; an unchanged re-sync writes zero rows
            (xmin and pg_stat_user_tables); editing k pages updates exactly k
            rows and moves updated_at only for them; an edit that keeps
            last_edited_time (same minute) is still caught by the content
            hash; the run row of the first sync and the registry;
  versions  a database with three data sources; the 2022-06-28 API version
            (a clear error on the multi-source database, a single-source one
            syncs) and 2026-03-11; one error run row;
  other     a database titled outside the four kinds goes to the generic
            table; --name picks the mapping.
"""
import harness as h
import scenario

USER = "0a000000-0000-4000-8000-000000000001"
TOKEN = "secret_test_token_sync"
TABLES = [v[0] for v in h.KINDS.values()]

t = h.Tap()
emu = h.Emulator()   # boots while the cluster is made
pg = h.migrated_cluster()
emu.control("POST", "/tokens", {"token": TOKEN, "integration_name": "sync-tests", "databases": []})


class Db:
    """A scenario's database (a clone of the template) with USER holding TOKEN;
    counts the syncs it ran."""

    def __init__(self, name):
        self.pg = scenario.clone_database(pg, f"sync_{name}", sql=(
            f"insert into user_settings (user_id, notion_token) values ('{USER}', '{TOKEN}')"))
        self.env = h.base_env(self.pg, emu, NOTION_SYNC_FULL_INTERVAL="0")
        self.syncs = 0

    def sync(self, database_id, version=None, name=None):
        e = dict(self.env)
        if version:
            e["NOTION_VERSION"] = version
        args = ["sync", "--user", USER, "--database", database_id]
        if name:
            args += ["--name", name]
        self.syncs += 1
        return h.run_cli(args, e)

    def runs(self):
        return self.pg.psql("select status, pages_seen, inserted, updated, unchanged, "
                            "notion_requests, finished_at is not null, property_requests "
                            "from notion_sync_runs order by id")

    def check_runs_finished(self):
        runs = self.runs()
        t.ok(len(runs) == self.syncs and all(r[6] == "t" for r in runs),
             "every sync left a finished run row", f"{len(runs)} rows, {self.syncs} syncs")
        return runs


def check_matches(d, kind, db, label, version="2025-09-03"):
    """Rows of kind's table for db == the emulator's pages, field by field."""
    table, title_col, _, text_col, _ = h.KINDS[kind]
    extra = ("message_count",) if kind == "Chat Sessions" else ()
    rows = {pid: r for pid, r in h.table_rows(d.pg, table, USER, extra).items()
            if r["database_id"] == db["database_id"]}
    sources = db["data_source_ids"] if version >= "2025-09-03" else [db["database_id"]]
    truth = {}
    for ds in sources:
        for page in h.notion_query_all(emu, TOKEN, ds, version):
            truth[page["id"]] = (ds, page)
    t.eq(sorted(rows), sorted(truth), f"{label}: same page ids as Notion ({len(truth)})")
    mismatches = []
    for pid, (ds, page) in truth.items():
        row = rows.get(pid)
        if not row:
            continue
        want = h.expected_columns(kind, page["properties"])
        got = {c: row[c] for c in want if c in row}
        if kind == "Chat Sessions":
            got["message_count"] = (int(row["extra"][0]) if row["extra"][0] is not None else None)
        if got != want:
            mismatches.append((pid, "columns", got, want))
        if not h.same_properties(row["properties"], h.completed_properties(emu, page)):
            mismatches.append((pid, "properties"))
        want_ds = ds if version >= "2025-09-03" else None
        if row["data_source_id"] != want_ds:
            mismatches.append((pid, "data source", row["data_source_id"], want_ds))
        if row["created_time"] != page["created_time"][:19] or \
                row["last_edited_time"] != page["last_edited_time"][:19]:
            mismatches.append((pid, "timestamps"))
    t.ok(not mismatches, f"{label}: every row matches Notion field by field", mismatches[:3])
    return rows


def make_db(kind, count, seed, sources=1):
    return emu.make_database(kind, TOKEN, count, seed, sources=sources)


# ==========================================================================================
# kinds: first syncs, zero-write re-syncs, edits, the content hash, the run row
# ==========================================================================================

def kinds():
    d = Db("kinds")
    dbs = {}
    for i, (kind, count) in enumerate([("Characters", 230), ("Worlds", 40), ("Stories", 120),
                                       ("Chat Sessions", 60)]):
        db = dbs[kind] = make_db(kind, count, 100 + i)
        code, js, out, err = d.sync(db["database_id"])
        t.ok(code == 0 and js and js["success"], f"{kind}: first sync succeeds", out + err)
        if js:
            t.eq((js["database_name"], js["inserted"], js["updated"], js["synced_count"]),
                 (kind, count, 0, count), f"{kind}: answer counts {count} inserted pages")
        check_matches(d, kind, db, f"{kind} first sync")

    # The generated pages carry Notion-hosted files, so the no-write checks below
    # also prove that re-signed URLs do not count as changes.
    sample = h.notion_query_all(emu, TOKEN, dbs["Characters"]["data_source_ids"][0])
    t.ok(any("X-Amz-Signature" in str(p["properties"]) for p in sample),
         "fixture: pages carry Notion-hosted (re-signed) file URLs")
    t.ok(any(v.get("type") == "relation" for p in sample for v in p["properties"].values()),
         "fixture: pages carry relations")

    # --- an unchanged re-sync writes nothing
    before_rows = {k: h.table_rows(d.pg, h.KINDS[k][0], USER) for k in dbs}
    before = h.write_counters(d.pg, TABLES)
    for kind, db in dbs.items():
        code, js, out, err = d.sync(db["database_id"])
        t.ok(code == 0 and js and js["synced_count"] == 0 and js["unchanged"] == js["pages_seen"],
             f"{kind}: unchanged re-sync reports 0 synced, all unchanged", out)
    after = h.write_counters(d.pg, TABLES)
    t.eq(after, before,
         "unchanged re-sync: pg_stat_user_tables shows 0 rows inserted/updated/deleted")
    after_rows = {k: h.table_rows(d.pg, h.KINDS[k][0], USER) for k in dbs}
    t.ok(all({p: r["xmin"] for p, r in before_rows[k].items()} ==
             {p: r["xmin"] for p, r in after_rows[k].items()} for k in dbs),
         "unchanged re-sync: no row has a new version (xmin unchanged)")

    # --- editing k pages updates exactly k rows
    chars = dbs["Characters"]
    page_ids = sorted(before_rows["Characters"])
    edited = page_ids[3:10]
    emu.control("POST", "/clock", {"advance_seconds": 120})
    for n, pid in enumerate(edited):
        emu.control("PATCH", f"/pages/{pid}", {"properties": {"Name": {
            "type": "title", "title": [{"type": "text", "text": {"content": f"Edited {n}"}}]}}})
    before = h.write_counters(d.pg, TABLES)
    code, js, out, err = d.sync(chars["database_id"])
    t.ok(code == 0 and js and (js["updated"], js["inserted"], js["unchanged"]) ==
         (len(edited), 0, len(page_ids) - len(edited)),
         f"editing {len(edited)} pages: answer says {len(edited)} updated, the rest unchanged",
         out)
    after = h.write_counters(d.pg, TABLES)
    t.eq(after[1] - before[1], len(edited),
         f"editing {len(edited)} pages: exactly {len(edited)} rows updated")
    t.eq(after[0] - before[0], 0, "editing pages: no row inserted")
    rows = check_matches(d, "Characters", chars, "Characters after edits")
    moved = {p for p in page_ids
             if rows[p]["updated_at"] != before_rows["Characters"][p]["updated_at"]}
    t.eq(moved, set(edited), "updated_at moved for the edited pages only")
    t.eq(sorted(rows[p]["name"] for p in edited),
         sorted(f"Edited {n}" for n in range(len(edited))),
         "edited titles landed in the name column")

    # --- an edit inside the same minute keeps last_edited_time but is still caught
    pid = page_ids[20]
    old_edit = rows[pid]["last_edited_time"]
    emu.control("PATCH", f"/pages/{pid}", {"touch": False, "properties": {
        "Name": {"type": "title", "title": [{"type": "text", "text": {"content": "Same minute"}}]}}})
    code, js, out, err = d.sync(chars["database_id"])
    rows = h.table_rows(d.pg, "notion_characters_sync", USER)
    t.ok(js and js["updated"] == 1 and rows[pid]["name"] == "Same minute" and
         rows[pid]["last_edited_time"] == old_edit,
         "an edit that keeps last_edited_time is detected by the content hash", out)

    # --- the run log
    runs = d.check_runs_finished()
    first = runs[0]
    # Each value Notion may have cut at 25 references costs one property request
    # per 100 items of its complete value.
    truncated = 0
    for page in h.notion_query_all(emu, TOKEN, chars["data_source_ids"][0]):
        for name, value in page["properties"].items():
            if h.may_be_truncated(value):
                full = h.completed_properties(emu, page)[name]
                truncated += max(1, -(-len(full[full["type"]]) // 100))
    t.ok(truncated > 0, "fixture: some Characters pages have values cut at 25 references")
    t.eq(first[:6] + [first[7]],
         ["success", "230", "230", "0", "0", str(4 + truncated), str(truncated)],
         "run row of the first Characters sync: pages, inserted, requests (1 database + 3 "
         "queries + property requests for truncated values)")
    reg = d.pg.psql("select database_name, notion_title, last_status from notion_databases "
                    f"where database_id = '{chars['database_id']}'")
    t.eq(reg, [["Characters", "Characters", "success"]], "the synced database is in the registry")


# ==========================================================================================
# versions: several data sources; Notion-Version 2022-06-28 and 2026-03-11
# ==========================================================================================

def versions():
    d = Db("versions")
    emu.clear_requests()
    multi = make_db("Stories", 35, 300, sources=3)
    code, js, out, err = d.sync(multi["database_id"])
    t.ok(code == 0 and js and js["inserted"] == 105,
         "multi-source database: all 3 sources synced (105)", out + err)
    rows = check_matches(d, "Stories", multi, "multi-source database")
    t.eq(sorted({r["data_source_id"] for r in rows.values()}), sorted(multi["data_source_ids"]),
         "multi-source database: each row records its own data source")

    code, js, out, err = d.sync(multi["database_id"], version="2022-06-28")
    t.ok(code == 1 and js and js["error"]["code"] == "notion_error" and
         "multiple data sources" in js["error"]["message"] and
         multi["database_id"] in js["error"]["message"] and
         "2025-09-03 or later" in js["error"]["message"],
         "2022-06-28 on a multi-source database: a clear error, not a crash", out)
    legacy = make_db("Worlds", 130, 400)
    code, js, out, err = d.sync(legacy["database_id"], version="2022-06-28")
    t.ok(code == 0 and js and js["inserted"] == 130, "2022-06-28: single-source database syncs",
         out + err)
    check_matches(d, "Worlds", legacy, "2022-06-28 sync", version="2022-06-28")
    newest = make_db("Chat Sessions", 45, 500)
    code, js, out, err = d.sync(newest["database_id"], version="2026-03-11")
    t.ok(code == 0 and js and js["inserted"] == 45, "2026-03-11: database syncs", out + err)
    check_matches(d, "Chat Sessions", newest, "2026-03-11 sync", version="2026-03-11")
    log = emu.requests()
    seen = {r["notion_version"] for r in log}
    t.ok({"2022-06-28", "2025-09-03", "2026-03-11"} <= seen,
         "the emulator saw all three Notion-Version values", seen)
    t.ok(all(r["path"].startswith("/v1/databases/") for r in log
             if r["notion_version"] == "2022-06-28" and r["path"].endswith("/query")),
         "2022-06-28 queries go to /v1/databases/{id}/query")

    runs = d.check_runs_finished()
    t.ok(all(r[0] == "success" for r in runs if r[0] != "error") and
         sum(1 for r in runs if r[0] == "error") == 1, "runs: one error (multi-source on 2022)")


# ==========================================================================================
# other: a title outside the four kinds; --name
# ==========================================================================================

def other():
    d = Db("other")
    odd = emu.control("POST", "/databases", {"title": "My Cast", "token": TOKEN})
    emu.control("POST", "/generate", {"data_source_id": odd["data_source_ids"][0], "count": 5,
                                      "seed": 9, "kind": "Characters"})
    code, js, out, err = d.sync(odd["database_id"])
    rows = h.table_rows(d.pg, "notion_other_sync", USER)
    t.ok(code == 0 and js and js["database_name"] == "Other" and
         js["table"] == "notion_other_sync" and js["inserted"] == 5 and len(rows) == 5,
         "a database titled outside the four kinds syncs into the generic table", out)
    code, js, out, err = d.sync(odd["database_id"], name="characters")
    t.ok(code == 0 and js and js["database_name"] == "Characters" and js["inserted"] == 5,
         "database_name (any case) picks the mapping", out)
    d.check_runs_finished()


SCENARIOS = [("kinds", kinds), ("versions", versions), ("other", other)]

if __name__ == "__main__":
    scenario.run(t, SCENARIOS, note=h.note)
