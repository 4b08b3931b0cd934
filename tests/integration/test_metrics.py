#!/usr/bin/env python3
"""test_metrics.py - GET /metrics (Prometheus text exposition format 0.0.4)
through the production nginx snippet (nginx/notion-sync-locations.conf in a
TLS server, see harness.TlsNginx) -> spawn-fcgi -> notion-sync-fcgi, which
connects as a login role with only notion_sync_service's rights.

Runs come from real syncs against the Notion emulator (a 429 with
Retry-After, pacing at NOTION_RATE_LIMIT, a run that fails on 500s, one by
the CLI) and from rows inserted directly with chosen statuses, triggers,
times and counts (queued, running, skipped, error, a trigger and a
database name that need escaping). Every scrape is parsed by a small strict
parser (HELP then TYPE before the samples, families contiguous, no
duplicate series, escapes, numbers, a final newline) and every number is
checked against notion_sync_runs / notion_databases computed independently
in SQL. Also: 401 without or with a wrong bearer (nginx, and the
responder's own check over raw FastCGI), 405 + Allow for other methods,
503 JSON while PostgreSQL is down and recovery after, the scrape time
with 100,000 runs, and no secret in any log. Prints TAP.

The TLS nginx and the responder are shared; every scenario runs on its own
PostgreSQL database (a copy of a migrated template), the responder restarted
onto it (scenario.run; all by default, or some by name: test_metrics.py runs):
  parser   the strict parser reads a valid text and refuses invalid ones;
  empty    an empty log and registry;
  auth     401 / 405 / query string / 404 through nginx;
  runs     real runs (429, pacing, 500s, the CLI) and inserted rows, every
           number against SQL, escapes, pruned history, disabled databases;
  fcgi     the responder's own bearer check over raw FastCGI;
  down     PostgreSQL down: 503 JSON; back: 200;
  scale    100,000 more runs on a copy of the runs scenario's database (run
           alone: after the runs scenario);
  hygiene  no secret in the nginx or responder logs of the scenarios so far.
"""

import math
import re
import time

import harness as h
import scenario

SYNC = "/api/notion/sync-to-postgres"
METRICS = "/metrics"
CTYPE = "text/plain; version=0.0.4; charset=utf-8"
SECRET = "metrics-test-bearer-5b7e1d93c2"
SVC_LOGIN = "nsync_metrics_responder"
HSTS = "max-age=31536000; includeSubDomains"

UA = "3e000000-0000-4000-8000-00000000000a"   # two real databases
UB = "3e000000-0000-4000-8000-00000000000b"   # one real database (synced by the CLI too)
UC = "3e000000-0000-4000-8000-00000000000c"   # registry rows only
UQ = "3e000000-0000-4000-8000-00000000000d"   # run rows inserted directly
TOKENS = {UA: "secret_metrics_token_a_81f2", UB: "secret_metrics_token_b_27c4"}
DC_NEVER = "3ec00000-0000-4000-8000-000000000001"
DC_PRUNED = "3ec00000-0000-4000-8000-000000000002"
DC_OFF = "3ec00000-0000-4000-8000-000000000003"
DQ = [f"3ed00000-0000-4000-8000-00000000000{i}" for i in range(1, 7)]
DQ_HIST = "3ed00000-0000-4000-8000-0000000000ff"
# Label values that need every escape of the format, and UTF-8.
WEIRD_NAME = 'Lore "q" \\n and\nnewline \\ \u2713 \u00fc'
WEIRD_TRIGGER = 'test"trig\\ger\nx'
PRUNED_AT = "2024-01-02 03:04:05.25+00"
PRUNED_EPOCH = 1704164645.25

FAMILIES = [
    "notion_sync_runs", "notion_sync_pages_seen", "notion_sync_rows_inserted",
    "notion_sync_rows_updated", "notion_sync_rows_deleted", "notion_sync_page_errors",
    "notion_sync_retries", "notion_sync_rate_limit_wait_seconds",
    "notion_sync_pacing_wait_seconds", "notion_sync_queue_depth",
    "notion_sync_oldest_queued_run_age_seconds", "notion_sync_running_runs",
    "notion_sync_database_last_success_timestamp_seconds", "notion_sync_database_last_status",
    "notion_sync_webhook_backlog", "notion_sync_webhook_oldest_pending_seconds",
    "notion_sync_webhook_events", "notion_sync_webhook_lag_seconds",
]
SUMS = {  # metric -> column of notion_sync_runs
    "notion_sync_pages_seen": "pages_seen", "notion_sync_rows_inserted": "inserted",
    "notion_sync_rows_updated": "updated", "notion_sync_rows_deleted": "deleted",
    "notion_sync_page_errors": "page_errors", "notion_sync_retries": "retries",
    "notion_sync_rate_limit_wait_seconds": "rate_limit_wait_seconds",
    "notion_sync_pacing_wait_seconds": "pacing_wait_seconds",
}
STATES = ["success", "error", "skipped", "none"]

