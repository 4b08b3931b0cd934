#!/usr/bin/env python3
"""test_security.py - trying to break in, through real nginx over HTTPS.

The stack is the production shape (issue 5): PostgreSQL 15 with the
migrations, the responder connecting as a login role that has only
notion_sync_service's rights, the Notion emulator with a small workspace
for two users A and B, notion-sync-fcgi under spawn-fcgi, and nginx with
the repository's nginx/notion-sync-locations.conf inside a TLS server
(fresh self-signed certificate, TLS 1.2/1.3 at http level, a plain-HTTP
server redirecting to HTTPS, a limit_req zone, the header-free access log
of nginx/notion-sync.conf). See harness.TlsNginx.

Checked: bearer authentication (wrong, case-changed, prefix, extension,
two secrets, rotation, scheme case), TLS versions, HTTP redirect, HSTS,
body limits, methods and Allow, unknown and internal paths, rate limiting,
row-level security for the application role, the service role's rights,
nothing granted to PUBLIC, the real pg_net calling the endpoint through the
same snippet (and what its tables grant and hold), hostile input in every
field, and that no secret or token lands in any log or table (pg_net's
included). Prints TAP; every process is stopped at the end (and that is
checked).

The TLS nginx (and a control nginx), the responder and the emulator are
shared; every scenario runs on its own PostgreSQL database, a copy of a
migrated template holding the two users' tokens (set by set-token), the
responder restarted onto it (scenario.run; all by default, or some by name:
test_security.py rls hostile). Scenarios that need both users' workspaces
synced copy the sync scenario's database (or, without it, one made once by
the CLI as the service login role). pg_net serves one database only, the cluster's first
(notion_sync): the pg_net scenario runs there (pg_net first, then the
migrations, as the README says).
  tls, sync, auth, plain_http, methods, body_size, paths, rate_limit, rls,
  service, pg_net, hostile   as their sections below;
  logs      every log, table and answer of the scenarios so far (run alone:
            after the sync scenario);
  stopped   after cleanup no process is left (run last: it stops everything).
"""

import collections
import http.client
import json
import os
import random
import re
import socket
import ssl
import subprocess
import time

import harness as h
import scenario
from client import is_error_body, json_body

SYNC = "/api/notion/sync-to-postgres"
RUNS = "/api/notion/sync-runs/"
# Mixed letter case, so that swapcase()/upper()/lower() are different strings.
NEW = "SecBearer-New-7c1f9a2b4eQz"
OLD = "SecBearer-Old-0d3e8b6a5cWx"
TOKEN_A = "secret_security_token_user_a_4f2c"
TOKEN_B = "secret_security_token_user_b_9e1d"
SECRETS = [NEW, OLD, TOKEN_A, TOKEN_B]
A = "0a5ec000-0000-4000-8000-00000000000a"
B = "0b5ec000-0000-4000-8000-00000000000b"
NOBODY = "0c5ec000-0000-4000-8000-00000000000c"  # in no table
SVC_LOGIN = "nsync_test_responder"   # login role in notion_sync_service
APP_LOGIN = "nsync_test_app"         # login role in notion_sync_app
# 500 requests/s per client, burst 20 (the snippet's): the sequential tests
# (a fresh TLS connection each, ~2 ms) stay under it, 60 requests sent at
# once over open connections do not (21 pass, the rest get 429).
RATE = "500r/s"
HSTS = "max-age=31536000; includeSubDomains"

SYNC_TABLES = ["notion_characters_sync", "notion_worlds_sync", "notion_stories_sync",
               "notion_chat_sessions_sync", "notion_other_sync"]
USER_TABLES = SYNC_TABLES + ["notion_databases", "notion_sync_runs", "notion_sync_state"]
ALL_USER_TABLES = USER_TABLES + ["user_settings"]

t = h.Tap()
start = time.monotonic()
# The real pg_net when installed (cli/build-pg-net.sh); NOTION_SYNC_PG_NET=required
# (.ci/run) makes its absence a failure, otherwise its checks are skipped.
PG_NET_MISSING = h.pg_net_missing()
if PG_NET_MISSING and os.environ.get("NOTION_SYNC_PG_NET") == "required":
    h.require_pg_net(t)
ALL = []  # every HTTPS answer: dict(label, method, path, status, headers, body, nginx_own)


# --- helpers -------------------------------------------------------------------------------------

def auth(secret=NEW, scheme="Bearer"):
    return {"Authorization": f"{scheme} {secret}", "Content-Type": "application/json"}


def call(method, path, body=None, headers=None, label=None, nginx_own=False, **kw):
    """One HTTPS request through nginx; recorded in ALL."""
    st, hd, js = nginx.request(method, path, body, headers, **kw)
    ALL.append(dict(label=label or f"{method} {path[:80]}", method=method, path=path, status=st,
                    headers=hd, body=js, nginx_own=nginx_own))
    return st, hd, js


def hsts_ok(hd):
    return hd is not None and hd.get_all("Strict-Transport-Security") == [HSTS]


def runs_count():
    return int(pg.scalar("select count(*) from notion_sync_runs"))


def emu_calls():
    return len(emu.requests())


LINE_RE = re.compile(r"request method=(\S*) path=(\S*) status=(\d+) ")


def responder_requests():
    """(method, path, status) of every request the responder logged."""
    return LINE_RE.findall(resp.log_text())


def lit(s):
    return "'" + s.replace("'", "''") + "'"


def sql_as(role, sql, claims=None, sub_legacy=None):
    """Run sql as role (trust auth on the socket), after setting the identity
    (request.jwt.claims to claims, a str). Returns (ok, rows, stderr)."""
    pre = ""
    if claims is not None:
        pre += f"set request.jwt.claims = {lit(claims)}; "
    if sub_legacy is not None:
        pre += f"set request.jwt.claim.sub = {lit(sub_legacy)}; "
    out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", "|",
                          "-h", pg.dir, "-U", role, "-d", pg.dbname, "-c", pre + sql],
                         capture_output=True, text=True)
    rows = [ln.split("|") for ln in out.stdout.splitlines() if ln != ""]
    return out.returncode == 0, rows, out.stderr.strip()


def as_a(sql):
    return sql_as(APP_LOGIN, sql, claims=json.dumps({"sub": A}))


def denied(res):
    ok, _, err = res
    return not ok and "permission denied" in err


def fingerprint(user=None):
    """Per table: row count and an md5 over every column and xmin (of one
    user's rows, or of all rows) - any write changes it."""
    parts = []
    for tbl in ALL_USER_TABLES:
        where = f"where user_id = '{user}'" if user else ""
        parts.append(f"select '{tbl}' as t, count(*) as n, coalesce(md5(string_agg("
                     f"x.xmin::text || ':' || row_to_json(x)::text, ',' order by "
                     f"row_to_json(x)::text)), '') as h from {tbl} x {where}")
    return [tuple(r) for r in pg.psql(" union all ".join(parts))]


def user_counts(user):
    return {tbl: int(pg.scalar(f"select count(*) from {tbl} where user_id = '{user}'"))
            for tbl in ALL_USER_TABLES}


