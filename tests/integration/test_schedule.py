#!/usr/bin/env python3
"""test_schedule.py - issue 4: the SQL interface of sql/003_scheduling.sql with
real pg_cron 1.4 (Debian's postgresql-15-cron, preloaded) and the real
pg_net 0.20.4 (built from ../shared/vendor/pg_net by cli/build-pg-net.sh,
preloaded; its background worker), firing real requests through nginx ->
spawn-fcgi -> notion-sync-fcgi -> the Notion emulator -> PostgreSQL.

Follows ../shared/seeds/cron-sync-setup-guide.md: its setup steps, functions,
cron job, monitoring and troubleshooting queries must work as written.

  nocron    a cluster without pg_cron (and without pg_net): the migration
            succeeds with a NOTICE, schedule_notion_sync() raises a clear
            error, and the sync functions say pg_net is not installed;
  job       the migration creates sync-notion-databases (*/15) and
            prune-notion-sync-history; the guide's step 2 query returns it;
  config    no URL / no secret each raise an error saying what to run;
            set_sync_api_url is seen by SHOW app.api_url in new sessions;
            bad URLs are rejected; the secret sits in notion_sync_settings;
  pgnet     the queued request (URL, Content-Type exactly application/json,
            explicit timeout 5000, "async": true, bearer), looked at while
            pg_net's worker is held by a batch to a server that never
            answers; nothing leaves before COMMIT or after ROLLBACK; 202 in
            net._http_response and a run with trigger pg_net;
            sync_all_notion_databases / sync_all_users_notion_databases; the
            timeout as pg_net records it;
  privs     SECURITY DEFINER + fixed search_path; EXECUTE revoked from PUBLIC,
            granted through notion_sync_scheduler; application roles read
            neither the settings nor the secret;
  cron      a real pg_cron tick ('* * * * *'): job_run_details succeeded, runs
            with trigger pg_net, sync tables filled; a job run as a role
            without EXECUTE fails visibly; what pg_stat_activity really shows
            for pg_cron; the schedule restored to */15;
  guide     the troubleshooting queries return what the guide says;
  monitor   notion_sync_run_stats and notion_sync_last_errors agree with the
            run rows; prune_notion_sync_history deletes old finished runs and
            old cron.job_run_details rows, never queued or running runs;
  hygiene   no secret or token in cron.job, cron.job_run_details,
            notion_sync_runs, or any log.
Prints TAP. Every process is stopped by the harness's cleanups.
"""

import hashlib
import hmac
import json
import math
import os
import re
import socket
import time

import harness as h

SYNC = "/api/notion/sync-to-postgres"
SECRET = "schedule-test-bearer-secret-4d1e8b"
JOB = "sync-notion-databases"
PRUNE_JOB = "prune-notion-sync-history"
JOB_COMMAND = "SELECT sync_all_users_notion_databases()"
SEARCH_PATH = "search_path=pg_catalog, public, pg_temp"
FUNCTIONS = ["set_sync_api_url(text)", "set_sync_api_secret(text)", "notion_sync_endpoint()",
             "sync_notion_database(uuid,uuid,text)", "sync_all_notion_databases(uuid)",
             "sync_all_users_notion_databases()", "prune_notion_sync_history(interval)",
             "schedule_notion_sync(text)"]
CALLABLE = [f for f in FUNCTIONS if f != "notion_sync_endpoint()"]

U1 = "5a000000-0000-4000-8000-000000000001"  # integration token: Characters + Worlds registered
U2 = "5a000000-0000-4000-8000-000000000002"  # OAuth token (and a stale integration one), nothing registered
U3 = "5a000000-0000-4000-8000-000000000003"  # no token at all
U4 = "5a000000-0000-4000-8000-000000000004"  # a token Notion rejects
U5 = "5a000000-0000-4000-8000-000000000005"  # its only database is disabled
TOK1 = "secret_sched_integration_token_1"
TOK2_OAUTH = "secret_sched_oauth_token_2"
TOK2_OLD = "secret_sched_stale_integration_token_2"
TOK4 = "secret_sched_rejected_token_4"
TOK5 = "secret_sched_integration_token_5"
TOKENS = [TOK1, TOK2_OAUTH, TOK2_OLD, TOK4, TOK5]
N1C, N1W, N2S = 40, 25, 15
D4 = "5d000000-0000-4000-8000-000000000004"

t = h.Tap()
STARTED = time.monotonic()
if not os.path.exists(os.path.join(h.PG_BIN, "..", "lib", "pg_cron.so")):
    t.skip_all("pg_cron for PostgreSQL 15 is not installed (postgresql-15-cron)")
h.require_pg_net(t)


def err_text(fn):
    """Run fn (a psql call); return the error text it raised, or None."""
    try:
        fn()
    except RuntimeError as exc:
        return str(exc)
    return None


# --- signed requests ----------------------------------------------------------------
# The SQL functions send X-Notion-Sync-Signature (sql/006_signed_requests.sql),
# never the secret, and leave pg_net's grants alone.
SIG_RE = re.compile(r"t=([0-9]+),v1=([0-9a-f]{64})")


