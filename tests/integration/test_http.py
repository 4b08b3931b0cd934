#!/usr/bin/env python3
"""test_http.py - end to end through real nginx -> spawn-fcgi -> notion-sync-fcgi.

PostgreSQL 15, the Notion emulator, the FastCGI responder (two processes
under spawn-fcgi, one where a scenario needs a single held connection) and
nginx all run on 127.0.0.1; every assertion looks at the HTTP status and
the JSON body, and where it matters at PostgreSQL. Prints TAP. Every
process is stopped by the harness's cleanups.

Scenarios, each on its own database (a clone of the migrated template with
the users below; from validation on, of one where U1 already synced D1 once)
behind its own responder and nginx (tests/lib/scenario.py; PYTHONPATH=tests/lib
to run this file by hand, optionally naming scenarios):
  refuse        without a usable NOTION_SYNC_SECRET the responder does not start;
  rotation      /healthz and routing, a sync with the new and the old secret,
                401s, methods and paths, a restart with only the new secret;
  validation    body limits, malformed and hostile requests, not found;
  discovery     user only (search), no body (every user), database only, one
                failing database among two;
  notion-fails  Notion answering 500 -> 502, then recovering;
  busy          a second request while the first runs -> 409;
  pg-down       PostgreSQL stopped -> 503 (last: it stops the cluster).
After them, over every responder and request: one log line per request, no
multi-line log entry, no secret in any log or body, well-formed error bodies,
no 500.
"""

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time

import harness as h
import scenario
from client import is_error_body, json_body

SYNC = "/api/notion/sync-to-postgres"
OLD = "test-bearer-secret-old"
NEW = "test-bearer-secret-new"
TOKENS = {  # Notion tokens of the emulated integrations (obviously fake)
    "t1": "secret_test_token_1",
    "t2": "secret_test_token_2",
    "t4": "secret_test_token_4",
    "t5": "secret_test_token_5",
}
U1 = "11111111-2222-3333-4444-555555555555"  # Characters (250 pages), registered by a sync
U2 = "22222222-2222-3333-4444-555555555555"  # sees Worlds + Stories, nothing registered
U3 = "33333333-2222-3333-4444-555555555555"  # in user_settings without any token
U4 = "44444444-2222-3333-4444-555555555555"  # two registered databases, one gets unshared
U5 = "55555555-2222-3333-4444-555555555555"  # also has U1's Characters database registered
U_UNKNOWN = "99999999-2222-3333-4444-555555555555"
N_CHAR = 250

t = h.Tap()
ALL = []     # (label, method, path, status, body) of every request through nginx
STACKS = []  # every Stack started, in order


# --- a responder whose stderr we can read --------------------------------
# spawn-fcgi -F N (no -n) points its children's stdout/stderr at /dev/null,
# so Responder.log_text() holds only spawn-fcgi's own lines when
# processes > 1. Run the responder through a tiny wrapper that appends its
# stderr to a file named in the environment; `exec` keeps the pid that
# spawn-fcgi reports, so Responder.alive() and the cleanups still work.
_wrap_dir = tempfile.mkdtemp(prefix="nsync-test-http-")
h.on_cleanup(lambda: shutil.rmtree(_wrap_dir, ignore_errors=True))
_wrapper = os.path.join(_wrap_dir, "fcgi-wrapper.sh")
with open(_wrapper, "w") as f:
    f.write('#!/bin/sh\nexec "%s" "$@" 2>>"$NSYNC_TEST_FCGI_LOG"\n' % h.FCGI)
os.chmod(_wrapper, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)