t = h.Tap()


# --- a strict parser of the text format 0.0.4 -------------------------------------------------

NAME_RX = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_RX = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
VALUE_RX = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]Inf|NaN")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class FormatError(Exception):
    pass


def parse_labels(s, pos, where):
    """Parse {name="value",...} starting at s[pos] == '{'; returns (dict, end)."""
    labels = {}
    pos += 1
    if s[pos:pos + 1] == "}":
        return labels, pos + 1
    while True:
        m = LABEL_RX.match(s, pos)
        if not m:
            raise FormatError(f"{where}: bad label name at {s[pos:pos + 20]!r}")
        name, pos = m.group(), m.end()
        if name.startswith("__"):
            raise FormatError(f"{where}: reserved label name {name}")
        if s[pos:pos + 2] != '="':
            raise FormatError(f"{where}: expected =\" after {name}")
        pos += 2
        value = []
        while True:
            if pos >= len(s):
                raise FormatError(f"{where}: unterminated value of {name}")
            c = s[pos]
            if c == "\\":
                nxt = s[pos + 1:pos + 2]
                if nxt not in ("\\", '"', "n"):
                    raise FormatError(f"{where}: bad escape \\{nxt} in {name}")
                value.append("\n" if nxt == "n" else nxt)
                pos += 2
            elif c == '"':
                pos += 1
                break
            elif c == "\n":
                raise FormatError(f"{where}: raw newline in {name}")
            else:
                value.append(c)
                pos += 1
        if name in labels:
            raise FormatError(f"{where}: label {name} twice")
        labels[name] = "".join(value)
        if s[pos:pos + 1] == ",":
            pos += 1
            continue  # (a trailing comma is not accepted: we never send one)
        if s[pos:pos + 1] == "}":
            return labels, pos + 1
        raise FormatError(f"{where}: expected , or }} after {name}")


def parse_exposition(text):
    """{family: {"help", "type", "samples": {frozenset(labels): value}}} and
    the family order. Raises FormatError for anything the format (0.0.4)
    does not allow, and for what we never send (timestamps, comments,
    blank lines)."""
    if not text.endswith("\n"):
        raise FormatError("the text does not end with a newline")
    fams, order, cur = {}, [], None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {n}"
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) < 4 or parts[0] != "#" or parts[1] not in ("HELP", "TYPE"):
                raise FormatError(f"{where}: unexpected comment {line!r}")
            kind, name, rest = parts[1], parts[2], parts[3]
            if not NAME_RX.fullmatch(name):
                raise FormatError(f"{where}: bad metric name {name!r}")
            if kind == "HELP":
                if name in fams:
                    raise FormatError(f"{where}: family {name} appears twice")
                if "\\" in re.sub(r"\\[\\n]", "", rest):
                    raise FormatError(f"{where}: bad escape in HELP")
                fams[name] = {"help": rest, "type": None, "samples": {}}
                order.append(name)
                cur = name
            else:
                if name != cur or fams[cur]["type"] is not None or fams[cur]["samples"]:
                    raise FormatError(f"{where}: TYPE of {name} is not right after its HELP")
                if rest not in TYPES:
                    raise FormatError(f"{where}: unknown type {rest!r}")
                fams[cur]["type"] = rest
            continue
        if not line:
            raise FormatError(f"{where}: blank line")
        m = NAME_RX.match(line)
        if not m:
            raise FormatError(f"{where}: no metric name in {line!r}")
        name, pos = m.group(), m.end()
        labels = {}
        if line[pos:pos + 1] == "{":
            labels, pos = parse_labels(line, pos, where)
        if line[pos:pos + 1] != " ":
            raise FormatError(f"{where}: expected one space before the value")
        value = line[pos + 1:]
        if not VALUE_RX.fullmatch(value):
            raise FormatError(f"{where}: bad value {value!r} (or a timestamp)")
        if cur is None or name != cur:
            raise FormatError(f"{where}: sample of {name} outside its family ({cur})")
        if fams[cur]["type"] is None:
            raise FormatError(f"{where}: sample of {name} before its TYPE")
        key = frozenset(labels.items())
        if key in fams[cur]["samples"]:
            raise FormatError(f"{where}: duplicate series {name}{labels}")
        fams[cur]["samples"][key] = float(value.replace("Inf", "inf"))
    return fams, order