def check_queued_auth(hdrs, body_text):
    """The authentication header of a request waiting in net.http_request_queue
    (body_text: its body exactly as pg_net sends it)."""
    sig = hdrs.get("X-Notion-Sync-Signature") or ""
    m = SIG_RE.fullmatch(sig)
    want = m and hmac.new(SECRET.encode(), f"{m.group(1)}.{body_text}".encode(),
                          hashlib.sha256).hexdigest()
    t.ok(m is not None and "Authorization" not in hdrs and abs(int(m.group(1)) - time.time()) < 60
         and hmac.compare_digest(want, m.group(2)),
         "the request is signed: X-Notion-Sync-Signature t=<now>,v1=HMAC-SHA256(secret, "
         "t.body) over the exact body, no Authorization header", (hdrs, body_text))


def check_app_role_reads_queue(code, out, err):
    """app_user reads net.http_request_queue while a request waits there
    (pg_net grants the table to PUBLIC): it must never see the long-lived
    secret."""
    t.ok(code == 0 and "X-Notion-Sync-Signature" in out and SECRET not in out,
         "an application role reads the queued request (pg_net's grant to PUBLIC stays) but "
         "never the secret, only the short-lived signature",
         f"exit {code}; app_user read: {out.strip()[:200]}; {err.strip()[:200]}")


# ===================================================================== nocron
h.note("--- a cluster without pg_cron")
plain = h.Postgres()
code, _, out, err = h.run_cli(["migrate", "--sql-dir", h.SQL_DIR], h.pg_env(plain))
t.ok(code == 0, "without pg_cron the migration succeeds", out + err)
t.ok("pg_cron is not installed" in err and "schedule_notion_sync()" in err,
     "... and the CLI shows the NOTICE saying pg_cron is not installed and what to run", err)
t.eq(plain.scalar("select to_regclass('cron.job') is null"), "t", "... and there is no cron.job")
e = err_text(lambda: plain.psql("select schedule_notion_sync()"))
t.ok(e is not None and "pg_cron is not installed" in e and "CREATE EXTENSION pg_cron" in e,
     "schedule_notion_sync() without pg_cron raises, saying how to install it", e)
# Nor pg_net here: with URL and secret set, the functions say pg_net is missing.
plain.psql(f"insert into user_settings (user_id, notion_token) values ('{U1}', '{TOK1}'); "
           "select set_sync_api_url('https://sync.example.com'); "
           f"select set_sync_api_secret('{SECRET}')")
for label, sql in [("sync_notion_database",
                    f"select sync_notion_database('{U1}', '{D4}', 'Characters')"),
                   ("sync_all_users_notion_databases",
                    "select * from sync_all_users_notion_databases()")]:
    e = err_text(lambda: plain.psql(sql))
    t.ok(e is not None and "pg_net is not installed" in e and "CREATE EXTENSION pg_net" in e,
         f"no pg_net: {label} raises, saying pg_net is not installed", e)
plain_log = open(plain.log, errors="replace").read()
plain.stop()

# ================================================================= the stack
# As the README says: pg_cron and pg_net first, then the migrations.
pg = h.Postgres(cron=True, pg_net=True)
pg.psql("create extension pg_cron")
net = h.PgNet(pg)  # create extension pg_net; its worker runs from here on
h.migrate(pg)
emu = h.Emulator()
for tok in (TOK1, TOK2_OAUTH, TOK5):
    emu.control("POST", "/tokens", {"token": tok, "integration_name": "sched", "databases": []})


def make_db(title, token, count, seed):
    db = emu.control("POST", "/databases", {"title": title, "token": token})
    emu.control("POST", "/generate", {"data_source_id": db["data_source_ids"][0], "count": count,
                                      "seed": seed, "kind": title})
    return db["database_id"]


D1C = make_db("Characters", TOK1, N1C, 11)
D1W = make_db("Worlds", TOK1, N1W, 12)
D2S = make_db("Stories", TOK2_OAUTH, N2S, 13)
D5 = make_db("Characters", TOK5, 5, 15)
pg.psql(f"""
insert into user_settings (user_id, notion_token, notion_access_token) values
  ('{U1}', '{TOK1}', null), ('{U2}', '{TOK2_OLD}', '{TOK2_OAUTH}'), ('{U3}', null, null),
  ('{U4}', '{TOK4}', null), ('{U5}', '{TOK5}', null);
insert into notion_databases (user_id, database_id, database_name, enabled) values
  ('{U1}', '{D1C}', 'Characters', true), ('{U1}', '{D1W}', 'Worlds', true),
  ('{U4}', '{D4}', 'Characters', true), ('{U5}', '{D5}', 'Characters', false);
""")
env = h.base_env(pg, emu, NOTION_SYNC_SECRET=SECRET, NOTION_SYNC_WORKERS=2)
responder = h.Responder(env)
nginx = h.Nginx(responder.port)
URL = nginx.url
h.note(f"stack up at {time.monotonic() - STARTED:.1f}s")


def q1(sql):
    return pg.scalar(sql)


def runs_count():
    return int(q1("select count(*) from notion_sync_runs"))


def wait_idle(timeout=60.0):
    h.wait_for(lambda: q1("select count(*) from notion_sync_runs "
                          "where status in ('queued', 'running')") == "0",
               timeout=timeout, interval=0.2, what="the queue to drain")


