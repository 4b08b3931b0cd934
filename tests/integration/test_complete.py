"""test_complete.py - issue 3: the sync is complete and correct against Notion
as it really is. Real PostgreSQL 15, the Notion emulator, the CLI.

After every scenario the sync table equals the emulator's ground truth
(GET /_emulator/pages: untruncated) exactly: same page ids, same mapped
columns, same complete properties, the right data source per row.

Scenarios:
  cap      a low result cap (40): created_time windows sync all pages; more
           pages than the cap sharing one created_time fail the database
           clearly and delete nothing;
  trunc    relations of 60 and 130, people lists of 25-30, rich text and
           titles with 25-30 mentions are completed through the property
           item endpoint, only for changed pages, counted in
           property_requests;
  delete   trashed and permanently deleted pages: an incremental sync
           deletes nothing, a --full sync deletes exactly those, and only in
           its own database;
  fail     a walk interrupted by a fault the retries do not absorb, and a
           revoked share, delete nothing; an absorbed fault does not count
           as an interruption;
  cursor   an expired start_cursor restarts the walk once; expiring again
           fails the database and deletes nothing;
  incr     incremental syncs: last_edited_time filter at watermark - 2 min,
           one query per data source, same-minute and late-stamped edits,
           new pages, the full-walk period and NOTION_SYNC_FULL_INTERVAL=0;
  other    databases of no known kind go to notion_other_sync;
  discover two databases with one kind's title are reported, not merged;
  multi    two data sources: each row's source, deletions across sources,
           one query per source incrementally; 2022-06-28 state;
  big      25,000 pages at the default cap of 10,000: every page, through
           the expected created_time windows; an unchanged re-sync costs
           one query.
After them: every sync left a finished run row that records its mode.

Each scenario runs on its own database cloned from the migrated template,
with both users below (tests/lib/scenario.py; PYTHONPATH=tests/lib to run
this file by hand, optionally naming scenarios). The emulator's clock is
frozen and set by each scenario.
"""
import bisect
import datetime
import math
import random
import re
import time
import urllib.parse
import uuid

import harness as h
import scenario

USER = "0c000000-0000-4000-8000-000000000001"
USER_DISCOVER = "0c000000-0000-4000-8000-000000000009"
TOKEN = "secret_test_token_complete"
TOKEN_DISCOVER = "secret_test_token_discover"
FULL_SORT = [{"timestamp": "created_time", "direction": "ascending"}]
INCR_SORT = [{"timestamp": "last_edited_time", "direction": "ascending"}]
QUERY_RX = re.compile(r"^/v1/(?:data_sources|databases)/([0-9a-fA-F-]+)/query$")
PROP_RX = re.compile(r"^/v1/pages/([0-9a-fA-F-]+)/properties/([^/]+)$")
OTHER_TABLE = "notion_other_sync"
RNG = random.Random(20260311)

t = h.Tap()
emu = h.Emulator()   # boots while the cluster is made
pg = h.migrated_cluster()
emu.control("POST", "/tokens", {"token": TOKEN, "integration_name": "complete-tests",
                                "databases": []})
emu.control("POST", "/tokens", {"token": TOKEN_DISCOVER, "integration_name": "discover-tests",
                                "databases": []})

# The emulator clock is frozen (at a whole minute + 30 s) and moved by hand,
# so that every generated and edited timestamp is known.
T0 = int(time.time()) // 60 * 60 + 30


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def set_clock(ts):
    emu.control("POST", "/clock", {"now": iso(ts), "frozen": True})



# --- helpers -------------------------------------------------------------------------

def new_id():
    return str(uuid.UUID(int=RNG.getrandbits(128), version=4))


def show(code, js, out, err):
    return f"exit {code}\nstdout: {out[-1500:]}\nstderr: {err[-1500:]}"


def answer(js, *keys):
    return tuple(js.get(k) for k in keys)


def make_db(kind, count, seed, sources=1, title=None, token=TOKEN, created_start=None):
    extra = {} if created_start is None else {"created_start": iso(created_start)}
    return emu.make_database(title or kind, token, count, seed, sources=sources,
                             kind=kind if kind in h.KINDS else "generic", **extra)


def truth(db):
    """{page_id: (data_source_id, page)} of a database: the emulator's ground truth
    (untrashed pages, complete values)."""
    return h.ground_truth(emu, db)


def split_log(log):
    """(database GETs, query entries, property-item entries) of a request log."""
    gets = [r for r in log if r["method"] == "GET" and r["path"].startswith("/v1/databases/")]
    queries = [r for r in log if QUERY_RX.match(r["path"])]
    props = [r for r in log if PROP_RX.match(r["path"])]
    return gets, queries, props


def window_starts(queries):
    return [q for q in queries if not (q["body"] or {}).get("start_cursor")]


def on_or_after(f, ts):
    """The on_or_after value of a `timestamp: ts` filter inside f (compound filters too)."""
    if not isinstance(f, dict):
        return None
    if f.get("timestamp") == ts and isinstance(f.get(ts), dict):
        return f[ts].get("on_or_after")
    for op in ("and", "or"):
        for sub in f.get(op) or []:
            v = on_or_after(sub, ts)
            if v is not None:
                return v
    return None


def simulate_windows(created, cap, page_size=100):
    """Created_time windows a complete walk needs, from the pages' created times alone:
    [(on_or_after epoch or None, rows, requests)]. Each window starts at the created_time
    of the previous window's last row and returns at most `cap` rows."""
    created = sorted(created)
    out, start, after = [], 0, None
    while True:
        rows = min(cap, len(created) - start)
        out.append((after, rows, max(1, math.ceil(rows / page_size))))
        if start + rows >= len(created):
            return out
        after = created[start + rows - 1]
        nxt = bisect.bisect_left(created, after)
        if nxt == start:
            return out + [("stuck", 0, 0)]
        start = nxt