def self_test_parser():
    good = ('# HELP a_b x \\\\ y\n# TYPE a_b gauge\na_b{l="q\\"\\\\\\n"} 1.5e-05\n'
            '# HELP c c\n# TYPE c gauge\nc +Inf\n')
    fams, _ = parse_exposition(good)
    ok = fams["a_b"]["samples"] == {frozenset({("l", 'q"\\\n')}): 1.5e-05} and \
        fams["c"]["samples"][frozenset()] == math.inf
    bad = [
        "# TYPE a gauge\na 1\n",                                   # TYPE without HELP
        "# HELP a a\na 1\n",                                       # sample before TYPE
        "# HELP a a\n# TYPE a gauge\na 1\na 2\n",                  # duplicate series
        "# HELP a a\n# TYPE a gauge\na{x=\"1\"} 1\n# HELP b b\n# TYPE b gauge\nb 1\na 2\n",
        "# HELP a a\n# TYPE a gauge\na{x=\"\\t\"} 1\n",             # bad escape
        "# HELP a a\n# TYPE a gauge\na 1",                         # no final newline
        "# HELP a a\n# TYPE a gauge\na 1 1700000000\n",            # timestamp
        "# HELP a a\n# TYPE a gauge\na{x=\"1\",} 1\n",             # trailing comma
        "# HELP a a\n# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n",      # label twice
        "# HELP a a\n# TYPE a gauge\na one\n",                     # value
        "# HELP a a\n# TYPE a gauge\n\na 1\n",                     # blank line
    ]
    refused = []
    for b in bad:
        try:
            parse_exposition(b)
            refused.append(False)
        except FormatError:
            refused.append(True)
    return ok and all(refused), refused



def parser():
    ok, refused = self_test_parser()
    t.ok(ok, "the strict parser reads a valid text and refuses 11 invalid ones", refused)


# --- the stack ---------------------------------------------------------------------------------

# synchronous_commit on: the immediate stop below must not lose the rows inserted before it.
TEMPLATE = h.migrated_cluster(extra_conf=["synchronous_commit = on"])
TEMPLATE.psql(f"create role {SVC_LOGIN} login in role notion_sync_service")
emu = h.Emulator()


def env_of(db):
    return h.base_env(db, emu, DATABASE_URL=f"host={db.dir} dbname={db.dbname} user={SVC_LOGIN}",
                      NOTION_RATE_LIMIT="25", NOTION_MAX_ATTEMPTS="3",
                      NOTION_BACKOFF_BASE="0.05", NOTION_SYNC_WORKERS="0")


# The responder never serves the template (a template has no sessions): it
# starts on a copy, and each scenario restarts it onto its own.
pg = scenario.clone_database(TEMPLATE, "metrics_idle")  # the running scenario's database
svc_env = env_of(pg)
resp = h.Responder(dict(svc_env, NOTION_SYNC_SECRET=SECRET))
nginx = h.TlsNginx(resp.port, rate="500r/s")
DONE = set()   # scenarios that ran to their end


def use(db):
    """Make db the running scenario's database and restart the responder onto it."""
    global pg, svc_env
    pg, svc_env = db, env_of(db)
    h.respawn(resp, dict(svc_env, NOTION_SYNC_SECRET=SECRET))


def on_its_own_database(name, fn):
    def run():
        if not TEMPLATE.running():   # an earlier scenario left PostgreSQL down
            TEMPLATE.start_server()
        emu.control("DELETE", "/faults")
        use(scenario.clone_database(TEMPLATE, f"metrics_{name}"))
        fn()
        DONE.add(name)
    return name, run



def auth(secret=SECRET):
    return {"Authorization": "Bearer " + secret}