def request_lines():
    return len(re.findall(r"request method=POST path=/api/notion/sync-to-postgres",
                          responder.log_text()))


# ======================================================================== job
h.note("--- the cron job the migration created")
rows = pg.psql(f"SELECT jobid, jobname, schedule, command FROM cron.job WHERE jobname = '{JOB}'")
t.ok(len(rows) == 1 and rows[0][1:] == [JOB, "*/15 * * * *", JOB_COMMAND],
     "guide step 2: one row sync-notion-databases, */15 * * * *, SELECT sync_all_users_notion_databases()",
     rows)
JOBID = rows[0][0] if rows else "0"
t.eq(pg.psql(f"select schedule, command, database, username, active::text from cron.job "
             f"where jobname = '{PRUNE_JOB}'"),
     [["17 3 * * *", "SELECT prune_notion_sync_history('30 days')", pg.dbname, pg.superuser,
       "true"]], "the pruning job prune-notion-sync-history runs daily at 03:17 GMT")
t.eq(pg.psql(f"select database, username, active::text from cron.job where jobname = '{JOB}'"),
     [[pg.dbname, pg.superuser, "true"]], "the sync job runs in this database, active")

# ===================================================================== config
h.note("--- missing configuration, then set_sync_api_url / set_sync_api_secret")
for label, sql in [("sync_notion_database", f"select sync_notion_database('{U1}', '{D1C}', 'Characters')"),
                   ("sync_all_notion_databases", f"select * from sync_all_notion_databases('{U1}')"),
                   ("sync_all_users_notion_databases", "select * from sync_all_users_notion_databases()")]:
    e = err_text(lambda: pg.psql(sql))
    t.ok(e is not None and "no API URL" in e and "set_sync_api_url(" in e,
         f"no URL: {label} raises, saying to run set_sync_api_url", e)
t.eq(q1("select set_sync_api_url('" + URL + "/')"), URL,
     "set_sync_api_url returns the URL (trailing slash dropped)")
t.eq(q1("SHOW app.api_url"), URL, "a new session sees it with SHOW app.api_url (guide troubleshooting)")
t.eq(q1("select value from notion_sync_settings where name = 'api_url'"), URL,
     "the URL is stored in notion_sync_settings")
for bad in ["localhost:3000", "ftp://example.com", "http://", "", "https://exa mple.com",
            "https://sync.example.com/?token=1", "javascript:alert(1)", "http://a/b#c"]:
    e = err_text(lambda: pg.psql(f"select set_sync_api_url('{bad}')"))
    t.ok(e is not None and "is not an http(s) URL" in e, f"set_sync_api_url({bad!r}) is rejected", e)
e = err_text(lambda: pg.psql("select set_sync_api_url(null)"))
t.ok(e is not None and "is not an http(s) URL" in e, "set_sync_api_url(NULL) is rejected", e)
t.eq((q1("SHOW app.api_url"), q1("select value from notion_sync_settings where name = 'api_url'")),
     (URL, URL), "rejected URLs changed nothing")
e = err_text(lambda: pg.psql(f"select sync_notion_database('{U1}', '{D1C}', 'Characters')"))
t.ok(e is not None and "no API secret" in e and "set_sync_api_secret(" in e,
     "no secret: sync_notion_database raises, saying to run set_sync_api_secret", e)
e = err_text(lambda: pg.psql("select * from sync_all_users_notion_databases()"))
t.ok(e is not None and "no API secret" in e, "no secret: sync_all_users_notion_databases raises", e)
e = err_text(lambda: pg.psql("select set_sync_api_secret('too-short')"))
t.ok(e is not None and "at least 16 characters" in e, "a secret under 16 characters is rejected", e)
t.eq(q1(f"select set_sync_api_secret('{SECRET}')"), "notion_sync_settings",
     "set_sync_api_secret stores the secret in notion_sync_settings (no vault here)")
t.eq(q1("select value from notion_sync_settings where name = 'api_secret'"), SECRET,
     "notion_sync_settings holds the secret")

# ====================================================================== pgnet
h.note("--- pg_net: the request, commit and rollback, the functions")
pg.psql("create role app_user login; create role sched_user login; "
        "grant notion_sync_scheduler to sched_user")
# pg_net sends one batch at a time and commits it (the queue rows' delete and
# the responses) when every request of the batch has ended. A request to a
# server that accepts and never answers holds the worker for its 5 s
# timeout; a request committed meanwhile waits in net.http_request_queue,
# where it can be looked at (and read by other roles).
blackhole = socket.socket()
blackhole.bind(("127.0.0.1", 0))
blackhole.listen(16)
h.on_cleanup(blackhole.close)
pg.psql(f"select set_sync_api_url('http://127.0.0.1:{blackhole.getsockname()[1]}')")
rid_timeout = int(q1(f"select sync_notion_database('{U1}', '{D1C}', 'Characters')"))
timeout_sent = time.monotonic()
pg.psql(f"select set_sync_api_url('{URL}')")
try:
    h.wait_for(lambda: net.in_flight(rid_timeout), timeout=10, interval=0.02,
               what="pg_net's worker to take the request to the silent server")
    held = True