def mention_count(value):
    items = value.get(value.get("type"), []) if isinstance(value, dict) else []
    return sum(1 for i in items if i.get("type") == "mention"
               and i["mention"].get("type") in ("user", "page", "database"))


def truncatable(page):
    """{property id (decoded): requests needed} for the values of a page that a query
    answer may carry truncated: relation > 25 (has_more), people >= 25, title/rich_text
    with >= 25 mentions; the property item endpoint pages by 100."""
    out = {}
    for name, v in page["properties"].items():
        t_ = v.get("type")
        items = v.get(t_)
        if t_ == "relation" and len(items) > 25:
            n = len(items)
        elif t_ == "people" and len(items) >= 25:
            n = len(items)
        elif t_ in ("title", "rich_text") and mention_count(v) >= 25:
            n = len(items)
        else:
            continue
        out[urllib.parse.unquote(v["id"])] = max(1, math.ceil(n / 100))
    return out


def prop_calls(props):
    """[(page id without dashes, decoded property id, query dict)] of property-item requests."""
    out = []
    for r in props:
        m = PROP_RX.match(r["path"])
        pid = m.group(1).replace("-", "").lower()
        prop = m.group(2)
        for _ in range(3):
            prop = urllib.parse.unquote(prop)
        out.append((pid, prop, dict(urllib.parse.parse_qsl(r["query"] or ""))))
    return out


def nodash(i):
    return i.replace("-", "").lower()


CTXS = []   # every scenario's Ctx, for the run log checks after them


class Ctx:
    """A scenario's database (a clone of the template where USER and USER_DISCOVER
    hold their tokens), its environment, and the helpers that read it. Also
    resets the emulator's faults and result cap, says what the scenario does
    and sets the emulator's clock to its start."""

    def __init__(self, name, what, clock):
        self.name = name
        h.note(f"--- {name}: {what}")
        set_clock(clock)
        emu.control("DELETE", "/faults")
        emu.control("POST", "/config", {"result_cap": 10000})
        self.pg = scenario.clone_database(pg, f"complete_{name}", sql=(
            f"insert into user_settings (user_id, notion_token) values "
            f"('{USER}', '{TOKEN}'), ('{USER_DISCOVER}', '{TOKEN_DISCOVER}')"))
        self.env = h.base_env(self.pg, emu)
        self.env.pop("NOTION_SYNC_FULL_INTERVAL", None)
        CTXS.append(self)

    def sync(self, database_id, *flags, user=USER, name=None, e=None):
        """Run `notion-sync sync`; the answer is {} when stdout held no JSON."""
        args = ["sync", "--user", user]
        if database_id:
            args += ["--database", database_id]
        if name:
            args += ["--name", name]
        args += list(flags)
        code, js, out, err = h.run_cli(args, e or self.env)
        return code, js or {}, out, err

    def synced_db(self, kind, count, seed):
        """A new database of count pages of kind, synced once (checked: a full walk
        inserting every page)."""
        db = make_db(kind, count, seed)
        code, js, out, err = self.sync(db["database_id"])
        t.ok(code == 0 and answer(js, "inserted", "mode") == (count, "full"),
             f"{self.name}: the first sync inserts {count} with a full walk",
             show(code, js, out, err))
        return db

    def trash_first(self, kind, db, n):
        """Trash in Notion the first n (by page id) of db's pages synced here."""
        emu.trash(sorted(self.db_rows(kind, db))[:n])

    def sync_faulted(self, db, fault, *flags, e=None):
        """sync() of db while the queries of its (first) data source meet fault
        (an emulator fault but its path; removed afterwards), the emulator's
        request log started afresh."""
        qpath = rf"^/v1/data_sources/{db['data_source_ids'][0]}/query$"
        emu.control("POST", "/faults", {"faults": [dict({"path": qpath}, **fault)]})
        emu.clear_requests()
        try:
            return self.sync(db["database_id"], *flags, e=e)
        finally:
            emu.control("DELETE", "/faults")

    def last_run(self, database_id, user=USER):
        """The newest notion_sync_runs row of (user, database) as a dict ({} if none)."""
        rows = self.pg.psql("select status, coalesce(mode, ''), deleted, property_requests, "
                            "inserted, updated, notion_requests, coalesce(error_message, ''), "
                            "finished_at is not null from notion_sync_runs "
                            f"where user_id = '{user}' and database_id = '{database_id}' "
                            "order by id desc limit 1", check=False)
        if not rows:
            return {}
        r = rows[0]
        return {"status": r[0], "mode": r[1], "deleted": int(r[2]),
                "property_requests": int(r[3]), "inserted": int(r[4]), "updated": int(r[5]),
                "notion_requests": int(r[6]), "error": r[7], "finished": r[8] == "t"}

    def db_rows(self, kind, db, user=USER):
        extra = ("message_count",) if kind == "Chat Sessions" else ()
        return {pid: r for pid, r in h.table_rows(self.pg, h.table_of(kind), user, extra).items()
                if r["database_id"] == db["database_id"]}

    def check_truth(self, kind, db, label, user=USER, version="2025-09-03", want=None):
        """The (user, database) rows equal the emulator's ground truth exactly (want:
        truth(db) read since the emulator last changed, not to read 25,000 pages twice)."""
        rows = self.db_rows(kind, db, user)
        want = truth(db) if want is None else want
        missing, extra, bad = h.compare_rows(kind, rows, want, version, times=True)
        t.ok(not missing and not extra,
             f"{label}: the table holds exactly Notion's {len(want)} pages",
             f"rows {len(rows)}, missing {len(missing)} {missing[:3]}, "
             f"extra {len(extra)} {extra[:3]}")
        t.ok(not bad, f"{label}: every row equals Notion's complete page (columns, properties, "
             f"data source, times)", "\n".join(map(str, bad[:5])) + f"\n({len(bad)} mismatches)")
        return rows

    def count_rows(self, table, db, user=USER):
        return int(self.pg.psql(f"select count(*) from {table} where user_id = '{user}' "
                                f"and notion_database_id = '{db['database_id']}'", out="scalar"))

    def xmins(self, kind, db, user=USER):
        return {p: (r["xmin"], r["content_hash"]) for p, r in self.db_rows(kind, db, user).items()}