def scrape(headers=None, method="GET", path=METRICS):
    """(status, headers, body text) of a request through nginx."""
    st, hd, body = nginx.request(method, path, None, auth() if headers is None else headers)
    return st, hd, body if isinstance(body, str) else None, body


def parse_or_fail(text, label):
    try:
        fams, order = parse_exposition(text)
    except FormatError as exc:
        t.ok(False, f"{label}: the text is valid exposition format 0.0.4", f"{exc}\n{text[:3000]}")
        return None
    t.ok(order == FAMILIES and all(fams[f]["type"] == "gauge" and fams[f]["help"]
                                   for f in FAMILIES),
         f"{label}: valid 0.0.4 text with the {len(FAMILIES)} families in order, each a gauge "
         "with HELP and TYPE before its samples, no duplicate series", order)
    return fams


def value(fams, name, **labels):
    return fams[name]["samples"].get(frozenset(labels.items()))



def empty():
    st, hd, text, _ = scrape()
    t.ok(st == 200 and hd.get("Content-Type") == CTYPE and hd.get("Cache-Control") == "no-store"
         and hd.get("Strict-Transport-Security") == HSTS,
         "GET /metrics with the bearer -> 200, Content-Type " + CTYPE + ", no-store, HSTS",
         (st, hd and dict(hd)))
    fams = parse_or_fail(text or "", "empty log")
    if fams:
        t.ok(not fams["notion_sync_runs"]["samples"]
             and all(value(fams, f) == 0 for f in FAMILIES[1:12])
             and not fams["notion_sync_database_last_status"]["samples"]
             and not fams["notion_sync_database_last_success_timestamp_seconds"]["samples"],
             "empty log and registry: no run or database series, every sum and queue figure 0",
             text)

# --- authentication and methods (nginx) -----------------------------------------------------------
def auth_methods():
    st, hd, _, js = scrape(headers={})
    t.ok(st == 401 and isinstance(js, dict) and js.get("error", {}).get("code") == "unauthorized",
         "no bearer -> 401 JSON unauthorized (auth_request)", (st, js))
    st, _, _, js = scrape(headers=auth("metrics-test-bearer-wrong-0000"))
    t.ok(st == 401 and isinstance(js, dict) and js.get("error", {}).get("code") == "unauthorized",
         "wrong bearer -> 401", (st, js))
    for method in ("POST", "PUT", "DELETE", "HEAD"):
        st, hd, _, js = scrape(method=method)
        t.ok(st == 405 and hd.get("Allow") == "GET"
             and (method == "HEAD" or (isinstance(js, dict)
                                       and js["error"]["code"] == "method_not_allowed")),
             f"{method} /metrics -> 405 with Allow: GET", (st, hd and dict(hd), js))
    st, _, text, _ = scrape(path=METRICS + "?name[]=notion_sync_runs")
    t.ok(st == 200 and text and text.startswith("# HELP notion_sync_runs "),
         "a query string (as Prometheus params send) is ignored -> 200", st)
    st, _, _, js = scrape(path=METRICS + "/")
    t.ok(st == 404, "/metrics/ -> 404 (exact location)", (st, js))

# --- real runs through the emulator --------------------------------------------------------------
for user, tok in TOKENS.items():
    emu.control("POST", "/tokens", {"token": tok, "integration_name": "metrics-" + user[-1],
                                    "databases": []})


def make_db(title, token, count, seed):
    return emu.make_database(title, token, count, seed)["database_id"]


DA_CHAR = make_db("Characters", TOKENS[UA], 40, 11)
DA_WORLD = make_db("Worlds", TOKENS[UA], 20, 12)
DB_STORY = make_db("Stories", TOKENS[UB], 15, 13)


def sync(user, database, full=False):
    body = '{"user_id":"%s","database_id":"%s"%s}' % (user, database,
                                                      ',"full":true' if full else "")
    st, _, js = nginx.request("POST", SYNC, body, dict(auth(), **{"Content-Type":
                                                                 "application/json"}))
    return st, js