except TimeoutError as exc:
    held = str(exc)
t.ok(held is True, "pg_net's worker takes the request to the silent server at once (its queue "
                   "row stays, locked by the batch's uncommitted delete)", held)
rid = q1(f"select sync_notion_database('{U1}', '{D1C}', 'Characters')")
t.ok(rid is not None and rid.isdigit(), "sync_notion_database returns a pg_net request id", rid)
queue = net.queue(f"id = {int(rid)}") if rid and rid.isdigit() else []
t.eq(len(queue), 1, "the committed request waits in net.http_request_queue (the batch in flight "
                    "holds the worker)")
qr = queue[0] if queue else {}
hdrs = qr.get("headers") or {}
try:
    qbody = json.loads(qr.get("body") or "null")
except ValueError:
    qbody = None
t.eq((str(qr.get("id")), qr.get("method"), qr.get("url")),
     (rid, "POST", URL + SYNC), "queued: POST <api_url>/api/notion/sync-to-postgres with that id")
t.eq(hdrs.get("Content-Type"), "application/json", "Content-Type is exactly application/json")
check_queued_auth(hdrs, qr.get("body"))
t.eq(qr.get("timeout_milliseconds"), 5000, "timeout_milliseconds is 5000")
t.eq(qbody, {"user_id": U1, "database_id": D1C, "database_name": "Characters", "async": True},
     'the body is {"user_id","database_id","database_name","async":true}')
# Application roles and pg_net's own grants to PUBLIC, while the request waits.
check_app_role_reads_queue(*h.psql_as(pg, "app_user", "select headers::text from "
                                                     "net.http_request_queue"))
# The timeout as pg_net records it, then the request that waited behind it.
resp = net.wait_response(rid_timeout, timeout=30)
took = time.monotonic() - timeout_sent
t.ok(resp.get("timed_out") is True and resp.get("status_code") is None
     and (resp.get("error_msg") or "").startswith("Timeout of 5000 ms reached"),
     f"a server that never answers: timed_out, 'Timeout of 5000 ms reached' ({took:.1f}s)", resp)
resp = net.wait_response(int(rid), timeout=20)
t.eq((resp.get("status_code"), resp.get("timed_out")), (202, False),
     "once the batch in flight has ended, net._http_response shows 202")
try:
    answer = json.loads(resp.get("content") or "{}")
except ValueError:
    answer = {}
run_ids = [r.get("run_id") for r in answer.get("runs", [])]
wait_idle()
t.eq(h.json_rows(pg, f"select trigger, status, pages_seen, inserted from notion_sync_runs "
                     f"where id = {int(run_ids[0]) if run_ids else 0}"),
     [{"trigger": "pg_net", "status": "success", "pages_seen": N1C, "inserted": N1C}],
     "the run completes: trigger pg_net, success, 40 pages")

# Nothing leaves before COMMIT.
before_runs, before_lines = runs_count(), request_lines()
before_resp = len(net.responses())
s = h.PsqlSession(pg, appname="nsync-commit-test")
s.send("begin;")
s.send(f"select sync_notion_database('{U1}', '{D1W}', 'Worlds');")
s.wait_state("idle in transaction", "sync_notion_database")
time.sleep(1.2)  # pg_net would send a committed request at once
t.eq((runs_count(), request_lines(), len(net.responses()), len(net.queue())),
     (before_runs, before_lines, before_resp, 0),
     "before COMMIT nothing is sent (no request at the responder, no response, no run)")
s.send("commit;")
code, out, err = s.finish()
rid_commit = out.strip().splitlines()[-1] if out.strip() else "0"
resp = net.wait_response(int(rid_commit) if rid_commit.isdigit() else 0, timeout=20)
t.eq(resp.get("status_code"), 202, "after COMMIT the request arrives: 202")
wait_idle()
t.eq(h.json_rows(pg, f"select trigger, status, database_name from notion_sync_runs "
                     f"where id > {before_runs} order by id"),
     [{"trigger": "pg_net", "status": "success", "database_name": "Worlds"}],
     "... and runs: one Worlds run, trigger pg_net, success")

# Nothing leaves after ROLLBACK.
before_runs, before_lines, before_resp = runs_count(), request_lines(), len(net.responses())
s = h.PsqlSession(pg, appname="nsync-rollback-test")
s.send("begin;")
s.send(f"select sync_notion_database('{U1}', '{D1W}', 'Worlds');")
s.wait_state("idle in transaction", "sync_notion_database")
s.send("rollback;")
code, out, err = s.finish()
rid_rb = out.strip().splitlines()[-1] if out.strip() else "0"
time.sleep(1.5)
t.eq((runs_count(), request_lines(), len(net.responses()), len(net.queue()),
      net.response(int(rid_rb)) if rid_rb.isdigit() else "no id"),
     (before_runs, before_lines, before_resp, 0, None),
     "after ROLLBACK nothing is ever sent")

# sync_all_notion_databases: one row per registered database; discovery for none.
rows = h.json_rows(pg, f"select * from sync_all_notion_databases('{U1}')")
t.eq(sorted((r["database_id"], r["database_name"]) for r in rows),
     sorted([(D1C, "Characters"), (D1W, "Worlds")]),
     "sync_all_notion_databases(user): one row per registered database (id, name)")