# ======================================================================================
# cap: a low result cap; more pages at one created_time than the cap
# ======================================================================================

def cap():
    c = Ctx("cap", "result_cap 40, 130 pages", T0)
    emu.control("POST", "/config", {"result_cap": 40})
    cap_db = make_db("Worlds", 130, 100)
    cap_ds = cap_db["data_source_ids"][0]
    created = [epoch(p["created_time"]) for _, p in truth(cap_db).values()]
    plan = simulate_windows(created, 40)
    emu.clear_requests()
    code, js, out, err = c.sync(cap_db["database_id"])
    t.ok(code == 0 and js.get("success") is True, "cap 40: the first sync succeeds",
         show(code, js, out, err))
    t.eq(answer(js, "inserted", "mode", "deleted", "table"), (130, "full", 0, "notion_worlds_sync"),
         "cap 40: 130 inserted by a full walk into notion_worlds_sync, nothing deleted")
    _, queries, _ = split_log(emu.requests())
    starts = window_starts(queries)
    t.eq(len(starts), len(plan), f"cap 40: the walk used {len(plan)} created_time windows")
    t.eq(len(queries), sum(p[2] for p in plan), f"cap 40: {sum(p[2] for p in plan)} query requests")
    t.ok(all((q["body"] or {}).get("sorts") == FULL_SORT for q in starts),
         "cap 40: every window is sorted by created_time ascending",
         [q["body"] for q in starts][:3])
    got_after = [on_or_after((q["body"] or {}).get("filter"), "created_time") for q in starts[1:]]
    t.eq([epoch(a) if a else None for a in got_after], [p[0] for p in plan[1:]],
         "cap 40: each window starts on_or_after the created_time of the previous window's last row")
    c.check_truth("Worlds", cap_db, "cap 40")

    h.note("--- cap: 45 pages sharing one created_time, cap 40")
    before = c.db_rows("Worlds", cap_db)
    trashed = sorted(before)[:2]
    set_clock(T0 + 60)
    emu.trash(trashed)
    emu.control("POST", "/generate", {"data_source_id": cap_ds, "count": 45, "seed": 101,
                                      "kind": "Worlds", "created_start": iso(T0 + 3600),
                                      "created_step_seconds": 0})
    code, js, out, err = c.sync(cap_db["database_id"], "--full")
    msg = (js.get("error") or {}).get("message") or ""
    t.ok(code == 1 and js.get("success") is False and "more pages created at" in msg,
         "45 pages at one created_time over a cap of 40: the database fails with "
         "'more pages created at'", show(code, js, out, err))
    after = c.db_rows("Worlds", cap_db)
    t.ok(set(before) <= set(after), "cap overflow: no row was deleted (the 2 trashed pages' rows stay)",
         f"{len(set(before) - set(after))} rows gone")
    t.ok(all(after[p]["content_hash"] == r["content_hash"] for p, r in before.items() if p in after),
         "cap overflow: the pre-existing rows are intact")
    run = c.last_run(cap_db["database_id"])
    t.ok(run.get("status") == "error" and run.get("deleted") == 0 and
         "more pages created at" in run.get("error", ""),
         "cap overflow: the run row says error, 0 deleted, with the message", run)
    emu.control("POST", "/config", {"result_cap": 10000})
    code, js, out, err = c.sync(cap_db["database_id"], "--full")
    t.ok(code == 0 and answer(js, "mode", "deleted") == ("full", 2),
         "cap back at 10,000: a full sync succeeds and deletes the 2 trashed pages",
         show(code, js, out, err))
    c.check_truth("Worlds", cap_db, "after the cap overflow")


# ======================================================================================
# trunc: values a query answer truncates at 25 references
# ======================================================================================