def handshake(port, ctx):
    """(TLS version, ALPN protocol) of a handshake with 127.0.0.1:port, or
    (None, the error) when it fails."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1") as ss:
                return ss.version(), ss.selected_alpn_protocol()
    except (ssl.SSLError, ConnectionError, OSError) as exc:
        return None, str(exc)


def deep(d):
    """A request body nested d deep (the object itself is level 1)."""
    return ('{"user_id":"%s","x":%s%s}' % (NOBODY, "[" * (d - 1), "]" * (d - 1))).encode()


# --- pg_net's tables --------------------------------------------------------------------------
# Requests are signed (X-Notion-Sync-Signature, sql/006_signed_requests.sql):
# no long-lived secret enters pg_net's tables, and pg_net's grants to PUBLIC
# stay as pg_net made them.
PG_NET_TABLE_PRIVILEGES = ["DELETE", "INSERT", "REFERENCES", "SELECT", "TRIGGER", "TRUNCATE",
                           "UPDATE"]  # what pg_net grants PUBLIC on each table


def check_pg_net_grants():
    """What PUBLIC may do with pg_net's queue and responses."""
    got = pg.psql("select c.relname, a.privilege_type from pg_class c, aclexplode(c.relacl) a "
                  "where c.oid in ('net.http_request_queue'::regclass, "
                  "'net._http_response'::regclass) and a.grantee = 0 order by 1, 2")
    t.eq(got, [[tbl, p] for tbl in ("_http_response", "http_request_queue")
               for p in PG_NET_TABLE_PRIVILEGES],
         "pg_net's grants to PUBLIC on net.http_request_queue and net._http_response are left "
         "as pg_net made them")


def check_roles_pg_net_tables():
    """The application and service roles and pg_net's tables."""
    for who, run in (("application", as_a), ("service", svc)):
        for tbl in ("net.http_request_queue", "net._http_response"):
            res = run(f"select coalesce(string_agg(x::text, ''), '') from {tbl} x")
            ok, rows, err = res
            t.ok(ok and not any(s in str(rows) for s in SECRETS),
                 f"the {who} role may read {tbl} (pg_net's grant), which holds no secret",
                 (rows, err))



# --- the stack -----------------------------------------------------------------------------------
CLUSTER = h.Postgres(pg_net=not PG_NET_MISSING)   # its own database: pg_net's (see pg_net())
CLUSTER.psql(f"create role {SVC_LOGIN} login; create role {APP_LOGIN} login")
emu = h.Emulator()
TEMPLATE = scenario.clone_database(CLUSTER, "sec_template", template="template1")
h.migrate(TEMPLATE)
CLUSTER.psql(f"grant notion_sync_service to {SVC_LOGIN}; grant notion_sync_app to {APP_LOGIN}")
pg = TEMPLATE   # the running scenario's database, rebound per scenario
pgnet = None    # the PgNet of the pg_net scenario's database
SCENARIO_DBS = []


def env_of(db, secret=None):
    env = h.base_env(db, emu, DATABASE_URL=f"host={db.dir} dbname={db.dbname} user={SVC_LOGIN}")
    if secret is not None:
        env["NOTION_SYNC_SECRET"] = secret
    return env


svc_env = env_of(TEMPLATE)
DBS = {A: {}, B: {}}
for user, token, counts in ((A, TOKEN_A, (6, 3, 3, 2, 2)), (B, TOKEN_B, (4, 2, 2, 3, 2))):
    emu.control("POST", "/tokens", {"token": token, "integration_name": "sec-" + user[:4],
                                    "databases": []})
    for (title, kind), n in zip((("Characters", "Characters"), ("Worlds", "Worlds"),
                                 ("Stories", "Stories"), ("Chat Sessions", "Chat Sessions"),
                                 ("Lore", "generic")), counts):
        db = emu.control("POST", "/databases", {"title": title, "token": token})
        emu.control("POST", "/generate", {"data_source_id": db["data_source_ids"][0],
                                          "count": n, "seed": n * 7 + len(title), "kind": kind})
        DBS[user][title] = db["database_id"]
    # The tokens are set the way an operator does, as the service role.
    code, _, out, err = h.run_cli(["set-token", "--user", user], dict(svc_env, NOTION_TOKEN=token))
    t.ok(code == 0, f"set-token for user {user[:8]} as the service login role", out + err)
CHAR_A, CHAR_B = DBS[A]["Characters"], DBS[B]["Characters"]
# The template is complete (the tokens set): copies made ahead from now on.
h.keep_spares(TEMPLATE)

# The responder never serves a template (a template has no sessions): it starts
# on a copy, and each scenario restarts it onto its own.
resp = h.Responder(env_of(scenario.clone_database(TEMPLATE, "sec_idle"), f"{NEW},{OLD}"))
nginx = h.TlsNginx(resp.port, rate=RATE, pg_net_port=True)
# Negative control for the TLS versions (see tls()), and one more nginx whose logs
# and processes the logs and stopped scenarios look at.
ctl = h.TlsNginx(resp.port, rate=RATE, ssl_protocols="TLSv1 TLSv1.1 TLSv1.2 TLSv1.3",
                 ssl_ciphers="DEFAULT:@SECLEVEL=0")
h.note(f"stack up in {time.monotonic() - start:.1f}s: {nginx.url} (plain {nginx.http_url}), "
       f"responder on 127.0.0.1:{resp.port}")
svc = lambda sql: sql_as(SVC_LOGIN, sql)  # noqa: E731
RUN_ANY = 1  # a run id for paths nginx answers itself (redirect, 405): no run needed
_SYNCED = {}


def synced_template():
    """A database in which both users' workspaces are synced: the sync scenario's
    (once the responder has left it), or, without it, a copy of the template
    synced by the CLI as the service login role."""
    if "db" not in _SYNCED:
        db = scenario.clone_database(TEMPLATE, "sec_synced")
        env = env_of(db)
        for user in (A, B):
            for extra in ([], ["--database", DBS[user]["Lore"]]):
                code, _, out, err = h.run_cli(["sync", "--user", user] + extra, env)
                if code != 0:
                    raise RuntimeError(f"sync of {user} {extra} for the synced template: "
                                       f"{out}{err}")
        _SYNCED["db"] = db
    return _SYNCED["db"]


def one_sync_of_a():
    """Setup (not recorded): user A's Characters synced once; its run id."""
    st, _, js = nginx.request("POST", SYNC, json_body({"user_id": A, "database_id": CHAR_A}), auth(),
                              timeout=60)
    if st != 200:
        raise RuntimeError(f"the setup sync of A's Characters failed: {st} {js}")
    return int(pg.scalar(f"select max(id) from notion_sync_runs where user_id = '{A}' "
                         f"and status = 'success'"))


def on_its_own_database(name, fn, secret=NEW, synced=False, responder=True):
    """fn on a fresh copy of the template (or of the synced template), the
    responder restarted onto it with NOTION_SYNC_SECRET=secret."""
    def run():
        global pg
        source = synced_template() if synced else TEMPLATE
        pg = scenario.clone_database(source, f"sec_{name}")
        SCENARIO_DBS.append(pg)
        if responder:
            h.respawn(resp, env_of(pg, secret))
        fn()
    return name, run


one_db = json_body({"user_id": A, "database_id": CHAR_A})


