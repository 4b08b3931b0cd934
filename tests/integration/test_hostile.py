"""test_hostile.py - text PostgreSQL cannot store as such, and text that
looks like SQL. NUL characters and lone UTF-16 surrogates are cleaned, a
70,000-character title is kept whole in properties and capped in the
indexed column, SQL-looking strings are stored verbatim; nothing crashes,
every page ends synced or counted, and the other pages are unaffected.

Scenarios, each on its own database cloned from the migrated template
(tests/lib/scenario.py; PYTHONPATH=tests/lib to run this file by hand,
optionally naming scenarios):
  text     the hostile texts among 150 ordinary pages: cleaned, capped, kept
           verbatim; a re-sync writes nothing;
  refused  a row PostgreSQL refuses is a page error, the rest is written;
  html     a Notion answer that is not JSON is a clear error.
"""
import harness as h
import scenario

USER = "0c000000-0000-4000-8000-000000000001"
TOKEN = "secret_test_token_hostile"

t = h.Tap()
emu = h.Emulator()   # boots while the cluster is made
pg = h.migrated_cluster()
emu.control("POST", "/tokens", {"token": TOKEN, "integration_name": "hostile", "databases": []})


def fresh(name):
    """(database, env): a clone of the template where USER holds TOKEN."""
    db = scenario.clone_database(pg, f"hostile_{name}", sql=(
        f"insert into user_settings (user_id, notion_token) values ('{USER}', '{TOKEN}')"))
    return db, h.base_env(db, emu)


def characters(count, seed):
    """A new Characters database of count generated pages: (database, data source)."""
    db = emu.control("POST", "/databases", {"title": "Characters", "token": TOKEN})
    ds = db["data_source_ids"][0]
    emu.control("POST", "/generate", {"data_source_id": ds, "count": count, "seed": seed,
                                      "kind": "Characters"})
    return db, ds


def sync(db, env):
    return h.run_cli(["sync", "--user", USER, "--database", db["database_id"]], env)


def rich(text):
    return [{"type": "text", "text": {"content": text}}]


HOSTILE = {
    "nul": ("before\x00after", "desc\x00with\x00nuls"),
    "surrogate": ("lone \ud800 high and \udc00 low", "emoji pair 😀 and lone \udbff"),
    "long": ("Ω" * 35000 + "x" * 35000, "y" * 100000),
    "emoji": ("".join(chr(0x1F300 + (i * 7919) % 700) for i in range(3000)), "wide"),
    "sql": ("'; drop table notion_characters_sync; --", "Robert'); delete from user_settings; --"),
    "quotes": ('"quoted" \\ back\\slash {json} [array] $1 %s', "tab\tnewline\ncr\r"),
    "controls": ("bell\x07 esc\x1b del\x7f", "\u2028 line sep \u2029 para"),
    "rtl": ("שלום עולם مرحبا", "\u202etxet desrever"),
}


# ==========================================================================================
# text: the hostile pages among ordinary ones
# ==========================================================================================