t.ok(len({r["request_id"] for r in rows}) == 2 and all(r["request_id"] for r in rows),
     "... each with its own request id", rows)
rows2 = h.json_rows(pg, f"select * from sync_all_notion_databases('{U2}')")
t.eq([(r["database_id"], r["database_name"], bool(r["request_id"])) for r in rows2],
     [(None, None, True)], "a user with nothing registered: one row, null database_id (discovery)")
ids = [r["request_id"] for r in rows + rows2]
resps = [net.wait_response(i) for i in ids]
t.eq([r.get("status_code") for r in resps], [202, 202, 202], "all three answered 202")
wait_idle()
t.eq(q1(f"select count(*) from notion_stories_sync where user_id = '{U2}'"), str(N2S),
     "discovery found and synced the OAuth user's Stories database (15 rows)")
t.eq(q1(f"select string_agg(database_name, ',') from notion_databases where user_id = '{U2}'"),
     "Stories", "... and registered it")

# sync_all_users_notion_databases: every user with a token.
first_resp_id = max([int(r["id"]) for r in net.responses()] or [0])
rows = h.json_rows(pg, "select * from sync_all_users_notion_databases()")
t.eq(sorted({r["user_id"] for r in rows}), sorted([U1, U2, U4]),
     "sync_all_users_notion_databases covers every user with a token and something to sync "
     "(not the one without a token, not the one whose only database is disabled)")
t.eq(sorted((r["user_id"], r["database_id"] or "") for r in rows),
     sorted([(U1, D1C), (U1, D1W), (U2, D2S), (U4, D4)]),
     "... one row per enabled database; a disabled database is not a reason to discover")
resps = {r["user_id"] + "/" + (r["database_id"] or ""): net.wait_response(r["request_id"])
         for r in rows}
t.eq(sorted(v.get("status_code") for k, v in resps.items()),
     [202] * 4, "every request of the all-users call is answered 202")
wait_idle()
pg.psql(f"update user_settings set notion_token = null where user_id = '{U5}'")

# ======================================================================= cron
h.note("--- a real pg_cron tick")
jobid_again = q1("select schedule_notion_sync('* * * * *')")
t.eq(jobid_again, JOBID, "schedule_notion_sync('* * * * *') replaces the job (same jobid)")
t.eq(q1(f"select schedule from cron.job where jobname = '{JOB}'"), "* * * * *",
     "the job now runs every minute")
pg.psql("select cron.schedule_in_database('nsync-test-as-app-user', '* * * * *', "
        f"'{JOB_COMMAND}', '{pg.dbname}', 'app_user')")
pg.psql("select cron.schedule('nsync-test-sleep', '* * * * *', 'SELECT pg_sleep(6)')")

# --- while waiting for the tick: privileges -------------------------------------
h.note("--- privileges (while waiting for the tick)")
rows = h.json_rows(pg, "select p.oid::regprocedure::text as f, p.prosecdef, p.proconfig "
                       "from pg_proc p where p.oid in (" +
                       ", ".join(f"'{f}'::regprocedure" for f in FUNCTIONS) + ")")
t.eq(sorted((r["f"], r["prosecdef"], r["proconfig"]) for r in rows),
     sorted((f, True, [SEARCH_PATH]) for f in FUNCTIONS),
     "every function is SECURITY DEFINER with search_path = pg_catalog, public, pg_temp")
t.eq(q1("select string_agg(f, ',') from unnest(array[" + ", ".join(f"'{f}'" for f in FUNCTIONS)
        + "]) f where has_function_privilege('public', f, 'execute')"), None,
     "PUBLIC may execute none of them")
code, out, err = h.psql_as(pg, "app_user", "select name from notion_sync_settings")
t.ok(code != 0 and "permission denied" in err and SECRET not in out,
     "app_user cannot read notion_sync_settings", err)
for f in CALLABLE + ["notion_sync_endpoint()"]:
    name = f.split("(")[0]
    args = {"set_sync_api_url": "('http://x.example')", "set_sync_api_secret": "('x' || repeat('y', 20))",
            "sync_notion_database": f"('{U1}', '{D1C}', 'Characters')",
            "sync_all_notion_databases": f"('{U1}')", "prune_notion_sync_history": "('1 day')",
            "schedule_notion_sync": "('* * * * *')"}.get(name, "()")
    code, out, err = h.psql_as(pg, "app_user", f"select {name}{args}")
    t.ok(code != 0 and "permission denied for function " + name in err,
         f"app_user cannot execute {name}", err)
code, out, err = h.psql_as(pg, "sched_user", "select notion_sync_endpoint()")
t.ok(code != 0 and "permission denied" in err and SECRET not in out,
     "not even notion_sync_scheduler can call notion_sync_endpoint() (it returns the secret)", err)
code, out, err = h.psql_as(pg, "sched_user", "select name from notion_sync_settings")
t.ok(code != 0 and "permission denied" in err, "notion_sync_scheduler cannot read the settings", err)
t.eq(q1("select string_agg(f, ',') from unnest(array[" + ", ".join(f"'{f}'" for f in CALLABLE)
        + "]) f where not has_function_privilege('sched_user', f, 'execute')"), None,
     "a role granted notion_sync_scheduler may execute every sync_* / set_sync_* function")
