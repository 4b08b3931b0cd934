#!/usr/bin/env python3
"""test_schedule.py - issue 4: the SQL interface of sql/003_scheduling.sql with
real pg_cron 1.4 (Debian's postgresql-15-cron, preloaded) and the real
pg_net 0.20.4 (built from ../shared/vendor/pg_net by cli/build-pg-net.sh,
preloaded; its background worker), firing real requests through nginx ->
spawn-fcgi -> notion-sync-fcgi -> the Notion emulator -> PostgreSQL.

Follows the cron sync setup guide the scheduling was built from (README.md,
"Scheduling"): its setup steps, functions, cron job, monitoring and
troubleshooting queries must work as written.

Scenarios (tests/lib/scenario.py; all by default, or some by name:
test_schedule.py cron monitor):
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
            notion_sync_runs, or any log (run alone, or before anything
            scheduled ran: after the cron scenario).

pg_cron runs its jobs from one database (cron.database_name) and pg_net's
worker serves one (pg_net.database_name): the same database of one cluster,
shared by job, pgnet, cron, guide, monitor and hygiene. Each of those starts
with reset_scheduling(): every job paused (no tick fires unasked) and no run
of one in flight, the settings gone, pg_net's queue drained and its
responses deleted, no run queued or running, the tables back to the users
and databases below, cron.job_run_details empty, and the migration's two
jobs as it creates them. A scenario that needs a tick schedules its own jobs
and waits for their runs, told apart by start time. config and privs need
no pg_cron and run on fresh copies of a template migrated without it.
nocron makes its own cluster. Prints TAP. Every process is stopped by the
harness's cleanups.
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
import scenario

SYNC = "/api/notion/sync-to-postgres"
SECRET = "schedule-test-bearer-secret-4d1e8b"
JOB = "sync-notion-databases"
PRUNE_JOB = "prune-notion-sync-history"
JOB_COMMAND = "SELECT sync_all_users_notion_databases()"
APP_USER_JOB = "nsync-test-as-app-user"
SLEEP_JOB = "nsync-test-sleep"
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


def check_raises(db, sql, needles, desc):
    """sql fails on db with an error that says every one of needles."""
    try:
        db.psql(sql)
        e = None
    except RuntimeError as exc:
        e = str(exc)
    t.ok(e is not None and all(n in e for n in needles), desc, e)


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


# ================================================================= the stack
# As the README says: pg_cron and pg_net first, then the migrations. pg is
# the scheduling database (see reset_scheduling()); app_user and sched_user
# are roles of the cluster, so the template's copies know them too.
pg = h.Postgres(cron=True, pg_net=True)
pg.psql("create extension pg_cron")
net = h.PgNet(pg)  # create extension pg_net; its worker runs from here on
h.migrate(pg)
pg.psql("create role app_user login; create role sched_user login; "
        "grant notion_sync_scheduler to sched_user")
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
# The users and their registered databases every scenario starts with.
USERS_SQL = f"""
insert into user_settings (user_id, notion_token, notion_access_token) values
  ('{U1}', '{TOK1}', null), ('{U2}', '{TOK2_OLD}', '{TOK2_OAUTH}'), ('{U3}', null, null),
  ('{U4}', '{TOK4}', null), ('{U5}', '{TOK5}', null);
insert into notion_databases (user_id, database_id, database_name, enabled) values
  ('{U1}', '{D1C}', 'Characters', true), ('{U1}', '{D1W}', 'Worlds', true),
  ('{U4}', '{D4}', 'Characters', true), ('{U5}', '{D5}', 'Characters', false);