def text():
    pgdb, env = fresh("text")
    db, ds = characters(150, 5)
    ids = {}
    for key, (title, desc) in HOSTILE.items():
        page = emu.control("POST", "/pages", {"data_source_id": ds, "properties": {
            "Name": {"type": "title", "title": rich(title)},
            "Description": {"type": "rich_text", "rich_text": rich(desc)}}})
        ids[key] = page["id"]

    code, js, out, err = sync(db, env)
    t.ok(code == 0 and js and js["success"], "hostile pages: the sync succeeds", out + err[-2000:])
    total = 150 + len(HOSTILE)
    t.ok(js and js["pages_seen"] == total and js["inserted"] + js["page_errors"] == total,
         "hostile pages: every page synced or counted as a page error", js)
    t.eq(js and js["page_errors"], 0, "hostile pages: none needed to be refused after cleaning")

    rows = h.table_rows(pgdb, "notion_characters_sync", USER)
    truth = {p["id"]: p for p in h.notion_query_all(emu, TOKEN, ds)}
    t.eq(len(rows), total, f"all {total} rows stored")
    for key, pid in ids.items():
        row, page = rows.get(pid), truth[pid]
        want = h.expected_columns("Characters", page["properties"])
        t.ok(row is not None and row["name"] == want["name"] and
             row["description"] == want["description"],
             f"{key}: mapped columns hold the cleaned text",
             None if row is None else f"name={row['name'][:80]!r} want={want['name'][:80]!r}")

    t.ok("\x00" not in rows[ids["nul"]]["name"] and rows[ids["nul"]]["name"] == "beforeafter",
         "NUL characters are dropped from text columns")
    t.eq(rows[ids["surrogate"]]["name"], "lone \ufffd high and \ufffd low",
         "lone surrogates become U+FFFD")
    t.ok("😀" in rows[ids["surrogate"]]["description"], "a proper surrogate pair (emoji) survives")
    props_title = h.plain_text(rows[ids["long"]]["properties"]["Name"])
    t.eq(len(rows[ids["long"]]["name"]), h.TITLE_MAX_CHARS,
         "a 70,000-character title is capped in the indexed name column")
    t.eq(len(props_title), 70000, "... and kept whole in the properties jsonb")
    emoji_name = rows[ids["emoji"]]["name"]
    t.ok(len(emoji_name.encode()) <= h.TITLE_MAX_BYTES and len(emoji_name) == h.TITLE_MAX_BYTES // 4,
         "a title of 3,000 varied emoji is capped at 2,048 bytes (512 emoji) so its index entry fits",
         len(emoji_name))
    t.eq(rows[ids["sql"]]["name"], HOSTILE["sql"][0], "SQL-looking text is stored verbatim")
    t.eq(pgdb.psql("select count(*) from user_settings", out="scalar"), "1",
         "... and ran as no SQL (user_settings intact)")
    t.eq(rows[ids["quotes"]]["name"], HOSTILE["quotes"][0], "quotes, backslashes and braces round-trip")
    t.eq(rows[ids["quotes"]]["description"], HOSTILE["quotes"][1], "tabs and newlines round-trip")
    t.eq(rows[ids["controls"]]["name"], HOSTILE["controls"][0], "control characters round-trip")
    t.eq(rows[ids["rtl"]]["name"], HOSTILE["rtl"][0], "right-to-left text round-trips")

    # The cleaned document is what jsonb stores: no NUL escapes, no lone surrogates.
    raw_props = pgdb.psql(f"select properties::text from notion_characters_sync "
                        f"where notion_page_id = '{ids['nul']}'", out="text")
    t.ok("\\u0000" not in raw_props and "\\ufffd" in raw_props.lower() or "\ufffd" in raw_props,
         "jsonb holds U+FFFD where Notion sent \\u0000")

    # Re-syncing cleaned pages is still a no-op (the hash is over what Notion sent).
    before = h.write_counters(pgdb, ["notion_characters_sync"])
    code, js, out, err = sync(db, env)
    t.ok(code == 0 and js["synced_count"] == 0, "re-sync of hostile pages writes nothing", out)
    t.eq(h.write_counters(pgdb, ["notion_characters_sync"]), before, "... pg_stat_user_tables agrees")


# ==========================================================================================
# refused: a row PostgreSQL refuses (here: a constraint the operator added) is a
# page error: counted, reported, and the rest of its batch is still written.
# ==========================================================================================

def refused():
    pgdb, env = fresh("refused")
    db, ds = characters(20, 6)
    code, js, out, err = sync(db, env)
    pgdb.psql("alter table notion_characters_sync add constraint no_refused_titles "
            "check (name not like 'REFUSE%')")
    refused_ids = []
    for n in range(2):
        refused_ids.append(emu.control("POST", "/pages", {"data_source_id": ds, "properties": {
            "Name": {"type": "title", "title": rich(f"REFUSE me {n}")}}})["id"])
    fine = emu.control("POST", "/pages", {"data_source_id": ds, "properties": {
        "Name": {"type": "title", "title": rich("A fine new page")}}})["id"]
    code, js, out, err = sync(db, env)
    t.ok(code == 0 and js and js["page_errors"] == 2 and js["inserted"] == 1,
         "a refused row: 2 page errors counted, the good new page still inserted", out)
    t.ok(js and "no_refused_titles" in js.get("warning", ""),
         "the answer names the first page error", js)
    t.ok(err.count("page error") == 2 and all(p in err for p in refused_ids),
         "each page error is logged with its page id", err[-1500:])
    stored = h.table_rows(pgdb, "notion_characters_sync", USER)
    t.ok(fine in stored and not any(p in stored for p in refused_ids),
         "only the refused pages are missing")
    run = pgdb.psql("select status, page_errors from notion_sync_runs order by id desc limit 1")[0]
    t.eq(run, ["success", "2"], "the run row counts the page errors")
    pgdb.psql("alter table notion_characters_sync drop constraint no_refused_titles")


# ==========================================================================================
# html: a Notion answer that is not JSON at all is a clear protocol error, not a crash
# ==========================================================================================

def html():
    pgdb, env = fresh("html")
    db, _ = characters(5, 7)
    emu.control("POST", "/faults", {"faults": [{"path": "/query$", "kind": "html", "count": 0}]})
    code, js, out, err = h.run_cli(["sync", "--user", USER, "--database", db["database_id"]],
                                   dict(env, NOTION_MAX_ATTEMPTS="2"))
    t.ok(code == 1 and js and js["error"]["code"] == "notion_error",
         "an HTML answer from Notion: clear error", out)
    emu.control("DELETE", "/faults")


SCENARIOS = [("text", text), ("refused", refused), ("html", html)]

if __name__ == "__main__":
    scenario.run(t, SCENARIOS, note=h.note)