def trunc():
    c = Ctx("trunc", "relations, people, mentions over 25", T0 + 120)
    trunc_db = emu.control("POST", "/databases", {
        "title": "Characters", "token": TOKEN, "data_sources": [{"schema": {
            "Name": "title", "Description": "rich_text", "Related": "relation", "Owner": "people",
            "Rating": "number"}}]})
    trunc_ds = trunc_db["data_source_ids"][0]


    def users(n):
        return [{"object": "user", "id": new_id()} for _ in range(n)]


    def relation(n):
        return [{"id": new_id()} for _ in range(n)]


    def mentions(n, kind="user"):
        items = [{"type": "text", "text": {"content": "Seen with "}}]
        for i in range(n):
            if kind == "user":
                items.append({"type": "mention", "mention": {"type": "user", "user": {
                    "id": new_id(), "name": f"Person {i}"}}})
            else:
                items.append({"type": "mention", "mention": {"type": "page", "page": {"id": new_id()}},
                              "plain_text": f"Place {i}"})
            items.append({"type": "text", "text": {"content": f" #{i}; "}})
        return items


    def add_page(label, **props):
        body = {"Name": {"type": "title", "title": props.pop("title", [
            {"type": "text", "text": {"content": label}}])}}
        if "desc" in props:
            body["Description"] = {"type": "rich_text", "rich_text": props.pop("desc")}
        if "rel" in props:
            body["Related"] = {"type": "relation", "relation": props.pop("rel")}
        if "people" in props:
            body["Owner"] = {"type": "people", "people": props.pop("people")}
        body["Rating"] = {"type": "number", "number": props.pop("rating", 1)}
        page = emu.control("POST", "/pages", {"data_source_id": trunc_ds, "properties": body})
        return page["id"]


    TP = {
        "rel60": add_page("Relation of 60", rel=relation(60)),
        "rel130": add_page("Relation of 130", rel=relation(130)),
        "rel25": add_page("Relation of exactly 25", rel=relation(25)),
        "people30": add_page("People 30", people=users(30)),
        "people25": add_page("People exactly 25", people=users(25)),
        "desc30": add_page("Mentions 30", desc=mentions(30)),
        "desc25": add_page("Mentions 25", desc=mentions(25)),
        "desc24": add_page("Mentions 24", desc=mentions(24)),
        "title30": add_page(None, title=mentions(30, "page")),
        "plain": add_page("Plain", rel=relation(3), people=users(2), desc=mentions(2)),
        "multi": add_page("Everything", rel=relation(40), people=users(26), desc=mentions(26)),
    }
    # requests each page needs: relation > 25, people >= 25, >= 25 mentions; 100 items a request
    WANT_PROPS = {"rel60": 1, "rel130": 2, "rel25": 0, "people30": 1, "people25": 1, "desc30": 1,
                  "desc25": 1, "desc24": 0, "title30": 1, "plain": 0, "multi": 3}
    gt = truth(trunc_db)
    t.eq({k: sum(truncatable(gt[pid][1]).values()) for k, pid in TP.items()}, WANT_PROPS,
         "fixture: the ground truth has the intended long values")
    query_page = h.notion_query_all(emu, TOKEN, trunc_ds)
    rel60 = next(p for p in query_page if p["id"] == TP["rel60"])["properties"]["Related"]
    t.ok(len(rel60["relation"]) == 25 and rel60["has_more"] is True,
         "fixture: the query answer truncates the relation of 60 to 25 with has_more")
    emu.clear_requests()
    code, js, out, err = c.sync(trunc_db["database_id"])
    log = emu.requests()
    t.ok(code == 0 and js.get("success") is True, "trunc: the first sync succeeds",
         show(code, js, out, err))
    want_total = sum(WANT_PROPS.values())
    t.eq(answer(js, "inserted", "property_requests", "table"),
         (len(TP), want_total, "notion_characters_sync"),
         f"trunc: {len(TP)} inserted, {want_total} property requests (60:1, 130:2, people 30:1, "
         f"people 25:1, mentions 30/25:1 each, title 30:1, three long values:3)")
    _, _, props = split_log(log)
    calls = prop_calls(props)
    by_page = {}
    for pid, prop, q in calls:
        by_page.setdefault(pid, []).append((prop, q))
    t.eq({k: len(by_page.get(nodash(pid), [])) for k, pid in TP.items()}, WANT_PROPS,
         "trunc: the property item endpoint was asked only for possibly truncated values, "
         "once per 100 items")
    t.ok(all(q.get("page_size") == "100" for _, _, q in calls),
         "trunc: property items are fetched with page_size=100", [q for _, _, q in calls][:3])
    rel130 = by_page.get(nodash(TP["rel130"]), [])
    t.ok(len(rel130) == 2 and "start_cursor" not in rel130[0][1] and rel130[1][1].get("start_cursor"),
         "trunc: the relation of 130 follows next_cursor for its second 100", rel130)
    t.eq(js.get("notion_requests"), len(log), "trunc: notion_requests counts every request, "
         "property items included")
    run = c.last_run(trunc_db["database_id"])
    t.eq(answer(run, "property_requests", "mode"), (want_total, "full"),
         "trunc: the run row records the property requests and mode full")
    rows = c.check_truth("Characters", trunc_db, "trunc first sync")
    t.ok(rows and len(rows.get(TP["rel130"], {}).get("properties", {}).get("Related", {})
                      .get("relation", [])) == 130, "trunc: the stored relation has all 130 entries")

    h.note("--- trunc: unchanged re-sync, then one edit")
    before = h.write_counters(c.pg, ["notion_characters_sync"])
    emu.clear_requests()
    code, js, out, err = c.sync(trunc_db["database_id"])
    _, _, props = split_log(emu.requests())
    t.ok(code == 0 and answer(js, "inserted", "updated", "property_requests") == (0, 0, 0),
         "trunc: an unchanged re-sync writes nothing and asks for no property items",
         show(code, js, out, err))
    t.eq(len(props), 0, "trunc: the emulator saw no property item request on the unchanged re-sync")
    t.eq(h.write_counters(c.pg, ["notion_characters_sync"]), before,
         "trunc: unchanged re-sync: 0 rows inserted/updated/deleted in PostgreSQL")
    set_clock(T0 + 180)
    emu.control("PATCH", f"/pages/{TP['multi']}", {"properties": {"Rating": {"type": "number",
                                                                            "number": 9}}})
    emu.clear_requests()
    code, js, out, err = c.sync(trunc_db["database_id"])
    _, _, props = split_log(emu.requests())
    calls = prop_calls(props)
    t.ok(code == 0 and answer(js, "updated", "inserted", "property_requests") == (1, 0, 3),
         "trunc: editing the page with 3 long values: 1 updated, 3 property requests",
         show(code, js, out, err))
    t.eq(sorted({pid for pid, _, _ in calls}), [nodash(TP["multi"])],
         "trunc: only the edited page's values were fetched")
    c.check_truth("Characters", trunc_db, "trunc after an edit")


# ======================================================================================
# delete: trashed and permanently deleted pages
# ======================================================================================

