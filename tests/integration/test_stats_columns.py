"""test_stats_columns.py - the statistics of a run are listed once
(NSYNC_STATS_FIELDS in lib/notionsync.h): the columns `notion-sync fields`
prints are exactly the counter columns of notion_sync_runs, each of the
type the C code writes, so that a new counter cannot be added on one side
only; and a run row and a sync answer carry every one of them.
"""
import os

import harness as h

t = h.Tap()
code, _, out, err = h.run_cli(["fields"], dict(os.environ))
fields = out.split()
t.ok(code == 0 and len(fields) >= 10, "notion-sync fields lists the statistics", out + err)

pg = h.Postgres()
h.migrate(pg)
columns = dict((r[0], r[1]) for r in pg.psql(
    "select column_name, data_type from information_schema.columns"
    " where table_name = 'notion_sync_runs' order by ordinal_position"))
NOT_STATS = {"id", "user_id", "database_id", "database_name", "trigger", "status", "started_at",
             "finished_at", "error_message", "queued_at", "heartbeat_at", "worker", "full_walk",
             "mode"}
t.eq(sorted(fields), sorted(c for c in columns if c not in NOT_STATS),
     "the statistics are exactly the counter columns of notion_sync_runs")
t.ok(all(columns.get(f) in ("integer", "double precision") for f in fields),
     "each is an integer or double precision column", {f: columns.get(f) for f in fields})

# A run writes them all and the answer shows them all.
emu = h.Emulator()
TOKEN = "secret_test_token_fields"
USER = "0f000000-0000-4000-8000-000000000001"
emu.control("POST", "/tokens", {"token": TOKEN, "integration_name": "fields", "databases": []})
db = emu.control("POST", "/databases", {"title": "Characters", "token": TOKEN,
                                        "data_sources": [{}]})
emu.control("POST", "/generate", {"data_source_id": db["data_source_ids"][0], "count": 30,
                                  "seed": 3, "kind": "Characters"})
pg.psql(f"insert into user_settings (user_id, notion_token) values ('{USER}', '{TOKEN}')")
code, js, out, err = h.run_cli(["sync", "--user", USER, "--database", db["database_id"]],
                               h.base_env(pg, emu))
t.ok(code == 0 and js and all(f in js for f in fields),
     "the sync answer has a member for every statistic", out + err)
row = pg.psql("select " + ", ".join(fields) + " from notion_sync_runs order by id desc limit 1")[0]
t.ok(all(abs(float(js[f]) - float(v)) < 1e-3 for f, v in zip(fields, row)),
     "the run row holds the answer's value of every statistic",
     list(zip(fields, row, [js.get(f) for f in fields])))
t.done()
