"""test_faults.py - Notion misbehaving: rate limits, 5xx, connection
resets, truncated and HTML answers, slow replies. A sync through a fault
storm must end with exactly the rows of a clean sync, count its retries and
waits, and a sync that runs out of retries must fail clearly, write no
wrong data and never show a token.

Scenarios (tests/lib/scenario.py; PYTHONPATH=tests/lib to run this file by
hand, optionally naming scenarios), both on clones of one database where a
clean sync stored the 1200 pages (built by whichever runs first):
  storm     every kind of transient failure spread over one walk: the rows
            equal the clean sync's, retries, waits and connections counted;
  failures  retries running out, a Retry-After above the allowed wait, a
            timeout retried, a token Notion rejects.
"""
import time

import harness as h
import scenario

CLEAN_USER = "0b000000-0000-4000-8000-000000000001"
STORM_USER = "0b000000-0000-4000-8000-000000000002"
TOKEN = "secret_test_token_faults"
QUERY = r"^/v1/data_sources/.*/query$"

t = h.Tap()
emu = h.Emulator()   # boots while the cluster is made
pg = h.migrated_cluster()
emu.control("POST", "/tokens", {"token": TOKEN, "integration_name": "fault-tests", "databases": []})
db = emu.control("POST", "/databases", {"title": "Characters", "token": TOKEN})
emu.control("POST", "/generate", {"data_source_id": db["data_source_ids"][0], "count": 1200,
                                  "seed": 42, "kind": "Characters"})


def env_of(pg_db, **extra):
    # faults are placed on later query pages: every sync walks them all
    settings = dict(NOTION_TIMEOUT_MS=1500, NOTION_MAX_ATTEMPTS=8, NOTION_SYNC_FULL_INTERVAL="0")
    return h.base_env(pg_db, emu, **dict(settings, **extra))


def sync(pg_db, user, **extra):
    return h.run_cli(["sync", "--user", user, "--database", db["database_id"]],
                     env_of(pg_db, **extra))


def content(pg_db, user):
    return {p: (r["name"], r["description"], r["content_hash"])
            for p, r in h.table_rows(pg_db, "notion_characters_sync", user).items()}


def build_clean(pg_db):
    """Both users hold the token; CLEAN_USER's clean sync stored the 1200 pages.
    Returns the clean sync's answer."""
    for user in (CLEAN_USER, STORM_USER):
        pg_db.psql(f"insert into user_settings (user_id, notion_token) "
                   f"values ('{user}', '{TOKEN}')")
    code, clean, out, err = sync(pg_db, CLEAN_USER)
    t.ok(code == 0 and clean["inserted"] == 1200 and clean["retries"] == 0,
         "clean sync: 1200 pages, no retries", out + err)
    return clean


def fresh(name):
    """A clone of the clean-synced database, the emulator without faults or log."""
    _, clean = scenario.shared(pg, "faults_clean", build_clean)
    emu.control("DELETE", "/faults")
    emu.control("DELETE", "/requests")
    return scenario.clone_database(pg, f"faults_{name}", template="faults_clean"), clean


# ==========================================================================================
# storm: every kind of transient failure, spread over the walk
# ==========================================================================================