# --- TLS -----------------------------------------------------------------------------------------
def tls():
    for ver, name in ((ssl.TLSVersion.TLSv1, "TLS 1.0"), (ssl.TLSVersion.TLSv1_1, "TLS 1.1")):
        got = handshake(nginx.https_port, nginx.ssl_context(minimum=ver, maximum=ver,
                                                            ciphers="DEFAULT:@SECLEVEL=0"))
        t.ok(got[0] is None, f"{name} handshake refused", got)
    for ver, name, want in ((ssl.TLSVersion.TLSv1_2, "TLS 1.2", "TLSv1.2"),
                            (ssl.TLSVersion.TLSv1_3, "TLS 1.3", "TLSv1.3")):
        ctx = nginx.ssl_context(minimum=ver, maximum=ver)
        got = handshake(nginx.https_port, ctx)
        st, _, js = call("GET", "/healthz", context=ctx, label=f"healthz over {name}")
        t.ok(got[0] == want and st == 200, f"{name} handshake succeeds and serves /healthz", (got, st))
    got = handshake(nginx.https_port, nginx.ssl_context(alpn=["h2", "http/1.1"]))
    t.eq(got[1], "h2", "ALPN offers HTTP/2 (listen ... ssl http2)")
    # Negative control: the same probe against an nginx that enables 1.0/1.1 must
    # succeed, or the refusals above prove nothing.
    got = [handshake(ctl.https_port,
                     ctl.ssl_context(minimum=v, maximum=v, ciphers="DEFAULT:@SECLEVEL=0"))[0]
           for v in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1)]
    t.eq(got, ["TLSv1", "TLSv1.1"], "control: the probe does complete TLS 1.0/1.1 with a server that "
                                    "enables them (so the refusals are nginx's configuration)")

# --- health and the first syncs (as the least-privilege role) ------------------------------------
def sync():
    st, hd, js = call("GET", "/healthz")
    t.ok(st == 200 and isinstance(js, dict) and js.get("status") == "ok" and hsts_ok(hd),
         "GET /healthz without auth -> 200 {status: ok} with HSTS", (st, js, hd and dict(hd)))

    for user in (A, B):
        st, hd, js = call("POST", SYNC, json_body({"user_id": user}), auth(),
                          f"sync every database of {user[:8]}")
        res = js.get("results") if isinstance(js, dict) else None
        t.ok(st == 200 and js.get("success") is True and isinstance(res, list) and len(res) == 4
             and all(r.get("status") == "success" for r in res),
             f"user {user[:8]}: POST with the bearer syncs its 4 databases -> 200", (st, js))
        st, hd, js = call("POST", SYNC, json_body({"user_id": user, "database_id": DBS[user]["Lore"]}),
                          auth(), f"sync the generic database of {user[:8]}")
        t.ok(st == 200 and isinstance(js, dict) and js.get("success") is True
             and js.get("table") == "notion_other_sync" and hsts_ok(hd),
             f"user {user[:8]}: a database of no known kind syncs into notion_other_sync, HSTS on 200",
             (st, js))
    cA, cB = user_counts(A), user_counts(B)
    if t.ok(all(cA[x] > 0 and cB[x] > 0 for x in ALL_USER_TABLES),
            "both users have rows in every table under row-level security", (cA, cB)):
        _SYNCED.setdefault("db", pg)   # the synced template of rls and hostile
    t.eq(cA["notion_characters_sync"] + cB["notion_characters_sync"], 10, "10 character rows synced")
    who = pg.psql("select usename, count(*) from pg_stat_activity where datname = current_database() "
                  "and backend_type = 'client backend' and pid <> pg_backend_pid() "
                  "group by 1 order by 1")
    t.ok([r[0] for r in who] == [SVC_LOGIN],
         f"the responder's connections are all {SVC_LOGIN} (notion_sync_service), none superuser", who)
    RUN_A = int(pg.scalar(f"select max(id) from notion_sync_runs where user_id = '{A}' "
                          f"and status = 'success'"))

# --- authentication ------------------------------------------------------------------------------
def authentication():
    RUN_A = one_sync_of_a()
    BAD = [
        ("no Authorization header", {"Content-Type": "application/json"}, SYNC),
        ("a wrong secret", auth("SecBearer-New-0000000000Qz"), SYNC),
        ("the secret with its letter case swapped", auth(NEW.swapcase()), SYNC),
        ("the secret in upper case", auth(NEW.upper()), SYNC),
        ("the secret in lower case", auth(NEW.lower()), SYNC),
        ("a prefix of the secret (all but the last character)", auth(NEW[:-1]), SYNC),
        ("a short prefix of the secret", auth(NEW[:3]), SYNC),
        ("the secret plus one character", auth(NEW + "0"), SYNC),
        ("the secret plus a space and more", auth(NEW + " x"), SYNC),
        ('"Bearer" with two secrets', auth(f"{NEW} {OLD}"), SYNC),
        ('"Bearer" with the secret twice', auth(f"{NEW} {NEW}"), SYNC),
        ('"Bearer" with both secrets comma-joined', auth(f"{NEW},{OLD}"), SYNC),
        ("an empty bearer", {"Authorization": "Bearer "}, SYNC),
        ("the scheme word alone", {"Authorization": "Bearer"}, SYNC),
        ("no space after the scheme word", {"Authorization": f"Bearer{NEW}"}, SYNC),
        ("the Basic scheme", {"Authorization": f"Basic {NEW}"}, SYNC),
        ("the secret without a scheme", {"Authorization": NEW}, SYNC),
        ("the secret in other headers", {"X-Authorization": f"Bearer {NEW}", "X-Api-Key": NEW}, SYNC),
        ("the secret in the query string", {}, f"{SYNC}?access_token={NEW}"),
    ]
    first_401 = None
    for desc, hdrs, path in BAD:
        runs0, calls0, seen0 = runs_count(), emu_calls(), len(responder_requests())
        st, hd, js = call("POST", path, one_db, hdrs, "401: " + desc)
        seen = [(p, s) for _, p, s in responder_requests()[seen0:]]
        first_401 = first_401 or hd
        www = hd.get_all("WWW-Authenticate") or []
        t.ok(st == 401 and is_error_body(js, "unauthorized") and www and all(w == "Bearer" for w in www)
             and hsts_ok(hd), f"{desc} -> 401 JSON unauthorized, WWW-Authenticate: Bearer, HSTS",
             (st, js, dict(hd)))
        t.ok((runs_count(), emu_calls()) == (runs0, calls0) and seen == [("/_notion_sync_auth", "401")],
             f"{desc}: nginx's auth subrequest said 401, the handler never saw it; "
             "no run, no Notion call",
             (runs_count() - runs0, emu_calls() - calls0, seen))
    t.eq(first_401.get_all("WWW-Authenticate"), ["Bearer"],
         "a 401 carries one WWW-Authenticate challenge (not the same one twice)")

    for desc, hdrs in (("no Authorization header", {}), ("a wrong secret", auth("nope")),
                       ("the secret with its letter case swapped", auth(NEW.swapcase()))):
        st, hd, js = call("GET", f"{RUNS}{RUN_A}", None, hdrs, f"runs 401: {desc}")
        t.ok(st == 401 and is_error_body(js, "unauthorized") and hsts_ok(hd),
             f"GET {RUNS}{{id}} with {desc} -> 401 JSON, HSTS", (st, js))
    st, hd, js = call("GET", f"{RUNS}{RUN_A}", None, auth())
    run = js.get("run") if isinstance(js, dict) else None
    t.ok(st == 200 and js.get("success") is True and isinstance(run, dict)
         and str(run.get("run_id")) == str(RUN_A) and run.get("user_id") == A
         and run.get("status") == "success",
         f"GET {RUNS}{{id}} with the bearer -> 200 and that run (made by a sync)", (st, js))

    for scheme in ("bearer", "BEARER", "bEaReR"):
        runs0, calls0, seen0 = runs_count(), emu_calls(), len(responder_requests())
        st, hd, js = call("POST", SYNC, one_db, auth(NEW, scheme), f"scheme {scheme}")
        seen = [(p, s) for _, p, s in responder_requests()[seen0:]]
        t.ok(st == 200 and isinstance(js, dict) and js.get("success") is True
             and runs_count() == runs0 + 1 and emu_calls() > calls0,
             f'scheme word "{scheme}" is accepted (RFC 7235): 200, a run, Notion called', (st, js))
        t.eq(seen, [("/_notion_sync_auth", "204"), (SYNC, "200")],
             f'"{scheme}": nginx asked the bearer check (204) before passing the request on')

    # Rotation: "new,old" accepts both; after a restart with only "new", old is refused.
    st, _, js = call("POST", SYNC, one_db, auth(OLD), "old secret while rotating")
    t.ok(st == 200 and isinstance(js, dict) and js.get("success") is True,
         'NOTION_SYNC_SECRET="new,old": the old secret syncs -> 200', (st, js))
    st, _, js = call("POST", SYNC, one_db, auth(NEW), "new secret while rotating")
    t.ok(st == 200 and isinstance(js, dict) and js.get("success") is True,
         'NOTION_SYNC_SECRET="new,old": the new secret syncs -> 200', (st, js))
    h.stop_responder(resp)
    runs0 = runs_count()
    st, hd, js = call("POST", SYNC, one_db, auth(NEW), "responder down")
    t.ok(st == 502 and is_error_body(js, "responder_unavailable") and hsts_ok(hd),
         "responder stopped: the bearer check fails closed -> 502 JSON (nothing reaches a handler)",
         (st, js))
    h.respawn(resp, env_of(pg, NEW))
    runs0, calls0 = runs_count(), emu_calls()
    st, hd, js = call("POST", SYNC, one_db, auth(OLD), "old secret after the restart")
    t.ok(st == 401 and is_error_body(js, "unauthorized"),
         'restarted with NOTION_SYNC_SECRET="new": the old secret -> 401', (st, js))
    t.eq((runs_count(), emu_calls()), (runs0, calls0), "... no run recorded, Notion not called")
    st, hd, js = call("POST", SYNC, one_db, auth(NEW), "new secret after the restart")
    t.ok(st == 200 and isinstance(js, dict) and js.get("success") is True,
         "restarted: the new secret -> 200", (st, js))