def runs():
    pg.psql("insert into user_settings (user_id, notion_token) values "
            + ", ".join(f"('{u}', '{tok}')" for u, tok in TOKENS.items())
            + f", ('{UC}', null), ('{UQ}', null)")
    pg.psql("insert into notion_databases (user_id, database_id, database_name) values "
            f"('{UA}', '{DA_CHAR}', 'Characters'), ('{UA}', '{DA_WORLD}', 'Worlds'), "
            f"('{UB}', '{DB_STORY}', 'Stories')")
    pg.psql("insert into notion_databases (user_id, database_id, database_name, last_status, "
            "last_synced_at, enabled) values "
            f"('{UC}', '{DC_NEVER}', $n${WEIRD_NAME}$n$, null, null, true), "
            f"('{UC}', '{DC_PRUNED}', 'Chat Sessions', 'success', '{PRUNED_AT}', true), "
            f"('{UC}', '{DC_OFF}', 'Characters', 'success', now(), false), "
            f"('{UQ}', '{DQ_HIST}', 'Stories', 'error', now() - interval '1 hour' + interval '5 s', "
            "true)")


    # One 429 with Retry-After: 1 on the first query: a retry and a second of waiting.
    emu.control("POST", "/faults", {"faults": [{"path": "/query$", "kind": "status", "status": 429,
                                                "retry_after": 1, "count": 1}]})
    st, js = sync(UA, DA_CHAR)
    t.ok(st == 200 and js.get("success") is True and js.get("retries") == 1,
         "real sync of UA Characters through nginx, one 429 -> 200 with retries 1", (st, js))
    emu.control("DELETE", "/faults")
    st, js = sync(UA, DA_WORLD)
    t.ok(st == 200 and js.get("success") is True, "real sync of UA Worlds -> 200", (st, js))
    st, js = sync(UB, DB_STORY, full=True)
    t.ok(st == 200 and js.get("success") is True, "real full sync of UB Stories -> 200", (st, js))
    # Worlds again while Notion answers 500 to every query: an error run after retries.
    emu.control("POST", "/faults", {"faults": [{"path": "/query$", "kind": "status", "status": 500,
                                                "count": 0}]})
    st, js = sync(UA, DA_WORLD)
    t.ok(st == 502 and js.get("success") is False, "UA Worlds while Notion answers 500 -> 502", (st, js))
    emu.control("DELETE", "/faults")
    code, js, out, err = h.run_cli(["sync", "--user", UB, "--database", DB_STORY, "--quiet"], svc_env)
    t.ok(code == 0, "CLI sync of UB Stories (trigger cli)", out + err)
    real = h.json_rows(pg, "select trigger, status, retries, rate_limit_wait_seconds as rlw, "
                           "pacing_wait_seconds as pw from notion_sync_runs order by id")
    t.ok([(r["trigger"], r["status"]) for r in real]
         == [("http", "success"), ("http", "success"), ("http", "success"), ("http", "error"),
             ("cli", "success")]
         and real[0]["rlw"] >= 1 and sum(r["retries"] for r in real) >= 3
         and sum(r["pw"] for r in real) > 0,
         "the real runs are in notion_sync_runs with retries, Retry-After and pacing waits", real)

    # --- rows inserted directly ----------------------------------------------------------------------
    pg.psql(f"""
    insert into notion_sync_runs (user_id, database_id, database_name, trigger, status, queued_at,
                                  started_at, finished_at, heartbeat_at, pages_seen, inserted, updated,
                                  deleted, page_errors, retries, rate_limit_wait_seconds,
                                  pacing_wait_seconds) values
     ('{UQ}', '{DQ[0]}', 'Characters', 'pg_net', 'queued', now() - interval '3600 s', now(), null,
      null, 0, 0, 0, 0, 0, 0, 0, 0),
     ('{UQ}', '{DQ[1]}', 'Worlds', 'pg_net', 'queued', now() - interval '120 s', now(), null, null,
      0, 0, 0, 0, 0, 0, 0, 0),
     ('{UQ}', null, null, 'cron', 'queued', now() - interval '10 s', now(), null, null,
      0, 0, 0, 0, 0, 0, 0, 0),
     ('{UQ}', '{DQ[2]}', 'Stories', 'pg_net', 'running', now() - interval '40 s',
      now() - interval '30 s', null, now(), 12, 3, 0, 0, 0, 1, 0.5, 0.25),
     ('{UQ}', '{DQ[3]}', 'Stories', 'http', 'running', null, now() - interval '5 s', null, now(),
      0, 0, 0, 0, 0, 0, 0, 0),
     ('{UQ}', '{DQ[0]}', 'Characters', 'cron', 'skipped', now() - interval '2 h',
      now() - interval '2 h', now() - interval '2 h', null, 0, 0, 0, 0, 0, 0, 0, 0),
     ('{UQ}', '{DQ[4]}', 'Worlds', 'vercel_cron', 'error', null, now() - interval '50 min',
      now() - interval '49 min', null, 7, 1, 2, 2, 3, 4, 2.5, 0.125),
     ('{UQ}', '{DQ[4]}', 'Worlds', $t${WEIRD_TRIGGER}$t$, 'success', null, now() - interval '40 min',
      now() - interval '39 min', null, 5, 5, 0, 0, 0, 0, 0.1, 0.2),
     ('{UQ}', '{DQ_HIST}', 'Stories', 'cron', 'success', null, now() - interval '3 h',
      now() - interval '3 h' + interval '10 s', null, 9, 9, 0, 0, 0, 0, 0, 0),
     ('{UQ}', '{DQ_HIST}', 'Stories', 'cron', 'success', null, now() - interval '2 h',
      now() - interval '2 h' + interval '7.5 s', null, 9, 0, 1, 0, 0, 0, 0, 0),
     ('{UQ}', '{DQ_HIST}', 'Stories', 'cron', 'error', null, now() - interval '1 h',
      now() - interval '1 h' + interval '5 s', null, 1, 0, 0, 0, 1, 2, 1.75, 0)
    """)


    res = verify("after real and inserted runs")
    if res:
        fams, text = res
        t.ok(value(fams, "notion_sync_runs", status="success", trigger=WEIRD_TRIGGER) == 1
             and 'trigger="test\\"trig\\\\ger\\nx"' in text,
             "a trigger with a quote, a backslash and a newline is escaped and reads back", None)
        labels = dict(user_id=UC, database_id=DC_NEVER, database_name=WEIRD_NAME)
        t.ok(value(fams, "notion_sync_database_last_status", status="none", **labels) == 1
             and value(fams, "notion_sync_database_last_success_timestamp_seconds", **labels) is None
             and 'database_name="Lore \\"q\\" \\\\n and\\nnewline \\\\ \u2713 \u00fc"' in text,
             "a never-synced database: status none, no last-success sample, its name (quote, "
             "backslash-n, newline, UTF-8) escaped exactly", None)
        t.ok(close(value(fams, "notion_sync_database_last_success_timestamp_seconds", user_id=UC,
                         database_id=DC_PRUNED, database_name="Chat Sessions"), PRUNED_EPOCH),
             "history pruned but the registry's last run was a success: last success = "
             "last_synced_at", None)
        t.ok(not any(dict(k).get("database_id") == DC_OFF
                     for f in FAMILIES[12:14] for k in fams[f]["samples"]),
             "a disabled database has no series", None)
        hist = float(pg.scalar(f"select extract(epoch from max(finished_at)) from notion_sync_runs "
                               f"where database_id = '{DQ_HIST}' and status = 'success'"))
        t.ok(close(value(fams, "notion_sync_database_last_success_timestamp_seconds", user_id=UQ,
                         database_id=DQ_HIST, database_name="Stories"), hist)
             and value(fams, "notion_sync_database_last_status", user_id=UQ, database_id=DQ_HIST,
                       database_name="Stories", status="error") == 1,
             "success, success, error: last success = the second success, last status error", None)
        world = dict(user_id=UA, database_id=DA_WORLD, database_name="Worlds")
        t.ok(value(fams, "notion_sync_database_last_status", status="error", **world) == 1
             and value(fams, "notion_sync_database_last_success_timestamp_seconds", **world)
             is not None,
             "real runs: UA Worlds failed after a success (status error, success time kept)", None)
        t.ok(value(fams, "notion_sync_retries") >= 7 and value(fams, "notion_sync_rate_limit_wait_seconds")
             > 1 and value(fams, "notion_sync_pacing_wait_seconds") > 0,
             "retries, Retry-After waits and pacing waits are non-zero", None)