"""
env = h.base_env(pg, emu, NOTION_SYNC_SECRET=SECRET, NOTION_SYNC_WORKERS=2)
responder = h.Responder(env)
nginx = h.Nginx(responder.port)
URL = nginx.url
CONFIGURE_SQL = f"select set_sync_api_url('{URL}'); select set_sync_api_secret('{SECRET}');"
h.note(f"stack up at {time.monotonic() - STARTED:.1f}s")


def q1(sql):
    return pg.scalar(sql)


def runs_count():
    return int(q1("select count(*) from notion_sync_runs"))


def last_run_id():
    return int(q1("select coalesce(max(id), 0) from notion_sync_runs"))


def wait_idle(timeout=60.0):
    h.wait_for(lambda: q1("select count(*) from notion_sync_runs "
                          "where status in ('queued', 'running')") == "0",
               timeout=timeout, interval=0.2, what="the queue to drain")


def request_lines():
    return len(re.findall(r"request method=POST path=/api/notion/sync-to-postgres",
                          responder.log_text()))


def jobid_of(name):
    return q1(f"select jobid from cron.job where jobname = '{name}'")


# --- the scheduling database's known state ------------------------------------------
# What the scenarios left in the places hygiene looks at, kept by each reset
# before it empties them (and a few texts the scenarios add themselves).
LEFT = {}
LEFT_SQL = {
    "cron.job": "select coalesce(string_agg(j::text, E'\\n'), '') from cron.job j",
    "cron.job_run_details": "select coalesce(string_agg(d::text, E'\\n'), '') "
                            "from cron.job_run_details d",
    "notion_sync_runs": "select coalesce(string_agg(r::text, E'\\n'), '') from notion_sync_runs r",
    "net._http_response": "select coalesce(string_agg(r::text, E'\\n'), '') "
                          "from net._http_response r",
    "net.http_request_queue": "select coalesce(string_agg(q::text, E'\\n'), '') "
                              "from net.http_request_queue q",
}
# Every table of the migrations but their own record, emptied, ids from 1.
EMPTY_TABLES_SQL = """do $$ begin
  execute (select 'truncate ' || string_agg(format('%I', tablename), ', ') || ' restart identity'
             from pg_tables where schemaname = 'public'
              and tablename <> 'notion_sync_schema_migrations');