# --- plain HTTP: redirected, never served --------------------------------------------------------
def plain_http():
    RUN_A = RUN_ANY
    seen0, runs0 = len(responder_requests()), runs_count()
    for method, path, body, hdrs in (("GET", "/healthz", None, {}),
                                     ("POST", SYNC, one_db, auth()),
                                     ("GET", f"{RUNS}{RUN_A}", None, auth()),
                                     ("GET", "/api/nope?x=1&y=%27", None, {})):
        st, hd, js = h.https(method, nginx.http_url + path, body, hdrs, timeout=30)
        want = f"https://127.0.0.1:{nginx.https_port}{path}"
        t.ok(st == 301 and hd.get("Location") == want,
             f"plain HTTP {method} {path} -> 301 to https://<host>:<TLS port>{path}",
             (st, hd.get("Location"), want))
    t.eq((len(responder_requests()), runs_count()), (seen0, runs0),
         "plain HTTP requests never reach the responder (no log line, no run)")

# --- methods: 405 with Allow ---------------------------------------------------------------------
def methods():
    RUN_A = RUN_ANY
    ROUTE_METHODS = {SYNC: {"GET", "POST"}, "/healthz": {"GET", "HEAD"}, f"{RUNS}{RUN_A}": {"GET"}}
    seen0 = len(responder_requests())
    for path, methods in ((SYNC, ("PUT", "DELETE", "PATCH", "OPTIONS")),
                          ("/healthz", ("POST", "PUT", "DELETE")),
                          (f"{RUNS}{RUN_A}", ("POST", "PUT", "DELETE"))):
        for method in methods:
            st, hd, js = call(method, path, one_db if method != "DELETE" else None, auth())
            allow = hd.get("Allow") or ""
            t.ok(st == 405 and is_error_body(js, "method_not_allowed") and allow and hsts_ok(hd),
                 f"{method} {path} -> 405 JSON with an Allow header and HSTS", (st, js, dict(hd)))
            allowed = {m.strip() for m in allow.split(",") if m.strip()}
            t.eq(allowed, ROUTE_METHODS[path],
                 f"{method} {path}: Allow names exactly the methods {path} accepts")
    t.eq(len(responder_requests()), seen0, "wrong methods are refused by nginx (responder not asked)")

# --- body size -----------------------------------------------------------------------------------
def body_size():
    exact = json_body({"user_id": A, "database_id": CHAR_A})
    exact += b" " * (16 * 1024 - len(exact))
    st, _, js = call("POST", SYNC, exact, auth(), "body of exactly 16 KiB")
    t.ok(st == 200 and isinstance(js, dict) and js.get("success") is True,
         "a body of exactly 16 KiB is passed on -> 200 sync", (st, js))
    runs0, calls0 = runs_count(), emu_calls()
    for desc, body, hdrs, kw in (
            ("16 KiB + 1 byte", exact + b" ", auth(), {}),
            ("100 KB, no Authorization", b"{" + b" " * 100000 + b"}", {}, {}),
            ("20 KiB sent chunked", [exact, b" " * 4096], auth(), {"encode_chunked": True})):
        st, hd, js = call("POST", SYNC, body, hdrs, f"413: {desc}", **kw)
        t.ok(st == 413 and is_error_body(js, "payload_too_large") and hsts_ok(hd),
             f"a body of {desc} -> 413 JSON payload_too_large", (st, js))
    t.eq((runs_count(), emu_calls()), (runs0, calls0), "oversized bodies: no run, Notion not called")

# --- unknown and internal paths: 404 -------------------------------------------------------------
def paths():
    seen0 = len(responder_requests())
    for path in ("/", "/api/nope", f"{SYNC}/extra", f"{SYNC}/", "/API/notion/sync-to-postgres",
                 f"{SYNC};user_id=x", f"{SYNC}%3Fuser_id=x", f"{RUNS}", f"{RUNS}abc", f"{RUNS}-1",
                 f"{RUNS}1%20or%201=1", f"{RUNS}{'9' * 19}", "/healthz/x", "/etc/passwd",
                 "/api/notion/../../etc/passwd", "/_notion_sync_auth", "/_notion_sync_auth/",
                 "/%5Fnotion_sync_auth", "//_notion_sync_auth", "/api/../_notion_sync_auth",
                 "/_notion_sync_auth?x=1"):
        internal = "_notion_sync_auth" in path.replace("%5F", "_")
        for method in (("GET", "POST") if internal else ("GET",)):
            st, hd, js = call(method, path, b"{}" if method == "POST" else None, auth())
            t.ok(st == 404 and is_error_body(js, "not_found") and hsts_ok(hd),
                 f"{method} {path} (with a valid bearer) -> 404 JSON, HSTS", (st, js))
    t.eq(len(responder_requests()), seen0,
         "none of them reached the responder (the auth location is internal-only)")