class Stack:
    """One responder (+ its own log file) behind one nginx."""

    def __init__(self, name, env, processes):
        self.name = name
        self.log_path = os.path.join(_wrap_dir, name + ".log")
        open(self.log_path, "w").close()
        env = dict(env, NSYNC_TEST_FCGI_LOG=self.log_path)
        self.responder = h.Responder(env, processes=processes, program=_wrapper)
        self.nginx = h.Nginx(self.responder.port)
        self.url = self.nginx.url
        self.sent = []  # (method, path, status) answered by this responder
        STACKS.append(self)

    def pids(self):
        return list(getattr(self.responder, "pids", [])) or [p.pid for p in self.responder.procs]

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def call(self, method, path, body=None, headers=None, label=""):
        status, hdrs, js = h.request(method, self.url + path, body, headers, timeout=60)
        self.sent.append((method, path, status))
        ALL.append((label or f"{method} {path}", method, path, status, js))
        return status, hdrs, js

    def alive(self):
        return self.responder.alive() and all(h.pid_running(p) for p in self.pids())

    def stop(self):
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for pid in self.pids():
            deadline = time.monotonic() + 5
            while h.pid_running(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if h.pid_running(pid):
                os.kill(pid, signal.SIGKILL)


def auth(secret=NEW, scheme="Bearer"):
    return {"Authorization": f"{scheme} {secret}", "Content-Type": "application/json"}


def expect_error(got, status, code, desc):
    st, _, js = got
    t.ok(st == status and is_error_body(js, code), f"{desc} -> {status} {code}",
         f"status {st}, body {js!r}")


def expect_success(got, desc):
    """got (a Stack.call answer) is 200 with success true; returns its body."""
    st, _, js = got
    t.ok(st == 200 and isinstance(js, dict) and js.get("success") is True, desc, (st, js))
    return js


# --- the world -------------------------------------------------------------
start = time.monotonic()
emu = h.Emulator()   # boots while the cluster is made
pg = h.migrated_cluster()

for key, tok in TOKENS.items():
    emu.control("POST", "/tokens", {"token": tok, "integration_name": "it-" + key, "databases": []})


def make_db(title, token, count, seed):
    return emu.make_database(title, token, count, seed)["database_id"]


D1 = make_db("Characters", TOKENS["t1"], N_CHAR, 1)
D_UNSHARED = make_db("Characters", None, 5, 2)  # shared with no integration
D2W = make_db("Worlds", TOKENS["t2"], 30, 3)
D2S = make_db("Stories", TOKENS["t2"], 20, 4)
D4C = make_db("Characters", TOKENS["t4"], 15, 5)
D4W = make_db("Worlds", TOKENS["t4"], 12, 6)
emu.control("POST", "/share", {"token": TOKENS["t5"], "database_id": D1, "shared": True})
single = {"user_id": U1, "database_id": D1, "database_name": "Characters"}


WORLD_SQL = f"""
insert into user_settings (user_id, notion_token) values
  ('{U1}', '{TOKENS["t1"]}'), ('{U2}', '{TOKENS["t2"]}'), ('{U4}', '{TOKENS["t4"]}'),
  ('{U5}', '{TOKENS["t5"]}');
insert into user_settings (user_id) values ('{U3}');
insert into notion_databases (user_id, database_id, database_name) values
  ('{U4}', '{D4C}', 'Characters'), ('{U4}', '{D4W}', 'Worlds'), ('{U5}', '{D1}', 'Characters');
"""


def build_synced(db):
    """The users, and U1's first sync of D1 done (which registers D1 for U1)."""
    db.psql(WORLD_SQL)
    code, _, out, err = h.run_cli(["sync", "--user", U1, "--database", D1, "--name", "Characters"],
                                  h.base_env(db, emu))
    if code != 0:
        raise RuntimeError(f"the first sync of U1 failed ({code}): {out}{err}")


class World:
    """A scenario's database: a clone of the template holding the users above;
    synced: a clone of one where U1 already synced D1 once (as after the first
    single sync), built by the first scenario that needs it."""

    def __init__(self, name, synced=False):
        self.name = name
        dbname = f"http_{name.replace('-', '_')}"
        if synced:
            scenario.shared(pg, "http_synced", build_synced)
            self.pg = scenario.clone_database(pg, dbname, template="http_synced")
        else:
            self.pg = scenario.clone_database(pg, dbname, sql=WORLD_SQL)

    def env(self, **extra):
        return h.base_env(self.pg, emu, **extra)

    def stack(self, name=None, processes=2, secret=NEW, **extra):
        """A Stack (named as the world unless given) serving this database
        with NOTION_SYNC_SECRET=secret and the extra environment."""
        return Stack(name or self.name, self.env(NOTION_SYNC_SECRET=secret, **extra), processes)

    def q1(self, sql):
        return self.pg.psql(sql, out="scalar")

    def runs_count(self):
        return int(self.q1("select count(*) from notion_sync_runs"))


# ==========================================================================================

def refuse():
    """Without a usable secret the responder refuses to start (it never answers 401 to all)."""
    env = h.base_env(pg, emu)
    for secret in (None, "", " , ,"):
        e = {k: v for k, v in env.items() if k != "NOTION_SYNC_SECRET"}
        if secret is not None:
            e["NOTION_SYNC_SECRET"] = secret
        out = subprocess.run([h.FCGI], env=e, stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=30)
        t.ok(out.returncode == 2 and "NOTION_SYNC_SECRET" in out.stderr,
             f"NOTION_SYNC_SECRET={secret!r}: the responder refuses to start (exit 2)",
             f"exit {out.returncode}: {out.stderr[-500:]}")


def rotation():
    w = World("rotation")
    A = w.stack("rotating", secret=f"{OLD},{NEW}")

    # --- health and routing
    st, _, js = A.call("GET", "/healthz")
    t.eq((st, js.get("status") if isinstance(js, dict) else js), (200, "ok"),
         "GET /healthz without auth -> 200 {status: ok}")
    st, hd, js = A.call("POST", "/healthz")
    t.ok(st == 405 and is_error_body(js, "method_not_allowed"), "POST /healthz -> 405",
         f"{st} {js!r}")

    # --- single database success (new secret), then the old secret
    st, _, js = A.call("POST", SYNC, json_body(single), auth(NEW), "first single sync")
    t.eq(st, 200, "single database sync -> 200")
    js = js if isinstance(js, dict) else {}
    rows = int(w.q1(f"select count(*) from notion_characters_sync where user_id = '{U1}' "
                    f"and notion_database_id = '{D1}'"))
    t.ok(js.get("success") is True and js.get("database_name") == "Characters",
         "single sync: success true, database_name Characters", js)
    t.eq((js.get("synced_count"), rows), (N_CHAR, N_CHAR),
         "single sync: synced_count equals the rows inserted in PostgreSQL")
    run_id = js.get("run_id")
    run_no = int(run_id) if isinstance(run_id, int) else 0
    t.eq(w.q1(f"select status || ':' || user_id || ':' || database_id from notion_sync_runs "
              f"where id = {run_no}"),
         f"success:{U1}:{D1}", "single sync: run_id names a notion_sync_runs row with status success")
    t.ok(all(k in js for k in ("user_id", "database_id", "inserted", "updated", "unchanged")),
         "single sync: answer has user_id, database_id, inserted, updated, unchanged", js)
    t.eq(w.q1(f"select trigger from notion_sync_runs where id = {run_no}"),
         "http", "single sync: the run's trigger is http")

    st, _, js = A.call("POST", SYNC, json_body(dict(single, full=True)), auth(OLD),
                       "second single sync (old secret)")
    js = js if isinstance(js, dict) else {}
    t.ok(st == 200 and js.get("success") is True, "old rotated secret accepted -> 200", (st, js))
    t.eq((js.get("synced_count"), js.get("unchanged"), js.get("mode")), (0, N_CHAR, "full"),
         "identical second sync with \"full\": true: synced_count 0, unchanged = N, full walk")
    t.ok(js.get("run_id") not in (None, run_id), "second sync has its own run_id", js)

    js = expect_success(A.call("POST", SYNC, json_body(single),
                               dict(auth(NEW, "bearer"), **{"User-Agent": "pg_net/0.8.0"}),
                               "lower-case scheme"),
                        "scheme word in lower case (bearer ...) accepted -> 200")
    lc_run = int(js.get('run_id') or 0) if isinstance(js, dict) else 0
    t.eq(w.q1(f"select trigger from notion_sync_runs where id = {lc_run}"),
         "pg_net", "a pg_net/ User-Agent records trigger pg_net")

    # --- authentication failures: 401 and no sync
    for desc, hdrs in [
        ("no Authorization", {"Content-Type": "application/json"}),
        ("wrong secret", auth("test-bearer-secret-wrong")),
        ("secret in different letter case", auth(NEW.upper())),
        ("prefix of the secret", auth(NEW[:-1])),
        ("secret plus extra characters", auth(NEW + "x")),
        ("both secrets joined", auth(f"{OLD},{NEW}")),
        ("empty bearer", {"Authorization": "Bearer "}),
        ("other scheme", {"Authorization": f"Basic {NEW}"}),
    ]:
        before = w.runs_count()
        st, hd, js = A.call("POST", SYNC, json_body(single), hdrs, "401: " + desc)
        t.ok(st == 401 and is_error_body(js, "unauthorized"), f"{desc} -> 401 unauthorized",
             f"{st} {js!r}")
        if desc == "no Authorization":
            t.ok((hd.get("WWW-Authenticate") or "").lower().startswith("bearer"),
                 "401 carries WWW-Authenticate: Bearer", hd)
        t.eq(w.runs_count(), before, f"{desc}: no sync run recorded")

    # --- methods and paths (GET on the sync path is the cron webhook; test_async.py)
    st, hd, js = A.call("DELETE", SYNC, None, auth(NEW))
    t.ok(st == 405 and is_error_body(js, "method_not_allowed"), f"DELETE {SYNC} -> 405", (st, js))
    t.ok("POST" in (hd.get("Allow") or ""), "405 carries an Allow header naming POST", hd)
    st, hd, js = A.call("PUT", SYNC, json_body(single), auth(NEW))
    t.ok(st == 405 and is_error_body(js, "method_not_allowed"), f"PUT {SYNC} -> 405", (st, js))
    expect_error(A.call("POST", "/api/nope", b"{}", auth(NEW)), 404, "not_found", "POST /api/nope")
    expect_error(A.call("GET", "/"), 404, "not_found", "GET /")

    # --- rotation: restart with only the new secret
    A.stop()
    t.ok(not A.alive(), "first responder stopped for the restart")
    B = w.stack("new-only")
    before = w.runs_count()
    expect_error(B.call("POST", SYNC, json_body(single), auth(OLD), "old secret after restart"),
                 401, "unauthorized", "after restart with only the new secret, the old secret")
    t.eq(w.runs_count(), before, "old secret after restart: no sync run recorded")
    expect_success(B.call("POST", SYNC, json_body(single), auth(NEW), "new secret after restart"),
                   "after restart the new secret is accepted -> 200")


def validation():
    w = World("validation", synced=True)
    B = w.stack()
    at_limit = json_body(single)
    at_limit += b" " * (64 * 1024 - len(at_limit))
    expect_success(B.call("POST", SYNC, at_limit, auth(NEW), "exactly 64 KiB"),
                   "a body of exactly 64 KiB is accepted -> 200")
    before = w.runs_count()  # no request from here to the check below may start a sync
    big = json_body({"user_id": U1, "database_id": D1, "padding": "x" * (70 * 1024)})
    expect_error(B.call("POST", SYNC, big, auth(NEW), "70 KiB body"), 413, "payload_too_large",
                 "70 KiB body")
    expect_error(B.call("POST", SYNC, at_limit + b" ", auth(NEW), "64 KiB + 1"), 413,
                 "payload_too_large", "a body of 64 KiB + 1 byte")
    expect_error(B.call("POST", SYNC, b'{"user_id": "' + U1.encode() + b'", ', auth(NEW)),
                 400, "invalid_request", "malformed JSON")
    expect_error(B.call("POST", SYNC, b"not json at all", auth(NEW)), 400, "invalid_request",
                 "non-JSON text")
    expect_error(B.call("POST", SYNC, b"[1, 2]", auth(NEW)), 400, "invalid_request",
                 "a JSON array instead of an object")
    st, _, js = B.call("POST", SYNC, json_body({"user_id": 5}), auth(NEW))
    t.ok(st == 400 and is_error_body(js, "invalid_request") and "user_id" in js["error"]["message"],
         '{"user_id": 5} -> 400 naming user_id', (st, js))
    st, _, js = B.call("POST", SYNC, json_body({"user_id": U1, "database_id": D1, "full": "yes"}),
                       auth(NEW))
    t.ok(st == 400 and is_error_body(js, "invalid_request") and "full" in js["error"]["message"],
         '{"full": "yes"} -> 400 naming full', (st, js))
    st, _, js = B.call("POST", SYNC, json_body({"user_id": U1, "database_id": 12345}), auth(NEW))
    t.ok(st == 400 and is_error_body(js, "invalid_request") and
         "database_id" in js["error"]["message"],
         '{"database_id": 12345} -> 400 naming database_id', (st, js))
    deep = ('{"user_id":"%s","database_id":"%s","x":%s}' % (U1, D1, "[" * 64 + "]" * 64)).encode()
    expect_error(B.call("POST", SYNC, deep, auth(NEW), "deep nesting"), 400, "invalid_request",
                 "JSON nested 64 deep")
    bad_utf8 = b'{"user_id":"' + U1.encode() + b'","database_name":"Char\xff\xfeacters"}'
    expect_error(B.call("POST", SYNC, bad_utf8, auth(NEW), "invalid UTF-8"), 400,
                 "invalid_request", "invalid UTF-8 bytes in the body")
    users_before = w.q1("select count(*) from user_settings")
    for evil in ("../../etc/passwd", "'; drop table user_settings; --"):
        for field in ("user_id", "database_id"):
            body = {"user_id": U1, "database_id": D1}
            body[field] = evil
            st, _, js = B.call("POST", SYNC, json_body(body), auth(NEW), f"evil {field}")
            t.ok(st == 400 and is_error_body(js, "invalid_request") and
                 field in js["error"]["message"],
                 f"{field} {evil!r} -> 400 naming {field}", (st, js))
    t.ok(w.q1("select to_regclass('public.user_settings') is not null and "
              "to_regclass('public.notion_sync_runs') is not null") == "t"
         and w.q1("select count(*) from user_settings") == users_before,
         "tables intact after the injection attempts")
    t.eq(w.runs_count(), before, "no invalid request started a sync run")

    # --- not found / invalid name
    expect_error(B.call("POST", SYNC, json_body({"user_id": U_UNKNOWN, "database_id": D1}),
                        auth(NEW)), 404, "not_found", "unknown user with database_id")
    expect_error(B.call("POST", SYNC, json_body({"user_id": U3, "database_id": D1}), auth(NEW)),
                 404, "not_found", "user without a token")
    expect_error(B.call("POST", SYNC, json_body({"user_id": U_UNKNOWN}), auth(NEW)), 404,
                 "not_found", "unknown user, user_id only")
    expect_error(B.call("POST", SYNC, json_body({"user_id": U3}), auth(NEW)), 404, "not_found",
                 "user without a token, user_id only")
    st, _, js = B.call("POST", SYNC, json_body({"user_id": U1, "database_id": D_UNSHARED}),
                       auth(NEW))
    t.ok(st == 404 and is_error_body(js, "not_found")
         and re.search(r"not found|not shared", js["error"]["message"], re.I),
         "database not shared with the token -> 404 saying not found / not shared", (st, js))
    t.eq(w.q1(f"select count(*) from notion_databases where database_id = '{D_UNSHARED}'"), "0",
         "an unshared database is not registered")
    st, _, js = B.call("POST", SYNC, json_body({"user_id": U1, "database_id": D1,
                                             "database_name": "Spells"}), auth(NEW))
    t.ok(st == 400 and is_error_body(js, "invalid_request") and "Spells" in js["error"]["message"],
         'database_name "Spells" -> 400 naming the value', (st, js))


def discovery():
    w = World("discovery", synced=True)
    B = w.stack()

    # --- user only: discovery via search
    t.eq(w.q1(f"select count(*) from notion_databases where user_id = '{U2}'"), "0",
         "user 2 has nothing registered before")
    st, _, js = B.call("POST", SYNC, json_body({"user_id": U2}), auth(NEW), "user-only discovery")
    js = js if isinstance(js, dict) else {}
    res = js.get("results") if isinstance(js.get("results"), list) else []
    t.ok(st == 200 and js.get("success") is True and len(res) == 2,
         "user-only sync with discovery -> 200, success, 2 results", (st, js))
    t.eq(sorted((r.get("database_name"), r.get("status")) for r in res),
         [("Stories", "success"), ("Worlds", "success")],
         "results: Stories and Worlds, both status success")
    want = {"Worlds": int(w.q1(f"select count(*) from notion_worlds_sync where user_id = '{U2}'")),
            "Stories": int(w.q1(f"select count(*) from notion_stories_sync "
                                f"where user_id = '{U2}'"))}
    t.eq({r.get("database_name"): r.get("synced_count") for r in res}, want,
         "each result's synced_count equals its rows in PostgreSQL")
    t.eq(want, {"Worlds": 30, "Stories": 20}, "every page of both databases is in PostgreSQL")
    t.eq(sorted(tuple(r) for r in w.pg.psql(
        f"select database_id::text, database_name from notion_databases where user_id = '{U2}' "
        "order by 2")), sorted([(D2S, "Stories"), (D2W, "Worlds")]),
        "discovery registered both databases in notion_databases")

    # --- no body at all: every user with a token (the seed's cron curl)
    with_token = sorted(r[0] for r in w.pg.psql(
        "select user_id::text from user_settings where coalesce(nullif(notion_access_token, ''), "
        "nullif(notion_token, '')) is not null"))
    st, _, js = B.call("POST", SYNC, None, {"Authorization": f"Bearer {NEW}"}, "cron: no body")
    js = js if isinstance(js, dict) else {}
    res = js.get("results") if isinstance(js.get("results"), list) else []
    t.eq(st, 200, "POST without a body -> 200")
    t.eq(sorted({r.get("user_id") for r in res}), with_token,
         "no-body results cover every user with a token")
    t.eq(sorted((r.get("user_id"), r.get("database_id")) for r in res),
         sorted([(U1, D1), (U2, D2S), (U2, D2W), (U4, D4C), (U4, D4W), (U5, D1)]),
         "no-body results: every registered database of every user")
    t.ok(js.get("success") is True and all(r.get("status") == "success" for r in res),
         "no-body run: all succeed", js)

    # --- database_id only
    st, _, js = B.call("POST", SYNC, json_body({"database_id": D1}), auth(NEW), "database only")
    js = js if isinstance(js, dict) else {}
    res = js.get("results") if isinstance(js.get("results"), list) else []
    t.ok(st == 200 and js.get("success") is True, "database_id only -> 200 success", (st, js))
    t.eq(sorted((r.get("user_id"), r.get("database_id"), r.get("status")) for r in res),
         [(U1, D1, "success"), (U5, D1, "success")],
         "database_id only: that database for each user who registered it")
    t.eq(w.q1(f"select count(*) from notion_characters_sync where user_id = '{U5}'"), str(N_CHAR),
         "user 5 has its own copy of the shared database")
    expect_error(B.call("POST", SYNC, json_body({"database_id": D_UNSHARED}), auth(NEW)), 404,
                 "not_found", "database_id only, registered by nobody")

    # --- one failing database does not stop the others
    emu.control("POST", "/share", {"token": TOKENS["t4"], "database_id": D4W, "shared": False})
    try:
        st, _, js = B.call("POST", SYNC, json_body({"user_id": U4}), auth(NEW),
                           "one failing database")
    finally:
        emu.control("POST", "/share", {"token": TOKENS["t4"], "database_id": D4W, "shared": True})
    js = js if isinstance(js, dict) else {}
    res = {r.get("database_id"): r for r in (js.get("results") or []) if isinstance(r, dict)}
    t.ok(st == 200 and js.get("success") is False and len(res) == 2,
         "user with one unshared database -> 200, success false, 2 results", (st, js))
    bad, good = res.get(D4W, {}), res.get(D4C, {})
    t.ok(bad.get("status") == "error" and isinstance(bad.get("error"), dict)
         and bad["error"].get("code") == "not_found" and bad["error"].get("message"),
         "the unshared database: status error with an error object (not_found)", bad)
    t.ok(good.get("status") == "success" and good.get("database_name") == "Characters"
         and "error" not in good, "the other database: status success", good)
    t.eq(w.q1(f"select status from notion_sync_runs where id = {int(bad.get('run_id') or 0)}"),
         "error", "the failing database's run is recorded as error")


def notion_fails():
    w = World("notion-fails", synced=True)
    C = w.stack(processes=1, NOTION_MAX_ATTEMPTS=2)
    emu.control("POST", "/faults", {"faults": [{"path": r"^/v1/data_sources/[^/]+/query",
                                                "kind": "status", "status": 500, "count": 0}]})
    emu.clear_requests()
    try:
        st, _, js = C.call("POST", SYNC, json_body(single), auth(NEW), "notion 500")
        log = emu.requests()
    finally:
        emu.control("DELETE", "/faults")
    t.ok(st == 502 and is_error_body(js, "notion_error"),
         "Notion answering 500 -> 502 notion_error", (st, js))
    queries = [r for r in log if r["path"].endswith("/query")]
    t.eq([r["status"] for r in queries], [500, 500],
         "NOTION_MAX_ATTEMPTS=2: the query was tried exactly twice")
    expect_success(C.call("POST", SYNC, json_body(single), auth(NEW), "after faults cleared"),
                   "faults cleared: the same sync succeeds again")


def busy():
    """409: a second request while the first one runs."""
    w = World("busy", synced=True)
    B = w.stack()
    emu.control("POST", "/faults", {"faults": [{"path": r"^/v1/data_sources/[^/]+/query",
                                                "kind": "slow", "delay_ms": 2500, "count": 1}]})
    slow_result = {}

    def slow_request():
        slow_result["r"] = B.call("POST", SYNC, json_body(single), auth(NEW), "409: request A")

    try:
        runs_before = int(w.q1("select coalesce(max(id), 0) from notion_sync_runs"))
        th = threading.Thread(target=slow_request)
        th.start()
        running = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and running is None:
            running = w.q1(f"select id from notion_sync_runs where id > {runs_before} "
                           f"and user_id = '{U1}' and database_id = '{D1}' "
                           f"and status = 'running'")
            if running is None:
                time.sleep(0.02)
        t.ok(running is not None, "request A shows a running row in notion_sync_runs")
        st, _, js = B.call("POST", SYNC, json_body(single), auth(NEW), "409: request B")
        t.ok(st == 409 and is_error_body(js, "sync_in_progress"),
             "request B for the same user+database -> 409 sync_in_progress", (st, js))
        busy_run = js.get("error", {}).get("run_id") if isinstance(js, dict) else None
        th.join(60)
    finally:
        emu.control("DELETE", "/faults")
    st_a, _, js_a = slow_result.get("r", (None, None, None))
    t.ok(st_a == 200 and isinstance(js_a, dict) and js_a.get("success") is True,
         "request A finishes 200", (st_a, js_a))
    t.ok(busy_run is not None and isinstance(js_a, dict) and busy_run == js_a.get("run_id")
         and str(busy_run) == str(running),
         "409's error.run_id is request A's run id", (busy_run, running, js_a))
    t.eq(w.q1("select count(*) from notion_sync_runs where status = 'running'"), "0",
         "no run left in status running")


def pg_down():
    """503: PostgreSQL stopped (the last scenario: the cluster stays down)."""
    w = World("pg-down")
    B = w.stack()
    C = w.stack("pg-down-held", processes=1)
    # C serves one sync first, so that it holds a connection libpq believes open.
    C.call("POST", SYNC, json_body({"user_id": U4, "database_id": D4C}), auth(NEW),
           "sync on C before postgres stops")
    pg.stop()
    expect_error(C.call("POST", SYNC, json_body(single), auth(NEW), "sync on C, postgres down"),
                 503, "database_unavailable", "PostgreSQL stopped: sync on a held connection")
    st, _, js = B.call("GET", "/healthz", label="healthz, postgres down")
    t.ok(st == 503 and isinstance(js, dict) and js.get("status") not in (None, "ok"),
         "PostgreSQL stopped: /healthz -> 503 with a non-ok status", (st, js))
    expect_error(B.call("POST", SYNC, json_body(single), auth(NEW), "sync, postgres down"),
                 503, "database_unavailable", "PostgreSQL stopped: sync")
    expect_error(B.call("POST", SYNC, None, auth(NEW), "cron, postgres down"),
                 503, "database_unavailable", "PostgreSQL stopped: no-body sync")
    t.ok(B.alive() and len(B.pids()) == 2, "both responder processes still alive", B.pids())
    t.ok(C.alive(), "the third responder is still alive")


def after_all():
    """Over every responder and every request of the scenarios that ran."""
    time.sleep(0.2)  # let the last log lines land
    secrets = [OLD, NEW] + list(TOKENS.values())
    line_re = re.compile(r"request method=(\S+) path=(\S+) status=(\d+) ")
    for stack in STACKS:
        logged = sorted((m, p, int(s)) for m, p, s in line_re.findall(stack.log_text()))
        t.eq(logged, sorted(stack.sent),
             f"{stack.name}: one 'request method=... status=...' log line per request")
        # notionsync.h: the log sink gets "one complete line". A line of this
        # log that is neither the responder's nor a libpq notice is the
        # continuation of a message that held a newline.
        stray = [ln for ln in stack.log_text().splitlines()
                 if ln and not re.match(r"notion-sync-fcgi(\[\d+\])?: |spawn-fcgi: |"
                                        r"(WARNING|NOTICE|FATAL|ERROR):  ", ln)]
        t.eq(stray, [], f"{stack.name}: every responder log entry is a single line")
        leaked = [s for s in secrets if s in stack.log_text() or s in stack.nginx.logs()]
        t.eq(leaked, [], f"{stack.name}: no bearer secret or Notion token in responder/nginx logs")
    leaked = [(label, s) for label, _, _, _, js in ALL for s in secrets if s in json.dumps(js)]
    t.eq(leaked, [], "no response body holds a bearer secret or Notion token")

    bad_bodies = []
    for label, method, path, st, js in ALL:
        if st < 400 or (path == "/healthz" and st == 503):
            continue  # /healthz answers a health document, checked above
        if not is_error_body(js):
            bad_bodies.append((label, st, js))
        elif st >= 500 and st not in (502, 503) and (
                js["error"]["code"] != "internal_error" or "PostgreSQL" in js["error"]["message"]):
            bad_bodies.append((label, st, js))
    t.eq(bad_bodies, [], "every error body is {success:false, error:{code, message}}; "
                         "no 500 exposes internals")
    t.ok(not any(st == 500 for _, _, _, st, _ in ALL), "no request answered 500",
         [(lb, st) for lb, _, _, st, _ in ALL if st == 500])
    h.note(f"{len(ALL)} HTTP requests")


SCENARIOS = [("refuse", refuse), ("rotation", rotation), ("validation", validation),
             ("discovery", discovery), ("notion-fails", notion_fails), ("busy", busy),
             ("pg-down", pg_down)]

if __name__ == "__main__":
    h.note(f"stack up in {time.monotonic() - start:.1f}s")
    scenario.run(t, SCENARIOS, note=h.note, after=after_all)