end $$;"""
# The PsqlSessions of this file (application_name nsync-...-test).
TEST_SESSIONS = "nsync-%-test"


def leave(place, text):
    LEFT.setdefault(place, []).append(text)


def no_job_run_in_flight():
    return (q1("select count(*) from cron.job_run_details "
               "where status in ('starting', 'running')") == "0"
            and q1("select count(*) from pg_stat_activity where application_name = 'pg_cron'") == "0")


def reset_scheduling(jobs_active=False):
    """Bring the scheduling database to its known state, whatever the
    scenario before did or where it failed: no job run in flight or to come
    (every job paused; pg_cron marks a run whose job is paused 'failed'
    while its session still ends its statement), no URL or secret (nothing
    new can be queued), pg_net's queue drained, no run queued or running
    (the responder has finished the requests pg_net delivered), then the
    tables back to USERS_SQL, net._http_response and cron.job_run_details
    empty, the migration's two jobs as schedule_notion_sync() makes them
    and no other, active only with jobs_active."""
    pg.psql("select pg_terminate_backend(pid) from pg_stat_activity where datname = "
            f"current_database() and application_name like '{TEST_SESSIONS}'")
    pg.psql("select cron.alter_job(jobid, active := false) from cron.job where active")
    # pg_cron sees a change to cron.job within ~2 s: a job may still start at
    # a minute that begins meanwhile; its run row appears at once.
    second = float(q1("select extract(second from clock_timestamp())"))
    if second >= 56 or second < 3:
        time.sleep((63 - second) % 60)
    h.wait_for(no_job_run_in_flight, timeout=60, interval=0.2, what="the job runs in flight to end")
    pg.psql(f"delete from notion_sync_settings; alter database {pg.dbname} reset app.api_url")
    h.wait_for(lambda: q1("select count(*) from net.http_request_queue") == "0", timeout=30,
               interval=0.1, what="pg_net's queue to drain")
    wait_idle()
    for place, sql in LEFT_SQL.items():
        leave(place, pg.raw(sql))
    pg.psql(f"select cron.unschedule(jobid) from cron.job where jobname not in "
            f"('{JOB}', '{PRUNE_JOB}'); select schedule_notion_sync(); "
            f"select cron.alter_job(jobid, active := {str(jobs_active).lower()}) from cron.job; "
            f"{EMPTY_TABLES_SQL} {USERS_SQL} "
            "delete from net._http_response; delete from cron.job_run_details;")


def schedule_tick_jobs(active):
    """What a tick runs: the sync job every minute (schedule_notion_sync('* *
    * * *')), the same command as app_user (who may not execute it) and a
    6-second sleep, in one transaction (so that they start in the same
    tick), active or paused. Returns (the sync job's jobid, the database's
    clock then: the tick's runs start after it)."""
    rows = pg.psql(f"select schedule_notion_sync('* * * * *'), now(); "
                   f"select cron.schedule_in_database('{APP_USER_JOB}', '* * * * *', "
                   f"'{JOB_COMMAND}', '{pg.dbname}', 'app_user'); "
                   f"select cron.schedule('{SLEEP_JOB}', '* * * * *', 'SELECT pg_sleep(6)'); "
                   f"select cron.alter_job(jobid, active := {str(active).lower()}) "
                   f"from cron.job where jobname <> '{PRUNE_JOB}'")
    return rows[0][0], rows[0][1]


# --- fresh databases for the scenarios without pg_cron ------------------------------
_template = []


def fresh_database(name, sql=""):
    """A new database schedule_<name> holding USERS_SQL, then sql: a copy
    of a template migrated with pg_net but without pg_cron (which exists in
    the scheduling database only). pg_net's worker serves the scheduling
    database, so a request queued in a copy is never sent."""
    if not _template:
        template = scenario.clone_database(pg, "schedule_template", template="template0")
        template.psql("create extension pg_net")
        h.migrate(template)
        _template.append(template)
    return scenario.clone_database(pg, f"schedule_{name}", template="schedule_template",
                                   sql=USERS_SQL + sql)


# ===================================================================== nocron
def nocron():
    plain = h.Postgres()
    try:
        code, _, out, err = h.run_cli(["migrate", "--sql-dir", h.SQL_DIR], h.pg_env(plain))
        t.ok(code == 0, "without pg_cron the migration succeeds", out + err)
        t.ok("pg_cron is not installed" in err and "schedule_notion_sync()" in err,
             "... and the CLI shows the NOTICE saying pg_cron is not installed and what to run", err)
        t.eq(plain.scalar("select to_regclass('cron.job') is null"), "t",
             "... and there is no cron.job")
        check_raises(plain, "select schedule_notion_sync()",
                     ["pg_cron is not installed", "CREATE EXTENSION pg_cron"],
                     "schedule_notion_sync() without pg_cron raises, saying how to install it")
        # Nor pg_net here: with URL and secret set, the functions say pg_net is missing.
        plain.psql(f"insert into user_settings (user_id, notion_token) values ('{U1}', '{TOK1}'); "
                   "select set_sync_api_url('https://sync.example.com'); "
                   f"select set_sync_api_secret('{SECRET}')")
        for label, sql in [("sync_notion_database",
                            f"select sync_notion_database('{U1}', '{D4}', 'Characters')"),
                           ("sync_all_users_notion_databases",
                            "select * from sync_all_users_notion_databases()")]:
            check_raises(plain, sql, ["pg_net is not installed", "CREATE EXTENSION pg_net"],
                         f"no pg_net: {label} raises, saying pg_net is not installed")
    finally:
        leave("postgres log (cluster without pg_cron)", open(plain.log, errors="replace").read())
        plain.stop()


# ======================================================================== job
def job():
    reset_scheduling(jobs_active=True)
    rows = pg.psql(f"SELECT jobid, jobname, schedule, command FROM cron.job WHERE jobname = '{JOB}'")
    t.ok(len(rows) == 1 and rows[0][1:] == [JOB, "*/15 * * * *", JOB_COMMAND],
         "guide step 2: one row sync-notion-databases, */15 * * * *, "
         "SELECT sync_all_users_notion_databases()",
         rows)
    t.eq(pg.psql(f"select schedule, command, database, username, active::text from cron.job "
                 f"where jobname = '{PRUNE_JOB}'"),
         [["17 3 * * *", "SELECT prune_notion_sync_history('30 days')", pg.dbname, pg.superuser,
           "true"]], "the pruning job prune-notion-sync-history runs daily at 03:17 GMT")
    t.eq(pg.psql(f"select database, username, active::text from cron.job where jobname = '{JOB}'"),
         [[pg.dbname, pg.superuser, "true"]], "the sync job runs in this database, active")


# ===================================================================== config
def config():
    db = fresh_database("config")
    for label, sql in [("sync_notion_database",
                        f"select sync_notion_database('{U1}', '{D1C}', 'Characters')"),
                       ("sync_all_notion_databases",
                        f"select * from sync_all_notion_databases('{U1}')"),
                       ("sync_all_users_notion_databases",
                        "select * from sync_all_users_notion_databases()")]:
        check_raises(db, sql, ["no API URL", "set_sync_api_url("],
                     f"no URL: {label} raises, saying to run set_sync_api_url")
    t.eq(db.scalar("select set_sync_api_url('" + URL + "/')"), URL,
         "set_sync_api_url returns the URL (trailing slash dropped)")
    t.eq(db.scalar("SHOW app.api_url"), URL,
         "a new session sees it with SHOW app.api_url (guide troubleshooting)")
    t.eq(db.scalar("select value from notion_sync_settings where name = 'api_url'"), URL,
         "the URL is stored in notion_sync_settings")
    for bad in ["localhost:3000", "ftp://example.com", "http://", "", "https://exa mple.com",
                "https://sync.example.com/?token=1", "javascript:alert(1)", "http://a/b#c"]:
        check_raises(db, f"select set_sync_api_url('{bad}')", ["is not an http(s) URL"],
                     f"set_sync_api_url({bad!r}) is rejected")
    check_raises(db, "select set_sync_api_url(null)", ["is not an http(s) URL"],
                 "set_sync_api_url(NULL) is rejected")
    t.eq((db.scalar("SHOW app.api_url"),
          db.scalar("select value from notion_sync_settings where name = 'api_url'")),
         (URL, URL), "rejected URLs changed nothing")
    check_raises(db, f"select sync_notion_database('{U1}', '{D1C}', 'Characters')",
                 ["no API secret", "set_sync_api_secret("],
                 "no secret: sync_notion_database raises, saying to run set_sync_api_secret")
    check_raises(db, "select * from sync_all_users_notion_databases()", ["no API secret"],
                 "no secret: sync_all_users_notion_databases raises")
    check_raises(db, "select set_sync_api_secret('too-short')", ["at least 16 characters"],
                 "a secret under 16 characters is rejected")
    t.eq(db.scalar(f"select set_sync_api_secret('{SECRET}')"), "notion_sync_settings",
         "set_sync_api_secret stores the secret in notion_sync_settings (no vault here)")
    t.eq(db.scalar("select value from notion_sync_settings where name = 'api_secret'"), SECRET,
         "notion_sync_settings holds the secret")


# ====================================================================== pgnet
def pgnet():
    reset_scheduling()
    pg.psql(CONFIGURE_SQL)
    # pg_net sends one batch at a time and commits it (the queue rows' delete and
    # the responses) when every request of the batch has ended. A request to a
    # server that accepts and never answers holds the worker for its 5 s
    # timeout; a request committed meanwhile waits in net.http_request_queue,
    # where it can be looked at (and read by other roles).
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(16)
        pgnet_held_request(blackhole.getsockname()[1])
    pgnet_commit_and_rollback()
    pgnet_functions()


def pgnet_held_request(blackhole_port):
    pg.psql(f"select set_sync_api_url('http://127.0.0.1:{blackhole_port}')")
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
    leave("net.http_request_queue (the request that waited)", json.dumps(qr))
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


def pgnet_commit_and_rollback():
    # Nothing leaves before COMMIT.
    before_runs, before_id, before_lines = runs_count(), last_run_id(), request_lines()
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
                         f"where id > {before_id} order by id"),
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


def pgnet_functions():
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


# ====================================================================== privs
def privs():
    db = fresh_database("privs", CONFIGURE_SQL)
    rows = h.json_rows(db, "select p.oid::regprocedure::text as f, p.prosecdef, p.proconfig "
                           "from pg_proc p where p.oid in (" +
                           ", ".join(f"'{f}'::regprocedure" for f in FUNCTIONS) + ")")
    t.eq(sorted((r["f"], r["prosecdef"], r["proconfig"]) for r in rows),
         sorted((f, True, [SEARCH_PATH]) for f in FUNCTIONS),
         "every function is SECURITY DEFINER with search_path = pg_catalog, public, pg_temp")
    t.eq(db.scalar("select string_agg(f, ',') from unnest(array[" +
                   ", ".join(f"'{f}'" for f in FUNCTIONS) +
                   "]) f where has_function_privilege('public', f, 'execute')"), None,
         "PUBLIC may execute none of them")
    code, out, err = h.psql_as(db, "app_user", "select name from notion_sync_settings")
    t.ok(code != 0 and "permission denied" in err and SECRET not in out,
         "app_user cannot read notion_sync_settings", err)
    for f in CALLABLE + ["notion_sync_endpoint()"]:
        name = f.split("(")[0]
        args = {"set_sync_api_url": "('http://x.example')",
                "set_sync_api_secret": "('x' || repeat('y', 20))",
                "sync_notion_database": f"('{U1}', '{D1C}', 'Characters')",
                "sync_all_notion_databases": f"('{U1}')", "prune_notion_sync_history": "('1 day')",
                "schedule_notion_sync": "('* * * * *')"}.get(name, "()")
        code, out, err = h.psql_as(db, "app_user", f"select {name}{args}")
        t.ok(code != 0 and "permission denied for function " + name in err,
             f"app_user cannot execute {name}", err)
    code, out, err = h.psql_as(db, "sched_user", "select notion_sync_endpoint()")
    t.ok(code != 0 and "permission denied" in err and SECRET not in out,
         "not even notion_sync_scheduler can call notion_sync_endpoint() (it returns the secret)", err)
    code, out, err = h.psql_as(db, "sched_user", "select name from notion_sync_settings")
    t.ok(code != 0 and "permission denied" in err, "notion_sync_scheduler cannot read the settings", err)
    t.eq(db.scalar("select string_agg(f, ',') from unnest(array[" +
                   ", ".join(f"'{f}'" for f in CALLABLE) +
                   "]) f where not has_function_privilege('sched_user', f, 'execute')"), None,
         "a role granted notion_sync_scheduler may execute every sync_* / set_sync_* function")
    code, out, err = h.psql_as(db, "sched_user", f"select * from sync_all_notion_databases('{U4}')")
    t.ok(code == 0 and len(out.strip().splitlines()) == 1 and D4 in out,
         "sched_user runs sync_all_notion_databases (one row for the rejected user's database)", err)


# ======================================================================= cron
def tick_run(name, since):
    """The first run of job `name` started after `since` (a timestamp of the
    database's clock): {runid, status, start_time}, or None."""
    rows = h.json_rows(pg, f"select runid, status, start_time from cron.job_run_details "
                           f"where jobid = (select jobid from cron.job where jobname = '{name}') "
                           f"and start_time > '{since}'::timestamptz order by runid limit 1")
    return rows[0] if rows else None


def tick_ended(names, since):
    runs = [tick_run(n, since) for n in names]
    return all(r and r["status"] in ("succeeded", "failed") for r in runs)


def cron():
    reset_scheduling()
    pg.psql(CONFIGURE_SQL)
    # The OAuth user's Stories database registered, as discovery leaves it:
    # the tick syncs it by id.
    pg.psql(f"insert into notion_databases (user_id, database_id, database_name, enabled) "
            f"values ('{U2}', '{D2S}', 'Stories', true)")
    jobid = jobid_of(JOB)
    jobid_again, scheduled_at = schedule_tick_jobs(active=True)
    t.eq(jobid_again, jobid, "schedule_notion_sync('* * * * *') replaces the job (same jobid)")
    t.eq(q1(f"select schedule from cron.job where jobname = '{JOB}'"), "* * * * *",
         "the job now runs every minute")

    now = time.time()
    h.note(f"waiting {60 - now % 60:.0f}s for the next minute (at {time.monotonic() - STARTED:.0f}s)")
    seen_job_sessions = []

    def sleep_job_seen():
        rows = h.json_rows(pg, "SELECT backend_type, application_name, query FROM pg_stat_activity "
                               "WHERE application_name = 'pg_cron'")
        seen_job_sessions.extend(r for r in rows if r not in seen_job_sessions)
        return any("pg_sleep" in r["query"] for r in rows)

    h.wait_for(sleep_job_seen, timeout=130, interval=0.2, what="the pg_cron tick (the sleep job)")
    t.ok(any(r["backend_type"] == "client backend" and r["query"] == "SELECT pg_sleep(6)"
             for r in seen_job_sessions),
         "while a job runs, application_name = 'pg_cron' finds its session (a client backend)",
         seen_job_sessions)
    t.ok(all(r["backend_type"] == "client backend" for r in seen_job_sessions),
         "... and only job sessions, never the launcher", seen_job_sessions)
    # Every run of this tick ends before its job goes (pg_cron marks the run of
    # a job removed meanwhile failed), then no other tick comes.
    h.wait_for(lambda: tick_ended([JOB, APP_USER_JOB, SLEEP_JOB], scheduled_at), timeout=30,
               interval=0.2, what="the tick's job runs to end")
    tick = tick_run(JOB, scheduled_at)
    # cron.unschedule(name) only finds the caller's own jobs; app_user's goes by id.
    pg.psql("select cron.unschedule(jobid) from cron.job where jobname like 'nsync-test-%'")
    t.eq(q1("select schedule_notion_sync()"), jobid, "schedule_notion_sync() restores the job")
    t.eq(pg.psql(f"SELECT jobid, jobname, schedule, command FROM cron.job WHERE jobname = '{JOB}'"),
         [[jobid, JOB, "*/15 * * * *", JOB_COMMAND]], "the job is back on */15 * * * *")

    rows = h.json_rows(pg, f"""SELECT jobid, runid, job_pid, database, username, command, status,
      return_message, start_time, end_time FROM cron.job_run_details
      WHERE jobid = (SELECT jobid FROM cron.job WHERE jobname = '{JOB}')
      ORDER BY start_time DESC LIMIT 10""")
    t.ok(len(rows) == 1 and rows[0]["runid"] == tick["runid"] and rows[0]["status"] == "succeeded"
         and rows[0]["command"] == JOB_COMMAND and rows[0]["database"] == pg.dbname
         and rows[0]["end_time"],
         "guide step 4: the sync job's run succeeded (command, database, end_time)", rows)
    tick_start = tick["start_time"]
    failed = pg.psql("SELECT return_message FROM cron.job_run_details WHERE status = 'failed' "
                     "ORDER BY start_time DESC")
    t.ok(len(failed) == 1 and "permission denied for function sync_all_users_notion_databases"
         in failed[0][0], "the guide's failed-run query shows the job run as a role without EXECUTE",
         failed)
    h.wait_for(lambda: int(q1(f"select count(*) from notion_sync_runs where queued_at >= "
                              f"'{tick_start}'::timestamptz")) >= 4, timeout=30,
               what="the tick's requests to reach the responder")
    wait_idle()
    runs = h.json_rows(pg, f"select user_id::text, database_id::text, trigger, status from "
                           f"notion_sync_runs where queued_at >= '{tick_start}'::timestamptz "
                           f"order by user_id, database_id")
    t.eq(sorted((r["user_id"], r["database_id"], r["trigger"], r["status"]) for r in runs),
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
    h.note(f"tick checked at {time.monotonic() - STARTED:.0f}s")


# ====================================================================== guide
def guide():
    reset_scheduling()
    # The user whose only database is disabled has given up its token: the
    # token-type query lists exactly the users a tick syncs.
    pg.psql(f"update user_settings set notion_token = null where user_id = '{U5}'")
    schedule_tick_jobs(active=False)  # the cron scenario's jobs, paused: no job runs meanwhile
    rows = h.json_rows(pg, "SELECT * FROM pg_extension WHERE extname = 'pg_cron'")
    t.ok(len(rows) == 1 and rows[0]["extversion"] == "1.4-1",
         "SELECT * FROM pg_extension WHERE extname = 'pg_cron' -> one row, version 1.4-1", rows)
    rows = h.json_rows(pg, "SELECT * FROM cron.job")
    t.eq(sorted((r["jobname"], r["schedule"]) for r in rows),
         sorted([(JOB, "* * * * *"), (PRUNE_JOB, "17 3 * * *"), (APP_USER_JOB, "* * * * *"),
                 (SLEEP_JOB, "* * * * *")]), "SELECT * FROM cron.job lists the jobs")
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


# ==================================================================== monitor
def pct(values, p):
    v = sorted(values)
    if not v:
        return None
    pos = p * (len(v) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def sync_and_wait(sql):
    """Run sql (calls of the sync functions returning request_id) and wait
    until pg_net has every answer and the responder every run."""
    for r in h.json_rows(pg, sql):
        net.wait_response(r["request_id"])
    wait_idle()


def monitor():
    reset_scheduling()
    pg.psql(CONFIGURE_SQL)
    # Real runs through pg_net: one success, and the rejected user's database
    # failing twice: one after the other (a run asked for while the first
    # still runs is skipped), and the second without the name (the same body
    # signed within the same second is a replay, answered as a duplicate).
    sync_and_wait(f"select sync_notion_database('{U1}', '{D1C}', 'Characters') as request_id "
                  f"union all select request_id from sync_all_notion_databases('{U4}')")
    sync_and_wait(f"select sync_notion_database('{U4}', '{D4}') as request_id")
    jobid = jobid_of(JOB)
    # Older runs, an old cron run and the sync job's last three ticks.
    pg.psql(f"""
    insert into notion_sync_runs (user_id, database_id, database_name, trigger, status, started_at,
        finished_at, pages_seen, inserted, updated) values
      ('{U1}', '{D1C}', 'Characters', 'pg_net', 'success', now() - interval '2 hours',
       now() - interval '2 hours' + interval '3.5 seconds', 7, 2, 1),
      ('{U1}', '{D1C}', 'Characters', 'pg_net', 'error', now() - interval '3 days',
       now() - interval '3 days' + interval '1 second', 0, 0, 0);
    insert into cron.job_run_details (jobid, job_pid, database, username, command, status,
        return_message, start_time, end_time)
      select {jobid}, 1, '{pg.dbname}', '{pg.superuser}', '{JOB_COMMAND}', 'succeeded', '1 row',
             now() - ago, now() - ago + interval '1 second'
        from unnest(array[interval '3 days', interval '3 minutes', interval '2 minutes',
                          interval '1 minute']) ago;
    """)
    all_runs = h.json_rows(pg, "select id, user_id::text, database_id::text, status, pages_seen, "
                               "inserted, updated, deleted, extract(epoch from now())::float8 as now,"
                               " extract(epoch from started_at)::float8 as s,"
                               " extract(epoch from finished_at)::float8 as f from notion_sync_runs")
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
    t.eq(q1("select count(*) from cron.job_run_details "
            "where start_time > now() - interval '10 minutes'"), "3",
         "the last three ticks' cron.job_run_details rows stay")


# ==================================================================== hygiene
def hygiene():
    reset_scheduling()  # keeps what the scenario before left
    if not any(LEFT.get("cron.job_run_details", [])) or "status=202" not in responder.log_text():
        h.note("hygiene: nothing scheduled has run yet, so first the cron scenario")
        cron()
        reset_scheduling()
    secrets = [SECRET] + TOKENS
    places = {place: "\n".join(texts) for place, texts in LEFT.items()}
    places["responder log"] = responder.log_text()
    places["postgres log"] = open(pg.log, errors="replace").read()
    for f in ("access.log", "error.log"):
        p = os.path.join(nginx.dir, f)
        places["nginx " + f] = open(p, errors="replace").read() if os.path.exists(p) else ""
    leaks = [(where, s[:10] + "...") for where, text in places.items() for s in secrets if s in text]
    t.eq(leaks, [], "no bearer secret or Notion token in cron.job, cron.job_run_details, "
                    "notion_sync_runs, net._http_response, net.http_request_queue or any log "
                    "(the server log holds pg_net's)")
    t.ok(len(places["cron.job_run_details"]) > 0 and "status=202" in places["responder log"],
         "the places checked are not empty")


scenario.run(t, [("nocron", nocron), ("job", job), ("config", config), ("pgnet", pgnet),
                 ("privs", privs), ("cron", cron), ("guide", guide), ("monitor", monitor),
                 ("hygiene", hygiene)], note=h.note)