# --- rate limiting -------------------------------------------------------------------------------
def rate_limit():
    RUN_A = one_sync_of_a()
    # 60 requests at once from 127.0.0.2 over connections opened beforehand; a
    # spoofed X-Forwarded-For does not change the client key.
    ctx = nginx.ssl_context()
    conns = []
    for i in range(60):
        c = http.client.HTTPSConnection("127.0.0.1", nginx.https_port, context=ctx, timeout=30,
                                        source_address=("127.0.0.2", 0))
        c.connect()
        conns.append(c)
    for i, c in enumerate(conns):
        c.request("GET", f"{RUNS}{RUN_A}", headers=dict(auth(), **{
            "X-Forwarded-For": f"10.{i}.{random.randint(0, 255)}.1", "X-Real-IP": f"10.9.9.{i}"}))
    burst = []
    for c in conns:
        r = c.getresponse()
        raw = r.read()
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        burst.append((r.status, r.headers, body))
        ALL.append(dict(label="burst", method="GET", path=RUNS, status=r.status, headers=r.headers,
                        body=body, nginx_own=False))
        c.close()
    by_status = collections.Counter(s for s, _, _ in burst)
    h.note(f"burst of 60: {dict(by_status)}")
    t.ok(set(by_status) <= {200, 429} and by_status[429] >= 1 and by_status[200] >= 21,
         "a burst of 60 parallel requests: at least 21 pass (burst=20), the rest get 429",
         dict(by_status))
    limited = [(hd, js) for s, hd, js in burst if s == 429]
    t.ok(limited and all(is_error_body(js, "rate_limited") and hd.get("Retry-After") and hsts_ok(hd)
                         for hd, js in limited),
         "every 429 is JSON rate_limited with Retry-After and HSTS", limited[:1])
    st, _, _ = call("GET", f"{RUNS}{RUN_A}", None, auth(), "other client right after the burst")
    t.eq(st, 200, "another client (127.0.0.1) is not limited by 127.0.0.2's burst")
    time.sleep(0.3)
    st, _, _ = h.https("GET", nginx.url + f"{RUNS}{RUN_A}", None, auth(), context=ctx,
                       source_address=("127.0.0.2", 0))
    t.eq(st, 200, "127.0.0.2 is served again once the rate has drained the burst")

# --- row-level security: the application role as user A ------------------------------------------
def rls():
    # A failed run of B, so that notion_sync_last_errors has a row of B's.
    pg.psql(f"insert into notion_sync_runs (user_id, database_id, database_name, status, "
            f"error_message, finished_at) values ('{B}', '{CHAR_B}', 'Characters', 'error', "
            f"'test: B failed', now())")
    cA, cB = user_counts(A), user_counts(B)
    before_b, before_a = fingerprint(B), fingerprint(A)
    for tbl in USER_TABLES:
        ok, rows, err = as_a(f"select count(*), count(*) filter (where user_id = '{B}'), "
                             f"count(distinct user_id) from {tbl}")
        t.ok(ok and rows == [[str(cA[tbl]), "0", "1"]] and cB[tbl] > 0,
             f"as A: {tbl} shows exactly A's {cA[tbl]} rows, none of B's {cB[tbl]}", (rows, err))
    for view in ("notion_sync_run_stats", "notion_sync_last_errors"):
        su = int(pg.scalar(f"select count(*) from {view} where user_id = '{B}'"))
        ok, rows, err = as_a(f"select count(*) from {view} where user_id <> '{A}'")
        t.ok(ok and rows == [["0"]] and su > 0,
             f"as A: the view {view} shows none of B's rows (superuser sees {su})", (rows, err))
    ok, rows, err = as_a("select user_id from user_settings")
    t.ok(ok and rows == [[A]], "as A: user_settings shows only A's user_id", (rows, err))
    for col in ("notion_token", "notion_access_token", "*"):
        t.ok(denied(as_a(f"select {col} from user_settings where user_id = '{A}'")),
             f"as A: reading {col} of A's own user_settings row is denied")
    t.ok(denied(as_a("select count(user_id) from user_settings where notion_token like 'secret%'")),
         "as A: filtering on notion_token (a way to guess it) is denied too")
    t.ok(denied(as_a("select * from notion_sync_settings")), "as A: notion_sync_settings is denied")

    for tbl, col in (("notion_characters_sync", "name"), ("notion_worlds_sync", "name"),
                     ("notion_stories_sync", "title"), ("notion_chat_sessions_sync", "title"),
                     ("notion_other_sync", "title"), ("notion_databases", "database_name")):
        ok, rows, err = as_a(f"with u as (update {tbl} set {col} = 'pwned' where user_id = '{B}' "
                             f"returning 1) select count(*) from u")
        ok2, rows2, err2 = as_a(f"with d as (delete from {tbl} where user_id = '{B}' returning 1) "
                                f"select count(*) from d")
        t.ok(ok and rows == [["0"]] and ok2 and rows2 == [["0"]],
             f"as A: updating / deleting B's rows in {tbl} touches 0 rows", (rows, err, rows2, err2))
    for tbl in ("notion_sync_runs", "notion_sync_state"):
        t.ok(denied(as_a(f"update {tbl} set user_id = user_id where user_id = '{B}'"))
             and denied(as_a(f"delete from {tbl} where user_id = '{B}'")),
             f"as A: {tbl} is read-only (update/delete denied)")
    ok, rows, err = as_a(f"with u as (update user_settings set notion_token = 'pwned' "
                         f"where user_id = '{B}' returning user_id) select count(*) from u")
    t.ok(ok and rows == [["0"]], "as A: overwriting B's token touches 0 rows", (rows, err))
    t.ok(denied(as_a(f"delete from user_settings where user_id = '{B}'")),
         "as A: deleting from user_settings is denied")
    ok, _, err = as_a(f"insert into notion_characters_sync (user_id, notion_page_id, "
                      f"notion_database_id, properties, content_hash) values "
                      f"('{B}', gen_random_uuid(), '{CHAR_B}', '{{}}', 'x')")
    t.ok(not ok and "row-level security" in err, "as A: inserting a row owned by B is refused", err)
    ok, _, err = as_a(f"update notion_characters_sync set user_id = '{B}' where user_id = '{A}'")
    t.ok(not ok and "row-level security" in err, "as A: handing A's rows over to B is refused", err)
    ok, _, err = as_a(f"insert into user_settings (user_id, notion_token) values ('{NOBODY}', 'x')")
    t.ok(not ok and "row-level security" in err, "as A: creating another user's settings is refused",
         err)
    t.eq(fingerprint(B), before_b, "superuser: every row of B (all 9 tables) is unchanged")
    t.eq(fingerprint(A), before_a, "superuser: every row of A is unchanged too")

    count_all = " union all ".join(f"select '{x}', count(user_id) from {x}" for x in ALL_USER_TABLES)
    for desc, claims in (("no identity", None), ("an empty claims setting", ""),
                         ("claims that are not JSON", "not json"),
                         ('a garbage "sub"', json.dumps({"sub": "garbage"})),
                         ('an SQL-looking "sub"', json.dumps({"sub": "' or '1'='1"})),
                         ('"sub" = A\'s id plus SQL', json.dumps({"sub": A + "' or '1'='1"})),
                         ('a numeric "sub"', json.dumps({"sub": 12345})),
                         ('"sub" as an array holding A', json.dumps({"sub": [A]})),
                         ('the nil UUID as "sub"',
                          json.dumps({"sub": "00000000-0000-0000-0000-000000000000"}))):
        ok, rows, err = sql_as(APP_LOGIN, count_all, claims=claims)
        t.ok(ok and len(rows) == 9 and all(r[1] == "0" for r in rows),
             f"as the app role with {desc}: every table shows 0 rows", (rows, err))
    ok, rows, err = sql_as(APP_LOGIN, count_all, sub_legacy=A)
    t.ok(ok and {r[0]: int(r[1]) for r in rows} == cA,
         "as the app role with the legacy request.jwt.claim.sub = A: exactly A's rows", (rows, err))
    # auth.uid() (Supabase) wins over the claims setting when it exists.
    pg.psql("create schema auth; create function auth.uid() returns uuid language sql stable as "
            "$$ select nullif(current_setting('test.auth_uid', true), '')::uuid $$; "
            "grant usage on schema auth to notion_sync_app; "
            "grant execute on function auth.uid() to notion_sync_app")
    ok, rows, err = sql_as(APP_LOGIN, f"set test.auth_uid = '{A}'; {count_all}",
                           claims=json.dumps({"sub": B}))
    t.ok(ok and {r[0]: int(r[1]) for r in rows} == cA,
         "with auth.uid() = A and claims naming B: exactly A's rows (auth.uid() wins)", (rows, err))
    pg.psql("drop schema auth cascade")
    ok, rows, _ = sql_as(APP_LOGIN,
                         f"select count(*) from notion_characters_sync where user_id = '{B}'",
                         claims=json.dumps({"sub": B}))
    h.note("design limit, not asserted: request.jwt.claims is an ordinary setting, so a session of the "
           f"app role that can run raw SQL picks any identity (claims naming B -> {rows} of B's rows); "
           "RLS assumes PostgREST/Supabase set it from a verified JWT.")