STORM = [
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


def storm():
    pg_db, clean = fresh("storm")
    emu.control("POST", "/faults", {"faults": STORM})
    code, stormy, out, err = sync(pg_db, STORM_USER)
    time.sleep(3.5)  # the timed-out slow reply is logged when its handler wakes up
    seen = len(emu.requests())
    fired = sum(f.get("fired", 0) for f in emu.control("GET", "/faults")["faults"])
    t.ok(code == 0 and stormy and stormy["success"], "fault storm: the sync still succeeds",
         out + err)
    t.eq(fired, 14, "fault storm: all 14 injected faults fired")
    t.eq(content(pg_db, STORM_USER), content(pg_db, CLEAN_USER),
         "fault storm: rows identical to the clean run")
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
    t.eq(pg_db.psql(f"select connections from notion_sync_runs where user_id = '{STORM_USER}' "
                    "order by id desc limit 1", out="scalar"),
         str(stormy and stormy["connections"]),
         "fault storm: the run row records the connections")
    t.eq(seen, clean["notion_requests"] + fired,
         "fault storm: Notion saw the clean walk's requests plus one retry per fault, nothing more")
    run = pg_db.psql(f"select status, retries, rate_limit_wait_seconds, notion_requests "
                     f"from notion_sync_runs where user_id = '{STORM_USER}' "
                     "order by id desc limit 1")[0]
    t.ok(run[0] == "success" and int(run[1]) == stormy["retries"] and float(run[2]) >= 3.0,
         "fault storm: the run row records retries and >= 3 s waited (three Retry-After: 1)", run)
    log = emu.requests()
    t.ok(any(r["status"] == 429 for r in log) and any(r["status"] == 529 for r in log),
         "the emulator answered 429 and 529")
    emu.control("DELETE", "/faults")


# ==========================================================================================
# failures: retries run out, Retry-After too long, timeouts, a rejected token
# ==========================================================================================

def failures():
    pg_db, _ = fresh("failures")
    user = CLEAN_USER   # its 1200 rows are the clean sync's

    # --- retries run out: a clear error, nothing wrong written
    before = h.write_counters(pg_db, ["notion_characters_sync"])
    emu.control("POST", "/faults", {"faults": [{"path": QUERY, "kind": "status", "status": 503,
                                                "count": 0, "skip": 2}]})
    code, js, out, err = sync(pg_db, user, NOTION_MAX_ATTEMPTS="3")
    t.ok(code == 1 and js and js["error"]["code"] == "notion_error" and
         "3 attempts" in js["error"]["message"] and "503" in js["error"]["message"],
         "retries exhausted: exit 1, notion_error naming the attempts", out)
    t.eq(h.write_counters(pg_db, ["notion_characters_sync"]), before,
         "retries exhausted: no row written")
    t.eq(len(emu.requests()), 1 + 2 + 3, "retries exhausted: exactly the request budget was spent")
    run = pg_db.psql(f"select status, error_message from notion_sync_runs "
                     f"where user_id = '{user}' order by id desc limit 1")[0]
    t.ok(run[0] == "error" and "503" in run[1], "retries exhausted: the run row says error and why",
         run)
    emu.control("DELETE", "/faults")

    # --- Retry-After longer than the allowed wait ends the request
    emu.control("POST", "/faults", {"faults": [{"path": QUERY, "kind": "status", "status": 429,
                                                "retry_after": 120, "count": 1}]})
    code, js, out, err = sync(pg_db, user, NOTION_MAX_RETRY_WAIT="30")
    t.ok(code == 1 and js and "rate_limited" in js["error"]["message"],
         "Retry-After above NOTION_MAX_RETRY_WAIT: fails at once instead of hammering", out)
    emu.control("DELETE", "/faults")

    # --- timeouts are retried
    emu.control("POST", "/faults", {"faults": [{"path": QUERY, "kind": "slow", "delay_ms": 4000,
                                                "count": 1}]})
    code, js, out, err = sync(pg_db, user, NOTION_TIMEOUT_MS="1000")
    t.ok(code == 0 and js["retries"] == 1, "a reply slower than NOTION_TIMEOUT_MS is retried",
         out + err)
    emu.control("DELETE", "/faults")

    # --- Notion refuses the token
    bad_token = "secret_wrong_token_value"
    pg_db.psql(f"update user_settings set notion_token = '{bad_token}' where user_id = '{user}'")
    code, js, out, err = sync(pg_db, user)
    t.ok(code == 1 and js and js["error"]["code"] == "notion_unauthorized",
         "a token Notion rejects: notion_unauthorized", out)
    t.ok(bad_token not in out + err and TOKEN not in out + err, "no token in the CLI's output")
    msgs = " ".join(r[0] or "" for r in pg_db.psql("select error_message from notion_sync_runs"))
    t.ok(bad_token not in msgs and TOKEN not in msgs, "no token in notion_sync_runs")
    t.eq(len(content(pg_db, user)), 1200, "a failed sync deleted nothing")


SCENARIOS = [("storm", storm), ("failures", failures)]

if __name__ == "__main__":
    scenario.run(t, SCENARIOS, note=h.note)