# --- what the metrics must say, computed in SQL --------------------------------------------------

def expected():
    runs = {(r["status"], r["trigger"]): r["n"] for r in h.json_rows(
        pg, "select status, trigger, count(*) as n from notion_sync_runs group by 1, 2")}
    sums = h.json_rows(pg, "select " + ", ".join(
        f"coalesce(sum({col}), 0)::text as {m}" for m, col in SUMS.items())
        + ", (select count(*) from notion_sync_runs where status = 'queued') as queued"
        + ", (select count(*) from notion_sync_runs where status = 'running') as running"
        + " from notion_sync_runs")[0]
    dbs = h.json_rows(pg, """
        select d.user_id, d.database_id, d.database_name, coalesce(d.last_status, 'none') as st,
               extract(epoch from greatest(
                   (select max(r.finished_at) from notion_sync_runs r
                     where r.user_id = d.user_id and r.database_id = d.database_id
                       and r.status = 'success'),
                   case when d.last_status = 'success' then d.last_synced_at end))::text as ok
          from notion_databases d where d.enabled""")
    return runs, sums, dbs


def oldest_age():
    v = pg.scalar("select coalesce(extract(epoch from now() - min(queued_at)), 0) "
                  "from notion_sync_runs where status = 'queued'")
    return float(v)