code, out, err = h.psql_as(pg, "sched_user", f"select * from sync_all_notion_databases('{U4}')")
t.ok(code == 0 and len(out.strip().splitlines()) == 1 and D4 in out,
     "sched_user runs sync_all_notion_databases (one row for the rejected user's database)", err)
wait_idle()

# --- guide queries that do not need the tick --------------------------------------
h.note("--- guide troubleshooting queries")
rows = h.json_rows(pg, "SELECT * FROM pg_extension WHERE extname = 'pg_cron'")
t.ok(len(rows) == 1 and rows[0]["extversion"] == "1.4-1",
     "SELECT * FROM pg_extension WHERE extname = 'pg_cron' -> one row, version 1.4-1", rows)
rows = h.json_rows(pg, "SELECT * FROM cron.job")
t.eq(sorted((r["jobname"], r["schedule"]) for r in rows),
     sorted([(JOB, "* * * * *"), (PRUNE_JOB, "17 3 * * *"), ("nsync-test-as-app-user", "* * * * *"),
             ("nsync-test-sleep", "* * * * *")]), "SELECT * FROM cron.job lists the jobs")
rows = h.json_rows(pg, """SELECT user_id,
     CASE
       WHEN notion_access_token IS NOT NULL THEN 'OAuth'
       WHEN notion_token IS NOT NULL THEN 'Integration'
       ELSE 'None'
     END as token_type
   FROM user_settings
   WHERE notion_access_token IS NOT NULL OR notion_token IS NOT NULL""")
t.eq(sorted((r["user_id"], r["token_type"]) for r in rows),
     sorted([(U1, "Integration"), (U2, "OAuth"), (U4, "Integration")]),
     "the token-type query: Integration / OAuth (OAuth wins), users without a token absent")
launcher = h.json_rows(pg, "select backend_type, application_name, datname, usename "
                           "from pg_stat_activity where backend_type = 'pg_cron launcher'")
t.eq(launcher, [{"backend_type": "pg_cron launcher", "application_name": "pg_cron scheduler",
                 "datname": pg.dbname, "usename": pg.superuser}],
     "pg_cron 1.4's worker: backend_type 'pg_cron launcher', application_name 'pg_cron scheduler'")
idle_rows = h.json_rows(pg, "SELECT * FROM pg_stat_activity WHERE application_name = 'pg_cron'")
t.eq(idle_rows, [], "the guide's application_name = 'pg_cron' query finds nothing while no job "
                    "runs (it never shows the launcher)")

# --- the tick ----------------------------------------------------------------------
now = time.time()
h.note(f"waiting {60 - now % 60:.0f}s for the next minute (at {time.monotonic() - STARTED:.0f}s)")
seen_job_sessions = []


def sleep_job_seen():
    rows = h.json_rows(pg, "SELECT backend_type, application_name, query FROM pg_stat_activity "
                           "WHERE application_name = 'pg_cron'")
    seen_job_sessions.extend(r for r in rows if r not in seen_job_sessions)
    return any("pg_sleep" in r["query"] for r in rows)


h.wait_for(sleep_job_seen, timeout=80, interval=0.2, what="the pg_cron tick (the sleep job)")
t.ok(any(r["backend_type"] == "client backend" and r["query"] == "SELECT pg_sleep(6)"
         for r in seen_job_sessions),
     "while a job runs, application_name = 'pg_cron' finds its session (a client backend)",
     seen_job_sessions)
t.ok(all(r["backend_type"] == "client backend" for r in seen_job_sessions),
     "... and only job sessions, never the launcher", seen_job_sessions)


def job_done(name):
    return q1(f"select status from cron.job_run_details where jobid = (select jobid from "
              f"cron.job where jobname = '{name}') and status in ('succeeded', 'failed') "
              f"order by runid desc limit 1")


h.wait_for(lambda: job_done(JOB) and job_done("nsync-test-as-app-user"), timeout=30,
           what="the tick's job runs to end")
rows = h.json_rows(pg, f"""SELECT jobid, runid, job_pid, database, username, command, status,
  return_message, start_time, end_time FROM cron.job_run_details
  WHERE jobid = (SELECT jobid FROM cron.job WHERE jobname = '{JOB}')
  ORDER BY start_time DESC LIMIT 10""")
t.ok(len(rows) == 1 and rows[0]["status"] == "succeeded" and rows[0]["command"] == JOB_COMMAND
     and rows[0]["database"] == pg.dbname and rows[0]["end_time"],
     "guide step 4: the sync job's run succeeded (command, database, end_time)", rows)
tick_start = rows[0]["start_time"] if rows else None
failed = pg.psql("SELECT return_message FROM cron.job_run_details WHERE status = 'failed' "
                 "ORDER BY start_time DESC")
t.ok(len(failed) == 1 and "permission denied for function sync_all_users_notion_databases"
     in failed[0][0], "the guide's failed-run query shows the job run as a role without EXECUTE",
     failed)