def delete():
    c = Ctx("delete", "3 trashed + 2 deleted of 60", T0 + 240)
    # another Characters database, synced into the same table
    neighbour = make_db("Characters", 10, 210)
    c.sync(neighbour["database_id"])
    del_db = c.synced_db("Characters", 60, 200)
    ids = sorted(c.db_rows("Characters", del_db))
    set_clock(T0 + 300)
    emu.trash(ids[:3])
    for pid in ids[3:5]:
        emu.control("DELETE", f"/pages/{pid}")
    code, js, out, err = c.sync(del_db["database_id"])
    t.ok(code == 0 and answer(js, "mode", "deleted") == ("incremental", 0),
         "delete: an incremental sync deletes nothing", show(code, js, out, err))
    t.eq(c.count_rows("notion_characters_sync", del_db), 60, "delete: all 60 rows still there")
    other_before = c.xmins("Characters", neighbour)
    code, js, out, err = c.sync(del_db["database_id"], "--full")
    t.ok(code == 0 and answer(js, "mode", "deleted") == ("full", 5),
         "delete: --full deletes exactly the 5 trashed or deleted pages", show(code, js, out, err))
    run = c.last_run(del_db["database_id"])
    t.eq(answer(run, "status", "mode", "deleted"), ("success", "full", 5),
         "delete: the run row says full, 5 deleted")
    c.check_truth("Characters", del_db, "delete after --full")
    other_after = c.xmins("Characters", neighbour)
    t.ok(len(other_before) == 10 and other_after == other_before,
         "delete: the other Characters database's rows in the same table are untouched",
         f"before {len(other_before)} rows, after {len(other_after)}")
    code, js, out, err = c.sync(del_db["database_id"], "--full")
    t.ok(code == 0 and answer(js, "deleted", "inserted", "updated") == (0, 0, 0),
         "delete: a second --full deletes and writes nothing", show(code, js, out, err))


# ======================================================================================
# fail: an interrupted walk and a revoked share delete nothing
# ======================================================================================

def fail():
    c = Ctx("fail", "a 500 that never stops on the 2nd query page", T0 + 360)
    fail_db = c.synced_db("Chat Sessions", 250, 300)
    set_clock(T0 + 420)
    c.trash_first("Chat Sessions", fail_db, 4)
    before = c.xmins("Chat Sessions", fail_db)
    never_stops = {"kind": "status", "status": 500, "count": 0, "skip": 1}
    code, js, out, err = c.sync_faulted(fail_db, never_stops, "--full",
                                        e=dict(c.env, NOTION_MAX_ATTEMPTS="2"))
    t.ok(code == 1 and js.get("success") is False,
         "fail: a walk cut off by a fault the retries do not absorb fails (exit 1)",
         show(code, js, out, err))
    t.eq(c.xmins("Chat Sessions", fail_db), before,
         "fail: no row deleted or changed (the 4 trashed pages' rows stay)")
    run = c.last_run(fail_db["database_id"])
    t.eq(answer(run, "status", "deleted", "finished"), ("error", 0, True),
         "fail: the run row says error, 0 deleted")

    h.note("--- fail: the share revoked")
    emu.control("POST", "/share", {"token": TOKEN, "database_id": fail_db["database_id"],
                                   "shared": False})
    code, js, out, err = c.sync(fail_db["database_id"], "--full")
    emu.control("POST", "/share", {"token": TOKEN, "database_id": fail_db["database_id"],
                                   "shared": True})
    t.ok(code == 1 and (js.get("error") or {}).get("code") == "not_found",
         "fail: a database no longer shared fails with not_found", show(code, js, out, err))
    t.eq(c.xmins("Chat Sessions", fail_db), before, "fail: the revoked share deleted no row")
    t.eq(answer(c.last_run(fail_db["database_id"]), "status", "deleted"), ("error", 0),
         "fail: revoked share: the run row says error, 0 deleted")

    h.note("--- fail: a fault the retries absorb")
    code, js, out, err = c.sync_faulted(fail_db, dict(never_stops, count=1), "--full")
    t.ok(code == 0 and answer(js, "deleted", "retries") == (4, 1),
         "fail: with one 500 absorbed by a retry the full walk completes and deletes the 4 "
         "trashed pages", show(code, js, out, err))
    c.check_truth("Chat Sessions", fail_db, "fail after recovery")


# ======================================================================================
# cursor: an expired start_cursor
# ======================================================================================

def cursor():
    c = Ctx("cursor", "expired once, then always", T0 + 480)
    cur_db = c.synced_db("Stories", 250, 400)
    set_clock(T0 + 540)
    c.trash_first("Stories", cur_db, 2)
    code, js, out, err = c.sync_faulted(cur_db, {"kind": "expire_cursors", "skip": 1, "count": 1},
                                        "--full")
    _, queries, _ = split_log(emu.requests())
    bad = [i for i, q in enumerate(queries) if q["status"] == 400]
    t.ok(code == 0 and js.get("success") is True,
         "cursor: a start_cursor expired once mid-walk: the sync still succeeds",
         show(code, js, out, err))
    t.ok(len(bad) == 1 and bad[0] + 1 < len(queries) and
         not (queries[bad[0] + 1]["body"] or {}).get("start_cursor"),
         "cursor: after the one 400 invalid cursor the walk restarts without a cursor",
         [(q["status"], bool((q["body"] or {}).get("start_cursor"))) for q in queries])
    t.eq(answer(js, "mode", "deleted", "inserted", "updated"), ("full", 2, 0, 0),
         "cursor: the restarted walk is complete: 2 trashed pages deleted, no page rewritten")
    c.check_truth("Stories", cur_db, "cursor expired once")

    set_clock(T0 + 600)
    c.trash_first("Stories", cur_db, 2)
    before = c.xmins("Stories", cur_db)
    code, js, out, err = c.sync_faulted(cur_db, {"kind": "expire_cursors", "skip": 1, "count": 0},
                                        "--full")
    _, queries, _ = split_log(emu.requests())
    t.ok(code == 1 and js.get("success") is False,
         "cursor: cursors expiring again after the restart: the database fails",
         show(code, js, out, err))
    t.eq(sum(1 for q in queries if q["status"] == 400), 2,
         "cursor: the walk is restarted once only (two 400s, no loop)")
    t.eq(c.xmins("Stories", cur_db), before, "cursor: the failed walk deleted nothing")
    t.eq(answer(c.last_run(cur_db["database_id"]), "status", "deleted"), ("error", 0),
         "cursor: the run row says error, 0 deleted")
    code, js, out, err = c.sync(cur_db["database_id"], "--full")
    t.ok(code == 0 and js.get("deleted") == 2, "cursor: without the fault --full deletes the 2",
         show(code, js, out, err))
    c.check_truth("Stories", cur_db, "cursor after recovery")


# ======================================================================================
# incr: incremental syncs
# ======================================================================================