def close(a, b):
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


def verify(label):
    age0 = oldest_age()
    st, hd, text, _ = scrape()
    age1 = oldest_age()
    runs, sums, dbs = expected()
    t.ok(st == 200 and hd.get("Content-Type") == CTYPE, f"{label}: GET /metrics -> 200", st)
    fams = parse_or_fail(text or "", label)
    if not fams:
        return None
    got_runs = {(dict(k)["status"], dict(k)["trigger"]): v
                for k, v in fams["notion_sync_runs"]["samples"].items()}
    t.ok(all(set(dict(k)) == {"status", "trigger"} for k in fams["notion_sync_runs"]["samples"])
         and got_runs == {k: float(v) for k, v in runs.items()},
         f"{label}: notion_sync_runs{{status,trigger}} = count(*) group by status, trigger "
         f"({len(runs)} series)", f"got:  {sorted(got_runs.items())}\nwant: {sorted(runs.items())}")
    bad = [(m, value(fams, m), sums[m]) for m in SUMS
           if not (len(fams[m]["samples"]) == 1 and close(value(fams, m), float(sums[m])))]
    t.ok(not bad, f"{label}: the 8 sums equal sum(column) over notion_sync_runs", bad)
    t.ok(value(fams, "notion_sync_queue_depth") == sums["queued"]
         and value(fams, "notion_sync_running_runs") == sums["running"],
         f"{label}: queue depth {sums['queued']} and running runs {sums['running']}",
         (value(fams, "notion_sync_queue_depth"), value(fams, "notion_sync_running_runs"), sums))
    age = value(fams, "notion_sync_oldest_queued_run_age_seconds")
    t.ok(age is not None and age0 - 0.01 <= age <= age1 + 0.01,
         f"{label}: oldest queued age {age} within [{age0:.3f}, {age1:.3f}] (SQL before/after)",
         (age, age0, age1))
    want_ok = {(d["user_id"], d["database_id"], d["database_name"]): float(d["ok"])
               for d in dbs if d["ok"] is not None}
    got_ok = {tuple(dict(k)[n] for n in ("user_id", "database_id", "database_name")): v
              for k, v in fams["notion_sync_database_last_success_timestamp_seconds"]
              ["samples"].items()}
    t.ok(got_ok.keys() == want_ok.keys() and all(close(got_ok[k], want_ok[k]) for k in want_ok),
         f"{label}: last success time of the {len(want_ok)} enabled databases that have one",
         f"got:  {sorted(got_ok.items())}\nwant: {sorted(want_ok.items())}")
    want_st = {}
    for d in dbs:
        for s in STATES + ([d["st"]] if d["st"] not in STATES else []):
            want_st[(d["user_id"], d["database_id"], d["database_name"], s)] = \
                float(d["st"] == s)
    got_st = {tuple(dict(k)[n] for n in ("user_id", "database_id", "database_name", "status")): v
              for k, v in fams["notion_sync_database_last_status"]["samples"].items()}
    t.ok(got_st == want_st,
         f"{label}: last status state set of the {len(dbs)} enabled databases (1 for the "
         "registry's last_status, 0 for the others)",
         f"got:  {sorted(got_st.items())}\nwant: {sorted(want_st.items())}")
    return fams, text


# --- the responder's own bearer check (raw FastCGI, no nginx) ---------------------------------------
def fcgi(method, path, authorization=None):
    """(status, headers with lower-case names, body bytes) from the responder."""
    params = h.cgi_params(method, path, GATEWAY_INTERFACE="CGI/1.1", CONTENT_LENGTH="0")
    if authorization:
        params["HTTP_AUTHORIZATION"] = authorization
    return h.fastcgi(resp.port, params)