h.wait_for(lambda: int(q1(f"select count(*) from notion_sync_runs where queued_at >= "
                          f"'{tick_start}'::timestamptz")) >= 4, timeout=30,
           what="the tick's requests to reach the responder")
wait_idle()
tick = h.json_rows(pg, f"select user_id::text, database_id::text, trigger, status from "
                       f"notion_sync_runs where queued_at >= '{tick_start}'::timestamptz "
                       f"order by user_id, database_id")
t.eq(sorted((r["user_id"], r["database_id"], r["trigger"], r["status"]) for r in tick),
     sorted([(U1, D1C, "pg_net", "success"), (U1, D1W, "pg_net", "success"),
             (U2, D2S, "pg_net", "success"), (U4, D4, "pg_net", "error")]),
     "the tick's runs: trigger pg_net, success (the rejected token's run: error)")
tick_resps = net.responses(f"created >= '{tick_start}'::timestamptz")
t.eq(sorted(r["status_code"] for r in tick_resps), [202] * 4,
     "net._http_response: the tick's four requests answered 202")
counts = [pg.scalar("SELECT COUNT(*) FROM notion_characters_sync"),
          pg.scalar("SELECT COUNT(*) FROM notion_worlds_sync"),
          pg.scalar("SELECT COUNT(*) FROM notion_stories_sync")]
t.eq(counts, [str(N1C), str(N1W), str(N2S)], "the guide's count queries: 40 characters, "
                                              "25 worlds (and 15 stories)")
# cron.unschedule(name) only finds the caller's own jobs; app_user's goes by id.
pg.psql("select cron.unschedule(jobid) from cron.job where jobname like 'nsync-test-%'")
t.eq(q1("select schedule_notion_sync()"), JOBID, "schedule_notion_sync() restores the job")
t.eq(pg.psql(f"SELECT jobid, jobname, schedule, command FROM cron.job WHERE jobname = '{JOB}'"),
     [[JOBID, JOB, "*/15 * * * *", JOB_COMMAND]], "the job is back on */15 * * * *")
h.note(f"tick checked at {time.monotonic() - STARTED:.0f}s")

# ==================================================================== monitor
h.note("--- monitoring views and pruning")
pg.psql(f"""
insert into notion_sync_runs (user_id, database_id, database_name, trigger, status, started_at,
    finished_at, pages_seen, inserted, updated) values
  ('{U1}', '{D1C}', 'Characters', 'pg_net', 'success', now() - interval '2 hours',
   now() - interval '2 hours' + interval '3.5 seconds', 7, 2, 1),
  ('{U1}', '{D1C}', 'Characters', 'pg_net', 'error', now() - interval '3 days',
   now() - interval '3 days' + interval '1 second', 0, 0, 0);
insert into cron.job_run_details (jobid, job_pid, database, username, command, status,
    return_message, start_time, end_time) values
  ({JOBID}, 1, '{pg.dbname}', '{pg.superuser}', '{JOB_COMMAND}', 'succeeded', '1 row',
   now() - interval '3 days', now() - interval '3 days' + interval '1 second');
""")
all_runs = h.json_rows(pg, "select id, user_id::text, database_id::text, status, pages_seen, "
                           "inserted, updated, deleted, extract(epoch from now())::float8 as now,"
                           " extract(epoch from started_at)::float8 as s,"
                           " extract(epoch from finished_at)::float8 as f from notion_sync_runs")