def incr():
    c = Ctx("incr", "150 pages, then edits", T0 + 660)
    inc_db = c.synced_db("Stories", 150, 500)
    inc_ds = inc_db["data_source_ids"][0]
    gt = truth(inc_db)
    watermark = max(epoch(p["last_edited_time"]) for _, p in gt.values())
    state = c.pg.psql(f"select data_source_id::text, extract(epoch from watermark)::bigint, "
                    f"last_full_walk_at is not null from notion_sync_state "
                    f"where user_id = '{USER}' and database_id = '{inc_db['database_id']}'",
                    check=False)
    t.eq(state, [[inc_ds, str(int(watermark)), "t"]],
         "incr: notion_sync_state holds the source's watermark (newest last_edited_time) "
         "and its full walk")
    plain = sorted(pid for pid, (_, p) in gt.items() if not truncatable(p))
    edited = plain[:3]
    set_clock(T0 + 1260)
    for n, pid in enumerate(edited):
        emu.control("PATCH", f"/pages/{pid}", {"properties": {"Story Title": {
            "type": "title", "title": [{"type": "text", "text": {"content": f"Edited {n}"}}]}}})


    def incr_check(label, want_updated, want_inserted, wm):
        """One incremental sync: mode, counts, one query with the overlap filter, no extra
        requests, pages_seen = pages edited on or after the watermark - 2 min."""
        gt_now = truth(inc_db)
        seen = sum(1 for _, p in gt_now.values() if epoch(p["last_edited_time"]) >= wm - 120)
        emu.clear_requests()
        code, js, out, err = c.sync(inc_db["database_id"])
        gets, queries, props = split_log(emu.requests())
        t.ok(code == 0 and answer(js, "mode", "updated", "inserted", "deleted", "pages_seen") ==
             ("incremental", want_updated, want_inserted, 0, seen),
             f"{label}: incremental, {want_updated} updated, {want_inserted} inserted, "
             f"{seen} pages seen", show(code, js, out, err))
        t.ok(len(queries) == 1 and len(gets) <= 1 and not props and js.get("notion_requests") ==
             len(queries) + len(gets), f"{label}: one query (plus at most the database GET)",
             f"queries {len(queries)}, gets {len(gets)}, props {len(props)}, "
             f"notion_requests {js.get('notion_requests')}")
        body = (queries[0]["body"] or {}) if queries else {}
        value = on_or_after(body.get("filter"), "last_edited_time")
        t.ok(value is not None and epoch(value) == wm - 120 and body.get("sorts") == INCR_SORT,
             f"{label}: filter last_edited_time on_or_after watermark - 2 min "
             f"({iso(wm - 120)}), sorted by last_edited_time", body)
        t.eq(answer(c.last_run(inc_db["database_id"]), "mode"), ("incremental",),
             f"{label}: the run row says incremental")
        return js


    incr_check("incr 3 edits", 3, 0, watermark)
    rows = c.check_truth("Stories", inc_db, "incr after 3 edits")
    t.eq(sorted(rows[p]["title"] for p in edited if p in rows), ["Edited 0", "Edited 1", "Edited 2"],
         "incr: the edited titles landed")
    watermark = float(T0 + 1260) // 60 * 60

    h.note("--- incr: an edit in the same minute as the previous sync")
    emu.control("PATCH", f"/pages/{plain[3]}", {"properties": {"Premise": {
        "type": "rich_text", "rich_text": [{"type": "text", "text": {"content": "Same minute"}}]}}})
    t.eq(epoch(emu.control("GET", f"/pages/{plain[3]}")["last_edited_time"]), watermark,
         "fixture: the edit carries the previous sync's minute")
    incr_check("incr same-minute edit", 1, 0, watermark)

    h.note("--- incr: an edit stamped a minute before the watermark (late indexing)")
    emu.control("PATCH", f"/pages/{plain[4]}", {"last_edited_time": iso(watermark - 60),
                                                "properties": {"Premise": {
                                                    "type": "rich_text", "rich_text": [
                                                        {"type": "text",
                                                         "text": {"content": "Late"}}]}}})
    incr_check("incr late-stamped edit", 1, 0, watermark)

    h.note("--- incr: a new page")
    set_clock(T0 + 1320)
    new_page = emu.control("POST", "/pages", {"data_source_id": inc_ds, "properties": {
        "Story Title": {"type": "title", "title": [{"type": "text", "text": {"content": "Brand new"}}]},
        "Premise": {"type": "rich_text", "rich_text": [{"type": "text", "text": {"content": "New"}}]}}})
    incr_check("incr new page", 0, 1, watermark)
    watermark = float(T0 + 1320) // 60 * 60
    before = h.write_counters(c.pg, ["notion_stories_sync"])
    incr_check("incr unchanged", 0, 0, watermark)
    t.eq(h.write_counters(c.pg, ["notion_stories_sync"]), before, "incr unchanged: 0 rows written")
    c.check_truth("Stories", inc_db, "incr after the new page")

    h.note("--- incr: the full-walk period")
    c.pg.psql(f"update notion_sync_state set last_full_walk_at = now() - interval '25 hours' "
            f"where database_id = '{inc_db['database_id']}'", check=False)
    emu.clear_requests()
    code, js, out, err = c.sync(inc_db["database_id"])
    _, queries, _ = split_log(emu.requests())
    t.ok(code == 0 and js.get("mode") == "full" and len(queries) == 2 and
         all(on_or_after((q["body"] or {}).get("filter"), "last_edited_time") is None
             for q in queries),
         "incr: a last full walk 25 h ago (default interval 24 h) makes the next sync a full walk "
         "(2 queries for 151 pages, no last_edited_time filter)",
         show(code, js, out, err) + f"\nqueries {[q['body'] for q in queries][:2]}")
    code, js, out, err = c.sync(inc_db["database_id"])
    t.eq(js.get("mode"), "incremental", "incr: ... and the one after is incremental again")
    e0 = dict(c.env, NOTION_SYNC_FULL_INTERVAL="0")
    modes = [c.sync(inc_db["database_id"], e=e0)[1].get("mode") for _ in range(2)]
    t.eq(modes, ["full", "full"], "incr: NOTION_SYNC_FULL_INTERVAL=0 makes every sync a full walk")
    c.check_truth("Stories", inc_db, "incr at the end")