def fcgi_own():
    st, hd, body = fcgi("GET", METRICS)
    t.ok(st == 401 and hd.get("www-authenticate") == "Bearer" and b'"unauthorized"' in body,
         "responder without nginx: no bearer -> 401 (its own check)", (st, hd, body[:200]))
    st, hd, body = fcgi("GET", METRICS, "Bearer " + SECRET[:-1] + "x")
    t.ok(st == 401, "responder without nginx: wrong bearer -> 401", (st, body[:200]))
    st, hd, body = fcgi("POST", METRICS, "Bearer " + SECRET)
    t.ok(st == 405 and hd.get("allow") == "GET", "responder: POST -> 405 with Allow: GET", (st, hd))
    st, hd, body = fcgi("GET", METRICS, "Bearer " + SECRET)
    t.ok(st == 200 and hd.get("content-type") == CTYPE and body.startswith(b"# HELP notion_sync_runs "),
         "responder: GET with the bearer -> 200 " + CTYPE, (st, hd))


# --- PostgreSQL down: 503 JSON; back: 200 -------------------------------------------------------------
def down():
    pg.stop_server()
    st, hd, _, js = scrape()
    t.ok(st == 503 and hd.get("Content-Type") == "application/json" and isinstance(js, dict)
         and js.get("success") is False and js["error"]["code"] == "database_unavailable"
         and "host=" not in str(js) and pg.dir not in str(js),
         "PostgreSQL down: GET /metrics -> 503 JSON database_unavailable, no libpq detail", (st, js))
    pg.start_server()
    st, _, text, _ = scrape()
    t.ok(st == 200 and text and text.endswith("\n"), "PostgreSQL back: the next scrape -> 200", st)


# --- 100,000 runs: one scrape stays cheap and exact ------------------------------------------------
def scale():
    if "runs" not in DONE:   # run alone: the runs scenario's 16 runs first
        h.note("scale: first the runs scenario, whose database it copies")
        on_its_own_database("runs", runs)[1]()
    if not TEMPLATE.running():
        TEMPLATE.start_server()
    h.stop_responder(resp)   # a template has no sessions
    use(scenario.clone_database(TEMPLATE, "metrics_scale", template="metrics_runs"))
    pg.psql(f"""
    insert into notion_sync_runs (user_id, database_id, database_name, trigger, status, started_at,
                                  finished_at, pages_seen, inserted, updated, retries,
                                  rate_limit_wait_seconds, pacing_wait_seconds)
    select '{UQ}', '{DQ[5]}', 'Stories', (array['pg_net', 'cron', 'http'])[1 + i % 3],
           (array['success', 'error', 'success', 'skipped', 'success'])[1 + i % 5],
           now() - make_interval(secs => i * 30), now() - make_interval(secs => i * 30 - 3),
           i % 50, i % 5, i % 3, i % 4, (i % 9) * 0.25, (i % 11) * 0.125
      from generate_series(1, 100000) as i""")
    pg.psql("analyze notion_sync_runs")
    times = []
    for _ in range(3):
        start = time.monotonic()
        st, _, _, _ = scrape()
        times.append(time.monotonic() - start)
    n_runs = int(pg.scalar("select count(*) from notion_sync_runs"))
    t.eq(n_runs, 100016, "the 16 runs from before the PostgreSQL restart and the 100,000 are there")
    h.note(f"scrape with {n_runs} runs: "
           + ", ".join(f"{x * 1000:.0f} ms" for x in times))
    t.ok(st == 200 and min(times) < 2.0, f"a scrape over 100,000 runs takes {min(times):.2f}s (< 2 s)",
         times)
    verify("100,000 more runs")


# --- hygiene -----------------------------------------------------------------------------------
def hygiene():
    logs = nginx.logs() + resp.log_text()
    t.ok(SECRET not in logs and not any(tok in logs for tok in TOKENS.values()),
         "no bearer secret or Notion token in the nginx or responder logs", None)
    t.ok(resp.alive(), "the responder is still running", None)


scenario.run(t, [("parser", parser), on_its_own_database("empty", empty),
                 on_its_own_database("auth", auth_methods), on_its_own_database("runs", runs),
                 on_its_own_database("fcgi", fcgi_own), on_its_own_database("down", down),
                 ("scale", scale), ("hygiene", hygiene)])