# --- the service role's rights, and PUBLIC -------------------------------------------------------
def service():
    ok, rows, err = svc("select count(*) from user_settings where notion_token is not null")
    t.ok(ok and rows == [["2"]], "the service role reads every user's token (the sync needs them)",
         (rows, err))
    t.ok(denied(svc("select * from notion_sync_settings")),
         "the service role cannot read notion_sync_settings")
    for desc, sql in (("create table x() in public", "create table public.nsync_probe ()"),
                      ("create a table unqualified", "create table nsync_probe ()"),
                      ("create a schema", "create schema nsync_probe"),
                      ("create a function in public",
                       "create function public.nsync_probe() returns int language sql as 'select 1'"),
                      ("alter a table", "alter table notion_sync_runs add column x int"),
                      ("drop a table", "drop table user_settings"),
                      ("truncate a table", "truncate notion_sync_runs"),
                      ("call set_sync_api_secret()", "select set_sync_api_secret('x')"),
                      ("call notion_sync_endpoint()", "select notion_sync_endpoint()"),
                      ("call sync_all_users_notion_databases()",
                       "select sync_all_users_notion_databases()")):
        ok, _, err = svc(sql)
        t.ok(not ok and ("permission denied" in err or "must be owner" in err),
             f"the service role cannot {desc}", err)
    t.eq(pg.psql(f"select rolname, rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolreplication "
                 f"from pg_roles where rolname in ('notion_sync_service', 'notion_sync_app', "
                 f"'{SVC_LOGIN}', '{APP_LOGIN}') order by 1"),
         [[r, "f", "f", "f", "f", "f"] for r in sorted(["notion_sync_service", "notion_sync_app",
                                                         SVC_LOGIN, APP_LOGIN])],
         "neither role (nor its login) is superuser, BYPASSRLS, CREATEDB, CREATEROLE or REPLICATION")
    t.eq(pg.psql("select table_name, privilege_type from information_schema.role_table_grants "
                 "where grantee = 'PUBLIC' and table_schema = 'public' order by 1, 2"), [],
         "no table or view of ours grants anything to PUBLIC")
    t.eq(pg.psql("select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace, "
                 "aclexplode(c.relacl) a where n.nspname = 'public' and a.grantee = 0 order by 1"), [],
         "no table, view or sequence has an ACL entry for PUBLIC")
    public_fns = [r[0] for r in pg.psql(
        "select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
        "where n.nspname = 'public' and (p.proacl is null or exists (select 1 from "
        "aclexplode(p.proacl) a where a.grantee = 0))"
        # Extensions' own functions (pgcrypto's hmac, digest, ...) are not ours.
        " and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass"
        "   and d.objid = p.oid and d.deptype = 'e') order by 1")]
    t.ok(set(public_fns) <= {"notion_sync_current_user_id"},
         "no function of ours is executable by PUBLIC (except notion_sync_current_user_id)", public_fns)
    t.eq(pg.psql("select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
                 "where n.nspname = 'public' and p.prosecdef and not exists (select 1 from "
                 "unnest(coalesce(p.proconfig, '{}')) c where c like 'search_path=%') order by 1"), [],
         "every SECURITY DEFINER function pins search_path")
    t.eq(pg.psql("select a.privilege_type from pg_namespace n, aclexplode(n.nspacl) a "
                 "where n.nspname = 'public' and a.grantee = 0 and a.privilege_type <> 'USAGE'"), [],
         "PUBLIC may not CREATE in schema public (a pinned search_path naming it stays safe)")

# --- pg_net, the way the database host calls the endpoint ---------------------------------------
def pg_net():
    """In pg_net's own database (the cluster's first): pg_net, then the migrations,
    the users' tokens (set-token), the responder restarted onto it."""
    global pg, pgnet
    if PG_NET_MISSING:
        t.skip(PG_NET_MISSING, 7)
        return
    pg = CLUSTER
    SCENARIO_DBS.append(pg)
    pgnet = h.PgNet(pg)
    h.migrate(pg)
    for user, token in ((A, TOKEN_A), (B, TOKEN_B)):
        code, _, out, err = h.run_cli(["set-token", "--user", user],
                                      dict(env_of(pg), NOTION_TOKEN=token))
        if code != 0:
            raise RuntimeError(f"set-token {user}: {out}{err}")
    h.respawn(resp, env_of(pg, NEW))
    # Through the repository's snippet, on nginx's plain loopback server: pg_net's
    # libcurl trusts only the system CA store, not the self-signed certificate.
    check_pg_net_grants()
    pg.psql(f"select set_sync_api_url('{nginx.pg_net_url}'); select set_sync_api_secret('{NEW}')")
    runs0 = runs_count()
    rid = int(pg.scalar(f"select sync_notion_database('{A}', '{CHAR_A}', 'Characters')"))
    row = pgnet.wait_response(rid, timeout=30)
    t.ok(row.get("status_code") == 202 and row.get("timed_out") is False,
         "pg_net's request passes nginx's auth_request and the responder: 202", row)
    h.wait_for(lambda: pg.scalar(f"select count(*) from notion_sync_runs where id > {runs0} and "
                                 "status in ('success', 'error')") == "1",
               timeout=60, what="the run pg_net queued")
    t.eq(pg.psql(f"select user_id, database_id, trigger, status from notion_sync_runs "
                 f"where id > {runs0}"), [[A, CHAR_A, "pg_net", "success"]],
         "... and its run: user A's Characters, trigger pg_net, success")
    check_roles_pg_net_tables()
    # The secret stays in the owner-only notion_sync_settings by design; it
    # goes again so that the scan of every table below stays strict.
    pg.psql("delete from notion_sync_settings where name = 'api_secret'")

