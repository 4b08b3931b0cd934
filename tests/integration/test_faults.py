"""test_faults.py - Notion misbehaving: rate limits, 5xx, connection
resets, truncated and HTML answers, slow replies. A sync through a fault
storm must end with exactly the rows of a clean sync, count its retries and
waits, and a sync that runs out of retries must fail clearly, write no
wrong data and never show a token.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "lib"))
import harness as h  # noqa: E402

CLEAN_USER = "0b000000-0000-4000-8000-000000000001"
STORM_USER = "0b000000-0000-4000-8000-000000000002"
TOKEN = "secret_test_token_faults"
QUERY = r"^/v1/data_sources/.*/query$"

t = h.Tap()
pg = h.Postgres()
emu = h.Emulator()
h.migrate(pg)
emu.control("POST", "/tokens", {"token": TOKEN, "integration_name": "fault-tests", "databases": []})
for user in (CLEAN_USER, STORM_USER):
    pg.psql(f"insert into user_settings (user_id, notion_token) values ('{user}', '{TOKEN}')")
db = emu.control("POST", "/databases", {"title": "Characters", "token": TOKEN})
emu.control("POST", "/generate", {"data_source_id": db["data_source_ids"][0], "count": 1200,
                                  "seed": 42, "kind": "Characters"})
env = h.base_env(pg, emu, NOTION_TIMEOUT_MS=1500, NOTION_MAX_ATTEMPTS=8,
                 NOTION_SYNC_FULL_INTERVAL="0")  # faults are placed on later query pages


def sync(user, e=env):
    return h.run_cli(["sync", "--user", user, "--database", db["database_id"]], e)


def content(user):
    return {p: (r["name"], r["description"], r["content_hash"])
            for p, r in h.table_rows(pg, "notion_characters_sync", user).items()}


code, clean, out, err = sync(CLEAN_USER)
t.ok(code == 0 and clean["inserted"] == 1200 and clean["retries"] == 0, "clean sync: 1200 pages, no retries",
     out + err)

# --- the storm: every kind of transient failure, spread over the walk ----------
storm = [
    {"path": QUERY, "kind": "status", "status": 429, "retry_after": 1, "count": 2, "skip": 1},
    {"path": QUERY, "kind": "status", "status": 529, "retry_after": 1, "count": 1, "skip": 3},
    {"path": QUERY, "kind": "status", "status": 500, "count": 2, "skip": 4},
    {"path": QUERY, "kind": "status", "status": 502, "count": 1, "skip": 6},
    {"path": QUERY, "kind": "status", "status": 503, "count": 1, "skip": 7},
    {"path": QUERY, "kind": "status", "status": 504, "count": 1, "skip": 8},
    {"path": QUERY, "kind": "reset", "count": 2, "skip": 9},
    {"path": QUERY, "kind": "truncate", "count": 1, "skip": 10},
    {"path": QUERY, "kind": "html", "count": 1, "skip": 11},
    {"path": QUERY, "kind": "slow", "delay_ms": 3000, "count": 1, "skip": 5},
    {"path": r"^/v1/databases/", "kind": "status", "status": 503, "count": 1},
]
emu.control("POST", "/faults", {"faults": storm})
emu.control("DELETE", "/requests")
code, stormy, out, err = sync(STORM_USER)
time.sleep(3.5)  # the timed-out slow reply is logged when its handler wakes up
seen = len(emu.requests())
fired = sum(f.get("fired", 0) for f in emu.control("GET", "/faults")["faults"])
t.ok(code == 0 and stormy and stormy["success"], "fault storm: the sync still succeeds", out + err)
t.eq(fired, 14, "fault storm: all 14 injected faults fired")
t.eq(content(STORM_USER), content(CLEAN_USER), "fault storm: rows identical to the clean run")
# A reset on a reused keep-alive connection is retried once by libcurl
# itself (it reconnects transparently), so up to two of the resets may not
# reach our own retry counter.
t.ok(stormy and fired - 2 <= stormy["retries"] <= fired,
     f"fault storm: the faults were retried and counted ({fired} fired)", stormy)
# What retries does not count shows in connections: libcurl's own resend
# opens a connection, and so does every reconnect after a reset or a
# truncated answer; a clean walk keeps one connection alive.
t.eq(clean["connections"], 1, "clean sync: one keep-alive connection for the whole walk")
t.ok(stormy and stormy["connections"] >= 1 + (fired - stormy["retries"]),
     "fault storm: every request libcurl resent by itself shows as a new connection "
     f"({fired} fired, {stormy and stormy['retries']} retries, "
     f"{stormy and stormy['connections']} connections)", stormy)
t.eq(pg.scalar(f"select connections from notion_sync_runs where user_id = '{STORM_USER}' "
               "order by id desc limit 1"), str(stormy and stormy["connections"]),
     "fault storm: the run row records the connections")
t.eq(seen, clean["notion_requests"] + fired,
     "fault storm: Notion saw the clean walk's requests plus one retry per fault, nothing more")
run = pg.psql(f"select status, retries, rate_limit_wait_seconds, notion_requests from notion_sync_runs "
              f"where user_id = '{STORM_USER}' order by id desc limit 1")[0]
t.ok(run[0] == "success" and int(run[1]) == stormy["retries"] and float(run[2]) >= 3.0,
     "fault storm: the run row records retries and >= 3 s waited (three Retry-After: 1)", run)
log = emu.requests()
t.ok(any(r["status"] == 429 for r in log) and any(r["status"] == 529 for r in log),
     "the emulator answered 429 and 529")

# --- retries run out: a clear error, nothing wrong written ---------------------------
emu.control("DELETE", "/faults")
emu.control("DELETE", "/requests")
before = h.write_counters(pg, ["notion_characters_sync"])
emu.control("POST", "/faults", {"faults": [{"path": QUERY, "kind": "status", "status": 503, "count": 0,
                                            "skip": 2}]})
code, js, out, err = sync(STORM_USER, dict(env, NOTION_MAX_ATTEMPTS="3"))
t.ok(code == 1 and js and js["error"]["code"] == "notion_error" and "3 attempts" in js["error"]["message"]
     and "503" in js["error"]["message"], "retries exhausted: exit 1, notion_error naming the attempts", out)
t.eq(h.write_counters(pg, ["notion_characters_sync"]), before, "retries exhausted: no row written")
t.eq(len(emu.requests()), 1 + 2 + 3, "retries exhausted: exactly the request budget was spent")
run = pg.psql(f"select status, error_message from notion_sync_runs where user_id = '{STORM_USER}' "
              "order by id desc limit 1")[0]
t.ok(run[0] == "error" and "503" in run[1], "retries exhausted: the run row says error and why", run)
emu.control("DELETE", "/faults")

# --- Retry-After longer than the allowed wait ends the request -------------------
emu.control("POST", "/faults", {"faults": [{"path": QUERY, "kind": "status", "status": 429,
                                            "retry_after": 120, "count": 1}]})
code, js, out, err = sync(STORM_USER, dict(env, NOTION_MAX_RETRY_WAIT="30"))
t.ok(code == 1 and js and "rate_limited" in js["error"]["message"],
     "Retry-After above NOTION_MAX_RETRY_WAIT: fails at once instead of hammering", out)
emu.control("DELETE", "/faults")

# --- timeouts are retried ----------------------------------------------------------
emu.control("POST", "/faults", {"faults": [{"path": QUERY, "kind": "slow", "delay_ms": 4000, "count": 1}]})
code, js, out, err = sync(STORM_USER, dict(env, NOTION_TIMEOUT_MS="1000"))
t.ok(code == 0 and js["retries"] == 1, "a reply slower than NOTION_TIMEOUT_MS is retried", out + err)
emu.control("DELETE", "/faults")

# --- Notion refuses the token ----------------------------------------------------------
BAD_TOKEN = "secret_wrong_token_value"
pg.psql(f"update user_settings set notion_token = '{BAD_TOKEN}' where user_id = '{STORM_USER}'")
code, js, out, err = sync(STORM_USER)
t.ok(code == 1 and js and js["error"]["code"] == "notion_unauthorized", "a token Notion rejects: notion_unauthorized",
     out)
t.ok(BAD_TOKEN not in out + err and TOKEN not in out + err, "no token in the CLI's output")
msgs = " ".join(r[0] or "" for r in pg.psql("select error_message from notion_sync_runs"))
t.ok(BAD_TOKEN not in msgs and TOKEN not in msgs, "no token in notion_sync_runs")
t.eq(len(content(STORM_USER)), 1200, "a failed sync deleted nothing")

t.done()