# ======================================================================================
# other: databases of no known kind
# ======================================================================================

def other():
    c = Ctx("other", "the generic table", T0 + 1380)
    oth_db = make_db("Other", 30, 600, title="Reading List")
    code, js, out, err = c.sync(oth_db["database_id"])
    t.ok(code == 0 and answer(js, "success", "database_name", "table", "inserted") ==
         (True, "Other", OTHER_TABLE, 30),
         "other: a database titled 'Reading List' syncs by id into notion_other_sync",
         show(code, js, out, err))
    rows = c.check_truth("Other", oth_db, "other by title")
    gt = truth(oth_db)
    t.ok(rows and all(rows[p]["description"] ==
                      h.clean_text(h.plain_text(pg_["properties"]["Description"]))
                      for p, (_, pg_) in gt.items() if p in rows),
         "other: description <- the Description property (convention of the four kinds)")
    oth2 = make_db("Other", 12, 610, title="Bookmarks")
    code, js, out, err = c.sync(oth2["database_id"], name="Other")
    t.ok(code == 0 and answer(js, "database_name", "table", "inserted") == ("Other", OTHER_TABLE, 12),
         "other: --name Other works too", show(code, js, out, err))
    c.check_truth("Other", oth2, "other by --name")
    code, js, out, err = c.sync(oth_db["database_id"])
    t.ok(code == 0 and answer(js, "inserted", "updated") == (0, 0),
         "other: an unchanged re-sync writes nothing", show(code, js, out, err))


# ======================================================================================
# discover: two databases titled Characters
# ======================================================================================

def discover():
    c = Ctx("discover", "duplicate titles", T0 + 1440)
    dup_a = make_db("Characters", 5, 700, token=TOKEN_DISCOVER)
    dup_b = make_db("Characters", 7, 710, token=TOKEN_DISCOVER)
    d_worlds = make_db("Worlds", 6, 720, token=TOKEN_DISCOVER)
    d_stories = make_db("Stories", 4, 730, sources=2, title="stories", token=TOKEN_DISCOVER)
    make_db("Chat Sessions", 3, 740, title="Chat Sessions Archive", token=TOKEN_DISCOVER)
    code, js, out, err = c.sync(None, user=USER_DISCOVER)
    results = js.get("results") or []
    t.ok(code == 1 and js.get("success") is False,
         "discover: duplicate titles make the run fail overall (exit 1, success false)",
         show(code, js, out, err))
    dup = [r for r in results if r.get("database_name") == "Characters"]
    t.ok(len(dup) == 1 and dup[0].get("status") == "error" and dup[0].get("database_id") is None and
         (dup[0].get("error") or {}).get("code") == "duplicate_title" and
         sorted(dup[0].get("candidates") or []) == sorted([dup_a["database_id"], dup_b["database_id"]]),
         "discover: one Characters entry: error duplicate_title, database_id null, both candidates",
         dup)
    ok = sorted((r.get("database_name"), r.get("database_id"), r.get("status"), r.get("inserted"),
                 r.get("table")) for r in results if r.get("database_name") != "Characters")
    t.eq(ok, [("Stories", d_stories["database_id"], "success", 8, "notion_stories_sync"),
              ("Worlds", d_worlds["database_id"], "success", 6, "notion_worlds_sync")],
         "discover: Worlds and the two-source 'stories' (case-insensitive) still sync; "
         "'Chat Sessions Archive' is not a kind")
    t.eq(sorted(c.pg.psql(f"select database_name, database_id::text from notion_databases "
                        f"where user_id = '{USER_DISCOVER}'")),
         sorted([["Stories", d_stories["database_id"]], ["Worlds", d_worlds["database_id"]]]),
         "discover: neither Characters database was registered")
    t.eq(int(c.pg.psql(f"select count(*) from notion_characters_sync "
                       f"where user_id = '{USER_DISCOVER}'", out="scalar")),
         0, "discover: no Characters rows for the user")
    c.check_truth("Worlds", d_worlds, "discover Worlds", user=USER_DISCOVER)
    c.check_truth("Stories", d_stories, "discover stories", user=USER_DISCOVER)


# ======================================================================================
# multi: two data sources
# ======================================================================================