# --- hostile input through nginx -> responder ----------------------------------------------------
def hostile():
    RUN_A = int(pg.scalar(f"select max(id) from notion_sync_runs where user_id = '{A}' "
                          f"and status = 'success'"))
    # A valid sync with a Proxy header (httpoxy): FastCGI params are no environment.
    calls0 = emu_calls()
    st, _, js = call("POST", SYNC, one_db, dict(auth(), Proxy="http://127.0.0.1:9/"), "httpoxy")
    t.ok(st == 200 and isinstance(js, dict) and js.get("success") is True and emu_calls() > calls0,
         "a Proxy: header does not redirect the responder's Notion calls (sync -> 200)", (st, js))
    # A's bearer-authenticated caller naming B's database gets nothing of B's.
    fp_b = fingerprint(B)
    st, _, js = call("POST", SYNC, json_body({"user_id": A, "database_id": CHAR_B}), auth(),
                     "A asks for B's db")
    t.ok(st == 404 and is_error_body(js, "not_found"),
         "user A + B's database_id -> 404 (A's token cannot see it)", (st, js))
    t.ok(pg.scalar(f"select count(*) from notion_characters_sync where user_id = '{A}' "
                   f"and notion_database_id = '{CHAR_B}'") == "0" and fingerprint(B) == fp_b,
         "... nothing of B's database is copied to A, B's rows unchanged")

    snap, runs0, calls0 = fingerprint(), runs_count(), emu_calls()
    base = {"user_id": A, "database_id": CHAR_A, "database_name": "Characters"}
    SQLISH = ["'; drop table user_settings; --", "x' or '1'='1",
              "1; delete from notion_characters_sync", "$$; select pg_sleep(10); $$",
              "\\'; copy user_settings to '/tmp/x'; --"]
    TRAVERSAL = ["../../etc/passwd", "..%2f..%2f..%2fetc%2fpasswd", "/etc/passwd\u0000",
                 "....//....//etc/passwd"]
    for field in ("user_id", "database_id", "database_name"):
        for v in SQLISH + TRAVERSAL + ["A" * 10240, "\ud800", "Ｃharacters", "\u202eCharacters",
                                       "Characters\n" + "x", "０a5ec000-0000-4000-8000-00000000000a"]:
            body = json.dumps(dict(base, **{field: v})).encode()
            st, hd, js = call("POST", SYNC, body, auth(), f"hostile {field}")
            t.ok(st == 400 and is_error_body(js, "invalid_request") and field in js["error"]["message"],
                 f"{field} = {v[:40]!r}{'...' if len(v) > 40 else ''} ({len(v)} chars) -> 400 naming "
                 f"{field}", (st, js))
        for v in ({"$ne": ""}, [A], 1e308, True):
            st, _, js = call("POST", SYNC, json_body(dict(base, **{field: v})), auth(),
                             f"hostile {field} type")
            t.ok(st == 400 and is_error_body(js, "invalid_request") and field in js["error"]["message"],
                 f"{field} = {json.dumps(v)} -> 400 naming {field}", (st, js))
        raw = json.dumps(dict(base, **{field: "@@"})).encode().replace(b"@@", b"\xff\xfe\xc0\xaf")
        st, _, js = call("POST", SYNC, raw, auth(), f"invalid UTF-8 in {field}")
        t.ok(st == 400 and is_error_body(js, "invalid_request"),
             f"invalid UTF-8 bytes in {field} -> 400", (st, js))
        st, hd, js = call("POST", SYNC, json_body(dict(base, **{field: "B" * 100000})), auth(),
                          f"100 KB {field}")
        t.ok(st == 413 and is_error_body(js, "payload_too_large"),
             f"a 100 KB {field} -> 413 from nginx", (st, js))

    st, _, js = call("POST", SYNC, deep(10000), auth(), "depth 10000")
    t.ok(st == 413 and is_error_body(js, "payload_too_large"), "JSON nested 10,000 deep (20 KB) -> 413",
         (st, js))
    st, _, js = call("POST", SYNC, b'{"user_id":' + b"[" * 10000, auth(), "depth 10000 unclosed")
    t.ok(st == 400 and is_error_body(js, "invalid_request"),
         "JSON opening 10,000 arrays (10 KB, reaches the responder) -> 400", (st, js))
    st, _, js = call("POST", SYNC, deep(9), auth(), "depth 9")
    t.ok(st == 400 and is_error_body(js, "invalid_request") and "deep" in js["error"]["message"],
         "JSON nested 9 deep -> 400 (nesting too deep)", (st, js))
    st, _, js = call("POST", SYNC, deep(8), auth(), "depth 8")
    t.ok(st == 404 and is_error_body(js, "not_found"),
         "control: nested 8 deep is parsed (-> 404 unknown user), so the limit is exactly 8", (st, js))

    hostile_body = json_body(dict(base, user_id="'; drop table user_settings; --"))
    for desc, method, path, body, hdrs, want in (
            ("query string on the sync path, hostile body", "POST",
             f"{SYNC}?user_id={B}%27--&database_id=../../etc/passwd", hostile_body, auth(), 400),
            ("query string without the bearer", "POST", f"{SYNC}?user_id=%27%20or%201=1--", one_db,
             {}, 401),
            ("query string with bytes that are not UTF-8", "GET", f"{SYNC}?%00%ff%27", None, {}, 401),
            ("query string on the runs path", "GET", f"{RUNS}{RUN_A}?id=1%27%20or%20%271%27=%271",
             None, auth(), 200),
            ("query string on /healthz", "GET", "/healthz?../../etc/passwd", None, {}, 200),
            ("6 KB User-Agent", "POST", SYNC, hostile_body,
             dict(auth(), **{"User-Agent": "Mozilla/5.0 " + "A" * 6000}), 400),
            ("control characters in User-Agent, Referer and X-Custom", "POST", SYNC, hostile_body,
             dict(auth(), **{"User-Agent": "evil\x01\x07\x1b[31mred\x7f", "Referer": "\x1b]0;pwn\x07",
                             "X-Custom": "a\x0bb\x0cc"}), 400),
            ("control characters, no bearer", "POST", SYNC, one_db,
             {"User-Agent": "evil\x1b[2J\x01", "X-Custom": "\x7f\x08"}, 401),
            ("hostile Content-Type", "POST", SYNC, hostile_body,
             dict(auth(), **{"Content-Type": "application/json; charset=../../etc/passwd'--"}), 400),
            ("SQL in the bearer", "POST", SYNC, one_db, {"Authorization": "Bearer ' or '1'='1"}, 401),
            ("Latin-1 bytes after the secret", "POST", SYNC, one_db, auth(NEW + "\xe9"), 401),
            ("a 6 KB bearer", "POST", SYNC, one_db, auth("x" * 6000), 401),
    ):
        st, hd, js = call(method, path, body, hdrs, f"hostile: {desc}")
        if want == 200:
            good = st == 200 and isinstance(js, dict) and (js.get("status") == "ok" or (
                js.get("success") is True and str((js.get("run") or {}).get("run_id")) == str(RUN_A)))
        else:
            good = st == want and is_error_body(js)
        t.ok(good, f"{desc} -> {want}" + (" (the query is ignored)" if want == 200 else " JSON"),
             (st, js))
    # What nginx itself refuses: a clear 400, and JSON like every other answer
    # (the snippet says "Answers nginx makes itself are JSON").
    for desc, hdrs, path in (
            ("a NUL byte in a header",
             [("Authorization", f"Bearer {NEW}"), ("X-Evil", "a\x00b")], SYNC),
            ("a 10 KB header line",
             [("Authorization", f"Bearer {NEW}"), ("User-Agent", "u" * 10000)], SYNC),
            ("two Authorization headers (wrong, right)",
             [("Authorization", "Bearer wrong"), ("Authorization", f"Bearer {NEW}")], SYNC),
            ("two Authorization headers (right, wrong)",
             [("Authorization", f"Bearer {NEW}"), ("Authorization", "Bearer wrong")], SYNC),
            ("a control character in a header name",
             [("Authorization", f"Bearer {NEW}"), ("X-Evil\x01", "v")], SYNC),
            ("a path above the root", [("Authorization", f"Bearer {NEW}")], "/../etc/passwd")):
        st, hd, js = call("POST", path, hostile_body, hdrs, f"nginx 400: {desc}", nginx_own=True)
        t.eq(st, 400, f"{desc} -> 400 from nginx")
        t.ok(is_error_body(js), f"{desc}: the 400 body is JSON like the other answers", str(js)[:200])
    st, raw = h.https_raw(nginx.url, b"GET /api/notion/sync-to-postgres\xff\xfe/../x HTTP/1.1\r\n"
                          b"Host: a\r\nAuthorization: Bearer " + NEW.encode()
                          + b"\r\nConnection: close\r\n\r\n",
                          context=nginx.ssl_context())
    t.ok(st == 404 and b'"not_found"' in raw, "invalid UTF-8 bytes in the path -> 404 JSON", raw[:300])
    st, _, js = call("GET", "/api/" + "a" * 20000, None, auth(), "20 KB URI", nginx_own=True)
    t.eq(st, 414, "a 20 KB request URI -> 414 from nginx")
    t.ok(is_error_body(js), "a 20 KB request URI: the 414 body is JSON like the other answers",
         str(js)[:200])
    # Statuses nginx makes while reading the request line and headers, before
    # any location: 501 (a Transfer-Encoding other than chunked) and 505 (an
    # HTTP version it does not speak) are JSON too.
    for desc, raw_request, want in (
            ("Transfer-Encoding: identity", b"POST /api/notion/sync-to-postgres HTTP/1.1\r\nHost: a\r\n"
             b"Transfer-Encoding: identity\r\nConnection: close\r\n\r\n", 501),
            ("an HTTP/2.0 request line in text", b"GET /healthz HTTP/2.0\r\nHost: a\r\n"
             b"Connection: close\r\n\r\n", 505)):
        st, raw = h.https_raw(nginx.url, raw_request, context=nginx.ssl_context())
        body = raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in raw else b""
        try:
            js = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            js = None
        t.eq(st, want, f"{desc} -> {want} from nginx")
        t.ok(is_error_body(js) and b"application/json" in raw.split(b"\r\n\r\n", 1)[0],
             f"{desc}: the {want} body is JSON like the other answers", raw[:300])

    t.ok(resp.alive(), "the responder process is alive after the hostile input")
    st, _, js = call("GET", "/healthz")
    t.ok(st == 200 and isinstance(js, dict) and js.get("status") == "ok", "... and still answers",
         (st, js))
    t.eq(fingerprint(), snap, "no row of any table under RLS changed (counts, contents, xmin)")
    t.eq((runs_count(), emu_calls()), (runs0, calls0),
         "hostile input: no run recorded, Notion not called")
    t.ok(pg.scalar("select to_regclass('public.user_settings') is not null") == "t",
         "user_settings still exists")