def pct(values, p):
    v = sorted(values)
    if not v:
        return None
    pos = p * (len(v) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


want = {}
for label, span in (("1 hour", 3600), ("1 day", 86400)):
    for r in all_runs:
        if r["s"] < r["now"] - span:
            continue
        k = (label, r["user_id"], r["database_id"])
        w = want.setdefault(k, {"runs": 0, "succeeded": 0, "failed": 0, "d": [], "pages": 0,
                                "written": 0})
        w["runs"] += r["status"] in ("success", "error")
        w["succeeded"] += r["status"] == "success"
        w["failed"] += r["status"] == "error"
        if r["f"] is not None:
            w["d"].append(r["f"] - r["s"])
        w["pages"] += r["pages_seen"]
        w["written"] += r["inserted"] + r["updated"]
got = {(r["time_window"], r["user_id"], r["database_id"]): r for r in h.json_rows(
    pg, "select * from notion_sync_run_stats")}
mismatch = []
for k, w in want.items():
    g = got.get(k)
    rate = round(w["succeeded"] / w["runs"], 4) if w["runs"] else None
    exp = (w["runs"], w["succeeded"], w["failed"], rate, w["pages"], w["written"])
    if g is None:
        mismatch.append((k, "missing"))
        continue
    have = (g["runs"], g["succeeded"], g["failed"],
            None if g["success_rate"] is None else float(g["success_rate"]),
            g["pages_processed"], g["rows_written"])
    p50, p95 = pct(w["d"], 0.5), pct(w["d"], 0.95)
    if have != exp or abs((g["duration_p50_s"] or 0) - (p50 or 0)) > 1e-3 \
            or abs((g["duration_p95_s"] or 0) - (p95 or 0)) > 1e-3:
        mismatch.append((k, have, exp, (g["duration_p50_s"], g["duration_p95_s"]), (p50, p95)))
t.ok(not mismatch and set(got) == set(want),
     f"notion_sync_run_stats: {len(want)} (window, user, database) rows agree with the run rows "
     "(counts, success rate, p50/p95 duration, pages, rows written)",
     mismatch or (sorted(set(got) ^ set(want))))
k_hour, k_day = ("1 hour", U1, D1C), ("1 day", U1, D1C)
t.ok(k_hour in got and k_day in got and got[k_day]["runs"] == got[k_hour]["runs"] + 1
     and got[k_day]["pages_processed"] == got[k_hour]["pages_processed"] + 7,
     "the run of two hours ago counts in '1 day' only; the one of three days ago in neither",
     (got.get(k_hour), got.get(k_day)))
t.ok(got.get(("1 hour", U4, D4), {}).get("failed", 0) >= 2
     and float(got.get(("1 hour", U4, D4), {}).get("failure_rate") or 0) == 1.0,
     "the rejected user's database: failures counted, failure_rate 1", got.get(("1 hour", U4, D4)))
errors = h.json_rows(pg, "select user_id::text, database_id::text, run_id, error_message "
                         "from notion_sync_last_errors")
latest = {}
for r in sorted(all_runs, key=lambda r: (r["s"], r["id"])):
    if r["status"] == "error":
        latest[(r["user_id"], r["database_id"])] = r["id"]
t.eq(sorted((r["user_id"], r["database_id"], r["run_id"]) for r in errors),
     sorted((u, d, i) for (u, d), i in latest.items()),
     "notion_sync_last_errors: the latest failed run of each database")

# Pruning: old finished runs and old cron rows go; queued and running runs stay.
s = h.PsqlSession(pg, appname="nsync-prune-test")
s.send("begin;")
s.send("insert into notion_sync_runs (user_id, database_id, status, started_at, queued_at, "
       "heartbeat_at) values ('5a000000-0000-4000-8000-0000000000ee', "
       f"'{D4}', 'queued', now() - interval '3 days', now() - interval '3 days', null), "
       "('5a000000-0000-4000-8000-0000000000ee', '5d000000-0000-4000-8000-0000000000ee', "
       "'running', now() - interval '3 days', now() - interval '3 days', now()) returning id;")
s.send("select prune_notion_sync_history('1 day');")
s.send("select string_agg(status, ',' order by status) from notion_sync_runs "
       "where user_id = '5a000000-0000-4000-8000-0000000000ee';")
s.send("rollback;")
code, out, err = s.finish()
lines = out.strip().splitlines()
t.eq(lines[-2:] if len(lines) >= 2 else lines, ["2", "queued,running"],
     "prune_notion_sync_history('1 day') removes the old finished run and the old cron row "
     "(2), never the old queued or running runs")
n_runs, n_details = runs_count(), int(q1("select count(*) from cron.job_run_details"))
t.eq(q1("select prune_notion_sync_history('1 day')"), "2", "pruning for real: 2 rows")
t.eq((runs_count(), int(q1("select count(*) from cron.job_run_details"))),
     (n_runs - 1, n_details - 1), "... one run row and one cron.job_run_details row went")
t.eq(q1("select count(*) from notion_sync_runs where started_at < now() - interval '1 day'"), "0",
     "no run older than a day is left")
t.eq(q1("select count(*) from cron.job_run_details where start_time > now() - interval '10 minutes'"),
     "3", "the tick's three cron.job_run_details rows stay")

# ==================================================================== hygiene
h.note("--- secrets")
secrets = [SECRET] + TOKENS
places = {
    "cron.job": pg.raw("select coalesce(string_agg(j::text, E'\\n'), '') from cron.job j"),
    "cron.job_run_details": pg.raw("select coalesce(string_agg(d::text, E'\\n'), '') "
                                   "from cron.job_run_details d"),
    "notion_sync_runs": pg.raw("select coalesce(string_agg(r::text, E'\\n'), '') "
                               "from notion_sync_runs r"),
    "net._http_response": pg.raw("select coalesce(string_agg(r::text, E'\\n'), '') "
                                 "from net._http_response r"),
    "net.http_request_queue": pg.raw("select coalesce(string_agg(q::text, E'\\n'), '') "
                                     "from net.http_request_queue q"),
    "responder log": responder.log_text(),
    "postgres log": open(pg.log, errors="replace").read(),
    "postgres log (cluster without pg_cron)": plain_log,
}
places["net.http_request_queue (the request that waited)"] = json.dumps(qr)
for f in ("access.log", "error.log"):
    p = os.path.join(nginx.dir, f)
    places["nginx " + f] = open(p, errors="replace").read() if os.path.exists(p) else ""
leaks = [(where, s[:10] + "...") for where, text in places.items() for s in secrets if s in text]
t.eq(leaks, [], "no bearer secret or Notion token in cron.job, cron.job_run_details, "
                "notion_sync_runs, net._http_response, net.http_request_queue or any log "
                "(the server log holds pg_net's)")
t.ok(len(places["cron.job_run_details"]) > 0 and "status=202" in places["responder log"],
     "the places checked are not empty")
h.note(f"runtime {time.monotonic() - STARTED:.1f}s")
t.done()