def multi():
    c = Ctx("multi", "two data sources", T0 + 1500)
    multi = make_db("Worlds", [40, 30], 800, sources=2)
    ds1, ds2 = multi["data_source_ids"]
    code, js, out, err = c.sync(multi["database_id"])
    t.ok(code == 0 and js.get("inserted") == 70, "multi: 70 pages of 2 sources inserted",
         show(code, js, out, err))
    c.check_truth("Worlds", multi, "multi first sync")
    state = c.pg.psql(f"select data_source_id::text from notion_sync_state where user_id = '{USER}' "
                    f"and database_id = '{multi['database_id']}' order by 1", check=False)
    t.eq(state, sorted([[ds1], [ds2]]), "multi: one state row per data source")
    gt = truth(multi)
    in1 = sorted(p for p, (ds, _) in gt.items() if ds == ds1)
    in2 = sorted(p for p, (ds, _) in gt.items() if ds == ds2)
    set_clock(T0 + 1560)
    emu.trash(in2[:3])
    emu.control("DELETE", f"/pages/{in1[0]}")
    emu.control("PATCH", f"/pages/{in1[1]}", {"properties": {"World Name": {
        "type": "title", "title": [{"type": "text", "text": {"content": "Renamed"}}]}}})
    emu.clear_requests()
    code, js, out, err = c.sync(multi["database_id"])
    _, queries, _ = split_log(emu.requests())
    t.ok(code == 0 and answer(js, "mode", "updated", "deleted") == ("incremental", 1, 0),
         "multi: incremental: 1 updated, nothing deleted", show(code, js, out, err))
    t.eq(sorted(QUERY_RX.match(q["path"]).group(1) for q in queries), sorted([ds1, ds2]),
         "multi: incremental: one query per data source")
    code, js, out, err = c.sync(multi["database_id"], "--full")
    t.ok(code == 0 and answer(js, "mode", "deleted") == ("full", 4),
         "multi: --full deletes the 3 trashed in one source and the 1 deleted in the other",
         show(code, js, out, err))
    c.check_truth("Worlds", multi, "multi after deletions")

    h.note("--- multi: 2022-06-28 state")
    legacy = make_db("Worlds", 20, 900)
    e22 = dict(c.env, NOTION_VERSION="2022-06-28")
    code, js, out, err = c.sync(legacy["database_id"], e=e22)
    t.ok(code == 0 and js.get("inserted") == 20, "2022-06-28: a single-source database syncs",
         show(code, js, out, err))
    state = c.pg.psql(f"select data_source_id::text from notion_sync_state where user_id = '{USER}' "
                    f"and database_id = '{legacy['database_id']}'", check=False)
    t.eq(state, [[legacy["database_id"]]],
         "2022-06-28: the state row's data source id is the database id")
    set_clock(T0 + 1620)
    lpages = sorted(c.db_rows("Worlds", legacy))
    emu.control("PATCH", f"/pages/{lpages[0]}", {"properties": {"World Name": {
        "type": "title", "title": [{"type": "text", "text": {"content": "Legacy edit"}}]}}})
    emu.clear_requests()
    code, js, out, err = c.sync(legacy["database_id"], e=e22)
    _, queries, _ = split_log(emu.requests())
    t.ok(code == 0 and answer(js, "mode", "updated") == ("incremental", 1) and len(queries) == 1 and
         queries[0]["path"].startswith("/v1/databases/") and
         nodash(QUERY_RX.match(queries[0]["path"]).group(1)) == nodash(legacy["database_id"]) and
         on_or_after((queries[0]["body"] or {}).get("filter"), "last_edited_time") is not None,
         "2022-06-28: incremental sync queries the database with the last_edited_time filter",
         show(code, js, out, err) + f"\n{[(q['path'], q['body']) for q in queries]}")
    c.check_truth("Worlds", legacy, "2022-06-28", version="2022-06-28")


# ======================================================================================
# big: 25,000 pages at the default cap
# ======================================================================================

def big():
    c = Ctx("big", "25,000 pages, cap 10,000", T0 + 1680)
    big = make_db("Worlds", 25000, 1000)
    gt = truth(big)
    plan = simulate_windows([epoch(p["created_time"]) for _, p in gt.values()], 10000)
    want_props = sum(sum(truncatable(p).values()) for _, p in gt.values())
    h.note(f"expected windows {[(iso(a) if isinstance(a, float) else a, r, q) for a, r, q in plan]}, "
           f"{want_props} property requests")
    emu.clear_requests()
    t_start = time.monotonic()
    code, js, out, err = c.sync(big["database_id"])
    h.note(f"25,000-page sync took {time.monotonic() - t_start:.1f}s")
    log = emu.requests()
    gets, queries, props = split_log(log)
    starts = window_starts(queries)
    t.ok(code == 0 and answer(js, "inserted", "mode", "deleted") == (25000, "full", 0),
         "big: all 25,000 pages inserted by a full walk", show(code, js, out, err))
    t.eq(len(starts), len(plan), f"big: {len(plan)} created_time windows")
    t.eq(len(queries), sum(p[2] for p in plan),
         f"big: {sum(p[2] for p in plan)} query requests (windows of 10,000 by 100)")
    got_after = [on_or_after((q["body"] or {}).get("filter"), "created_time") for q in starts[1:]]
    t.eq([epoch(a) if a else None for a in got_after], [p[0] for p in plan[1:]],
         "big: windows continue on_or_after the last row's created_time")
    t.eq((js.get("property_requests"), len(props)), (want_props, want_props),
         f"big: {want_props} property requests, one per long value of the generated pages")
    t.eq(js.get("notion_requests"), len(log), "big: notion_requests counts every request")
    c.check_truth("Worlds", big, "big", want=gt)   # Notion did not change since gt

    emu.clear_requests()
    before = h.write_counters(c.pg, ["notion_worlds_sync"])
    code, js, out, err = c.sync(big["database_id"])
    gets, queries, props = split_log(emu.requests())
    t.ok(code == 0 and answer(js, "mode", "inserted", "updated", "property_requests") ==
         ("incremental", 0, 0, 0), "big: the unchanged re-sync is incremental and writes nothing",
         show(code, js, out, err))
    t.ok(len(queries) == 1 and len(gets) <= 1 and not props,
         "big: the unchanged re-sync of 25,000 pages costs one query (plus the database GET)",
         f"queries {len(queries)}, gets {len(gets)}, props {len(props)}")
    t.eq(h.write_counters(c.pg, ["notion_worlds_sync"]), before,
         "big: unchanged re-sync: 0 rows written")


def run_log():
    """Over the databases of every scenario that ran."""
    runs = []
    for c in CTXS:
        runs += c.pg.psql("select status, mode is not null, finished_at is not null "
                          "from notion_sync_runs", check=False)
    t.ok(runs and all(r[2] == "t" for r in runs), "every sync left a finished run row")
    t.ok(runs and all(r[1] == "t" for r in runs if r[0] == "success"),
         "every successful run row records its mode")


SCENARIOS = [("cap", cap), ("trunc", trunc), ("delete", delete), ("fail", fail),
             ("cursor", cursor), ("incr", incr), ("other", other), ("discover", discover),
             ("multi", multi), ("big", big)]

if __name__ == "__main__":
    scenario.run(t, SCENARIOS, note=h.note, after=run_log)