# --- what the logs and tables hold ---------------------------------------------------------------
def logs():
    if not SCENARIO_DBS:   # run alone: the sync scenario's traffic to look at
        h.note("logs: run alone, so first the sync scenario")
        on_its_own_database("sync", sync, secret=f"{NEW},{OLD}")[1]()
    time.sleep(0.2)  # the last log lines
    rlog = resp.log_text()
    sources = {"nginx access+error log": nginx.logs(), "control nginx logs": ctl.logs(),
               "responder log": rlog, "PostgreSQL server log": open(pg.log, errors="replace").read(),
               "emulator log": open(emu.log.name, errors="replace").read()}
    runs_text = "\n".join(db.raw("select coalesce(string_agg(row_to_json(r)::text, E'\\n'), '') "
                                 "from notion_sync_runs r") for db in SCENARIO_DBS)
    sources["notion_sync_runs (every column)"] = runs_text
    other_text = []
    for db in SCENARIO_DBS:   # one query per database: every other table and view, as JSON rows
        other_tables = [r[0] for r in db.psql("select table_name from information_schema.tables "
                                               "where table_schema = 'public' and table_name <> "
                                               "'user_settings' and table_name <> "
                                               "'notion_sync_runs' order by 1")]
        other_text.append(db.raw("select concat_ws(E'\\n', " + ", ".join(
            f"(select coalesce(string_agg(row_to_json(x)::text, E'\\n'), '') from {tbl} x)"
            for tbl in other_tables) + ")"))
    sources["every other table and view of ours"] = "\n".join(other_text)
    if pgnet is not None:
        sources["pg_net's tables (net.http_request_queue, net._http_response)"] = pgnet.pg.raw(
            "select coalesce(string_agg(x, E'\\n'), '') from (select q::text as x from "
            "net.http_request_queue q union all select r::text from net._http_response r) y")
    sources["HTTP answers"] = "\n".join(json.dumps(a["body"]) + str(dict(a["headers"] or {}))
                                        for a in ALL)
    t.ok(len(runs_text) > 1000 and "Bearer" not in sources["nginx access+error log"],
         "(the sources are not empty; the access log has no Authorization values)", len(runs_text))
    for name, text in sources.items():
        leaked = [f"{s[:6]}..." for s in SECRETS if s in text]
        t.eq(leaked, [], f"no bearer secret or Notion token in the {name}")
    t.eq([ln for ln in rlog.splitlines() if ln and not re.match(
        r"notion-sync-fcgi(\[\d+\])?: |spawn-fcgi: |(WARNING|NOTICE|FATAL|ERROR):  ", ln)], [],
         "every responder log line is one of its own (no injected lines)")
    ctrl = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
    t.eq([name for name, text in (("responder", rlog), ("nginx access", open(nginx.access_log).read()))
          if ctrl.search(text)], [], "no raw control characters reached the responder's or nginx's log")
    no_hsts = [(a["label"], a["status"]) for a in ALL if not hsts_ok(a["headers"])]
    t.eq(no_hsts, [], f"every one of the {len(ALL)} HTTPS answers carries one HSTS header")
    not_json = [(a["label"], a["status"]) for a in ALL if a["status"] >= 400 and a["method"] != "HEAD"
                and not a["nginx_own"] and not is_error_body(a["body"])]
    t.eq(not_json, [], "every other 4xx/5xx answer is {success:false, error:{code, message}} JSON")
    t.eq([a["label"] for a in ALL if a["status"] == 500], [], "no request answered 500")

# --- every process stopped -----------------------------------------------------------------------
def stopped():
    pids = [p.pid for p in resp.procs] + [nginx.proc.pid, ctl.proc.pid, emu.proc.pid]
    pids += nginx._worker_pids() + ctl._worker_pids()
    with open(os.path.join(pg.data, "postmaster.pid")) as f:
        postmaster = int(f.readline())
    pg_children = [int(p) for p in subprocess.run(["ps", "-o", "pid=", "--ppid", str(postmaster)],
                                                   capture_output=True, text=True).stdout.split()]
    pids += [postmaster] + pg_children
    h.note(f"runtime {time.monotonic() - start:.1f}s, {len(ALL)} HTTPS requests; "
           f"stopping {len(pids)} processes")
    h._run_cleanups()
    alive = [p for p in pids if h.pid_running(p)]
    t.eq(alive, [], "after cleanup no process this test started is running (responder, nginx x2 + "
                    "workers, emulator, PostgreSQL)")


scenario.run(t, [on_its_own_database("tls", tls, secret=f"{NEW},{OLD}"),
                 on_its_own_database("sync", sync, secret=f"{NEW},{OLD}"),
                 on_its_own_database("auth", authentication, secret=f"{NEW},{OLD}"),
                 on_its_own_database("plain_http", plain_http),
                 on_its_own_database("methods", methods),
                 on_its_own_database("body_size", body_size),
                 on_its_own_database("paths", paths),
                 on_its_own_database("rate_limit", rate_limit),
                 on_its_own_database("rls", rls, synced=True, responder=False),
                 on_its_own_database("service", service, responder=False),
                 ("pg_net", pg_net),
                 on_its_own_database("hostile", hostile, synced=True),
                 ("logs", logs), ("stopped", stopped)])
